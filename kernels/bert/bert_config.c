/* bert_config.c — reading config.json and the sentence-transformers files
 * (modules.json, <pooling>/config.json, sentence_bert_config.json) of a
 * Hugging Face BERT directory into bert_model's scalar fields. Refuses,
 * naming them, every architecture and option the forward pass does not
 * implement. Weights are bert_weights.c's job. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bert_model.h"

static bool exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static json_t *load_json(const char *path, kinfer_error *err) {
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) {
        kinfer_error_set(err, exists(path) ? KINFER_ERR_MODEL_LOAD : KINFER_ERR_IO, "%s:%d: %s",
                         path, jerr.line, jerr.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        kinfer_error_set(err, KINFER_ERR_MODEL_LOAD, "%s: not a JSON object", path);
        return NULL;
    }
    return root;
}

/* A positive integer config key within [1, max]; *out untouched if absent
 * and not required. */
static kinfer_err get_uint(json_t *cfg, const char *path, const char *key, uint32_t max,
                           bool required, uint32_t *out, kinfer_error *err) {
    json_t *v = json_object_get(cfg, key);
    if (!v) {
        if (!required)
            return KINFER_OK;
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD, "%s: missing \"%s\"", path, key);
    }
    json_int_t x = json_is_integer(v) ? json_integer_value(v) : -1;
    if (x < 1 || (uint64_t)x > max)
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD,
                                "%s: \"%s\" must be an integer in 1..%u", path, key, max);
    *out = (uint32_t)x;
    return KINFER_OK;
}

static kinfer_err check_architecture(bert_model *m, json_t *cfg, const char *path,
                                     kinfer_error *err) {
    const char *type = json_string_value(json_object_get(cfg, "model_type"));
    if (type && strcmp(type, "bert") != 0)
        return kinfer_error_set(
            err, KINFER_ERR_UNSUPPORTED,
            "%s: model_type \"%s\" is not supported by kind bert (only \"bert\")", path, type);
    json_t *archs = json_object_get(cfg, "architectures");
    if (json_is_array(archs) && json_array_size(archs) > 0) {
        if (json_array_size(archs) != 1)
            return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                    "%s: several architectures listed; expected one", path);
        const char *a = json_string_value(json_array_get(archs, 0));
        if (a && strcmp(a, "BertForSequenceClassification") == 0)
            m->classifier = true;
        else if (!a || strcmp(a, "BertModel") != 0)
            return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                    "%s: architecture \"%s\" is not supported (BertModel, "
                                    "BertForSequenceClassification)",
                                    path, a ? a : "?");
    }
    const char *act = json_string_value(json_object_get(cfg, "hidden_act"));
    if (act && strcmp(act, "gelu") != 0)
        return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                "%s: hidden_act \"%s\" is not supported (only \"gelu\", the erf "
                                "form)",
                                path, act);
    const char *pe = json_string_value(json_object_get(cfg, "position_embedding_type"));
    if (pe && strcmp(pe, "absolute") != 0)
        return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                "%s: position_embedding_type \"%s\" is not supported (only "
                                "\"absolute\")",
                                path, pe);
    if (json_is_true(json_object_get(cfg, "is_decoder")) ||
        json_is_true(json_object_get(cfg, "add_cross_attention")))
        return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                "%s: decoder / cross-attention BERT is not supported", path);
    const char *pt = json_string_value(json_object_get(cfg, "problem_type"));
    if (pt && strcmp(pt, "single_label_classification") != 0 &&
        strcmp(pt, "multi_label_classification") != 0)
        return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                "%s: problem_type \"%s\" is not supported", path, pt);
    return KINFER_OK;
}

/* id2label {"0": "NEG", ...}; labels absent from it are "LABEL_<i>" as in
 * transformers. */
static kinfer_err read_labels(bert_model *m, json_t *cfg, const char *path, kinfer_error *err) {
    json_t *id2label = json_object_get(cfg, "id2label");
    uint32_t n = 0;
    if (json_is_object(id2label))
        n = (uint32_t)json_object_size(id2label);
    uint32_t nl = 0;
    if (get_uint(cfg, path, "num_labels", BERT_MAX_LABELS, false, &nl, err) != KINFER_OK)
        return KINFER_ERR_MODEL_LOAD;
    if (nl)
        n = nl;
    if (n == 0)
        n = 2; /* transformers' default */
    if (n > BERT_MAX_LABELS)
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD, "%s: %u labels (max %d)", path, n,
                                BERT_MAX_LABELS);
    m->num_labels = n;
    m->labels = calloc(n, sizeof(char *));
    m->label_strs = calloc(n, sizeof(kinfer_str));
    if (!m->labels || !m->label_strs)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "%s: out of memory", path);
    for (uint32_t i = 0; i < n; i++) {
        char key[16];
        snprintf(key, sizeof(key), "%u", i);
        const char *name = json_string_value(json_object_get(id2label, key));
        char dflt[32];
        snprintf(dflt, sizeof(dflt), "LABEL_%u", i);
        m->labels[i] = strdup(name ? name : dflt);
        if (!m->labels[i])
            return kinfer_error_set(err, KINFER_ERR_NOMEM, "%s: out of memory", path);
        m->label_strs[i] = (kinfer_str){m->labels[i], strlen(m->labels[i])};
    }
    return KINFER_OK;
}

static kinfer_err read_config(bert_model *m, kinfer_error *err) {
    char path[4200];
    snprintf(path, sizeof(path), "%s/config.json", m->dir);
    json_t *cfg = load_json(path, err);
    if (!cfg)
        return err ? err->code : KINFER_ERR_MODEL_LOAD;
    kinfer_err rc;
    m->type_vocab = 2;
    m->max_positions = 512;
    if ((rc = check_architecture(m, cfg, path, err)) != KINFER_OK ||
        (rc = get_uint(cfg, path, "hidden_size", BERT_MAX_HIDDEN, true, &m->hidden, err)) ||
        (rc = get_uint(cfg, path, "num_hidden_layers", BERT_MAX_LAYERS, true, &m->layers, err)) ||
        (rc = get_uint(cfg, path, "num_attention_heads", BERT_MAX_HIDDEN, true, &m->heads, err)) ||
        (rc = get_uint(cfg, path, "intermediate_size", 8 * BERT_MAX_HIDDEN, true, &m->intermediate,
                       err)) ||
        (rc = get_uint(cfg, path, "vocab_size", 1u << 24, true, &m->vocab, err)) ||
        (rc = get_uint(cfg, path, "max_position_embeddings", BERT_MAX_POSITIONS, false,
                       &m->max_positions, err)) ||
        (rc = get_uint(cfg, path, "type_vocab_size", 1024, false, &m->type_vocab, err))) {
        json_decref(cfg);
        return rc;
    }
    if (m->hidden % m->heads != 0) {
        json_decref(cfg);
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD,
                                "%s: hidden_size %u is not a multiple of num_attention_heads %u",
                                path, m->hidden, m->heads);
    }
    m->ln_eps = 1e-12f;
    json_t *eps = json_object_get(cfg, "layer_norm_eps");
    if (eps) {
        double e = json_number_value(eps);
        if (!json_is_number(eps) || !(e > 0.0) || e > 1.0) {
            json_decref(cfg);
            return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD,
                                    "%s: layer_norm_eps must be a number in (0, 1]", path);
        }
        m->ln_eps = (float)e;
    }
    rc = m->classifier ? read_labels(m, cfg, path, err) : KINFER_OK;
    json_decref(cfg);
    return rc;
}

static bool type_is(const char *type, const char *cls) {
    size_t lt = strlen(type), lc = strlen(cls);
    return lt > lc && type[lt - lc - 1] == '.' && strcmp(type + lt - lc, cls) == 0;
}

static kinfer_err read_pooling(bert_model *m, const char *sub, kinfer_error *err) {
    char path[4400];
    snprintf(path, sizeof(path), "%s/%s/config.json", m->dir, sub);
    json_t *cfg = load_json(path, err);
    if (!cfg)
        return err ? err->code : KINFER_ERR_MODEL_LOAD;
    static const struct {
        const char *key;
        unsigned bit;
    } modes[] = {{"pooling_mode_cls_token", BERT_POOL_CLS},
                 {"pooling_mode_max_tokens", BERT_POOL_MAX},
                 {"pooling_mode_mean_tokens", BERT_POOL_MEAN},
                 {"pooling_mode_mean_sqrt_len_tokens", BERT_POOL_MEAN_SQRT}};
    static const char *const unsupported[] = {"pooling_mode_weightedmean_tokens",
                                              "pooling_mode_lasttoken"};
    m->pooling = 0;
    for (size_t i = 0; i < 4; i++)
        if (json_is_true(json_object_get(cfg, modes[i].key)))
            m->pooling |= modes[i].bit;
    for (size_t i = 0; i < 2; i++) {
        if (json_is_true(json_object_get(cfg, unsupported[i]))) {
            json_decref(cfg);
            return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                    "%s: %s is not supported (cls, max, mean, mean_sqrt_len)", path,
                                    unsupported[i]);
        }
    }
    json_t *dim = json_object_get(cfg, "word_embedding_dimension");
    bool dim_ok = !dim || (json_is_integer(dim) && json_integer_value(dim) == m->hidden);
    json_decref(cfg);
    if (!dim_ok)
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD,
                                "%s: word_embedding_dimension differs from hidden_size %u", path,
                                m->hidden);
    if (!m->pooling)
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD, "%s: no pooling mode enabled", path);
    return KINFER_OK;
}

/* modules.json: Transformer (at the root) -> Pooling -> [Normalize]. */
static kinfer_err read_modules(bert_model *m, bool *has_pooling, kinfer_error *err) {
    char path[4200];
    snprintf(path, sizeof(path), "%s/modules.json", m->dir);
    *has_pooling = false;
    if (!exists(path))
        return KINFER_OK;
    json_error_t jerr;
    json_t *mods = json_load_file(path, 0, &jerr);
    if (!mods || !json_is_array(mods)) {
        json_decref(mods);
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD, "%s: must be a JSON array", path);
    }
    kinfer_err rc = KINFER_OK;
    size_t i;
    json_t *mod;
    json_array_foreach(mods, i, mod) {
        const char *type = json_string_value(json_object_get(mod, "type"));
        const char *sub = json_string_value(json_object_get(mod, "path"));
        if (!type) {
            rc =
                kinfer_error_set(err, KINFER_ERR_MODEL_LOAD, "%s: module %zu has no type", path, i);
        } else if (type_is(type, "Transformer")) {
            if (i != 0 || (sub && *sub))
                rc = kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                      "%s: the Transformer module must be first and at the "
                                      "directory root (path \"%s\")",
                                      path, sub ? sub : "");
        } else if (type_is(type, "Pooling")) {
            if (!sub || !*sub || strstr(sub, "..") || *has_pooling)
                rc = kinfer_error_set(err, KINFER_ERR_MODEL_LOAD,
                                      "%s: Pooling module needs one relative path", path);
            else if ((rc = read_pooling(m, sub, err)) == KINFER_OK)
                *has_pooling = true;
        } else if (type_is(type, "Normalize")) {
            if (!*has_pooling)
                rc = kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                      "%s: Normalize before Pooling is not supported", path);
            m->normalize = true;
        } else {
            rc = kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                  "%s: module type \"%s\" is not supported (Transformer, "
                                  "Pooling, Normalize)",
                                  path, type);
        }
        if (rc != KINFER_OK)
            break;
    }
    json_decref(mods);
    return rc;
}

/* sentence_bert_config.json: max_seq_length; do_lower_case=true means the
 * Python side lower-cases with str.lower() before tokenizing, which this
 * tokenizer does not reproduce, so it is refused. */
static kinfer_err read_sbert(bert_model *m, kinfer_error *err) {
    char path[4200];
    snprintf(path, sizeof(path), "%s/sentence_bert_config.json", m->dir);
    if (!exists(path))
        return KINFER_OK;
    json_t *cfg = load_json(path, err);
    if (!cfg)
        return err ? err->code : KINFER_ERR_MODEL_LOAD;
    kinfer_err rc =
        get_uint(cfg, path, "max_seq_length", BERT_MAX_POSITIONS, false, &m->max_seq_len, err);
    if (rc == KINFER_OK && json_is_true(json_object_get(cfg, "do_lower_case")))
        rc = kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                              "%s: do_lower_case=true is not supported", path);
    json_decref(cfg);
    return rc;
}

/* tokenizer_config.json model_max_length bounds the default max length of a
 * plain (non-sentence-transformers) directory, as transformers does. */
static void read_model_max_length(bert_model *m) {
    char path[4200];
    snprintf(path, sizeof(path), "%s/tokenizer_config.json", m->dir);
    json_error_t jerr;
    json_t *cfg = json_load_file(path, 0, &jerr);
    json_t *v = json_object_get(cfg, "model_max_length");
    if (json_is_integer(v) && json_integer_value(v) > 1 &&
        json_integer_value(v) < (json_int_t)m->max_seq_len)
        m->max_seq_len = (uint32_t)json_integer_value(v);
    json_decref(cfg);
}

kinfer_err bert_config_load(bert_model *m, kinfer_error *err) {
    kinfer_err rc = read_config(m, err);
    if (rc != KINFER_OK)
        return rc;
    m->pooling = BERT_POOL_MEAN;
    m->normalize = false;
    m->max_seq_len = 0;
    bool has_pooling;
    if ((rc = read_modules(m, &has_pooling, err)) != KINFER_OK ||
        (rc = read_sbert(m, err)) != KINFER_OK)
        return rc;
    if (m->max_seq_len == 0) {
        m->max_seq_len = m->max_positions;
        read_model_max_length(m);
    }
    if (m->max_seq_len > m->max_positions)
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD,
                                "%s: max_seq_length %u exceeds max_position_embeddings %u", m->dir,
                                m->max_seq_len, m->max_positions);
    if (m->max_seq_len < 2)
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD, "%s: max_seq_length below 2", m->dir);
    unsigned modes = 0;
    for (unsigned b = m->pooling; b; b &= b - 1)
        modes++;
    m->out_dim = m->hidden * modes;
    return KINFER_OK;
}
