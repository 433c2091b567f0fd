/* kinfer_engine.h — the public engine API: load a model repository, submit
 * requests, get completions. The engine batches by model and deadline
 * (DESIGN.md §4) and runs batches on device executors.
 *
 * Knows nothing of Kafka or Avro: the worker translates messages into
 * kinfer_engine_request and results into replies. */
#ifndef KINFER_ENGINE_H
#define KINFER_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kinfer/kinfer_clock.h"
#include "kinfer/kinfer_error.h"
#include "kinfer/kinfer_tensor.h"
#include "kinfer_model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kinfer_engine kinfer_engine;

#define KINFER_MAX_DEVICES 8

/* One model entry of the repository. Strings are copied by kinfer_engine_new. */
typedef struct kinfer_model_config {
    const char *name;    /* what requests name in `model` */
    const char *version; /* reported in replies; NULL = none */
    kinfer_model_options load;
    const char *devices[KINFER_MAX_DEVICES]; /* "cpu", "cuda:0", ... in preference order */
    int ndevices;
    int replicas_per_device;      /* >= 1 */
    uint32_t max_batch_size;      /* rows per batch */
    uint32_t max_batch_tokens;    /* text models: padded tokens per batch; 0 = no limit */
    int64_t max_queue_delay_us;   /* longest the oldest queued request waits for company */
    int64_t default_timeout_ms;   /* deadline for requests without one; 0 = none */
    uint32_t max_queue;           /* high watermark (requests queued): congestion reported */
    uint32_t queue_low_watermark; /* congestion cleared at or below; default max_queue/2 */
    uint32_t max_queue_hard;      /* 0 = never reject; else OVERLOADED beyond it */
} kinfer_model_config;

/* Everything a completion carries. Valid only during the callback; copy what
 * you need. Exactly one completion per accepted request. */
typedef struct kinfer_engine_result {
    void *token; /* the request's opaque token */
    kinfer_err status;
    const char *error; /* message when status != KINFER_OK, else NULL */
    const kinfer_tensor *outputs;
    size_t noutputs;
    const char *model_version; /* may be NULL */
    const char *device;        /* e.g. "cpu", "cuda:0"; "" when not run */
    int64_t queue_us;          /* submit -> batch start */
    int64_t compute_us;        /* batch run time */
    uint32_t batch_size;       /* requests in the batch */
} kinfer_engine_result;

/* Called from an engine thread (executor or expiry timer). Must not block
 * for long and must not call kinfer_engine_shutdown/destroy. May call
 * kinfer_engine_submit. */
typedef void (*kinfer_engine_complete_fn)(void *ctx, const kinfer_engine_result *result);

/* Queue watermark crossing for one model: congested=true when the queue
 * passes max_queue, false when it drains to queue_low_watermark. Called
 * from an engine thread or from inside kinfer_engine_submit. */
typedef void (*kinfer_engine_congestion_fn)(void *ctx, const char *model, bool congested);

typedef struct kinfer_engine_config {
    const kinfer_model_config *models;
    size_t nmodels;
    int cpu_threads;    /* CPU backend threads; 0 = online cores */
    kinfer_clock clock; /* zero-initialised = system wall clock */
    kinfer_engine_complete_fn on_complete;
    kinfer_engine_congestion_fn on_congestion; /* may be NULL */
    void *callback_ctx;
} kinfer_engine_config;

typedef struct kinfer_engine_request {
    kinfer_str model;
    kinfer_str model_version;    /* empty = any */
    const kinfer_tensor *inputs; /* must stay valid until the completion returns */
    size_t ninputs;
    const kinfer_param *params; /* same lifetime as inputs */
    size_t nparams;
    int64_t deadline_us; /* absolute Unix epoch µs; 0 = the model's default timeout */
    int32_t priority;    /* higher first among equal deadlines */
    void *token;         /* returned in the completion */
} kinfer_engine_request;

/* Loads every model and starts executors. Errors name the model. */
kinfer_err kinfer_engine_new(const kinfer_engine_config *cfg, kinfer_engine **out,
                             kinfer_error *err);

/* Queues a request. KINFER_OK: exactly one completion will follow. Any
 * error (MODEL_NOT_FOUND, INVALID_REQUEST, OVERLOADED, DEADLINE_EXCEEDED,
 * SHUTDOWN): no completion; the caller answers the request itself.
 * Thread-safe. */
kinfer_err kinfer_engine_submit(kinfer_engine *engine, const kinfer_engine_request *req,
                                kinfer_error *err);

/* Stops accepting, runs what is queued for up to drain_timeout_ms, then
 * completes everything left with KINFER_ERR_SHUTDOWN. Returns when every
 * accepted request has had its completion. Idempotent. */
void kinfer_engine_shutdown(kinfer_engine *engine, int64_t drain_timeout_ms);
/* Shuts down (drain 0 if not yet) and frees. */
void kinfer_engine_destroy(kinfer_engine *engine);

/* Requests accepted and not yet completed, over all models. */
size_t kinfer_engine_in_flight(const kinfer_engine *engine);

/* Per-model counters and the scheduler's view, for /metrics (additive). */
typedef struct kinfer_engine_stats {
    const char *name;             /* valid for the engine's lifetime */
    const char *version;          /* may be NULL */
    uint64_t queued;              /* waiting for a batch */
    uint64_t queued_rows;         /* their rows */
    uint64_t in_flight;           /* accepted and not completed (queued + running) */
    uint64_t accepted;            /* submits that returned KINFER_OK */
    uint64_t completed_ok;        /* completions with status OK */
    uint64_t completed_error;     /* completions with any other status (expired included) */
    uint64_t expired;             /* DEADLINE_EXCEEDED while queued */
    uint64_t rejected_overloaded; /* submits refused at max_queue_hard */
    uint64_t batches;             /* batches dispatched */
    uint64_t rows;                /* rows in those batches */
    bool congested;               /* above the high watermark, not yet at the low one */
    size_t replicas;
    size_t replicas_busy;
    uint64_t latency_samples;      /* batches measured by the latency estimator */
    int64_t latency_estimate_1_us; /* estimated compute time of a 1-row batch */
    /* ... of a full batch: max_batch_size rows, or max_batch_tokens padded
     * tokens for a text model with a token budget */
    int64_t latency_estimate_max_us;
    int64_t dispatch_lag_us; /* engine-wide timer + thread hand-off lag added to the margin */
} kinfer_engine_stats;

/* Number of models; indexes 0..n-1 are valid for kinfer_engine_stats_get. */
size_t kinfer_engine_model_count(const kinfer_engine *engine);
/* A consistent snapshot of one model's counters. Thread-safe.
 * KINFER_ERR_INVALID_ARG when index is out of range. */
kinfer_err kinfer_engine_stats_get(const kinfer_engine *engine, size_t index,
                                   kinfer_engine_stats *out);

#ifdef __cplusplus
}
#endif
#endif
