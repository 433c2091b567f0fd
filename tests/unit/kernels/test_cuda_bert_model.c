/* test_cuda_bert_model.c — kind `bert` end to end on cuda:0 with the
 * committed tiny classifier (tests/data/minilm/tiny_cls: 2 layers, H 32,
 * 4 heads, F16 weights, 3 labels), through the public model/replica seam:
 * texts and padded input_ids against transformers' references and against
 * the CPU replica, in FP32, FP16 and BF16; a bad item among good ones;
 * repeated batches of changing size giving identical results. Needs no pip
 * package. Skips loudly (exit 77) without a GPU.
 *
 * Bounds. FP32: vs the references |d| <= 1e-4 (as test_bert_tiny) and vs
 * the CPU replica |d| <= 1e-5 * |cpu| + 2e-5; labels equal. FP16 (GEMM
 * operands FP16, FP32 accumulation, everything else FP32): |d| <= 1e-2 on
 * embeddings and logits vs the references; BF16 (8-bit mantissa; the
 * file's FP16 weights lose 3 bits too): |d| <= 1e-1. In FP16/BF16
 * labels must match where the reference's top two logits are further
 * apart than twice the bound. */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kinfer/kinfer_model.h"
#include "test_cuda_util.h"

#define TINY_DIR KINFER_SOURCE_DIR "/tests/data/minilm/tiny_cls"
#define H 32
#define NLAB 3

static json_t *g_ref;
static size_t g_n;
static kinfer_str g_texts[16];

static double ref_at(const char *key, size_t i, size_t j) {
    return json_number_value(json_array_get(json_array_get(json_object_get(g_ref, key), i), j));
}

static kinfer_model *load(const char *precision) {
    kinfer_model_options o = {
        .name = "tiny", .kind = "bert", .path = TINY_DIR, .precision = precision};
    kinfer_model *m = NULL;
    kinfer_error err;
    if (kinfer_model_load(&o, &m, &err) != KINFER_OK)
        fail_msg("load: %s", err.msg);
    return m;
}

static kinfer_replica *replica(kinfer_model *m, const char *dev, uint32_t rows) {
    kinfer_replica *r = NULL;
    kinfer_error err;
    if (kinfer_replica_new(m, dev, rows, &r, &err) != KINFER_OK)
        fail_msg("replica on %s: %s", dev, err.msg);
    return r;
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

/* All texts as two requests (0..2 and 3..n) in one batch; outputs copied
 * to emb [n, H] and logits [n, NLAB], labels' first letters to lab. */
static void run_texts(kinfer_model *m, kinfer_replica *r, float *emb, float *logits, char *lab) {
    kinfer_tensor t[2] = {text_tensor(g_texts, 3), text_tensor(g_texts + 3, g_n - 3)};
    kinfer_batch_item items[2];
    memset(items, 0, sizeof(items));
    kinfer_error err;
    for (int i = 0; i < 2; i++) {
        items[i].inputs = &t[i];
        items[i].ninputs = 1;
        assert_int_equal(kinfer_model_check_request(m, &t[i], 1, NULL, 0, &items[i].cost, &err),
                         KINFER_OK);
    }
    if (kinfer_replica_execute(r, items, 2, &err) != KINFER_OK)
        fail_msg("execute: %s", err.msg);
    size_t row = 0;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(items[i].status, KINFER_OK);
        assert_int_equal(items[i].noutputs, 3);
        size_t n = (size_t)items[i].outputs[0].shape[0];
        memcpy(emb + row * H, items[i].outputs[0].data, n * H * sizeof(float));
        memcpy(logits + row * NLAB, items[i].outputs[1].data, n * NLAB * sizeof(float));
        for (size_t k = 0; k < n; k++)
            lab[row + k] = items[i].outputs[2].strings[k].ptr[0];
        row += n;
    }
    assert_int_equal(row, g_n);
}

/* Max |gpu - want| over the texts for one reference key (or CPU array). */
static double worst_vs_ref(const float *got, const char *key, size_t width) {
    double worst = 0;
    for (size_t i = 0; i < g_n; i++)
        for (size_t c = 0; c < width; c++) {
            double d = fabs(got[i * width + c] - ref_at(key, i, c));
            if (isnan(got[i * width + c]))
                d = INFINITY;
            if (d > worst)
                worst = d;
        }
    return worst;
}

static size_t count_vs_cpu(const float *gpu, const float *cpu, size_t n) {
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        if (!(fabs((double)gpu[i] - cpu[i]) <= 1e-5 * fabs(cpu[i]) + 2e-5))
            bad++;
    return bad;
}

static void check_precision(const char *precision, double bound) {
    kinfer_model *m = load(precision);
    kinfer_replica *gpu = replica(m, "cuda:0", 16), *cpu = replica(m, "cpu", 16);
    assert_string_equal(kinfer_replica_device(gpu), "cuda:0");
    float ge[16 * H], gl[16 * NLAB], ce[16 * H], cl[16 * NLAB];
    char glab[16], clab[16];
    run_texts(m, gpu, ge, gl, glab);
    run_texts(m, cpu, ce, cl, clab);
    double we = worst_vs_ref(ge, "embeddings", H), wl = worst_vs_ref(gl, "logits", NLAB);
    fprintf(stderr, "%s: max|d| vs transformers: embeddings %.3g logits %.3g (bound %.0e)\n",
            precision, we, wl, bound);
    assert_true(we <= bound);
    assert_true(wl <= bound);
    json_t *labels = json_object_get(g_ref, "labels");
    for (size_t i = 0; i < g_n; i++) {
        double l[NLAB], top = -1e30, second = -1e30;
        for (int c = 0; c < NLAB; c++) {
            l[c] = ref_at("logits", i, c);
            if (l[c] > top) {
                second = top;
                top = l[c];
            } else if (l[c] > second) {
                second = l[c];
            }
        }
        bool exact = strcmp(precision, "fp32") == 0;
        if (exact || top - second > 2 * bound)
            assert_int_equal(glab[i], json_string_value(json_array_get(labels, i))[0]);
    }
    if (strcmp(precision, "fp32") == 0) {
        size_t bad = count_vs_cpu(ge, ce, g_n * H) + count_vs_cpu(gl, cl, g_n * NLAB);
        assert_int_equal(bad, 0);
        assert_memory_equal(glab, clab, g_n);
    }
    kinfer_replica_destroy(gpu);
    kinfer_replica_destroy(cpu);
    kinfer_model_destroy(m);
}

static void test_tiny_fp32(void **state) {
    (void)state;
    check_precision("fp32", 1e-4);
}

static void test_tiny_fp16(void **state) {
    (void)state;
    check_precision("fp16", 1e-2);
}

static void test_tiny_bf16(void **state) {
    (void)state;
    check_precision("bf16", 1e-1);
}

/* The reference ids right-padded to 64 with a mask (the padded path). */
static void test_tiny_input_ids(void **state) {
    (void)state;
    kinfer_model *m = load(NULL);
    kinfer_replica *r = replica(m, "cuda:0", 16);
    static int64_t ids[16 * 64], mask[16 * 64];
    memset(ids, 0, sizeof(ids));
    memset(mask, 0, sizeof(mask));
    json_t *jids = json_object_get(g_ref, "ids");
    for (size_t i = 0; i < g_n; i++) {
        json_t *row = json_array_get(jids, i);
        for (size_t j = 0; j < json_array_size(row); j++) {
            ids[i * 64 + j] = json_integer_value(json_array_get(row, j));
            mask[i * 64 + j] = 1;
        }
    }
    kinfer_tensor t[2];
    memset(t, 0, sizeof(t));
    const char *names[] = {"input_ids", "attention_mask"};
    int64_t *data[] = {ids, mask};
    for (int k = 0; k < 2; k++) {
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
    it.ninputs = 2;
    kinfer_error err;
    assert_int_equal(kinfer_model_check_request(m, t, 2, NULL, 0, &it.cost, &err), KINFER_OK);
    assert_int_equal(kinfer_replica_execute(r, &it, 1, &err), KINFER_OK);
    assert_int_equal(it.status, KINFER_OK);
    double we = worst_vs_ref(it.outputs[0].data, "embeddings", H);
    double wl = worst_vs_ref(it.outputs[1].data, "logits", NLAB);
    fprintf(stderr, "input_ids: max|d| embeddings %.3g logits %.3g\n", we, wl);
    assert_true(we <= 1e-4);
    assert_true(wl <= 1e-4);
    kinfer_replica_destroy(r);
    kinfer_model_destroy(m);
}

/* A request with invalid UTF-8 between two good ones: it alone fails; then
 * batches of 1, all and 1 text again give bit-identical rows. */
static void test_tiny_items_and_repeats(void **state) {
    (void)state;
    kinfer_model *m = load(NULL);
    kinfer_replica *r = replica(m, "cuda:0", 16);
    kinfer_str bad_s = {"bad \xff text", 10};
    kinfer_tensor t[3] = {text_tensor(g_texts, 1), text_tensor(&bad_s, 1),
                          text_tensor(g_texts + 1, 1)};
    kinfer_batch_item items[3];
    memset(items, 0, sizeof(items));
    for (int i = 0; i < 3; i++) {
        items[i].inputs = &t[i];
        items[i].ninputs = 1;
        items[i].cost = (kinfer_request_cost){1, 8, 8}; /* as the scheduler would have it */
    }
    kinfer_error err;
    assert_int_equal(kinfer_replica_execute(r, items, 3, &err), KINFER_OK);
    assert_int_equal(items[0].status, KINFER_OK);
    assert_int_equal(items[1].status, KINFER_ERR_INVALID_REQUEST);
    assert_int_equal(items[2].status, KINFER_OK);
    float first[H];
    memcpy(first, items[0].outputs[0].data, sizeof(first));
    for (size_t c = 0; c < H; c++)
        assert_true(fabs(first[c] - ref_at("embeddings", 0, c)) <= 1e-4);
    /* Across batch shapes cuBLAS may pick other kernels: equal within FP32
     * noise. The same shape again: bit-identical (cuBLAS is deterministic
     * per shape on one stream). */
    float all[16 * H], logits[16 * NLAB], single[H];
    char lab[16];
    for (int rep = 0; rep < 3; rep++) {
        run_texts(m, r, all, logits, lab);
        kinfer_tensor one = text_tensor(g_texts, 1);
        kinfer_batch_item it;
        memset(&it, 0, sizeof(it));
        it.inputs = &one;
        it.ninputs = 1;
        it.cost = (kinfer_request_cost){1, 16, 16};
        assert_int_equal(kinfer_replica_execute(r, &it, 1, &err), KINFER_OK);
        if (rep == 0)
            memcpy(single, it.outputs[0].data, sizeof(single));
        assert_memory_equal(it.outputs[0].data, single, sizeof(single));
        for (size_t c = 0; c < H; c++) {
            assert_true(fabs(all[c] - first[c]) <= 1e-5 * fabs(first[c]) + 2e-5);
            assert_true(fabs(single[c] - first[c]) <= 1e-5 * fabs(first[c]) + 2e-5);
        }
    }
    kinfer_replica_destroy(r);
    kinfer_model_destroy(m);
}

int main(void) {
    int skip = tc_require_gpu("test_cuda_bert_model");
    if (skip)
        return skip;
    json_error_t jerr;
    g_ref = json_load_file(TINY_DIR "/tiny_ref.json", 0, &jerr);
    if (!g_ref) {
        fprintf(stderr, "%s: %s\n", TINY_DIR "/tiny_ref.json", jerr.text);
        return 1;
    }
    json_t *texts = json_object_get(g_ref, "texts");
    g_n = json_array_size(texts);
    if (g_n < 4 || g_n > 16)
        return 1;
    for (size_t i = 0; i < g_n; i++) {
        json_t *t = json_array_get(texts, i);
        g_texts[i] = (kinfer_str){json_string_value(t), json_string_length(t)};
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tiny_fp32),
        cmocka_unit_test(test_tiny_fp16),
        cmocka_unit_test(test_tiny_bf16),
        cmocka_unit_test(test_tiny_input_ids),
        cmocka_unit_test(test_tiny_items_and_repeats),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    json_decref(g_ref);
    return rc;
}
