/* engine_internal.h — the engine's private structures, the model ops table
 * through which it calls the compute side, and the test-only constructor
 * and step function. Not installed; include only from the scheduler sources and
 * tests/unit/scheduler. */
#ifndef KINFER_ENGINE_INTERNAL_H
#define KINFER_ENGINE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "engine_gen.h"
#include "kinfer/kinfer_engine.h"
#include "sched_latency.h"
#include "sched_policy.h"
#include "sched_queue.h"

/* How the engine reaches models. The default table (engine_model_ops.c)
 * forwards to kinfer_model_* / kinfer_replica_*; tests pass a fake model.
 * Handles are opaque to the engine. Same contracts as kinfer_model.h. */
typedef struct sched_model_ops {
    kinfer_err (*load)(void *ctx, const kinfer_model_options *opts, void **model,
                       kinfer_error *err);
    void (*destroy)(void *ctx, void *model);
    const char *(*describe)(void *ctx, const void *model); /* may be NULL */
    kinfer_err (*check_request)(void *ctx, const void *model, const kinfer_tensor *inputs,
                                size_t ninputs, const kinfer_param *params, size_t nparams,
                                kinfer_request_cost *cost, kinfer_error *err);
    kinfer_err (*replica_new)(void *ctx, void *model, const char *device, uint32_t max_rows,
                              void **replica, kinfer_error *err);
    void (*replica_destroy)(void *ctx, void *replica);
    kinfer_err (*replica_execute)(void *ctx, void *replica, kinfer_batch_item *items, size_t nitems,
                                  kinfer_error *err);
    /* Optional pipelined form (kinfer_replica_submit/collect/max_in_flight),
     * all three or none; NULL: replica_execute, one batch at a time. With
     * max_in_flight 2 an executor submits its next batch before it collects
     * the current one, so packing and upload overlap compute. */
    kinfer_err (*replica_submit)(void *ctx, void *replica, kinfer_batch_item *items, size_t nitems,
                                 kinfer_error *err);
    kinfer_err (*replica_collect)(void *ctx, void *replica, kinfer_error *err);
    uint32_t (*replica_max_in_flight)(void *ctx, const void *replica);
    /* Generative models (the last section of kinfer_model.h), all five or
     * none; NULL: no model is generative. gen_info false: this one is not.
     * The ids gen_tokenize returns are malloc'd; the engine frees them. */
    bool (*gen_info)(void *ctx, const void *model, kinfer_gen_info *info);
    kinfer_err (*gen_tokenize)(void *ctx, const void *model, kinfer_str prompt,
                               const kinfer_chat_message *messages, size_t nmessages, int32_t **ids,
                               size_t *nids, kinfer_error *err);
    size_t (*gen_token_bytes)(void *ctx, const void *model, int32_t id, bool special, char *out,
                              size_t cap);
    kinfer_err (*replica_kv_alloc)(void *ctx, void *replica, uint32_t nblocks, kinfer_error *err);
    kinfer_err (*replica_step)(void *ctx, void *replica, kinfer_step_seq *seqs, size_t n,
                               kinfer_error *err);
} sched_model_ops;

/* Knobs that the public config does not (yet) expose. */
typedef struct sched_engine_options {
    /* true: no threads at all; the caller drives the engine with
     * sched_engine_poll (decide, expire, assign batches) and sched_engine_run
     * (run assigned batches on the calling thread). For deterministic tests
     * with a fake clock. */
    bool manual;
    int64_t deadline_margin_us; /* slack before a deadline; < 0 = default (500) */
    int64_t latency_prior_us;   /* estimate before any measurement; <= 0 = default (5000) */
    /* true: text batches take the plain EDF prefix that fits the budget, no
     * length grouping (the baseline the grouping tests compare against). */
    bool no_length_grouping;
} sched_engine_options;

#define SCHED_DEFAULT_MARGIN_US 500
#define SCHED_DEFAULT_PRIOR_US 5000
#define SCHED_DEVICE_NAME_MAX 32

/* The most batches the engine keeps in flight on one replica. */
#define SCHED_MAX_IN_FLIGHT 2

struct sched_model;

/* A length-grouping candidate (engine_batch.c). */
typedef struct sched_group_cand {
    sched_req *r;
    uint32_t dist; /* |max_len - the batch's max_len| */
    uint32_t rank; /* EDF position in the window */
} sched_group_cand;

/* A batch its executor has taken from the replica: submitted (or, for a
 * model without replica_submit, about to be executed) and not yet
 * completed. Owned by the executor thread; no lock. */
typedef struct sched_flight {
    sched_req **reqs;         /* max_batch_size entries */
    kinfer_batch_item *items; /* max_batch_size entries, reused per batch */
    size_t nreqs;
    uint32_t rows;
    uint32_t units;      /* latency units: rows, or padded tokens of a text batch */
    int64_t assigned_at; /* engine clock when the batch was formed */
    int64_t start;       /* engine clock at submit */
    bool handed_off;     /* formed by a pass and picked up by the executor */
    kinfer_err rc;       /* the submit's result; not OK: nothing to collect */
    kinfer_error err;
} sched_flight;

/* One model placed on one device, driven by its own executor thread. */
typedef struct sched_replica {
    struct kinfer_engine *engine;
    struct sched_model *model;
    void *handle;
    char device[SCHED_DEVICE_NAME_MAX];
    bool busy;           /* a batch is assigned or in flight (under the lock) */
    bool take_next;      /* under the lock: its executor asks the pass for a next batch */
    int64_t assigned_at; /* engine clock when the assigned batch was formed */
    sched_req **reqs;    /* the assigned batch, max_batch_size entries */
    size_t nreqs;
    uint32_t rows;
    uint32_t units;         /* as sched_flight.units */
    uint32_t max_in_flight; /* 1, or 2 with a pipelined model */
    /* In flight, oldest at flight_head; executor-only state. */
    sched_flight flight[SCHED_MAX_IN_FLIGHT];
    uint32_t flight_head, nflight;
    /* Liveness: engine-clock time its executor went inside the model for
     * the current batch (submit, execute or collect), INT64_MIN when it is
     * not inside one, and that batch's latency units. Written by the
     * executor without the lock, read by kinfer_engine_stats_get. */
    _Atomic int64_t inside_since;
    _Atomic uint32_t inside_units;
    pthread_cond_t work_cond;
    pthread_t thread;
    bool thread_started;
    gen_replica *gen; /* generative model: its step loop (engine_gen.h); else NULL */
} sched_replica;

typedef struct sched_model {
    char *name;
    size_t name_len;
    char *version; /* NULL = none */
    void *handle;
    uint32_t max_batch_size, max_batch_tokens;
    int64_t max_queue_delay_us, default_timeout_ms;
    uint32_t max_queue, low_watermark, max_queue_hard;
    /* Bulk lane (kinfer_model_config): slice of a batch bulk requests may
     * take while online traffic is around, how long after the last online
     * arrival it still is, and that arrival (engine clock; INT64_MIN none). */
    int64_t bulk_slice_us, bulk_idle_us, last_online_us;
    /* Smoothed time between online arrivals (1/8 gain); -1 before two. A
     * gap batch also ends before the online batch would fill at this
     * rate. */
    int64_t online_gap_us;

    sched_queue queue;
    sched_latency latency; /* keyed by rows, or by padded tokens once `text` */
    bool text;             /* requests report tokens: batches are measured in tokens */
    /* Length grouping scratch (engine_batch.c), group_window entries each
     * (frontier one more). */
    size_t group_window;
    sched_req **group_reqs;
    sched_queue_cursor *group_frontier;
    sched_group_cand *group_cands;
    sched_replica **replicas;
    size_t nreplicas;

    bool congested;          /* current state of the watermark */
    bool congested_reported; /* last state told to on_congestion */

    uint64_t in_flight; /* accepted, not completed */
    uint64_t accepted, completed_ok, completed_error, expired, rejected_overloaded;
    uint64_t batches, rows;

    gen_model *gen; /* generative: continuous batching (engine_gen.h); else NULL */
} sched_model;

struct kinfer_engine {
    sched_model_ops ops;
    void *ops_ctx;
    sched_engine_options opts;
    kinfer_clock clock;
    kinfer_engine_complete_fn on_complete;
    kinfer_engine_congestion_fn on_congestion;
    kinfer_engine_chunk_fn on_gen_chunk;
    void *callback_ctx;

    sched_model *models;
    size_t nmodels;

    pthread_mutex_t mu;
    pthread_cond_t sched_cond; /* wakes the scheduler thread */
    pthread_cond_t done_cond;  /* in_flight reached 0; shutdown finished */
    atomic_size_t in_flight;
    uint64_t next_seq;
    bool accepting;
    bool draining;
    int64_t drain_deadline_mono_us;
    bool stop_threads;
    bool shutdown_started, shutdown_done;
    bool delivering_congestion;
    pthread_t sched_thread;
    bool sched_started;
    int64_t sched_wake_at; /* engine-clock time the scheduler sleeps until; INT64_MIN awake */
    /* Threaded mode: how late the scheduler thread wakes after its timer
     * and how long an assigned batch waits for its executor to start. Both
     * widen the deadline margin, since the compute estimate covers neither. */
    sched_latency wake_lag, handoff_lag;
    sched_replica **ready_scratch; /* nreplicas_total entries, for sched_engine_pass */
    size_t nreplicas_total;
};

/* Creates an engine that calls models through `ops` (copied). opts may be
 * NULL for the defaults. Same errors as kinfer_engine_new. */
kinfer_err kinfer_engine_new_with_ops(const kinfer_engine_config *cfg, const sched_model_ops *ops,
                                      void *ops_ctx, const sched_engine_options *opts,
                                      kinfer_engine **out, kinfer_error *err);

/* Manual mode only: one scheduler pass at the engine clock's now: completes
 * requests whose deadline has passed (DEADLINE_EXCEEDED) or, past the drain
 * time, all queued (SHUTDOWN); assigns every batch that is due to an idle
 * replica (which stays busy until sched_engine_run); reports congestion
 * changes. Returns the engine-clock time of the next timed event (dispatch
 * or expiry); INT64_MAX when nothing is timed. */
int64_t sched_engine_poll(kinfer_engine *engine);
/* Manual mode only: runs every assigned batch on the calling thread and
 * completes its requests, and one iteration of every generative replica's
 * step loop (sched_gen_step). Returns the number of batches and steps
 * run. */
size_t sched_engine_run(kinfer_engine *engine);

/* engine_dispatch.c: the scheduler pass under the engine lock. Moves every
 * due batch onto an idle replica (appended to *ready, linked through
 * replica order), pops expired requests onto *expired and, when the drain
 * time is over, all queued onto *aborted. Returns the next timed event. */
typedef struct sched_pass_out {
    sched_replica **ready; /* replicas that received a batch */
    size_t nready, ready_cap;
    sched_req *expired; /* linked through `newer` */
    sched_req *aborted; /* shutdown leftovers, linked through `newer` */
} sched_pass_out;
int64_t sched_engine_pass(kinfer_engine *engine, int64_t now, sched_pass_out *out);
/* engine_batch.c: forming batches (the policy is described there). */
/* Candidates length grouping looks at beyond the urgent prefix: enough to
 * fill a batch twice, bounded so that forming a batch stays cheap. */
#define SCHED_GROUP_LOOKAHEAD_MIN 64
#define SCHED_GROUP_WINDOW_MAX 4096
/* Window size for a model's max_batch_size. */
size_t sched_group_window(uint32_t max_batch_size);
/* Size of the batch that would form now in latency units (rows, or padded
 * tokens for a text model), for the estimate. O(1). Under the lock. */
uint32_t sched_prospective_units(const sched_model *m);
/* The same for a queue (or lane) of qrows rows and qtokens tokens. */
uint32_t sched_prospective_units_of(const sched_model *m, uint64_t qrows, uint64_t qtokens);
/* Bulk lane: moves bulk requests (oldest first) onto rep while the batch's
 * estimate stays within budget_us, for the gap while queued online
 * requests wait for their batch. False (nothing moved) when not even one
 * fits. Under the lock. */
bool sched_batch_form_gap(sched_model *m, sched_replica *rep, int64_t now, int64_t budget_us);
/* Latency units the next batch of m may take at `now` so that its earliest
 * deadline is still met; UINT32_MAX when that makes no difference. Under
 * the lock. */
uint32_t sched_batch_unit_limit(const sched_model *m, int64_t now, int64_t margin);
/* Moves the next batch of m onto rep (at least the queue head). Under the
 * lock; m's queue must not be empty. */
void sched_batch_form(sched_model *m, sched_replica *rep, int64_t now, int64_t margin);
/* Smoothed timer + hand-off lag added to the deadline margin (0 in manual
 * mode, where neither exists). Under the lock. */
int64_t sched_engine_dispatch_lag(const kinfer_engine *engine);

/* engine_dispatch.c: under the lock, for an executor whose replica has a
 * batch in flight that ends in about wait_us: forms the model's next batch
 * onto rep when the policy says it is due (the deadline margin widened by
 * wait_us, since the batch starts only after the current one) and no other
 * replica of the model is idle. Requests past their deadline go to
 * *expired first. Returns true when rep->reqs holds a new batch. */
bool sched_replica_take_next(kinfer_engine *engine, sched_replica *rep, int64_t now,
                             int64_t wait_us, sched_req **expired);

/* engine_exec.c */
/* Runs the replica's assigned batch (no lock held), completes its requests
 * and marks the replica idle; in threaded mode then runs a scheduler pass,
 * which may assign the replica its next batch. With max_in_flight 2 it
 * submits the next due batch of the model before collecting the current
 * one, and goes on while batches keep coming due. Returns the batches
 * run. */
size_t sched_replica_run(sched_replica *rep);
void *sched_replica_thread(void *arg);
void *sched_scheduler_thread(void *arg);
/* Completes a list of requests that never ran (no lock held), then drops
 * them from the in-flight counts. */
void sched_complete_unrun(kinfer_engine *engine, sched_req *list, kinfer_err status,
                          const char *why);
/* Drops n finished requests of model m from the counts; under the lock. */
void sched_finish_locked(kinfer_engine *engine, sched_model *m, size_t n);
/* Reports watermark changes to on_congestion, in order, from one thread at a
 * time; call with no lock held. */
void sched_deliver_congestion(kinfer_engine *engine);
/* Under the lock: updates a model's watermark state after its queue changed. */
void sched_model_watermark(sched_model *model);

#endif
