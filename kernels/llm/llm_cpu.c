/* llm_cpu.c — the CPU replica of kind llm: one forward step over the fed
 * tokens of every sequence at once (continuous batching: decode tokens and
 * prefill chunks are rows of the same matrices), composed from the ops of
 * kernels/ops/ (qmatmul, rmsnorm, rope, swiglu, embedding gather, paged KV
 * write and attention), over the paged KV pool the replica owns.
 *
 * Per step, T = total fed tokens:
 *   x[T,d] = embed(tokens);  cs = rope table of the positions
 *   per layer:  n = rmsnorm(x);  q,k,v = n.Wq^T, n.Wk^T, n.Wv^T;
 *               rope(q), rope(k);  write k,v into the blocks;
 *               a = paged attention(q);  x += a.Wo^T
 *               n = rmsnorm(x);  g = silu(n.Wg^T) * n.Wu^T;  x += g.Wd^T
 *   logits of the rows asked for: rmsnorm(x_row) . Wout^T, in chunks.
 * The same structure (buffers per step, weights as llm_weight, KV through
 * kinfer_kv_view) is what a CUDA replica mirrors with the _cuda twins.
 * Buffers are sized at creation for max_rows tokens; a step allocates
 * nothing, except growing the flat block table past any earlier step. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "llm_model.h"
#include "ops/cpu_threads.h"
#include "ops/qmatmul.h"

/* Rows of logits computed at once (bounds the [rows, vocab] scratch). */
#define LOGIT_CHUNK 16
/* Rows per task of the row-wise ops. */
#define ROWS_PER_TASK 16

typedef struct llm_cpu_replica {
    kinfer_replica_impl base;
    const llm_model *m;
    uint32_t max_rows;
    kinfer_threads *threads;
    kinfer_qmm *qmm;
    float *inv_freq; /* [n_rot / 2] */
    /* step buffers, max_rows rows each */
    int32_t *ids;
    uint32_t *pos;
    float *x, *xn, *q, *k, *v, *att, *gate, *up, *cs;
    /* logits */
    float *xl, *logits; /* [LOGIT_CHUNK, d], [LOGIT_CHUNK, vocab] */
    uint32_t *lrow;     /* [max_rows] rows whose logits are asked for */
    float **ldst;       /* [max_rows] where they go */
    kinfer_kv_seq *kseqs;
    uint32_t *table;
    size_t table_cap;
    /* the KV pool */
    unsigned char *pool;
    uint32_t nblocks;
} llm_cpu_replica;

static void *alloc64(size_t bytes) {
    size_t n = (bytes + 63) / 64 * 64;
    return aligned_alloc(64, n ? n : 64);
}

static void replica_destroy(kinfer_replica_impl *impl) {
    llm_cpu_replica *r = (llm_cpu_replica *)impl;
    if (!r)
        return;
    kinfer_qmm_destroy(r->qmm);
    kinfer_threads_destroy(r->threads);
    free(r->inv_freq);
    free(r->ids);
    free(r->pos);
    free(r->x);
    free(r->xn);
    free(r->q);
    free(r->k);
    free(r->v);
    free(r->att);
    free(r->gate);
    free(r->up);
    free(r->cs);
    free(r->xl);
    free(r->logits);
    free(r->lrow);
    free(r->ldst);
    free(r->kseqs);
    free(r->table);
    free(r->pool);
    free(r);
}

static kinfer_err replica_execute(kinfer_replica_impl *impl, kinfer_batch_item *items,
                                  size_t nitems, kinfer_error *err) {
    (void)impl;
    (void)items;
    (void)nitems;
    return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                            "kind llm runs per step (kinfer_replica_step), not per batch");
}

static kinfer_err replica_kv_alloc(kinfer_replica_impl *impl, uint32_t nblocks, kinfer_error *err) {
    llm_cpu_replica *r = (llm_cpu_replica *)impl;
    if (r->pool)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "the replica already has a KV pool of %u blocks", r->nblocks);
    size_t bb = kinfer_kv_block_bytes(&r->m->kv);
    if (bb == 0 || nblocks > SIZE_MAX / bb)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "a KV pool of %u blocks is too large",
                                nblocks);
    r->pool = alloc64((size_t)nblocks * bb);
    if (!r->pool)
        return kinfer_error_set(err, KINFER_ERR_NOMEM,
                                "no memory for a KV pool of %u blocks (%zu bytes each)", nblocks,
                                bb);
    r->nblocks = nblocks;
    return KINFER_OK;
}

/* --- row-wise ops over the pool ------------------------------------------------ */

typedef enum row_op { ROW_RMSNORM, ROW_SWIGLU, ROW_ROPE_Q, ROW_ROPE_K } row_op;

typedef struct row_job {
    const llm_cpu_replica *r;
    row_op op;
    const float *src, *w;
    float *dst;
    size_t rows, n;
} row_job;

static void row_task(void *ctx, size_t task, int worker) {
    (void)worker;
    const row_job *j = ctx;
    const llm_config *c = &j->r->m->cfg;
    size_t r0 = task * ROWS_PER_TASK;
    size_t n = j->rows - r0 < ROWS_PER_TASK ? j->rows - r0 : ROWS_PER_TASK;
    size_t half = c->n_rot / 2;
    switch (j->op) {
    case ROW_RMSNORM:
        kinfer_rmsnorm_cpu(j->src + r0 * j->n, j->w, j->dst + r0 * j->n, n, j->n, c->rms_eps);
        break;
    case ROW_SWIGLU: /* gate in dst (in place), up in src */
        kinfer_swiglu_cpu(j->dst + r0 * j->n, j->src + r0 * j->n, j->n, j->dst + r0 * j->n, n,
                          j->n);
        break;
    case ROW_ROPE_Q:
    case ROW_ROPE_K: {
        size_t heads = j->op == ROW_ROPE_Q ? c->n_head : c->n_head_kv;
        kinfer_rope_cpu(j->dst + r0 * j->n, j->n, n, heads, c->head_dim, c->n_rot,
                        j->r->cs + r0 * half * 2, c->rope_mode);
        break;
    }
    }
}

static void run_rows(const llm_cpu_replica *r, row_op op, const float *src, const float *w,
                     float *dst, size_t rows, size_t n) {
    row_job j = {r, op, src, w, dst, rows, n};
    size_t tasks = (rows + ROWS_PER_TASK - 1) / ROWS_PER_TASK;
    if (tasks == 1)
        row_task(&j, 0, 0); /* a decode step: not worth a hand-off */
    else
        kinfer_threads_run(r->threads, row_task, &j, tasks);
}

static kinfer_err matmul(llm_cpu_replica *r, const float *x, size_t rows, const llm_weight *w,
                         float *y, bool accumulate, kinfer_error *err) {
    kinfer_err rc =
        kinfer_qmatmul_cpu(r->qmm, x, rows, w->cols, w->data, w->type, w->rows, y, accumulate, err);
    if (rc != KINFER_OK)
        return kinfer_error_prefix(err, "%s", w->name);
    return KINFER_OK;
}

/* --- the step --------------------------------------------------------------------- */

/* Packs the sequences into rows and the flat block table. */
static kinfer_err pack(llm_cpu_replica *r, const kinfer_step_seq *seqs, size_t n, size_t *rows,
                       size_t *nlogits, size_t *ntable, kinfer_error *err) {
    uint32_t T = r->m->kv_block_tokens;
    size_t need_table = 0;
    for (size_t s = 0; s < n; s++)
        need_table += ((size_t)seqs[s].pos + seqs[s].ntokens + T - 1) / T;
    if (need_table > r->table_cap) {
        size_t cap = r->table_cap ? r->table_cap : 1024;
        while (cap < need_table)
            cap *= 2;
        uint32_t *t = realloc(r->table, cap * sizeof(*t));
        if (!t)
            return kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory for the block table");
        r->table = t;
        r->table_cap = cap;
    }
    size_t row = 0, nt = 0, nl = 0;
    for (size_t s = 0; s < n; s++) {
        const kinfer_step_seq *q = &seqs[s];
        uint32_t need = (uint32_t)(((size_t)q->pos + q->ntokens + T - 1) / T);
        r->kseqs[s] = (kinfer_kv_seq){(uint32_t)row, q->ntokens, q->pos, (uint32_t)nt, need};
        memcpy(r->table + nt, q->blocks, need * sizeof(uint32_t));
        nt += need;
        for (uint32_t i = 0; i < q->ntokens; i++) {
            r->ids[row + i] = q->tokens[i];
            r->pos[row + i] = q->pos + i;
        }
        row += q->ntokens;
        if (q->logits) {
            r->lrow[nl] = (uint32_t)(row - 1);
            r->ldst[nl] = q->logits;
            nl++;
        }
    }
    *rows = row;
    *nlogits = nl;
    *ntable = nt;
    return KINFER_OK;
}

static kinfer_err layer_forward(llm_cpu_replica *r, uint32_t l, size_t rows, size_t nseqs,
                                kinfer_error *err) {
    const llm_model *m = r->m;
    const llm_config *c = &m->cfg;
    const llm_layer *L = &m->layers[l];
    size_t d = c->d_model, qd = (size_t)c->n_head * c->head_dim,
           kvd = (size_t)c->n_head_kv * c->head_dim;
    kinfer_err rc;
    run_rows(r, ROW_RMSNORM, r->x, L->attn_norm, r->xn, rows, d);
    if ((rc = matmul(r, r->xn, rows, &L->wq, r->q, false, err)) != KINFER_OK ||
        (rc = matmul(r, r->xn, rows, &L->wk, r->k, false, err)) != KINFER_OK ||
        (rc = matmul(r, r->xn, rows, &L->wv, r->v, false, err)) != KINFER_OK)
        return rc;
    run_rows(r, ROW_ROPE_Q, NULL, NULL, r->q, rows, qd);
    run_rows(r, ROW_ROPE_K, NULL, NULL, r->k, rows, kvd);
    kinfer_kv_view view = kinfer_kv_layer_view(&m->kv, r->pool, r->nblocks, l);
    kinfer_kv_write_cpu(&view, r->k, r->v, kvd, r->kseqs, nseqs, r->table);
    kinfer_paged_attention_cpu(r->threads, &view, r->q, qd, r->att, qd, c->n_head, r->kseqs, nseqs,
                               r->table, 1.0f / sqrtf((float)c->head_dim));
    if ((rc = matmul(r, r->att, rows, &L->wo, r->x, true, err)) != KINFER_OK)
        return rc;
    run_rows(r, ROW_RMSNORM, r->x, L->ffn_norm, r->xn, rows, d);
    if ((rc = matmul(r, r->xn, rows, &L->gate, r->gate, false, err)) != KINFER_OK ||
        (rc = matmul(r, r->xn, rows, &L->up, r->up, false, err)) != KINFER_OK)
        return rc;
    run_rows(r, ROW_SWIGLU, r->up, NULL, r->gate, rows, c->n_ff);
    return matmul(r, r->gate, rows, &L->down, r->x, true, err);
}

static kinfer_err replica_step(kinfer_replica_impl *impl, kinfer_step_seq *seqs, size_t n,
                               kinfer_error *err) {
    llm_cpu_replica *r = (llm_cpu_replica *)impl;
    const llm_model *m = r->m;
    const llm_config *c = &m->cfg;
    if (!r->pool)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "no KV pool: call kinfer_replica_kv_alloc first");
    size_t rows = 0, nl = 0, nt = 0;
    kinfer_err rc = pack(r, seqs, n, &rows, &nl, &nt, err);
    if (rc != KINFER_OK)
        return rc;
    kinfer_kv_view view0 = kinfer_kv_layer_view(&m->kv, r->pool, r->nblocks, 0);
    if ((rc = kinfer_kv_seqs_check(&view0, r->kseqs, n, r->table, nt, rows, err)) != KINFER_OK)
        return rc;
    if ((rc = kinfer_embed_rows_cpu(m->tok_embd.data, m->tok_embd.type, c->vocab, c->d_model,
                                    r->ids, rows, r->x, err)) != KINFER_OK)
        return rc;
    kinfer_rope_table_cpu(r->pos, rows, r->inv_freq, c->n_rot, r->cs);
    for (uint32_t l = 0; l < c->n_layer; l++)
        if ((rc = layer_forward(r, l, rows, n, err)) != KINFER_OK)
            return rc;
    for (size_t b = 0; b < nl; b += LOGIT_CHUNK) {
        size_t k = nl - b < LOGIT_CHUNK ? nl - b : LOGIT_CHUNK;
        for (size_t i = 0; i < k; i++)
            memcpy(r->xl + i * c->d_model, r->x + (size_t)r->lrow[b + i] * c->d_model,
                   c->d_model * sizeof(float));
        kinfer_rmsnorm_cpu(r->xl, m->output_norm, r->xl, k, c->d_model, c->rms_eps);
        if ((rc = matmul(r, r->xl, k, &m->output, r->logits, false, err)) != KINFER_OK)
            return rc;
        for (size_t i = 0; i < k; i++)
            memcpy(r->ldst[b + i], r->logits + i * c->vocab, c->vocab * sizeof(float));
    }
    return KINFER_OK;
}

static const kinfer_replica_ops llm_cpu_ops = {
    .backend = "cpu",
    .execute = replica_execute,
    .destroy = replica_destroy,
    .kv_alloc = replica_kv_alloc,
    .step = replica_step,
};

kinfer_err llm_cpu_replica_new(const llm_model *m, uint32_t max_rows, kinfer_replica_impl **out,
                               kinfer_error *err) {
    *out = NULL;
    const llm_config *c = &m->cfg;
    llm_cpu_replica *r = calloc(1, sizeof(*r));
    if (!r)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
    r->base.ops = &llm_cpu_ops;
    r->m = m;
    r->max_rows = max_rows;
    int nthreads = m->cpu_threads > 0 ? m->cpu_threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (nthreads < 1)
        nthreads = 1;
    kinfer_err rc = kinfer_threads_new(nthreads, &r->threads, err);
    size_t d = c->d_model, qd = (size_t)c->n_head * c->head_dim,
           kvd = (size_t)c->n_head_kv * c->head_dim, ff = c->n_ff, R = max_rows;
    size_t max_k = d > qd ? d : qd;
    max_k = max_k > ff ? max_k : ff;
    kinfer_qmm_opts qo = {.isa = KINFER_CPU_ISA_AUTO, .act = KINFER_QMM_ACT_F32};
    if (rc == KINFER_OK)
        rc =
            kinfer_qmm_new(r->threads, R > LOGIT_CHUNK ? R : LOGIT_CHUNK, max_k, &qo, &r->qmm, err);
    if (rc != KINFER_OK) {
        replica_destroy(&r->base);
        return rc;
    }
    r->inv_freq = malloc(c->n_rot / 2 * sizeof(float));
    r->ids = malloc(R * sizeof(int32_t));
    r->pos = malloc(R * sizeof(uint32_t));
    r->x = alloc64(R * d * sizeof(float));
    r->xn = alloc64(R * d * sizeof(float));
    r->q = alloc64(R * qd * sizeof(float));
    r->k = alloc64(R * kvd * sizeof(float));
    r->v = alloc64(R * kvd * sizeof(float));
    r->att = alloc64(R * qd * sizeof(float));
    r->gate = alloc64(R * ff * sizeof(float));
    r->up = alloc64(R * ff * sizeof(float));
    r->cs = alloc64(R * c->n_rot * sizeof(float));
    r->xl = alloc64(LOGIT_CHUNK * d * sizeof(float));
    r->logits = alloc64((size_t)LOGIT_CHUNK * c->vocab * sizeof(float));
    r->lrow = malloc(R * sizeof(uint32_t));
    r->ldst = malloc(R * sizeof(float *));
    r->kseqs = malloc(R * sizeof(kinfer_kv_seq));
    if (!r->inv_freq || !r->ids || !r->pos || !r->x || !r->xn || !r->q || !r->k || !r->v ||
        !r->att || !r->gate || !r->up || !r->cs || !r->xl || !r->logits || !r->lrow || !r->ldst ||
        !r->kseqs) {
        replica_destroy(&r->base);
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory for %u tokens per step",
                                max_rows);
    }
    if ((rc = kinfer_rope_freqs(&c->rope, c->n_rot, r->inv_freq, err)) != KINFER_OK) {
        replica_destroy(&r->base);
        return rc;
    }
    *out = &r->base;
    return KINFER_OK;
}
