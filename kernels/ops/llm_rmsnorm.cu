/* llm_rmsnorm.cu — RMSNorm on CUDA, one block per row: the sum of squares
 * in double (the twin, llm_rmsnorm_cpu.c, combines FP32 lanes in double),
 * then x * (1 / sqrtf(mean + eps)) * w in FP32 as the twin. y may be x. */
#include <cuda_runtime.h>

#include "llm_ops_cuda.h"

namespace {

constexpr unsigned kThreads = 256;

__device__ __forceinline__ double warp_sum(double v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__global__ void rmsnorm_kernel(const float *x, const float *__restrict__ w, float *y, unsigned n,
                               float eps) {
    __shared__ double part[kThreads / 32];
    const float *xr = x + (size_t)blockIdx.x * n;
    float *yr = y + (size_t)blockIdx.x * n;
    double s = 0.0;
    for (unsigned k = threadIdx.x; k < n; k += blockDim.x) {
        float v = xr[k];
        s += (double)(v * v);
    }
    s = warp_sum(s);
    if ((threadIdx.x & 31u) == 0)
        part[threadIdx.x >> 5] = s;
    __syncthreads();
    double tot = 0.0;
#pragma unroll
    for (unsigned i = 0; i < kThreads / 32; i++)
        tot += part[i];
    float mean = (float)(tot / (double)n);
    float r = 1.0f / sqrtf(mean + eps);
    /* every thread read its columns of x above; y == x is safe: each
     * thread rewrites only the columns it read */
    for (unsigned k = threadIdx.x; k < n; k += blockDim.x)
        yr[k] = xr[k] * r * w[k];
}

} // namespace

extern "C" cudaError_t kinfer_rmsnorm_cuda(const float *x, const float *w, float *y, size_t rows,
                                           size_t n, float eps, cudaStream_t stream) {
    if (rows == 0 || n == 0)
        return cudaSuccess;
    if (!x || !w || !y || rows > 0x7fffffffu || n > (1u << 30))
        return cudaErrorInvalidValue;
    rmsnorm_kernel<<<(unsigned)rows, kThreads, 0, stream>>>(x, w, y, (unsigned)n, eps);
    return cudaGetLastError();
}
