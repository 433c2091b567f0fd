/* bert_threads.h — a tiny fork-join pool for the non-GEMM work of the bert
 * CPU backend (attention per sequence x head, row-wise element-wise ops),
 * which OpenBLAS does not thread. One pool per replica; the executor thread
 * that calls bert_threads_run takes part. Not a general task system. */
#ifndef KINFER_BERT_THREADS_H
#define KINFER_BERT_THREADS_H

#include <stddef.h>

#include "kinfer/kinfer_error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bert_threads bert_threads;

/* fn(ctx, task, worker): worker in [0, nworkers) is stable for the call, so
 * per-worker scratch can be indexed by it. */
typedef void (*bert_task_fn)(void *ctx, size_t task, int worker);

/* nworkers >= 1 (1 = run inline, no threads). Errors: NOMEM, INTERNAL. */
kinfer_err bert_threads_new(int nworkers, bert_threads **out, kinfer_error *err);
void bert_threads_destroy(bert_threads *t);
int bert_threads_count(const bert_threads *t);
/* Runs fn for tasks [0, ntasks) across the workers and returns when all are
 * done. Called by one thread at a time (the replica's executor). */
void bert_threads_run(bert_threads *t, bert_task_fn fn, void *ctx, size_t ntasks);

#ifdef __cplusplus
}
#endif
#endif
