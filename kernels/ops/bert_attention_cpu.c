/* bert_attention_cpu.c — CPU twin of bert_attention.cu: self-attention
 * per (sequence, head) on strided views into the packed QKV matrix, so
 * nothing is transposed or copied. The softmax's exp is kinfer_hd.h's
 * vectorisable approximation, shared with the CUDA kernel. */
#include <cblas.h>
#include <math.h>

#include "bert_ops.h"
#include "cpu_multiversion.h"
#include "kinfer_hd.h"

float bert_exp_fast(float x) {
    return kinfer_exp_fast(x);
}

/* Softmax of one row in place, with the vectorisable exp; the max and the
 * sum run in their own loops so that the exp loop has no reduction. */
KINFER_CPU_MULTIVERSION
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
