/* bench_scheduler_gen.c — the continuous batching scheduler's own cost per
 * step and per generated token, with the fake generative model of the
 * scheduler tests (tests/unit/scheduler/sched_fake_gen.h) in bench mode:
 * its "forward" writes constant logits plus one favoured token, so nearly
 * all the time left is the engine's (planning, block allocation, sampling
 * over the vocabulary, stop rules, text, chunks, callbacks).
 *
 * The logits follow a Zipf-like profile, p ~ (1 + rank)^-2 over a fixed
 * permutation of the vocabulary (with the favoured token on top), so that
 * top-p sees a peaked distribution as from a real model, not a flat one.
 *
 * Closed loop: n sequences always in flight (each final resubmits its
 * request from the completion callback), prompt 16 tokens, 128 generated
 * (ignore_eos), one replica with max_batch_size n. Measured after a
 * warm-up, on the executor thread: its CPU time between steps (outside
 * kinfer_replica_step) per step and per token, from
 * CLOCK_THREAD_CPUTIME_ID, which a shared CPU does not inflate the way it
 * does wall time; wall time outside the step is printed too.
 *
 *   bench_scheduler_gen [--runs 3] [--duration-ms 2000] [--vocab 49152]
 *                       [--sampling greedy|topp] [--stream] [--seqs 1,8,32,128] */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../tests/unit/scheduler/sched_fake_gen.h"
#include "engine_internal.h"
#include "kinfer/kinfer_log.h"

#define PROMPT 16
#define GEN 128

typedef struct bench {
    fake_gen_ctx fake;
    kinfer_engine *engine;
    kinfer_gen_request req;
    int32_t prompt[PROMPT];
    atomic_bool measuring;
    /* executor thread, inside the step wrapper */
    int64_t last_end_cpu, last_end_wall; /* at the end of the previous step */
    int64_t out_cpu, out_wall;           /* outside steps while measuring */
    uint64_t steps, tokens, seqs;
    atomic_ullong finals;
} bench;

static int64_t ns_of(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static kinfer_err step_wrapped(void *ctx, void *replica, kinfer_step_seq *seqs, size_t n,
                               kinfer_error *err) {
    bench *b = ctx;
    int64_t c0 = ns_of(CLOCK_THREAD_CPUTIME_ID), w0 = ns_of(CLOCK_MONOTONIC);
    if (atomic_load(&b->measuring) && b->last_end_cpu) {
        b->out_cpu += c0 - b->last_end_cpu;
        b->out_wall += w0 - b->last_end_wall;
        b->steps++;
        b->seqs += n;
        for (size_t i = 0; i < n; i++)
            b->tokens += seqs[i].logits != NULL;
    }
    kinfer_err rc = fg_step(&b->fake, replica, seqs, n, err);
    b->last_end_cpu = ns_of(CLOCK_THREAD_CPUTIME_ID);
    b->last_end_wall = ns_of(CLOCK_MONOTONIC);
    return rc;
}

/* The fake's ops with its context inside the bench struct. */
static kinfer_err b_load(void *c, const kinfer_model_options *o, void **m, kinfer_error *e) {
    return fg_load(&((bench *)c)->fake, o, m, e);
}
static void b_destroy(void *c, void *m) {
    fg_destroy(&((bench *)c)->fake, m);
}
static kinfer_err b_check(void *c, const void *m, const kinfer_tensor *i, size_t ni,
                          const kinfer_param *p, size_t np, kinfer_request_cost *cost,
                          kinfer_error *e) {
    return fg_check(&((bench *)c)->fake, m, i, ni, p, np, cost, e);
}
static kinfer_err b_replica_new(void *c, void *m, const char *d, uint32_t rows, void **r,
                                kinfer_error *e) {
    return fg_replica_new(&((bench *)c)->fake, m, d, rows, r, e);
}
static void b_replica_destroy(void *c, void *r) {
    fg_replica_destroy(&((bench *)c)->fake, r);
}
static kinfer_err b_execute(void *c, void *r, kinfer_batch_item *it, size_t n, kinfer_error *e) {
    return fg_execute(&((bench *)c)->fake, r, it, n, e);
}
static bool b_gen_info(void *c, const void *m, kinfer_gen_info *info) {
    return fg_gen_info(&((bench *)c)->fake, m, info);
}
static kinfer_err b_tokenize(void *c, const void *m, kinfer_str p, const kinfer_chat_message *msg,
                             size_t nm, int32_t **ids, size_t *nids, kinfer_error *e) {
    return fg_tokenize(&((bench *)c)->fake, m, p, msg, nm, ids, nids, e);
}
static size_t b_token_bytes(void *c, const void *m, int32_t id, bool sp, char *out, size_t cap) {
    return fg_token_bytes(&((bench *)c)->fake, m, id, sp, out, cap);
}
static kinfer_err b_kv_alloc(void *c, void *r, uint32_t nb, kinfer_error *e) {
    return fg_kv_alloc(&((bench *)c)->fake, r, nb, e);
}

static const sched_model_ops bench_ops = {
    .load = b_load,
    .destroy = b_destroy,
    .check_request = b_check,
    .replica_new = b_replica_new,
    .replica_destroy = b_replica_destroy,
    .replica_execute = b_execute,
    .gen_info = b_gen_info,
    .gen_tokenize = b_tokenize,
    .gen_token_bytes = b_token_bytes,
    .replica_kv_alloc = b_kv_alloc,
    .replica_step = step_wrapped,
};

static void submit_one(bench *b, void *token) {
    kinfer_engine_request q;
    memset(&q, 0, sizeof(q));
    q.model = (kinfer_str){"lm", 2};
    q.token = token;
    q.gen = &b->req;
    kinfer_error err;
    kinfer_err rc = kinfer_engine_submit(b->engine, &q, &err);
    if (rc != KINFER_OK && rc != KINFER_ERR_SHUTDOWN) /* the end of a run */
        fprintf(stderr, "bench: submit failed: %s\n", err.msg);
}

static void on_complete(void *ctx, const kinfer_engine_result *res) {
    bench *b = ctx;
    atomic_fetch_add(&b->finals, 1);
    if (res->status == KINFER_OK)
        submit_one(b, res->token);
}

static void on_chunk(void *ctx, const kinfer_gen_chunk *ch) {
    (void)ctx, (void)ch;
}

typedef struct result {
    double cpu_step_us, cpu_token_us, wall_step_us, seqs_per_step, tokens_per_s;
} result;

static int run(uint32_t n, uint32_t vocab, bool topp, bool stream, int64_t duration_ms,
               const float *profile, result *out) {
    bench *b = calloc(1, sizeof(*b));
    fake_gen_init(&b->fake);
    b->fake.bench_mode = true;
    b->fake.bench_logits = profile;
    b->fake.vocab = vocab;
    b->fake.context_length = 4096;
    b->fake.block_tokens = 16;
    b->fake.block_bytes = 4096;
    b->fake.script = "the quick brown fox jumps over the lazy dog ";
    b->fake.script_len = strlen(b->fake.script);
    for (int i = 0; i < PROMPT; i++)
        b->prompt[i] = 'a' + i;
    memset(&b->req, 0, sizeof(b->req));
    b->req.prompt_ids = b->prompt;
    b->req.nprompt_ids = PROMPT;
    kinfer_gen_options_init(&b->req.options);
    b->req.options.max_tokens = GEN;
    b->req.options.ignore_eos = true;
    b->req.options.stream = stream;
    if (topp) {
        b->req.options.temperature = 0.8f;
        b->req.options.top_p = 0.9f;
    } else {
        b->req.options.temperature = 0;
    }
    kinfer_model_config mc;
    memset(&mc, 0, sizeof(mc));
    mc.name = "lm";
    mc.load.kind = "fakegen";
    mc.devices[0] = "cpu";
    mc.ndevices = 1;
    mc.replicas_per_device = 1;
    mc.max_batch_size = n;
    mc.max_batch_tokens = n > 256 ? n : 256;
    /* room for every sequence's whole context: no preemption */
    mc.kv_cache_bytes = (uint64_t)n * ((PROMPT + GEN) / 16 + 1) * 4096;
    kinfer_engine_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.models = &mc;
    cfg.nmodels = 1;
    cfg.on_complete = on_complete;
    cfg.on_gen_chunk = on_chunk;
    cfg.callback_ctx = b;
    kinfer_error err;
    if (kinfer_engine_new_with_ops(&cfg, &bench_ops, b, NULL, &b->engine, &err) != KINFER_OK) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return -1;
    }
    for (uint32_t i = 0; i < n; i++)
        submit_one(b, (void *)(uintptr_t)i);
    struct timespec warm = {0, 300 * 1000000L};
    nanosleep(&warm, NULL);
    int64_t w0 = ns_of(CLOCK_MONOTONIC);
    atomic_store(&b->measuring, true);
    struct timespec d = {duration_ms / 1000, (duration_ms % 1000) * 1000000L};
    nanosleep(&d, NULL);
    atomic_store(&b->measuring, false);
    int64_t w1 = ns_of(CLOCK_MONOTONIC);
    kinfer_engine_shutdown(b->engine, 0);
    /* shutdown joined the executor: its counters are final and visible */
    out->cpu_step_us = b->steps ? b->out_cpu / 1e3 / b->steps : 0;
    out->cpu_token_us = b->tokens ? b->out_cpu / 1e3 / b->tokens : 0;
    out->wall_step_us = b->steps ? b->out_wall / 1e3 / b->steps : 0;
    out->seqs_per_step = b->steps ? (double)b->seqs / b->steps : 0;
    out->tokens_per_s = b->tokens / ((w1 - w0) / 1e9);
    kinfer_engine_destroy(b->engine);
    fake_gen_fini(&b->fake);
    free(b);
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    int runs = 3;
    int64_t duration_ms = 2000;
    uint32_t vocab = 49152;
    bool topp = false, stream = false;
    uint32_t seqs[16] = {1, 8, 32, 128};
    int nseqs = 4;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--runs") && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--duration-ms") && i + 1 < argc)
            duration_ms = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--vocab") && i + 1 < argc)
            vocab = (uint32_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "--sampling") && i + 1 < argc)
            topp = !strcmp(argv[++i], "topp");
        else if (!strcmp(argv[i], "--stream"))
            stream = true;
        else if (!strcmp(argv[i], "--seqs") && i + 1 < argc) {
            nseqs = 0;
            for (char *t = strtok(argv[++i], ","); t && nseqs < 16; t = strtok(NULL, ","))
                seqs[nseqs++] = (uint32_t)atol(t);
        } else {
            fprintf(stderr,
                    "usage: %s [--runs N] [--duration-ms MS] [--vocab V] [--sampling "
                    "greedy|topp] [--stream] [--seqs 1,8,32,128]\n",
                    argv[0]);
            return 2;
        }
    }
    if (runs < 1 || runs > 15 || vocab < 300) {
        fprintf(stderr, "bench: runs 1..15, vocab >= 300\n");
        return 2;
    }
    kinfer_log_set_level(KINFER_LOG_WARN);
    float *profile = malloc(vocab * sizeof(float));
    for (uint32_t v = 0; v < vocab; v++) /* 40499 is prime to 2 and 3: a permutation */
        profile[v] = -2.0f * logf(1.0f + (float)(((uint64_t)v * 40499u) % vocab));
    printf("vocab %u, sampling %s%s, prompt %d, %d generated, %d run(s) of %lld ms, median\n",
           vocab, topp ? "temperature 0.8 + top_p 0.9" : "greedy", stream ? ", streamed" : "",
           PROMPT, GEN, runs, (long long)duration_ms);
    printf("| seqs | seqs/step | CPU us/step | CPU us/token | wall us/step | tokens/s | runs (CPU "
           "us/token) |\n|---:|---:|---:|---:|---:|---:|---|\n");
    for (int k = 0; k < nseqs; k++) {
        result r[15];
        double step[15], tok[15], wall[15], sps[15], tps[15];
        for (int i = 0; i < runs; i++) {
            if (run(seqs[k], vocab, topp, stream, duration_ms, profile, &r[i]) != 0)
                return 1;
            step[i] = r[i].cpu_step_us;
            tok[i] = r[i].cpu_token_us;
            wall[i] = r[i].wall_step_us;
            sps[i] = r[i].seqs_per_step;
            tps[i] = r[i].tokens_per_s;
        }
        char all[256] = "";
        for (int i = 0; i < runs; i++)
            snprintf(all + strlen(all), sizeof(all) - strlen(all), "%s%.2f", i ? " " : "", tok[i]);
        qsort(step, runs, sizeof(double), cmp_double);
        qsort(tok, runs, sizeof(double), cmp_double);
        qsort(wall, runs, sizeof(double), cmp_double);
        qsort(sps, runs, sizeof(double), cmp_double);
        qsort(tps, runs, sizeof(double), cmp_double);
        printf("| %u | %.1f | %.1f | %.2f | %.1f | %.0f | %s |\n", seqs[k], sps[runs / 2],
               step[runs / 2], tok[runs / 2], wall[runs / 2], tps[runs / 2], all);
        fflush(stdout);
    }
    free(profile);
    return 0;
}
