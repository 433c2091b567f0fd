/* test_health.c — what /readyz and /healthz say (worker_health.c): every
 * readiness state (starting, not joined, cluster unreachable or failing
 * authentication past the grace, draining, stopped) and liveness state (poll
 * loop stalled beyond max.poll.interval.ms, an executor stuck in a batch
 * beyond factor x learned latency and the floor), the error bookkeeping,
 * and the probe thread driving reachability both ways. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <librdkafka/rdkafka.h>

#include "worker_health.h"

#define S 1000000LL

static const kinfer_worker_health_limits lim = {
    .broker_grace_us = 10 * S,
    .poll_bound_us = 6 * S,
    .stall_factor = 20,
    .stall_min_us = 60 * S,
};

/* Running, joined, reachable, polled just now: ready and live. */
static kinfer_worker_health_snapshot healthy(void) {
    kinfer_worker_health_snapshot s = {
        .now_us = 1000 * S,
        .phase = KINFER_WORKER_PHASE_RUNNING,
        .joined = true,
        .last_poll_us = 1000 * S - 1000,
        .last_error = "",
        .client_error = "",
    };
    return s;
}

static void expect(const kinfer_worker_health_snapshot *s, bool ready, const char *ready_reason,
                   const char *ready_text, bool live, const char *live_reason,
                   const char *live_text) {
    kinfer_worker_health_verdict v;
    kinfer_worker_health_eval(&lim, s, &v);
    if (v.ready != ready || strcmp(v.ready_reason, ready_reason) ||
        !strstr(v.ready_line, ready_text))
        fail_msg("readiness: got %d %s \"%s\", want %d %s \"%s\"", v.ready, v.ready_reason,
                 v.ready_line, ready, ready_reason, ready_text);
    if (v.live != live || strcmp(v.live_reason, live_reason) || !strstr(v.live_line, live_text))
        fail_msg("liveness: got %d %s \"%s\", want %d %s \"%s\"", v.live, v.live_reason,
                 v.live_line, live, live_reason, live_text);
}

static void test_readiness_states(void **state) {
    (void)state;
    kinfer_worker_health_snapshot s = healthy();
    expect(&s, true, "ok", "ok", true, "ok", "ok");
    s.phase = KINFER_WORKER_PHASE_STARTING;
    expect(&s, false, "starting", "not ready: starting", true, "ok", "ok");
    s = healthy();
    s.joined = false;
    expect(&s, false, "not_joined", "not ready: not yet joined the consumer group", true, "ok",
           "ok");
    s.client_error = "UNKNOWN_TOPIC_OR_PART: Subscribed topic not available";
    expect(&s, false, "not_joined", "(last error: UNKNOWN_TOPIC_OR_PART: Subscribed topic", true,
           "ok", "ok");
    /* Unreachable within the grace: what it was (here: joined, so ready). */
    s = healthy();
    s.unreachable_since = s.now_us - 9 * S;
    s.last_error = "_TRANSPORT: Connect to ipv4#127.0.0.1:1 failed: Connection refused";
    expect(&s, true, "ok", "ok", true, "ok", "ok");
    s.unreachable_since = s.now_us - 12 * S;
    expect(&s, false, "brokers_down",
           "not ready: all brokers down for 12 s (last error: _TRANSPORT: Connect to ipv4#"
           "127.0.0.1:1 failed: Connection refused)",
           true, "ok", "ok");
    /* Past the grace it outranks "not joined" (it says more). */
    s.joined = false;
    expect(&s, false, "brokers_down", "all brokers down for 12 s", true, "ok", "ok");
    s.auth_failed = true;
    s.last_error = "_AUTHENTICATION: SASL authentication error: Authentication failed";
    expect(&s, false, "auth_failed",
           "not ready: authentication or TLS with the cluster failing for 12 s (last error: "
           "_AUTHENTICATION",
           true, "ok", "ok");
    s = healthy();
    s.phase = KINFER_WORKER_PHASE_DRAINING;
    s.last_poll_us = 0;
    expect(&s, false, "draining", "not ready: draining", true, "ok", "ok");
    s.phase = KINFER_WORKER_PHASE_STOPPED;
    expect(&s, false, "stopped", "not ready: stopped", true, "ok", "ok");
}

static void test_liveness_states(void **state) {
    (void)state;
    kinfer_worker_health_snapshot s = healthy();
    /* Waiting for a broker keeps the loop polling: live. */
    s.unreachable_since = s.now_us - 100 * S;
    s.joined = false;
    expect(&s, false, "brokers_down", "down for 100 s", true, "ok", "ok");
    s = healthy();
    s.last_poll_us = s.now_us - 6 * S; /* at the bound: still live */
    expect(&s, true, "ok", "ok", true, "ok", "ok");
    s.last_poll_us = s.now_us - 7 * S;
    expect(&s, true, "ok", "ok", false, "poll_stalled",
           "not live: the poll loop has not polled for 7000 ms (bound: max.poll.interval.ms = "
           "6000)");
    s.phase = KINFER_WORKER_PHASE_DRAINING; /* the drain has its own bound */
    expect(&s, false, "draining", "draining", true, "ok", "ok");

    kinfer_engine_stats models[2] = {{.name = "a"}, {.name = "slow"}};
    s = healthy();
    s.models = models;
    s.nmodels = 2;
    models[1].running_batch_estimate_us = 10000; /* 10 ms: the 60 s floor rules */
    models[1].running_batch_us = 59 * S;
    expect(&s, true, "ok", "ok", true, "ok", "ok");
    models[1].running_batch_us = 61 * S;
    expect(&s, true, "ok", "ok", false, "batch_stalled",
           "not live: model slow: an executor has been inside one batch for 61000 ms (learned "
           "latency for that batch 10 ms; bound 60000 ms)");
    models[1].running_batch_estimate_us = 5 * S; /* 20 x 5 s = 100 s */
    models[1].running_batch_us = 90 * S;
    expect(&s, true, "ok", "ok", true, "ok", "ok");
    models[1].running_batch_us = 101 * S;
    expect(&s, true, "ok", "ok", false, "batch_stalled", "bound 100000 ms");
    /* Also while draining: a stuck batch blocks the drain too. */
    s.phase = KINFER_WORKER_PHASE_DRAINING;
    expect(&s, false, "draining", "draining", false, "batch_stalled", "model slow");
}

/* ---- the live state and the probe thread -------------------------------- */

typedef struct probe_ctx {
    _Atomic int answer; /* 0: the cluster answers */
    _Atomic int verdicts;
    _Atomic int last_ready;
} probe_ctx;

static int fake_probe(void *ctx, int timeout_ms, char *why, size_t len) {
    (void)timeout_ms;
    probe_ctx *p = ctx;
    if (atomic_load(&p->answer) == 0)
        return 0;
    snprintf(why, len, "metadata probe: Local: Broker transport failure");
    return -1;
}

static void fake_verdict(void *ctx, const kinfer_worker_health_verdict *v) {
    probe_ctx *p = ctx;
    atomic_store(&p->last_ready, v->ready);
    atomic_fetch_add(&p->verdicts, 1);
}

static void wait_verdicts(probe_ctx *p, int n) {
    int start = atomic_load(&p->verdicts);
    for (int i = 0; i < 5000 && atomic_load(&p->verdicts) < start + n; i++) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    assert_true(atomic_load(&p->verdicts) >= start + n);
}

static void test_state_and_probe(void **state) {
    (void)state;
    kinfer_worker_health_limits l = lim;
    l.broker_grace_us = 0; /* any outage at all counts, for the test */
    kinfer_worker_health *h;
    kinfer_error err;
    assert_int_equal(kinfer_worker_health_new(&l, &h, &err), KINFER_OK);
    kinfer_worker_health_verdict v;
    kinfer_worker_health_check(h, NULL, &v);
    assert_string_equal(v.ready_reason, "starting");
    kinfer_worker_health_set_phase(h, KINFER_WORKER_PHASE_RUNNING);
    kinfer_worker_health_check(h, NULL, &v);
    assert_string_equal(v.ready_reason, "not_joined");
    kinfer_worker_health_client_error(h, RD_KAFKA_RESP_ERR__TRANSPORT, "_TRANSPORT",
                                      "Connection refused");
    kinfer_worker_health_client_error(h, RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN, "_ALL_BROKERS_DOWN",
                                      "1/1 brokers are down");
    kinfer_worker_health_check(h, NULL, &v);
    assert_non_null(strstr(v.ready_line, "(last error: _TRANSPORT: Connection refused)"));
    kinfer_worker_health_joined(h);
    kinfer_worker_health_check(h, NULL, &v);
    assert_true(v.ready);

    /* The probe: failing -> brokers_down (grace 0); an auth error names
     * the state; answering again -> ready. */
    probe_ctx p = {.answer = 1};
    assert_int_equal(kinfer_worker_health_start(h, 5, fake_probe, fake_verdict, &p, NULL, &err),
                     KINFER_OK);
    wait_verdicts(&p, 2);
    kinfer_worker_health_check(h, NULL, &v);
    assert_string_equal(v.ready_reason, "brokers_down");
    assert_non_null(strstr(v.ready_line, "_TRANSPORT: Connection refused"));
    assert_int_equal(atomic_load(&p.last_ready), 0);
    kinfer_worker_health_client_error(h, RD_KAFKA_RESP_ERR__AUTHENTICATION, "_AUTHENTICATION",
                                      "SASL authentication error");
    kinfer_worker_health_check(h, NULL, &v);
    assert_string_equal(v.ready_reason, "auth_failed");
    atomic_store(&p.answer, 0);
    wait_verdicts(&p, 2);
    kinfer_worker_health_check(h, NULL, &v);
    assert_true(v.ready);
    assert_int_equal(atomic_load(&p.last_ready), 1);
    atomic_store(&p.answer, 1);
    wait_verdicts(&p, 2);
    kinfer_worker_health_check(h, NULL, &v);
    /* A new outage: the old client error predates it, the probe's is named. */
    assert_string_equal(v.ready_reason, "brokers_down");
    assert_non_null(strstr(v.ready_line, "metadata probe: Local: Broker transport failure"));
    kinfer_worker_health_destroy(h); /* stops the thread */
}

/* The start-up bound: an authentication/TLS failure since the start stops
 * the worker once it has lasted the bound, never after the group was
 * joined, never for other errors; the first failure of a streak is the one
 * to log. */
static void test_startup_auth_failure(void **state) {
    (void)state;
    kinfer_worker_health_limits l = {.broker_grace_us = 0,
                                     .poll_bound_us = 1000000,
                                     .stall_factor = 10,
                                     .stall_min_us = 1000000};
    kinfer_worker_health *h;
    kinfer_error err;
    assert_int_equal(kinfer_worker_health_new(&l, &h, &err), KINFER_OK);
    const char *hint = NULL;
    char last[256];
    assert_false(kinfer_worker_health_startup_failed(h, 1, &hint, last, sizeof last));
    /* Transport errors are not it: the brokers may come up later. */
    assert_false(kinfer_worker_health_client_error(h, RD_KAFKA_RESP_ERR__TRANSPORT, "_TRANSPORT",
                                                   "Connection refused"));
    usleep(2000);
    assert_false(kinfer_worker_health_startup_failed(h, 1, &hint, last, sizeof last));
    const char *sasl = "sasl_ssl://127.0.0.1:9/bootstrap: SASL authentication error: "
                       "Authentication failed during authentication due to invalid credentials "
                       "with SASL mechanism SCRAM-SHA-512";
    assert_true(kinfer_worker_health_client_error(h, RD_KAFKA_RESP_ERR__AUTHENTICATION,
                                                  "_AUTHENTICATION", sasl));
    /* The same failure again (librdkafka reconnects): not logged again. */
    assert_false(kinfer_worker_health_client_error(h, RD_KAFKA_RESP_ERR__AUTHENTICATION,
                                                   "_AUTHENTICATION", sasl));
    assert_false(kinfer_worker_health_startup_failed(h, 60000000, &hint, last, sizeof last));
    assert_false(kinfer_worker_health_startup_failed(h, 0, &hint, last, sizeof last)); /* off */
    usleep(2000);
    /* Failing for longer than the bound, but not lately: not (yet) it. */
    assert_false(kinfer_worker_health_startup_failed(h, 1000, &hint, last, sizeof last));
    assert_false(kinfer_worker_health_client_error(h, RD_KAFKA_RESP_ERR__AUTHENTICATION,
                                                   "_AUTHENTICATION", sasl));
    assert_true(kinfer_worker_health_startup_failed(h, 1000, &hint, last, sizeof last));
    assert_non_null(strstr(hint, "sasl.password"));
    assert_non_null(strstr(last, "_AUTHENTICATION: "));
    /* The readiness line says what to check too: before the first probe
     * (not joined), and past the grace (0 here) once the probe fails. */
    kinfer_worker_health_set_phase(h, KINFER_WORKER_PHASE_RUNNING);
    kinfer_worker_health_verdict v;
    kinfer_worker_health_check(h, NULL, &v);
    assert_string_equal(v.ready_reason, "not_joined");
    assert_non_null(strstr(v.ready_line, "not yet joined the consumer group: the cluster refused "
                                         "the credentials: check sasl.username and sasl.password"));
    probe_ctx p = {.answer = 1};
    assert_int_equal(kinfer_worker_health_start(h, 5, fake_probe, fake_verdict, &p, NULL, &err),
                     KINFER_OK);
    wait_verdicts(&p, 2);
    kinfer_worker_health_client_error(h, RD_KAFKA_RESP_ERR__AUTHENTICATION, "_AUTHENTICATION",
                                      sasl);
    kinfer_worker_health_check(h, NULL, &v);
    assert_string_equal(v.ready_reason, "auth_failed");
    assert_non_null(strstr(v.ready_line, ": the cluster refused the credentials: check "
                                         "sasl.username and sasl.password"));
    assert_non_null(strstr(v.ready_line, "Authentication failed"));
    /* A transport error between two of them (librdkafka interleaves them):
     * the same failure is not logged again, and it still counts as lasting. */
    assert_false(kinfer_worker_health_client_error(h, RD_KAFKA_RESP_ERR__TRANSPORT, "_TRANSPORT",
                                                   "Connection refused"));
    assert_false(kinfer_worker_health_client_error(h, RD_KAFKA_RESP_ERR__AUTHENTICATION,
                                                   "_AUTHENTICATION", sasl));
    assert_true(kinfer_worker_health_startup_failed(h, 1000, &hint, last, sizeof last));
    /* Another class (the CA now): logged. */
    assert_true(kinfer_worker_health_client_error(
        h, RD_KAFKA_RESP_ERR__SSL, "_SSL",
        "SSL handshake failed: error:0A000086:SSL routines::certificate verify failed"));
    assert_true(kinfer_worker_health_startup_failed(h, 1000, &hint, last, sizeof last));
    assert_non_null(strstr(hint, "ssl.ca.location"));
    /* Joined once: never a start-up failure again. */
    kinfer_worker_health_joined(h);
    assert_false(kinfer_worker_health_startup_failed(h, 1, &hint, last, sizeof last));
    kinfer_worker_health_destroy(h);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_readiness_states),
        cmocka_unit_test(test_liveness_states),
        cmocka_unit_test(test_state_and_probe),
        cmocka_unit_test(test_startup_auth_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
