/* test_llm_load.c — kind llm's loaders and seam contract on tiny models
 * (llm_tiny_model.h): one test per class of bad GGUF file and bad HF
 * directory (each error names the file and the key or tensor), the kind's
 * options (context cap, KV block size), the request contract (check_request
 * tensors, prompts, chat messages, invalid UTF-8), and every misuse of the
 * generative seam (execute on an llm, steps without a pool, bad block
 * tables, non-generative kinds). The forward pass itself is test_llm_tiny.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kinfer/kinfer_model.h"
#include "llm_tiny_model.h"

static char *g_dir;
static tiny_model *g_tm;
static char g_good[700];

static int setup(void **state) {
    (void)state;
    g_dir = lt_tempdir();
    if (!g_dir)
        return -1;
    tiny_spec s = tiny_default();
    g_tm = tiny_make(&s);
    snprintf(g_good, sizeof(g_good), "%s/good.gguf", g_dir);
    return tiny_write_gguf(g_tm, g_good, NULL) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    tiny_free(g_tm);
    lt_rmdir(g_dir);
    return 0;
}

static kinfer_err try_load(const char *path, uint32_t ctx, uint32_t block, kinfer_model **out,
                           char *msg) {
    kinfer_model_options o = {.name = "m",
                              .kind = "llm",
                              .path = path,
                              .cpu_threads = 1,
                              .context_length = ctx,
                              .kv_block_tokens = block};
    kinfer_error err;
    kinfer_model *m = NULL;
    kinfer_err rc = kinfer_model_load(&o, &m, &err);
    if (rc == KINFER_OK) {
        if (out)
            *out = m;
        else
            kinfer_model_destroy(m);
        msg[0] = '\0';
    } else {
        assert_null(m);
        snprintf(msg, KINFER_ERROR_MSG_MAX, "%s", err.msg);
    }
    return rc;
}

static void expect_gguf_error(const tiny_edit *e, kinfer_err code, const char *want1,
                              const char *want2) {
    static int n;
    char path[700], msg[KINFER_ERROR_MSG_MAX];
    snprintf(path, sizeof(path), "%s/bad%d.gguf", g_dir, n++);
    assert_true(tiny_write_gguf(g_tm, path, e));
    kinfer_err rc = try_load(path, 0, 0, NULL, msg);
    if (rc != code || !strstr(msg, path) || (want1 && !strstr(msg, want1)) ||
        (want2 && !strstr(msg, want2)))
        fail_msg("rc %d '%s' (want %d '%s' '%s')", rc, msg, code, want1 ? want1 : "",
                 want2 ? want2 : "");
}

static void test_bad_gguf(void **state) {
    (void)state;
    tiny_edit e;
#define CASE(init, code, w1, w2)                                                                   \
    do {                                                                                           \
        memset(&e, 0, sizeof(e));                                                                  \
        init;                                                                                      \
        expect_gguf_error(&e, code, w1, w2);                                                       \
    } while (0)
    CASE(e.arch = "qwen2", KINFER_ERR_UNSUPPORTED, "architecture 'qwen2' is not supported",
         "supported: llama");
    CASE(e.skip_tensor = "blk.1.ffn_down.weight", KINFER_ERR_MODEL_LOAD,
         "tensor blk.1.ffn_down.weight is missing", NULL);
    CASE(e.skip_tensor = "token_embd.weight", KINFER_ERR_MODEL_LOAD,
         "tensor token_embd.weight is missing", NULL);
    CASE(e.skip_tensor = "output_norm.weight", KINFER_ERR_MODEL_LOAD,
         "tensor output_norm.weight is missing", NULL);
    CASE(e.skip_tensor = "blk.0.ffn_norm.weight", KINFER_ERR_MODEL_LOAD,
         "tensor blk.0.ffn_norm.weight is missing", NULL);
    CASE(e.bad_shape = true, KINFER_ERR_MODEL_LOAD, "tensor blk.0.attn_q.weight is [63, 64]",
         "the config needs [64, 64]");
    CASE(e.type_override = KINFER_GGUF_Q5_0, KINFER_ERR_UNSUPPORTED,
         "tensor blk.0.ffn_up.weight: tensor type Q5_0", "not supported");
    CASE(e.type_override = KINFER_GGUF_IQ4_NL, KINFER_ERR_UNSUPPORTED,
         "tensor blk.0.ffn_up.weight: tensor type IQ4_NL", "not supported");
    CASE(e.extra_tensor = "blk.0.attn_q.bias", KINFER_ERR_UNSUPPORTED,
         "tensor blk.0.attn_q.bias is not a llama weight", NULL);
    CASE(e.extra_tensor = "rope_freqs.weight", KINFER_ERR_UNSUPPORTED, "rope_freqs.weight",
         "not supported");
    CASE(e.extra_tensor = "blk.7.attn_norm.weight", KINFER_ERR_MODEL_LOAD,
         "blk.7.attn_norm.weight: layer 7 beyond llama.block_count 2", NULL);
    CASE(e.extra_tensor = "mystery.weight", KINFER_ERR_UNSUPPORTED,
         "tensor mystery.weight is not a llama weight", NULL);
    CASE(e.n_kv = 3, KINFER_ERR_MODEL_LOAD, "KV head count (must divide the head count)", NULL);
    CASE(e.no_eps = true, KINFER_ERR_MODEL_LOAD,
         "'llama.attention.layer_norm_rms_epsilon' is missing", NULL);
    CASE(e.experts = 8, KINFER_ERR_UNSUPPORTED, "mixture of experts (llama.expert_count 8)", NULL);
    CASE(e.rope_scaling = "yarn", KINFER_ERR_UNSUPPORTED,
         "llama.rope.scaling.type 'yarn' is not supported", NULL);
    CASE(e.no_tokenizer = true, KINFER_ERR_MODEL_LOAD, "'tokenizer.ggml.model' is missing", NULL);
    CASE(e.tmpl = "{{ messages | tojson }}", KINFER_ERR_UNSUPPORTED,
         "chat template uses Jinja filter 'tojson'", NULL);
#undef CASE
    /* the K-quants need rows of 256: a wider model for Q5_K */
    {
        tiny_spec s = tiny_default();
        s.d = 256;
        s.ff = 256;
        s.hd = 64;
        tiny_model *wide = tiny_make(&s);
        tiny_edit k = {.type_override = KINFER_GGUF_Q5_K};
        char path[700], msg[KINFER_ERROR_MSG_MAX];
        snprintf(path, sizeof(path), "%s/q5k.gguf", g_dir);
        assert_true(tiny_write_gguf(wide, path, &k));
        assert_int_equal(try_load(path, 0, 0, NULL, msg), KINFER_ERR_UNSUPPORTED);
        assert_non_null(strstr(msg, "tensor blk.0.ffn_up.weight: tensor type Q5_K"));
        assert_non_null(strstr(msg, "(supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1)"));
        tiny_free(wide);
    }
    /* truncated file, not a file, no file */
    char path[700], msg[KINFER_ERROR_MSG_MAX];
    size_t len = 0;
    char *img = lt_read_file(g_good, &len);
    assert_non_null(img);
    snprintf(path, sizeof(path), "%s/trunc.gguf", g_dir);
    FILE *f = fopen(path, "wb");
    fwrite(img, 1, len - 100, f);
    fclose(f);
    free(img);
    assert_int_equal(try_load(path, 0, 0, NULL, msg), KINFER_ERR_MODEL_LOAD);
    assert_non_null(strstr(msg, "runs past"));
    snprintf(path, sizeof(path), "%s/none.gguf", g_dir);
    assert_int_equal(try_load(path, 0, 0, NULL, msg), KINFER_ERR_IO);
    assert_non_null(strstr(msg, "none.gguf"));
}

static void write_text(const char *dir, const char *name, const char *text) {
    assert_true(tiny_write_file(dir, name, text));
}

/* A fresh HF directory of the tiny model, then `edit` applied to it. */
static void expect_hf_error(void (*edit)(const char *dir), kinfer_err code, const char *want1,
                            const char *want2) {
    static int n;
    char dir[700], cmd[800], msg[KINFER_ERROR_MSG_MAX];
    snprintf(dir, sizeof(dir), "%s/hf%d", g_dir, n++);
    snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", dir);
    assert_int_equal(system(cmd), 0);
    assert_true(tiny_write_hf(g_tm, dir));
    if (edit)
        edit(dir);
    kinfer_err rc = try_load(dir, 0, 0, NULL, msg);
    if (rc != code || (want1 && !strstr(msg, want1)) || (want2 && !strstr(msg, want2)))
        fail_msg("rc %d '%s' (want %d '%s' '%s')", rc, msg, code, want1 ? want1 : "",
                 want2 ? want2 : "");
}

/* Rewrites one key of config.json by text replacement. */
static void sub(const char *dir, const char *file, const char *from, const char *to) {
    char path[800];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    size_t len = 0;
    char *text = lt_read_file(path, &len);
    assert_non_null(text);
    char *at = strstr(text, from);
    if (!at)
        fail_msg("'%s' not in %s", from, file);
    char *out = malloc(len + strlen(to) + 1);
    sprintf(out, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    write_text(dir, file, out);
    free(out);
    free(text);
}

static void hf_mistral(const char *d) {
    sub(d, "config.json", "\"model_type\":\"llama\"", "\"model_type\":\"mistral\"");
}
static void hf_gelu(const char *d) {
    sub(d, "config.json", "\"silu\"", "\"gelu\"");
}
static void hf_bias(const char *d) {
    sub(d, "config.json", "\"attention_bias\":false", "\"attention_bias\":true");
}
static void hf_tp(const char *d) {
    sub(d, "config.json", "\"pretraining_tp\":1", "\"pretraining_tp\":2");
}
static void hf_yarn(const char *d) {
    sub(d, "config.json", "\"rope_scaling\":null", "\"rope_scaling\":{\"rope_type\":\"yarn\"}");
}
static void hf_no_config(const char *d) {
    char p[800];
    snprintf(p, sizeof(p), "%s/config.json", d);
    remove(p);
}
static void hf_no_layers(const char *d) {
    sub(d, "config.json", "\"num_hidden_layers\":2,", "");
}
static void hf_bad_eps(const char *d) {
    sub(d, "config.json", "\"rms_norm_eps\":", "\"rms_norm_eps\":\"x\",\"old\":");
}
static void hf_sharded(const char *d) {
    write_text(d, "model.safetensors.index.json", "{}");
}
static void hf_no_tokenizer(const char *d) {
    char p[800];
    snprintf(p, sizeof(p), "%s/tokenizer.json", d);
    remove(p);
}
static void hf_untied_no_head(const char *d) {
    sub(d, "config.json", "\"tie_word_embeddings\":true", "\"tie_word_embeddings\":false");
}
static void hf_bad_template(const char *d) {
    sub(d, "tokenizer_config.json", "{% for message in messages %}",
        "{% macro x() %}{% endmacro %}{% for message in messages %}");
}
static void hf_bad_eos(const char *d) {
    sub(d, "tokenizer_config.json", "\"eos_token\":\"<|im_end|>\"", "\"eos_token\":\"</nope>\"");
}
static void hf_vocab(const char *d) {
    sub(d, "config.json", "\"vocab_size\":259", "\"vocab_size\":300");
}
/* safetensors with one extra or one odd-dtype tensor */
static void hf_rewrite_st(const char *d, const char *name, kinfer_dtype dtype) {
    char p[800];
    snprintf(p, sizeof(p), "%s/model.safetensors", d);
    kinfer_safetensors *st;
    kinfer_error err;
    assert_int_equal(kinfer_safetensors_open(p, &st, &err), KINFER_OK);
    size_t n = kinfer_safetensors_count(st);
    kinfer_st_write_tensor *ts = calloc(n + 1, sizeof(*ts));
    void **copies = calloc(n + 1, sizeof(*copies));
    for (size_t i = 0; i < n; i++) {
        const kinfer_st_tensor *t = kinfer_safetensors_at(st, i);
        copies[i] = malloc(t->nbytes ? t->nbytes : 1);
        memcpy(copies[i], t->data, t->nbytes);
        ts[i] = (kinfer_st_write_tensor){strdup(t->name), t->dtype, t->ndim, {0}, copies[i]};
        memcpy(ts[i].shape, t->shape, sizeof(t->shape));
        if (strcmp(t->name, "model.layers.1.mlp.up_proj.weight") == 0 && dtype != KINFER_DTYPE_FP32)
            ts[i].dtype = dtype; /* same bytes per element for I32 */
    }
    size_t total = n;
    if (name) {
        static float b[64];
        ts[total++] = (kinfer_st_write_tensor){strdup(name), KINFER_DTYPE_FP32, 1, {64}, b};
    }
    kinfer_safetensors_close(st);
    assert_int_equal(kinfer_safetensors_write(p, ts, total, NULL, NULL, 0, &err), KINFER_OK);
    for (size_t i = 0; i < total; i++)
        free((char *)ts[i].name);
    for (size_t i = 0; i < n; i++)
        free(copies[i]);
    free(copies);
    free(ts);
}
static void hf_extra_tensor(const char *d) {
    hf_rewrite_st(d, "model.layers.0.self_attn.q_proj.bias", KINFER_DTYPE_FP32);
}
static void hf_inv_freq(const char *d) { /* old checkpoints' buffers are skipped */
    hf_rewrite_st(d, "model.layers.0.self_attn.rotary_emb.inv_freq", KINFER_DTYPE_FP32);
}
static void hf_int_dtype(const char *d) {
    hf_rewrite_st(d, NULL, KINFER_DTYPE_INT32);
}

static void test_bad_hf(void **state) {
    (void)state;
    expect_hf_error(NULL, KINFER_OK, NULL, NULL);
    expect_hf_error(hf_inv_freq, KINFER_OK, NULL, NULL);
    expect_hf_error(hf_mistral, KINFER_ERR_UNSUPPORTED, "model_type 'mistral' is not supported",
                    NULL);
    expect_hf_error(hf_gelu, KINFER_ERR_UNSUPPORTED, "hidden_act 'gelu' is not supported", NULL);
    expect_hf_error(hf_bias, KINFER_ERR_UNSUPPORTED, "attention_bias", NULL);
    expect_hf_error(hf_tp, KINFER_ERR_UNSUPPORTED, "pretraining_tp 2", NULL);
    expect_hf_error(hf_yarn, KINFER_ERR_UNSUPPORTED, "rope_scaling type 'yarn'", NULL);
    expect_hf_error(hf_no_config, KINFER_ERR_MODEL_LOAD, "config.json: missing", NULL);
    expect_hf_error(hf_no_layers, KINFER_ERR_MODEL_LOAD, "\"num_hidden_layers\" is missing", NULL);
    expect_hf_error(hf_bad_eps, KINFER_ERR_MODEL_LOAD, "\"rms_norm_eps\" must be a number", NULL);
    expect_hf_error(hf_sharded, KINFER_ERR_UNSUPPORTED, "sharded checkpoints", NULL);
    expect_hf_error(hf_no_tokenizer, KINFER_ERR_MODEL_LOAD, "tokenizer.json is missing", NULL);
    expect_hf_error(hf_untied_no_head, KINFER_ERR_MODEL_LOAD, "tensor lm_head.weight is missing",
                    NULL);
    expect_hf_error(hf_bad_template, KINFER_ERR_UNSUPPORTED, "chat template uses Jinja tag 'macro'",
                    "tokenizer_config.json");
    expect_hf_error(hf_bad_eos, KINFER_ERR_MODEL_LOAD,
                    "eos_token '</nope>' is not in the vocabulary", NULL);
    expect_hf_error(hf_vocab, KINFER_ERR_MODEL_LOAD,
                    "tensor model.embed_tokens.weight is [259, 64]", "needs [300, 64]");
    expect_hf_error(hf_extra_tensor, KINFER_ERR_UNSUPPORTED,
                    "tensor model.layers.0.self_attn.q_proj.bias is not a llama weight", NULL);
    expect_hf_error(hf_int_dtype, KINFER_ERR_UNSUPPORTED,
                    "tensor model.layers.1.mlp.up_proj.weight: dtype I32 is not supported", NULL);
}

/* --- options and the request contract ----------------------------------------- */

static void test_options(void **state) {
    (void)state;
    kinfer_model *m;
    char msg[KINFER_ERROR_MSG_MAX];
    assert_int_equal(try_load(g_good, 0, 0, &m, msg), KINFER_OK);
    kinfer_gen_info info;
    assert_true(kinfer_model_gen_info(m, &info));
    assert_int_equal(info.context_length, 256); /* the model's */
    assert_int_equal(info.kv_block_tokens, 16);
    /* 2 layers x K,V x 2 kv heads x 16 slots x 16 dims x 4 bytes */
    assert_int_equal(info.kv_block_bytes, 2 * 2 * 2 * 16 * 16 * 4);
    assert_string_equal(kinfer_model_kind(m), "llm");
    assert_string_equal(kinfer_model_describe(m),
                        "llm llama 2L d64 4/2 heads f32 ctx 256 vocab 259");
    kinfer_model_destroy(m);
    assert_int_equal(try_load(g_good, 100, 8, &m, msg), KINFER_OK);
    assert_true(kinfer_model_gen_info(m, &info));
    assert_int_equal(info.context_length, 100);
    assert_int_equal(info.kv_block_tokens, 8);
    kinfer_model_destroy(m);
    assert_int_equal(try_load(g_good, 100000, 0, &m, msg), KINFER_OK); /* capped by the model */
    assert_true(kinfer_model_gen_info(m, &info));
    assert_int_equal(info.context_length, 256);
    kinfer_model_destroy(m);
    assert_int_equal(try_load(g_good, 0, 300, NULL, msg), KINFER_ERR_CONFIG);
    assert_non_null(strstr(msg, "KV cache layout"));
    /* overrides meant for mlp are refused */
    kinfer_model_options o = {.kind = "llm", .path = g_good, .activation = "relu"};
    kinfer_error err;
    assert_int_equal(kinfer_model_load(&o, &m, &err), KINFER_ERR_CONFIG);
}

static kinfer_model *g_m;

static kinfer_tensor str_tensor(const char *name, const kinfer_str *s, size_t n) {
    kinfer_tensor t = {.name = {name, strlen(name)},
                       .dtype = KINFER_DTYPE_STRING,
                       .ndim = 1,
                       .shape = {(int64_t)n},
                       .strings = s,
                       .nstrings = n};
    return t;
}

static void want_check(const kinfer_tensor *in, size_t n, kinfer_err code, const char *want,
                       uint32_t tokens) {
    kinfer_request_cost cost;
    kinfer_error err;
    kinfer_err rc = kinfer_model_check_request(g_m, in, n, NULL, 0, &cost, &err);
    if (rc != code || (code && !strstr(err.msg, want)))
        fail_msg("rc %d '%s' (want %d '%s')", rc, rc ? err.msg : "", code, want ? want : "");
    if (code == KINFER_OK) {
        assert_int_equal(cost.rows, 1);
        if (tokens)
            assert_int_equal(cost.tokens, tokens);
    }
}

static void test_check_request(void **state) {
    (void)state;
    char msg[KINFER_ERROR_MSG_MAX];
    assert_int_equal(try_load(g_good, 24, 0, &g_m, msg), KINFER_OK);
    kinfer_str hello = {"hello", 5};
    kinfer_tensor t = str_tensor("prompt", &hello, 1);
    want_check(&t, 1, KINFER_OK, NULL, 5); /* byte tokens, no merges */
    kinfer_str two[2] = {{"a", 1}, {"b", 1}};
    t = str_tensor("prompt", two, 2);
    want_check(&t, 1, KINFER_ERR_INVALID_REQUEST, "must hold one text", 0);
    t = str_tensor("text", &hello, 1);
    want_check(&t, 1, KINFER_ERR_INVALID_REQUEST, "unknown input 'text'", 0);
    want_check(NULL, 0, KINFER_ERR_INVALID_REQUEST, "no input", 0);
    int64_t ids[2] = {1, 2};
    kinfer_tensor it = {.name = {"prompt", 6},
                        .dtype = KINFER_DTYPE_INT64,
                        .ndim = 1,
                        .shape = {2},
                        .data = ids,
                        .nbytes = 16};
    want_check(&it, 1, KINFER_ERR_INVALID_REQUEST, "must be STRING", 0);
    kinfer_str long_text = {"this prompt is longer than 24 tokens", 36};
    t = str_tensor("prompt", &long_text, 1);
    want_check(&t, 1, KINFER_ERR_INVALID_REQUEST, "the context holds 24", 0);
    kinfer_str bad = {"ok\xff", 3};
    t = str_tensor("prompt", &bad, 1);
    want_check(&t, 1, KINFER_ERR_INVALID_REQUEST, "offset 2", 0);
    /* chat as role + content tensors */
    kinfer_str roles[1] = {{"user", 4}}, contents[1] = {{"hi", 2}};
    kinfer_tensor chat[2] = {str_tensor("role", roles, 1), str_tensor("content", contents, 1)};
    /* ChatML: <|im_start|> user \n h i <|im_end|> \n <|im_start|> assistant \n */
    want_check(chat, 2, KINFER_OK, NULL, 1 + 4 + 1 + 2 + 1 + 1 + 1 + 9 + 1);
    kinfer_tensor chat_bad[2] = {str_tensor("role", roles, 1), str_tensor("content", two, 2)};
    want_check(chat_bad, 2, KINFER_ERR_INVALID_REQUEST, "same length", 0);
    kinfer_tensor mixed[2] = {str_tensor("prompt", &hello, 1), str_tensor("role", roles, 1)};
    want_check(mixed, 2, KINFER_ERR_INVALID_REQUEST, "give 'prompt' alone", 0);
    kinfer_model_destroy(g_m);
    g_m = NULL;
}

static kinfer_err tok(kinfer_model *m, const char *prompt, size_t plen,
                      const kinfer_chat_message *msgs, size_t n, char *msg, size_t *nids) {
    int32_t *ids = NULL;
    kinfer_error err;
    kinfer_err rc =
        kinfer_model_gen_tokenize(m, (kinfer_str){prompt, plen}, msgs, n, &ids, nids, &err);
    free(ids);
    if (rc != KINFER_OK)
        snprintf(msg, KINFER_ERROR_MSG_MAX, "%s", err.msg);
    return rc;
}

static void test_tokenize(void **state) {
    (void)state;
    kinfer_model *m;
    char msg[KINFER_ERROR_MSG_MAX];
    size_t n;
    assert_int_equal(try_load(g_good, 0, 0, &m, msg), KINFER_OK);
    assert_int_equal(tok(m, "abc", 3, NULL, 0, msg, &n), KINFER_OK);
    assert_int_equal(n, 3);
    assert_int_equal(tok(m, "", 0, NULL, 0, msg, &n), KINFER_ERR_INVALID_REQUEST);
    assert_non_null(strstr(msg, "the prompt is empty"));
    assert_int_equal(tok(m, "a\xc3", 2, NULL, 0, msg, &n), KINFER_ERR_INVALID_REQUEST);
    assert_non_null(strstr(msg, "not valid UTF-8 (byte 0xC3 at offset 1)"));
    kinfer_chat_message ok = {{"user", 4}, {"hi", 2}};
    assert_int_equal(tok(m, "abc", 3, &ok, 1, msg, &n), KINFER_ERR_INVALID_REQUEST);
    assert_non_null(strstr(msg, "not both"));
    kinfer_chat_message roles[] = {
        {{"us\ner", 5}, {"x", 1}}, {{"", 0}, {"x", 1}}, {{"1user", 5}, {"x", 1}}};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(tok(m, NULL, 0, &roles[i], 1, msg, &n), KINFER_ERR_INVALID_REQUEST);
        assert_non_null(strstr(msg, "is not a role name"));
    }
    kinfer_chat_message tool = {{"tool", 4}, {"42", 2}}; /* the template decides */
    assert_int_equal(tok(m, NULL, 0, &tool, 1, msg, &n), KINFER_OK);
    kinfer_chat_message bad = {{"user", 4}, {"\xe2\x82", 2}};
    kinfer_chat_message two[2] = {ok, bad};
    assert_int_equal(tok(m, NULL, 0, two, 2, msg, &n), KINFER_ERR_INVALID_REQUEST);
    assert_non_null(strstr(msg, "message 1: content is not valid UTF-8"));
    kinfer_model_destroy(m);
    /* a template that refuses a role; a model without a template */
    tiny_edit e = {.tmpl = "{% for m in messages %}{% if m.role == 'tool' %}{{ "
                           "raise_exception('no tools here') }}{% endif %}{{ m.content }}{% "
                           "endfor %}"};
    char path[700];
    snprintf(path, sizeof(path), "%s/raise.gguf", g_dir);
    assert_true(tiny_write_gguf(g_tm, path, &e));
    assert_int_equal(try_load(path, 0, 0, &m, msg), KINFER_OK);
    assert_int_equal(tok(m, NULL, 0, &tool, 1, msg, &n), KINFER_ERR_INVALID_REQUEST);
    assert_non_null(strstr(msg, "refused the messages: no tools here"));
    kinfer_model_destroy(m);
    e = (tiny_edit){.no_template = true};
    snprintf(path, sizeof(path), "%s/notemplate.gguf", g_dir);
    assert_true(tiny_write_gguf(g_tm, path, &e));
    assert_int_equal(try_load(path, 0, 0, &m, msg), KINFER_OK);
    assert_int_equal(tok(m, NULL, 0, &ok, 1, msg, &n), KINFER_ERR_INVALID_REQUEST);
    assert_non_null(strstr(msg, "no chat template"));
    assert_int_equal(tok(m, "plain works", 11, NULL, 0, msg, &n), KINFER_OK);
    kinfer_model_destroy(m);
}

/* --- misuse of the seam ---------------------------------------------------------- */

static void test_seam_misuse(void **state) {
    (void)state;
    kinfer_model *m;
    kinfer_replica *r;
    kinfer_error err;
    char msg[KINFER_ERROR_MSG_MAX];
    assert_int_equal(try_load(g_good, 0, 4, &m, msg), KINFER_OK);
    assert_int_equal(kinfer_replica_new(m, "cuda:0", 8, &r, &err), KINFER_ERR_DEVICE);
    assert_int_equal(kinfer_replica_new(m, "cpu", 8, &r, &err), KINFER_OK);
    /* batch calls name the step API */
    kinfer_batch_item item = {0};
    assert_int_equal(kinfer_replica_execute(r, &item, 1, &err), KINFER_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "kinfer_replica_step"));
    int32_t toks[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    uint32_t blocks[3] = {0, 1, 2};
    float logits[TINY_VOCAB];
    kinfer_step_seq s = {toks, 3, 0, blocks, 1, logits};
    assert_int_equal(kinfer_replica_step(r, &s, 1, &err), KINFER_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "no KV pool"));
    assert_int_equal(kinfer_replica_kv_alloc(r, 0, &err), KINFER_ERR_INVALID_ARG);
    assert_int_equal(kinfer_replica_kv_alloc(r, 3, &err), KINFER_OK);
    assert_int_equal(kinfer_replica_kv_alloc(r, 3, &err), KINFER_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "already has a KV pool"));
    assert_int_equal(kinfer_replica_step(r, &s, 1, &err), KINFER_OK);
    const struct {
        kinfer_step_seq s;
        const char *want;
    } bad[] = {
        {{toks, 0, 0, blocks, 1, logits}, "no tokens fed"},
        {{NULL, 1, 0, blocks, 1, logits}, "tokens is NULL"},
        {{toks, 1, 0, NULL, 1, logits}, "blocks is NULL"},
        {{toks, 9, 0, blocks, 3, logits}, "exceeds max_rows 8"},
        {{toks, 5, 0, blocks, 1, logits}, "1 blocks cannot hold positions [0, 5)"},
        {{toks, 1, 256, blocks, 3, logits}, "exceed the context length 256"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        kinfer_step_seq q = bad[i].s;
        assert_int_equal(kinfer_replica_step(r, &q, 1, &err), KINFER_ERR_INVALID_ARG);
        if (!strstr(err.msg, bad[i].want))
            fail_msg("case %zu: '%s' (want '%s')", i, err.msg, bad[i].want);
    }
    int32_t oov[1] = {TINY_VOCAB};
    kinfer_step_seq q = {oov, 1, 3, blocks, 1, logits};
    assert_int_equal(kinfer_replica_step(r, &q, 1, &err), KINFER_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "outside the vocabulary"));
    uint32_t far[1] = {3}; /* pool has blocks 0..2 */
    q = (kinfer_step_seq){toks, 1, 0, far, 1, logits};
    assert_int_equal(kinfer_replica_step(r, &q, 1, &err), KINFER_ERR_INVALID_ARG);
    assert_int_equal(kinfer_replica_step(r, NULL, 0, &err), KINFER_ERR_INVALID_ARG);
    /* after every refusal the replica still steps */
    q = (kinfer_step_seq){toks + 3, 1, 3, blocks, 1, logits};
    assert_int_equal(kinfer_replica_step(r, &q, 1, &err), KINFER_OK);
    kinfer_replica_destroy(r);
    kinfer_model_destroy(m);
    /* a non-generative kind answers false / UNSUPPORTED */
    char mlp[800];
    snprintf(mlp, sizeof(mlp), "%s/models/example_mlp.safetensors", KINFER_SOURCE_DIR);
    kinfer_model_options o = {.kind = "mlp", .path = mlp};
    assert_int_equal(kinfer_model_load(&o, &m, &err), KINFER_OK);
    kinfer_gen_info info;
    assert_false(kinfer_model_gen_info(m, &info));
    int32_t *ids;
    size_t n;
    assert_int_equal(kinfer_model_gen_tokenize(m, (kinfer_str){"a", 1}, NULL, 0, &ids, &n, &err),
                     KINFER_ERR_UNSUPPORTED);
    assert_int_equal(kinfer_model_gen_token_bytes(m, 1, true, NULL, 0), 0);
    assert_int_equal(kinfer_replica_new(m, "cpu", 4, &r, &err), KINFER_OK);
    assert_int_equal(kinfer_replica_kv_alloc(r, 4, &err), KINFER_ERR_UNSUPPORTED);
    assert_int_equal(kinfer_replica_step(r, &s, 1, &err), KINFER_ERR_UNSUPPORTED);
    kinfer_replica_destroy(r);
    kinfer_model_destroy(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_gguf), cmocka_unit_test(test_bad_hf),
        cmocka_unit_test(test_options),  cmocka_unit_test(test_check_request),
        cmocka_unit_test(test_tokenize), cmocka_unit_test(test_seam_misuse),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
