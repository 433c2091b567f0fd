/* engine_gen_submit.c — a generation's way in and its early way out:
 * option checks (each failure names the option and its range), the
 * prompt as tokens, the context and KV pool limits, the sequence's
 * creation and queueing, and cancel. Runs on the submitter's thread; the
 * step loop is engine_gen_step.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"

void kinfer_gen_options_init(kinfer_gen_options *o) {
    memset(o, 0, sizeof(*o));
    o->temperature = 1.0f;
    o->top_p = 1.0f;
    o->repetition_penalty = 1.0f;
}

const char *kinfer_finish_reason_name(kinfer_finish_reason reason) {
    switch (reason) {
    case KINFER_FINISH_STOP:
        return "stop";
    case KINFER_FINISH_LENGTH:
        return "length";
    case KINFER_FINISH_DEADLINE:
        return "deadline";
    case KINFER_FINISH_CANCELLED:
        return "cancelled";
    case KINFER_FINISH_ERROR:
        return "error";
    }
    return "?";
}

static bool in_range(float x, float lo, float hi) {
    return x >= lo && x <= hi; /* false for NaN */
}

static kinfer_err bad(kinfer_error *err, const sched_model *m, const char *what) {
    return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST, "model '%s': %s", m->name, what);
}

static kinfer_err check_options(const sched_model *m, const kinfer_gen_options *o,
                                kinfer_error *err) {
    char why[200];
    if (!in_range(o->temperature, 0.0f, 2.0f))
        snprintf(why, sizeof(why), "temperature must be in [0, 2] (got %g)", o->temperature);
    else if (!(o->top_p > 0.0f && o->top_p <= 1.0f))
        snprintf(why, sizeof(why), "top_p must be in (0, 1] (got %g)", o->top_p);
    else if (!in_range(o->min_p, 0.0f, 1.0f))
        snprintf(why, sizeof(why), "min_p must be in [0, 1] (got %g)", o->min_p);
    else if (!(o->repetition_penalty > 0.0f && o->repetition_penalty <= 10.0f))
        snprintf(why, sizeof(why), "repetition_penalty must be in (0, 10] (got %g)",
                 o->repetition_penalty);
    else if (!in_range(o->presence_penalty, -2.0f, 2.0f))
        snprintf(why, sizeof(why), "presence_penalty must be in [-2, 2] (got %g)",
                 o->presence_penalty);
    else if (!in_range(o->frequency_penalty, -2.0f, 2.0f))
        snprintf(why, sizeof(why), "frequency_penalty must be in [-2, 2] (got %g)",
                 o->frequency_penalty);
    else if (o->top_logprobs > KINFER_GEN_MAX_TOP_LOGPROBS)
        snprintf(why, sizeof(why), "top_logprobs must be in [0, %d] (got %u)",
                 KINFER_GEN_MAX_TOP_LOGPROBS, o->top_logprobs);
    else if (o->top_logprobs > 0 && !o->logprobs)
        snprintf(why, sizeof(why), "top_logprobs needs logprobs");
    else if (o->nstop > KINFER_GEN_MAX_STOP || (o->nstop && !o->stop))
        snprintf(why, sizeof(why), "at most %d stop strings (got %zu)", KINFER_GEN_MAX_STOP,
                 o->nstop);
    else if (o->nstop_token_ids > KINFER_GEN_MAX_STOP_TOKEN_IDS ||
             (o->nstop_token_ids && !o->stop_token_ids))
        snprintf(why, sizeof(why), "at most %d stop token ids (got %zu)",
                 KINFER_GEN_MAX_STOP_TOKEN_IDS, o->nstop_token_ids);
    else
        why[0] = '\0';
    if (why[0])
        return bad(err, m, why);
    for (size_t i = 0; i < o->nstop; i++) {
        size_t off;
        kinfer_str s = o->stop[i];
        if (s.len == 0 || s.len > KINFER_GEN_MAX_STOP_BYTES || !s.ptr)
            return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST,
                                    "model '%s': stop string %zu has %zu bytes (1..%d allowed)",
                                    m->name, i, s.len, KINFER_GEN_MAX_STOP_BYTES);
        if (!gen_utf8_valid(s.ptr, s.len, &off))
            return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST,
                                    "model '%s': stop string %zu is not valid UTF-8 (byte %zu)",
                                    m->name, i, off);
    }
    uint32_t v = m->gen->info.vocab_size;
    for (size_t i = 0; i < o->nstop_token_ids; i++)
        if (o->stop_token_ids[i] < 0 || (uint32_t)o->stop_token_ids[i] >= v)
            return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST,
                                    "model '%s': stop token id %d is outside the vocabulary "
                                    "[0, %u)",
                                    m->name, o->stop_token_ids[i], v);
    return KINFER_OK;
}

/* The prompt as ids (malloc'd into *ids). */
static kinfer_err prompt_ids(kinfer_engine *engine, sched_model *m, const kinfer_gen_request *g,
                             int32_t **ids, size_t *nids, kinfer_error *err) {
    int sources = (g->prompt.len > 0) + (g->nmessages > 0) + (g->nprompt_ids > 0);
    if (sources != 1)
        return bad(err, m,
                   sources == 0 ? "the request has no prompt (text, chat messages or token ids)"
                                : "give one of prompt text, chat messages or token ids, not "
                                  "several");
    if ((g->prompt.len && !g->prompt.ptr) || (g->nmessages && !g->messages) ||
        (g->nprompt_ids && !g->prompt_ids))
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "engine: bad generation arguments");
    if (g->nprompt_ids > 0) {
        uint32_t v = m->gen->info.vocab_size;
        for (size_t i = 0; i < g->nprompt_ids; i++)
            if (g->prompt_ids[i] < 0 || (uint32_t)g->prompt_ids[i] >= v)
                return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST,
                                        "model '%s': prompt token %zu (id %d) is outside the "
                                        "vocabulary [0, %u)",
                                        m->name, i, g->prompt_ids[i], v);
        *ids = malloc(g->nprompt_ids * sizeof(**ids));
        if (!*ids)
            return kinfer_error_set(err, KINFER_ERR_NOMEM, "engine: out of memory");
        memcpy(*ids, g->prompt_ids, g->nprompt_ids * sizeof(**ids));
        *nids = g->nprompt_ids;
        return KINFER_OK;
    }
    kinfer_error terr;
    kinfer_error_clear(&terr);
    kinfer_err rc = engine->ops.gen_tokenize(engine->ops_ctx, m->handle, g->prompt, g->messages,
                                             g->nmessages, ids, nids, &terr);
    if (rc != KINFER_OK) {
        *ids = NULL;
        return kinfer_error_set(err, rc, "model '%s': %s", m->name,
                                terr.msg[0] ? terr.msg : kinfer_err2str(rc));
    }
    if (*nids == 0) {
        free(*ids);
        *ids = NULL;
        return bad(err, m, "the prompt has no tokens");
    }
    return KINFER_OK;
}

/* The prompt's length against the context and the KV pool; *max_tokens
 * becomes the effective limit. */
static kinfer_err check_lengths(const sched_model *m, size_t nprompt, uint32_t *max_tokens,
                                kinfer_error *err) {
    const gen_model *g = m->gen;
    uint64_t ctx = g->info.context_length;
    uint64_t pool = (uint64_t)g->nblocks * g->info.kv_block_tokens;
    if (nprompt >= ctx)
        return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST,
                                "model '%s': the prompt has %zu tokens; the model's context is "
                                "%llu tokens, which leaves no room to generate",
                                m->name, nprompt, (unsigned long long)ctx);
    uint64_t mt = *max_tokens;
    if (mt == 0) {
        /* Up to the context, within what one replica's pool can hold (the
         * last token is never fed, so it takes no KV position). */
        uint64_t most = ctx < pool + 1 ? ctx : pool + 1;
        if (nprompt >= most)
            return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST,
                                    "model '%s': the prompt has %zu tokens; a replica's KV pool "
                                    "holds %llu (%u blocks of %u tokens), which leaves no room "
                                    "to generate",
                                    m->name, nprompt, (unsigned long long)pool, g->nblocks,
                                    g->info.kv_block_tokens);
        mt = most - nprompt;
    } else if (nprompt + mt > ctx) {
        return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST,
                                "model '%s': the prompt (%zu tokens) plus max_tokens (%llu) is "
                                "%llu tokens, more than the model's context of %llu tokens",
                                m->name, nprompt, (unsigned long long)mt,
                                (unsigned long long)(nprompt + mt), (unsigned long long)ctx);
    } else if (nprompt + mt - 1 > pool) {
        return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST,
                                "model '%s': the prompt (%zu tokens) plus max_tokens (%llu) "
                                "needs %llu KV positions; a replica's KV pool holds %llu (%u "
                                "blocks of %u tokens, kv_cache_bytes %llu)",
                                m->name, nprompt, (unsigned long long)mt,
                                (unsigned long long)(nprompt + mt - 1), (unsigned long long)pool,
                                g->nblocks, g->info.kv_block_tokens,
                                (unsigned long long)g->kv_cache_bytes);
    }
    *max_tokens = (uint32_t)mt;
    return KINFER_OK;
}

void gen_seq_free(gen_seq *s) {
    if (!s)
        return;
    free(s->ctx);
    free(s->blocks);
    free(s->stop);
    free(s->stop_bytes);
    free(s->stop_ids);
    free(s->lp);
    gen_text_free(&s->text);
    free(s);
}

/* Copies the options a sequence keeps. */
static int copy_options(gen_seq *s, const kinfer_gen_options *o) {
    s->sp = (gen_sample_params){
        .temperature = o->temperature,
        .top_k = o->top_k,
        .top_p = o->top_p,
        .min_p = o->min_p,
        .repetition_penalty = o->repetition_penalty,
        .presence_penalty = o->presence_penalty,
        .frequency_penalty = o->frequency_penalty,
        .logprobs = o->logprobs,
        .top_logprobs = o->top_logprobs,
    };
    s->ignore_eos = o->ignore_eos;
    s->stream = o->stream;
    if (o->nstop > 0) {
        size_t total = 0;
        for (size_t i = 0; i < o->nstop; i++)
            total += o->stop[i].len;
        s->stop = malloc(o->nstop * sizeof(*s->stop));
        s->stop_bytes = malloc(total);
        if (!s->stop || !s->stop_bytes)
            return -1;
        size_t off = 0;
        for (size_t i = 0; i < o->nstop; i++) {
            memcpy(s->stop_bytes + off, o->stop[i].ptr, o->stop[i].len);
            s->stop[i].ptr = s->stop_bytes + off;
            s->stop[i].len = o->stop[i].len;
            off += o->stop[i].len;
        }
        s->nstop = o->nstop;
    }
    if (o->nstop_token_ids > 0) {
        s->stop_ids = malloc(o->nstop_token_ids * sizeof(*s->stop_ids));
        if (!s->stop_ids)
            return -1;
        memcpy(s->stop_ids, o->stop_token_ids, o->nstop_token_ids * sizeof(*s->stop_ids));
        s->nstop_ids = o->nstop_token_ids;
    }
    if (o->logprobs) {
        s->lp_stride = 1 + o->top_logprobs;
        s->lp = malloc((size_t)s->max_tokens * s->lp_stride * sizeof(*s->lp));
        if (!s->lp)
            return -1;
    }
    return 0;
}

kinfer_err sched_gen_submit(kinfer_engine *engine, sched_model *m, const kinfer_engine_request *req,
                            kinfer_error *err) {
    const kinfer_gen_request *g = req->gen;
    gen_model *gm = m->gen;
    if (!g)
        return bad(err, m, "the model is generative: the request needs a prompt");
    kinfer_err rc = check_options(m, &g->options, err);
    if (rc != KINFER_OK)
        return rc;
    if (g->options.stream && !engine->on_gen_chunk)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "engine: streaming asked for, but no on_gen_chunk callback");

    int32_t *ids = NULL;
    size_t nids = 0;
    rc = prompt_ids(engine, m, g, &ids, &nids, err);
    if (rc != KINFER_OK)
        return rc;
    uint32_t max_tokens = g->options.max_tokens;
    rc = check_lengths(m, nids, &max_tokens, err);
    if (rc != KINFER_OK) {
        free(ids);
        return rc;
    }

    int64_t now = engine->clock.now_us(engine->clock.ctx);
    int64_t deadline = SCHED_NO_DEADLINE;
    if (req->deadline_us != 0)
        deadline = req->deadline_us;
    else if (m->default_timeout_ms > 0 && req->priority >= 0) /* bulk: none */
        deadline = now + m->default_timeout_ms * 1000;
    if (deadline <= now) {
        free(ids);
        return kinfer_error_set(err, KINFER_ERR_DEADLINE_EXCEEDED,
                                "model '%s': deadline passed %lld us before submit", m->name,
                                (long long)(now - deadline));
    }

    gen_seq *s = calloc(1, sizeof(*s));
    int32_t *ctx = s ? realloc(ids, ((size_t)nids + max_tokens) * sizeof(*ctx)) : NULL;
    uint32_t most_blocks =
        gen_kv_blocks_for((uint64_t)nids + max_tokens - 1, gm->info.kv_block_tokens);
    if (ctx)
        ids = NULL;
    if (s) {
        s->ctx = ctx;
        s->max_tokens = max_tokens;
        s->blocks = malloc((size_t)(most_blocks ? most_blocks : 1) * sizeof(*s->blocks));
    }
    if (!s || !ctx || !s->blocks || copy_options(s, &g->options) != 0) {
        free(ids);
        gen_seq_free(s);
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "engine: out of memory");
    }
    s->nprompt = s->nctx = (uint32_t)nids;
    s->stop_string = s->stop_token = -1;
    gen_text_init(&s->text);
    sched_req *r = &s->req;
    r->gen = s;
    r->token = req->token;
    r->owner = m;
    r->cost = (kinfer_request_cost){1, 0, 0};
    r->deadline_us = deadline;
    r->priority = req->priority;
    r->bulk = req->priority < 0;
    r->arrival_us = now;

    pthread_mutex_lock(&engine->mu);
    if (!engine->accepting)
        rc = kinfer_error_set(err, KINFER_ERR_SHUTDOWN, "engine is shutting down");
    else if (m->max_queue_hard > 0 && m->queue.len >= m->max_queue_hard) {
        m->rejected_overloaded++;
        rc = kinfer_error_set(err, KINFER_ERR_OVERLOADED,
                              "model '%s': queue is full (%u requests, max_queue_hard)", m->name,
                              m->max_queue_hard);
    } else if (sched_queue_reserve(&m->queue, gm->nlive + 1) != 0) {
        /* Room for every live generation, so that a preempted one can
         * always go back into the queue. */
        rc = kinfer_error_set(err, KINFER_ERR_NOMEM, "engine: out of memory");
    } else {
        r->seq = engine->next_seq++;
        s->id = r->seq;
        s->seed = g->options.has_seed ? g->options.seed
                                      : gen_rng_mix(((uint64_t)kinfer_mono_us() << 20) ^
                                                    (r->seq * 0x9E37u) ^ ++gm->seed_counter);
        bool was_empty = m->queue.len == 0;
        sched_queue_push(&m->queue, r); /* cannot fail: reserved */
        s->state = GEN_QUEUED;
        s->live_next = gm->live;
        if (gm->live)
            gm->live->live_prev = s;
        gm->live = s;
        gm->nlive++;
        atomic_fetch_add(&engine->in_flight, 1);
        m->in_flight++;
        m->accepted++;
        sched_model_watermark(m);
        sched_gen_wake(m);
        /* The scheduler thread times queued expiry. */
        if (was_empty || sched_queue_peek(&m->queue) == r)
            pthread_cond_signal(&engine->sched_cond);
    }
    bool report = m->congested != m->congested_reported;
    pthread_mutex_unlock(&engine->mu);
    if (rc != KINFER_OK) {
        gen_seq_free(s);
        return rc;
    }
    if (report)
        sched_deliver_congestion(engine);
    return KINFER_OK;
}

kinfer_err sched_gen_cancel(kinfer_engine *engine, const void *token, kinfer_error *err) {
    kinfer_err rc = KINFER_ERR_INVALID_ARG;
    pthread_mutex_lock(&engine->mu);
    for (size_t i = 0; i < engine->nmodels && rc != KINFER_OK; i++) {
        sched_model *m = &engine->models[i];
        if (!m->gen)
            continue;
        for (gen_seq *s = m->gen->live; s; s = s->live_next) {
            if (s->req.token != token)
                continue;
            if (s->state == GEN_QUEUED) {
                sched_queue_remove(&m->queue, &s->req);
                s->state = GEN_FINISHING;
                gen_seq_finish(s, KINFER_OK, KINFER_FINISH_CANCELLED, NULL);
                s->done_next = m->gen->cancelled;
                m->gen->cancelled = s;
                sched_model_watermark(m);
                sched_gen_wake(m);
            } else if (s->state == GEN_RUNNING) {
                s->cancel = true;
            }
            rc = KINFER_OK; /* FINISHING: its final is on its way already */
            break;
        }
    }
    bool report = false;
    for (size_t i = 0; i < engine->nmodels; i++)
        report |= engine->models[i].congested != engine->models[i].congested_reported;
    pthread_mutex_unlock(&engine->mu);
    if (report)
        sched_deliver_congestion(engine);
    if (rc != KINFER_OK)
        return kinfer_error_set(err, rc, "engine: no generation in flight has that token");
    return KINFER_OK;
}
