/* cpu_threads.c — fork-join pool of cpu_threads.h: workers sleep on a
 * condition variable between runs (no spinning, so they do not steal the
 * cores OpenBLAS uses for the GEMMs in between) and take task indices from
 * an atomic counter. The caller takes tasks too and, once none are left,
 * closes the run: it then waits only for the helpers that joined it, so a
 * helper the OS has not scheduled yet (a busy machine) never holds a run
 * up; it skips the closed run when it wakes. */
#include "cpu_threads.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

struct kinfer_threads {
    int n; /* workers including the caller */
    pthread_t *tids;
    pthread_mutex_t lock;
    pthread_cond_t wake, done;
    unsigned long generation; /* bumped per run */
    bool open;                /* the current run still admits helpers */
    int active;               /* helpers inside the current run */
    bool stop;
    kinfer_task_fn fn;
    void *ctx;
    size_t ntasks;
    atomic_size_t next;
};

typedef struct worker_arg {
    kinfer_threads *t;
    int id;
} worker_arg;

static void drain(kinfer_threads *t, int id) {
    for (;;) {
        size_t i = atomic_fetch_add(&t->next, 1);
        if (i >= t->ntasks)
            return;
        t->fn(t->ctx, i, id);
    }
}

static void *worker_main(void *p) {
    worker_arg a = *(worker_arg *)p;
    free(p);
    kinfer_threads *t = a.t;
    unsigned long seen = 0;
    pthread_mutex_lock(&t->lock);
    for (;;) {
        while (!t->stop && t->generation == seen)
            pthread_cond_wait(&t->wake, &t->lock);
        if (t->stop)
            break;
        seen = t->generation;
        if (!t->open)
            continue; /* woke after the caller finished that run alone */
        t->active++;
        pthread_mutex_unlock(&t->lock);
        drain(t, a.id);
        pthread_mutex_lock(&t->lock);
        if (--t->active == 0 && !t->open)
            pthread_cond_signal(&t->done);
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

kinfer_err kinfer_threads_new(int nworkers, kinfer_threads **out, kinfer_error *err) {
    *out = NULL;
    if (nworkers < 1)
        nworkers = 1;
    kinfer_threads *t = calloc(1, sizeof(*t));
    if (!t || !(t->tids = calloc((size_t)nworkers, sizeof(pthread_t)))) {
        free(t);
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
    }
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->wake, NULL);
    pthread_cond_init(&t->done, NULL);
    t->n = 1;
    for (int i = 1; i < nworkers; i++) {
        worker_arg *a = malloc(sizeof(*a));
        if (a) {
            a->t = t;
            a->id = i;
        }
        if (!a || pthread_create(&t->tids[i], NULL, worker_main, a) != 0) {
            free(a);
            kinfer_threads_destroy(t);
            return kinfer_error_set(err, KINFER_ERR_INTERNAL, "cannot start %d threads", nworkers);
        }
        t->n++;
    }
    *out = t;
    return KINFER_OK;
}

void kinfer_threads_destroy(kinfer_threads *t) {
    if (!t)
        return;
    pthread_mutex_lock(&t->lock);
    t->stop = true;
    pthread_cond_broadcast(&t->wake);
    pthread_mutex_unlock(&t->lock);
    for (int i = 1; i < t->n; i++)
        pthread_join(t->tids[i], NULL);
    pthread_mutex_destroy(&t->lock);
    pthread_cond_destroy(&t->wake);
    pthread_cond_destroy(&t->done);
    free(t->tids);
    free(t);
}

int kinfer_threads_count(const kinfer_threads *t) {
    return t->n;
}

void kinfer_threads_run(kinfer_threads *t, kinfer_task_fn fn, void *ctx, size_t ntasks) {
    if (t->n == 1 || ntasks <= 1) {
        for (size_t i = 0; i < ntasks; i++)
            fn(ctx, i, 0);
        return;
    }
    pthread_mutex_lock(&t->lock);
    t->fn = fn;
    t->ctx = ctx;
    t->ntasks = ntasks;
    atomic_store(&t->next, 0);
    t->open = true;
    t->active = 0;
    t->generation++;
    pthread_cond_broadcast(&t->wake);
    pthread_mutex_unlock(&t->lock);
    drain(t, 0);
    pthread_mutex_lock(&t->lock);
    t->open = false; /* no task is left to take: late helpers skip this run */
    while (t->active > 0)
        pthread_cond_wait(&t->done, &t->lock);
    pthread_mutex_unlock(&t->lock);
}
