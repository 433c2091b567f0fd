/* qmatmul.cu — the quantized matrix product's kernels (qmatmul_cuda.h):
 * the fused decode kernel (one warp per W row, lanes over quarter blocks,
 * the block dequantized in registers and multiplied with up to 8 X rows,
 * FP32 products and a warp-shuffle sum) and the dequantization of W for the
 * cuBLAS prefill path (qmatmul_cuda.c). The C twin is kinfer_qmatmul_cpu in
 * its exact-FP32 mode (qmatmul_portable.c states the arithmetic). */
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "qmatmul_cuda.h"
#include "quant_cuda.cuh"

namespace {

constexpr unsigned kWarps = 4; /* W rows per block */
constexpr unsigned kTile = 8;  /* X rows per pass over a W row */

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* Block types. Lane l takes part l % 4 of blocks l / 4, l / 4 + 8, ...;
 * X rows m0 .. m0 + mt of the tile blockIdx.y. VEC: X rows are 16-byte
 * aligned (float4 loads). */
template <kinfer_qtype T, unsigned MT, bool VEC>
__global__ void __launch_bounds__(kWarps * 32)
    qgemv_block_kernel(const float *__restrict__ x, unsigned M, unsigned K,
                       const unsigned char *__restrict__ w, size_t w_ld, unsigned N,
                       float *__restrict__ y, bool accumulate) {
    const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    const unsigned n = blockIdx.x * kWarps + warp;
    if (n >= N)
        return; /* a whole warp: no block-wide barrier in this kernel */
    const unsigned m0 = blockIdx.y * MT;
    const unsigned mt = M - m0 < MT ? M - m0 : MT;
    const unsigned char *row = w + (size_t)n * w_ld;
    const unsigned nb = K / KINFER_QK, p = lane & 3u;
    float acc[MT];
#pragma unroll
    for (unsigned m = 0; m < MT; m++)
        acc[m] = 0.0f;
    for (unsigned j = lane >> 2; j < nb; j += 8) {
        float wv[8];
        quant_cuda::block_part(row, T, j, p, wv);
        const unsigned e0 = j * KINFER_QK + (T == KINFER_QTYPE_Q8_0 ? 8 * p : 4 * p);
        const unsigned e1 = T == KINFER_QTYPE_Q8_0 ? e0 + 4 : e0 + 16;
#pragma unroll
        for (unsigned m = 0; m < MT; m++) {
            if (m < mt) {
                const float *xr = x + (size_t)(m0 + m) * K;
                float a0, a1, a2, a3, b0, b1, b2, b3;
                if (VEC) {
                    float4 a = *(const float4 *)(xr + e0), b = *(const float4 *)(xr + e1);
                    a0 = a.x, a1 = a.y, a2 = a.z, a3 = a.w, b0 = b.x, b1 = b.y, b2 = b.z, b3 = b.w;
                } else {
                    a0 = xr[e0], a1 = xr[e0 + 1], a2 = xr[e0 + 2], a3 = xr[e0 + 3];
                    b0 = xr[e1], b1 = xr[e1 + 1], b2 = xr[e1 + 2], b3 = xr[e1 + 3];
                }
                float s = wv[0] * a0;
                s = fmaf(wv[1], a1, s);
                s = fmaf(wv[2], a2, s);
                s = fmaf(wv[3], a3, s);
                s = fmaf(wv[4], b0, s);
                s = fmaf(wv[5], b1, s);
                s = fmaf(wv[6], b2, s);
                s = fmaf(wv[7], b3, s);
                acc[m] += s;
            }
        }
    }
#pragma unroll
    for (unsigned m = 0; m < MT; m++) {
        float v = warp_sum(acc[m]);
        if (lane == 0 && m < mt) {
            float *yp = y + (size_t)(m0 + m) * N + n;
            *yp = accumulate ? *yp + v : v;
        }
    }
}

/* F32 / F16 / BF16: lanes over k, coalesced on W and X. */
template <kinfer_qtype T, unsigned MT>
__global__ void __launch_bounds__(kWarps * 32)
    qgemv_float_kernel(const float *__restrict__ x, unsigned M, unsigned K,
                       const unsigned char *__restrict__ w, size_t w_ld, unsigned N,
                       float *__restrict__ y, bool accumulate) {
    const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    const unsigned n = blockIdx.x * kWarps + warp;
    if (n >= N)
        return;
    const unsigned m0 = blockIdx.y * MT;
    const unsigned mt = M - m0 < MT ? M - m0 : MT;
    const unsigned char *row = w + (size_t)n * w_ld;
    float acc[MT];
#pragma unroll
    for (unsigned m = 0; m < MT; m++)
        acc[m] = 0.0f;
    for (unsigned k = lane; k < K; k += 32) {
        float wv = quant_cuda::weight(row, T, k);
#pragma unroll
        for (unsigned m = 0; m < MT; m++)
            if (m < mt)
                acc[m] = fmaf(wv, x[(size_t)(m0 + m) * K + k], acc[m]);
    }
#pragma unroll
    for (unsigned m = 0; m < MT; m++) {
        float v = warp_sum(acc[m]);
        if (lane == 0 && m < mt) {
            float *yp = y + (size_t)(m0 + m) * N + n;
            *yp = accumulate ? *yp + v : v;
        }
    }
}

template <unsigned MT, bool VEC>
cudaError_t launch_block(const float *x, unsigned M, unsigned K, const unsigned char *w,
                         size_t w_ld, kinfer_qtype t, unsigned N, float *y, bool accumulate,
                         cudaStream_t stream) {
    dim3 grid((N + kWarps - 1) / kWarps, (M + MT - 1) / MT);
    switch (t) {
    case KINFER_QTYPE_Q8_0:
        qgemv_block_kernel<KINFER_QTYPE_Q8_0, MT, VEC>
            <<<grid, kWarps * 32, 0, stream>>>(x, M, K, w, w_ld, N, y, accumulate);
        break;
    case KINFER_QTYPE_Q4_0:
        qgemv_block_kernel<KINFER_QTYPE_Q4_0, MT, VEC>
            <<<grid, kWarps * 32, 0, stream>>>(x, M, K, w, w_ld, N, y, accumulate);
        break;
    default:
        qgemv_block_kernel<KINFER_QTYPE_Q4_1, MT, VEC>
            <<<grid, kWarps * 32, 0, stream>>>(x, M, K, w, w_ld, N, y, accumulate);
        break;
    }
    return cudaGetLastError();
}

template <unsigned MT>
cudaError_t launch_float(const float *x, unsigned M, unsigned K, const unsigned char *w,
                         size_t w_ld, kinfer_qtype t, unsigned N, float *y, bool accumulate,
                         cudaStream_t stream) {
    dim3 grid((N + kWarps - 1) / kWarps, (M + MT - 1) / MT);
    switch (t) {
    case KINFER_QTYPE_F32:
        qgemv_float_kernel<KINFER_QTYPE_F32, MT>
            <<<grid, kWarps * 32, 0, stream>>>(x, M, K, w, w_ld, N, y, accumulate);
        break;
    case KINFER_QTYPE_F16:
        qgemv_float_kernel<KINFER_QTYPE_F16, MT>
            <<<grid, kWarps * 32, 0, stream>>>(x, M, K, w, w_ld, N, y, accumulate);
        break;
    default:
        qgemv_float_kernel<KINFER_QTYPE_BF16, MT>
            <<<grid, kWarps * 32, 0, stream>>>(x, M, K, w, w_ld, N, y, accumulate);
        break;
    }
    return cudaGetLastError();
}

/* One thread per (W row, block, quarter) for block types: eight weights
 * written; one per element for the float types. */
template <typename O> __device__ __forceinline__ void put(O *out, size_t i, float v);
template <> __device__ __forceinline__ void put<float>(float *out, size_t i, float v) {
    out[i] = v;
}
template <> __device__ __forceinline__ void put<__half>(__half *out, size_t i, float v) {
    out[i] = __float2half_rn(v);
}

template <typename O>
__global__ void dequant_block_kernel(const unsigned char *__restrict__ w, size_t w_ld,
                                     kinfer_qtype t, size_t N, unsigned K, O *__restrict__ out) {
    const size_t nb = K / KINFER_QK, total = N * nb * 4;
    for (size_t g = (size_t)blockIdx.x * blockDim.x + threadIdx.x; g < total;
         g += (size_t)gridDim.x * blockDim.x) {
        size_t n = g / (nb * 4);
        unsigned j = (unsigned)((g / 4) % nb), p = (unsigned)(g % 4);
        float wv[8];
        quant_cuda::block_part(w + n * w_ld, t, j, p, wv);
        size_t base = n * K + (size_t)j * KINFER_QK;
        unsigned e0 = t == KINFER_QTYPE_Q8_0 ? 8 * p : 4 * p;
        unsigned e1 = t == KINFER_QTYPE_Q8_0 ? e0 + 4 : e0 + 16;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            put(out, base + e0 + i, wv[i]);
            put(out, base + e1 + i, wv[4 + i]);
        }
    }
}

template <typename O>
__global__ void dequant_float_kernel(const unsigned char *__restrict__ w, size_t w_ld,
                                     kinfer_qtype t, size_t N, unsigned K, O *__restrict__ out) {
    const size_t total = N * K;
    for (size_t g = (size_t)blockIdx.x * blockDim.x + threadIdx.x; g < total;
         g += (size_t)gridDim.x * blockDim.x)
        put(out, g, quant_cuda::weight(w + (g / K) * w_ld, t, g % K));
}

constexpr unsigned kDqThreads = 256;
constexpr size_t kMaxBlocks = 65535u * 8u;

unsigned blocks_for(size_t work) {
    size_t b = (work + kDqThreads - 1) / kDqThreads;
    return (unsigned)(b > kMaxBlocks ? kMaxBlocks : b);
}

/* Shapes the kernels index with 32-bit counters, and the alignment their
 * loads need (2 bytes for the 16-bit fields, 4 for F32 weights). */
bool args_ok(const void *w, kinfer_qtype t, size_t K, size_t N) {
    if ((unsigned)t >= KINFER_QTYPE_COUNT || K > (1u << 30) || N > (1u << 30))
        return false;
    if (kinfer_qtype_is_block(t) && K % KINFER_QK != 0)
        return false;
    uintptr_t a = (uintptr_t)w;
    return t == KINFER_QTYPE_F32 ? a % 4 == 0 : a % 2 == 0;
}

size_t row_bytes(kinfer_qtype t, size_t K) {
    return K / kinfer_qtype_block_elems(t) * kinfer_qtype_block_bytes(t);
}

} // namespace

extern "C" cudaError_t kinfer_qgemv_cuda(const float *x, size_t M, size_t K, const void *w,
                                         kinfer_qtype wtype, size_t N, float *y, bool accumulate,
                                         cudaStream_t stream) {
    if (M > KINFER_QGEMV_CUDA_MAX_ROWS || !args_ok(w, wtype, K, N))
        return cudaErrorInvalidValue;
    if (M == 0 || N == 0)
        return cudaSuccess;
    if (!x || !w || !y)
        return cudaErrorInvalidValue;
    if (K == 0) /* an empty sum: zeros, or y as it is */
        return accumulate ? cudaSuccess : cudaMemsetAsync(y, 0, M * N * sizeof(float), stream);
    const unsigned char *wb = (const unsigned char *)w;
    size_t w_ld = row_bytes(wtype, K);
    unsigned m = (unsigned)M, k = (unsigned)K, n = (unsigned)N;
    if (!kinfer_qtype_is_block(wtype))
        return M == 1 ? launch_float<1>(x, m, k, wb, w_ld, wtype, n, y, accumulate, stream)
                      : launch_float<kTile>(x, m, k, wb, w_ld, wtype, n, y, accumulate, stream);
    /* rows are K floats apart with K a multiple of 32: aligned when x is */
    bool vec = (uintptr_t)x % 16 == 0;
    if (M == 1)
        return vec ? launch_block<1, true>(x, m, k, wb, w_ld, wtype, n, y, accumulate, stream)
                   : launch_block<1, false>(x, m, k, wb, w_ld, wtype, n, y, accumulate, stream);
    return vec ? launch_block<kTile, true>(x, m, k, wb, w_ld, wtype, n, y, accumulate, stream)
               : launch_block<kTile, false>(x, m, k, wb, w_ld, wtype, n, y, accumulate, stream);
}

extern "C" cudaError_t kinfer_dequantize_cuda(const void *w, kinfer_qtype wtype, size_t N, size_t K,
                                              void *out, bool out_f16, cudaStream_t stream) {
    if (!args_ok(w, wtype, K, N))
        return cudaErrorInvalidValue;
    if (N == 0 || K == 0)
        return cudaSuccess;
    if (!w || !out)
        return cudaErrorInvalidValue;
    const unsigned char *wb = (const unsigned char *)w;
    size_t w_ld = row_bytes(wtype, K);
    bool block = kinfer_qtype_is_block(wtype);
    unsigned grid = blocks_for(block ? N * (K / KINFER_QK) * 4 : N * K);
    if (block) {
        if (out_f16)
            dequant_block_kernel<__half>
                <<<grid, kDqThreads, 0, stream>>>(wb, w_ld, wtype, N, (unsigned)K, (__half *)out);
        else
            dequant_block_kernel<float>
                <<<grid, kDqThreads, 0, stream>>>(wb, w_ld, wtype, N, (unsigned)K, (float *)out);
    } else {
        if (out_f16)
            dequant_float_kernel<__half>
                <<<grid, kDqThreads, 0, stream>>>(wb, w_ld, wtype, N, (unsigned)K, (__half *)out);
        else
            dequant_float_kernel<float>
                <<<grid, kDqThreads, 0, stream>>>(wb, w_ld, wtype, N, (unsigned)K, (float *)out);
    }
    return cudaGetLastError();
}
