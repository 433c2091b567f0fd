/* convert.cu — FP32 -> FP16/BF16 narrowing kernel (round to nearest even),
 * used to upload weights and to feed FP16/BF16 GEMMs. The C twins are
 * kinfer_fp32_to_fp16/bf16 in convert_cpu.c. No widening here: outputs
 * stay FP32 end to end. */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "convert_cuda.h"

namespace {

constexpr unsigned kThreads = 256;
constexpr size_t kMaxBlocks = 65535u * 8u;

__device__ __forceinline__ void store(__half *d, float v) {
    *d = __float2half_rn(v);
}
__device__ __forceinline__ void store(__nv_bfloat16 *d, float v) {
    *d = __float2bfloat16_rn(v);
}

template <typename T> __global__ void narrow_kernel(const float *src, T *dst, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        store(dst + i, src[i]);
}

template <typename T> cudaError_t launch(const float *src, T *dst, size_t n, cudaStream_t stream) {
    size_t blocks = (n + kThreads - 1) / kThreads;
    if (blocks > kMaxBlocks)
        blocks = kMaxBlocks;
    narrow_kernel<T><<<(unsigned)blocks, kThreads, 0, stream>>>(src, dst, n);
    return cudaGetLastError();
}

} // namespace

extern "C" cudaError_t kinfer_convert_f32_cuda(const float *src, void *dst, kinfer_dtype dst_dtype,
                                               size_t n, cudaStream_t stream) {
    if (dst_dtype != KINFER_DTYPE_FP32 && dst_dtype != KINFER_DTYPE_FP16 &&
        dst_dtype != KINFER_DTYPE_BF16)
        return cudaErrorInvalidValue;
    if (n == 0)
        return cudaSuccess;
    if (!src || !dst)
        return cudaErrorInvalidValue;
    switch (dst_dtype) {
    case KINFER_DTYPE_FP16:
        return launch<__half>(src, (__half *)dst, n, stream);
    case KINFER_DTYPE_BF16:
        return launch<__nv_bfloat16>(src, (__nv_bfloat16 *)dst, n, stream);
    default:
        return cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyDeviceToDevice, stream);
    }
}
