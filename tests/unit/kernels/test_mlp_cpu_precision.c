/* test_mlp_cpu_precision.c — kind `mlp` with precision "bf16" and "int8"
 * on the CPU, through the public model/replica seam, against the naive
 * double-precision reference of test_mlp_util.h: random models (gelu and
 * relu hidden layers, none/softmax outputs), 1 row and a full batch.
 * Required per output: |err| <= 0.5% (bf16) / 0.75% (int8) of the row's
 * largest sum of |terms| of the last layer (tu_reference's `mag`: the scale
 * rounding errors are relative to; random weights make outputs that are
 * small differences of large sums, so plain relative error would measure
 * the cancellation, not the kernels). Measured: bf16 0.00152, int8 0.00420
 * (oneDNN avx512_core_bf16, AMD EPYC). The worst ratio is printed. The model
 * description names the precision asked for.
 *
 * On a CPU without the instructions the replica runs FP32 (checked to the
 * FP32 tolerance of tu_compare) and the test exits 77 (Skipped), loudly;
 * --expect-fallback (ctest: under ONEDNN_MAX_CPU_ISA=AVX512_CORE) passes
 * when the fallback is what happens. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kinfer/kinfer_device.h"
#include "kinfer/kinfer_model.h"
#include "ops/dense_cpu.h"
#include "test_mlp_util.h"

#define SKIP 77
#define ROWS 300

static char *dir;
static bool g_expect_fallback;

typedef struct prec_case {
    const char *name;
    kinfer_dtype dtype;
    double rel_err;
    bool runs;
    double worst;
} prec_case;

static prec_case g_cases[] = {
    {"bf16", KINFER_DTYPE_BF16, 0.005, false, 0},
    {"int8", KINFER_DTYPE_INT8, 0.0075, false, 0},
};

static int check_model(prec_case *pc, const uint32_t *dims, int nlayers, const char *act,
                       const char *out_act, uint64_t seed) {
    tu_mlp ref;
    char path[600];
    snprintf(path, sizeof(path), "%s/p%llu.st", dir, (unsigned long long)seed);
    tu_mlp_random(&ref, dims, nlayers, seed, KINFER_DTYPE_FP32);
    assert_int_equal(tu_mlp_write(&ref, path, KINFER_DTYPE_FP32, act, out_act), KINFER_OK);
    kinfer_model_options o;
    memset(&o, 0, sizeof(o));
    o.name = "p";
    o.kind = "mlp";
    o.path = path;
    o.precision = pc->name;
    o.cpu_threads = 1;
    kinfer_model *m;
    kinfer_replica *r;
    kinfer_error err;
    if (kinfer_model_load(&o, &m, &err) != KINFER_OK)
        fail_msg("load: %s", err.msg);
    char want[32];
    snprintf(want, sizeof(want), "precision=%s", pc->name);
    assert_non_null(strstr(kinfer_model_describe(m), want));
    if (kinfer_replica_new(m, "cpu", ROWS, &r, &err) != KINFER_OK)
        fail_msg("replica: %s", err.msg);
    uint32_t in = dims[0], out = dims[nlayers];
    int bad = 0;
    static const size_t batches[] = {1, 9, ROWS};
    for (size_t bi = 0; bi < 3; bi++) {
        size_t rows = batches[bi];
        tu_rng g = {seed * 7 + rows};
        float *x = malloc(rows * in * sizeof(float));
        for (size_t i = 0; i < rows * in; i++)
            x[i] = tu_uniform(&g) * 2.0f;
        kinfer_tensor t;
        memset(&t, 0, sizeof(t));
        t.name = (kinfer_str){"x", 1};
        t.dtype = KINFER_DTYPE_FP32;
        t.ndim = 2;
        t.shape[0] = (int64_t)rows;
        t.shape[1] = in;
        t.data = x;
        t.nbytes = rows * in * sizeof(float);
        kinfer_batch_item it;
        memset(&it, 0, sizeof(it));
        it.inputs = &t;
        it.ninputs = 1;
        assert_int_equal(kinfer_model_check_request(m, &t, 1, NULL, 0, &it.cost, &err), KINFER_OK);
        assert_int_equal(kinfer_replica_execute(r, &it, 1, &err), KINFER_OK);
        assert_int_equal(it.status, KINFER_OK);
        const float *y = it.outputs[0].data;
        double *yr = malloc(rows * out * sizeof(double)),
               *mag = malloc(rows * out * sizeof(double));
        tu_reference(&ref, x, rows, act, out_act, yr, mag);
        if (!pc->runs) {
            /* The FP32 fallback: FP32's own tolerance. */
            bad += tu_compare(y, yr, mag, rows * out) >= 0;
        } else {
            for (size_t i = 0; i < rows && bad < 5; i++) {
                double scale = 0, emax = 0;
                for (uint32_t c = 0; c < out; c++) {
                    scale = mag[i * out + c] > scale ? mag[i * out + c] : scale;
                    double e = fabs(y[i * out + c] - yr[i * out + c]);
                    emax = e > emax ? e : emax;
                }
                double ratio = emax / (scale > 0 ? scale : 1.0);
                pc->worst = ratio > pc->worst ? ratio : pc->worst;
                if (!(ratio <= pc->rel_err)) {
                    fprintf(stderr,
                            "%s %s/%s rows=%zu row %zu: max err %.3g = %.4f of the sum "
                            "of |terms| %.3g\n",
                            pc->name, act, out_act, rows, i, emax, ratio, scale);
                    bad++;
                }
            }
        }
        free(yr);
        free(mag);
        free(x);
    }
    kinfer_replica_destroy(r);
    kinfer_model_destroy(m);
    tu_mlp_free(&ref);
    return bad;
}

static void check_precision(prec_case *pc) {
    static const uint32_t a[] = {64, 256, 256, 10};
    static const uint32_t b[] = {37, 129, 3};
    static const uint32_t c[] = {256, 512, 512, 16}; /* the engine bench's shape */
    int bad = check_model(pc, a, 3, "gelu", "softmax", 1);
    bad += check_model(pc, b, 2, "relu", "none", 2);
    bad += check_model(pc, c, 3, "relu", "none", 3);
    if (pc->runs)
        fprintf(stderr, "%s: ran; worst error %.5f of the sum of |terms| (allowed %.3f)\n",
                pc->name, pc->worst, pc->rel_err);
    else
        fprintf(stderr, "%s: FP32 fallback checked\n", pc->name);
    assert_int_equal(bad, 0);
}

static void test_bf16(void **state) {
    (void)state;
    check_precision(&g_cases[0]);
}

static void test_int8(void **state) {
    (void)state;
    check_precision(&g_cases[1]);
}

static int setup(void **state) {
    (void)state;
    dir = tu_tempdir();
    return dir ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    tu_rmdir(dir);
    return 0;
}

int main(int argc, char **argv) {
    g_expect_fallback = argc > 1 && strcmp(argv[1], "--expect-fallback") == 0;
    char why[2][160] = {"", ""};
    size_t missing = 0;
    for (size_t i = 0; i < 2; i++) {
        g_cases[i].runs =
            kinfer_dense_resolve(g_cases[i].dtype, why[i], sizeof(why[i])) == g_cases[i].dtype;
        missing += !g_cases[i].runs;
    }
    if (g_expect_fallback && missing != 2) {
        fprintf(stderr, "--expect-fallback: but a reduced precision still runs here (is "
                        "ONEDNN_MAX_CPU_ISA set?)\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_int8),
    };
    int failed = cmocka_run_group_tests(tests, setup, teardown);
    if (failed || g_expect_fallback || missing == 0)
        return failed;
    for (size_t i = 0; i < 2; i++)
        if (!g_cases[i].runs)
            fprintf(stderr,
                    "\n*** %s: SKIPPED precision %s: %s; only its FP32 fallback was "
                    "tested.\n",
                    argv[0], g_cases[i].name, why[i]);
    return SKIP;
}
