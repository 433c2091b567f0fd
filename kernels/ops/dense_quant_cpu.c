/* dense_quant_cpu.c — the loops of dense_quant_cpu.h. Written so that GCC vectorises
 * them (no early exits, reductions split out); the rounding is
 * nearbyintf's (the FPU's round-to-nearest-even), as oneDNN and PyTorch
 * round when they quantize. */
#include "dense_quant_cpu.h"

#include <math.h>
#include <string.h>

#include "cpu_multiversion.h"

/* Portable rounding: GCC vectorises it poorly (uint16 narrowing), so the
 * CPUs that run BF16 layers take the AVX512-BF16 instruction below. */
static void rows_to_bf16_c(const float *src, size_t ld_src, uint16_t *dst, size_t ld_dst,
                           size_t rows, size_t cols) {
    for (size_t r = 0; r < rows; r++) {
        const float *s = src + r * ld_src;
        uint16_t *d = dst + r * ld_dst;
        for (size_t c = 0; c < cols; c++) {
            uint32_t u;
            memcpy(&u, &s[c], sizeof(u));
            /* Round to nearest even on the 16 dropped bits; a NaN keeps
             * its sign and becomes the quiet NaN (rounding could carry it
             * into Inf). */
            uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
            int nan = (u & 0x7fffffffu) > 0x7f800000u;
            d[c] = (uint16_t)(nan ? ((u >> 16) | 0x40u) : rounded);
        }
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
/* vcvtne2ps2bf16: round to nearest even, NaN to quiet NaN, as above. */
__attribute__((target("avx512f,avx512bf16"))) static void
rows_to_bf16_avx512(const float *src, size_t ld_src, uint16_t *dst, size_t ld_dst, size_t rows,
                    size_t cols) {
    for (size_t r = 0; r < rows; r++) {
        const float *s = src + r * ld_src;
        uint16_t *d = dst + r * ld_dst;
        size_t c = 0;
        for (; c + 32 <= cols; c += 32) {
            __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(s + c + 16), _mm512_loadu_ps(s + c));
            _mm512_storeu_si512((void *)(d + c), (__m512i)v);
        }
        if (c < cols)
            rows_to_bf16_c(s + c, ld_src, d + c, ld_dst, 1, cols - c);
    }
}
#endif

void kinfer_rows_to_bf16(const float *src, size_t ld_src, uint16_t *dst, size_t ld_dst, size_t rows,
                         size_t cols) {
#if defined(__x86_64__) && defined(__GNUC__)
    if (__builtin_cpu_supports("avx512bf16")) {
        rows_to_bf16_avx512(src, ld_src, dst, ld_dst, rows, cols);
        return;
    }
#endif
    rows_to_bf16_c(src, ld_src, dst, ld_dst, rows, cols);
}

KINFER_CPU_MULTIVERSION
static void row_min_max(const float *x, size_t n, float *lo, float *hi) {
    float mn[16], mx[16];
    for (size_t u = 0; u < 16; u++)
        mn[u] = mx[u] = 0.0f; /* 0 is always in range (exact zero point) */
    size_t j = 0;
    for (; j + 16 <= n; j += 16)
        for (size_t u = 0; u < 16; u++) {
            mn[u] = x[j + u] < mn[u] ? x[j + u] : mn[u];
            mx[u] = x[j + u] > mx[u] ? x[j + u] : mx[u];
        }
    float a = 0.0f, b = 0.0f;
    for (size_t u = 0; u < 16; u++) {
        a = mn[u] < a ? mn[u] : a;
        b = mx[u] > b ? mx[u] : b;
    }
    for (; j < n; j++) {
        a = x[j] < a ? x[j] : a;
        b = x[j] > b ? x[j] : b;
    }
    *lo = a;
    *hi = b;
}

KINFER_CPU_MULTIVERSION
static void quant_row(const float *x, size_t n, float inv, float zp, uint8_t *q) {
    for (size_t j = 0; j < n; j++) {
        float v = nearbyintf(x[j] * inv) + zp;
        v = v < 0.0f ? 0.0f : (v > 255.0f ? 255.0f : v);
        q[j] = (uint8_t)v;
    }
}

/* A row's scale and zero point from its range (0 always inside it). */
static void row_params(float lo, float hi, float *scale, int32_t *zp) {
    float s = (hi - lo) / 255.0f;
    if (!(s > 0.0f) || !isfinite(s))
        s = 1.0f; /* all zeros (or NaN/Inf, which quantize to nonsense) */
    float z = nearbyintf(-lo / s);
    z = z < 0.0f ? 0.0f : (z > 255.0f ? 255.0f : z);
    *scale = s;
    *zp = (int32_t)z;
}

static void quant_rows_u8_c(const float *src, size_t ld_src, uint8_t *dst, size_t ld_dst,
                            size_t rows, size_t cols, float *scale, int32_t *zp) {
    for (size_t r = 0; r < rows; r++) {
        const float *x = src + r * ld_src;
        float lo, hi;
        row_min_max(x, cols, &lo, &hi);
        row_params(lo, hi, &scale[r], &zp[r]);
        quant_row(x, cols, 1.0f / scale[r], (float)zp[r], dst + r * ld_dst);
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
/* The same with AVX-512 (GCC leaves quant_row scalar: the float-to-byte
 * narrowing). cvtps_epi32 rounds to nearest even, as nearbyintf. */
__attribute__((target("avx512f,avx512bw"))) static void
quant_rows_u8_avx512(const float *src, size_t ld_src, uint8_t *dst, size_t ld_dst, size_t rows,
                     size_t cols, float *scale, int32_t *zp) {
    for (size_t r = 0; r < rows; r++) {
        const float *x = src + r * ld_src;
        uint8_t *q = dst + r * ld_dst;
        __m512 mn = _mm512_setzero_ps(), mx = _mm512_setzero_ps();
        size_t j = 0;
        for (; j + 16 <= cols; j += 16) {
            __m512 v = _mm512_loadu_ps(x + j);
            mn = _mm512_min_ps(mn, v);
            mx = _mm512_max_ps(mx, v);
        }
        float lo = _mm512_reduce_min_ps(mn), hi = _mm512_reduce_max_ps(mx);
        for (; j < cols; j++) {
            lo = x[j] < lo ? x[j] : lo;
            hi = x[j] > hi ? x[j] : hi;
        }
        row_params(lo, hi, &scale[r], &zp[r]);
        float inv = 1.0f / scale[r];
        __m512 vinv = _mm512_set1_ps(inv);
        __m512i vz = _mm512_set1_epi32(zp[r]), v0 = _mm512_setzero_si512(),
                v255 = _mm512_set1_epi32(255);
        for (j = 0; j + 16 <= cols; j += 16) {
            __m512i i = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + j), vinv));
            i = _mm512_min_epi32(_mm512_max_epi32(_mm512_add_epi32(i, vz), v0), v255);
            _mm_storeu_si128((__m128i *)(q + j), _mm512_cvtepi32_epi8(i));
        }
        if (j < cols)
            quant_row(x + j, cols - j, inv, (float)zp[r], q + j);
    }
}

__attribute__((target("avx512f"))) static void
dequant_rows_avx512(const int32_t *acc, size_t ld_acc, float *y, size_t ld_y, size_t rows,
                    size_t cols, const float *xscale, const int32_t *zp, const float *wscale,
                    const int32_t *wsum, const float *bias) {
    for (size_t r = 0; r < rows; r++) {
        const int32_t *a = acc + r * ld_acc;
        float *o = y + r * ld_y;
        __m512 xs = _mm512_set1_ps(xscale[r]);
        __m512i z = _mm512_set1_epi32(zp[r]);
        size_t c = 0;
        for (; c + 16 <= cols; c += 16) {
            __m512i t = _mm512_sub_epi32(
                _mm512_loadu_si512((const void *)(a + c)),
                _mm512_mullo_epi32(z, _mm512_loadu_si512((const void *)(wsum + c))));
            __m512 sc = _mm512_mul_ps(xs, _mm512_loadu_ps(wscale + c));
            __m512 b = bias ? _mm512_loadu_ps(bias + c) : _mm512_setzero_ps();
            _mm512_storeu_ps(o + c, _mm512_fmadd_ps(_mm512_cvtepi32_ps(t), sc, b));
        }
        for (; c < cols; c++)
            o[c] =
                (float)(a[c] - zp[r] * wsum[c]) * (xscale[r] * wscale[c]) + (bias ? bias[c] : 0.0f);
    }
}
#endif

void kinfer_quant_rows_u8(const float *src, size_t ld_src, uint8_t *dst, size_t ld_dst, size_t rows,
                          size_t cols, float *scale, int32_t *zp) {
#if defined(__x86_64__) && defined(__GNUC__)
    if (__builtin_cpu_supports("avx512bw")) {
        quant_rows_u8_avx512(src, ld_src, dst, ld_dst, rows, cols, scale, zp);
        return;
    }
#endif
    quant_rows_u8_c(src, ld_src, dst, ld_dst, rows, cols, scale, zp);
}

void kinfer_quant_weights_s8(const float *w, size_t n, size_t k, int8_t *q, float *scale,
                             int32_t *sum) {
    for (size_t i = 0; i < n; i++) {
        const float *row = w + i * k;
        float amax = 0.0f;
        for (size_t j = 0; j < k; j++)
            amax = fabsf(row[j]) > amax ? fabsf(row[j]) : amax;
        float s = amax > 0.0f ? amax / 127.0f : 1.0f;
        float inv = 1.0f / s;
        int32_t acc = 0;
        for (size_t j = 0; j < k; j++) {
            float v = nearbyintf(row[j] * inv);
            v = v < -127.0f ? -127.0f : (v > 127.0f ? 127.0f : v);
            q[i * k + j] = (int8_t)v;
            acc += (int32_t)v;
        }
        scale[i] = s;
        sum[i] = acc;
    }
}

KINFER_CPU_MULTIVERSION
static void dequant_rows_c(const int32_t *acc, size_t ld_acc, float *y, size_t ld_y, size_t rows,
                           size_t cols, const float *xscale, const int32_t *zp, const float *wscale,
                           const int32_t *wsum, const float *bias) {
    for (size_t r = 0; r < rows; r++) {
        const int32_t *a = acc + r * ld_acc;
        float *o = y + r * ld_y;
        float xs = xscale[r];
        int32_t z = zp[r];
        if (bias)
            for (size_t c = 0; c < cols; c++)
                o[c] = (float)(a[c] - z * wsum[c]) * (xs * wscale[c]) + bias[c];
        else
            for (size_t c = 0; c < cols; c++)
                o[c] = (float)(a[c] - z * wsum[c]) * (xs * wscale[c]);
    }
}

void kinfer_dequant_rows(const int32_t *acc, size_t ld_acc, float *y, size_t ld_y, size_t rows,
                         size_t cols, const float *xscale, const int32_t *zp, const float *wscale,
                         const int32_t *wsum, const float *bias) {
#if defined(__x86_64__) && defined(__GNUC__)
    if (__builtin_cpu_supports("avx512f")) {
        dequant_rows_avx512(acc, ld_acc, y, ld_y, rows, cols, xscale, zp, wscale, wsum, bias);
        return;
    }
#endif
    dequant_rows_c(acc, ld_acc, y, ld_y, rows, cols, xscale, zp, wscale, wsum, bias);
}
