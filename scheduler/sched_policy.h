/* sched_policy.h — when to dispatch a model's batch: a pure function of the
 * queue's summary, the model's limits, the latency estimate and `now`, so
 * tests can drive it step by step with a fake clock. It forms no batch and
 * takes no lock; the engine does both. */
#ifndef SCHED_POLICY_H
#define SCHED_POLICY_H

#include <stdbool.h>
#include <stdint.h>

typedef enum sched_trigger {
    SCHED_WAIT = 0,          /* not yet; come back at *wake_us */
    SCHED_DISPATCH_FULL,     /* rows (or tokens) fill a batch */
    SCHED_DISPATCH_DELAY,    /* the oldest request waited max_queue_delay_us */
    SCHED_DISPATCH_DEADLINE, /* waiting longer would miss the earliest deadline */
    SCHED_DISPATCH_DRAIN     /* shutting down: run what is queued now */
} sched_trigger;

typedef struct sched_policy_input {
    uint64_t queued;              /* requests waiting */
    uint64_t queued_rows;         /* their rows */
    uint64_t queued_tokens;       /* their padded tokens (text models) */
    int64_t oldest_arrival_us;    /* when the longest-waiting one arrived */
    int64_t earliest_deadline_us; /* INT64_MAX when none has a deadline */
    uint32_t max_batch_size;      /* rows */
    uint32_t max_batch_tokens;    /* 0 = no limit */
    int64_t max_queue_delay_us;   /* <= 0: dispatch as soon as anything waits */
    int64_t estimate_us;          /* compute time of the batch that would form now */
    int64_t margin_us;            /* slack kept before a deadline */
    bool draining;
} sched_policy_input;

/* Decides at `now`. When the answer is SCHED_WAIT, *wake_us is the earliest
 * time at which the answer can change without new input (a new request, a
 * finished batch); INT64_MAX when never. On a dispatch, *wake_us = now. */
sched_trigger sched_policy_decide(const sched_policy_input *in, int64_t now, int64_t *wake_us);

const char *sched_trigger_name(sched_trigger t);

#endif
