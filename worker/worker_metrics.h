/* worker_metrics.h — the worker's counters, gauges and histograms, updated
 * lock-free from any thread and rendered as Prometheus text for /metrics.
 * Not the HTTP server (worker_http.c) and not a general metrics library:
 * the series are the fixed set DESIGN.md §7 names. */
#ifndef KINFER_WORKER_METRICS_H
#define KINFER_WORKER_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "kinfer/kinfer_error.h"

typedef struct kinfer_worker_metrics kinfer_worker_metrics;

/* Wire statuses (0..5) as rendered in the status label. */
#define KINFER_WORKER_NSTATUS 6

/* models: names copied; index i is the model_idx used below. */
kinfer_err kinfer_worker_metrics_new(const char *const *models, size_t nmodels,
                                     kinfer_worker_metrics **out, kinfer_error *err);
void kinfer_worker_metrics_destroy(kinfer_worker_metrics *m);

/* One reply produced. model_idx -1 = a model not in the repository;
 * wire_status 0..5. Any thread. */
void kinfer_worker_metrics_reply(kinfer_worker_metrics *m, int model_idx, int wire_status);
/* A request that ran in a batch: its batch size and latencies. Any thread. */
void kinfer_worker_metrics_batch(kinfer_worker_metrics *m, int model_idx, uint32_t batch_size,
                                 int64_t queue_us, int64_t compute_us);
/* End-to-end worker latency: consumed -> reply acknowledged. Any thread. */
void kinfer_worker_metrics_e2e(kinfer_worker_metrics *m, int64_t us);
void kinfer_worker_metrics_consumed(kinfer_worker_metrics *m);
void kinfer_worker_metrics_dlq(kinfer_worker_metrics *m);
void kinfer_worker_metrics_delivery_failed(kinfer_worker_metrics *m);
void kinfer_worker_metrics_abandoned(kinfer_worker_metrics *m);
void kinfer_worker_metrics_set_in_flight(kinfer_worker_metrics *m, int64_t requests, int64_t bytes);
void kinfer_worker_metrics_set_partitions(kinfer_worker_metrics *m, int64_t assigned,
                                          int64_t paused);
void kinfer_worker_metrics_set_ready(kinfer_worker_metrics *m, int ready);
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
