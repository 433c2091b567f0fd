/* llm_model.c — model kind `llm`: loading (a .gguf file or an HF
 * directory, llm_gguf.c / llm_hf.c), the checks every loaded model passes
 * (config bounds, every weight's type and shape), describe, and the kind
 * table entry with its generative ops. The request contract is
 * llm_request.c, the CPU forward llm_cpu.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kinfer/kinfer_device.h"
#include "llm_cuda.h"
#include "llm_model.h"

kinfer_err llm_model_own(llm_model *m, void *p, kinfer_error *err) {
    if (!p)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "%s: out of memory", m->path);
    if (m->nowned == m->cap_owned) {
        size_t cap = m->cap_owned ? m->cap_owned * 2 : 64;
        void **o = realloc(m->owned, cap * sizeof(*o));
        if (!o) {
            free(p);
            return kinfer_error_set(err, KINFER_ERR_NOMEM, "%s: out of memory", m->path);
        }
        m->owned = o;
        m->cap_owned = cap;
    }
    m->owned[m->nowned++] = p;
    return KINFER_OK;
}

void llm_model_destroy(llm_model *m) {
    if (!m)
        return;
    for (size_t i = 0; i < m->nowned; i++)
        free(m->owned[i]);
    free(m->owned);
    free(m->layers);
    kinfer_bpe_destroy(m->tok);
    kinfer_chat_template_destroy(m->tmpl);
    free(m->bos_text);
    free(m->eos_text);
    kinfer_gguf_close(m->gguf);
    kinfer_safetensors_close(m->st);
    free(m->path);
    free(m);
}

static kinfer_err check_weight(const llm_model *m, const llm_weight *w, uint32_t rows,
                               uint32_t cols, kinfer_error *err) {
    if (!w->data)
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD, "%s: tensor %s is missing", m->path,
                                w->name);
    if (w->rows != rows || w->cols != cols)
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD,
                                "%s: tensor %s is [%u, %u] (rows x row length), the config needs "
                                "[%u, %u]",
                                m->path, w->name, w->rows, w->cols, rows, cols);
    size_t rb;
    kinfer_error e2;
    if (kinfer_qtype_row_bytes(w->type, cols, &rb, &e2) != KINFER_OK || rb != w->row_bytes)
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD,
                                "%s: tensor %s: %s rows of %u do not fit its bytes", m->path,
                                w->name, kinfer_qtype_name(w->type), cols);
    return KINFER_OK;
}

kinfer_err llm_model_finish(llm_model *m, kinfer_error *err) {
    llm_config *c = &m->cfg;
    const char *why = NULL;
    if (c->n_layer == 0 || c->n_layer > LLM_MAX_LAYERS)
        why = "layer count";
    else if (c->d_model == 0 || c->d_model > LLM_MAX_DIM)
        why = "embedding length";
    else if (c->n_ff == 0 || c->n_ff > 8 * LLM_MAX_DIM)
        why = "feed-forward length";
    else if (c->n_head == 0 || c->n_head > LLM_MAX_HEADS)
        why = "head count";
    else if (c->n_head_kv == 0 || c->n_head % c->n_head_kv != 0)
        why = "KV head count (must divide the head count)";
    else if (c->head_dim == 0 || c->head_dim > KINFER_KV_MAX_HEAD_DIM)
        why = "head dimension (at most 256)";
    else if (c->n_rot == 0 || c->n_rot % 2 != 0 || c->n_rot > c->head_dim)
        why = "rotary dimension count (even, at most the head dimension)";
    else if (c->vocab == 0 || c->vocab > LLM_MAX_VOCAB)
        why = "vocabulary size";
    else if (!(c->rms_eps > 0 && c->rms_eps < 1))
        why = "RMSNorm epsilon";
    if (why)
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD,
                                "%s: invalid %s (layers %u, d %u, ff %u, heads %u/%u, head dim "
                                "%u, rot %u, vocab %u, eps %g)",
                                m->path, why, c->n_layer, c->d_model, c->n_ff, c->n_head,
                                c->n_head_kv, c->head_dim, c->n_rot, c->vocab, (double)c->rms_eps);
    float probe[LLM_MAX_HEADS];
    kinfer_error e2;
    if (kinfer_rope_freqs(&c->rope, c->n_rot, probe, &e2) != KINFER_OK)
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD, "%s: RoPE: %s", m->path, e2.msg);
    uint32_t qd = c->n_head * c->head_dim, kvd = c->n_head_kv * c->head_dim;
    kinfer_err rc = check_weight(m, &m->tok_embd, c->vocab, c->d_model, err);
    if (rc == KINFER_OK && !c->tied)
        rc = check_weight(m, &m->output, c->vocab, c->d_model, err);
    for (uint32_t l = 0; rc == KINFER_OK && l < c->n_layer; l++) {
        const llm_layer *L = &m->layers[l];
        if (!L->attn_norm || !L->ffn_norm) {
            bool attn = !L->attn_norm;
            if (m->gguf_file)
                return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD,
                                        "%s: tensor blk.%u.%s.weight is missing", m->path, l,
                                        attn ? "attn_norm" : "ffn_norm");
            return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD,
                                    "%s: tensor model.layers.%u.%s.weight is missing", m->path, l,
                                    attn ? "input_layernorm" : "post_attention_layernorm");
        }
        if ((rc = check_weight(m, &L->wq, qd, c->d_model, err)) != KINFER_OK ||
            (rc = check_weight(m, &L->wk, kvd, c->d_model, err)) != KINFER_OK ||
            (rc = check_weight(m, &L->wv, kvd, c->d_model, err)) != KINFER_OK ||
            (rc = check_weight(m, &L->wo, c->d_model, qd, err)) != KINFER_OK ||
            (rc = check_weight(m, &L->gate, c->n_ff, c->d_model, err)) != KINFER_OK ||
            (rc = check_weight(m, &L->up, c->n_ff, c->d_model, err)) != KINFER_OK ||
            (rc = check_weight(m, &L->down, c->d_model, c->n_ff, err)) != KINFER_OK)
            return rc;
    }
    if (rc != KINFER_OK)
        return rc;
    if (!m->output_norm)
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD, "%s: tensor %s is missing", m->path,
                                m->gguf_file ? "output_norm.weight" : "model.norm.weight");
    if (c->tied)
        m->output = m->tok_embd;
    if (kinfer_bpe_vocab_size(m->tok) > c->vocab)
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD,
                                "%s: the tokenizer has %u tokens, the embedding only %u rows",
                                m->path, kinfer_bpe_vocab_size(m->tok), c->vocab);
    /* The context a sequence may reach: the model's, capped by the option. */
    uint32_t ctx = c->ctx_train ? c->ctx_train : LLM_MAX_CONTEXT;
    if (m->context_length == 0 || m->context_length > ctx)
        m->context_length = ctx;
    m->kv = (kinfer_kv_layout){c->n_layer, c->n_head_kv, c->head_dim, m->kv_block_tokens,
                               KINFER_KV_F32};
    if (kinfer_kv_layout_check(&m->kv, &e2) != KINFER_OK)
        return kinfer_error_set(err, KINFER_ERR_CONFIG, "%s: KV cache layout: %s", m->path, e2.msg);
    size_t neog;
    const int32_t *eog = kinfer_bpe_eog(m->tok, &neog);
    m->info = (kinfer_gen_info){
        .vocab_size = c->vocab,
        .context_length = m->context_length,
        .kv_block_tokens = m->kv_block_tokens,
        .kv_block_bytes = kinfer_kv_block_bytes(&m->kv),
        .bos_id = kinfer_bpe_bos(m->tok),
        .eog_ids = eog,
        .neog = neog,
    };
    if (neog == 0)
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD,
                                "%s: no end-of-generation token (no EOS id in the metadata)",
                                m->path);
    return KINFER_OK;
}

kinfer_err llm_model_load(const kinfer_model_options *opts, llm_model **out, kinfer_error *err) {
    *out = NULL;
    llm_model *m = calloc(1, sizeof(*m));
    if (!m || !(m->path = strdup(opts->path))) {
        free(m);
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "%s: out of memory", opts->path);
    }
    size_t pl = strlen(m->path);
    while (pl > 1 && m->path[pl - 1] == '/')
        m->path[--pl] = '\0';
    m->cpu_threads = opts->cpu_threads;
    m->context_length = opts->context_length;
    m->kv_block_tokens =
        opts->kv_block_tokens ? opts->kv_block_tokens : LLM_DEFAULT_KV_BLOCK_TOKENS;
    snprintf(m->precision, sizeof(m->precision), "%s", opts->precision ? opts->precision : "fp32");
    kinfer_err rc;
    struct stat sb;
    if (stat(m->path, &sb) != 0) {
        rc = kinfer_error_set(err, KINFER_ERR_IO, "%s: no such file or directory", m->path);
    } else if (S_ISDIR(sb.st_mode)) {
        rc = llm_hf_load(m, err);
    } else {
        m->gguf_file = true;
        rc = llm_gguf_load(m, err);
    }
    if (rc == KINFER_OK)
        rc = llm_model_finish(m, err);
    if (rc != KINFER_OK) {
        llm_model_destroy(m);
        return rc;
    }
    *out = m;
    return KINFER_OK;
}

void llm_model_describe(const llm_model *m, char *buf, size_t buflen) {
    const llm_config *c = &m->cfg;
    char ft[16];
    size_t i = 0;
    for (const char *p = m->file_type ? m->file_type : "?"; *p && i + 1 < sizeof(ft); p++)
        ft[i++] = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    ft[i] = '\0';
    snprintf(buf, buflen, "llm llama %uL d%u %u/%u heads %s ctx %u vocab %u%s", c->n_layer,
             c->d_model, c->n_head, c->n_head_kv, ft, m->context_length, c->vocab,
             c->tied ? "" : " untied");
}

/* --- kind table entry ---------------------------------------------------------- */

static kinfer_err kind_load(const kinfer_model_options *opts, void **impl, kinfer_error *err) {
    if (opts->activation || opts->output_activation)
        return kinfer_error_set(err, KINFER_ERR_CONFIG,
                                "activation overrides do not apply to kind llm");
    kinfer_dtype precision_dtype;
    /* int8 is a CPU dense-layer precision of mlp/bert, not this kind's. */
    if (!kinfer_precision_parse(opts->precision, &precision_dtype) ||
        precision_dtype == KINFER_DTYPE_INT8)
        return kinfer_error_set(err, KINFER_ERR_CONFIG, "precision \"%s\" (fp32, fp16, bf16)",
                                opts->precision);
    llm_model *m;
    kinfer_err rc = llm_model_load(opts, &m, err);
    if (rc == KINFER_OK)
        *impl = m;
    return rc;
}

static void kind_destroy(void *impl) {
    llm_model_destroy(impl);
}

static void kind_describe(const void *impl, char *buf, size_t buflen) {
    llm_model_describe(impl, buf, buflen);
}

static kinfer_err kind_check(const void *impl, const kinfer_tensor *inputs, size_t ninputs,
                             const kinfer_param *params, size_t nparams, kinfer_request_cost *cost,
                             kinfer_error *err) {
    return llm_check_request(impl, inputs, ninputs, params, nparams, cost, err);
}

static kinfer_err kind_replica_new(const void *impl, const kinfer_device *device, uint32_t max_rows,
                                   kinfer_replica_impl **out, kinfer_error *err) {
    if (device->type == KINFER_DEVICE_CUDA) {
#ifdef KINFER_HAVE_CUDA
        /* kinfer_replica_new has checked that the device is present. */
        return llm_cuda_replica_new(impl, device->index, max_rows, out, err);
#else
        return kinfer_error_set(err, KINFER_ERR_DEVICE,
                                "device %s: this build has no CUDA backend (rebuild with "
                                "-DKINFER_CUDA=ON)",
                                device->name);
#endif
    }
    if (device->type != KINFER_DEVICE_CPU)
        return kinfer_error_set(err, KINFER_ERR_DEVICE, "kind llm has no %s backend", device->name);
    return llm_cpu_replica_new(impl, max_rows, out, err);
}

static void gen_info(const void *impl, kinfer_gen_info *info) {
    *info = ((const llm_model *)impl)->info;
}

static kinfer_err gen_tokenize(const void *impl, kinfer_str prompt,
                               const kinfer_chat_message *messages, size_t nmessages, int32_t **ids,
                               size_t *nids, kinfer_error *err) {
    return llm_tokenize(impl, prompt, messages, nmessages, ids, nids, err);
}

static size_t gen_token_bytes(const void *impl, int32_t id, bool special, char *out, size_t cap) {
    return kinfer_bpe_token_bytes(((const llm_model *)impl)->tok, id, special, out, cap);
}

static const kinfer_model_gen_ops llm_gen_ops = {
    .info = gen_info,
    .tokenize = gen_tokenize,
    .token_bytes = gen_token_bytes,
};

static const char *const llm_precisions[] = {"fp32", "fp16", "bf16", NULL};
/* The config keys only generative kinds read (config_table.c). */
static const char *const llm_options[] = {"context_length", "kv_block_tokens", "kv_cache_bytes",
                                          "default_max_tokens", NULL};

const kinfer_model_kind_ops llm_kind_ops = {
    .info =
        {
            .name = "llm",
            .summary = "Llama-family decoder: a GGUF file or a Hugging Face directory",
            .path = KINFER_MODEL_PATH_ANY,
            .precisions = llm_precisions,
            .options = llm_options,
        },
    .load = kind_load,
    .destroy = kind_destroy,
    .describe = kind_describe,
    .check_request = kind_check,
    .replica_new = kind_replica_new,
    .gen = &llm_gen_ops,
};
