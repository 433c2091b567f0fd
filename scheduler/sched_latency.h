/* sched_latency.h — online estimate of one model's batch compute time as a
 * function of batch size in the model's units: rows for tensor models,
 * padded tokens (rows x longest sequence) for text models, whose cost
 * follows tokens, not rows. Smoothed mean and deviation per power-of-two
 * bucket, interpolated between buckets, a conservative prior before any
 * measurement. Not thread-safe: the engine lock guards it. */
#ifndef SCHED_LATENCY_H
#define SCHED_LATENCY_H

#include <stdint.h>

/* Bucket k holds batches of [2^k, 2^(k+1)) units; the last one all above. */
#define SCHED_LATENCY_BUCKETS 24

typedef struct sched_latency_bucket {
    uint64_t samples;
    double units;   /* smoothed size of the batches seen here */
    double mean_us; /* smoothed compute time */
    double dev_us;  /* smoothed absolute deviation */
} sched_latency_bucket;

typedef struct sched_latency {
    int64_t prior_us; /* answer for every size until something is measured */
    sched_latency_bucket bucket[SCHED_LATENCY_BUCKETS];
} sched_latency;

void sched_latency_init(sched_latency *lat, int64_t prior_us);
/* Records one batch of `units` (rows or padded tokens) that took `us`
 * microseconds. */
void sched_latency_record(sched_latency *lat, uint32_t units, int64_t us);
/* Expected compute time of a batch of `units`, with a safety allowance
 * of twice the deviation (as TCP's RTO does with RTT variance). */
int64_t sched_latency_estimate(const sched_latency *lat, uint32_t units);
/* Batches measured so far, over all sizes. */
uint64_t sched_latency_samples(const sched_latency *lat);

#endif
