/* llm_cuda.h — the CUDA backend of kind `llm` (llm_cuda.c), declared here
 * rather than in llm_model.h so the two backends' owners do not share a
 * header (as bert_cuda.h). Only with KINFER_HAVE_CUDA; llm_model.c
 * dispatches "cuda:N" to it. The kernels it drives are declared in
 * ops/qmatmul_cuda.h, ops/llm_ops_cuda.h and ops/paged_kv_cuda.h. */
#ifndef KINFER_LLM_CUDA_H
#define KINFER_LLM_CUDA_H

#include <stdint.h>

#include "backend.h"
#include "llm_model.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifdef KINFER_HAVE_CUDA
/* kind llm on CUDA device `device_index` (kinfer_replica_new has checked
 * that it exists): every weight uploaded once in its stored type (the
 * GGUF blocks as they are; F32/F16/BF16 matrices of an HF directory
 * likewise), the norms in FP32; device buffers for max_rows tokens per
 * step; its own stream and the quantized-matmul context (decode: the fused
 * dequant GEMV; prefill: dequantize + cuBLAS, FP16 tensor cores when the
 * model's precision is fp16 or bf16, else FP32). The KV pool
 * (kinfer_replica_kv_alloc) lives in device memory: the model's KV layout,
 * in F16 when the precision is fp16/bf16 (then a block takes half of the
 * model's kv_block_bytes). A step uploads the token ids, positions and
 * block tables, runs the forward on the device and copies the logits asked
 * for back to host memory; it allocates nothing except growing the device
 * block table past any earlier step. The model must outlive the replica.
 * Errors: KINFER_ERR_DEVICE naming the CUDA/cuBLAS call and device,
 * KINFER_ERR_INVALID_ARG (max_rows 0), KINFER_ERR_NOMEM. */
kinfer_err llm_cuda_replica_new(const llm_model *m, int device_index, uint32_t max_rows,
                                kinfer_replica_impl **out, kinfer_error *err);
#endif

#ifdef __cplusplus
}
#endif
#endif
