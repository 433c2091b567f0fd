/* kinfer_model.h — the seam between the scheduler and the compute side.
 *
 * A kinfer_model is a loaded, device-agnostic model (weights in host
 * memory, mmapped or converted). A kinfer_replica is that model placed on
 * one device ("cpu", "cuda:0") with buffers for up to max_rows rows; one
 * executor thread drives a replica at a time. The scheduler packs requests
 * into a batch of kinfer_batch_item and calls kinfer_replica_execute (or
 * submit/collect, to overlap packing with compute) once per batch: one
 * GEMM per layer per batch, never per request.
 *
 * This header knows nothing of Kafka, Avro or queues. */
#ifndef KINFER_MODEL_H
#define KINFER_MODEL_H

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
    const char *kind;              /* "mlp" (later "bert") */
    const char *path;              /* file (mlp) or directory (bert) */
    const char *activation;        /* override of the file's metadata; NULL = file's */
    const char *output_activation; /* override; NULL = file's */
    kinfer_nan_policy nan_policy;
    const char *precision; /* "fp32" (default), "fp16", "bf16": GPU weight/compute type */
    int cpu_threads;       /* threads for the CPU backend; 0 = online cores */
} kinfer_model_options;

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
/* One-line description for logs and check-config, e.g. "mlp 256-512-512-16 relu/none". */
const char *kinfer_model_describe(const kinfer_model *model);

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

#ifdef __cplusplus
}
#endif
#endif
