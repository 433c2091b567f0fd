/* bert_weights.c — model.safetensors of a Hugging Face BERT into FP32 host
 * arrays: one 64-byte-aligned arena, query/key/value stacked into one
 * [3H, H] matrix so a layer's projections are one GEMM. Accepts names with
 * or without the "bert." prefix, LayerNorm weight/bias or gamma/beta, and
 * F32/F16/BF16; ignores buffers such as embeddings.position_ids. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bert_model.h"
#include "ops/convert.h"
#include "formats/safetensors.h"

typedef struct arena {
    float *base;
    size_t used, cap; /* in floats */
} arena;

static float *carve(arena *a, size_t n) {
    float *p = a->base + a->used;
    a->used += (n + 15) / 16 * 16; /* keep every array 64-byte aligned */
    return p;
}

static const kinfer_st_tensor *find(const kinfer_safetensors *st, const char *name,
                                    const char *alt) {
    char buf[256];
    snprintf(buf, sizeof(buf), "bert.%s", name);
    const kinfer_st_tensor *t = kinfer_safetensors_find(st, buf);
    if (!t)
        t = kinfer_safetensors_find(st, name);
    if (!t && alt) {
        snprintf(buf, sizeof(buf), "bert.%s", alt);
        t = kinfer_safetensors_find(st, buf);
        if (!t)
            t = kinfer_safetensors_find(st, alt);
    }
    return t;
}

/* Copies tensor `name` of shape [rows] (cols == 0) or [rows, cols] into dst
 * as FP32. */
static kinfer_err load(const kinfer_safetensors *st, const char *name, const char *alt,
                       uint32_t rows, uint32_t cols, float *dst, kinfer_dtype *dtype,
                       kinfer_error *err) {
    const char *file = kinfer_safetensors_label(st);
    const kinfer_st_tensor *t = find(st, name, alt);
    if (!t)
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD, "%s: tensor %s not found", file, name);
    int want_ndim = cols ? 2 : 1;
    if (t->ndim != want_ndim || t->shape[0] != rows || (cols && t->shape[1] != cols)) {
        char got[96];
        kinfer_shape_format(t->shape, t->ndim, got, sizeof(got));
        if (cols)
            return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD,
                                    "%s: tensor %s has shape %s, config says [%u, %u]", file,
                                    t->name, got, rows, cols);
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD,
                                "%s: tensor %s has shape %s, config says [%u]", file, t->name, got,
                                rows);
    }
    size_t n = (size_t)rows * (cols ? cols : 1);
    switch (t->dtype) {
    case KINFER_DTYPE_FP32:
        memcpy(dst, t->data, n * sizeof(float));
        break;
    case KINFER_DTYPE_FP16:
        kinfer_fp16_to_fp32_n(t->data, dst, n);
        break;
    case KINFER_DTYPE_BF16:
        kinfer_bf16_to_fp32_n(t->data, dst, n);
        break;
    default:
        return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                "%s: tensor %s has dtype %s (F32, F16 or BF16 supported)", file,
                                t->name, kinfer_dtype_name(t->dtype));
    }
    *dtype = t->dtype;
    return KINFER_OK;
}

static size_t arena_floats(const bert_model *m) {
    size_t H = m->hidden, I = m->intermediate, r = 0;
#define A(n) (r += ((size_t)(n) + 15) / 16 * 16)
    A(m->vocab * H);
    A(m->max_positions * H);
    A(m->type_vocab * H);
    A(H);
    A(H);
    for (uint32_t l = 0; l < m->layers; l++) {
        A(3 * H * H);
        A(3 * H);
        A(H * H);
        A(H);
        A(H);
        A(H);
        A(I * H);
        A(I);
        A(H * I);
        A(H);
        A(H);
        A(H);
    }
    if (m->classifier) {
        A(H * H);
        A(H);
        A(m->num_labels * H);
        A(m->num_labels);
    }
#undef A
    return r;
}

static kinfer_err load_layer(const kinfer_safetensors *st, bert_model *m, uint32_t l, arena *a,
                             kinfer_dtype *dt, kinfer_error *err) {
    uint32_t H = m->hidden, I = m->intermediate;
    bert_layer *L = &m->layer[l];
    char n1[160], n2[160];
    L->qkv_w = carve(a, 3 * (size_t)H * H);
    L->qkv_b = carve(a, 3 * (size_t)H);
    static const char *const qkv[] = {"query", "key", "value"};
    for (int k = 0; k < 3; k++) {
        snprintf(n1, sizeof(n1), "encoder.layer.%u.attention.self.%s.weight", l, qkv[k]);
        kinfer_err rc = load(st, n1, NULL, H, H, L->qkv_w + (size_t)k * H * H, dt, err);
        if (rc != KINFER_OK)
            return rc;
        snprintf(n1, sizeof(n1), "encoder.layer.%u.attention.self.%s.bias", l, qkv[k]);
        rc = load(st, n1, NULL, H, 0, L->qkv_b + (size_t)k * H, dt, err);
        if (rc != KINFER_OK)
            return rc;
    }
    struct {
        const char *fmt, *alt;
        float **dst;
        uint32_t rows, cols;
    } t[] = {
        {"encoder.layer.%u.attention.output.dense.weight", NULL, &L->out_w, H, H},
        {"encoder.layer.%u.attention.output.dense.bias", NULL, &L->out_b, H, 0},
        {"encoder.layer.%u.attention.output.LayerNorm.weight", "gamma", &L->ln1_g, H, 0},
        {"encoder.layer.%u.attention.output.LayerNorm.bias", "beta", &L->ln1_b, H, 0},
        {"encoder.layer.%u.intermediate.dense.weight", NULL, &L->ffn1_w, I, H},
        {"encoder.layer.%u.intermediate.dense.bias", NULL, &L->ffn1_b, I, 0},
        {"encoder.layer.%u.output.dense.weight", NULL, &L->ffn2_w, H, I},
        {"encoder.layer.%u.output.dense.bias", NULL, &L->ffn2_b, H, 0},
        {"encoder.layer.%u.output.LayerNorm.weight", "gamma", &L->ln2_g, H, 0},
        {"encoder.layer.%u.output.LayerNorm.bias", "beta", &L->ln2_b, H, 0},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        snprintf(n1, sizeof(n1), t[i].fmt, l);
        const char *alt = NULL;
        if (t[i].alt) {
            /* Old checkpoints: "...LayerNorm.gamma" for "...LayerNorm.weight". */
            snprintf(n2, sizeof(n2), "%.*s%s", (int)(strrchr(n1, '.') - n1 + 1), n1, t[i].alt);
            alt = n2;
        }
        *t[i].dst = carve(a, (size_t)t[i].rows * (t[i].cols ? t[i].cols : 1));
        kinfer_err rc = load(st, n1, alt, t[i].rows, t[i].cols, *t[i].dst, dt, err);
        if (rc != KINFER_OK)
            return rc;
    }
    return KINFER_OK;
}

void bert_weights_free(bert_model *m) {
    free(m->word_emb); /* the arena's base */
    free(m->layer);
    m->word_emb = NULL;
    m->layer = NULL;
}

kinfer_err bert_weights_load(bert_model *m, kinfer_error *err) {
    char path[4200];
    snprintf(path, sizeof(path), "%s/model.safetensors", m->dir);
    kinfer_safetensors *st = NULL;
    kinfer_err rc = kinfer_safetensors_open(path, &st, err);
    if (rc != KINFER_OK)
        return rc;
    size_t n = arena_floats(m);
    arena a = {.base = aligned_alloc(64, n * sizeof(float)), .used = 0, .cap = n};
    m->layer = calloc(m->layers, sizeof(bert_layer));
    if (!a.base || !m->layer) {
        free(a.base);
        kinfer_safetensors_close(st);
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "%s: out of memory for %zu MB of weights",
                                path, n * sizeof(float) >> 20);
    }
    uint32_t H = m->hidden;
    kinfer_dtype dt = KINFER_DTYPE_FP32;
    m->word_emb = carve(&a, (size_t)m->vocab * H);
    m->pos_emb = carve(&a, (size_t)m->max_positions * H);
    m->type_emb = carve(&a, (size_t)m->type_vocab * H);
    m->emb_ln_g = carve(&a, H);
    m->emb_ln_b = carve(&a, H);
    rc = load(st, "embeddings.word_embeddings.weight", NULL, m->vocab, H, m->word_emb, &dt, err);
    if (rc == KINFER_OK)
        rc = load(st, "embeddings.position_embeddings.weight", NULL, m->max_positions, H,
                  m->pos_emb, &dt, err);
    if (rc == KINFER_OK)
        rc = load(st, "embeddings.token_type_embeddings.weight", NULL, m->type_vocab, H,
                  m->type_emb, &dt, err);
    if (rc == KINFER_OK)
        rc = load(st, "embeddings.LayerNorm.weight", "embeddings.LayerNorm.gamma", H, 0,
                  m->emb_ln_g, &dt, err);
    if (rc == KINFER_OK)
        rc = load(st, "embeddings.LayerNorm.bias", "embeddings.LayerNorm.beta", H, 0, m->emb_ln_b,
                  &dt, err);
    m->file_dtype = dt;
    for (uint32_t l = 0; rc == KINFER_OK && l < m->layers; l++)
        rc = load_layer(st, m, l, &a, &dt, err);
    if (rc == KINFER_OK && m->classifier) {
        m->pooler_w = carve(&a, (size_t)H * H);
        m->pooler_b = carve(&a, H);
        m->cls_w = carve(&a, (size_t)m->num_labels * H);
        m->cls_b = carve(&a, m->num_labels);
        rc = load(st, "pooler.dense.weight", NULL, H, H, m->pooler_w, &dt, err);
        if (rc == KINFER_OK)
            rc = load(st, "pooler.dense.bias", NULL, H, 0, m->pooler_b, &dt, err);
        /* The head is outside the "bert." prefix; find() tries both. */
        if (rc == KINFER_OK)
            rc = load(st, "classifier.weight", NULL, m->num_labels, H, m->cls_w, &dt, err);
        if (rc == KINFER_OK)
            rc = load(st, "classifier.bias", NULL, m->num_labels, 0, m->cls_b, &dt, err);
    }
    kinfer_safetensors_close(st);
    if (rc != KINFER_OK) {
        free(a.base);
        free(m->layer);
        m->word_emb = NULL;
        m->layer = NULL;
        return rc;
    }
    return KINFER_OK;
}
