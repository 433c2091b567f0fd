/* paged_attention.cu — the paged KV cache on CUDA (paged_kv_cuda.h): the
 * K/V write of a step's fed tokens and causal GQA attention over each
 * sequence's blocks. Twins: kinfer_kv_write_cpu (paged_kv_cpu.c) and
 * kinfer_paged_attention_cpu (paged_attention_cpu.c).
 *
 * Attention: one block per (fed token, kv head, chunk of up to 8 of its
 * query heads); the block's 4 warps take the sequence's KV blocks in turn,
 * lanes over head dims, each warp keeping an online softmax (running max,
 * sum, weighted V) per query head; the warps' states are merged at the end
 * in shared memory. Exponentials are kinfer_exp_fast, as the twin's. Decode
 * first: prefill tokens are attended one query row per block too (correct,
 * not tiled). */
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "kinfer_hd.h"
#include "paged_kv_cuda.h"

namespace {

constexpr unsigned kWarps = 4;
constexpr unsigned kHeads = 8; /* query heads per block */

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* The sequence holding `row` (rows packed in sequence order). */
__device__ __forceinline__ const kinfer_kv_seq *seq_of(const kinfer_kv_seq *seqs, unsigned nseqs,
                                                       unsigned row) {
    unsigned lo = 0, hi = nseqs;
    while (hi - lo > 1) {
        unsigned mid = (lo + hi) / 2;
        if (seqs[mid].row <= row)
            lo = mid;
        else
            hi = mid;
    }
    return &seqs[lo];
}

__device__ __forceinline__ float load(const float *p) {
    return *p;
}
__device__ __forceinline__ float load(const __half *p) {
    return __half2float(*p);
}
__device__ __forceinline__ void store(float *p, float v) {
    *p = v;
}
__device__ __forceinline__ void store(__half *p, float v) {
    *p = __float2half_rn(v);
}

template <typename E>
__global__ void kv_write_kernel(kinfer_kv_view kv, const float *__restrict__ k,
                                const float *__restrict__ v, size_t ld,
                                const kinfer_kv_seq *__restrict__ seqs, unsigned nseqs,
                                const uint32_t *__restrict__ blocks) {
    const unsigned row = blockIdx.x, h = blockIdx.y;
    const kinfer_kv_seq *s = seq_of(seqs, nseqs, row);
    const unsigned p = s->pos + (row - s->row), T = kv.block_tokens, hd = kv.head_dim;
    const uint32_t blk = blocks[s->block0 + p / T];
    if (blk >= kv.nblocks)
        return; /* never written outside the pool */
    unsigned char *b = kv.base + (size_t)blk * kv.block_bytes;
    E *kd = (E *)(void *)b + ((size_t)h * T + p % T) * hd;
    E *vd = (E *)(void *)(b + kv.v_off) + ((size_t)h * T + p % T) * hd;
    const float *ks = k + (size_t)row * ld + (size_t)h * hd,
                *vs = v + (size_t)row * ld + (size_t)h * hd;
    for (unsigned d = threadIdx.x; d < hd; d += blockDim.x) {
        store(kd + d, ks[d]);
        store(vd + d, vs[d]);
    }
}

/* Shared memory of one attention block, in floats. */
size_t attn_smem_floats(unsigned hd) {
    return (size_t)kHeads * hd + 2u * kWarps * kHeads + (size_t)kWarps * kHeads * hd;
}

/* DPL: head dims per lane (hd <= 32 * DPL). */
template <typename E, unsigned DPL>
__global__ void __launch_bounds__(kWarps * 32)
    attention_kernel(kinfer_kv_view kv, const float *q, size_t ldq, float *out, size_t ldo,
                     unsigned grp, unsigned hchunks, const kinfer_kv_seq *__restrict__ seqs,
                     unsigned nseqs, const uint32_t *__restrict__ blocks, float scale) {
    extern __shared__ float smem[];
    const unsigned hd = kv.head_dim, T = kv.block_tokens;
    const unsigned row = blockIdx.x, g = blockIdx.y / hchunks, hc = blockIdx.y % hchunks;
    const unsigned h0 = g * grp + hc * kHeads;
    const unsigned nh = grp - hc * kHeads < kHeads ? grp - hc * kHeads : kHeads;
    const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    float *qs = smem;                     /* [kHeads][hd] */
    float *mw = qs + (size_t)kHeads * hd; /* [kWarps][kHeads] */
    float *lw = mw + kWarps * kHeads;     /* [kWarps][kHeads] */
    float *aw = lw + kWarps * kHeads;     /* [kWarps][kHeads][hd] */
    const kinfer_kv_seq *s = seq_of(seqs, nseqs, row);
    const unsigned p = s->pos + (row - s->row); /* sees positions [0, p] */
    for (unsigned i = threadIdx.x; i < nh * hd; i += blockDim.x)
        qs[i] = q[(size_t)row * ldq + (size_t)h0 * hd + i];
    __syncthreads();
    float m[kHeads], l[kHeads], acc[kHeads][DPL];
#pragma unroll
    for (unsigned i = 0; i < kHeads; i++) {
        m[i] = -INFINITY;
        l[i] = 0.0f;
#pragma unroll
        for (unsigned c = 0; c < DPL; c++)
            acc[i][c] = 0.0f;
    }
    int bad = 0;
    const unsigned nblk = p / T + 1;
    for (unsigned b = warp; b < nblk; b += kWarps) {
        const uint32_t blk = blocks[s->block0 + b];
        if (blk >= kv.nblocks) {
            bad = 1;
            continue;
        }
        const unsigned char *base = kv.base + (size_t)blk * kv.block_bytes;
        const E *kt = (const E *)(const void *)base + (size_t)g * T * hd;
        const E *vt = (const E *)(const void *)(base + kv.v_off) + (size_t)g * T * hd;
        const unsigned nt = p + 1 - b * T < T ? p + 1 - b * T : T;
        for (unsigned t = 0; t < nt; t++) {
            float kd[DPL], vd[DPL];
#pragma unroll
            for (unsigned c = 0; c < DPL; c++) {
                unsigned d = lane + 32 * c;
                kd[c] = d < hd ? load(kt + (size_t)t * hd + d) : 0.0f;
                vd[c] = d < hd ? load(vt + (size_t)t * hd + d) : 0.0f;
            }
#pragma unroll
            for (unsigned i = 0; i < kHeads; i++) {
                if (i >= nh)
                    break;
                float part = 0.0f;
#pragma unroll
                for (unsigned c = 0; c < DPL; c++) {
                    unsigned d = lane + 32 * c;
                    if (d < hd)
                        part = fmaf(qs[i * hd + d], kd[c], part);
                }
                const float sc = scale * warp_sum(part);
                const float mn = fmaxf(m[i], sc);
                const float corr = kinfer_exp_fast(m[i] - mn), e = kinfer_exp_fast(sc - mn);
                l[i] = l[i] * corr + e;
#pragma unroll
                for (unsigned c = 0; c < DPL; c++)
                    acc[i][c] = acc[i][c] * corr + e * vd[c];
                m[i] = mn;
            }
        }
    }
#pragma unroll
    for (unsigned i = 0; i < kHeads; i++) {
        if (i >= nh)
            break;
        if (lane == 0) {
            mw[warp * kHeads + i] = m[i];
            lw[warp * kHeads + i] = l[i];
        }
#pragma unroll
        for (unsigned c = 0; c < DPL; c++) {
            unsigned d = lane + 32 * c;
            if (d < hd)
                aw[((size_t)warp * kHeads + i) * hd + d] = acc[i][c];
        }
    }
    const int anybad = __syncthreads_or(bad);
    for (unsigned idx = threadIdx.x; idx < nh * hd; idx += blockDim.x) {
        const unsigned i = idx / hd, d = idx % hd;
        float M = -INFINITY;
        for (unsigned w = 0; w < kWarps; w++)
            M = fmaxf(M, mw[w * kHeads + i]);
        float L = 0.0f, A = 0.0f;
        for (unsigned w = 0; w < kWarps; w++) {
            float f = kinfer_exp_fast(mw[w * kHeads + i] - M);
            L += lw[w * kHeads + i] * f;
            A += aw[((size_t)w * kHeads + i) * hd + d] * f;
        }
        out[(size_t)row * ldo + (size_t)(h0 + i) * hd + d] =
            anybad ? __int_as_float(0x7fc00000) : A / L;
    }
}

template <typename E, unsigned DPL>
cudaError_t launch_attention(const kinfer_kv_view *kv, const float *q, size_t ldq, float *out,
                             size_t ldo, unsigned grp, const kinfer_kv_seq *seqs, unsigned nseqs,
                             const uint32_t *blocks, float scale, size_t rows,
                             cudaStream_t stream) {
    unsigned hchunks = (grp + kHeads - 1) / kHeads;
    dim3 grid((unsigned)rows, kv->n_kv_head * hchunks);
    size_t smem = attn_smem_floats(kv->head_dim) * sizeof(float);
    attention_kernel<E, DPL><<<grid, kWarps * 32, smem, stream>>>(
        *kv, q, ldq, out, ldo, grp, hchunks, seqs, nseqs, blocks, scale);
    return cudaGetLastError();
}

template <typename E>
cudaError_t attention_for(const kinfer_kv_view *kv, const float *q, size_t ldq, float *out,
                          size_t ldo, unsigned grp, const kinfer_kv_seq *seqs, unsigned nseqs,
                          const uint32_t *blocks, float scale, size_t rows, cudaStream_t stream) {
    unsigned hd = kv->head_dim;
    if (hd <= 32)
        return launch_attention<E, 1>(kv, q, ldq, out, ldo, grp, seqs, nseqs, blocks, scale, rows,
                                      stream);
    if (hd <= 64)
        return launch_attention<E, 2>(kv, q, ldq, out, ldo, grp, seqs, nseqs, blocks, scale, rows,
                                      stream);
    if (hd <= 128)
        return launch_attention<E, 4>(kv, q, ldq, out, ldo, grp, seqs, nseqs, blocks, scale, rows,
                                      stream);
    return launch_attention<E, 8>(kv, q, ldq, out, ldo, grp, seqs, nseqs, blocks, scale, rows,
                                  stream);
}

bool view_ok(const kinfer_kv_view *kv) {
    return kv && kv->base && kv->head_dim >= 1 && kv->head_dim <= KINFER_KV_MAX_HEAD_DIM &&
           kv->block_tokens >= 1 && kv->block_tokens <= KINFER_KV_MAX_BLOCK_TOKENS &&
           kv->n_kv_head >= 1 && kv->n_kv_head <= 65535 &&
           (kv->dtype == KINFER_KV_F32 || kv->dtype == KINFER_KV_F16);
}

} // namespace

extern "C" cudaError_t kinfer_kv_write_cuda(const kinfer_kv_view *kv, const float *k,
                                            const float *v, size_t ld, const kinfer_kv_seq *seqs,
                                            size_t nseqs, const uint32_t *blocks, size_t rows,
                                            cudaStream_t stream) {
    if (rows == 0)
        return cudaSuccess;
    if (!view_ok(kv) || !k || !v || !seqs || !blocks || nseqs == 0 || rows > 0x7fffffffu ||
        nseqs > 0x7fffffffu || ld < (size_t)kv->n_kv_head * kv->head_dim)
        return cudaErrorInvalidValue;
    dim3 grid((unsigned)rows, kv->n_kv_head);
    unsigned threads = kv->head_dim < 128 ? 64 : 128;
    if (kv->dtype == KINFER_KV_F16)
        kv_write_kernel<__half>
            <<<grid, threads, 0, stream>>>(*kv, k, v, ld, seqs, (unsigned)nseqs, blocks);
    else
        kv_write_kernel<float>
            <<<grid, threads, 0, stream>>>(*kv, k, v, ld, seqs, (unsigned)nseqs, blocks);
    return cudaGetLastError();
}

extern "C" cudaError_t kinfer_paged_attention_cuda(const kinfer_kv_view *kv, const float *q,
                                                   size_t ldq, float *out, size_t ldo,
                                                   size_t n_head, const kinfer_kv_seq *seqs,
                                                   size_t nseqs, const uint32_t *blocks,
                                                   float scale, size_t rows, cudaStream_t stream) {
    if (rows == 0)
        return cudaSuccess;
    if (!view_ok(kv) || !q || !out || !seqs || !blocks || nseqs == 0 || rows > 0x7fffffffu ||
        nseqs > 0x7fffffffu || n_head == 0 || n_head % kv->n_kv_head != 0 ||
        ldq < n_head * kv->head_dim || ldo < n_head * kv->head_dim)
        return cudaErrorInvalidValue;
    unsigned grp = (unsigned)(n_head / kv->n_kv_head);
    if ((size_t)kv->n_kv_head * ((grp + kHeads - 1) / kHeads) > 65535)
        return cudaErrorInvalidValue;
    if (kv->dtype == KINFER_KV_F16)
        return attention_for<__half>(kv, q, ldq, out, ldo, grp, seqs, (unsigned)nseqs, blocks,
                                     scale, rows, stream);
    return attention_for<float>(kv, q, ldq, out, ldo, grp, seqs, (unsigned)nseqs, blocks, scale,
                                rows, stream);
}
