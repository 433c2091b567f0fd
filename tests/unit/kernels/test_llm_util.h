/* test_llm_util.h — helpers of the llm op tests (test_llm_ops_*.c and the
 * CUDA twins' tests): a deterministic RNG, float buffers with sentinel
 * guards after the end, random GGUF weight rows, and an independent naive
 * dequantizer written from the block layout (not from quant_cpu.c) that the
 * double-precision references use. Header-only; test code. */
#ifndef TEST_LLM_UTIL_H
#define TEST_LLM_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/convert.h"
#include "ops/quant.h"

#define TL_GUARD 16
#define TL_SENTINEL 12345.678f

typedef struct tl_rng {
    uint64_t s;
} tl_rng;

static inline uint64_t tl_next(tl_rng *r) { /* splitmix64 */
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [-1, 1). */
static inline float tl_uniform(tl_rng *r) {
    return (float)((double)(tl_next(r) >> 11) * (1.0 / 9007199254740992.0) * 2.0 - 1.0);
}

/* n floats of scale * U(-1, 1), then TL_GUARD sentinels. */
static inline float *tl_floats(tl_rng *r, size_t n, float scale) {
    float *p = malloc((n + TL_GUARD) * sizeof(float));
    if (!p)
        return NULL;
    for (size_t i = 0; i < n; i++)
        p[i] = scale * tl_uniform(r);
    for (size_t i = 0; i < TL_GUARD; i++)
        p[n + i] = TL_SENTINEL;
    return p;
}

/* 1 when the TL_GUARD floats after p[n] are intact. */
static inline int tl_guard_ok(const float *p, size_t n) {
    for (size_t i = 0; i < TL_GUARD; i++)
        if (memcmp(&p[n + i], &(float){TL_SENTINEL}, sizeof(float)) != 0) {
            fprintf(stderr, "sentinel %zu after %zu floats overwritten\n", i, n);
            return 0;
        }
    return 1;
}

static inline size_t tl_row_bytes(kinfer_qtype t, size_t k) {
    size_t b = 0;
    kinfer_qtype_row_bytes(t, k, &b, NULL);
    return b;
}

static inline uint16_t tl_f16(float f) {
    return kinfer_fp32_to_fp16(f);
}

/* rows x k weights of type t, random codes and scales as a real model
 * holds them (d ~ 0.01..0.05, Q4_1 m ~ -8d). Exactly rows * row_bytes
 * bytes (so ASan sees any read past the end). */
static inline unsigned char *tl_weights(tl_rng *r, kinfer_qtype t, size_t rows, size_t k) {
    size_t rb = tl_row_bytes(t, k);
    unsigned char *w = malloc(rows * rb > 0 ? rows * rb : 1);
    if (!w)
        return NULL;
    for (size_t n = 0; n < rows; n++) {
        unsigned char *row = w + n * rb;
        switch (t) {
        case KINFER_QTYPE_F32:
            for (size_t i = 0; i < k; i++) {
                float v = 0.1f * tl_uniform(r);
                memcpy(row + 4 * i, &v, 4);
            }
            break;
        case KINFER_QTYPE_F16:
        case KINFER_QTYPE_BF16:
            for (size_t i = 0; i < k; i++) {
                float v = 0.1f * tl_uniform(r);
                uint16_t h =
                    t == KINFER_QTYPE_F16 ? kinfer_fp32_to_fp16(v) : kinfer_fp32_to_bf16(v);
                row[2 * i] = (unsigned char)(h & 0xff);
                row[2 * i + 1] = (unsigned char)(h >> 8);
            }
            break;
        default: {
            size_t bb = kinfer_qtype_block_bytes(t);
            for (size_t j = 0; j < k / KINFER_QK; j++) {
                unsigned char *b = row + j * bb;
                float d = 0.03f + 0.02f * tl_uniform(r);
                uint16_t dh = tl_f16(d);
                memcpy(b, &dh, 2);
                size_t q0 = 2;
                if (t == KINFER_QTYPE_Q4_1) {
                    uint16_t mh = tl_f16(-8.0f * d + 0.01f * tl_uniform(r));
                    memcpy(b + 2, &mh, 2);
                    q0 = 4;
                }
                for (size_t i = q0; i < bb; i++)
                    b[i] = (unsigned char)(tl_next(r) >> 56);
                if (t == KINFER_QTYPE_Q8_0) /* GGML never stores -128 */
                    for (size_t i = q0; i < bb; i++)
                        if (b[i] == 0x80)
                            b[i] = 0x81;
            }
            break;
        }
        }
    }
    return w;
}

static inline float tl_h2f(const unsigned char *p) {
    return kinfer_fp16_to_fp32((uint16_t)(p[0] | (p[1] << 8)));
}

/* Element e of a row of type t, from the layout alone. */
static inline double tl_deq(const unsigned char *row, kinfer_qtype t, size_t e) {
    switch (t) {
    case KINFER_QTYPE_F32: {
        float v;
        memcpy(&v, row + 4 * e, 4);
        return v;
    }
    case KINFER_QTYPE_F16:
        return tl_h2f(row + 2 * e);
    case KINFER_QTYPE_BF16:
        return kinfer_bf16_to_fp32((uint16_t)(row[2 * e] | (row[2 * e + 1] << 8)));
    case KINFER_QTYPE_Q8_0: {
        const unsigned char *b = row + (e / 32) * 34;
        return (double)tl_h2f(b) * (double)(int8_t)b[2 + e % 32];
    }
    case KINFER_QTYPE_Q4_0: {
        const unsigned char *b = row + (e / 32) * 18;
        size_t i = e % 32;
        int q = i < 16 ? (b[2 + i] & 15) : (b[2 + i - 16] >> 4);
        return (double)tl_h2f(b) * (q - 8);
    }
    case KINFER_QTYPE_Q4_1: {
        const unsigned char *b = row + (e / 32) * 20;
        size_t i = e % 32;
        int q = i < 16 ? (b[4 + i] & 15) : (b[4 + i - 16] >> 4);
        return (double)tl_h2f(b) * q + (double)tl_h2f(b + 2);
    }
    default:
        return NAN;
    }
}

#endif
