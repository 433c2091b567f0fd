/* blas_cuda.h — the CUDA backends' door to cuBLAS, twin of blas_cpu.h: a
 * handle set up the one way every replica needs (bound to its stream,
 * default math so FP32 stays FP32 with no TF32, a preallocated workspace so
 * no GEMM allocates), the GEMM operand types a precision gives, and the one
 * GEMM shape the dense layers need, y = x w^T with FP32 accumulation (the
 * same arguments as kinfer_blas_cpu_gemm_xwt). Shared by every CUDA model
 * kind (mlp, bert). Host C; built only with CUDA. */
#ifndef KINFER_BLAS_CUDA_H
#define KINFER_BLAS_CUDA_H

#include <stddef.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "kinfer/kinfer_error.h"
#include "kinfer/kinfer_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes per element of a GEMM operand of type t: 4 for FP32, 2 for FP16
 * and BF16 (the types kinfer_precision_parse gives). */
size_t kinfer_blas_cuda_type_size(kinfer_dtype t);

/* Creates a cuBLAS handle on the current device, bound to `stream`, with
 * CUBLAS_DEFAULT_MATH and `workspace` (workspace_bytes of device memory
 * the caller owns and frees after the handle). On failure nothing is left
 * to destroy; KINFER_ERR_DEVICE names the call and `device`. */
kinfer_err kinfer_blas_cuda_handle_new(int device, cudaStream_t stream, void *workspace,
                                       size_t workspace_bytes, cublasHandle_t *out,
                                       kinfer_error *err);

/* y[m, n] = x[m, k] * w[n, k]^T, all row-major and packed, on the handle's
 * stream: x and w of type t (FP32, FP16 or BF16), y FP32, accumulation
 * FP32. m, n, k must fit in int (callers check at replica creation).
 * Asynchronous; KINFER_ERR_DEVICE when cuBLAS refuses the call. */
kinfer_err kinfer_blas_cuda_gemm_xwt(cublasHandle_t blas, int device, kinfer_dtype t, const void *x,
                                     const void *w, float *y, size_t m, size_t n, size_t k,
                                     kinfer_error *err);

#ifdef __cplusplus
}
#endif
#endif
