/* test_cuda_bert_ops.c — parity of the bert CUDA kernels (bert_layernorm.cu,
 * bert_attention.cu, bert_pool.cu) with their C twins (bert_*_cpu.c):
 * random inputs, awkward shapes (1 token, lengths not a multiple of 32,
 * head dims 32/64/96, many sequences of different lengths, a sequence
 * long enough to need the opt-in shared memory), sentinel guards on every
 * device buffer, NaN checks. Skips loudly (exit 77) without a GPU.
 *
 * Tolerance, FP32 (the kernels are FP32 only; FP16/BF16 is a GEMM operand
 * type, checked end to end in test_cuda_bert_model): |gpu - cpu| <=
 * 1e-5 * |cpu| + 1e-5 * max(max|cpu|, 1) over the tensor, i.e. 1e-5
 * relative with an absolute floor of 1e-5 (or 1e-5 of the tensor's largest
 * magnitude when that is above 1). Values here are O(1); the floor covers
 * elements that are long sums cancelling to ~0 (attention over thousands of
 * tokens), where the two sides' summation orders leave ~1e-6 absolute. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bert/bert_model.h"
#include "ops/bert_ops.h"
#include "test_cuda_util.h"
#include "test_mlp_util.h"

#ifdef KINFER_HAVE_CUDA
#include "ops/bert_attention_cuda.h"
#include "ops/bert_layernorm_cuda.h"
#include "ops/bert_pool_cuda.h"

static int g_small; /* KINFER_GPU_TEST_SMALL: memcheck is slow, trim the largest cases */

static float *randf(tu_rng *rng, size_t n, float scale, float offset) {
    float *v = malloc(n * sizeof(float) + 4);
    assert_non_null(v);
    for (size_t i = 0; i < n; i++)
        v[i] = offset + tu_uniform(rng) * scale;
    return v;
}

/* Counts elements outside the tolerance (and NaNs); prints the worst. */
static size_t compare(const char *what, const float *gpu, const float *cpu, size_t n) {
    double maxabs = 0.0, worst = 0.0;
    size_t worst_i = 0, bad = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(cpu[i]) > maxabs)
            maxabs = fabs(cpu[i]);
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)gpu[i] - cpu[i]);
        double tol = 1e-5 * fabs(cpu[i]) + 1e-5 * (maxabs > 1.0 ? maxabs : 1.0);
        if (isnan(gpu[i]) || isnan(cpu[i]) || d > tol) {
            if (bad < 3)
                fprintf(stderr, "  %s[%zu]: gpu %.9g cpu %.9g\n", what, i, gpu[i], cpu[i]);
            bad++;
        }
        if (d > worst) {
            worst = d;
            worst_i = i;
        }
    }
    fprintf(stderr, "  %-28s n=%-8zu max|d| %.3g (at %zu, max|cpu| %.3g)%s\n", what, n, worst,
            worst_i, maxabs, bad ? "  FAIL" : "");
    return bad;
}

static void up(tc_buf *b, const void *host, size_t bytes) {
    assert_int_equal(tc_alloc(b, host, bytes), 0);
}

/* Fetches a device output (checking its guards) into a fresh host array. */
static float *down(tc_buf *b, size_t n) {
    float *h = malloc(n * sizeof(float) + 4);
    assert_non_null(h);
    assert_int_equal(tc_fetch(b, h), 0);
    return h;
}

/* --- embedding + LayerNorm ------------------------------------------------- */

static size_t run_embed(size_t ntokens, size_t hidden, uint64_t seed) {
    tu_rng rng = {seed};
    const size_t vocab = 50, npos = 64, ntypes = 2;
    float *word = randf(&rng, vocab * hidden, 1.0f, 0.0f);
    float *pos = randf(&rng, npos * hidden, 0.5f, 0.0f);
    float *type = randf(&rng, ntypes * hidden, 0.1f, 0.0f);
    float *g = randf(&rng, hidden, 0.5f, 1.0f), *b = randf(&rng, hidden, 0.2f, 0.0f);
    int32_t *ids = malloc(ntokens * 3 * sizeof(int32_t));
    assert_non_null(ids);
    int32_t *pids = ids + ntokens, *tids = ids + 2 * ntokens;
    for (size_t t = 0; t < ntokens; t++) {
        ids[t] = (int32_t)(tu_next(&rng) % vocab);
        pids[t] = (int32_t)(t % npos);
        tids[t] = (int32_t)(tu_next(&rng) % ntypes);
    }
    float *cpu = malloc(ntokens * hidden * sizeof(float));
    assert_non_null(cpu);
    bert_embed_cpu(cpu, ids, pids, tids, ntokens, word, pos, type, g, b, hidden, 1e-12f);
    tc_buf dx, dids, dw, dp, dt, dg, db;
    up(&dx, NULL, ntokens * hidden * sizeof(float));
    up(&dids, ids, ntokens * 3 * sizeof(int32_t));
    up(&dw, word, vocab * hidden * sizeof(float));
    up(&dp, pos, npos * hidden * sizeof(float));
    up(&dt, type, ntypes * hidden * sizeof(float));
    up(&dg, g, hidden * sizeof(float));
    up(&db, b, hidden * sizeof(float));
    const int32_t *d_ids = tc_ptr(&dids);
    assert_int_equal(bert_embed_cuda(tc_ptr(&dx), d_ids, d_ids + ntokens, d_ids + 2 * ntokens,
                                     ntokens, tc_ptr(&dw), tc_ptr(&dp), tc_ptr(&dt), tc_ptr(&dg),
                                     tc_ptr(&db), hidden, 1e-12f, 0),
                     cudaSuccess);
    assert_int_equal(cudaDeviceSynchronize(), cudaSuccess);
    float *gpu = down(&dx, ntokens * hidden);
    char what[64];
    snprintf(what, sizeof(what), "embed T=%zu H=%zu", ntokens, hidden);
    size_t bad = compare(what, gpu, cpu, ntokens * hidden);
    tc_buf *all[] = {&dx, &dids, &dw, &dp, &dt, &dg, &db};
    for (size_t i = 0; i < 7; i++)
        tc_free(all[i]);
    free(word), free(pos), free(type), free(g), free(b), free(ids), free(cpu), free(gpu);
    return bad;
}

static void test_embed_parity(void **state) {
    (void)state;
    static const size_t shapes[][2] = {{1, 32}, {37, 384}, {300, 100}, {64, 1000}, {1, 7}};
    size_t bad = 0;
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
        bad += run_embed(shapes[i][0], shapes[i][1], 100 + i);
    assert_int_equal(bad, 0);
}

/* --- residual (+ bias) + LayerNorm ------------------------------------------ */

/* mode 0: no residual; 1: residual; 2: residual + bias. */
static size_t run_add_ln(size_t rows, size_t cols, int mode, uint64_t seed) {
    tu_rng rng = {seed};
    size_t n = rows * cols;
    float *x = randf(&rng, n, 2.0f, 0.3f), *res = randf(&rng, n, 1.0f, 0.0f);
    float *bias = randf(&rng, cols, 0.5f, 0.0f);
    float *g = randf(&rng, cols, 0.5f, 1.0f), *b = randf(&rng, cols, 0.2f, 0.0f);
    float *cpu = malloc(n * sizeof(float)), *rcpu = malloc(n * sizeof(float));
    assert_non_null(cpu);
    assert_non_null(rcpu);
    memcpy(cpu, x, n * sizeof(float));
    memcpy(rcpu, res, n * sizeof(float));
    if (mode == 2)
        bert_bias_cpu(rcpu, bias, rows, cols);
    bert_add_layernorm_cpu(cpu, mode ? rcpu : NULL, g, b, rows, cols, 1e-5f);
    tc_buf dx, dr, dbias, dg, db;
    up(&dx, x, n * sizeof(float));
    up(&dr, res, n * sizeof(float));
    up(&dbias, bias, cols * sizeof(float));
    up(&dg, g, cols * sizeof(float));
    up(&db, b, cols * sizeof(float));
    assert_int_equal(bert_add_layernorm_cuda(tc_ptr(&dx), mode ? tc_ptr(&dr) : NULL, tc_ptr(&dg),
                                             tc_ptr(&db), rows, cols, 1e-5f,
                                             mode == 2 ? tc_ptr(&dbias) : NULL, 0),
                     cudaSuccess);
    assert_int_equal(cudaDeviceSynchronize(), cudaSuccess);
    float *gpu = down(&dx, n);
    float *rgpu = down(&dr, n);
    assert_memory_equal(rgpu, res, n * sizeof(float)); /* res is not written */
    char what[64];
    snprintf(what, sizeof(what), "add_ln %zux%zu mode %d", rows, cols, mode);
    size_t bad = compare(what, gpu, cpu, n);
    tc_buf *all[] = {&dx, &dr, &dbias, &dg, &db};
    for (size_t i = 0; i < 5; i++)
        tc_free(all[i]);
    free(x), free(res), free(bias), free(g), free(b), free(cpu), free(rcpu), free(gpu), free(rgpu);
    return bad;
}

static void test_add_layernorm_parity(void **state) {
    (void)state;
    static const size_t shapes[][2] = {{1, 32}, {33, 384}, {257, 1000}, {5, 1}, {2, 4096}};
    size_t bad = 0;
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
        for (int mode = 0; mode < 3; mode++)
            bad += run_add_ln(shapes[i][0], shapes[i][1], mode, 200 + 3 * i + (size_t)mode);
    assert_int_equal(bad, 0);
}

/* --- attention --------------------------------------------------------------- */

static size_t run_attention(const uint32_t *lens, size_t nseqs, size_t hidden, size_t heads,
                            uint64_t seed) {
    tu_rng rng = {seed};
    uint32_t *start = malloc((nseqs + 1) * sizeof(uint32_t));
    assert_non_null(start);
    size_t T = 0, max_len = 0;
    for (size_t s = 0; s < nseqs; s++) {
        start[s] = (uint32_t)T;
        T += lens[s];
        if (lens[s] > max_len)
            max_len = lens[s];
    }
    start[nseqs] = (uint32_t)T;
    /* Scale 2: scores of a few units, so the softmax is far from uniform. */
    float *qkv = randf(&rng, T * 3 * hidden, 2.0f, 0.0f);
    float *cpu = calloc(T * hidden, sizeof(float));
    float *scores = malloc(max_len * max_len * sizeof(float));
    assert_non_null(cpu);
    assert_non_null(scores);
    bert_attention_cpu(qkv, cpu, start, nseqs, hidden, heads, scores);
    tc_buf dq, dc, ds;
    up(&dq, qkv, T * 3 * hidden * sizeof(float));
    up(&dc, NULL, T * hidden * sizeof(float));
    up(&ds, start, (nseqs + 1) * sizeof(uint32_t));
    assert_int_equal(bert_attention_cuda(tc_ptr(&dq), tc_ptr(&dc), tc_ptr(&ds), nseqs, hidden,
                                         heads, max_len, 0),
                     cudaSuccess);
    assert_int_equal(cudaDeviceSynchronize(), cudaSuccess);
    float *gpu = down(&dc, T * hidden);
    float *qcheck = down(&dq, T * 3 * hidden);
    assert_memory_equal(qcheck, qkv, T * 3 * hidden * sizeof(float));
    char what[96];
    snprintf(what, sizeof(what), "attn S=%zu T=%zu dh=%zu max=%zu", nseqs, T, hidden / heads,
             max_len);
    size_t bad = compare(what, gpu, cpu, T * hidden);
    tc_free(&dq), tc_free(&dc), tc_free(&ds);
    free(start), free(qkv), free(cpu), free(scores), free(gpu), free(qcheck);
    return bad;
}

static void test_attention_parity(void **state) {
    (void)state;
    size_t bad = 0;
    static const uint32_t one[] = {1};
    static const uint32_t odd[] = {37};
    static const uint32_t many[] = {5, 1, 64, 33, 128, 2, 77, 31, 32, 16, 100, 3};
    /* dh 32 (MiniLM: 384 / 12), 64 (BERT-base), 96, 8 */
    static const size_t hh[][2] = {{384, 12}, {256, 4}, {96, 1}, {64, 8}};
    for (size_t c = 0; c < 4; c++) {
        bad += run_attention(one, 1, hh[c][0], hh[c][1], 300 + c);
        bad += run_attention(odd, 1, hh[c][0], hh[c][1], 310 + c);
        bad += run_attention(many, sizeof(many) / sizeof(many[0]), hh[c][0], hh[c][1], 320 + c);
    }
    /* 512 tokens (BERT's limit); and a sequence whose shared memory
     * (4 warps x (64 + len) floats) passes the 48 KiB default. */
    static const uint32_t full[] = {512, 3};
    bad += run_attention(full, 2, 384, 6, 330);
    if (!g_small) {
        static const uint32_t huge[] = {3500};
        bad += run_attention(huge, 1, 64, 1, 331);
    }
    /* 300 one-token sequences: the packed batch of short requests. */
    uint32_t ones[300];
    for (size_t i = 0; i < 300; i++)
        ones[i] = 1 + (uint32_t)(i % 3);
    bad += run_attention(ones, 300, 128, 4, 332);
    assert_int_equal(bad, 0);
}

/* --- pooling and L2 normalisation --------------------------------------------- */

static size_t run_pool(const uint32_t *lens, size_t nseqs, size_t hidden, unsigned modes,
                       uint64_t seed) {
    tu_rng rng = {seed};
    uint32_t *start = malloc((nseqs + 1) * sizeof(uint32_t));
    assert_non_null(start);
    size_t T = 0;
    for (size_t s = 0; s < nseqs; s++) {
        start[s] = (uint32_t)T;
        T += lens[s];
    }
    start[nseqs] = (uint32_t)T;
    size_t k = (size_t)__builtin_popcount(modes);
    float *x = randf(&rng, T * hidden, 3.0f, 0.1f);
    float *cpu = malloc(nseqs * k * hidden * sizeof(float));
    assert_non_null(cpu);
    bert_pool_cpu(x, start, nseqs, hidden, modes, cpu);
    tc_buf dx, ds, dout;
    up(&dx, x, T * hidden * sizeof(float));
    up(&ds, start, (nseqs + 1) * sizeof(uint32_t));
    up(&dout, NULL, nseqs * k * hidden * sizeof(float));
    assert_int_equal(
        bert_pool_cuda(tc_ptr(&dx), tc_ptr(&ds), nseqs, hidden, modes, tc_ptr(&dout), 0),
        cudaSuccess);
    assert_int_equal(cudaDeviceSynchronize(), cudaSuccess);
    float *gpu = down(&dout, nseqs * k * hidden);
    char what[64];
    snprintf(what, sizeof(what), "pool S=%zu H=%zu modes=%u", nseqs, hidden, modes);
    size_t bad = compare(what, gpu, cpu, nseqs * k * hidden);
    tc_free(&dx), tc_free(&ds), tc_free(&dout);
    free(start), free(x), free(cpu), free(gpu);
    return bad;
}

static void test_pool_parity(void **state) {
    (void)state;
    static const uint32_t lens[] = {1, 2, 37, 128, 5, 1, 64, 33, 300};
    static const unsigned modes[] = {BERT_POOL_CLS,
                                     BERT_POOL_MAX,
                                     BERT_POOL_MEAN,
                                     BERT_POOL_MEAN_SQRT,
                                     BERT_POOL_MEAN | BERT_POOL_MEAN_SQRT,
                                     BERT_POOL_CLS | BERT_POOL_MAX | BERT_POOL_MEAN,
                                     BERT_POOL_CLS | BERT_POOL_MAX | BERT_POOL_MEAN |
                                         BERT_POOL_MEAN_SQRT};
    size_t bad = 0;
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        bad += run_pool(lens, sizeof(lens) / sizeof(lens[0]), 384, modes[i], 400 + i);
        bad += run_pool(lens, 1, 33, modes[i], 410 + i);
    }
    assert_int_equal(bad, 0);
}

static void test_l2_normalize_parity(void **state) {
    (void)state;
    tu_rng rng = {500};
    size_t bad = 0;
    static const size_t shapes[][2] = {{1, 384}, {37, 384}, {5, 1}, {3, 1152}, {64, 33}};
    for (size_t c = 0; c < sizeof(shapes) / sizeof(shapes[0]); c++) {
        size_t nrows = shapes[c][0], n = shapes[c][1];
        float *x = randf(&rng, nrows * n, 2.0f, 0.0f);
        memset(x, 0, n * sizeof(float)); /* an all-zero row stays zero (the 1e-12 floor) */
        uint8_t *flags = malloc(nrows);
        assert_non_null(flags);
        for (size_t r = 0; r < nrows; r++)
            flags[r] = (uint8_t)(r % 3 != 1);
        for (int use_flags = 0; use_flags < 2; use_flags++) {
            float *cpu = malloc(nrows * n * sizeof(float));
            assert_non_null(cpu);
            memcpy(cpu, x, nrows * n * sizeof(float));
            for (size_t r = 0; r < nrows; r++)
                if (!use_flags || flags[r])
                    bert_l2_normalize_cpu(cpu + r * n, n);
            tc_buf dx, df;
            up(&dx, x, nrows * n * sizeof(float));
            up(&df, flags, nrows);
            assert_int_equal(
                bert_l2_normalize_cuda(tc_ptr(&dx), nrows, n, use_flags ? tc_ptr(&df) : NULL, 0),
                cudaSuccess);
            assert_int_equal(cudaDeviceSynchronize(), cudaSuccess);
            float *gpu = down(&dx, nrows * n);
            char what[64];
            snprintf(what, sizeof(what), "l2 %zux%zu flags=%d", nrows, n, use_flags);
            bad += compare(what, gpu, cpu, nrows * n);
            for (size_t i = 0; i < n; i++)
                assert_true(gpu[i] == 0.0f);
            tc_free(&dx), tc_free(&df);
            free(cpu), free(gpu);
        }
        free(x), free(flags);
    }
    assert_int_equal(bad, 0);
}

/* Empty work launches nothing and reports success, on a real device too. */
static void test_zero_sizes(void **state) {
    (void)state;
    assert_int_equal(
        bert_embed_cuda(NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL, NULL, NULL, 384, 1e-12f, 0),
        cudaSuccess);
    assert_int_equal(bert_add_layernorm_cuda(NULL, NULL, NULL, NULL, 0, 384, 1e-12f, NULL, 0),
                     cudaSuccess);
    assert_int_equal(bert_attention_cuda(NULL, NULL, NULL, 0, 384, 12, 1, 0), cudaSuccess);
    assert_int_equal(bert_pool_cuda(NULL, NULL, 0, 384, BERT_POOL_MEAN, NULL, 0), cudaSuccess);
    assert_int_equal(bert_l2_normalize_cuda(NULL, 0, 384, NULL, 0), cudaSuccess);
    assert_int_equal(cudaDeviceSynchronize(), cudaSuccess);
}
#endif

int main(void) {
    int skip = tc_require_gpu("test_cuda_bert_ops");
    if (skip)
        return skip;
#ifdef KINFER_HAVE_CUDA
    const char *small = getenv("KINFER_GPU_TEST_SMALL");
    g_small = small && *small && strcmp(small, "0") != 0;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_embed_parity),        cmocka_unit_test(test_add_layernorm_parity),
        cmocka_unit_test(test_attention_parity),    cmocka_unit_test(test_pool_parity),
        cmocka_unit_test(test_l2_normalize_parity), cmocka_unit_test(test_zero_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
#else
    return TC_SKIP;
#endif
}
