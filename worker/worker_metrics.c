/* worker_metrics.c — relaxed atomic counters and fixed-bucket histograms,
 * rendered as Prometheus text. Updates are one atomic add each, so the hot
 * path can afford them; rendering reads without a lock (a scrape may see a
 * histogram mid-update, which Prometheus tolerates). The per-partition lag
 * table is the exception: it is replaced wholesale under a mutex, about
 * once a second. */
#include "worker_metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const status_names[KINFER_WORKER_NSTATUS] = {
    "OK",         "INVALID_REQUEST", "MODEL_NOT_FOUND", "DEADLINE_EXCEEDED",
    "OVERLOADED", "INTERNAL_ERROR"};

static const char *const pause_names[KINFER_WORKER_NPAUSE_REASONS] = {
    "congested_model", "in_flight_limit", "produce_backlog"};

const char *kinfer_worker_pause_reason_name(kinfer_worker_pause_reason reason) {
    return (unsigned)reason < KINFER_WORKER_NPAUSE_REASONS ? pause_names[reason] : "?";
}

/* Bucket bounds in µs (rendered in seconds) or in requests. */
static const int64_t lat_bounds[] = {50,     100,     250,     500,     1000,   2500,
                                     5000,   10000,   25000,   50000,   100000, 250000,
                                     500000, 1000000, 2500000, 10000000};
static const int64_t batch_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
/* Deadline slack: le="0" counts batches that started at or after the
 * deadline; the top is the longest default timeout one would configure. */
static const int64_t slack_bounds[] = {0,       1000,     2500,     5000,     10000,    25000,
                                       50000,   100000,   250000,   500000,   1000000,  2500000,
                                       5000000, 10000000, 30000000, 60000000, 300000000};
/* Time to first token: prefill of long prompts takes seconds. */
static const int64_t ttft_bounds[] = {1000,    5000,     10000,    25000,   50000,
                                      100000,  250000,   500000,   1000000, 2500000,
                                      5000000, 10000000, 30000000, 60000000};
#define NB(a) (sizeof(a) / sizeof((a)[0]))
#define HIST_MAX_BOUNDS 20
_Static_assert(NB(lat_bounds) <= HIST_MAX_BOUNDS && NB(batch_bounds) <= HIST_MAX_BOUNDS &&
                   NB(slack_bounds) <= HIST_MAX_BOUNDS && NB(ttft_bounds) <= HIST_MAX_BOUNDS,
               "a histogram has room for every bucket");

typedef struct bounds {
    const int64_t *v;
    size_t n;
} bounds;
#define BOUNDS(a) ((bounds){(a), NB(a)})

typedef struct hist {
    _Atomic uint64_t buckets[HIST_MAX_BOUNDS + 1]; /* non-cumulative; last = +Inf */
    _Atomic uint64_t count;
    _Atomic int64_t sum;
} hist;

typedef struct model_metrics {
    char *name;
    bool generative;
    _Atomic uint64_t replies[KINFER_WORKER_NSTATUS];
    hist batch;
    hist queue_us;
    hist compute_us;
    hist slack_us;
    _Atomic uint64_t late; /* ran and finished after the deadline */
    /* The scheduler's view (set before each render). */
    _Atomic uint64_t queued, queued_rows, in_flight, replicas, replicas_busy;
    _Atomic int congested;
    /* Generative models. */
    _Atomic uint64_t gen_running, kv_used, kv_total;
    _Atomic uint64_t prompt_tokens, completion_tokens, preemptions, generations;
    hist ttft_us;
    hist per_token_us;
} model_metrics;

typedef struct lag_entry {
    char *topic;
    int32_t partition;
    int64_t lag;
} lag_entry;

struct kinfer_worker_metrics {
    model_metrics *models;
    size_t nmodels;
    model_metrics unknown; /* requests naming a model not in the repository */
    hist e2e_us;
    hist callback_us; /* engine completion callbacks */
    _Atomic uint64_t completions[KINFER_WORKER_NSTATUS];
    _Atomic uint64_t consumed, dlq, delivery_failed, abandoned, queue_full, cancelled;
    _Atomic uint64_t registry_ok, registry_failed;
    _Atomic int64_t registry_waiting;
    _Atomic int64_t in_flight, in_flight_bytes, assigned, paused;
    _Atomic int64_t waiting, waiting_bytes, waiting_peak, in_flight_limit, callback_max_us;
    _Atomic int pause_reason;
    _Atomic uint64_t pauses[KINFER_WORKER_NPAUSE_REASONS];
    /* Health gauges: the last verdict (worker_health.h); reasons are static
     * strings (KINFER_HEALTH_*), NULL until a first verdict. */
    _Atomic int ready, live;
    _Atomic(const char *) ready_reason;
    _Atomic(const char *) live_reason;
    /* Consumer lag per assigned partition, replaced as a whole. */
    pthread_mutex_t lag_mu;
    lag_entry *lags;
    size_t nlags;
};

kinfer_err kinfer_worker_metrics_new(const char *const *models, size_t nmodels,
                                     kinfer_worker_metrics **out, kinfer_error *err) {
    kinfer_worker_metrics *m = calloc(1, sizeof *m);
    if (!m)
        goto nomem;
    pthread_mutex_init(&m->lag_mu, NULL);
    m->models = calloc(nmodels ? nmodels : 1, sizeof *m->models);
    if (!m->models)
        goto nomem;
    m->nmodels = nmodels;
    for (size_t i = 0; i < nmodels; i++)
        if (!(m->models[i].name = strdup(models[i])))
            goto nomem;
    *out = m;
    return KINFER_OK;
nomem:
    kinfer_worker_metrics_destroy(m);
    return kinfer_error_set(err, KINFER_ERR_NOMEM, "metrics: out of memory");
}

static void lags_free(lag_entry *lags, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(lags[i].topic);
    free(lags);
}

void kinfer_worker_metrics_destroy(kinfer_worker_metrics *m) {
    if (!m)
        return;
    for (size_t i = 0; m->models && i < m->nmodels; i++)
        free(m->models[i].name);
    free(m->models);
    lags_free(m->lags, m->nlags);
    pthread_mutex_destroy(&m->lag_mu);
    free(m);
}

static model_metrics *model_of(kinfer_worker_metrics *m, int idx) {
    return idx >= 0 && (size_t)idx < m->nmodels ? &m->models[idx] : &m->unknown;
}

/* The model's own metrics, NULL for an unknown model (gauges and the
 * generative series exist only for models of the repository). */
static model_metrics *known_model(kinfer_worker_metrics *m, int idx) {
    return idx >= 0 && (size_t)idx < m->nmodels ? &m->models[idx] : NULL;
}

void kinfer_worker_metrics_set_generative(kinfer_worker_metrics *m, int model_idx) {
    model_metrics *mm = known_model(m, model_idx);
    if (mm)
        mm->generative = true;
}

static void hist_observe(hist *h, bounds b, int64_t v) {
    size_t i = 0;
    while (i < b.n && v > b.v[i])
        i++;
    atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum, v, memory_order_relaxed);
}

static void add(_Atomic uint64_t *c, uint64_t n) {
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static void put(_Atomic uint64_t *g, uint64_t v) {
    atomic_store_explicit(g, v, memory_order_relaxed);
}

void kinfer_worker_metrics_reply(kinfer_worker_metrics *m, int model_idx, int wire_status) {
    if (wire_status < 0 || wire_status >= KINFER_WORKER_NSTATUS)
        wire_status = KINFER_WORKER_NSTATUS - 1;
    add(&model_of(m, model_idx)->replies[wire_status], 1);
}

void kinfer_worker_metrics_batch(kinfer_worker_metrics *m, int model_idx, uint32_t batch_size,
                                 int64_t queue_us, int64_t compute_us) {
    model_metrics *mm = model_of(m, model_idx);
    hist_observe(&mm->batch, BOUNDS(batch_bounds), batch_size);
    hist_observe(&mm->queue_us, BOUNDS(lat_bounds), queue_us);
    hist_observe(&mm->compute_us, BOUNDS(lat_bounds), compute_us);
}

void kinfer_worker_metrics_deadline(kinfer_worker_metrics *m, int model_idx, int64_t slack_us,
                                    int64_t compute_us) {
    model_metrics *mm = model_of(m, model_idx);
    hist_observe(&mm->slack_us, BOUNDS(slack_bounds), slack_us);
    if (slack_us < compute_us)
        add(&mm->late, 1);
}

void kinfer_worker_metrics_e2e(kinfer_worker_metrics *m, int64_t us) {
    hist_observe(&m->e2e_us, BOUNDS(lat_bounds), us);
}

void kinfer_worker_metrics_consumed(kinfer_worker_metrics *m) {
    add(&m->consumed, 1);
}
void kinfer_worker_metrics_dlq(kinfer_worker_metrics *m) {
    add(&m->dlq, 1);
}
void kinfer_worker_metrics_delivery_failed(kinfer_worker_metrics *m) {
    add(&m->delivery_failed, 1);
}
void kinfer_worker_metrics_abandoned(kinfer_worker_metrics *m) {
    add(&m->abandoned, 1);
}
void kinfer_worker_metrics_cancelled(kinfer_worker_metrics *m, size_t n) {
    add(&m->cancelled, n);
}
void kinfer_worker_metrics_registry(kinfer_worker_metrics *m, bool ok) {
    add(ok ? &m->registry_ok : &m->registry_failed, 1);
}
void kinfer_worker_metrics_set_registry_waiting(kinfer_worker_metrics *m, int64_t requests) {
    atomic_store_explicit(&m->registry_waiting, requests, memory_order_relaxed);
}
void kinfer_worker_metrics_set_in_flight(kinfer_worker_metrics *m, int64_t requests,
                                         int64_t bytes) {
    atomic_store_explicit(&m->in_flight, requests, memory_order_relaxed);
    atomic_store_explicit(&m->in_flight_bytes, bytes, memory_order_relaxed);
}
void kinfer_worker_metrics_set_partitions(kinfer_worker_metrics *m, int64_t assigned,
                                          int64_t paused, kinfer_worker_pause_reason reason) {
    atomic_store_explicit(&m->assigned, assigned, memory_order_relaxed);
    atomic_store_explicit(&m->paused, paused, memory_order_relaxed);
    atomic_store_explicit(&m->pause_reason, (int)reason, memory_order_relaxed);
}
void kinfer_worker_metrics_paused(kinfer_worker_metrics *m, kinfer_worker_pause_reason reason,
                                  int64_t n) {
    if ((unsigned)reason < KINFER_WORKER_NPAUSE_REASONS && n > 0)
        add(&m->pauses[reason], (uint64_t)n);
}

void kinfer_worker_metrics_set_model(kinfer_worker_metrics *m, int model_idx,
                                     const kinfer_worker_model_gauges *g) {
    model_metrics *mm = known_model(m, model_idx);
    if (!mm)
        return;
    put(&mm->queued, g->queued);
    put(&mm->queued_rows, g->queued_rows);
    put(&mm->in_flight, g->in_flight);
    put(&mm->replicas, g->replicas);
    put(&mm->replicas_busy, g->replicas_busy);
    atomic_store_explicit(&mm->congested, g->congested ? 1 : 0, memory_order_relaxed);
}

void kinfer_worker_metrics_set_gen(kinfer_worker_metrics *m, int model_idx,
                                   const kinfer_worker_gen_gauges *g) {
    model_metrics *mm = known_model(m, model_idx);
    if (!mm)
        return;
    put(&mm->gen_running, g->running);
    put(&mm->kv_used, g->kv_blocks_used);
    put(&mm->kv_total, g->kv_blocks_total);
}

void kinfer_worker_metrics_gen(kinfer_worker_metrics *m, int model_idx, int64_t ttft_us,
                               int64_t per_token_us, uint32_t prompt_tokens,
                               uint32_t completion_tokens, uint32_t preemptions) {
    model_metrics *mm = known_model(m, model_idx);
    if (!mm)
        return;
    add(&mm->generations, 1);
    add(&mm->prompt_tokens, prompt_tokens);
    add(&mm->completion_tokens, completion_tokens);
    add(&mm->preemptions, preemptions);
    if (ttft_us > 0)
        hist_observe(&mm->ttft_us, BOUNDS(ttft_bounds), ttft_us);
    if (per_token_us > 0)
        hist_observe(&mm->per_token_us, BOUNDS(lat_bounds), per_token_us);
}

kinfer_err kinfer_worker_metrics_set_lags(kinfer_worker_metrics *m, const kinfer_worker_lag *lags,
                                          size_t n, kinfer_error *err) {
    lag_entry *copy = n ? calloc(n, sizeof *copy) : NULL;
    if (n && !copy)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "metrics: out of memory");
    for (size_t i = 0; i < n; i++) {
        if (!(copy[i].topic = strdup(lags[i].topic))) {
            lags_free(copy, i);
            return kinfer_error_set(err, KINFER_ERR_NOMEM, "metrics: out of memory");
        }
        copy[i].partition = lags[i].partition;
        copy[i].lag = lags[i].lag;
    }
    pthread_mutex_lock(&m->lag_mu);
    lag_entry *old = m->lags;
    size_t nold = m->nlags;
    m->lags = copy;
    m->nlags = n;
    pthread_mutex_unlock(&m->lag_mu);
    lags_free(old, nold);
    return KINFER_OK;
}

void kinfer_worker_metrics_set_health(kinfer_worker_metrics *m, int ready, const char *ready_reason,
                                      int live, const char *live_reason) {
    atomic_store(&m->ready, ready);
    atomic_store(&m->ready_reason, ready_reason);
    atomic_store(&m->live, live);
    atomic_store(&m->live_reason, live_reason);
}
int kinfer_worker_metrics_ready(const kinfer_worker_metrics *m) {
    return atomic_load(&((kinfer_worker_metrics *)m)->ready);
}
void kinfer_worker_metrics_completion(kinfer_worker_metrics *m, int wire_status) {
    if (wire_status < 0 || wire_status >= KINFER_WORKER_NSTATUS)
        wire_status = KINFER_WORKER_NSTATUS - 1;
    add(&m->completions[wire_status], 1);
}
void kinfer_worker_metrics_callback(kinfer_worker_metrics *m, int64_t us) {
    hist_observe(&m->callback_us, BOUNDS(lat_bounds), us);
    int64_t max = atomic_load_explicit(&m->callback_max_us, memory_order_relaxed);
    while (us > max &&
           !atomic_compare_exchange_weak_explicit(&m->callback_max_us, &max, us,
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
}
void kinfer_worker_metrics_queue_full(kinfer_worker_metrics *m) {
    add(&m->queue_full, 1);
}
void kinfer_worker_metrics_set_handoff(kinfer_worker_metrics *m, int64_t records, int64_t bytes,
                                       int64_t peak) {
    atomic_store_explicit(&m->waiting, records, memory_order_relaxed);
    atomic_store_explicit(&m->waiting_bytes, bytes, memory_order_relaxed);
    atomic_store_explicit(&m->waiting_peak, peak, memory_order_relaxed);
}
void kinfer_worker_metrics_set_in_flight_limit(kinfer_worker_metrics *m, int64_t requests) {
    atomic_store_explicit(&m->in_flight_limit, requests, memory_order_relaxed);
}
int64_t kinfer_worker_metrics_callback_max_us(const kinfer_worker_metrics *m) {
    return atomic_load(&((kinfer_worker_metrics *)m)->callback_max_us);
}

uint64_t kinfer_worker_metrics_replies(const kinfer_worker_metrics *m, int model_idx,
                                       int wire_status) {
    if (wire_status < 0 || wire_status >= KINFER_WORKER_NSTATUS)
        return 0;
    return atomic_load(&model_of((kinfer_worker_metrics *)m, model_idx)->replies[wire_status]);
}
uint64_t kinfer_worker_metrics_dlq_count(const kinfer_worker_metrics *m) {
    return atomic_load(&((kinfer_worker_metrics *)m)->dlq);
}
uint64_t kinfer_worker_metrics_delivery_failed_count(const kinfer_worker_metrics *m) {
    return atomic_load(&((kinfer_worker_metrics *)m)->delivery_failed);
}

/* ---- rendering ---------------------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t ncap = (b->cap + (size_t)n + 1) * 2;
        char *np = realloc(b->p, ncap);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = ncap;
    }
}

/* Label values are model and topic names; escape per the format. */
static void sb_label(sbuf *b, const char *v) {
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            sb_printf(b, "\\%c", *v);
        else if (*v == '\n')
            sb_printf(b, "\\n");
        else
            sb_printf(b, "%c", *v);
    }
}

static void family(sbuf *b, const char *name, const char *type, const char *help) {
    sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* `name{model="..."} ` (the value follows). */
static void model_sample(sbuf *b, const char *name, const char *model) {
    sb_printf(b, "%s{model=\"", name);
    sb_label(b, model);
    sb_printf(b, "\"} ");
}

static void render_hist(sbuf *b, const char *name, const char *model, const hist *h, bounds bd,
                        double scale) {
    uint64_t cum = 0;
    for (size_t i = 0; i <= bd.n; i++) {
        cum += atomic_load_explicit(&((hist *)h)->buckets[i], memory_order_relaxed);
        sb_printf(b, "%s_bucket{", name);
        if (model) {
            sb_printf(b, "model=\"");
            sb_label(b, model);
            sb_printf(b, "\",");
        }
        if (i < bd.n)
            sb_printf(b, "le=\"%g\"} %llu\n", (double)bd.v[i] * scale, (unsigned long long)cum);
        else
            sb_printf(b, "le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    }
    const char *open = model ? "{model=\"" : "";
    for (int k = 0; k < 2; k++) {
        sb_printf(b, "%s_%s%s", name, k ? "count" : "sum", open);
        if (model) {
            sb_label(b, model);
            sb_printf(b, "\"}");
        }
        if (k)
            sb_printf(b, " %llu\n", (unsigned long long)atomic_load(&((hist *)h)->count));
        else
            sb_printf(b, " %g\n", (double)atomic_load(&((hist *)h)->sum) * scale);
    }
}

static uint64_t get(const _Atomic uint64_t *v) {
    return atomic_load_explicit((_Atomic uint64_t *)v, memory_order_relaxed);
}

static void render_requests(sbuf *b, kinfer_worker_metrics *m) {
    family(b, "kinfer_requests_total", "counter", "Replies produced, by model and status.");
    for (size_t i = 0; i <= m->nmodels; i++) {
        model_metrics *mm = i < m->nmodels ? &m->models[i] : &m->unknown;
        const char *name = i < m->nmodels ? mm->name : "_unknown";
        for (int s = 0; s < KINFER_WORKER_NSTATUS; s++) {
            uint64_t v = get(&mm->replies[s]);
            if (!v && i == m->nmodels)
                continue;
            sb_printf(b, "kinfer_requests_total{model=\"");
            sb_label(b, name);
            sb_printf(b, "\",status=\"%s\"} %llu\n", status_names[s], (unsigned long long)v);
        }
    }
}

static void render_model_hists(sbuf *b, kinfer_worker_metrics *m) {
    static const struct {
        const char *name, *help;
        size_t off;
        int kind; /* 0 batch sizes, 1 latency, 2 slack */
    } hs[] = {
        {"kinfer_batch_size", "Requests in the batch each request ran in.",
         offsetof(model_metrics, batch), 0},
        {"kinfer_queue_seconds", "Time from submit to batch start.",
         offsetof(model_metrics, queue_us), 1},
        {"kinfer_compute_seconds", "Batch run time.", offsetof(model_metrics, compute_us), 1},
        {"kinfer_deadline_slack_seconds",
         "Time left until the request's deadline when its batch started (le=0: started at "
         "or after it).",
         offsetof(model_metrics, slack_us), 2},
    };
    for (size_t k = 0; k < NB(hs); k++) {
        family(b, hs[k].name, "histogram", hs[k].help);
        for (size_t i = 0; i < m->nmodels; i++) {
            const hist *h = (const hist *)((const char *)&m->models[i] + hs[k].off);
            if (hs[k].kind == 0)
                render_hist(b, hs[k].name, m->models[i].name, h, BOUNDS(batch_bounds), 1);
            else
                render_hist(b, hs[k].name, m->models[i].name, h,
                            hs[k].kind == 1 ? BOUNDS(lat_bounds) : BOUNDS(slack_bounds), 1e-6);
        }
    }
}

/* Per-model series read from a uint64 field of model_metrics. */
typedef struct model_series {
    const char *name, *type, *help;
    size_t off;
} model_series;

static void render_model_series(sbuf *b, kinfer_worker_metrics *m, const model_series *s, size_t n,
                                bool generative_only) {
    for (size_t k = 0; k < n; k++) {
        family(b, s[k].name, s[k].type, s[k].help);
        for (size_t i = 0; i < m->nmodels; i++) {
            if (generative_only && !m->models[i].generative)
                continue;
            const _Atomic uint64_t *v =
                (const _Atomic uint64_t *)((const char *)&m->models[i] + s[k].off);
            model_sample(b, s[k].name, m->models[i].name);
            sb_printf(b, "%llu\n", (unsigned long long)get(v));
        }
    }
}

static void render_models(sbuf *b, kinfer_worker_metrics *m) {
    static const model_series series[] = {
        {"kinfer_deadline_late_total", "counter",
         "Requests that ran but finished after their deadline.", offsetof(model_metrics, late)},
        {"kinfer_model_queue_depth", "gauge", "Requests waiting for a batch, per model.",
         offsetof(model_metrics, queued)},
        {"kinfer_model_queue_rows", "gauge", "Rows of the requests waiting for a batch.",
         offsetof(model_metrics, queued_rows)},
        {"kinfer_model_in_flight_requests", "gauge",
         "Requests the engine accepted and has not completed (queued or running).",
         offsetof(model_metrics, in_flight)},
        {"kinfer_model_replicas", "gauge", "Replicas of the model (one executor each).",
         offsetof(model_metrics, replicas)},
        {"kinfer_model_replicas_busy", "gauge", "Replicas running a batch now.",
         offsetof(model_metrics, replicas_busy)},
    };
    render_model_series(b, m, series, NB(series), false);
    family(b, "kinfer_model_congested", "gauge",
           "1 while the model's queue is over max_queue (the partitions feeding it pause) "
           "and not yet back at the low watermark.");
    for (size_t i = 0; i < m->nmodels; i++) {
        model_sample(b, "kinfer_model_congested", m->models[i].name);
        sb_printf(b, "%d\n", atomic_load(&m->models[i].congested));
    }
}

/* The kind llm's series; only generative models have samples (the
 * families are always there, so dashboards and rules can name them). */
static void render_llm(sbuf *b, kinfer_worker_metrics *m) {
    static const model_series series[] = {
        {"kinfer_llm_running_sequences", "gauge",
         "Sequences admitted to a replica's step loop (continuous batching).",
         offsetof(model_metrics, gen_running)},
        {"kinfer_llm_kv_cache_used_blocks", "gauge",
         "Paged KV-cache blocks in use, over the model's replicas.",
         offsetof(model_metrics, kv_used)},
        {"kinfer_llm_kv_cache_blocks", "gauge",
         "Paged KV-cache blocks in the pools, over the model's replicas.",
         offsetof(model_metrics, kv_total)},
        {"kinfer_llm_generations_total", "counter", "Finished generations.",
         offsetof(model_metrics, generations)},
        {"kinfer_llm_prompt_tokens_total", "counter", "Prompt tokens of finished generations.",
         offsetof(model_metrics, prompt_tokens)},
        {"kinfer_llm_generated_tokens_total", "counter",
         "Tokens generated by finished generations (rate() is tokens per second).",
         offsetof(model_metrics, completion_tokens)},
        {"kinfer_llm_preemptions_total", "counter",
         "Times a sequence's KV cache was dropped (to be recomputed) for lack of blocks.",
         offsetof(model_metrics, preemptions)},
    };
    render_model_series(b, m, series, NB(series), true);
    static const struct {
        const char *name, *help;
        size_t off;
        int ttft;
    } hs[] = {
        {"kinfer_llm_time_to_first_token_seconds", "Submit to the first sampled token.",
         offsetof(model_metrics, ttft_us), 1},
        {"kinfer_llm_time_per_output_token_seconds",
         "Mean gap between a generation's tokens after the first.",
         offsetof(model_metrics, per_token_us), 0},
    };
    for (size_t k = 0; k < NB(hs); k++) {
        family(b, hs[k].name, "histogram", hs[k].help);
        for (size_t i = 0; i < m->nmodels; i++)
            if (m->models[i].generative)
                render_hist(b, hs[k].name, m->models[i].name,
                            (const hist *)((const char *)&m->models[i] + hs[k].off),
                            hs[k].ttft ? BOUNDS(ttft_bounds) : BOUNDS(lat_bounds), 1e-6);
    }
}

static void render_worker(sbuf *b, kinfer_worker_metrics *m) {
    family(b, "kinfer_worker_latency_seconds", "histogram", "Consumed to reply acknowledged.");
    render_hist(b, "kinfer_worker_latency_seconds", NULL, &m->e2e_us, BOUNDS(lat_bounds), 1e-6);
    family(b, "kinfer_engine_callback_seconds", "histogram",
           "Time an engine thread spent in one completion callback (encode and hand-off).");
    render_hist(b, "kinfer_engine_callback_seconds", NULL, &m->callback_us, BOUNDS(lat_bounds),
                1e-6);
    family(b, "kinfer_engine_callback_max_seconds", "gauge",
           "Longest engine completion callback since start.");
    sb_printf(b, "kinfer_engine_callback_max_seconds %g\n",
              (double)atomic_load(&m->callback_max_us) * 1e-6);
    family(b, "kinfer_engine_completions_total", "counter",
           "Engine completions handed to the produce path, by status (before delivery).");
    for (int s = 0; s < KINFER_WORKER_NSTATUS; s++)
        sb_printf(b, "kinfer_engine_completions_total{status=\"%s\"} %llu\n", status_names[s],
                  (unsigned long long)get(&m->completions[s]));
    static const struct {
        const char *name, *help;
        size_t off;
    } counters[] = {
        {"kinfer_consumed_total", "Request messages consumed.",
         offsetof(kinfer_worker_metrics, consumed)},
        {"kinfer_dead_letters_total", "Messages sent to a dead-letter topic.",
         offsetof(kinfer_worker_metrics, dlq)},
        {"kinfer_delivery_failures_total",
         "Replies or dead letters whose delivery finally failed (offset left uncommitted).",
         offsetof(kinfer_worker_metrics, delivery_failed)},
        {"kinfer_abandoned_total", "Requests abandoned at shutdown (left for redelivery).",
         offsetof(kinfer_worker_metrics, abandoned)},
        {"kinfer_generations_cancelled_total",
         "Generations in flight that a cancel record ended (they reply with finish_reason "
         "cancelled).",
         offsetof(kinfer_worker_metrics, cancelled)},
        {"kinfer_produce_queue_full_total",
         "Records librdkafka refused for now (queue full); they waited in the hand-off.",
         offsetof(kinfer_worker_metrics, queue_full)},
        {"kinfer_schema_registry_requests_total",
         "Schema Registry requests answered (a writer schema fetched or a reply subject "
         "registered).",
         offsetof(kinfer_worker_metrics, registry_ok)},
        {"kinfer_schema_registry_failures_total",
         "Schema Registry requests that failed (unknown id, refused, unreachable, timed out, "
         "or a writer schema that does not resolve); their requests are dead-lettered.",
         offsetof(kinfer_worker_metrics, registry_failed)},
    };
    for (size_t k = 0; k < NB(counters); k++) {
        family(b, counters[k].name, "counter", counters[k].help);
        sb_printf(
            b, "%s %llu\n", counters[k].name,
            (unsigned long long)get((const _Atomic uint64_t *)((const char *)m + counters[k].off)));
    }
    static const struct {
        const char *name, *help;
        size_t off;
    } gauges[] = {
        {"kinfer_in_flight_requests", "Consumed requests not yet acknowledged.",
         offsetof(kinfer_worker_metrics, in_flight)},
        {"kinfer_in_flight_bytes", "Bytes of consumed requests not yet acknowledged.",
         offsetof(kinfer_worker_metrics, in_flight_bytes)},
        {"kinfer_assigned_partitions", "Request partitions assigned to this worker.",
         offsetof(kinfer_worker_metrics, assigned)},
        {"kinfer_in_flight_limit_requests",
         "The in-flight window: input pauses at it, and it bounds the produce hand-off.",
         offsetof(kinfer_worker_metrics, in_flight_limit)},
        {"kinfer_produce_waiting_records",
         "Finished records waiting in the hand-off for the producer thread.",
         offsetof(kinfer_worker_metrics, waiting)},
        {"kinfer_produce_waiting_bytes", "Bytes of those records beyond their requests.",
         offsetof(kinfer_worker_metrics, waiting_bytes)},
        {"kinfer_produce_waiting_peak_records",
         "Most records ever waiting in the hand-off at once.",
         offsetof(kinfer_worker_metrics, waiting_peak)},
        {"kinfer_schema_registry_waiting_requests",
         "Requests set aside until the Schema Registry answers for their schema id or reply "
         "subject.",
         offsetof(kinfer_worker_metrics, registry_waiting)},
    };
    for (size_t k = 0; k < NB(gauges); k++) {
        _Atomic int64_t *v = (_Atomic int64_t *)((char *)m + gauges[k].off);
        family(b, gauges[k].name, "gauge", gauges[k].help);
        sb_printf(b, "%s %lld\n", gauges[k].name, (long long)atomic_load(v));
    }
    family(b, "kinfer_paused_partitions", "gauge",
           "Assigned partitions paused by backpressure, by reason (congested_model: a model "
           "they feed is over max_queue; in_flight_limit: the worker holds its limit of "
           "unacknowledged requests; produce_backlog: the same, mostly answered replies "
           "waiting for the producer).");
    int64_t paused = atomic_load(&m->paused);
    int reason = atomic_load(&m->pause_reason);
    for (int r = 0; r < KINFER_WORKER_NPAUSE_REASONS; r++)
        sb_printf(b, "kinfer_paused_partitions{reason=\"%s\"} %lld\n", pause_names[r],
                  (long long)(r == reason ? paused : 0));
    family(b, "kinfer_partition_pauses_total", "counter",
           "Partitions paused by backpressure, by reason.");
    for (int r = 0; r < KINFER_WORKER_NPAUSE_REASONS; r++)
        sb_printf(b, "kinfer_partition_pauses_total{reason=\"%s\"} %llu\n", pause_names[r],
                  (unsigned long long)get(&m->pauses[r]));
}

static void render_lags(sbuf *b, kinfer_worker_metrics *m) {
    family(b, "kinfer_consumer_lag", "gauge",
           "Messages of an assigned request partition past the group's committed offset "
           "(from librdkafka's statistics, refreshed about once a second).");
    pthread_mutex_lock(&m->lag_mu);
    for (size_t i = 0; i < m->nlags; i++) {
        sb_printf(b, "kinfer_consumer_lag{topic=\"");
        sb_label(b, m->lags[i].topic);
        sb_printf(b, "\",partition=\"%d\"} %lld\n", (int)m->lags[i].partition,
                  (long long)m->lags[i].lag);
    }
    pthread_mutex_unlock(&m->lag_mu);
}

static void render_health(sbuf *b, kinfer_worker_metrics *m) {
    const char *rr = atomic_load(&m->ready_reason), *lr = atomic_load(&m->live_reason);
    if (!rr || !lr)
        return; /* no verdict yet: no series rather than a made-up reason */
    family(b, "kinfer_ready", "gauge",
           "1 when /readyz answers 200; reason says why not (ok when ready).");
    sb_printf(b, "kinfer_ready{reason=\"%s\"} %d\n", rr, atomic_load(&m->ready));
    family(b, "kinfer_live", "gauge",
           "1 when /healthz answers 200; reason says why not (ok when live).");
    sb_printf(b, "kinfer_live{reason=\"%s\"} %d\n", lr, atomic_load(&m->live));
}

kinfer_err kinfer_worker_metrics_render(const kinfer_worker_metrics *mc, const char *worker_id,
                                        char **out, size_t *len, kinfer_error *err) {
    kinfer_worker_metrics *m = (kinfer_worker_metrics *)mc;
    sbuf b = {0};
    family(&b, "kinfer_info", "gauge", "Worker identity.");
    sb_printf(&b, "kinfer_info{worker=\"");
    sb_label(&b, worker_id ? worker_id : "");
    sb_printf(&b, "\"} 1\n");
    render_requests(&b, m);
    render_model_hists(&b, m);
    render_models(&b, m);
    render_llm(&b, m);
    render_worker(&b, m);
    render_lags(&b, m);
    render_health(&b, m);
    if (b.oom) {
        free(b.p);
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "metrics: out of memory");
    }
    *out = b.p;
    *len = b.len;
    return KINFER_OK;
}
