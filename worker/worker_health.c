/* worker_health.c — readiness and liveness (see worker_health.h): the pure
 * verdict over a snapshot, the state that the poll loop, librdkafka's error
 * callback and the probe thread keep, and the probe thread itself. Not the
 * HTTP server (worker_http.c) nor what the worker does about a fatal
 * error (the poll loop stops; kinfer_worker_run returns an error). */
#include "worker_health.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "kinfer/kinfer_clock.h"
#include "kinfer/kinfer_worker.h"

/* ---- the verdict ------------------------------------------------------- */

static long long secs(int64_t us) {
    return (long long)(us / 1000000);
}

static long long msecs(int64_t us) {
    return (long long)(us / 1000);
}

static void not_ready(kinfer_worker_health_verdict *out, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void not_ready(kinfer_worker_health_verdict *out, const char *reason, const char *fmt, ...) {
    out->ready = false;
    out->ready_reason = reason;
    int n = snprintf(out->ready_line, sizeof out->ready_line, "not ready: ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->ready_line + n, sizeof out->ready_line - (size_t)n, fmt, ap);
    va_end(ap);
}

static void readiness(const kinfer_worker_health_limits *lim,
                      const kinfer_worker_health_snapshot *s, kinfer_worker_health_verdict *out) {
    const char *e = s->last_error && *s->last_error ? s->last_error : NULL;
    int64_t down = s->unreachable_since ? s->now_us - s->unreachable_since : 0;
    switch (s->phase) {
    case KINFER_WORKER_PHASE_STARTING:
        not_ready(out, KINFER_HEALTH_STARTING, "starting (subscribing to the request topics)");
        return;
    case KINFER_WORKER_PHASE_DRAINING:
        not_ready(out, KINFER_HEALTH_DRAINING,
                  "draining (stopping: in-flight requests finish, then the worker leaves the "
                  "group)");
        return;
    case KINFER_WORKER_PHASE_STOPPED:
        not_ready(out, KINFER_HEALTH_STOPPED, "stopped");
        return;
    case KINFER_WORKER_PHASE_RUNNING:
        break;
    }
    if (s->unreachable_since && down > lim->broker_grace_us) {
        if (s->auth_failed && s->auth_hint)
            not_ready(out, KINFER_HEALTH_AUTH_FAILED,
                      "authentication or TLS with the cluster failing for %lld s: %s (last "
                      "error: %s)",
                      secs(down), s->auth_hint, e ? e : "none");
        else if (s->auth_failed)
            not_ready(out, KINFER_HEALTH_AUTH_FAILED,
                      "authentication or TLS with the cluster failing for %lld s (last error: "
                      "%s)",
                      secs(down), e ? e : "none");
        else
            not_ready(out, KINFER_HEALTH_BROKERS_DOWN,
                      "all brokers down for %lld s (last error: %s)", secs(down), e ? e : "none");
        return;
    }
    if (!s->joined) {
        /* Why the group is not joined is rarely the probe's business (a
         * missing topic, a coordinator that does not answer): name the
         * clients' last word. */
        e = s->client_error && *s->client_error ? s->client_error : e;
        if (e && s->auth_failed && s->auth_hint)
            not_ready(out, KINFER_HEALTH_NOT_JOINED,
                      "not yet joined the consumer group: %s (last error: %s)", s->auth_hint, e);
        else if (e)
            not_ready(out, KINFER_HEALTH_NOT_JOINED,
                      "not yet joined the consumer group (last error: %s)", e);
        else
            not_ready(out, KINFER_HEALTH_NOT_JOINED, "not yet joined the consumer group");
    }
}

static void not_live(kinfer_worker_health_verdict *out, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void not_live(kinfer_worker_health_verdict *out, const char *reason, const char *fmt, ...) {
    out->live = false;
    out->live_reason = reason;
    int n = snprintf(out->live_line, sizeof out->live_line, "not live: ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->live_line + n, sizeof out->live_line - (size_t)n, fmt, ap);
    va_end(ap);
}

static void liveness(const kinfer_worker_health_limits *lim, const kinfer_worker_health_snapshot *s,
                     kinfer_worker_health_verdict *out) {
    /* Only a serving loop must poll: start-up and the drain have bounds of
     * their own, and a loop waiting for a broker still polls. */
    if (s->phase == KINFER_WORKER_PHASE_RUNNING && s->last_poll_us &&
        s->now_us - s->last_poll_us > lim->poll_bound_us) {
        not_live(out, KINFER_HEALTH_POLL_STALLED,
                 "the poll loop has not polled for %lld ms (bound: max.poll.interval.ms = %lld)",
                 msecs(s->now_us - s->last_poll_us), msecs(lim->poll_bound_us));
        return;
    }
    /* A wedged executor matters in every phase: it also blocks the drain. */
    for (size_t i = 0; i < s->nmodels; i++) {
        const kinfer_engine_stats *m = &s->models[i];
        int64_t est = m->running_batch_estimate_us > 0 ? m->running_batch_estimate_us : 0;
        int64_t bound = est > INT64_MAX / lim->stall_factor ? INT64_MAX : est * lim->stall_factor;
        if (bound < lim->stall_min_us)
            bound = lim->stall_min_us;
        if (m->running_batch_us > bound) {
            not_live(out, KINFER_HEALTH_BATCH_STALLED,
                     "model %s: an executor has been inside one batch for %lld ms (learned "
                     "latency for that batch %lld ms; bound %lld ms)",
                     m->name ? m->name : "?", msecs(m->running_batch_us), msecs(est), msecs(bound));
            return;
        }
    }
}

void kinfer_worker_health_eval(const kinfer_worker_health_limits *lim,
                               const kinfer_worker_health_snapshot *s,
                               kinfer_worker_health_verdict *out) {
    out->ready = out->live = true;
    out->ready_reason = out->live_reason = KINFER_HEALTH_OK;
    snprintf(out->ready_line, sizeof out->ready_line, "ok");
    snprintf(out->live_line, sizeof out->live_line, "ok");
    readiness(lim, s, out);
    liveness(lim, s, out);
}

/* ---- the live state ---------------------------------------------------- */

#define HEALTH_ERROR_MAX 256
#define HEALTH_MAX_MODELS 64

struct kinfer_worker_health {
    kinfer_worker_health_limits lim;
    atomic_int phase;
    atomic_int joined;
    _Atomic int64_t last_poll_us;

    /* Reachability and errors: under mu (written by the probe thread and
     * librdkafka's threads, read by the HTTP thread). */
    pthread_mutex_t mu;
    int64_t unreachable_since; /* 0 = reachable */
    int64_t last_ok_us;        /* last successful probe; 0 = none */
    bool auth_failed;          /* the last client error was one (what readiness says) */
    const char *auth_hint;     /* then its hint (kinfer_kafka_error_hint, static) */
    /* Authentication/TLS failures since the cluster last answered, whatever
     * came between them (librdkafka interleaves transport errors and
     * reconnect backoffs): the first and the latest, the hint last logged
     * and the last one seen (for the start-up error). Reset by an answer. */
    int64_t auth_first_us, auth_last_us;
    const char *auth_logged, *auth_last_hint;
    char client_error[HEALTH_ERROR_MAX]; /* last client error worth naming */
    int64_t client_error_us;
    char probe_error[HEALTH_ERROR_MAX];

    /* The probe thread. */
    pthread_t thread;
    bool started;
    pthread_cond_t cond; /* under mu: wakes the thread to stop */
    bool stop;
    int64_t interval_ms;
    kinfer_worker_probe_fn probe;
    kinfer_worker_verdict_fn verdict;
    void *ctx;
    const kinfer_engine *engine;
};

kinfer_err kinfer_worker_health_new(const kinfer_worker_health_limits *lim,
                                    kinfer_worker_health **out, kinfer_error *err) {
    kinfer_worker_health *h = calloc(1, sizeof *h);
    if (!h)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "health: out of memory");
    h->lim = *lim;
    if (h->lim.stall_factor < 1)
        h->lim.stall_factor = 1;
    pthread_mutex_init(&h->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&h->cond, &ca);
    pthread_condattr_destroy(&ca);
    *out = h;
    return KINFER_OK;
}

void kinfer_worker_health_destroy(kinfer_worker_health *h) {
    if (!h)
        return;
    kinfer_worker_health_stop(h);
    pthread_cond_destroy(&h->cond);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

void kinfer_worker_health_set_phase(kinfer_worker_health *h, kinfer_worker_phase phase) {
    if (phase == KINFER_WORKER_PHASE_RUNNING)
        atomic_store(&h->last_poll_us, kinfer_mono_us());
    atomic_store(&h->phase, (int)phase);
}

kinfer_worker_phase kinfer_worker_health_phase(const kinfer_worker_health *h) {
    return (kinfer_worker_phase)atomic_load(&((kinfer_worker_health *)h)->phase);
}

void kinfer_worker_health_polled(kinfer_worker_health *h, int64_t now_us) {
    atomic_store_explicit(&h->last_poll_us, now_us, memory_order_relaxed);
}

void kinfer_worker_health_joined(kinfer_worker_health *h) {
    atomic_store(&h->joined, 1);
}

bool kinfer_worker_health_is_joined(kinfer_worker_health *h) {
    return atomic_load(&h->joined) != 0;
}

bool kinfer_worker_health_client_error(kinfer_worker_health *h, int code, const char *name,
                                       const char *reason) {
    /* "1/1 brokers are down" says less than the error before it. */
    if (code == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        return false;
    /* Refusals of our credentials or certificates, and a protocol that
     * does not match the listener. */
    kinfer_kafka_error_class cls = kinfer_kafka_diagnose(code, reason);
    bool auth = kinfer_kafka_error_is_config(cls);
    pthread_mutex_lock(&h->mu);
    int64_t now = kinfer_mono_us();
    snprintf(h->client_error, sizeof h->client_error, "%s: %s", name, reason ? reason : "");
    h->client_error_us = now;
    const char *hint = auth ? kinfer_kafka_error_hint(cls) : NULL;
    bool first = auth && h->auth_logged != hint;
    if (auth) {
        if (!h->auth_first_us)
            h->auth_first_us = now;
        h->auth_last_us = now;
        h->auth_logged = h->auth_last_hint = hint;
    }
    h->auth_failed = auth;
    h->auth_hint = hint;
    pthread_mutex_unlock(&h->mu);
    return first;
}

bool kinfer_worker_health_startup_failed(kinfer_worker_health *h, int64_t bound_us,
                                         const char **hint, char *last_error, size_t len) {
    if (bound_us <= 0 || atomic_load(&h->joined))
        return false;
    pthread_mutex_lock(&h->mu);
    /* Failing for the whole bound, and still failing lately (librdkafka's
     * reconnect backoff spaces the attempts up to seconds apart). */
    int64_t now = kinfer_mono_us();
    bool failed = !h->last_ok_us && h->auth_first_us && now - h->auth_first_us >= bound_us &&
                  now - h->auth_last_us <= bound_us;
    if (failed) {
        *hint = h->auth_last_hint;
        snprintf(last_error, len, "%s", h->client_error);
    }
    pthread_mutex_unlock(&h->mu);
    return failed;
}

void kinfer_worker_health_check(kinfer_worker_health *h, const kinfer_engine *engine,
                                kinfer_worker_health_verdict *out) {
    kinfer_engine_stats models[HEALTH_MAX_MODELS];
    size_t n = engine ? kinfer_engine_model_count(engine) : 0;
    if (n > HEALTH_MAX_MODELS)
        n = HEALTH_MAX_MODELS;
    for (size_t i = 0; i < n; i++)
        if (kinfer_engine_stats_get(engine, i, &models[i]) != KINFER_OK)
            memset(&models[i], 0, sizeof models[i]);
    char last_error[HEALTH_ERROR_MAX], client_error[HEALTH_ERROR_MAX];
    kinfer_worker_health_snapshot s = {
        .phase = kinfer_worker_health_phase(h),
        .joined = atomic_load(&h->joined) != 0,
        .last_poll_us = atomic_load(&h->last_poll_us),
        .models = models,
        .nmodels = n,
        .last_error = last_error,
        .client_error = client_error,
    };
    pthread_mutex_lock(&h->mu);
    s.now_us = kinfer_mono_us();
    s.unreachable_since = h->unreachable_since;
    s.auth_failed = h->auth_failed;
    s.auth_hint = h->auth_hint;
    /* The client's own error if it came during this outage (it names the
     * cause: refused, resolve failure, SASL), else what the probe saw. */
    if (h->client_error[0] && h->client_error_us > h->last_ok_us)
        snprintf(last_error, sizeof last_error, "%s", h->client_error);
    else
        snprintf(last_error, sizeof last_error, "%s", h->probe_error);
    snprintf(client_error, sizeof client_error, "%s", h->client_error);
    pthread_mutex_unlock(&h->mu);
    kinfer_worker_health_eval(&h->lim, &s, out);
}

/* ---- the probe thread --------------------------------------------------- */

/* Waits on h->cond until mono time `until` (µs) or a stop. Under h->mu. */
static void wait_until(kinfer_worker_health *h, int64_t until) {
    struct timespec ts = {.tv_sec = until / 1000000, .tv_nsec = (until % 1000000) * 1000};
    while (!h->stop && kinfer_mono_us() < until)
        pthread_cond_timedwait(&h->cond, &h->mu, &ts);
}

static void *probe_main(void *arg) {
    kinfer_worker_health *h = arg;
    pthread_setname_np(pthread_self(), "kinfer-health");
    pthread_mutex_lock(&h->mu);
    h->unreachable_since = kinfer_mono_us(); /* unknown until a first answer */
    while (!h->stop) {
        pthread_mutex_unlock(&h->mu);
        int64_t t0 = kinfer_mono_us();
        char why[HEALTH_ERROR_MAX] = "";
        int rc = h->probe(h->ctx, (int)h->interval_ms, why, sizeof why);
        pthread_mutex_lock(&h->mu);
        if (rc == 0) {
            h->unreachable_since = 0;
            h->last_ok_us = kinfer_mono_us();
            h->auth_failed = false;
            h->auth_hint = NULL;
            h->auth_first_us = h->auth_last_us = 0;
            h->auth_logged = h->auth_last_hint = NULL;
            h->probe_error[0] = '\0';
        } else {
            if (!h->unreachable_since)
                h->unreachable_since = t0;
            snprintf(h->probe_error, sizeof h->probe_error, "%s", why);
        }
        pthread_mutex_unlock(&h->mu);
        kinfer_worker_health_verdict v;
        kinfer_worker_health_check(h, h->engine, &v);
        h->verdict(h->ctx, &v);
        pthread_mutex_lock(&h->mu);
        wait_until(h, t0 + h->interval_ms * 1000);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

kinfer_err kinfer_worker_health_start(kinfer_worker_health *h, int64_t interval_ms,
                                      kinfer_worker_probe_fn probe,
                                      kinfer_worker_verdict_fn verdict, void *ctx,
                                      const kinfer_engine *engine, kinfer_error *err) {
    h->interval_ms = interval_ms > 0 ? interval_ms : 1000;
    h->probe = probe;
    h->verdict = verdict;
    h->ctx = ctx;
    h->engine = engine;
    h->stop = false;
    if (pthread_create(&h->thread, NULL, probe_main, h))
        return kinfer_error_set(err, KINFER_ERR_INTERNAL, "cannot start the health probe thread");
    h->started = true;
    return KINFER_OK;
}

void kinfer_worker_health_stop(kinfer_worker_health *h) {
    if (!h->started)
        return;
    pthread_mutex_lock(&h->mu);
    h->stop = true;
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->mu);
    pthread_join(h->thread, NULL);
    h->started = false;
}
