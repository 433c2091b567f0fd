/* llm_hf.c — a Hugging Face Llama directory into an llm_model:
 * config.json (LlamaForCausalLM hyperparameters, refusing what this kind
 * does not compute: biases, other activations, pretraining_tp, unknown
 * rope_scaling), model.safetensors (F32/F16/BF16 used in place), the
 * tokenizer (tokenizer.json + tokenizer_config.json's special tokens and
 * chat_template, or chat_template.jinja) and generation_config.json's end
 * ids. HF stores Q/K rows for the half-split RoPE: NEOX mode, no
 * permutation. Every tensor must be a llama weight; anything else is
 * refused by name (old checkpoints' rotary_emb.inv_freq buffers are
 * skipped: they are recomputed). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "llm_model.h"

static bool file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static kinfer_err load_json(const char *path, bool required, json_t **out, kinfer_error *err) {
    *out = NULL;
    if (!file_exists(path)) {
        if (!required)
            return KINFER_OK;
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD, "%s: missing", path);
    }
    json_error_t je;
    *out = json_load_file(path, 0, &je);
    if (!*out || !json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD, "%s: %s (line %d)", path,
                                je.text[0] ? je.text : "not a JSON object", je.line);
    }
    return KINFER_OK;
}

/* obj[key] as an integer in [lo, hi]; absent: *out unchanged unless required. */
static kinfer_err get_int(const json_t *obj, const char *file, const char *key, bool required,
                          int64_t lo, int64_t hi, int64_t *out, kinfer_error *err) {
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        if (required)
            return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD, "%s: \"%s\" is missing", file, key);
        return KINFER_OK;
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD,
                                "%s: \"%s\" must be an integer in [%lld, %lld]", file, key,
                                (long long)lo, (long long)hi);
    *out = json_integer_value(v);
    return KINFER_OK;
}

static kinfer_err get_num(const json_t *obj, const char *file, const char *key, bool required,
                          double *out, kinfer_error *err) {
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        if (required)
            return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD, "%s: \"%s\" is missing", file, key);
        return KINFER_OK;
    }
    if (!json_is_number(v))
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD, "%s: \"%s\" must be a number", file,
                                key);
    *out = json_number_value(v);
    return KINFER_OK;
}

static kinfer_err rope_scaling(llm_config *c, const json_t *rs, const char *file,
                               kinfer_error *err) {
    if (!rs || json_is_null(rs))
        return KINFER_OK;
    const json_t *t = json_object_get(rs, "rope_type");
    if (!t)
        t = json_object_get(rs, "type");
    const char *type = json_is_string(t) ? json_string_value(t) : "?";
    double factor = 0, lo = 1, hi = 4;
    int64_t orig = 0;
    kinfer_err rc = get_num(rs, file, "factor", false, &factor, err);
    if (rc != KINFER_OK)
        return rc;
    if (strcmp(type, "default") == 0)
        return KINFER_OK;
    if (strcmp(type, "linear") == 0) {
        c->rope.scaling = KINFER_ROPE_SCALING_LINEAR;
        c->rope.factor = (float)factor;
        return KINFER_OK;
    }
    if (strcmp(type, "llama3") == 0) {
        if ((rc = get_num(rs, file, "low_freq_factor", false, &lo, err)) ||
            (rc = get_num(rs, file, "high_freq_factor", false, &hi, err)) ||
            (rc = get_int(rs, file, "original_max_position_embeddings", true, 1, LLM_MAX_CONTEXT,
                          &orig, err)))
            return rc;
        c->rope.scaling = KINFER_ROPE_SCALING_LLAMA3;
        c->rope.factor = (float)factor;
        c->rope.low_freq_factor = (float)lo;
        c->rope.high_freq_factor = (float)hi;
        c->rope.original_context = (uint32_t)orig;
        return KINFER_OK;
    }
    return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                            "%s: rope_scaling type '%.32s' is not supported (supported: linear, "
                            "llama3)",
                            file, type);
}

static kinfer_err hf_config(llm_model *m, const char *file, kinfer_error *err) {
    json_t *cj;
    kinfer_err rc = load_json(file, true, &cj, err);
    if (rc != KINFER_OK)
        return rc;
    llm_config *c = &m->cfg;
    const json_t *mt = json_object_get(cj, "model_type");
    const json_t *archs = json_object_get(cj, "architectures");
    const char *arch = json_is_array(archs) && json_is_string(json_array_get(archs, 0))
                           ? json_string_value(json_array_get(archs, 0))
                           : NULL;
    const char *act = json_string_value(json_object_get(cj, "hidden_act"));
    int64_t layers = 0, d = 0, ff = 0, heads = 0, kv = -1, hd = -1, ctx = 0, vocab = 0, tp = 1;
    double eps = 0, theta = 10000.0;
    if (!json_is_string(mt) || strcmp(json_string_value(mt), "llama") != 0)
        rc = kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                              "%s: model_type '%s' is not supported (supported: llama)", file,
                              json_is_string(mt) ? json_string_value(mt) : "?");
    else if (arch && strcmp(arch, "LlamaForCausalLM") != 0)
        rc = kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                              "%s: architecture %s is not supported (supported: "
                              "LlamaForCausalLM)",
                              file, arch);
    else if (act && strcmp(act, "silu") != 0)
        rc = kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                              "%s: hidden_act '%s' is not supported (supported: silu)", file, act);
    else if (json_is_true(json_object_get(cj, "attention_bias")) ||
             json_is_true(json_object_get(cj, "mlp_bias")))
        rc = kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                              "%s: attention_bias / mlp_bias are not supported", file);
    /* each call only runs while everything before it succeeded */
    if (rc == KINFER_OK)
        rc = get_int(cj, file, "num_hidden_layers", true, 1, LLM_MAX_LAYERS, &layers, err);
    if (rc == KINFER_OK)
        rc = get_int(cj, file, "hidden_size", true, 1, LLM_MAX_DIM, &d, err);
    if (rc == KINFER_OK)
        rc = get_int(cj, file, "intermediate_size", true, 1, 8 * LLM_MAX_DIM, &ff, err);
    if (rc == KINFER_OK)
        rc = get_int(cj, file, "num_attention_heads", true, 1, LLM_MAX_HEADS, &heads, err);
    if (rc == KINFER_OK)
        rc = get_int(cj, file, "num_key_value_heads", false, 1, LLM_MAX_HEADS, &kv, err);
    if (rc == KINFER_OK)
        rc = get_int(cj, file, "head_dim", false, 1, 4096, &hd, err);
    if (rc == KINFER_OK)
        rc = get_int(cj, file, "max_position_embeddings", false, 1, LLM_MAX_CONTEXT, &ctx, err);
    if (rc == KINFER_OK)
        rc = get_int(cj, file, "vocab_size", true, 1, LLM_MAX_VOCAB, &vocab, err);
    if (rc == KINFER_OK)
        rc = get_int(cj, file, "pretraining_tp", false, 1, 64, &tp, err);
    if (rc == KINFER_OK)
        rc = get_num(cj, file, "rms_norm_eps", true, &eps, err);
    if (rc == KINFER_OK)
        rc = get_num(cj, file, "rope_theta", false, &theta, err);
    if (rc == KINFER_OK && tp != 1)
        rc = kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                              "%s: pretraining_tp %lld is not supported (1 is)", file,
                              (long long)tp);
    if (rc == KINFER_OK) {
        c->n_layer = (uint32_t)layers;
        c->d_model = (uint32_t)d;
        c->n_ff = (uint32_t)ff;
        c->n_head = (uint32_t)heads;
        c->n_head_kv = kv > 0 ? (uint32_t)kv : c->n_head;
        c->head_dim = hd > 0 ? (uint32_t)hd : c->d_model / c->n_head;
        c->n_rot = c->head_dim;
        c->vocab = (uint32_t)vocab;
        c->ctx_train = (uint32_t)ctx;
        c->rms_eps = (float)eps;
        c->rope = (kinfer_rope_params){.theta = (float)theta};
        c->rope_mode = KINFER_ROPE_NEOX;
        /* LlamaConfig's default is untied */
        c->tied = json_is_true(json_object_get(cj, "tie_word_embeddings"));
        rc = rope_scaling(c, json_object_get(cj, "rope_scaling"), file, err);
    }
    json_decref(cj);
    return rc;
}

static kinfer_qtype st_qtype(kinfer_dtype d) {
    return d == KINFER_DTYPE_FP16   ? KINFER_QTYPE_F16
           : d == KINFER_DTYPE_BF16 ? KINFER_QTYPE_BF16
                                    : KINFER_QTYPE_F32;
}

static kinfer_err map_matrix(llm_model *m, const kinfer_st_tensor *t, llm_weight *w,
                             kinfer_error *err) {
    if (t->dtype != KINFER_DTYPE_FP32 && t->dtype != KINFER_DTYPE_FP16 &&
        t->dtype != KINFER_DTYPE_BF16)
        return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                "%s: tensor %s: dtype %s is not supported (supported: F32, F16, "
                                "BF16)",
                                kinfer_safetensors_label(m->st), t->name,
                                kinfer_st_dtype_name(t->dtype));
    if (t->ndim != 2 || t->shape[0] <= 0 || t->shape[0] > UINT32_MAX || t->shape[1] > UINT32_MAX)
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD, "%s: tensor %s is not a matrix",
                                kinfer_safetensors_label(m->st), t->name);
    w->type = st_qtype(t->dtype);
    w->rows = (uint32_t)t->shape[0];
    w->cols = (uint32_t)t->shape[1];
    w->row_bytes = t->nbytes / w->rows;
    w->name = t->name;
    w->data = t->data;
    size_t align = w->type == KINFER_QTYPE_F32 ? 4 : 2;
    if ((uintptr_t)t->data % align != 0) {
        void *copy = aligned_alloc(64, (t->nbytes + 63) / 64 * 64);
        kinfer_err rc = llm_model_own(m, copy, err);
        if (rc != KINFER_OK)
            return rc;
        memcpy(copy, t->data, t->nbytes);
        w->data = copy;
    }
    return KINFER_OK;
}

static kinfer_err map_norm(llm_model *m, const kinfer_st_tensor *t, const float **out,
                           kinfer_error *err) {
    uint32_t d = m->cfg.d_model;
    if (t->ndim != 1 || t->shape[0] != d)
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD, "%s: tensor %s must have shape [%u]",
                                kinfer_safetensors_label(m->st), t->name, d);
    if (t->dtype == KINFER_DTYPE_FP32 && (uintptr_t)t->data % 4 == 0) {
        *out = t->data;
        return KINFER_OK;
    }
    if (t->dtype != KINFER_DTYPE_FP32 && t->dtype != KINFER_DTYPE_FP16 &&
        t->dtype != KINFER_DTYPE_BF16)
        return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                "%s: tensor %s: dtype %s is not supported (supported: F32, F16, "
                                "BF16)",
                                kinfer_safetensors_label(m->st), t->name,
                                kinfer_st_dtype_name(t->dtype));
    float *f = malloc(d * sizeof(float));
    kinfer_err rc = llm_model_own(m, f, err);
    if (rc != KINFER_OK)
        return rc;
    kinfer_dequantize_row_cpu(t->data, st_qtype(t->dtype), f, d);
    *out = f;
    return KINFER_OK;
}

static const char *const k_hf_parts[] = {
    "input_layernorm.weight",  "self_attn.q_proj.weight", "self_attn.k_proj.weight",
    "self_attn.v_proj.weight", "self_attn.o_proj.weight", "post_attention_layernorm.weight",
    "mlp.gate_proj.weight",    "mlp.up_proj.weight",      "mlp.down_proj.weight"};

static kinfer_err hf_tensors(llm_model *m, kinfer_error *err) {
    const kinfer_safetensors *st = m->st;
    const char *label = kinfer_safetensors_label(st);
    m->layers = calloc(m->cfg.n_layer, sizeof(*m->layers));
    if (!m->layers)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "%s: out of memory", label);
    size_t type_count[KINFER_QTYPE_COUNT] = {0};
    for (size_t i = 0; i < kinfer_safetensors_count(st); i++) {
        const kinfer_st_tensor *t = kinfer_safetensors_at(st, i);
        const char *n = t->name;
        kinfer_err rc = KINFER_OK;
        if (strcmp(n, "model.embed_tokens.weight") == 0) {
            rc = map_matrix(m, t, &m->tok_embd, err);
        } else if (strcmp(n, "model.norm.weight") == 0) {
            rc = map_norm(m, t, &m->output_norm, err);
        } else if (strcmp(n, "lm_head.weight") == 0) {
            if (!m->cfg.tied) /* tied: HF uses the embedding and ignores it */
                rc = map_matrix(m, t, &m->output, err);
        } else if (strncmp(n, "model.layers.", 13) == 0) {
            char *end;
            unsigned long l = strtoul(n + 13, &end, 10);
            if (end == n + 13 || *end != '.')
                return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                        "%s: tensor %s is not a llama weight (not supported)",
                                        label, n);
            if (l >= m->cfg.n_layer)
                return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD,
                                        "%s: tensor %s: layer %lu beyond num_hidden_layers %u",
                                        label, n, l, m->cfg.n_layer);
            const char *part = end + 1;
            if (strcmp(part, "self_attn.rotary_emb.inv_freq") == 0)
                continue;
            llm_layer *L = &m->layers[l];
            llm_weight *ws[] = {NULL, &L->wq,   &L->wk, &L->wv,  &L->wo,
                                NULL, &L->gate, &L->up, &L->down};
            size_t k = 0;
            while (k < 9 && strcmp(part, k_hf_parts[k]) != 0)
                k++;
            if (k == 9)
                return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                        "%s: tensor %s is not a llama weight (not supported)",
                                        label, n);
            if (k == 0)
                rc = map_norm(m, t, &L->attn_norm, err);
            else if (k == 5)
                rc = map_norm(m, t, &L->ffn_norm, err);
            else if ((rc = map_matrix(m, t, ws[k], err)) == KINFER_OK)
                type_count[ws[k]->type]++;
        } else {
            return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                    "%s: tensor %s is not a llama weight (not supported)", label,
                                    n);
        }
        if (rc != KINFER_OK)
            return rc;
    }
    size_t best = 0;
    for (size_t k = 1; k < KINFER_QTYPE_COUNT; k++)
        if (type_count[k] > type_count[best])
            best = k;
    m->file_type = kinfer_qtype_name((kinfer_qtype)best);
    if (!m->tok_embd.data)
        m->tok_embd.name = "model.embed_tokens.weight";
    if (!m->cfg.tied && !m->output.data)
        m->output.name = "lm_head.weight";
    static const char *const names[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                        "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                        "mlp.down_proj"};
    for (uint32_t l = 0; l < m->cfg.n_layer; l++) {
        llm_layer *L = &m->layers[l];
        llm_weight *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->gate, &L->up, &L->down};
        for (size_t k = 0; k < 7; k++) {
            if (ws[k]->data)
                continue;
            char *name = malloc(64);
            kinfer_err rc = llm_model_own(m, name, err);
            if (rc != KINFER_OK)
                return rc;
            snprintf(name, 64, "model.layers.%u.%s.weight", l, names[k]);
            ws[k]->name = name;
        }
    }
    return KINFER_OK;
}

/* A special token of tokenizer_config.json: a string or {"content": ...}. */
static const char *token_text(const json_t *v) {
    if (json_is_string(v))
        return json_string_value(v);
    if (json_is_object(v) && json_is_string(json_object_get(v, "content")))
        return json_string_value(json_object_get(v, "content"));
    return NULL;
}

/* The text of token id (NULL when id < 0) as a template variable. */
static kinfer_err token_var(llm_model *m, int32_t id, char **out, kinfer_error *err) {
    size_t len;
    const char *s = id >= 0 ? kinfer_bpe_token_text(m->tok, id, &len) : NULL;
    if (s && !(*out = strndup(s, len)))
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "%s: out of memory", m->path);
    return KINFER_OK;
}

static kinfer_err parse_template(llm_model *m, const char *src, size_t len, const char *label,
                                 kinfer_error *err) {
    return kinfer_chat_template_parse(src, len, label, &m->tmpl, err);
}

static kinfer_err hf_text(llm_model *m, kinfer_error *err) {
    char path[4200];
    snprintf(path, sizeof(path), "%s/tokenizer.json", m->path);
    if (!file_exists(path))
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD,
                                "%s: tokenizer.json is missing (only tokenizers' JSON format is "
                                "supported)",
                                m->path);
    kinfer_err rc = kinfer_bpe_from_json(path, &m->tok, err);
    if (rc != KINFER_OK)
        return rc;
    json_t *tc = NULL, *gc = NULL, *cc = NULL;
    char tc_path[4200], gc_path[4200], cc_path[4200];
    snprintf(tc_path, sizeof(tc_path), "%s/tokenizer_config.json", m->path);
    snprintf(gc_path, sizeof(gc_path), "%s/generation_config.json", m->path);
    snprintf(cc_path, sizeof(cc_path), "%s/config.json", m->path);
    if ((rc = load_json(tc_path, false, &tc, err)) != KINFER_OK ||
        (rc = load_json(gc_path, false, &gc, err)) != KINFER_OK ||
        (rc = load_json(cc_path, true, &cc, err)) != KINFER_OK)
        goto out;
    /* BOS / EOS: tokenizer_config's tokens by text, else config.json ids */
    int32_t bos = kinfer_bpe_bos(m->tok), eos = -1;
    bool add_bos = kinfer_bpe_add_bos(m->tok);
    const char *bt = tc ? token_text(json_object_get(tc, "bos_token")) : NULL;
    const char *et = tc ? token_text(json_object_get(tc, "eos_token")) : NULL;
    if (bt && (bos = kinfer_bpe_token_id(m->tok, bt, strlen(bt))) < 0) {
        rc = kinfer_error_set(err, KINFER_ERR_MODEL_LOAD,
                              "%s: bos_token '%.64s' is not in the vocabulary", tc_path, bt);
        goto out;
    }
    if (et && (eos = kinfer_bpe_token_id(m->tok, et, strlen(et))) < 0) {
        rc = kinfer_error_set(err, KINFER_ERR_MODEL_LOAD,
                              "%s: eos_token '%.64s' is not in the vocabulary", tc_path, et);
        goto out;
    }
    int64_t v = -1;
    uint32_t vs = kinfer_bpe_vocab_size(m->tok);
    if (bos < 0 &&
        (rc = get_int(cc, cc_path, "bos_token_id", false, 0, vs - 1, &v, err)) == KINFER_OK)
        bos = (int32_t)v;
    v = -1;
    if (rc == KINFER_OK && eos < 0 && json_is_integer(json_object_get(cc, "eos_token_id")) &&
        (rc = get_int(cc, cc_path, "eos_token_id", false, 0, vs - 1, &v, err)) == KINFER_OK)
        eos = (int32_t)v;
    if (rc != KINFER_OK)
        goto out;
    const json_t *ab = tc ? json_object_get(tc, "add_bos_token") : NULL;
    if (json_is_boolean(ab))
        add_bos = json_is_true(ab);
    if (add_bos && bos < 0) {
        rc = kinfer_error_set(err, KINFER_ERR_MODEL_LOAD,
                              "%s: add_bos_token is set but there is no bos_token", tc_path);
        goto out;
    }
    if (tc && json_is_true(json_object_get(tc, "add_eos_token"))) {
        rc = kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                              "%s: add_eos_token = true is not supported", tc_path);
        goto out;
    }
    if ((rc = kinfer_bpe_set_specials(m->tok, bos, eos, add_bos, err)) != KINFER_OK)
        goto out;
    /* generation_config.json (then config.json) end ids: one id or a list */
    const json_t *ge = gc ? json_object_get(gc, "eos_token_id") : NULL;
    if (!ge)
        ge = json_object_get(cc, "eos_token_id");
    size_t ne = json_is_array(ge) ? json_array_size(ge) : json_is_integer(ge) ? 1 : 0;
    for (size_t i = 0; i < ne && rc == KINFER_OK; i++) {
        const json_t *e = json_is_array(ge) ? json_array_get(ge, i) : ge;
        json_int_t id = json_is_integer(e) ? json_integer_value(e) : -1;
        if (id < 0 || id >= (json_int_t)vs)
            rc = kinfer_error_set(err, KINFER_ERR_MODEL_LOAD,
                                  "%s: eos_token_id entry %zu is not a token id", gc_path, i);
        else
            rc = kinfer_bpe_add_eog(m->tok, (int32_t)id, err);
    }
    if (rc != KINFER_OK)
        goto out;
    /* the template's bos_token / eos_token: the vocabulary's text of the ids */
    if ((rc = token_var(m, bos, &m->bos_text, err)) != KINFER_OK ||
        (rc = token_var(m, eos, &m->eos_text, err)) != KINFER_OK)
        goto out;
    /* chat template: tokenizer_config.json's (a string, or a list of named
     * templates of which "default" is used), else chat_template.jinja */
    const json_t *ct = tc ? json_object_get(tc, "chat_template") : NULL;
    if (json_is_string(ct)) {
        rc = parse_template(m, json_string_value(ct), json_string_length(ct), tc_path, err);
    } else if (json_is_array(ct)) {
        size_t i;
        const json_t *e;
        const json_t *def = NULL;
        json_array_foreach(ct, i, e) {
            const char *name = json_string_value(json_object_get(e, "name"));
            if (name && strcmp(name, "default") == 0)
                def = json_object_get(e, "template");
        }
        if (!json_is_string(def))
            rc = kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                  "%s: chat_template is a list without a \"default\" entry",
                                  tc_path);
        else
            rc = parse_template(m, json_string_value(def), json_string_length(def), tc_path, err);
    } else if (ct && !json_is_null(ct)) {
        rc = kinfer_error_set(err, KINFER_ERR_MODEL_LOAD, "%s: chat_template must be a string",
                              tc_path);
    } else {
        char jp[4200];
        snprintf(jp, sizeof(jp), "%s/chat_template.jinja", m->path);
        FILE *f = fopen(jp, "rb");
        if (f) {
            char *src = NULL;
            size_t len = 0, cap = 0, n;
            char buf[4096];
            while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
                if (len + n > cap) {
                    cap = (len + n) * 2;
                    char *p = realloc(src, cap);
                    if (!p)
                        break;
                    src = p;
                }
                memcpy(src + len, buf, n);
                len += n;
            }
            fclose(f);
            if (!src && len)
                rc = kinfer_error_set(err, KINFER_ERR_NOMEM, "%s: out of memory", jp);
            else
                rc = parse_template(m, src ? src : "", len, jp, err);
            free(src);
        }
    }
out:
    json_decref(tc);
    json_decref(gc);
    json_decref(cc);
    return rc;
}

kinfer_err llm_hf_load(llm_model *m, kinfer_error *err) {
    char path[4200];
    snprintf(path, sizeof(path), "%s/model.safetensors.index.json", m->path);
    if (file_exists(path))
        return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                "%s: sharded checkpoints (model.safetensors.index.json) are not "
                                "supported: merge the shards into model.safetensors",
                                m->path);
    snprintf(path, sizeof(path), "%s/config.json", m->path);
    kinfer_err rc = hf_config(m, path, err);
    if (rc != KINFER_OK)
        return rc;
    snprintf(path, sizeof(path), "%s/model.safetensors", m->path);
    if ((rc = kinfer_safetensors_open(path, &m->st, err)) != KINFER_OK)
        return rc;
    if ((rc = hf_tensors(m, err)) != KINFER_OK)
        return rc;
    return hf_text(m, err);
}
