/* sched_fake_gen.h — a fake generative model behind sched_model_ops, for
 * the continuous batching tests and bench (header-only, no cmocka).
 *
 * A toy LM over a byte vocabulary: ids 0..255 are bytes, then four control
 * tokens (EOS and end-of-turn, both end-of-generation; BOS; SEP, which ends
 * nothing). Its "KV cache" is real: each fed token's id and position are
 * written into the block slots the engine hands it, and the logits of a
 * position are computed from what it reads back through the block table,
 * never from a host copy: logit[v] = noise * u(h, v) + bonus for the
 * script's byte at the next position, where h hashes every (token,
 * position) read from the cache and u is in [-1, 1]. A wrong block table, a
 * block shared by two live sequences or stale KV therefore changes the
 * output (or is reported as a step error when a slot holds the wrong
 * position). Each step advances the fake clock by base + per_token x
 * tokens (or sleeps), can be held at a gate, and is logged: per step its
 * clock at start and end, per sequence its first token (its identity in
 * the tests), position, tokens and whether it asked for logits.
 *
 * With `tensor` set it also serves the tensor fake model of
 * sched_fake_model.h for models of kind "fake", so that one engine can
 * hold both kinds. */
#ifndef SCHED_FAKE_GEN_H
#define SCHED_FAKE_GEN_H

#include "sched_fake_model.h"

#define FG_VOCAB 260
#define FG_EOS 256
#define FG_EOT 257
#define FG_BOS 258
#define FG_SEP 259
#define FG_MAX_STEPS 16384
#define FG_MAX_ENTRIES 131072

typedef struct fg_entry {
    uint32_t step;
    int32_t first; /* token at position 0 */
    uint32_t pos, ntokens;
    bool logits;
} fg_entry;

typedef struct fg_step_rec {
    int64_t start, end;
    uint32_t nseqs, ntokens;
    const void *replica;
} fg_step_rec;

typedef struct fake_gen_ctx {
    fake_clock *clock; /* non-NULL: steps advance it */
    int64_t step_base_us, step_per_token_us;
    int64_t sleep_us; /* real sleep per step (threaded tests, bench) */
    uint32_t context_length, block_tokens;
    uint64_t block_bytes;
    bool add_bos;
    /* Vocabulary size (0 = FG_VOCAB): ids past FG_VOCAB are plain tokens
     * that spell "t" (the bench sizes the sampler like a real model). */
    uint32_t vocab;
    /* The LM. */
    const char *script; /* the favoured byte at position p is script[p % len] */
    size_t script_len;
    float script_bonus;
    float noise;
    float eos_bias; /* added to the logits of EOS and end-of-turn */
    /* Faults. */
    kinfer_err fail_step; /* the fail_step_at-th step (1-based, all replicas) fails */
    uint32_t fail_step_at;
    kinfer_err fail_kv_alloc;
    const char *fail_devices[2];
    /* Bench: no per-vocab noise (logits = script bonus) and no block
     * sharing check, so that the model's own time stays small. */
    bool bench_mode;
    /* Bench: when set, the logits are these vocab values (plus the script
     * bonus), e.g. a Zipf-like profile, so sampling sees a realistic shape. */
    const float *bench_logits;
    int64_t model_ns;       /* real time spent inside steps (bench) */
    fake_model_ctx *tensor; /* optional: serves kind "fake" */

    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool gate_closed;
    int gate_tickets;
    int in_step;
    int replicas_live, models_live;
    int kv_errors; /* block tables or KV contents found wrong */
    char kv_error[256];
    uint32_t nsteps; /* steps over all replicas */
    fg_step_rec steps[FG_MAX_STEPS];
    uint32_t nentries;
    fg_entry entries[FG_MAX_ENTRIES];
} fake_gen_ctx;

typedef struct fake_gen_replica {
    fake_gen_ctx *f; /* first, as fake_replica's ctx: tells the two apart */
    char device[16];
    uint32_t max_rows;
    uint32_t nblocks;
    int32_t *kv_tok, *kv_pos;
} fake_gen_replica;

static inline void fake_gen_init(fake_gen_ctx *f) {
    memset(f, 0, sizeof(*f));
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cond, NULL);
    f->context_length = 256;
    f->block_tokens = 4;
    f->block_bytes = 1024;
    f->script_bonus = 8.0f;
    f->noise = 1.0f;
    f->eos_bias = -100.0f;
}

static inline void fake_gen_fini(fake_gen_ctx *f) {
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cond);
}

static inline void fake_gen_gate(fake_gen_ctx *f, bool closed) {
    pthread_mutex_lock(&f->mu);
    f->gate_closed = closed;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->mu);
}

static inline void fake_gen_gate_pass(fake_gen_ctx *f, int n) {
    pthread_mutex_lock(&f->mu);
    f->gate_tickets += n;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->mu);
}

static inline int fake_gen_in_step(fake_gen_ctx *f) {
    pthread_mutex_lock(&f->mu);
    int n = f->in_step;
    pthread_mutex_unlock(&f->mu);
    return n;
}

static inline int64_t fg_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline bool fg_is_tensor(const fake_gen_ctx *f, const void *handle) {
    return f->tensor && (handle == f->tensor || *(void *const *)handle == f->tensor);
}

static inline uint64_t fg_mix(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The logits of the token after position p, given the context hash h
 * (what the fake computes; tests use it to predict outputs). */
static inline void fake_gen_logits(const fake_gen_ctx *f, uint64_t h, uint32_t p, float *logits) {
    uint32_t nv = f->vocab ? f->vocab : FG_VOCAB;
    if (f->bench_logits)
        memcpy(logits, f->bench_logits, nv * sizeof(float));
    for (uint32_t v = 0; v < nv && !f->bench_logits; v++) {
        float u = 0;
        if (!f->bench_mode)
            u = (float)((double)(fg_mix(h ^ ((uint64_t)v << 32)) >> 11) / 4503599627370496.0) - 1;
        logits[v] = f->noise * u;
    }
    if (f->script && f->script_len)
        logits[(unsigned char)f->script[(p + 1) % f->script_len]] += f->script_bonus;
    logits[FG_EOS] += f->eos_bias;
    logits[FG_EOT] += f->eos_bias;
}

static inline uint64_t fg_hash_step(uint64_t h, int32_t tok, uint32_t pos) {
    return fg_mix(h ^ ((uint64_t)(uint32_t)tok << 24) ^ pos);
}

#define FG_HASH0 0x243F6A8885A308D3ull

/* ---- ops ---- */

static inline kinfer_err fg_load(void *ctx, const kinfer_model_options *opts, void **model,
                                 kinfer_error *err) {
    fake_gen_ctx *f = ctx;
    if (f->tensor && strcmp(opts->kind, "fake") == 0)
        return fake_load(f->tensor, opts, model, err);
    pthread_mutex_lock(&f->mu);
    f->models_live++;
    pthread_mutex_unlock(&f->mu);
    *model = f;
    return KINFER_OK;
}

static inline void fg_destroy(void *ctx, void *model) {
    fake_gen_ctx *f = ctx;
    if (fg_is_tensor(f, model)) {
        fake_destroy(f->tensor, model);
        return;
    }
    pthread_mutex_lock(&f->mu);
    f->models_live--;
    pthread_mutex_unlock(&f->mu);
}

static inline kinfer_err fg_check(void *ctx, const void *model, const kinfer_tensor *inputs,
                                  size_t ninputs, const kinfer_param *params, size_t nparams,
                                  kinfer_request_cost *cost, kinfer_error *err) {
    fake_gen_ctx *f = ctx;
    if (fg_is_tensor(f, model))
        return fake_check(f->tensor, model, inputs, ninputs, params, nparams, cost, err);
    return kinfer_error_set(err, KINFER_ERR_INTERNAL, "fake gen: check_request called");
}

static inline kinfer_err fg_replica_new(void *ctx, void *model, const char *device,
                                        uint32_t max_rows, void **replica, kinfer_error *err) {
    fake_gen_ctx *f = ctx;
    if (fg_is_tensor(f, model))
        return fake_replica_new(f->tensor, model, device, max_rows, replica, err);
    for (int i = 0; i < 2; i++)
        if (f->fail_devices[i] && strcmp(f->fail_devices[i], device) == 0)
            return kinfer_error_set(err, KINFER_ERR_DEVICE, "fake gen: no device %s", device);
    fake_gen_replica *r = calloc(1, sizeof(*r));
    r->f = f;
    snprintf(r->device, sizeof(r->device), "%s", device);
    r->max_rows = max_rows;
    pthread_mutex_lock(&f->mu);
    f->replicas_live++;
    pthread_mutex_unlock(&f->mu);
    *replica = r;
    return KINFER_OK;
}

static inline void fg_replica_destroy(void *ctx, void *replica) {
    fake_gen_ctx *f = ctx;
    if (fg_is_tensor(f, replica)) {
        fake_replica_destroy(f->tensor, replica);
        return;
    }
    fake_gen_replica *r = replica;
    free(r->kv_tok);
    free(r->kv_pos);
    free(r);
    pthread_mutex_lock(&f->mu);
    f->replicas_live--;
    pthread_mutex_unlock(&f->mu);
}

static inline kinfer_err fg_execute(void *ctx, void *replica, kinfer_batch_item *items,
                                    size_t nitems, kinfer_error *err) {
    fake_gen_ctx *f = ctx;
    if (fg_is_tensor(f, replica))
        return fake_execute(f->tensor, replica, items, nitems, err);
    return kinfer_error_set(err, KINFER_ERR_INTERNAL, "fake gen: execute called");
}

static inline bool fg_gen_info(void *ctx, const void *model, kinfer_gen_info *info) {
    fake_gen_ctx *f = ctx;
    static const int32_t eog[2] = {FG_EOS, FG_EOT};
    if (fg_is_tensor(f, model))
        return false;
    info->vocab_size = f->vocab ? f->vocab : FG_VOCAB;
    info->context_length = f->context_length;
    info->kv_block_tokens = f->block_tokens;
    info->kv_block_bytes = f->block_bytes;
    info->bos_id = f->add_bos ? FG_BOS : -1;
    info->eog_ids = eog;
    info->neog = 2;
    return true;
}

static inline bool fg_utf8_ok(const char *s, size_t n, size_t *bad) {
    const unsigned char *b = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t len = b[i] < 0x80         ? 1
                     : (b[i] >> 5) == 6  ? 2
                     : (b[i] >> 4) == 14 ? 3
                     : (b[i] >> 3) == 30 ? 4
                                         : 0;
        if (len == 0 || i + len > n) {
            *bad = i;
            return false;
        }
        for (size_t k = 1; k < len; k++)
            if ((b[i + k] & 0xC0) != 0x80) {
                *bad = i;
                return false;
            }
        i += len;
    }
    return true;
}

static inline kinfer_err fg_tokenize(void *ctx, const void *model, kinfer_str prompt,
                                     const kinfer_chat_message *messages, size_t nmessages,
                                     int32_t **ids, size_t *nids, kinfer_error *err) {
    fake_gen_ctx *f = ctx;
    (void)model;
    size_t cap = 2 + prompt.len;
    for (size_t i = 0; i < nmessages; i++)
        cap += messages[i].role.len + messages[i].content.len + 4;
    cap += 16;
    int32_t *out = malloc(cap * sizeof(*out));
    size_t n = 0, bad;
    if (f->add_bos)
        out[n++] = FG_BOS;
    if (nmessages == 0) {
        if (prompt.len == 0) {
            free(out);
            return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST, "empty prompt");
        }
        if (!fg_utf8_ok(prompt.ptr, prompt.len, &bad)) {
            free(out);
            return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST,
                                    "prompt is not valid UTF-8 (byte %zu)", bad);
        }
        for (size_t i = 0; i < prompt.len; i++)
            out[n++] = (unsigned char)prompt.ptr[i];
    } else {
        for (size_t i = 0; i < nmessages; i++) {
            kinfer_str r = messages[i].role, c = messages[i].content;
            if (!((r.len == 4 && memcmp(r.ptr, "user", 4) == 0) ||
                  (r.len == 6 && memcmp(r.ptr, "system", 6) == 0) ||
                  (r.len == 9 && memcmp(r.ptr, "assistant", 9) == 0))) {
                free(out);
                return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST,
                                        "message %zu: unknown role '%.*s'", i, (int)r.len, r.ptr);
            }
            out[n++] = FG_SEP;
            for (size_t k = 0; k < r.len; k++)
                out[n++] = (unsigned char)r.ptr[k];
            out[n++] = ':';
            out[n++] = ' ';
            for (size_t k = 0; k < c.len; k++)
                out[n++] = (unsigned char)c.ptr[k];
            out[n++] = '\n';
        }
        out[n++] = FG_SEP;
        static const char as[] = "assistant: ";
        for (size_t k = 0; k < sizeof(as) - 1; k++)
            out[n++] = (unsigned char)as[k];
    }
    *ids = out;
    *nids = n;
    return KINFER_OK;
}

static inline size_t fg_token_bytes(void *ctx, const void *model, int32_t id, bool special,
                                    char *out, size_t cap) {
    fake_gen_ctx *f = ctx;
    (void)model;
    static const char *const names[4] = {"<eos>", "<eot>", "<bos>", "<sep>"};
    if (id < 0 || (uint32_t)id >= (f->vocab ? f->vocab : FG_VOCAB))
        return 0;
    if (id >= FG_VOCAB) {
        if (cap >= 1)
            out[0] = 't';
        return 1;
    }
    if (id < 256) {
        if (cap >= 1)
            out[0] = (char)id;
        return 1;
    }
    if (!special)
        return 0;
    size_t n = strlen(names[id - 256]);
    if (n <= cap)
        memcpy(out, names[id - 256], n);
    return n;
}

static inline kinfer_err fg_kv_alloc(void *ctx, void *replica, uint32_t nblocks,
                                     kinfer_error *err) {
    fake_gen_ctx *f = ctx;
    fake_gen_replica *r = replica;
    if (f->fail_kv_alloc != KINFER_OK)
        return kinfer_error_set(err, f->fail_kv_alloc, "fake gen: no memory for %u blocks",
                                nblocks);
    size_t slots = (size_t)nblocks * f->block_tokens;
    r->kv_tok = malloc(slots * sizeof(*r->kv_tok));
    r->kv_pos = malloc(slots * sizeof(*r->kv_pos));
    for (size_t i = 0; i < slots; i++) {
        r->kv_tok[i] = -1;
        r->kv_pos[i] = -1;
    }
    r->nblocks = nblocks;
    return KINFER_OK;
}

static inline kinfer_err fg_fail(fake_gen_ctx *f, kinfer_error *err, const char *what, unsigned a,
                                 unsigned b) {
    pthread_mutex_lock(&f->mu);
    f->kv_errors++;
    snprintf(f->kv_error, sizeof(f->kv_error), "%s (%u, %u)", what, a, b);
    pthread_mutex_unlock(&f->mu);
    return kinfer_error_set(err, KINFER_ERR_INTERNAL, "fake gen: %s (%u, %u)", what, a, b);
}

static inline kinfer_err fg_step(void *ctx, void *replica, kinfer_step_seq *seqs, size_t n,
                                 kinfer_error *err) {
    fake_gen_ctx *f = ctx;
    fake_gen_replica *r = replica;
    uint32_t T = f->block_tokens;
    int64_t ns0 = fg_now_ns();
    pthread_mutex_lock(&f->mu);
    f->in_step++;
    while (f->gate_closed && f->gate_tickets == 0)
        pthread_cond_wait(&f->cond, &f->mu);
    if (f->gate_closed)
        f->gate_tickets--;
    uint32_t step = f->nsteps++;
    bool fail = f->fail_step_at > 0 && step + 1 == f->fail_step_at;
    pthread_mutex_unlock(&f->mu);
    int64_t start = f->clock ? atomic_load(&f->clock->now) : 0;
    kinfer_err rc = KINFER_OK;
    uint64_t tokens = 0;
    /* The block table: covers the positions, in the pool, not shared. */
    for (size_t i = 0; i < n && rc == KINFER_OK; i++) {
        const kinfer_step_seq *s = &seqs[i];
        tokens += s->ntokens;
        if (s->ntokens == 0 || (uint64_t)s->nblocks * T < (uint64_t)s->pos + s->ntokens)
            rc = fg_fail(f, err, "block table does not cover the positions", s->pos, s->nblocks);
        for (uint32_t b = 0; b < s->nblocks && rc == KINFER_OK; b++) {
            if (s->blocks[b] >= r->nblocks)
                rc = fg_fail(f, err, "block outside the pool", s->blocks[b], r->nblocks);
            for (size_t j = 0; j < i && rc == KINFER_OK && !f->bench_mode; j++)
                for (uint32_t c = 0; c < seqs[j].nblocks && rc == KINFER_OK; c++)
                    if (seqs[j].blocks[c] == s->blocks[b])
                        rc = fg_fail(f, err, "block shared by two sequences", s->blocks[b],
                                     (unsigned)i);
        }
    }
    if (rc == KINFER_OK && tokens > r->max_rows)
        rc = fg_fail(f, err, "tokens over max_rows", (unsigned)tokens, r->max_rows);
    if (rc == KINFER_OK) {
        for (size_t i = 0; i < n; i++) {
            const kinfer_step_seq *s = &seqs[i];
            for (uint32_t k = 0; k < s->ntokens; k++) {
                uint32_t q = s->pos + k;
                size_t slot = (size_t)s->blocks[q / T] * T + q % T;
                r->kv_tok[slot] = s->tokens[k];
                r->kv_pos[slot] = (int32_t)q;
            }
        }
        for (size_t i = 0; i < n && rc == KINFER_OK; i++) {
            const kinfer_step_seq *s = &seqs[i];
            if (!s->logits)
                continue;
            uint32_t last = s->pos + s->ntokens - 1;
            uint64_t h = FG_HASH0;
            for (uint32_t q = 0; q <= last && rc == KINFER_OK; q++) {
                size_t slot = (size_t)s->blocks[q / T] * T + q % T;
                if (r->kv_pos[slot] != (int32_t)q)
                    rc = fg_fail(f, err, "stale KV at position", q, (unsigned)r->kv_pos[slot]);
                h = fg_hash_step(h, r->kv_tok[slot], q);
            }
            if (rc == KINFER_OK)
                fake_gen_logits(f, h, last, s->logits);
        }
    }
    if (f->clock)
        atomic_fetch_add(&f->clock->now, f->step_base_us + f->step_per_token_us * (int64_t)tokens);
    if (f->sleep_us > 0) {
        struct timespec ts = {f->sleep_us / 1000000, (f->sleep_us % 1000000) * 1000};
        nanosleep(&ts, NULL);
    }
    int64_t end = f->clock ? atomic_load(&f->clock->now) : 0;
    pthread_mutex_lock(&f->mu);
    if (step < FG_MAX_STEPS)
        f->steps[step] = (fg_step_rec){start, end, (uint32_t)n, (uint32_t)tokens, replica};
    for (size_t i = 0; i < n && f->nentries < FG_MAX_ENTRIES; i++) {
        const kinfer_step_seq *s = &seqs[i];
        int32_t first = s->pos == 0 ? s->tokens[0] : r->kv_tok[(size_t)s->blocks[0] * T];
        f->entries[f->nentries++] = (fg_entry){step, first, s->pos, s->ntokens, s->logits != NULL};
    }
    f->in_step--;
    f->model_ns += fg_now_ns() - ns0;
    pthread_mutex_unlock(&f->mu);
    if (rc == KINFER_OK && fail)
        rc = kinfer_error_set(err, f->fail_step, "fake gen: step %u failed", step + 1);
    return rc;
}

static const sched_model_ops fake_gen_ops = {
    .load = fg_load,
    .destroy = fg_destroy,
    .check_request = fg_check,
    .replica_new = fg_replica_new,
    .replica_destroy = fg_replica_destroy,
    .replica_execute = fg_execute,
    .gen_info = fg_gen_info,
    .gen_tokenize = fg_tokenize,
    .gen_token_bytes = fg_token_bytes,
    .replica_kv_alloc = fg_kv_alloc,
    .replica_step = fg_step,
};

/* What the fake generates greedily after `prompt` (byte tokens, no BOS),
 * n tokens, computed without the engine: the reference for the engine's
 * outputs. */
static inline void fake_gen_greedy(const fake_gen_ctx *f, const int32_t *prompt, uint32_t nprompt,
                                   uint32_t n, int32_t *out) {
    int32_t *ctx = malloc((nprompt + n) * sizeof(*ctx));
    float logits[FG_VOCAB];
    memcpy(ctx, prompt, nprompt * sizeof(*ctx));
    uint64_t h = FG_HASH0;
    for (uint32_t q = 0; q < nprompt; q++)
        h = fg_hash_step(h, ctx[q], q);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t last = nprompt + i - 1;
        fake_gen_logits(f, h, last, logits);
        int32_t best = 0;
        for (int32_t v = 1; v < FG_VOCAB; v++)
            if (logits[v] > logits[best])
                best = v;
        out[i] = best;
        ctx[nprompt + i] = best;
        h = fg_hash_step(h, best, last + 1);
    }
    free(ctx);
}

#endif
