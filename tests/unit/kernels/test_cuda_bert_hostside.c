/* test_cuda_bert_hostside.c — the host-side parts of bert on CUDA that need
 * no GPU, so CI checks them on every change: the launchers' argument
 * checks that answer before touching a device (empty work launches
 * nothing; NULL buffers, bad head splits, unknown pooling modes are
 * cudaErrorInvalidValue), and that a bert replica on a CUDA device that is
 * not there fails at creation with KINFER_ERR_DEVICE "not present" (or, in
 * a build without CUDA, names the missing backend), leaving "cpu" usable.
 * Runs on a GPU machine too (it then asks for the ordinal past the last). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "bert/bert_model.h"
#include "kinfer/kinfer_model.h"
#include "test_cuda_util.h"

#define TINY_DIR KINFER_SOURCE_DIR "/tests/data/minilm/tiny_cls"

#ifdef KINFER_HAVE_CUDA
#include "ops/bert_attention_cuda.h"
#include "ops/bert_layernorm_cuda.h"
#include "ops/bert_pool_cuda.h"

/* Any non-NULL address: the checks below fail before it is dereferenced. */
static float g_dummy[4];
#define P ((float *)g_dummy)
#define I32 ((const int32_t *)g_dummy)
#define U32 ((const uint32_t *)g_dummy)

static void test_layernorm_launcher_checks(void **state) {
    (void)state;
    assert_int_equal(bert_add_layernorm_cuda(NULL, NULL, NULL, NULL, 0, 0, 1e-12f, NULL, 0),
                     cudaSuccess);
    assert_int_equal(bert_add_layernorm_cuda(NULL, P, P, P, 3, 8, 1e-12f, NULL, 0),
                     cudaErrorInvalidValue);
    assert_int_equal(bert_add_layernorm_cuda(P, P, NULL, P, 3, 8, 1e-12f, NULL, 0),
                     cudaErrorInvalidValue);
    assert_int_equal(bert_add_layernorm_cuda(P, P, P, NULL, 3, 8, 1e-12f, NULL, 0),
                     cudaErrorInvalidValue);
    assert_int_equal(bert_add_layernorm_cuda(P, P, P, P, 3, 0, 1e-12f, NULL, 0),
                     cudaErrorInvalidValue);
    /* a bias for a residual that is not there */
    assert_int_equal(bert_add_layernorm_cuda(P, NULL, P, P, 3, 8, 1e-12f, P, 0),
                     cudaErrorInvalidValue);

    assert_int_equal(
        bert_embed_cuda(NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL, NULL, NULL, 8, 1e-12f, 0),
        cudaSuccess);
    assert_int_equal(bert_embed_cuda(P, NULL, I32, I32, 2, P, P, P, P, P, 8, 1e-12f, 0),
                     cudaErrorInvalidValue);
    assert_int_equal(bert_embed_cuda(P, I32, I32, I32, 2, NULL, P, P, P, P, 8, 1e-12f, 0),
                     cudaErrorInvalidValue);
    assert_int_equal(bert_embed_cuda(P, I32, I32, I32, 2, P, P, P, P, NULL, 8, 1e-12f, 0),
                     cudaErrorInvalidValue);
    assert_int_equal(bert_embed_cuda(P, I32, I32, I32, 2, P, P, P, P, P, 0, 1e-12f, 0),
                     cudaErrorInvalidValue);
}

static void test_attention_launcher_checks(void **state) {
    (void)state;
    assert_int_equal(bert_attention_cuda(NULL, NULL, NULL, 0, 384, 12, 128, 0), cudaSuccess);
    assert_int_equal(bert_attention_cuda(NULL, P, U32, 2, 384, 12, 128, 0), cudaErrorInvalidValue);
    assert_int_equal(bert_attention_cuda(P, NULL, U32, 2, 384, 12, 128, 0), cudaErrorInvalidValue);
    assert_int_equal(bert_attention_cuda(P, P, NULL, 2, 384, 12, 128, 0), cudaErrorInvalidValue);
    assert_int_equal(bert_attention_cuda(P, P, U32, 2, 384, 0, 128, 0), cudaErrorInvalidValue);
    assert_int_equal(bert_attention_cuda(P, P, U32, 2, 384, 7, 128, 0), cudaErrorInvalidValue);
    assert_int_equal(bert_attention_cuda(P, P, U32, 2, 0, 12, 128, 0), cudaErrorInvalidValue);
    assert_int_equal(bert_attention_cuda(P, P, U32, 2, 384, 12, 0, 0), cudaErrorInvalidValue);
    /* head dimension 512 > BERT_ATTENTION_MAX_HEAD_DIM */
    assert_int_equal(bert_attention_cuda(P, P, U32, 2, 1024, 2, 128, 0), cudaErrorInvalidValue);
}

static void test_pool_launcher_checks(void **state) {
    (void)state;
    assert_int_equal(bert_pool_cuda(NULL, NULL, 0, 384, BERT_POOL_MEAN, NULL, 0), cudaSuccess);
    assert_int_equal(bert_pool_cuda(P, U32, 2, 384, 0, P, 0), cudaErrorInvalidValue);
    assert_int_equal(bert_pool_cuda(P, U32, 2, 384, 1u << 4, P, 0), cudaErrorInvalidValue);
    assert_int_equal(bert_pool_cuda(P, U32, 2, 0, BERT_POOL_MEAN, P, 0), cudaErrorInvalidValue);
    assert_int_equal(bert_pool_cuda(NULL, U32, 2, 384, BERT_POOL_MEAN, P, 0),
                     cudaErrorInvalidValue);
    assert_int_equal(bert_pool_cuda(P, NULL, 2, 384, BERT_POOL_MEAN, P, 0), cudaErrorInvalidValue);
    assert_int_equal(bert_pool_cuda(P, U32, 2, 384, BERT_POOL_MEAN, NULL, 0),
                     cudaErrorInvalidValue);
    assert_int_equal(bert_l2_normalize_cuda(NULL, 0, 0, NULL, 0), cudaSuccess);
    assert_int_equal(bert_l2_normalize_cuda(NULL, 2, 384, NULL, 0), cudaErrorInvalidValue);
    assert_int_equal(bert_l2_normalize_cuda(P, 2, 0, NULL, 0), cudaErrorInvalidValue);
}
#endif

static void test_bert_cuda_not_present(void **state) {
    (void)state;
    kinfer_model_options o = {.name = "tiny", .kind = "bert", .path = TINY_DIR};
    kinfer_model *m = NULL;
    kinfer_error err;
    if (kinfer_model_load(&o, &m, &err) != KINFER_OK)
        fail_msg("load: %s", err.msg);
    int count = kinfer_cuda_device_count();
    char dev[32];
    snprintf(dev, sizeof(dev), "cuda:%d", count); /* cuda:0 on a machine without a GPU */
    for (int i = 0; i < 2; i++) {
        kinfer_replica *r = (kinfer_replica *)&err; /* must come back NULL */
        assert_int_equal(kinfer_replica_new(m, dev, 8, &r, &err), KINFER_ERR_DEVICE);
        assert_null(r);
        fprintf(stderr, "expected error: %s\n", err.msg);
        assert_non_null(strstr(err.msg, dev));
        assert_non_null(strstr(err.msg, kinfer_cuda_built() ? "not present" : "no CUDA backend"));
    }
    kinfer_replica *cpu = NULL;
    assert_int_equal(kinfer_replica_new(m, "cpu", 8, &cpu, &err), KINFER_OK);
    kinfer_replica_destroy(cpu);
    kinfer_model_destroy(m);

    /* The GPU operand type is part of the description; FP32 says nothing. */
    o.precision = "fp16";
    assert_int_equal(kinfer_model_load(&o, &m, &err), KINFER_OK);
    assert_non_null(strstr(kinfer_model_describe(m), " precision=fp16"));
    kinfer_model_destroy(m);
    o.precision = "fp32";
    assert_int_equal(kinfer_model_load(&o, &m, &err), KINFER_OK);
    assert_null(strstr(kinfer_model_describe(m), "precision"));
    kinfer_model_destroy(m);

    /* An unknown precision is refused at load, before any device. */
    o.precision = "int4";
    assert_int_equal(kinfer_model_load(&o, &m, &err), KINFER_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "int4"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
#ifdef KINFER_HAVE_CUDA
        cmocka_unit_test(test_layernorm_launcher_checks),
        cmocka_unit_test(test_attention_launcher_checks),
        cmocka_unit_test(test_pool_launcher_checks),
#endif
        cmocka_unit_test(test_bert_cuda_not_present),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
