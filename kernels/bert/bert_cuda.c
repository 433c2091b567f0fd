/* bert_cuda.c — the CUDA backend of kind `bert`. At creation: weights
 * uploaded once (GEMM weights FP32, or FP16/BF16 for tensor-core GEMMs with
 * FP32 accumulation), every device buffer sized for max_rows sequences of
 * up to max_position_embeddings tokens, pinned staging for token ids and
 * results. Per batch: tokenize and pack on the CPU (bert_batch_pack, shared
 * with the CPU backend), one H2D, then on one stream: embedding + LayerNorm,
 * per layer a cuBLAS GEMM (ops/blas_cuda.c) for Q|K|V, packed attention,
 * output projection + residual + LayerNorm, FFN GEMMs with fused bias +
 * erf-GELU, residual + LayerNorm; pooling, L2 normalisation and the
 * classifier head; one D2H and one wait. Nothing is allocated per batch. Not here: the kernels
 * (bert_*.cu, bias_act.cu, convert.cu) and their CPU twins (bert_cpu.c). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "ops/bert_attention_cuda.h"
#include "bert_cuda.h"
#include "ops/bert_layernorm_cuda.h"
#include "ops/bert_pool_cuda.h"
#include "ops/bias_act_cuda.h"
#include "ops/blas_cuda.h"
#include "ops/convert_cuda.h"
#include "ops/convert.h"
#include "kinfer/kinfer_log.h"
#include "kinfer/kinfer_device.h"
#include "ops/status_cuda.h"

/* cuBLAS workspace given up front so no GEMM shape allocates later. */
#define BERT_CUDA_WORKSPACE ((size_t)32 << 20)

typedef struct bert_cuda_layer {
    const void *qkv_w, *out_w, *ffn1_w, *ffn2_w; /* ctype, [out, in] */
    const float *qkv_b, *out_b, *ln1_g, *ln1_b, *ffn1_b, *ffn2_b, *ln2_g, *ln2_b;
} bert_cuda_layer;

typedef struct bert_cuda_replica {
    kinfer_replica_impl base;
    const bert_model *m;
    int dev;
    uint32_t max_rows;
    size_t cap_tokens; /* max_rows x max_position_embeddings */
    kinfer_dtype ctype;
    cudaStream_t stream;
    cublasHandle_t blas;
    void *d_workspace;
    cudaEvent_t done;
    /* weights: one cudaMalloc each, all listed in allocs for teardown */
    void **allocs;
    size_t nallocs, cap_allocs;
    const float *word, *pos, *type, *emb_g, *emb_b;
    bert_cuda_layer *layer;
    const void *pooler_w, *cls_w;
    const float *pooler_b, *cls_b;
    /* activations, FP32 */
    float *d_x, *d_qkv, *d_ctx, *d_tmp, *d_inter; /* [cap_tokens, H|3H|H|H|I] */
    void *d_h;                                    /* ctype [cap_tokens, max(H, I)]: FP16/BF16 */
    int32_t *d_tok;                               /* [3, cap_tokens]: ids | pos | types */
    uint32_t *d_seq_start;                        /* [max_rows + 1] */
    uint8_t *d_norm;                              /* [max_rows] normalize flags */
    float *d_pooled;                              /* [max_rows, out_dim] */
    float *d_cls_in, *d_cls_mid, *d_logits;       /* classifier head */
    /* pinned staging */
    int32_t *h_tok;
    uint32_t *h_seq_start;
    uint8_t *h_norm;
    float *h_pooled, *h_logits;
    kinfer_str *labels; /* [max_rows] */
    bert_packed packed;
} bert_cuda_replica;

/* Row-major Y[rows, out] = X[rows, in] W^T, W [out, in] row-major, on the
 * replica's stream (ops/blas_cuda.h). */
static kinfer_err gemm(bert_cuda_replica *r, const void *x, const void *w, float *y, size_t rows,
                       size_t in, size_t out, kinfer_error *err) {
    return kinfer_blas_cuda_gemm_xwt(r->blas, r->dev, r->ctype, x, w, y, rows, out, in, err);
}

/* The GEMM operand for FP32 activations x [rows, cols]: x itself, or x
 * narrowed into d_h. */
static kinfer_err operand(bert_cuda_replica *r, const float *x, size_t rows, size_t cols,
                          const void **in, kinfer_error *err) {
    kinfer_err rc = KINFER_OK;
    *in = x;
    if (r->ctype == KINFER_DTYPE_FP32)
        return KINFER_OK;
    KINFER_CUDA_GOTO(err, r->dev,
                     kinfer_convert_f32_cuda(x, r->d_h, r->ctype, rows * cols, r->stream), done);
    *in = r->d_h;
done:
    return rc;
}

static kinfer_err encoder_layer(bert_cuda_replica *r, const bert_cuda_layer *L, size_t T,
                                size_t nseqs, size_t max_len, kinfer_error *err) {
    const bert_model *m = r->m;
    size_t H = m->hidden, I = m->intermediate;
    kinfer_err rc = KINFER_OK;
    const void *in;
    if ((rc = operand(r, r->d_x, T, H, &in, err)) != KINFER_OK)
        return rc;
    if ((rc = gemm(r, in, L->qkv_w, r->d_qkv, T, H, 3 * H, err)) != KINFER_OK)
        return rc;
    KINFER_CUDA_GOTO(err, r->dev,
                     kinfer_bias_act_cuda(r->d_qkv, L->qkv_b, T, 3 * H, KINFER_ACT_NONE, r->stream),
                     done);
    KINFER_CUDA_GOTO(err, r->dev,
                     bert_attention_cuda(r->d_qkv, r->d_ctx, r->d_seq_start, nseqs, H, m->heads,
                                         max_len, r->stream),
                     done);
    if ((rc = operand(r, r->d_ctx, T, H, &in, err)) != KINFER_OK)
        return rc;
    if ((rc = gemm(r, in, L->out_w, r->d_tmp, T, H, H, err)) != KINFER_OK)
        return rc;
    KINFER_CUDA_GOTO(err, r->dev,
                     bert_add_layernorm_cuda(r->d_x, r->d_tmp, L->ln1_g, L->ln1_b, T, H, m->ln_eps,
                                             L->out_b, r->stream),
                     done);
    if ((rc = operand(r, r->d_x, T, H, &in, err)) != KINFER_OK)
        return rc;
    if ((rc = gemm(r, in, L->ffn1_w, r->d_inter, T, H, I, err)) != KINFER_OK)
        return rc;
    if (r->ctype == KINFER_DTYPE_FP32) {
        KINFER_CUDA_GOTO(
            err, r->dev,
            kinfer_bias_act_cuda(r->d_inter, L->ffn1_b, T, I, KINFER_ACT_GELU, r->stream), done);
        in = r->d_inter;
    } else {
        /* Fused: bias + GELU + narrowing for the second FFN GEMM. */
        KINFER_CUDA_GOTO(err, r->dev,
                         kinfer_bias_act_to_cuda(r->d_inter, L->ffn1_b, T, I, KINFER_ACT_GELU,
                                                 r->d_h, r->ctype, r->stream),
                         done);
        in = r->d_h;
    }
    if ((rc = gemm(r, in, L->ffn2_w, r->d_tmp, T, I, H, err)) != KINFER_OK)
        return rc;
    KINFER_CUDA_GOTO(err, r->dev,
                     bert_add_layernorm_cuda(r->d_x, r->d_tmp, L->ln2_g, L->ln2_b, T, H, m->ln_eps,
                                             L->ffn2_b, r->stream),
                     done);
done:
    return rc;
}

/* BertPooler (tanh of a dense layer on each sequence's first token) and
 * the classifier, into d_logits [nseqs, labels]. */
static kinfer_err classify(bert_cuda_replica *r, size_t S, kinfer_error *err) {
    const bert_model *m = r->m;
    size_t H = m->hidden;
    kinfer_err rc = KINFER_OK;
    const void *in;
    KINFER_CUDA_GOTO(
        err, r->dev,
        bert_pool_cuda(r->d_x, r->d_seq_start, S, H, BERT_POOL_CLS, r->d_cls_in, r->stream), done);
    if ((rc = operand(r, r->d_cls_in, S, H, &in, err)) != KINFER_OK)
        return rc;
    if ((rc = gemm(r, in, r->pooler_w, r->d_cls_mid, S, H, H, err)) != KINFER_OK)
        return rc;
    KINFER_CUDA_GOTO(
        err, r->dev,
        kinfer_bias_act_cuda(r->d_cls_mid, r->pooler_b, S, H, KINFER_ACT_TANH, r->stream), done);
    if ((rc = operand(r, r->d_cls_mid, S, H, &in, err)) != KINFER_OK)
        return rc;
    if ((rc = gemm(r, in, r->cls_w, r->d_logits, S, H, m->num_labels, err)) != KINFER_OK)
        return rc;
    KINFER_CUDA_GOTO(
        err, r->dev,
        kinfer_bias_act_cuda(r->d_logits, r->cls_b, S, m->num_labels, KINFER_ACT_NONE, r->stream),
        done);
done:
    return rc;
}

/* Enqueues the whole forward of the packed batch and waits for it. */
static kinfer_err forward(bert_cuda_replica *r, kinfer_error *err) {
    const bert_model *m = r->m;
    const bert_packed *p = &r->packed;
    size_t T = p->ntokens, S = p->nseqs, H = m->hidden;
    kinfer_err rc = KINFER_OK;
    /* Stage ids | pos | types contiguously so one copy uploads them. */
    memcpy(r->h_tok, p->ids, T * sizeof(int32_t));
    memcpy(r->h_tok + T, p->pos, T * sizeof(int32_t));
    memcpy(r->h_tok + 2 * T, p->types, T * sizeof(int32_t));
    memcpy(r->h_seq_start, p->seq_start, (S + 1) * sizeof(uint32_t));
    for (size_t s = 0; s < S; s++)
        r->h_norm[s] = p->item_normalize[p->seq_item[s]] ? 1 : 0;
    /* The executor thread may not be the one that created the replica. */
    KINFER_CUDA_GOTO(err, r->dev, cudaSetDevice(r->dev), done);
    KINFER_CUDA_GOTO(err, r->dev,
                     cudaMemcpyAsync(r->d_tok, r->h_tok, 3 * T * sizeof(int32_t),
                                     cudaMemcpyHostToDevice, r->stream),
                     done);
    KINFER_CUDA_GOTO(err, r->dev,
                     cudaMemcpyAsync(r->d_seq_start, r->h_seq_start, (S + 1) * sizeof(uint32_t),
                                     cudaMemcpyHostToDevice, r->stream),
                     done);
    KINFER_CUDA_GOTO(err, r->dev,
                     cudaMemcpyAsync(r->d_norm, r->h_norm, S, cudaMemcpyHostToDevice, r->stream),
                     done);
    KINFER_CUDA_GOTO(err, r->dev,
                     bert_embed_cuda(r->d_x, r->d_tok, r->d_tok + T, r->d_tok + 2 * T, T, r->word,
                                     r->pos, r->type, r->emb_g, r->emb_b, H, m->ln_eps, r->stream),
                     done);
    for (uint32_t l = 0; l < m->layers; l++)
        if ((rc = encoder_layer(r, &r->layer[l], T, S, p->max_len, err)) != KINFER_OK)
            goto done;
    KINFER_CUDA_GOTO(
        err, r->dev,
        bert_pool_cuda(r->d_x, r->d_seq_start, S, H, m->pooling, r->d_pooled, r->stream), done);
    KINFER_CUDA_GOTO(err, r->dev,
                     bert_l2_normalize_cuda(r->d_pooled, S, m->out_dim, r->d_norm, r->stream),
                     done);
    KINFER_CUDA_GOTO(err, r->dev,
                     cudaMemcpyAsync(r->h_pooled, r->d_pooled, S * m->out_dim * sizeof(float),
                                     cudaMemcpyDeviceToHost, r->stream),
                     done);
    if (m->classifier) {
        if ((rc = classify(r, S, err)) != KINFER_OK)
            goto done;
        KINFER_CUDA_GOTO(err, r->dev,
                         cudaMemcpyAsync(r->h_logits, r->d_logits,
                                         S * m->num_labels * sizeof(float), cudaMemcpyDeviceToHost,
                                         r->stream),
                         done);
    }
    KINFER_CUDA_GOTO(err, r->dev, cudaEventRecord(r->done, r->stream), done);
    /* Also surfaces asynchronous kernel faults. */
    KINFER_CUDA_GOTO(err, r->dev, cudaEventSynchronize(r->done), done);
done:
    if (rc != KINFER_OK)
        (void)cudaStreamSynchronize(r->stream); /* leave the stream idle for the next batch */
    return rc;
}

static kinfer_err cuda_execute(kinfer_replica_impl *impl, kinfer_batch_item *items, size_t nitems,
                               kinfer_error *err) {
    bert_cuda_replica *r = (bert_cuda_replica *)impl;
    const bert_model *m = r->m;
    bert_packed *p = &r->packed;
    kinfer_err rc = bert_batch_pack(m, items, nitems, p, err);
    if (rc != KINFER_OK)
        return rc;
    if (p->nseqs == 0)
        return KINFER_OK;
    if (p->nseqs > r->max_rows)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "cuda:%d: batch of %u sequences exceeds %u", r->dev, p->nseqs,
                                r->max_rows);
    if (p->ntokens > r->cap_tokens) /* bert_check_request bounds each row: cannot happen */
        return kinfer_error_set(err, KINFER_ERR_INTERNAL, "cuda:%d: batch of %u tokens exceeds %zu",
                                r->dev, p->ntokens, r->cap_tokens);
    if ((rc = forward(r, err)) != KINFER_OK)
        return rc;
    if (m->classifier)
        for (uint32_t s = 0; s < p->nseqs; s++) {
            const float *row = r->h_logits + (size_t)s * m->num_labels;
            uint32_t best = 0;
            for (uint32_t j = 1; j < m->num_labels; j++)
                if (row[j] > row[best])
                    best = j;
            r->labels[s] = m->label_strs[best];
        }
    bert_batch_set_outputs(m, items, nitems, p, r->h_pooled, r->h_logits, r->labels);
    return KINFER_OK;
}

static void cuda_destroy(kinfer_replica_impl *impl) {
    bert_cuda_replica *r = (bert_cuda_replica *)impl;
    if (!r)
        return;
    /* Teardown continues past errors: free what can be freed. */
    (void)cudaSetDevice(r->dev);
    if (r->stream)
        (void)cudaStreamSynchronize(r->stream);
    for (size_t i = 0; i < r->nallocs; i++)
        (void)cudaFree(r->allocs[i]);
    free(r->allocs);
    void *pinned[] = {r->h_tok, r->h_seq_start, r->h_norm, r->h_pooled, r->h_logits};
    for (size_t i = 0; i < sizeof(pinned) / sizeof(pinned[0]); i++)
        if (pinned[i])
            (void)cudaFreeHost(pinned[i]);
    if (r->done)
        (void)cudaEventDestroy(r->done);
    if (r->blas)
        (void)cublasDestroy(r->blas);
    if (r->stream)
        (void)cudaStreamDestroy(r->stream);
    free(r->layer);
    free(r->labels);
    bert_packed_free(&r->packed);
    free(r);
}

static const kinfer_replica_ops bert_cuda_ops = {
    .backend = "cuda",
    .execute = cuda_execute,
    .destroy = cuda_destroy,
};

/* cudaMalloc of `bytes`, remembered for cuda_destroy. */
static kinfer_err dev_alloc(bert_cuda_replica *r, void **p, size_t bytes, kinfer_error *err) {
    kinfer_err rc = KINFER_OK;
    *p = NULL;
    if (r->nallocs == r->cap_allocs) {
        size_t cap = r->cap_allocs ? r->cap_allocs * 2 : 64;
        void **a = realloc(r->allocs, cap * sizeof(*a));
        if (!a)
            return kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
        r->allocs = a;
        r->cap_allocs = cap;
    }
    KINFER_CUDA_GOTO(err, r->dev, cudaMalloc(p, bytes ? bytes : 1), done);
    r->allocs[r->nallocs++] = *p;
done:
    return rc;
}

/* Uploads n FP32 values; as ctype when `gemm_weight`, else FP32. The host
 * copy is synchronous: this runs once, at creation. */
static kinfer_err upload(bert_cuda_replica *r, const float *src, size_t n, bool gemm_weight,
                         const void **dst, kinfer_error *err) {
    kinfer_err rc = KINFER_OK;
    kinfer_dtype t = gemm_weight ? r->ctype : KINFER_DTYPE_FP32;
    void *d;
    if ((rc = dev_alloc(r, &d, n * kinfer_blas_cuda_type_size(t), err)) != KINFER_OK)
        return rc;
    uint16_t *narrow = NULL;
    const void *host = src;
    if (t != KINFER_DTYPE_FP32) {
        narrow = malloc(n * sizeof(uint16_t));
        if (!narrow)
            return kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < n; i++)
            narrow[i] =
                t == KINFER_DTYPE_FP16 ? kinfer_fp32_to_fp16(src[i]) : kinfer_fp32_to_bf16(src[i]);
        host = narrow;
    }
    KINFER_CUDA_GOTO(err, r->dev,
                     cudaMemcpy(d, host, n * kinfer_blas_cuda_type_size(t), cudaMemcpyHostToDevice),
                     done);
    *dst = d;
done:
    free(narrow);
    return rc;
}

#define UP(src, n, gemm_weight, dst)                                                               \
    do {                                                                                           \
        const void *up_tmp_;                                                                       \
        if ((rc = upload(r, (src), (n), (gemm_weight), &up_tmp_, err)) != KINFER_OK)               \
            return rc;                                                                             \
        (dst) = up_tmp_;                                                                           \
    } while (0)

static kinfer_err upload_weights(bert_cuda_replica *r, kinfer_error *err) {
    const bert_model *m = r->m;
    size_t H = m->hidden, I = m->intermediate;
    kinfer_err rc = KINFER_OK;
    UP(m->word_emb, (size_t)m->vocab * H, false, r->word);
    UP(m->pos_emb, (size_t)m->max_positions * H, false, r->pos);
    UP(m->type_emb, (size_t)m->type_vocab * H, false, r->type);
    UP(m->emb_ln_g, H, false, r->emb_g);
    UP(m->emb_ln_b, H, false, r->emb_b);
    for (uint32_t l = 0; l < m->layers; l++) {
        const bert_layer *src = &m->layer[l];
        bert_cuda_layer *L = &r->layer[l];
        UP(src->qkv_w, 3 * H * H, true, L->qkv_w);
        UP(src->qkv_b, 3 * H, false, L->qkv_b);
        UP(src->out_w, H * H, true, L->out_w);
        UP(src->out_b, H, false, L->out_b);
        UP(src->ln1_g, H, false, L->ln1_g);
        UP(src->ln1_b, H, false, L->ln1_b);
        UP(src->ffn1_w, I * H, true, L->ffn1_w);
        UP(src->ffn1_b, I, false, L->ffn1_b);
        UP(src->ffn2_w, H * I, true, L->ffn2_w);
        UP(src->ffn2_b, H, false, L->ffn2_b);
        UP(src->ln2_g, H, false, L->ln2_g);
        UP(src->ln2_b, H, false, L->ln2_b);
    }
    if (m->classifier) {
        UP(m->pooler_w, H * H, true, r->pooler_w);
        UP(m->pooler_b, H, false, r->pooler_b);
        UP(m->cls_w, (size_t)m->num_labels * H, true, r->cls_w);
        UP(m->cls_b, m->num_labels, false, r->cls_b);
    }
    return KINFER_OK;
}

static kinfer_err alloc_buffers(bert_cuda_replica *r, kinfer_error *err) {
    const bert_model *m = r->m;
    size_t H = m->hidden, I = m->intermediate, C = r->cap_tokens, R = r->max_rows;
    size_t L = m->classifier ? m->num_labels : 1;
    kinfer_err rc = KINFER_OK;
#define DEV(ptr, bytes)                                                                            \
    do {                                                                                           \
        void *dev_tmp_;                                                                            \
        if ((rc = dev_alloc(r, &dev_tmp_, (bytes), err)) != KINFER_OK)                             \
            return rc;                                                                             \
        (ptr) = dev_tmp_;                                                                          \
    } while (0)
    DEV(r->d_x, C * H * sizeof(float));
    DEV(r->d_qkv, C * 3 * H * sizeof(float));
    DEV(r->d_ctx, C * H * sizeof(float));
    DEV(r->d_tmp, C * H * sizeof(float));
    DEV(r->d_inter, C * I * sizeof(float));
    if (r->ctype != KINFER_DTYPE_FP32)
        DEV(r->d_h, C * (I > H ? I : H) * kinfer_blas_cuda_type_size(r->ctype));
    DEV(r->d_tok, 3 * C * sizeof(int32_t));
    DEV(r->d_seq_start, (R + 1) * sizeof(uint32_t));
    DEV(r->d_norm, R);
    DEV(r->d_pooled, R * m->out_dim * sizeof(float));
    DEV(r->d_cls_in, R * H * sizeof(float));
    DEV(r->d_cls_mid, R * H * sizeof(float));
    DEV(r->d_logits, R * L * sizeof(float));
#undef DEV
    KINFER_CUDA_GOTO(
        err, r->dev,
        cudaHostAlloc((void **)&r->h_tok, 3 * C * sizeof(int32_t), cudaHostAllocDefault), done);
    KINFER_CUDA_GOTO(
        err, r->dev,
        cudaHostAlloc((void **)&r->h_seq_start, (R + 1) * sizeof(uint32_t), cudaHostAllocDefault),
        done);
    KINFER_CUDA_GOTO(err, r->dev, cudaHostAlloc((void **)&r->h_norm, R, cudaHostAllocDefault),
                     done);
    KINFER_CUDA_GOTO(
        err, r->dev,
        cudaHostAlloc((void **)&r->h_pooled, R * m->out_dim * sizeof(float), cudaHostAllocDefault),
        done);
    KINFER_CUDA_GOTO(
        err, r->dev,
        cudaHostAlloc((void **)&r->h_logits, R * L * sizeof(float), cudaHostAllocDefault), done);
done:
    return rc;
}

kinfer_err bert_cuda_replica_new(const bert_model *m, int device_index, uint32_t max_rows,
                                 const char *precision, kinfer_replica_impl **out,
                                 kinfer_error *err) {
    *out = NULL;
    kinfer_err rc = KINFER_OK;
    kinfer_dtype ctype;
    if (!kinfer_precision_parse(precision, &ctype))
        return kinfer_error_set(err, KINFER_ERR_CONFIG,
                                "cuda:%d: precision '%.16s' unknown (fp32, fp16 or bf16)",
                                device_index, precision);
    /* cuBLAS takes int dimensions: tokens x widths must fit. */
    size_t cap_tokens = (size_t)max_rows * m->max_positions;
    size_t widest = m->intermediate > 3 * m->hidden ? m->intermediate : 3 * (size_t)m->hidden;
    if (max_rows == 0 || max_rows > (1u << 20) || cap_tokens > (size_t)INT32_MAX ||
        cap_tokens * widest > ((size_t)1 << 40))
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "cuda:%d: max_rows %u out of range for %u positions", device_index,
                                max_rows, m->max_positions);
    bert_cuda_replica *r = calloc(1, sizeof(*r));
    if (!r)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
    r->base.ops = &bert_cuda_ops;
    r->m = m;
    r->dev = device_index;
    r->max_rows = max_rows;
    r->cap_tokens = cap_tokens;
    r->ctype = ctype;
    r->layer = calloc(m->layers, sizeof(*r->layer));
    r->labels = calloc(max_rows, sizeof(*r->labels));
    if (!r->layer || !r->labels) {
        rc = kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
        goto fail;
    }
    KINFER_CUDA_GOTO(err, r->dev, cudaSetDevice(r->dev), fail);
    struct cudaDeviceProp prop;
    KINFER_CUDA_GOTO(err, r->dev, cudaGetDeviceProperties(&prop, r->dev), fail);
    /* The fatbin holds code for compute capability 8.0 and newer only. */
    if (prop.major < 8) {
        rc = kinfer_error_set(err, KINFER_ERR_DEVICE,
                              "cuda:%d (%s) has compute capability %d.%d; this build has GPU code "
                              "for 8.0 and newer only",
                              r->dev, prop.name, prop.major, prop.minor);
        goto fail;
    }
    KINFER_CUDA_GOTO(err, r->dev, cudaStreamCreateWithFlags(&r->stream, cudaStreamNonBlocking),
                     fail);
    if ((rc = dev_alloc(r, &r->d_workspace, BERT_CUDA_WORKSPACE, err)) != KINFER_OK)
        goto fail;
    if ((rc = kinfer_blas_cuda_handle_new(r->dev, r->stream, r->d_workspace, BERT_CUDA_WORKSPACE,
                                          &r->blas, err)) != KINFER_OK)
        goto fail;
    KINFER_CUDA_GOTO(err, r->dev, cudaEventCreateWithFlags(&r->done, cudaEventDisableTiming), fail);
    if ((rc = upload_weights(r, err)) != KINFER_OK)
        goto fail;
    if ((rc = alloc_buffers(r, err)) != KINFER_OK)
        goto fail;
    size_t free_b = 0, total_b = 0;
    (void)cudaMemGetInfo(&free_b, &total_b);
    KINFER_LOGI("cuda.bert_replica_ready",
                "device=cuda:%d gpu=\"%s\" cc=%d.%d precision=%s max_rows=%u max_tokens=%zu "
                "layers=%u free_mib=%zu total_mib=%zu",
                r->dev, prop.name, prop.major, prop.minor, precision ? precision : "fp32", max_rows,
                cap_tokens, m->layers, free_b >> 20, total_b >> 20);
    *out = &r->base;
    return KINFER_OK;
fail:
    cuda_destroy(&r->base);
    return rc;
}
