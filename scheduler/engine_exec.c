/* engine_exec.c — the engine's threads and completions: executor threads
 * that run one replica's batches, the scheduler thread that times dispatch
 * and expiry, and delivery of completions and congestion changes with no
 * lock held. Batch forming lives in engine_dispatch.c and engine_batch.c.
 *
 * One executor thread per replica, not per device: the seam drives a
 * replica from one thread at a time, and a thread per replica lets
 * replicas_per_device > 1 overlap on a GPU (one stream each) and keeps one
 * model's long batch from stalling another model on the same device. On
 * the CPU one replica per device is the sane setting; its BLAS threads use
 * the cores. A replica that allows two batches in flight (CUDA) is double
 * buffered: its executor submits the next due batch before collecting the
 * current one, so packing and upload overlap the device's compute. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine_internal.h"

static int64_t engine_now(kinfer_engine *engine) {
    return engine->clock.now_us(engine->clock.ctx);
}

void sched_finish_locked(kinfer_engine *engine, sched_model *m, size_t n) {
    m->in_flight -= n;
    if (atomic_fetch_sub(&engine->in_flight, n) == n)
        pthread_cond_broadcast(&engine->done_cond);
}

/* Under the lock: moves the assigned batch into the next free flight slot
 * (swapping request arrays, so the replica keeps a free one for the next
 * assignment) and leaves nothing assigned. */
static sched_flight *take_assigned_locked(sched_replica *rep, bool handed_off) {
    sched_flight *f = &rep->flight[(rep->flight_head + rep->nflight) % rep->max_in_flight];
    sched_req **reqs = f->reqs;
    f->reqs = rep->reqs;
    rep->reqs = reqs;
    f->nreqs = rep->nreqs;
    f->rows = rep->rows;
    f->units = rep->units;
    f->assigned_at = rep->assigned_at;
    f->handed_off = handed_off;
    rep->nreqs = 0;
    rep->rows = 0;
    rep->units = 0;
    rep->nflight++;
    return f;
}

/* Liveness marks around every call into the model for a batch: how long
 * an executor has been inside one is what kinfer_engine_stats reports. */
static void inside_enter(sched_replica *rep, const sched_flight *f) {
    atomic_store(&rep->inside_units, f->units);
    atomic_store(&rep->inside_since, f->start);
}

static void inside_leave(sched_replica *rep) {
    atomic_store(&rep->inside_since, INT64_MIN);
}

/* No lock: fills the batch items and submits them. A model without
 * replica_submit runs the batch in flight_complete instead. */
static void flight_submit(kinfer_engine *engine, sched_replica *rep, sched_flight *f) {
    for (size_t i = 0; i < f->nreqs; i++) {
        sched_req *r = f->reqs[i];
        kinfer_batch_item *it = &f->items[i];
        memset(it, 0, sizeof(*it));
        it->inputs = r->inputs;
        it->ninputs = r->ninputs;
        it->params = r->params;
        it->nparams = r->nparams;
        it->cost = r->cost;
        it->status = KINFER_OK;
    }
    kinfer_error_clear(&f->err);
    f->start = engine_now(engine);
    f->rc = KINFER_OK;
    if (engine->ops.replica_submit) {
        inside_enter(rep, f);
        f->rc =
            engine->ops.replica_submit(engine->ops_ctx, rep->handle, f->items, f->nreqs, &f->err);
        inside_leave(rep);
    }
}

/* No lock: waits for the oldest batch in flight (collect, or execute for a
 * model without submit), completes its requests and drops it from flight.
 * *prev_end is when the batch before it finished (INT64_MIN for none). */
static void flight_complete(kinfer_engine *engine, sched_replica *rep, int64_t *prev_end) {
    sched_model *m = rep->model;
    sched_flight *f = &rep->flight[rep->flight_head];
    size_t n = f->nreqs;
    kinfer_err rc = f->rc;
    if (rc == KINFER_OK) {
        /* Since its submit: a collect waits for the device's whole batch. */
        inside_enter(rep, f);
        rc = engine->ops.replica_submit
                 ? engine->ops.replica_collect(engine->ops_ctx, rep->handle, &f->err)
                 : engine->ops.replica_execute(engine->ops_ctx, rep->handle, f->items, n, &f->err);
        inside_leave(rep);
    }
    int64_t start = f->start;
    int64_t end = engine_now(engine);
    /* Reported: submit to collect, which for a pipelined batch includes
     * waiting behind the one before it. Learned: only the time the batch
     * added after that one finished, what the estimate is used for (the
     * pass widens the margin by the wait itself). */
    int64_t compute = end - start;
    int64_t service = end - (*prev_end > start ? *prev_end : start);
    *prev_end = end;

    uint64_t ok = 0;
    pthread_mutex_lock(&engine->mu);
    /* A failed batch says nothing about compute time; a negative one means
     * the wall clock stepped back, and teaching the estimator that would
     * make it promise too much. */
    if (rc == KINFER_OK && compute >= 0 && service >= 0)
        sched_latency_record(&m->latency, f->units, service);
    if (!engine->opts.manual && f->handed_off && start >= f->assigned_at)
        sched_latency_record(&engine->handoff_lag, 1, start - f->assigned_at);
    pthread_mutex_unlock(&engine->mu);
    if (compute < 0)
        compute = 0;

    for (size_t i = 0; i < n; i++) {
        sched_req *r = f->reqs[i];
        kinfer_batch_item *it = &f->items[i];
        kinfer_engine_result res = {
            .token = r->token,
            .model_version = m->version,
            .device = rep->device,
            .queue_us = start > r->arrival_us ? start - r->arrival_us : 0,
            .compute_us = compute,
            .batch_size = (uint32_t)n,
            .has_deadline = r->deadline_us != SCHED_NO_DEADLINE,
            .deadline_slack_us = r->deadline_us != SCHED_NO_DEADLINE ? r->deadline_us - start : 0,
        };
        if (rc != KINFER_OK) {
            res.status = rc;
            res.error = f->err.msg[0] ? f->err.msg : kinfer_err2str(rc);
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
        f->reqs[i] = NULL;
    }
    f->nreqs = 0;
    f->rows = 0;
    f->units = 0;
    rep->flight_head = (rep->flight_head + 1) % rep->max_in_flight;
    rep->nflight--;

    pthread_mutex_lock(&engine->mu);
    m->completed_ok += ok;
    m->completed_error += n - ok;
    sched_finish_locked(engine, m, n);
    pthread_mutex_unlock(&engine->mu);
}

/* No lock; rep has `cur` (its only batch) in flight and room for one more;
 * prev_end is when the batch before cur finished. Forms the model's next
 * batch onto rep when it is due and submits it before cur is collected:
 * the host packs batch N+1 while the device computes batch N. Returns
 * whether it submitted one. */
static bool pipeline_next(kinfer_engine *engine, sched_replica *rep, const sched_flight *cur,
                          int64_t prev_end) {
    sched_req *expired = NULL;
    sched_flight *next = NULL;
    pthread_mutex_lock(&engine->mu);
    int64_t now = engine_now(engine);
    /* cur's expected rest: it ran from its submit or, if it queued behind
     * the batch before, from that one's end. */
    int64_t began = prev_end > cur->start ? prev_end : cur->start;
    int64_t wait = sched_latency_estimate(&rep->model->latency, cur->units) - (now - began);
    if (sched_replica_take_next(engine, rep, now, wait > 0 ? wait : 0, &expired))
        next = take_assigned_locked(rep, false);
    bool report = rep->model->congested != rep->model->congested_reported;
    pthread_mutex_unlock(&engine->mu);
    /* Submit first: the callbacks below may take a while. */
    if (next)
        flight_submit(engine, rep, next);
    if (expired)
        sched_complete_unrun(engine, expired, KINFER_ERR_DEADLINE_EXCEEDED,
                             "deadline exceeded while queued");
    if (report)
        sched_deliver_congestion(engine);
    return next != NULL;
}

size_t sched_replica_run(sched_replica *rep) {
    kinfer_engine *engine = rep->engine;
    pthread_mutex_lock(&engine->mu);
    if (rep->nreqs == 0) {
        pthread_mutex_unlock(&engine->mu);
        return 0;
    }
    sched_flight *cur = take_assigned_locked(rep, true);
    pthread_mutex_unlock(&engine->mu);
    flight_submit(engine, rep, cur);
    size_t ran = 0;
    int64_t prev_end = INT64_MIN;
    while (rep->nflight > 0) {
        /* The newest batch in flight; a failed submit has nothing on the
         * device to overlap with. */
        cur = &rep->flight[(rep->flight_head + rep->nflight - 1) % rep->max_in_flight];
        if (rep->nflight < rep->max_in_flight && cur->rc == KINFER_OK)
            pipeline_next(engine, rep, cur, prev_end);
        flight_complete(engine, rep, &prev_end);
        ran++;
    }

    pthread_mutex_lock(&engine->mu);
    rep->busy = false;
    if (engine->opts.manual) {
        pthread_mutex_unlock(&engine->mu);
        return ran;
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
    return ran;
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
    gen_seq *gens = NULL;
    while (list) {
        sched_req *r = list;
        list = r->newer;
        if (r->gen) {
            /* A generation (perhaps preempted with tokens already): its
             * outcome, then the generative finals path. */
            gen_seq_finish(r->gen, status,
                           status == KINFER_ERR_DEADLINE_EXCEEDED ? KINFER_FINISH_DEADLINE
                                                                  : KINFER_FINISH_CANCELLED,
                           why);
            r->gen->done_next = gens;
            gens = r->gen;
            continue;
        }
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
        sched_finish_locked(engine, m, 1);
        pthread_mutex_unlock(&engine->mu);
    }
    if (gens)
        sched_gen_deliver_finals(engine, gens);
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
