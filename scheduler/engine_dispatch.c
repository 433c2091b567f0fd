/* engine_dispatch.c — the scheduler pass: expiry, drain, and handing
 * batches to idle replicas, all under the engine lock. It decides when with
 * sched_policy_decide, leaves which requests to engine_batch.c, and runs
 * nothing itself; engine_exec.c runs batches (and asks
 * sched_replica_take_next for a pipelined replica's next one). */
#include <stdbool.h>
#include <string.h>

#include "engine_internal.h"
#include "kinfer/kinfer_log.h"

/* Picks the idle replica of the model whose device has the fewest busy
 * replicas (of any model); ties go to the earlier replica, i.e. the
 * preferred device. NULL when all are busy. */
static sched_replica *pick_replica(kinfer_engine *engine, sched_model *m) {
    sched_replica *best = NULL;
    size_t best_load = 0;
    for (size_t i = 0; i < m->nreplicas; i++) {
        sched_replica *rep = m->replicas[i];
        if (rep->busy)
            continue;
        size_t load = 0;
        for (size_t j = 0; j < engine->nmodels; j++) {
            sched_model *o = &engine->models[j];
            for (size_t k = 0; k < o->nreplicas; k++)
                if (o->replicas[k]->busy && strcmp(o->replicas[k]->device, rep->device) == 0)
                    load++;
        }
        if (!best || load < best_load) {
            best = rep;
            best_load = load;
        }
    }
    return best;
}

static void push_list(sched_req **list, sched_req *r) {
    if (r->gen) /* a generation leaves the queue for good: no cancel can find it there */
        r->gen->state = GEN_FINISHING;
    r->newer = *list;
    *list = r;
}

/* Pops every queued request whose deadline has passed onto *expired (the
 * heap top has the earliest deadline). Returns whether any was. */
static bool expire_due(sched_model *m, int64_t now, sched_req **expired) {
    bool any = false;
    for (sched_req *r = sched_queue_peek(&m->queue); r && r->deadline_us <= now;
         r = sched_queue_peek(&m->queue)) {
        push_list(expired, sched_queue_pop(&m->queue));
        m->expired++;
        any = true;
    }
    return any;
}

/* Asks the policy whether m's queue (not empty) makes a batch due now. */
/* With online requests queued the policy looks at the online lane alone
 * (bulk ones neither hurry nor fill its batches); else at the bulk lane. */
static sched_trigger decide(const kinfer_engine *engine, const sched_model *m, int64_t now,
                            int64_t margin, int64_t *wake) {
    const sched_queue *q = &m->queue;
    int l = q->lane_len[0] > 0 ? 0 : 1;
    sched_policy_input in = {
        .queued = q->lane_len[l],
        .queued_rows = q->lane_rows[l],
        .queued_tokens = q->lane_tokens[l],
        .oldest_arrival_us = sched_queue_lane_oldest(q, l)->arrival_us,
        .earliest_deadline_us = sched_queue_peek(q)->deadline_us,
        .max_batch_size = m->max_batch_size,
        .max_batch_tokens = m->max_batch_tokens,
        .max_queue_delay_us = m->max_queue_delay_us,
        .estimate_us = sched_latency_estimate(
            &m->latency, sched_prospective_units_of(m, q->lane_rows[l], q->lane_tokens[l])),
        .margin_us = margin,
        .draining = engine->draining,
    };
    return sched_policy_decide(&in, now, wake);
}

int64_t sched_engine_dispatch_lag(const kinfer_engine *engine) {
    if (engine->opts.manual)
        return 0;
    return sched_latency_estimate(&engine->wake_lag, 1) +
           sched_latency_estimate(&engine->handoff_lag, 1);
}

int64_t sched_engine_pass(kinfer_engine *engine, int64_t now, sched_pass_out *out) {
    int64_t next = INT64_MAX;
    int64_t margin = engine->opts.deadline_margin_us + sched_engine_dispatch_lag(engine);
    bool abort_all = engine->draining && kinfer_mono_us() >= engine->drain_deadline_mono_us;
    for (size_t i = 0; i < engine->nmodels; i++) {
        sched_model *m = &engine->models[i];
        sched_queue *q = &m->queue;
        bool changed = expire_due(m, now, &out->expired); /* expiry first */
        if (abort_all) {
            for (sched_req *r = sched_queue_pop(q); r; r = sched_queue_pop(q))
                push_list(&out->aborted, r);
            changed = true;
        }
        /* A generative model's replicas admit from the queue themselves,
         * step by step (engine_gen_step.c); the pass only expires. */
        while (q->len > 0 && !m->gen) {
            int64_t wake;
            sched_trigger t = decide(engine, m, now, margin, &wake);
            if (t == SCHED_WAIT) {
                if (wake < next)
                    next = wake;
                /* Online requests wait for company: bulk work that ends
                 * before their batch is due may use the idle replica. */
                sched_replica *rep = m->queue.lane_len[0] > 0 && m->queue.lane_len[1] > 0
                                         ? pick_replica(engine, m)
                                         : NULL;
                int64_t gap = wake == INT64_MAX ? INT64_MAX : wake - now - margin;
                if (gap > m->bulk_slice_us)
                    gap = m->bulk_slice_us;
                /* ... and before arrivals at the recent rate would fill it. */
                const sched_queue *oq = &m->queue;
                if (rep && m->online_gap_us >= 0 && oq->lane_rows[0] < m->max_batch_size) {
                    uint64_t per = oq->lane_rows[0] / oq->lane_len[0];
                    uint64_t more = (m->max_batch_size - oq->lane_rows[0]) / (per ? per : 1);
                    int64_t full_in = (int64_t)more * m->online_gap_us - margin;
                    if (full_in < gap)
                        gap = full_in;
                }
                if (rep && gap > 0 && sched_batch_form_gap(m, rep, now, gap)) {
                    changed = true;
                    if (out->nready < out->ready_cap)
                        out->ready[out->nready++] = rep;
                    continue;
                }
                break;
            }
            sched_replica *rep = pick_replica(engine, m);
            if (!rep)
                break; /* a finishing batch signals the scheduler */
            sched_batch_form(m, rep, now, margin);
            changed = true;
            if (kinfer_log_enabled(KINFER_LOG_DEBUG))
                KINFER_LOGD("engine.dispatch",
                            "model=%s device=%s trigger=%s requests=%zu rows=%u units=%u", m->name,
                            rep->device, sched_trigger_name(t), rep->nreqs, rep->rows, rep->units);
            if (out->nready < out->ready_cap)
                out->ready[out->nready++] = rep;
        }
        /* The queued request with the earliest deadline expires then. */
        sched_req *top = sched_queue_peek(q);
        if (top && top->deadline_us < next)
            next = top->deadline_us;
        if (changed)
            sched_model_watermark(m);
    }
    return next;
}

bool sched_replica_take_next(kinfer_engine *engine, sched_replica *rep, int64_t now,
                             int64_t wait_us, sched_req **expired) {
    sched_model *m = rep->model;
    /* Past the drain time the next pass aborts what is queued. */
    if (engine->draining && kinfer_mono_us() >= engine->drain_deadline_mono_us)
        return false;
    bool changed = expire_due(m, now, expired);
    bool formed = false;
    /* An idle replica would start the batch at once, not behind this one;
     * the scheduler thread or the next pass gives it the batch. */
    bool other_idle = false;
    for (size_t k = 0; k < m->nreplicas && !other_idle; k++)
        other_idle = m->replicas[k] != rep && !m->replicas[k]->busy;
    if (!other_idle && m->queue.len > 0) {
        int64_t margin =
            engine->opts.deadline_margin_us + sched_engine_dispatch_lag(engine) + wait_us;
        int64_t wake;
        sched_trigger t = decide(engine, m, now, margin, &wake);
        if (t != SCHED_WAIT) {
            sched_batch_form(m, rep, now, margin);
            formed = changed = true;
            if (kinfer_log_enabled(KINFER_LOG_DEBUG))
                KINFER_LOGD("engine.dispatch",
                            "model=%s device=%s trigger=%s requests=%zu rows=%u pipelined=1",
                            m->name, rep->device, sched_trigger_name(t), rep->nreqs, rep->rows);
        }
    }
    if (changed)
        sched_model_watermark(m);
    return formed;
}

void sched_model_watermark(sched_model *m) {
    if (m->max_queue == 0)
        return;
    if (!m->congested && m->queue.len > m->max_queue)
        m->congested = true;
    else if (m->congested && m->queue.len <= m->low_watermark)
        m->congested = false;
}
