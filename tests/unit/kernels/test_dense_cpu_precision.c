/* test_dense_cpu_precision.c — ops/dense_cpu.h (y = x W^T + b, W packed
 * once) in FP32, BF16 and INT8 against double-precision references, for
 * batch sizes around the kernels' chunk (256) and remainder rounding (8),
 * awkward widths, with and without bias; and dense_quant_cpu.h's loops against
 * their definitions.
 *
 *   FP32: |err| <= 1e-6 + 1e-5 * sum|terms| (float summation).
 *   BF16: against the operands rounded to bf16, |err| <= 1e-5 + 2e-5 * sum|terms|.
 *   INT8: exact: the output equals the integer products of the operands as
 *         dense_quant_cpu.h quantizes them, dequantized (float rounding only); and
 *         within the quantization bound of the FP32 result.
 *
 * Without the instructions for BF16/INT8 (or without oneDNN) those cases
 * check that kinfer_dense_resolve says FP32 and why, and the run exits 77
 * (ctest: Skipped) with a loud line; --expect-fallback (run by ctest under
 * ONEDNN_MAX_CPU_ISA=AVX512_CORE) passes when the fallback is what happens. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ops/dense_cpu.h"
#include "ops/dense_quant_cpu.h"

#define SKIP 77

static bool g_expect_fallback;

static uint64_t rng_next(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static float rng_uniform(uint64_t *s) { /* [-1, 1) */
    return (float)((double)(rng_next(s) >> 11) / (double)(1ull << 53) * 2.0 - 1.0);
}

static float *random_vec(size_t n, float scale, uint64_t seed) {
    uint64_t s = seed * 2654435761u + 1;
    float *v = malloc(n * sizeof(float) + 4);
    for (size_t i = 0; i < n; i++)
        v[i] = rng_uniform(&s) * scale;
    return v;
}

static float bf16_round(float f) {
    uint16_t h;
    kinfer_rows_to_bf16(&f, 1, &h, 1, 1, 1);
    uint32_t u = (uint32_t)h << 16;
    float r;
    memcpy(&r, &u, sizeof(r));
    return r;
}

/* One layer at one precision, every batch size; returns failures. */
static int check_layer(kinfer_dtype prec, size_t n, size_t k, bool with_bias, uint64_t seed) {
    static const size_t sizes[] = {1, 2, 7, 8, 9, 16, 100, 255, 256, 257, 520, 600};
    const size_t max_m = 600;
    float *w = random_vec(n * k, 1.0f / sqrtf((float)k), seed);
    float *b = with_bias ? random_vec(n, 0.5f, seed + 1) : NULL;
    float *x = random_vec(max_m * k, 2.0f, seed + 2);
    /* A row of zeros and a row of one sign: the quantizer's edge cases. */
    memset(x + 3 * k, 0, k * sizeof(float));
    for (size_t j = 0; j < k; j++)
        x[5 * k + j] = fabsf(x[5 * k + j]) + 0.25f;
    float *y = malloc(max_m * n * sizeof(float));
    kinfer_dense_ctx *ctx;
    kinfer_dense *d;
    kinfer_error err;
    assert_int_equal(kinfer_dense_ctx_new(max_m, 1, &ctx, &err), KINFER_OK);
    if (kinfer_dense_new(ctx, prec, w, b, n, k, &d, &err) != KINFER_OK)
        fail_msg("dense_new %s %zux%zu: %s", kinfer_dtype_name(prec), n, k, err.msg);

    /* INT8's exact reference: the operands as dense_quant_cpu.h quantizes them. */
    int8_t *qw = malloc(n * k);
    float *ws = malloc(n * sizeof(float));
    int32_t *wsum = malloc(n * sizeof(int32_t));
    uint8_t *qx = malloc(max_m * k);
    float *xs = malloc(max_m * sizeof(float));
    int32_t *xz = malloc(max_m * sizeof(int32_t));
    kinfer_quant_weights_s8(w, n, k, qw, ws, wsum);
    kinfer_quant_rows_u8(x, k, qx, k, max_m, k, xs, xz);

    /* BF16's reference takes the operands as the kernels see them. */
    float *wr = malloc(n * k * sizeof(float)), *xr = malloc(max_m * k * sizeof(float));
    for (size_t i = 0; i < n * k; i++)
        wr[i] = prec == KINFER_DTYPE_BF16 ? bf16_round(w[i]) : w[i];
    for (size_t i = 0; i < max_m * k; i++)
        xr[i] = prec == KINFER_DTYPE_BF16 ? bf16_round(x[i]) : x[i];
    /* References once per row (a row's result does not depend on m). */
    double *ref = malloc(max_m * n * sizeof(double)), *mag = malloc(max_m * n * sizeof(double));
    double *exact = malloc(max_m * n * sizeof(double)), *qb = malloc(max_m * n * sizeof(double));
    for (size_t r = 0; r < max_m; r++)
        for (size_t c = 0; c < n; c++) {
            double f = b ? b[c] : 0.0, g = b ? fabs(b[c]) : 0.0, q = 0.0;
            int64_t iacc = 0;
            for (size_t j = 0; j < k; j++) {
                double t = (double)wr[c * k + j] * xr[r * k + j];
                f += t;
                g += fabs(t);
                iacc += (int64_t)qx[r * k + j] * qw[c * k + j];
                q += fabs(w[c * k + j]) * xs[r] / 2 + fabs(x[r * k + j]) * ws[c] / 2 +
                     xs[r] * ws[c] / 4;
            }
            ref[r * n + c] = f;
            mag[r * n + c] = g;
            qb[r * n + c] = q;
            exact[r * n + c] =
                (double)(iacc - (int64_t)xz[r] * wsum[c]) * xs[r] * ws[c] + (b ? b[c] : 0.0);
        }
    int bad = 0;
    for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]) && !bad; si++) {
        size_t m = sizes[si];
        memset(y, 0xff, m * n * sizeof(float)); /* NaN: every output must be written */
        if (kinfer_dense_run(ctx, d, x, m, y, &err) != KINFER_OK)
            fail_msg("run m=%zu: %s", m, err.msg);
        for (size_t i = 0; i < m * n && bad < 5; i++) {
            double got = y[i], tol;
            if (prec == KINFER_DTYPE_INT8) {
                /* Exact integer products, then within the quantization
                 * bound of the FP32 value. */
                tol = 1e-6 + 2e-6 * (fabs(exact[i]) + mag[i]);
                if (!(fabs(got - exact[i]) <= tol && fabs(got - ref[i]) <= qb[i] + tol)) {
                    fprintf(stderr,
                            "int8 %zux%zu m=%zu [%zu]: got %.8g, exact %.8g, fp32 %.8g "
                            "(bound %.3g)\n",
                            n, k, m, i, got, exact[i], ref[i], qb[i]);
                    bad++;
                }
                continue;
            }
            tol = prec == KINFER_DTYPE_FP32 ? 1e-6 + 1e-5 * mag[i] : 1e-5 + 2e-5 * mag[i];
            if (!(fabs(got - ref[i]) <= tol)) {
                fprintf(stderr, "%s %zux%zu m=%zu [%zu]: got %.8g want %.8g (tol %.3g)\n",
                        kinfer_dtype_name(prec), n, k, m, i, got, ref[i], tol);
                bad++;
            }
        }
    }
    free(ref);
    free(mag);
    free(exact);
    free(qb);
    free(wr);
    free(xr);
    /* More rows than the context was made for is refused. */
    assert_int_equal(kinfer_dense_run(ctx, d, x, max_m + 1, y, &err), KINFER_ERR_INVALID_ARG);
    kinfer_dense_free(d);
    kinfer_dense_ctx_free(ctx);
    free(w);
    free(b);
    free(x);
    free(y);
    free(qw);
    free(ws);
    free(wsum);
    free(qx);
    free(xs);
    free(xz);
    return bad;
}

static const size_t shapes[][2] = {{1, 1}, {13, 7}, {257, 33}, {384, 1536}};

static void check_precision(kinfer_dtype prec) {
    char why[160] = "";
    kinfer_dtype runs = kinfer_dense_resolve(prec, why, sizeof(why));
    if (runs != prec) {
        /* The fallback: FP32, with a reason that names the missing part. */
        assert_int_equal(runs, KINFER_DTYPE_FP32);
        assert_true(strstr(why, "lacks") || strstr(why, "no oneDNN"));
        fprintf(stderr, "%s falls back to fp32: %s\n", kinfer_dtype_name(prec), why);
        prec = KINFER_DTYPE_FP32;
    }
    int bad = 0;
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
        bad += check_layer(prec, shapes[i][0], shapes[i][1], i % 2 == 0, 11 + i);
    /* Two layers of one shape, with and without bias, share kernels. */
    bad += check_layer(prec, 13, 7, false, 99);
    assert_int_equal(bad, 0);
}

static void test_fp32(void **state) {
    (void)state;
    assert_int_equal(kinfer_dense_resolve(KINFER_DTYPE_FP32, NULL, 0), KINFER_DTYPE_FP32);
    check_precision(KINFER_DTYPE_FP32);
}

static void test_bf16(void **state) {
    (void)state;
    check_precision(KINFER_DTYPE_BF16);
}

static void test_int8(void **state) {
    (void)state;
    check_precision(KINFER_DTYPE_INT8);
}

static void test_fp16_is_fp32_on_cpu(void **state) {
    (void)state;
    char why[160] = "";
    assert_int_equal(kinfer_dense_resolve(KINFER_DTYPE_FP16, why, sizeof(why)), KINFER_DTYPE_FP32);
    assert_non_null(strstr(why, "GPU"));
}

static void test_quant_rows_definition(void **state) {
    (void)state;
    float x[3][6] = {{-1.0f, 0.5f, 2.0f, 0.0f, -0.25f, 1.0f},
                     {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f},
                     {1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f}};
    uint8_t q[3][6];
    float s[3];
    int32_t z[3];
    kinfer_quant_rows_u8(&x[0][0], 6, &q[0][0], 6, 3, 6, s, z);
    /* Row 0: lo -1, hi 2: scale 3/255, zero point 85; 0 maps to 85 exactly. */
    assert_float_equal(s[0], 3.0f / 255.0f, 1e-9);
    assert_int_equal(z[0], 85);
    assert_int_equal(q[0][3], 85);
    assert_int_equal(q[0][0], 0);
    assert_int_equal(q[0][2], 255);
    for (int j = 0; j < 6; j++)
        assert_true(fabsf(((float)q[0][j] - (float)z[0]) * s[0] - x[0][j]) <= s[0] / 2 + 1e-7f);
    /* All zeros: scale 1, zero point 0. */
    assert_float_equal(s[1], 1.0f, 0);
    assert_int_equal(z[1], 0);
    /* All positive: the range still includes 0 (zero point 0). */
    assert_int_equal(z[2], 0);
    assert_int_equal(q[2][5], 255);
    /* Long rows (the vector loops and their tails) against the definition. */
    enum { N = 103 };
    float *v = random_vec(2 * N, 3.0f, 5);
    uint8_t qq[2 * N];
    float ss[2];
    int32_t zz[2];
    kinfer_quant_rows_u8(v, N, qq, N, 2, N, ss, zz);
    for (int r = 0; r < 2; r++) {
        float lo = 0, hi = 0;
        for (int j = 0; j < N; j++) {
            lo = v[r * N + j] < lo ? v[r * N + j] : lo;
            hi = v[r * N + j] > hi ? v[r * N + j] : hi;
        }
        float sc = (hi - lo) / 255.0f, zp = nearbyintf(-lo / sc);
        assert_float_equal(ss[r], sc, 0);
        assert_int_equal(zz[r], (int32_t)zp);
        for (int j = 0; j < N; j++) {
            float e = nearbyintf(v[r * N + j] * (1.0f / sc)) + zp;
            e = e < 0 ? 0 : (e > 255 ? 255 : e);
            assert_int_equal(qq[r * N + j], (int)e);
        }
    }
    free(v);
}

static void test_quant_weights_definition(void **state) {
    (void)state;
    float w[2][4] = {{0.5f, -1.27f, 0.0f, 1.0f}, {0.0f, 0.0f, 0.0f, 0.0f}};
    int8_t q[2][4];
    float s[2];
    int32_t sum[2];
    kinfer_quant_weights_s8(&w[0][0], 2, 4, &q[0][0], s, sum);
    assert_float_equal(s[0], 1.27f / 127.0f, 1e-9);
    assert_int_equal(q[0][1], -127);
    assert_int_equal(q[0][0], 50);
    assert_int_equal(q[0][3], 100);
    assert_int_equal(sum[0], 50 - 127 + 0 + 100);
    assert_float_equal(s[1], 1.0f, 0);
    assert_int_equal(sum[1], 0);
}

static void test_bf16_rounding(void **state) {
    (void)state;
    /* 1 + 2^-8 is halfway between bf16 1 and 1 + 2^-7: to even (1). */
    float in[5] = {1.0f + 1.0f / 256.0f, 1.0f + 3.0f / 256.0f, -2.5f, NAN, INFINITY};
    uint16_t out[5];
    kinfer_rows_to_bf16(in, 5, out, 5, 1, 5);
    assert_int_equal(out[0], 0x3f80);
    assert_int_equal(out[1], 0x3f82);
    assert_int_equal(out[2], 0xc020);
    assert_true((out[3] & 0x7f80) == 0x7f80 && (out[3] & 0x7f) != 0); /* still a NaN */
    assert_int_equal(out[4], 0x7f80);
}

int main(int argc, char **argv) {
    g_expect_fallback = argc > 1 && strcmp(argv[1], "--expect-fallback") == 0;
    bool bf16 = kinfer_dense_resolve(KINFER_DTYPE_BF16, NULL, 0) == KINFER_DTYPE_BF16;
    bool int8 = kinfer_dense_resolve(KINFER_DTYPE_INT8, NULL, 0) == KINFER_DTYPE_INT8;
    fprintf(stderr, "dense kernels: %s; bf16 %s, int8 %s\n", kinfer_dense_isa(),
            bf16 ? "runs" : "falls back to fp32", int8 ? "runs" : "falls back to fp32");
    if (g_expect_fallback && (bf16 || int8)) {
        fprintf(stderr, "--expect-fallback: but a reduced precision still runs here (is "
                        "ONEDNN_MAX_CPU_ISA set?)\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fp32),
        cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_int8),
        cmocka_unit_test(test_fp16_is_fp32_on_cpu),
        cmocka_unit_test(test_quant_rows_definition),
        cmocka_unit_test(test_quant_weights_definition),
        cmocka_unit_test(test_bf16_rounding),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    if (failed || g_expect_fallback || (bf16 && int8))
        return failed;
    fprintf(stderr,
            "\n*** %s: SKIPPED%s%s: this CPU/build lacks the instructions; only the FP32 "
            "fallback was tested for %s.\n",
            argv[0], bf16 ? "" : " bf16", int8 ? "" : " int8",
            bf16 ? "int8" : (int8 ? "bf16" : "both"));
    return SKIP;
}
