/* test_llm_tiny.c — kind llm's CPU forward on tiny random Llama models
 * (llm_tiny_model.h) against a naive double-precision forward over the same
 * weights: every weight type (F32, F16, BF16, Q8_0, Q4_0, Q4_1), tied and
 * untied heads; the paged KV cache under chunked prefill, teacher-forced
 * decode, several sequences per step with scattered block tables, and
 * block sizes from 1 to 256; and the HF directory of the same weights
 * (half-split RoPE rows) giving the GGUF file's logits.
 * Tolerance: max |logit - oracle| <= 2e-4 (logits are O(1) here; the
 * activations are exact FP32, so only FP32 rounding separates them). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kinfer/kinfer_model.h"
#include "llm_tiny_model.h"

#define TOL 2e-4

typedef struct loaded {
    kinfer_model *model;
    kinfer_replica *replica;
    kinfer_gen_info info;
} loaded;

static void load(const char *path, uint32_t block, uint32_t max_rows, uint32_t nblocks,
                 loaded *out) {
    kinfer_model_options o = {
        .name = "tiny", .kind = "llm", .path = path, .cpu_threads = 2, .kv_block_tokens = block};
    kinfer_error err;
    if (kinfer_model_load(&o, &out->model, &err) != KINFER_OK)
        fail_msg("load %s: %s", path, err.msg);
    assert_true(kinfer_model_gen_info(out->model, &out->info));
    if (kinfer_replica_new(out->model, "cpu", max_rows, &out->replica, &err) != KINFER_OK ||
        kinfer_replica_kv_alloc(out->replica, nblocks, &err) != KINFER_OK)
        fail_msg("replica: %s", err.msg);
}

static void unload(loaded *l) {
    kinfer_replica_destroy(l->replica);
    kinfer_model_destroy(l->model);
}

static double max_diff(const float *got, const double *want, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (!(d <= m)) /* NaN counts as a failure too */
            m = isnan(d) ? INFINITY : d;
    }
    return m;
}

static int32_t *random_ids(lt_rng *rng, size_t n) {
    int32_t *ids = malloc(n * sizeof(*ids));
    for (size_t i = 0; i < n; i++)
        ids[i] = (int32_t)(lt_next(rng) % TINY_VOCAB);
    return ids;
}

static char *g_dir;

static int setup(void **state) {
    (void)state;
    g_dir = lt_tempdir();
    return g_dir ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    lt_rmdir(g_dir);
    return 0;
}

/* One prompt in one step, every weight type. */
static void test_weight_types(void **state) {
    (void)state;
    static const struct {
        kinfer_qtype embd, mat, out;
        bool tied;
    } cases[] = {
        {KINFER_QTYPE_F32, KINFER_QTYPE_F32, KINFER_QTYPE_F32, true},
        {KINFER_QTYPE_F16, KINFER_QTYPE_F16, KINFER_QTYPE_F16, false},
        {KINFER_QTYPE_BF16, KINFER_QTYPE_BF16, KINFER_QTYPE_F32, false},
        {KINFER_QTYPE_Q8_0, KINFER_QTYPE_Q4_1, KINFER_QTYPE_F32, true}, /* SmolLM2's mix */
        {KINFER_QTYPE_Q8_0, KINFER_QTYPE_Q8_0, KINFER_QTYPE_Q4_0, false},
        {KINFER_QTYPE_Q4_0, KINFER_QTYPE_Q4_0, KINFER_QTYPE_Q8_0, false},
        {KINFER_QTYPE_F32, KINFER_QTYPE_Q4_1, KINFER_QTYPE_Q4_1, false},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        tiny_spec s = tiny_default();
        s.embd_type = cases[c].embd;
        s.mat_type = cases[c].mat;
        s.out_type = cases[c].out;
        s.tied = cases[c].tied;
        s.seed = 100 + c;
        tiny_model *tm = tiny_make(&s);
        char path[600];
        snprintf(path, sizeof(path), "%s/types%zu.gguf", g_dir, c);
        assert_true(tiny_write_gguf(tm, path, NULL));
        loaded l;
        load(path, 16, 64, 8, &l);
        lt_rng rng = {c};
        size_t n = 23;
        int32_t *ids = random_ids(&rng, n);
        double *want = tiny_forward(tm, ids, (uint32_t)n);
        float *logits = malloc(TINY_VOCAB * sizeof(float));
        uint32_t blocks[2] = {5, 2};
        kinfer_step_seq seq = {ids, (uint32_t)n, 0, blocks, 2, logits};
        kinfer_error err;
        if (kinfer_replica_step(l.replica, &seq, 1, &err) != KINFER_OK)
            fail_msg("step: %s", err.msg);
        double d = max_diff(logits, want + (n - 1) * TINY_VOCAB, TINY_VOCAB);
        if (d > TOL)
            fail_msg("case %zu (%s/%s/%s): max diff %g", c, kinfer_qtype_name(s.embd_type),
                     kinfer_qtype_name(s.mat_type), s.tied ? "tied" : kinfer_qtype_name(s.out_type),
                     d);
        free(logits);
        free(want);
        free(ids);
        unload(&l);
        tiny_free(tm);
    }
}

/* Chunked prefill then teacher-forced decode, for several block sizes:
 * every step's logits equal the oracle's at that position. */
static void test_paged_positions(void **state) {
    (void)state;
    tiny_spec s = tiny_default();
    s.mat_type = KINFER_QTYPE_Q8_0;
    tiny_model *tm = tiny_make(&s);
    char path[600];
    snprintf(path, sizeof(path), "%s/paged.gguf", g_dir);
    assert_true(tiny_write_gguf(tm, path, NULL));
    lt_rng rng = {77};
    size_t n = 70;
    int32_t *ids = random_ids(&rng, n);
    double *want = tiny_forward(tm, ids, (uint32_t)n);
    uint32_t blocks_t[] = {1, 4, 16, 256};
    size_t chunks[] = {1, 3, 7, 32};
    float *logits = malloc(TINY_VOCAB * sizeof(float));
    for (size_t bi = 0; bi < 4; bi++) {
        uint32_t T = blocks_t[bi];
        uint32_t need = (uint32_t)((n + T - 1) / T), pool = need * 2 + 1;
        loaded l;
        load(path, T, 32, pool, &l);
        uint32_t *table = malloc(need * sizeof(*table));
        for (uint32_t b = 0; b < need; b++)
            table[b] = pool - 1 - 2 * b; /* scattered, descending */
        size_t chunk = chunks[bi];
        size_t prefill = 41, pos = 0;
        kinfer_error err;
        while (pos < prefill) {
            size_t k = prefill - pos < chunk ? prefill - pos : chunk;
            kinfer_step_seq seq = {ids + pos, (uint32_t)k, (uint32_t)pos, table, need, logits};
            if (kinfer_replica_step(l.replica, &seq, 1, &err) != KINFER_OK)
                fail_msg("T=%u prefill: %s", T, err.msg);
            double d = max_diff(logits, want + (pos + k - 1) * TINY_VOCAB, TINY_VOCAB);
            if (d > TOL)
                fail_msg("T=%u chunk %zu at %zu: max diff %g", T, chunk, pos, d);
            pos += k;
        }
        for (; pos < n; pos++) {
            kinfer_step_seq seq = {ids + pos, 1, (uint32_t)pos, table, need, logits};
            if (kinfer_replica_step(l.replica, &seq, 1, &err) != KINFER_OK)
                fail_msg("T=%u decode: %s", T, err.msg);
            double d = max_diff(logits, want + pos * TINY_VOCAB, TINY_VOCAB);
            if (d > TOL)
                fail_msg("T=%u decode at %zu: max diff %g", T, pos, d);
        }
        free(table);
        unload(&l);
    }
    free(logits);
    free(want);
    free(ids);
    tiny_free(tm);
}

/* Several sequences per step: one decoding, one prefilling a chunk, one
 * starting, with interleaved block tables; and a prefill chunk that asks
 * for no logits. */
static void test_batched_sequences(void **state) {
    (void)state;
    tiny_spec s = tiny_default();
    s.mat_type = KINFER_QTYPE_Q4_1;
    s.embd_type = KINFER_QTYPE_Q8_0;
    tiny_model *tm = tiny_make(&s);
    char path[600];
    snprintf(path, sizeof(path), "%s/batched.gguf", g_dir);
    assert_true(tiny_write_gguf(tm, path, NULL));
    loaded l;
    uint32_t T = 4;
    load(path, T, 64, 40, &l);
    lt_rng rng = {5};
    enum { NS = 3, LEN = 30 };
    int32_t *ids[NS];
    double *want[NS];
    uint32_t table[NS][8];
    for (int q = 0; q < NS; q++) {
        ids[q] = random_ids(&rng, LEN);
        want[q] = tiny_forward(tm, ids[q], LEN);
        for (int b = 0; b < 8; b++)
            table[q][b] = (uint32_t)(b * NS + (NS - 1 - q)); /* interleaved */
    }
    float *logits[NS];
    for (int q = 0; q < NS; q++)
        logits[q] = malloc(TINY_VOCAB * sizeof(float));
    size_t pos[NS] = {0, 0, 0};
    /* schedule: seq 0 prefills 10 at once, seq 1 in chunks of 4, seq 2
     * joins later; then everyone decodes one token per step */
    kinfer_error err;
    for (int step = 0; step < 40; step++) {
        kinfer_step_seq seqs[NS];
        int which[NS];
        size_t n = 0, fed[NS] = {0};
        for (int q = 0; q < NS; q++) {
            if (pos[q] >= LEN || (q == 2 && step < 3))
                continue;
            size_t k = q == 0 ? (pos[0] == 0 ? 10 : 1) : q == 1 ? (pos[1] < 20 ? 4 : 1) : 1;
            if (k > LEN - pos[q])
                k = LEN - pos[q];
            bool want_logits = !(q == 1 && pos[1] == 4); /* a middle chunk without logits */
            which[n] = q;
            seqs[n++] =
                (kinfer_step_seq){ids[q] + pos[q], (uint32_t)k, (uint32_t)pos[q],
                                  table[q],        8,           want_logits ? logits[q] : NULL};
            fed[q] = k;
        }
        if (n == 0)
            break;
        for (int q = 0; q < NS; q++)
            if (fed[q])
                memset(logits[q], 0xff, TINY_VOCAB * sizeof(float)); /* NaN sentinel */
        if (kinfer_replica_step(l.replica, seqs, n, &err) != KINFER_OK)
            fail_msg("step %d: %s", step, err.msg);
        for (size_t i = 0; i < n; i++) {
            int q = which[i];
            size_t last = pos[q] + seqs[i].ntokens - 1;
            if (seqs[i].logits) {
                double d = max_diff(logits[q], want[q] + last * TINY_VOCAB, TINY_VOCAB);
                if (d > TOL)
                    fail_msg("step %d seq %d at %zu: max diff %g", step, q, last, d);
            } else {
                assert_true(isnan(logits[q][0])); /* untouched */
            }
        }
        for (int q = 0; q < NS; q++)
            pos[q] += fed[q];
    }
    for (int q = 0; q < NS; q++) {
        assert_int_equal(pos[q], LEN);
        free(ids[q]);
        free(want[q]);
        free(logits[q]);
    }
    unload(&l);
    tiny_free(tm);
}

/* The same weights as an HF directory (half-split RoPE rows, NEOX mode)
 * give the GGUF file's logits; the tokenizers agree too. */
static void test_hf_equals_gguf(void **state) {
    (void)state;
    for (int tied = 0; tied < 2; tied++) {
        tiny_spec s = tiny_default();
        s.tied = tied;
        s.seed = 9 + tied;
        tiny_model *tm = tiny_make(&s);
        char gpath[600], hdir[600];
        snprintf(gpath, sizeof(gpath), "%s/eq%d.gguf", g_dir, tied);
        snprintf(hdir, sizeof(hdir), "%s/hf%d", g_dir, tied);
        char cmd[700];
        snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", hdir);
        assert_int_equal(system(cmd), 0);
        assert_true(tiny_write_gguf(tm, gpath, NULL));
        assert_true(tiny_write_hf(tm, hdir));
        loaded a, b;
        load(gpath, 16, 64, 8, &a);
        load(hdir, 16, 64, 8, &b);
        assert_string_equal(kinfer_model_describe(b.model),
                            tied ? "llm llama 2L d64 4/2 heads f32 ctx 256 vocab 259"
                                 : "llm llama 2L d64 4/2 heads f32 ctx 256 vocab 259 untied");
        /* generation_config's list adds <|endoftext|> (also a known EOG text) */
        assert_int_equal(b.info.neog, 2);
        assert_int_equal(b.info.eog_ids[0], TINY_IM_END);
        assert_int_equal(b.info.eog_ids[1], TINY_EOT);
        assert_int_equal(b.info.bos_id, TINY_IM_START);
        lt_rng rng = {3};
        size_t n = 33;
        int32_t *ids = random_ids(&rng, n);
        double *want = tiny_forward(tm, ids, (uint32_t)n);
        float *la = malloc(TINY_VOCAB * sizeof(float)), *lb = malloc(TINY_VOCAB * sizeof(float));
        uint32_t blocks[3] = {0, 1, 2};
        kinfer_step_seq sa = {ids, (uint32_t)n, 0, blocks, 3, la}, sb = sa;
        sb.logits = lb;
        kinfer_error err;
        assert_int_equal(kinfer_replica_step(a.replica, &sa, 1, &err), KINFER_OK);
        assert_int_equal(kinfer_replica_step(b.replica, &sb, 1, &err), KINFER_OK);
        double dab = 0;
        for (int i = 0; i < TINY_VOCAB; i++)
            dab = fmax(dab, fabs((double)la[i] - lb[i]));
        assert_true(dab <= 1e-5);
        assert_true(max_diff(lb, want + (n - 1) * TINY_VOCAB, TINY_VOCAB) <= TOL);
        /* chat prompts tokenize the same through both templates/tokenizers */
        kinfer_chat_message msg = {{"user", 4}, {"hi 42 <|im_end|>", 16}};
        int32_t *ta, *tb;
        size_t na, nb;
        if (kinfer_model_gen_tokenize(a.model, (kinfer_str){0}, &msg, 1, &ta, &na, &err))
            fail_msg("tokenize (gguf): %s", err.msg);
        if (kinfer_model_gen_tokenize(b.model, (kinfer_str){0}, &msg, 1, &tb, &nb, &err))
            fail_msg("tokenize (hf): %s", err.msg);
        assert_int_equal(na, nb);
        assert_memory_equal(ta, tb, na * sizeof(int32_t));
        assert_int_equal(ta[0], TINY_IM_START);
        size_t ends = 0;
        for (size_t i = 0; i < na; i++)
            ends += ta[i] == TINY_IM_END;
        assert_int_equal(ends, 1); /* the one in the content stayed text */
        free(ta);
        free(tb);
        free(la);
        free(lb);
        free(want);
        free(ids);
        unload(&a);
        unload(&b);
        tiny_free(tm);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_weight_types),
        cmocka_unit_test(test_paged_positions),
        cmocka_unit_test(test_batched_sequences),
        cmocka_unit_test(test_hf_equals_gguf),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
