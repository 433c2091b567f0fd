/* test_scheduler_pipeline.c — the executor's double buffering, driven in
 * manual mode with the fake clock and the fake model's submit/collect:
 * with 2 in flight the next due batch is submitted before the current one
 * is collected (and only when due, the wait counted against deadlines);
 * completions come once each, in batch order, with outputs read before the
 * next collect; compute_us is submit to collect while the estimator learns
 * each batch's own time; whole-batch failures at submit and at collect;
 * max_in_flight 1 never overlaps. Threads: test_scheduler_threads.c. */
#include "sched_test_util.h"

#define NREQ 32

/* The shared defaults (sched_test_util.h) on one cuda:0 replica with the
 * pipelined ops: batch 2, fake compute 1000 us + 10 us per row, in
 * collect, with up to 2 batches in flight. */
static env *env_alloc(void) {
    env *e = env_alloc_n("m", NREQ);
    e->fake.exec_per_row_us = 10;
    e->fake.max_in_flight = 2;
    e->mc.load.path = "fake";
    e->mc.devices[0] = "cuda:0";
    e->mc.max_batch_size = 2;
    e->ops = &fake_ops_pipelined;
    return e;
}

static void submit(env *e, size_t id, int64_t deadline) {
    if (env_submit_rows(e, "m", id, 1, deadline, 0) != KINFER_OK)
        fail_msg("submit %zu: %s", id, e->err.msg);
}

static void assert_ops(env *e, const char *want) {
    char got[FAKE_MAX_LOG + 1];
    memcpy(got, e->fake.ops, (size_t)e->fake.ops_len);
    got[e->fake.ops_len] = '\0';
    assert_string_equal(got, want);
}

/* Eight 1-row requests, batch 2, all queued: one run submits each next
 * batch before collecting the one before (S S C S C S C C), completes in
 * batch order with each request's own output (the fake poisons a batch's
 * outputs at the next collect), reports submit-to-collect compute and
 * teaches the estimator each batch's own 1020 us. */
static void test_next_batch_submitted_before_collect(void **state) {
    (void)state;
    env *e = env_alloc();
    env_start(e);
    for (size_t i = 0; i < 8; i++)
        submit(e, i, 0);
    assert_int_equal(env_step(e), 4);
    assert_ops(e, "SSCSCSCC");
    assert_int_equal(e->fake.in_flight_peak, 2);
    assert_int_equal(e->sink.total, 8);
    for (int i = 0; i < 8; i++) {
        fake_req *r = &e->reqs[i];
        assert_int_equal(e->sink.order[i], i);
        assert_int_equal(r->completions, 1);
        assert_int_equal(r->status, KINFER_OK);
        assert_true(r->y0 == (float)i + 0.5f);
        assert_int_equal(r->batch_size, 2);
    }
    /* A (0,1) and B (2,3) are submitted at T0; C at A's end, D at B's. */
    assert_int_equal(e->reqs[0].compute_us, 1020);
    assert_int_equal(e->reqs[0].queue_us, 0);
    assert_int_equal(e->reqs[2].compute_us, 2040); /* behind A, then its own */
    assert_int_equal(e->reqs[2].queue_us, 0);
    assert_int_equal(e->reqs[4].queue_us, 1020);
    assert_int_equal(e->reqs[4].compute_us, 2040);
    assert_int_equal(e->reqs[6].queue_us, 2040);
    assert_int_equal(e->reqs[7].completed_at, T0 + 4 * 1020);
    kinfer_engine_stats st;
    assert_int_equal(kinfer_engine_stats_get(e->engine, 0, &st), KINFER_OK);
    assert_int_equal(st.batches, 4);
    assert_int_equal(st.completed_ok, 8);
    assert_int_equal(st.in_flight, 0);
    assert_int_equal(st.replicas_busy, 0);
    assert_int_equal(st.latency_samples, 4);
    /* every sample was 1020 (2 rows: bucket 1), not the 2040 reported */
    assert_true(e->engine->models[0].latency.bucket[1].mean_us == 1020.0);
    env_free(e);
}

/* A batch that is not due when the current one is submitted is not formed
 * early: the run collects and returns, and the next batch forms later by
 * its own trigger (here the queue delay). */
static void test_not_due_waits_for_collect(void **state) {
    (void)state;
    env *e = env_alloc();
    e->mc.max_queue_delay_us = 1000;
    env_start(e);
    submit(e, 0, 0);
    submit(e, 1, 0);
    fake_clock_set(&e->clock, T0 + 900);
    submit(e, 2, 0); /* due at T0 + 1900 */
    fake_clock_set(&e->clock, T0 + 1000);
    assert_int_equal(env_step(e), 1);
    assert_ops(e, "SC");
    assert_int_equal(e->fake.in_flight_peak, 1);
    assert_int_equal(e->reqs[2].completions, 0);
    /* the clock is at T0 + 2020 now: past 2's delay */
    assert_int_equal(env_step(e), 1);
    assert_ops(e, "SCSC");
    assert_int_equal(e->reqs[2].status, KINFER_OK);
    assert_int_equal(e->reqs[2].queue_us, 2020 - 900);
    env_free(e);
}

/* The pipelined batch starts only after the current one, so its deadline
 * check counts the current batch's expected remaining time: with the prior
 * (5000 us for any size) and margin 100, a head due at now + 10000 must go
 * now (5000 wait + 5000 compute + 100 > 10000), but one due at now + 20000
 * can wait for more requests. */
static void test_deadline_counts_wait_behind_current(void **state) {
    (void)state;
    for (int far = 0; far < 2; far++) {
        env *e = env_alloc();
        e->mc.max_batch_size = 4;
        env_start(e);
        submit(e, 0, 0);
        submit(e, 1, 0);
        fake_clock_set(&e->clock, T0 + 1000000); /* delay trigger for 0 and 1 */
        sched_engine_poll(e->engine);            /* A = {0, 1} assigned */
        submit(e, 2, T0 + 1000000 + (far ? 20000 : 10000));
        assert_int_equal(sched_engine_run(e->engine), far ? 1 : 2);
        assert_ops(e, far ? "SC" : "SSCC");
        if (!far) {
            assert_int_equal(e->reqs[2].status, KINFER_OK);
            assert_int_equal(e->reqs[2].batch_size, 1);
        } else {
            assert_int_equal(e->reqs[2].completions, 0);
        }
        env_free(e);
    }
}

/* A request whose deadline passed while the current batch was submitted is
 * expired by the pipelined pass, not run late. */
static void test_expired_not_pipelined(void **state) {
    (void)state;
    env *e = env_alloc();
    env_start(e);
    submit(e, 0, 0);
    submit(e, 1, 0);
    sched_engine_poll(e->engine); /* A = {0, 1}: full */
    submit(e, 2, T0 + 10);
    submit(e, 3, 0);
    submit(e, 4, 0);
    fake_clock_set(&e->clock, T0 + 10);
    assert_int_equal(sched_engine_run(e->engine), 2);
    assert_ops(e, "SSCC");
    assert_int_equal(e->reqs[2].status, KINFER_ERR_DEADLINE_EXCEEDED);
    assert_int_equal(e->reqs[2].queue_us, 10);
    assert_int_equal(e->reqs[3].status, KINFER_OK);
    assert_int_equal(e->reqs[4].status, KINFER_OK);
    /* the expiry is delivered before A's completions (A is collected later) */
    assert_int_equal(e->sink.order[0], 2);
    env_free(e);
}

/* The second collect fails its whole batch with a device error: exactly
 * that batch's requests get it, once; the batches around it succeed. */
static void test_collect_failure_fails_that_batch(void **state) {
    (void)state;
    env *e = env_alloc();
    e->fake.fail_collect_nth = 2;
    env_start(e);
    for (size_t i = 0; i < 6; i++)
        submit(e, i, 0);
    assert_int_equal(env_step(e), 3);
    assert_ops(e, "SSCSCC");
    for (int i = 0; i < 6; i++) {
        assert_int_equal(e->reqs[i].completions, 1);
        if (i == 2 || i == 3) {
            assert_int_equal(e->reqs[i].status, KINFER_ERR_DEVICE);
            assert_string_equal(e->reqs[i].error, "fake: batch failed");
        } else {
            assert_int_equal(e->reqs[i].status, KINFER_OK);
            assert_true(e->reqs[i].y0 == (float)i + 0.5f);
        }
    }
    kinfer_engine_stats st;
    kinfer_engine_stats_get(e->engine, 0, &st);
    assert_int_equal(st.completed_ok, 4);
    assert_int_equal(st.completed_error, 2);
    assert_int_equal(st.latency_samples, 2); /* a failed batch teaches nothing */
    env_free(e);
}

/* A submit that fails leaves nothing to collect: its requests fail at once
 * and no batch is pipelined behind it. */
static void test_submit_failure_fails_batch_without_collect(void **state) {
    (void)state;
    env *e = env_alloc();
    e->fake.fail_submit = KINFER_ERR_DEVICE;
    env_start(e);
    for (size_t i = 0; i < 4; i++)
        submit(e, i, 0);
    assert_int_equal(env_step(e), 1);
    assert_int_equal(env_step(e), 1);
    assert_ops(e, "SS");
    assert_int_equal(e->fake.collects, 0);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(e->reqs[i].completions, 1);
        assert_int_equal(e->reqs[i].status, KINFER_ERR_DEVICE);
        assert_string_equal(e->reqs[i].error, "fake: submit failed");
    }
    assert_int_equal(kinfer_engine_in_flight(e->engine), 0);
    env_free(e);
}

/* A model that reports max_in_flight 1 through the same ops is never
 * overlapped: submit and collect strictly alternate. */
static void test_max_in_flight_one_alternates(void **state) {
    (void)state;
    env *e = env_alloc();
    e->fake.max_in_flight = 1;
    env_start(e);
    for (size_t i = 0; i < 6; i++)
        submit(e, i, 0);
    size_t runs = 0;
    while (kinfer_engine_in_flight(e->engine) > 0 && runs < 10)
        runs += env_step(e);
    assert_int_equal(runs, 3);
    assert_ops(e, "SCSCSC");
    assert_int_equal(e->fake.in_flight_peak, 1);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(e->reqs[i].status, KINFER_OK);
        assert_int_equal(e->reqs[i].compute_us, 1020);
    }
    env_free(e);
}

/* Shutdown in manual mode drains with the pipeline: queued batches run two
 * in flight and every request completes once. */
static void test_manual_shutdown_drains_pipelined(void **state) {
    (void)state;
    env *e = env_alloc();
    env_start(e);
    for (size_t i = 0; i < 5; i++)
        submit(e, i, 0);
    kinfer_engine_shutdown(e->engine, 10000);
    assert_int_equal(e->sink.total, 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(e->reqs[i].status, KINFER_OK);
    assert_int_equal(e->fake.in_flight_peak, 2);
    env_free(e);
}

/* Ops tables must be whole: submit without collect is refused. */
static void test_partial_pipelined_ops_rejected(void **state) {
    (void)state;
    env *e = env_alloc();
    sched_model_ops ops = fake_ops_pipelined;
    ops.replica_collect = NULL;
    assert_int_equal(
        kinfer_engine_new_with_ops(&e->cfg, &ops, &e->fake, &e->opts, &e->engine, &e->err),
        KINFER_ERR_INVALID_ARG);
    assert_non_null(strstr(e->err.msg, "replica_collect"));
    assert_null(e->engine);
    env_free(e); /* engine NULL: destroy(NULL) is a no-op */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_next_batch_submitted_before_collect),
        cmocka_unit_test(test_not_due_waits_for_collect),
        cmocka_unit_test(test_deadline_counts_wait_behind_current),
        cmocka_unit_test(test_expired_not_pipelined),
        cmocka_unit_test(test_collect_failure_fails_that_batch),
        cmocka_unit_test(test_submit_failure_fails_batch_without_collect),
        cmocka_unit_test(test_max_in_flight_one_alternates),
        cmocka_unit_test(test_manual_shutdown_drains_pipelined),
        cmocka_unit_test(test_partial_pipelined_ops_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
