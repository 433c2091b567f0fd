/* paged_attention_cpu.c — causal grouped-query attention over paged KV
 * blocks (paged_kv.h), the C twin of paged_attention.cu. One task per
 * (fed token, kv head): its query heads (up to 8 at a time) walk the
 * sequence's blocks in order with an online softmax (running max and sum,
 * one block of scores at a time), so no scratch grows with the context.
 * Vectorised for the CPU at hand (cpu_multiversion.h). */
#include <math.h>
#include <string.h>

#include "ops/convert.h"
#include "ops/cpu_multiversion.h"
#include "ops/kinfer_hd.h"
#include "ops/paged_kv.h"

/* Query heads of one group processed together. */
#define GROUP_CHUNK 8

typedef struct attn_ctx {
    const kinfer_kv_view *kv;
    const float *q;
    size_t ldq;
    float *out;
    size_t ldo;
    size_t n_head, grp; /* grp = n_head / n_kv_head */
    const kinfer_kv_seq *seqs;
    size_t nseqs;
    const uint32_t *blocks;
    float scale;
} attn_ctx;

/* The sequence holding `row` (rows are packed in sequence order). */
static const kinfer_kv_seq *seq_of(const attn_ctx *c, size_t row) {
    size_t lo = 0, hi = c->nseqs;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (c->seqs[mid].row <= row)
            lo = mid;
        else
            hi = mid;
    }
    return &c->seqs[lo];
}

/* Row t of a K or V tile: the pool's floats, or the F16 ones widened into tmp. */
static inline const float *kv_row(const kinfer_kv_view *kv, const unsigned char *tile, size_t t,
                                  float *tmp) {
    size_t hd = kv->head_dim;
    if (kv->dtype == KINFER_KV_F32)
        return (const float *)(const void *)tile + t * hd;
    kinfer_fp16_to_fp32_n(tile + t * hd * 2, tmp, hd);
    return tmp;
}

static inline float dot(const float *a, const float *b, size_t n) {
    float lanes[16] = {0};
    size_t k = 0;
    for (; k + 16 <= n; k += 16)
        for (int l = 0; l < 16; l++)
            lanes[l] += a[k + (size_t)l] * b[k + (size_t)l];
    float s = 0.0f;
    for (int l = 0; l < 16; l++)
        s += lanes[l];
    for (; k < n; k++)
        s += a[k] * b[k];
    return s;
}

KINFER_CPU_MULTIVERSION
static void attend(const attn_ctx *c, size_t row, size_t g) {
    const kinfer_kv_view *kv = c->kv;
    const kinfer_kv_seq *sq = seq_of(c, row);
    const size_t hd = kv->head_dim, T = kv->block_tokens;
    const size_t elem = kinfer_kv_elem_bytes(kv->dtype);
    const size_t p = (size_t)sq->pos + (row - sq->row); /* sees positions [0, p] */
    float qv[GROUP_CHUNK][KINFER_KV_MAX_HEAD_DIM], acc[GROUP_CHUNK][KINFER_KV_MAX_HEAD_DIM];
    float sc[KINFER_KV_MAX_BLOCK_TOKENS], tmp[KINFER_KV_MAX_HEAD_DIM];
    float mx[GROUP_CHUNK], sum[GROUP_CHUNK];
    for (size_t h0 = 0; h0 < c->grp; h0 += GROUP_CHUNK) {
        size_t nh = c->grp - h0 < GROUP_CHUNK ? c->grp - h0 : GROUP_CHUNK;
        for (size_t i = 0; i < nh; i++) {
            memcpy(qv[i], c->q + row * c->ldq + (g * c->grp + h0 + i) * hd, hd * sizeof(float));
            memset(acc[i], 0, hd * sizeof(float));
            mx[i] = -INFINITY;
            sum[i] = 0.0f;
        }
        for (size_t b = 0; b * T <= p; b++) {
            size_t nt = p + 1 - b * T < T ? p + 1 - b * T : T;
            const unsigned char *blk =
                kv->base + (size_t)c->blocks[sq->block0 + b] * kv->block_bytes;
            const unsigned char *kt = blk + g * T * hd * elem, *vt = kt + kv->v_off;
            for (size_t i = 0; i < nh; i++) {
                float bmax = -INFINITY;
                for (size_t t = 0; t < nt; t++) {
                    sc[t] = c->scale * dot(qv[i], kv_row(kv, kt, t, tmp), hd);
                    bmax = sc[t] > bmax ? sc[t] : bmax;
                }
                float m = bmax > mx[i] ? bmax : mx[i];
                float corr = kinfer_exp_fast(mx[i] - m);
                mx[i] = m;
                float s = sum[i] * corr;
                for (size_t d = 0; d < hd; d++)
                    acc[i][d] *= corr;
                for (size_t t = 0; t < nt; t++) {
                    float e = kinfer_exp_fast(sc[t] - m);
                    s += e;
                    const float *vr = kv_row(kv, vt, t, tmp);
                    for (size_t d = 0; d < hd; d++)
                        acc[i][d] += e * vr[d];
                }
                sum[i] = s;
            }
        }
        for (size_t i = 0; i < nh; i++) {
            float inv = 1.0f / sum[i];
            float *o = c->out + row * c->ldo + (g * c->grp + h0 + i) * hd;
            for (size_t d = 0; d < hd; d++)
                o[d] = acc[i][d] * inv;
        }
    }
}

static void attn_task(void *p, size_t task, int worker) {
    (void)worker;
    const attn_ctx *c = p;
    attend(c, task / c->kv->n_kv_head, task % c->kv->n_kv_head);
}

void kinfer_paged_attention_cpu(kinfer_threads *threads, const kinfer_kv_view *kv, const float *q,
                                size_t ldq, float *out, size_t ldo, size_t n_head,
                                const kinfer_kv_seq *seqs, size_t nseqs, const uint32_t *blocks,
                                float scale) {
    if (nseqs == 0)
        return;
    size_t rows = (size_t)seqs[nseqs - 1].row + seqs[nseqs - 1].ntokens;
    attn_ctx c = {
        .kv = kv,
        .q = q,
        .ldq = ldq,
        .out = out,
        .ldo = ldo,
        .n_head = n_head,
        .grp = n_head / kv->n_kv_head,
        .seqs = seqs,
        .nseqs = nseqs,
        .blocks = blocks,
        .scale = scale,
    };
    size_t ntasks = rows * kv->n_kv_head;
    if (threads)
        kinfer_threads_run(threads, attn_task, &c, ntasks);
    else
        for (size_t t = 0; t < ntasks; t++)
            attn_task(&c, t, 0);
}
