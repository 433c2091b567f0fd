/* test_cuda_convert.c — parity of the FP32 -> FP16/BF16 narrowing kernel
 * (convert.cu) with its C twins kinfer_fp32_to_fp16/bf16 (convert_cpu.c):
 * bit-exact for every non-NaN input (round to nearest even, subnormals,
 * overflow to infinity, signed zeros), NaN stays NaN; sizes 0, 1, not a
 * multiple of the block, large; sentinel guards. Skips loudly (exit 77)
 * without a GPU. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/convert.h"
#include "test_cuda_util.h"
#include "test_mlp_util.h"

#ifdef KINFER_HAVE_CUDA
#include "ops/convert_cuda.h"

static int is_nan16(uint16_t v, kinfer_dtype dt) {
    return dt == KINFER_DTYPE_FP16 ? (v & 0x7c00) == 0x7c00 && (v & 0x03ff)
                                   : (v & 0x7f80) == 0x7f80 && (v & 0x007f);
}

static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

static unsigned bits_of(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    return (unsigned)u;
}

/* Inputs that exercise every rounding path, then random bit patterns. */
static float *make_inputs(size_t n, uint64_t seed) {
    static const float fixed[] = {0.0f,
                                  -0.0f,
                                  1.0f,
                                  -1.0f,
                                  65504.0f,
                                  65519.99f,
                                  65520.0f,
                                  -65520.0f,
                                  1e-8f,
                                  6e-8f,
                                  3e-8f,
                                  2.98023224e-8f,
                                  1e-45f,
                                  1.17549435e-38f,
                                  3.4028235e38f,
                                  INFINITY,
                                  -INFINITY,
                                  NAN,
                                  1.00048828125f /* 1 + 2^-11: FP16 tie -> even */,
                                  1.00390625f /* 1 + 2^-8: BF16 tie -> even */,
                                  1.0029296875f /* 1 + 3*2^-10 */};
    float *v = malloc(n * sizeof(float) + 1);
    tu_rng rng = {seed};
    for (size_t i = 0; i < n; i++) {
        if (i < sizeof(fixed) / sizeof(fixed[0]))
            v[i] = fixed[i];
        else
            v[i] = from_bits((uint32_t)tu_next(&rng));
    }
    return v;
}

static void check(kinfer_dtype dt, size_t n) {
    float *x = make_inputs(n, 1000 + n);
    uint16_t *gpu = malloc(n * 2 + 1);
    tc_buf dx, dy;
    assert_int_equal(tc_alloc(&dx, x, n * sizeof(float)), 0);
    assert_int_equal(tc_alloc(&dy, NULL, n * 2), 0);
    assert_int_equal(kinfer_convert_f32_cuda(tc_ptr(&dx), tc_ptr(&dy), dt, n, 0), cudaSuccess);
    assert_int_equal(cudaDeviceSynchronize(), cudaSuccess);
    assert_int_equal(tc_fetch(&dy, gpu), 0);
    assert_int_equal(tc_fetch(&dx, NULL), 0);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint16_t want =
            dt == KINFER_DTYPE_FP16 ? kinfer_fp32_to_fp16(x[i]) : kinfer_fp32_to_bf16(x[i]);
        int ok = isnan(x[i]) ? is_nan16(gpu[i], dt) && is_nan16(want, dt) : gpu[i] == want;
        if (!ok && bad++ < 5)
            fprintf(stderr, "%s at %zu: x %.9g (0x%08x) gpu 0x%04x cpu 0x%04x\n",
                    kinfer_dtype_name(dt), i, x[i], bits_of(x[i]), gpu[i], want);
    }
    assert_int_equal(bad, 0);
    tc_free(&dx);
    tc_free(&dy);
    free(x);
    free(gpu);
}

static const size_t sizes[] = {0, 1, 21, 255, 257, 4099, (size_t)1 << 22};

static void test_convert_fp16(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        check(KINFER_DTYPE_FP16, sizes[i]);
}

static void test_convert_bf16(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        check(KINFER_DTYPE_BF16, sizes[i]);
}

static void test_convert_fp32_copy_and_bad_dtype(void **state) {
    (void)state;
    float x[7] = {1, -2, 3.5f, NAN, INFINITY, -0.0f, 1e-40f}, y[7];
    tc_buf dx, dy;
    assert_int_equal(tc_alloc(&dx, x, sizeof(x)), 0);
    assert_int_equal(tc_alloc(&dy, NULL, sizeof(y)), 0);
    assert_int_equal(kinfer_convert_f32_cuda(tc_ptr(&dx), tc_ptr(&dy), KINFER_DTYPE_FP32, 7, 0),
                     cudaSuccess);
    assert_int_equal(cudaDeviceSynchronize(), cudaSuccess);
    assert_int_equal(tc_fetch(&dy, y), 0);
    assert_memory_equal(x, y, sizeof(x));
    assert_int_equal(kinfer_convert_f32_cuda(tc_ptr(&dx), tc_ptr(&dy), KINFER_DTYPE_INT32, 7, 0),
                     cudaErrorInvalidValue);
    assert_int_equal(kinfer_convert_f32_cuda(NULL, NULL, KINFER_DTYPE_FP16, 0, 0), cudaSuccess);
    assert_int_equal(cudaGetLastError(), cudaSuccess);
    tc_free(&dx);
    tc_free(&dy);
}
#endif

int main(void) {
    int skip = tc_require_gpu("test_cuda_convert");
    if (skip)
        return skip;
#ifdef KINFER_HAVE_CUDA
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_convert_fp16),
        cmocka_unit_test(test_convert_bf16),
        cmocka_unit_test(test_convert_fp32_copy_and_bad_dtype),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
#else
    return TC_SKIP;
#endif
}
