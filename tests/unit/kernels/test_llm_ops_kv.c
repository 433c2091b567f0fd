/* test_llm_ops_kv.c — the paged KV cache (paged_kv.h): the block layout and
 * its byte offsets, the per-step table check (each class of bad table), the
 * K/V write (against a shadow pool the test fills from the documented
 * layout: every byte outside the written slots must keep its sentinel), and
 * causal GQA attention over several steps of several sequences (prefill
 * chunks, decode tokens, a sequence joining late, shuffled block tables)
 * against a double-precision softmax over the test's own K/V history.
 * Shapes: MHA, GQA 3, MQA with 12 query heads (more than the kernel's group
 * chunk of 8), head dims 1, 32, 64, 80, blocks of 1, 3, 5, 16 tokens; F32
 * and F16 KV; inline and on a 2-thread pool; out aliasing q.
 *
 * Tolerance: |out - ref| <= 5e-6 (V ~ U(-1, 1); the output is a convex
 * combination of V rows: the FP32 softmax with kinfer_exp_fast, ~2e-7
 * relative, over at most ~60 positions). F16 KV: the reference uses the
 * same F16-rounded K and V the pool holds, so the tolerance is the same. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/convert.h"
#include "ops/cpu_threads.h"
#include "ops/paged_kv.h"
#include "test_llm_util.h"

static void test_layout(void **state) {
    (void)state;
    kinfer_kv_layout l = {30, 3, 64, 16, KINFER_KV_F32};
    assert_int_equal(kinfer_kv_block_bytes(&l), (size_t)30 * 2 * 3 * 16 * 64 * 4);
    l.dtype = KINFER_KV_F16;
    assert_int_equal(kinfer_kv_block_bytes(&l), (size_t)30 * 2 * 3 * 16 * 64 * 2);
    assert_int_equal(kinfer_kv_elem_bytes(KINFER_KV_F32), 4);
    assert_int_equal(kinfer_kv_elem_bytes(KINFER_KV_F16), 2);
    assert_int_equal(kinfer_kv_elem_bytes(KINFER_KV_DTYPE_COUNT), 0);
    unsigned char *pool = malloc(kinfer_kv_block_bytes(&l) * 7);
    kinfer_kv_view v = kinfer_kv_layer_view(&l, pool, 7, 2);
    size_t half = (size_t)3 * 16 * 64 * 2;
    assert_true(v.base == pool + 2 * 2 * half);
    assert_int_equal(v.v_off, half);
    assert_int_equal(v.block_bytes, kinfer_kv_block_bytes(&l));
    assert_int_equal(v.nblocks, 7);
    free(pool);
    kinfer_error err;
    assert_int_equal(kinfer_kv_layout_check(&l, &err), KINFER_OK);
    static const kinfer_kv_layout bad[] = {
        {0, 3, 64, 16, KINFER_KV_F32},         {30, 0, 64, 16, KINFER_KV_F32},
        {30, 3, 0, 16, KINFER_KV_F32},         {30, 3, 64, 0, KINFER_KV_F32},
        {30, 3, 64, 257, KINFER_KV_F32},       {30, 3, 257, 16, KINFER_KV_F32},
        {30, 3, 64, 16, KINFER_KV_DTYPE_COUNT}};
    static const char *const why[] = {"n_layer",      "n_kv_head", "head_dim", "block_tokens",
                                      "block_tokens", "head_dim",  "dtype"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(kinfer_kv_layout_check(&bad[i], &err), KINFER_ERR_INVALID_ARG);
        assert_non_null(strstr(err.msg, why[i]));
        assert_int_equal(kinfer_kv_block_bytes(&bad[i]), 0);
    }
}

static void test_seqs_check(void **state) {
    (void)state;
    kinfer_kv_layout l = {2, 1, 4, 4, KINFER_KV_F32};
    unsigned char pool[1]; /* layer 0: the view is the pool itself; checks read no KV memory */
    kinfer_kv_view v = kinfer_kv_layer_view(&l, pool, 10, 0);
    uint32_t blocks[] = {3, 4, 9, 0, 1};
    kinfer_kv_seq ok[] = {{0, 5, 3, 0, 3}, {5, 1, 0, 3, 1}}; /* [0,8) in 2 of 3 blocks; [0,1) */
    kinfer_error err;
    assert_int_equal(kinfer_kv_seqs_check(&v, ok, 2, blocks, 5, 6, &err), KINFER_OK);
    struct {
        kinfer_kv_seq s[2];
        size_t nseqs, ntable, rows;
        const char *why;
    } bad[] = {
        {{{1, 5, 3, 0, 3}, {6, 1, 0, 3, 1}}, 2, 5, 7, "row"},      /* not packed from 0 */
        {{{0, 5, 3, 0, 3}, {6, 1, 0, 3, 1}}, 2, 5, 7, "row"},      /* a gap */
        {{{0, 0, 3, 0, 3}, {0, 1, 0, 3, 1}}, 2, 5, 1, "no token"}, /* empty */
        {{{0, 5, 4, 0, 2}, {5, 1, 0, 3, 1}}, 2, 5, 6, "needs 3"},  /* [0,9) in 2 blocks */
        {{{0, 5, 3, 0, 3}, {5, 1, 0, 4, 2}}, 2, 5, 6, "passes"},   /* table beyond the end */
        {{{0, 5, 3, 0, 3}, {5, 1, 0, 3, 1}}, 2, 5, 7, "feed 6"},   /* rows disagree */
        {{{0, 2, 0x7fffffff, 0, 3}, {2, 1, 0, 3, 1}}, 2, 5, 3, "2^31"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(kinfer_kv_seqs_check(&v, bad[i].s, bad[i].nseqs, blocks, bad[i].ntable,
                                              bad[i].rows, &err),
                         KINFER_ERR_INVALID_ARG);
        if (!strstr(err.msg, bad[i].why))
            fail_msg("case %zu: '%s' does not say '%s'", i, err.msg, bad[i].why);
    }
    blocks[1] = 10; /* a block outside the pool */
    assert_int_equal(kinfer_kv_seqs_check(&v, ok, 2, blocks, 5, 6, &err), KINFER_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "pool"));
    blocks[1] = 4;
    assert_int_equal(kinfer_kv_seqs_check(&v, ok, 0, blocks, 5, 0, &err), KINFER_ERR_INVALID_ARG);
}

/* ---- write + attention over steps ------------------------------------------ */

typedef struct cfg {
    uint32_t n_head, n_kv, hd, T;
    kinfer_kv_dtype dtype;
    int threads, alias;
} cfg;

#define NSEQ 3
#define NSTEP 3
#define MAXPOS 64

typedef struct world {
    cfg c;
    kinfer_kv_layout layout;
    uint32_t nblocks, nlayer;
    unsigned char *pool, *shadow;
    size_t pool_bytes;
    uint32_t table[NSEQ][MAXPOS]; /* distinct pool blocks per sequence */
    float *hk[NSEQ], *hv[NSEQ];   /* history [layer][pos][n_kv][hd], as stored */
} world;

static float stored(const world *w, float v) {
    return w->c.dtype == KINFER_KV_F16 ? kinfer_fp16_to_fp32(kinfer_fp32_to_fp16(v)) : v;
}

static void shadow_put(world *w, uint32_t layer, uint32_t block, uint32_t h, uint32_t slot,
                       int is_v, const float *src) {
    size_t elem = kinfer_kv_elem_bytes(w->c.dtype), hd = w->c.hd, T = w->c.T;
    size_t off = (size_t)block * kinfer_kv_block_bytes(&w->layout) +
                 (((size_t)layer * 2 + (size_t)is_v) * w->c.n_kv * T + h * T + slot) * hd * elem;
    for (size_t d = 0; d < hd; d++) {
        if (w->c.dtype == KINFER_KV_F32) {
            memcpy(w->shadow + off + d * 4, &src[d], 4);
        } else {
            uint16_t b = kinfer_fp32_to_fp16(src[d]);
            memcpy(w->shadow + off + d * 2, &b, 2);
        }
    }
}

static void run_world(const cfg *c) {
    tl_rng rng = {100 + c->hd * 7 + c->T};
    world w = {.c = *c, .nlayer = 2};
    w.layout = (kinfer_kv_layout){w.nlayer, c->n_kv, c->hd, c->T, c->dtype};
    assert_int_equal(kinfer_kv_layout_check(&w.layout, NULL), KINFER_OK);
    uint32_t per_seq = (MAXPOS + c->T - 1) / c->T;
    w.nblocks = per_seq * NSEQ + 3; /* spare blocks nobody owns */
    w.pool_bytes = kinfer_kv_block_bytes(&w.layout) * w.nblocks;
    w.pool = malloc(w.pool_bytes);
    w.shadow = malloc(w.pool_bytes);
    memset(w.pool, 0xA5, w.pool_bytes);
    memset(w.shadow, 0xA5, w.pool_bytes);
    /* a random permutation of the pool's blocks dealt to the sequences */
    uint32_t perm[NSEQ * MAXPOS + 3];
    for (uint32_t b = 0; b < w.nblocks; b++)
        perm[b] = b;
    for (uint32_t b = w.nblocks - 1; b > 0; b--) {
        uint32_t j = (uint32_t)(tl_next(&rng) % (b + 1)), t = perm[b];
        perm[b] = perm[j];
        perm[j] = t;
    }
    for (int s = 0; s < NSEQ; s++) {
        for (uint32_t b = 0; b < per_seq; b++)
            w.table[s][b] = perm[s * per_seq + b];
        w.hk[s] = calloc((size_t)w.nlayer * MAXPOS * c->n_kv * c->hd, sizeof(float));
        w.hv[s] = calloc((size_t)w.nlayer * MAXPOS * c->n_kv * c->hd, sizeof(float));
    }
    kinfer_threads *pool = NULL;
    if (c->threads > 1)
        assert_int_equal(kinfer_threads_new(c->threads, &pool, NULL), KINFER_OK);
    /* tokens fed per step and sequence (0: not in the step) */
    static const uint32_t feed[NSTEP][NSEQ] = {{5, 20, 0}, {1, 7, 1}, {1, 1, 30}};
    uint32_t pos[NSEQ] = {0, 0, 0};
    const size_t qw = (size_t)c->n_head * c->hd, kw = (size_t)c->n_kv * c->hd;
    const size_t ld = qw + 2 * kw + 3; /* a fused q|k|v row with padding */
    const float scale = 1.0f / sqrtf((float)c->hd);
    for (int step = 0; step < NSTEP; step++) {
        kinfer_kv_seq seqs[NSEQ];
        uint32_t flat[NSEQ * MAXPOS];
        size_t nseqs = 0, rows = 0, ntable = 0;
        int who[NSEQ];
        for (int s = 0; s < NSEQ; s++) {
            if (!feed[step][s])
                continue;
            uint32_t need = (pos[s] + feed[step][s] + c->T - 1) / c->T;
            seqs[nseqs] =
                (kinfer_kv_seq){(uint32_t)rows, feed[step][s], pos[s], (uint32_t)ntable, need};
            memcpy(flat + ntable, w.table[s], need * sizeof(uint32_t));
            ntable += need;
            who[nseqs++] = s;
            rows += feed[step][s];
        }
        for (uint32_t layer = 0; layer < w.nlayer; layer++) {
            kinfer_kv_view v = kinfer_kv_layer_view(&w.layout, w.pool, w.nblocks, layer);
            kinfer_error err;
            assert_int_equal(kinfer_kv_seqs_check(&v, seqs, nseqs, flat, ntable, rows, &err),
                             KINFER_OK);
            float *qkv = tl_floats(&rng, rows * ld, 1.0f);
            float *out = c->alias ? qkv : tl_floats(&rng, rows * qw, 1.0f);
            size_t ldo = c->alias ? ld : qw;
            float *q0 = malloc(rows * ld * sizeof(float));
            memcpy(q0, qkv, rows * ld * sizeof(float));
            kinfer_kv_write_cpu(&v, qkv + qw, qkv + qw + kw, ld, seqs, nseqs, flat);
            /* history and shadow */
            for (size_t i = 0; i < nseqs; i++) {
                int s = who[i];
                for (uint32_t t = 0; t < seqs[i].ntokens; t++) {
                    uint32_t p = seqs[i].pos + t;
                    const float *kr = q0 + (seqs[i].row + t) * ld + qw, *vr = kr + kw;
                    for (uint32_t h = 0; h < c->n_kv; h++) {
                        for (uint32_t d = 0; d < c->hd; d++) {
                            size_t hi = (((size_t)layer * MAXPOS + p) * c->n_kv + h) * c->hd + d;
                            w.hk[s][hi] = stored(&w, kr[h * c->hd + d]);
                            w.hv[s][hi] = stored(&w, vr[h * c->hd + d]);
                        }
                        shadow_put(&w, layer, w.table[s][p / c->T], h, p % c->T, 0, kr + h * c->hd);
                        shadow_put(&w, layer, w.table[s][p / c->T], h, p % c->T, 1, vr + h * c->hd);
                    }
                }
            }
            assert_memory_equal(w.pool, w.shadow, w.pool_bytes);
            kinfer_paged_attention_cpu(pool, &v, qkv, ld, out, ldo, c->n_head, seqs, nseqs, flat,
                                       scale);
            /* reference */
            size_t bad = 0;
            uint32_t grp = c->n_head / c->n_kv;
            for (size_t i = 0; i < nseqs; i++) {
                int s = who[i];
                for (uint32_t t = 0; t < seqs[i].ntokens; t++) {
                    uint32_t p = seqs[i].pos + t;
                    size_t row = seqs[i].row + t;
                    for (uint32_t h = 0; h < c->n_head; h++) {
                        uint32_t g = h / grp;
                        const float *q = q0 + row * ld + (size_t)h * c->hd;
                        double sc[MAXPOS], mx = -INFINITY, sum = 0;
                        for (uint32_t j = 0; j <= p; j++) {
                            const float *k =
                                w.hk[s] + (((size_t)layer * MAXPOS + j) * c->n_kv + g) * c->hd;
                            double dot = 0;
                            for (uint32_t d = 0; d < c->hd; d++)
                                dot += (double)q[d] * k[d];
                            sc[j] = dot * scale;
                            mx = fmax(mx, sc[j]);
                        }
                        for (uint32_t j = 0; j <= p; j++)
                            sum += (sc[j] = exp(sc[j] - mx));
                        for (uint32_t d = 0; d < c->hd; d++) {
                            double o = 0;
                            for (uint32_t j = 0; j <= p; j++)
                                o += sc[j] / sum *
                                     w.hv[s]
                                         [(((size_t)layer * MAXPOS + j) * c->n_kv + g) * c->hd + d];
                            float got = out[row * ldo + (size_t)h * c->hd + d];
                            if (!(fabs(got - o) <= 5e-6)) {
                                if (bad++ < 3)
                                    fprintf(stderr,
                                            "  step %d layer %u seq %d tok %u head %u d %u: %.8g "
                                            "vs %.8g\n",
                                            step, layer, s, t, h, d, got, o);
                            }
                        }
                    }
                }
            }
            if (bad)
                fail_msg("attention: %zu outputs off (heads %u/%u, hd %u, T %u, %s)", bad,
                         c->n_head, c->n_kv, c->hd, c->T,
                         c->dtype == KINFER_KV_F16 ? "F16" : "F32");
            if (c->alias) { /* the k|v columns and padding of q were not touched */
                for (size_t r = 0; r < rows; r++)
                    assert_memory_equal(qkv + r * ld + qw, q0 + r * ld + qw,
                                        (ld - qw) * sizeof(float));
            } else {
                assert_true(tl_guard_ok(out, rows * qw));
                free(out);
            }
            assert_true(tl_guard_ok(qkv, rows * ld));
            free(qkv);
            free(q0);
        }
        for (size_t i = 0; i < nseqs; i++)
            pos[who[i]] += seqs[i].ntokens;
    }
    kinfer_threads_destroy(pool);
    for (int s = 0; s < NSEQ; s++) {
        free(w.hk[s]);
        free(w.hv[s]);
    }
    free(w.pool);
    free(w.shadow);
}

static void test_attention(void **state) {
    (void)state;
    static const cfg cfgs[] = {
        {9, 3, 64, 16, KINFER_KV_F32, 1, 0},   {9, 3, 64, 16, KINFER_KV_F32, 2, 0},
        {8, 8, 32, 1, KINFER_KV_F32, 1, 0},    {12, 1, 80, 5, KINFER_KV_F32, 2, 1},
        {4, 2, 1, 3, KINFER_KV_F16, 1, 0},     {9, 3, 64, 16, KINFER_KV_F16, 2, 1},
        {2, 1, 256, 256, KINFER_KV_F32, 1, 0},
    };
    for (size_t i = 0; i < sizeof(cfgs) / sizeof(cfgs[0]); i++)
        run_world(&cfgs[i]);
}

/* NaN in a query gives NaN for that head only; NaN in a stored K gives NaN
 * for every head of its group at positions that see it. */
static void test_attention_nan(void **state) {
    (void)state;
    kinfer_kv_layout l = {1, 2, 4, 2, KINFER_KV_F32};
    size_t bb = kinfer_kv_block_bytes(&l);
    unsigned char *pool = calloc(4, bb);
    kinfer_kv_view v = kinfer_kv_layer_view(&l, pool, 4, 0);
    uint32_t blocks[] = {2, 0};
    kinfer_kv_seq s = {0, 3, 0, 0, 2};
    const size_t qw = 4 * 4, kw = 2 * 4;
    float q[3 * 16], k[3 * 8], val[3 * 8], out[3 * 16];
    tl_rng rng = {7};
    for (int i = 0; i < 48; i++)
        q[i] = tl_uniform(&rng);
    for (int i = 0; i < 24; i++) {
        k[i] = tl_uniform(&rng);
        val[i] = tl_uniform(&rng);
    }
    q[2 * 16 + 1 * 4 + 2] = NAN; /* token 2, head 1 */
    k[1 * 8 + 1 * 4 + 0] = NAN;  /* position 1, kv head 1 (heads 2, 3) */
    kinfer_kv_write_cpu(&v, k, val, kw, &s, 1, blocks);
    kinfer_paged_attention_cpu(NULL, &v, q, qw, out, qw, 4, &s, 1, blocks, 0.5f);
    for (int t = 0; t < 3; t++)
        for (int h = 0; h < 4; h++)
            for (int d = 0; d < 4; d++) {
                bool want_nan = (t == 2 && h == 1) || (t >= 1 && h >= 2);
                assert_true(isnan(out[t * 16 + h * 4 + d]) == want_nan);
            }
    free(pool);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_seqs_check),
        cmocka_unit_test(test_attention),
        cmocka_unit_test(test_attention_nan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
