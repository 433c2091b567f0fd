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
