/* test_scheduler_threads.c — the engine with its real threads and the real
 * clock: shutdown with running and queued work, drain, expiry by the
 * scheduler thread's timer, submit from a completion, and a stress test of
 * several submitters whose every accepted request must complete exactly
 * once with the right status and output, also with the pipelined executor
 * (two batches in flight, shutdown while both are). Timing is never asserted beyond
 * "happened after". */
#include "sched_test_util.h"

typedef struct tenv {
    fake_model_ctx fake;
    fake_sink sink;
    fake_req *reqs;
    size_t nreqs;
    kinfer_model_config mc[2];
    kinfer_engine_config cfg;
    kinfer_engine *engine;
    kinfer_error err;
} tenv;

static tenv *tenv_alloc(size_t nreqs) {
    tenv *e = calloc(1, sizeof(*e));
    fake_model_init(&e->fake);
    e->reqs = calloc(nreqs, sizeof(*e->reqs));
    e->nreqs = nreqs;
    fake_sink_init(&e->sink, e->reqs, nreqs, kinfer_clock_system());
    for (int i = 0; i < 2; i++) {
        kinfer_model_config *mc = &e->mc[i];
        mc->name = i == 0 ? "m" : "n";
        mc->load.kind = "fake";
        mc->devices[0] = "cpu";
        mc->ndevices = 1;
        mc->replicas_per_device = 1;
        mc->max_batch_size = 2;
        mc->max_queue_delay_us = 0;
    }
    e->cfg.models = e->mc;
    e->cfg.nmodels = 1;
    e->cfg.on_complete = fake_on_complete;
    e->cfg.on_congestion = fake_on_congestion;
    e->cfg.callback_ctx = &e->sink;
    return e;
}

/* fake.max_in_flight > 0 selects the pipelined (submit/collect) ops. */
static void tenv_start(tenv *e) {
    const sched_model_ops *ops = e->fake.max_in_flight ? &fake_ops_pipelined : &fake_ops;
    if (kinfer_engine_new_with_ops(&e->cfg, ops, &e->fake, NULL, &e->engine, &e->err))
        fail_msg("engine_new: %s", e->err.msg);
}

static void tenv_free(tenv *e) {
    kinfer_engine_destroy(e->engine);
    sched_fake_check_fini(&e->fake, &e->sink);
    free(e->reqs);
    free(e);
}

static kinfer_err tsubmit(tenv *e, const char *model, size_t id, uint32_t rows, int64_t deadline,
                          int32_t prio) {
    fake_req_fill(&e->reqs[id], id, rows);
    kinfer_engine_request q = fake_request(model, &e->reqs[id], id, deadline, prio);
    return kinfer_engine_submit(e->engine, &q, &e->err);
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int sink_total(fake_sink *s) {
    pthread_mutex_lock(&s->mu);
    int n = s->total;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* Polls until cond(arg) or ~10 s pass. */
static bool wait_for(bool (*cond)(void *), void *arg) {
    for (int i = 0; i < 10000; i++) {
        if (cond(arg))
            return true;
        sleep_ms(1);
    }
    return false;
}

static bool one_in_execute(void *arg) {
    return fake_in_execute(arg) == 1;
}

typedef struct shutdown_arg {
    kinfer_engine *engine;
    int64_t drain_ms;
} shutdown_arg;

static void *shutdown_thread(void *p) {
    shutdown_arg *a = p;
    kinfer_engine_shutdown(a->engine, a->drain_ms);
    return NULL;
}

static bool five_completed(void *arg) {
    return sink_total(arg) == 5;
}

/* Liveness: an executor blocked inside a batch shows in the stats as a
 * running batch at least as old as the wait, with the latency estimate for
 * its size; once it returns, nothing is running. Plain and pipelined. */
static bool completed_one(void *arg);

static void running_batch_case(uint32_t max_in_flight) {
    tenv *e = tenv_alloc(4);
    e->fake.max_in_flight = max_in_flight;
    tenv_start(e);
    kinfer_engine_stats st;
    assert_int_equal(kinfer_engine_stats_get(e->engine, 0, &st), KINFER_OK);
    assert_int_equal(st.running_batch_us, 0);
    fake_gate(&e->fake, true);
    assert_int_equal(tsubmit(e, "m", 0, 2, 0, 0), KINFER_OK);
    assert_true(wait_for(one_in_execute, &e->fake));
    sleep_ms(30);
    assert_int_equal(kinfer_engine_stats_get(e->engine, 0, &st), KINFER_OK);
    assert_true(st.running_batch_us >= 30000);
    assert_int_equal(st.running_batch_estimate_us, st.latency_estimate_max_us); /* 2 rows = max */
    assert_true(st.running_batch_estimate_us > 0);
    fake_gate(&e->fake, false);
    assert_true(wait_for(completed_one, &e->sink));
    assert_int_equal(kinfer_engine_stats_get(e->engine, 0, &st), KINFER_OK);
    assert_int_equal(st.running_batch_us, 0);
    tenv_free(e);
}

static bool completed_one(void *arg) {
    return sink_total(arg) == 1;
}

static void test_running_batch_in_stats(void **state) {
    (void)state;
    running_batch_case(0);
    running_batch_case(2);
}

static void test_shutdown_with_running_and_queued(void **state) {
    (void)state;
    tenv *e = tenv_alloc(16);
    tenv_start(e);
    fake_gate(&e->fake, true);
    assert_int_equal(tsubmit(e, "m", 0, 1, 0, 0), KINFER_OK);
    assert_true(wait_for(one_in_execute, &e->fake)); /* running, blocked */
    for (size_t i = 1; i <= 5; i++)
        assert_int_equal(tsubmit(e, "m", i, 1, 0, 0), KINFER_OK);
    assert_int_equal(kinfer_engine_in_flight(e->engine), 6);
    shutdown_arg a = {e->engine, 50};
    pthread_t th;
    pthread_create(&th, NULL, shutdown_thread, &a);
    /* The replica stays blocked past the 50 ms drain: the queued five are
     * completed with SHUTDOWN while the running one is still running. */
    assert_true(wait_for(five_completed, &e->sink));
    assert_int_equal(e->reqs[0].completions, 0);
    assert_int_equal(tsubmit(e, "m", 6, 1, 0, 0), KINFER_ERR_SHUTDOWN);
    fake_gate(&e->fake, false);
    pthread_join(th, NULL); /* returns only after the running one completed */
    assert_int_equal(e->reqs[0].completions, 1);
    assert_int_equal(e->reqs[0].status, KINFER_OK);
    for (size_t i = 1; i <= 5; i++) {
        assert_int_equal(e->reqs[i].completions, 1);
        assert_int_equal(e->reqs[i].status, KINFER_ERR_SHUTDOWN);
    }
    assert_int_equal(kinfer_engine_in_flight(e->engine), 0);
    kinfer_engine_shutdown(e->engine, 50); /* idempotent */
    assert_int_equal(sink_total(&e->sink), 6);
    tenv_free(e);
}

static bool two_in_flight_one_collecting(void *arg) {
    fake_model_ctx *f = arg;
    pthread_mutex_lock(&f->mu);
    bool yes = f->in_flight_now == 2 && f->in_execute == 1;
    pthread_mutex_unlock(&f->mu);
    return yes;
}

static bool one_completed(void *arg) {
    return sink_total(arg) == 1;
}

static bool two_completed(void *arg) {
    return sink_total(arg) == 2;
}

static bool six_completed(void *arg) {
    return sink_total(arg) == 6;
}

/* Pipelined replica: shutdown while two batches are in flight (one blocked
 * in collect, the next already submitted) and one request is queued. The
 * queued one is refused at the drain time; both batches in flight complete
 * normally, once each, and shutdown returns only after them. */
static void test_pipelined_shutdown_with_two_in_flight(void **state) {
    (void)state;
    tenv *e = tenv_alloc(16);
    e->fake.max_in_flight = 2;
    tenv_start(e);
    fake_gate(&e->fake, true);
    assert_int_equal(tsubmit(e, "m", 0, 1, 0, 0), KINFER_OK);
    assert_true(wait_for(one_in_execute, &e->fake)); /* A = {0} blocked in collect */
    for (size_t i = 1; i <= 5; i++)
        assert_int_equal(tsubmit(e, "m", i, 1, 0, 0), KINFER_OK);
    /* Let A through: B = {1, 2} is submitted, C = {3, 4} submitted behind
     * it before B's collect blocks at the gate. */
    fake_gate_pass(&e->fake, 1);
    assert_true(wait_for(one_completed, &e->sink));
    assert_true(wait_for(two_in_flight_one_collecting, &e->fake));
    assert_int_equal(kinfer_engine_in_flight(e->engine), 5);
    shutdown_arg a = {e->engine, 50};
    pthread_t th;
    pthread_create(&th, NULL, shutdown_thread, &a);
    /* past the drain time the queued one (5) is refused; B and C wait */
    assert_true(wait_for(two_completed, &e->sink));
    pthread_mutex_lock(&e->sink.mu);
    assert_int_equal(e->reqs[5].completions, 1);
    assert_int_equal(e->reqs[5].status, KINFER_ERR_SHUTDOWN);
    for (size_t i = 1; i <= 4; i++)
        assert_int_equal(e->reqs[i].completions, 0);
    pthread_mutex_unlock(&e->sink.mu);
    assert_int_equal(kinfer_engine_in_flight(e->engine), 4);
    fake_gate(&e->fake, false);
    pthread_join(th, NULL);
    assert_true(wait_for(six_completed, &e->sink));
    for (size_t i = 0; i <= 4; i++) {
        assert_int_equal(e->reqs[i].completions, 1);
        assert_int_equal(e->reqs[i].status, KINFER_OK);
        assert_true(e->reqs[i].y0 == (float)i + 0.5f);
    }
    /* A, the refused one, then B and C in order */
    assert_int_equal(e->sink.order[0], 0);
    assert_int_equal(e->sink.order[1], 5);
    for (int k = 1; k < 5; k++)
        assert_int_equal(e->sink.order[k + 1], k);
    assert_int_equal(e->fake.in_flight_peak, 2);
    assert_int_equal(kinfer_engine_in_flight(e->engine), 0);
    tenv_free(e);
}

static void test_drain_runs_queued(void **state) {
    (void)state;
    tenv *e = tenv_alloc(64);
    e->mc[0].max_queue_delay_us = 60000000; /* only the drain dispatches these */
    e->mc[0].max_batch_size = 64;
    e->fake.sleep_us = 1000;
    tenv_start(e);
    for (size_t i = 0; i < 10; i++)
        assert_int_equal(tsubmit(e, "m", i, 1, 0, 0), KINFER_OK);
    kinfer_engine_shutdown(e->engine, 10000);
    for (size_t i = 0; i < 10; i++) {
        assert_int_equal(e->reqs[i].completions, 1);
        assert_int_equal(e->reqs[i].status, KINFER_OK);
        assert_true(e->reqs[i].y0 == (float)i + 0.5f);
    }
    tenv_free(e);
}

static bool req1_done(void *arg) {
    tenv *e = arg;
    pthread_mutex_lock(&e->sink.mu);
    bool done = e->reqs[1].completions > 0;
    pthread_mutex_unlock(&e->sink.mu);
    return done;
}

static void test_expiry_by_timer_thread(void **state) {
    (void)state;
    tenv *e = tenv_alloc(16);
    tenv_start(e);
    fake_gate(&e->fake, true);
    assert_int_equal(tsubmit(e, "m", 0, 1, 0, 0), KINFER_OK);
    assert_true(wait_for(one_in_execute, &e->fake));
    int64_t deadline = kinfer_wall_us() + 30000;
    assert_int_equal(tsubmit(e, "m", 1, 1, deadline, 0), KINFER_OK);
    /* nothing else happens in the engine: the scheduler's timer must fire */
    assert_true(wait_for(req1_done, e));
    assert_int_equal(e->reqs[1].status, KINFER_ERR_DEADLINE_EXCEEDED);
    assert_true(e->reqs[1].completed_at >= deadline);
    assert_int_equal(e->reqs[0].completions, 0); /* still blocked */
    /* the timer's wake-up was measured, to widen later deadline margins */
    pthread_mutex_lock(&e->engine->mu);
    assert_true(sched_latency_samples(&e->engine->wake_lag) >= 1);
    assert_true(sched_engine_dispatch_lag(e->engine) >= 0);
    pthread_mutex_unlock(&e->engine->mu);
    fake_gate(&e->fake, false);
    kinfer_engine_shutdown(e->engine, 1000);
    assert_int_equal(e->reqs[0].status, KINFER_OK);
    tenv_free(e);
}

/* A completion that submits the next request of a chain. */
typedef struct chain {
    tenv *e;
    size_t next;
    size_t len;
    _Atomic int refused;
} chain;

static void chain_complete(void *ctx, const kinfer_engine_result *res) {
    chain *c = ctx;
    fake_on_complete(&c->e->sink, res);
    size_t id = (size_t)(uintptr_t)res->token + 1;
    if (id < c->len) {
        if (tsubmit(c->e, "m", id, 1, 0, 0) != KINFER_OK)
            atomic_fetch_add(&c->refused, 1);
    }
}

static bool chain_done(void *arg) {
    chain *c = arg;
    return sink_total(&c->e->sink) == (int)c->len;
}

static void test_submit_from_completion(void **state) {
    (void)state;
    tenv *e = tenv_alloc(200);
    chain c = {.e = e, .len = 200};
    e->cfg.on_complete = chain_complete;
    e->cfg.callback_ctx = &c;
    e->cfg.on_congestion = NULL;
    tenv_start(e);
    assert_int_equal(tsubmit(e, "m", 0, 1, 0, 0), KINFER_OK);
    assert_true(wait_for(chain_done, &c));
    assert_int_equal(atomic_load(&c.refused), 0);
    for (size_t i = 0; i < c.len; i++)
        assert_int_equal(e->reqs[i].status, KINFER_OK);
    tenv_free(e);
}

/* ---- stress ---- */

#define STRESS_THREADS 4
#define STRESS_PER_THREAD 5000
#define STRESS_N (STRESS_THREADS * STRESS_PER_THREAD)

typedef struct stress_thread {
    tenv *e;
    int index;
    kinfer_err *rc; /* submit result per request */
    int overloaded; /* refusals (then retried) */
} stress_thread;

static void *stress_submitter(void *p) {
    stress_thread *t = p;
    unsigned seed = (unsigned)t->index * 7919u + 1;
    for (int k = 0; k < STRESS_PER_THREAD; k++) {
        size_t id = (size_t)t->index * STRESS_PER_THREAD + (size_t)k;
        int dice = rand_r(&seed) % 100;
        int64_t now = kinfer_wall_us();
        int64_t deadline = 0;
        if (dice < 5)
            deadline = now - 1000; /* already past: refused */
        else if (dice < 25)
            deadline = now + 100 + rand_r(&seed) % 3000; /* tight: some expire */
        else if (dice < 60)
            deadline = now + 20000 + rand_r(&seed) % 200000;
        uint32_t rows = 1 + (uint32_t)(rand_r(&seed) % 4);
        const char *model = (id % 3 == 0) ? "n" : "m";
        int32_t prio = rand_r(&seed) % 5 - 2;
        fake_req_fill(&t->e->reqs[id], id, rows);
        kinfer_engine_request q = fake_request(model, &t->e->reqs[id], id, deadline, prio);
        kinfer_error err;
        /* OVERLOADED: back off and retry, as the transport pausing its
         * partitions would; each refusal is counted. */
        while ((t->rc[id] = kinfer_engine_submit(t->e->engine, &q, &err)) ==
               KINFER_ERR_OVERLOADED) {
            t->overloaded++;
            struct timespec ts = {0, 200000};
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

/* max_in_flight 0: execute; 2: submit/collect with two in flight. */
static void stress(uint32_t max_in_flight) {
    tenv *e = tenv_alloc(STRESS_N);
    e->fake.max_in_flight = max_in_flight;
    e->cfg.nmodels = 2;
    for (int i = 0; i < 2; i++) {
        e->mc[i].max_batch_size = 16;
        e->mc[i].max_queue_delay_us = 500;
        e->mc[i].max_queue = 64;
        e->mc[i].max_queue_hard = 512;
        e->mc[i].default_timeout_ms = i == 0 ? 0 : 2000;
    }
    e->mc[0].devices[1] = "cuda:0"; /* a second replica of model m */
    e->mc[0].ndevices = 2;
    e->fake.sleep_us = 100;
    tenv_start(e);
    kinfer_err *rc = calloc(STRESS_N, sizeof(*rc));
    int overloaded = 0;
    pthread_t th[STRESS_THREADS];
    stress_thread args[STRESS_THREADS];
    for (int i = 0; i < STRESS_THREADS; i++) {
        args[i] = (stress_thread){e, i, rc, 0};
        pthread_create(&th[i], NULL, stress_submitter, &args[i]);
    }
    for (int i = 0; i < STRESS_THREADS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < STRESS_THREADS; i++)
        overloaded += args[i].overloaded;
    kinfer_engine_shutdown(e->engine, 30000);
    int accepted = 0, ok = 0, expired = 0, past = 0;
    for (size_t id = 0; id < STRESS_N; id++) {
        fake_req *r = &e->reqs[id];
        if (rc[id] == KINFER_OK) {
            accepted++;
            assert_int_equal(r->completions, 1);
            if (r->status == KINFER_OK) {
                ok++;
                assert_true(r->y0 == (float)id + 0.5f);
                assert_true(r->batch_size >= 1 && r->batch_size <= 16);
            } else {
                assert_int_equal(r->status, KINFER_ERR_DEADLINE_EXCEEDED);
                expired++;
            }
        } else {
            assert_int_equal(r->completions, 0);
            assert_int_equal(rc[id], KINFER_ERR_DEADLINE_EXCEEDED);
            past++;
        }
    }
    assert_int_equal(sink_total(&e->sink), accepted);
    assert_true(past > 0);
    /* every congestion report was matched by its clearing */
    assert_int_equal(e->sink.congestion_on, e->sink.congestion_off);
    kinfer_engine_stats st[2];
    kinfer_engine_stats_get(e->engine, 0, &st[0]);
    kinfer_engine_stats_get(e->engine, 1, &st[1]);
    assert_int_equal(st[0].in_flight + st[1].in_flight, 0);
    assert_int_equal(st[0].accepted + st[1].accepted, (uint64_t)accepted);
    assert_int_equal(st[0].completed_ok + st[1].completed_ok, (uint64_t)ok);
    assert_int_equal(st[0].rejected_overloaded + st[1].rejected_overloaded, (uint64_t)overloaded);
    print_message("stress (in flight %u): %d submitted, %d accepted, %d ok, %d expired, %d "
                  "overloaded, %d past deadline, %d congestion on/off, batches %llu+%llu, peak "
                  "in flight %d\n",
                  max_in_flight, STRESS_N, accepted, ok, expired, overloaded, past,
                  e->sink.congestion_on, (unsigned long long)st[0].batches,
                  (unsigned long long)st[1].batches, e->fake.in_flight_peak);
    assert_true(ok > STRESS_N / 2);
    if (max_in_flight)
        assert_true(e->fake.in_flight_peak >= 1 && e->fake.in_flight_peak <= 2);
    free(rc);
    tenv_free(e);
}

static void test_stress_many_submitters(void **state) {
    (void)state;
    stress(0);
}

/* The same with the pipelined executor (two batches in flight). */
static void test_stress_many_submitters_pipelined(void **state) {
    (void)state;
    stress(2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shutdown_with_running_and_queued),
        cmocka_unit_test(test_running_batch_in_stats),
        cmocka_unit_test(test_drain_runs_queued),
        cmocka_unit_test(test_expiry_by_timer_thread),
        cmocka_unit_test(test_submit_from_completion),
        cmocka_unit_test(test_stress_many_submitters),
        cmocka_unit_test(test_pipelined_shutdown_with_two_in_flight),
        cmocka_unit_test(test_stress_many_submitters_pipelined),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
