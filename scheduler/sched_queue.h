/* sched_queue.h — one model's queue of waiting requests: a binary min-heap in
 * lane-then-EDF order (every online request before every bulk one; within a
 * lane deadline, then priority, then arrival) plus an arrival-ordered
 * list for "how long has the oldest waited". It can also list the next k in
 * EDF order without removing them and remove any one of them, which length
 * grouping (engine_batch.c) needs. Not thread-safe: the engine lock guards
 * it. Knows nothing of batches or completions. */
#ifndef SCHED_QUEUE_H
#define SCHED_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kinfer/kinfer_tensor.h"
#include "kinfer/kinfer_model.h"

/* No deadline sorts after every real one. */
#define SCHED_NO_DEADLINE INT64_MAX

/* One accepted request while the engine owns it (queued or in a batch).
 * Inputs/params are borrowed from the submitter until its completion. */
typedef struct sched_req {
    const kinfer_tensor *inputs;
    size_t ninputs;
    const kinfer_param *params;
    size_t nparams;
    void *token;
    void *owner; /* the engine's model; opaque here */
    kinfer_request_cost cost;
    int64_t deadline_us; /* engine clock; SCHED_NO_DEADLINE when none */
    int32_t priority;
    bool bulk;          /* the bulk lane (priority < 0): runs after every online request */
    uint64_t seq;       /* arrival order, unique per engine */
    int64_t arrival_us; /* engine clock at submit */
    size_t heap_pos;    /* index in the queue's heap while queued */
    /* arrival list while queued; `newer` also links completion lists */
    struct sched_req *older, *newer;
    /* arrival list of its lane (online or bulk) while queued */
    struct sched_req *lane_older, *lane_newer;
    /* A generation (engine_gen.h) embeds its sched_req and points here to
     * itself; NULL for a tensor request. */
    struct gen_seq *gen;
} sched_req;

typedef struct sched_queue {
    sched_req **heap;
    size_t len, cap;
    sched_req *oldest, *newest; /* arrival list of the queued requests */
    uint64_t rows;              /* sum of cost.rows queued */
    uint64_t tokens;            /* sum of cost.tokens queued */
    /* Per lane (0 online, 1 bulk): arrival list, count, rows, tokens. */
    sched_req *lane_oldest[2], *lane_newest[2];
    size_t lane_len[2];
    uint64_t lane_rows[2], lane_tokens[2];
} sched_queue;

/* 1 when a runs before b: online before bulk, then earlier deadline, then
 * higher priority, then earlier arrival. */
int sched_req_before(const sched_req *a, const sched_req *b);

void sched_queue_init(sched_queue *q);
/* Frees the heap array only; the requests belong to the caller. */
void sched_queue_free(sched_queue *q);
/* O(log n). Returns -1 only when growing the heap fails (nothing changed). */
int sched_queue_push(sched_queue *q, sched_req *r);
/* Makes room for n queued requests, so that pushes up to that length
 * cannot fail. Returns -1 when growing fails (nothing changed). */
int sched_queue_reserve(sched_queue *q, size_t n);
/* The request that runs next, or NULL. O(1). */
sched_req *sched_queue_peek(const sched_queue *q);
/* Removes and returns the next request, or NULL. O(log n). */
sched_req *sched_queue_pop(sched_queue *q);
/* The request that has waited longest, or NULL. O(1). */
sched_req *sched_queue_oldest(const sched_queue *q);
/* The request of a lane (bulk or online) that has waited longest, or NULL.
 * O(1). */
sched_req *sched_queue_lane_oldest(const sched_queue *q, bool bulk);
/* Removes r, which must be queued in q. O(log n). */
void sched_queue_remove(sched_queue *q, sched_req *r);
/* Scratch for sched_queue_window: a heap index with a copy of its EDF key,
 * so the walk compares without chasing pointers into the queue. */
typedef struct sched_queue_cursor {
    int64_t deadline_us;
    uint64_t seq;
    int32_t priority;
    bool bulk;
    size_t pos;
} sched_queue_cursor;
/* Writes the first min(k, len) requests in EDF order to out, first first,
 * without removing them; scratch holds k + 1 entries. O(k log k): a
 * best-first walk down the heap, never the whole queue. Returns how many. */
size_t sched_queue_window(const sched_queue *q, size_t k, sched_req **out,
                          sched_queue_cursor *scratch);

#endif
