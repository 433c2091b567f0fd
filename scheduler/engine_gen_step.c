/* engine_gen_step.c — continuous batching: one replica's step loop.
 *
 * Each iteration (sched_gen_step), under the engine lock:
 *  1. ends what must end now: sequences cancelled (queued or running),
 *     everything past the drain time (SHUTDOWN), running sequences already
 *     at their deadline;
 *  2. plans the step within the token budget (the model's step_tokens):
 *     first one decode token for every running sequence that has its
 *     prompt in the cache, most urgent first; then, in EDF order (deadline,
 *     priority, arrival), prefill chunks of running sequences merged with
 *     admissions from the model's queue (at most max_seqs running). Every
 *     token fed needs its KV block: when the pool has none left, the least
 *     urgent running sequence is preempted (its blocks freed, itself
 *     requeued with prompt + generated tokens, to be recomputed when it is
 *     admitted again); an admission may displace running sequences less
 *     urgent than itself the same way, and leaves 1% of the pool free
 *     while others run. After a preemption nothing more is admitted in that
 *     step (a sequence just preempted would otherwise come straight back);
 *  3. ends planned sequences whose deadline the step's estimated end
 *     would pass (so no sequence is computed past its deadline, as far as
 *     the latency estimate is right), and queue heads that could not get
 *     a first token in time.
 * Then, with no lock: delivers those finals, runs the step
 * (kinfer_replica_step), samples each sequence that got logits, applies
 * the stop rules, streams chunks, and delivers the finals of the sequences
 * that ended (their blocks freed at once).
 *
 * Several replicas of a model run this loop each, on their own thread,
 * fed from one queue; a sequence stays on the replica that admitted it
 * until it ends or is preempted. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"
#include "kinfer/kinfer_log.h"

static int64_t engine_now(const kinfer_engine *e) {
    return e->clock.now_us(e->clock.ctx);
}

void gen_seq_finish(gen_seq *s, kinfer_err status, kinfer_finish_reason reason, const char *error) {
    if (s->finished)
        return;
    s->finished = true;
    s->reason = reason;
    if (reason == KINFER_FINISH_DEADLINE)
        status = s->nctx > s->nprompt ? KINFER_OK : KINFER_ERR_DEADLINE_EXCEEDED;
    s->status = status;
    snprintf(s->error, sizeof(s->error), "%s", status != KINFER_OK && error ? error : "");
    if (s->stop_string >= 0)
        s->text.npend = 0; /* bytes after the stop string are dropped */
    else
        gen_text_flush(&s->text); /* an unfinished character becomes U+FFFD */
}

void sched_gen_wake(sched_model *m) {
    m->gen->wakes++;
    for (size_t k = 0; k < m->nreplicas; k++)
        pthread_cond_signal(&m->replicas[k]->work_cond);
}

bool sched_gen_has_work(const sched_replica *rep) {
    const sched_model *m = rep->model;
    return rep->gen->nrunning > 0 || m->queue.len > 0 || m->gen->cancelled != NULL;
}

/* ---- the running set and the plan (executor-owned) ------------------------ */

static void running_insert(gen_replica *g, gen_seq *s) {
    uint32_t i = g->nrunning;
    while (i > 0 && sched_req_before(&s->req, &g->running[i - 1]->req)) {
        g->running[i] = g->running[i - 1];
        i--;
    }
    g->running[i] = s;
    g->nrunning++;
}

static void running_remove(gen_replica *g, gen_seq *s) {
    uint32_t i = 0;
    while (i < g->nrunning && g->running[i] != s)
        i++;
    if (i == g->nrunning)
        return;
    memmove(&g->running[i], &g->running[i + 1], (g->nrunning - i - 1) * sizeof(*g->running));
    g->nrunning--;
}

/* Takes s out of the plan (if there), giving its tokens back to *budget. */
static void unplan(gen_replica *g, gen_seq *s, uint32_t *budget) {
    if (!s->planned)
        return;
    s->planned = false;
    for (uint32_t k = 0; k < g->nplan; k++)
        if (g->plan[k].s == s) {
            if (budget)
                *budget += g->plan[k].n;
            memmove(&g->plan[k], &g->plan[k + 1], (g->nplan - k - 1) * sizeof(*g->plan));
            g->nplan--;
            return;
        }
}

static void release_blocks(gen_replica *g, gen_seq *s) {
    if (!gen_kv_release(&g->kv, s->id, s->blocks, s->nblocks))
        g->kv_broken = true;
    s->nblocks = 0;
    s->ncached = 0;
}

/* Leaves the replica: blocks freed, out of the running set. */
static void leave_replica(gen_replica *g, gen_seq *s) {
    release_blocks(g, s);
    running_remove(g, s);
}

/* Blocks for positions [0, upto): false when the pool is short. */
static bool ensure_blocks(gen_replica *g, gen_seq *s, uint32_t upto, uint32_t block_tokens) {
    uint32_t need = gen_kv_blocks_for(upto, block_tokens);
    if (need <= s->nblocks)
        return true;
    return gen_kv_take(&g->kv, s->id, need - s->nblocks, s->blocks, &s->nblocks);
}

/* Under the lock: preempts v (recompute): back into the queue with its
 * prompt and generated tokens, where its EDF place is unchanged. */
static void preempt(sched_replica *rep, gen_seq *v, uint32_t *budget) {
    gen_replica *g = rep->gen;
    sched_model *m = rep->model;
    unplan(g, v, budget);
    leave_replica(g, v);
    v->rep = NULL;
    v->state = GEN_QUEUED;
    v->preemptions++;
    m->gen->preemptions++;
    sched_queue_push(&m->queue, &v->req); /* room reserved at submit */
    if (kinfer_log_enabled(KINFER_LOG_DEBUG))
        KINFER_LOGD("engine.gen_preempt", "model=%s device=%s seq=%llu tokens=%u", m->name,
                    rep->device, (unsigned long long)v->id, v->nctx);
}

static void push_done(gen_seq **done, gen_seq *s) {
    s->done_next = *done;
    *done = s;
}

/* Under the lock: ends a running sequence now. */
static void end_running(gen_replica *g, gen_seq *s, kinfer_err status, kinfer_finish_reason why,
                        const char *msg, gen_seq **done, uint32_t *budget) {
    unplan(g, s, budget);
    leave_replica(g, s);
    s->state = GEN_FINISHING;
    gen_seq_finish(s, status, why, msg);
    push_done(done, s);
}

static int64_t sat_sub(int64_t a, int64_t b) {
    return a == SCHED_NO_DEADLINE ? SCHED_NO_DEADLINE : a - b;
}

/* ---- planning (under the lock) ------------------------------------------ */

typedef struct plan_ctx {
    sched_replica *rep;
    gen_replica *g;
    sched_model *m;
    gen_model *gm;
    int64_t now, margin;
    uint32_t budget;
    bool preempted;
    gen_seq **done;
} plan_ctx;

/* Plans n tokens of running sequence s, preempting the least urgent
 * running sequences (perhaps s itself) while blocks are short. Returns
 * false when s was preempted. */
static bool plan_running(plan_ctx *c, gen_seq *s, uint32_t n) {
    uint32_t T = c->gm->info.kv_block_tokens;
    while (!ensure_blocks(c->g, s, s->ncached + n, T)) {
        gen_seq *v = c->g->running[c->g->nrunning - 1];
        preempt(c->rep, v, &c->budget);
        c->preempted = true;
        if (v == s)
            return false;
    }
    c->g->plan[c->g->nplan++] = (gen_plan){s, n};
    s->planned = true;
    c->budget -= n;
    return true;
}

/* Tries to admit the queue head h with a first chunk. Returns false when it
 * cannot (admission stops: the queue is served in order). */
static bool admit(plan_ctx *c, gen_seq *h) {
    gen_replica *g = c->g;
    uint32_t T = c->gm->info.kv_block_tokens;
    uint32_t chunk = h->nctx < c->budget ? h->nctx : c->budget;
    uint32_t need = gen_kv_blocks_for(chunk, T);
    /* Room: a free slot and need blocks (plus the reserve while others
     * run), found by displacing running sequences less urgent than h, the
     * least urgent first, when the pool or the slots are full. */
    uint32_t nv = 0;
    uint64_t avail = g->kv.nfree;
    for (;;) {
        bool others = g->nrunning - nv > 0;
        bool slot = g->nrunning - nv < c->gm->max_seqs;
        if (slot && avail >= (uint64_t)need + (others ? c->gm->reserve : 0))
            break;
        if (nv == g->nrunning || !sched_req_before(&h->req, &g->running[g->nrunning - 1 - nv]->req))
            return false;
        avail += g->running[g->nrunning - 1 - nv]->nblocks;
        nv++;
    }
    for (uint32_t k = 0; k < nv; k++) {
        preempt(c->rep, g->running[g->nrunning - 1], &c->budget);
        c->preempted = true;
    }
    sched_queue_pop(&c->m->queue);
    h->state = GEN_RUNNING;
    h->rep = c->rep;
    if (h->admitted_at == 0)
        h->admitted_at = c->now;
    running_insert(g, h);
    if (!ensure_blocks(g, h, chunk, T)) { /* cannot happen: avail was counted */
        g->kv_broken = true;
        end_running(g, h, KINFER_ERR_INTERNAL, KINFER_FINISH_ERROR, "KV block accounting", c->done,
                    NULL);
        return false;
    }
    g->plan[g->nplan++] = (gen_plan){h, chunk};
    h->planned = true;
    c->budget -= chunk;
    return true;
}

static uint32_t planned_tokens(const gen_replica *g) {
    uint32_t n = 0;
    for (uint32_t k = 0; k < g->nplan; k++)
        n += g->plan[k].n;
    return n;
}

static void plan_step(plan_ctx *c) {
    gen_replica *g = c->g;
    sched_queue *q = &c->m->queue;
    g->nplan = 0;
    for (uint32_t i = 0; i < g->nrunning; i++)
        g->running[i]->planned = false;
    /* Decodes: one token each, most urgent first (the budget holds them
     * all: step_tokens >= max_seqs). */
    for (uint32_t i = 0; i < g->nrunning && c->budget > 0;) {
        gen_seq *s = g->running[i];
        if (s->nctx - s->ncached != 1 || plan_running(c, s, 1))
            i++;
        /* else s, the last, was preempted: the loop ends */
    }
    /* Prefill chunks and admissions, merged in EDF order. */
    bool admitting = true;
    while (c->budget > 0) {
        gen_seq *r = NULL;
        for (uint32_t i = 0; i < g->nrunning && !r; i++)
            if (!g->running[i]->planned)
                r = g->running[i];
        sched_req *head = admitting && !c->preempted ? sched_queue_peek(q) : NULL;
        gen_seq *h = head ? head->gen : NULL;
        if (h) {
            /* A head that could not get its next token before its deadline
             * ends now rather than be computed past it. */
            uint32_t chunk = h->nctx < c->budget ? h->nctx : c->budget;
            int64_t est = sched_latency_estimate(&c->m->latency, planned_tokens(g) + chunk);
            if (sat_sub(h->req.deadline_us, c->margin) < c->now + est) {
                sched_queue_pop(q);
                h->state = GEN_FINISHING;
                c->m->expired++;
                gen_seq_finish(h, KINFER_ERR_DEADLINE_EXCEEDED, KINFER_FINISH_DEADLINE,
                               "deadline would pass before the generation's next token");
                push_done(c->done, h);
                continue;
            }
        }
        if (r && (!h || sched_req_before(&r->req, &h->req))) {
            uint32_t want = r->nctx - r->ncached;
            plan_running(c, r, want < c->budget ? want : c->budget);
        } else if (h) {
            if (!admit(c, h))
                admitting = false;
        } else {
            break;
        }
    }
    /* Deadlines against the step's estimated end. */
    int64_t est = sched_latency_estimate(&c->m->latency, planned_tokens(g));
    for (uint32_t k = g->nrunning; k > 0; k--) {
        gen_seq *s = g->running[k - 1];
        if (sat_sub(s->req.deadline_us, c->margin) < c->now + (s->planned ? est : 0))
            end_running(g, s, KINFER_OK, KINFER_FINISH_DEADLINE, "deadline exceeded", c->done,
                        &c->budget);
    }
}

/* Under the lock: the replica's numbers that stats and dispatch read. */
static void publish(sched_replica *rep) {
    gen_replica *g = rep->gen;
    gen_model *gm = rep->model->gen;
    gm->running += g->nrunning;
    gm->running -= g->nrunning_shared;
    g->nrunning_shared = g->nrunning;
    g->kv_used_shared = g->kv.nblocks - g->kv.nfree;
    rep->busy = g->nrunning > 0;
}

/* ---- results ------------------------------------------------------------ */

static kinfer_str token_str(const char *arena, const uint32_t *off, int32_t id) {
    kinfer_str s = {arena + off[id], off[id + 1] - off[id]};
    return s;
}

/* Logprobs of generated tokens [from, to) of s into growable arrays. */
static int build_logprobs(const gen_model *gm, const gen_seq *s, uint32_t from, uint32_t to,
                          kinfer_gen_logprobs **lps, size_t *lps_cap,
                          kinfer_gen_token_logprob **tops, size_t *tops_cap) {
    size_t n = to - from, ntop = (size_t)n * (s->lp_stride - 1);
    if (n > *lps_cap) {
        kinfer_gen_logprobs *p = realloc(*lps, n * sizeof(*p));
        if (!p)
            return -1;
        *lps = p;
        *lps_cap = n;
    }
    if (ntop > *tops_cap) {
        kinfer_gen_token_logprob *p = realloc(*tops, ntop * sizeof(*p));
        if (!p)
            return -1;
        *tops = p;
        *tops_cap = ntop;
    }
    uint32_t v = gm->info.vocab_size;
    for (size_t i = 0; i < n; i++) {
        const gen_token_lp *rec = s->lp + (size_t)(from + i) * s->lp_stride;
        kinfer_gen_logprobs *l = &(*lps)[i];
        l->chosen.id = rec[0].id;
        l->chosen.logprob = rec[0].logprob;
        l->chosen.bytes = token_str(gm->name_bytes, gm->name_off, rec[0].id);
        l->top = *tops + i * (s->lp_stride - 1);
        l->ntop = 0;
        for (uint32_t k = 1; k < s->lp_stride; k++) {
            if (rec[k].id < 0 || (uint32_t)rec[k].id >= v)
                continue; /* a vocabulary smaller than top_logprobs */
            kinfer_gen_token_logprob *t = &(*tops)[i * (s->lp_stride - 1) + l->ntop++];
            t->id = rec[k].id;
            t->logprob = rec[k].logprob;
            t->bytes = token_str(gm->name_bytes, gm->name_off, rec[k].id);
        }
    }
    return 0;
}

/* Sends s's text and ids from where its stream is up to text_end / all
 * ids, as one chunk. Executor or finals thread, no lock. */
static void send_chunk(kinfer_engine *e, const gen_model *gm, gen_seq *s, size_t text_end,
                       kinfer_gen_logprobs **lps, size_t *lps_cap, kinfer_gen_token_logprob **tops,
                       size_t *tops_cap) {
    uint32_t ngen = s->nctx - s->nprompt;
    kinfer_gen_chunk ch = {
        .token = s->req.token,
        .index = s->chunks,
        .text = {s->text.buf ? s->text.buf + s->text.released : "", text_end - s->text.released},
        .ids = s->ctx + s->nprompt + s->ids_sent,
        .nids = ngen - s->ids_sent,
    };
    if (s->lp && build_logprobs(gm, s, s->ids_sent, ngen, lps, lps_cap, tops, tops_cap) == 0)
        ch.logprobs = *lps;
    e->on_gen_chunk(e->callback_ctx, &ch);
    s->text.released = text_end;
    s->ids_sent = ngen;
    s->chunks++;
}

void sched_gen_deliver_finals(kinfer_engine *e, gen_seq *list) {
    if (!list)
        return;
    pthread_mutex_lock(&e->mu);
    for (gen_seq *s = list; s; s = s->done_next) {
        gen_model *gm = ((sched_model *)s->req.owner)->gen;
        s->state = GEN_FINISHING;
        if (s->live_prev)
            s->live_prev->live_next = s->live_next;
        else if (gm->live == s)
            gm->live = s->live_next;
        if (s->live_next)
            s->live_next->live_prev = s->live_prev;
        s->live_prev = s->live_next = NULL;
        gm->nlive--;
    }
    pthread_mutex_unlock(&e->mu);

    kinfer_gen_logprobs *lps = NULL;
    kinfer_gen_token_logprob *tops = NULL;
    size_t lps_cap = 0, tops_cap = 0;
    int64_t now = engine_now(e);
    for (gen_seq *s = list; s; s = s->done_next) {
        sched_model *m = s->req.owner;
        uint32_t ngen = s->nctx - s->nprompt;
        if (s->stream && e->on_gen_chunk && (s->ids_sent < ngen || s->text.released < s->text.len))
            send_chunk(e, m->gen, s, s->text.len, &lps, &lps_cap, &tops, &tops_cap);
        kinfer_gen_result gr = {
            .finish_reason = s->reason,
            .text = {s->text.buf ? s->text.buf : "", s->text.len},
            .ids = s->ctx + s->nprompt,
            .nids = ngen,
            .stop_string = s->stop_string,
            .stop_token = s->stop_token,
            .prompt_tokens = s->nprompt,
            .completion_tokens = ngen,
            .seed = s->seed,
            .chunks = s->chunks,
            .preemptions = s->preemptions,
            .queue_us = s->admitted_at ? s->admitted_at - s->req.arrival_us : 0,
            .ttft_us = s->first_token_at ? s->first_token_at - s->req.arrival_us : 0,
            .per_token_us =
                ngen >= 2 ? (s->last_token_at - s->first_token_at) / (int64_t)(ngen - 1) : 0,
            .total_us = now - s->req.arrival_us,
        };
        if (s->lp && build_logprobs(m->gen, s, 0, ngen, &lps, &lps_cap, &tops, &tops_cap) == 0)
            gr.logprobs = lps;
        kinfer_engine_result res = {
            .token = s->req.token,
            .status = s->status,
            .error = s->status != KINFER_OK ? (s->error[0] ? s->error : kinfer_err2str(s->status))
                                            : NULL,
            .model_version = m->version,
            .device = s->device ? s->device : "",
            .queue_us =
                s->admitted_at ? s->admitted_at - s->req.arrival_us : now - s->req.arrival_us,
            .compute_us = s->admitted_at ? now - s->admitted_at : 0,
            .batch_size = 0,
            .gen = &gr,
        };
        e->on_complete(e->callback_ctx, &res);
    }
    free(lps);
    free(tops);

    pthread_mutex_lock(&e->mu);
    for (gen_seq *s = list; s; s = s->done_next) {
        sched_model *m = s->req.owner;
        if (s->status == KINFER_OK)
            m->completed_ok++;
        else
            m->completed_error++;
        m->gen->prompt_tokens += s->nprompt;
        m->gen->completion_tokens += s->nctx - s->nprompt;
        sched_finish_locked(e, m, 1);
    }
    pthread_mutex_unlock(&e->mu);
    while (list) {
        gen_seq *s = list;
        list = s->done_next;
        gen_seq_free(s);
    }
}

/* ---- sampling and stop rules (executor, no lock) ------------------------ */

static bool in_ids(const int32_t *ids, size_t n, int32_t id) {
    for (size_t i = 0; i < n; i++)
        if (ids[i] == id)
            return true;
    return false;
}

/* Samples s's next token from its logits and applies the stop rules. */
static void sample_token(sched_replica *rep, gen_seq *s, float *logits, int64_t at) {
    gen_replica *g = rep->gen;
    const gen_model *gm = rep->model->gen;
    uint32_t gi = s->nctx - s->nprompt; /* this token's index in the output */
    gen_sample_out o;
    gen_sample(&g->sampler, &s->sp, logits, s->ctx, s->nprompt, s->nctx, s->seed, gi, &o);
    int32_t t = o.id;
    s->ctx[s->nctx++] = t;
    if (s->lp) {
        gen_token_lp *rec = s->lp + (size_t)gi * s->lp_stride;
        rec[0].id = t;
        rec[0].logprob = o.logprob;
        for (uint32_t k = 1; k < s->lp_stride; k++)
            rec[k] = k - 1 < o.ntop ? o.top[k - 1] : (gen_token_lp){-1, 0};
    }
    if (gi == 0)
        s->first_token_at = at;
    s->last_token_at = at;
    if (in_ids(s->stop_ids, s->nstop_ids, t) ||
        (!s->ignore_eos && in_ids(gm->eog, gm->info.neog, t))) {
        s->stop_token = t;
        gen_seq_finish(s, KINFER_OK, KINFER_FINISH_STOP, NULL);
        return;
    }
    size_t before = s->text.len;
    kinfer_str b = token_str(gm->text_bytes, gm->text_off, t);
    if (gen_text_add(&s->text, b.ptr, b.len) != 0) {
        gen_seq_finish(s, KINFER_ERR_NOMEM, KINFER_FINISH_ERROR, "out of memory for the text");
        return;
    }
    if (s->nstop > 0 && s->text.len > before) {
        int32_t which = -1;
        size_t at_stop = gen_stop_find(s->text.buf, s->text.len, s->text.released, before, s->stop,
                                       s->nstop, &which);
        if (at_stop != SIZE_MAX) {
            s->text.len = at_stop;
            s->text.buf[at_stop] = '\0';
            s->stop_string = which;
            gen_seq_finish(s, KINFER_OK, KINFER_FINISH_STOP, NULL);
            return;
        }
    }
    if (gi + 1 >= s->max_tokens)
        gen_seq_finish(s, KINFER_OK, KINFER_FINISH_LENGTH, NULL);
}

/* ---- one iteration ------------------------------------------------------ */

bool sched_gen_step(sched_replica *rep) {
    kinfer_engine *e = rep->engine;
    sched_model *m = rep->model;
    gen_model *gm = m->gen;
    gen_replica *g = rep->gen;
    gen_seq *done = NULL;

    pthread_mutex_lock(&e->mu);
    g->wakes_seen = gm->wakes;
    int64_t now = engine_now(e);
    /* Cancelled while queued: whichever replica comes first ends them. */
    while (gm->cancelled) {
        gen_seq *s = gm->cancelled;
        gm->cancelled = s->done_next;
        push_done(&done, s);
    }
    bool abort_all = e->draining && kinfer_mono_us() >= e->drain_deadline_mono_us;
    for (uint32_t k = g->nrunning; k > 0; k--) {
        gen_seq *s = g->running[k - 1];
        if (abort_all)
            end_running(g, s, KINFER_ERR_SHUTDOWN, KINFER_FINISH_CANCELLED,
                        "engine shut down during the generation", &done, NULL);
        else if (s->cancel)
            end_running(g, s, KINFER_OK, KINFER_FINISH_CANCELLED, NULL, &done, NULL);
    }
    plan_ctx c = {
        .rep = rep,
        .g = g,
        .m = m,
        .gm = gm,
        .now = now,
        .margin = e->opts.deadline_margin_us,
        .budget = gm->step_tokens,
        .done = &done,
    };
    if (abort_all) {
        for (sched_req *r = sched_queue_pop(&m->queue); r; r = sched_queue_pop(&m->queue)) {
            r->gen->state = GEN_FINISHING;
            gen_seq_finish(r->gen, KINFER_ERR_SHUTDOWN, KINFER_FINISH_CANCELLED,
                           "engine shut down before the generation ran");
            push_done(&done, r->gen);
        }
        g->nplan = 0;
    } else {
        plan_step(&c);
    }
    uint32_t nplan = g->nplan, tokens = 0, nlogits = 0;
    uint32_t v = gm->info.vocab_size;
    for (uint32_t k = 0; k < nplan; k++) {
        gen_seq *s = g->plan[k].s;
        kinfer_step_seq *st = &g->step[k];
        st->tokens = s->ctx + s->ncached;
        st->ntokens = g->plan[k].n;
        st->pos = s->ncached;
        st->blocks = s->blocks;
        st->nblocks = s->nblocks;
        st->logits = s->ncached + st->ntokens == s->nctx ? g->logits + (size_t)nlogits++ * v : NULL;
        g->step_seq[k] = s;
        s->device = rep->device;
        tokens += st->ntokens;
    }
    publish(rep);
    sched_model_watermark(m);
    if (c.preempted)
        sched_gen_wake(m); /* an idle replica may take the preempted */
    bool report = m->congested != m->congested_reported;
    pthread_mutex_unlock(&e->mu);
    if (report)
        sched_deliver_congestion(e);
    bool did = done != NULL || nplan > 0;
    sched_gen_deliver_finals(e, done);
    done = NULL;
    if (nplan == 0)
        return did;

    kinfer_error serr;
    kinfer_error_clear(&serr);
    int64_t t0 = engine_now(e);
    /* The liveness marks the batch executor sets (engine_exec.c): a wedged
     * step shows in kinfer_engine_stats.running_batch_us. */
    atomic_store(&rep->inside_units, tokens);
    atomic_store(&rep->inside_since, t0);
    kinfer_err rc = e->ops.replica_step(e->ops_ctx, rep->handle, g->step, nplan, &serr);
    atomic_store(&rep->inside_since, INT64_MIN);
    int64_t t1 = engine_now(e);
    g->steps++;

    uint32_t nchunk = 0; /* streaming sequences with news, compacted into step_seq */
    for (uint32_t k = 0; k < nplan; k++) {
        gen_seq *s = g->step_seq[k];
        kinfer_step_seq *st = &g->step[k];
        if (rc != KINFER_OK) {
            gen_seq_finish(s, rc, KINFER_FINISH_ERROR,
                           serr.msg[0] ? serr.msg : "the generation step failed");
        } else {
            s->ncached += st->ntokens;
            if (st->logits)
                sample_token(rep, s, st->logits, t1);
        }
        if (s->finished) {
            leave_replica(g, s);
            push_done(&done, s);
        } else if (s->stream && st->logits) {
            g->step_seq[nchunk++] = s;
        }
    }
    if (rc != KINFER_OK)
        KINFER_LOGW("engine.gen_step_failed", "model=%s device=%s sequences=%u error=\"%s\"",
                    m->name, rep->device, nplan, serr.msg);
    /* Chunks: the text that is whole characters and cannot still become a
     * stop string. */
    for (uint32_t k = 0; k < nchunk; k++) {
        gen_seq *s = g->step_seq[k];
        size_t end = s->text.len - gen_stop_holdback(s->text.buf, s->text.len, s->text.released,
                                                     s->stop, s->nstop);
        if (end > s->text.released)
            send_chunk(e, gm, s, end, &g->lps, &g->lps_cap, &g->lp_tops, &g->lp_tops_cap);
    }

    pthread_mutex_lock(&e->mu);
    if (rc == KINFER_OK && t1 >= t0)
        sched_latency_record(&m->latency, tokens, t1 - t0);
    m->batches++;
    m->rows += tokens;
    publish(rep);
    pthread_mutex_unlock(&e->mu);
    sched_gen_deliver_finals(e, done);
    return true;
}

void *sched_gen_thread(void *arg) {
    sched_replica *rep = arg;
    kinfer_engine *e = rep->engine;
    pthread_mutex_lock(&e->mu);
    for (;;) {
        if (sched_gen_has_work(rep)) {
            pthread_mutex_unlock(&e->mu);
            bool did = sched_gen_step(rep);
            pthread_mutex_lock(&e->mu);
            /* Nothing could be done: wait for news, unless some came in
             * the meantime (a wake after the step's planning). */
            if (did || rep->model->gen->wakes != rep->gen->wakes_seen)
                continue;
        }
        if (e->stop_threads)
            break;
        pthread_cond_wait(&rep->work_cond, &e->mu);
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

/* ---- audit (tests) -------------------------------------------------------- */

bool sched_gen_audit(kinfer_engine *engine, char *why, size_t whylen) {
    bool ok = true;
    pthread_mutex_lock(&engine->mu);
    for (size_t i = 0; i < engine->nmodels && ok; i++) {
        sched_model *m = &engine->models[i];
        if (!m->gen)
            continue;
        uint64_t running = 0;
        for (size_t k = 0; k < m->nreplicas && ok; k++) {
            gen_replica *g = m->replicas[k]->gen;
            gen_kv *kv = &g->kv;
            uint64_t owned = 0;
            running += g->nrunning;
            if (g->kv_broken) {
                snprintf(why, whylen, "replica %zu: a release found a foreign block", k);
                ok = false;
            }
            for (uint32_t j = 0; j < g->nrunning && ok; j++) {
                gen_seq *s = g->running[j];
                owned += s->nblocks;
                if (s->rep != m->replicas[k] || s->state != GEN_RUNNING)
                    snprintf(why, whylen, "seq %llu: running on replica %zu in state %d",
                             (unsigned long long)s->id, k, (int)s->state),
                        ok = false;
                if (s->nblocks < gen_kv_blocks_for(s->ncached, m->gen->info.kv_block_tokens))
                    snprintf(why, whylen, "seq %llu: %u blocks for %u cached positions",
                             (unsigned long long)s->id, s->nblocks, s->ncached),
                        ok = false;
                for (uint32_t b = 0; b < s->nblocks && ok; b++)
                    if (s->blocks[b] >= kv->nblocks || kv->owner[s->blocks[b]] != s->id)
                        snprintf(why, whylen, "seq %llu: block %u not its own",
                                 (unsigned long long)s->id, s->blocks[b]),
                            ok = false;
                if (j > 0 && sched_req_before(&s->req, &g->running[j - 1]->req))
                    snprintf(why, whylen, "replica %zu: running set out of EDF order", k),
                        ok = false;
            }
            uint64_t marked = 0;
            for (uint32_t b = 0; b < kv->nblocks; b++)
                marked += kv->owner[b] != GEN_KV_FREE;
            for (uint32_t f = 0; f < kv->nfree && ok; f++)
                if (kv->owner[kv->free_stack[f]] != GEN_KV_FREE)
                    snprintf(why, whylen, "replica %zu: block %u free and owned", k,
                             kv->free_stack[f]),
                        ok = false;
            if (ok && (owned != marked || marked + kv->nfree != kv->nblocks))
                snprintf(why, whylen,
                         "replica %zu: %llu blocks in tables, %llu owned, %u free of %u (a leak "
                         "or a double use)",
                         k, (unsigned long long)owned, (unsigned long long)marked, kv->nfree,
                         kv->nblocks),
                    ok = false;
        }
        if (ok && running != m->gen->running)
            snprintf(why, whylen, "model %s: %llu running, %llu counted", m->name,
                     (unsigned long long)running, (unsigned long long)m->gen->running),
                ok = false;
        for (size_t q = 0; q < m->queue.len && ok; q++) {
            gen_seq *s = m->queue.heap[q]->gen;
            if (!s || s->nblocks != 0 || s->rep != NULL || s->state != GEN_QUEUED)
                snprintf(why, whylen, "model %s: a queued sequence holds blocks or a replica",
                         m->name),
                    ok = false;
        }
    }
    pthread_mutex_unlock(&engine->mu);
    return ok;
}
