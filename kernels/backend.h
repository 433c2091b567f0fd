/* backend.h — the internal backend table: what a model kind returns when it
 * is placed on a device (a kinfer_replica_impl whose ops each backend of
 * each kind provides). kinfer_replica_new (kinfer_model.c) parses the
 * device text with kinfer_device_parse, rejects CUDA devices the build or
 * machine lacks, and calls the kind's replica_new (model_registry.h), which
 * picks its backend. Kind-neutral: each kind declares its backends in its
 * own folder. Not public API: the scheduler sees only kinfer_model.h. */
#ifndef KINFER_BACKEND_H
#define KINFER_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "kinfer/kinfer_error.h"
#include "kinfer/kinfer_model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kinfer_replica_impl kinfer_replica_impl;

/* One table per backend x kind (e.g. mlp on cpu, mlp on cuda). */
typedef struct kinfer_replica_ops {
    const char *backend; /* "cpu" or "cuda": for messages */
    /* Runs one batch (see kinfer_replica_execute). The caller has already
     * checked sum(cost.rows) <= max_rows and reset each item's status,
     * error and noutputs. Per-item problems go to items[i].status; a
     * return other than KINFER_OK fails the whole batch. No allocation per
     * call. Called by one thread at a time per replica. */
    kinfer_err (*execute)(kinfer_replica_impl *impl, kinfer_batch_item *items, size_t nitems,
                          kinfer_error *err);
    /* Frees everything the replica owns, waiting first for any batch still
     * in flight; NULL-safe is not required. */
    void (*destroy)(kinfer_replica_impl *impl);

    /* Optional asynchronous pair (kinfer_replica_submit/collect), set both
     * or neither; with them, execute may be NULL. Without them the generic
     * layer (kinfer_model.c) allows one batch in flight: its submit only
     * records the batch and its collect calls execute.
     *
     * submit: the caller has checked the rows, reset the items and that
     * fewer than max_in_flight batches are in flight. Enqueues the batch
     * and returns; items stays valid until its collect. An error leaves
     * nothing of this batch in flight (earlier batches stay collectable).
     * collect: waits for the oldest submitted batch and fills its items'
     * outputs (valid until the next collect); always takes it out of
     * flight, also on error. No allocation per call in either. */
    kinfer_err (*submit)(kinfer_replica_impl *impl, kinfer_batch_item *items, size_t nitems,
                         kinfer_error *err);
    kinfer_err (*collect)(kinfer_replica_impl *impl, kinfer_error *err);
    /* Batches submit may have outstanding, 1..KINFER_REPLICA_MAX_IN_FLIGHT
     * (0 reads as 1); ignored without submit. */
    uint32_t max_in_flight;

    /* Generative replicas (kind llm) only, NULL otherwise: the KV pool
     * (kinfer_replica_kv_alloc) and one forward step (kinfer_replica_step).
     * The generic layer has checked the step's shape (n >= 1, ntokens >= 1,
     * total <= max_rows, pointers, positions within the context, token ids
     * within the vocabulary, tables long enough); the backend checks block
     * indexes against its pool. No allocation per step. */
    kinfer_err (*kv_alloc)(kinfer_replica_impl *impl, uint32_t nblocks, kinfer_error *err);
    kinfer_err (*step)(kinfer_replica_impl *impl, kinfer_step_seq *seqs, size_t n,
                       kinfer_error *err);
} kinfer_replica_ops;

/* The most batches any backend keeps in flight (the generic layer's ring). */
#define KINFER_REPLICA_MAX_IN_FLIGHT 2

/* Every backend replica struct starts with this, so generic code can reach
 * its ops:  struct mlp_cpu_replica { kinfer_replica_impl base; ... }; */
struct kinfer_replica_impl {
    const kinfer_replica_ops *ops;
};

/* Each kind declares its own replica constructors in its folder
 * (mlp/mlp_model.h, bert/bert_model.h, bert/bert_cuda.h); this header is
 * kind-neutral. */

/* --- CUDA (only with KINFER_HAVE_CUDA; files *_cuda.c / *.cu) ------------- */
#ifdef KINFER_HAVE_CUDA
/* Devices the CUDA runtime reports (cudaGetDeviceCount); 0 when it fails
 * or there are none. Must be cheap to call repeatedly and thread-safe.
 * kinfer_cuda_device_count() returns this. */
int kinfer_cuda_backend_device_count(void);
#endif

#ifdef __cplusplus
}
#endif
#endif
