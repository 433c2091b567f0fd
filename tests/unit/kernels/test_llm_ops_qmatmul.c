/* test_llm_ops_qmatmul.c — the GGUF weight types (quant.h) and the
 * quantized matrix product (qmatmul.h) against naive double references
 * built from the block layout alone (test_llm_util.h): every qtype, every
 * SIMD path this CPU runs forced in turn (and compared with the portable
 * one), both activation modes, 1 and 2 threads, awkward shapes (1, not a
 * multiple of the tile or the vector width), accumulate, NaN/Inf, sentinel
 * guards after every output, and each class of bad argument.
 *
 * Tolerances (mag = sum_k |w_k x_k|, plus sum_k |m_b x_k| for Q4_1's
 * offsets; nb = K / 32, or K / 8 for the float types):
 *   F32 mode and float types: |y - ref| <= (nb + 32) * 2^-24 * mag, the
 *     FP32 rounding of a blocked sum (per-block partials, then a running
 *     sum over blocks);
 *   Q8 mode: that plus sum_b sum_{k in b} |w_k| * d_b / 2 * 1.001, with
 *     d_b = max_{k in b} |x_k| / 127 — the exact bound of rounding each x
 *     to its 8-bit code;
 *   SIMD path vs the portable path in the same mode: 2 * (nb + 32) *
 *     2^-24 * mag (the codes are bit-identical, only summation order
 *     differs). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/cpu_isa.h"
#include "ops/cpu_threads.h"
#include "ops/qmatmul.h"
#include "ops/quant.h"
#include "test_llm_util.h"

static const kinfer_qtype all_types[] = {KINFER_QTYPE_F32,  KINFER_QTYPE_F16,  KINFER_QTYPE_BF16,
                                         KINFER_QTYPE_Q8_0, KINFER_QTYPE_Q4_0, KINFER_QTYPE_Q4_1};
#define NTYPES (sizeof(all_types) / sizeof(all_types[0]))

/* ---- quant.h ------------------------------------------------------------ */

static void test_qtype_sizes(void **state) {
    (void)state;
    static const size_t bytes[] = {4, 2, 2, 34, 18, 20}, elems[] = {1, 1, 1, 32, 32, 32};
    static const char *const names[] = {"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1"};
    for (size_t i = 0; i < NTYPES; i++) {
        kinfer_qtype t = all_types[i];
        assert_int_equal(kinfer_qtype_block_bytes(t), bytes[i]);
        assert_int_equal(kinfer_qtype_block_elems(t), elems[i]);
        assert_string_equal(kinfer_qtype_name(t), names[i]);
        size_t rb = 0;
        assert_int_equal(kinfer_qtype_row_bytes(t, 576, &rb, NULL), KINFER_OK);
        assert_int_equal(rb, 576 / elems[i] * bytes[i]);
        assert_int_equal(kinfer_qtype_row_bytes(t, 0, &rb, NULL), KINFER_OK);
        assert_int_equal(rb, 0);
    }
    assert_int_equal(kinfer_qtype_block_bytes(KINFER_QTYPE_COUNT), 0);
    assert_string_equal(kinfer_qtype_name(KINFER_QTYPE_COUNT), "?");
    /* a block type refuses a row that is not whole blocks, naming it */
    kinfer_error err;
    size_t rb = 0;
    assert_int_equal(kinfer_qtype_row_bytes(KINFER_QTYPE_Q4_1, 33, &rb, &err),
                     KINFER_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "Q4_1"));
    assert_non_null(strstr(err.msg, "33"));
    assert_int_equal(kinfer_qtype_row_bytes(KINFER_QTYPE_COUNT, 32, &rb, &err),
                     KINFER_ERR_INVALID_ARG);
}

static void test_qtype_from_ggml(void **state) {
    (void)state;
    static const struct {
        uint32_t id;
        kinfer_qtype t;
    } ok[] = {{0, KINFER_QTYPE_F32},  {1, KINFER_QTYPE_F16},  {2, KINFER_QTYPE_Q4_0},
              {3, KINFER_QTYPE_Q4_1}, {8, KINFER_QTYPE_Q8_0}, {30, KINFER_QTYPE_BF16}};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        kinfer_qtype t = KINFER_QTYPE_COUNT;
        assert_int_equal(kinfer_qtype_from_ggml(ok[i].id, "x", &t, NULL), KINFER_OK);
        assert_int_equal(t, ok[i].t);
    }
    static const struct {
        uint32_t id;
        const char *name;
    } refused[] = {{12, "Q4_K"}, {14, "Q6_K"},  {6, "Q5_0"},    {9, "Q8_1"},      {16, "IQ2_XXS"},
                   {28, "F64"},  {39, "MXFP4"}, {4, "unknown"}, {1000, "unknown"}};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        kinfer_error err;
        kinfer_qtype t = KINFER_QTYPE_COUNT;
        assert_int_equal(kinfer_qtype_from_ggml(refused[i].id, "blk.0.attn_q.weight", &t, &err),
                         KINFER_ERR_UNSUPPORTED);
        assert_int_equal(t, KINFER_QTYPE_COUNT);
        assert_non_null(strstr(err.msg, refused[i].name));
        assert_non_null(strstr(err.msg, "blk.0.attn_q.weight"));
        assert_non_null(strstr(err.msg, "supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1"));
        assert_string_equal(kinfer_ggml_type_name(refused[i].id), refused[i].name);
    }
}

static void test_dequantize_row(void **state) {
    (void)state;
    tl_rng rng = {1};
    const size_t k = 96;
    for (size_t ti = 0; ti < NTYPES; ti++) {
        kinfer_qtype t = all_types[ti];
        unsigned char *w = tl_weights(&rng, t, 1, k);
        float *out = tl_floats(&rng, k, 1.0f);
        kinfer_dequantize_row_cpu(w, t, out, k);
        for (size_t e = 0; e < k; e++)
            assert_true((double)out[e] == tl_deq(w, t, e)); /* exact */
        assert_true(tl_guard_ok(out, k));
        free(w);
        free(out);
    }
}

/* Quantize -> dequantize stays within GGML's rounding: half a step of the
 * block's scale (a whole one for Q4_0's clipped extreme; the scale itself
 * rounded to FP16). */
static void test_quantize_roundtrip(void **state) {
    (void)state;
    tl_rng rng = {2};
    const size_t k = 128;
    float *x = tl_floats(&rng, k, 3.0f), *y = tl_floats(&rng, k, 0.0f);
    x[5] = 0.0f;
    for (size_t i = 64; i < 96; i++) /* an all-zero block: d = 0 */
        x[i] = 0.0f;
    for (size_t ti = 0; ti < NTYPES; ti++) {
        kinfer_qtype t = all_types[ti];
        unsigned char *w = malloc(tl_row_bytes(t, k));
        kinfer_quantize_row_cpu(x, t, w, k);
        kinfer_dequantize_row_cpu(w, t, y, k);
        for (size_t b = 0; b < k / 32; b++) {
            float lo = INFINITY, hi = -INFINITY, amax = 0.0f;
            for (size_t i = b * 32; i < b * 32 + 32; i++) {
                lo = fminf(lo, x[i]);
                hi = fmaxf(hi, x[i]);
                amax = fmaxf(amax, fabsf(x[i]));
            }
            double step = t == KINFER_QTYPE_Q8_0   ? amax / 127.0
                          : t == KINFER_QTYPE_Q4_0 ? amax / 8.0
                          : t == KINFER_QTYPE_Q4_1 ? (hi - lo) / 15.0
                                                   : 0.0;
            for (size_t i = b * 32; i < b * 32 + 32; i++) {
                /* Q4_0's codes reach -8 d .. 7 d: the extreme of the other
                 * sign is clipped a whole step */
                double half = t == KINFER_QTYPE_Q4_0 ? 1.0 : 0.5;
                double tol = step * half * 1.01 + fabs(x[i]) * 4e-3 + 1e-7; /* FP16 d, m */
                if (t == KINFER_QTYPE_F32)
                    tol = 0.0;
                else if (t == KINFER_QTYPE_BF16)
                    tol = fabs(x[i]) * (1.0 / 256);
                else if (t == KINFER_QTYPE_F16)
                    tol = fabs(x[i]) * (1.0 / 2048);
                if (fabs((double)y[i] - x[i]) > tol)
                    fail_msg("%s: x[%zu] = %g came back as %g", kinfer_qtype_name(t), i, x[i],
                             y[i]);
            }
        }
        for (size_t i = 64; i < 96; i++)
            assert_true(y[i] == 0.0f);
        free(w);
    }
    free(x);
    free(y);
}

/* ---- qmatmul ------------------------------------------------------------- */

typedef struct ref_case {
    size_t M, N, K;
    kinfer_qtype t;
    float *x;         /* [M, K] */
    unsigned char *w; /* N rows */
    double *wd;       /* [N, K] dequantized */
    double *ref;      /* [M, N] */
    double *tol_f32;  /* [M, N] */
    double *tol_q8;   /* [M, N] */
    double *tol_pair; /* [M, N]: SIMD vs portable */
} ref_case;

static void case_make(ref_case *c, tl_rng *rng, kinfer_qtype t, size_t M, size_t N, size_t K) {
    c->M = M;
    c->N = N;
    c->K = K;
    c->t = t;
    c->x = tl_floats(rng, M * K, 2.0f);
    c->w = tl_weights(rng, t, N, K);
    c->wd = malloc((N * K + 1) * sizeof(double));
    c->ref = malloc((M * N + 1) * sizeof(double));
    c->tol_f32 = malloc((M * N + 1) * sizeof(double));
    c->tol_q8 = malloc((M * N + 1) * sizeof(double));
    c->tol_pair = malloc((M * N + 1) * sizeof(double));
    size_t rb = tl_row_bytes(t, K);
    for (size_t n = 0; n < N; n++)
        for (size_t k = 0; k < K; k++)
            c->wd[n * K + k] = tl_deq(c->w + n * rb, t, k);
    bool block = kinfer_qtype_is_block(t);
    double nb = block ? (double)K / 32 : (double)K / 8;
    for (size_t m = 0; m < M; m++)
        for (size_t n = 0; n < N; n++) {
            double s = 0, mag = 0, q8 = 0;
            for (size_t k = 0; k < K; k++) {
                double wx = c->wd[n * K + k] * c->x[m * K + k];
                s += wx;
                mag += fabs(wx);
                if (t == KINFER_QTYPE_Q4_1)
                    mag += fabs(tl_h2f(c->w + n * rb + (k / 32) * 20 + 2) * c->x[m * K + k]);
            }
            if (block)
                for (size_t b = 0; b < K / 32; b++) {
                    double amax = 0, wsum = 0;
                    for (size_t k = b * 32; k < b * 32 + 32; k++) {
                        amax = fmax(amax, fabs(c->x[m * K + k]));
                        wsum += fabs(c->wd[n * K + k]);
                    }
                    q8 += wsum * (amax / 127.0) * 0.5 * 1.001;
                }
            double fp = (nb + 32) * ldexp(1.0, -24) * mag + 1e-30;
            c->ref[m * N + n] = s;
            c->tol_f32[m * N + n] = fp;
            c->tol_q8[m * N + n] = fp + q8;
            c->tol_pair[m * N + n] = 2 * fp;
        }
}

static void case_free(ref_case *c) {
    free(c->x);
    free(c->w);
    free(c->wd);
    free(c->ref);
    free(c->tol_f32);
    free(c->tol_q8);
    free(c->tol_pair);
}

/* Runs one path/mode on the case; y gets guards. Returns y (caller frees). */
static float *run(const ref_case *c, kinfer_threads *pool, kinfer_cpu_isa isa, kinfer_qmm_act act,
                  bool accumulate, const float *y0) {
    kinfer_qmm *q = NULL;
    kinfer_error err;
    kinfer_qmm_opts o = {.isa = isa, .act = act};
    assert_int_equal(kinfer_qmm_new(pool, c->M ? c->M : 1, c->K ? c->K : 1, &o, &q, &err),
                     KINFER_OK);
    assert_int_equal(kinfer_qmm_isa(q), isa);
    float *y = malloc((c->M * c->N + TL_GUARD) * sizeof(float));
    for (size_t i = 0; i < c->M * c->N; i++)
        y[i] = y0 ? y0[i] : NAN; /* an output not written stays NaN and fails */
    for (size_t i = 0; i < TL_GUARD; i++)
        y[c->M * c->N + i] = TL_SENTINEL;
    kinfer_err rc = kinfer_qmatmul_cpu(q, c->x, c->M, c->K, c->w, c->t, c->N, y, accumulate, &err);
    if (rc != KINFER_OK)
        fail_msg("qmatmul failed: %s", err.msg);
    assert_true(tl_guard_ok(y, c->M * c->N));
    kinfer_qmm_destroy(q);
    return y;
}

static size_t compare(const char *what, const ref_case *c, const float *y, const double *ref,
                      const double *tol, const float *y0) {
    size_t bad = 0;
    for (size_t i = 0; i < c->M * c->N; i++) {
        double r = ref[i] + (y0 ? y0[i] : 0.0);
        double d = fabs((double)y[i] - r);
        if (!(d <= tol[i] + (y0 ? fabs(y0[i]) * 1.2e-7 : 0.0))) {
            if (bad < 3)
                fprintf(stderr, "  %s %s M=%zu N=%zu K=%zu [%zu]: got %.9g want %.9g (tol %.3g)\n",
                        what, kinfer_qtype_name(c->t), c->M, c->N, c->K, i, y[i], r, tol[i]);
            bad++;
        }
    }
    return bad;
}

static double *as_double(const float *y, size_t n) {
    double *d = malloc((n + 1) * sizeof(double));
    for (size_t i = 0; i < n; i++)
        d[i] = y[i];
    return d;
}

static void check_case(const ref_case *c, kinfer_threads *pool) {
    float *portable[KINFER_QMM_ACT_COUNT];
    for (int act = 0; act < KINFER_QMM_ACT_COUNT; act++) {
        portable[act] = run(c, pool, KINFER_CPU_ISA_PORTABLE, (kinfer_qmm_act)act, false, NULL);
        const double *tol =
            act == KINFER_QMM_ACT_Q8 && kinfer_qtype_is_block(c->t) ? c->tol_q8 : c->tol_f32;
        assert_int_equal(compare("portable", c, portable[act], c->ref, tol, NULL), 0);
    }
    for (int isa = KINFER_CPU_ISA_AVX2; isa < KINFER_CPU_ISA_COUNT; isa++) {
        if (!kinfer_cpu_isa_supported((kinfer_cpu_isa)isa)) {
            static int said[KINFER_CPU_ISA_COUNT];
            if (!said[isa]++)
                fprintf(stderr, "NOTE: this CPU has no %s: that path is not tested here\n",
                        kinfer_cpu_isa_name((kinfer_cpu_isa)isa));
            continue;
        }
        for (int act = 0; act < KINFER_QMM_ACT_COUNT; act++) {
            float *y = run(c, pool, (kinfer_cpu_isa)isa, (kinfer_qmm_act)act, false, NULL);
            const double *tol =
                act == KINFER_QMM_ACT_Q8 && kinfer_qtype_is_block(c->t) ? c->tol_q8 : c->tol_f32;
            assert_int_equal(
                compare(kinfer_cpu_isa_name((kinfer_cpu_isa)isa), c, y, c->ref, tol, NULL), 0);
            double *p = as_double(portable[act], c->M * c->N);
            assert_int_equal(compare("vs-portable", c, y, p, c->tol_pair, NULL), 0);
            free(p);
            /* accumulate: y0 + X W^T */
            float *y0 = tl_floats(&(tl_rng){(uint64_t)isa * 7 + (uint64_t)act}, c->M * c->N, 1.0f);
            float *ya = run(c, pool, (kinfer_cpu_isa)isa, (kinfer_qmm_act)act, true, y0);
            assert_int_equal(compare("accumulate", c, ya, c->ref, tol, y0), 0);
            free(y0);
            free(ya);
            free(y);
        }
    }
    for (int act = 0; act < KINFER_QMM_ACT_COUNT; act++)
        free(portable[act]);
}

static void test_qmatmul_shapes(void **state) {
    (void)state;
    tl_rng rng = {3};
    static const size_t Ms[] = {1, 2, 3, 4, 5, 8, 13, 32};
    static const size_t Ns[] = {1, 5, 17};
    static const size_t Kblock[] = {32, 64, 96, 160, 576};
    static const size_t Kfloat[] = {1, 7, 15, 17, 33, 576};
    for (size_t ti = 0; ti < NTYPES; ti++) {
        kinfer_qtype t = all_types[ti];
        bool block = kinfer_qtype_is_block(t);
        const size_t *Ks = block ? Kblock : Kfloat;
        size_t nk = block ? sizeof(Kblock) / sizeof(Kblock[0]) : sizeof(Kfloat) / sizeof(Kfloat[0]);
        for (size_t ki = 0; ki < nk; ki++)
            for (size_t mi = 0; mi < sizeof(Ms) / sizeof(Ms[0]); mi++)
                for (size_t ni = 0; ni < sizeof(Ns) / sizeof(Ns[0]); ni++) {
                    if (Ms[mi] > 5 && Ks[ki] != 576 && Ks[ki] != 96)
                        continue; /* keep the run short: long M only on two Ks */
                    ref_case c;
                    case_make(&c, &rng, t, Ms[mi], Ns[ni], Ks[ki]);
                    check_case(&c, NULL);
                    case_free(&c);
                }
    }
}

/* Shapes big enough for the pool: the N split (chunks of 16 rows, a last
 * partial one) and the threaded activation prep. */
static void test_qmatmul_threads(void **state) {
    (void)state;
    tl_rng rng = {4};
    kinfer_threads *pool = NULL;
    assert_int_equal(kinfer_threads_new(2, &pool, NULL), KINFER_OK);
    static const size_t shapes[][3] = {{1, 300, 576}, {8, 77, 256}, {32, 130, 128}, {40, 33, 64}};
    for (size_t ti = 0; ti < NTYPES; ti++)
        for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
            ref_case c;
            case_make(&c, &rng, all_types[ti], shapes[s][0], shapes[s][1], shapes[s][2]);
            check_case(&c, pool);
            case_free(&c);
        }
    kinfer_threads_destroy(pool);
}

/* NaN in a row of X: that row's outputs are NaN on every path and mode, the
 * other rows are finite. Inf in X: the row is Inf/NaN (never a finite
 * number). NaN in a W scale: that column is NaN. */
static void test_qmatmul_nan_inf(void **state) {
    (void)state;
    tl_rng rng = {5};
    for (size_t ti = 0; ti < NTYPES; ti++) {
        kinfer_qtype t = all_types[ti];
        ref_case c;
        case_make(&c, &rng, t, 3, 6, 64);
        c.x[0 * 64 + 40] = NAN;
        c.x[2 * 64 + 3] = INFINITY;
        if (kinfer_qtype_is_block(t)) {
            uint16_t nanh = 0x7e00; /* FP16 quiet NaN as the scale of row 4's block 1 */
            memcpy(c.w + 4 * tl_row_bytes(t, 64) + kinfer_qtype_block_bytes(t), &nanh, 2);
        }
        for (int isa = KINFER_CPU_ISA_PORTABLE; isa < KINFER_CPU_ISA_COUNT; isa++) {
            if (!kinfer_cpu_isa_supported((kinfer_cpu_isa)isa))
                continue;
            for (int act = 0; act < KINFER_QMM_ACT_COUNT; act++) {
                float *y = run(&c, NULL, (kinfer_cpu_isa)isa, (kinfer_qmm_act)act, false, NULL);
                for (size_t n = 0; n < 6; n++) {
                    assert_true(isnan(y[0 * 6 + n]));
                    assert_false(isfinite(y[2 * 6 + n]));
                    bool col_nan = kinfer_qtype_is_block(t) && n == 4;
                    if (col_nan)
                        assert_true(isnan(y[1 * 6 + n]));
                    else
                        assert_true(isfinite(y[1 * 6 + n]));
                }
                free(y);
            }
        }
        case_free(&c);
    }
}

static void test_qmatmul_errors(void **state) {
    (void)state;
    kinfer_qmm *q = NULL;
    kinfer_error err;
    assert_int_equal(kinfer_qmm_new(NULL, 0, 32, NULL, &q, &err), KINFER_ERR_INVALID_ARG);
    assert_null(q);
    assert_int_equal(kinfer_qmm_new(NULL, 4, 0, NULL, &q, &err), KINFER_ERR_INVALID_ARG);
    kinfer_qmm_opts bad_isa = {.isa = KINFER_CPU_ISA_COUNT};
    assert_int_equal(kinfer_qmm_new(NULL, 4, 32, &bad_isa, &q, &err), KINFER_ERR_INVALID_ARG);
    kinfer_qmm_opts bad_act = {.act = KINFER_QMM_ACT_COUNT};
    assert_int_equal(kinfer_qmm_new(NULL, 4, 32, &bad_act, &q, &err), KINFER_ERR_INVALID_ARG);
    for (int isa = KINFER_CPU_ISA_AVX2; isa < KINFER_CPU_ISA_COUNT; isa++)
        if (!kinfer_cpu_isa_supported((kinfer_cpu_isa)isa)) {
            kinfer_qmm_opts o = {.isa = (kinfer_cpu_isa)isa};
            assert_int_equal(kinfer_qmm_new(NULL, 4, 32, &o, &q, &err), KINFER_ERR_INVALID_ARG);
            assert_non_null(strstr(err.msg, kinfer_cpu_isa_name((kinfer_cpu_isa)isa)));
        }
    assert_int_equal(kinfer_qmm_new(NULL, 4, 64, NULL, &q, &err), KINFER_OK);
    assert_int_not_equal(kinfer_qmm_isa(q), KINFER_CPU_ISA_AUTO);
    assert_int_equal(kinfer_qmm_act_mode(q), KINFER_QMM_ACT_Q8);
    tl_rng rng = {6};
    float *x = tl_floats(&rng, 5 * 64, 1.0f), *y = tl_floats(&rng, 5 * 8, 1.0f);
    unsigned char *w = tl_weights(&rng, KINFER_QTYPE_Q4_0, 8, 64);
    float y_before[40];
    memcpy(y_before, y, sizeof(y_before));
    /* K not a multiple of 32 for a block type: refused by name, y untouched */
    assert_int_equal(kinfer_qmatmul_cpu(q, x, 2, 48, w, KINFER_QTYPE_Q4_0, 8, y, false, &err),
                     KINFER_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "Q4_0"));
    assert_int_equal(kinfer_qmatmul_cpu(q, x, 2, 63, w, KINFER_QTYPE_Q8_0, 8, y, false, &err),
                     KINFER_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "Q8_0"));
    /* beyond the context's bounds */
    assert_int_equal(kinfer_qmatmul_cpu(q, x, 5, 64, w, KINFER_QTYPE_Q4_0, 8, y, false, &err),
                     KINFER_ERR_INVALID_ARG);
    assert_int_equal(kinfer_qmatmul_cpu(q, x, 1, 96, w, KINFER_QTYPE_Q4_0, 8, y, false, &err),
                     KINFER_ERR_INVALID_ARG);
    /* invalid type, NULL operands */
    assert_int_equal(kinfer_qmatmul_cpu(q, x, 1, 64, w, KINFER_QTYPE_COUNT, 8, y, false, &err),
                     KINFER_ERR_INVALID_ARG);
    assert_int_equal(kinfer_qmatmul_cpu(q, NULL, 1, 64, w, KINFER_QTYPE_Q4_0, 8, y, false, &err),
                     KINFER_ERR_INVALID_ARG);
    assert_int_equal(kinfer_qmatmul_cpu(q, x, 1, 64, NULL, KINFER_QTYPE_Q4_0, 8, y, false, &err),
                     KINFER_ERR_INVALID_ARG);
    assert_memory_equal(y, y_before, sizeof(y_before));
    /* empty: M or N zero does nothing; K zero gives zeros (or keeps y) */
    assert_int_equal(kinfer_qmatmul_cpu(q, x, 0, 64, w, KINFER_QTYPE_Q4_0, 8, y, false, &err),
                     KINFER_OK);
    assert_int_equal(kinfer_qmatmul_cpu(q, x, 2, 64, w, KINFER_QTYPE_Q4_0, 0, y, false, &err),
                     KINFER_OK);
    assert_memory_equal(y, y_before, sizeof(y_before));
    assert_int_equal(kinfer_qmatmul_cpu(q, x, 2, 0, w, KINFER_QTYPE_Q4_0, 8, y, true, &err),
                     KINFER_OK);
    assert_memory_equal(y, y_before, sizeof(y_before));
    assert_int_equal(kinfer_qmatmul_cpu(q, x, 2, 0, w, KINFER_QTYPE_Q4_0, 8, y, false, &err),
                     KINFER_OK);
    for (size_t i = 0; i < 16; i++)
        assert_true(y[i] == 0.0f);
    assert_true(y[16] == y_before[16]);
    assert_true(tl_guard_ok(y, 40));
    kinfer_qmm_destroy(q);
    kinfer_qmm_destroy(NULL);
    free(x);
    free(y);
    free(w);
}

static void test_cpu_isa(void **state) {
    (void)state;
    assert_true(kinfer_cpu_isa_supported(KINFER_CPU_ISA_PORTABLE));
    kinfer_cpu_isa best = kinfer_cpu_isa_best();
    assert_true(best != KINFER_CPU_ISA_AUTO && kinfer_cpu_isa_supported(best));
    if (kinfer_cpu_isa_supported(KINFER_CPU_ISA_AVX512))
        assert_true(kinfer_cpu_isa_supported(KINFER_CPU_ISA_AVX2));
    assert_string_equal(kinfer_cpu_isa_name(KINFER_CPU_ISA_AVX512), "avx512");
    assert_string_equal(kinfer_cpu_isa_name(KINFER_CPU_ISA_COUNT), "?");
    assert_string_equal(kinfer_qmm_act_name(KINFER_QMM_ACT_F32), "f32");
    fprintf(stderr, "cpu: best path %s (avx2 %s, avx512 %s)\n", kinfer_cpu_isa_name(best),
            kinfer_cpu_isa_supported(KINFER_CPU_ISA_AVX2) ? "yes" : "no",
            kinfer_cpu_isa_supported(KINFER_CPU_ISA_AVX512) ? "yes" : "no");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_qtype_sizes),     cmocka_unit_test(test_qtype_from_ggml),
        cmocka_unit_test(test_dequantize_row),  cmocka_unit_test(test_quantize_roundtrip),
        cmocka_unit_test(test_cpu_isa),         cmocka_unit_test(test_qmatmul_errors),
        cmocka_unit_test(test_qmatmul_shapes),  cmocka_unit_test(test_qmatmul_threads),
        cmocka_unit_test(test_qmatmul_nan_inf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
