/* test_cuda_blas.c — parity of the CUDA GEMM helper (ops/blas_cuda.c) with
 * its CPU twin kinfer_blas_cpu_gemm_xwt (ops/blas_cpu.c): y = x w^T for
 * FP32, FP16 and BF16 operands (FP32 accumulation), awkward shapes (1, not
 * a multiple of any tile), sentinel guards around the output, and a handle
 * set up by kinfer_blas_cuda_handle_new on a stream. Operands are rounded
 * to the type on the host first, so both sides multiply the same numbers;
 * tolerance: |d| <= 1e-5 + 1e-5 * sum|x||w| (FP32 and the narrowed types
 * alike: only the accumulation order differs). Skips loudly (exit 77)
 * without a GPU. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/blas_cpu.h"
#include "test_cuda_util.h"
#include "test_mlp_util.h"

#ifdef KINFER_HAVE_CUDA
#include "ops/blas_cuda.h"

static void check_shape(cublasHandle_t h, cudaStream_t stream, kinfer_dtype t, size_t m, size_t n,
                        size_t k, uint64_t seed) {
    tu_rng r = {seed};
    float *x = malloc(m * k * sizeof(float)), *w = malloc(n * k * sizeof(float));
    float *ref = malloc(m * n * sizeof(float)), *got = malloc(m * n * sizeof(float));
    for (size_t i = 0; i < m * k; i++)
        x[i] = tu_round(tu_uniform(&r), t);
    for (size_t i = 0; i < n * k; i++)
        w[i] = tu_round(tu_uniform(&r), t);
    kinfer_blas_cpu_gemm_xwt(x, w, ref, m, n, k);
    void *hx = tu_encode(x, m * k, t), *hw = tu_encode(w, n * k, t);
    size_t es = kinfer_blas_cuda_type_size(t);
    tc_buf dx, dw, dy;
    assert_int_equal(tc_alloc(&dx, hx, m * k * es), 0);
    assert_int_equal(tc_alloc(&dw, hw, n * k * es), 0);
    assert_int_equal(tc_alloc(&dy, NULL, m * n * sizeof(float)), 0);
    kinfer_error err;
    assert_int_equal(
        kinfer_blas_cuda_gemm_xwt(h, 0, t, tc_ptr(&dx), tc_ptr(&dw), tc_ptr(&dy), m, n, k, &err),
        KINFER_OK);
    assert_int_equal(cudaStreamSynchronize(stream), cudaSuccess);
    assert_int_equal(tc_fetch(&dy, got), 0);
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            double mag = 0;
            for (size_t q = 0; q < k; q++)
                mag += fabs((double)x[i * k + q] * w[j * k + q]);
            double d = fabs((double)got[i * n + j] - ref[i * n + j]);
            if (!(d <= 1e-5 + 1e-5 * mag))
                fail_msg("%s [%zu,%zu,%zu] y[%zu,%zu] = %g, CPU %g", kinfer_dtype_name(t), m, n, k,
                         i, j, got[i * n + j], ref[i * n + j]);
        }
    tc_free(&dx);
    tc_free(&dw);
    tc_free(&dy);
    free(hx);
    free(hw);
    free(x);
    free(w);
    free(ref);
    free(got);
}

static void test_gemm_matches_the_cpu_twin(void **state) {
    (void)state;
    cudaStream_t stream;
    assert_int_equal(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
    void *ws;
    size_t ws_bytes = 4u << 20;
    assert_int_equal(cudaMalloc(&ws, ws_bytes), cudaSuccess);
    cublasHandle_t h;
    kinfer_error err;
    assert_int_equal(kinfer_blas_cuda_handle_new(0, stream, ws, ws_bytes, &h, &err), KINFER_OK);
    static const size_t shapes[][3] = {
        {1, 1, 1}, {1, 7, 3}, {5, 3, 17}, {33, 65, 129}, {64, 128, 384}};
    static const kinfer_dtype types[] = {KINFER_DTYPE_FP32, KINFER_DTYPE_FP16, KINFER_DTYPE_BF16};
    for (size_t t = 0; t < 3; t++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            check_shape(h, stream, types[t], shapes[s][0], shapes[s][1], shapes[s][2], 11 + s);
    assert_int_equal(kinfer_blas_cuda_type_size(KINFER_DTYPE_FP32), 4);
    assert_int_equal(kinfer_blas_cuda_type_size(KINFER_DTYPE_BF16), 2);
    cublasDestroy(h);
    cudaFree(ws);
    cudaStreamDestroy(stream);
}

/* A refused call is an error value naming the call, not an abort. */
static void test_bad_gemm_is_an_error(void **state) {
    (void)state;
    cublasHandle_t h;
    kinfer_error err;
    assert_int_equal(kinfer_blas_cuda_handle_new(0, 0, NULL, 0, &h, &err), KINFER_OK);
    assert_int_equal(kinfer_blas_cuda_gemm_xwt(h, 0, KINFER_DTYPE_FP32, NULL, NULL, NULL, 0, 0,
                                               (size_t)-1, &err),
                     KINFER_ERR_DEVICE);
    assert_non_null(strstr(err.msg, "cublasGemmEx"));
    cublasDestroy(h);
}
#endif

int main(void) {
    int skip = tc_require_gpu("test_cuda_blas");
    if (skip)
        return skip;
#ifdef KINFER_HAVE_CUDA
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm_matches_the_cpu_twin),
        cmocka_unit_test(test_bad_gemm_is_an_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
#else
    return TC_SKIP;
#endif
}
