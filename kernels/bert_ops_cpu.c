/* bert_ops_cpu.c — CPU implementation of bert_ops.h. Attention works per
 * (sequence, head) on strided views into the packed QKV matrix, so nothing
 * is transposed or copied. LayerNorm and pooling accumulate in double: the
 * reference is PyTorch FP32, and the extra precision only moves us closer
 * to the exact value. exp and erf are kinfer_hd.h's vectorisable
 * approximations (few-ulp errors, below what PyTorch's own vector paths
 * give), shared with the CUDA kernels. */
#include "bert_ops.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#include "bert_model.h"
#include "bias_act.h"

/* The element-wise loops are compiled for several ISAs and picked at load
 * time (GCC/clang function multi-versioning): the project builds for the
 * x86-64 baseline, which would leave them at SSE2. */
/* Sanitizer runtimes are not up when ifunc resolvers run: no clones there. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define BERT_NO_MULTIVERSION 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) ||                         \
    __has_feature(memory_sanitizer)
#define BERT_NO_MULTIVERSION 1
#endif
#endif
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) &&                             \
    !defined(BERT_NO_MULTIVERSION)
/* GCC's -O2 cost model leaves these loops scalar; O3 for them alone. */
#define BERT_MULTIVERSION                                                                          \
    __attribute__((target_clones("avx512f", "avx2", "default"), optimize("O3")))
#else
/* Not under clang: clang 14 emits target_clones resolvers for these
 * non-static functions under mangled names only, so callers in other
 * files fail to link. */
#define BERT_MULTIVERSION
#endif

float bert_erf_fast(float x) {
    return kinfer_erf_fast(x);
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
            row[c] = kinfer_gelu_erf(row[c] + bias[c]);
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

float bert_exp_fast(float x) {
    return kinfer_exp_fast(x);
}

/* Softmax of one row in place, with the vectorisable exp; the max and the
 * sum run in their own loops so that the exp loop has no reduction. */
BERT_MULTIVERSION
static void softmax_row(float *row, size_t n) {
    /* Eight-lane partial max and sum: reductions GCC vectorises without
     * -ffast-math. */
    float m8[8], s8[8];
    for (size_t u = 0; u < 8; u++)
        m8[u] = row[0];
    size_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (size_t u = 0; u < 8; u++)
            m8[u] = row[j + u] > m8[u] ? row[j + u] : m8[u];
    float mx = m8[0];
    for (size_t u = 1; u < 8; u++)
        mx = m8[u] > mx ? m8[u] : mx;
    for (; j < n; j++)
        mx = row[j] > mx ? row[j] : mx;
    for (j = 0; j < n; j++)
        row[j] = kinfer_exp_fast(row[j] - mx);
    for (size_t u = 0; u < 8; u++)
        s8[u] = 0.0f;
    for (j = 0; j + 8 <= n; j += 8)
        for (size_t u = 0; u < 8; u++)
            s8[u] += row[j + u];
    float sum = ((s8[0] + s8[1]) + (s8[2] + s8[3])) + ((s8[4] + s8[5]) + (s8[6] + s8[7]));
    for (; j < n; j++)
        sum += row[j];
    float inv = 1.0f / sum;
    for (j = 0; j < n; j++)
        row[j] *= inv;
}

/* Two sgemm calls on strided views; pool threads run heads concurrently,
 * which OpenBLAS allows (these sizes run in the calling thread). */
void bert_attention_head_cpu(const float *qkv, float *ctx, size_t a, size_t len, size_t hidden,
                             size_t heads, size_t h, float *scores) {
    size_t dh = hidden / heads, ld = 3 * hidden;
    if (len == 0)
        return;
    float scale = 1.0f / sqrtf((float)dh);
    const float *base = qkv + a * ld;
    const float *q = base + h * dh, *k = base + hidden + h * dh, *v = base + 2 * hidden + h * dh;
    /* scores [len, len] = scale * Q K^T */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)len, (int)len, (int)dh, scale, q,
                (int)ld, k, (int)ld, 0.0f, scores, (int)len);
    for (size_t i = 0; i < len; i++)
        softmax_row(scores + i * len, len);
    /* ctx [len, dh] (columns h*dh of [T, H]) = scores V */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)len, (int)dh, (int)len, 1.0f,
                scores, (int)len, v, (int)ld, 0.0f, ctx + a * hidden + h * dh, (int)hidden);
}

void bert_attention_cpu(const float *qkv, float *ctx, const uint32_t *seq_start, size_t nseqs,
                        size_t hidden, size_t heads, float *scores) {
    for (size_t s = 0; s < nseqs; s++)
        for (size_t h = 0; h < heads; h++)
            bert_attention_head_cpu(qkv, ctx, seq_start[s], seq_start[s + 1] - seq_start[s], hidden,
                                    heads, h, scores);
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
