/* worker_offsets.h — at-least-once bookkeeping: which consumed offsets are
 * finished, per (topic, partition), and the offset that is safe to commit
 * (the lowest unfinished one; Kafka's committed offset is "next to read").
 *
 * Two layers. kinfer_worker_watermark is the pure data structure (no locks,
 * no Kafka): a ring of consumed offsets in arrival order, finished out of
 * order. kinfer_worker_parts is the table of partitions the worker has seen,
 * each with a watermark, a mutex and a generation that changes on
 * assign/revoke so that completions from before a rebalance are ignored.
 * Each partition also carries the exactly-once release order (worker_txn.c
 * uses it; the fields are plain data here).
 * Not the committer: the poll loop asks for commit points and commits. */
#ifndef KINFER_WORKER_OFFSETS_H
#define KINFER_WORKER_OFFSETS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kinfer/kinfer_error.h"

/* ---- watermark: one partition, single-threaded ------------------------- */

typedef enum kinfer_worker_slot_state {
    KINFER_WORKER_SLOT_PENDING = 0, /* consumed, reply not yet acknowledged */
    KINFER_WORKER_SLOT_DONE = 1,    /* reply (or DLQ record) acknowledged */
    KINFER_WORKER_SLOT_FAILED = 2   /* delivery finally failed: blocks the commit point */
} kinfer_worker_slot_state;

typedef struct kinfer_worker_slot {
    int64_t offset;
    uint8_t state; /* kinfer_worker_slot_state */
} kinfer_worker_slot;

typedef struct kinfer_worker_watermark {
    kinfer_worker_slot *ring; /* capacity entries, power of two */
    uint64_t capacity;
    uint64_t head;      /* seq of the oldest entry still tracked */
    uint64_t tail;      /* seq the next add gets */
    int64_t last_added; /* highest offset added; -1 before the first */
    uint64_t npending;  /* entries in PENDING state */
    uint64_t nfailed;   /* entries in FAILED state */
} kinfer_worker_watermark;

/* Outcome of kinfer_worker_watermark_complete. */
typedef enum kinfer_worker_complete_result {
    KINFER_WORKER_COMPLETE_OK = 0,
    KINFER_WORKER_COMPLETE_DUPLICATE = 1, /* already finished (or already passed) */
    KINFER_WORKER_COMPLETE_UNKNOWN = 2    /* seq never handed out */
} kinfer_worker_complete_result;

void kinfer_worker_watermark_init(kinfer_worker_watermark *wm);
void kinfer_worker_watermark_free(kinfer_worker_watermark *wm);
/* Forgets everything (after revoke/assign); keeps the ring's memory. */
void kinfer_worker_watermark_reset(kinfer_worker_watermark *wm);

/* Records a consumed offset, which must be above every offset added since
 * the last reset (gaps are fine: compaction and transaction markers make
 * them). On success *seq identifies the entry for complete/fail.
 * KINFER_ERR_INVALID_ARG when offset <= the last added (a duplicate or a
 * rewind: the caller processes the message untracked, the original entry
 * still guards the commit point); KINFER_ERR_NOMEM when the ring cannot grow.
 * Amortised O(1). */
kinfer_err kinfer_worker_watermark_add(kinfer_worker_watermark *wm, int64_t offset, uint64_t *seq,
                                       kinfer_error *err);
/* Marks an entry finished and advances past every finished entry at the
 * front. O(1) amortised. */
kinfer_worker_complete_result kinfer_worker_watermark_complete(kinfer_worker_watermark *wm,
                                                               uint64_t seq);
/* Marks an entry as finally failed: the commit point never passes it until
 * reset, so the request is redelivered after a restart or rebalance. */
kinfer_worker_complete_result kinfer_worker_watermark_fail(kinfer_worker_watermark *wm,
                                                           uint64_t seq);
/* The offset to commit: the lowest unfinished offset, or last_added + 1 when
 * everything is finished. -1 when nothing was ever added (nothing to commit). */
int64_t kinfer_worker_watermark_commit_offset(const kinfer_worker_watermark *wm);

/* ---- the partition table ------------------------------------------------ */

/* Most models whose congestion a partition can be tied to (bit per model). */
#define KINFER_WORKER_MAX_MODEL_BITS 64

typedef struct kinfer_worker_part {
    char *topic;
    int32_t partition;
    pthread_mutex_t lock; /* guards wm, generation, last_committed */
    kinfer_worker_watermark wm;
    uint64_t generation;    /* bumped by reset; refs of older generations are stale */
    int64_t last_committed; /* commit point last handed to Kafka; -1 = none */
    /* Poll-thread-only fields (backpressure, assignment). */
    bool assigned;
    bool paused;
    bool parked;         /* at-least-once: lost, watermark kept for the next assign */
    uint64_t model_mask; /* models recently seen on this partition */
    /* Exactly-once release order (worker_txn.c), guarded by release_lock:
     * finished replies wait in `held` (sorted by seq) until every earlier
     * offset of this generation has been produced, so that a transaction
     * never holds a reply for an offset at or above the offsets it commits. */
    pthread_mutex_t release_lock;
    void *held;           /* kinfer_worker_msg list, ascending seq */
    uint64_t release_gen; /* generation the release order belongs to */
    uint64_t release_seq; /* seq of the next reply to produce */
} kinfer_worker_part;

/* What a consumed message keeps so that its completion finds its entry. */
typedef struct kinfer_worker_offset_ref {
    kinfer_worker_part *part; /* NULL: untracked (duplicate offset) */
    uint64_t generation;
    uint64_t seq;
} kinfer_worker_offset_ref;

typedef struct kinfer_worker_parts kinfer_worker_parts;

kinfer_err kinfer_worker_parts_new(kinfer_worker_parts **out, kinfer_error *err);
/* Frees every partition. No completion may be running. */
void kinfer_worker_parts_destroy(kinfer_worker_parts *parts);

/* The partition's state, created on first use. The table itself is used by
 * the poll thread only; the returned pointer stays valid until destroy (a
 * revoked partition is reset, never freed), so completions on other threads
 * may hold it. NULL only on allocation failure. */
kinfer_worker_part *kinfer_worker_parts_get(kinfer_worker_parts *parts, const char *topic,
                                            int32_t partition);
/* Looks up without creating; NULL when unknown. */
kinfer_worker_part *kinfer_worker_parts_find(kinfer_worker_parts *parts, const char *topic,
                                             int32_t partition);

/* Poll thread: records a consumed offset and fills ref. On a duplicate
 * offset ref->part is NULL and KINFER_OK is returned (the message is
 * processed untracked); KINFER_ERR_NOMEM is the only failure. */
kinfer_err kinfer_worker_part_track(kinfer_worker_part *part, int64_t offset,
                                    kinfer_worker_offset_ref *ref, kinfer_error *err);
/* Any thread: the reply for ref was acknowledged. Returns false when the ref
 * is stale (partition reset since) or a duplicate, true when it counted. */
bool kinfer_worker_offset_done(const kinfer_worker_offset_ref *ref);
/* Any thread: the reply for ref finally failed; the commit point stays below it. */
bool kinfer_worker_offset_failed(const kinfer_worker_offset_ref *ref);

/* Commit point and pending count under the partition's lock. */
int64_t kinfer_worker_part_commit_offset(kinfer_worker_part *part);
uint64_t kinfer_worker_part_pending(kinfer_worker_part *part);
/* The commit point last handed to Kafka since the last reset; -1 = none. */
int64_t kinfer_worker_part_last_committed(kinfer_worker_part *part);
/* Forgets all tracked offsets and bumps the generation (assign/revoke). */
void kinfer_worker_part_reset(kinfer_worker_part *part);

/* Calls fn for every partition (poll thread). */
void kinfer_worker_parts_foreach(kinfer_worker_parts *parts,
                                 void (*fn)(kinfer_worker_part *part, void *ctx), void *ctx);

#endif
