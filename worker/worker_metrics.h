/* worker_metrics.h — the worker's counters, gauges and histograms, updated
 * lock-free from any thread (the per-partition lag table under a mutex) and
 * rendered as Prometheus text for /metrics. Not the HTTP server
 * (worker_http.c) and not a general metrics library: the series are the
 * fixed set DESIGN.md §7 and README "Operations" name. */
#ifndef KINFER_WORKER_METRICS_H
#define KINFER_WORKER_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kinfer/kinfer_error.h"

typedef struct kinfer_worker_metrics kinfer_worker_metrics;

/* Wire statuses (0..5) as rendered in the status label. */
#define KINFER_WORKER_NSTATUS 6

/* Why request partitions are paused (the reason label of
 * kinfer_paused_partitions and kinfer_partition_pauses_total). */
typedef enum kinfer_worker_pause_reason {
    KINFER_WORKER_PAUSE_CONGESTED_MODEL = 0, /* a model they feed is over max_queue */
    KINFER_WORKER_PAUSE_IN_FLIGHT_LIMIT = 1, /* unacknowledged requests at the limit, mostly
                                                queued or computing */
    KINFER_WORKER_PAUSE_PRODUCE_BACKLOG = 2, /* the same limit, mostly answered and waiting
                                                for the producer's acknowledgement */
} kinfer_worker_pause_reason;
#define KINFER_WORKER_NPAUSE_REASONS 3
/* "congested_model", "in_flight_limit", "produce_backlog". */
const char *kinfer_worker_pause_reason_name(kinfer_worker_pause_reason reason);

/* models: names copied; index i is the model_idx used below. */
kinfer_err kinfer_worker_metrics_new(const char *const *models, size_t nmodels,
                                     kinfer_worker_metrics **out, kinfer_error *err);
void kinfer_worker_metrics_destroy(kinfer_worker_metrics *m);
/* Marks a model generative (kind llm): its kinfer_llm_* series are
 * rendered. Before the first render. */
void kinfer_worker_metrics_set_generative(kinfer_worker_metrics *m, int model_idx);

/* One reply produced. model_idx -1 = a model not in the repository;
 * wire_status 0..5. Any thread. */
void kinfer_worker_metrics_reply(kinfer_worker_metrics *m, int model_idx, int wire_status);
/* A request that ran in a batch: its batch size and latencies. Any thread. */
void kinfer_worker_metrics_batch(kinfer_worker_metrics *m, int model_idx, uint32_t batch_size,
                                 int64_t queue_us, int64_t compute_us);
/* A request with a deadline that ran: slack_us = deadline - batch start
 * (negative: started late); it finished late when slack_us < compute_us.
 * Any thread. */
void kinfer_worker_metrics_deadline(kinfer_worker_metrics *m, int model_idx, int64_t slack_us,
                                    int64_t compute_us);
/* End-to-end worker latency: consumed -> reply acknowledged. Any thread. */
void kinfer_worker_metrics_e2e(kinfer_worker_metrics *m, int64_t us);
void kinfer_worker_metrics_consumed(kinfer_worker_metrics *m);
void kinfer_worker_metrics_dlq(kinfer_worker_metrics *m);
void kinfer_worker_metrics_delivery_failed(kinfer_worker_metrics *m);
void kinfer_worker_metrics_abandoned(kinfer_worker_metrics *m);
/* Generations a cancel record ended (poll thread). */
void kinfer_worker_metrics_cancelled(kinfer_worker_metrics *m, size_t n);
/* Schema Registry requests that finished (ok) or failed (registry thread),
 * and the requests waiting for one (poll thread). */
void kinfer_worker_metrics_registry(kinfer_worker_metrics *m, bool ok);
void kinfer_worker_metrics_set_registry_waiting(kinfer_worker_metrics *m, int64_t requests);
void kinfer_worker_metrics_set_in_flight(kinfer_worker_metrics *m, int64_t requests, int64_t bytes);
/* Assigned partitions and how many are paused, all for one reason (an
 * in-flight limit pauses every partition, so it is the reason while it
 * holds; otherwise only congested models pause). Poll thread. */
void kinfer_worker_metrics_set_partitions(kinfer_worker_metrics *m, int64_t assigned,
                                          int64_t paused, kinfer_worker_pause_reason reason);
/* n partitions were just paused for reason. Poll thread. */
void kinfer_worker_metrics_paused(kinfer_worker_metrics *m, kinfer_worker_pause_reason reason,
                                  int64_t n);

/* The scheduler's view of one model, refreshed before each render (the
 * HTTP thread reads kinfer_engine_stats). */
typedef struct kinfer_worker_model_gauges {
    uint64_t queued;      /* requests waiting for a batch */
    uint64_t queued_rows; /* their rows */
    uint64_t in_flight;   /* accepted, not completed */
    uint64_t replicas, replicas_busy;
    bool congested; /* over max_queue, not yet back at the low watermark */
} kinfer_worker_model_gauges;
void kinfer_worker_metrics_set_model(kinfer_worker_metrics *m, int model_idx,
                                     const kinfer_worker_model_gauges *g);

/* Generative models (kind llm). Gauges from the engine's statistics of the
 * model (KV-cache blocks over its replicas, sequences in a step loop), and
 * one observation per finished generation. Any thread.
 * Fed from kinfer_engine_stats (generative, gen_running, kv_blocks_used,
 * kv_blocks_total: worker_http.c at each scrape) and kinfer_engine_result.gen
 * (kinfer_worker_on_complete); worker_loop.c marks models of kind "llm"
 * generative, so their series are rendered. */
typedef struct kinfer_worker_gen_gauges {
    uint64_t running;         /* sequences admitted to a step loop */
    uint64_t kv_blocks_used;  /* KV-cache blocks in use, all replicas */
    uint64_t kv_blocks_total; /* the pools' size */
} kinfer_worker_gen_gauges;
void kinfer_worker_metrics_set_gen(kinfer_worker_metrics *m, int model_idx,
                                   const kinfer_worker_gen_gauges *g);
/* ttft_us: submit -> first token (<= 0: none was sampled); per_token_us:
 * mean gap after the first (<= 0: fewer than two tokens). */
void kinfer_worker_metrics_gen(kinfer_worker_metrics *m, int model_idx, int64_t ttft_us,
                               int64_t per_token_us, uint32_t prompt_tokens,
                               uint32_t completion_tokens, uint32_t preemptions);

/* Consumer lag of one assigned request partition. */
typedef struct kinfer_worker_lag {
    const char *topic;
    int32_t partition;
    int64_t lag; /* messages past the committed offset */
} kinfer_worker_lag;
/* Replaces the lag table (topics copied). Any thread; takes a mutex. */
kinfer_err kinfer_worker_metrics_set_lags(kinfer_worker_metrics *m, const kinfer_worker_lag *lags,
                                          size_t n, kinfer_error *err);

/* The health verdict behind the kinfer_ready / kinfer_live gauges; the
 * reasons are static strings (their label values). Any thread. */
void kinfer_worker_metrics_set_health(kinfer_worker_metrics *m, int ready, const char *ready_reason,
                                      int live, const char *live_reason);
/* One engine completion handed to the produce path, by wire status (before
 * its delivery: kinfer_requests_total counts at delivery). Engine threads. */
void kinfer_worker_metrics_completion(kinfer_worker_metrics *m, int wire_status);
/* How long one engine completion callback held its engine thread (the
 * histogram and the running maximum). Engine threads. */
void kinfer_worker_metrics_callback(kinfer_worker_metrics *m, int64_t us);
/* librdkafka refused a record (QUEUE_FULL); it waits in the hand-off. */
void kinfer_worker_metrics_queue_full(kinfer_worker_metrics *m);
/* The produce hand-off: records and bytes waiting now, most ever waiting. */
void kinfer_worker_metrics_set_handoff(kinfer_worker_metrics *m, int64_t records, int64_t bytes,
                                       int64_t peak);
/* The in-flight window (what the hand-off is bounded by). */
void kinfer_worker_metrics_set_in_flight_limit(kinfer_worker_metrics *m, int64_t requests);
/* Longest completion callback so far, in µs (tests, the final log line). */
int64_t kinfer_worker_metrics_callback_max_us(const kinfer_worker_metrics *m);
int kinfer_worker_metrics_ready(const kinfer_worker_metrics *m);

/* Read back one counter (tests, the final log line). */
uint64_t kinfer_worker_metrics_replies(const kinfer_worker_metrics *m, int model_idx,
                                       int wire_status);
uint64_t kinfer_worker_metrics_dlq_count(const kinfer_worker_metrics *m);
uint64_t kinfer_worker_metrics_delivery_failed_count(const kinfer_worker_metrics *m);

/* Prometheus text exposition format (version 0.0.4). *out is malloc'd,
 * NUL-terminated; the caller frees it. */
kinfer_err kinfer_worker_metrics_render(const kinfer_worker_metrics *m, const char *worker_id,
                                        char **out, size_t *len, kinfer_error *err);

#endif
