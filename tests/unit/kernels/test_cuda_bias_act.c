/* test_cuda_bias_act.c — parity of the CUDA epilogue kernels (bias_act.cu)
 * with their C twins (bias_act_cpu.c): every activation, with and without
 * bias, awkward shapes (empty, 1, not a multiple of the block, more rows
 * than one grid dimension holds, large), NaN/Inf propagation, the FP16/BF16
 * narrowing epilogue, and the row softmax; sentinel guards catch writes
 * past either end. Skips loudly (exit 77) without a GPU.
 *
 * Tolerances (GPU vs CPU twin): both evaluate the same kinfer_hd.h code, so
 * they differ only by the libm ulps of expf/tanhf and by nvcc's FMA
 * contraction (GELU's erf is a polynomial): |d| <= 1e-6 + 4e-6*|cpu|.
 * Narrowed outputs: one unit in the last place of the narrow type (2^-10
 * relative for FP16, 2^-7 for BF16) + 1e-6. Softmax: the sum is reduced in
 * another order: |d| <= 1e-9 + 1e-5*|cpu|. NaN must match NaN, and
 * infinities must match exactly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/bias_act.h"
#include "test_cuda_util.h"
#include "test_mlp_util.h"

#ifdef KINFER_HAVE_CUDA
#include "ops/bias_act_cuda.h"

typedef struct shape {
    size_t rows, cols;
} shape;

/* 70000 rows > 65535: the kernels' grid-stride loop over rows is used. */
static const shape shapes[] = {{1, 1},   {0, 7},     {7, 0},     {1, 257},   {3, 255},
                               {5, 256}, {17, 1000}, {70000, 3}, {512, 2048}};

static int close_enough(float got, float want, double abs_tol, double rel_tol) {
    if (isnan(want) || isnan(got))
        return isnan(want) && isnan(got);
    if (isinf(want) || isinf(got))
        return got == want;
    return fabs((double)got - want) <= abs_tol + rel_tol * fabs((double)want);
}

static float *random_floats(tu_rng *rng, size_t n, float scale) {
    float *v = malloc(n * sizeof(float) + 1);
    assert_non_null(v);
    for (size_t i = 0; i < n; i++)
        v[i] = tu_uniform(rng) * scale;
    return v;
}

/* Runs both twins on (x, bias) and compares; returns mismatches. */
static size_t run_bias_act(const float *x, const float *bias, size_t rows, size_t cols,
                           kinfer_activation act) {
    size_t n = rows * cols;
    float *cpu = malloc(n * sizeof(float) + 1), *gpu = malloc(n * sizeof(float) + 1);
    assert_non_null(cpu);
    assert_non_null(gpu);
    memcpy(cpu, x, n * sizeof(float));
    kinfer_bias_act_cpu(cpu, bias, rows, cols, act);

    tc_buf dy, db = {0};
    assert_int_equal(tc_alloc(&dy, x, n * sizeof(float)), 0);
    if (bias)
        assert_int_equal(tc_alloc(&db, bias, cols * sizeof(float)), 0);
    assert_int_equal(
        kinfer_bias_act_cuda(tc_ptr(&dy), bias ? tc_ptr(&db) : NULL, rows, cols, act, 0),
        cudaSuccess);
    assert_int_equal(cudaDeviceSynchronize(), cudaSuccess);
    assert_int_equal(tc_fetch(&dy, gpu), 0);
    if (bias) {
        float *bcheck = malloc(cols * sizeof(float) + 1);
        assert_int_equal(tc_fetch(&db, bcheck), 0); /* bias untouched, guards intact */
        assert_memory_equal(bcheck, bias, cols * sizeof(float));
        free(bcheck);
        tc_free(&db);
    }
    tc_free(&dy);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        if (!close_enough(gpu[i], cpu[i], 1e-6, 4e-6)) {
            if (bad++ < 5)
                fprintf(stderr, "act %d [%zu x %zu] at %zu: gpu %.9g cpu %.9g (x %.9g)\n", (int)act,
                        rows, cols, i, gpu[i], cpu[i], x[i]);
        }
    free(cpu);
    free(gpu);
    return bad;
}

static void test_bias_act_parity(void **state) {
    (void)state;
    tu_rng rng = {42};
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        size_t rows = shapes[s].rows, cols = shapes[s].cols;
        float *x = random_floats(&rng, rows * cols, 4.0f);
        float *bias = random_floats(&rng, cols, 1.0f);
        for (int act = 0; act < KINFER_ACT_COUNT; act++) {
            assert_int_equal(run_bias_act(x, bias, rows, cols, (kinfer_activation)act), 0);
            assert_int_equal(run_bias_act(x, NULL, rows, cols, (kinfer_activation)act), 0);
        }
        free(x);
        free(bias);
    }
}

static void test_bias_act_nan_inf(void **state) {
    (void)state;
    const float specials[] = {NAN,     -NAN,  INFINITY, -INFINITY, 0.0f,   -0.0f,   1e-40f,
                              -1e-40f, 88.0f, -88.0f,   1e30f,     -1e30f, 3.4e38f, -3.4e38f};
    size_t cols = sizeof(specials) / sizeof(specials[0]), rows = 3;
    float x[3 * 14], bias[14];
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++)
            x[r * cols + c] = specials[(c + r) % cols];
    for (size_t c = 0; c < cols; c++)
        bias[c] = c % 3 == 0 ? INFINITY : (c % 3 == 1 ? -1.0f : 0.5f);
    for (int act = 0; act < KINFER_ACT_COUNT; act++) {
        assert_int_equal(run_bias_act(x, bias, rows, cols, (kinfer_activation)act), 0);
        assert_int_equal(run_bias_act(x, NULL, rows, cols, (kinfer_activation)act), 0);
    }
}

static void check_narrow(kinfer_dtype dt) {
    tu_rng rng = {7 + (uint64_t)dt};
    double ulp = dt == KINFER_DTYPE_FP16 ? 1.0 / 1024 : 1.0 / 128;
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        size_t rows = shapes[s].rows, cols = shapes[s].cols, n = rows * cols;
        float *x = random_floats(&rng, n, 4.0f);
        if (n > 3) {
            x[0] = NAN;
            x[1] = INFINITY;
            x[2] = 1e6f; /* beyond FP16's range: +Inf after narrowing */
        }
        float *bias = random_floats(&rng, cols, 1.0f);
        for (int act = 0; act < KINFER_ACT_COUNT; act++) {
            float *cpu = malloc(n * sizeof(float) + 1);
            uint16_t *gpu = malloc(n * 2 + 1);
            memcpy(cpu, x, n * sizeof(float));
            kinfer_bias_act_cpu(cpu, bias, rows, cols, (kinfer_activation)act);
            tc_buf dy, db, dout;
            assert_int_equal(tc_alloc(&dy, x, n * sizeof(float)), 0);
            assert_int_equal(tc_alloc(&db, bias, cols * sizeof(float)), 0);
            assert_int_equal(tc_alloc(&dout, NULL, n * 2), 0);
            assert_int_equal(kinfer_bias_act_to_cuda(tc_ptr(&dy), tc_ptr(&db), rows, cols,
                                                     (kinfer_activation)act, tc_ptr(&dout), dt, 0),
                             cudaSuccess);
            assert_int_equal(cudaDeviceSynchronize(), cudaSuccess);
            assert_int_equal(tc_fetch(&dout, gpu), 0);
            float *ycheck = malloc(n * sizeof(float) + 1);
            assert_int_equal(tc_fetch(&dy, ycheck), 0); /* the FP32 input is left as it was */
            assert_memory_equal(ycheck, x, n * sizeof(float));
            free(ycheck);
            size_t bad = 0;
            for (size_t i = 0; i < n; i++) {
                float want = dt == KINFER_DTYPE_FP16
                                 ? kinfer_fp16_to_fp32(kinfer_fp32_to_fp16(cpu[i]))
                                 : kinfer_bf16_to_fp32(kinfer_fp32_to_bf16(cpu[i]));
                float got = dt == KINFER_DTYPE_FP16 ? kinfer_fp16_to_fp32(gpu[i])
                                                    : kinfer_bf16_to_fp32(gpu[i]);
                if (!close_enough(got, want, 1e-6, ulp) && bad++ < 5)
                    fprintf(stderr, "%s act %d at %zu: gpu %.9g cpu %.9g\n", kinfer_dtype_name(dt),
                            act, i, got, want);
            }
            assert_int_equal(bad, 0);
            tc_free(&dy);
            tc_free(&db);
            tc_free(&dout);
            free(cpu);
            free(gpu);
        }
        free(x);
        free(bias);
    }
}

static void test_bias_act_to_fp16(void **state) {
    (void)state;
    check_narrow(KINFER_DTYPE_FP16);
}

static void test_bias_act_to_bf16(void **state) {
    (void)state;
    check_narrow(KINFER_DTYPE_BF16);
}

static void test_bias_act_to_fp32_and_bad_dtype(void **state) {
    (void)state;
    float x[5] = {-1, 0, 1, 2, 3}, got[5], want[5];
    memcpy(want, x, sizeof(x));
    kinfer_bias_act_cpu(want, NULL, 1, 5, KINFER_ACT_GELU);
    tc_buf dy, dout;
    assert_int_equal(tc_alloc(&dy, x, sizeof(x)), 0);
    assert_int_equal(tc_alloc(&dout, NULL, sizeof(x)), 0);
    assert_int_equal(kinfer_bias_act_to_cuda(tc_ptr(&dy), NULL, 1, 5, KINFER_ACT_GELU,
                                             tc_ptr(&dout), KINFER_DTYPE_FP32, 0),
                     cudaSuccess);
    assert_int_equal(cudaDeviceSynchronize(), cudaSuccess);
    assert_int_equal(tc_fetch(&dout, got), 0);
    for (int i = 0; i < 5; i++)
        assert_true(close_enough(got[i], want[i], 1e-6, 4e-6));
    /* An unsupported output type launches nothing and says so. */
    assert_int_equal(kinfer_bias_act_to_cuda(tc_ptr(&dy), NULL, 1, 5, KINFER_ACT_GELU,
                                             tc_ptr(&dout), KINFER_DTYPE_INT8, 0),
                     cudaErrorInvalidValue);
    assert_int_equal(cudaGetLastError(), cudaSuccess);
    tc_free(&dy);
    tc_free(&dout);
}

static size_t run_softmax(const float *x, size_t rows, size_t cols) {
    size_t n = rows * cols;
    float *cpu = malloc(n * sizeof(float) + 1), *gpu = malloc(n * sizeof(float) + 1);
    memcpy(cpu, x, n * sizeof(float));
    kinfer_softmax_rows_cpu(cpu, rows, cols);
    tc_buf dy;
    assert_int_equal(tc_alloc(&dy, x, n * sizeof(float)), 0);
    assert_int_equal(kinfer_softmax_rows_cuda(tc_ptr(&dy), rows, cols, 0), cudaSuccess);
    assert_int_equal(cudaDeviceSynchronize(), cudaSuccess);
    assert_int_equal(tc_fetch(&dy, gpu), 0);
    tc_free(&dy);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        if (!close_enough(gpu[i], cpu[i], 1e-9, 1e-5) && bad++ < 5)
            fprintf(stderr, "softmax [%zu x %zu] at %zu: gpu %.9g cpu %.9g\n", rows, cols, i,
                    gpu[i], cpu[i]);
    free(cpu);
    free(gpu);
    return bad;
}

static void test_softmax_parity(void **state) {
    (void)state;
    tu_rng rng = {99};
    const shape sm[] = {{1, 1},    {0, 5},    {5, 0},     {1, 255},   {3, 257},
                        {9, 1000}, {2, 3000}, {70000, 3}, {256, 4096}};
    for (size_t s = 0; s < sizeof(sm) / sizeof(sm[0]); s++) {
        size_t n = sm[s].rows * sm[s].cols;
        /* Logits up to +-40: exp would overflow without the max shift. */
        float *x = random_floats(&rng, n, 40.0f);
        assert_int_equal(run_softmax(x, sm[s].rows, sm[s].cols), 0);
        free(x);
    }
}

static void test_softmax_nan_inf(void **state) {
    (void)state;
    /* Row 0 has a NaN, row 1 a +Inf, row 2 is all -Inf, row 3 has -Inf
     * among finite values (it gets probability 0), row 4 is plain. */
    float x[5][6] = {{1, 2, NAN, 3, 4, 5},
                     {1, INFINITY, 2, 3, 4, 5},
                     {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY},
                     {1, -INFINITY, 2, 3, 4, 5},
                     {1, 2, 3, 4, 5, 6}};
    assert_int_equal(run_softmax(&x[0][0], 5, 6), 0);
    kinfer_softmax_rows_cpu(&x[0][0], 5, 6);
    assert_true(isnan(x[0][0]) && isnan(x[0][5])); /* the twin's contract, checked here too */
    assert_true(x[3][1] == 0.0f && !isnan(x[3][0]));
}

static void test_zero_sizes_launch_nothing(void **state) {
    (void)state;
    /* NULL pointers with an empty shape: success, no launch, no fault. */
    assert_int_equal(kinfer_bias_act_cuda(NULL, NULL, 0, 10, KINFER_ACT_RELU, 0), cudaSuccess);
    assert_int_equal(kinfer_bias_act_cuda(NULL, NULL, 10, 0, KINFER_ACT_RELU, 0), cudaSuccess);
    assert_int_equal(kinfer_softmax_rows_cuda(NULL, 0, 0, 0), cudaSuccess);
    assert_int_equal(kinfer_softmax_rows_cuda(NULL, 3, 3, 0), cudaErrorInvalidValue);
    assert_int_equal(cudaDeviceSynchronize(), cudaSuccess);
}
#endif

int main(void) {
    int skip = tc_require_gpu("test_cuda_bias_act");
    if (skip)
        return skip;
#ifdef KINFER_HAVE_CUDA
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bias_act_parity),
        cmocka_unit_test(test_bias_act_nan_inf),
        cmocka_unit_test(test_bias_act_to_fp16),
        cmocka_unit_test(test_bias_act_to_bf16),
        cmocka_unit_test(test_bias_act_to_fp32_and_bad_dtype),
        cmocka_unit_test(test_softmax_parity),
        cmocka_unit_test(test_softmax_nan_inf),
        cmocka_unit_test(test_zero_sizes_launch_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
#else
    return TC_SKIP;
#endif
}
