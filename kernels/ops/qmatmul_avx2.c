/* qmatmul_avx2.c — the AVX2 + FMA + F16C path of qmatmul (Haswell, Zen 1
 * and later). Same arithmetic as qmatmul_portable.c, 8 lanes wide: one W
 * row at a time, up to four X rows per pass over it (the W block is
 * unpacked once per pass, the X rows reuse it). Q8 mode multiplies 4-bit
 * or 8-bit codes with int8 activations through vpmaddubsw (no overflow:
 * |w| <= 15 or 128, |x| <= 127); F32 mode widens the codes to FP32.
 * Compiled with per-function target attributes, run only when cpuid says
 * so (cpu_isa.c). */
#include "ops/qmatmul_internal.h"

#ifdef KINFER_QMM_X86
#include <immintrin.h>
#include <math.h>

#define TGT __attribute__((target("avx2,fma,f16c")))
#define INL static inline __attribute__((always_inline)) TGT

INL float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

INL float f16(uint16_t h) {
    return _cvtsh_ss(h);
}

/* 16 bytes of nibbles -> 32 bytes 0..15 in element order (low nibbles are
 * elements 0..15, high nibbles 16..31). */
INL __m256i nibbles(const uint8_t *qs) {
    __m128i v = _mm_loadu_si128((const __m128i *)qs);
    __m256i t = _mm256_inserti128_si256(_mm256_castsi128_si256(v), _mm_srli_epi16(v, 4), 1);
    return _mm256_and_si256(t, _mm256_set1_epi8(0x0f));
}

/* u (unsigned bytes) . s (signed bytes) -> 8 int32 partial sums. */
INL __m256i dot_us(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

/* The block's 32 codes as four vectors of 8 FP32 (F32 mode). */
INL void widen_q4(const uint8_t *qs, __m256 w[4], int offset) {
    __m256i a = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)qs));
    __m256i b = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(qs + 8)));
    __m256i m = _mm256_set1_epi32(0x0f), o = _mm256_set1_epi32(offset);
    w[0] = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_and_si256(a, m), o));
    w[1] = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_and_si256(b, m), o));
    w[2] = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32(a, 4), o));
    w[3] = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32(b, 4), o));
}

INL void widen_q8(const int8_t *qs, __m256 w[4]) {
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
        w[i] = _mm256_cvtepi32_ps(
            _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(qs + 8 * i))));
}

/* ---- Q8 mode: res[i] = row m0 + i of X . W row, i < mt --------------- */
INL void tile_q8(const qmm_call *c, const unsigned char *wr, size_t m0, const int mt, float *res) {
    __m256 acc[4];
    float extra[4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        acc[i] = _mm256_setzero_ps();
        extra[i] = 0.0f;
    }
    const size_t nb = c->nb, ld = c->xq_ld;
    const int8_t *xq = c->xq + m0 * ld;
    const float *xd = c->xd + m0 * nb, *xs = c->xs + m0 * nb;
    const kinfer_qtype t = c->wtype;
    for (size_t j = 0; j < nb; j++) {
        __m256i u;
        float d, mm = 0.0f;
        if (t == KINFER_QTYPE_Q4_1) {
            const kinfer_block_q4_1 *b = (const kinfer_block_q4_1 *)wr + j;
            u = nibbles(b->qs);
            d = f16(b->d);
            mm = f16(b->m);
        } else if (t == KINFER_QTYPE_Q4_0) {
            const kinfer_block_q4_0 *b = (const kinfer_block_q4_0 *)wr + j;
            u = nibbles(b->qs);
            d = f16(b->d);
            mm = -8.0f * d; /* d * (q - 8): the -8 through the X sum */
        } else {
            const kinfer_block_q8_0 *b = (const kinfer_block_q8_0 *)wr + j;
            u = _mm256_loadu_si256((const __m256i *)b->qs);
            d = f16(b->d);
        }
#pragma GCC unroll 4
        for (int i = 0; i < mt; i++) {
            __m256i xv = _mm256_load_si256((const __m256i *)(xq + i * ld + j * KINFER_QK));
            __m256i p;
            if (t == KINFER_QTYPE_Q8_0) /* |w| . sign(x, w): unsigned x signed */
                p = dot_us(_mm256_sign_epi8(u, u), _mm256_sign_epi8(xv, u));
            else
                p = dot_us(u, xv);
            acc[i] =
                _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(d * xd[i * nb + j]), acc[i]);
            if (t != KINFER_QTYPE_Q8_0)
                extra[i] += mm * xs[i * nb + j];
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < mt; i++)
        res[i] = hsum8(acc[i]) + extra[i];
}

/* Software prefetch of the W rows two tiles ahead, spread over the tile's
 * blocks (as qmatmul_avx512.c: short rows read a few at a time are
 * followed late by the hardware prefetchers). */
INL void prefetch_ahead(const qmm_call *c, const unsigned char *wr, size_t nr, size_t j) {
    size_t tile = nr * c->w_ld, per = ((tile + c->nb - 1) / c->nb + 63) & ~(size_t)63;
    const unsigned char *ahead = wr + 2 * tile;
    if (ahead + tile > c->w + c->N * c->w_ld)
        return;
    for (size_t l = 0; l < per; l += 64)
        _mm_prefetch((const char *)ahead + j * per + l, _MM_HINT_T0);
}

/* Q8 mode, one X row (decode) against four W rows at once: four
 * independent sums in flight and the X block loaded once for all four. */
INL void rows4_q8(const qmm_call *c, const unsigned char *wr, size_t m, float *res) {
    __m256 acc[4];
    float extra[4];
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++) {
        acc[r] = _mm256_setzero_ps();
        extra[r] = 0.0f;
    }
    const size_t nb = c->nb, wld = c->w_ld;
    const int8_t *xq = c->xq + m * c->xq_ld;
    const float *xd = c->xd + m * nb, *xs = c->xs + m * nb;
    const kinfer_qtype t = c->wtype;
    const size_t bytes = kinfer_qtype_block_bytes(t);
    for (size_t j = 0; j < nb; j++) {
        prefetch_ahead(c, wr, 4, j);
        const __m256i xv = _mm256_load_si256((const __m256i *)(xq + j * KINFER_QK));
        const float xdj = xd[j], xsj = xs[j];
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            const unsigned char *b = wr + (size_t)r * wld + j * bytes;
            float d = f16((uint16_t)(b[0] | (b[1] << 8)));
            __m256i p;
            if (t == KINFER_QTYPE_Q8_0) {
                __m256i u = _mm256_loadu_si256((const __m256i *)(b + 2));
                p = dot_us(_mm256_sign_epi8(u, u), _mm256_sign_epi8(xv, u));
            } else {
                p = dot_us(nibbles(b + (t == KINFER_QTYPE_Q4_1 ? 4 : 2)), xv);
                extra[r] +=
                    (t == KINFER_QTYPE_Q4_1 ? f16((uint16_t)(b[2] | (b[3] << 8))) : -8.0f * d) *
                    xsj;
            }
            acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(d * xdj), acc[r]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++)
        res[r] = hsum8(acc[r]) + extra[r];
}

/* F32 mode, one X row against two W rows (the widened blocks take eight
 * registers). */
INL void rows2_f32(const qmm_call *c, const unsigned char *wr, size_t m, float *res) {
    __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    float extra[2] = {0.0f, 0.0f};
    const size_t nb = c->nb, wld = c->w_ld;
    const float *x = c->x + m * c->K, *xs = c->xs + m * nb;
    const kinfer_qtype t = c->wtype;
    const size_t bytes = kinfer_qtype_block_bytes(t);
    for (size_t j = 0; j < nb; j++) {
        prefetch_ahead(c, wr, 2, j);
        const float *xr = x + j * KINFER_QK;
        __m256 x0 = _mm256_loadu_ps(xr), x1 = _mm256_loadu_ps(xr + 8);
        __m256 x2 = _mm256_loadu_ps(xr + 16), x3 = _mm256_loadu_ps(xr + 24);
#pragma GCC unroll 2
        for (int r = 0; r < 2; r++) {
            const unsigned char *b = wr + (size_t)r * wld + j * bytes;
            __m256 w[4];
            if (t == KINFER_QTYPE_Q8_0)
                widen_q8((const int8_t *)(b + 2), w);
            else
                widen_q4(b + (t == KINFER_QTYPE_Q4_1 ? 4 : 2), w, t == KINFER_QTYPE_Q4_0 ? 8 : 0);
            __m256 p = _mm256_mul_ps(w[0], x0);
            p = _mm256_fmadd_ps(w[1], x1, p);
            p = _mm256_fmadd_ps(w[2], x2, p);
            p = _mm256_fmadd_ps(w[3], x3, p);
            acc[r] =
                _mm256_fmadd_ps(p, _mm256_set1_ps(f16((uint16_t)(b[0] | (b[1] << 8)))), acc[r]);
            if (t == KINFER_QTYPE_Q4_1)
                extra[r] += f16((uint16_t)(b[2] | (b[3] << 8))) * xs[j];
        }
    }
    res[0] = hsum8(acc[0]) + extra[0];
    res[1] = hsum8(acc[1]) + extra[1];
}

/* ---- F32 mode with block-type W -------------------------------------- */
INL void tile_f32_block(const qmm_call *c, const unsigned char *wr, size_t m0, const int mt,
                        float *res) {
    __m256 acc[4];
    float extra[4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        acc[i] = _mm256_setzero_ps();
        extra[i] = 0.0f;
    }
    const size_t nb = c->nb, K = c->K;
    const float *x = c->x + m0 * K;
    const float *xs = c->xs + m0 * nb;
    const kinfer_qtype t = c->wtype;
    for (size_t j = 0; j < nb; j++) {
        __m256 w[4];
        float d, mm = 0.0f;
        if (t == KINFER_QTYPE_Q4_1) {
            const kinfer_block_q4_1 *b = (const kinfer_block_q4_1 *)wr + j;
            widen_q4(b->qs, w, 0);
            d = f16(b->d);
            mm = f16(b->m);
        } else if (t == KINFER_QTYPE_Q4_0) {
            const kinfer_block_q4_0 *b = (const kinfer_block_q4_0 *)wr + j;
            widen_q4(b->qs, w, 8);
            d = f16(b->d);
        } else {
            const kinfer_block_q8_0 *b = (const kinfer_block_q8_0 *)wr + j;
            widen_q8(b->qs, w);
            d = f16(b->d);
        }
#pragma GCC unroll 4
        for (int i = 0; i < mt; i++) {
            const float *xr = x + i * K + j * KINFER_QK;
            __m256 p = _mm256_mul_ps(w[0], _mm256_loadu_ps(xr));
            p = _mm256_fmadd_ps(w[1], _mm256_loadu_ps(xr + 8), p);
            p = _mm256_fmadd_ps(w[2], _mm256_loadu_ps(xr + 16), p);
            p = _mm256_fmadd_ps(w[3], _mm256_loadu_ps(xr + 24), p);
            acc[i] = _mm256_fmadd_ps(p, _mm256_set1_ps(d), acc[i]);
            if (t == KINFER_QTYPE_Q4_1)
                extra[i] += mm * xs[i * nb + j];
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < mt; i++)
        res[i] = hsum8(acc[i]) + extra[i];
}

/* ---- F32 / F16 / BF16 W ------------------------------------------------ */
INL __m256 load_w8(kinfer_qtype t, const unsigned char *wr, size_t k) {
    if (t == KINFER_QTYPE_F32)
        return _mm256_loadu_ps((const float *)wr + k);
    __m128i h = _mm_loadu_si128((const __m128i *)(wr + 2 * k));
    if (t == KINFER_QTYPE_F16)
        return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
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

INL void tile_float(const qmm_call *c, const unsigned char *wr, size_t m0, const int mt,
                    float *res) {
    __m256 acc[4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
        acc[i] = _mm256_setzero_ps();
    const size_t K = c->K;
    const float *x = c->x + m0 * K;
    const kinfer_qtype t = c->wtype;
    size_t k = 0;
    for (; k + 8 <= K; k += 8) {
        __m256 w = load_w8(t, wr, k);
#pragma GCC unroll 4
        for (int i = 0; i < mt; i++)
            acc[i] = _mm256_fmadd_ps(w, _mm256_loadu_ps(x + i * K + k), acc[i]);
    }
#pragma GCC unroll 4
    for (int i = 0; i < mt; i++) {
        float s = hsum8(acc[i]);
        for (size_t kk = k; kk < K; kk++)
            s += load_w1(t, wr, kk) * x[i * K + kk];
        res[i] = s;
    }
}

#define DISPATCH_MT(fn, c, wr, m0, mt, res)                                                        \
    do {                                                                                           \
        switch (mt) {                                                                              \
        case 4:                                                                                    \
            fn(c, wr, m0, 4, res);                                                                 \
            break;                                                                                 \
        case 3:                                                                                    \
            fn(c, wr, m0, 3, res);                                                                 \
            break;                                                                                 \
        case 2:                                                                                    \
            fn(c, wr, m0, 2, res);                                                                 \
            break;                                                                                 \
        default:                                                                                   \
            fn(c, wr, m0, 1, res);                                                                 \
            break;                                                                                 \
        }                                                                                          \
    } while (0)

TGT void qmm_avx2_rows(const qmm_call *c, size_t n0, size_t n1, void *scratch) {
    (void)scratch;
    const bool block = kinfer_qtype_is_block(c->wtype);
    const bool q8 = block && c->act == KINFER_QMM_ACT_Q8;
    size_t n = n0;
    if (block && c->M == 1) { /* decode: several W rows per pass */
        const size_t nr = q8 ? 4 : 2;
        for (; n + nr <= n1; n += nr) {
            float res[4];
            if (q8)
                rows4_q8(c, c->w + n * c->w_ld, 0, res);
            else
                rows2_f32(c, c->w + n * c->w_ld, 0, res);
            for (size_t r = 0; r < nr; r++) {
                float *y = c->y + n + r;
                *y = c->accumulate ? *y + res[r] : res[r];
            }
        }
    }
    for (; n < n1; n++) {
        const unsigned char *wr = c->w + n * c->w_ld;
        for (size_t m0 = 0; m0 < c->M; m0 += 4) {
            int mt = c->M - m0 < 4 ? (int)(c->M - m0) : 4;
            float res[4] = {0};
            if (q8)
                DISPATCH_MT(tile_q8, c, wr, m0, mt, res);
            else if (block)
                DISPATCH_MT(tile_f32_block, c, wr, m0, mt, res);
            else
                DISPATCH_MT(tile_float, c, wr, m0, mt, res);
#pragma GCC unroll 4
            for (int i = 0; i < mt; i++) {
                float *y = c->y + (m0 + (size_t)i) * c->N + n;
                *y = c->accumulate ? *y + res[i] : res[i];
            }
        }
    }
}

/* Same operations as qmm_portable_prep, 8 lanes at a time; the block max
 * is order-independent and the codes are rounded by the same two adds, so
 * the codes, scales and sums are bit-identical. */
TGT void qmm_avx2_prep(const qmm_call *c, size_t m, int8_t *xq, float *xd, float *xs) {
    const float *x = c->x + m * c->K;
    if (c->act == KINFER_QMM_ACT_F32) {
        qmm_portable_prep(c, m, xq, xd, xs); /* block sums: not on the hot path */
        return;
    }
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256 magic = _mm256_set1_ps(12582912.0f);
    for (size_t j = 0; j < c->nb; j++, x += KINFER_QK, xq += KINFER_QK) {
        __m256 v[4], amax = _mm256_setzero_ps(), nan = _mm256_setzero_ps();
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            v[i] = _mm256_loadu_ps(x + 8 * i);
            nan = _mm256_or_ps(nan, _mm256_cmp_ps(v[i], v[i], _CMP_UNORD_Q));
            amax = _mm256_max_ps(amax, _mm256_and_ps(v[i], absmask));
        }
        float a = 0.0f, lanes[8];
        _mm256_storeu_ps(lanes, amax);
        for (int i = 0; i < 8; i++)
            a = lanes[i] > a ? lanes[i] : a;
        float d = a / 127.0f;
        if (_mm256_movemask_ps(nan) || d == INFINITY) {
            _mm256_storeu_si256((__m256i *)xq, _mm256_setzero_si256());
            xd[j] = NAN;
            xs[j] = NAN;
            continue;
        }
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        __m256 vid = _mm256_set1_ps(id);
        __m256i q[4];
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            __m256 r = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(v[i], vid), magic), magic);
            q[i] = _mm256_cvtps_epi32(r); /* exact: r is an integer */
        }
        __m256i sum = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
        /* pack 32 int32 -> 32 int8 in order: packs works per 128-bit lane */
        __m256i p01 = _mm256_packs_epi32(q[0], q[1]), p23 = _mm256_packs_epi32(q[2], q[3]);
        __m256i p = _mm256_packs_epi16(p01, p23);
        p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)xq, p);
        xd[j] = d;
        xs[j] = d * (float)_mm_cvtsi128_si32(s4);
    }
}
#endif
