/* test_scheduler_engine.c — the engine's policies, driven step by step in
 * manual mode (no threads) with a fake clock and the fake model: dispatch
 * triggers, expiry, ordering, timeouts, watermarks, admission errors,
 * shutdown, device fallback and failure propagation. */
#include "sched_test_util.h"

#define NREQ 64

/* The shared defaults (sched_test_util.h) plus version "1", fake compute
 * 10 us per row on top, and the congestion callback. */
static env *env_alloc(void) {
    env *e = env_alloc_n("m", NREQ);
    e->fake.exec_per_row_us = 10;
    e->mc.version = "1";
    e->cfg.on_congestion = fake_on_congestion;
    return e;
}

static kinfer_err submit(env *e, size_t id, uint32_t rows, int64_t deadline, int32_t prio) {
    return env_submit_rows(e, "m", id, rows, deadline, prio);
}

static void set_now(env *e, int64_t t) {
    fake_clock_set(&e->clock, t);
}

/* One scheduler step: decide, then run what was dispatched. */
static int64_t step(env *e, size_t *batches) {
    int64_t next = sched_engine_poll(e->engine);
    size_t n = sched_engine_run(e->engine);
    if (batches)
        *batches = n;
    return next;
}

/* Submits, then lets the delay trigger take everything in one batch. */
static void run_one_batch(env *e) {
    set_now(e, T0 + 1000000);
    size_t batches;
    step(e, &batches);
    assert_int_equal(batches, 1);
}

static void test_size_trigger(void **state) {
    (void)state;
    env *e = env_alloc();
    env_start(e);
    size_t batches;
    for (size_t i = 0; i < 7; i++) {
        assert_int_equal(submit(e, i, 1, 0, 0), KINFER_OK);
        assert_int_equal(step(e, &batches), T0 + 1000000); /* the delay timer */
        assert_int_equal(batches, 0);
    }
    assert_int_equal(kinfer_engine_in_flight(e->engine), 7);
    assert_int_equal(submit(e, 7, 1, 0, 0), KINFER_OK); /* 8 rows: full */
    step(e, &batches);
    assert_int_equal(batches, 1);
    assert_int_equal(e->sink.total, 8);
    for (size_t i = 0; i < 8; i++) {
        fake_req *r = &e->reqs[i];
        assert_int_equal(r->completions, 1);
        assert_int_equal(r->status, KINFER_OK);
        assert_int_equal(r->batch_size, 8);
        assert_int_equal(r->queue_us, 0);
        assert_int_equal(r->compute_us, 1000 + 8 * 10);
        assert_string_equal(r->device, "cpu");
        assert_string_equal(r->version, "1");
        assert_true(r->y0 == (float)i + 0.5f);
    }
    assert_int_equal(kinfer_engine_in_flight(e->engine), 0);

    /* Rows, not requests, fill a batch, and a request is never split:
     * 3 + 3 + 3 rows is over 8, so the batch takes two and leaves one. */
    assert_int_equal(submit(e, 10, 3, 0, 0), KINFER_OK);
    assert_int_equal(submit(e, 11, 3, 0, 0), KINFER_OK);
    step(e, &batches);
    assert_int_equal(batches, 0);
    assert_int_equal(submit(e, 12, 3, 0, 0), KINFER_OK);
    int64_t t = now(e);
    int64_t next = step(e, &batches);
    assert_int_equal(batches, 1);
    assert_int_equal(e->reqs[10].batch_size, 2);
    assert_int_equal(e->reqs[11].batch_size, 2);
    assert_int_equal(e->reqs[12].completions, 0);
    assert_int_equal(next, t + 1000000); /* request 12 waits for its delay */
    kinfer_engine_stats st;
    assert_int_equal(kinfer_engine_stats_get(e->engine, 0, &st), KINFER_OK);
    assert_int_equal(st.queued, 1);
    assert_int_equal(st.queued_rows, 3);
    assert_int_equal(st.batches, 2);
    assert_int_equal(st.rows, 14);
    assert_int_equal(st.completed_ok, 10);
    assert_int_equal(st.latency_samples, 2);
    assert_string_equal(st.name, "m");
    assert_int_equal(kinfer_engine_stats_get(e->engine, 1, &st), KINFER_ERR_INVALID_ARG);
    env_free(e);
}

static void test_delay_trigger(void **state) {
    (void)state;
    env *e = env_alloc();
    e->mc.max_queue_delay_us = 2000;
    env_start(e);
    size_t batches;
    assert_int_equal(submit(e, 0, 1, 0, 0), KINFER_OK);
    set_now(e, T0 + 100);
    assert_int_equal(submit(e, 1, 1, 0, 0), KINFER_OK);
    set_now(e, T0 + 200);
    assert_int_equal(submit(e, 2, 2, 0, 0), KINFER_OK);
    /* the oldest request sets the timer */
    assert_int_equal(step(e, &batches), T0 + 2000);
    assert_int_equal(batches, 0);
    set_now(e, T0 + 1999);
    assert_int_equal(step(e, &batches), T0 + 2000);
    assert_int_equal(batches, 0);
    set_now(e, T0 + 2000);
    step(e, &batches);
    assert_int_equal(batches, 1);
    assert_int_equal(e->reqs[0].queue_us, 2000);
    assert_int_equal(e->reqs[1].queue_us, 1900);
    assert_int_equal(e->reqs[2].queue_us, 1800);
    assert_int_equal(e->reqs[0].batch_size, 3);
    assert_int_equal(e->reqs[0].compute_us, 1000 + 4 * 10);
    /* No deadline of their own and no default timeout: no slack to report. */
    assert_false(e->reqs[0].has_deadline);
    assert_int_equal(e->reqs[0].deadline_slack_us, 0);
    assert_int_equal(step(e, &batches), INT64_MAX); /* nothing left to time */
    env_free(e);
}

static void test_deadline_trigger_uses_estimate(void **state) {
    (void)state;
    env *e = env_alloc();
    env_start(e);
    size_t batches;
    /* Before any measurement the prior (5000) + margin (100) leads the deadline. */
    assert_int_equal(submit(e, 0, 1, T0 + 20000, 0), KINFER_OK);
    assert_int_equal(step(e, &batches), T0 + 20000 - 5000 - 100);
    set_now(e, T0 + 14899);
    step(e, &batches);
    assert_int_equal(batches, 0);
    set_now(e, T0 + 14900);
    step(e, &batches);
    assert_int_equal(batches, 1);
    assert_int_equal(e->reqs[0].status, KINFER_OK);
    assert_int_equal(e->reqs[0].compute_us, 1010);

    /* Measured: 1010 us with deviation 505 -> estimate 2020 for one row. */
    kinfer_engine_stats st;
    kinfer_engine_stats_get(e->engine, 0, &st);
    assert_int_equal(st.latency_estimate_1_us, 2020);
    /* 1-row batch measured; 8 rows extrapolate through the origin: 8x. */
    assert_int_equal(st.latency_estimate_max_us, 8 * 2020);
    int64_t t = now(e);
    assert_int_equal(submit(e, 1, 1, t + 20000, 0), KINFER_OK);
    assert_int_equal(step(e, &batches), t + 20000 - 2020 - 100);
    /* A second, 2-row request makes the batch larger: the estimate grows
     * with the rows and the trigger moves earlier. */
    assert_int_equal(submit(e, 2, 2, t + 30000, 0), KINFER_OK);
    assert_int_equal(step(e, &batches), t + 20000 - 3 * 2020 - 100);
    set_now(e, t + 20000 - 3 * 2020 - 100);
    step(e, &batches);
    assert_int_equal(batches, 1);
    assert_int_equal(e->reqs[1].batch_size, 2);
    assert_int_equal(e->reqs[2].status, KINFER_OK);
    env_free(e);
}

static void test_batch_shrinks_to_fit_head_deadline(void **state) {
    (void)state;
    env *e = env_alloc();
    e->fake.exec_base_us = 0;
    e->fake.exec_per_row_us = 1000; /* 1 ms per row */
    env_start(e);
    size_t batches;
    /* Teach the estimator: a 1-row batch (point 1 row -> 1000 + 2 * 500)
     * and an 8-row batch (8 rows -> 8000 + 2 * 4000). */
    assert_int_equal(submit(e, 0, 1, 0, 0), KINFER_OK);
    run_one_batch(e);
    for (size_t i = 1; i <= 8; i++)
        assert_int_equal(submit(e, i, 1, 0, 0), KINFER_OK);
    step(e, &batches);
    assert_int_equal(batches, 1);
    kinfer_engine_stats st;
    kinfer_engine_stats_get(e->engine, 0, &st);
    assert_int_equal(st.latency_estimate_1_us, 2000);
    assert_int_equal(st.latency_estimate_max_us, 16000);

    /* Eight 1-row requests due in 7 ms. A full batch (16 ms estimated)
     * would miss; 3 rows (6 ms) is the largest that fits 7 ms - margin. */
    int64_t t0 = now(e), due = t0 + 7000;
    for (size_t i = 10; i < 18; i++)
        assert_int_equal(submit(e, i, 1, due, 0), KINFER_OK);
    step(e, &batches);
    assert_int_equal(batches, 1);
    assert_int_equal(e->reqs[10].batch_size, 3);
    assert_int_equal(e->reqs[12].batch_size, 3);
    assert_int_equal(e->reqs[13].completions, 0);
    /* 4 ms left. The 3-row batch taught (3 rows -> 3000 + 2 * 1500), so 2
     * rows are now estimated at 4000 > 3900: one row at a time, each
     * 1-row sample shrinking the 1-row deviation, while they fit. */
    for (size_t i = 13; i < 16; i++) {
        step(e, &batches);
        assert_int_equal(batches, 1);
        assert_int_equal(e->reqs[i].batch_size, 1);
    }
    for (size_t i = 10; i < 16; i++) {
        assert_int_equal(e->reqs[i].status, KINFER_OK);
        assert_true(e->reqs[i].completed_at <= due);
    }
    /* 1 ms left, less than even one row is expected to take (1422 us):
     * shrinking cannot save the head, so the batch is as full as it can
     * be. */
    step(e, &batches);
    assert_int_equal(batches, 1);
    assert_int_equal(e->reqs[16].batch_size, 2);
    assert_true(e->reqs[17].completed_at > due);
    env_free(e);
}

static void test_expiry_while_queued(void **state) {
    (void)state;
    env *e = env_alloc();
    e->mc.max_batch_size = 2;
    env_start(e);
    size_t batches;
    /* Occupy the only replica with a full batch and do not run it yet. */
    assert_int_equal(submit(e, 0, 2, 0, 0), KINFER_OK);
    sched_engine_poll(e->engine);
    /* Deadline 3000 us away: the deadline trigger is due at once (prior
     * 5000 > 3000) but no replica is free, so it stays queued. */
    assert_int_equal(submit(e, 1, 1, T0 + 3000, 0), KINFER_OK);
    assert_int_equal(submit(e, 2, 1, T0 + 2000000, 0), KINFER_OK);
    assert_int_equal(sched_engine_poll(e->engine), T0 + 3000); /* wakes for the expiry */
    set_now(e, T0 + 2999);
    sched_engine_poll(e->engine);
    assert_int_equal(e->reqs[1].completions, 0);
    set_now(e, T0 + 3000);
    sched_engine_poll(e->engine);
    /* completed at the moment it expired, without compute */
    assert_int_equal(e->reqs[1].completions, 1);
    assert_int_equal(e->reqs[1].status, KINFER_ERR_DEADLINE_EXCEEDED);
    assert_int_equal(e->reqs[1].completed_at, T0 + 3000);
    assert_int_equal(e->reqs[1].queue_us, 3000);
    assert_int_equal(e->reqs[1].compute_us, 0);
    assert_int_equal(e->reqs[1].batch_size, 0);
    assert_string_equal(e->reqs[1].device, "");
    assert_string_equal(e->reqs[1].version, "1");
    assert_int_equal(e->fake.executes, 0);
    /* the rest runs normally */
    sched_engine_run(e->engine);
    set_now(e, T0 + 1000000); /* request 2's delay */
    step(e, &batches);
    assert_int_equal(batches, 1);
    assert_int_equal(e->reqs[0].status, KINFER_OK);
    assert_int_equal(e->reqs[2].status, KINFER_OK);
    assert_int_equal(e->fake.log_len, 2); /* one entry per item: request 1 never ran */
    assert_int_equal(e->fake.log[0], 0);
    assert_int_equal(e->fake.log[1], 2);
    kinfer_engine_stats st;
    kinfer_engine_stats_get(e->engine, 0, &st);
    assert_int_equal(st.expired, 1);
    assert_int_equal(st.completed_error, 1);
    assert_int_equal(st.completed_ok, 2);
    env_free(e);
}

static void test_edf_order(void **state) {
    (void)state;
    env *e = env_alloc();
    e->opts.latency_prior_us = 1; /* keep the deadline trigger out of the way */
    env_start(e);
    int64_t d[] = {T0 + 5000000, T0 + 3000000, 0 /* none */, T0 + 4000000, T0 + 2000000};
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(submit(e, i, 1, d[i], 0), KINFER_OK);
    run_one_batch(e);
    uintptr_t want[] = {4, 1, 3, 0, 2};
    assert_int_equal(e->fake.log_len, 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(e->fake.log[i], want[i]);
    env_free(e);
}

static void test_edf_across_batches(void **state) {
    (void)state;
    env *e = env_alloc();
    e->mc.max_batch_size = 2;
    e->opts.latency_prior_us = 1;
    env_start(e);
    /* Five requests, batches of two: the earliest deadlines go first even
     * though they arrived last. */
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(submit(e, i, 1, T0 + 9000000 - (int64_t)i * 1000000, 0), KINFER_OK);
    /* full triggers take the two earliest */
    size_t batches;
    step(e, &batches);
    assert_int_equal(batches, 1);
    step(e, &batches);
    assert_int_equal(batches, 1);
    assert_int_equal(e->fake.log[0], 4);
    assert_int_equal(e->fake.log[1], 3);
    assert_int_equal(e->fake.log[2], 2);
    assert_int_equal(e->fake.log[3], 1);
    assert_int_equal(e->reqs[0].completions, 0); /* latest deadline, waits for its delay */
    env_free(e);
}

static void test_priority_among_equal_deadlines(void **state) {
    (void)state;
    env *e = env_alloc();
    e->opts.latency_prior_us = 1;
    env_start(e);
    int64_t dl = T0 + 5000000;
    assert_int_equal(submit(e, 0, 1, dl, 5), KINFER_OK);
    assert_int_equal(submit(e, 1, 1, dl, 7), KINFER_OK);
    assert_int_equal(submit(e, 2, 1, dl, 3), KINFER_OK);
    assert_int_equal(submit(e, 3, 1, dl - 1, 0), KINFER_OK); /* earlier deadline wins */
    assert_int_equal(submit(e, 4, 1, 0, 1000), KINFER_OK);   /* no deadline: last */
    run_one_batch(e);
    uintptr_t want[] = {3, 1, 0, 2, 4};
    for (int i = 0; i < 5; i++)
        assert_int_equal(e->fake.log[i], want[i]);
    env_free(e);
}

static void test_arrival_order_ties(void **state) {
    (void)state;
    env *e = env_alloc();
    env_start(e);
    for (size_t i = 0; i < 6; i++) {
        set_now(e, T0 + (int64_t)i);
        assert_int_equal(submit(e, i, 1, 0, 2), KINFER_OK);
    }
    run_one_batch(e);
    for (int i = 0; i < 6; i++)
        assert_int_equal(e->fake.log[i], (uintptr_t)i);
    /* completions follow the batch order too */
    for (int i = 0; i < 6; i++)
        assert_int_equal(e->sink.order[i], i);
    env_free(e);
}

static void test_default_timeout(void **state) {
    (void)state;
    env *e = env_alloc();
    e->mc.default_timeout_ms = 50;
    e->mc.max_batch_size = 1;
    env_start(e);
    /* hold the replica */
    assert_int_equal(submit(e, 0, 1, 0, 0), KINFER_OK);
    sched_engine_poll(e->engine);
    assert_int_equal(submit(e, 1, 1, 0, 0), KINFER_OK);          /* gets now + 50 ms */
    assert_int_equal(submit(e, 2, 1, T0 + 80000, 0), KINFER_OK); /* own deadline kept */
    assert_int_equal(sched_engine_poll(e->engine), T0 + 50000);
    set_now(e, T0 + 50000);
    sched_engine_poll(e->engine);
    assert_int_equal(e->reqs[1].status, KINFER_ERR_DEADLINE_EXCEEDED);
    assert_int_equal(e->reqs[1].completed_at, T0 + 50000);
    assert_int_equal(e->reqs[2].completions, 0);
    set_now(e, T0 + 80000);
    sched_engine_poll(e->engine);
    assert_int_equal(e->reqs[2].status, KINFER_ERR_DEADLINE_EXCEEDED);
    sched_engine_run(e->engine);
    assert_int_equal(e->reqs[0].status, KINFER_OK);
    /* Its batch started at T0 + 80 ms, 30 ms past its default deadline:
     * negative slack, reported as such. */
    assert_true(e->reqs[0].has_deadline);
    assert_int_equal(e->reqs[0].deadline_slack_us, -30000);
    env_free(e);

    /* Slack is the deadline minus the batch start, on the engine clock. */
    e = env_alloc();
    e->mc.default_timeout_ms = 50;
    e->mc.max_batch_size = 2;
    env_start(e);
    assert_int_equal(submit(e, 0, 1, T0 + 7000, 0), KINFER_OK);
    set_now(e, T0 + 500);
    assert_int_equal(submit(e, 1, 1, 0, 0), KINFER_OK); /* default: T0 + 500 + 50 ms */
    set_now(e, T0 + 1000);
    assert_int_equal(env_step(e), 1);
    assert_true(e->reqs[0].has_deadline && e->reqs[1].has_deadline);
    assert_int_equal(e->reqs[0].deadline_slack_us, 6000);
    assert_int_equal(e->reqs[1].deadline_slack_us, 49500);
    env_free(e);

    /* default_timeout_ms = 0: no deadline, only the delay timer */
    e = env_alloc();
    env_start(e);
    assert_int_equal(submit(e, 0, 1, 0, 0), KINFER_OK);
    assert_int_equal(sched_engine_poll(e->engine), T0 + 1000000);
    env_free(e);
}

static void test_watermarks(void **state) {
    (void)state;
    env *e = env_alloc();
    e->mc.max_queue = 4; /* low watermark defaults to 2 */
    e->mc.max_batch_size = 2;
    env_start(e);
    e->opts.manual = true;
    /* hold the replica so the queue only grows */
    assert_int_equal(submit(e, 0, 2, 0, 0), KINFER_OK);
    sched_engine_poll(e->engine);
    for (size_t i = 1; i <= 4; i++)
        assert_int_equal(submit(e, i, 1, 0, 0), KINFER_OK);
    assert_int_equal(e->sink.congestion_on, 0); /* at max_queue, not past it */
    assert_int_equal(submit(e, 5, 1, 0, 0), KINFER_OK);
    assert_int_equal(e->sink.congestion_on, 1);
    assert_string_equal(e->sink.congestion_model, "m");
    assert_int_equal(submit(e, 6, 1, 0, 0), KINFER_OK);
    assert_int_equal(e->sink.congestion_on, 1); /* once per crossing */
    kinfer_engine_stats st;
    kinfer_engine_stats_get(e->engine, 0, &st);
    assert_true(st.congested);
    /* drain: 6 queued -> 4 -> 2 (the low watermark) */
    size_t batches;
    sched_engine_run(e->engine); /* the held batch; the queue is unchanged */
    step(e, &batches);           /* 6 -> 4 */
    assert_int_equal(batches, 1);
    assert_int_equal(e->sink.congestion_off, 0);
    step(e, &batches); /* 4 -> 2 */
    assert_int_equal(e->sink.congestion_off, 1);
    assert_false(e->sink.last_congested);
    step(e, &batches);
    assert_int_equal(e->sink.congestion_off, 1);
    /* and up again: a second crossing reports again */
    for (size_t i = 10; i < 14; i++)
        assert_int_equal(submit(e, i, 1, 0, 0), KINFER_OK);
    assert_int_equal(e->sink.congestion_on, 1);
    assert_int_equal(submit(e, 14, 1, 0, 0), KINFER_OK);
    assert_int_equal(e->sink.congestion_on, 2);
    assert_int_equal(e->sink.congestion_off, 1);
    assert_true(e->sink.last_congested);
    env_free(e);
}

static void test_hard_cap_overloaded(void **state) {
    (void)state;
    env *e = env_alloc();
    e->mc.max_queue_hard = 3;
    env_start(e);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(submit(e, i, 1, 0, 0), KINFER_OK);
    assert_int_equal(submit(e, 3, 1, 0, 0), KINFER_ERR_OVERLOADED);
    assert_non_null(strstr(e->err.msg, "'m'"));
    assert_int_equal(kinfer_engine_in_flight(e->engine), 3);
    run_one_batch(e);
    assert_int_equal(submit(e, 3, 1, 0, 0), KINFER_OK); /* room again */
    kinfer_engine_stats st;
    kinfer_engine_stats_get(e->engine, 0, &st);
    assert_int_equal(st.rejected_overloaded, 1);
    kinfer_engine_shutdown(e->engine, 1000);
    assert_int_equal(e->reqs[3].completions, 1);
    assert_int_equal(e->sink.total, 4); /* the refused one had no completion */
    env_free(e);
}

static void test_model_not_found_and_versions(void **state) {
    (void)state;
    env *e = env_alloc();
    env_start(e);
    fake_req_fill(&e->reqs[0], 0, 1);
    kinfer_engine_request q = fake_request("nope", &e->reqs[0], 0, 0, 0);
    assert_int_equal(kinfer_engine_submit(e->engine, &q, &e->err), KINFER_ERR_MODEL_NOT_FOUND);
    assert_non_null(strstr(e->err.msg, "'nope'"));
    /* an empty name */
    q.model.ptr = NULL;
    q.model.len = 0;
    assert_int_equal(kinfer_engine_submit(e->engine, &q, &e->err), KINFER_ERR_MODEL_NOT_FOUND);
    assert_string_equal(e->err.msg, "model '' is not loaded");
    /* prefix of a real name is not that name */
    q.model.ptr = "mm";
    q.model.len = 2;
    assert_int_equal(kinfer_engine_submit(e->engine, &q, &e->err), KINFER_ERR_MODEL_NOT_FOUND);
    q = fake_request("m", &e->reqs[0], 0, 0, 0);
    q.model_version.ptr = "2";
    q.model_version.len = 1;
    assert_int_equal(kinfer_engine_submit(e->engine, &q, &e->err), KINFER_ERR_MODEL_NOT_FOUND);
    assert_non_null(strstr(e->err.msg, "version '2'"));
    q.model_version.ptr = "1";
    assert_int_equal(kinfer_engine_submit(e->engine, &q, &e->err), KINFER_OK);
    assert_int_equal(e->sink.total, 0);
    env_free(e);
    assert_true(1);
}

static void test_invalid_and_oversized_requests(void **state) {
    (void)state;
    env *e = env_alloc();
    env_start(e);
    /* more rows than max_batch_size (8): refused, naming the limit */
    assert_int_equal(submit(e, 0, 9, 0, 0), KINFER_ERR_INVALID_REQUEST);
    assert_non_null(strstr(e->err.msg, "max_batch_size 8"));
    /* the model's own check */
    fake_req_fill(&e->reqs[1], 1, 1);
    e->reqs[1].t.dtype = KINFER_DTYPE_INT32;
    kinfer_engine_request q = fake_request("m", &e->reqs[1], 1, 0, 0);
    assert_int_equal(kinfer_engine_submit(e->engine, &q, &e->err), KINFER_ERR_INVALID_REQUEST);
    assert_non_null(strstr(e->err.msg, "x FP32 [rows, 2]"));
    /* zero rows */
    assert_int_equal(submit(e, 2, 0, 0, 0), KINFER_ERR_INVALID_REQUEST);
    assert_non_null(strstr(e->err.msg, "no rows"));
    /* NULL arguments */
    assert_int_equal(kinfer_engine_submit(e->engine, NULL, &e->err), KINFER_ERR_INVALID_ARG);
    q.inputs = NULL;
    assert_int_equal(kinfer_engine_submit(e->engine, &q, &e->err), KINFER_ERR_INVALID_ARG);
    assert_int_equal(kinfer_engine_in_flight(e->engine), 0);
    env_free(e);

    /* token limit of a text model: 5 rows x max_len 2 = 10 > 8 */
    e = env_alloc();
    e->fake.max_len_from_cols = true;
    e->mc.max_batch_tokens = 8;
    env_start(e);
    assert_int_equal(submit(e, 0, 5, 0, 0), KINFER_ERR_INVALID_REQUEST);
    assert_non_null(strstr(e->err.msg, "max_batch_tokens 8"));
    /* 2 + 2 rows at 2 tokens each = 8 tokens: full by tokens, not rows */
    assert_int_equal(submit(e, 1, 2, 0, 0), KINFER_OK);
    size_t batches;
    step(e, &batches);
    assert_int_equal(batches, 0);
    assert_int_equal(submit(e, 2, 2, 0, 0), KINFER_OK);
    assert_int_equal(submit(e, 3, 1, 0, 0), KINFER_OK);
    step(e, &batches);
    assert_int_equal(batches, 1);
    assert_int_equal(e->reqs[1].batch_size, 2); /* request 3 would pass 8 tokens */
    assert_int_equal(e->reqs[3].completions, 0);
    env_free(e);
}

static void test_past_deadline_at_submit(void **state) {
    (void)state;
    env *e = env_alloc();
    env_start(e);
    assert_int_equal(submit(e, 0, 1, T0 - 1, 0), KINFER_ERR_DEADLINE_EXCEEDED);
    assert_int_equal(submit(e, 1, 1, T0, 0), KINFER_ERR_DEADLINE_EXCEEDED);
    assert_int_equal(submit(e, 2, 1, T0 + 1, 0), KINFER_OK);
    assert_int_equal(kinfer_engine_in_flight(e->engine), 1);
    env_free(e);
    /* only the accepted one was completed (by destroy's shutdown) */
}

static void test_shutdown_completes_everything_once(void **state) {
    (void)state;
    env *e = env_alloc();
    e->mc.max_batch_size = 2;
    env_start(e);
    assert_int_equal(submit(e, 0, 2, 0, 0), KINFER_OK);
    sched_engine_poll(e->engine); /* assigned, not run: "running" */
    for (size_t i = 1; i < 6; i++)
        assert_int_equal(submit(e, i, 1, 0, 0), KINFER_OK);
    kinfer_engine_shutdown(e->engine, 10000);
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(e->reqs[i].completions, 1);
        assert_int_equal(e->reqs[i].status, KINFER_OK); /* drained: all ran */
    }
    assert_int_equal(kinfer_engine_in_flight(e->engine), 0);
    assert_int_equal(submit(e, 6, 1, 0, 0), KINFER_ERR_SHUTDOWN);
    kinfer_engine_shutdown(e->engine, 10000); /* idempotent */
    assert_int_equal(e->sink.total, 6);
    env_free(e);

    /* drain 0: the running batch finishes, the queued ones get SHUTDOWN */
    e = env_alloc();
    e->mc.max_batch_size = 2;
    env_start(e);
    assert_int_equal(submit(e, 0, 2, 0, 0), KINFER_OK);
    sched_engine_poll(e->engine);
    for (size_t i = 1; i < 6; i++)
        assert_int_equal(submit(e, i, 1, 0, 0), KINFER_OK);
    kinfer_engine_shutdown(e->engine, 0);
    assert_int_equal(e->reqs[0].status, KINFER_OK);
    for (size_t i = 1; i < 6; i++) {
        assert_int_equal(e->reqs[i].completions, 1);
        assert_int_equal(e->reqs[i].status, KINFER_ERR_SHUTDOWN);
        assert_string_equal(e->reqs[i].device, "");
    }
    assert_int_equal(e->sink.total, 6);
    env_free(e);
}

static void test_cpu_fallback_when_device_fails(void **state) {
    (void)state;
    env *e = env_alloc();
    e->fake.fail_devices[0] = "cuda:0";
    e->fake.fail_devices[1] = "cuda:1";
    e->mc.devices[0] = "cuda:0";
    e->mc.devices[1] = "cuda:1";
    e->mc.devices[2] = "cpu";
    e->mc.ndevices = 3;
    e->mc.replicas_per_device = 2;
    env_start(e);
    kinfer_engine_stats st;
    kinfer_engine_stats_get(e->engine, 0, &st);
    assert_int_equal(st.replicas, 2);
    assert_int_equal(submit(e, 0, 1, 0, 0), KINFER_OK);
    run_one_batch(e);
    assert_string_equal(e->reqs[0].device, "cpu");
    env_free(e);

    /* without "cpu" in the list the failure is fatal and names model and device */
    e = env_alloc();
    e->fake.fail_devices[0] = "cuda:0";
    e->mc.devices[0] = "cuda:0";
    e->mc.ndevices = 1;
    assert_int_equal(
        kinfer_engine_new_with_ops(&e->cfg, &fake_ops, &e->fake, &e->opts, &e->engine, &e->err),
        KINFER_ERR_DEVICE);
    assert_null(e->engine);
    assert_non_null(strstr(e->err.msg, "model 'm'"));
    assert_non_null(strstr(e->err.msg, "cuda:0"));
    env_free(e);

    /* "cpu" itself failing is fatal too */
    e = env_alloc();
    e->fake.fail_devices[0] = "cuda:0";
    e->fake.fail_devices[1] = "cpu";
    e->mc.devices[0] = "cuda:0";
    e->mc.devices[1] = "cpu";
    e->mc.ndevices = 2;
    assert_int_equal(
        kinfer_engine_new_with_ops(&e->cfg, &fake_ops, &e->fake, &e->opts, &e->engine, &e->err),
        KINFER_ERR_DEVICE);
    assert_non_null(strstr(e->err.msg, "'cpu'"));
    env_free(e);
}

static void test_least_loaded_replica(void **state) {
    (void)state;
    env *e = env_alloc();
    e->mc.devices[0] = "cuda:0";
    e->mc.devices[1] = "cpu";
    e->mc.ndevices = 2;
    e->mc.max_batch_size = 2;
    env_start(e);
    /* one batch: the preferred (first) device */
    assert_int_equal(submit(e, 0, 2, 0, 0), KINFER_OK);
    size_t batches;
    step(e, &batches);
    assert_string_equal(e->reqs[0].device, "cuda:0");
    /* two batches at once: one per device */
    assert_int_equal(submit(e, 1, 2, 0, 0), KINFER_OK);
    assert_int_equal(submit(e, 2, 2, 0, 0), KINFER_OK);
    step(e, &batches);
    assert_int_equal(batches, 2);
    assert_string_not_equal(e->reqs[1].device, e->reqs[2].device);
    env_free(e);
}

static void test_batch_and_item_failures(void **state) {
    (void)state;
    env *e = env_alloc();
    env_start(e);
    /* one item fails alone */
    assert_int_equal(submit(e, 0, 1, 0, 0), KINFER_OK);
    fake_req_fill(&e->reqs[1], 1, 1);
    e->reqs[1].x[1] = INFINITY;
    kinfer_engine_request q = fake_request("m", &e->reqs[1], 1, 0, 0);
    assert_int_equal(kinfer_engine_submit(e->engine, &q, &e->err), KINFER_OK);
    assert_int_equal(submit(e, 2, 1, 0, 0), KINFER_OK);
    run_one_batch(e);
    assert_int_equal(e->reqs[0].status, KINFER_OK);
    assert_int_equal(e->reqs[1].status, KINFER_ERR_INVALID_REQUEST);
    assert_string_equal(e->reqs[1].error, "fake: infinite input");
    assert_int_equal(e->reqs[2].status, KINFER_OK);
    assert_true(e->reqs[2].y0 == 2.5f); /* outputs line up after the failed item */
    /* the whole batch fails: every request gets the error */
    e->fake.fail_batch = KINFER_ERR_DEVICE;
    assert_int_equal(submit(e, 3, 1, 0, 0), KINFER_OK);
    assert_int_equal(submit(e, 4, 1, 0, 0), KINFER_OK);
    set_now(e, T0 + 3000000);
    size_t batches;
    step(e, &batches);
    assert_int_equal(batches, 1);
    assert_int_equal(e->reqs[3].status, KINFER_ERR_DEVICE);
    assert_int_equal(e->reqs[4].status, KINFER_ERR_DEVICE);
    assert_string_equal(e->reqs[4].error, "fake: batch failed");
    kinfer_engine_stats st;
    kinfer_engine_stats_get(e->engine, 0, &st);
    assert_int_equal(st.latency_samples, 1); /* failed batches teach nothing */
    assert_int_equal(st.completed_error, 3);
    env_free(e);
}

static void test_config_errors(void **state) {
    (void)state;
    env *e = env_alloc();
    kinfer_engine *eng = NULL;
    kinfer_model_config two[2] = {e->mc, e->mc};
    e->cfg.models = two;
    e->cfg.nmodels = 2;
    assert_int_equal(
        kinfer_engine_new_with_ops(&e->cfg, &fake_ops, &e->fake, &e->opts, &eng, &e->err),
        KINFER_ERR_CONFIG);
    assert_non_null(strstr(e->err.msg, "twice"));
    two[1].name = "n";
    two[1].max_batch_size = 0;
    assert_int_equal(
        kinfer_engine_new_with_ops(&e->cfg, &fake_ops, &e->fake, &e->opts, &eng, &e->err),
        KINFER_ERR_CONFIG);
    assert_non_null(strstr(e->err.msg, "model 'n': max_batch_size"));
    two[1].max_batch_size = 4;
    two[1].max_queue = 10;
    two[1].queue_low_watermark = 10;
    assert_int_equal(
        kinfer_engine_new_with_ops(&e->cfg, &fake_ops, &e->fake, &e->opts, &eng, &e->err),
        KINFER_ERR_CONFIG);
    assert_non_null(strstr(e->err.msg, "queue_low_watermark"));
#define NEW_FAILS_CONFIG()                                                                         \
    assert_int_equal(                                                                              \
        kinfer_engine_new_with_ops(&e->cfg, &fake_ops, &e->fake, &e->opts, &eng, &e->err),         \
        KINFER_ERR_CONFIG)
    two[1].queue_low_watermark = 0;
    two[1].default_timeout_ms = 31LL * 86400 * 1000;
    NEW_FAILS_CONFIG();
    assert_non_null(strstr(e->err.msg, "default_timeout_ms"));
    two[1].default_timeout_ms = -1;
    NEW_FAILS_CONFIG();
    two[1].default_timeout_ms = 0;
    two[1].ndevices = KINFER_MAX_DEVICES + 1;
    NEW_FAILS_CONFIG();
    two[1].ndevices = 1;
    two[1].devices[0] = "";
    NEW_FAILS_CONFIG();
    assert_non_null(strstr(e->err.msg, "device 0"));
    two[1].devices[0] = "cpu";
    e->cfg.nmodels = 0;
    assert_int_equal(
        kinfer_engine_new_with_ops(&e->cfg, &fake_ops, &e->fake, &e->opts, &eng, &e->err),
        KINFER_ERR_CONFIG);
    e->cfg.nmodels = 1;
    e->cfg.models = &e->mc;
    e->cfg.on_complete = NULL;
    assert_int_equal(
        kinfer_engine_new_with_ops(&e->cfg, &fake_ops, &e->fake, &e->opts, &eng, &e->err),
        KINFER_ERR_INVALID_ARG);
    e->cfg.on_complete = fake_on_complete;
    /* a load failure names the model; the partial engine is freed */
    two[0] = e->mc;
    two[1] = e->mc;
    two[1].name = "second";
    e->cfg.models = two;
    e->cfg.nmodels = 2;
    e->fake.fail_load = KINFER_ERR_MODEL_LOAD;
    assert_int_equal(
        kinfer_engine_new_with_ops(&e->cfg, &fake_ops, &e->fake, &e->opts, &eng, &e->err),
        KINFER_ERR_MODEL_LOAD);
    assert_non_null(strstr(e->err.msg, "model 'm': fake.safetensors"));
    assert_null(eng);
    assert_int_equal(e->fake.replicas_live, 0);
    e->fake.fail_load = KINFER_OK;
    e->cfg.models = &e->mc;
    e->cfg.nmodels = 1;
    env_free(e); /* engine NULL: destroy(NULL) is a no-op */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_size_trigger),
        cmocka_unit_test(test_delay_trigger),
        cmocka_unit_test(test_deadline_trigger_uses_estimate),
        cmocka_unit_test(test_batch_shrinks_to_fit_head_deadline),
        cmocka_unit_test(test_expiry_while_queued),
        cmocka_unit_test(test_edf_order),
        cmocka_unit_test(test_edf_across_batches),
        cmocka_unit_test(test_priority_among_equal_deadlines),
        cmocka_unit_test(test_arrival_order_ties),
        cmocka_unit_test(test_default_timeout),
        cmocka_unit_test(test_watermarks),
        cmocka_unit_test(test_hard_cap_overloaded),
        cmocka_unit_test(test_model_not_found_and_versions),
        cmocka_unit_test(test_invalid_and_oversized_requests),
        cmocka_unit_test(test_past_deadline_at_submit),
        cmocka_unit_test(test_shutdown_completes_everything_once),
        cmocka_unit_test(test_cpu_fallback_when_device_fails),
        cmocka_unit_test(test_least_loaded_replica),
        cmocka_unit_test(test_batch_and_item_failures),
        cmocka_unit_test(test_config_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
