/* test_scheduler_gen.c — continuous batching, driven step by step in manual
 * mode with the fake clock and the fake generative model
 * (sched_fake_gen.h): outputs against a reference computed without the
 * engine, the composition of each step (budget, prefill chunks, decodes of
 * everything running), admission order, KV block accounting (audited after
 * every step), preemption with recompute, deadlines, cancel, stop rules,
 * UTF-8 cutting, streaming, logprobs, bad requests, watermarks, step
 * failures, shutdown, and tensor and generative models side by side. */
#include <math.h>

#include "sched_gen_util.h"

#define NREC 64

/* The reference: what the fake model generates greedily after `prompt`. */
static void reference(const genv *e, const char *prompt, uint32_t n, int32_t *out) {
    int32_t ids[512];
    size_t np = strlen(prompt);
    for (size_t i = 0; i < np; i++)
        ids[i] = (unsigned char)prompt[i];
    fake_gen_greedy(&e->fake, ids, (uint32_t)np, n, out);
}

/* The fake's raw logits after the context ctx[0, n). */
static void ref_logits(const genv *e, const int32_t *ctx, uint32_t n, float *logits) {
    uint64_t h = FG_HASH0;
    for (uint32_t q = 0; q < n; q++)
        h = fg_hash_step(h, ctx[q], q);
    fake_gen_logits(&e->fake, h, n - 1, logits);
}

/* The text the engine must make of ids: their bytes, UTF-8 decoded. */
static void ids_text(const int32_t *ids, size_t n, char *out, size_t cap) {
    gen_text t;
    gen_text_init(&t);
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 256) {
            char b = (char)ids[i];
            gen_text_add(&t, &b, 1);
        }
    gen_text_flush(&t);
    snprintf(out, cap, "%s", t.buf ? t.buf : "");
    gen_text_free(&t);
}

/* The steps (in order) in which the sequence whose prompt starts with
 * `first` took part. */
static int entries_of(const genv *e, char first, const fg_entry **out, int cap) {
    int n = 0;
    for (uint32_t i = 0; i < e->fake.nentries && n < cap; i++)
        if (e->fake.entries[i].first == (unsigned char)first)
            out[n++] = &e->fake.entries[i];
    return n;
}

static void test_greedy_matches_reference(void **state) {
    (void)state;
    genv *e = genv_alloc(NREC);
    genv_start(e);
    kinfer_gen_request g = gen_prompt("Apples and pears");
    g.options.max_tokens = 20;
    assert_int_equal(gsubmit(e, 0, &g, 0, 0), KINFER_OK);
    assert_int_equal(kinfer_engine_in_flight(e->engine), 1);
    grun(e, 100);
    grec *r = &e->sink.recs[0];
    assert_int_equal(r->finals, 1);
    assert_int_equal(r->status, KINFER_OK);
    assert_int_equal(r->reason, KINFER_FINISH_LENGTH);
    assert_int_equal(r->prompt_tokens, 16);
    assert_int_equal(r->completion_tokens, 20);
    assert_int_equal(r->batch_size, 0);
    assert_string_equal(r->device, "cpu");
    int32_t want[20];
    reference(e, "Apples and pears", 20, want);
    assert_memory_equal(r->ids, want, sizeof(want));
    char text[256];
    ids_text(want, 20, text, sizeof(text));
    assert_string_equal(r->text, text);
    assert_int_equal(r->chunks, 0); /* not streamed */
    assert_int_equal(r->stop_string, -1);
    assert_int_equal(r->stop_token, -1);
    /* Timing on the fake clock: the prompt (16 tokens) fits the first step
     * (1000 + 160 us), which gives the first token; 19 decode steps of
     * 1010 us follow. */
    assert_int_equal(r->queue_us, 0);
    assert_int_equal(r->ttft_us, 1160);
    assert_int_equal(r->per_token_us, 1010);
    assert_int_equal(r->total_us, 1160 + 19 * 1010);
    kinfer_engine_stats st;
    assert_int_equal(kinfer_engine_stats_get(e->engine, 0, &st), KINFER_OK);
    assert_true(st.generative);
    assert_int_equal(st.context_length, 256);
    assert_int_equal(st.batches, 20);
    assert_int_equal(st.rows, 16 + 19);
    assert_int_equal(st.gen_prompt_tokens, 16);
    assert_int_equal(st.gen_completion_tokens, 20);
    assert_int_equal(st.kv_blocks_total, 64);
    assert_int_equal(st.kv_blocks_used, 0);
    assert_int_equal(st.gen_running, 0);
    assert_int_equal(st.completed_ok, 1);
    genv_free(e);
}

/* Three prompts at once, 16 tokens per step: every step holds one decode
 * token of each running sequence, then prefill chunks in arrival order up
 * to the budget. */
static void test_step_composition(void **state) {
    (void)state;
    genv *e = genv_alloc(NREC);
    genv_start(e);
    static const char *prompts[3] = {"Aaaaaaaaaa", "Bbbbbbbbbbbbbbbbbbbb", "Ccccc"};
    for (size_t i = 0; i < 3; i++) {
        kinfer_gen_request g = gen_prompt(prompts[i]);
        g.options.max_tokens = 6;
        assert_int_equal(gsubmit(e, i, &g, 0, 0), KINFER_OK);
    }
    grun(e, 100);
    const fake_gen_ctx *f = &e->fake;
    /* step 0: A 10 (all, logits) + B 6; step 1: A 1, B 14 (logits), C 1;
     * step 2: A 1, B 1, C 4 (logits); then decodes only. */
    const fg_entry *en = f->entries;
    assert_true(f->nentries >= 8);
    assert_int_equal(en[0].first, 'A');
    assert_int_equal(en[0].ntokens, 10);
    assert_true(en[0].logits);
    assert_int_equal(en[1].first, 'B');
    assert_int_equal(en[1].ntokens, 6);
    assert_false(en[1].logits);
    assert_int_equal(en[2].step, 1);
    assert_int_equal(en[2].first, 'A');
    assert_int_equal(en[2].ntokens, 1);
    assert_int_equal(en[2].pos, 10);
    assert_int_equal(en[3].first, 'B');
    assert_int_equal(en[3].ntokens, 14);
    assert_int_equal(en[3].pos, 6);
    assert_true(en[3].logits);
    assert_int_equal(en[4].first, 'C');
    assert_int_equal(en[4].ntokens, 1);
    assert_false(en[4].logits);
    assert_int_equal(en[5].step, 2);
    assert_int_equal(en[7].first, 'C');
    assert_int_equal(en[7].ntokens, 4);
    assert_int_equal(en[7].pos, 1);
    assert_true(en[7].logits);
    /* In every step: within the budget; every sequence that has its prompt
     * cached and is not finished decodes one token. */
    uint32_t cached[3] = {0, 0, 0}, generated[3] = {0, 0, 0};
    uint32_t plen[3] = {10, 20, 5};
    uint32_t k = 0;
    for (uint32_t s = 0; s < f->nsteps; s++) {
        assert_true(f->steps[s].ntokens <= 16);
        bool in[3] = {false, false, false};
        for (; k < f->nentries && f->entries[k].step == s; k++) {
            int q = f->entries[k].first - 'A';
            assert_int_equal(f->entries[k].pos, cached[q]);
            in[q] = true;
            cached[q] += f->entries[k].ntokens;
            if (f->entries[k].logits)
                generated[q]++;
        }
        for (int q = 0; q < 3; q++)
            if (!in[q] && cached[q] >= plen[q] && generated[q] > 0 && generated[q] < 6)
                fail_msg("step %u: sequence %c is running but not decoding", s, 'A' + q);
    }
    for (int q = 0; q < 3; q++) {
        assert_int_equal(generated[q], 6);
        int32_t want[6];
        reference(e, prompts[q], 6, want);
        assert_memory_equal(e->sink.recs[q].ids, want, sizeof(want));
    }
    genv_free(e);
}

/* Admission follows the queue: deadline, then priority, then arrival. One
 * sequence at a time, so the order of first appearance is the order. */
static void test_admission_order(void **state) {
    (void)state;
    genv *e = genv_alloc(NREC);
    e->mc[0].max_batch_size = 1;
    genv_start(e);
    int64_t far = T0 + 3600000000LL, near = T0 + 1800000000LL;
    struct {
        const char *prompt;
        int64_t deadline;
        int32_t prio;
    } reqs[5] = {
        {"Xnone", 0, 9},    /* no deadline: last whatever its priority */
        {"Yfar", far, 0},   /* */
        {"Znear", near, 0}, /* */
        {"Wnear", near, 5}, /* same deadline as Z, higher priority: first */
        {"Vnear", near, 0}, /* as Z, arrived later */
    };
    for (size_t i = 0; i < 5; i++) {
        kinfer_gen_request g = gen_prompt(reqs[i].prompt);
        g.options.max_tokens = 2;
        assert_int_equal(gsubmit(e, i, &g, reqs[i].deadline, reqs[i].prio), KINFER_OK);
    }
    grun(e, 100);
    char order[6] = {0};
    int n = 0;
    for (uint32_t i = 0; i < e->fake.nentries; i++) {
        char c = (char)e->fake.entries[i].first;
        if (n == 0 || order[n - 1] != c)
            order[n++] = c;
    }
    assert_string_equal(order, "WZVYX");
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(e->sink.recs[i].reason, KINFER_FINISH_LENGTH);
    genv_free(e);
}

/* Blocks are freed at the step a sequence ends, and the pool's use follows
 * the positions cached. */
static void test_kv_blocks_follow_positions(void **state) {
    (void)state;
    genv *e = genv_alloc(NREC);
    genv_start(e);
    kinfer_gen_request g = gen_prompt("Kkkkkkk"); /* 7 tokens: 2 blocks of 4 */
    g.options.max_tokens = 6;
    assert_int_equal(gsubmit(e, 0, &g, 0, 0), KINFER_OK);
    kinfer_engine_stats st;
    uint64_t used[8];
    for (int i = 0; i < 6; i++) {
        gstep(e);
        kinfer_engine_stats_get(e->engine, 0, &st);
        used[i] = st.kv_blocks_used;
    }
    /* after step i, 7 + i positions are cached (the last token is never
     * fed): 2, 2, 3, 3, 3, 3 blocks; the 6th token ends it and frees all. */
    assert_int_equal(used[0], 2);
    assert_int_equal(used[1], 2);
    assert_int_equal(used[2], 3);
    assert_int_equal(used[4], 3);
    assert_int_equal(used[5], 0);
    assert_int_equal(e->sink.recs[0].finals, 1);
    assert_int_equal(st.gen_running, 0);
    genv_free(e);
}

/* A pool too small for all three sequences at once: preemption (recompute)
 * keeps every sequence going, and each one's output — seeded sampling,
 * streamed, with logprobs — is exactly what it is when it runs alone. */
static void run_three(genv *e, bool together, grec *out) {
    static const char *prompts[3] = {"Pone pre", "Qtwo pre", "Rthree p"};
    kinfer_gen_request g[3];
    for (size_t i = 0; i < 3; i++) {
        g[i] = gen_prompt(prompts[i]);
        g[i].options.max_tokens = 24;
        g[i].options.temperature = 0.9f;
        g[i].options.top_p = 0.95f;
        g[i].options.has_seed = true;
        g[i].options.seed = 1000 + i;
        g[i].options.stream = true;
        g[i].options.logprobs = true;
        g[i].options.top_logprobs = 2;
    }
    genv_start(e);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(gsubmit(e, i, &g[i], 0, 0), KINFER_OK);
        if (!together)
            grun(e, 1000);
    }
    grun(e, 1000);
    for (size_t i = 0; i < 3; i++)
        out[i] = e->sink.recs[i];
}

static void test_preemption_recompute_equals_alone(void **state) {
    (void)state;
    grec *alone = calloc(3, sizeof(*alone)), *tight = calloc(3, sizeof(*tight));
    genv *a = genv_alloc(NREC);
    run_three(a, false, alone);
    genv_free(a);
    genv *t = genv_alloc(NREC);
    /* 12 blocks = 48 positions; each sequence reaches 8 + 23 = 31. */
    t->mc[0].kv_cache_bytes = 12 * 1024;
    run_three(t, true, tight);
    kinfer_engine_stats st;
    kinfer_engine_stats_get(t->engine, 0, &st);
    assert_true(st.gen_preemptions > 0);
    uint32_t preempted = 0;
    for (int i = 0; i < 3; i++) {
        preempted += tight[i].preemptions;
        assert_int_equal(alone[i].preemptions, 0);
        assert_int_equal(tight[i].status, KINFER_OK);
        assert_int_equal(tight[i].reason, KINFER_FINISH_LENGTH);
        assert_int_equal(tight[i].nids, 24);
        assert_memory_equal(tight[i].ids, alone[i].ids, 24 * sizeof(int32_t));
        assert_memory_equal(tight[i].lp, alone[i].lp, 24 * sizeof(float));
        assert_memory_equal(tight[i].top_id, alone[i].top_id, sizeof(alone[i].top_id));
        assert_string_equal(tight[i].text, alone[i].text);
        assert_int_equal(tight[i].seed, 1000 + i);
        /* the stream resumed where it was: its chunks add up to the final */
        assert_int_equal(tight[i].ctext_len, tight[i].text_len);
        assert_memory_equal(tight[i].ctext, tight[i].text, tight[i].text_len);
        assert_int_equal(tight[i].ncids, 24);
        assert_memory_equal(tight[i].cids, tight[i].ids, 24 * sizeof(int32_t));
        assert_memory_equal(tight[i].clp, tight[i].lp, 24 * sizeof(float));
        assert_int_equal(tight[i].chunks, (int)tight[i].chunks_reported);
    }
    assert_int_equal(preempted, st.gen_preemptions);
    genv_free(t);
    free(alone);
    free(tight);
}

/* Slots full of bulk work: an urgent request displaces the least urgent
 * running sequence at once; the displaced one resumes later and ends as
 * it would have. */
static void test_urgent_request_displaces_bulk(void **state) {
    (void)state;
    genv *e = genv_alloc(NREC);
    e->mc[0].max_batch_size = 2;
    genv_start(e);
    kinfer_gen_request b = gen_prompt("Bulk one");
    b.options.max_tokens = 30;
    kinfer_gen_request c = gen_prompt("Cbulk two");
    c.options.max_tokens = 30;
    assert_int_equal(gsubmit(e, 0, &b, 0, 0), KINFER_OK);
    assert_int_equal(gsubmit(e, 1, &c, 0, 0), KINFER_OK);
    for (int i = 0; i < 5; i++)
        gstep(e);
    kinfer_gen_request u = gen_prompt("Urgent");
    u.options.max_tokens = 3;
    assert_int_equal(gsubmit(e, 2, &u, gnow(e) + 1000000, 0), KINFER_OK);
    uint32_t before = e->fake.nsteps;
    gstep(e);
    /* the next step holds the urgent prompt and the first bulk request's
     * decode; the second (least urgent) was preempted */
    bool u_in = false, c_in = false;
    for (uint32_t i = 0; i < e->fake.nentries; i++)
        if (e->fake.entries[i].step == before) {
            u_in |= e->fake.entries[i].first == 'U';
            c_in |= e->fake.entries[i].first == 'C';
        }
    assert_true(u_in);
    assert_false(c_in);
    grun(e, 200);
    assert_int_equal(e->sink.recs[1].preemptions, 1);
    assert_int_equal(e->sink.recs[0].preemptions, 0);
    int32_t want[30];
    reference(e, "Cbulk two", 30, want);
    assert_memory_equal(e->sink.recs[1].ids, want, sizeof(want));
    reference(e, "Bulk one", 30, want);
    assert_memory_equal(e->sink.recs[0].ids, want, sizeof(want));
    assert_int_equal(e->sink.recs[2].reason, KINFER_FINISH_LENGTH);
    /* the urgent one ran to its end before the displaced one came back */
    assert_true(e->sink.recs[2].completed_at < e->sink.recs[1].completed_at);
    genv_free(e);
}

/* A deadline ends a generation with what it has, and no step that holds
 * it ends after the deadline; one too near for a first token ends with
 * DEADLINE_EXCEEDED and never runs. */
static void test_deadlines(void **state) {
    (void)state;
    genv *e = genv_alloc(NREC);
    e->mc[0].max_batch_size = 2;
    genv_start(e);
    kinfer_gen_request g = gen_prompt("Deadline");
    g.options.max_tokens = 100;
    g.options.stream = true;
    int64_t dl = T0 + 20000; /* 20 ms: steps of ~1 ms */
    assert_int_equal(gsubmit(e, 0, &g, dl, 0), KINFER_OK);
    kinfer_gen_request h = gen_prompt("Hasty");
    h.options.max_tokens = 5;
    assert_int_equal(gsubmit(e, 1, &h, T0 + 50, 0), KINFER_OK); /* inside the margin */
    kinfer_gen_request l = gen_prompt("Long");
    l.options.max_tokens = 100;
    assert_int_equal(gsubmit(e, 2, &l, 0, 0), KINFER_OK);
    grun(e, 500);
    grec *r = &e->sink.recs[0];
    assert_int_equal(r->status, KINFER_OK);
    assert_int_equal(r->reason, KINFER_FINISH_DEADLINE);
    assert_true(r->completion_tokens > 5 && r->completion_tokens < 100);
    assert_true(r->completed_at <= dl);
    assert_int_equal(r->ctext_len, r->text_len); /* the stream was flushed */
    const fg_entry *en[256];
    int n = entries_of(e, 'D', en, 256);
    assert_true(n > 5);
    for (int i = 0; i < n; i++)
        assert_true(e->fake.steps[en[i]->step].end <= dl);
    int32_t want[100];
    reference(e, "Deadline", r->completion_tokens, want);
    assert_memory_equal(r->ids, want, r->completion_tokens * sizeof(int32_t));

    grec *hr = &e->sink.recs[1];
    assert_int_equal(hr->status, KINFER_ERR_DEADLINE_EXCEEDED);
    assert_int_equal(hr->reason, KINFER_FINISH_DEADLINE);
    assert_int_equal(hr->completion_tokens, 0);
    assert_int_equal(entries_of(e, 'H', en, 256), 0);

    assert_int_equal(e->sink.recs[2].reason, KINFER_FINISH_LENGTH);
    kinfer_engine_stats st;
    kinfer_engine_stats_get(e->engine, 0, &st);
    assert_true(st.expired >= 1);
    genv_free(e);
}

/* A queued request whose slot never comes in time ends at its deadline
 * without compute: by the step loop (it could not get a first token in
 * time) or, when no step runs, by the scheduler pass. */
static void test_queued_expiry(void **state) {
    (void)state;
    genv *e = genv_alloc(NREC);
    e->mc[0].max_batch_size = 1;
    genv_start(e);
    int64_t dl = T0 + 15000;
    kinfer_gen_request a = gen_prompt("Ahead");
    a.options.max_tokens = 100;
    assert_int_equal(gsubmit(e, 0, &a, dl, 5), KINFER_OK); /* same deadline, higher priority */
    kinfer_gen_request q = gen_prompt("Queued");
    assert_int_equal(gsubmit(e, 1, &q, dl, 0), KINFER_OK);
    grun(e, 500);
    const fg_entry *en[256];
    grec *r = &e->sink.recs[1];
    assert_int_equal(r->finals, 1);
    assert_int_equal(r->status, KINFER_ERR_DEADLINE_EXCEEDED);
    assert_int_equal(r->reason, KINFER_FINISH_DEADLINE);
    assert_int_equal(r->completion_tokens, 0);
    assert_int_equal(entries_of(e, 'Q', en, 256), 0);
    assert_true(r->completed_at <= dl);
    assert_int_equal(e->sink.recs[0].reason, KINFER_FINISH_DEADLINE);

    /* No step at all: the pass expires it once the clock is past. */
    kinfer_gen_request z = gen_prompt("Zzz");
    assert_int_equal(gsubmit(e, 2, &z, gnow(e) + 5000, 0), KINFER_OK);
    fake_clock_set(&e->clock, gnow(e) + 6000);
    sched_engine_poll(e->engine);
    assert_int_equal(e->sink.recs[2].finals, 1);
    assert_int_equal(e->sink.recs[2].status, KINFER_ERR_DEADLINE_EXCEEDED);
    assert_non_null(strstr(e->sink.recs[2].error, "while queued"));
    assert_int_equal(kinfer_engine_in_flight(e->engine), 0);
    genv_free(e);
}

/* Cancel: a queued one ends without compute, a running one at the next
 * step boundary with what it has (blocks freed), one from inside its own
 * chunk callback likewise; unknown or finished tokens are refused. */
static void test_cancel(void **state) {
    (void)state;
    genv *e = genv_alloc(NREC);
    e->mc[0].max_batch_size = 1;
    genv_start(e);
    kinfer_gen_request r = gen_prompt("Running");
    r.options.max_tokens = 100;
    r.options.stream = true;
    kinfer_gen_request q = gen_prompt("Queued");
    assert_int_equal(gsubmit(e, 0, &r, 0, 0), KINFER_OK);
    assert_int_equal(gsubmit(e, 1, &q, 0, 0), KINFER_OK);
    for (int i = 0; i < 4; i++)
        gstep(e);
    assert_int_equal(kinfer_engine_cancel(e->engine, (void *)(uintptr_t)1, &e->err), KINFER_OK);
    assert_int_equal(kinfer_engine_cancel(e->engine, (void *)(uintptr_t)0, &e->err), KINFER_OK);
    assert_int_equal(e->sink.recs[1].finals, 0); /* never from inside cancel */
    assert_int_equal(e->sink.recs[0].finals, 0);
    uint32_t steps = e->fake.nsteps;
    gstep(e);
    assert_int_equal(e->fake.nsteps, steps); /* nothing left to compute */
    grec *rr = &e->sink.recs[0], *qr = &e->sink.recs[1];
    assert_int_equal(rr->finals, 1);
    assert_int_equal(rr->status, KINFER_OK);
    assert_int_equal(rr->reason, KINFER_FINISH_CANCELLED);
    assert_int_equal(rr->completion_tokens, 4);
    assert_int_equal(rr->ncids, 4);
    assert_int_equal(qr->finals, 1);
    assert_int_equal(qr->status, KINFER_OK);
    assert_int_equal(qr->reason, KINFER_FINISH_CANCELLED);
    assert_int_equal(qr->completion_tokens, 0);
    const fg_entry *en[16];
    assert_int_equal(entries_of(e, 'Q', en, 16), 0);
    kinfer_engine_stats st;
    kinfer_engine_stats_get(e->engine, 0, &st);
    assert_int_equal(st.kv_blocks_used, 0);
    assert_int_equal(kinfer_engine_cancel(e->engine, (void *)(uintptr_t)0, &e->err),
                     KINFER_ERR_INVALID_ARG);
    assert_int_equal(kinfer_engine_cancel(e->engine, (void *)(uintptr_t)99, &e->err),
                     KINFER_ERR_INVALID_ARG);
    assert_non_null(strstr(e->err.msg, "no generation"));

    /* from the chunk callback, after its third chunk (ASCII: one chunk
     * per token) */
    e->fake.script = "abcdefghijklmnopqrstuvwxyz";
    e->fake.script_len = 26;
    e->sink.cancel_on_chunk = 3;
    kinfer_gen_request c = gen_prompt("Callback");
    c.options.max_tokens = 50;
    c.options.stream = true;
    assert_int_equal(gsubmit(e, 2, &c, 0, 0), KINFER_OK);
    grun(e, 100);
    grec *cr = &e->sink.recs[2];
    assert_int_equal(cr->reason, KINFER_FINISH_CANCELLED);
    assert_int_equal(cr->completion_tokens, 3);
    assert_int_equal(cr->chunks, 3);
    genv_free(e);
}

/* Stop strings are matched on the text across tokens and chunks; the text
 * ends before the first match, which is never streamed, and a partial
 * match that does not complete is released later. */
static void test_stop_strings(void **state) {
    (void)state;
    genv *e = genv_alloc(NREC);
    e->fake.script = "Hello, world! Hello, world! ";
    e->fake.script_len = strlen(e->fake.script);
    genv_start(e);
    kinfer_str stops[3] = {{"wor", 3}, {"lo, x", 5}, {"d!", 2}};
    kinfer_gen_request g = gen_prompt("He");
    g.options.max_tokens = 40;
    g.options.stream = true;
    g.options.stop = stops;
    g.options.nstop = 3;
    assert_int_equal(gsubmit(e, 0, &g, 0, 0), KINFER_OK);
    /* only "lo, x": "lo, " is held back, then released when 'w' comes */
    kinfer_gen_request h = gen_prompt("He");
    h.options.max_tokens = 8; /* llo, wor */
    h.options.stream = true;
    h.options.stop = &stops[1];
    h.options.nstop = 1;
    assert_int_equal(gsubmit(e, 1, &h, 0, 0), KINFER_OK);
    grun(e, 100);
    grec *r = &e->sink.recs[0];
    assert_int_equal(r->reason, KINFER_FINISH_STOP);
    assert_int_equal(r->stop_string, 0);
    assert_int_equal(r->stop_token, -1);
    assert_string_equal(r->text, "llo, ");
    assert_int_equal(r->ctext_len, 5);
    assert_memory_equal(r->ctext, "llo, ", 5);
    assert_int_equal(r->nids, 8); /* l l o , ' ' w o r: the stop string's tokens count */
    assert_int_equal(r->ids[7], 'r');
    assert_int_equal(r->ncids, 8);
    grec *q = &e->sink.recs[1];
    assert_int_equal(q->reason, KINFER_FINISH_LENGTH);
    assert_string_equal(q->text, "llo, wor");
    assert_int_equal(q->ctext_len, 8);
    /* 'l' was released at once; "lo, " waited for 'w' */
    assert_true(q->chunks >= 3);
    assert_true(q->empty_text_chunks == 0 || q->chunks_reported == (uint32_t)q->chunks);
    genv_free(e);
}

/* Stop token ids and the model's end-of-generation ids. */
static void test_stop_tokens_and_eog(void **state) {
    (void)state;
    genv *e = genv_alloc(NREC);
    e->fake.script = "abcabcabc";
    e->fake.script_len = 9;
    genv_start(e);
    int32_t stop_c = 'c';
    kinfer_gen_request g = gen_prompt("a"); /* next: b c a b c ... */
    g.options.max_tokens = 10;
    g.options.stop_token_ids = &stop_c;
    g.options.nstop_token_ids = 1;
    g.options.stream = true;
    assert_int_equal(gsubmit(e, 0, &g, 0, 0), KINFER_OK);
    grun(e, 50);
    grec *r = &e->sink.recs[0];
    assert_int_equal(r->reason, KINFER_FINISH_STOP);
    assert_int_equal(r->stop_token, 'c');
    assert_int_equal(r->nids, 2);
    assert_string_equal(r->text, "b");
    assert_int_equal(r->ncids, 2);
    assert_int_equal(r->cids[1], 'c');
    genv_free(e);

    e = genv_alloc(NREC);
    e->fake.script = "abcabcabc";
    e->fake.script_len = 9;
    e->fake.eos_bias = 50; /* EOS wins every time */
    genv_start(e);
    kinfer_gen_request eo = gen_prompt("a");
    eo.options.max_tokens = 10;
    assert_int_equal(gsubmit(e, 0, &eo, 0, 0), KINFER_OK);
    kinfer_gen_request ig = eo;
    ig.options.ignore_eos = true;
    assert_int_equal(gsubmit(e, 1, &ig, 0, 0), KINFER_OK);
    grun(e, 50);
    r = &e->sink.recs[0];
    assert_int_equal(r->reason, KINFER_FINISH_STOP);
    assert_true(r->stop_token == FG_EOS || r->stop_token == FG_EOT);
    assert_int_equal(r->nids, 1);
    assert_int_equal(r->text_len, 0);
    r = &e->sink.recs[1];
    assert_int_equal(r->reason, KINFER_FINISH_LENGTH);
    assert_int_equal(r->nids, 10);
    assert_true(r->ids[0] == FG_EOS || r->ids[0] == FG_EOT);
    assert_int_equal(r->text_len, 0); /* control tokens add no text */
    genv_free(e);
}

/* Byte tokens spelling multi-byte characters: every chunk is whole
 * characters, ids whose bytes are not yet a character ride with the next
 * chunk, invalid bytes become U+FFFD, and a generation cut inside a
 * character ends with U+FFFD. */
static void test_utf8_cut_points(void **state) {
    (void)state;
    genv *e = genv_alloc(NREC);
    static const char script[] = "#a\xc3\xa9\xe6\x97\xa5\xf0\x9f\x8e\x89z\xff\xe6\x97q";
    e->fake.script = script;
    e->fake.script_len = sizeof(script) - 1;
    genv_start(e);
    kinfer_gen_request g = gen_prompt("#"); /* then a é 日 🎉 z \xff \xe6\x97 q */
    g.options.max_tokens = 15;
    g.options.stream = true;
    assert_int_equal(gsubmit(e, 0, &g, 0, 0), KINFER_OK);
    kinfer_gen_request h = gen_prompt("#");
    h.options.max_tokens = 5; /* a, é and two bytes of 日 */
    h.options.stream = true;
    assert_int_equal(gsubmit(e, 1, &h, 0, 0), KINFER_OK);
    grun(e, 100);
    grec *r = &e->sink.recs[0];
    static const char want[] = "a\xc3\xa9\xe6\x97\xa5\xf0\x9f\x8e\x89z\xef\xbf\xbd\xef\xbf\xbdq";
    assert_int_equal(r->nids, 15);
    assert_string_equal(r->text, want);
    assert_int_equal(r->ctext_len, strlen(want));
    assert_memory_equal(r->ctext, want, strlen(want));
    /* 15 tokens; a chunk for a, é, 日, 🎉, z, the U+FFFD of \xff, and
     * the U+FFFD of \xe6\x97 together with q, which ends that sequence */
    assert_int_equal(r->chunks, 7);
    assert_int_equal(r->ncids, 15);
    grec *q = &e->sink.recs[1];
    assert_string_equal(q->text, "a\xc3\xa9\xef\xbf\xbd");
    assert_int_equal(q->ctext_len, strlen(q->text));
    genv_free(e);
}

/* log-softmax of the raw logits, in double. */
static double raw_logprob(const float *logits, int32_t id) {
    double m = -INFINITY, sum = 0;
    for (int v = 0; v < FG_VOCAB; v++)
        m = logits[v] > m ? logits[v] : m;
    for (int v = 0; v < FG_VOCAB; v++)
        sum += exp((double)logits[v] - m);
    return (double)logits[id] - m - log(sum);
}

/* Logprobs are of the raw distribution (before penalties and
 * temperature): checked against the fake's logits recomputed from each
 * token's context, with a repetition penalty and a temperature on. */
static void test_logprobs(void **state) {
    (void)state;
    genv *e = genv_alloc(NREC);
    genv_start(e);
    kinfer_gen_request g = gen_prompt("Logits");
    g.options.max_tokens = 12;
    g.options.logprobs = true;
    g.options.top_logprobs = 3;
    g.options.temperature = 0.7f;
    g.options.repetition_penalty = 1.3f;
    g.options.has_seed = true;
    g.options.seed = 7;
    assert_int_equal(gsubmit(e, 0, &g, 0, 0), KINFER_OK);
    grun(e, 50);
    grec *r = &e->sink.recs[0];
    assert_true(r->has_logprobs);
    int32_t ctx[64];
    for (int i = 0; i < 6; i++)
        ctx[i] = (unsigned char)"Logits"[i];
    for (size_t k = 0; k < r->nids; k++) {
        float logits[FG_VOCAB];
        ref_logits(e, ctx, (uint32_t)(6 + k), logits);
        assert_float_equal(r->lp[k], raw_logprob(logits, r->ids[k]), 1e-5);
        assert_int_equal(r->ntop[k], 3);
        /* the top 3 of the raw logits, most likely first */
        for (int j = 0; j < 3; j++) {
            assert_float_equal(r->top_lp[k][j], raw_logprob(logits, r->top_id[k][j]), 1e-5);
            for (int v = 0; v < FG_VOCAB; v++)
                if (v != r->top_id[k][0] && v != r->top_id[k][1] && v != r->top_id[k][2])
                    assert_true(logits[v] <= logits[r->top_id[k][2]]);
            if (j > 0)
                assert_true(r->top_lp[k][j] <= r->top_lp[k][j - 1]);
        }
        if (r->ids[k] < 256)
            assert_int_equal((unsigned char)r->chosen_bytes[k][0], r->ids[k]);
        ctx[6 + k] = r->ids[k];
    }
    genv_free(e);
}

static void expect_bad(genv *e, const kinfer_gen_request *g, kinfer_err want, const char *msg) {
    kinfer_err rc = gsubmit(e, 60, g, 0, 0);
    if (rc != want)
        fail_msg("expected %s, got %s: %s (wanted '%s')", kinfer_err2name(want),
                 kinfer_err2name(rc), e->err.msg, msg);
    if (!strstr(e->err.msg, msg))
        fail_msg("message '%s' does not say '%s'", e->err.msg, msg);
}

/* Every class of bad generation request is refused at submit with a
 * message naming the problem (and its numbers); none gets a completion. */
static void test_bad_requests(void **state) {
    (void)state;
    genv *e = genv_alloc(NREC);
    e->fake.context_length = 64;
    e->mc[0].kv_cache_bytes = 8 * 1024; /* 32 positions */
    genv_start(e);
    kinfer_gen_request g;
#define BAD(setup, want, msg)                                                                      \
    do {                                                                                           \
        g = gen_prompt("Fine prompt");                                                             \
        setup;                                                                                     \
        expect_bad(e, &g, want, msg);                                                              \
    } while (0)
    BAD(g.options.temperature = 2.5f, KINFER_ERR_INVALID_REQUEST, "temperature must be in [0, 2]");
    BAD(g.options.temperature = NAN, KINFER_ERR_INVALID_REQUEST, "temperature");
    BAD(g.options.top_p = 0, KINFER_ERR_INVALID_REQUEST, "top_p must be in (0, 1]");
    BAD(g.options.top_p = 1.5f, KINFER_ERR_INVALID_REQUEST, "top_p");
    BAD(g.options.min_p = -0.1f, KINFER_ERR_INVALID_REQUEST, "min_p must be in [0, 1]");
    BAD(g.options.repetition_penalty = 0, KINFER_ERR_INVALID_REQUEST, "repetition_penalty");
    BAD(g.options.presence_penalty = 2.5f, KINFER_ERR_INVALID_REQUEST, "presence_penalty");
    BAD(g.options.frequency_penalty = -3, KINFER_ERR_INVALID_REQUEST, "frequency_penalty");
    BAD((g.options.logprobs = true, g.options.top_logprobs = 21), KINFER_ERR_INVALID_REQUEST,
        "top_logprobs must be in [0, 20] (got 21)");
    BAD(g.options.top_logprobs = 2, KINFER_ERR_INVALID_REQUEST, "top_logprobs needs logprobs");
    kinfer_str stops[17];
    for (int i = 0; i < 17; i++)
        stops[i] = (kinfer_str){"x", 1};
    BAD((g.options.stop = stops, g.options.nstop = 17), KINFER_ERR_INVALID_REQUEST,
        "at most 16 stop strings (got 17)");
    kinfer_str empty = {"", 0}, bad_utf8 = {"a\xc3", 2};
    char big[200];
    memset(big, 'y', sizeof(big));
    kinfer_str longstop = {big, sizeof(big)};
    BAD((g.options.stop = &empty, g.options.nstop = 1), KINFER_ERR_INVALID_REQUEST,
        "stop string 0 has 0 bytes");
    BAD((g.options.stop = &longstop, g.options.nstop = 1), KINFER_ERR_INVALID_REQUEST,
        "has 200 bytes (1..128 allowed)");
    BAD((g.options.stop = &bad_utf8, g.options.nstop = 1), KINFER_ERR_INVALID_REQUEST,
        "not valid UTF-8 (byte 1)");
    int32_t bad_id = 260;
    BAD((g.options.stop_token_ids = &bad_id, g.options.nstop_token_ids = 1),
        KINFER_ERR_INVALID_REQUEST, "stop token id 260 is outside the vocabulary [0, 260)");
    int32_t ids[3] = {65, -1, 66};
    BAD((g.prompt.len = 0, g.prompt_ids = ids, g.nprompt_ids = 3), KINFER_ERR_INVALID_REQUEST,
        "prompt token 1 (id -1)");
    BAD((g.prompt_ids = ids, g.nprompt_ids = 1), KINFER_ERR_INVALID_REQUEST, "not several");
    BAD(g.prompt.len = 0, KINFER_ERR_INVALID_REQUEST, "has no prompt");
    BAD(g.prompt = ((kinfer_str){"ab\xff", 3}), KINFER_ERR_INVALID_REQUEST,
        "not valid UTF-8 (byte 2)");
    kinfer_chat_message bad_role = {{"robot", 5}, {"hi", 2}};
    BAD((g.prompt.len = 0, g.messages = &bad_role, g.nmessages = 1), KINFER_ERR_INVALID_REQUEST,
        "unknown role 'robot'");
    char longp[80];
    memset(longp, 'p', sizeof(longp));
    BAD(g.prompt = ((kinfer_str){longp, 64}), KINFER_ERR_INVALID_REQUEST,
        "the prompt has 64 tokens; the model's context is 64 tokens");
    BAD(g.options.max_tokens = 60, KINFER_ERR_INVALID_REQUEST,
        "the prompt (11 tokens) plus max_tokens (60) is 71 tokens, more than the model's context "
        "of 64 tokens");
    BAD(g.options.max_tokens = 40, KINFER_ERR_INVALID_REQUEST,
        "needs 50 KV positions; a replica's KV pool holds 32 (8 blocks of 4 tokens");
    BAD(g.prompt = ((kinfer_str){longp, 40}), KINFER_ERR_INVALID_REQUEST,
        "the prompt has 40 tokens; a replica's KV pool holds 32");
    BAD(g.options.stream = true, KINFER_OK, ""); /* the env has the chunk callback */
    e->engine->on_gen_chunk = NULL;
    BAD(g.options.stream = true, KINFER_ERR_INVALID_ARG, "no on_gen_chunk");
    e->engine->on_gen_chunk = gsink_on_chunk;
    g = gen_prompt("Late");
    kinfer_err rc = gsubmit(e, 61, &g, T0 - 1, 0);
    assert_int_equal(rc, KINFER_ERR_DEADLINE_EXCEEDED);
    /* no request for a generative model without `gen` */
    kinfer_engine_request q;
    memset(&q, 0, sizeof(q));
    q.model = (kinfer_str){"lm", 2};
    assert_int_equal(kinfer_engine_submit(e->engine, &q, &e->err), KINFER_ERR_INVALID_REQUEST);
    assert_non_null(strstr(e->err.msg, "needs a prompt"));
#undef BAD
    grun(e, 100); /* the one good (streamed) request */
    assert_int_equal(e->sink.finals_total, 1);
    kinfer_engine_stats st;
    kinfer_engine_stats_get(e->engine, 0, &st);
    assert_int_equal(st.accepted, 1);
    genv_free(e);
}

/* max_tokens 0: as many as the context leaves (or the pool, if smaller). */
static void test_max_tokens_default(void **state) {
    (void)state;
    genv *e = genv_alloc(NREC);
    e->fake.context_length = 40;
    genv_start(e);
    kinfer_gen_request g = gen_prompt("Ten tokens");
    assert_int_equal(gsubmit(e, 0, &g, 0, 0), KINFER_OK);
    grun(e, 100);
    assert_int_equal(e->sink.recs[0].reason, KINFER_FINISH_LENGTH);
    assert_int_equal(e->sink.recs[0].completion_tokens, 30);
    genv_free(e);

    e = genv_alloc(NREC);
    e->mc[0].kv_cache_bytes = 5 * 1024; /* 20 positions: 21 tokens in all */
    genv_start(e);
    assert_int_equal(gsubmit(e, 0, &g, 0, 0), KINFER_OK);
    grun(e, 100);
    assert_int_equal(e->sink.recs[0].completion_tokens, 11);
    genv_free(e);
}

/* The waiting queue drives the congestion callback; max_queue_hard refuses. */
static void test_watermarks_and_overload(void **state) {
    (void)state;
    genv *e = genv_alloc(NREC);
    e->mc[0].max_batch_size = 1;
    e->mc[0].max_queue = 4;
    e->mc[0].queue_low_watermark = 2;
    e->mc[0].max_queue_hard = 6;
    genv_start(e);
    kinfer_gen_request g = gen_prompt("Wm");
    g.options.max_tokens = 2;
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(gsubmit(e, i, &g, 0, 0), KINFER_OK);
    assert_int_equal(e->sink.congestion_on, 1);
    assert_int_equal(gsubmit(e, 6, &g, 0, 0), KINFER_ERR_OVERLOADED);
    assert_non_null(strstr(e->err.msg, "queue is full"));
    kinfer_engine_stats st;
    kinfer_engine_stats_get(e->engine, 0, &st);
    assert_int_equal(st.queued, 6);
    assert_int_equal(st.rejected_overloaded, 1);
    assert_true(st.congested);
    gstep(e); /* one admitted: 5 waiting */
    assert_int_equal(e->sink.congestion_off, 0);
    for (int i = 0; i < 8 && e->sink.congestion_off == 0; i++)
        gstep(e);
    assert_int_equal(e->sink.congestion_off, 1);
    kinfer_engine_stats_get(e->engine, 0, &st);
    assert_int_equal(st.queued, 2);
    grun(e, 100);
    genv_free(e);
}

/* Shutdown with sequences running and queued: each gets exactly one final;
 * a drain long enough lets them finish, a zero drain ends them with
 * SHUTDOWN and what they have, streams flushed. */
static void test_shutdown(void **state) {
    (void)state;
    genv *e = genv_alloc(NREC);
    genv_start(e);
    kinfer_gen_request g = gen_prompt("Sd");
    g.options.max_tokens = 40;
    g.options.stream = true;
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(gsubmit(e, i, &g, 0, 0), KINFER_OK);
    for (int i = 0; i < 5; i++)
        gstep(e);
    kinfer_engine_shutdown(e->engine, 0);
    assert_int_equal(kinfer_engine_in_flight(e->engine), 0);
    int running = 0, queued = 0;
    for (size_t i = 0; i < 6; i++) {
        grec *r = &e->sink.recs[i];
        assert_int_equal(r->finals, 1);
        assert_int_equal(r->status, KINFER_ERR_SHUTDOWN);
        assert_int_equal(r->reason, KINFER_FINISH_CANCELLED);
        assert_int_equal(r->ctext_len, r->text_len);
        assert_int_equal(r->ncids, r->nids);
        if (r->nids > 0)
            running++;
        else
            queued++;
    }
    assert_int_equal(running, 4);
    assert_int_equal(queued, 2);
    assert_int_equal(gsubmit(e, 7, &g, 0, 0), KINFER_ERR_SHUTDOWN);
    genv_audit(e);
    genv_free(e);

    e = genv_alloc(NREC);
    genv_start(e);
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(gsubmit(e, i, &g, 0, 0), KINFER_OK);
    gstep(e);
    kinfer_engine_shutdown(e->engine, 600000); /* manual mode steps until done */
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(e->sink.recs[i].finals, 1);
        assert_int_equal(e->sink.recs[i].status, KINFER_OK);
        assert_int_equal(e->sink.recs[i].reason, KINFER_FINISH_LENGTH);
    }
    genv_free(e);
}

/* A tensor model and a generative one in one engine: each keeps its API. */
static void test_tensor_and_generative_side_by_side(void **state) {
    (void)state;
    genv *e = genv_alloc(NREC);
    fake_model_ctx tensor;
    fake_model_init(&tensor);
    tensor.clock = &e->clock;
    tensor.exec_base_us = 100;
    e->fake.tensor = &tensor;
    e->mc[1] = e->mc[0];
    e->mc[1].name = "mlp";
    e->mc[1].load.kind = "fake";
    e->mc[1].max_queue_delay_us = 0;
    e->cfg.nmodels = 2;
    genv_start(e);
    fake_req fr;
    fake_req_fill(&fr, 0, 1);
    kinfer_engine_request q = fake_request("mlp", &fr, 50, 0, 0);
    assert_int_equal(kinfer_engine_submit(e->engine, &q, &e->err), KINFER_OK);
    kinfer_gen_request g = gen_prompt("Side");
    g.options.max_tokens = 3;
    assert_int_equal(gsubmit(e, 0, &g, 0, 0), KINFER_OK);
    assert_int_equal(gsubmit_to(e, "mlp", 1, &g, 0, 0), KINFER_ERR_INVALID_REQUEST);
    assert_non_null(strstr(e->err.msg, "model 'mlp' is not generative"));
    grun(e, 50);
    assert_int_equal(e->sink.tensor_completions, 1);
    assert_int_equal(e->sink.recs[0].reason, KINFER_FINISH_LENGTH);
    kinfer_engine_stats st;
    kinfer_engine_stats_get(e->engine, 1, &st);
    assert_false(st.generative);
    assert_int_equal(st.completed_ok, 1);
    assert_int_equal(st.batches, 1);
    genv_free(e);
    assert_int_equal(tensor.replicas_live, 0);
    assert_int_equal(tensor.models_live, 0);
    fake_model_fini(&tensor);
}

/* A failed step fails the sequences in it (finish error, blocks freed);
 * the replica goes on with the rest. */
static void test_step_failure(void **state) {
    (void)state;
    genv *e = genv_alloc(NREC);
    e->fake.fail_step = KINFER_ERR_DEVICE;
    e->fake.fail_step_at = 3;
    genv_start(e);
    kinfer_gen_request g = gen_prompt("Fail");
    g.options.max_tokens = 10;
    g.options.stream = true;
    assert_int_equal(gsubmit(e, 0, &g, 0, 0), KINFER_OK);
    assert_int_equal(gsubmit(e, 1, &g, 0, 0), KINFER_OK);
    grun(e, 50);
    for (size_t i = 0; i < 2; i++) {
        grec *r = &e->sink.recs[i];
        assert_int_equal(r->status, KINFER_ERR_DEVICE);
        assert_int_equal(r->reason, KINFER_FINISH_ERROR);
        assert_non_null(strstr(r->error, "step 3 failed"));
        assert_int_equal(r->completion_tokens, 2);
        assert_int_equal(r->ncids, 2);
    }
    assert_int_equal(gsubmit(e, 2, &g, 0, 0), KINFER_OK);
    grun(e, 50);
    assert_int_equal(e->sink.recs[2].status, KINFER_OK);
    kinfer_engine_stats st;
    kinfer_engine_stats_get(e->engine, 0, &st);
    assert_int_equal(st.completed_error, 2);
    assert_int_equal(st.completed_ok, 1);
    genv_free(e);
}

static void expect_config_error(genv *e, kinfer_err want, const char *msg) {
    kinfer_err rc =
        kinfer_engine_new_with_ops(&e->cfg, &fake_gen_ops, &e->fake, &e->opts, &e->engine, &e->err);
    assert_int_equal(rc, want);
    if (!strstr(e->err.msg, msg))
        fail_msg("message '%s' does not say '%s'", e->err.msg, msg);
    assert_null(e->engine);
}

static void test_config_errors(void **state) {
    (void)state;
    genv *e = genv_alloc(NREC);
    e->mc[0].max_batch_size = 32;
    e->mc[0].max_batch_tokens = 16;
    expect_config_error(e, KINFER_ERR_CONFIG,
                        "max_batch_tokens (tokens per step, 16) must be at least max_batch_size "
                        "(sequences per step, 32)");
    e->mc[0].max_batch_size = 4;
    e->mc[0].kv_cache_bytes = 1000;
    expect_config_error(e, KINFER_ERR_CONFIG, "kv_cache_bytes 1000 holds no KV block");
    e->mc[0].kv_cache_bytes = 64 * 1024;
    e->fake.fail_kv_alloc = KINFER_ERR_NOMEM;
    expect_config_error(e, KINFER_ERR_NOMEM, "KV pool of 64 blocks");
    e->fake.fail_kv_alloc = KINFER_OK;
    /* a GPU that is not there: the cpu named after it serves */
    e->mc[0].devices[0] = "cuda:0";
    e->mc[0].devices[1] = "cpu";
    e->mc[0].ndevices = 2;
    e->fake.fail_devices[0] = "cuda:0";
    genv_start(e);
    kinfer_gen_request g = gen_prompt("Fallback");
    g.options.max_tokens = 2;
    assert_int_equal(gsubmit(e, 0, &g, 0, 0), KINFER_OK);
    grun(e, 10);
    assert_string_equal(e->sink.recs[0].device, "cpu");
    genv_free(e);
    /* ops with only part of the generative table */
    e = genv_alloc(NREC);
    sched_model_ops ops = fake_gen_ops;
    ops.replica_step = NULL;
    assert_int_equal(
        kinfer_engine_new_with_ops(&e->cfg, &ops, &e->fake, &e->opts, &e->engine, &e->err),
        KINFER_ERR_INVALID_ARG);
    genv_free(e);
}

/* A seeded request gives the same tokens alone, among others submitted at
 * other times, and on two replicas; an unseeded one reports its seed,
 * which reproduces it. */
static void test_seeded_reproducible_across_batches(void **state) {
    (void)state;
    kinfer_gen_request g = gen_prompt("Seeded");
    g.options.max_tokens = 30;
    g.options.temperature = 1.2f;
    g.options.top_k = 40;
    g.options.min_p = 0.05f;
    g.options.frequency_penalty = 0.5f;
    g.options.presence_penalty = 0.3f;
    g.options.has_seed = true;
    g.options.seed = 42;
    genv *a = genv_alloc(NREC);
    genv_start(a);
    assert_int_equal(gsubmit(a, 0, &g, 0, 0), KINFER_OK);
    grun(a, 100);
    int32_t alone[30];
    memcpy(alone, a->sink.recs[0].ids, sizeof(alone));
    genv_free(a);

    genv *b = genv_alloc(NREC);
    b->mc[0].replicas_per_device = 2;
    b->mc[0].max_batch_size = 2;
    genv_start(b);
    kinfer_gen_request other = gen_prompt("Another prompt");
    other.options.max_tokens = 12;
    other.options.temperature = 1;
    for (size_t i = 1; i <= 3; i++)
        assert_int_equal(gsubmit(b, i, &other, 0, 0), KINFER_OK);
    gstep(b);
    gstep(b);
    assert_int_equal(gsubmit(b, 0, &g, 0, 0), KINFER_OK);
    kinfer_gen_request unseeded = g;
    unseeded.options.has_seed = false;
    assert_int_equal(gsubmit(b, 4, &unseeded, 0, 0), KINFER_OK);
    for (size_t i = 5; i <= 7; i++)
        assert_int_equal(gsubmit(b, i, &other, 0, 0), KINFER_OK);
    grun(b, 300);
    assert_memory_equal(b->sink.recs[0].ids, alone, sizeof(alone));
    /* both replicas ran steps */
    const void *first = b->fake.steps[0].replica;
    bool two = false;
    for (uint32_t s = 0; s < b->fake.nsteps; s++)
        two |= b->fake.steps[s].replica != first;
    assert_true(two);
    uint64_t seed = b->sink.recs[4].seed;
    int32_t unseeded_ids[30];
    memcpy(unseeded_ids, b->sink.recs[4].ids, sizeof(unseeded_ids));
    genv_free(b);

    genv *c = genv_alloc(NREC);
    genv_start(c);
    unseeded.options.has_seed = true;
    unseeded.options.seed = seed;
    assert_int_equal(gsubmit(c, 0, &unseeded, 0, 0), KINFER_OK);
    grun(c, 100);
    assert_memory_equal(c->sink.recs[0].ids, unseeded_ids, sizeof(unseeded_ids));
    genv_free(c);
}

/* Chat messages go through the model's template; token ids are taken as
 * given and equal the text they spell. */
static void test_chat_and_token_prompts(void **state) {
    (void)state;
    genv *e = genv_alloc(NREC);
    genv_start(e);
    kinfer_chat_message msgs[2] = {{{"system", 6}, {"Be brief.", 9}}, {{"user", 4}, {"Hi", 2}}};
    kinfer_gen_request g = gen_prompt("");
    g.messages = msgs;
    g.nmessages = 2;
    g.options.max_tokens = 4;
    assert_int_equal(gsubmit(e, 0, &g, 0, 0), KINFER_OK);
    /* SEP "system: Be brief.\n" SEP "user: Hi\n" SEP "assistant: " */
    kinfer_gen_request t = gen_prompt("Same text");
    t.options.max_tokens = 8;
    assert_int_equal(gsubmit(e, 1, &t, 0, 0), KINFER_OK);
    int32_t ids[9];
    for (int i = 0; i < 9; i++)
        ids[i] = (unsigned char)"Same text"[i];
    kinfer_gen_request p = gen_prompt("");
    p.prompt_ids = ids;
    p.nprompt_ids = 9;
    p.options.max_tokens = 8;
    assert_int_equal(gsubmit(e, 2, &p, 0, 0), KINFER_OK);
    grun(e, 50);
    assert_int_equal(e->sink.recs[0].prompt_tokens, 1 + 18 + 1 + 9 + 1 + 11);
    assert_int_equal(e->sink.recs[2].prompt_tokens, 9);
    assert_memory_equal(e->sink.recs[1].ids, e->sink.recs[2].ids, 8 * sizeof(int32_t));
    genv_free(e);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_matches_reference),
        cmocka_unit_test(test_step_composition),
        cmocka_unit_test(test_admission_order),
        cmocka_unit_test(test_kv_blocks_follow_positions),
        cmocka_unit_test(test_preemption_recompute_equals_alone),
        cmocka_unit_test(test_urgent_request_displaces_bulk),
        cmocka_unit_test(test_deadlines),
        cmocka_unit_test(test_queued_expiry),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_stop_strings),
        cmocka_unit_test(test_stop_tokens_and_eog),
        cmocka_unit_test(test_utf8_cut_points),
        cmocka_unit_test(test_logprobs),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_max_tokens_default),
        cmocka_unit_test(test_watermarks_and_overload),
        cmocka_unit_test(test_shutdown),
        cmocka_unit_test(test_tensor_and_generative_side_by_side),
        cmocka_unit_test(test_step_failure),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_seeded_reproducible_across_batches),
        cmocka_unit_test(test_chat_and_token_prompts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
