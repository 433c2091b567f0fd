/* test_scheduler_lanes.c — the bulk lane (priority < 0) in manual mode on a
 * fake clock: online requests run before bulk ones whatever the deadlines,
 * bulk requests fill an idle model's batches completely, take only a slice
 * while online traffic is around, carry no default deadline,
 * run in the gaps while online requests wait for company, and a bulk
 * backlog never makes an online request miss its deadline (the same run
 * without the slice does, so the check can fail). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "sched_test_util.h"

#define BULK (-1)

static env *lanes_env(size_t nreqs) {
    env *e = env_alloc_n("m", nreqs);
    /* compute = 200 + 100 x rows µs on the fake clock */
    e->fake.exec_base_us = 200;
    e->fake.exec_per_row_us = 100;
    e->mc.max_batch_size = 8;
    e->mc.max_queue_delay_us = 1000;
    return e;
}

static kinfer_err submit(env *e, size_t id, int64_t deadline, int32_t prio) {
    return env_submit_rows(e, "m", id, 1, deadline, prio);
}

/* Runs every due batch until nothing is queued or running, jumping the
 * clock to the next timed event when idle. */
static void drain(env *e) {
    for (int guard = 0; guard < 100000; guard++) {
        int64_t next = sched_engine_poll(e->engine);
        if (sched_engine_run(e->engine) > 0)
            continue;
        if (kinfer_engine_in_flight(e->engine) == 0)
            return;
        assert_true(next != INT64_MAX);
        fake_clock_set(&e->clock, next > now(e) ? next : now(e) + 1);
    }
    fail_msg("drain did not finish");
}

/* Teaches the latency estimate batches of 1 and 8 rows (ids from `first`,
 * online, no deadline), so the slice arithmetic has real points. */
static size_t warm_up(env *e, size_t first) {
    size_t id = first;
    for (int round = 0; round < 12; round++) {
        assert_int_equal(submit(e, id++, 0, 0), KINFER_OK);
        drain(e);
        for (int k = 0; k < 8; k++)
            assert_int_equal(submit(e, id++, 0, 0), KINFER_OK);
        drain(e);
    }
    return id;
}

static void test_online_before_bulk_whatever_the_deadline(void **state) {
    (void)state;
    env *e = lanes_env(8);
    env_start(e);
    int64_t soon = T0 + 100000, late = T0 + 9000000;
    assert_int_equal(submit(e, 0, soon, BULK), KINFER_OK);
    assert_int_equal(submit(e, 1, soon - 1, -50), KINFER_OK);
    assert_int_equal(submit(e, 2, late, 0), KINFER_OK);
    assert_int_equal(submit(e, 3, 0, 5), KINFER_OK); /* online, default timeout */
    fake_clock_set(&e->clock, T0 + 2000);            /* past the delay */
    drain(e);
    /* online in EDF order (deadline 0 = the default timeout, 0 in this
     * env: no deadline, last), then bulk in EDF order */
    uintptr_t want[] = {2, 3, 1, 0};
    assert_int_equal(e->fake.log_len, 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(e->fake.log[i], want[i]);
    env_free(e);
}

static void test_bulk_has_no_default_deadline(void **state) {
    (void)state;
    env *e = lanes_env(4);
    e->mc.default_timeout_ms = 10;
    env_start(e);
    assert_int_equal(submit(e, 0, 0, 0), KINFER_OK);
    assert_int_equal(submit(e, 1, 0, BULK), KINFER_OK);
    /* Nothing runs for a minute: the online one expires at its default
     * timeout, the bulk one waits and then runs. */
    fake_clock_set(&e->clock, T0 + 60000000);
    drain(e);
    assert_int_equal(e->reqs[0].status, KINFER_ERR_DEADLINE_EXCEEDED);
    assert_int_equal(e->reqs[1].status, KINFER_OK);
    assert_int_equal(e->reqs[1].completions, 1);
    env_free(e);
}

static void test_bulk_fills_idle_batches(void **state) {
    (void)state;
    env *e = lanes_env(64);
    env_start(e);
    for (size_t i = 0; i < 32; i++)
        assert_int_equal(submit(e, i, 0, BULK), KINFER_OK);
    drain(e);
    /* No online request ever arrived: full batches of 8. */
    assert_int_equal(e->fake.nbatches, 4);
    for (int b = 0; b < 4; b++)
        assert_int_equal(e->fake.batch_sizes[b], 8);
    env_free(e);
}

static void test_bulk_runs_in_gaps_and_slices_while_online_active_then_fills(void **state) {
    (void)state;
    env *e = lanes_env(12 * 9 + 17);
    e->mc.bulk_slice_us = 500;
    e->mc.bulk_idle_ms = 50;
    env_start(e);
    size_t id = warm_up(e, 0); /* online arrivals: the lane is active */
    int before = e->fake.nbatches;
    size_t first_bulk = id;
    for (int k = 0; k < 16; k++)
        assert_int_equal(submit(e, id++, 0, BULK), KINFER_OK);
    size_t online = id++;
    int64_t t0 = now(e);
    assert_int_equal(submit(e, online, 0, 0), KINFER_OK);
    /* The online one waits 1 ms for company (max_queue_delay_us); bulk
     * batches run in the gap, each within min(slice, time left - margin):
     * 2 rows (417 µs of estimate), then 1 (a first 2-row measurement makes
     * the estimate cautious), then the 200 µs left fit none. */
    assert_int_equal(env_step(e), 1);
    assert_int_equal(env_step(e), 1);
    assert_int_equal(env_step(e), 0);
    assert_int_equal(e->fake.nbatches, before + 2);
    assert_int_equal(e->fake.batch_sizes[before], 2);
    assert_int_equal(e->fake.batch_sizes[before + 1], 1);
    assert_int_equal(e->reqs[online].completions, 0);
    assert_int_equal(now(e), t0 + 700); /* ended before the online batch is due */
    /* Due at 1 ms: alone, since one more bulk row would add more than a
     * tenth to its estimate. */
    fake_clock_set(&e->clock, t0 + 1000);
    assert_int_equal(env_step(e), 1);
    assert_int_equal(e->fake.batch_sizes[before + 2], 1);
    assert_int_equal(e->reqs[online].completions, 1);
    assert_int_equal(e->reqs[online].status, KINFER_OK);
    assert_int_equal(e->fake.log[e->fake.log_len - 1], online);
    /* Bulk alone while the lane is still active: within the 500 µs slice
     * (the estimate for 2 rows is now 800 µs: 1). */
    assert_int_equal(env_step(e), 1);
    assert_int_equal(e->fake.batch_sizes[before + 3], 1);
    /* 50 ms without an online arrival: bulk batches are full again. */
    fake_clock_set(&e->clock, now(e) + 60000);
    drain(e);
    assert_int_equal(e->fake.batch_sizes[before + 4], 8);
    for (size_t i = first_bulk; i < online; i++)
        assert_int_equal(e->reqs[i].completions, 1);
    env_free(e);
}

/* A gap batch also ends before online arrivals at their recent rate would
 * fill the online batch: at one every 20 µs, 7 more rows come in 140 µs,
 * less than any bulk batch takes, so none starts; at one every 100 ms the
 * delay bounds the gap as before. */
static void test_gap_batches_respect_the_online_arrival_rate(void **state) {
    (void)state;
    env *e = lanes_env(12 * 9 + 17);
    e->mc.bulk_slice_us = 1000;
    env_start(e);
    size_t id = warm_up(e, 0);
    for (int k = 0; k < 16; k++)
        assert_int_equal(submit(e, id++, 0, BULK), KINFER_OK);
    size_t online = id++;
    assert_int_equal(submit(e, online, 0, 0), KINFER_OK);
    int before = e->fake.nbatches;
    e->engine->models[0].online_gap_us = 20; /* as if arrivals came every 20 µs */
    assert_int_equal(env_step(e), 0);
    assert_int_equal(e->fake.nbatches, before);
    e->engine->models[0].online_gap_us = 100000;
    assert_int_equal(env_step(e), 1);
    assert_true(e->fake.batch_sizes[before] >= 1);
    assert_int_equal(e->reqs[online].completions, 0); /* that was bulk work */
    drain(e);
    assert_int_equal(e->reqs[online].completions, 1);
    env_free(e);
}

/* Open loop on the fake clock: online requests period_us to 2 x period_us
 * apart, each due within budget_us of its arrival, against a backlog of bulk requests
 * queued from the start. Returns online requests that missed (late or
 * expired); every request completes exactly once. */
static int online_misses(int64_t slice_us, int64_t period_us, int64_t budget_us, int *online_ok,
                         int *bulk_ok) {
    enum { NBULK = 400, NONLINE = 200 };
    env *e = lanes_env(NBULK + NONLINE + 12 * 9);
    e->mc.bulk_slice_us = slice_us;
    env_start(e);
    size_t id = warm_up(e, NBULK + NONLINE);
    for (size_t i = 0; i < NBULK; i++)
        assert_int_equal(submit(e, i, 0, BULK), KINFER_OK);
    int64_t start = now(e), next_arrival = start;
    int64_t due[NONLINE];
    size_t sent = 0;
    uint64_t lcg = 1;
    while (sent < NONLINE) {
        if (now(e) >= next_arrival) {
            /* The deadline counts from the scheduled arrival, which a
             * running batch (the fake clock jumps over it) may have passed. */
            due[sent] = next_arrival + budget_us;
            kinfer_err rc = submit(e, NBULK + sent, due[sent], 0);
            assert_true(rc == KINFER_OK || rc == KINFER_ERR_DEADLINE_EXCEEDED);
            if (rc != KINFER_OK) /* refused at submit: as missed */
                e->reqs[NBULK + sent].status = rc, e->reqs[NBULK + sent].completions = 1;
            sent++;
            /* period_us to 2 x period_us apart (a fixed LCG), so arrivals
             * meet running batches at every phase */
            lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
            next_arrival += period_us + (int64_t)((lcg >> 33) % (uint64_t)period_us);
            continue;
        }
        int64_t next = sched_engine_poll(e->engine);
        if (sched_engine_run(e->engine) > 0)
            continue;
        fake_clock_set(&e->clock,
                       next < next_arrival ? (next > now(e) ? next : now(e) + 1) : next_arrival);
    }
    drain(e);
    int missed = 0;
    *online_ok = *bulk_ok = 0;
    for (size_t i = 0; i < NONLINE; i++) {
        fake_req *r = &e->reqs[NBULK + i];
        assert_int_equal(r->completions, 1);
        if (r->status != KINFER_OK || r->completed_at > due[i])
            missed++;
        else
            (*online_ok)++;
    }
    for (size_t i = 0; i < NBULK; i++) {
        assert_int_equal(e->reqs[i].completions, 1);
        *bulk_ok += e->reqs[i].status == KINFER_OK;
    }
    (void)id;
    env_free(e);
    return missed;
}

static void test_bulk_backlog_never_makes_online_late(void **state) {
    (void)state;
    int online_ok, bulk_ok;
    /* A full batch takes 1 ms; an online request is due 1.1 ms after it
     * arrives. With a 300 µs slice it waits behind at most one bulk slice
     * (~300 µs), and bulk company adds at most a tenth: never late. */
    assert_int_equal(online_misses(300, 1200, 1100, &online_ok, &bulk_ok), 0);
    assert_int_equal(online_ok, 200);
    assert_int_equal(bulk_ok, 400); /* and the backlog all ran */
    /* The same run with an unbounded slice: bulk batches of 8 (1 ms) make
     * online requests that arrive early in one late (even a batch of the
     * online one alone takes 300 µs after the wait). */
    int misses = online_misses(3600000000LL, 1200, 1100, &online_ok, &bulk_ok);
    print_message("unbounded slice: %d of 200 online requests late\n", misses);
    assert_true(misses > 0);
    assert_int_equal(bulk_ok, 400);
}

static void test_bulk_slice_config_range(void **state) {
    (void)state;
    env *e = lanes_env(1);
    e->mc.bulk_slice_us = -1;
    kinfer_err rc =
        kinfer_engine_new_with_ops(&e->cfg, e->ops, &e->fake, &e->opts, &e->engine, &e->err);
    assert_int_equal(rc, KINFER_ERR_CONFIG);
    assert_non_null(strstr(e->err.msg, "bulk_slice_us"));
    e->engine = NULL;
    sched_fake_check_fini(&e->fake, &e->sink);
    free(e->reqs);
    free(e);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_online_before_bulk_whatever_the_deadline),
        cmocka_unit_test(test_bulk_has_no_default_deadline),
        cmocka_unit_test(test_bulk_fills_idle_batches),
        cmocka_unit_test(test_bulk_runs_in_gaps_and_slices_while_online_active_then_fills),
        cmocka_unit_test(test_gap_batches_respect_the_online_arrival_rate),
        cmocka_unit_test(test_bulk_backlog_never_makes_online_late),
        cmocka_unit_test(test_bulk_slice_config_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
