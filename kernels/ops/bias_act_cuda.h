/* bias_act_cuda.h — CUDA launchers of the per-layer epilogue ops (bias +
 * activation, row softmax) and the fused epilogue that also narrows the
 * result to FP16/BF16 for the next layer's tensor-core GEMM. Twins:
 * bias_act_cpu.c (bias_act.h), same argument order, plus a stream. Each
 * launcher enqueues on `stream` and returns the launch status; it never
 * synchronises. Pointers are device pointers. */
#ifndef KINFER_BIAS_ACT_CUDA_H
#define KINFER_BIAS_ACT_CUDA_H

#include <stddef.h>

#include <cuda_runtime_api.h>

#include "kinfer/kinfer_tensor.h"
#include "kinfer_hd.h"

#ifdef __cplusplus
extern "C" {
#endif

/* y [rows, cols] row-major, in place: y[r][c] = act(y[r][c] + bias[c]).
 * bias [cols] may be NULL. rows or cols 0: nothing is launched. */
cudaError_t kinfer_bias_act_cuda(float *y, const float *bias, size_t rows, size_t cols,
                                 kinfer_activation act, cudaStream_t stream);

/* Same math, written to out [rows, cols] of out_dtype (FP32, FP16 or BF16,
 * rounded to nearest even); y is left as it was. Any other dtype:
 * cudaErrorInvalidValue, nothing launched. */
cudaError_t kinfer_bias_act_to_cuda(const float *y, const float *bias, size_t rows, size_t cols,
                                    kinfer_activation act, void *out, kinfer_dtype out_dtype,
                                    cudaStream_t stream);

/* y [rows, cols], in place: each row becomes softmax(row) exactly as
 * kinfer_softmax_rows_cpu defines it (max-subtracted; a row with a NaN
 * becomes all NaN). One block per row. */
cudaError_t kinfer_softmax_rows_cuda(float *y, size_t rows, size_t cols, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
