/* llm_cuda.c — the CUDA replica of kind llm (llm_cuda.h): the CPU replica's
 * step (llm_cpu.c) on one device with the _cuda twins of its ops. Weights
 * are uploaded once in their stored (quantized) form; the KV pool, the
 * step's activations and the logits scratch live in device memory; the host
 * packs the step (token ids, positions, sequences, block tables) into
 * pinned buffers, checks it exactly as the CPU replica does, uploads it, and
 * copies back only the logits asked for. One stream; the step ends with one
 * synchronisation (the logits). Not here: the kernels (the .cu files of ops/). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "llm_cuda.h"
#include "ops/llm_ops_cuda.h"
#include "ops/paged_kv_cuda.h"
#include "ops/qmatmul_cuda.h"
#include "ops/status_cuda.h"

/* Rows of logits computed at once: the fused GEMV's limit. */
#define LOGIT_CHUNK KINFER_QGEMV_CUDA_MAX_ROWS
/* Device allocations of the weights are aligned to this. */
#define WEIGHT_ALIGN 256

typedef struct dweight {
    const void *data; /* device */
    kinfer_qtype type;
    uint32_t rows, cols;
    const char *name;
} dweight;

typedef struct dlayer {
    const float *attn_norm, *ffn_norm; /* device FP32 [d_model] */
    dweight wq, wk, wv, wo, gate, up, down;
} dlayer;

typedef struct llm_cuda_replica {
    kinfer_replica_impl base;
    const llm_model *m;
    int dev;
    uint32_t max_rows;
    cudaStream_t stream;
    kinfer_qmm_cuda *qmm;
    unsigned char *d_weights; /* one allocation: every matrix, then every norm */
    dlayer *layers;           /* host array of device views */
    dweight tok_embd, output;
    const float *d_output_norm;
    kinfer_kv_layout kv; /* the device pool's layout */
    /* device step buffers, max_rows rows each */
    float *d_x, *d_xn, *d_q, *d_k, *d_v, *d_att, *d_gate, *d_up, *d_cs, *d_inv_freq;
    float *d_xl, *d_logits; /* [LOGIT_CHUNK, d], [LOGIT_CHUNK, vocab] */
    int32_t *d_ids;
    uint32_t *d_pos, *d_table;
    kinfer_kv_seq *d_seqs;
    size_t d_table_cap;
    /* pinned host: the packed step and the logits coming back */
    int32_t *ids;
    uint32_t *pos, *table;
    kinfer_kv_seq *kseqs;
    size_t table_cap;
    float *h_logits;
    uint32_t *lrow; /* plain host */
    float **ldst;
    unsigned char *d_pool;
    uint32_t nblocks;
} llm_cuda_replica;

static void replica_destroy(kinfer_replica_impl *impl) {
    llm_cuda_replica *r = (llm_cuda_replica *)impl;
    if (!r)
        return;
    cudaSetDevice(r->dev);
    if (r->stream)
        cudaStreamSynchronize(r->stream);
    kinfer_qmm_cuda_destroy(r->qmm);
    void *dev_bufs[] = {r->d_weights, r->d_x,    r->d_xn,  r->d_q,     r->d_k,        r->d_v,
                        r->d_att,     r->d_gate, r->d_up,  r->d_cs,    r->d_inv_freq, r->d_xl,
                        r->d_logits,  r->d_ids,  r->d_pos, r->d_table, r->d_seqs,     r->d_pool};
    for (size_t i = 0; i < sizeof(dev_bufs) / sizeof(dev_bufs[0]); i++)
        cudaFree(dev_bufs[i]);
    void *host_bufs[] = {r->ids, r->pos, r->table, r->kseqs, r->h_logits};
    for (size_t i = 0; i < sizeof(host_bufs) / sizeof(host_bufs[0]); i++)
        cudaFreeHost(host_bufs[i]);
    if (r->stream)
        cudaStreamDestroy(r->stream);
    free(r->layers);
    free(r->lrow);
    free(r->ldst);
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
    llm_cuda_replica *r = (llm_cuda_replica *)impl;
    if (r->d_pool)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "the replica already has a KV pool of %u blocks", r->nblocks);
    size_t bb = kinfer_kv_block_bytes(&r->kv);
    if (bb == 0 || nblocks == 0 || nblocks > SIZE_MAX / bb)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "a KV pool of %u blocks is not possible",
                                nblocks);
    kinfer_err rc = KINFER_OK;
    KINFER_CUDA_GOTO(err, r->dev, cudaSetDevice(r->dev), out);
    cudaError_t c = cudaMalloc((void **)&r->d_pool, (size_t)nblocks * bb);
    if (c == cudaErrorMemoryAllocation) {
        cudaGetLastError(); /* reset the runtime's last error: not a device failure */
        r->d_pool = NULL;
        return kinfer_error_set(err, KINFER_ERR_NOMEM,
                                "cuda:%d: no device memory for a KV pool of %u blocks (%zu bytes "
                                "each)",
                                r->dev, nblocks, bb);
    }
    KINFER_CUDA_GOTO(err, r->dev, c, out);
    KINFER_CUDA_GOTO(err, r->dev, cudaMemset(r->d_pool, 0, (size_t)nblocks * bb), out);
    r->nblocks = nblocks;
out:
    return rc;
}

/* --- the step --------------------------------------------------------------------- */

/* Grows the pinned and device block tables to hold `need` entries. */
static kinfer_err table_reserve(llm_cuda_replica *r, size_t need, kinfer_error *err) {
    if (need <= r->table_cap && need <= r->d_table_cap)
        return KINFER_OK;
    size_t cap = r->table_cap ? r->table_cap : 1024;
    while (cap < need)
        cap *= 2;
    kinfer_err rc = KINFER_OK;
    cudaFreeHost(r->table);
    cudaFree(r->d_table);
    r->table = NULL;
    r->d_table = NULL;
    r->table_cap = r->d_table_cap = 0;
    KINFER_CUDA_GOTO(err, r->dev, cudaMallocHost((void **)&r->table, cap * sizeof(uint32_t)), out);
    KINFER_CUDA_GOTO(err, r->dev, cudaMalloc((void **)&r->d_table, cap * sizeof(uint32_t)), out);
    r->table_cap = r->d_table_cap = cap;
out:
    return rc;
}

/* The CPU replica's packing: sequences into rows, the flat block table, the
 * rows whose logits are wanted; then the checks the device cannot make
 * (token ids, block tables). */
static kinfer_err pack(llm_cuda_replica *r, const kinfer_step_seq *seqs, size_t n, size_t *rows,
                       size_t *nlogits, size_t *ntable, kinfer_error *err) {
    const llm_model *m = r->m;
    uint32_t T = m->kv_block_tokens;
    size_t need_table = 0, total = 0;
    for (size_t s = 0; s < n; s++) {
        need_table += ((size_t)seqs[s].pos + seqs[s].ntokens + T - 1) / T;
        total += seqs[s].ntokens;
    }
    if (total > r->max_rows || n > r->max_rows)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "a step of %zu tokens exceeds the replica's %u", total,
                                r->max_rows);
    kinfer_err rc = table_reserve(r, need_table, err);
    if (rc != KINFER_OK)
        return rc;
    size_t row = 0, nt = 0, nl = 0;
    for (size_t s = 0; s < n; s++) {
        const kinfer_step_seq *q = &seqs[s];
        uint32_t need = (uint32_t)(((size_t)q->pos + q->ntokens + T - 1) / T);
        r->kseqs[s] = (kinfer_kv_seq){(uint32_t)row, q->ntokens, q->pos, (uint32_t)nt, need};
        memcpy(r->table + nt, q->blocks, need * sizeof(uint32_t));
        nt += need;
        for (uint32_t i = 0; i < q->ntokens; i++) {
            int32_t id = q->tokens[i];
            if (id < 0 || (uint32_t)id >= m->cfg.vocab)
                return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                        "embedding: token id %d (sequence %zu) outside the "
                                        "vocabulary of %u",
                                        (int)id, s, m->cfg.vocab);
            r->ids[row + i] = id;
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
    kinfer_kv_view view0 = kinfer_kv_layer_view(&r->kv, r->d_pool, r->nblocks, 0);
    return kinfer_kv_seqs_check(&view0, r->kseqs, n, r->table, nt, row, err);
}

static kinfer_err matmul(llm_cuda_replica *r, const float *x, size_t rows, const dweight *w,
                         float *y, bool accumulate, kinfer_error *err) {
    kinfer_err rc = kinfer_qmatmul_cuda(r->qmm, x, rows, w->cols, w->data, w->type, w->rows, y,
                                        accumulate, r->stream, err);
    if (rc != KINFER_OK)
        return kinfer_error_prefix(err, "%s", w->name);
    return KINFER_OK;
}

static kinfer_err layer_forward(llm_cuda_replica *r, uint32_t l, size_t rows, size_t nseqs,
                                kinfer_error *err) {
    const llm_config *c = &r->m->cfg;
    const dlayer *L = &r->layers[l];
    const size_t d = c->d_model, qd = (size_t)c->n_head * c->head_dim,
                 kvd = (size_t)c->n_head_kv * c->head_dim;
    cudaStream_t s = r->stream;
    kinfer_err rc = KINFER_OK;
    KINFER_CUDA_GOTO(err, r->dev,
                     kinfer_rmsnorm_cuda(r->d_x, L->attn_norm, r->d_xn, rows, d, c->rms_eps, s),
                     out);
    if ((rc = matmul(r, r->d_xn, rows, &L->wq, r->d_q, false, err)) != KINFER_OK ||
        (rc = matmul(r, r->d_xn, rows, &L->wk, r->d_k, false, err)) != KINFER_OK ||
        (rc = matmul(r, r->d_xn, rows, &L->wv, r->d_v, false, err)) != KINFER_OK)
        return rc;
    KINFER_CUDA_GOTO(err, r->dev,
                     kinfer_rope_cuda(r->d_q, qd, rows, c->n_head, c->head_dim, c->n_rot, r->d_cs,
                                      c->rope_mode, s),
                     out);
    KINFER_CUDA_GOTO(err, r->dev,
                     kinfer_rope_cuda(r->d_k, kvd, rows, c->n_head_kv, c->head_dim, c->n_rot,
                                      r->d_cs, c->rope_mode, s),
                     out);
    kinfer_kv_view view = kinfer_kv_layer_view(&r->kv, r->d_pool, r->nblocks, l);
    KINFER_CUDA_GOTO(
        err, r->dev,
        kinfer_kv_write_cuda(&view, r->d_k, r->d_v, kvd, r->d_seqs, nseqs, r->d_table, rows, s),
        out);
    KINFER_CUDA_GOTO(err, r->dev,
                     kinfer_paged_attention_cuda(&view, r->d_q, qd, r->d_att, qd, c->n_head,
                                                 r->d_seqs, nseqs, r->d_table,
                                                 1.0f / sqrtf((float)c->head_dim), rows, s),
                     out);
    if ((rc = matmul(r, r->d_att, rows, &L->wo, r->d_x, true, err)) != KINFER_OK)
        return rc;
    KINFER_CUDA_GOTO(err, r->dev,
                     kinfer_rmsnorm_cuda(r->d_x, L->ffn_norm, r->d_xn, rows, d, c->rms_eps, s),
                     out);
    if ((rc = matmul(r, r->d_xn, rows, &L->gate, r->d_gate, false, err)) != KINFER_OK ||
        (rc = matmul(r, r->d_xn, rows, &L->up, r->d_up, false, err)) != KINFER_OK)
        return rc;
    /* in place into gate: ld == n, so every element is read and written by
     * one thread (llm_ops_cuda.h) */
    KINFER_CUDA_GOTO(err, r->dev,
                     kinfer_swiglu_cuda(r->d_gate, r->d_up, c->n_ff, r->d_gate, rows, c->n_ff, s),
                     out);
    return matmul(r, r->d_gate, rows, &L->down, r->d_x, true, err);
out:
    return rc;
}

static kinfer_err replica_step(kinfer_replica_impl *impl, kinfer_step_seq *seqs, size_t n,
                               kinfer_error *err) {
    llm_cuda_replica *r = (llm_cuda_replica *)impl;
    const llm_model *m = r->m;
    const llm_config *c = &m->cfg;
    if (!r->d_pool)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "no KV pool: call kinfer_replica_kv_alloc first");
    kinfer_err rc = KINFER_OK;
    KINFER_CUDA_GOTO(err, r->dev, cudaSetDevice(r->dev), out);
    size_t rows = 0, nl = 0, nt = 0;
    if ((rc = pack(r, seqs, n, &rows, &nl, &nt, err)) != KINFER_OK)
        return rc;
    cudaStream_t s = r->stream;
    KINFER_CUDA_GOTO(
        err, r->dev,
        cudaMemcpyAsync(r->d_ids, r->ids, rows * sizeof(int32_t), cudaMemcpyHostToDevice, s), out);
    KINFER_CUDA_GOTO(
        err, r->dev,
        cudaMemcpyAsync(r->d_pos, r->pos, rows * sizeof(uint32_t), cudaMemcpyHostToDevice, s), out);
    KINFER_CUDA_GOTO(
        err, r->dev,
        cudaMemcpyAsync(r->d_seqs, r->kseqs, n * sizeof(kinfer_kv_seq), cudaMemcpyHostToDevice, s),
        out);
    KINFER_CUDA_GOTO(
        err, r->dev,
        cudaMemcpyAsync(r->d_table, r->table, nt * sizeof(uint32_t), cudaMemcpyHostToDevice, s),
        out);
    KINFER_CUDA_GOTO(err, r->dev,
                     kinfer_embed_rows_cuda(r->tok_embd.data, r->tok_embd.type, c->vocab,
                                            c->d_model, r->d_ids, rows, r->d_x, s),
                     out);
    KINFER_CUDA_GOTO(err, r->dev,
                     kinfer_rope_table_cuda(r->d_pos, rows, r->d_inv_freq, c->n_rot, r->d_cs, s),
                     out);
    for (uint32_t l = 0; l < c->n_layer; l++)
        if ((rc = layer_forward(r, l, rows, n, err)) != KINFER_OK)
            return rc;
    const size_t d = c->d_model;
    for (size_t b = 0; b < nl; b += LOGIT_CHUNK) {
        size_t k = nl - b < LOGIT_CHUNK ? nl - b : LOGIT_CHUNK;
        for (size_t i = 0; i < k; i++)
            KINFER_CUDA_GOTO(err, r->dev,
                             cudaMemcpyAsync(r->d_xl + i * d, r->d_x + (size_t)r->lrow[b + i] * d,
                                             d * sizeof(float), cudaMemcpyDeviceToDevice, s),
                             out);
        KINFER_CUDA_GOTO(
            err, r->dev,
            kinfer_rmsnorm_cuda(r->d_xl, r->d_output_norm, r->d_xl, k, d, c->rms_eps, s), out);
        if ((rc = matmul(r, r->d_xl, k, &r->output, r->d_logits, false, err)) != KINFER_OK)
            return rc;
        KINFER_CUDA_GOTO(err, r->dev,
                         cudaMemcpyAsync(r->h_logits, r->d_logits, k * c->vocab * sizeof(float),
                                         cudaMemcpyDeviceToHost, s),
                         out);
        KINFER_CUDA_GOTO(err, r->dev, cudaStreamSynchronize(s), out);
        for (size_t i = 0; i < k; i++)
            memcpy(r->ldst[b + i], r->h_logits + i * c->vocab, c->vocab * sizeof(float));
    }
    /* no logits asked for (a prefill chunk): still finish on the device, so
     * the pinned step buffers can be rewritten by the next step */
    if (nl == 0)
        KINFER_CUDA_GOTO(err, r->dev, cudaStreamSynchronize(s), out);
out:
    return rc;
}

static const kinfer_replica_ops llm_cuda_ops = {
    .backend = "cuda",
    .execute = replica_execute,
    .destroy = replica_destroy,
    .kv_alloc = replica_kv_alloc,
    .step = replica_step,
};

/* --- creation ---------------------------------------------------------------------- */

static size_t align_up(size_t v) {
    return (v + WEIGHT_ALIGN - 1) / WEIGHT_ALIGN * WEIGHT_ALIGN;
}

static size_t weight_bytes(const llm_weight *w) {
    return (size_t)w->rows * w->row_bytes;
}

/* Lays out every matrix and norm in one device allocation, then copies
 * them (the tied output head shares the embedding's bytes). */
static kinfer_err upload_weights(llm_cuda_replica *r, kinfer_error *err) {
    const llm_model *m = r->m;
    const llm_config *c = &m->cfg;
    const size_t d = c->d_model;
    size_t total = align_up(weight_bytes(&m->tok_embd));
    bool tied = m->output.data == m->tok_embd.data;
    if (!tied)
        total += align_up(weight_bytes(&m->output));
    total += align_up(d * sizeof(float));
    for (uint32_t l = 0; l < c->n_layer; l++) {
        const llm_layer *L = &m->layers[l];
        const llm_weight *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->gate, &L->up, &L->down};
        for (size_t i = 0; i < 7; i++)
            total += align_up(weight_bytes(ws[i]));
        total += 2 * align_up(d * sizeof(float));
    }
    kinfer_err rc = KINFER_OK;
    KINFER_CUDA_GOTO(err, r->dev, cudaMalloc((void **)&r->d_weights, total), out);
    size_t off = 0;
#define PUT(dst, src, bytes)                                                                       \
    do {                                                                                           \
        KINFER_CUDA_GOTO(err, r->dev,                                                              \
                         cudaMemcpy(r->d_weights + off, (src), (bytes), cudaMemcpyHostToDevice),   \
                         out);                                                                     \
        (dst) = (void *)(r->d_weights + off);                                                      \
        off += align_up(bytes);                                                                    \
    } while (0)
#define PUT_W(dw, hw)                                                                              \
    do {                                                                                           \
        void *p_;                                                                                  \
        PUT(p_, (hw)->data, weight_bytes(hw));                                                     \
        (dw) = (dweight){p_, (hw)->type, (hw)->rows, (hw)->cols, (hw)->name};                      \
    } while (0)
    void *p;
    PUT_W(r->tok_embd, &m->tok_embd);
    if (tied)
        r->output = (dweight){r->tok_embd.data, m->output.type, m->output.rows, m->output.cols,
                              m->output.name};
    else
        PUT_W(r->output, &m->output);
    PUT(p, m->output_norm, d * sizeof(float));
    r->d_output_norm = p;
    for (uint32_t l = 0; l < c->n_layer; l++) {
        const llm_layer *L = &m->layers[l];
        dlayer *D = &r->layers[l];
        PUT_W(D->wq, &L->wq);
        PUT_W(D->wk, &L->wk);
        PUT_W(D->wv, &L->wv);
        PUT_W(D->wo, &L->wo);
        PUT_W(D->gate, &L->gate);
        PUT_W(D->up, &L->up);
        PUT_W(D->down, &L->down);
        PUT(p, L->attn_norm, d * sizeof(float));
        D->attn_norm = p;
        PUT(p, L->ffn_norm, d * sizeof(float));
        D->ffn_norm = p;
    }
#undef PUT_W
#undef PUT
out:
    return rc;
}

kinfer_err llm_cuda_replica_new(const llm_model *m, int device_index, uint32_t max_rows,
                                kinfer_replica_impl **out, kinfer_error *err) {
    *out = NULL;
    if (max_rows == 0)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "llm cuda: max_rows must be >= 1");
    const llm_config *c = &m->cfg;
    llm_cuda_replica *r = calloc(1, sizeof(*r));
    if (!r)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
    r->base.ops = &llm_cuda_ops;
    r->m = m;
    r->dev = device_index;
    r->max_rows = max_rows;
    bool half = strcmp(m->precision, "fp16") == 0 || strcmp(m->precision, "bf16") == 0;
    r->kv = m->kv;
    if (half)
        r->kv.dtype = KINFER_KV_F16;
    r->layers = calloc(c->n_layer, sizeof(dlayer));
    const size_t R = max_rows, d = c->d_model, qd = (size_t)c->n_head * c->head_dim,
                 kvd = (size_t)c->n_head_kv * c->head_dim, ff = c->n_ff;
    r->lrow = malloc(R * sizeof(uint32_t));
    r->ldst = malloc(R * sizeof(float *));
    float *inv = malloc(c->n_rot / 2 * sizeof(float));
    kinfer_err rc = KINFER_OK;
    if (!r->layers || !r->lrow || !r->ldst || !inv) {
        rc = kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if ((rc = kinfer_rope_freqs(&c->rope, c->n_rot, inv, err)) != KINFER_OK)
        goto fail;
    KINFER_CUDA_GOTO(err, r->dev, cudaSetDevice(r->dev), fail);
    KINFER_CUDA_GOTO(err, r->dev, cudaStreamCreateWithFlags(&r->stream, cudaStreamNonBlocking),
                     fail);
    size_t max_n = d > qd ? d : qd;
    max_n = max_n > ff ? max_n : ff;
    size_t max_k = max_n;
    if ((rc = kinfer_qmm_cuda_new(R > LOGIT_CHUNK ? R : LOGIT_CHUNK, max_n, max_k,
                                  half ? KINFER_QMM_CUDA_F16 : KINFER_QMM_CUDA_F32, &r->qmm,
                                  err)) != KINFER_OK)
        goto fail;
    if ((rc = upload_weights(r, err)) != KINFER_OK)
        goto fail;
    struct {
        void **p;
        size_t bytes;
    } dev[] = {
        {(void **)&r->d_x, R * d * sizeof(float)},
        {(void **)&r->d_xn, R * d * sizeof(float)},
        {(void **)&r->d_q, R * qd * sizeof(float)},
        {(void **)&r->d_k, R * kvd * sizeof(float)},
        {(void **)&r->d_v, R * kvd * sizeof(float)},
        {(void **)&r->d_att, R * qd * sizeof(float)},
        {(void **)&r->d_gate, R * ff * sizeof(float)},
        {(void **)&r->d_up, R * ff * sizeof(float)},
        {(void **)&r->d_cs, R * c->n_rot * sizeof(float)},
        {(void **)&r->d_inv_freq, c->n_rot / 2 * sizeof(float)},
        {(void **)&r->d_xl, LOGIT_CHUNK * d * sizeof(float)},
        {(void **)&r->d_logits, (size_t)LOGIT_CHUNK * c->vocab * sizeof(float)},
        {(void **)&r->d_ids, R * sizeof(int32_t)},
        {(void **)&r->d_pos, R * sizeof(uint32_t)},
        {(void **)&r->d_seqs, R * sizeof(kinfer_kv_seq)},
    };
    for (size_t i = 0; i < sizeof(dev) / sizeof(dev[0]); i++)
        KINFER_CUDA_GOTO(err, r->dev, cudaMalloc(dev[i].p, dev[i].bytes), fail);
    KINFER_CUDA_GOTO(
        err, r->dev,
        cudaMemcpy(r->d_inv_freq, inv, c->n_rot / 2 * sizeof(float), cudaMemcpyHostToDevice), fail);
    KINFER_CUDA_GOTO(err, r->dev, cudaMallocHost((void **)&r->ids, R * sizeof(int32_t)), fail);
    KINFER_CUDA_GOTO(err, r->dev, cudaMallocHost((void **)&r->pos, R * sizeof(uint32_t)), fail);
    KINFER_CUDA_GOTO(err, r->dev, cudaMallocHost((void **)&r->kseqs, R * sizeof(kinfer_kv_seq)),
                     fail);
    KINFER_CUDA_GOTO(
        err, r->dev,
        cudaMallocHost((void **)&r->h_logits, (size_t)LOGIT_CHUNK * c->vocab * sizeof(float)),
        fail);
    if ((rc = table_reserve(r, 1024, err)) != KINFER_OK)
        goto fail;
    free(inv);
    *out = &r->base;
    return KINFER_OK;
fail:
    free(inv);
    replica_destroy(&r->base);
    return rc;
}
