/* test_llm_ops_rows.c — the decoder's row-wise ops (llm_ops.h) against
 * naive double references: RMSNorm (in place and not, rows of 1..1000,
 * NaN/Inf), the RoPE frequencies (none, linear, llama3 — the latter from
 * HF's formula written out here), the (cos, sin) table, the rotation in both
 * pairings with partial rotary dims and a row stride, SwiGLU (with the silu
 * edge values), the embedding gather for every qtype (and its refusals),
 * argmax. Sentinel guards after every output.
 *
 * Tolerances (FP32 ops against double references):
 *   RMSNorm: 4e-7 * |ref| + 1e-7 * max|ref| (two FP32 roundings + sqrtf);
 *   RoPE table: 2^-24 relative + 1e-7 (cos/sin in double, rounded once);
 *   rotation: 3e-7 * (|a| + |b|) per element (two products and a sum);
 *   SwiGLU: 1e-6 * |ref| + 1e-30 (kinfer_exp_fast ~2e-7 and the division);
 *   embedding: exact (dequantization is exact in FP32). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/kinfer_hd.h"
#include "ops/llm_ops.h"
#include "test_llm_util.h"

static void test_rmsnorm(void **state) {
    (void)state;
    tl_rng rng = {11};
    static const size_t ns[] = {1, 7, 16, 17, 576, 1000};
    static const size_t rowss[] = {1, 3};
    for (size_t a = 0; a < sizeof(ns) / sizeof(ns[0]); a++)
        for (size_t b = 0; b < sizeof(rowss) / sizeof(rowss[0]); b++)
            for (int inplace = 0; inplace < 2; inplace++) {
                size_t n = ns[a], rows = rowss[b];
                float *x = tl_floats(&rng, rows * n, 3.0f), *w = tl_floats(&rng, n, 2.0f);
                float *y = inplace ? x : tl_floats(&rng, rows * n, 1.0f);
                double *ref = malloc(rows * n * sizeof(double));
                double maxref = 0;
                for (size_t r = 0; r < rows; r++) {
                    double ss = 0;
                    for (size_t k = 0; k < n; k++)
                        ss += (double)x[r * n + k] * x[r * n + k];
                    double inv = 1.0 / sqrt(ss / n + 1e-5);
                    for (size_t k = 0; k < n; k++) {
                        ref[r * n + k] = x[r * n + k] * inv * w[k];
                        maxref = fmax(maxref, fabs(ref[r * n + k]));
                    }
                }
                kinfer_rmsnorm_cpu(x, w, y, rows, n, 1e-5f);
                for (size_t i = 0; i < rows * n; i++)
                    if (fabs(y[i] - ref[i]) > 4e-7 * fabs(ref[i]) + 1e-7 * maxref)
                        fail_msg("rmsnorm n=%zu [%zu]: %.9g vs %.9g", n, i, y[i], ref[i]);
                assert_true(tl_guard_ok(y, rows * n));
                assert_true(tl_guard_ok(x, rows * n));
                free(x);
                free(w);
                if (!inplace)
                    free(y);
                free(ref);
            }
    /* NaN in a row: that row NaN, the next one untouched by it; Inf: NaN */
    float x[3 * 4] = {1, 2, NAN, 4, 1, 2, 3, 4, INFINITY, 1, 1, 1}, w[4] = {1, 1, 1, 1}, y[12];
    kinfer_rmsnorm_cpu(x, w, y, 3, 4, 1e-6f);
    for (int k = 0; k < 4; k++) {
        assert_true(isnan(y[k]));
        assert_true(isfinite(y[4 + k]));
        assert_false(isfinite(y[8 + k]) && k == 0);
    }
    kinfer_rmsnorm_cpu(x, w, y, 0, 4, 1e-6f); /* rows 0: nothing */
    kinfer_rmsnorm_cpu(x, w, y, 3, 0, 1e-6f); /* n 0: nothing */
}

/* HF transformers' rope_init_fn for "llama3" (modeling_rope_utils), in
 * double, independently of kinfer_rope_freqs. */
static double hf_llama3(double base, size_t dim, size_t i, double factor, double lo, double hi,
                        double orig) {
    double inv = 1.0 / pow(base, (double)(2 * i) / (double)dim);
    double low_wl = orig / lo, high_wl = orig / hi;
    double wl = 2 * 3.14159265358979323846 / inv;
    double scaled = wl > low_wl ? inv / factor : inv;
    double smooth = (orig / wl - lo) / (hi - lo);
    double smoothed = (1 - smooth) * scaled / factor + smooth * scaled;
    bool medium = !(wl < high_wl) && !(wl > low_wl);
    return medium ? smoothed : scaled;
}

static void test_rope_freqs(void **state) {
    (void)state;
    float f[64];
    kinfer_error err;
    kinfer_rope_params p = {.theta = 100000.0f};
    assert_int_equal(kinfer_rope_freqs(&p, 64, f, &err), KINFER_OK);
    for (size_t i = 0; i < 32; i++)
        assert_float_equal(f[i], 1.0 / pow(100000.0, 2.0 * i / 64), 1e-7 * f[i] + 1e-30);
    p.scaling = KINFER_ROPE_SCALING_LINEAR;
    p.factor = 4.0f;
    assert_int_equal(kinfer_rope_freqs(&p, 64, f, &err), KINFER_OK);
    for (size_t i = 0; i < 32; i++)
        assert_float_equal(f[i], 1.0 / pow(100000.0, 2.0 * i / 64) / 4, 1e-7 * f[i] + 1e-30);
    kinfer_rope_params l3 = {.theta = 500000.0f,
                             .scaling = KINFER_ROPE_SCALING_LLAMA3,
                             .factor = 8.0f,
                             .low_freq_factor = 1.0f,
                             .high_freq_factor = 4.0f,
                             .original_context = 8192};
    assert_int_equal(kinfer_rope_freqs(&l3, 128, f, &err), KINFER_OK);
    int scaled = 0, kept = 0, smooth = 0;
    for (size_t i = 0; i < 64; i++) {
        double want = hf_llama3(500000.0, 128, i, 8, 1, 4, 8192);
        double raw = 1.0 / pow(500000.0, 2.0 * i / 128);
        assert_float_equal(f[i], want, 2e-7 * want);
        scaled += fabs(want - raw / 8) < 1e-12 * raw;
        kept += fabs(want - raw) < 1e-12 * raw;
        smooth += fabs(want - raw / 8) >= 1e-12 * raw && fabs(want - raw) >= 1e-12 * raw;
    }
    assert_true(scaled > 0 && kept > 0 && smooth > 0); /* all three bands covered */
    /* refusals, each named */
    assert_int_equal(kinfer_rope_freqs(&p, 63, f, &err), KINFER_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "even"));
    assert_int_equal(kinfer_rope_freqs(&p, 0, f, &err), KINFER_ERR_INVALID_ARG);
    kinfer_rope_params bad = {.theta = -1.0f};
    assert_int_equal(kinfer_rope_freqs(&bad, 64, f, &err), KINFER_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "freq_base"));
    bad = (kinfer_rope_params){.theta = NAN};
    assert_int_equal(kinfer_rope_freqs(&bad, 64, f, &err), KINFER_ERR_INVALID_ARG);
    bad = (kinfer_rope_params){.theta = 1e4f, .scaling = KINFER_ROPE_SCALING_LINEAR, .factor = 0};
    assert_int_equal(kinfer_rope_freqs(&bad, 64, f, &err), KINFER_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "factor"));
    bad = l3;
    bad.high_freq_factor = 0.5f;
    assert_int_equal(kinfer_rope_freqs(&bad, 64, f, &err), KINFER_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "llama3"));
    bad = l3;
    bad.original_context = 0;
    assert_int_equal(kinfer_rope_freqs(&bad, 64, f, &err), KINFER_ERR_INVALID_ARG);
    bad = (kinfer_rope_params){.theta = 1e4f, .scaling = (kinfer_rope_scaling)7, .factor = 1};
    assert_int_equal(kinfer_rope_freqs(&bad, 64, f, &err), KINFER_ERR_INVALID_ARG);
}

static void test_rope_rotation(void **state) {
    (void)state;
    tl_rng rng = {12};
    static const uint32_t pos[] = {0, 1, 17, 1000, 8191};
    const size_t rows = 5;
    static const struct {
        size_t nheads, hd, nrot, ld_extra;
    } shapes[] = {{1, 2, 2, 0}, {3, 64, 64, 0}, {2, 64, 32, 5}, {4, 80, 80, 3}, {1, 6, 4, 0}};
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++)
        for (int mode = KINFER_ROPE_NORM; mode <= KINFER_ROPE_NEOX; mode++) {
            size_t nh = shapes[s].nheads, hd = shapes[s].hd, nrot = shapes[s].nrot;
            size_t ld = nh * hd + shapes[s].ld_extra, half = nrot / 2;
            float inv[128];
            kinfer_rope_params p = {.theta = 10000.0f};
            assert_int_equal(kinfer_rope_freqs(&p, nrot, inv, NULL), KINFER_OK);
            float *cs = tl_floats(&rng, rows * nrot, 1.0f);
            kinfer_rope_table_cpu(pos, rows, inv, nrot, cs);
            assert_true(tl_guard_ok(cs, rows * nrot));
            for (size_t r = 0; r < rows; r++)
                for (size_t i = 0; i < half; i++) {
                    double a = (double)pos[r] * inv[i];
                    assert_float_equal(cs[(r * half + i) * 2], cos(a), 1.2e-7);
                    assert_float_equal(cs[(r * half + i) * 2 + 1], sin(a), 1.2e-7);
                }
            float *x = tl_floats(&rng, rows * ld, 2.0f), *x0 = malloc(rows * ld * sizeof(float));
            memcpy(x0, x, rows * ld * sizeof(float));
            kinfer_rope_cpu(x, ld, rows, nh, hd, nrot, cs, (kinfer_rope_mode)mode);
            for (size_t r = 0; r < rows; r++) {
                for (size_t h = 0; h < nh; h++) {
                    const float *v0 = x0 + r * ld + h * hd;
                    const float *v = x + r * ld + h * hd;
                    for (size_t i = 0; i < half; i++) {
                        size_t ia = mode == KINFER_ROPE_NORM ? 2 * i : i;
                        size_t ib = mode == KINFER_ROPE_NORM ? 2 * i + 1 : i + half;
                        double c = cs[(r * half + i) * 2], sn = cs[(r * half + i) * 2 + 1];
                        double ra = v0[ia] * c - v0[ib] * sn, rb = v0[ia] * sn + v0[ib] * c;
                        double tol = 3e-7 * (fabs(v0[ia]) + fabs(v0[ib]));
                        assert_float_equal(v[ia], ra, tol);
                        assert_float_equal(v[ib], rb, tol);
                    }
                    for (size_t d = nrot; d < hd; d++) /* beyond n_rot: untouched */
                        assert_true(v[d] == v0[d]);
                }
                for (size_t e = nh * hd; e < ld; e++) /* the row's other columns */
                    assert_true(x[r * ld + e] == x0[r * ld + e]);
            }
            assert_true(tl_guard_ok(x, rows * ld));
            /* position 0 is the identity */
            for (size_t e = 0; e < nh * hd; e++)
                assert_float_equal(x[e], x0[e], 0.0);
            free(cs);
            free(x);
            free(x0);
        }
}

static void test_swiglu(void **state) {
    (void)state;
    tl_rng rng = {13};
    static const size_t ns[] = {1, 15, 16, 1536};
    for (size_t a = 0; a < sizeof(ns) / sizeof(ns[0]); a++)
        for (int inplace = 0; inplace < 2; inplace++) {
            size_t n = ns[a], rows = 3, ld = 2 * n;
            float *gu = tl_floats(&rng, rows * ld, 12.0f);
            float *g0 = malloc(rows * ld * sizeof(float));
            memcpy(g0, gu, rows * ld * sizeof(float));
            float *out = inplace ? gu : tl_floats(&rng, rows * n, 1.0f);
            kinfer_swiglu_cpu(gu, gu + n, ld, out, rows, n);
            for (size_t r = 0; r < rows; r++)
                for (size_t c = 0; c < n; c++) {
                    double g = g0[r * ld + c], u = g0[r * ld + n + c];
                    double ref = g / (1 + exp(-g)) * u;
                    if (fabs(out[r * n + c] - ref) > 1e-6 * fabs(ref) + 1e-30)
                        fail_msg("swiglu n=%zu [%zu,%zu]: %.9g vs %.9g", n, r, c, out[r * n + c],
                                 ref);
                }
            assert_true(tl_guard_ok(gu, rows * ld));
            if (!inplace) {
                assert_true(tl_guard_ok(out, rows * n));
                free(out);
            }
            free(gu);
            free(g0);
        }
    /* silu edges, as kinfer_hd.h documents them */
    assert_true(isnan(kinfer_silu(NAN)));
    assert_true(kinfer_silu(INFINITY) == INFINITY);
    assert_true(kinfer_silu(-INFINITY) == -INFINITY);
    assert_float_equal(kinfer_silu(0.0f), 0.0, 0.0);
    assert_float_equal(kinfer_silu(-100.0f), 0.0, 1e-30);
    assert_float_equal(kinfer_silu(100.0f), 100.0, 1e-5);
}

static void test_embed(void **state) {
    (void)state;
    tl_rng rng = {14};
    static const kinfer_qtype types[] = {KINFER_QTYPE_F32,  KINFER_QTYPE_F16,  KINFER_QTYPE_BF16,
                                         KINFER_QTYPE_Q8_0, KINFER_QTYPE_Q4_0, KINFER_QTYPE_Q4_1};
    const size_t vocab = 37, n = 96;
    const int32_t ids[] = {0, 36, 5, 5, 17};
    for (size_t ti = 0; ti < sizeof(types) / sizeof(types[0]); ti++) {
        kinfer_qtype t = types[ti];
        unsigned char *table = tl_weights(&rng, t, vocab, n);
        float *out = tl_floats(&rng, 5 * n, 1.0f);
        kinfer_error err;
        assert_int_equal(kinfer_embed_rows_cpu(table, t, vocab, n, ids, 5, out, &err), KINFER_OK);
        size_t rb = tl_row_bytes(t, n);
        for (size_t r = 0; r < 5; r++)
            for (size_t k = 0; k < n; k++)
                assert_true((double)out[r * n + k] == tl_deq(table + (size_t)ids[r] * rb, t, k));
        assert_true(tl_guard_ok(out, 5 * n));
        /* refusals: out untouched */
        float before[5 * 96];
        memcpy(before, out, sizeof(before));
        const int32_t bad1[] = {3, 37}, bad2[] = {-1};
        assert_int_equal(kinfer_embed_rows_cpu(table, t, vocab, n, bad1, 2, out, &err),
                         KINFER_ERR_INVALID_ARG);
        assert_non_null(strstr(err.msg, "37"));
        assert_int_equal(kinfer_embed_rows_cpu(table, t, vocab, n, bad2, 1, out, &err),
                         KINFER_ERR_INVALID_ARG);
        assert_non_null(strstr(err.msg, "-1"));
        if (kinfer_qtype_is_block(t)) {
            assert_int_equal(kinfer_embed_rows_cpu(table, t, vocab, 95, ids, 1, out, &err),
                             KINFER_ERR_INVALID_ARG);
            assert_non_null(strstr(err.msg, kinfer_qtype_name(t)));
        }
        assert_memory_equal(out, before, sizeof(before));
        assert_int_equal(kinfer_embed_rows_cpu(table, t, vocab, n, ids, 0, out, &err), KINFER_OK);
        free(table);
        free(out);
    }
}

static void test_argmax(void **state) {
    (void)state;
    float a[] = {1, 3, 2, 3};
    assert_int_equal(kinfer_argmax_cpu(a, 4), 1); /* first of a tie */
    float b[] = {NAN, -5, NAN, -4};
    assert_int_equal(kinfer_argmax_cpu(b, 4), 3); /* NaN never wins */
    float c[] = {NAN, NAN};
    assert_int_equal(kinfer_argmax_cpu(c, 2), 0);
    assert_int_equal(kinfer_argmax_cpu(c, 0), 0);
    float d[] = {-INFINITY, -INFINITY, INFINITY};
    assert_int_equal(kinfer_argmax_cpu(d, 3), 2);
    float e[] = {-INFINITY};
    assert_int_equal(kinfer_argmax_cpu(e, 1), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rmsnorm),       cmocka_unit_test(test_rope_freqs),
        cmocka_unit_test(test_rope_rotation), cmocka_unit_test(test_swiglu),
        cmocka_unit_test(test_embed),         cmocka_unit_test(test_argmax),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
