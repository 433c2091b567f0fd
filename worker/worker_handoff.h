/* worker_handoff.h — the bounded hand-off between the threads that finish
 * records (engine executors and the expiry timer, the poll thread) and the
 * producer thread that gives them to librdkafka (worker_produce.c): a FIFO
 * of intrusive nodes under one mutex, plus a wake pipe. A push takes the
 * mutex for a few instructions and, when the queue was empty, writes one
 * byte to the pipe; it never waits for Kafka.
 *
 * Bounded by construction rather than by refusing a push: every record is a
 * consumed, unacknowledged request, counted in the worker's in-flight
 * window, which the poll loop stops consuming at (worker_backpressure.c).
 * So the queue never holds more records than the window; `peak` shows how
 * close it came, and `bytes` counts against worker's in-flight byte limit.
 * No Kafka here. Not the produce (worker_produce.c). */
#ifndef KINFER_WORKER_HANDOFF_H
#define KINFER_WORKER_HANDOFF_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include "kinfer/kinfer_error.h"

/* Embedded in what is queued (kinfer_worker_msg). */
typedef struct kinfer_worker_handoff_node {
    struct kinfer_worker_handoff_node *next;
    size_t bytes; /* what the record holds beyond its request (counted while queued) */
} kinfer_worker_handoff_node;

typedef struct kinfer_worker_handoff {
    pthread_mutex_t lock; /* guards head, tail */
    kinfer_worker_handoff_node *head, *tail;
    /* Written under lock, read by any thread without it (gauges). */
    _Atomic size_t n, bytes, peak;
    int fd[2]; /* wake pipe, both ends non-blocking: [0] is polled, [1] written */
    int init;
} kinfer_worker_handoff;

kinfer_err kinfer_worker_handoff_init(kinfer_worker_handoff *h, kinfer_error *err);
/* Nodes still queued stay their owners' (the caller empties it first). */
void kinfer_worker_handoff_destroy(kinfer_worker_handoff *h);

/* Appends node. Any thread; never blocks beyond the mutex. */
void kinfer_worker_handoff_push(kinfer_worker_handoff *h, kinfer_worker_handoff_node *node);
/* Puts a node just taken by pop back at the front (a record librdkafka
 * refused for now keeps its place). The consumer thread only. */
void kinfer_worker_handoff_push_front(kinfer_worker_handoff *h, kinfer_worker_handoff_node *node);
/* The oldest node, or NULL when empty. One consumer thread at a time. */
kinfer_worker_handoff_node *kinfer_worker_handoff_pop(kinfer_worker_handoff *h);

/* Records queued now (and their bytes when bytes is not NULL). Any thread. */
size_t kinfer_worker_handoff_len(const kinfer_worker_handoff *h, size_t *bytes);
/* Most records ever queued at once. Any thread. */
size_t kinfer_worker_handoff_peak(const kinfer_worker_handoff *h);

/* The descriptor to poll for POLLIN: readable after a push into an empty
 * queue, a wake, or whatever else was told to write to it (librdkafka's
 * queue event, worker_produce.c). */
int kinfer_worker_handoff_fd(const kinfer_worker_handoff *h);
/* Makes the fd readable. Any thread; async-signal-safe. */
void kinfer_worker_handoff_wake(kinfer_worker_handoff *h);
/* Reads what the fd holds, so the next poll waits again. */
void kinfer_worker_handoff_clear_wake(kinfer_worker_handoff *h);

#endif
