/* test_bert_minilm_precision.c — kind `bert` with precision "bf16" and
 * "int8" on the CPU, on the real all-MiniLM-L6-v2 weights, against the
 * committed sentence-transformers FP32 embeddings: every corpus text, in
 * mixed batches (1..7 texts per request, 48 texts per batch) and alone.
 * Required: bf16 cosine >= 0.9995 for every text; int8 >= 0.999 for every
 * text and >= 0.9997 on average. int8 is W8A8 (dynamic per-row UINT8
 * activations, per-channel INT8 weights) in the dense layers the bert kind
 * picks by measured sensitivity, the others BF16 (bert_cpu.c, int8_slot):
 * measured worst 0.999201, mean 0.999815 (every layer INT8 gave worst
 * 0.9916: docs/benchmarks/bert.md).
 *
 * On a CPU without the instructions (or a build without oneDNN) the
 * replica runs FP32 instead: then the test checks that fallback (FP32
 * accuracy, cosine >= 0.9999) and exits 77, which ctest reports as
 * Skipped, with a loud line saying what was not tested. With
 * --expect-fallback (ctest runs it so under ONEDNN_MAX_CPU_ISA=AVX512_CORE,
 * which hides BF16/VNNI/AMX from oneDNN) the fallback is the point of the
 * run and passes with 0. With --expect-int8-only (ctest: under
 * ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI) int8 must run and bf16 fall back:
 * int8's other layers then run FP32, held to the same int8 bounds
 * (measured worst 0.999220, mean 0.999823); a CPU without VNNI skips (77). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bert_test_fixture.h"
#include "kinfer/kinfer_device.h"
#include "kinfer/kinfer_model.h"
#include "ops/dense_cpu.h"

#define MAX_ROWS 48
#define SKIP 77

static char g_dir[4096];
static minilm_ref g_ref;
static bool g_expect_fallback;
static bool g_expect_int8_only;

typedef struct prec_case {
    const char *name;
    kinfer_dtype dtype;
    double min_cos;  /* every text, when the CPU runs it */
    double min_mean; /* the corpus average, when the CPU runs it */
    bool runs;       /* kinfer_dense_resolve kept it */
    char why[160];
    double worst, sum;
    size_t count;
} prec_case;

static prec_case g_cases[] = {
    {.name = "bf16", .dtype = KINFER_DTYPE_BF16, .min_cos = 0.9995, .min_mean = 0.9999},
    {.name = "int8", .dtype = KINFER_DTYPE_INT8, .min_cos = 0.999, .min_mean = 0.9997},
};

static double cosine(const float *a, const float *b, size_t n) {
    double dot = 0, na = 0, nb = 0;
    for (size_t i = 0; i < n; i++) {
        dot += (double)a[i] * b[i];
        na += (double)a[i] * a[i];
        nb += (double)b[i] * b[i];
    }
    return dot / (sqrt(na) * sqrt(nb));
}

/* Texts [first, first + n) as requests of per_item texts in one batch;
 * returns how many vectors fell below min_cos. */
static int run_batch(prec_case *pc, kinfer_model *m, kinfer_replica *r, size_t first, size_t n,
                     size_t per_item, double min_cos) {
    kinfer_str strs[MAX_ROWS];
    kinfer_tensor tens[MAX_ROWS];
    kinfer_batch_item items[MAX_ROWS];
    size_t nitems = 0;
    for (size_t k = 0; k < n; k++)
        strs[k] = (kinfer_str){g_ref.texts[first + k], g_ref.lens[first + k]};
    for (size_t k = 0; k < n; k += per_item) {
        size_t cnt = n - k < per_item ? n - k : per_item;
        kinfer_tensor *t = &tens[nitems];
        memset(t, 0, sizeof(*t));
        t->name = (kinfer_str){"text", 4};
        t->dtype = KINFER_DTYPE_STRING;
        t->ndim = 1;
        t->shape[0] = (int64_t)cnt;
        t->strings = &strs[k];
        t->nstrings = cnt;
        kinfer_batch_item *it = &items[nitems++];
        memset(it, 0, sizeof(*it));
        it->inputs = t;
        it->ninputs = 1;
        kinfer_error err;
        assert_int_equal(kinfer_model_check_request(m, t, 1, NULL, 0, &it->cost, &err), KINFER_OK);
    }
    kinfer_error err;
    assert_int_equal(kinfer_replica_execute(r, items, nitems, &err), KINFER_OK);
    int bad = 0;
    size_t row = first;
    for (size_t i = 0; i < nitems; i++) {
        assert_int_equal(items[i].status, KINFER_OK);
        const kinfer_tensor *o = &items[i].outputs[0];
        assert_int_equal(o->shape[1], g_ref.dim);
        for (int64_t k = 0; k < o->shape[0]; k++, row++) {
            double c = cosine((const float *)o->data + k * g_ref.dim, g_ref.emb + row * g_ref.dim,
                              g_ref.dim);
            pc->worst = c < pc->worst ? c : pc->worst;
            pc->sum += c;
            pc->count++;
            if (!(c >= min_cos)) {
                fprintf(stderr, "[%s] corpus line %zu: cosine %.7f < %.4f\n", pc->name, row + 1, c,
                        min_cos);
                bad++;
            }
        }
    }
    return bad;
}

static void check_precision(prec_case *pc) {
    kinfer_model_options o = {
        .name = "minilm", .kind = "bert", .path = g_dir, .precision = pc->name, .cpu_threads = 1};
    kinfer_model *m;
    kinfer_replica *r;
    kinfer_error err;
    if (kinfer_model_load(&o, &m, &err) != KINFER_OK)
        fail_msg("load: %s", err.msg);
    assert_non_null(strstr(kinfer_model_describe(m), pc->name));
    if (kinfer_replica_new(m, "cpu", MAX_ROWS, &r, &err) != KINFER_OK)
        fail_msg("replica: %s", err.msg);
    /* The fallback computes FP32 and must be as good as FP32. */
    double min_cos = pc->runs ? pc->min_cos : 0.9999;
    double min_mean = pc->runs ? pc->min_mean : 0.99999;
    pc->worst = 1.0;
    int bad = 0;
    size_t per_item = 1;
    for (size_t first = 0; first < g_ref.n; first += MAX_ROWS, per_item = per_item % 7 + 2)
        bad += run_batch(pc, m, r, first, g_ref.n - first < MAX_ROWS ? g_ref.n - first : MAX_ROWS,
                         per_item, min_cos);
    /* Alone: the smallest batches take the kernels' remainder path. */
    for (size_t i = 0; i < g_ref.n; i += 37)
        bad += run_batch(pc, m, r, i, 1, 1, min_cos);
    double mean = pc->sum / (double)pc->count;
    fprintf(stderr,
            "%s (%s): worst cosine %.6f, mean %.6f over %zu vectors (needs >= %.4f each, "
            ">= %.5f mean)\n",
            pc->name, pc->runs ? "ran" : "FP32 fallback", pc->worst, mean, pc->count, min_cos,
            min_mean);
    if (!(mean >= min_mean))
        bad++;
    kinfer_replica_destroy(r);
    kinfer_model_destroy(m);
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

/* Unknown spellings stay a load error naming them. */
static void test_bad_precision(void **state) {
    (void)state;
    kinfer_model_options o = {.name = "minilm", .kind = "bert", .path = g_dir, .precision = "int4"};
    kinfer_model *m;
    kinfer_error err;
    assert_int_equal(kinfer_model_load(&o, &m, &err), KINFER_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "int4"));
}

static int setup(void **state) {
    (void)state;
    return minilm_dir(g_dir, sizeof(g_dir)) && minilm_ref_load(&g_ref) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    minilm_ref_free(&g_ref);
    return 0;
}

int main(int argc, char **argv) {
    g_expect_fallback = argc > 1 && strcmp(argv[1], "--expect-fallback") == 0;
    g_expect_int8_only = argc > 1 && strcmp(argv[1], "--expect-int8-only") == 0;
    size_t missing = 0;
    for (size_t i = 0; i < sizeof(g_cases) / sizeof(g_cases[0]); i++) {
        prec_case *pc = &g_cases[i];
        pc->runs = kinfer_dense_resolve(pc->dtype, pc->why, sizeof(pc->why)) == pc->dtype;
        fprintf(stderr, "precision %s: %s%s (dense kernels: %s)\n", pc->name,
                pc->runs ? "runs as asked" : "falls back to fp32: ", pc->runs ? "" : pc->why,
                kinfer_dense_isa());
        missing += !pc->runs;
    }
    if (g_expect_fallback && missing != sizeof(g_cases) / sizeof(g_cases[0])) {
        fprintf(stderr, "--expect-fallback: but oneDNN still offers a reduced precision here "
                        "(is ONEDNN_MAX_CPU_ISA set?)\n");
        return 1;
    }
    if (g_expect_int8_only) {
        if (g_cases[0].runs) {
            fprintf(stderr, "--expect-int8-only: but oneDNN still offers bf16 here "
                            "(is ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI set?)\n");
            return 1;
        }
        if (!g_cases[1].runs) {
            fprintf(stderr,
                    "\n*** %s: SKIPPED: int8 does not run here (%s), so its "
                    "INT8 + FP32 mix cannot be tested.\n",
                    argv[0], g_cases[1].why);
            return SKIP;
        }
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_int8),
        cmocka_unit_test(test_bad_precision),
    };
    int failed = cmocka_run_group_tests(tests, setup, teardown);
    if (failed || g_expect_fallback || g_expect_int8_only || missing == 0)
        return failed;
    for (size_t i = 0; i < sizeof(g_cases) / sizeof(g_cases[0]); i++)
        if (!g_cases[i].runs)
            fprintf(stderr,
                    "\n*** %s: SKIPPED precision %s: %s. Only its FP32 fallback was tested "
                    "here; run on a CPU with the instructions to test %s itself.\n",
                    argv[0], g_cases[i].name, g_cases[i].why, g_cases[i].name);
    return SKIP;
}
