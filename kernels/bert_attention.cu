/* bert_attention.cu — self-attention of packed variable-length sequences:
 * one block per (sequence, head), one warp per query row at a time. The
 * warp keeps the scaled query and the row's scores in shared memory,
 * takes the max-subtracted softmax with warp reductions, then each lane
 * writes head-dimension columns of ctx = P V (coalesced). K and V are read
 * from global memory (L1/L2 hold a head's rows for the sequence lengths
 * BERT sees). Correctness first: no tensor cores, no K/V tiling. The C
 * twin is bert_attention_cpu (bert_ops_cpu.c). */
#include <cuda_runtime.h>

#include <math.h>
#include <stdint.h>

#include "bert_attention_cuda.h"
#include "bert_reduce.cuh"

namespace {

constexpr unsigned kWarps = 4;
constexpr unsigned kThreads = kWarps * 32;
constexpr size_t kDefaultSmem = 48u << 10; /* without the opt-in attribute */

/* Shared memory per warp: the query row (dh floats) and the scores of one
 * query row (max_len floats). */
size_t smem_bytes(size_t dh, size_t max_len) {
    return (size_t)kWarps * (dh + max_len) * sizeof(float);
}

__global__ void attention_kernel(const float *qkv, float *ctx, const uint32_t *seq_start,
                                 unsigned heads, unsigned hidden, unsigned dh, unsigned max_len,
                                 float scale) {
    extern __shared__ float smem[];
    const unsigned s = blockIdx.x / heads, h = blockIdx.x % heads;
    const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    float *sq = smem + (size_t)warp * (dh + max_len);
    float *sp = sq + dh;
    const size_t a = seq_start[s];
    const unsigned len = seq_start[s + 1] - seq_start[s];
    const size_t ld = 3 * (size_t)hidden;
    const float *kbase = qkv + a * ld + hidden + (size_t)h * dh;
    const float *vbase = qkv + a * ld + 2 * (size_t)hidden + (size_t)h * dh;
    for (unsigned i = warp; i < len; i += kWarps) {
        const float *q = qkv + (a + i) * ld + (size_t)h * dh;
        for (unsigned d = lane; d < dh; d += 32)
            sq[d] = q[d];
        __syncwarp();
        /* scores: scale * q . k_j, as the twin's sgemm with alpha = scale */
        float mx = -INFINITY;
        for (unsigned j = lane; j < len; j += 32) {
            const float *k = kbase + (size_t)j * ld;
            float dot = 0.0f;
            for (unsigned d = 0; d < dh; d++)
                dot = fmaf(sq[d], k[d], dot);
            float sc = scale * dot;
            sp[j] = sc;
            mx = fmaxf(mx, sc);
        }
        mx = bert_cuda::warp_max(mx);
        float sum = 0.0f;
        for (unsigned j = lane; j < len; j += 32) {
            float e = expf(sp[j] - mx);
            sp[j] = e;
            sum += e;
        }
        sum = bert_cuda::warp_sumf(sum);
        const float inv = 1.0f / sum;
        for (unsigned j = lane; j < len; j += 32)
            sp[j] *= inv; /* probabilities first, then P V, as the twin */
        __syncwarp();
        float *out = ctx + (a + i) * hidden + (size_t)h * dh;
        for (unsigned d = lane; d < dh; d += 32) {
            float acc = 0.0f;
            for (unsigned j = 0; j < len; j++)
                acc = fmaf(sp[j], vbase[(size_t)j * ld + d], acc);
            out[d] = acc;
        }
        __syncwarp(); /* sq/sp are rewritten for the warp's next row */
    }
}

} // namespace

extern "C" cudaError_t bert_attention_cuda(const float *qkv, float *ctx, const uint32_t *seq_start,
                                           size_t nseqs, size_t hidden, size_t heads,
                                           size_t max_len, cudaStream_t stream) {
    if (nseqs == 0)
        return cudaSuccess;
    if (!qkv || !ctx || !seq_start || heads == 0 || hidden == 0 || hidden % heads != 0 ||
        max_len == 0 || hidden > (1u << 20) || max_len > (1u << 20))
        return cudaErrorInvalidValue;
    size_t dh = hidden / heads;
    if (dh > BERT_ATTENTION_MAX_HEAD_DIM || nseqs * heads > (size_t)INT32_MAX)
        return cudaErrorInvalidValue;
    size_t smem = smem_bytes(dh, max_len);
    if (smem > kDefaultSmem) {
        int dev = 0, optin = 0;
        cudaError_t rc = cudaGetDevice(&dev);
        if (rc == cudaSuccess)
            rc = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
        if (rc != cudaSuccess)
            return rc;
        if (smem > (size_t)optin)
            return cudaErrorInvalidValue;
        rc = cudaFuncSetAttribute(attention_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  (int)smem);
        if (rc != cudaSuccess)
            return rc;
    }
    float scale = 1.0f / sqrtf((float)dh);
    attention_kernel<<<(unsigned)(nseqs * heads), kThreads, smem, stream>>>(
        qkv, ctx, seq_start, (unsigned)heads, (unsigned)hidden, (unsigned)dh, (unsigned)max_len,
        scale);
    return cudaGetLastError();
}
