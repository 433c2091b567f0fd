/* worker_metrics.c — relaxed atomic counters and fixed-bucket histograms,
 * rendered as Prometheus text. Updates are one atomic add each, so the hot
 * path can afford them; rendering reads without a lock (a scrape may see a
 * histogram mid-update, which Prometheus tolerates). */
#include "worker_metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const status_names[KINFER_WORKER_NSTATUS] = {
    "OK",         "INVALID_REQUEST", "MODEL_NOT_FOUND", "DEADLINE_EXCEEDED",
    "OVERLOADED", "INTERNAL_ERROR"};

/* Latency buckets in µs (rendered in seconds), batch-size buckets in requests. */
static const int64_t lat_bounds[] = {50,     100,     250,     500,     1000,   2500,
                                     5000,   10000,   25000,   50000,   100000, 250000,
                                     500000, 1000000, 2500000, 10000000};
#define NLAT (sizeof lat_bounds / sizeof lat_bounds[0])
static const int64_t batch_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
#define NBATCH (sizeof batch_bounds / sizeof batch_bounds[0])

typedef struct hist {
    _Atomic uint64_t buckets[NLAT + 1]; /* non-cumulative; last = +Inf */
    _Atomic uint64_t count;
    _Atomic int64_t sum;
} hist;

typedef struct model_metrics {
    char *name;
    _Atomic uint64_t replies[KINFER_WORKER_NSTATUS];
    hist batch;
    hist queue_us;
    hist compute_us;
} model_metrics;

struct kinfer_worker_metrics {
    model_metrics *models;
    size_t nmodels;
    model_metrics unknown; /* requests naming a model not in the repository */
    hist e2e_us;
    _Atomic uint64_t consumed, dlq, delivery_failed, abandoned;
    _Atomic int64_t in_flight, in_flight_bytes, assigned, paused;
    _Atomic int ready;
};

kinfer_err kinfer_worker_metrics_new(const char *const *models, size_t nmodels,
                                     kinfer_worker_metrics **out, kinfer_error *err) {
    kinfer_worker_metrics *m = calloc(1, sizeof *m);
    if (!m)
        goto nomem;
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

void kinfer_worker_metrics_destroy(kinfer_worker_metrics *m) {
    if (!m)
        return;
    for (size_t i = 0; m->models && i < m->nmodels; i++)
        free(m->models[i].name);
    free(m->models);
    free(m);
}

static model_metrics *model_of(kinfer_worker_metrics *m, int idx) {
    return idx >= 0 && (size_t)idx < m->nmodels ? &m->models[idx] : &m->unknown;
}

static void hist_observe(hist *h, const int64_t *bounds, size_t nb, int64_t v) {
    size_t i = 0;
    while (i < nb && v > bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum, v, memory_order_relaxed);
}

void kinfer_worker_metrics_reply(kinfer_worker_metrics *m, int model_idx, int wire_status) {
    if (wire_status < 0 || wire_status >= KINFER_WORKER_NSTATUS)
        wire_status = KINFER_WORKER_NSTATUS - 1;
    atomic_fetch_add_explicit(&model_of(m, model_idx)->replies[wire_status], 1,
                              memory_order_relaxed);
}

void kinfer_worker_metrics_batch(kinfer_worker_metrics *m, int model_idx, uint32_t batch_size,
                                 int64_t queue_us, int64_t compute_us) {
    model_metrics *mm = model_of(m, model_idx);
    hist_observe(&mm->batch, batch_bounds, NBATCH, batch_size);
    hist_observe(&mm->queue_us, lat_bounds, NLAT, queue_us);
    hist_observe(&mm->compute_us, lat_bounds, NLAT, compute_us);
}

void kinfer_worker_metrics_e2e(kinfer_worker_metrics *m, int64_t us) {
    hist_observe(&m->e2e_us, lat_bounds, NLAT, us);
}

void kinfer_worker_metrics_consumed(kinfer_worker_metrics *m) {
    atomic_fetch_add_explicit(&m->consumed, 1, memory_order_relaxed);
}
void kinfer_worker_metrics_dlq(kinfer_worker_metrics *m) {
    atomic_fetch_add_explicit(&m->dlq, 1, memory_order_relaxed);
}
void kinfer_worker_metrics_delivery_failed(kinfer_worker_metrics *m) {
    atomic_fetch_add_explicit(&m->delivery_failed, 1, memory_order_relaxed);
}
void kinfer_worker_metrics_abandoned(kinfer_worker_metrics *m) {
    atomic_fetch_add_explicit(&m->abandoned, 1, memory_order_relaxed);
}
void kinfer_worker_metrics_set_in_flight(kinfer_worker_metrics *m, int64_t requests,
                                         int64_t bytes) {
    atomic_store_explicit(&m->in_flight, requests, memory_order_relaxed);
    atomic_store_explicit(&m->in_flight_bytes, bytes, memory_order_relaxed);
}
void kinfer_worker_metrics_set_partitions(kinfer_worker_metrics *m, int64_t assigned,
                                          int64_t paused) {
    atomic_store_explicit(&m->assigned, assigned, memory_order_relaxed);
    atomic_store_explicit(&m->paused, paused, memory_order_relaxed);
}
void kinfer_worker_metrics_set_ready(kinfer_worker_metrics *m, int ready) {
    atomic_store(&m->ready, ready);
}
int kinfer_worker_metrics_ready(const kinfer_worker_metrics *m) {
    return atomic_load(&((kinfer_worker_metrics *)m)->ready);
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

/* Label values are model names from the config; escape per the format. */
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

static void render_hist(sbuf *b, const char *name, const char *model, const hist *h,
                        const int64_t *bounds, size_t nb, double scale) {
    uint64_t cum = 0;
    for (size_t i = 0; i <= nb; i++) {
        cum += atomic_load_explicit(&((hist *)h)->buckets[i], memory_order_relaxed);
        sb_printf(b, "%s_bucket{", name);
        if (model) {
            sb_printf(b, "model=\"");
            sb_label(b, model);
            sb_printf(b, "\",");
        }
        if (i < nb)
            sb_printf(b, "le=\"%g\"} %llu\n", (double)bounds[i] * scale, (unsigned long long)cum);
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

kinfer_err kinfer_worker_metrics_render(const kinfer_worker_metrics *mc, const char *worker_id,
                                        char **out, size_t *len, kinfer_error *err) {
    kinfer_worker_metrics *m = (kinfer_worker_metrics *)mc;
    sbuf b = {0};
    sb_printf(&b, "# HELP kinfer_info Worker identity.\n# TYPE kinfer_info gauge\n");
    sb_printf(&b, "kinfer_info{worker=\"");
    sb_label(&b, worker_id ? worker_id : "");
    sb_printf(&b, "\"} 1\n");

    sb_printf(&b, "# HELP kinfer_requests_total Replies produced, by model and status.\n"
                  "# TYPE kinfer_requests_total counter\n");
    for (size_t i = 0; i <= m->nmodels; i++) {
        model_metrics *mm = i < m->nmodels ? &m->models[i] : &m->unknown;
        const char *name = i < m->nmodels ? mm->name : "_unknown";
        for (int s = 0; s < KINFER_WORKER_NSTATUS; s++) {
            uint64_t v = atomic_load_explicit(&mm->replies[s], memory_order_relaxed);
            if (!v && i == m->nmodels)
                continue;
            sb_printf(&b, "kinfer_requests_total{model=\"");
            sb_label(&b, name);
            sb_printf(&b, "\",status=\"%s\"} %llu\n", status_names[s], (unsigned long long)v);
        }
    }
    static const struct {
        const char *name, *help;
        double scale;
        int kind; /* 0 batch, 1 queue, 2 compute */
    } hs[] = {
        {"kinfer_batch_size", "Requests in the batch each request ran in.", 1, 0},
        {"kinfer_queue_seconds", "Time from submit to batch start.", 1e-6, 1},
        {"kinfer_compute_seconds", "Batch run time.", 1e-6, 2},
    };
    for (size_t k = 0; k < sizeof hs / sizeof hs[0]; k++) {
        sb_printf(&b, "# HELP %s %s\n# TYPE %s histogram\n", hs[k].name, hs[k].help, hs[k].name);
        for (size_t i = 0; i < m->nmodels; i++) {
            model_metrics *mm = &m->models[i];
            const hist *h = hs[k].kind == 0   ? &mm->batch
                            : hs[k].kind == 1 ? &mm->queue_us
                                              : &mm->compute_us;
            if (hs[k].kind == 0)
                render_hist(&b, hs[k].name, mm->name, h, batch_bounds, NBATCH, 1);
            else
                render_hist(&b, hs[k].name, mm->name, h, lat_bounds, NLAT, hs[k].scale);
        }
    }
    sb_printf(&b, "# HELP kinfer_worker_latency_seconds Consumed to reply acknowledged.\n"
                  "# TYPE kinfer_worker_latency_seconds histogram\n");
    render_hist(&b, "kinfer_worker_latency_seconds", NULL, &m->e2e_us, lat_bounds, NLAT, 1e-6);

    static const struct {
        const char *name, *help, *type;
        size_t off;
    } scalars[] = {
        {"kinfer_consumed_total", "Request messages consumed.", "counter",
         offsetof(kinfer_worker_metrics, consumed)},
        {"kinfer_dead_letters_total", "Messages sent to a dead-letter topic.", "counter",
         offsetof(kinfer_worker_metrics, dlq)},
        {"kinfer_delivery_failures_total",
         "Replies or dead letters whose delivery finally failed (offset left uncommitted).",
         "counter", offsetof(kinfer_worker_metrics, delivery_failed)},
        {"kinfer_abandoned_total", "Requests abandoned at shutdown (left for redelivery).",
         "counter", offsetof(kinfer_worker_metrics, abandoned)},
    };
    for (size_t k = 0; k < sizeof scalars / sizeof scalars[0]; k++) {
        _Atomic uint64_t *v = (_Atomic uint64_t *)((char *)m + scalars[k].off);
        sb_printf(&b, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", scalars[k].name, scalars[k].help,
                  scalars[k].name, scalars[k].type, scalars[k].name,
                  (unsigned long long)atomic_load(v));
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
        {"kinfer_paused_partitions", "Assigned partitions paused by backpressure.",
         offsetof(kinfer_worker_metrics, paused)},
    };
    for (size_t k = 0; k < sizeof gauges / sizeof gauges[0]; k++) {
        _Atomic int64_t *v = (_Atomic int64_t *)((char *)m + gauges[k].off);
        sb_printf(&b, "# HELP %s %s\n# TYPE %s gauge\n%s %lld\n", gauges[k].name, gauges[k].help,
                  gauges[k].name, gauges[k].name, (long long)atomic_load(v));
    }
    if (b.oom) {
        free(b.p);
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "metrics: out of memory");
    }
    *out = b.p;
    *len = b.len;
    return KINFER_OK;
}
