/* test_bert_ops.c — the encoder ops of ops/bert_*_cpu.c against naive double
 * references on awkward shapes (1, not a multiple of the vector width,
 * sequences of length 1), with sentinels after every output buffer. The
 * oracle a future CUDA twin will be compared with. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bert/bert_model.h"
#include "ops/bert_ops.h"
#include "ops/kinfer_hd.h"

#define SENTINEL 12345.678f
#define GUARD 16

static uint64_t g_rng = 88172645463325252ull;

static float frand(void) { /* xorshift64, uniform in [-1, 1) */
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (float)((g_rng >> 40) / (double)(1ull << 24)) * 2.0f - 1.0f;
}

static float *buf(size_t n) {
    float *p = malloc((n + GUARD) * sizeof(float));
    for (size_t i = 0; i < n; i++)
        p[i] = frand();
    for (size_t i = 0; i < GUARD; i++)
        p[n + i] = SENTINEL;
    return p;
}

static void check_guard(const float *p, size_t n) {
    for (size_t i = 0; i < GUARD; i++)
        if (p[n + i] != SENTINEL)
            fail_msg("write past the end at +%zu", i);
}

static void test_erf_fast_accuracy(void **state) {
    (void)state;
    double worst = 0;
    for (double x = -10.0; x <= 10.0; x += 1e-3) {
        double d = fabs((double)bert_erf_fast((float)x) - erf((double)(float)x));
        if (d > worst)
            worst = d;
    }
    assert_true(worst < 5e-7);
    assert_true(isnan(bert_erf_fast(NAN)));
    assert_true(bert_erf_fast(INFINITY) == bert_erf_fast(4.0f));
}

static void test_exp_fast_accuracy(void **state) {
    (void)state;
    double worst = 0;
    for (double x = -87.0; x <= 0.0; x += 1e-3) {
        double want = exp((double)(float)x);
        double rel = fabs((double)bert_exp_fast((float)x) - want) / want;
        if (rel > worst)
            worst = rel;
    }
    assert_true(worst < 5e-7);
    assert_true(bert_exp_fast(0.0f) == 1.0f);
    assert_true(bert_exp_fast(-1000.0f) < 1e-37f); /* clamped, never NaN */
    /* NaN propagates as expf's does (a NaN score must not become a weight). */
    assert_true(isnan(bert_exp_fast(NAN)));
    assert_true(isnan(kinfer_exp_fast(NAN)));
}

static void test_bias_gelu(void **state) {
    (void)state;
    const size_t shapes[][2] = {{1, 1}, {3, 17}, {2, 1536}, {5, 33}};
    for (size_t s = 0; s < 4; s++) {
        size_t rows = shapes[s][0], cols = shapes[s][1], n = rows * cols;
        float *y = buf(n), *y2 = buf(n), *bias = buf(cols);
        for (size_t i = 0; i < n; i++)
            y[i] = y2[i] = y[i] * 6.0f; /* reach the clamped tails */
        bert_bias_gelu_cpu(y, bias, rows, cols);
        bert_bias_cpu(y2, bias, rows, cols);
        check_guard(y, n);
        check_guard(y2, n);
        for (size_t i = 0; i < n; i++) {
            double v = y2[i]; /* x + bias, exactly what the GELU saw */
            double want = 0.5 * v * (1.0 + erf(v / sqrt(2.0)));
            if (fabs(y[i] - want) > 1e-6 * (1.0 + fabs(v)))
                fail_msg("gelu(%f) = %f, want %f", v, y[i], want);
            /* The CUDA epilogue (bias_act.cu) evaluates kinfer_activate's
             * GELU; the twin must be that function. Equal here up to FMA
             * contraction (<= 2.4e-7 relative, which the vector clones and
             * nvcc may use), so this catches another formula (the tanh
             * form is ~1e-3 off), not libm's erff (as close as FMA). */
            float shared = kinfer_activate(KINFER_ACT_GELU, y2[i]);
            if (fabsf(y[i] - shared) > 4e-7f * (1.0f + fabsf(y2[i])))
                fail_msg("gelu(%f): twin %.9g, kinfer_activate %.9g", v, y[i], shared);
        }
        free(y);
        free(y2);
        free(bias);
    }
}

static void test_add_layernorm(void **state) {
    (void)state;
    const size_t shapes[][2] = {{1, 1}, {3, 7}, {2, 384}, {1, 1000}};
    for (size_t s = 0; s < 4; s++) {
        size_t rows = shapes[s][0], cols = shapes[s][1], n = rows * cols;
        float *x = buf(n), *res = buf(n), *g = buf(cols), *b = buf(cols);
        double *want = malloc(n * sizeof(double));
        for (size_t r = 0; r < rows; r++) {
            double mean = 0, var = 0;
            for (size_t c = 0; c < cols; c++)
                mean += (double)x[r * cols + c] + res[r * cols + c];
            mean /= (double)cols;
            for (size_t c = 0; c < cols; c++) {
                double d = (double)x[r * cols + c] + res[r * cols + c] - mean;
                var += d * d;
            }
            var /= (double)cols;
            for (size_t c = 0; c < cols; c++)
                want[r * cols + c] = ((double)x[r * cols + c] + res[r * cols + c] - mean) /
                                         sqrt(var + 1e-12) * g[c] +
                                     b[c];
        }
        bert_add_layernorm_cpu(x, res, g, b, rows, cols, 1e-12f);
        check_guard(x, n);
        for (size_t i = 0; i < n; i++)
            if (fabs(x[i] - want[i]) > 1e-5 * (1.0 + fabs(want[i])))
                fail_msg("layernorm [%zu] = %f, want %f (cols %zu)", i, x[i], want[i], cols);
        free(x);
        free(res);
        free(g);
        free(b);
        free(want);
    }
}

/* Naive attention of one sequence, one head, in double. */
static void naive_attention(const float *qkv, size_t a, size_t len, size_t H, size_t heads,
                            size_t h, double *out /* [len, dh] */) {
    size_t dh = H / heads;
    double *p = malloc(len * sizeof(double));
    for (size_t i = 0; i < len; i++) {
        double mx = -INFINITY, sum = 0;
        for (size_t j = 0; j < len; j++) {
            double d = 0;
            for (size_t k = 0; k < dh; k++)
                d += (double)qkv[(a + i) * 3 * H + h * dh + k] *
                     qkv[(a + j) * 3 * H + H + h * dh + k];
            p[j] = d / sqrt((double)dh);
            if (p[j] > mx)
                mx = p[j];
        }
        for (size_t j = 0; j < len; j++)
            sum += (p[j] = exp(p[j] - mx));
        for (size_t k = 0; k < dh; k++) {
            double o = 0;
            for (size_t j = 0; j < len; j++)
                o += p[j] / sum * qkv[(a + j) * 3 * H + 2 * H + h * dh + k];
            out[i * dh + k] = o;
        }
    }
    free(p);
}

static void test_attention_packed(void **state) {
    (void)state;
    const uint32_t lens[] = {1, 5, 17, 2};
    const size_t H = 12, heads = 3, dh = H / heads, nseq = 4;
    uint32_t start[5] = {0};
    for (size_t s = 0; s < nseq; s++)
        start[s + 1] = start[s] + lens[s];
    size_t T = start[nseq];
    float *qkv = buf(T * 3 * H), *ctx = buf(T * H), *scores = buf(17 * 17);
    bert_attention_cpu(qkv, ctx, start, nseq, H, heads, scores);
    check_guard(ctx, T * H);
    check_guard(scores, 17 * 17);
    double *want = malloc(17 * dh * sizeof(double));
    for (size_t s = 0; s < nseq; s++)
        for (size_t h = 0; h < heads; h++) {
            naive_attention(qkv, start[s], lens[s], H, heads, h, want);
            for (size_t i = 0; i < lens[s]; i++)
                for (size_t k = 0; k < dh; k++) {
                    float got = ctx[(start[s] + i) * H + h * dh + k];
                    if (fabs(got - want[i * dh + k]) > 1e-5)
                        fail_msg("seq %zu head %zu [%zu,%zu] = %f, want %f", s, h, i, k, got,
                                 want[i * dh + k]);
                }
        }
    free(want);
    free(qkv);
    free(ctx);
    free(scores);
}

static void test_pooling_modes(void **state) {
    (void)state;
    const size_t H = 5;
    const uint32_t start[] = {0, 1, 4, 11};
    float *x = buf(11 * H);
    unsigned modes = BERT_POOL_CLS | BERT_POOL_MAX | BERT_POOL_MEAN | BERT_POOL_MEAN_SQRT;
    float *out = buf(3 * 4 * H);
    bert_pool_cpu(x, start, 3, H, modes, out);
    check_guard(out, 3 * 4 * H);
    for (size_t s = 0; s < 3; s++) {
        size_t a = start[s], len = start[s + 1] - a;
        const float *o = out + s * 4 * H;
        for (size_t c = 0; c < H; c++) {
            double mx = -INFINITY, sum = 0;
            for (size_t t = 0; t < len; t++) {
                double v = x[(a + t) * H + c];
                mx = v > mx ? v : mx;
                sum += v;
            }
            assert_true(o[c] == x[a * H + c]);
            assert_true(o[H + c] == (float)mx);
            assert_true(fabs(o[2 * H + c] - sum / (double)len) < 1e-6);
            assert_true(fabs(o[3 * H + c] - sum / sqrt((double)len)) < 1e-6);
        }
    }
    /* Mean alone: out_dim = H. */
    float *mean = buf(3 * H);
    bert_pool_cpu(x, start, 3, H, BERT_POOL_MEAN, mean);
    check_guard(mean, 3 * H);
    assert_true(fabs(mean[H] - out[4 * H + 2 * H]) < 1e-7);
    free(x);
    free(out);
    free(mean);
}

static void test_l2_normalize(void **state) {
    (void)state;
    float v[3] = {3.0f, 4.0f, 0.0f};
    bert_l2_normalize_cpu(v, 3);
    assert_true(fabs(v[0] - 0.6f) < 1e-7 && fabs(v[1] - 0.8f) < 1e-7 && v[2] == 0.0f);
    float z[4] = {0};
    bert_l2_normalize_cpu(z, 4); /* eps keeps the zero vector finite */
    for (int i = 0; i < 4; i++)
        assert_true(z[i] == 0.0f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_erf_fast_accuracy), cmocka_unit_test(test_exp_fast_accuracy),
        cmocka_unit_test(test_bias_gelu),         cmocka_unit_test(test_add_layernorm),
        cmocka_unit_test(test_attention_packed),  cmocka_unit_test(test_pooling_modes),
        cmocka_unit_test(test_l2_normalize),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
