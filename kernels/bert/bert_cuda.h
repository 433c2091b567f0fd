/* bert_cuda.h — the CUDA backend of kind `bert` (bert_cuda.c), declared
 * here rather than in backend.h so the two backends' owners do not share a
 * header. Only with KINFER_HAVE_CUDA; bert_model.c dispatches "cuda:N" to
 * it. The kernels it drives are declared in bert_layernorm_cuda.h,
 * bert_attention_cuda.h, bert_pool_cuda.h and bias_act_cuda.h. */
#ifndef KINFER_BERT_CUDA_H
#define KINFER_BERT_CUDA_H

#include <stdint.h>

#include "backend.h"
#include "bert_model.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifdef KINFER_HAVE_CUDA
/* bert on CUDA device `device_index` (kinfer_replica_new has checked that
 * it exists): uploads the model's FP32 host weights once (GEMM weights
 * narrowed to FP16/BF16 for `precision` "fp16"/"bf16", with FP32
 * accumulation; embeddings, biases and LayerNorm parameters stay FP32),
 * allocates every device buffer for max_rows sequences of up to
 * max_position_embeddings tokens and pinned staging for the token ids and
 * results, and creates its stream and cuBLAS handle; nothing is allocated
 * per batch. One batch at a time (the seam's generic submit/collect).
 * The model must outlive the replica. Errors: KINFER_ERR_DEVICE naming the
 * CUDA/cuBLAS call and device, KINFER_ERR_CONFIG (precision),
 * KINFER_ERR_INVALID_ARG (max_rows), KINFER_ERR_NOMEM. */
kinfer_err bert_cuda_replica_new(const bert_model *m, int device_index, uint32_t max_rows,
                                 const char *precision, kinfer_replica_impl **out,
                                 kinfer_error *err);
#endif

#ifdef __cplusplus
}
#endif
#endif
