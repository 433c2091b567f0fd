/* qmatmul_portable.c — the plain C path of qmatmul (any CPU), and the
 * statement of what the SIMD paths compute: per 32-element block an
 * integer dot product of codes (Q8 mode) or an FP32 dot product of the
 * block widened in registers (F32 mode), scaled and summed over the row. */
#include <math.h>
#include <string.h>

#include "ops/convert.h"
#include "ops/qmatmul_internal.h"

void qmm_portable_prep(const qmm_call *c, size_t m, int8_t *xq, float *xd, float *xs) {
    const float *x = c->x + m * c->K;
    if (c->act == KINFER_QMM_ACT_F32) {
        for (size_t j = 0; j < c->nb; j++) {
            float s = 0.0f;
            for (int i = 0; i < KINFER_QK; i++)
                s += x[j * KINFER_QK + (size_t)i];
            xs[j] = s;
        }
        return;
    }
    for (size_t j = 0; j < c->nb; j++, x += KINFER_QK, xq += KINFER_QK) {
        float amax = 0.0f;
        int bad = 0;
        for (int i = 0; i < KINFER_QK; i++) {
            float a = fabsf(x[i]);
            if (a != a)
                bad = 1;
            else if (a > amax)
                amax = a;
        }
        float d = amax / 127.0f;
        if (bad || d == INFINITY) { /* Inf/NaN in the block: the row's outputs are NaN */
            memset(xq, 0, KINFER_QK);
            xd[j] = NAN;
            xs[j] = NAN;
            continue;
        }
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        int sum = 0;
        for (int i = 0; i < KINFER_QK; i++) {
            int q = (int)qmm_round(x[i] * id);
            xq[i] = (int8_t)q;
            sum += q;
        }
        xd[j] = d;
        xs[j] = d * (float)sum;
    }
}

/* Block j of W row `wr` widened to FP32 (the F32-mode operand). */
static void widen_block(const qmm_call *c, const unsigned char *wr, size_t j, float *out) {
    switch (c->wtype) {
    case KINFER_QTYPE_Q8_0: {
        const kinfer_block_q8_0 *b = (const kinfer_block_q8_0 *)wr + j;
        for (int i = 0; i < KINFER_QK; i++)
            out[i] = (float)b->qs[i];
        break;
    }
    case KINFER_QTYPE_Q4_0: {
        const kinfer_block_q4_0 *b = (const kinfer_block_q4_0 *)wr + j;
        for (int i = 0; i < KINFER_QK / 2; i++) {
            out[i] = (float)((b->qs[i] & 0x0f) - 8);
            out[i + KINFER_QK / 2] = (float)((b->qs[i] >> 4) - 8);
        }
        break;
    }
    default: { /* Q4_1: codes only; the m term uses the block sum of X */
        const kinfer_block_q4_1 *b = (const kinfer_block_q4_1 *)wr + j;
        for (int i = 0; i < KINFER_QK / 2; i++) {
            out[i] = (float)(b->qs[i] & 0x0f);
            out[i + KINFER_QK / 2] = (float)(b->qs[i] >> 4);
        }
        break;
    }
    }
}

static float block_d(const qmm_call *c, const unsigned char *wr, size_t j) {
    /* d is the first field of every block type */
    const unsigned char *b = wr + j * kinfer_qtype_block_bytes(c->wtype);
    return kinfer_fp16_to_fp32((uint16_t)(b[0] | (b[1] << 8)));
}

static float block_m(const unsigned char *wr, size_t j) {
    const kinfer_block_q4_1 *b = (const kinfer_block_q4_1 *)wr + j;
    return kinfer_fp16_to_fp32(b->m);
}

/* Block codes as ints (Q8 mode): Q4_0 as the raw nibble (0..15); the -8
 * is applied through the X sum, as the SIMD paths do. */
static int dot_codes(const qmm_call *c, const unsigned char *wr, size_t j, const int8_t *xq) {
    int s = 0;
    if (c->wtype == KINFER_QTYPE_Q8_0) {
        const kinfer_block_q8_0 *b = (const kinfer_block_q8_0 *)wr + j;
        for (int i = 0; i < KINFER_QK; i++)
            s += b->qs[i] * xq[i];
        return s;
    }
    /* Q4_0 and Q4_1 share the nibble layout after d (and m) */
    const uint8_t *qs = c->wtype == KINFER_QTYPE_Q4_0 ? ((const kinfer_block_q4_0 *)wr + j)->qs
                                                      : ((const kinfer_block_q4_1 *)wr + j)->qs;
    for (int i = 0; i < KINFER_QK / 2; i++)
        s += (qs[i] & 0x0f) * xq[i] + (qs[i] >> 4) * xq[i + KINFER_QK / 2];
    return s;
}

static float dot_float_row(const qmm_call *c, const unsigned char *wr, const float *x) {
    float acc[8] = {0};
    float buf[64];
    for (size_t k0 = 0; k0 < c->K; k0 += 64) {
        size_t len = c->K - k0 < 64 ? c->K - k0 : 64;
        if (c->wtype == KINFER_QTYPE_F32)
            memcpy(buf, wr + k0 * 4, len * 4);
        else if (c->wtype == KINFER_QTYPE_F16)
            kinfer_fp16_to_fp32_n(wr + k0 * 2, buf, len);
        else
            kinfer_bf16_to_fp32_n(wr + k0 * 2, buf, len);
        for (size_t i = 0; i < len; i++)
            acc[i & 7] += buf[i] * x[k0 + i];
    }
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

static float dot_block_row(const qmm_call *c, const unsigned char *wr, size_t m) {
    float acc = 0.0f;
    if (c->act == KINFER_QMM_ACT_Q8) {
        const int8_t *xq = c->xq + m * c->xq_ld;
        const float *xd = c->xd + m * c->nb, *xs = c->xs + m * c->nb;
        for (size_t j = 0; j < c->nb; j++) {
            float d = block_d(c, wr, j);
            float dot = xd[j] * (float)dot_codes(c, wr, j, xq + j * KINFER_QK);
            if (c->wtype == KINFER_QTYPE_Q4_0)
                dot -= 8.0f * xs[j];
            acc += d * dot;
            if (c->wtype == KINFER_QTYPE_Q4_1)
                acc += block_m(wr, j) * xs[j];
        }
        return acc;
    }
    const float *x = c->x + m * c->K;
    float wb[KINFER_QK];
    for (size_t j = 0; j < c->nb; j++) {
        widen_block(c, wr, j, wb);
        float p[4] = {0};
        for (int i = 0; i < KINFER_QK; i++)
            p[i & 3] += wb[i] * x[j * KINFER_QK + (size_t)i];
        acc += block_d(c, wr, j) * ((p[0] + p[1]) + (p[2] + p[3]));
        if (c->wtype == KINFER_QTYPE_Q4_1)
            acc += block_m(wr, j) * c->xs[m * c->nb + j];
    }
    return acc;
}

void qmm_portable_rows(const qmm_call *c, size_t n0, size_t n1, void *scratch) {
    (void)scratch;
    bool block = kinfer_qtype_is_block(c->wtype);
    for (size_t n = n0; n < n1; n++) {
        const unsigned char *wr = c->w + n * c->w_ld;
        for (size_t m = 0; m < c->M; m++) {
            float v = block ? dot_block_row(c, wr, m) : dot_float_row(c, wr, c->x + m * c->K);
            float *y = c->y + m * c->N + n;
            *y = c->accumulate ? *y + v : v;
        }
    }
}
