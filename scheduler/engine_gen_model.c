/* engine_gen_model.c — setting up a generative model and its replicas:
 * the step budget and pool size from the config, the token byte tables
 * the text side reads (so that no step calls into the model per token),
 * each replica's KV pool and step loop arrays. */
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"

/* Reads every token's bytes (special or not) into one arena. */
static kinfer_err token_table(kinfer_engine *engine, sched_model *m, bool special, char **bytes,
                              uint32_t **off, kinfer_error *err) {
    uint32_t v = m->gen->info.vocab_size;
    uint32_t *o = malloc(((size_t)v + 1) * sizeof(*o));
    size_t cap = (size_t)v * 4 + 64, len = 0;
    char *b = malloc(cap);
    if (!o || !b)
        goto nomem;
    for (uint32_t id = 0; id < v; id++) {
        o[id] = (uint32_t)len;
        for (;;) {
            size_t n = engine->ops.gen_token_bytes(engine->ops_ctx, m->handle, (int32_t)id, special,
                                                   b + len, cap - len);
            if (n <= cap - len) {
                len += n;
                break;
            }
            size_t ncap = cap * 2;
            while (ncap - len < n)
                ncap *= 2;
            if (ncap > UINT32_MAX)
                goto toolarge;
            char *nb = realloc(b, ncap);
            if (!nb)
                goto nomem;
            b = nb;
            cap = ncap;
        }
    }
    o[v] = (uint32_t)len;
    *bytes = b;
    *off = o;
    return KINFER_OK;
toolarge:
    free(o);
    free(b);
    return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD, "model '%s': token bytes exceed 4 GiB",
                            m->name);
nomem:
    free(o);
    free(b);
    return kinfer_error_set(err, KINFER_ERR_NOMEM, "model '%s': out of memory", m->name);
}

kinfer_err sched_gen_model_init(kinfer_engine *engine, sched_model *m,
                                const kinfer_model_config *mc, kinfer_error *err) {
    kinfer_gen_info info;
    memset(&info, 0, sizeof(info));
    if (!engine->ops.gen_info || !engine->ops.gen_info(engine->ops_ctx, m->handle, &info))
        return KINFER_OK; /* not generative */
    if (info.vocab_size == 0 || info.context_length < 2 || info.kv_block_tokens == 0 ||
        info.kv_block_bytes == 0 || (info.neog > 0 && !info.eog_ids))
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD,
                                "model '%s': generative model reports vocab %u, context %u, KV "
                                "blocks of %u tokens / %llu bytes",
                                m->name, info.vocab_size, info.context_length, info.kv_block_tokens,
                                (unsigned long long)info.kv_block_bytes);
    uint32_t step_tokens =
        mc->max_batch_tokens ? mc->max_batch_tokens : KINFER_DEFAULT_GEN_STEP_TOKENS;
    if (step_tokens < mc->max_batch_size)
        return kinfer_error_set(err, KINFER_ERR_CONFIG,
                                "model '%s': max_batch_tokens (tokens per step, %u) must be at "
                                "least max_batch_size (sequences per step, %u)",
                                m->name, step_tokens, mc->max_batch_size);
    uint64_t bytes = mc->kv_cache_bytes ? mc->kv_cache_bytes : KINFER_DEFAULT_KV_CACHE_BYTES;
    uint64_t nblocks = bytes / info.kv_block_bytes;
    if (nblocks == 0)
        return kinfer_error_set(err, KINFER_ERR_CONFIG,
                                "model '%s': kv_cache_bytes %llu holds no KV block (a block takes "
                                "%llu bytes: %u tokens)",
                                m->name, (unsigned long long)bytes,
                                (unsigned long long)info.kv_block_bytes, info.kv_block_tokens);
    if (nblocks > UINT32_MAX / 2)
        nblocks = UINT32_MAX / 2;

    gen_model *g = calloc(1, sizeof(*g));
    if (!g)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "model '%s': out of memory", m->name);
    m->gen = g;
    g->info = info;
    if (info.neog > 0) {
        g->eog = malloc(info.neog * sizeof(*g->eog));
        if (!g->eog)
            return kinfer_error_set(err, KINFER_ERR_NOMEM, "model '%s': out of memory", m->name);
        memcpy(g->eog, info.eog_ids, info.neog * sizeof(*g->eog));
    }
    g->info.eog_ids = g->eog;
    g->step_tokens = step_tokens;
    g->max_seqs = mc->max_batch_size;
    g->nblocks = (uint32_t)nblocks;
    g->kv_cache_bytes = bytes;
    /* As vLLM's watermark: 1% of the pool stays free at admission while
     * other sequences run, so that their next decode blocks rarely force a
     * preemption right after an admission. */
    g->reserve = g->nblocks / 100;
    kinfer_err rc = token_table(engine, m, false, &g->text_bytes, &g->text_off, err);
    if (rc == KINFER_OK)
        rc = token_table(engine, m, true, &g->name_bytes, &g->name_off, err);
    return rc;
}

void sched_gen_model_free(sched_model *m) {
    gen_model *g = m->gen;
    if (!g)
        return;
    free(g->eog);
    free(g->text_bytes);
    free(g->text_off);
    free(g->name_bytes);
    free(g->name_off);
    free(g);
    m->gen = NULL;
}

kinfer_err sched_gen_replica_init(kinfer_engine *engine, sched_replica *rep, kinfer_error *err) {
    (void)engine;
    sched_model *m = rep->model;
    gen_model *gm = m->gen;
    gen_replica *g = calloc(1, sizeof(*g));
    if (!g)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "model '%s': out of memory", m->name);
    rep->gen = g;
    size_t n = gm->max_seqs;
    g->running = calloc(n, sizeof(*g->running));
    g->plan = calloc(n, sizeof(*g->plan));
    g->step = calloc(n, sizeof(*g->step));
    g->step_seq = calloc(n, sizeof(*g->step_seq));
    g->logits = malloc(n * gm->info.vocab_size * sizeof(float));
    if (!g->running || !g->plan || !g->step || !g->step_seq || !g->logits ||
        gen_kv_init(&g->kv, gm->nblocks) != 0 ||
        gen_sampler_init(&g->sampler, gm->info.vocab_size) != 0)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "model '%s': out of memory", m->name);
    return KINFER_OK;
}

void sched_gen_replica_free(sched_replica *rep) {
    gen_replica *g = rep->gen;
    if (!g)
        return;
    free(g->running);
    free(g->plan);
    free(g->step);
    free(g->step_seq);
    free(g->logits);
    free(g->lps);
    free(g->lp_tops);
    gen_kv_free(&g->kv);
    gen_sampler_free(&g->sampler);
    free(g);
    rep->gen = NULL;
}
