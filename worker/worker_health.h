/* worker_health.h — module-local: what /readyz and /healthz say and why.
 * Readiness: models loaded, the consumer has joined its group, the cluster
 * answers (a metadata probe on the producer, so a SIGSTOPped broker counts
 * as down too) and the worker is not draining. Liveness: the poll loop has
 * polled within max.poll.interval.ms and no executor is stuck inside one
 * batch (engine stats). A worker that only waits for a broker stays live.
 *
 * The verdict is a pure function of a snapshot (kinfer_worker_health_eval,
 * unit-tested); the rest gathers the snapshot from any thread: the poll
 * loop marks polls and joins, librdkafka's error callback reports errors,
 * the probe thread asks the cluster, the HTTP thread reads. */
#ifndef KINFER_WORKER_HEALTH_H
#define KINFER_WORKER_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kinfer/kinfer_config.h"
#include "kinfer/kinfer_engine.h"
#include "kinfer/kinfer_error.h"

typedef enum kinfer_worker_phase {
    KINFER_WORKER_PHASE_STARTING = 0, /* created; kinfer_worker_run not serving yet */
    KINFER_WORKER_PHASE_RUNNING,      /* the poll loop serves */
    KINFER_WORKER_PHASE_DRAINING,     /* stopping: finishing in-flight work, leaving */
    KINFER_WORKER_PHASE_STOPPED,
} kinfer_worker_phase;

/* Reasons, as in the kinfer_ready / kinfer_live gauges' reason label. */
#define KINFER_HEALTH_OK "ok"
#define KINFER_HEALTH_STARTING "starting"
#define KINFER_HEALTH_NOT_JOINED "not_joined"
#define KINFER_HEALTH_BROKERS_DOWN "brokers_down"
#define KINFER_HEALTH_AUTH_FAILED "auth_failed"
#define KINFER_HEALTH_DRAINING "draining"
#define KINFER_HEALTH_STOPPED "stopped"
#define KINFER_HEALTH_POLL_STALLED "poll_stalled"
#define KINFER_HEALTH_BATCH_STALLED "batch_stalled"

/* Everything the verdict depends on, at one instant (monotonic µs). */
typedef struct kinfer_worker_health_snapshot {
    int64_t now_us;
    kinfer_worker_phase phase;
    bool joined;               /* a first assignment (possibly empty) was received */
    int64_t last_poll_us;      /* the poll loop's last turn; 0 = none yet */
    int64_t unreachable_since; /* first failed probe of the current outage; 0 = reachable */
    bool auth_failed;          /* the last client error was an authentication/TLS failure */
    const char *auth_hint;     /* then: which properties to check (static); NULL = none */
    const char *last_error;    /* the most telling error of the outage; "" = none */
    const char *client_error;  /* the clients' last error, however old; "" = none */
    const kinfer_engine_stats *models;
    size_t nmodels;
} kinfer_worker_health_snapshot;

typedef struct kinfer_worker_health_limits {
    int64_t broker_grace_us; /* unreachable longer: not ready */
    int64_t poll_bound_us;   /* max.poll.interval.ms: no poll for longer: not live */
    int64_t stall_factor;    /* inside one batch > factor x estimate ... */
    int64_t stall_min_us;    /* ... and > this: not live */
} kinfer_worker_health_limits;

typedef struct kinfer_worker_health_verdict {
    bool ready, live;
    const char *ready_reason, *live_reason; /* KINFER_HEALTH_*, static */
    char ready_line[512];                   /* "ok" or "not ready: ..." (no newline) */
    char live_line[384];                    /* "ok" or "not live: ..." */
} kinfer_worker_health_verdict;

/* The verdict for a snapshot. Pure; any thread. */
void kinfer_worker_health_eval(const kinfer_worker_health_limits *lim,
                               const kinfer_worker_health_snapshot *s,
                               kinfer_worker_health_verdict *out);

/* ---- the live state ---------------------------------------------------- */

typedef struct kinfer_worker_health kinfer_worker_health;

kinfer_err kinfer_worker_health_new(const kinfer_worker_health_limits *lim,
                                    kinfer_worker_health **out, kinfer_error *err);
/* Stops the probe thread if running. NULL is fine. */
void kinfer_worker_health_destroy(kinfer_worker_health *h);

void kinfer_worker_health_set_phase(kinfer_worker_health *h, kinfer_worker_phase phase);
kinfer_worker_phase kinfer_worker_health_phase(const kinfer_worker_health *h);
/* Poll thread: a loop turn, a (first) assignment. */
void kinfer_worker_health_polled(kinfer_worker_health *h, int64_t now_us);
void kinfer_worker_health_joined(kinfer_worker_health *h);
/* Whether a first assignment was received (any thread). */
bool kinfer_worker_health_is_joined(kinfer_worker_health *h);
/* librdkafka's error callback (any client thread): code is an
 * rd_kafka_resp_err_t, name its rd_kafka_err2name. Returns true for the
 * first authentication/TLS failure (kinfer_kafka_diagnose) of its class
 * since the cluster last answered: the one to log. */
bool kinfer_worker_health_client_error(kinfer_worker_health *h, int code, const char *name,
                                       const char *reason);

/* Start-up: true when the worker has never reached the cluster (no answer
 * to a probe, no group joined) and authentication/TLS failures have gone on
 * for bound_us (> 0), the latest within the last bound_us; *hint gets the
 * latest one's hint (static), last_error the clients' last error. The poll
 * loop then stops with a start-up error instead of retrying forever. Any
 * thread. */
bool kinfer_worker_health_startup_failed(kinfer_worker_health *h, int64_t bound_us,
                                         const char **hint, char *last_error, size_t len);

/* What the probe thread needs from the worker: one call that asks the
 * cluster (returns 0 on an answer, else fills why), and one that is told
 * each fresh verdict (logging, gauges). */
typedef int (*kinfer_worker_probe_fn)(void *ctx, int timeout_ms, char *why, size_t why_len);
typedef void (*kinfer_worker_verdict_fn)(void *ctx, const kinfer_worker_health_verdict *v);

/* Starts the probe thread: every interval_ms, probe(ctx, interval_ms) and
 * then verdict(ctx, ...) with a fresh evaluation against engine. */
kinfer_err kinfer_worker_health_start(kinfer_worker_health *h, int64_t interval_ms,
                                      kinfer_worker_probe_fn probe,
                                      kinfer_worker_verdict_fn verdict, void *ctx,
                                      const kinfer_engine *engine, kinfer_error *err);
void kinfer_worker_health_stop(kinfer_worker_health *h);

/* A fresh verdict now (HTTP thread, probe thread). engine may be NULL. */
void kinfer_worker_health_check(kinfer_worker_health *h, const kinfer_engine *engine,
                                kinfer_worker_health_verdict *out);

#endif
