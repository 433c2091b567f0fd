/* bert_attention.cu — self-attention of packed variable-length sequences:
 * one block per (sequence, head), one warp per query row at a time. K and
 * V of the (sequence, head) are staged once in shared memory when they fit
 * (with Hopper's 227 KiB opt-in: up to 781 tokens at head dim 32, 417 at
 * 64), else read from global memory. The warp keeps the query and the
 * row's scores in shared memory, takes the max-subtracted softmax with warp
 * reductions, then each lane writes head-dimension columns of ctx = P V.
 * Correctness first: FP32 on CUDA cores, no tensor cores, no flash-style
 * tiling of long sequences.
 * The C twin is bert_attention_cpu (bert_attention_cpu.c). */
#include <cuda_runtime.h>

#include <math.h>
#include <stdint.h>

#include "bert_attention_cuda.h"
#include "bert_reduce.cuh"
#include "kinfer_hd.h"

namespace {

constexpr unsigned kWarps = 8;
constexpr unsigned kThreads = kWarps * 32;
constexpr size_t kDefaultSmem = 48u << 10; /* without the opt-in attribute */

/* Shared memory per warp: the query row (dh floats) and the scores of one
 * query row (max_len floats). */
size_t warp_smem(size_t dh, size_t max_len) {
    return (size_t)kWarps * (dh + max_len) * sizeof(float);
}

/* K and V of one (sequence, head) staged in shared memory, rows padded to
 * dh + 1 floats so that 32 lanes reading 32 different key rows at the same
 * column hit 32 different banks. */
size_t kv_smem(size_t dh, size_t max_len) {
    return 2 * max_len * (dh + 1) * sizeof(float);
}

/* KV: K and V are first copied to shared memory by the whole block (when
 * they fit); else every read goes to global memory (L1/L2). */
template <bool KV>
__global__ void attention_kernel(const float *qkv, float *ctx, const uint32_t *seq_start,
                                 unsigned heads, unsigned hidden, unsigned dh, unsigned max_len,
                                 float scale) {
    extern __shared__ float smem[];
    const unsigned s = blockIdx.x / heads, h = blockIdx.x % heads;
    const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    const unsigned kvld = dh + 1;
    float *sk = smem, *sv = smem + (size_t)max_len * kvld;
    float *sq = smem + (KV ? 2 * (size_t)max_len * kvld : 0) + (size_t)warp * (dh + max_len);
    float *sp = sq + dh;
    const size_t a = seq_start[s];
    const unsigned len = seq_start[s + 1] - seq_start[s];
    const size_t ld = 3 * (size_t)hidden;
    const float *kbase = qkv + a * ld + hidden + (size_t)h * dh;
    const float *vbase = qkv + a * ld + 2 * (size_t)hidden + (size_t)h * dh;
    if (KV) {
        for (unsigned idx = threadIdx.x; idx < len * dh; idx += blockDim.x) {
            unsigned j = idx / dh, d = idx % dh;
            sk[j * kvld + d] = kbase[(size_t)j * ld + d];
            sv[j * kvld + d] = vbase[(size_t)j * ld + d];
        }
        __syncthreads(); /* every thread gets here: no early return above */
    }
    for (unsigned i = warp; i < len; i += kWarps) {
        const float *q = qkv + (a + i) * ld + (size_t)h * dh;
        for (unsigned d = lane; d < dh; d += 32)
            sq[d] = q[d];
        __syncwarp();
        /* scores: scale * q . k_j, as the twin's sgemm with alpha = scale */
        float mx = -INFINITY;
        for (unsigned j = lane; j < len; j += 32) {
            const float *k = KV ? sk + (size_t)j * kvld : kbase + (size_t)j * ld;
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
            float e = kinfer_exp_fast(sp[j] - mx); /* the twin's exp (kinfer_hd.h) */
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
                acc = fmaf(sp[j], KV ? sv[(size_t)j * kvld + d] : vbase[(size_t)j * ld + d], acc);
            out[d] = acc;
        }
        __syncwarp(); /* sq/sp are rewritten for the warp's next row */
    }
}

/* The opt-in shared memory limit of the current device (once per launch
 * that needs more than the default; cheap driver queries). */
cudaError_t smem_optin(size_t *limit) {
    int dev = 0, optin = 0;
    cudaError_t rc = cudaGetDevice(&dev);
    if (rc == cudaSuccess)
        rc = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
    *limit = rc == cudaSuccess ? (size_t)optin : 0;
    return rc;
}

template <bool KV> cudaError_t allow_smem(size_t bytes) {
    if (bytes <= kDefaultSmem)
        return cudaSuccess;
    return cudaFuncSetAttribute(attention_kernel<KV>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                (int)bytes);
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
    size_t wsmem = warp_smem(dh, max_len), kvsmem = kv_smem(dh, max_len);
    size_t limit = kDefaultSmem;
    if (wsmem + kvsmem > kDefaultSmem) {
        cudaError_t rc = smem_optin(&limit);
        if (rc != cudaSuccess)
            return rc;
    }
    float scale = 1.0f / sqrtf((float)dh);
    unsigned grid = (unsigned)(nseqs * heads);
    if (wsmem + kvsmem <= limit) {
        cudaError_t rc = allow_smem<true>(wsmem + kvsmem);
        if (rc != cudaSuccess)
            return rc;
        attention_kernel<true><<<grid, kThreads, wsmem + kvsmem, stream>>>(
            qkv, ctx, seq_start, (unsigned)heads, (unsigned)hidden, (unsigned)dh, (unsigned)max_len,
            scale);
    } else {
        if (wsmem > limit)
            return cudaErrorInvalidValue;
        cudaError_t rc = allow_smem<false>(wsmem);
        if (rc != cudaSuccess)
            return rc;
        attention_kernel<false><<<grid, kThreads, wsmem, stream>>>(
            qkv, ctx, seq_start, (unsigned)heads, (unsigned)hidden, (unsigned)dh, (unsigned)max_len,
            scale);
    }
    return cudaGetLastError();
}
