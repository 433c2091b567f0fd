/* llm_tiny_model.h — tiny random Llama models for the llm unit tests,
 * written as a GGUF file (any weight type per tensor) or as the equivalent
 * Hugging Face directory (F32 safetensors with the Q/K rows un-permuted to
 * the half-split RoPE layout, tokenizer.json, configs), plus a naive
 * double-precision forward pass over the weights as the file holds them:
 * the oracle of test_llm_tiny.c. Header-only (static). Not for production. */
#ifndef LLM_TINY_MODEL_H
#define LLM_TINY_MODEL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"
#include "formats/safetensors.h"
#include "llm_test_util.h"
#include "ops/quant.h"

#define TINY_MAX_LAYERS 4

typedef struct tiny_spec {
    uint32_t n_layer, d, n_head, n_kv, hd, ff, ctx;
    float theta, eps;
    bool tied;
    kinfer_qtype embd_type, mat_type, out_type; /* out_type unused when tied */
    uint64_t seed;
} tiny_spec;

static inline tiny_spec tiny_default(void) {
    return (tiny_spec){.n_layer = 2,
                       .d = 64,
                       .n_head = 4,
                       .n_kv = 2,
                       .hd = 16,
                       .ff = 96,
                       .ctx = 256,
                       .theta = 10000.0f,
                       .eps = 1e-5f,
                       .tied = true,
                       .embd_type = KINFER_QTYPE_F32,
                       .mat_type = KINFER_QTYPE_F32,
                       .out_type = KINFER_QTYPE_F32,
                       .seed = 1};
}

/* Vocabulary: 256 byte tokens, then the three ChatML control tokens. */
#define TINY_VOCAB 259
#define TINY_IM_START 256
#define TINY_IM_END 257
#define TINY_EOT 258

/* One matrix as the file holds it and its exact values (dequantized). */
typedef struct tiny_mat {
    uint32_t rows, cols;
    kinfer_qtype type;
    void *bytes;    /* rows of type */
    double *values; /* [rows, cols] what the bytes mean */
} tiny_mat;

typedef struct tiny_model {
    tiny_spec s;
    tiny_mat embd, out;
    double *norm_out; /* [d] */
    double *attn_norm[TINY_MAX_LAYERS], *ffn_norm[TINY_MAX_LAYERS];
    tiny_mat wq[TINY_MAX_LAYERS], wk[TINY_MAX_LAYERS], wv[TINY_MAX_LAYERS], wo[TINY_MAX_LAYERS];
    tiny_mat gate[TINY_MAX_LAYERS], up[TINY_MAX_LAYERS], down[TINY_MAX_LAYERS];
} tiny_model;

static inline void tiny_mat_make(tiny_mat *m, uint32_t rows, uint32_t cols, kinfer_qtype t,
                                 float scale, lt_rng *rng) {
    m->rows = rows;
    m->cols = cols;
    m->type = t;
    size_t rb;
    kinfer_error err;
    if (kinfer_qtype_row_bytes(t, cols, &rb, &err) != KINFER_OK)
        abort();
    m->bytes = malloc(rb * rows);
    m->values = malloc(sizeof(double) * rows * cols);
    float *row = malloc(sizeof(float) * cols);
    for (uint32_t r = 0; r < rows; r++) {
        for (uint32_t c = 0; c < cols; c++)
            row[c] = lt_uniform(rng) * scale;
        kinfer_quantize_row_cpu(row, t, (uint8_t *)m->bytes + r * rb, cols);
        kinfer_dequantize_row_cpu((uint8_t *)m->bytes + r * rb, t, row, cols);
        for (uint32_t c = 0; c < cols; c++)
            m->values[(size_t)r * cols + c] = row[c];
    }
    free(row);
}

static inline void tiny_mat_free(tiny_mat *m) {
    free(m->bytes);
    free(m->values);
}

static inline double *tiny_norm(uint32_t d, lt_rng *rng) {
    double *w = malloc(sizeof(double) * d);
    for (uint32_t i = 0; i < d; i++)
        w[i] = (double)(float)(1.0 + 0.25 * lt_uniform(rng)); /* exactly an F32 */
    return w;
}

static inline tiny_model *tiny_make(const tiny_spec *s) {
    tiny_model *m = calloc(1, sizeof(*m));
    m->s = *s;
    lt_rng rng = {s->seed};
    uint32_t qd = s->n_head * s->hd, kvd = s->n_kv * s->hd;
    float sd = 1.0f / sqrtf((float)s->d), sf = 1.0f / sqrtf((float)s->ff),
          sq = 1.0f / sqrtf((float)qd);
    tiny_mat_make(&m->embd, TINY_VOCAB, s->d, s->embd_type, 1.0f, &rng);
    if (!s->tied)
        tiny_mat_make(&m->out, TINY_VOCAB, s->d, s->out_type, sd, &rng);
    m->norm_out = tiny_norm(s->d, &rng);
    for (uint32_t l = 0; l < s->n_layer; l++) {
        m->attn_norm[l] = tiny_norm(s->d, &rng);
        m->ffn_norm[l] = tiny_norm(s->d, &rng);
        tiny_mat_make(&m->wq[l], qd, s->d, s->mat_type, 2 * sd, &rng);
        tiny_mat_make(&m->wk[l], kvd, s->d, s->mat_type, 2 * sd, &rng);
        tiny_mat_make(&m->wv[l], kvd, s->d, s->mat_type, sd, &rng);
        tiny_mat_make(&m->wo[l], s->d, qd, s->mat_type, sq, &rng);
        tiny_mat_make(&m->gate[l], s->ff, s->d, s->mat_type, sd, &rng);
        tiny_mat_make(&m->up[l], s->ff, s->d, s->mat_type, sd, &rng);
        tiny_mat_make(&m->down[l], s->d, s->ff, s->mat_type, sf, &rng);
    }
    return m;
}

static inline void tiny_free(tiny_model *m) {
    if (!m)
        return;
    tiny_mat_free(&m->embd);
    if (!m->s.tied)
        tiny_mat_free(&m->out);
    free(m->norm_out);
    for (uint32_t l = 0; l < m->s.n_layer; l++) {
        free(m->attn_norm[l]);
        free(m->ffn_norm[l]);
        tiny_mat *ms[] = {&m->wq[l],   &m->wk[l], &m->wv[l],  &m->wo[l],
                          &m->gate[l], &m->up[l], &m->down[l]};
        for (int k = 0; k < 7; k++)
            tiny_mat_free(ms[k]);
    }
    free(m);
}

/* --- the oracle: a plain double forward over all positions --------------------- */

static inline void tiny_rms(const double *x, const double *w, double *y, uint32_t n, double eps) {
    double ss = 0;
    for (uint32_t i = 0; i < n; i++)
        ss += x[i] * x[i];
    double inv = 1.0 / sqrt(ss / n + eps);
    for (uint32_t i = 0; i < n; i++)
        y[i] = x[i] * inv * w[i];
}

static inline void tiny_matvec(const tiny_mat *m, const double *x, double *y) {
    for (uint32_t r = 0; r < m->rows; r++) {
        double s = 0;
        for (uint32_t c = 0; c < m->cols; c++)
            s += m->values[(size_t)r * m->cols + c] * x[c];
        y[r] = s;
    }
}

/* Adjacent-pair rotation (GGUF layout) of one head at position p. */
static inline void tiny_rope(double *h, uint32_t hd, uint32_t p, double theta) {
    for (uint32_t i = 0; i < hd / 2; i++) {
        double ang = p * pow(theta, -2.0 * i / hd);
        double a = h[2 * i], b = h[2 * i + 1];
        h[2 * i] = a * cos(ang) - b * sin(ang);
        h[2 * i + 1] = a * sin(ang) + b * cos(ang);
    }
}

/* logits [n, vocab] of every position of ids[0..n). */
static inline double *tiny_forward(const tiny_model *m, const int32_t *ids, uint32_t n) {
    const tiny_spec *s = &m->s;
    uint32_t d = s->d, qd = s->n_head * s->hd, kvd = s->n_kv * s->hd;
    double *x = malloc(sizeof(double) * n * d), *t = malloc(sizeof(double) * d);
    double *q = malloc(sizeof(double) * n * qd), *k = malloc(sizeof(double) * n * kvd);
    double *v = malloc(sizeof(double) * n * kvd), *o = malloc(sizeof(double) * qd);
    double *y = malloc(sizeof(double) * (d > s->ff ? d : s->ff) * 2);
    double *g = malloc(sizeof(double) * s->ff), *u = malloc(sizeof(double) * s->ff);
    double *sc = malloc(sizeof(double) * n);
    for (uint32_t p = 0; p < n; p++)
        memcpy(x + (size_t)p * d, m->embd.values + (size_t)ids[p] * d, sizeof(double) * d);
    for (uint32_t l = 0; l < s->n_layer; l++) {
        for (uint32_t p = 0; p < n; p++) {
            tiny_rms(x + (size_t)p * d, m->attn_norm[l], t, d, s->eps);
            tiny_matvec(&m->wq[l], t, q + (size_t)p * qd);
            tiny_matvec(&m->wk[l], t, k + (size_t)p * kvd);
            tiny_matvec(&m->wv[l], t, v + (size_t)p * kvd);
            for (uint32_t h = 0; h < s->n_head; h++)
                tiny_rope(q + (size_t)p * qd + h * s->hd, s->hd, p, s->theta);
            for (uint32_t h = 0; h < s->n_kv; h++)
                tiny_rope(k + (size_t)p * kvd + h * s->hd, s->hd, p, s->theta);
        }
        for (uint32_t p = 0; p < n; p++) {
            for (uint32_t h = 0; h < s->n_head; h++) {
                uint32_t kh = h / (s->n_head / s->n_kv);
                double mx = -INFINITY, sum = 0;
                for (uint32_t j = 0; j <= p; j++) {
                    double dot = 0;
                    for (uint32_t e = 0; e < s->hd; e++)
                        dot +=
                            q[(size_t)p * qd + h * s->hd + e] * k[(size_t)j * kvd + kh * s->hd + e];
                    sc[j] = dot / sqrt((double)s->hd);
                    mx = sc[j] > mx ? sc[j] : mx;
                }
                for (uint32_t j = 0; j <= p; j++)
                    sum += (sc[j] = exp(sc[j] - mx));
                for (uint32_t e = 0; e < s->hd; e++) {
                    double acc = 0;
                    for (uint32_t j = 0; j <= p; j++)
                        acc += sc[j] * v[(size_t)j * kvd + kh * s->hd + e];
                    o[h * s->hd + e] = acc / sum;
                }
            }
            tiny_matvec(&m->wo[l], o, y);
            for (uint32_t i = 0; i < d; i++)
                x[(size_t)p * d + i] += y[i];
        }
        for (uint32_t p = 0; p < n; p++) {
            tiny_rms(x + (size_t)p * d, m->ffn_norm[l], t, d, s->eps);
            tiny_matvec(&m->gate[l], t, g);
            tiny_matvec(&m->up[l], t, u);
            for (uint32_t i = 0; i < s->ff; i++)
                g[i] = g[i] / (1.0 + exp(-g[i])) * u[i];
            tiny_matvec(&m->down[l], g, y);
            for (uint32_t i = 0; i < d; i++)
                x[(size_t)p * d + i] += y[i];
        }
    }
    double *logits = malloc(sizeof(double) * n * TINY_VOCAB);
    const tiny_mat *out = s->tied ? &m->embd : &m->out;
    for (uint32_t p = 0; p < n; p++) {
        tiny_rms(x + (size_t)p * d, m->norm_out, t, d, s->eps);
        tiny_matvec(out, t, logits + (size_t)p * TINY_VOCAB);
    }
    free(x);
    free(t);
    free(q);
    free(k);
    free(v);
    free(o);
    free(y);
    free(g);
    free(u);
    free(sc);
    return logits;
}

/* --- writers --------------------------------------------------------------------- */

/* GGML type id of a kinfer_qtype. */
static inline uint32_t tiny_ggml(kinfer_qtype t) {
    static const uint32_t ids[] = {0, 1, 30, 8, 2, 3};
    return ids[t];
}

static inline void tiny_token_text(int id, char *buf, size_t *len) {
    static const char *const ctl[] = {"<|im_start|>", "<|im_end|>", "<|endoftext|>"};
    if (id >= 256) {
        *len = strlen(ctl[id - 256]);
        memcpy(buf, ctl[id - 256], *len);
        return;
    }
    /* GPT-2's byte-level character of byte `id`, as UTF-8 */
    uint32_t n = 0, cp = 0;
    for (int b = 0; b <= id; b++) {
        bool pr = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        cp = pr ? (uint32_t)b : 256 + n++;
    }
    if (cp < 0x80) {
        buf[0] = (char)cp;
        *len = 1;
    } else {
        buf[0] = (char)(0xC0 | (cp >> 6));
        buf[1] = (char)(0x80 | (cp & 0x3F));
        *len = 2;
    }
}

#define TINY_TEMPLATE                                                                              \
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "                   \
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ "     \
    "'<|im_start|>assistant\\n' }}{% endif %}"

/* Hooks for hostile variants: a test may skip or rename one tensor, or
 * change a key; NULL = the plain model. */
typedef struct tiny_edit {
    const char *skip_tensor;  /* leave this tensor out */
    const char *extra_tensor; /* add an F32 [d] tensor of this name */
    const char *arch;         /* general.architecture (default "llama") */
    uint32_t type_override;   /* ggml type id for blk.0.ffn_up.weight (0 = none) */
    bool bad_shape;           /* blk.0.attn_q.weight gets one row too few */
    bool no_template;
    const char *tmpl;         /* chat template instead of ChatML */
    uint32_t n_kv;            /* head_count_kv written (0 = the spec's) */
    bool no_eps;              /* leave out layer_norm_rms_epsilon */
    uint32_t experts;         /* llama.expert_count (0 = none) */
    const char *rope_scaling; /* llama.rope.scaling.type */
    bool no_tokenizer;        /* leave out tokenizer.ggml.* */
} tiny_edit;

static inline void tiny_put_matrix(kinfer_gguf_writer *w, const char *name, const tiny_mat *m,
                                   const tiny_edit *e) {
    kinfer_error err;
    if (e && e->skip_tensor && strcmp(e->skip_tensor, name) == 0)
        return;
    uint32_t type = tiny_ggml(m->type);
    uint64_t ne[2] = {m->cols, m->rows};
    if (e && e->bad_shape && strcmp(name, "blk.0.attn_q.weight") == 0)
        ne[1]--;
    if (e && e->type_override && strcmp(name, "blk.0.ffn_up.weight") == 0) {
        /* raw bytes of the right size for the new type */
        type = e->type_override;
        size_t nb = (size_t)(ne[0] / kinfer_gguf_type_block(type) *
                             kinfer_gguf_type_block_bytes(type) * ne[1]);
        void *z = calloc(1, nb);
        kinfer_gguf_writer_tensor(w, name, type, 2, ne, z, &err);
        free(z);
        return;
    }
    kinfer_gguf_writer_tensor(w, name, type, 2, ne, m->bytes, &err);
}

static inline void tiny_put_norm(kinfer_gguf_writer *w, const char *name, const double *v,
                                 uint32_t d, const tiny_edit *e) {
    if (e && e->skip_tensor && strcmp(e->skip_tensor, name) == 0)
        return;
    float *f = malloc(sizeof(float) * d);
    for (uint32_t i = 0; i < d; i++)
        f[i] = (float)v[i];
    uint64_t ne[1] = {d};
    kinfer_error err;
    kinfer_gguf_writer_tensor(w, name, KINFER_GGUF_F32, 1, ne, f, &err);
    free(f);
}

/* Writes the model as a GGUF file at path; returns false on I/O trouble. */
static inline bool tiny_write_gguf(const tiny_model *m, const char *path, const tiny_edit *e) {
    const tiny_spec *s = &m->s;
    kinfer_gguf_writer *w;
    kinfer_error err;
    if (kinfer_gguf_writer_new(&w, &err) != KINFER_OK)
        return false;
    const char *arch = e && e->arch ? e->arch : "llama";
    kinfer_gguf_writer_str(w, "general.architecture", arch, strlen(arch), &err);
    kinfer_gguf_writer_uint(w, "llama.block_count", KINFER_GGUF_UINT32, s->n_layer, &err);
    kinfer_gguf_writer_uint(w, "llama.context_length", KINFER_GGUF_UINT32, s->ctx, &err);
    kinfer_gguf_writer_uint(w, "llama.embedding_length", KINFER_GGUF_UINT32, s->d, &err);
    kinfer_gguf_writer_uint(w, "llama.feed_forward_length", KINFER_GGUF_UINT32, s->ff, &err);
    kinfer_gguf_writer_uint(w, "llama.attention.head_count", KINFER_GGUF_UINT32, s->n_head, &err);
    kinfer_gguf_writer_uint(w, "llama.attention.head_count_kv", KINFER_GGUF_UINT32,
                            e && e->n_kv ? e->n_kv : s->n_kv, &err);
    if (e && e->experts)
        kinfer_gguf_writer_uint(w, "llama.expert_count", KINFER_GGUF_UINT32, e->experts, &err);
    if (e && e->rope_scaling)
        kinfer_gguf_writer_str(w, "llama.rope.scaling.type", e->rope_scaling,
                               strlen(e->rope_scaling), &err);
    kinfer_gguf_writer_uint(w, "llama.attention.key_length", KINFER_GGUF_UINT32, s->hd, &err);
    kinfer_gguf_writer_float(w, "llama.rope.freq_base", KINFER_GGUF_FLOAT32, s->theta, &err);
    if (!(e && e->no_eps))
        kinfer_gguf_writer_float(w, "llama.attention.layer_norm_rms_epsilon", KINFER_GGUF_FLOAT32,
                                 s->eps, &err);
    if (!(e && e->no_tokenizer))
        kinfer_gguf_writer_str(w, "tokenizer.ggml.model", "gpt2", 4, &err);
    kinfer_gguf_writer_str(w, "tokenizer.ggml.pre", "smollm", 6, &err);
    kinfer_str toks[TINY_VOCAB];
    char buf[TINY_VOCAB][16];
    int32_t types[TINY_VOCAB];
    for (int i = 0; i < TINY_VOCAB; i++) {
        size_t len;
        tiny_token_text(i, buf[i], &len);
        toks[i] = (kinfer_str){buf[i], len};
        types[i] = i >= 256 ? 3 : 1;
    }
    kinfer_gguf_writer_str_array(w, "tokenizer.ggml.tokens", toks, TINY_VOCAB, &err);
    kinfer_gguf_writer_array(w, "tokenizer.ggml.token_type", KINFER_GGUF_INT32, types, TINY_VOCAB,
                             &err);
    kinfer_gguf_writer_str_array(w, "tokenizer.ggml.merges", NULL, 0, &err);
    kinfer_gguf_writer_uint(w, "tokenizer.ggml.bos_token_id", KINFER_GGUF_UINT32, TINY_IM_START,
                            &err);
    kinfer_gguf_writer_uint(w, "tokenizer.ggml.eos_token_id", KINFER_GGUF_UINT32, TINY_IM_END,
                            &err);
    const char *tmpl = e && e->tmpl ? e->tmpl : TINY_TEMPLATE;
    if (!(e && e->no_template))
        kinfer_gguf_writer_str(w, "tokenizer.chat_template", tmpl, strlen(tmpl), &err);
    tiny_put_matrix(w, "token_embd.weight", &m->embd, e);
    tiny_put_norm(w, "output_norm.weight", m->norm_out, s->d, e);
    if (!s->tied)
        tiny_put_matrix(w, "output.weight", &m->out, e);
    for (uint32_t l = 0; l < s->n_layer; l++) {
        char n[64];
#define TINY_NAME(part) (snprintf(n, sizeof(n), "blk.%u.%s.weight", l, part), n)
        tiny_put_norm(w, TINY_NAME("attn_norm"), m->attn_norm[l], s->d, e);
        tiny_put_matrix(w, TINY_NAME("attn_q"), &m->wq[l], e);
        tiny_put_matrix(w, TINY_NAME("attn_k"), &m->wk[l], e);
        tiny_put_matrix(w, TINY_NAME("attn_v"), &m->wv[l], e);
        tiny_put_matrix(w, TINY_NAME("attn_output"), &m->wo[l], e);
        tiny_put_norm(w, TINY_NAME("ffn_norm"), m->ffn_norm[l], s->d, e);
        tiny_put_matrix(w, TINY_NAME("ffn_gate"), &m->gate[l], e);
        tiny_put_matrix(w, TINY_NAME("ffn_up"), &m->up[l], e);
        tiny_put_matrix(w, TINY_NAME("ffn_down"), &m->down[l], e);
#undef TINY_NAME
    }
    if (e && e->extra_tensor)
        tiny_put_norm(w, e->extra_tensor, m->norm_out, s->d, NULL);
    kinfer_err rc = kinfer_gguf_writer_save(w, path, &err);
    kinfer_gguf_writer_destroy(w);
    return rc == KINFER_OK;
}

/* --- the HF directory ---------------------------------------------------------- */

/* F32 values of a matrix, rows optionally permuted from the GGUF (adjacent)
 * to the HF (half-split) RoPE layout: HF row (h, j*hd/2 + i) = GGUF row
 * (h, 2i + j). */
static inline float *tiny_hf_rows(const tiny_mat *m, uint32_t heads, uint32_t hd) {
    float *f = malloc(sizeof(float) * m->rows * m->cols);
    for (uint32_t r = 0; r < m->rows; r++) {
        uint32_t src = r;
        if (heads) {
            uint32_t h = r / hd, rr = r % hd, j = rr / (hd / 2), i = rr % (hd / 2);
            src = h * hd + 2 * i + j;
        }
        for (uint32_t c = 0; c < m->cols; c++)
            f[(size_t)r * m->cols + c] = (float)m->values[(size_t)src * m->cols + c];
    }
    return f;
}

static inline bool tiny_write_file(const char *dir, const char *name, const char *text) {
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        return false;
    bool ok = fputs(text, f) >= 0;
    return (fclose(f) == 0) && ok;
}

/* Writes the model as an HF directory (F32 weights) into dir. */
static inline bool tiny_write_hf(const tiny_model *m, const char *dir) {
    const tiny_spec *s = &m->s;
    char cfg[2048];
    snprintf(cfg, sizeof(cfg),
             "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\","
             "\"hidden_act\":\"silu\",\"hidden_size\":%u,\"intermediate_size\":%u,"
             "\"num_hidden_layers\":%u,\"num_attention_heads\":%u,\"num_key_value_heads\":%u,"
             "\"head_dim\":%u,\"max_position_embeddings\":%u,\"rms_norm_eps\":%.9g,"
             "\"rope_theta\":%.9g,\"rope_scaling\":null,\"tie_word_embeddings\":%s,"
             "\"vocab_size\":%u,\"bos_token_id\":%d,\"eos_token_id\":%d,"
             "\"attention_bias\":false,\"mlp_bias\":false,\"pretraining_tp\":1}",
             s->d, s->ff, s->n_layer, s->n_head, s->n_kv, s->hd, s->ctx, (double)s->eps,
             (double)s->theta, s->tied ? "true" : "false", TINY_VOCAB, TINY_IM_START, TINY_IM_END);
    if (!tiny_write_file(dir, "config.json", cfg) ||
        !tiny_write_file(dir, "generation_config.json",
                         "{\"bos_token_id\":256,\"eos_token_id\":[257,258]}"))
        return false;
    /* tokenizer.json: the byte vocabulary, no merges, the control tokens */
    size_t cap = 65536, n = 0;
    char *tj = malloc(cap);
    n += (size_t)snprintf(tj + n, cap - n,
                          "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,"
                          "\"added_tokens\":[");
    for (int i = 256; i < TINY_VOCAB; i++) {
        char t[16];
        size_t len;
        tiny_token_text(i, t, &len);
        n += (size_t)snprintf(tj + n, cap - n,
                              "%s{\"id\":%d,\"content\":\"%.*s\",\"single_word\":false,"
                              "\"lstrip\":false,\"rstrip\":false,\"normalized\":false,"
                              "\"special\":true}",
                              i > 256 ? "," : "", i, (int)len, t);
    }
    n += (size_t)snprintf(tj + n, cap - n,
                          "],\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"Sequence\","
                          "\"pretokenizers\":[{\"type\":\"Digits\",\"individual_digits\":true},"
                          "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":"
                          "true,\"use_regex\":true}]},\"post_processor\":null,\"decoder\":{"
                          "\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"dropout\":null,"
                          "\"unk_token\":null,\"byte_fallback\":false,\"vocab\":{");
    for (int i = 0; i < TINY_VOCAB; i++) {
        char t[16];
        size_t len;
        tiny_token_text(i, t, &len);
        bool esc = len == 1 && (t[0] == '"' || t[0] == '\\');
        n += (size_t)snprintf(tj + n, cap - n, "%s\"%s%.*s\":%d", i ? "," : "", esc ? "\\" : "",
                              (int)len, t, i);
    }
    n += (size_t)snprintf(tj + n, cap - n, "},\"merges\":[]}}");
    bool ok = tiny_write_file(dir, "tokenizer.json", tj);
    free(tj);
    char tc[1024];
    snprintf(tc, sizeof(tc),
             "{\"add_bos_token\":false,\"bos_token\":\"<|im_start|>\",\"eos_token\":"
             "\"<|im_end|>\",\"chat_template\":\"%s\"}",
             "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\\\n' + "
             "message['content'] + '<|im_end|>' + '\\\\n'}}{% endfor %}{% if "
             "add_generation_prompt %}{{ '<|im_start|>assistant\\\\n' }}{% endif %}");
    ok = ok && tiny_write_file(dir, "tokenizer_config.json", tc);
    if (!ok)
        return false;
    /* model.safetensors */
    size_t nt = 2 + (s->tied ? 0 : 1) + 9 * s->n_layer, k = 0;
    kinfer_st_write_tensor *ts = calloc(nt, sizeof(*ts));
    float **bufs = calloc(nt, sizeof(*bufs));
    char(*names)[64] = calloc(nt, 64);
#define TINY_ADD_MAT(name_, mat_, heads_)                                                          \
    do {                                                                                           \
        snprintf(names[k], 64, "%s", name_);                                                       \
        bufs[k] = tiny_hf_rows(mat_, heads_, s->hd);                                               \
        ts[k] = (kinfer_st_write_tensor){                                                          \
            names[k], KINFER_DTYPE_FP32, 2, {(mat_)->rows, (mat_)->cols}, bufs[k]};                \
        k++;                                                                                       \
    } while (0)
#define TINY_ADD_NORM(name_, vals_)                                                                \
    do {                                                                                           \
        snprintf(names[k], 64, "%s", name_);                                                       \
        bufs[k] = malloc(sizeof(float) * s->d);                                                    \
        for (uint32_t i_ = 0; i_ < s->d; i_++)                                                     \
            bufs[k][i_] = (float)(vals_)[i_];                                                      \
        ts[k] = (kinfer_st_write_tensor){names[k], KINFER_DTYPE_FP32, 1, {s->d}, bufs[k]};         \
        k++;                                                                                       \
    } while (0)
    TINY_ADD_MAT("model.embed_tokens.weight", &m->embd, 0);
    TINY_ADD_NORM("model.norm.weight", m->norm_out);
    if (!s->tied)
        TINY_ADD_MAT("lm_head.weight", &m->out, 0);
    for (uint32_t l = 0; l < s->n_layer; l++) {
        char nm[64];
#define TINY_HF(part) (snprintf(nm, sizeof(nm), "model.layers.%u.%s.weight", l, part), nm)
        TINY_ADD_NORM(TINY_HF("input_layernorm"), m->attn_norm[l]);
        TINY_ADD_MAT(TINY_HF("self_attn.q_proj"), &m->wq[l], s->n_head);
        TINY_ADD_MAT(TINY_HF("self_attn.k_proj"), &m->wk[l], s->n_kv);
        TINY_ADD_MAT(TINY_HF("self_attn.v_proj"), &m->wv[l], 0);
        TINY_ADD_MAT(TINY_HF("self_attn.o_proj"), &m->wo[l], 0);
        TINY_ADD_NORM(TINY_HF("post_attention_layernorm"), m->ffn_norm[l]);
        TINY_ADD_MAT(TINY_HF("mlp.gate_proj"), &m->gate[l], 0);
        TINY_ADD_MAT(TINY_HF("mlp.up_proj"), &m->up[l], 0);
        TINY_ADD_MAT(TINY_HF("mlp.down_proj"), &m->down[l], 0);
#undef TINY_HF
    }
#undef TINY_ADD_MAT
#undef TINY_ADD_NORM
    char path[1024];
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    kinfer_error err;
    const char *mk[] = {"format"}, *mv[] = {"pt"};
    ok = kinfer_safetensors_write(path, ts, k, mk, mv, 1, &err) == KINFER_OK;
    for (size_t i = 0; i < k; i++)
        free(bufs[i]);
    free(bufs);
    free(ts);
    free(names);
    return ok;
}

#endif
