/* bert_layernorm.cu — the encoder's LayerNorm kernels: embedding gather +
 * LayerNorm, and residual (+ bias) + LayerNorm, one block per row. The C
 * twins are bert_embed_cpu and bert_add_layernorm_cpu (bert_layernorm_cpu.c);
 * both sides use the same formula (bert_reduce.cuh). No GEMM here. */
#include <cuda_runtime.h>

#include <stdint.h>

#include "bert_layernorm_cuda.h"
#include "bert_reduce.cuh"

namespace {

using bert_cuda::kRowThreads;

/* The grid's x dimension may hold 2^31 - 1 blocks; rows beyond that are
 * strided (no real batch gets there, but the launcher must not truncate). */
constexpr size_t kMaxGrid = 1u << 30;

__global__ void add_layernorm_kernel(float *x, const float *res, const float *res_bias,
                                     const float *g, const float *b, size_t rows, unsigned cols,
                                     float eps) {
    __shared__ double scratch[32];
    for (size_t r = blockIdx.x; r < rows; r += gridDim.x) {
        float *row = x + r * cols;
        const float *rr = res ? res + r * cols : nullptr;
        double sum = 0.0;
        for (unsigned c = threadIdx.x; c < cols; c += blockDim.x) {
            float v = row[c];
            if (rr) {
                float t = rr[c];
                if (res_bias)
                    t += res_bias[c]; /* the twin adds the bias to res first */
                v += t;
            }
            row[c] = v;
            sum += v;
        }
        bert_cuda::layernorm_row(row, sum, g, b, cols, eps, scratch);
    }
}

__global__ void embed_kernel(float *x, const int32_t *ids, const int32_t *pos, const int32_t *types,
                             size_t ntokens, const float *word, const float *posemb,
                             const float *typeemb, const float *g, const float *b, unsigned hidden,
                             float eps) {
    __shared__ double scratch[32];
    for (size_t t = blockIdx.x; t < ntokens; t += gridDim.x) {
        float *row = x + t * hidden;
        const float *w = word + (size_t)ids[t] * hidden;
        const float *p = posemb + (size_t)pos[t] * hidden;
        const float *ty = typeemb + (size_t)types[t] * hidden;
        double sum = 0.0;
        for (unsigned c = threadIdx.x; c < hidden; c += blockDim.x) {
            float v = w[c] + ty[c] + p[c]; /* the twin's (transformers') order */
            row[c] = v;
            sum += v;
        }
        bert_cuda::layernorm_row(row, sum, g, b, hidden, eps, scratch);
    }
}

unsigned grid_for(size_t rows) {
    return (unsigned)(rows < kMaxGrid ? rows : kMaxGrid);
}

} // namespace

extern "C" cudaError_t bert_add_layernorm_cuda(float *x, const float *res, const float *g,
                                               const float *b, size_t rows, size_t cols, float eps,
                                               const float *res_bias, cudaStream_t stream) {
    if (rows == 0)
        return cudaSuccess;
    if (!x || !g || !b || cols == 0 || cols > UINT32_MAX || (res_bias && !res))
        return cudaErrorInvalidValue;
    add_layernorm_kernel<<<grid_for(rows), kRowThreads, 0, stream>>>(x, res, res_bias, g, b, rows,
                                                                     (unsigned)cols, eps);
    return cudaGetLastError();
}

extern "C" cudaError_t bert_embed_cuda(float *x, const int32_t *ids, const int32_t *pos,
                                       const int32_t *types, size_t ntokens, const float *word,
                                       const float *posemb, const float *typeemb, const float *g,
                                       const float *b, size_t hidden, float eps,
                                       cudaStream_t stream) {
    if (ntokens == 0)
        return cudaSuccess;
    if (!x || !ids || !pos || !types || !word || !posemb || !typeemb || !g || !b || hidden == 0 ||
        hidden > UINT32_MAX)
        return cudaErrorInvalidValue;
    embed_kernel<<<grid_for(ntokens), kRowThreads, 0, stream>>>(
        x, ids, pos, types, ntokens, word, posemb, typeemb, g, b, (unsigned)hidden, eps);
    return cudaGetLastError();
}
