/* llm_gguf.c — a llama-architecture GGUF file into an llm_model: the
 * hyperparameters (llama.*), the tokenizer and chat template
 * (tokenizer.*), and every tensor mapped to its place, used in place from
 * the mapping (norms widened to FP32). Every tensor must be a llama weight
 * of a supported type: anything else (another architecture, experts,
 * biases, rope_freqs, an unknown tensor, Q5_K...) is refused by name, never
 * ignored. RoPE pairs adjacent dimensions (GGML's NORM mode): llama.cpp's
 * converter permuted the Q/K rows for it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm_model.h"

static bool str_is(kinfer_str s, const char *z) {
    return s.len == strlen(z) && memcmp(s.ptr, z, s.len) == 0;
}

static kinfer_err gguf_config(llm_model *m, const kinfer_gguf *g, kinfer_error *err) {
    const char *p = m->path;
    kinfer_str arch;
    kinfer_err rc = kinfer_gguf_get_str(g, "general.architecture", true, &arch, err);
    if (rc != KINFER_OK)
        return rc;
    if (!str_is(arch, "llama"))
        return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                "%s: architecture '%.*s' is not supported (supported: llama)", p,
                                (int)(arch.len > 48 ? 48 : arch.len), arch.ptr);
    llm_config *c = &m->cfg;
    uint32_t experts = 0, key_len = 0, val_len = 0;
    double theta = 10000.0, eps = 0, factor = 0;
    c->n_rot = 0;
    if ((rc = kinfer_gguf_get_u32(g, "llama.block_count", true, &c->n_layer, err)) ||
        (rc = kinfer_gguf_get_u32(g, "llama.embedding_length", true, &c->d_model, err)) ||
        (rc = kinfer_gguf_get_u32(g, "llama.feed_forward_length", true, &c->n_ff, err)) ||
        (rc = kinfer_gguf_get_u32(g, "llama.attention.head_count", true, &c->n_head, err)) ||
        (rc = kinfer_gguf_get_u32(g, "llama.context_length", false, &c->ctx_train, err)) ||
        (rc = kinfer_gguf_get_u32(g, "llama.expert_count", false, &experts, err)) ||
        (rc = kinfer_gguf_get_u32(g, "llama.attention.key_length", false, &key_len, err)) ||
        (rc = kinfer_gguf_get_u32(g, "llama.attention.value_length", false, &val_len, err)) ||
        (rc = kinfer_gguf_get_f64(g, "llama.rope.freq_base", false, &theta, err)) ||
        (rc = kinfer_gguf_get_f64(g, "llama.attention.layer_norm_rms_epsilon", true, &eps, err)))
        return rc;
    if (experts > 0)
        return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                "%s: mixture of experts (llama.expert_count %u) is not supported",
                                p, experts);
    c->n_head_kv = c->n_head;
    if ((rc = kinfer_gguf_get_u32(g, "llama.attention.head_count_kv", false, &c->n_head_kv, err)))
        return rc;
    c->head_dim = c->n_head ? c->d_model / c->n_head : 0;
    if (key_len && key_len != c->head_dim)
        c->head_dim = key_len;
    if (val_len && val_len != c->head_dim)
        return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                "%s: llama.attention.value_length %u differs from the key length "
                                "%u (not supported)",
                                p, val_len, c->head_dim);
    c->n_rot = c->head_dim;
    if ((rc = kinfer_gguf_get_u32(g, "llama.rope.dimension_count", false, &c->n_rot, err)))
        return rc;
    c->rms_eps = (float)eps;
    c->rope = (kinfer_rope_params){.theta = (float)theta};
    kinfer_str scaling = {"none", 4};
    if ((rc = kinfer_gguf_get_str(g, "llama.rope.scaling.type", false, &scaling, err)) ||
        (rc = kinfer_gguf_get_f64(g, "llama.rope.scaling.factor", false, &factor, err)))
        return rc;
    if (str_is(scaling, "linear")) {
        c->rope.scaling = KINFER_ROPE_SCALING_LINEAR;
        c->rope.factor = (float)factor;
    } else if (!str_is(scaling, "none")) {
        return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                "%s: llama.rope.scaling.type '%.*s' is not supported (supported: "
                                "none, linear)",
                                p, (int)(scaling.len > 32 ? 32 : scaling.len), scaling.ptr);
    }
    /* llama.cpp's older key for linear scaling */
    double scale_linear = 0;
    if ((rc = kinfer_gguf_get_f64(g, "llama.rope.scale_linear", false, &scale_linear, err)))
        return rc;
    if (scale_linear != 0 && scale_linear != 1 && c->rope.scaling == KINFER_ROPE_SCALING_NONE) {
        c->rope.scaling = KINFER_ROPE_SCALING_LINEAR;
        c->rope.factor = (float)scale_linear;
    }
    c->rope_mode = KINFER_ROPE_NORM;
    return KINFER_OK;
}

/* A matrix tensor into a weight view (type checked, aligned for its reads). */
/* The type of a tensor, refused by name ("tensor blk.0.ffn_up.weight:
 * tensor type Q5_K (ggml type 13) is not supported (supported: ...)"). */
static kinfer_err tensor_qtype(const llm_model *m, const kinfer_gguf_tensor *t, kinfer_qtype *qt,
                               kinfer_error *err) {
    char what[96];
    snprintf(what, sizeof(what), "tensor %s", t->name);
    if (kinfer_qtype_from_ggml(t->type, what, qt, err) != KINFER_OK)
        return kinfer_error_prefix(err, "%s", m->path);
    return KINFER_OK;
}

static kinfer_err map_matrix(llm_model *m, const kinfer_gguf_tensor *t, llm_weight *w,
                             kinfer_error *err) {
    kinfer_qtype qt;
    kinfer_err rc = tensor_qtype(m, t, &qt, err);
    if (rc != KINFER_OK)
        return rc;
    if (t->ndim != 2 || t->ne[1] == 0 || t->ne[0] > UINT32_MAX || t->ne[1] > UINT32_MAX)
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD,
                                "%s: tensor %s has %u dimensions [%llu, %llu, ...], expected a "
                                "matrix",
                                m->path, t->name, t->ndim, (unsigned long long)t->ne[0],
                                (unsigned long long)t->ne[1]);
    w->type = qt;
    w->cols = (uint32_t)t->ne[0];
    w->rows = (uint32_t)t->ne[1];
    w->row_bytes = t->nbytes / w->rows;
    w->name = t->name;
    w->data = t->data;
    size_t align = qt == KINFER_QTYPE_F32 ? 4 : 2;
    if ((uintptr_t)t->data % align != 0) { /* general.alignment 1: copy */
        void *copy = aligned_alloc(64, (t->nbytes + 63) / 64 * 64);
        if ((rc = llm_model_own(m, copy, err)) != KINFER_OK)
            return rc;
        memcpy(copy, t->data, t->nbytes);
        w->data = copy;
    }
    return KINFER_OK;
}

/* A norm vector [d] as FP32 (used in place when it is aligned F32). */
static kinfer_err map_norm(llm_model *m, const kinfer_gguf_tensor *t, const float **out,
                           kinfer_error *err) {
    kinfer_qtype qt;
    kinfer_err rc = tensor_qtype(m, t, &qt, err);
    if (rc != KINFER_OK)
        return rc;
    if (t->ndim != 1 || t->ne[0] != m->cfg.d_model)
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD,
                                "%s: tensor %s has shape [%llu] (%u dims), expected [%u]", m->path,
                                t->name, (unsigned long long)t->ne[0], t->ndim, m->cfg.d_model);
    if (qt == KINFER_QTYPE_F32 && (uintptr_t)t->data % 4 == 0) {
        *out = t->data;
        return KINFER_OK;
    }
    float *f = malloc(m->cfg.d_model * sizeof(float));
    if ((rc = llm_model_own(m, f, err)) != KINFER_OK)
        return rc;
    if (qt == KINFER_QTYPE_F32) {
        memcpy(f, t->data, m->cfg.d_model * sizeof(float));
    } else {
        /* block types need whole blocks; d is a multiple of the block there */
        kinfer_dequantize_row_cpu(t->data, qt, f, m->cfg.d_model);
    }
    *out = f;
    return KINFER_OK;
}

/* "blk.<layer>.<part>.weight" -> layer and part; false when not that form. */
static bool parse_blk(const char *name, uint32_t *layer, char *part, size_t cap) {
    if (strncmp(name, "blk.", 4) != 0)
        return false;
    const char *p = name + 4;
    uint64_t l = 0;
    if (*p < '0' || *p > '9')
        return false;
    while (*p >= '0' && *p <= '9' && l < (1u << 30))
        l = l * 10 + (uint64_t)(*p++ - '0');
    if (*p++ != '.')
        return false;
    size_t n = strlen(p);
    if (n < 8 || strcmp(p + n - 7, ".weight") != 0 || n - 7 >= cap)
        return false;
    memcpy(part, p, n - 7);
    part[n - 7] = '\0';
    *layer = (uint32_t)l;
    return true;
}

static const char *const k_parts[] = {"attn_norm", "attn_q",   "attn_k", "attn_v",  "attn_output",
                                      "ffn_norm",  "ffn_gate", "ffn_up", "ffn_down"};

static kinfer_err gguf_tensors(llm_model *m, const kinfer_gguf *g, kinfer_error *err) {
    const char *p = m->path;
    const kinfer_gguf_tensor *emb = kinfer_gguf_tensor_find(g, "token_embd.weight");
    if (!emb)
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD,
                                "%s: tensor token_embd.weight is missing", p);
    kinfer_err rc = map_matrix(m, emb, &m->tok_embd, err);
    if (rc != KINFER_OK)
        return rc;
    if (m->tok_embd.cols != m->cfg.d_model)
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD,
                                "%s: token_embd.weight rows have %u values, embedding_length is %u",
                                p, m->tok_embd.cols, m->cfg.d_model);
    m->cfg.vocab = m->tok_embd.rows;
    uint32_t vocab_kv = m->cfg.vocab;
    if ((rc = kinfer_gguf_get_u32(g, "llama.vocab_size", false, &vocab_kv, err)) != KINFER_OK)
        return rc;
    if (vocab_kv != m->cfg.vocab)
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD,
                                "%s: llama.vocab_size %u differs from token_embd.weight's %u rows",
                                p, vocab_kv, m->cfg.vocab);
    if (m->cfg.n_layer == 0 || m->cfg.n_layer > LLM_MAX_LAYERS)
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD,
                                "%s: llama.block_count %u (1 to %u supported)", p, m->cfg.n_layer,
                                LLM_MAX_LAYERS);
    m->layers = calloc(m->cfg.n_layer, sizeof(*m->layers));
    if (!m->layers)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "%s: out of memory", p);
    m->cfg.tied = true;
    size_t type_count[KINFER_QTYPE_COUNT] = {0};
    for (size_t i = 0; i < kinfer_gguf_tensor_count(g); i++) {
        const kinfer_gguf_tensor *t = kinfer_gguf_tensor_at(g, i);
        uint32_t l;
        char part[32];
        if (t == emb)
            continue;
        if (strcmp(t->name, "output_norm.weight") == 0) {
            rc = map_norm(m, t, &m->output_norm, err);
        } else if (strcmp(t->name, "output.weight") == 0) {
            m->cfg.tied = false;
            rc = map_matrix(m, t, &m->output, err);
        } else if (strcmp(t->name, "rope_freqs.weight") == 0) {
            return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                    "%s: tensor rope_freqs.weight (llama3-style RoPE frequency "
                                    "factors) is not supported",
                                    p);
        } else if (parse_blk(t->name, &l, part, sizeof(part))) {
            if (l >= m->cfg.n_layer)
                return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD,
                                        "%s: tensor %s: layer %u beyond llama.block_count %u", p,
                                        t->name, l, m->cfg.n_layer);
            llm_layer *L = &m->layers[l];
            llm_weight *ws[] = {NULL, &L->wq,   &L->wk, &L->wv,  &L->wo,
                                NULL, &L->gate, &L->up, &L->down};
            size_t k = 0;
            while (k < 9 && strcmp(part, k_parts[k]) != 0)
                k++;
            if (k == 9)
                return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                        "%s: tensor %s is not a llama weight (not supported)", p,
                                        t->name);
            if (k == 0)
                rc = map_norm(m, t, &L->attn_norm, err);
            else if (k == 5)
                rc = map_norm(m, t, &L->ffn_norm, err);
            else if ((rc = map_matrix(m, t, ws[k], err)) == KINFER_OK)
                type_count[ws[k]->type]++;
        } else {
            return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                    "%s: tensor %s is not a llama weight (not supported)", p,
                                    t->name);
        }
        if (rc != KINFER_OK)
            return rc;
    }
    /* the summary type for describe(): the layers' most common */
    size_t best = 0;
    for (size_t k = 1; k < KINFER_QTYPE_COUNT; k++)
        if (type_count[k] > type_count[best])
            best = k;
    m->file_type = kinfer_qtype_name((kinfer_qtype)best);
    /* names for the messages about missing tensors */
    static const char *const missing = "(missing)";
    for (uint32_t l = 0; l < m->cfg.n_layer; l++) {
        llm_layer *L = &m->layers[l];
        llm_weight *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->gate, &L->up, &L->down};
        static const char *const parts[] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                            "ffn_gate", "ffn_up", "ffn_down"};
        for (size_t k = 0; k < 7; k++) {
            if (ws[k]->data)
                continue;
            char *name = malloc(48);
            if ((rc = llm_model_own(m, name, err)) != KINFER_OK)
                return rc;
            snprintf(name, 48, "blk.%u.%s.weight", l, parts[k]);
            ws[k]->name = name;
        }
    }
    if (!m->cfg.tied && !m->output.name)
        m->output.name = missing;
    return KINFER_OK;
}

static kinfer_err gguf_text(llm_model *m, const kinfer_gguf *g, kinfer_error *err) {
    kinfer_err rc = kinfer_bpe_from_gguf(g, &m->tok, err);
    if (rc != KINFER_OK)
        return rc;
    kinfer_str tmpl = {NULL, 0};
    if ((rc = kinfer_gguf_get_str(g, "tokenizer.chat_template", false, &tmpl, err)) != KINFER_OK)
        return rc;
    if (tmpl.ptr &&
        (rc = kinfer_chat_template_parse(tmpl.ptr, tmpl.len, m->path, &m->tmpl, err)) != KINFER_OK)
        return rc;
    int32_t ids[2] = {kinfer_bpe_bos(m->tok), kinfer_bpe_eos(m->tok)};
    char **texts[2] = {&m->bos_text, &m->eos_text};
    for (int k = 0; k < 2; k++) {
        size_t len;
        const char *s = ids[k] >= 0 ? kinfer_bpe_token_text(m->tok, ids[k], &len) : NULL;
        if (!s)
            continue;
        if (!(*texts[k] = strndup(s, len)))
            return kinfer_error_set(err, KINFER_ERR_NOMEM, "%s: out of memory", m->path);
    }
    return KINFER_OK;
}

kinfer_err llm_gguf_load(llm_model *m, kinfer_error *err) {
    kinfer_err rc = kinfer_gguf_open(m->path, &m->gguf, err);
    if (rc == KINFER_OK)
        rc = gguf_config(m, m->gguf, err);
    if (rc == KINFER_OK)
        rc = gguf_tensors(m, m->gguf, err);
    if (rc == KINFER_OK)
        rc = gguf_text(m, m->gguf, err);
    return rc;
}
