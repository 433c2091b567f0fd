/* test_cuda_hostside.c — the parts of the CUDA backend that run on the host
 * and need no GPU, so CI checks them on every change: CUDA/cuBLAS status ->
 * kinfer_error mapping (code, device, call, status name, file:line; the
 * goto-cleanup macros), and the launchers' argument checks that answer
 * before touching a device (empty shapes launch nothing; unknown dtypes and
 * NULL buffers are cudaErrorInvalidValue). Skips (77) in a build without
 * the CUDA backend. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "test_cuda_util.h"

#ifdef KINFER_HAVE_CUDA
#include "ops/bias_act_cuda.h"
#include "ops/convert_cuda.h"
#include "ops/status_cuda.h"

static void test_cuda_status_ok_is_ok(void **state) {
    (void)state;
    kinfer_error err;
    memset(&err, 0, sizeof(err));
    assert_int_equal(kinfer_cuda_check(&err, 0, "cudaFree(p)", cudaSuccess, __FILE__, __LINE__),
                     KINFER_OK);
    assert_int_equal(
        kinfer_cublas_check(&err, 0, "cublasCreate(&h)", CUBLAS_STATUS_SUCCESS, __FILE__, __LINE__),
        KINFER_OK);
    assert_string_equal(err.msg, ""); /* untouched */
    /* NULL err is allowed (callers that only want the code). */
    assert_int_equal(kinfer_cuda_check(NULL, 0, "x", cudaErrorInvalidValue, __FILE__, 1),
                     KINFER_ERR_DEVICE);
}

static void test_cuda_status_message(void **state) {
    (void)state;
    kinfer_error err;
    kinfer_err rc = kinfer_cuda_check(&err, 3, "cudaMalloc(&r->d_x, n)", cudaErrorMemoryAllocation,
                                      "/src/kinfer/kernels/mlp_cuda.c", 123);
    assert_int_equal(rc, KINFER_ERR_DEVICE);
    assert_int_equal(err.code, KINFER_ERR_DEVICE);
    fprintf(stderr, "message: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "cuda:3: "));
    assert_non_null(strstr(err.msg, "cudaMalloc(&r->d_x, n) failed"));
    assert_non_null(strstr(err.msg, "cudaErrorMemoryAllocation"));
    assert_non_null(strstr(err.msg, "kernels/mlp_cuda.c:123"));
    assert_null(strstr(err.msg, "/src/kinfer")); /* path shortened */
    /* No device known yet (e.g. counting devices). */
    kinfer_cuda_check(&err, -1, "cudaGetDeviceCount(&n)", cudaErrorNoDevice, "device_cuda.c", 9);
    assert_true(strncmp(err.msg, "cuda: cudaGetDeviceCount(&n) failed: cudaErrorNoDevice", 54) ==
                0);
    assert_non_null(strstr(err.msg, "device_cuda.c:9"));
}

static void test_cublas_status_message(void **state) {
    (void)state;
    kinfer_error err;
    kinfer_err rc = kinfer_cublas_check(&err, 0, "cublasGemmEx(...)", CUBLAS_STATUS_NOT_SUPPORTED,
                                        "kernels/mlp_cuda.c", 77);
    assert_int_equal(rc, KINFER_ERR_DEVICE);
    fprintf(stderr, "message: %s\n", err.msg);
    assert_non_null(
        strstr(err.msg, "cuda:0: cublasGemmEx(...) failed: CUBLAS_STATUS_NOT_SUPPORTED"));
    assert_non_null(strstr(err.msg, "kernels/mlp_cuda.c:77"));
}

/* The GOTO macros: the failing call's text lands in the message and control
 * reaches the cleanup label exactly once. */
static int cleanup_runs;
static kinfer_err uses_macros(cudaError_t first, cublasStatus_t second, kinfer_error *err) {
    kinfer_err rc = KINFER_OK;
    KINFER_CUDA_GOTO(err, 1, first, fail);
    KINFER_CUBLAS_GOTO(err, 1, second, fail);
    return KINFER_OK;
fail:
    cleanup_runs++;
    return rc;
}

static void test_goto_macros(void **state) {
    (void)state;
    kinfer_error err;
    cleanup_runs = 0;
    assert_int_equal(uses_macros(cudaSuccess, CUBLAS_STATUS_SUCCESS, &err), KINFER_OK);
    assert_int_equal(cleanup_runs, 0);
    assert_int_equal(uses_macros(cudaErrorLaunchFailure, CUBLAS_STATUS_SUCCESS, &err),
                     KINFER_ERR_DEVICE);
    assert_int_equal(cleanup_runs, 1);
    assert_non_null(strstr(err.msg, "cuda:1: first failed: cudaErrorLaunchFailure"));
    assert_int_equal(uses_macros(cudaSuccess, CUBLAS_STATUS_EXECUTION_FAILED, &err),
                     KINFER_ERR_DEVICE);
    assert_int_equal(cleanup_runs, 2);
    assert_non_null(strstr(err.msg, "second failed: CUBLAS_STATUS_EXECUTION_FAILED"));
}

/* Argument checks answer before any device call, so they hold here too. */
static void test_launcher_argument_checks(void **state) {
    (void)state;
    float dummy[4];
    assert_int_equal(kinfer_bias_act_cuda(NULL, NULL, 0, 5, KINFER_ACT_RELU, 0), cudaSuccess);
    assert_int_equal(kinfer_bias_act_cuda(NULL, NULL, 5, 0, KINFER_ACT_RELU, 0), cudaSuccess);
    assert_int_equal(kinfer_bias_act_cuda(NULL, NULL, 2, 2, KINFER_ACT_RELU, 0),
                     cudaErrorInvalidValue);
    assert_int_equal(
        kinfer_bias_act_to_cuda(dummy, NULL, 2, 2, KINFER_ACT_RELU, dummy, KINFER_DTYPE_INT8, 0),
        cudaErrorInvalidValue);
    assert_int_equal(
        kinfer_bias_act_to_cuda(dummy, NULL, 2, 2, KINFER_ACT_RELU, NULL, KINFER_DTYPE_FP16, 0),
        cudaErrorInvalidValue);
    assert_int_equal(kinfer_softmax_rows_cuda(NULL, 0, 0, 0), cudaSuccess);
    assert_int_equal(kinfer_softmax_rows_cuda(NULL, 2, 2, 0), cudaErrorInvalidValue);
    assert_int_equal(kinfer_convert_f32_cuda(dummy, dummy, KINFER_DTYPE_STRING, 4, 0),
                     cudaErrorInvalidValue);
    assert_int_equal(kinfer_convert_f32_cuda(NULL, NULL, KINFER_DTYPE_BF16, 0, 0), cudaSuccess);
    assert_int_equal(kinfer_convert_f32_cuda(NULL, dummy, KINFER_DTYPE_BF16, 4, 0),
                     cudaErrorInvalidValue);
}
#endif

int main(void) {
#ifdef KINFER_HAVE_CUDA
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cuda_status_ok_is_ok),     cmocka_unit_test(test_cuda_status_message),
        cmocka_unit_test(test_cublas_status_message),    cmocka_unit_test(test_goto_macros),
        cmocka_unit_test(test_launcher_argument_checks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
#else
    fprintf(stderr, "\n*** test_cuda_hostside: SKIPPED: this build has no CUDA backend "
                    "(configure with -DKINFER_CUDA=ON) ***\n\n");
    return TC_SKIP;
#endif
}
