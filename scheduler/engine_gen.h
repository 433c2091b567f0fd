/* engine_gen.h — the engine's generative side (continuous batching): a
 * sequence's state, a generative model's shared state and a replica's step
 * loop state, and the functions engine_core.c / engine_exec.c call.
 * Private to the scheduler and its tests.
 *
 * Ownership. A gen_seq is created by submit and freed after its final
 * result. While queued it belongs to the model's queue (engine lock); while
 * running it belongs to the executor thread of its replica, which alone
 * touches its tokens, blocks, text and sampler state (no lock); the engine
 * lock guards only its `state`, `cancel` flag and registry links. A
 * replica's gen_replica (KV allocator, running set, step arrays, logits,
 * sampler scratch) belongs to its executor thread; `nrunning_shared` and
 * `kv_used_shared` are copies for stats, written under the lock. */
#ifndef ENGINE_GEN_H
#define ENGINE_GEN_H

#include <stdbool.h>
#include <stdint.h>

#include "gen_kv.h"
#include "gen_sample.h"
#include "gen_text.h"
#include "kinfer/kinfer_engine.h"
#include "sched_queue.h"

struct kinfer_engine;
struct sched_model;
struct sched_replica;

typedef enum gen_state {
    GEN_QUEUED = 0, /* in the model's queue (first time or preempted) */
    GEN_RUNNING,    /* admitted to a replica's step loop */
    GEN_FINISHING   /* outcome decided; its final is on its way */
} gen_state;

typedef struct gen_seq {
    sched_req req; /* the queue entry; req.gen == this */
    uint64_t id;   /* KV owner tag (= req.seq, engine-unique) */

    /* Under the engine lock. */
    gen_state state;
    bool cancel;
    struct gen_seq *live_prev, *live_next; /* the model's in-flight generations */

    /* Tokens: the prompt, then what was generated. Positions [0, ncached)
     * have K/V in `blocks` of `rep`; the step feeds ctx[ncached, nctx). */
    int32_t *ctx;
    uint32_t nprompt, nctx, max_tokens; /* ctx holds nprompt + max_tokens */
    uint32_t ncached;
    bool planned; /* in the step being planned (executor-owned) */
    uint32_t *blocks;
    uint32_t nblocks;
    struct sched_replica *rep; /* NULL while queued */

    /* Options. */
    gen_sample_params sp;
    uint64_t seed;
    kinfer_str *stop; /* into stop_bytes */
    size_t nstop;
    char *stop_bytes;
    int32_t *stop_ids;
    size_t nstop_ids;
    bool ignore_eos, stream;

    /* Output. */
    gen_text text;
    uint32_t ids_sent;
    uint32_t chunks;
    gen_token_lp *lp; /* per generated token: chosen, then top_logprobs */
    uint32_t lp_stride;

    /* Outcome (set once, by whoever finishes it). */
    bool finished;
    kinfer_finish_reason reason;
    kinfer_err status;
    char error[KINFER_ERROR_MSG_MAX];
    int32_t stop_string, stop_token;
    struct gen_seq *done_next; /* finals lists */

    /* Timing, engine clock. */
    int64_t admitted_at, first_token_at, last_token_at; /* 0 = not yet */
    const char *device; /* of the replica it last ran on; "" before */
    uint32_t preemptions;
} gen_seq;

/* A generative model's shared part (sched_model.gen). Under the lock except
 * what is fixed at construction. */
typedef struct gen_model {
    kinfer_gen_info info; /* eog_ids points at `eog` */
    int32_t *eog;
    uint32_t step_tokens; /* per step per replica */
    uint32_t max_seqs;    /* running per replica */
    uint32_t nblocks;     /* per replica pool */
    uint32_t reserve;     /* blocks admission leaves free while others run */
    uint64_t kv_cache_bytes;
    /* Token bytes: text (control tokens empty) and names (control tokens
     * spelt out, for logprobs), each an arena with vocab + 1 offsets. */
    char *text_bytes, *name_bytes;
    uint32_t *text_off, *name_off;

    gen_seq *live; /* in-flight generations, for cancel */
    uint64_t nlive;
    gen_seq *cancelled; /* cancelled while queued: an executor finishes them */
    uint64_t running;   /* over replicas */
    uint64_t preemptions, prompt_tokens, completion_tokens;
    uint64_t seed_counter;
    uint64_t wakes; /* sched_gen_wake calls: an executor waits only when none came */
} gen_model;

/* One step entry being planned. */
typedef struct gen_plan {
    gen_seq *s;
    uint32_t n; /* tokens fed */
} gen_plan;

/* A replica's step loop state (sched_replica.gen); executor-owned. */
typedef struct gen_replica {
    gen_kv kv;
    gen_seq **running; /* max_seqs, most urgent first */
    uint32_t nrunning;
    gen_plan *plan; /* max_seqs */
    uint32_t nplan;
    kinfer_step_seq *step; /* max_seqs */
    gen_seq **step_seq;
    float *logits; /* max_seqs x vocab */
    gen_sampler sampler;
    /* Scratch for results: logprobs of a chunk or final. */
    kinfer_gen_logprobs *lps;
    kinfer_gen_token_logprob *lp_tops;
    size_t lps_cap, lp_tops_cap;
    uint64_t steps;
    uint64_t wakes_seen; /* gen_model.wakes at the last planning */
    /* Copies for stats (under the lock). */
    uint32_t nrunning_shared, kv_used_shared;
    /* Set when the block accounting was found inconsistent (a bug). */
    bool kv_broken;
} gen_replica;

/* ---- engine_gen_model.c: construction --------------------------------- */

/* After load: when the model is generative, sets up m->gen (step budget,
 * pool size, token tables). Errors name the model. */
kinfer_err sched_gen_model_init(struct kinfer_engine *engine, struct sched_model *m,
                                const kinfer_model_config *mc, kinfer_error *err);
void sched_gen_model_free(struct sched_model *m);
/* After replica_new and replica_kv_alloc: the step loop state. */
kinfer_err sched_gen_replica_init(struct kinfer_engine *engine, struct sched_replica *rep,
                                  kinfer_error *err);
void sched_gen_replica_free(struct sched_replica *rep);

/* ---- engine_gen_submit.c ------------------------------------------------ */

kinfer_err sched_gen_submit(struct kinfer_engine *engine, struct sched_model *m,
                            const kinfer_engine_request *req, kinfer_error *err);
kinfer_err sched_gen_cancel(struct kinfer_engine *engine, const void *token, kinfer_error *err);
void gen_seq_free(gen_seq *s);

/* ---- engine_gen_step.c -------------------------------------------------- */

/* One iteration of a replica's step loop: finishes what was cancelled or
 * passed its deadline, plans the step (decodes, prefill chunks,
 * admission, preemption), runs it, samples, and delivers chunks and
 * finals. No lock held on entry. Returns true when it did anything (a step
 * or a final). */
bool sched_gen_step(struct sched_replica *rep);
void *sched_gen_thread(void *arg);
/* Under the lock: whether the replica's loop has anything to do. */
bool sched_gen_has_work(const struct sched_replica *rep);
/* No lock held: delivers the finals of `list` (linked by done_next, each
 * with its outcome set): the rest of a stream as one chunk, then the
 * result; then counts and frees them. */
void sched_gen_deliver_finals(struct kinfer_engine *engine, gen_seq *list);
/* Sets a sequence's outcome (once). */
void gen_seq_finish(gen_seq *s, kinfer_err status, kinfer_finish_reason reason, const char *error);
/* Under the lock: wakes the executors of a generative model. */
void sched_gen_wake(struct sched_model *m);

/* Test support: checks a replica's block accounting (every block free or
 * owned by exactly one running sequence of that replica, tables matching
 * positions); fills why and returns false on the first inconsistency.
 * Call with the executor quiet (manual mode, between steps). */
bool sched_gen_audit(struct kinfer_engine *engine, char *why, size_t whylen);

#endif
