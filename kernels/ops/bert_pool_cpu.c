/* bert_pool_cpu.c — CPU twin of bert_pool.cu: sentence-transformers
 * pooling (cls, max, mean, mean_sqrt_len) and L2 normalisation. Sums
 * accumulate in double. */
#include <math.h>
#include <string.h>

#include "bert_ops.h"

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
