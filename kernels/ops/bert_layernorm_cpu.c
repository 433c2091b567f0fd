/* bert_layernorm_cpu.c — CPU twins of bert_layernorm.cu: residual +
 * LayerNorm, and the embedding gather + LayerNorm. Sums run in float over
 * 16 interleaved partial sums (vectorised, and each partial sum adds only
 * cols/16 terms, so the rounding error stays near float's 6e-8 relative;
 * the variance is two-pass, as PyTorch's). */
#include <math.h>

#include "bert_ops.h"
#include "cpu_multiversion.h"

#define LANES 16

/* Reduces LANES partial sums pairwise. */
static float lanes_total(float *acc) {
    for (size_t w = LANES / 2; w > 0; w /= 2)
        for (size_t u = 0; u < w; u++)
            acc[u] += acc[u + w];
    return acc[0];
}

/* Sum of row[0..n) in LANES interleaved partial sums. */
KINFER_CPU_MULTIVERSION
static float row_sum(const float *row, size_t n) {
    float acc[LANES] = {0};
    size_t c = 0;
    for (; c + LANES <= n; c += LANES)
        for (size_t u = 0; u < LANES; u++)
            acc[u] += row[c + u];
    float s = lanes_total(acc);
    for (; c < n; c++)
        s += row[c];
    return s;
}

/* Sum of (row - mean)^2, the same way. */
KINFER_CPU_MULTIVERSION
static float row_sq_dev(const float *row, size_t n, float mean) {
    float acc[LANES] = {0};
    size_t c = 0;
    for (; c + LANES <= n; c += LANES)
        for (size_t u = 0; u < LANES; u++) {
            float d = row[c + u] - mean;
            acc[u] += d * d;
        }
    float s = lanes_total(acc);
    for (; c < n; c++)
        s += (row[c] - mean) * (row[c] - mean);
    return s;
}

KINFER_CPU_MULTIVERSION
static void add_rows(float *row, const float *res, size_t n) {
    for (size_t c = 0; c < n; c++)
        row[c] += res[c];
}

KINFER_CPU_MULTIVERSION
static void scale_shift(float *row, size_t n, float mean, float inv, const float *g,
                        const float *b) {
    for (size_t c = 0; c < n; c++)
        row[c] = (row[c] - mean) * inv * g[c] + b[c];
}

void bert_add_layernorm_cpu(float *x, const float *res, const float *g, const float *b, size_t rows,
                            size_t cols, float eps) {
    for (size_t r = 0; r < rows; r++) {
        float *row = x + r * cols;
        if (res)
            add_rows(row, res + r * cols, cols);
        float mean = row_sum(row, cols) / (float)cols;
        float var = row_sq_dev(row, cols, mean) / (float)cols;
        float inv = 1.0f / sqrtf(var + eps);
        scale_shift(row, cols, mean, inv, g, b);
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
