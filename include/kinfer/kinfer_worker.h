/* kinfer_worker.h — the kinfer worker process as an object: a Kafka consumer in a
 * group, the engine, a producer for replies and dead letters, offset
 * watermarks, backpressure, and the metrics/health endpoint.
 *
 * Threads (docs/ARCHITECTURE.md): kinfer_worker_run is the poll loop (the
 * caller's thread); engine completions encode replies on engine threads
 * and hand them to the worker's producer thread, which produces them and
 * serves the delivery reports; the HTTP endpoint has its own thread. Not
 * the CLI (cmd_worker.c) and not the embedded cluster (worker_embedded.c). */
#ifndef KINFER_WORKER_H
#define KINFER_WORKER_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kinfer/kinfer_config.h"
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
    /* Tests only (KINFER_TEST_WEDGE_FILE): while this file exists the poll
     * loop stops polling, to show /healthz turning 503. NULL = off. */
    const char *test_wedge_file;
    /* Tests only (KINFER_TEST_CLOSE_DIRECTLY=1): stop without the
     * unsubscribe-before-close work-around, to show the librdkafka close
     * hang it avoids (docs/RELIABILITY.md). */
    bool test_close_directly;
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

/* What a librdkafka client error (error callback: code, reason) says about
 * the configuration (worker_kafka_diag.c). Anything but OTHER is a wrong
 * credential, mechanism, certificate or protocol: retrying does not fix
 * it. Shared with `kinfer send` and `kinfer bench`. Pure; any thread. */
typedef enum kinfer_kafka_error_class {
    KINFER_KAFKA_ERROR_OTHER = 0,      /* not a configuration problem (or not known to be) */
    KINFER_KAFKA_ERROR_SASL,           /* credentials refused */
    KINFER_KAFKA_ERROR_SASL_MECHANISM, /* the broker does not offer sasl.mechanism */
    KINFER_KAFKA_ERROR_TLS_TRUST,      /* the broker's certificate is not trusted */
    KINFER_KAFKA_ERROR_TLS,            /* another TLS failure */
    KINFER_KAFKA_ERROR_PROTOCOL,       /* security.protocol does not match the listener */
} kinfer_kafka_error_class;
kinfer_kafka_error_class kinfer_kafka_diagnose(int code, const char *reason);
/* "sasl_credentials", "tls_untrusted", ... (log fields); "other". */
const char *kinfer_kafka_error_class_name(kinfer_kafka_error_class cls);
/* One line naming the properties to check; NULL for OTHER. */
const char *kinfer_kafka_error_hint(kinfer_kafka_error_class cls);
bool kinfer_kafka_error_is_config(kinfer_kafka_error_class cls);

#endif
