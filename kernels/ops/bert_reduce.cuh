/* bert_reduce.cuh — block-wide sum/max reductions shared by the bert row
 * kernels (embedding, LayerNorm, pooling, L2 normalisation). Device code
 * only, included by .cu files; no kernel or launcher lives here. The sums
 * run in double, as the C twins accumulate in double (bert_ops_cpu.c). */
#ifndef KINFER_BERT_REDUCE_CUH
#define KINFER_BERT_REDUCE_CUH

#include <cuda_runtime.h>

namespace bert_cuda {

/* Threads per block of the row kernels: whole warps, at most 32 of them. */
constexpr unsigned kRowThreads = 128;

__device__ __forceinline__ double warp_sum(double v) {
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

__device__ __forceinline__ float warp_sumf(float v) {
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* Sum over the block; every thread gets the result. scratch: 32 doubles
 * of shared memory. blockDim.x must be a multiple of 32. */
__device__ __forceinline__ double block_sum(double v, double *scratch) {
    const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    v = warp_sum(v);
    __syncthreads(); /* scratch may still be read by the previous reduction */
    if (lane == 0)
        scratch[warp] = v;
    __syncthreads();
    const unsigned nwarps = blockDim.x >> 5;
    double r = lane < nwarps ? scratch[lane] : 0.0;
    return warp_sum(r);
}

/* LayerNorm of one row in place, by the whole block, exactly the twin's
 * formula (bert_add_layernorm_cpu): mean and biased variance in double,
 * then (x - (float)mean) * (float)(1 / sqrt(var + eps)) * g + b in float.
 * `sum` is this thread's part of the row sum, already accumulated by the
 * caller while it wrote the row; each thread touches only the columns
 * c = threadIdx.x + k * blockDim.x, so no barrier is needed between the
 * caller's writes and the reads here. */
__device__ __forceinline__ void layernorm_row(float *row, double sum, const float *g,
                                              const float *b, unsigned cols, float eps,
                                              double *scratch) {
    double mean = block_sum(sum, scratch) / (double)cols;
    double var = 0.0;
    for (unsigned c = threadIdx.x; c < cols; c += blockDim.x) {
        double d = (double)row[c] - mean;
        var += d * d;
    }
    var = block_sum(var, scratch);
    float inv = (float)(1.0 / sqrt(var / (double)cols + (double)eps));
    float fm = (float)mean;
    for (unsigned c = threadIdx.x; c < cols; c += blockDim.x)
        row[c] = (row[c] - fm) * inv * g[c] + b[c];
}

} // namespace bert_cuda

#endif
