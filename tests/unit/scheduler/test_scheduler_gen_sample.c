/* test_scheduler_gen_sample.c — the sampler (gen_sample.c): the RNG against
 * SplitMix64's published outputs, greedy and its ties, the distributions
 * that temperature, top-k, top-p and min-p leave (frequencies over fixed
 * seeds against probabilities computed here in double, within 5 sigma;
 * excluded tokens never drawn), penalties, raw log-probabilities, NaN
 * logits, and independence from the scratch's history. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gen_sample.h"

static gen_sample_params params(float temperature) {
    gen_sample_params p = {.temperature = temperature, .top_p = 1, .repetition_penalty = 1};
    return p;
}

static int32_t sample1(gen_sampler *s, const gen_sample_params *p, const float *logits,
                       const int32_t *ctx, uint32_t nprompt, uint32_t nctx, uint64_t seed,
                       uint64_t draw, gen_sample_out *out) {
    float *l = malloc(s->vocab * sizeof(float));
    memcpy(l, logits, s->vocab * sizeof(float));
    gen_sample_out o;
    gen_sample(s, p, l, ctx, nprompt, nctx, seed, draw, out ? out : &o);
    free(l);
    return out ? out->id : o.id;
}

static void test_rng_is_splitmix64(void **state) {
    (void)state;
    /* SplitMix64 seeded with 1234567: its first outputs (the reference
     * implementation's test vector), as doubles from the top 53 bits. */
    static const uint64_t want[5] = {6457827717110365317ull, 3203168211198807973ull,
                                     9817491932198370423ull, 4593380528125082431ull,
                                     16408922859458223821ull};
    for (int i = 0; i < 5; i++) {
        double u = gen_rng_uniform(1234567, (uint64_t)i);
        assert_true(u == (double)(want[i] >> 11) / 9007199254740992.0);
        assert_true(u >= 0 && u < 1);
    }
    assert_true(gen_rng_uniform(1, 0) != gen_rng_uniform(2, 0));
}

static void test_greedy_and_ties(void **state) {
    (void)state;
    gen_sampler s;
    assert_int_equal(gen_sampler_init(&s, 6), 0);
    float l[6] = {0.5f, 2.0f, -1.0f, 2.0f, 1.9f, NAN};
    gen_sample_params p = params(0);
    p.top_k = 3; /* unused when greedy */
    p.top_p = 0.1f;
    for (uint64_t d = 0; d < 10; d++)
        assert_int_equal(sample1(&s, &p, l, NULL, 0, 0, 99, d, NULL), 1); /* lowest id of a tie */
    /* top_k 1 is greedy whatever the temperature */
    p = params(1.5f);
    p.top_k = 1;
    assert_int_equal(sample1(&s, &p, l, NULL, 0, 0, 5, 0, NULL), 1);
    /* all -inf or NaN: id 0 */
    float none[6] = {-INFINITY, NAN, -INFINITY, -INFINITY, NAN, -INFINITY};
    p = params(1);
    assert_int_equal(sample1(&s, &p, none, NULL, 0, 0, 5, 0, NULL), 0);
    p = params(0);
    assert_int_equal(sample1(&s, &p, none, NULL, 0, 0, 5, 0, NULL), 0);
    gen_sampler_free(&s);
}

#define N 40000

/* Draws N tokens (draw index 0..N-1 of seed) and checks the frequencies
 * against want[] (zero = never). */
static void check_distribution(gen_sampler *s, const gen_sample_params *p, const float *logits,
                               const double *want, uint64_t seed) {
    uint32_t v = s->vocab;
    int *count = calloc(v, sizeof(int));
    for (uint64_t d = 0; d < N; d++)
        count[sample1(s, p, logits, NULL, 0, 0, seed, d, NULL)]++;
    for (uint32_t i = 0; i < v; i++) {
        if (want[i] == 0) {
            if (count[i] != 0)
                fail_msg("token %u drawn %d times, expected never", i, count[i]);
            continue;
        }
        double mean = N * want[i], sd = sqrt(N * want[i] * (1 - want[i]));
        if (fabs(count[i] - mean) > 5 * sd + 1)
            fail_msg("token %u: %d draws, expected %.1f (sd %.1f)", i, count[i], mean, sd);
    }
    free(count);
}

/* softmax(l / t) over the ids in keep (all when NULL), zero elsewhere. */
static void softmax(const float *l, uint32_t v, double t, const bool *keep, double *out) {
    double m = -INFINITY, z = 0;
    for (uint32_t i = 0; i < v; i++)
        if (!keep || keep[i])
            m = fmax(m, l[i] / t);
    for (uint32_t i = 0; i < v; i++) {
        out[i] = !keep || keep[i] ? exp(l[i] / t - m) : 0;
        z += out[i];
    }
    for (uint32_t i = 0; i < v; i++)
        out[i] /= z;
}

static const float L8[8] = {1.0f, 2.5f, 0.3f, 2.0f, -1.0f, 1.7f, 0.0f, 2.2f};

static void test_temperature(void **state) {
    (void)state;
    gen_sampler s;
    assert_int_equal(gen_sampler_init(&s, 8), 0);
    double want[8];
    float ts[3] = {1.0f, 0.5f, 1.8f};
    for (int k = 0; k < 3; k++) {
        gen_sample_params p = params(ts[k]);
        softmax(L8, 8, ts[k], NULL, want);
        check_distribution(&s, &p, L8, want, 11 + (uint64_t)k);
    }
    gen_sampler_free(&s);
}

static void test_top_k(void **state) {
    (void)state;
    gen_sampler s;
    assert_int_equal(gen_sampler_init(&s, 8), 0);
    gen_sample_params p = params(1.0f);
    p.top_k = 3; /* ids 1 (2.5), 7 (2.2), 3 (2.0) */
    bool keep[8] = {false, true, false, true, false, false, false, true};
    double want[8];
    softmax(L8, 8, 1.0, keep, want);
    check_distribution(&s, &p, L8, want, 21);
    p.top_k = 100; /* more than the vocabulary: all */
    softmax(L8, 8, 1.0, NULL, want);
    check_distribution(&s, &p, L8, want, 22);
    gen_sampler_free(&s);
}

static void test_top_p(void **state) {
    (void)state;
    gen_sampler s;
    assert_int_equal(gen_sampler_init(&s, 5), 0);
    /* probabilities 0.5, 0.2, 0.15, 0.1, 0.05 */
    float l[5] = {logf(0.2f), logf(0.05f), logf(0.5f), logf(0.1f), logf(0.15f)};
    gen_sample_params p = params(1.0f);
    p.top_p = 0.8f; /* 0.5 + 0.2 = 0.7 < 0.8: 0.15 joins */
    bool keep[5] = {true, false, true, false, true};
    double want[5];
    softmax(l, 5, 1.0, keep, want);
    check_distribution(&s, &p, l, want, 31);
    p.top_k = 2; /* then top-p of the top 2: 0.5/0.7 = 0.71 < 0.8: both */
    bool keep2[5] = {true, false, true, false, false};
    softmax(l, 5, 1.0, keep2, want);
    check_distribution(&s, &p, l, want, 32);
    gen_sampler_free(&s);

    /* A flat head over 5000 tokens: the nucleus is beyond the first 64 the
     * sampler sorts, and must still be exact. */
    uint32_t v = 5000;
    assert_int_equal(gen_sampler_init(&s, v), 0);
    float *lv = malloc(v * sizeof(float));
    for (uint32_t i = 0; i < v; i++)
        lv[i] = (float)((i * 7919u) % 1000) / 1000.0f; /* 0 .. 0.999, 5 ids each */
    p = params(1.0f);
    p.top_p = 0.5f;
    /* The nucleus by a full sort here: by logit desc, then id asc. */
    int32_t *ord = malloc(v * sizeof(int32_t));
    for (uint32_t i = 0; i < v; i++)
        ord[i] = (int32_t)i;
    for (uint32_t i = 1; i < v; i++) { /* insertion sort, fine for 5000 */
        int32_t x = ord[i];
        uint32_t j = i;
        while (j > 0 && (lv[ord[j - 1]] < lv[x] || (lv[ord[j - 1]] == lv[x] && ord[j - 1] > x))) {
            ord[j] = ord[j - 1];
            j--;
        }
        ord[j] = x;
    }
    double z = 0, cum = 0;
    for (uint32_t i = 0; i < v; i++)
        z += exp(lv[i] - 0.999);
    bool *keepv = calloc(v, sizeof(bool));
    uint32_t nkeep = 0;
    for (uint32_t i = 0; i < v && cum < 0.5 * z; i++) {
        cum += exp(lv[ord[i]] - 0.999);
        keepv[ord[i]] = true;
        nkeep++;
    }
    assert_true(nkeep > 1000);
    int *count = calloc(v, sizeof(int));
    for (uint64_t d = 0; d < 20000; d++)
        count[sample1(&s, &p, lv, NULL, 0, 0, 33, d, NULL)]++;
    uint32_t seen = 0;
    for (uint32_t i = 0; i < v; i++) {
        if (!keepv[i] && count[i])
            fail_msg("token %u outside the nucleus drawn %d times", i, count[i]);
        seen += count[i] > 0;
    }
    assert_true(seen > nkeep / 2);
    free(count);
    free(keepv);
    free(ord);
    free(lv);
    gen_sampler_free(&s);
}

static void test_min_p(void **state) {
    (void)state;
    gen_sampler s;
    assert_int_equal(gen_sampler_init(&s, 8), 0);
    gen_sample_params p = params(1.0f);
    p.min_p = 0.5f; /* keep p >= 0.5 x p(id 1): logit >= 2.5 - ln 2 = 1.807 */
    bool keep[8] = {false, true, false, true, false, false, false, true};
    double want[8];
    softmax(L8, 8, 1.0, keep, want);
    check_distribution(&s, &p, L8, want, 41);
    p.top_k = 2; /* with top-k, on the sorted head */
    bool keep2[8] = {false, true, false, false, false, false, false, true};
    softmax(L8, 8, 1.0, keep2, want);
    check_distribution(&s, &p, L8, want, 42);
    /* temperature sharpens first: at t = 0.5, 1.7 is out of reach anyway */
    p = params(0.5f);
    p.min_p = 0.3f; /* logit/t >= 5 + ln 0.3 = 3.796: 2.5, 2.2, 2.0 */
    softmax(L8, 8, 0.5, keep, want);
    check_distribution(&s, &p, L8, want, 43);
    gen_sampler_free(&s);
}

static void test_penalties(void **state) {
    (void)state;
    gen_sampler s;
    assert_int_equal(gen_sampler_init(&s, 8), 0);
    gen_sample_params p = params(0);
    /* greedy picks 1 (2.5); seen in the prompt with repetition 1.3:
     * 2.5 / 1.3 = 1.92 < 2.2 (id 7) */
    int32_t ctx[4] = {1, 4, 7, 7};
    p.repetition_penalty = 1.3f;
    assert_int_equal(sample1(&s, &p, L8, ctx, 2, 2, 0, 0, NULL), 7);
    /* id 7 also seen: 2.2 / 1.3 = 1.69 -> id 3 (2.0) */
    assert_int_equal(sample1(&s, &p, L8, ctx, 3, 3, 0, 0, NULL), 3);
    /* negative logits are multiplied: -1 x 1.3 */
    float neg[8] = {-1, -2, -3, -4, -5, -6, -7, -1.2f};
    int32_t c0 = 0;
    assert_int_equal(sample1(&s, &p, neg, &c0, 1, 1, 0, 0, NULL), 7); /* -1.3 < -1.2 */
    /* presence and frequency count the output only (after nprompt) */
    p = params(0);
    p.presence_penalty = 0.2f;
    p.frequency_penalty = 0.15f;
    int32_t out[5] = {1, 1, 1, 7, 1}; /* prompt {1}, output {1, 1, 7, 1} */
    /* 1: 2.5 - 0.2 - 3 x 0.15 = 1.85; 7: 2.2 - 0.35 = 1.85; 3: 2.0 */
    assert_int_equal(sample1(&s, &p, L8, out, 1, 5, 0, 0, NULL), 3);
    /* the prompt alone does not count */
    assert_int_equal(sample1(&s, &p, L8, out, 5, 5, 0, 0, NULL), 1);
    /* logprobs stay raw under penalties */
    p.logprobs = true;
    gen_sample_out o;
    sample1(&s, &p, L8, out, 1, 5, 0, 0, &o);
    double z = 0;
    for (int i = 0; i < 8; i++)
        z += exp(L8[i]);
    assert_float_equal(o.logprob, 2.0 - log(z), 1e-6);
    /* the scratch was reset: the same call without context gives 1 */
    p.logprobs = false;
    assert_int_equal(sample1(&s, &p, L8, NULL, 0, 0, 0, 0, NULL), 1);
    gen_sampler_free(&s);
}

static void test_logprobs(void **state) {
    (void)state;
    gen_sampler s;
    assert_int_equal(gen_sampler_init(&s, 8), 0);
    gen_sample_params p = params(0.7f);
    p.logprobs = true;
    p.top_logprobs = 3;
    double z = 0;
    for (int i = 0; i < 8; i++)
        z += exp(L8[i]);
    for (uint64_t d = 0; d < 50; d++) {
        gen_sample_out o;
        sample1(&s, &p, L8, NULL, 0, 0, 77, d, &o);
        assert_float_equal(o.logprob, L8[o.id] - log(z), 1e-6); /* raw: temperature ignored */
        assert_int_equal(o.ntop, 3);
        assert_int_equal(o.top[0].id, 1);
        assert_int_equal(o.top[1].id, 7);
        assert_int_equal(o.top[2].id, 3);
        for (int k = 0; k < 3; k++)
            assert_float_equal(o.top[k].logprob, L8[o.top[k].id] - log(z), 1e-6);
    }
    /* ties in the top list: lower id first */
    float tie[4] = {1, 3, 3, 2};
    gen_sampler t;
    assert_int_equal(gen_sampler_init(&t, 4), 0);
    p = params(0);
    p.logprobs = true;
    p.top_logprobs = 2;
    gen_sample_out o;
    sample1(&t, &p, tie, NULL, 0, 0, 0, 0, &o);
    assert_int_equal(o.id, 1);
    assert_int_equal(o.top[0].id, 1);
    assert_int_equal(o.top[1].id, 2);
    gen_sampler_free(&t);
    gen_sampler_free(&s);
}

/* A draw depends on (logits, context, seed, index) only: not on what the
 * scratch computed before, nor on other seeds. */
static void test_reproducible(void **state) {
    (void)state;
    gen_sampler a, b;
    assert_int_equal(gen_sampler_init(&a, 8), 0);
    assert_int_equal(gen_sampler_init(&b, 8), 0);
    gen_sample_params p = params(1.1f);
    p.top_k = 5;
    p.top_p = 0.9f;
    p.repetition_penalty = 1.2f;
    int32_t ctx[3] = {1, 3, 3};
    int32_t first[64];
    for (uint64_t d = 0; d < 64; d++)
        first[d] = sample1(&a, &p, L8, ctx, 1, 3, 1234, d, NULL);
    int differs = 0;
    for (uint64_t d = 0; d < 64; d++) {
        /* b does other work in between */
        sample1(&b, &p, L8, NULL, 0, 0, 99, d, NULL);
        assert_int_equal(sample1(&b, &p, L8, ctx, 1, 3, 1234, d, NULL), first[d]);
        differs += sample1(&b, &p, L8, ctx, 1, 3, 4321, d, NULL) != first[d];
    }
    assert_true(differs > 5);
    gen_sampler_free(&a);
    gen_sampler_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rng_is_splitmix64),
        cmocka_unit_test(test_greedy_and_ties),
        cmocka_unit_test(test_temperature),
        cmocka_unit_test(test_top_k),
        cmocka_unit_test(test_top_p),
        cmocka_unit_test(test_min_p),
        cmocka_unit_test(test_penalties),
        cmocka_unit_test(test_logprobs),
        cmocka_unit_test(test_reproducible),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
