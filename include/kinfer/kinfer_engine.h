/* kinfer_engine.h — the public engine API: load a model repository, submit
 * requests, get completions. The engine batches by model and deadline
 * (DESIGN.md §4) and runs batches on device executors. Generative models
 * (kind "llm") take a kinfer_gen_request instead of tensors and are run by
 * continuous batching: a step loop per replica, streamed chunks, one final
 * result (the "Generation" section below).
 *
 * Knows nothing of Kafka or Avro: the worker translates messages into
 * kinfer_engine_request and results into replies. */
#ifndef KINFER_ENGINE_H
#define KINFER_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kinfer/kinfer_clock.h"
#include "kinfer/kinfer_error.h"
#include "kinfer/kinfer_tensor.h"
#include "kinfer/kinfer_model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kinfer_engine kinfer_engine;

#define KINFER_MAX_DEVICES 8

/* One model entry of the repository. Strings are copied by kinfer_engine_new. */
typedef struct kinfer_model_config {
    const char *name;    /* what requests name in `model` */
    const char *version; /* reported in replies; NULL = none */
    kinfer_model_options load;
    const char *devices[KINFER_MAX_DEVICES]; /* "cpu", "cuda:0", ... in preference order */
    int ndevices;
    int replicas_per_device;      /* >= 1 */
    uint32_t max_batch_size;      /* rows per batch; generative: sequences running per replica */
    uint32_t max_batch_tokens;    /* text models: padded tokens per batch; 0 = no limit;
                                     generative: tokens per step (0 = 512), >= max_batch_size */
    int64_t max_queue_delay_us;   /* longest the oldest queued request waits for company */
    int64_t default_timeout_ms;   /* deadline for requests without one; 0 = none */
    uint32_t max_queue;           /* high watermark (requests queued): congestion reported */
    uint32_t queue_low_watermark; /* congestion cleared at or below; default max_queue/2 */
    uint32_t max_queue_hard;      /* 0 = never reject; else OVERLOADED beyond it */
    /* Generative models: KV cache memory per replica, in bytes; the pool
     * holds kv_cache_bytes / the model's kv_block_bytes blocks (at least
     * one). 0 = 256 MiB. Ignored for other kinds. */
    uint64_t kv_cache_bytes;
    /* The bulk lane (requests with priority < 0, see kinfer_engine_request):
     * while online requests are around (one is queued, or one arrived less
     * than bulk_idle_ms ago), a batch of bulk requests stays within
     * bulk_slice_us of estimated compute (it takes at least one), bulk
     * batches run in the gap while queued online requests wait for company
     * (ending before their batch is due), and bulk requests join a batch of
     * online ones only while they add at most a tenth to its estimate. With
     * the online lane idle, bulk batches are as full as online ones.
     * 0 = the defaults below. Ignored for generative models (their lane is
     * the admission order). */
    int64_t bulk_slice_us;
    int64_t bulk_idle_ms;
    /* Generative models: max_tokens of a request that sets none (the
     * worker fills it in); 0 = as many as the context leaves. */
    uint32_t default_max_tokens;
} kinfer_model_config;

#define KINFER_DEFAULT_BULK_SLICE_US 1000
#define KINFER_DEFAULT_BULK_IDLE_MS 1000

#define KINFER_DEFAULT_KV_CACHE_BYTES (256ull << 20)
#define KINFER_DEFAULT_GEN_STEP_TOKENS 512

/* ---- Generation (generative models only) --------------------------------
 *
 * Options use the OpenAI names. Start from kinfer_gen_options_init (the
 * OpenAI defaults); a zeroed struct is not valid (top_p 0 and
 * repetition_penalty 0 are refused). Sampling order, per generated token:
 * penalties on the raw logits (repetition over prompt + output, presence
 * and frequency over the output, as vLLM does), then greedy when
 * temperature is 0, else logits / temperature, top_k, top_p, min_p (relative
 * to the most likely token), and one draw from what is left. Draws come
 * from SplitMix64 in counter mode: draw i of a request is a function of
 * (seed, i) alone, so a seeded request gives the same tokens whatever it is
 * batched with and after a preemption. */
#define KINFER_GEN_MAX_STOP 16           /* stop strings per request */
#define KINFER_GEN_MAX_STOP_BYTES 128    /* bytes per stop string */
#define KINFER_GEN_MAX_STOP_TOKEN_IDS 64 /* stop token ids per request */
#define KINFER_GEN_MAX_TOP_LOGPROBS 20   /* as OpenAI */

typedef struct kinfer_gen_options {
    /* Most tokens to generate. 0 = as many as the context (and the KV
     * pool) leave after the prompt. A prompt + max_tokens over the model's
     * context is INVALID_REQUEST naming both numbers (as OpenAI does), never
     * silently clipped. */
    uint32_t max_tokens;
    float temperature;        /* [0, 2]; 0 = greedy (top_k/top_p/min_p then unused) */
    uint32_t top_k;           /* 0 = off */
    float top_p;              /* (0, 1]; 1 = off */
    float min_p;              /* [0, 1]; 0 = off */
    float repetition_penalty; /* (0, 10]; 1 = off; > 1 discourages repeats */
    float presence_penalty;   /* [-2, 2]; 0 = off */
    float frequency_penalty;  /* [-2, 2]; 0 = off */
    bool has_seed;            /* false: the engine picks a seed (reported in the result) */
    uint64_t seed;
    /* Stop strings (valid UTF-8, 1..KINFER_GEN_MAX_STOP_BYTES bytes each):
     * the generation ends when the text contains one; the text ends before
     * it (the stop string is not returned, as in OpenAI). */
    const kinfer_str *stop;
    size_t nstop;
    /* Token ids that end the generation (besides the model's end-of-
     * generation ids, unless ignore_eos). Their id is the last of `ids`;
     * they add no text. */
    const int32_t *stop_token_ids;
    size_t nstop_token_ids;
    bool ignore_eos;       /* the model's EOG ids do not stop (benchmarks, as vLLM) */
    bool logprobs;         /* log-probabilities of the chosen tokens */
    uint32_t top_logprobs; /* 0..20: also the n most likely (needs logprobs) */
    bool stream;           /* chunk events before the final (needs on_gen_chunk) */
} kinfer_gen_options;

/* Fills the OpenAI defaults: max_tokens 0, temperature 1, top_p 1,
 * repetition_penalty 1, everything else off. */
void kinfer_gen_options_init(kinfer_gen_options *options);

/* What to generate from: exactly one of a plain prompt, chat messages (the
 * model's chat template renders them with the generation prompt) or
 * pre-tokenized ids (as OpenAI accepts token arrays). Copied by submit:
 * it and everything it points to may be freed once submit returns. */
typedef struct kinfer_gen_request {
    kinfer_str prompt;
    const kinfer_chat_message *messages;
    size_t nmessages;
    const int32_t *prompt_ids;
    size_t nprompt_ids;
    kinfer_gen_options options;
} kinfer_gen_request;

typedef enum kinfer_finish_reason {
    KINFER_FINISH_STOP = 0,      /* a stop string, a stop token id or an EOG token */
    KINFER_FINISH_LENGTH = 1,    /* max_tokens, or the context, reached */
    KINFER_FINISH_DEADLINE = 2,  /* the deadline came; what was generated by then */
    KINFER_FINISH_CANCELLED = 3, /* kinfer_engine_cancel, or shutdown (status SHUTDOWN) */
    KINFER_FINISH_ERROR = 4      /* the status says what failed */
} kinfer_finish_reason;

/* "stop", "length", "deadline", "cancelled", "error". */
const char *kinfer_finish_reason_name(kinfer_finish_reason reason);

/* One token and its log-probability under the model's raw distribution
 * (log-softmax of the logits before penalties and temperature, as OpenAI
 * and vLLM report). bytes: what the token stands for, control tokens by
 * name; possibly part of a UTF-8 character. */
typedef struct kinfer_gen_token_logprob {
    int32_t id;
    float logprob;
    kinfer_str bytes;
} kinfer_gen_token_logprob;

/* Log-probabilities of one generated token: the chosen one and, when
 * top_logprobs > 0, the n most likely, most likely first. */
typedef struct kinfer_gen_logprobs {
    kinfer_gen_token_logprob chosen;
    const kinfer_gen_token_logprob *top;
    size_t ntop;
} kinfer_gen_logprobs;

/* A streamed piece of a generation (options.stream). Chunks of a request
 * come in index order 0, 1, 2, ... from one engine thread, all before its
 * final result; the concatenation of their text is the final text and the
 * concatenation of their ids the final ids. Text is cut at UTF-8 character
 * boundaries and never includes what may still turn out to be the start of
 * a stop string, so a chunk can carry ids and no text; a request gets no
 * chunk for a step whose token added no releasable text (the ids ride with
 * the next chunk). A preempted and resumed sequence goes on from where its
 * stream was: no chunk is sent twice. Valid only during the callback. */
typedef struct kinfer_gen_chunk {
    void *token; /* the request's opaque token */
    uint32_t index;
    kinfer_str text;
    const int32_t *ids;
    size_t nids;
    const kinfer_gen_logprobs *logprobs; /* nids entries; NULL unless options.logprobs */
} kinfer_gen_chunk;

/* The outcome of a generation, in its one final result (res->gen). */
typedef struct kinfer_gen_result {
    kinfer_finish_reason finish_reason;
    kinfer_str text;    /* NUL-terminated, valid UTF-8 (invalid bytes became U+FFFD) */
    const int32_t *ids; /* every generated token, a stop token id or EOG included */
    size_t nids;
    const kinfer_gen_logprobs *logprobs; /* nids entries; NULL unless options.logprobs */
    int32_t stop_string;                 /* index into options.stop that matched, else -1 */
    int32_t stop_token;                  /* the stop or EOG id that ended it, else -1 */
    uint32_t prompt_tokens;
    uint32_t completion_tokens; /* = nids */
    uint64_t seed;              /* the seed the draws used */
    uint32_t chunks;            /* chunks sent before this result */
    uint32_t preemptions;       /* times its KV was dropped and recomputed */
    int64_t queue_us;           /* submit -> first admitted to a step (0 if never) */
    int64_t ttft_us;            /* submit -> first token sampled (0 if none) */
    int64_t per_token_us;       /* mean gap between tokens after the first (0 if < 2) */
    int64_t total_us;           /* submit -> this result */
} kinfer_gen_result;

/* Everything a completion carries. Valid only during the callback; copy what
 * you need. Exactly one completion per accepted request. */
typedef struct kinfer_engine_result {
    void *token; /* the request's opaque token */
    kinfer_err status;
    const char *error; /* message when status != KINFER_OK, else NULL */
    const kinfer_tensor *outputs;
    size_t noutputs;
    const char *model_version; /* may be NULL */
    const char *device;        /* e.g. "cpu", "cuda:0"; "" when not run */
    int64_t queue_us;          /* submit -> batch start */
    int64_t compute_us;        /* batch run time; generation: first admission -> result */
    uint32_t batch_size;       /* requests in the batch; 0 for a generation */
    /* A generation's outcome, for every request submitted with `gen`
     * (whatever the status); NULL for tensor requests. Status is OK for
     * finish reasons stop, length, cancelled, and deadline with at least
     * one token; DEADLINE_EXCEEDED when the deadline came before any token;
     * SHUTDOWN (finish cancelled) when shutdown ended it; a device error
     * fails every sequence of its step (finish error). */
    const kinfer_gen_result *gen;
    /* Deadline slack of a request that ran in a batch: its deadline (its
     * own, or the model's default timeout) minus the batch start, in µs;
     * negative when the batch started after it. Meaningful only when
     * has_deadline (never for a generation); for operators (how close to
     * their deadlines requests run), never for decisions. */
    bool has_deadline;
    int64_t deadline_slack_us;
} kinfer_engine_result;

/* Called from an engine thread (executor or expiry timer). Must not block
 * for long and must not call kinfer_engine_shutdown/destroy. May call
 * kinfer_engine_submit. */
typedef void (*kinfer_engine_complete_fn)(void *ctx, const kinfer_engine_result *result);

/* Queue watermark crossing for one model: congested=true when the queue
 * passes max_queue, false when it drains to queue_low_watermark. Called
 * from an engine thread or from inside kinfer_engine_submit. */
typedef void (*kinfer_engine_congestion_fn)(void *ctx, const char *model, bool congested);

/* A streamed chunk of a generation; called from the executor thread that
 * runs the sequence, with no engine lock held. Same rules as
 * kinfer_engine_complete_fn; may also call kinfer_engine_cancel. */
typedef void (*kinfer_engine_chunk_fn)(void *ctx, const kinfer_gen_chunk *chunk);

typedef struct kinfer_engine_config {
    const kinfer_model_config *models;
    size_t nmodels;
    int cpu_threads;    /* CPU backend threads; 0 = online cores */
    kinfer_clock clock; /* zero-initialised = system wall clock */
    kinfer_engine_complete_fn on_complete;
    kinfer_engine_congestion_fn on_congestion; /* may be NULL */
    kinfer_engine_chunk_fn on_gen_chunk;       /* may be NULL: streaming refused */
    void *callback_ctx;
} kinfer_engine_config;

typedef struct kinfer_engine_request {
    kinfer_str model;
    kinfer_str model_version;    /* empty = any */
    const kinfer_tensor *inputs; /* must stay valid until the completion returns */
    size_t ninputs;
    const kinfer_param *params; /* same lifetime as inputs */
    size_t nparams;
    int64_t deadline_us; /* absolute Unix epoch µs; 0 = the model's default timeout */
    /* Higher first among equal deadlines. Below 0: the bulk lane, which
     * runs after every queued online request (priority >= 0) whatever the
     * deadlines, in small slices while online traffic is around
     * (kinfer_model_config.bulk_slice_us), and has no deadline unless
     * deadline_us gives one (not the model's default timeout); a bulk
     * request's deadline is checked when it reaches the queue's head. */
    int32_t priority;
    void *token; /* returned in the completion */
    /* Generative models: what to generate (inputs and params unused), and
     * required for them; NULL for every other kind. */
    const kinfer_gen_request *gen;
} kinfer_engine_request;

/* Loads every model and starts executors. Errors name the model. */
kinfer_err kinfer_engine_new(const kinfer_engine_config *cfg, kinfer_engine **out,
                             kinfer_error *err);

/* Queues a request. KINFER_OK: exactly one completion will follow (for a
 * generation: its chunks first, when streamed). Any error (MODEL_NOT_FOUND,
 * INVALID_REQUEST, OVERLOADED, DEADLINE_EXCEEDED, SHUTDOWN): no completion;
 * the caller answers the request itself. A generation is tokenized and
 * checked here: a bad option, prompt or length is INVALID_REQUEST naming
 * the option and its range or the numbers; stream without on_gen_chunk is
 * INVALID_ARG. Thread-safe. */
kinfer_err kinfer_engine_submit(kinfer_engine *engine, const kinfer_engine_request *req,
                                kinfer_error *err);

/* Cancels the in-flight generation submitted with `token`: it ends at its
 * next step boundary (never inside a step) with finish_reason cancelled,
 * status OK and what it has generated; its one final result follows from
 * an engine thread, never from inside this call. KINFER_ERR_INVALID_ARG
 * when no generation with that token is in flight (already finished, or a
 * tensor request, which cannot be cancelled). Thread-safe; callbacks may
 * call it. O(generations in flight). */
kinfer_err kinfer_engine_cancel(kinfer_engine *engine, const void *token, kinfer_error *err);

/* Stops accepting, runs what is queued for up to drain_timeout_ms, then
 * completes everything left with KINFER_ERR_SHUTDOWN. Returns when every
 * accepted request has had its completion. Idempotent. */
void kinfer_engine_shutdown(kinfer_engine *engine, int64_t drain_timeout_ms);
/* Shuts down (drain 0 if not yet) and frees. */
void kinfer_engine_destroy(kinfer_engine *engine);

/* Requests accepted and not yet completed, over all models. */
size_t kinfer_engine_in_flight(const kinfer_engine *engine);

/* Per-model counters and the scheduler's view, for /metrics (additive). */
typedef struct kinfer_engine_stats {
    const char *name;             /* valid for the engine's lifetime */
    const char *version;          /* may be NULL */
    uint64_t queued;              /* waiting for a batch */
    uint64_t queued_rows;         /* their rows */
    uint64_t in_flight;           /* accepted and not completed (queued + running) */
    uint64_t accepted;            /* submits that returned KINFER_OK */
    uint64_t completed_ok;        /* completions with status OK */
    uint64_t completed_error;     /* completions with any other status (expired included) */
    uint64_t expired;             /* DEADLINE_EXCEEDED while queued */
    uint64_t rejected_overloaded; /* submits refused at max_queue_hard */
    uint64_t batches;             /* batches dispatched */
    uint64_t rows;                /* rows in those batches */
    bool congested;               /* above the high watermark, not yet at the low one */
    size_t replicas;
    size_t replicas_busy;
    uint64_t latency_samples;      /* batches measured by the latency estimator */
    int64_t latency_estimate_1_us; /* estimated compute time of a 1-row batch */
    /* ... of a full batch: max_batch_size rows, or max_batch_tokens padded
     * tokens for a text model with a token budget */
    int64_t latency_estimate_max_us;
    int64_t dispatch_lag_us; /* engine-wide timer + thread hand-off lag added to the margin */
    /* Generative models (zero for the rest). `batches` counts steps and
     * `rows` the tokens fed by them; queued counts waiting sequences
     * (preempted ones included). */
    bool generative;
    uint32_t context_length;
    uint64_t gen_running;           /* sequences admitted to a replica's step loop */
    uint64_t gen_prompt_tokens;     /* of finished generations */
    uint64_t gen_completion_tokens; /* of finished generations */
    uint64_t gen_preemptions;
    uint64_t kv_blocks_total; /* over the model's replicas */
    uint64_t kv_blocks_used;
    /* Liveness: of this model's replicas, the one whose executor has been
     * inside one batch the longest (in the model's submit, execute or
     * collect: a wedged kernel, driver or BLAS call shows here). */
    int64_t running_batch_us;          /* how long so far; 0 when none is inside a batch */
    int64_t running_batch_estimate_us; /* the learned compute time of a batch that size */
} kinfer_engine_stats;

/* Number of models; indexes 0..n-1 are valid for kinfer_engine_stats_get. */
size_t kinfer_engine_model_count(const kinfer_engine *engine);
/* A consistent snapshot of one model's counters. Thread-safe.
 * KINFER_ERR_INVALID_ARG when index is out of range. */
kinfer_err kinfer_engine_stats_get(const kinfer_engine *engine, size_t index,
                                   kinfer_engine_stats *out);

#ifdef __cplusplus
}
#endif
#endif
