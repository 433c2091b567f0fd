/* kinfer_model.h — the seam between the scheduler and the compute side.
 *
 * A kinfer_model is a loaded, device-agnostic model (weights in host
 * memory, mmapped or converted). A kinfer_replica is that model placed on
 * one device ("cpu", "cuda:0") with buffers for up to max_rows rows; one
 * executor thread drives a replica at a time. The scheduler packs requests
 * into a batch of kinfer_batch_item and calls kinfer_replica_execute (or
 * submit/collect, to overlap packing with compute) once per batch: one
 * GEMM per layer per batch, never per request. Generative kinds run per
 * step instead (the last section).
 *
 * Every kind ("mlp", "bert", ...) is one entry of the kind table
 * (kernels/model_registry.c) and owns what there is to know about it: the
 * configuration asks the table (kinfer_model_kind_at/_lookup) for kind
 * names, path kind, precisions, activations and kind-specific options, and
 * a loaded model describes itself (kinfer_model_describe, _info).
 *
 * This header knows nothing of Kafka, Avro or queues. */
#ifndef KINFER_MODEL_H
#define KINFER_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kinfer/kinfer_error.h"
#include "kinfer/kinfer_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kinfer_model kinfer_model;
typedef struct kinfer_replica kinfer_replica;

typedef enum kinfer_nan_policy {
    KINFER_NAN_REJECT = 0, /* NaN/Inf in an input is INVALID_REQUEST */
    KINFER_NAN_PASS = 1    /* computed through as IEEE says */
} kinfer_nan_policy;

/* What the config says about a model, as far as loading it is concerned.
 * Strings are borrowed for the duration of kinfer_model_load only. */
typedef struct kinfer_model_options {
    const char *name;              /* for messages */
    const char *kind;              /* a kind of the kind table (kernels/model_registry.c) */
    const char *path;              /* a file or a directory, as the kind's path kind says */
    const char *activation;        /* override of the file's metadata; NULL = file's */
    const char *output_activation; /* override; NULL = file's */
    kinfer_nan_policy nan_policy;
    const char *precision; /* one of the kind's precisions; NULL = its first ("fp32") */
    int cpu_threads;       /* threads for the CPU backend; 0 = online cores */
    /* Generative kinds (llm) only; 0 = the default. */
    uint32_t context_length;  /* cap on the positions of one sequence; 0 = the model's own */
    uint32_t kv_block_tokens; /* tokens per KV block (T of the paged cache); 0 = 16 */
} kinfer_model_options;

/* ---- The kind table, as the configuration sees it ------------------------ */

/* What a kind's `path` names. */
typedef enum kinfer_model_path_kind {
    KINFER_MODEL_PATH_ANY = 0,  /* a file or a directory (the kind looks) */
    KINFER_MODEL_PATH_FILE = 1, /* one file, e.g. safetensors */
    KINFER_MODEL_PATH_DIR = 2   /* a directory, e.g. a Hugging Face model */
} kinfer_model_path_kind;

/* What one kind accepts in its config entry, so that the configuration
 * checks a model entry without loading it. Static data owned by the kind;
 * lists are NULL-terminated. */
typedef struct kinfer_model_kind_info {
    const char *name;    /* what the config's `kind` says */
    const char *summary; /* one line for docs, e.g. "dense layers in a safetensors file" */
    kinfer_model_path_kind path;
    const char *const *precisions; /* `precision` values, the first the default; NULL = fp32 only */
    /* Values of `activation` / `output_activation`; NULL: the kind has no
     * such option (setting it is an error). */
    const char *const *activations;
    const char *const *output_activations;
    /* Model keys that only some kinds read (the config's kind-specific
     * keys: activation, output_activation, ...) that this kind reads;
     * NULL = none. */
    const char *const *options;
} kinfer_model_kind_info;

/* Kinds in the table; 0..count-1 are valid for kinfer_model_kind_at. */
size_t kinfer_model_kind_count(void);
/* The i-th kind (table order), NULL past the end. */
const kinfer_model_kind_info *kinfer_model_kind_at(size_t i);
/* The kind named `name` (exact spelling), NULL when unknown. */
const kinfer_model_kind_info *kinfer_model_kind_lookup(const char *name);

/* The size of one request in batching units. */
typedef struct kinfer_request_cost {
    uint32_t rows;    /* rows it adds to the batch matrix */
    uint32_t tokens;  /* text models: padded tokens (rows x max_len); 0 otherwise */
    uint32_t max_len; /* text models: longest sequence; 0 otherwise */
} kinfer_request_cost;

/* Most output tensors one request may produce. */
#define KINFER_MAX_OUTPUTS 4

/* One request inside a batch. The scheduler fills the inputs part; execute
 * (or collect) fills the outputs part. Output tensors point into buffers
 * owned by the replica, valid until the next kinfer_replica_execute or
 * kinfer_replica_collect call on that replica. */
typedef struct kinfer_batch_item {
    const kinfer_tensor *inputs;
    size_t ninputs;
    const kinfer_param *params;
    size_t nparams;
    kinfer_request_cost cost;

    kinfer_tensor outputs[KINFER_MAX_OUTPUTS];
    size_t noutputs;
    kinfer_err status; /* per-item outcome; KINFER_OK unless this item alone failed */
    char error[256];   /* per-item message when status != KINFER_OK */
} kinfer_batch_item;

/* Loads and validates a model. Errors name the file and what is wrong
 * (KINFER_ERR_MODEL_LOAD, KINFER_ERR_UNSUPPORTED, KINFER_ERR_IO). */
kinfer_err kinfer_model_load(const kinfer_model_options *opts, kinfer_model **out,
                             kinfer_error *err);
void kinfer_model_destroy(kinfer_model *model);

/* "mlp" etc. */
const char *kinfer_model_kind(const kinfer_model *model);
/* One-line description for logs, e.g. "mlp 256-512-512-16 relu/none". */
const char *kinfer_model_describe(const kinfer_model *model);

/* What a loaded model takes and gives, for start-up messages and clients. */
typedef struct kinfer_model_info {
    const char *kind;         /* as kinfer_model_kind */
    const char *description;  /* as kinfer_model_describe */
    kinfer_dtype input_dtype; /* of the main input: FP32 (mlp), STRING (bert texts) */
    uint32_t input_width;     /* elements per row of a fixed-width input; 0 = not fixed */
    uint32_t output_width;    /* elements per row of the main output; 0 = not known */
} kinfer_model_info;
/* Fills *info (strings valid for the model's lifetime). */
void kinfer_model_info_get(const kinfer_model *model, kinfer_model_info *info);

/* Checks one request's inputs and parameters against the model (names,
 * dtypes, shapes, NaN policy) and returns its cost. Thread-safe; does not
 * touch any replica. Failures are KINFER_ERR_INVALID_REQUEST with a message
 * naming the expected shape. */
kinfer_err kinfer_model_check_request(const kinfer_model *model, const kinfer_tensor *inputs,
                                      size_t ninputs, const kinfer_param *params, size_t nparams,
                                      kinfer_request_cost *cost, kinfer_error *err);

/* Places the model on a device: "cpu" or "cuda:N". Fails with
 * KINFER_ERR_DEVICE when the device does not exist or the build lacks its
 * backend. */
kinfer_err kinfer_replica_new(kinfer_model *model, const char *device, uint32_t max_rows,
                              kinfer_replica **out, kinfer_error *err);
void kinfer_replica_destroy(kinfer_replica *replica);
const char *kinfer_replica_device(const kinfer_replica *replica);

/* Runs one batch: sum of items[i].cost.rows <= max_rows. Returns an error
 * only when the whole batch failed (device error); per-item problems go to
 * items[i].status. Called by one thread at a time per replica. */
kinfer_err kinfer_replica_execute(kinfer_replica *replica, kinfer_batch_item *items, size_t nitems,
                                  kinfer_error *err);

/* Pipelined form of execute, so that the caller can pack batch N+1 while
 * batch N computes (issue 5: double buffering).
 *
 * kinfer_replica_submit starts a batch (same rules as execute) and may
 * return before its compute ends. `items` and every input they point to
 * must stay valid and unchanged until the batch is collected. At most
 * kinfer_replica_max_in_flight(replica) batches may be submitted and not
 * yet collected; one more is KINFER_ERR_INVALID_ARG. A submit that returns
 * an error (rows over max_rows, device error) leaves nothing in flight to
 * collect; per-item problems may show in items[i].status already.
 *
 * kinfer_replica_collect waits for the oldest submitted batch, fills its
 * items' outputs and statuses, and sets *items (when items is not NULL) to
 * the array given to its submit. A return other than KINFER_OK fails that
 * whole batch (device error) and still takes it out of flight; with
 * nothing in flight it is KINFER_ERR_INVALID_ARG. The outputs of a
 * collected batch stay valid until the next collect or execute call on the
 * replica (a submit in between does not touch them).
 *
 * kinfer_replica_execute is submit + collect and needs nothing in flight.
 * Submit, collect and execute of one replica are called by one thread at a
 * time. kinfer_replica_destroy waits for batches still in flight and drops
 * their results. */
kinfer_err kinfer_replica_submit(kinfer_replica *replica, kinfer_batch_item *items, size_t nitems,
                                 kinfer_error *err);
kinfer_err kinfer_replica_collect(kinfer_replica *replica, kinfer_batch_item **items,
                                  kinfer_error *err);
/* Batches that may be in flight at once: 2 for backends that compute
 * asynchronously (CUDA), 1 for the rest (their submit only records the
 * batch and collect computes it). */
uint32_t kinfer_replica_max_in_flight(const kinfer_replica *replica);
/* Batches submitted and not yet collected. */
uint32_t kinfer_replica_in_flight(const kinfer_replica *replica);

/* ---- Generative models (kind "llm") -------------------------------------
 *
 * A generative model runs per step, not per batch (continuous batching,
 * DESIGN.md §4): the engine owns admission, the KV block allocator, the
 * per-step token budget, sampling and stop rules; the model owns its
 * tokenizer, chat template and a forward pass over paged KV memory that the
 * replica holds. Non-generative kinds answer false to kinfer_model_gen_info
 * and KINFER_ERR_UNSUPPORTED to the rest of this section.
 *
 * Positions and blocks: sequence position p lives in block blocks[p / T],
 * slot p % T, with T = kv_block_tokens. The engine hands out block indexes
 * in [0, nblocks) of the replica's pool and never gives one block to two
 * live sequences. */

/* One chat message; role is what the template knows ("system", "user",
 * "assistant"). */
typedef struct kinfer_chat_message {
    kinfer_str role;
    kinfer_str content;
} kinfer_chat_message;

typedef struct kinfer_gen_info {
    uint32_t vocab_size;      /* logits per sequence */
    uint32_t context_length;  /* most positions one sequence may reach */
    uint32_t kv_block_tokens; /* T above */
    uint64_t kv_block_bytes;  /* memory one block takes on a replica (all layers, K and V) */
    int32_t bos_id;           /* -1 when the model has none */
    const int32_t *eog_ids;   /* token ids that end a generation (EOS, end of turn) */
    size_t neog;
} kinfer_gen_info;

/* True (and *info filled, valid for the model's lifetime) for a generative
 * model; false for every other kind. */
bool kinfer_model_gen_info(const kinfer_model *model, kinfer_gen_info *info);

/* A prompt as token ids. With messages (nmessages > 0) they are rendered by
 * the model's chat template with the generation prompt appended, and the
 * template's own markup becomes special tokens; otherwise `prompt` is
 * tokenized as plain text (BOS first when the model's metadata asks for
 * it; text that spells a special token stays text). *ids is malloc'd and
 * owned by the caller. Errors: KINFER_ERR_INVALID_REQUEST naming the
 * problem (invalid UTF-8 with its byte offset, empty prompt, a role the
 * template does not know). Thread-safe; touches no replica. */
kinfer_err kinfer_model_gen_tokenize(const kinfer_model *model, kinfer_str prompt,
                                     const kinfer_chat_message *messages, size_t nmessages,
                                     int32_t **ids, size_t *nids, kinfer_error *err);

/* The bytes token `id` stands for (byte-level BPE: possibly part of a UTF-8
 * sequence; the engine joins them and cuts text at character boundaries).
 * Control tokens give no bytes unless `special`. Writes at most cap bytes
 * and returns the full length (call again with more room when larger).
 * An id outside the vocabulary gives 0. Thread-safe. */
size_t kinfer_model_gen_token_bytes(const kinfer_model *model, int32_t id, bool special, char *out,
                                    size_t cap);

/* Gives the replica a KV pool of nblocks blocks (kv_block_bytes each),
 * once, after kinfer_replica_new and before the first step. The engine
 * sizes it from its memory budget. KINFER_ERR_NOMEM / KINFER_ERR_DEVICE
 * when the memory is not there. */
kinfer_err kinfer_replica_kv_alloc(kinfer_replica *replica, uint32_t nblocks, kinfer_error *err);

/* One sequence's share of a step. */
typedef struct kinfer_step_seq {
    const int32_t *tokens;  /* fed this step: a prefill chunk, or the token sampled last step */
    uint32_t ntokens;       /* >= 1 */
    uint32_t pos;           /* position of tokens[0]; K/V of [0, pos) are already in blocks */
    const uint32_t *blocks; /* block table; covers positions [0, pos + ntokens) */
    uint32_t nblocks;
    /* vocab_size floats (host memory) that receive the logits of the last
     * fed token, or NULL for a prefill chunk that is not the prompt's last. */
    float *logits;
} kinfer_step_seq;

/* One forward step over n sequences: writes the K/V of every fed token into
 * its blocks and the logits asked for. The sum of ntokens is at most the
 * replica's max_rows (for a generative model: tokens per step). A return
 * other than KINFER_OK fails the whole step (device error, bad block
 * table); the sequences' earlier K/V stay valid. Called by one thread at a
 * time per replica (its executor). No allocation per call. */
kinfer_err kinfer_replica_step(kinfer_replica *replica, kinfer_step_seq *seqs, size_t n,
                               kinfer_error *err);

#ifdef __cplusplus
}
#endif
#endif
