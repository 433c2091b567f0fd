/* quant_cpu.c — the llm weight types (quant.h): names, sizes, the GGUF type
 * id mapping that refuses unsupported types by name, and portable
 * dequantize/quantize of one row. The hot dot products live in
 * qmatmul_*.c and never call these per token. */
#include "ops/quant.h"

#include <math.h>
#include <string.h>

#include "ops/convert.h"

static const struct {
    const char *name;
    size_t elems, bytes;
} qtypes[] = {
    [KINFER_QTYPE_F32] = {"F32", 1, 4},
    [KINFER_QTYPE_F16] = {"F16", 1, 2},
    [KINFER_QTYPE_BF16] = {"BF16", 1, 2},
    [KINFER_QTYPE_Q8_0] = {"Q8_0", KINFER_QK, sizeof(kinfer_block_q8_0)},
    [KINFER_QTYPE_Q4_0] = {"Q4_0", KINFER_QK, sizeof(kinfer_block_q4_0)},
    [KINFER_QTYPE_Q4_1] = {"Q4_1", KINFER_QK, sizeof(kinfer_block_q4_1)},
};
_Static_assert(sizeof(qtypes) / sizeof(qtypes[0]) == KINFER_QTYPE_COUNT,
               "qtypes[] names every kinfer_qtype");

static bool valid(kinfer_qtype t) {
    return (unsigned)t < KINFER_QTYPE_COUNT;
}

const char *kinfer_qtype_name(kinfer_qtype t) {
    return valid(t) ? qtypes[t].name : "?";
}

size_t kinfer_qtype_block_elems(kinfer_qtype t) {
    return valid(t) ? qtypes[t].elems : 0;
}

size_t kinfer_qtype_block_bytes(kinfer_qtype t) {
    return valid(t) ? qtypes[t].bytes : 0;
}

bool kinfer_qtype_is_block(kinfer_qtype t) {
    return valid(t) && qtypes[t].elems > 1;
}

kinfer_err kinfer_qtype_row_bytes(kinfer_qtype t, size_t n, size_t *bytes, kinfer_error *err) {
    if (!valid(t))
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "invalid tensor type %d", (int)t);
    if (n % qtypes[t].elems != 0)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "%s rows must hold a multiple of %zu elements (got %zu)",
                                qtypes[t].name, qtypes[t].elems, n);
    size_t blocks = n / qtypes[t].elems;
    if (blocks > SIZE_MAX / qtypes[t].bytes)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "%s row of %zu elements too large",
                                qtypes[t].name, n);
    *bytes = blocks * qtypes[t].bytes;
    return KINFER_OK;
}

/* GGML's ggml_type ids (ggml.h); the gaps are ids GGML retired. */
static const char *const ggml_names[] = {
    [0] = "F32",     [1] = "F16",      [2] = "Q4_0",   [3] = "Q4_1",    [6] = "Q5_0",
    [7] = "Q5_1",    [8] = "Q8_0",     [9] = "Q8_1",   [10] = "Q2_K",   [11] = "Q3_K",
    [12] = "Q4_K",   [13] = "Q5_K",    [14] = "Q6_K",  [15] = "Q8_K",   [16] = "IQ2_XXS",
    [17] = "IQ2_XS", [18] = "IQ3_XXS", [19] = "IQ1_S", [20] = "IQ4_NL", [21] = "IQ3_S",
    [22] = "IQ2_S",  [23] = "IQ4_XS",  [24] = "I8",    [25] = "I16",    [26] = "I32",
    [27] = "I64",    [28] = "F64",     [29] = "IQ1_M", [30] = "BF16",   [34] = "TQ1_0",
    [35] = "TQ2_0",  [39] = "MXFP4",
};

const char *kinfer_ggml_type_name(uint32_t ggml_type) {
    if (ggml_type < sizeof(ggml_names) / sizeof(ggml_names[0]) && ggml_names[ggml_type])
        return ggml_names[ggml_type];
    return "unknown";
}

kinfer_err kinfer_qtype_from_ggml(uint32_t ggml_type, const char *what, kinfer_qtype *out,
                                  kinfer_error *err) {
    switch (ggml_type) {
    case 0:
        *out = KINFER_QTYPE_F32;
        return KINFER_OK;
    case 1:
        *out = KINFER_QTYPE_F16;
        return KINFER_OK;
    case 2:
        *out = KINFER_QTYPE_Q4_0;
        return KINFER_OK;
    case 3:
        *out = KINFER_QTYPE_Q4_1;
        return KINFER_OK;
    case 8:
        *out = KINFER_QTYPE_Q8_0;
        return KINFER_OK;
    case 30:
        *out = KINFER_QTYPE_BF16;
        return KINFER_OK;
    default:
        return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                "%s%stensor type %s (ggml type %u) is not supported "
                                "(supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1)",
                                what ? what : "", what ? ": " : "",
                                kinfer_ggml_type_name(ggml_type), ggml_type);
    }
}

void kinfer_dequantize_row_cpu(const void *src, kinfer_qtype t, float *dst, size_t n) {
    switch (t) {
    case KINFER_QTYPE_F32:
        memcpy(dst, src, n * sizeof(float));
        break;
    case KINFER_QTYPE_F16:
        kinfer_fp16_to_fp32_n(src, dst, n);
        break;
    case KINFER_QTYPE_BF16:
        kinfer_bf16_to_fp32_n(src, dst, n);
        break;
    case KINFER_QTYPE_Q8_0: {
        const kinfer_block_q8_0 *b = src;
        for (size_t i = 0; i < n / KINFER_QK; i++, dst += KINFER_QK) {
            float d = kinfer_fp16_to_fp32(b[i].d);
            for (int j = 0; j < KINFER_QK; j++)
                dst[j] = d * (float)b[i].qs[j];
        }
        break;
    }
    case KINFER_QTYPE_Q4_0: {
        const kinfer_block_q4_0 *b = src;
        for (size_t i = 0; i < n / KINFER_QK; i++, dst += KINFER_QK) {
            float d = kinfer_fp16_to_fp32(b[i].d);
            for (int j = 0; j < KINFER_QK / 2; j++) {
                dst[j] = d * (float)((b[i].qs[j] & 0x0f) - 8);
                dst[j + KINFER_QK / 2] = d * (float)((b[i].qs[j] >> 4) - 8);
            }
        }
        break;
    }
    case KINFER_QTYPE_Q4_1: {
        const kinfer_block_q4_1 *b = src;
        for (size_t i = 0; i < n / KINFER_QK; i++, dst += KINFER_QK) {
            float d = kinfer_fp16_to_fp32(b[i].d), m = kinfer_fp16_to_fp32(b[i].m);
            for (int j = 0; j < KINFER_QK / 2; j++) {
                dst[j] = d * (float)(b[i].qs[j] & 0x0f) + m;
                dst[j + KINFER_QK / 2] = d * (float)(b[i].qs[j] >> 4) + m;
            }
        }
        break;
    }
    default:
        break;
    }
}

/* GGML's reference quantizers (quantize_row_*_ref): the scale from the
 * block's extreme(s), the codes by the unrounded inverse scale. */
static void quantize_q8_0(const float *x, kinfer_block_q8_0 *b) {
    float amax = 0.0f;
    for (int j = 0; j < KINFER_QK; j++)
        amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
    float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    b->d = kinfer_fp32_to_fp16(d);
    for (int j = 0; j < KINFER_QK; j++)
        b->qs[j] = (int8_t)roundf(x[j] * id);
}

static void quantize_q4_0(const float *x, kinfer_block_q4_0 *b) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < KINFER_QK; j++)
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    float d = max / -8.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    b->d = kinfer_fp32_to_fp16(d);
    for (int j = 0; j < KINFER_QK / 2; j++) {
        int q0 = (int)(x[j] * id + 8.5f), q1 = (int)(x[j + KINFER_QK / 2] * id + 8.5f);
        q0 = q0 > 15 ? 15 : q0;
        q1 = q1 > 15 ? 15 : q1;
        b->qs[j] = (uint8_t)(q0 | (q1 << 4));
    }
}

static void quantize_q4_1(const float *x, kinfer_block_q4_1 *b) {
    float min = INFINITY, max = -INFINITY;
    for (int j = 0; j < KINFER_QK; j++) {
        min = x[j] < min ? x[j] : min;
        max = x[j] > max ? x[j] : max;
    }
    float d = (max - min) / 15.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    b->d = kinfer_fp32_to_fp16(d);
    b->m = kinfer_fp32_to_fp16(min);
    for (int j = 0; j < KINFER_QK / 2; j++) {
        int q0 = (int)((x[j] - min) * id + 0.5f);
        int q1 = (int)((x[j + KINFER_QK / 2] - min) * id + 0.5f);
        q0 = q0 > 15 ? 15 : q0;
        q1 = q1 > 15 ? 15 : q1;
        b->qs[j] = (uint8_t)(q0 | (q1 << 4));
    }
}

void kinfer_quantize_row_cpu(const float *src, kinfer_qtype t, void *dst, size_t n) {
    switch (t) {
    case KINFER_QTYPE_F32:
        memcpy(dst, src, n * sizeof(float));
        break;
    case KINFER_QTYPE_F16:
    case KINFER_QTYPE_BF16: {
        unsigned char *p = dst;
        for (size_t i = 0; i < n; i++) {
            uint16_t h =
                t == KINFER_QTYPE_F16 ? kinfer_fp32_to_fp16(src[i]) : kinfer_fp32_to_bf16(src[i]);
            p[2 * i] = (unsigned char)(h & 0xff);
            p[2 * i + 1] = (unsigned char)(h >> 8);
        }
        break;
    }
    case KINFER_QTYPE_Q8_0:
        for (size_t i = 0; i < n / KINFER_QK; i++)
            quantize_q8_0(src + i * KINFER_QK, (kinfer_block_q8_0 *)dst + i);
        break;
    case KINFER_QTYPE_Q4_0:
        for (size_t i = 0; i < n / KINFER_QK; i++)
            quantize_q4_0(src + i * KINFER_QK, (kinfer_block_q4_0 *)dst + i);
        break;
    case KINFER_QTYPE_Q4_1:
        for (size_t i = 0; i < n / KINFER_QK; i++)
            quantize_q4_1(src + i * KINFER_QK, (kinfer_block_q4_1 *)dst + i);
        break;
    default:
        break;
    }
}
