/* engine_exec.c — the engine's threads and completions: executor threads
 * that run one replica's batches, the scheduler thread that times dispatch
 * and expiry, and delivery of completions and congestion changes with no
 * lock held. Batch forming lives in engine_dispatch.c.
 *
 * One executor thread per replica, not per device: the seam drives a
 * replica from one thread at a time, and a thread per replica lets
 * replicas_per_device > 1 overlap on a GPU (one stream each) and keeps one
 * model's long batch from stalling another model on the same device. On
 * the CPU one replica per device is the sane setting; its BLAS threads use
 * the cores. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine_internal.h"

static int64_t engine_now(kinfer_engine *engine) {
    return engine->clock.now_us(engine->clock.ctx);
}

/* Drops n finished requests of model m from the counts; under the lock. */
static void finish_locked(kinfer_engine *engine, sched_model *m, size_t n) {
    m->in_flight -= n;
    if (atomic_fetch_sub(&engine->in_flight, n) == n)
        pthread_cond_broadcast(&engine->done_cond);
}

void sched_replica_run(sched_replica *rep) {
    kinfer_engine *engine = rep->engine;
    sched_model *m = rep->model;
    size_t n = rep->nreqs;
    for (size_t i = 0; i < n; i++) {
        sched_req *r = rep->reqs[i];
        kinfer_batch_item *it = &rep->items[i];
        memset(it, 0, sizeof(*it));
        it->inputs = r->inputs;
        it->ninputs = r->ninputs;
        it->params = r->params;
        it->nparams = r->nparams;
        it->cost = r->cost;
        it->status = KINFER_OK;
    }
    kinfer_error err;
    kinfer_error_clear(&err);
    int64_t start = engine_now(engine);
    kinfer_err rc = engine->ops.replica_execute(engine->ops_ctx, rep->handle, rep->items, n, &err);
    int64_t end = engine_now(engine);
    int64_t compute = end - start;

    uint64_t ok = 0;
    pthread_mutex_lock(&engine->mu);
    /* A failed batch says nothing about compute time; a negative one means
     * the wall clock stepped back, and teaching the estimator that would
     * make it promise too much. */
    if (rc == KINFER_OK && compute >= 0)
        sched_latency_record(&m->latency, rep->rows, compute);
    if (!engine->opts.manual && start >= rep->assigned_at)
        sched_latency_record(&engine->handoff_lag, 1, start - rep->assigned_at);
    pthread_mutex_unlock(&engine->mu);
    if (compute < 0)
        compute = 0;

    for (size_t i = 0; i < n; i++) {
        sched_req *r = rep->reqs[i];
        kinfer_batch_item *it = &rep->items[i];
        kinfer_engine_result res = {
            .token = r->token,
            .model_version = m->version,
            .device = rep->device,
            .queue_us = start > r->arrival_us ? start - r->arrival_us : 0,
            .compute_us = compute,
            .batch_size = (uint32_t)n,
        };
        if (rc != KINFER_OK) {
            res.status = rc;
            res.error = err.msg[0] ? err.msg : kinfer_err2str(rc);
        } else if (it->status != KINFER_OK) {
            res.status = it->status;
            it->error[sizeof(it->error) - 1] = '\0';
            res.error = it->error[0] ? it->error : kinfer_err2str(it->status);
        } else {
            res.status = KINFER_OK;
            res.outputs = it->outputs;
            res.noutputs = it->noutputs;
            ok++;
        }
        engine->on_complete(engine->callback_ctx, &res);
        free(r);
        rep->reqs[i] = NULL;
    }

    pthread_mutex_lock(&engine->mu);
    m->completed_ok += ok;
    m->completed_error += n - ok;
    rep->nreqs = 0;
    rep->rows = 0;
    rep->busy = false;
    finish_locked(engine, m, n);
    if (engine->opts.manual) {
        pthread_mutex_unlock(&engine->mu);
        return;
    }
    /* Work-conserving hand-off: this thread runs the scheduler pass itself
     * (maybe assigning its own next batch) rather than waking the scheduler
     * thread and waiting for it to wake us back; on a busy CPU that round
     * trip cost more than a 1-row batch. The scheduler thread is woken only
     * when its timer must move earlier. */
    sched_pass_out out = {.ready = engine->ready_scratch, .ready_cap = engine->nreplicas_total};
    int64_t next = sched_engine_pass(engine, engine_now(engine), &out);
    for (size_t i = 0; i < out.nready; i++)
        if (out.ready[i] != rep)
            pthread_cond_signal(&out.ready[i]->work_cond);
    if (next < engine->sched_wake_at)
        pthread_cond_signal(&engine->sched_cond);
    pthread_mutex_unlock(&engine->mu);
    if (out.expired || out.aborted) {
        sched_complete_unrun(engine, out.expired, KINFER_ERR_DEADLINE_EXCEEDED,
                             "deadline exceeded while queued");
        sched_complete_unrun(engine, out.aborted, KINFER_ERR_SHUTDOWN,
                             "engine shut down before the request ran");
    }
    sched_deliver_congestion(engine);
}

void *sched_replica_thread(void *arg) {
    sched_replica *rep = arg;
    kinfer_engine *engine = rep->engine;
    pthread_mutex_lock(&engine->mu);
    for (;;) {
        while (rep->nreqs == 0 && !engine->stop_threads)
            pthread_cond_wait(&rep->work_cond, &engine->mu);
        if (rep->nreqs == 0)
            break; /* stopping and idle */
        pthread_mutex_unlock(&engine->mu);
        sched_replica_run(rep);
        pthread_mutex_lock(&engine->mu);
    }
    pthread_mutex_unlock(&engine->mu);
    return NULL;
}

void sched_complete_unrun(kinfer_engine *engine, sched_req *list, kinfer_err status,
                          const char *why) {
    int64_t now = engine_now(engine);
    while (list) {
        sched_req *r = list;
        list = r->newer;
        kinfer_engine_result res = {
            .token = r->token,
            .status = status,
            .error = why,
            .device = "",
            .queue_us = now > r->arrival_us ? now - r->arrival_us : 0,
        };
        sched_model *m = r->owner;
        res.model_version = m->version;
        engine->on_complete(engine->callback_ctx, &res);
        free(r);
        pthread_mutex_lock(&engine->mu);
        m->completed_error++;
        finish_locked(engine, m, 1);
        pthread_mutex_unlock(&engine->mu);
    }
}

void sched_deliver_congestion(kinfer_engine *engine) {
    if (!engine->on_congestion)
        return;
    pthread_mutex_lock(&engine->mu);
    if (engine->delivering_congestion) {
        /* The thread already delivering loops until nothing is left. */
        pthread_mutex_unlock(&engine->mu);
        return;
    }
    engine->delivering_congestion = true;
    for (;;) {
        sched_model *m = NULL;
        for (size_t i = 0; i < engine->nmodels && !m; i++)
            if (engine->models[i].congested != engine->models[i].congested_reported)
                m = &engine->models[i];
        if (!m)
            break;
        bool state = m->congested;
        m->congested_reported = state;
        pthread_mutex_unlock(&engine->mu);
        engine->on_congestion(engine->callback_ctx, m->name, state);
        pthread_mutex_lock(&engine->mu);
    }
    engine->delivering_congestion = false;
    pthread_mutex_unlock(&engine->mu);
}

/* Waits on sched_cond until the engine-clock time `wake` (or the drain
 * deadline), measured as a relative delay on the monotonic clock so that a
 * wall-clock step cannot stall the scheduler. Capped at one second so that
 * an injected clock or a clock step is re-read regularly. */
static void timed_wait(kinfer_engine *engine, int64_t now, int64_t wake) {
    int64_t delay = wake == INT64_MAX ? 1000000 : wake - now;
    if (engine->draining) {
        int64_t left = engine->drain_deadline_mono_us - kinfer_mono_us();
        if (left > 0 && left < delay) /* past it, the pass has emptied the queues */
            delay = left;
    }
    if (delay > 1000000)
        delay = 1000000;
    if (delay <= 0)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t ns = (int64_t)ts.tv_nsec + delay * 1000;
    ts.tv_sec += ns / 1000000000;
    ts.tv_nsec = ns % 1000000000;
    pthread_cond_timedwait(&engine->sched_cond, &engine->mu, &ts);
}

void *sched_scheduler_thread(void *arg) {
    kinfer_engine *engine = arg;
    int64_t timer = INT64_MAX; /* the timed event the last wait was for */
    pthread_mutex_lock(&engine->mu);
    while (!engine->stop_threads) {
        int64_t now = engine_now(engine);
        /* Woken at or after the timer (by it or by a signal after it):
         * how late the timer fired is a sample of the wake-up lag. */
        if (timer != INT64_MAX && now >= timer)
            sched_latency_record(&engine->wake_lag, 1, now - timer);
        timer = INT64_MAX;
        sched_pass_out out = {.ready = engine->ready_scratch, .ready_cap = engine->nreplicas_total};
        int64_t wake = sched_engine_pass(engine, now, &out);
        for (size_t i = 0; i < out.nready; i++)
            pthread_cond_signal(&out.ready[i]->work_cond);
        if (out.expired || out.aborted) {
            pthread_mutex_unlock(&engine->mu);
            sched_complete_unrun(engine, out.expired, KINFER_ERR_DEADLINE_EXCEEDED,
                                 "deadline exceeded while queued");
            sched_complete_unrun(engine, out.aborted, KINFER_ERR_SHUTDOWN,
                                 "engine shut down before the request ran");
            sched_deliver_congestion(engine);
            pthread_mutex_lock(&engine->mu);
            continue; /* time moved on while completing */
        }
        if (out.nready) {
            pthread_mutex_unlock(&engine->mu);
            sched_deliver_congestion(engine);
            pthread_mutex_lock(&engine->mu);
            continue;
        }
        engine->sched_wake_at = wake; /* executors signal only to move it earlier */
        timer = wake;
        timed_wait(engine, now, wake);
        engine->sched_wake_at = INT64_MIN;
    }
    pthread_mutex_unlock(&engine->mu);
    return NULL;
}
