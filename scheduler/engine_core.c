/* engine_core.c — engine lifetime and the request entry point: building the
 * engine from its config (models, replicas, device fallback, threads),
 * submit's checks and admission, shutdown/destroy, counters. The batching
 * decisions are in engine_dispatch.c and sched_policy.c; threads and
 * completions in engine_exec.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"
#include "kinfer/kinfer_log.h"

static int64_t engine_now(const kinfer_engine *engine) {
    return engine->clock.now_us(engine->clock.ctx);
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

/* ---- construction -------------------------------------------------------- */

/* Sanity bounds that also keep the µs arithmetic far from overflow. */
#define MAX_TIMEOUT_MS (30LL * 86400 * 1000)
#define MAX_DELAY_US (3600LL * 1000000)

static kinfer_err check_config(const kinfer_engine_config *cfg, kinfer_error *err) {
    if (!cfg->on_complete)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "engine: on_complete is required");
    if (cfg->nmodels == 0 || !cfg->models)
        return kinfer_error_set(err, KINFER_ERR_CONFIG, "engine: no models configured");
    for (size_t i = 0; i < cfg->nmodels; i++) {
        const kinfer_model_config *mc = &cfg->models[i];
        if (!mc->name || !*mc->name)
            return kinfer_error_set(err, KINFER_ERR_CONFIG, "engine: model %zu has no name", i);
        for (size_t j = 0; j < i; j++)
            if (strcmp(cfg->models[j].name, mc->name) == 0)
                return kinfer_error_set(err, KINFER_ERR_CONFIG,
                                        "engine: model '%s' is configured twice", mc->name);
        if (mc->max_batch_size == 0)
            return kinfer_error_set(err, KINFER_ERR_CONFIG,
                                    "model '%s': max_batch_size must be at least 1", mc->name);
        if (mc->ndevices < 0 || mc->ndevices > KINFER_MAX_DEVICES)
            return kinfer_error_set(err, KINFER_ERR_CONFIG,
                                    "model '%s': %d devices (1..%d allowed)", mc->name,
                                    mc->ndevices, KINFER_MAX_DEVICES);
        for (int d = 0; d < mc->ndevices; d++)
            if (!mc->devices[d] || !*mc->devices[d] ||
                strlen(mc->devices[d]) >= SCHED_DEVICE_NAME_MAX)
                return kinfer_error_set(err, KINFER_ERR_CONFIG,
                                        "model '%s': device %d is empty or too long", mc->name, d);
        if (mc->replicas_per_device < 0)
            return kinfer_error_set(err, KINFER_ERR_CONFIG,
                                    "model '%s': replicas_per_device must be at least 1", mc->name);
        if (mc->max_queue_delay_us < 0 || mc->default_timeout_ms < 0)
            return kinfer_error_set(err, KINFER_ERR_CONFIG,
                                    "model '%s': max_queue_delay_us and default_timeout_ms must "
                                    "not be negative",
                                    mc->name);
        if (mc->bulk_slice_us < 0 || mc->bulk_slice_us > MAX_DELAY_US || mc->bulk_idle_ms < 0 ||
            mc->bulk_idle_ms > MAX_TIMEOUT_MS)
            return kinfer_error_set(err, KINFER_ERR_CONFIG,
                                    "model '%s': bulk_slice_us must be 0 to %lld (1 hour) and "
                                    "bulk_idle_ms 0 to %lld (30 days)",
                                    mc->name, (long long)MAX_DELAY_US, (long long)MAX_TIMEOUT_MS);
        if (mc->default_timeout_ms > MAX_TIMEOUT_MS || mc->max_queue_delay_us > MAX_DELAY_US)
            return kinfer_error_set(err, KINFER_ERR_CONFIG,
                                    "model '%s': default_timeout_ms at most %lld (30 days), "
                                    "max_queue_delay_us at most %lld (1 hour)",
                                    mc->name, (long long)MAX_TIMEOUT_MS, (long long)MAX_DELAY_US);
        if (mc->max_queue > 0 && mc->queue_low_watermark >= mc->max_queue)
            return kinfer_error_set(err, KINFER_ERR_CONFIG,
                                    "model '%s': queue_low_watermark (%u) must be below max_queue "
                                    "(%u)",
                                    mc->name, mc->queue_low_watermark, mc->max_queue);
    }
    return KINFER_OK;
}

static void replica_free(sched_replica *rep) {
    if (!rep)
        return;
    free(rep->reqs);
    for (int k = 0; k < SCHED_MAX_IN_FLIGHT; k++) {
        free(rep->flight[k].reqs);
        free(rep->flight[k].items);
    }
    free(rep);
}

/* Batches the replica may have in flight: what the model says, within
 * 1..SCHED_MAX_IN_FLIGHT; 1 without the pipelined ops. */
static uint32_t replica_max_in_flight(const kinfer_engine *engine, const void *handle) {
    if (!engine->ops.replica_submit)
        return 1;
    uint32_t n = engine->ops.replica_max_in_flight(engine->ops_ctx, handle);
    return n < 1 ? 1 : n > SCHED_MAX_IN_FLIGHT ? SCHED_MAX_IN_FLIGHT : n;
}

static kinfer_err add_replica(kinfer_engine *engine, sched_model *m, const char *device,
                              void *handle, kinfer_error *err) {
    sched_replica *rep = calloc(1, sizeof(*rep));
    sched_replica **grown = realloc(m->replicas, (m->nreplicas + 1) * sizeof(*grown));
    if (grown)
        m->replicas = grown;
    bool ok = rep != NULL;
    if (rep) {
        /* The assigned batch's array plus one per batch in flight: taking a
         * batch swaps arrays, so one is always free for the next. */
        rep->max_in_flight = replica_max_in_flight(engine, handle);
        rep->reqs = calloc(m->max_batch_size, sizeof(*rep->reqs));
        ok = rep->reqs != NULL;
        for (uint32_t k = 0; k < rep->max_in_flight; k++) {
            rep->flight[k].reqs = calloc(m->max_batch_size, sizeof(*rep->flight[k].reqs));
            rep->flight[k].items = calloc(m->max_batch_size, sizeof(*rep->flight[k].items));
            ok = ok && rep->flight[k].reqs && rep->flight[k].items;
        }
    }
    if (!ok || !grown) {
        replica_free(rep);
        engine->ops.replica_destroy(engine->ops_ctx, handle);
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "model '%s': out of memory", m->name);
    }
    rep->engine = engine;
    rep->model = m;
    rep->handle = handle;
    atomic_init(&rep->inside_since, INT64_MIN);
    snprintf(rep->device, sizeof(rep->device), "%s", device);
    pthread_cond_init(&rep->work_cond, NULL);
    m->replicas[m->nreplicas++] = rep;
    engine->nreplicas_total++;
    return KINFER_OK;
}

/* Places the model on its devices in order. A device that fails with
 * KINFER_ERR_DEVICE is skipped (and logged) when the list also names "cpu",
 * so a GPU-less host still serves; any other failure is fatal. */
static kinfer_err place_model(kinfer_engine *engine, const kinfer_model_config *mc, sched_model *m,
                              kinfer_error *err) {
    static const char *const cpu_only[] = {"cpu"};
    const char *const *devices = mc->ndevices ? mc->devices : cpu_only;
    int ndevices = mc->ndevices ? mc->ndevices : 1;
    int per_device = mc->replicas_per_device > 0 ? mc->replicas_per_device : 1;
    bool names_cpu = false;
    for (int d = 0; d < ndevices; d++)
        names_cpu |= strcmp(devices[d], "cpu") == 0;
    for (int d = 0; d < ndevices; d++) {
        for (int k = 0; k < per_device; k++) {
            void *handle = NULL;
            kinfer_error rerr;
            kinfer_error_clear(&rerr);
            /* A generative replica's rows are the tokens of one step. */
            uint32_t max_rows = m->gen ? m->gen->step_tokens : m->max_batch_size;
            kinfer_err rc = engine->ops.replica_new(engine->ops_ctx, m->handle, devices[d],
                                                    max_rows, &handle, &rerr);
            if (rc == KINFER_OK && m->gen) {
                rc = engine->ops.replica_kv_alloc(engine->ops_ctx, handle, m->gen->nblocks, &rerr);
                if (rc != KINFER_OK) {
                    engine->ops.replica_destroy(engine->ops_ctx, handle);
                    kinfer_error_prefix(&rerr, "KV pool of %u blocks", m->gen->nblocks);
                }
            }
            if (rc == KINFER_OK) {
                rc = add_replica(engine, m, devices[d], handle, err);
                if (rc == KINFER_OK && m->gen)
                    rc = sched_gen_replica_init(engine, m->replicas[m->nreplicas - 1], err);
                if (rc != KINFER_OK)
                    return rc;
                continue;
            }
            if (rc == KINFER_ERR_DEVICE && names_cpu && strcmp(devices[d], "cpu") != 0) {
                KINFER_LOGW("engine.device_fallback", "model=%s device=%s replica=%d error=\"%s\"",
                            m->name, devices[d], k, rerr.msg);
                break; /* the rest of this device would fail alike */
            }
            kinfer_error_set(err, rc, "model '%s' on device '%s': %s", m->name, devices[d],
                             rerr.msg[0] ? rerr.msg : kinfer_err2str(rc));
            return rc;
        }
    }
    if (m->nreplicas == 0)
        return kinfer_error_set(err, KINFER_ERR_DEVICE,
                                "model '%s': no device could hold a replica (last tried '%s')",
                                m->name, devices[ndevices - 1]);
    return KINFER_OK;
}

static kinfer_err build_model(kinfer_engine *engine, const kinfer_engine_config *cfg,
                              const kinfer_model_config *mc, sched_model *m, kinfer_error *err) {
    m->name = dup_str(mc->name);
    m->version = mc->version ? dup_str(mc->version) : NULL;
    if (!m->name || (mc->version && !m->version))
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "model '%s': out of memory", mc->name);
    m->name_len = strlen(m->name);
    m->max_batch_size = mc->max_batch_size;
    m->max_batch_tokens = mc->max_batch_tokens;
    m->max_queue_delay_us = mc->max_queue_delay_us;
    m->default_timeout_ms = mc->default_timeout_ms;
    m->max_queue = mc->max_queue;
    m->low_watermark = mc->queue_low_watermark ? mc->queue_low_watermark : mc->max_queue / 2;
    m->max_queue_hard = mc->max_queue_hard;
    m->bulk_slice_us = mc->bulk_slice_us > 0 ? mc->bulk_slice_us : KINFER_DEFAULT_BULK_SLICE_US;
    m->bulk_idle_us =
        (mc->bulk_idle_ms > 0 ? mc->bulk_idle_ms : KINFER_DEFAULT_BULK_IDLE_MS) * (int64_t)1000;
    m->last_online_us = INT64_MIN;
    m->online_gap_us = -1;
    sched_queue_init(&m->queue);
    sched_latency_init(&m->latency, engine->opts.latency_prior_us);
    m->group_window = sched_group_window(m->max_batch_size);
    m->group_reqs = calloc(m->group_window, sizeof(*m->group_reqs));
    m->group_frontier = calloc(m->group_window + 1, sizeof(*m->group_frontier));
    m->group_cands = calloc(m->group_window, sizeof(*m->group_cands));
    if (!m->group_reqs || !m->group_frontier || !m->group_cands)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "model '%s': out of memory", m->name);

    kinfer_model_options load = mc->load;
    if (!load.name)
        load.name = mc->name;
    if (load.cpu_threads == 0)
        load.cpu_threads = cfg->cpu_threads;
    kinfer_error lerr;
    kinfer_error_clear(&lerr);
    kinfer_err rc = engine->ops.load(engine->ops_ctx, &load, &m->handle, &lerr);
    if (rc != KINFER_OK) {
        m->handle = NULL;
        kinfer_error_set(err, rc, "model '%s': %s", m->name,
                         lerr.msg[0] ? lerr.msg : kinfer_err2str(rc));
        return rc;
    }
    rc = sched_gen_model_init(engine, m, mc, err);
    if (rc != KINFER_OK)
        return rc;
    rc = place_model(engine, mc, m, err);
    if (rc != KINFER_OK)
        return rc;
    const char *desc = engine->ops.describe ? engine->ops.describe(engine->ops_ctx, m->handle) : "";
    KINFER_LOGI("engine.model_loaded",
                "model=%s version=%s replicas=%zu first_device=%s max_batch_size=%u desc=\"%s\"",
                m->name, m->version ? m->version : "-", m->nreplicas, m->replicas[0]->device,
                m->max_batch_size, desc ? desc : "");
    return KINFER_OK;
}

static void free_engine(kinfer_engine *engine) {
    for (size_t i = 0; i < engine->nmodels; i++) {
        sched_model *m = &engine->models[i];
        for (size_t k = 0; k < m->nreplicas; k++) {
            sched_replica *rep = m->replicas[k];
            engine->ops.replica_destroy(engine->ops_ctx, rep->handle);
            pthread_cond_destroy(&rep->work_cond);
            sched_gen_replica_free(rep);
            replica_free(rep);
        }
        free(m->replicas);
        sched_gen_model_free(m);
        if (m->handle)
            engine->ops.destroy(engine->ops_ctx, m->handle);
        sched_queue_free(&m->queue);
        free(m->group_reqs);
        free(m->group_frontier);
        free(m->group_cands);
        free(m->name);
        free(m->version);
    }
    free(engine->models);
    free(engine->ready_scratch);
    pthread_cond_destroy(&engine->sched_cond);
    pthread_cond_destroy(&engine->done_cond);
    pthread_mutex_destroy(&engine->mu);
    free(engine);
}

static kinfer_err start_threads(kinfer_engine *engine, kinfer_error *err) {
    for (size_t i = 0; i < engine->nmodels; i++) {
        sched_model *m = &engine->models[i];
        for (size_t k = 0; k < m->nreplicas; k++) {
            sched_replica *rep = m->replicas[k];
            if (pthread_create(&rep->thread, NULL,
                               rep->gen ? sched_gen_thread : sched_replica_thread, rep) != 0)
                return kinfer_error_set(err, KINFER_ERR_INTERNAL,
                                        "model '%s': cannot start an executor thread", m->name);
            rep->thread_started = true;
        }
    }
    if (pthread_create(&engine->sched_thread, NULL, sched_scheduler_thread, engine) != 0)
        return kinfer_error_set(err, KINFER_ERR_INTERNAL,
                                "engine: cannot start the scheduler thread");
    engine->sched_started = true;
    return KINFER_OK;
}

static void stop_threads(kinfer_engine *engine) {
    pthread_mutex_lock(&engine->mu);
    engine->stop_threads = true;
    pthread_cond_broadcast(&engine->sched_cond);
    for (size_t i = 0; i < engine->nmodels; i++)
        for (size_t k = 0; k < engine->models[i].nreplicas; k++)
            pthread_cond_broadcast(&engine->models[i].replicas[k]->work_cond);
    pthread_mutex_unlock(&engine->mu);
    if (engine->sched_started)
        pthread_join(engine->sched_thread, NULL);
    engine->sched_started = false;
    for (size_t i = 0; i < engine->nmodels; i++)
        for (size_t k = 0; k < engine->models[i].nreplicas; k++) {
            sched_replica *rep = engine->models[i].replicas[k];
            if (rep->thread_started)
                pthread_join(rep->thread, NULL);
            rep->thread_started = false;
        }
}

kinfer_err kinfer_engine_new_with_ops(const kinfer_engine_config *cfg, const sched_model_ops *ops,
                                      void *ops_ctx, const sched_engine_options *opts,
                                      kinfer_engine **out, kinfer_error *err) {
    if (!cfg || !ops || !out)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "engine: NULL argument");
    *out = NULL;
    bool pipelined = ops->replica_submit != NULL;
    if (pipelined != (ops->replica_collect != NULL) ||
        pipelined != (ops->replica_max_in_flight != NULL) || (!pipelined && !ops->replica_execute))
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "engine: model ops need replica_execute, or replica_submit, "
                                "replica_collect and replica_max_in_flight together");
    int ngen = !!ops->gen_info + !!ops->gen_tokenize + !!ops->gen_token_bytes +
               !!ops->replica_kv_alloc + !!ops->replica_step;
    if (ngen != 0 && ngen != 5)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "engine: the generative model ops come all five or none");
    kinfer_err rc = check_config(cfg, err);
    if (rc != KINFER_OK)
        return rc;
    kinfer_engine *engine = calloc(1, sizeof(*engine));
    if (!engine)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "engine: out of memory");
    engine->ops = *ops;
    engine->ops_ctx = ops_ctx;
    if (opts)
        engine->opts = *opts;
    if (!opts || opts->deadline_margin_us < 0)
        engine->opts.deadline_margin_us = SCHED_DEFAULT_MARGIN_US;
    if (engine->opts.latency_prior_us <= 0)
        engine->opts.latency_prior_us = SCHED_DEFAULT_PRIOR_US;
    engine->clock = cfg->clock.now_us ? cfg->clock : kinfer_clock_system();
    engine->on_complete = cfg->on_complete;
    engine->on_congestion = cfg->on_congestion;
    engine->on_gen_chunk = cfg->on_gen_chunk;
    engine->callback_ctx = cfg->callback_ctx;
    engine->accepting = true;
    engine->sched_wake_at = INT64_MIN;
    sched_latency_init(&engine->wake_lag, 0);
    sched_latency_init(&engine->handoff_lag, 0);
    atomic_init(&engine->in_flight, 0);
    pthread_mutex_init(&engine->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&engine->sched_cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&engine->done_cond, NULL);

    engine->models = calloc(cfg->nmodels, sizeof(*engine->models));
    if (!engine->models) {
        free_engine(engine);
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "engine: out of memory");
    }
    for (size_t i = 0; i < cfg->nmodels; i++) {
        engine->nmodels = i + 1; /* so free_engine cleans the partial one */
        rc = build_model(engine, cfg, &cfg->models[i], &engine->models[i], err);
        if (rc != KINFER_OK) {
            free_engine(engine);
            return rc;
        }
    }
    engine->ready_scratch = calloc(engine->nreplicas_total, sizeof(*engine->ready_scratch));
    if (!engine->ready_scratch) {
        free_engine(engine);
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "engine: out of memory");
    }
    if (!engine->opts.manual) {
        rc = start_threads(engine, err);
        if (rc != KINFER_OK) {
            stop_threads(engine);
            free_engine(engine);
            return rc;
        }
    }
    *out = engine;
    return KINFER_OK;
}

/* ---- requests ------------------------------------------------------------- */

static sched_model *find_model(kinfer_engine *engine, kinfer_str name) {
    for (size_t i = 0; i < engine->nmodels; i++) {
        sched_model *m = &engine->models[i];
        if (m->name_len == name.len && memcmp(m->name, name.ptr, name.len) == 0)
            return m;
    }
    return NULL;
}

/* At most this many bytes of a client-supplied name go into a message. */
#define NAME_MAX_SHOWN 128
#define SHOWN(s)                                                                                   \
    (int)((s).ptr ? ((s).len < NAME_MAX_SHOWN ? (s).len : NAME_MAX_SHOWN) : 0),                    \
        ((s).ptr ? (s).ptr : "")

kinfer_err kinfer_engine_submit(kinfer_engine *engine, const kinfer_engine_request *req,
                                kinfer_error *err) {
    if (!engine || !req || (req->ninputs && !req->inputs) || (req->nparams && !req->params) ||
        (req->model.len && !req->model.ptr) || (req->model_version.len && !req->model_version.ptr))
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "engine: bad submit arguments");
    sched_model *m = find_model(engine, req->model);
    if (!m)
        return kinfer_error_set(err, KINFER_ERR_MODEL_NOT_FOUND, "model '%.*s' is not loaded",
                                SHOWN(req->model));
    if (req->model_version.len > 0 &&
        (!m->version || strlen(m->version) != req->model_version.len ||
         memcmp(m->version, req->model_version.ptr, req->model_version.len) != 0))
        return kinfer_error_set(err, KINFER_ERR_MODEL_NOT_FOUND,
                                "model '%s' has no version '%.*s' (loaded: %s)", m->name,
                                SHOWN(req->model_version), m->version ? m->version : "none");
    if (m->gen)
        return sched_gen_submit(engine, m, req, err);
    if (req->gen)
        return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST,
                                "model '%s' is not generative: it takes input tensors, not a "
                                "prompt",
                                m->name);

    kinfer_request_cost cost = {0, 0, 0};
    kinfer_error cerr;
    kinfer_error_clear(&cerr);
    kinfer_err rc = engine->ops.check_request(engine->ops_ctx, m->handle, req->inputs, req->ninputs,
                                              req->params, req->nparams, &cost, &cerr);
    if (rc != KINFER_OK)
        return kinfer_error_set(err, rc, "model '%s': %s", m->name,
                                cerr.msg[0] ? cerr.msg : kinfer_err2str(rc));
    if (cost.rows == 0)
        return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST, "model '%s': request has no rows",
                                m->name);
    if (cost.rows > m->max_batch_size)
        return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST,
                                "model '%s': request has %u rows, more than max_batch_size %u",
                                m->name, cost.rows, m->max_batch_size);
    /* A text request larger than a whole batch's token budget is refused,
     * not run alone: the budget bounds what one batch may hold (activation
     * memory grows with padded tokens), and a queued request that could
     * never fit a batch would otherwise wait forever. */
    uint64_t own_tokens = cost.max_len ? (uint64_t)cost.rows * cost.max_len : cost.tokens;
    if (m->max_batch_tokens > 0 && own_tokens > m->max_batch_tokens)
        return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST,
                                "model '%s': request has %llu padded tokens (%u rows x %u), "
                                "more than max_batch_tokens %u",
                                m->name, (unsigned long long)own_tokens, cost.rows, cost.max_len,
                                m->max_batch_tokens);

    int64_t now = engine_now(engine);
    bool bulk = req->priority < 0;
    int64_t deadline = SCHED_NO_DEADLINE;
    if (req->deadline_us != 0)
        deadline = req->deadline_us;
    else if (m->default_timeout_ms > 0 && !bulk)
        deadline = now + m->default_timeout_ms * 1000;
    if (deadline <= now)
        return kinfer_error_set(err, KINFER_ERR_DEADLINE_EXCEEDED,
                                "model '%s': deadline passed %lld us before submit", m->name,
                                (long long)(now - deadline));

    sched_req *r = calloc(1, sizeof(*r));
    if (!r)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "engine: out of memory");
    r->inputs = req->inputs;
    r->ninputs = req->ninputs;
    r->params = req->params;
    r->nparams = req->nparams;
    r->token = req->token;
    r->owner = m;
    r->cost = cost;
    r->deadline_us = deadline;
    r->priority = req->priority;
    r->bulk = bulk;
    r->arrival_us = now;

    pthread_mutex_lock(&engine->mu);
    if (!engine->accepting)
        rc = kinfer_error_set(err, KINFER_ERR_SHUTDOWN, "engine is shutting down");
    else if (m->max_queue_hard > 0 && m->queue.len >= m->max_queue_hard) {
        m->rejected_overloaded++;
        rc = kinfer_error_set(err, KINFER_ERR_OVERLOADED,
                              "model '%s': queue is full (%u requests, max_queue_hard)", m->name,
                              m->max_queue_hard);
    } else {
        r->seq = engine->next_seq++;
        bool was_empty = m->queue.len == 0;
        bool was_full = m->queue.rows >= m->max_batch_size ||
                        (m->max_batch_tokens && m->queue.tokens >= m->max_batch_tokens);
        if (sched_queue_push(&m->queue, r) != 0) {
            rc = kinfer_error_set(err, KINFER_ERR_NOMEM, "engine: out of memory");
        } else {
            atomic_fetch_add(&engine->in_flight, 1);
            m->in_flight++;
            if (cost.tokens > 0)
                m->text = true;
            m->accepted++;
            if (!bulk) {
                if (m->last_online_us != INT64_MIN) {
                    int64_t d = now > m->last_online_us ? now - m->last_online_us : 0;
                    m->online_gap_us =
                        m->online_gap_us < 0 ? d : m->online_gap_us + (d - m->online_gap_us) / 8;
                }
                m->last_online_us = now;
            }
            sched_model_watermark(m);
            /* Wake the scheduler only when its next timed event may have
             * moved: a new timer, a batch that just became full, or a new
             * earliest deadline. Under load the queue stays full and every
             * submit would otherwise cost a context switch. */
            bool full = m->queue.rows >= m->max_batch_size ||
                        (m->max_batch_tokens && m->queue.tokens >= m->max_batch_tokens);
            if (was_empty || (full && !was_full) || sched_queue_peek(&m->queue) == r)
                pthread_cond_signal(&engine->sched_cond);
        }
    }
    bool report = m->congested != m->congested_reported;
    pthread_mutex_unlock(&engine->mu);
    if (rc != KINFER_OK) {
        free(r);
        return rc;
    }
    if (report)
        sched_deliver_congestion(engine);
    return KINFER_OK;
}

/* ---- manual driving (tests) ---------------------------------------------------- */

int64_t sched_engine_poll(kinfer_engine *engine) {
    if (!engine->opts.manual)
        return INT64_MAX;
    pthread_mutex_lock(&engine->mu);
    sched_pass_out out = {.ready = engine->ready_scratch, .ready_cap = engine->nreplicas_total};
    int64_t next = sched_engine_pass(engine, engine_now(engine), &out);
    pthread_mutex_unlock(&engine->mu);
    sched_complete_unrun(engine, out.expired, KINFER_ERR_DEADLINE_EXCEEDED,
                         "deadline exceeded while queued");
    sched_complete_unrun(engine, out.aborted, KINFER_ERR_SHUTDOWN,
                         "engine shut down before the request ran");
    sched_deliver_congestion(engine);
    return next;
}

size_t sched_engine_run(kinfer_engine *engine) {
    if (!engine->opts.manual)
        return 0;
    size_t ran = 0;
    for (size_t i = 0; i < engine->nmodels; i++)
        for (size_t k = 0; k < engine->models[i].nreplicas; k++) {
            sched_replica *rep = engine->models[i].replicas[k];
            if (rep->gen) {
                ran += sched_gen_step(rep);
                continue;
            }
            pthread_mutex_lock(&engine->mu);
            bool assigned = rep->nreqs > 0;
            pthread_mutex_unlock(&engine->mu);
            if (assigned)
                ran += sched_replica_run(rep);
        }
    return ran;
}

/* ---- shutdown ------------------------------------------------------------- */

void kinfer_engine_shutdown(kinfer_engine *engine, int64_t drain_timeout_ms) {
    if (!engine)
        return;
    pthread_mutex_lock(&engine->mu);
    if (engine->shutdown_started) {
        while (!engine->shutdown_done)
            pthread_cond_wait(&engine->done_cond, &engine->mu);
        pthread_mutex_unlock(&engine->mu);
        return;
    }
    engine->shutdown_started = true;
    engine->accepting = false;
    engine->draining = true;
    if (drain_timeout_ms < 0)
        drain_timeout_ms = 0;
    if (drain_timeout_ms > 86400000) /* a day; keeps the µs arithmetic far from overflow */
        drain_timeout_ms = 86400000;
    engine->drain_deadline_mono_us = kinfer_mono_us() + drain_timeout_ms * 1000;
    KINFER_LOGI("engine.shutdown", "in_flight=%zu drain_timeout_ms=%lld",
                atomic_load(&engine->in_flight), (long long)drain_timeout_ms);
    if (engine->opts.manual) {
        while (atomic_load(&engine->in_flight) > 0) {
            pthread_mutex_unlock(&engine->mu);
            sched_engine_poll(engine);
            sched_engine_run(engine);
            pthread_mutex_lock(&engine->mu);
        }
    } else {
        pthread_cond_signal(&engine->sched_cond);
        while (atomic_load(&engine->in_flight) > 0)
            pthread_cond_wait(&engine->done_cond, &engine->mu);
    }
    pthread_mutex_unlock(&engine->mu);
    stop_threads(engine);
    sched_deliver_congestion(engine);
    pthread_mutex_lock(&engine->mu);
    engine->shutdown_done = true;
    pthread_cond_broadcast(&engine->done_cond);
    pthread_mutex_unlock(&engine->mu);
}

void kinfer_engine_destroy(kinfer_engine *engine) {
    if (!engine)
        return;
    kinfer_engine_shutdown(engine, 0);
    free_engine(engine);
}

kinfer_err kinfer_engine_cancel(kinfer_engine *engine, const void *token, kinfer_error *err) {
    if (!engine)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "engine: NULL argument");
    return sched_gen_cancel(engine, token, err);
}

size_t kinfer_engine_in_flight(const kinfer_engine *engine) {
    if (!engine)
        return 0;
    return atomic_load((atomic_size_t *)&engine->in_flight);
}

/* ---- stats ---------------------------------------------------------------- */

size_t kinfer_engine_model_count(const kinfer_engine *engine) {
    return engine ? engine->nmodels : 0;
}

kinfer_err kinfer_engine_stats_get(const kinfer_engine *engine, size_t index,
                                   kinfer_engine_stats *out) {
    if (!engine || !out || index >= engine->nmodels)
        return KINFER_ERR_INVALID_ARG;
    kinfer_engine *e = (kinfer_engine *)engine; /* the lock is not part of the value */
    const sched_model *m = &e->models[index];
    pthread_mutex_lock(&e->mu);
    memset(out, 0, sizeof(*out));
    out->name = m->name;
    out->version = m->version;
    out->queued = m->queue.len;
    out->queued_rows = m->queue.rows;
    out->in_flight = m->in_flight;
    out->accepted = m->accepted;
    out->completed_ok = m->completed_ok;
    out->completed_error = m->completed_error;
    out->expired = m->expired;
    out->rejected_overloaded = m->rejected_overloaded;
    out->batches = m->batches;
    out->rows = m->rows;
    out->congested = m->congested;
    out->replicas = m->nreplicas;
    for (size_t k = 0; k < m->nreplicas; k++)
        out->replicas_busy += m->replicas[k]->busy;
    out->latency_samples = sched_latency_samples(&m->latency);
    out->latency_estimate_1_us = sched_latency_estimate(&m->latency, 1);
    /* A text model's estimator counts padded tokens: its "largest batch" is
     * max_batch_tokens when set. */
    uint32_t max_units =
        m->text && m->max_batch_tokens > 0 ? m->max_batch_tokens : m->max_batch_size;
    out->latency_estimate_max_us = sched_latency_estimate(&m->latency, max_units);
    out->dispatch_lag_us = sched_engine_dispatch_lag(e);
    if (m->gen) {
        const gen_model *g = m->gen;
        out->generative = true;
        out->context_length = g->info.context_length;
        out->gen_running = g->running;
        out->gen_prompt_tokens = g->prompt_tokens;
        out->gen_completion_tokens = g->completion_tokens;
        out->gen_preemptions = g->preemptions;
        out->kv_blocks_total = (uint64_t)g->nblocks * m->nreplicas;
        for (size_t k = 0; k < m->nreplicas; k++)
            out->kv_blocks_used += m->replicas[k]->gen->kv_used_shared;
    }
    int64_t now = e->clock.now_us(e->clock.ctx);
    for (size_t k = 0; k < m->nreplicas; k++) {
        int64_t since = atomic_load(&m->replicas[k]->inside_since);
        if (since == INT64_MIN || now - since <= out->running_batch_us)
            continue;
        out->running_batch_us = now - since;
        out->running_batch_estimate_us =
            sched_latency_estimate(&m->latency, atomic_load(&m->replicas[k]->inside_units));
    }
    pthread_mutex_unlock(&e->mu);
    return KINFER_OK;
}
