/* test_scheduler_tokens.c — token-budget batching of text models, driven
 * step by step in manual mode with a fake clock and the fake model in its
 * per-length text mode: the padded-token budget at its boundary, oversize
 * requests, length grouping against plain EDF on the same workload (padded
 * token counts, not time), the head always in its batch, urgent requests
 * not held back by grouping, and the latency estimate keyed by tokens. */
#include "sched_test_util.h"

#define NREQ 256

/* The shared defaults (sched_test_util.h) for text model "t": no token
 * budget unless a test sets one, fake compute 1000 us + 1 us per padded
 * token, lengths from x1. */
static env *env_alloc(void) {
    env *e = env_alloc_n("t", NREQ);
    e->fake.exec_per_token_us = 1;
    e->fake.len_from_x1 = true;
    return e;
}

/* Request id: `rows` rows of `len` tokens each. */
static kinfer_err submit(env *e, size_t id, uint32_t rows, uint32_t len, int64_t deadline,
                         int32_t prio) {
    fake_req_fill(&e->reqs[id], id, rows);
    e->reqs[id].completions = 0; /* ids are reused once completed */
    for (uint32_t k = 0; k < rows; k++)
        e->reqs[id].x[2 * k + 1] = (float)len;
    kinfer_engine_request q = fake_request("t", &e->reqs[id], id, deadline, prio);
    return kinfer_engine_submit(e->engine, &q, &e->err);
}

/* Steps until every one of n requests has completed (the delay trigger
 * fires at every step once the clock is 1 s on). Returns the batches. */
static int run_all(env *e, int n) {
    fake_clock_set(&e->clock, now(e) + 1000000);
    int batches = 0;
    while (e->sink.total < n) {
        size_t ran = env_step(e);
        assert_true(ran > 0);
        batches += (int)ran;
        assert_true(batches <= n);
    }
    return batches;
}

static void test_budget_boundary(void **state) {
    (void)state;
    env *e = env_alloc();
    e->mc.max_batch_size = 32;
    e->mc.max_batch_tokens = 64;
    env_start(e);
    /* a single request of exactly the budget is accepted; one token more
     * per batch (8 rows x 9) is refused, naming the limit */
    assert_int_equal(submit(e, 0, 8, 9, 0, 0), KINFER_ERR_INVALID_REQUEST);
    assert_non_null(strstr(e->err.msg, "max_batch_tokens 64"));
    assert_non_null(strstr(e->err.msg, "72 padded tokens"));
    assert_int_equal(kinfer_engine_in_flight(e->engine), 0);

    /* 7 x len 8 = 56 tokens queued: not full yet */
    for (size_t i = 2; i < 9; i++)
        assert_int_equal(submit(e, i, 1, 8, 0, 0), KINFER_OK);
    assert_int_equal(env_step(e), 0);
    /* the 8th makes 64 = budget: full, one batch of exactly 64 padded */
    assert_int_equal(submit(e, 9, 1, 8, 0, 0), KINFER_OK);
    /* a 9th of the same length would pass the budget by 8 tokens */
    assert_int_equal(submit(e, 10, 1, 8, 0, 0), KINFER_OK);
    assert_int_equal(env_step(e), 1);
    assert_int_equal(e->fake.nbatches, 1);
    assert_int_equal(e->fake.batch_padded[0], 64);
    assert_int_equal(e->fake.batch_sizes[0], 8);
    assert_int_equal(e->reqs[10].completions, 0);

    /* padding counts, not the sum: 7 x len 8 plus one of len 9 would be
     * 56 + 9 = 65 tokens of text but 8 x 9 = 72 padded > 64 */
    for (size_t i = 11; i < 17; i++)
        assert_int_equal(submit(e, i, 1, 8, 0, 0), KINFER_OK);
    assert_int_equal(submit(e, 17, 1, 9, 0, 0), KINFER_OK);
    fake_clock_set(&e->clock, now(e) + 1000000);
    assert_int_equal(env_step(e), 1);
    assert_int_equal(e->fake.batch_padded[1], 56); /* 10..16: 7 x 8; 17 waits */
    assert_int_equal(e->reqs[16].batch_size, 7);
    assert_int_equal(e->reqs[17].completions, 0);

    /* the request of exactly the budget runs, alone */
    assert_int_equal(submit(e, 18, 8, 8, 0, 0), KINFER_OK);
    run_all(e, 17);
    for (int b = 0; b < e->fake.nbatches; b++)
        assert_true(e->fake.batch_padded[b] <= 64);
    assert_int_equal(e->reqs[18].status, KINFER_OK);
    assert_int_equal(e->reqs[18].batch_size, 1);
    assert_int_equal(e->reqs[17].status, KINFER_OK);
    env_free(e);

    /* Plain EDF stops at the request that would pass the padded budget even
     * where the sum of tokens would not: 6 x 8 then one of 10 is 58 tokens
     * of text, 7 x 10 = 70 padded > 64. */
    e = env_alloc();
    e->opts.no_length_grouping = true;
    e->mc.max_batch_size = 32;
    e->mc.max_batch_tokens = 64;
    env_start(e);
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(submit(e, i, 1, 8, 0, 0), KINFER_OK);
    assert_int_equal(submit(e, 6, 1, 10, 0, 0), KINFER_OK);
    assert_int_equal(submit(e, 7, 1, 2, 0, 0), KINFER_OK);
    run_all(e, 8);
    assert_int_equal(e->fake.nbatches, 2);
    assert_int_equal(e->fake.batch_sizes[0], 6);
    assert_int_equal(e->fake.batch_padded[0], 48);
    assert_int_equal(e->fake.batch_padded[1], 20); /* 10 and 2, padded to 10 */
    env_free(e);
}

/* The fixed workload: 48 one-row requests, lengths cycling 8, 64, 7, 60
 * (short and long interleaved in arrival order), no deadlines. Returns the
 * padded tokens of all its batches. */
static uint64_t mixed_workload(bool grouping, uint32_t budget, int *batches) {
    env *e = env_alloc();
    e->opts.no_length_grouping = !grouping;
    e->mc.max_batch_tokens = budget;
    env_start(e);
    static const uint32_t lens[4] = {8, 64, 7, 60};
    for (size_t i = 0; i < 48; i++)
        assert_int_equal(submit(e, i, 1, lens[i % 4], 0, 0), KINFER_OK);
    *batches = run_all(e, 48);
    for (size_t i = 0; i < 48; i++) {
        assert_int_equal(e->reqs[i].completions, 1);
        assert_int_equal(e->reqs[i].status, KINFER_OK);
        assert_true(e->reqs[i].y0 == (float)i + (float)lens[i % 4]);
    }
    uint64_t padded = e->fake.padded_total;
    for (int b = 0; b < e->fake.nbatches && budget; b++)
        assert_true(e->fake.batch_padded[b] <= budget);
    env_free(e);
    return padded;
}

static void test_grouping_cuts_padding(void **state) {
    (void)state;
    int edf_batches, grouped_batches;
    /* Plain EDF: 6 batches of 8 in arrival order, each padded to 64. */
    uint64_t edf = mixed_workload(false, 0, &edf_batches);
    assert_int_equal(edf_batches, 6);
    assert_int_equal(edf, 6 * 8 * 64);
    /* Grouped, batch by batch (head = oldest left): 8 x len 8; 8 x 64;
     * 8 x 7; 8 x 60; the last four 8s with the four 7s (a 7 joining 8s adds
     * 8 padded tokens of which 7 are its own), padded 8 x 8; the last four
     * 64s with the four 60s, 8 x 64. Same number of batches. */
    uint64_t grouped = mixed_workload(true, 0, &grouped_batches);
    assert_int_equal(grouped_batches, 6);
    assert_int_equal(grouped, 64 + 512 + 56 + 480 + 64 + 512);
    assert_true(grouped < edf);
    /* Under a budget of 256 tokens plain EDF fits 4 rows (one of them long)
     * per batch: 12 batches of 256. Grouping packs 8 short rows per batch,
     * so it needs fewer batches as well as fewer tokens. */
    uint64_t edf_b = mixed_workload(false, 256, &edf_batches);
    uint64_t grouped_b = mixed_workload(true, 256, &grouped_batches);
    assert_int_equal(edf_batches, 12);
    assert_int_equal(edf_b, 12 * 256);
    assert_true(grouped_b < edf_b);
    assert_true(grouped_batches < edf_batches);
    print_message("padded tokens: EDF %llu, grouped %llu; budget 256: EDF %llu in %d batches, "
                  "grouped %llu in %d\n",
                  (unsigned long long)edf, (unsigned long long)grouped, (unsigned long long)edf_b,
                  edf_batches, (unsigned long long)grouped_b, grouped_batches);
}

/* Lengths spread evenly over 8..127 (a fixed permutation), batch 32,
 * budget 2048: grouping cuts padding by a third or more while costing at
 * most a quarter more batches than plain EDF. */
static uint64_t spread_workload(bool grouping, int *batches) {
    env *e = env_alloc();
    e->opts.no_length_grouping = !grouping;
    e->mc.max_batch_size = 32;
    e->mc.max_batch_tokens = 2048;
    env_start(e);
    for (size_t i = 0; i < 240; i++)
        assert_int_equal(submit(e, i, 1, 8 + (uint32_t)(i * 37 % 120), 0, 0), KINFER_OK);
    *batches = run_all(e, 240);
    uint64_t padded = e->fake.padded_total;
    env_free(e);
    return padded;
}

static void test_grouping_keeps_batches_full(void **state) {
    (void)state;
    int edf_batches, grouped_batches;
    uint64_t edf = spread_workload(false, &edf_batches);
    uint64_t grouped = spread_workload(true, &grouped_batches);
    print_message("spread lengths: EDF %llu padded in %d batches, grouped %llu in %d\n",
                  (unsigned long long)edf, edf_batches, (unsigned long long)grouped,
                  grouped_batches);
    assert_true(grouped * 3 <= edf * 2);
    assert_true(grouped_batches * 4 <= edf_batches * 5);
}

/* Random lengths, deadlines and priorities; before each step the test
 * works out the EDF head of what is still queued, and after it checks that
 * the head was in the batch. */
static void test_head_always_in_batch(void **state) {
    (void)state;
    env *e = env_alloc();
    e->mc.max_batch_tokens = 200;
    env_start(e);
    srand(11);
    enum { N = 200 };
    int64_t deadline[N];
    int32_t prio[N];
    for (size_t i = 0; i < N; i++) {
        uint32_t len = 1 + (uint32_t)(rand() % 50);
        uint32_t rows = 1 + (uint32_t)(rand() % 3);
        /* far enough that nothing expires and few are urgent */
        deadline[i] = rand() % 3 ? T0 + 100000000 + (rand() % 50) * 1000000 : 0;
        prio[i] = rand() % 3;
        assert_int_equal(submit(e, i, rows, len, deadline[i], prio[i]), KINFER_OK);
    }
    fake_clock_set(&e->clock, T0 + 1000000);
    int steps = 0;
    while (e->sink.total < N) {
        size_t head = N;
        for (size_t i = 0; i < N; i++) {
            if (e->reqs[i].completions)
                continue;
            int64_t di = deadline[i] ? deadline[i] : INT64_MAX;
            int64_t dh = head < N && deadline[head] ? deadline[head] : INT64_MAX;
            if (head == N || di < dh || (di == dh && prio[i] > prio[head]))
                head = i; /* ties on both: the lower id arrived first */
        }
        int before = e->fake.nbatches;
        assert_int_equal(env_step(e), 1);
        assert_int_equal(e->fake.nbatches, before + 1);
        assert_int_equal(e->reqs[head].completions, 1);
        assert_int_equal(e->reqs[head].status, KINFER_OK);
        assert_true(e->fake.batch_padded[before] <= 200);
        assert_true(++steps <= N);
    }
    env_free(e);
}

/* Head short; a long request right behind it in EDF order. When waiting for
 * the next batch would miss its deadline it joins the short head despite
 * its length; when it has time, grouping leaves it for later. */
static void test_urgent_request_not_held_back(void **state) {
    (void)state;
    for (int urgent = 0; urgent <= 1; urgent++) {
        env *e = env_alloc();
        e->mc.max_queue_delay_us = 0; /* dispatch at once */
        env_start(e);
        /* estimate: the 5000 us prior; urgent before now + 100 + 2 x 5000 */
        int64_t d_long = urgent ? T0 + 9000 : T0 + 60000000;
        assert_int_equal(submit(e, 0, 1, 8, T0 + 8000, 0), KINFER_OK); /* head */
        assert_int_equal(submit(e, 1, 1, 128, d_long, 0), KINFER_OK);
        for (size_t i = 2; i < 8; i++)
            assert_int_equal(submit(e, i, 1, 8, 0, 0), KINFER_OK);
        assert_int_equal(env_step(e), 1);
        assert_int_equal(e->reqs[0].completions, 1);
        if (urgent) {
            /* in the first batch with the head, and in time */
            assert_int_equal(e->reqs[1].completions, 1);
            assert_int_equal(e->reqs[1].status, KINFER_OK);
            assert_true(e->reqs[1].completed_at <= d_long);
            assert_int_equal(e->reqs[1].batch_size, 2);
        } else {
            /* grouped: the short ones went with the head */
            assert_int_equal(e->reqs[1].completions, 0);
            assert_int_equal(e->reqs[0].batch_size, 7);
            assert_int_equal(e->fake.batch_padded[0], 7 * 8);
            assert_int_equal(env_step(e), 1);
            assert_int_equal(e->reqs[1].status, KINFER_OK);
        }
        env_free(e);
    }
}

/* The estimator learns and answers in padded tokens for a text model:
 * two batches with the same rows but different lengths land in different
 * buckets at their token counts, with their own times. */
static void test_estimate_keyed_by_tokens(void **state) {
    (void)state;
    env *e = env_alloc();
    e->mc.max_batch_tokens = 1024;
    env_start(e);
    /* batch 1: 4 rows x 8 = 32 tokens, 1032 us; batch 2: 4 rows x 128 =
     * 512 tokens, 1512 us */
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(submit(e, i, 1, 8, 0, 0), KINFER_OK);
    run_all(e, 4);
    for (size_t i = 4; i < 8; i++)
        assert_int_equal(submit(e, i, 1, 128, 0, 0), KINFER_OK);
    run_all(e, 8);
    const sched_latency *lat = &e->engine->models[0].latency;
    assert_int_equal(sched_latency_samples(lat), 2);
    assert_int_equal(lat->bucket[5].samples, 1); /* [32, 64) */
    assert_true(lat->bucket[5].units == 32.0 && lat->bucket[5].mean_us == 1032.0);
    assert_int_equal(lat->bucket[9].samples, 1); /* [512, 1024) */
    assert_true(lat->bucket[9].units == 512.0 && lat->bucket[9].mean_us == 1512.0);
    assert_int_equal(lat->bucket[2].samples, 0); /* 4 rows: not keyed by rows */
    /* the longer batch is estimated longer, though both had 4 rows */
    assert_true(sched_latency_estimate(lat, 512) > sched_latency_estimate(lat, 32));
    kinfer_engine_stats st;
    assert_int_equal(kinfer_engine_stats_get(e->engine, 0, &st), KINFER_OK);
    assert_int_equal(st.latency_estimate_max_us, sched_latency_estimate(lat, 1024));
    env_free(e);
}

/* The head's deadline caps the batch in tokens: with 2000 us left and a
 * measured 1000 us + 1 us/token, a batch may hold about 1000 padded tokens
 * less the margin and the estimate's allowance, not the full budget. */
static void test_deadline_caps_tokens(void **state) {
    (void)state;
    env *e = env_alloc();
    e->mc.max_batch_size = 64;
    e->mc.max_batch_tokens = 4096;
    e->mc.max_queue_delay_us = 0;
    env_start(e);
    /* teach the estimator at two sizes, steady (deviation decays) */
    for (int round = 0; round < 40; round++) {
        size_t base = (size_t)(round % 2) * 64;
        uint32_t len = round % 2 ? 64 : 4;
        for (size_t i = 0; i < 16; i++)
            assert_int_equal(submit(e, base + i, 1, len, 0, 0), KINFER_OK);
        int done = e->sink.total;
        while (e->sink.total < done + 16)
            assert_int_equal(env_step(e), 1);
    }
    const sched_latency *lat = &e->engine->models[0].latency;
    int64_t est1024 = sched_latency_estimate(lat, 1024);
    assert_true(est1024 > 1900 && est1024 < 2300); /* ~1000 + 1024 */
    /* 32 requests of 1 x 64: 2048 tokens queued; head deadline in 1800 us */
    int64_t t = now(e);
    int first = e->fake.nbatches;
    sched_latency taught = *lat; /* the batch's own sample changes it */
    assert_int_equal(submit(e, 200, 1, 64, t + 1800, 0), KINFER_OK);
    for (size_t i = 0; i < 31; i++)
        assert_int_equal(submit(e, 128 + i, 1, 64, 0, 0), KINFER_OK);
    assert_int_equal(env_step(e), 1);
    assert_int_equal(e->reqs[200].status, KINFER_OK);
    assert_true(e->reqs[200].completed_at <= t + 1800);
    uint32_t p = e->fake.batch_padded[first];
    assert_true(p >= 64 && p < 1024);
    assert_true(sched_latency_estimate(&taught, p) <= 1800 - 100);
    /* and the cap was the largest that fits: one more row would not */
    assert_true(sched_latency_estimate(&taught, p + 64) > 1800 - 100);
    env_free(e);
}

/* A pipelined replica (two batches in flight) forms its next batch through
 * the same path: grouped, within budget, learnt in tokens. */
static void test_pipelined_groups_too(void **state) {
    (void)state;
    env *e = env_alloc();
    e->ops = &fake_ops_pipelined;
    e->fake.max_in_flight = 2;
    e->mc.max_batch_tokens = 512;
    env_start(e);
    static const uint32_t lens[4] = {8, 64, 7, 60};
    for (size_t i = 0; i < 48; i++)
        assert_int_equal(submit(e, i, 1, lens[i % 4], 0, 0), KINFER_OK);
    fake_clock_set(&e->clock, T0 + 1000000);
    env_step(e); /* one run submits every batch back to back */
    assert_int_equal(e->sink.total, 48);
    assert_int_equal(e->fake.misuse, 0);
    assert_int_equal(e->fake.in_flight_peak, 2);
    assert_int_equal(e->fake.padded_total, 64 + 512 + 56 + 480 + 64 + 512);
    for (int b = 0; b < e->fake.nbatches; b++)
        assert_true(e->fake.batch_padded[b] <= 512);
    const sched_latency *lat = &e->engine->models[0].latency;
    assert_int_equal(lat->bucket[3].samples, 0); /* never 8 rows as units */
    assert_int_equal(lat->bucket[9].samples, 2); /* 512 */
    env_free(e);
}

/* Threads (scheduler thread, two executors, the real clock): random
 * lengths under a budget all complete once, OK, every batch within it. */
static void test_threaded_budget(void **state) {
    (void)state;
    env *e = env_alloc();
    kinfer_clock sys = kinfer_clock_system();
    e->cfg.clock = sys;
    e->sink.clock = sys;
    e->fake.clock = NULL;
    e->fake.sleep_us = 200;
    e->opts.manual = false;
    e->mc.replicas_per_device = 2;
    e->mc.max_batch_tokens = 256;
    e->mc.max_queue_delay_us = 500;
    env_start(e);
    srand(3);
    enum { N = 240 };
    for (size_t i = 0; i < N; i++) {
        uint32_t len = 1 + (uint32_t)(rand() % 64);
        int64_t deadline = rand() % 2 ? sys.now_us(sys.ctx) + 10000000 : 0;
        assert_int_equal(submit(e, i, 1 + (uint32_t)(rand() % 4), len, deadline, 0), KINFER_OK);
    }
    kinfer_engine_shutdown(e->engine, 30000);
    assert_int_equal(e->sink.total, N);
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(e->reqs[i].completions, 1);
        assert_int_equal(e->reqs[i].status, KINFER_OK);
    }
    pthread_mutex_lock(&e->fake.mu);
    for (int b = 0; b < e->fake.nbatches; b++)
        assert_true(e->fake.batch_padded[b] <= 256);
    pthread_mutex_unlock(&e->fake.mu);
    env_free(e);
}

/* Tensor models (tokens 0) keep the plain EDF prefix; max_batch_tokens does
 * not apply to them. */
static void test_tensor_model_unchanged(void **state) {
    (void)state;
    env *e = env_alloc();
    e->fake.len_from_x1 = false;
    e->fake.exec_per_token_us = 0;
    e->mc.max_batch_tokens = 2; /* no effect: requests report no tokens */
    env_start(e);
    for (size_t i = 0; i < 8; i++)
        assert_int_equal(submit(e, i, 1, 1, 0, 0), KINFER_OK);
    assert_int_equal(env_step(e), 1); /* full by rows */
    assert_int_equal(e->fake.nbatches, 1);
    assert_int_equal(e->fake.batch_sizes[0], 8);
    for (int i = 0; i < 8; i++)
        assert_int_equal((int)e->fake.log[i], i); /* EDF = arrival order */
    const sched_latency *lat = &e->engine->models[0].latency;
    assert_int_equal(lat->bucket[3].samples, 1); /* keyed by 8 rows */
    env_free(e);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_budget_boundary),
        cmocka_unit_test(test_grouping_cuts_padding),
        cmocka_unit_test(test_grouping_keeps_batches_full),
        cmocka_unit_test(test_head_always_in_batch),
        cmocka_unit_test(test_urgent_request_not_held_back),
        cmocka_unit_test(test_estimate_keyed_by_tokens),
        cmocka_unit_test(test_deadline_caps_tokens),
        cmocka_unit_test(test_pipelined_groups_too),
        cmocka_unit_test(test_threaded_budget),
        cmocka_unit_test(test_tensor_model_unchanged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
