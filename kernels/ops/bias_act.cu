/* bias_act.cu — CUDA epilogue kernels after each GEMM: bias + activation
 * (in place, or narrowed to FP16/BF16 for the next layer) and the output
 * row softmax. The C twins are in bias_act_cpu.c; the per-element math is
 * kinfer_hd.h's, so the two compute the same function. No GEMM here. */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <stdint.h>

#include "bias_act_cuda.h"

namespace {

constexpr unsigned kThreads = 256;
constexpr size_t kMaxGridY = 65535;

template <typename OutT> __device__ __forceinline__ OutT narrow(float v);
template <> __device__ __forceinline__ float narrow<float>(float v) {
    return v;
}
template <> __device__ __forceinline__ __half narrow<__half>(float v) {
    return __float2half_rn(v);
}
template <> __device__ __forceinline__ __nv_bfloat16 narrow<__nv_bfloat16>(float v) {
    return __float2bfloat16_rn(v);
}

/* y [rows, cols]. Grid: x covers the columns of one row (so the bias read
 * is coalesced and no division is needed), y strides over rows. `out` may
 * alias `y` when OutT is float (in-place form). */
template <typename OutT>
__global__ void bias_act_kernel(const float *y, const float *bias, size_t rows, size_t cols,
                                kinfer_activation act, OutT *out) {
    size_t c = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols)
        return;
    float b = bias ? bias[c] : 0.0f;
    for (size_t r = blockIdx.y; r < rows; r += gridDim.y) {
        size_t i = r * cols + c;
        float v = y[i];
        if (bias)
            v += b; /* as the twin: no add when there is no bias (keeps -0.0f) */
        out[i] = narrow<OutT>(kinfer_activate(act, v));
    }
}

template <typename OutT>
cudaError_t launch_bias_act(const float *y, const float *bias, size_t rows, size_t cols,
                            kinfer_activation act, OutT *out, cudaStream_t stream) {
    if (rows == 0 || cols == 0)
        return cudaSuccess;
    if (!y || !out)
        return cudaErrorInvalidValue;
    dim3 grid((unsigned)((cols + kThreads - 1) / kThreads),
              (unsigned)(rows < kMaxGridY ? rows : kMaxGridY));
    bias_act_kernel<OutT><<<grid, kThreads, 0, stream>>>(y, bias, rows, cols, act, out);
    return cudaGetLastError();
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* Block-wide reduction through one shared slot per warp; every thread gets
 * the result. `scratch` holds kThreads/32 floats. */
template <bool IsMax> __device__ float block_reduce(float v, float *scratch) {
    const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    v = IsMax ? warp_max(v) : warp_sum(v);
    __syncthreads(); /* scratch may still be read by a previous reduction */
    if (lane == 0)
        scratch[warp] = v;
    __syncthreads();
    const unsigned nwarps = blockDim.x >> 5;
    float r = lane < nwarps ? scratch[lane] : (IsMax ? -INFINITY : 0.0f);
    return IsMax ? warp_max(r) : warp_sum(r);
}

/* One block per row (grid-strided). Three passes over the row in global
 * memory: max (NaN noted apart, as the twin does), exp + sum, scale. */
__global__ void softmax_rows_kernel(float *y, size_t rows, size_t cols) {
    __shared__ float scratch[kThreads / 32];
    for (size_t r = blockIdx.x; r < rows; r += gridDim.x) {
        float *row = y + r * cols;
        float max = -INFINITY;
        float nan_seen = 0.0f;
        for (size_t c = threadIdx.x; c < cols; c += blockDim.x) {
            float v = row[c];
            if (isnan(v))
                nan_seen = 1.0f;
            else if (v > max)
                max = v;
        }
        max = block_reduce<true>(max, scratch);
        nan_seen = block_reduce<true>(nan_seen, scratch);
        if (nan_seen != 0.0f) {
            for (size_t c = threadIdx.x; c < cols; c += blockDim.x)
                row[c] = NAN;
            continue;
        }
        float sum = 0.0f;
        for (size_t c = threadIdx.x; c < cols; c += blockDim.x) {
            float e = expf(row[c] - max);
            row[c] = e;
            sum += e;
        }
        sum = block_reduce<false>(sum, scratch);
        float inv = 1.0f / sum;
        for (size_t c = threadIdx.x; c < cols; c += blockDim.x)
            row[c] *= inv;
    }
}

} // namespace

extern "C" cudaError_t kinfer_bias_act_cuda(float *y, const float *bias, size_t rows, size_t cols,
                                            kinfer_activation act, cudaStream_t stream) {
    return launch_bias_act<float>(y, bias, rows, cols, act, y, stream);
}

extern "C" cudaError_t kinfer_bias_act_to_cuda(const float *y, const float *bias, size_t rows,
                                               size_t cols, kinfer_activation act, void *out,
                                               kinfer_dtype out_dtype, cudaStream_t stream) {
    switch (out_dtype) {
    case KINFER_DTYPE_FP32:
        return launch_bias_act<float>(y, bias, rows, cols, act, (float *)out, stream);
    case KINFER_DTYPE_FP16:
        return launch_bias_act<__half>(y, bias, rows, cols, act, (__half *)out, stream);
    case KINFER_DTYPE_BF16:
        return launch_bias_act<__nv_bfloat16>(y, bias, rows, cols, act, (__nv_bfloat16 *)out,
                                              stream);
    default:
        return cudaErrorInvalidValue;
    }
}

extern "C" cudaError_t kinfer_softmax_rows_cuda(float *y, size_t rows, size_t cols,
                                                cudaStream_t stream) {
    if (rows == 0 || cols == 0)
        return cudaSuccess;
    if (!y)
        return cudaErrorInvalidValue;
    unsigned grid = (unsigned)(rows < kMaxGridY ? rows : kMaxGridY);
    softmax_rows_kernel<<<grid, kThreads, 0, stream>>>(y, rows, cols);
    return cudaGetLastError();
}
