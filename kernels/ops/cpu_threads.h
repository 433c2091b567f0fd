/* cpu_threads.h — a tiny fork-join pool for the CPU replicas' own parallel
 * work (the bert encoder's attention per sequence x head and row-wise ops,
 * which OpenBLAS does not thread). One pool per replica; the executor thread
 * that calls kinfer_threads_run takes part. Not a general task system. */
#ifndef KINFER_CPU_THREADS_H
#define KINFER_CPU_THREADS_H

#include <stddef.h>

#include "kinfer/kinfer_error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kinfer_threads kinfer_threads;

/* fn(ctx, task, worker): worker in [0, nworkers) is stable for the call, so
 * per-worker scratch can be indexed by it. */
typedef void (*kinfer_task_fn)(void *ctx, size_t task, int worker);

/* nworkers >= 1 (1 = run inline, no threads). Errors: NOMEM, INTERNAL. */
kinfer_err kinfer_threads_new(int nworkers, kinfer_threads **out, kinfer_error *err);
void kinfer_threads_destroy(kinfer_threads *t);
int kinfer_threads_count(const kinfer_threads *t);
/* Runs fn for tasks [0, ntasks) across the workers and returns when all are
 * done. Called by one thread at a time (the replica's executor). */
void kinfer_threads_run(kinfer_threads *t, kinfer_task_fn fn, void *ctx, size_t ntasks);

#ifdef __cplusplus
}
#endif
#endif
