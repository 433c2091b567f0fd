/* worker.h — the kinfer worker process as an object: a Kafka consumer in a
 * group, the engine, a producer for replies and dead letters, offset
 * watermarks, backpressure, and the metrics/health endpoint.
 *
 * Threads: kinfer_worker_run is the poll loop (the caller's thread); engine
 * completions encode and produce replies on engine threads; delivery
 * reports arrive on the worker's producer thread. Not the CLI (cmd_worker.c)
 * and not the embedded cluster (worker_embedded.c). */
#ifndef KINFER_WORKER_H
#define KINFER_WORKER_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "kinfer/kinfer_error.h"

typedef struct kinfer_worker kinfer_worker;

/* Process-level settings that are not (yet) config keys. */
typedef struct kinfer_worker_options {
    const char *brokers_override; /* non-NULL: use instead of cfg->kafka.brokers */
    bool embedded;                /* brokers_override is the in-process cluster */
    uint32_t max_in_flight;       /* consumed, unacknowledged requests before pausing; 0 = auto */
    uint64_t max_in_flight_bytes; /* same in message bytes; 0 = 256 MiB */
    /* Checked by the poll loop; the signal handler sets it (async-signal-safe). */
    const volatile sig_atomic_t *stop_flag;
} kinfer_worker_options;

/* Loads the models and creates the Kafka clients (nothing is consumed
 * until run). cfg must outlive the worker. */
kinfer_err kinfer_worker_new(const kinfer_config *cfg, const kinfer_worker_options *opts,
                             kinfer_worker **out, kinfer_error *err);

/* Subscribes and serves until *stop_flag becomes non-zero or a fatal Kafka
 * error; then stops consuming, drains the engine (worker.drain_timeout_ms),
 * flushes the producer, commits synchronously and leaves the group.
 * KINFER_OK on a clean stop. */
kinfer_err kinfer_worker_run(kinfer_worker *w, kinfer_error *err);

void kinfer_worker_destroy(kinfer_worker *w);

#endif
