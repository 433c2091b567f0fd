/* sched_gen_util.h — what the generation tests share (header-only): a sink
 * that records every chunk and final result by request token and checks
 * the stream contract as they arrive (indexes in order, nothing after the
 * final, valid UTF-8, at most one final), an engine over the fake
 * generative model on a fake clock in manual mode, and a step function
 * that audits the KV block accounting after every step. */
#ifndef SCHED_GEN_UTIL_H
#define SCHED_GEN_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "gen_text.h"
#include "sched_fake_gen.h"

#define T0 1700000000000000LL
#define GREC_TEXT 4096
#define GREC_IDS 1024
#define GREC_TOP 4

typedef struct grec {
    /* stream */
    int chunks;
    int contract_errors; /* out-of-order index, chunk after final, bad UTF-8, bad lengths */
    char ctext[GREC_TEXT];
    size_t ctext_len;
    int32_t cids[GREC_IDS];
    float clp[GREC_IDS];
    size_t ncids;
    int empty_text_chunks;
    /* final */
    int finals;
    bool had_gen;
    kinfer_err status;
    kinfer_finish_reason reason;
    char error[512];
    char device[16];
    char text[GREC_TEXT];
    size_t text_len;
    int32_t ids[GREC_IDS];
    float lp[GREC_IDS];
    int32_t top_id[GREC_IDS][GREC_TOP];
    float top_lp[GREC_IDS][GREC_TOP];
    size_t ntop[GREC_IDS];
    char chosen_bytes[GREC_IDS][8];
    size_t nids;
    bool has_logprobs;
    uint32_t prompt_tokens, completion_tokens, chunks_reported, preemptions;
    int32_t stop_string, stop_token;
    uint64_t seed;
    int64_t queue_us, ttft_us, per_token_us, total_us, completed_at;
    uint32_t batch_size;
} grec;

typedef struct gsink {
    pthread_mutex_t mu;
    grec *recs;
    size_t nrecs;
    kinfer_clock clock;
    int finals_total, chunks_total, duplicates;
    int congestion_on, congestion_off;
    /* Optional actions from inside callbacks. */
    kinfer_engine *engine;
    int cancel_on_chunk; /* cancel the request after this many of its chunks (0 = never) */
    int tensor_completions;
} gsink;

static inline void gsink_init(gsink *s, size_t n, kinfer_clock clock) {
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    s->recs = calloc(n, sizeof(*s->recs));
    s->nrecs = n;
    s->clock = clock;
}

static inline void gsink_fini(gsink *s) {
    free(s->recs);
    pthread_mutex_destroy(&s->mu);
}

static inline void gsink_on_chunk(void *ctx, const kinfer_gen_chunk *ch) {
    gsink *s = ctx;
    size_t i = (size_t)(uintptr_t)ch->token;
    bool cancel = false;
    pthread_mutex_lock(&s->mu);
    s->chunks_total++;
    if (i < s->nrecs) {
        grec *r = &s->recs[i];
        size_t bad;
        if (r->finals > 0 || ch->index != (uint32_t)r->chunks ||
            !gen_utf8_valid(ch->text.ptr, ch->text.len, &bad) ||
            r->ctext_len + ch->text.len >= GREC_TEXT || r->ncids + ch->nids > GREC_IDS ||
            (ch->nids == 0 && ch->text.len == 0))
            r->contract_errors++;
        if (r->ctext_len + ch->text.len < GREC_TEXT) {
            memcpy(r->ctext + r->ctext_len, ch->text.ptr, ch->text.len);
            r->ctext_len += ch->text.len;
        }
        if (ch->text.len == 0)
            r->empty_text_chunks++;
        for (size_t k = 0; k < ch->nids && r->ncids < GREC_IDS; k++) {
            r->clp[r->ncids] = ch->logprobs ? ch->logprobs[k].chosen.logprob : 0;
            r->cids[r->ncids++] = ch->ids[k];
        }
        r->chunks++;
        cancel = s->cancel_on_chunk > 0 && r->chunks == s->cancel_on_chunk;
    }
    pthread_mutex_unlock(&s->mu);
    if (cancel && s->engine)
        kinfer_engine_cancel(s->engine, ch->token, NULL);
}

static inline void gsink_on_complete(void *ctx, const kinfer_engine_result *res) {
    gsink *s = ctx;
    size_t i = (size_t)(uintptr_t)res->token;
    pthread_mutex_lock(&s->mu);
    s->finals_total++;
    if (!res->gen)
        s->tensor_completions++;
    if (i < s->nrecs && res->gen) {
        grec *r = &s->recs[i];
        const kinfer_gen_result *g = res->gen;
        if (r->finals++)
            s->duplicates++;
        r->had_gen = true;
        r->status = res->status;
        snprintf(r->error, sizeof(r->error), "%s", res->error ? res->error : "");
        snprintf(r->device, sizeof(r->device), "%s", res->device ? res->device : "(null)");
        r->reason = g->finish_reason;
        r->text_len = g->text.len < GREC_TEXT - 1 ? g->text.len : GREC_TEXT - 1;
        memcpy(r->text, g->text.ptr, r->text_len);
        r->text[r->text_len] = '\0';
        if (g->text.ptr[g->text.len] != '\0')
            r->contract_errors++;
        size_t bad;
        if (!gen_utf8_valid(g->text.ptr, g->text.len, &bad) || g->nids != g->completion_tokens)
            r->contract_errors++;
        r->nids = g->nids < GREC_IDS ? g->nids : GREC_IDS;
        memcpy(r->ids, g->ids, r->nids * sizeof(*r->ids));
        r->has_logprobs = g->logprobs != NULL;
        for (size_t k = 0; k < r->nids && g->logprobs; k++) {
            const kinfer_gen_logprobs *l = &g->logprobs[k];
            if (l->chosen.id != g->ids[k])
                r->contract_errors++;
            r->lp[k] = l->chosen.logprob;
            size_t nb = l->chosen.bytes.len < 7 ? l->chosen.bytes.len : 7;
            memcpy(r->chosen_bytes[k], l->chosen.bytes.ptr, nb);
            r->chosen_bytes[k][nb] = '\0';
            r->ntop[k] = l->ntop;
            for (size_t j = 0; j < l->ntop && j < GREC_TOP; j++) {
                r->top_id[k][j] = l->top[j].id;
                r->top_lp[k][j] = l->top[j].logprob;
            }
        }
        r->prompt_tokens = g->prompt_tokens;
        r->completion_tokens = g->completion_tokens;
        r->chunks_reported = g->chunks;
        r->preemptions = g->preemptions;
        r->stop_string = g->stop_string;
        r->stop_token = g->stop_token;
        r->seed = g->seed;
        r->queue_us = g->queue_us;
        r->ttft_us = g->ttft_us;
        r->per_token_us = g->per_token_us;
        r->total_us = g->total_us;
        r->batch_size = res->batch_size;
        r->completed_at = s->clock.now_us(s->clock.ctx);
    }
    pthread_mutex_unlock(&s->mu);
}

static inline void gsink_on_congestion(void *ctx, const char *model, bool congested) {
    gsink *s = ctx;
    (void)model;
    pthread_mutex_lock(&s->mu);
    if (congested)
        s->congestion_on++;
    else
        s->congestion_off++;
    pthread_mutex_unlock(&s->mu);
}

/* ---- the manual-mode environment ---- */

typedef struct genv {
    fake_clock clock;
    fake_gen_ctx fake;
    gsink sink;
    kinfer_model_config mc[2];
    kinfer_engine_config cfg;
    sched_engine_options opts;
    kinfer_engine *engine;
    kinfer_error err;
    uint64_t steps; /* gstep calls that ran something */
} genv;

/* Defaults: model "lm" (fake generative, vocab 260, context 256, blocks of
 * 4 tokens, 1024 bytes each) on one cpu replica, 4 sequences and 16 tokens
 * per step, a pool of 64 blocks (256 positions), manual mode, margin 100
 * us, prior 5000 us, each step 1000 us + 10 us per token on the fake clock
 * from T0, no script, noise 1 (so the context decides the tokens), EOS
 * off. */
static inline genv *genv_alloc(size_t nrecs) {
    genv *e = calloc(1, sizeof(*e));
    fake_gen_init(&e->fake);
    kinfer_clock clock = fake_clock_make(&e->clock, T0);
    e->fake.clock = &e->clock;
    e->fake.step_base_us = 1000;
    e->fake.step_per_token_us = 10;
    gsink_init(&e->sink, nrecs, clock);
    kinfer_model_config *mc = &e->mc[0];
    mc->name = "lm";
    mc->load.kind = "fakegen";
    mc->load.path = "fake.gguf";
    mc->devices[0] = "cpu";
    mc->ndevices = 1;
    mc->replicas_per_device = 1;
    mc->max_batch_size = 4;
    mc->max_batch_tokens = 16;
    mc->kv_cache_bytes = 64 * 1024;
    e->cfg.models = e->mc;
    e->cfg.nmodels = 1;
    e->cfg.clock = clock;
    e->cfg.on_complete = gsink_on_complete;
    e->cfg.on_gen_chunk = gsink_on_chunk;
    e->cfg.on_congestion = gsink_on_congestion;
    e->cfg.callback_ctx = &e->sink;
    e->opts.manual = true;
    e->opts.deadline_margin_us = 100;
    e->opts.latency_prior_us = 5000;
    return e;
}

static inline void genv_start(genv *e) {
    kinfer_err rc =
        kinfer_engine_new_with_ops(&e->cfg, &fake_gen_ops, &e->fake, &e->opts, &e->engine, &e->err);
    if (rc != KINFER_OK)
        fail_msg("engine_new: %s", e->err.msg);
    e->sink.engine = e->engine;
}

static inline void genv_audit(genv *e) {
    char why[256];
    if (!sched_gen_audit(e->engine, why, sizeof(why)))
        fail_msg("KV audit: %s", why);
    if (e->fake.kv_errors)
        fail_msg("fake model saw bad KV: %s", e->fake.kv_error);
}

/* Teardown: every final delivered once, nothing leaked in the fake. */
static inline void genv_free(genv *e) {
    if (e->engine) {
        genv_audit(e);
        kinfer_engine_destroy(e->engine);
    }
    assert_int_equal(e->fake.replicas_live, 0);
    assert_int_equal(e->fake.models_live, 0);
    assert_int_equal(e->sink.duplicates, 0);
    for (size_t i = 0; i < e->sink.nrecs; i++)
        if (e->sink.recs[i].contract_errors)
            fail_msg("request %zu broke the stream contract", i);
    fake_gen_fini(&e->fake);
    gsink_fini(&e->sink);
    free(e);
}

static inline kinfer_gen_request gen_prompt(const char *prompt) {
    kinfer_gen_request g;
    memset(&g, 0, sizeof(g));
    g.prompt.ptr = prompt;
    g.prompt.len = strlen(prompt);
    kinfer_gen_options_init(&g.options);
    g.options.temperature = 0;
    return g;
}

static inline kinfer_err gsubmit_to(genv *e, const char *model, size_t id,
                                    const kinfer_gen_request *g, int64_t deadline, int32_t prio) {
    kinfer_engine_request q;
    memset(&q, 0, sizeof(q));
    q.model.ptr = model;
    q.model.len = strlen(model);
    q.deadline_us = deadline;
    q.priority = prio;
    q.token = (void *)(uintptr_t)id;
    q.gen = g;
    return kinfer_engine_submit(e->engine, &q, &e->err);
}

static inline kinfer_err gsubmit(genv *e, size_t id, const kinfer_gen_request *g, int64_t deadline,
                                 int32_t prio) {
    return gsubmit_to(e, "lm", id, g, deadline, prio);
}

/* One pass and one step of every replica, then the audit. */
static inline size_t gstep(genv *e) {
    sched_engine_poll(e->engine);
    size_t n = sched_engine_run(e->engine);
    if (n)
        e->steps++;
    genv_audit(e);
    return n;
}

/* Steps until nothing is in flight (at most max steps). */
static inline void grun(genv *e, int max) {
    for (int i = 0; i < max && kinfer_engine_in_flight(e->engine) > 0; i++)
        gstep(e);
    assert_int_equal(kinfer_engine_in_flight(e->engine), 0);
}

static inline int64_t gnow(genv *e) {
    return atomic_load(&e->clock.now);
}

#endif
