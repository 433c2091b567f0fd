/* test_bert_tiny.c — kind `bert` on the committed tiny random classifier
 * (tests/data/minilm/tiny_cls: F16 weights with the "bert." prefix, vocab.txt
 * tokenizer, 3 labels) against transformers' logits and mean-pooled
 * embeddings; every refused model directory and every class of bad request.
 * Needs no pip package. */
#include <jansson.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "kinfer/kinfer_model.h"
#include "formats/safetensors.h"

#define TINY_DIR KINFER_SOURCE_DIR "/tests/data/minilm/tiny_cls"

static json_t *g_ref;
static size_t g_n;
static kinfer_str g_texts[16];
static char g_tmp[128];

static int setup(void **state) {
    (void)state;
    json_error_t jerr;
    g_ref = json_load_file(TINY_DIR "/tiny_ref.json", 0, &jerr);
    if (!g_ref)
        return -1;
    json_t *texts = json_object_get(g_ref, "texts");
    g_n = json_array_size(texts);
    for (size_t i = 0; i < g_n; i++) {
        json_t *t = json_array_get(texts, i);
        g_texts[i] = (kinfer_str){json_string_value(t), json_string_length(t)};
    }
    snprintf(g_tmp, sizeof(g_tmp), "/tmp/kinfer_bert_tiny_%d", (int)getpid());
    return 0;
}

static int teardown(void **state) {
    (void)state;
    json_decref(g_ref);
    return 0;
}

static kinfer_model *load_dir(const char *dir) {
    kinfer_model_options o = {.name = "tiny", .kind = "bert", .path = dir};
    kinfer_model *m = NULL;
    kinfer_error err;
    if (kinfer_model_load(&o, &m, &err) != KINFER_OK)
        fail_msg("load %s: %s", dir, err.msg);
    return m;
}

static kinfer_tensor text_tensor(const kinfer_str *s, size_t n) {
    kinfer_tensor t;
    memset(&t, 0, sizeof(t));
    t.name = (kinfer_str){"text", 4};
    t.dtype = KINFER_DTYPE_STRING;
    t.ndim = 1;
    t.shape[0] = (int64_t)n;
    t.strings = s;
    t.nstrings = n;
    return t;
}

static double ref_at(const char *key, size_t i, size_t j) {
    return json_number_value(json_array_get(json_array_get(json_object_get(g_ref, key), i), j));
}

/* Checks item outputs against rows [first, first + n) of the reference. */
static void check_outputs(const kinfer_batch_item *it, size_t first, size_t n, bool normalized) {
    assert_int_equal(it->status, KINFER_OK);
    assert_int_equal(it->noutputs, 3);
    const kinfer_tensor *emb = &it->outputs[0], *logits = &it->outputs[1], *label = &it->outputs[2];
    assert_true(emb->name.len == 9 && memcmp(emb->name.ptr, "embedding", 9) == 0);
    assert_int_equal(emb->shape[0], n);
    assert_int_equal(emb->shape[1], 32);
    assert_int_equal(logits->shape[1], 3);
    assert_int_equal(label->dtype, KINFER_DTYPE_STRING);
    assert_int_equal(label->nstrings, n);
    for (size_t i = 0; i < n; i++) {
        const float *e = (const float *)emb->data + i * 32;
        double norm = 0;
        for (size_t c = 0; c < 32; c++)
            norm += ref_at("embeddings", first + i, c) * ref_at("embeddings", first + i, c);
        norm = normalized ? sqrt(norm) : 1.0;
        for (size_t c = 0; c < 32; c++) {
            double want = ref_at("embeddings", first + i, c) / norm;
            if (fabs(e[c] - want) > 1e-4)
                fail_msg("text %zu embedding[%zu] = %f, want %f", first + i, c, e[c], want);
        }
        for (size_t c = 0; c < 3; c++) {
            double want = ref_at("logits", first + i, c);
            double got = ((const float *)logits->data)[i * 3 + c];
            if (fabs(got - want) > 1e-4)
                fail_msg("text %zu logit %zu = %f, want %f", first + i, c, got, want);
        }
        const char *lw =
            json_string_value(json_array_get(json_object_get(g_ref, "labels"), first + i));
        kinfer_str lg = label->strings[i];
        if (lg.len != strlen(lw) || memcmp(lg.ptr, lw, lg.len) != 0)
            fail_msg("text %zu label %.*s, want %s", first + i, (int)lg.len, lg.ptr, lw);
    }
}

static void test_tiny_classifier_texts(void **state) {
    (void)state;
    kinfer_model *m = load_dir(TINY_DIR);
    assert_non_null(strstr(kinfer_model_describe(m), "classifier"));
    assert_non_null(strstr(kinfer_model_describe(m), "FP16"));
    kinfer_replica *r;
    kinfer_error err;
    assert_int_equal(kinfer_replica_new(m, "cpu", 16, &r, &err), KINFER_OK);
    /* Two requests in one batch: texts 0..2 and 3..n. */
    kinfer_tensor t[2] = {text_tensor(g_texts, 3), text_tensor(g_texts + 3, g_n - 3)};
    kinfer_batch_item items[2];
    memset(items, 0, sizeof(items));
    for (int i = 0; i < 2; i++) {
        items[i].inputs = &t[i];
        items[i].ninputs = 1;
        assert_int_equal(kinfer_model_check_request(m, &t[i], 1, NULL, 0, &items[i].cost, &err),
                         KINFER_OK);
    }
    assert_int_equal(items[1].cost.max_len, 64); /* the long text, truncated */
    assert_int_equal(items[1].cost.tokens, 64 * (g_n - 3));
    assert_int_equal(kinfer_replica_execute(r, items, 2, &err), KINFER_OK);
    check_outputs(&items[0], 0, 3, false);
    check_outputs(&items[1], 3, g_n - 3, false);
    /* normalize=true on a model without a Normalize module. */
    kinfer_param p = {{"normalize", 9}, {"true", 4}};
    items[0].params = &p;
    items[0].nparams = 1;
    assert_int_equal(kinfer_replica_execute(r, items, 1, &err), KINFER_OK);
    check_outputs(&items[0], 0, 3, true);
    kinfer_replica_destroy(r);
    kinfer_model_destroy(m);
}

/* The reference ids as INT64 input_ids padded to 64, with token_type_ids. */
static void test_tiny_classifier_input_ids(void **state) {
    (void)state;
    kinfer_model *m = load_dir(TINY_DIR);
    kinfer_replica *r;
    kinfer_error err;
    assert_int_equal(kinfer_replica_new(m, "cpu", 16, &r, &err), KINFER_OK);
    int64_t ids[16 * 64], mask[16 * 64], types[16 * 64];
    memset(ids, 0, sizeof(ids));
    memset(mask, 0, sizeof(mask));
    memset(types, 0, sizeof(types));
    json_t *jids = json_object_get(g_ref, "ids");
    for (size_t i = 0; i < g_n; i++) {
        json_t *row = json_array_get(jids, i);
        for (size_t j = 0; j < json_array_size(row); j++) {
            ids[i * 64 + j] = json_integer_value(json_array_get(row, j));
            mask[i * 64 + j] = 1;
        }
    }
    kinfer_tensor t[3];
    memset(t, 0, sizeof(t));
    const char *names[] = {"input_ids", "attention_mask", "token_type_ids"};
    int64_t *data[] = {ids, mask, types};
    for (int k = 0; k < 3; k++) {
        t[k].name = (kinfer_str){names[k], strlen(names[k])};
        t[k].dtype = KINFER_DTYPE_INT64;
        t[k].ndim = 2;
        t[k].shape[0] = (int64_t)g_n;
        t[k].shape[1] = 64;
        t[k].data = data[k];
        t[k].nbytes = g_n * 64 * 8;
    }
    kinfer_batch_item it;
    memset(&it, 0, sizeof(it));
    it.inputs = t;
    it.ninputs = 3;
    assert_int_equal(kinfer_model_check_request(m, t, 3, NULL, 0, &it.cost, &err), KINFER_OK);
    assert_int_equal(it.cost.rows, g_n);
    assert_int_equal(kinfer_replica_execute(r, &it, 1, &err), KINFER_OK);
    check_outputs(&it, 0, g_n, false);
    kinfer_replica_destroy(r);
    kinfer_model_destroy(m);
}

static void expect_bad(kinfer_model *m, const kinfer_tensor *t, size_t n, const kinfer_param *p,
                       size_t np, const char *needle) {
    kinfer_request_cost cost;
    kinfer_error err;
    kinfer_err rc = kinfer_model_check_request(m, t, n, p, np, &cost, &err);
    if (rc != KINFER_ERR_INVALID_REQUEST || !strstr(err.msg, needle))
        fail_msg("want INVALID_REQUEST with '%s', got %d '%s'", needle, rc, rc ? err.msg : "");
}

static kinfer_tensor i64_tensor(const char *name, const int64_t *d, int64_t rows, int64_t cols) {
    kinfer_tensor t;
    memset(&t, 0, sizeof(t));
    t.name = (kinfer_str){name, strlen(name)};
    t.dtype = KINFER_DTYPE_INT64;
    t.ndim = 2;
    t.shape[0] = rows;
    t.shape[1] = cols;
    t.data = d;
    t.nbytes = (size_t)(rows * cols) * 8;
    return t;
}

static void test_tiny_bad_requests(void **state) {
    (void)state;
    kinfer_model *m = load_dir(TINY_DIR);
    kinfer_str bad_utf8 = {"ok \xC3\x28", 5};
    kinfer_tensor t = text_tensor(&bad_utf8, 1);
    expect_bad(m, &t, 1, NULL, 0, "byte offset 3");
    t = text_tensor(g_texts + 4, 1); /* more than 64 tokens */
    kinfer_param no_trunc = {{"truncate", 8}, {"false", 5}};
    expect_bad(m, &t, 1, &no_trunc, 1, "truncate=false");
    kinfer_param bad_norm = {{"normalize", 9}, {"maybe", 5}};
    expect_bad(m, &t, 1, &bad_norm, 1, "normalize=maybe");
    kinfer_tensor two[2] = {text_tensor(g_texts, 1), text_tensor(g_texts, 1)};
    expect_bad(m, two, 2, NULL, 0, "unexpected input text");
    t = text_tensor(g_texts, 1);
    t.ndim = 2;
    t.shape[1] = 1;
    expect_bad(m, &t, 1, NULL, 0, "STRING [n]");
    t = text_tensor(g_texts, 0);
    expect_bad(m, &t, 1, NULL, 0, "n >= 1");

    int64_t ids[4] = {101, 1978, 102, 0}, mask[4] = {1, 1, 1, 0}, types[4] = {0, 0, 0, 0};
    kinfer_tensor in[3] = {i64_tensor("input_ids", ids, 1, 4),
                           i64_tensor("attention_mask", mask, 1, 4),
                           i64_tensor("token_type_ids", types, 1, 4)};
    kinfer_request_cost cost;
    kinfer_error err;
    assert_int_equal(kinfer_model_check_request(m, in, 3, NULL, 0, &cost, &err), KINFER_OK);
    assert_int_equal(cost.max_len, 3);
    ids[1] = 2000; /* vocab is 2000 ids: 0..1999 */
    expect_bad(m, in, 3, NULL, 0, "outside the vocabulary");
    ids[1] = -1;
    expect_bad(m, in, 3, NULL, 0, "outside the vocabulary");
    ids[1] = 1996;
    mask[3] = 2;
    expect_bad(m, in, 3, NULL, 0, "must be 0 or 1");
    mask[3] = 0;
    mask[0] = 0;
    expect_bad(m, in, 3, NULL, 0, "first token");
    mask[0] = 1;
    types[2] = 2;
    expect_bad(m, in, 3, NULL, 0, "token_type_ids[0, 2]");
    types[2] = 0;
    in[1].shape[1] = 3;
    in[1].nbytes = 24;
    expect_bad(m, in, 3, NULL, 0, "attention_mask must be INT64 [1, 4]");
    in[1] = i64_tensor("attention_mask", mask, 1, 4);
    in[0].dtype = KINFER_DTYPE_INT32;
    expect_bad(m, in, 3, NULL, 0, "input_ids must be INT64");
    in[0] = i64_tensor("input_ids", ids, 1, 4);
    kinfer_tensor dup[2] = {in[0], in[0]};
    expect_bad(m, dup, 2, NULL, 0, "given twice");
    expect_bad(m, in + 1, 2, NULL, 0, "no input");
    int64_t big[65] = {0};
    kinfer_tensor longer = i64_tensor("input_ids", big, 1, 65);
    expect_bad(m, &longer, 1, NULL, 0, "seq <= 64");
    in[0].nbytes = 8; /* nbytes disagreeing with the shape */
    expect_bad(m, in, 1, NULL, 0, "input_ids");
    kinfer_model_destroy(m);
}

/* An item that fails at execute (rows differing from its cost) gets its own
 * status; the other items of the batch are unaffected. */
static void test_tiny_item_isolation(void **state) {
    (void)state;
    kinfer_model *m = load_dir(TINY_DIR);
    kinfer_replica *r;
    kinfer_error err;
    assert_int_equal(kinfer_replica_new(m, "cpu", 16, &r, &err), KINFER_OK);
    kinfer_tensor t[2] = {text_tensor(g_texts, 2), text_tensor(g_texts, 3)};
    kinfer_batch_item items[2];
    memset(items, 0, sizeof(items));
    for (int i = 0; i < 2; i++) {
        items[i].inputs = &t[i];
        items[i].ninputs = 1;
        assert_int_equal(kinfer_model_check_request(m, &t[i], 1, NULL, 0, &items[i].cost, &err),
                         KINFER_OK);
    }
    items[0].cost.rows = 1;
    assert_int_equal(kinfer_replica_execute(r, items, 2, &err), KINFER_OK);
    assert_int_equal(items[0].status, KINFER_ERR_INVALID_REQUEST);
    assert_non_null(strstr(items[0].error, "costed"));
    assert_int_equal(items[0].noutputs, 0);
    check_outputs(&items[1], 0, 3, false);
    kinfer_replica_destroy(r);
    kinfer_model_destroy(m);
}

/* --- model directories that must be refused ------------------------------- */

/* Runs a shell command whose one %s is the scratch directory. */
static void sh(const char *fmt) {
    char cmd[512];
    snprintf(cmd, sizeof(cmd), fmt, g_tmp);
    assert_int_equal(system(cmd), 0);
}

static void fresh_copy(void) {
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf %s && cp -r %s %s", g_tmp, TINY_DIR, g_tmp);
    assert_int_equal(system(cmd), 0);
}

static void write_text(const char *name, const char *text) {
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", g_tmp, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Sets config.json[key] to the JSON value `value`. */
static void set_config(const char *key, const char *value) {
    char path[256];
    snprintf(path, sizeof(path), "%s/config.json", g_tmp);
    json_error_t jerr;
    json_t *cfg = json_load_file(path, 0, &jerr);
    json_t *v = json_loads(value, JSON_DECODE_ANY, &jerr);
    assert_non_null(cfg);
    assert_non_null(v);
    json_object_set_new(cfg, key, v);
    assert_int_equal(json_dump_file(cfg, path, 0), 0);
    json_decref(cfg);
}

static void expect_refused(kinfer_err code, const char *needle) {
    kinfer_model_options o = {.name = "tiny", .kind = "bert", .path = g_tmp};
    kinfer_model *m = NULL;
    kinfer_error err;
    kinfer_err rc = kinfer_model_load(&o, &m, &err);
    if (rc != code || !strstr(err.msg, needle))
        fail_msg("want %d '%s', got %d '%s'", code, needle, rc, rc ? err.msg : "(loaded)");
    assert_null(m);
}

static void test_tiny_refused_directories(void **state) {
    (void)state;
    static const struct {
        const char *key, *value, *needle;
        kinfer_err code;
    } cfgs[] = {
        {"architectures", "[\"BertForMaskedLM\"]", "BertForMaskedLM", KINFER_ERR_UNSUPPORTED},
        {"model_type", "\"roberta\"", "roberta", KINFER_ERR_UNSUPPORTED},
        {"hidden_act", "\"gelu_new\"", "gelu_new", KINFER_ERR_UNSUPPORTED},
        {"position_embedding_type", "\"relative_key\"", "relative_key", KINFER_ERR_UNSUPPORTED},
        {"is_decoder", "true", "decoder", KINFER_ERR_UNSUPPORTED},
        {"problem_type", "\"regression\"", "regression", KINFER_ERR_UNSUPPORTED},
        {"num_attention_heads", "5", "multiple", KINFER_ERR_MODEL_LOAD},
        {"hidden_size", "-3", "hidden_size", KINFER_ERR_MODEL_LOAD},
        {"hidden_size", "64", "bert.embeddings.word_embeddings.weight has shape [2000, 32]",
         KINFER_ERR_MODEL_LOAD},
        {"vocab_size", "1000", "tokenizer has 2000 tokens", KINFER_ERR_MODEL_LOAD},
        {"layer_norm_eps", "\"x\"", "layer_norm_eps", KINFER_ERR_MODEL_LOAD},
        {"num_hidden_layers", "3", "encoder.layer.2.attention.self.query.weight not found",
         KINFER_ERR_MODEL_LOAD},
    };
    for (size_t i = 0; i < sizeof(cfgs) / sizeof(cfgs[0]); i++) {
        fresh_copy();
        set_config(cfgs[i].key, cfgs[i].value);
        expect_refused(cfgs[i].code, cfgs[i].needle);
    }

    fresh_copy();
    write_text("modules.json", "[{\"idx\": 0, \"name\": \"0\", \"path\": \"\", \"type\": "
                               "\"sentence_transformers.models.Transformer\"}, {\"idx\": 1, "
                               "\"name\": \"1\", \"path\": \"2_Dense\", \"type\": "
                               "\"sentence_transformers.models.Dense\"}]");
    expect_refused(KINFER_ERR_UNSUPPORTED, "sentence_transformers.models.Dense");
    write_text("modules.json", "[{\"idx\": 0, \"name\": \"0\", \"path\": \"\", \"type\": "
                               "\"sentence_transformers.models.Transformer\"}, {\"idx\": 1, "
                               "\"name\": \"1\", \"path\": \"1_Pooling\", \"type\": "
                               "\"sentence_transformers.models.Pooling\"}]");
    sh("mkdir -p %s/1_Pooling");
    write_text("1_Pooling/config.json", "{\"pooling_mode_lasttoken\": true}");
    expect_refused(KINFER_ERR_UNSUPPORTED, "pooling_mode_lasttoken");
    write_text("1_Pooling/config.json", "{\"word_embedding_dimension\": 32}");
    expect_refused(KINFER_ERR_MODEL_LOAD, "no pooling mode");
    write_text("1_Pooling/config.json", "{\"pooling_mode_mean_tokens\": true}");
    write_text("sentence_bert_config.json", "{\"max_seq_length\": 65}");
    expect_refused(KINFER_ERR_MODEL_LOAD, "exceeds max_position_embeddings 64");
    write_text("sentence_bert_config.json", "{\"do_lower_case\": true}");
    expect_refused(KINFER_ERR_UNSUPPORTED, "do_lower_case");
    write_text("modules.json", "[not json");
    expect_refused(KINFER_ERR_MODEL_LOAD, "modules.json");

    fresh_copy();
    write_text("config.json", "{\"hidden_size\": 32");
    expect_refused(KINFER_ERR_MODEL_LOAD, "config.json");
    fresh_copy();
    sh("rm %s/vocab.txt");
    expect_refused(KINFER_ERR_MODEL_LOAD, "vocab.txt");
    fresh_copy();
    sh("rm %s/model.safetensors");
    expect_refused(KINFER_ERR_IO, "model.safetensors");

    /* A weight of an unsupported dtype. */
    fresh_copy();
    kinfer_st_write_tensor one = {.name = "bert.embeddings.word_embeddings.weight",
                                  .dtype = KINFER_DTYPE_INT8,
                                  .ndim = 2,
                                  .shape = {2000, 32},
                                  .data = NULL};
    int8_t *big = calloc(2000 * 32, 1);
    one.data = big;
    char path[256];
    snprintf(path, sizeof(path), "%s/model.safetensors", g_tmp);
    kinfer_error err;
    assert_int_equal(kinfer_safetensors_write(path, &one, 1, NULL, NULL, 0, &err), KINFER_OK);
    free(big);
    expect_refused(KINFER_ERR_UNSUPPORTED, "dtype INT8");
    sh("rm -rf %s");
}

/* sentence-transformers modules on the tiny model: cls+max+mean pooling
 * concatenated (the mean part equals the reference) and Normalize. */
static void test_tiny_pooling_modules(void **state) {
    (void)state;
    fresh_copy();
    write_text("modules.json",
               "[{\"idx\": 0, \"name\": \"0\", \"path\": \"\", \"type\": "
               "\"sentence_transformers.models.Transformer\"}, {\"idx\": 1, \"name\": \"1\", "
               "\"path\": \"1_Pooling\", \"type\": \"sentence_transformers.models.Pooling\"}, "
               "{\"idx\": 2, \"name\": \"2\", \"path\": \"2_Normalize\", \"type\": "
               "\"sentence_transformers.models.Normalize\"}]");
    sh("mkdir -p %s/1_Pooling");
    write_text("1_Pooling/config.json", "{\"word_embedding_dimension\": 32, "
                                        "\"pooling_mode_cls_token\": true, "
                                        "\"pooling_mode_max_tokens\": true, "
                                        "\"pooling_mode_mean_tokens\": true}");
    kinfer_model *m = load_dir(g_tmp);
    assert_non_null(strstr(kinfer_model_describe(m), "pool=cls+max+mean normalize"));
    kinfer_replica *r;
    kinfer_error err;
    assert_int_equal(kinfer_replica_new(m, "cpu", 4, &r, &err), KINFER_OK);
    kinfer_tensor t = text_tensor(g_texts, 2);
    kinfer_param p = {{"normalize", 9}, {"false", 5}};
    kinfer_batch_item it;
    memset(&it, 0, sizeof(it));
    it.inputs = &t;
    it.ninputs = 1;
    it.params = &p;
    it.nparams = 1;
    assert_int_equal(kinfer_model_check_request(m, &t, 1, &p, 1, &it.cost, &err), KINFER_OK);
    assert_int_equal(kinfer_replica_execute(r, &it, 1, &err), KINFER_OK);
    assert_int_equal(it.outputs[0].shape[1], 96);
    for (size_t i = 0; i < 2; i++) {
        const float *row = (const float *)it.outputs[0].data + i * 96;
        for (size_t c = 0; c < 32; c++) {
            assert_true(fabs(row[64 + c] - ref_at("embeddings", i, c)) <= 1e-4);
            assert_true(row[32 + c] >= row[64 + c]); /* max >= mean */
        }
    }
    it.nparams = 0; /* the model's default: Normalize */
    assert_int_equal(kinfer_replica_execute(r, &it, 1, &err), KINFER_OK);
    for (size_t i = 0; i < 2; i++) {
        double ss = 0;
        for (size_t c = 0; c < 96; c++)
            ss += pow(((const float *)it.outputs[0].data)[i * 96 + c], 2);
        assert_true(fabs(ss - 1.0) < 1e-5);
    }
    kinfer_replica_destroy(r);
    kinfer_model_destroy(m);
    sh("rm -rf %s");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tiny_classifier_texts),
        cmocka_unit_test(test_tiny_classifier_input_ids),
        cmocka_unit_test(test_tiny_bad_requests),
        cmocka_unit_test(test_tiny_item_isolation),
        cmocka_unit_test(test_tiny_refused_directories),
        cmocka_unit_test(test_tiny_pooling_modules),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
