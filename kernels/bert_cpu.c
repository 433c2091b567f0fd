/* bert_cpu.c — the CPU backend of kind `bert`: one batch = one unpadded
 * token matrix [T, H]; per layer one GEMM for Q|K|V, attention per
 * (sequence, head), one GEMM each for the output projection and the two
 * feed-forward matrices (OpenBLAS, threaded), then pooling, optional L2
 * normalisation and the classification head. Buffers grow with the largest
 * batch seen and are reused; steady state allocates nothing. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bert_model.h"
#include "bert_ops.h"
#include "bias_act.h"
#include "bert_threads.h"
#include "blas_cpu.h"

/* Rows per task of the row-wise ops: big enough to amortise the hand-off. */
#define ROWS_PER_TASK 32

typedef struct bert_cpu_replica {
    kinfer_replica_impl base;
    const bert_model *m;
    uint32_t max_rows;
    bert_packed packed;
    size_t cap_tokens; /* rows of x, qkv, ctx, tmp, inter */
    float *x, *qkv, *ctx, *tmp, *inter;
    float *scores; /* [workers][max_positions^2] */
    size_t scores_stride;
    bert_threads *pool;
    float *pooled;           /* [max_rows, out_dim] */
    float *cls_in, *cls_mid; /* [max_rows, H]: classifier head */
    float *logits;           /* [max_rows, labels] */
    kinfer_str *labels;      /* [max_rows] */
} bert_cpu_replica;

static float *alloc_f(size_t n) {
    return aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
}

static kinfer_err ensure_tokens(bert_cpu_replica *r, size_t T, kinfer_error *err) {
    if (T <= r->cap_tokens)
        return KINFER_OK;
    const bert_model *m = r->m;
    size_t cap = r->cap_tokens ? r->cap_tokens : 512;
    while (cap < T)
        cap *= 2;
    free(r->x);
    free(r->qkv);
    free(r->ctx);
    free(r->tmp);
    free(r->inter);
    r->x = alloc_f(cap * m->hidden);
    r->qkv = alloc_f(cap * 3 * m->hidden);
    r->ctx = alloc_f(cap * m->hidden);
    r->tmp = alloc_f(cap * m->hidden);
    r->inter = alloc_f(cap * m->intermediate);
    if (!r->x || !r->qkv || !r->ctx || !r->tmp || !r->inter) {
        r->cap_tokens = 0;
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory for a batch of %zu tokens",
                                T);
    }
    r->cap_tokens = cap;
    return KINFER_OK;
}

/* A row-wise op spread over the pool: which op and its operands. */
typedef enum row_op { ROW_BIAS, ROW_BIAS_GELU, ROW_ADD_LN, ROW_EMBED } row_op;

typedef struct row_job {
    bert_cpu_replica *r;
    row_op op;
    float *y;
    const float *res, *bias, *g, *b;
    size_t rows, cols;
} row_job;

static void row_task(void *ctx, size_t task, int worker) {
    (void)worker;
    const row_job *j = ctx;
    size_t r0 = task * ROWS_PER_TASK,
           n = j->rows - r0 < ROWS_PER_TASK ? j->rows - r0 : ROWS_PER_TASK;
    const bert_model *m = j->r->m;
    const bert_packed *p = &j->r->packed;
    float *y = j->y + r0 * j->cols;
    switch (j->op) {
    case ROW_BIAS:
        bert_bias_cpu(y, j->bias, n, j->cols);
        break;
    case ROW_BIAS_GELU:
        bert_bias_gelu_cpu(y, j->bias, n, j->cols);
        break;
    case ROW_ADD_LN:
        bert_add_layernorm_cpu(y, j->res + r0 * j->cols, j->g, j->b, n, j->cols, m->ln_eps);
        break;
    case ROW_EMBED:
        bert_embed_cpu(y, p->ids + r0, p->pos + r0, p->types + r0, n, m->word_emb, m->pos_emb,
                       m->type_emb, m->emb_ln_g, m->emb_ln_b, m->hidden, m->ln_eps);
        break;
    }
}

static void run_rows(bert_cpu_replica *r, row_op op, float *y, const float *res, const float *bias,
                     const float *g, const float *b, size_t rows, size_t cols) {
    row_job j = {r, op, y, res, bias, g, b, rows, cols};
    bert_threads_run(r->pool, row_task, &j, (rows + ROWS_PER_TASK - 1) / ROWS_PER_TASK);
}

static void attention_task(void *ctx, size_t task, int worker) {
    bert_cpu_replica *r = ctx;
    const bert_model *m = r->m;
    const bert_packed *p = &r->packed;
    size_t s = task / m->heads, h = task % m->heads;
    bert_attention_head_cpu(r->qkv, r->ctx, p->seq_start[s], p->seq_start[s + 1] - p->seq_start[s],
                            m->hidden, m->heads, h, r->scores + (size_t)worker * r->scores_stride);
}

static void encoder_layer(bert_cpu_replica *r, const bert_layer *L, size_t T) {
    const bert_model *m = r->m;
    size_t H = m->hidden, I = m->intermediate;
    kinfer_blas_cpu_gemm_xwt(r->x, L->qkv_w, r->qkv, T, 3 * H, H);
    run_rows(r, ROW_BIAS, r->qkv, NULL, L->qkv_b, NULL, NULL, T, 3 * H);
    bert_threads_run(r->pool, attention_task, r, (size_t)r->packed.nseqs * m->heads);
    kinfer_blas_cpu_gemm_xwt(r->ctx, L->out_w, r->tmp, T, H, H);
    run_rows(r, ROW_BIAS, r->tmp, NULL, L->out_b, NULL, NULL, T, H);
    run_rows(r, ROW_ADD_LN, r->x, r->tmp, NULL, L->ln1_g, L->ln1_b, T, H);
    kinfer_blas_cpu_gemm_xwt(r->x, L->ffn1_w, r->inter, T, I, H);
    run_rows(r, ROW_BIAS_GELU, r->inter, NULL, L->ffn1_b, NULL, NULL, T, I);
    kinfer_blas_cpu_gemm_xwt(r->inter, L->ffn2_w, r->tmp, T, H, I);
    run_rows(r, ROW_BIAS, r->tmp, NULL, L->ffn2_b, NULL, NULL, T, H);
    run_rows(r, ROW_ADD_LN, r->x, r->tmp, NULL, L->ln2_g, L->ln2_b, T, H);
}

/* BertPooler (tanh of a dense layer on the first token) + classifier. */
static void classify(bert_cpu_replica *r) {
    const bert_model *m = r->m;
    const bert_packed *p = &r->packed;
    size_t H = m->hidden, S = p->nseqs;
    for (size_t s = 0; s < S; s++)
        memcpy(r->cls_in + s * H, r->x + (size_t)p->seq_start[s] * H, H * sizeof(float));
    kinfer_blas_cpu_gemm_xwt(r->cls_in, m->pooler_w, r->cls_mid, S, H, H);
    kinfer_bias_act_cpu(r->cls_mid, m->pooler_b, S, H, KINFER_ACT_TANH);
    kinfer_blas_cpu_gemm_xwt(r->cls_mid, m->cls_w, r->logits, S, m->num_labels, H);
    kinfer_bias_act_cpu(r->logits, m->cls_b, S, m->num_labels, KINFER_ACT_NONE);
    for (size_t s = 0; s < S; s++) {
        const float *row = r->logits + s * m->num_labels;
        uint32_t best = 0;
        for (uint32_t j = 1; j < m->num_labels; j++)
            if (row[j] > row[best])
                best = j;
        r->labels[s] = m->label_strs[best];
    }
}

static kinfer_err cpu_execute(kinfer_replica_impl *impl, kinfer_batch_item *items, size_t nitems,
                              kinfer_error *err) {
    bert_cpu_replica *r = (bert_cpu_replica *)impl;
    const bert_model *m = r->m;
    bert_packed *p = &r->packed;
    kinfer_err rc = bert_batch_pack(m, items, nitems, p, err);
    if (rc != KINFER_OK)
        return rc;
    if (p->nseqs == 0)
        return KINFER_OK;
    if (p->nseqs > r->max_rows)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "batch of %u sequences exceeds %u",
                                p->nseqs, r->max_rows);
    size_t T = p->ntokens;
    if ((rc = ensure_tokens(r, T, err)) != KINFER_OK)
        return rc;
    run_rows(r, ROW_EMBED, r->x, NULL, NULL, NULL, NULL, T, m->hidden);
    for (uint32_t l = 0; l < m->layers; l++)
        encoder_layer(r, &m->layer[l], T);
    bert_pool_cpu(r->x, p->seq_start, p->nseqs, m->hidden, m->pooling, r->pooled);
    for (uint32_t s = 0; s < p->nseqs; s++)
        if (p->item_normalize[p->seq_item[s]])
            bert_l2_normalize_cpu(r->pooled + (size_t)s * m->out_dim, m->out_dim);
    if (m->classifier)
        classify(r);
    bert_batch_set_outputs(m, items, nitems, p, r->pooled, r->logits, r->labels);
    return KINFER_OK;
}

static void cpu_destroy(kinfer_replica_impl *impl) {
    bert_cpu_replica *r = (bert_cpu_replica *)impl;
    bert_packed_free(&r->packed);
    free(r->x);
    free(r->qkv);
    free(r->ctx);
    free(r->tmp);
    free(r->inter);
    free(r->scores);
    bert_threads_destroy(r->pool);
    free(r->pooled);
    free(r->cls_in);
    free(r->cls_mid);
    free(r->logits);
    free(r->labels);
    free(r);
}

static const kinfer_replica_ops bert_cpu_ops = {
    .backend = "cpu",
    .execute = cpu_execute,
    .destroy = cpu_destroy,
};

kinfer_err bert_cpu_replica_new(const bert_model *m, uint32_t max_rows, kinfer_replica_impl **out,
                                kinfer_error *err) {
    *out = NULL;
    if (max_rows == 0 || max_rows > (1u << 20))
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "max_rows %u out of range", max_rows);
    bert_cpu_replica *r = calloc(1, sizeof(*r));
    if (!r)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
    r->base.ops = &bert_cpu_ops;
    r->m = m;
    r->max_rows = max_rows;
    size_t L = m->classifier ? m->num_labels : 1;
    int workers = m->cpu_threads > 0 ? m->cpu_threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (workers < 1)
        workers = 1;
    if (workers > 256)
        workers = 256;
    kinfer_err rc = bert_threads_new(workers, &r->pool, err);
    if (rc != KINFER_OK) {
        cpu_destroy(&r->base);
        return rc;
    }
    r->scores_stride = (size_t)m->max_positions * m->max_positions;
    r->scores = alloc_f((size_t)workers * r->scores_stride);
    r->pooled = alloc_f((size_t)max_rows * m->out_dim);
    r->cls_in = alloc_f((size_t)max_rows * m->hidden);
    r->cls_mid = alloc_f((size_t)max_rows * m->hidden);
    r->logits = alloc_f((size_t)max_rows * L);
    r->labels = calloc(max_rows, sizeof(kinfer_str));
    if (!r->scores || !r->pooled || !r->cls_in || !r->cls_mid || !r->logits || !r->labels) {
        cpu_destroy(&r->base);
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
    }
    /* The first batch of a typical size allocates here, not in execute. */
    rc = ensure_tokens(r, (size_t)max_rows * 32, err);
    if (rc != KINFER_OK) {
        cpu_destroy(&r->base);
        return rc;
    }
    *out = &r->base;
    return KINFER_OK;
}
