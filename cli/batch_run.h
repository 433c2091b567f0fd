/* batch_run.h — the `kinfer batch` job loop: reads the input, sends one
 * kinfer request per line through Kafka within a rate and an in-flight
 * window, matches replies, writes output/error lines and checkpoints them
 * (batch_state.h). Argument parsing is cmd_batch.c's. */
#ifndef KINFER_BATCH_RUN_H
#define KINFER_BATCH_RUN_H

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "batch_progress.h"

/* Live counts of a job, for a caller that reports them (the gateway's
 * request_counts): lines in the input, lines in the output, lines in the
 * errors file. */
typedef struct batch_counts {
    _Atomic uint64_t total, completed, failed;
} batch_counts;

typedef struct batch_opts {
    const char *brokers, *topic, *reply_topic; /* reply_topic: expanded */
    const char *input, *output, *errors, *job, *model;
    bool text_input; /* plain text lines, not JSONL */
    uint32_t max_in_flight;
    double rate;         /* lines per second; 0 = no limit */
    int64_t timeout_ms;  /* per attempt */
    uint32_t attempts;   /* tries per line before its error line */
    int32_t priority;    /* -1: the bulk lane */
    int64_t deadline_ms; /* per request from its sending; 0 = none */
    const char *const *props;
    size_t nprops;
    batch_progress_mode progress;
    /* Set from a signal handler: 1 = cancel (stop sending, let in-flight
     * lines finish up to timeout_ms), 2 = stop now. */
    volatile sig_atomic_t *stop;
    batch_counts *counts; /* may be NULL */
} batch_opts;

/* Exit codes of `kinfer batch`. */
#define BATCH_EXIT_DONE 0      /* every line is in the output or errors file */
#define BATCH_EXIT_USAGE 2     /* bad arguments, or an output of another job */
#define BATCH_EXIT_FAILURE 3   /* Kafka or file failure: resumable */
#define BATCH_EXIT_CANCELLED 4 /* cancelled/interrupted: resumable */

int batch_run(const batch_opts *o);

#endif
