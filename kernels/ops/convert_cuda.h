/* convert_cuda.h — FP32 -> FP16/BF16 narrowing on the GPU (weights at
 * replica creation, a batch's input before an FP16/BF16 GEMM). Twins:
 * kinfer_fp32_to_fp16 / kinfer_fp32_to_bf16 in convert_cpu.c (round to
 * nearest even). Enqueues on `stream`; never synchronises. */
#ifndef KINFER_CONVERT_CUDA_H
#define KINFER_CONVERT_CUDA_H

#include <stddef.h>

#include <cuda_runtime_api.h>

#include "kinfer/kinfer_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* dst[i] = (dst_dtype) src[i] for i < n; dst_dtype FP16 or BF16 (FP32 is a
 * device copy). Other dtypes: cudaErrorInvalidValue. n 0: no launch. */
cudaError_t kinfer_convert_f32_cuda(const float *src, void *dst, kinfer_dtype dst_dtype, size_t n,
                                    cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
