/* bert_ops_cpu.c — CPU implementation of bert_ops.h. Attention uses two
 * small OpenBLAS GEMMs per (sequence, head) with strided views into the
 * packed QKV matrix, so nothing is transposed or copied. Reductions
 * accumulate in double: the reference is PyTorch FP32, and the extra
 * precision only moves us closer to the exact value. */
#include "bert_ops.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#include "bert_model.h"
#include "bias_act.h"

/* The element-wise loops are compiled for several ISAs and picked at load
 * time (GCC/clang function multi-versioning): the project builds for the
 * x86-64 baseline, which would leave them at SSE2. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) &&                             \
    !defined(__SANITIZE_ADDRESS__)
/* GCC's -O2 cost model leaves these loops scalar; O3 for them alone. */
#define BERT_MULTIVERSION                                                                          \
    __attribute__((target_clones("avx512f", "avx2", "default"), optimize("O3")))
#elif defined(__x86_64__) && defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define BERT_MULTIVERSION __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define BERT_MULTIVERSION
#endif

static inline float erf_rational(float x) {
    x = x < -4.0f ? -4.0f : x; /* not fminf: a libm call that blocks vectorising */
    x = x > 4.0f ? 4.0f : x;
    float x2 = x * x;
    float p = -2.72614225801306e-10f;
    p = p * x2 + 2.77068142495902e-08f;
    p = p * x2 + -2.10102402082508e-06f;
    p = p * x2 + -5.69250639462346e-05f;
    p = p * x2 + -7.34990630326855e-04f;
    p = p * x2 + -2.95459980854025e-03f;
    p = p * x2 + -1.60960333262415e-02f;
    float q = -1.45660718464996e-05f;
    q = q * x2 + -2.13374055278905e-04f;
    q = q * x2 + -1.68282697438203e-03f;
    q = q * x2 + -7.37332916720468e-03f;
    q = q * x2 + -1.42647390514189e-02f;
    return x * p / q;
}

float bert_erf_fast(float x) {
    return erf_rational(x);
}

BERT_MULTIVERSION
void bert_bias_cpu(float *y, const float *bias, size_t rows, size_t cols) {
    for (size_t r = 0; r < rows; r++) {
        float *row = y + r * cols;
        for (size_t c = 0; c < cols; c++)
            row[c] += bias[c];
    }
}

BERT_MULTIVERSION
void bert_bias_gelu_cpu(float *y, const float *bias, size_t rows, size_t cols) {
    for (size_t r = 0; r < rows; r++) {
        float *row = y + r * cols;
        for (size_t c = 0; c < cols; c++) {
            float v = row[c] + bias[c];
            row[c] = 0.5f * v * (1.0f + erf_rational(v * 0.70710678118654752440f));
        }
    }
}

void bert_add_layernorm_cpu(float *x, const float *res, const float *g, const float *b, size_t rows,
                            size_t cols, float eps) {
    for (size_t r = 0; r < rows; r++) {
        float *row = x + r * cols;
        if (res) {
            const float *rr = res + r * cols;
            for (size_t c = 0; c < cols; c++)
                row[c] += rr[c];
        }
        double sum = 0.0;
        for (size_t c = 0; c < cols; c++)
            sum += row[c];
        double mean = sum / (double)cols, var = 0.0;
        for (size_t c = 0; c < cols; c++) {
            double d = row[c] - mean;
            var += d * d;
        }
        float inv = (float)(1.0 / sqrt(var / (double)cols + (double)eps));
        float fm = (float)mean;
        for (size_t c = 0; c < cols; c++)
            row[c] = (row[c] - fm) * inv * g[c] + b[c];
    }
}

void bert_embed_cpu(float *x, const int32_t *ids, const int32_t *pos, const int32_t *types,
                    size_t ntokens, const float *word, const float *posemb, const float *typeemb,
                    const float *g, const float *b, size_t hidden, float eps) {
    for (size_t t = 0; t < ntokens; t++) {
        float *row = x + t * hidden;
        const float *w = word + (size_t)ids[t] * hidden;
        const float *p = posemb + (size_t)pos[t] * hidden;
        const float *ty = typeemb + (size_t)types[t] * hidden;
        for (size_t c = 0; c < hidden; c++)
            row[c] = w[c] + ty[c] + p[c]; /* transformers' order: word + type, then + position */
    }
    bert_add_layernorm_cpu(x, NULL, g, b, ntokens, hidden, eps);
}

void bert_attention_cpu(const float *qkv, float *ctx, const uint32_t *seq_start, size_t nseqs,
                        size_t hidden, size_t heads, float *scores) {
    size_t dh = hidden / heads, ld = 3 * hidden;
    float scale = 1.0f / sqrtf((float)dh);
    for (size_t s = 0; s < nseqs; s++) {
        size_t a = seq_start[s], len = seq_start[s + 1] - a;
        if (len == 0)
            continue;
        const float *base = qkv + a * ld;
        for (size_t h = 0; h < heads; h++) {
            const float *q = base + h * dh, *k = base + hidden + h * dh,
                        *v = base + 2 * hidden + h * dh;
            /* scores [len, len] = scale * Q K^T */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)len, (int)len, (int)dh, scale,
                        q, (int)ld, k, (int)ld, 0.0f, scores, (int)len);
            kinfer_softmax_rows_cpu(scores, len, len);
            /* ctx [len, dh] (columns h*dh of [T, H]) = scores V */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)len, (int)dh, (int)len,
                        1.0f, scores, (int)len, v, (int)ld, 0.0f, ctx + a * hidden + h * dh,
                        (int)hidden);
        }
    }
}

void bert_pool_cpu(const float *x, const uint32_t *seq_start, size_t nseqs, size_t hidden,
                   unsigned modes, float *out) {
    size_t k = 0;
    for (unsigned b = modes; b; b &= b - 1)
        k++;
    for (size_t s = 0; s < nseqs; s++) {
        size_t a = seq_start[s], len = seq_start[s + 1] - a;
        float *o = out + s * k * hidden;
        const float *xs = x + a * hidden;
        if (modes & BERT_POOL_CLS) {
            memcpy(o, xs, hidden * sizeof(float));
            o += hidden;
        }
        if (modes & BERT_POOL_MAX) {
            for (size_t c = 0; c < hidden; c++) {
                float m = xs[c];
                for (size_t t = 1; t < len; t++)
                    m = fmaxf(m, xs[t * hidden + c]);
                o[c] = m;
            }
            o += hidden;
        }
        if (modes & (BERT_POOL_MEAN | BERT_POOL_MEAN_SQRT)) {
            for (size_t c = 0; c < hidden; c++) {
                double sum = 0.0;
                for (size_t t = 0; t < len; t++)
                    sum += xs[t * hidden + c];
                if (modes & BERT_POOL_MEAN)
                    o[c] = (float)(sum / (double)len);
                if (modes & BERT_POOL_MEAN_SQRT)
                    o[c + ((modes & BERT_POOL_MEAN) ? hidden : 0)] =
                        (float)(sum / sqrt((double)len));
            }
        }
    }
}

void bert_l2_normalize_cpu(float *row, size_t n) {
    double ss = 0.0;
    for (size_t i = 0; i < n; i++)
        ss += (double)row[i] * row[i];
    double norm = sqrt(ss);
    float inv = (float)(1.0 / (norm > 1e-12 ? norm : 1e-12));
    for (size_t i = 0; i < n; i++)
        row[i] *= inv;
}
