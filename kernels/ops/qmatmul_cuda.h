/* qmatmul_cuda.h — the quantized matrix product on CUDA, twin of
 * kinfer_qmatmul_cpu (qmatmul.h, same argument order + a stream):
 * Y[M,N] = X[M,K] . W[N,K]^T with W in its GGUF bytes on the device.
 * Two paths, picked by M:
 *   M <= KINFER_QGEMV_CUDA_MAX_ROWS (decode): a fused kernel that reads
 *     each W block once, dequantizes it in registers and multiplies it
 *     with up to 8 rows of X at a time, exact FP32 products;
 *   larger M (prefill): W is dequantized into the context's scratch
 *     (FP32, or FP16 for tensor cores) and cuBLAS runs the GEMM.
 * Launchers enqueue on `stream` and never synchronise; pointers are device
 * pointers unless said otherwise. */
#ifndef KINFER_QMATMUL_CUDA_H
#define KINFER_QMATMUL_CUDA_H

#include <stdbool.h>
#include <stddef.h>

#include <cuda_runtime_api.h>

#include "kinfer/kinfer_error.h"
#include "ops/quant.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest M the fused decode kernel takes (rows beyond 8 loop over W
 * again, from L2). */
#define KINFER_QGEMV_CUDA_MAX_ROWS 32

/* The prefill GEMM's operand precision. */
typedef enum kinfer_qmm_cuda_prec {
    /* W dequantized to FP32, cublasSgemm: exact up to summation order. */
    KINFER_QMM_CUDA_F32 = 0,
    /* W dequantized to FP16 and X rounded to FP16, tensor-core GEMM with
     * FP32 accumulation (cublasGemmEx): ~1e-3 relative. */
    KINFER_QMM_CUDA_F16,
} kinfer_qmm_cuda_prec;

/* Per-replica context on the current device: a cuBLAS handle and the
 * dequantization scratch for W up to max_n x max_k (plus X in FP16 up to
 * max_rows x max_k). One thread at a time (the replica's executor).
 * Errors: INVALID_ARG (zero bounds), DEVICE (allocation, cuBLAS). */
typedef struct kinfer_qmm_cuda kinfer_qmm_cuda;
kinfer_err kinfer_qmm_cuda_new(size_t max_rows, size_t max_n, size_t max_k,
                               kinfer_qmm_cuda_prec prec, kinfer_qmm_cuda **out, kinfer_error *err);
void kinfer_qmm_cuda_destroy(kinfer_qmm_cuda *qmm);

/* Shapes and meaning as kinfer_qmatmul_cpu (x [M, K], w N rows of K
 * elements of wtype, y [M, N], accumulate: y +=). The host-side checks are
 * the CPU twin's (INVALID_ARG, nothing launched): M above max_rows, K or N
 * above the scratch bounds (prefill path), K not a multiple of 32 for a
 * block type, an invalid type, NULL pointers. Launch and cuBLAS failures:
 * DEVICE with file and line. */
kinfer_err kinfer_qmatmul_cuda(kinfer_qmm_cuda *qmm, const float *x, size_t M, size_t K,
                               const void *w, kinfer_qtype wtype, size_t N, float *y,
                               bool accumulate, cudaStream_t stream, kinfer_error *err);

/* The two paths alone (tests force each; kinfer_qmatmul_cuda picks).
 * The fused kernel: M <= KINFER_QGEMV_CUDA_MAX_ROWS; M, N 0: nothing
 * launched; bad arguments: cudaErrorInvalidValue before any launch. */
cudaError_t kinfer_qgemv_cuda(const float *x, size_t M, size_t K, const void *w, kinfer_qtype wtype,
                              size_t N, float *y, bool accumulate, cudaStream_t stream);
/* w (N rows of K elements of wtype) -> out [N, K] FP32 (out_f16 false) or
 * FP16 (true, round to nearest even). */
cudaError_t kinfer_dequantize_cuda(const void *w, kinfer_qtype wtype, size_t N, size_t K, void *out,
                                   bool out_f16, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
