/* qmatmul_avx512.c — the AVX-512 (F/BW/VL/VNNI) path of qmatmul: Ice
 * Lake, Sapphire Rapids, Zen 4. Same arithmetic as qmatmul_portable.c, 16
 * lanes wide: Q8 mode takes two blocks per vpdpbusd (unsigned 4-bit codes,
 * or |w| for Q8_0 with the sign moved onto X, times int8 activations), F32
 * mode widens a block's 16 bytes of nibbles to two vectors of 16 FP32.
 * One W row per pass, up to four X rows reusing it. The activation prep is
 * the AVX2 one (bit-identical to the portable one). */
#include "ops/qmatmul_internal.h"

#ifdef KINFER_QMM_X86
#include <immintrin.h>
#include <math.h>

#define TGT __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#define INL static inline __attribute__((always_inline)) TGT

INL float f16(uint16_t h) {
    return _cvtsh_ss(h);
}

/* 16 bytes of nibbles -> 32 bytes 0..15 in element order. */
INL __m256i nibbles(const uint8_t *qs) {
    __m128i v = _mm_loadu_si128((const __m128i *)qs);
    __m256i t = _mm256_inserti128_si256(_mm256_castsi128_si256(v), _mm_srli_epi16(v, 4), 1);
    return _mm256_and_si256(t, _mm256_set1_epi8(0x0f));
}

/* Two floats (any alignment) in the low half. */
INL __m128 load2f(const float *p) {
    return _mm_castsi128_ps(_mm_loadl_epi64((const __m128i *)(const void *)p));
}

INL __m512i join(__m256i lo, __m256i hi) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

/* The 32 codes of block j as unsigned bytes (Q8_0: |w|). */
INL __m256i codes(kinfer_qtype t, const unsigned char *wr, size_t j) {
    if (t == KINFER_QTYPE_Q4_1)
        return nibbles(((const kinfer_block_q4_1 *)wr + j)->qs);
    if (t == KINFER_QTYPE_Q4_0)
        return nibbles(((const kinfer_block_q4_0 *)wr + j)->qs);
    return _mm256_loadu_si256((const __m256i *)((const kinfer_block_q8_0 *)wr + j)->qs);
}

/* Software prefetch of the W rows QMM_PF_TILES tiles ahead, spread over
 * the current tile's iterations: a tile's rows are short runs (360 bytes
 * at K = 576) read four at a time, which the hardware prefetchers follow
 * late; at decode the loads otherwise stall on memory. */
#ifndef QMM_PF_TILES
#define QMM_PF_TILES 2
#endif
typedef struct pf_state {
    const char *base; /* NULL: the tile ahead is past W's end */
    size_t per;       /* bytes covered per iteration, a multiple of 64 */
    int lines;
} pf_state;

INL pf_state pf_init(const qmm_call *c, const unsigned char *wr, int nr, size_t iters) {
    pf_state p = {NULL, 0, 0};
    size_t tile = (size_t)nr * c->w_ld;
    const unsigned char *end = c->w + c->N * c->w_ld, *ahead = wr + QMM_PF_TILES * tile;
    if (iters == 0 || ahead + tile > end)
        return p;
    p.base = (const char *)ahead;
    p.per = ((tile + iters - 1) / iters + 63) & ~(size_t)63;
    p.lines = (int)(p.per / 64);
    return p;
}

INL void pf_step(const pf_state *p, size_t it) {
    if (!p->base)
        return;
    for (int l = 0; l < p->lines; l++)
        _mm_prefetch(p->base + it * p->per + (size_t)l * 64, _MM_HINT_T0);
}

/* ---- Q8 mode ------------------------------------------------------------ */
/* [d_j, m_j, d_j+1, m_j+1] of two Q4_1 blocks, or [d_j, ?, d_j+1, ?] of
 * Q4_0 / Q8_0 ones (d and m lead every block). */
INL __m128 pair_hdr(const unsigned char *b, size_t bytes) {
    int a0, a1;
    __builtin_memcpy(&a0, b, 4);
    __builtin_memcpy(&a1, b + bytes, 4);
    return _mm_cvtph_ps(_mm_unpacklo_epi32(_mm_cvtsi32_si128(a0), _mm_cvtsi32_si128(a1)));
}

/* Lanes 0..7 take h[lo], lanes 8..15 h[hi]. */
INL __m512 spread(__m128 h, int lo, int hi) {
    const __m512i idx =
        _mm512_setr_epi32(lo, lo, lo, lo, lo, lo, lo, lo, hi, hi, hi, hi, hi, hi, hi, hi);
    return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(h));
}

/* res[r * 4 + i] = W row r (of nr at wr, w_ld apart) . X row m0 + i. Two
 * blocks per step: 16 int32 lanes, 0..7 for block j, 8..15 for j + 1. */
INL void tile_q8(const qmm_call *c, const unsigned char *wr, const int nr, size_t m0, const int mt,
                 float *res) {
    __m512 acc[4][4];
    __m128 extra[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++)
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            acc[r][i] = _mm512_setzero_ps();
            extra[r][i] = _mm_setzero_ps();
        }
    const size_t nb = c->nb, ld = c->xq_ld, wld = c->w_ld;
    const int8_t *xq = c->xq + m0 * ld;
    const float *xd = c->xd + m0 * nb, *xs = c->xs + m0 * nb;
    const kinfer_qtype t = c->wtype;
    const size_t bytes = kinfer_qtype_block_bytes(t);
    const pf_state pf = pf_init(c, wr, nr, nb / 2);
    size_t j = 0;
    for (; j + 2 <= nb; j += 2) {
        pf_step(&pf, j / 2);
        __m512i xv[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(),
                         _mm512_setzero_si512()};
        __m512 xdv[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                         _mm512_setzero_ps()};
        __m128 xsv[4] = {_mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps()};
#pragma GCC unroll 4
        for (int i = 0; i < mt; i++) {
            xv[i] = _mm512_loadu_si512((const void *)(xq + i * ld + j * KINFER_QK));
            __m128 d2 = load2f(xd + i * nb + j);
            xdv[i] = spread(d2, 0, 1);
            xsv[i] = load2f(xs + i * nb + j);
        }
#pragma GCC unroll 4
        for (int r = 0; r < nr; r++) {
            const unsigned char *w = wr + r * wld;
            __m512i u = join(codes(t, w, j), codes(t, w, j + 1));
            __mmask64 neg = 0;
            if (t == KINFER_QTYPE_Q8_0) {
                neg = _mm512_movepi8_mask(u);
                u = _mm512_abs_epi8(u);
            }
            __m128 h = pair_hdr(w + j * bytes, bytes);
            __m512 dv = spread(h, 0, 2);
            /* [m_j, m_j+1] (Q4_1) or [-8 d_j, -8 d_j+1] (Q4_0): times the X sums */
            __m128 mm =
                t == KINFER_QTYPE_Q4_1
                    ? _mm_shuffle_ps(h, h, _MM_SHUFFLE(3, 3, 3, 1))
                    : _mm_mul_ps(_mm_shuffle_ps(h, h, _MM_SHUFFLE(2, 2, 2, 0)), _mm_set1_ps(-8.0f));
#pragma GCC unroll 4
            for (int i = 0; i < mt; i++) {
                __m512i x = xv[i];
                if (t == KINFER_QTYPE_Q8_0)
                    x = _mm512_mask_sub_epi8(x, neg, _mm512_setzero_si512(), x);
                __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, x);
                acc[r][i] =
                    _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(dv, xdv[i]), acc[r][i]);
                if (t != KINFER_QTYPE_Q8_0)
                    extra[r][i] = _mm_fmadd_ps(mm, xsv[i], extra[r][i]);
            }
        }
    }
    for (; j < nb; j++) { /* odd block count: the last block alone, 8 lanes */
#pragma GCC unroll 4
        for (int r = 0; r < nr; r++) {
            const unsigned char *w = wr + r * wld;
            __m256i u = codes(t, w, j);
            __mmask32 neg = 0;
            if (t == KINFER_QTYPE_Q8_0) {
                neg = _mm256_movepi8_mask(u);
                u = _mm256_abs_epi8(u);
            }
            const unsigned char *b = w + j * bytes;
            float d = f16((uint16_t)(b[0] | (b[1] << 8)));
            float mm = t == KINFER_QTYPE_Q4_1   ? f16((uint16_t)(b[2] | (b[3] << 8)))
                       : t == KINFER_QTYPE_Q4_0 ? -8.0f * d
                                                : 0.0f;
#pragma GCC unroll 4
            for (int i = 0; i < mt; i++) {
                __m256i xv = _mm256_load_si256((const __m256i *)(xq + i * ld + j * KINFER_QK));
                if (t == KINFER_QTYPE_Q8_0)
                    xv = _mm256_mask_sub_epi8(xv, neg, _mm256_setzero_si256(), xv);
                __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, xv);
                __m512 pv = _mm512_castps256_ps512(_mm256_cvtepi32_ps(p));
                pv = _mm512_maskz_mov_ps(0x00ff, pv);
                acc[r][i] = _mm512_fmadd_ps(pv, _mm512_set1_ps(d * xd[i * nb + j]), acc[r][i]);
                extra[r][i] = _mm_add_ss(extra[r][i], _mm_set_ss(mm * xs[i * nb + j]));
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < nr; r++)
#pragma GCC unroll 4
        for (int i = 0; i < mt; i++) {
            __m128 e = _mm_add_ss(extra[r][i], _mm_movehdup_ps(extra[r][i]));
            res[r * 4 + i] = _mm512_reduce_add_ps(acc[r][i]) + _mm_cvtss_f32(e);
        }
}

/* ---- Q8 mode, many X rows (prefill, batched decode) ----------------------
 * A tile of up to four W rows is unpacked once into the worker's scratch
 * (codes as bytes, per-pair scales spread over 16 lanes, Q8_0's bias
 * correction, the offset terms), then every X row reuses it from L1: per
 * (W row, X row, block pair) one vpdpbusd, one conversion, two FP ops.
 * Q8_0 runs as (x + 128) . w with the 128 * sum(w) bias taken off through
 * the accumulator's start value, so no per-row sign fix-up. */
typedef struct wide_tile {
    uint8_t *codes; /* [4][npairs * 64] */
    float *dsp;     /* [4][npairs][16]: d_j in lanes 0..7, d_j+1 in 8..15 */
    int32_t *corr;  /* [4][npairs][16]: -128 * sum of each lane's 4 codes (Q8_0) */
    float *off;     /* [4][nb]: m_j (Q4_1) or -8 d_j (Q4_0) */
    size_t npairs;
} wide_tile;

INL wide_tile wide_layout(void *scratch, size_t nb) {
    wide_tile w;
    w.npairs = nb / 2;
    unsigned char *p = scratch;
    size_t np = nb / 2 + 1;
    w.codes = (uint8_t *)p;
    p += 4 * np * 64;
    w.dsp = (float *)(void *)p;
    p += 4 * np * 64;
    w.corr = (int32_t *)(void *)p;
    p += 4 * np * 64;
    w.off = (float *)(void *)p;
    return w;
}

INL void wide_unpack(const qmm_call *c, const unsigned char *wr, int nr, const wide_tile *tl) {
    const kinfer_qtype t = c->wtype;
    const size_t bytes = kinfer_qtype_block_bytes(t), np = tl->npairs;
#pragma GCC unroll 4
    for (int r = 0; r < nr; r++) {
        const unsigned char *w = wr + (size_t)r * c->w_ld;
        for (size_t p = 0; p < np; p++) {
            size_t j = 2 * p;
            __m512i u = join(codes(t, w, j), codes(t, w, j + 1));
            _mm512_store_si512((void *)(tl->codes + ((size_t)r * np + p) * 64), u);
            __m128 h = pair_hdr(w + j * bytes, bytes);
            _mm512_store_ps(tl->dsp + ((size_t)r * np + p) * 16, spread(h, 0, 2));
            if (t == KINFER_QTYPE_Q8_0) {
                __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(1), u);
                _mm512_store_si512(
                    (void *)(tl->corr + ((size_t)r * np + p) * 16),
                    _mm512_slli_epi32(_mm512_sub_epi32(_mm512_setzero_si512(), s), 7));
            }
        }
        if (t != KINFER_QTYPE_Q8_0)
            for (size_t j = 0; j < c->nb; j++) {
                const unsigned char *b = w + j * bytes;
                float d = f16((uint16_t)(b[0] | (b[1] << 8)));
                tl->off[(size_t)r * c->nb + j] =
                    t == KINFER_QTYPE_Q4_1 ? f16((uint16_t)(b[2] | (b[3] << 8))) : -8.0f * d;
            }
    }
}

INL float dot_floats(const float *a, const float *b, size_t n) {
    __m512 s = _mm512_setzero_ps();
    size_t k = 0;
    for (; k + 16 <= n; k += 16)
        s = _mm512_fmadd_ps(_mm512_loadu_ps(a + k), _mm512_loadu_ps(b + k), s);
    if (k < n) {
        __mmask16 m = (__mmask16)((1u << (n - k)) - 1);
        s = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + k), _mm512_maskz_loadu_ps(m, b + k), s);
    }
    return _mm512_reduce_add_ps(s);
}

/* res[r * 4 + i] for W rows r < nr of the unpacked tile, X rows m0 + i. */
INL void wide_q8(const qmm_call *c, const unsigned char *wr, const int nr, size_t m0, const int mt,
                 const wide_tile *tl, float *res) {
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++)
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++)
            acc[r][i] = _mm512_setzero_ps();
    const size_t nb = c->nb, ld = c->xq_ld, np = tl->npairs;
    const int8_t *xq = c->xq + m0 * ld;
    const float *xd = c->xd + m0 * nb, *xs = c->xs + m0 * nb;
    const kinfer_qtype t = c->wtype;
    const bool q80 = t == KINFER_QTYPE_Q8_0;
    for (size_t p = 0; p < np; p++) {
        __m512i xv[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(),
                         _mm512_setzero_si512()};
        __m512 xdv[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                         _mm512_setzero_ps()};
#pragma GCC unroll 4
        for (int i = 0; i < mt; i++) {
            xv[i] = _mm512_loadu_si512((const void *)(xq + i * ld + p * 64));
            if (q80)
                xv[i] = _mm512_xor_si512(xv[i], _mm512_set1_epi8((char)0x80));
            __m128 d2 = load2f(xd + i * nb + 2 * p);
            xdv[i] = spread(d2, 0, 1);
        }
#pragma GCC unroll 4
        for (int r = 0; r < nr; r++) {
            __m512i u = _mm512_load_si512((const void *)(tl->codes + ((size_t)r * np + p) * 64));
            __m512 dv = _mm512_load_ps(tl->dsp + ((size_t)r * np + p) * 16);
            __m512i start =
                q80 ? _mm512_load_si512((const void *)(tl->corr + ((size_t)r * np + p) * 16))
                    : _mm512_setzero_si512();
#pragma GCC unroll 4
            for (int i = 0; i < mt; i++) {
                __m512i d = q80 ? _mm512_dpbusd_epi32(start, xv[i], u)
                                : _mm512_dpbusd_epi32(start, u, xv[i]);
                acc[r][i] =
                    _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), _mm512_mul_ps(dv, xdv[i]), acc[r][i]);
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < nr; r++)
#pragma GCC unroll 4
        for (int i = 0; i < mt; i++) {
            float v = _mm512_reduce_add_ps(acc[r][i]);
            size_t j = 2 * np;
            if (j < nb) { /* odd block count: the last block from the packed row */
                const unsigned char *w = wr + (size_t)r * c->w_ld;
                __m256i u = codes(t, w, j);
                __m256i x = _mm256_load_si256((const __m256i *)(xq + i * ld + j * KINFER_QK));
                if (q80) {
                    x = _mm256_mask_sub_epi8(x, _mm256_movepi8_mask(u), _mm256_setzero_si256(), x);
                    u = _mm256_abs_epi8(u);
                }
                __m256i dp = _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, x);
                __m256 f = _mm256_cvtepi32_ps(dp);
                __m128 h = _mm_add_ps(_mm256_castps256_ps128(f), _mm256_extractf128_ps(f, 1));
                h = _mm_add_ps(h, _mm_movehl_ps(h, h));
                h = _mm_add_ss(h, _mm_movehdup_ps(h));
                const unsigned char *b = w + j * kinfer_qtype_block_bytes(t);
                v += f16((uint16_t)(b[0] | (b[1] << 8))) * xd[i * nb + j] * _mm_cvtss_f32(h);
            }
            if (!q80)
                v += dot_floats(tl->off + (size_t)r * nb, xs + i * nb, nb);
            res[r * 4 + i] = v;
        }
}

/* ---- F32 mode with block-type W -------------------------------------- */
INL void widen(kinfer_qtype t, const unsigned char *wr, size_t j, __m512 w[2]) {
    if (t == KINFER_QTYPE_Q8_0) {
        const kinfer_block_q8_0 *b = (const kinfer_block_q8_0 *)wr + j;
        w[0] = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)b->qs)));
        w[1] = _mm512_cvtepi32_ps(
            _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b->qs + 16))));
        return;
    }
    const uint8_t *qs = t == KINFER_QTYPE_Q4_1 ? ((const kinfer_block_q4_1 *)wr + j)->qs
                                               : ((const kinfer_block_q4_0 *)wr + j)->qs;
    __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)qs));
    __m512i o = _mm512_set1_epi32(t == KINFER_QTYPE_Q4_0 ? 8 : 0);
    w[0] = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_and_si512(v, _mm512_set1_epi32(15)), o));
    w[1] = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_srli_epi32(v, 4), o));
}

INL void tile_f32_block(const qmm_call *c, const unsigned char *wr, const int nr, size_t m0,
                        const int mt, float *res) {
    __m512 acc[4][4];
    float extra[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++)
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            acc[r][i] = _mm512_setzero_ps();
            extra[r][i] = 0.0f;
        }
    const size_t nb = c->nb, K = c->K, wld = c->w_ld;
    const float *x = c->x + m0 * K, *xs = c->xs + m0 * nb;
    const kinfer_qtype t = c->wtype;
    const size_t bytes = kinfer_qtype_block_bytes(t);
    const pf_state pf = pf_init(c, wr, nr, nb);
    for (size_t j = 0; j < nb; j++) {
        pf_step(&pf, j);
        __m512 x0[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                        _mm512_setzero_ps()};
        __m512 x1[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                        _mm512_setzero_ps()};
#pragma GCC unroll 4
        for (int i = 0; i < mt; i++) {
            x0[i] = _mm512_loadu_ps(x + i * K + j * KINFER_QK);
            x1[i] = _mm512_loadu_ps(x + i * K + j * KINFER_QK + 16);
        }
#pragma GCC unroll 4
        for (int r = 0; r < nr; r++) {
            const unsigned char *w = wr + r * wld;
            __m512 wv[2];
            widen(t, w, j, wv);
            const unsigned char *b = w + j * bytes;
            __m512 d = _mm512_set1_ps(f16((uint16_t)(b[0] | (b[1] << 8))));
            float mm = t == KINFER_QTYPE_Q4_1 ? f16((uint16_t)(b[2] | (b[3] << 8))) : 0.0f;
#pragma GCC unroll 4
            for (int i = 0; i < mt; i++) {
                __m512 p = _mm512_mul_ps(wv[0], x0[i]);
                p = _mm512_fmadd_ps(wv[1], x1[i], p);
                acc[r][i] = _mm512_fmadd_ps(p, d, acc[r][i]);
                if (t == KINFER_QTYPE_Q4_1)
                    extra[r][i] += mm * xs[i * nb + j];
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < nr; r++)
#pragma GCC unroll 4
        for (int i = 0; i < mt; i++)
            res[r * 4 + i] = _mm512_reduce_add_ps(acc[r][i]) + extra[r][i];
}

/* ---- F32 / F16 / BF16 W ------------------------------------------------ */
INL __m512 load_w16(kinfer_qtype t, const unsigned char *wr, size_t k) {
    if (t == KINFER_QTYPE_F32)
        return _mm512_loadu_ps((const float *)wr + k);
    __m256i h = _mm256_loadu_si256((const __m256i *)(wr + 2 * k));
    if (t == KINFER_QTYPE_F16)
        return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

INL float load_w1(kinfer_qtype t, const unsigned char *wr, size_t k) {
    if (t == KINFER_QTYPE_F32)
        return ((const float *)wr)[k];
    uint16_t h = (uint16_t)(wr[2 * k] | (wr[2 * k + 1] << 8));
    if (t == KINFER_QTYPE_F16)
        return f16(h);
    union {
        uint32_t u;
        float f;
    } v = {.u = (uint32_t)h << 16};
    return v.f;
}

INL void tile_float(const qmm_call *c, const unsigned char *wr, const int nr, size_t m0,
                    const int mt, float *res) {
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++)
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++)
            acc[r][i] = _mm512_setzero_ps();
    const size_t K = c->K, wld = c->w_ld;
    const float *x = c->x + m0 * K;
    const kinfer_qtype t = c->wtype;
    size_t k = 0;
    const pf_state pf = pf_init(c, wr, nr, K / 16);
    for (; k + 16 <= K; k += 16) {
        pf_step(&pf, k / 16);
        __m512 xv[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                        _mm512_setzero_ps()};
#pragma GCC unroll 4
        for (int i = 0; i < mt; i++)
            xv[i] = _mm512_loadu_ps(x + i * K + k);
#pragma GCC unroll 4
        for (int r = 0; r < nr; r++) {
            __m512 w = load_w16(t, wr + r * wld, k);
#pragma GCC unroll 4
            for (int i = 0; i < mt; i++)
                acc[r][i] = _mm512_fmadd_ps(w, xv[i], acc[r][i]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < nr; r++)
#pragma GCC unroll 4
        for (int i = 0; i < mt; i++) {
            float s = _mm512_reduce_add_ps(acc[r][i]);
            for (size_t kk = k; kk < K; kk++)
                s += load_w1(t, wr + r * wld, kk) * x[i * K + kk];
            res[r * 4 + i] = s;
        }
}

/* ---- F32 mode, many X rows --------------------------------------------------
 * A tile of up to four W rows dequantized to FP32 into the worker's scratch
 * (d * q, d * (q - 8), d * q + m, or the float types widened), then a
 * register-blocked 4 x 4 FP32 product against every X row from L1: per 16
 * elements of a (W row, X row) pair one FMA, as a small SGEMM. */
INL void wide_f32_unpack(const qmm_call *c, const unsigned char *wr, int nr, float *ws) {
    const kinfer_qtype t = c->wtype;
    const size_t K = c->K, kp = (K + 15) & ~(size_t)15;
    for (int r = 0; r < nr; r++) {
        const unsigned char *w = wr + (size_t)r * c->w_ld;
        float *o = ws + (size_t)r * kp;
        if (kinfer_qtype_is_block(t)) {
            const size_t bytes = kinfer_qtype_block_bytes(t);
            for (size_t j = 0; j < c->nb; j++) {
                __m512 wv[2];
                widen(t, w, j, wv);
                const unsigned char *b = w + j * bytes;
                __m512 d = _mm512_set1_ps(f16((uint16_t)(b[0] | (b[1] << 8))));
                __m512 m = _mm512_set1_ps(
                    t == KINFER_QTYPE_Q4_1 ? f16((uint16_t)(b[2] | (b[3] << 8))) : 0.0f);
                /* d * q + m rounded as the portable dequantizer: mul, then add */
                _mm512_storeu_ps(o + j * KINFER_QK, _mm512_add_ps(_mm512_mul_ps(wv[0], d), m));
                _mm512_storeu_ps(o + j * KINFER_QK + 16, _mm512_add_ps(_mm512_mul_ps(wv[1], d), m));
            }
        } else {
            size_t k = 0;
            for (; k + 16 <= K; k += 16)
                _mm512_storeu_ps(o + k, load_w16(t, w, k));
            for (; k < K; k++)
                o[k] = load_w1(t, w, k);
        }
        for (size_t k = K; k < kp; k++)
            o[k] = 0.0f;
    }
}

INL void wide_f32(const qmm_call *c, const float *ws, const int nr, size_t m0, const int mt,
                  float *res) {
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++)
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++)
            acc[r][i] = _mm512_setzero_ps();
    const size_t K = c->K, kp = (K + 15) & ~(size_t)15;
    const float *x = c->x + m0 * K;
    size_t k = 0;
    for (; k + 16 <= K; k += 16) {
        __m512 xv[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                        _mm512_setzero_ps()};
#pragma GCC unroll 4
        for (int i = 0; i < mt; i++)
            xv[i] = _mm512_loadu_ps(x + i * K + k);
#pragma GCC unroll 4
        for (int r = 0; r < nr; r++) {
            __m512 w = _mm512_loadu_ps(ws + (size_t)r * kp + k);
#pragma GCC unroll 4
            for (int i = 0; i < mt; i++)
                acc[r][i] = _mm512_fmadd_ps(w, xv[i], acc[r][i]);
        }
    }
    if (k < K) { /* float types: a tail of K % 16, masked (the scratch row is zero-padded) */
        __mmask16 msk = (__mmask16)((1u << (K - k)) - 1);
#pragma GCC unroll 4
        for (int i = 0; i < mt; i++) {
            __m512 xv = _mm512_maskz_loadu_ps(msk, x + i * K + k);
#pragma GCC unroll 4
            for (int r = 0; r < nr; r++)
                acc[r][i] =
                    _mm512_fmadd_ps(_mm512_loadu_ps(ws + (size_t)r * kp + k), xv, acc[r][i]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < nr; r++)
#pragma GCC unroll 4
        for (int i = 0; i < mt; i++)
            res[r * 4 + i] = _mm512_reduce_add_ps(acc[r][i]);
}

/* fn specialised for a row tile of NR W rows and 1..4 X rows. */
#define DISPATCH(fn, NR, c, wr, m0, mt, res)                                                       \
    do {                                                                                           \
        switch (mt) {                                                                              \
        case 4:                                                                                    \
            fn(c, wr, NR, m0, 4, res);                                                             \
            break;                                                                                 \
        case 3:                                                                                    \
            fn(c, wr, NR, m0, 3, res);                                                             \
            break;                                                                                 \
        case 2:                                                                                    \
            fn(c, wr, NR, m0, 2, res);                                                             \
            break;                                                                                 \
        default:                                                                                   \
            fn(c, wr, NR, m0, 1, res);                                                             \
            break;                                                                                 \
        }                                                                                          \
    } while (0)

#define RUN_TILES(fn)                                                                              \
    for (; n < n1; n += nr) {                                                                      \
        nr = n1 - n >= 4 ? 4 : 1;                                                                  \
        const unsigned char *wr = c->w + n * c->w_ld;                                              \
        size_t mstep = nr == 4 ? 2 : 4; /* 4 x 2 or 1 x 4 sums: no spills */                       \
        for (size_t m0 = 0; m0 < c->M; m0 += mstep) {                                              \
            int mt = c->M - m0 < mstep ? (int)(c->M - m0) : (int)mstep;                            \
            float res[16] = {0};                                                                   \
            if (nr == 4)                                                                           \
                DISPATCH(fn, 4, c, wr, m0, mt, res);                                               \
            else                                                                                   \
                DISPATCH(fn, 1, c, wr, m0, mt, res);                                               \
            store(c, n, (int)nr, m0, mt, res);                                                     \
        }                                                                                          \
    }

INL void store(const qmm_call *c, size_t n, int nr, size_t m0, int mt, const float *res) {
#pragma GCC unroll 4
    for (int r = 0; r < nr; r++)
#pragma GCC unroll 4
        for (int i = 0; i < mt; i++) {
            float *y = c->y + (m0 + (size_t)i) * c->N + n + (size_t)r;
            *y = c->accumulate ? *y + res[r * 4 + i] : res[r * 4 + i];
        }
}

/* Four W rows per tile (their X loads shared, four independent sums in
 * flight), the last rows of the range one at a time. More than four X
 * rows: the unpacked-tile kernels (Q8 codes, or FP32 rows in F32 mode). */
TGT void qmm_avx512_rows(const qmm_call *c, size_t n0, size_t n1, void *scratch) {
    const bool block = kinfer_qtype_is_block(c->wtype);
    const bool q8 = block && c->act == KINFER_QMM_ACT_Q8;
    size_t n = n0, nr = 4;
    if (q8 && c->M > 4) {
        wide_tile tl = wide_layout(scratch, c->nb);
        for (; n < n1; n += nr) {
            nr = n1 - n >= 4 ? 4 : n1 - n;
            const unsigned char *wr = c->w + n * c->w_ld;
            wide_unpack(c, wr, (int)nr, &tl);
            for (size_t m0 = 0; m0 < c->M; m0 += 4) {
                int mt = c->M - m0 < 4 ? (int)(c->M - m0) : 4;
                float res[16] = {0};
                if (nr == 4 && mt == 4)
                    wide_q8(c, wr, 4, m0, 4, &tl, res); /* the hot case, fully unrolled */
                else
                    wide_q8(c, wr, (int)nr, m0, mt, &tl, res);
                store(c, n, (int)nr, m0, mt, res);
            }
        }
    } else if (c->M > 4) {
        float *ws = scratch;
        for (; n < n1; n += nr) {
            nr = n1 - n >= 4 ? 4 : n1 - n;
            wide_f32_unpack(c, c->w + n * c->w_ld, (int)nr, ws);
            for (size_t m0 = 0; m0 < c->M; m0 += 4) {
                int mt = c->M - m0 < 4 ? (int)(c->M - m0) : 4;
                float res[16] = {0};
                if (nr == 4 && mt == 4)
                    wide_f32(c, ws, 4, m0, 4, res);
                else
                    wide_f32(c, ws, (int)nr, m0, mt, res);
                store(c, n, (int)nr, m0, mt, res);
            }
        }
    } else if (q8) {
        RUN_TILES(tile_q8)
    } else if (block) {
        RUN_TILES(tile_f32_block)
    } else {
        RUN_TILES(tile_float)
    }
}

void qmm_avx512_prep(const qmm_call *c, size_t m, int8_t *xq, float *xd, float *xs) {
    qmm_avx2_prep(c, m, xq, xd, xs);
}
#endif
