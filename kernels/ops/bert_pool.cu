/* bert_pool.cu — sentence pooling over packed sequences (one block per
 * sequence, threads over the hidden columns) and per-row L2 normalisation
 * (one block per row). Sums in double, as the C twins bert_pool_cpu and
 * bert_l2_normalize_cpu (bert_pool_cpu.c) do. Not here: the classifier. */
#include <cuda_runtime.h>

#include <math.h>
#include <stdint.h>

#include "bert_pool_cuda.h"
#include "bert_reduce.cuh"

namespace {

using bert_cuda::kRowThreads;
constexpr size_t kMaxGrid = 1u << 30;

/* Must match BERT_POOL_* in bert_model.h (a C header with more than the
 * device needs): cls, max, mean, mean_sqrt_len. */
constexpr unsigned kPoolCls = 1u << 0, kPoolMax = 1u << 1, kPoolMean = 1u << 2,
                   kPoolMeanSqrt = 1u << 3;

__global__ void pool_kernel(const float *x, const uint32_t *seq_start, size_t nseqs,
                            unsigned hidden, unsigned modes, unsigned k, float *out) {
    for (size_t s = blockIdx.x; s < nseqs; s += gridDim.x) {
        const size_t a = seq_start[s];
        const unsigned len = seq_start[s + 1] - seq_start[s];
        const float *xs = x + a * hidden;
        for (unsigned c = threadIdx.x; c < hidden; c += blockDim.x) {
            float *o = out + s * k * hidden;
            if (modes & kPoolCls) {
                o[c] = xs[c];
                o += hidden;
            }
            if (modes & kPoolMax) {
                float m = xs[c];
                for (unsigned t = 1; t < len; t++)
                    m = fmaxf(m, xs[(size_t)t * hidden + c]);
                o[c] = m;
                o += hidden;
            }
            if (modes & (kPoolMean | kPoolMeanSqrt)) {
                double sum = 0.0;
                for (unsigned t = 0; t < len; t++)
                    sum += xs[(size_t)t * hidden + c];
                if (modes & kPoolMean)
                    o[c] = (float)(sum / (double)len);
                if (modes & kPoolMeanSqrt)
                    o[c + ((modes & kPoolMean) ? hidden : 0)] = (float)(sum / sqrt((double)len));
            }
        }
    }
}

__global__ void l2_normalize_kernel(float *rows, size_t nrows, unsigned n, const uint8_t *flags) {
    __shared__ double scratch[32];
    for (size_t r = blockIdx.x; r < nrows; r += gridDim.x) {
        if (flags && !flags[r])
            continue; /* uniform per block: no thread reaches a barrier alone */
        float *row = rows + r * n;
        double ss = 0.0;
        for (unsigned c = threadIdx.x; c < n; c += blockDim.x)
            ss += (double)row[c] * row[c];
        double norm = sqrt(bert_cuda::block_sum(ss, scratch));
        float inv = (float)(1.0 / (norm > 1e-12 ? norm : 1e-12));
        for (unsigned c = threadIdx.x; c < n; c += blockDim.x)
            row[c] *= inv;
    }
}

unsigned grid_for(size_t rows) {
    return (unsigned)(rows < kMaxGrid ? rows : kMaxGrid);
}

} // namespace

extern "C" cudaError_t bert_pool_cuda(const float *x, const uint32_t *seq_start, size_t nseqs,
                                      size_t hidden, unsigned modes, float *out,
                                      cudaStream_t stream) {
    if (nseqs == 0)
        return cudaSuccess;
    const unsigned known = kPoolCls | kPoolMax | kPoolMean | kPoolMeanSqrt;
    if (!x || !seq_start || !out || hidden == 0 || hidden > UINT32_MAX / 4 || modes == 0 ||
        (modes & ~known) != 0)
        return cudaErrorInvalidValue;
    unsigned k = (unsigned)__builtin_popcount(modes);
    pool_kernel<<<grid_for(nseqs), kRowThreads, 0, stream>>>(x, seq_start, nseqs, (unsigned)hidden,
                                                             modes, k, out);
    return cudaGetLastError();
}

extern "C" cudaError_t bert_l2_normalize_cuda(float *rows, size_t nrows, size_t n,
                                              const uint8_t *flags, cudaStream_t stream) {
    if (nrows == 0)
        return cudaSuccess;
    if (!rows || n == 0 || n > UINT32_MAX)
        return cudaErrorInvalidValue;
    l2_normalize_kernel<<<grid_for(nrows), kRowThreads, 0, stream>>>(rows, nrows, (unsigned)n,
                                                                     flags);
    return cudaGetLastError();
}
