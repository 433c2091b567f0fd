/* qmatmul_internal.h — what qmatmul_cpu.c (context, checks, threading)
 * shares with the per-ISA kernels (qmatmul_portable.c, qmatmul_avx2.c,
 * qmatmul_avx512.c): the description of one call and the layout of the
 * prepared activations. Private to ops/qmatmul*. */
#ifndef KINFER_QMATMUL_INTERNAL_H
#define KINFER_QMATMUL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ops/qmatmul.h"

/* One call, prepared: X in the form the kernels read, W, Y.
 * Q8 mode, block-type W: row m of X is xq + m * xq_ld (K int8 codes),
 *   its block j has scale xd[m * nb + j] and xs[m * nb + j] = scale * sum
 *   of the block's codes (for Q4_1's m term and Q4_0's -8 offset).
 * F32 mode (and F32/F16/BF16 W in either mode): row m of X is x + m * K;
 *   for Q4_1 W, xs[m * nb + j] = sum of block j of the row (FP32). */
typedef struct qmm_call {
    size_t M, K, N, nb; /* nb = K / 32 for block types */
    const float *x;
    const int8_t *xq;
    size_t xq_ld;
    const float *xd, *xs;
    const unsigned char *w;
    size_t w_ld; /* bytes per W row */
    kinfer_qtype wtype;
    kinfer_qmm_act act;
    float *y;
    bool accumulate;
} qmm_call;

/* Computes y[:, n0:n1) of the call. scratch: qmm_scratch_bytes(K) bytes,
 * 64-byte aligned, the calling worker's own. */
typedef void (*qmm_rows_fn)(const qmm_call *c, size_t n0, size_t n1, void *scratch);

/* Per-worker scratch of the wide-M kernels: a tile of four W rows
 * unpacked (Q8 mode: codes, spread scales, Q8_0 corrections, offsets;
 * F32 mode: the rows dequantized to FP32). */
static inline size_t qmm_scratch_bytes(size_t max_k) {
    size_t nb = (max_k + 31) / 32 + 1, pairs = (nb + 1) / 2;
    size_t q8 = 4 * nb * 32 + 4 * pairs * 64 * 2 + 4 * nb * sizeof(float);
    size_t f32 = 4 * (max_k + 16) * sizeof(float); /* four rows widened to FP32 */
    return (q8 > f32 ? q8 : f32) + 256;
}
/* Prepares row m of X for the call's mode: Q8 codes, scales and sums, or
 * the FP32 block sums. Every ISA's version gives bit-identical results
 * (same FP32 operations in the same order; round half to even). */
typedef void (*qmm_prep_fn)(const qmm_call *c, size_t m, int8_t *xq, float *xd, float *xs);

void qmm_portable_rows(const qmm_call *c, size_t n0, size_t n1, void *scratch);
void qmm_portable_prep(const qmm_call *c, size_t m, int8_t *xq, float *xd, float *xs);
#if defined(__x86_64__) && defined(__GNUC__)
#define KINFER_QMM_X86 1
void qmm_avx2_rows(const qmm_call *c, size_t n0, size_t n1, void *scratch);
void qmm_avx2_prep(const qmm_call *c, size_t m, int8_t *xq, float *xd, float *xs);
void qmm_avx512_rows(const qmm_call *c, size_t n0, size_t n1, void *scratch);
void qmm_avx512_prep(const qmm_call *c, size_t m, int8_t *xq, float *xd, float *xs);
#endif

/* Round to nearest, ties to even, for |v| < 2^22 (the codes: |v| <= 127):
 * adding and subtracting 1.5 * 2^23 leaves the integer part in FP32's
 * default rounding mode; the SIMD versions do the same two operations. */
static inline float qmm_round(float v) {
    return (v + 12582912.0f) - 12582912.0f;
}

#endif
