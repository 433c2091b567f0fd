/* sched_fake_model.h — a fake model and fake clock for the scheduler tests
 * (header-only: every test_*.c here is its own executable). The model takes
 * x FP32 [rows, 2] and returns y FP32 [rows, 1] = x0 + x1; its compute time
 * either advances the fake clock (manual-mode tests) or sleeps (threaded
 * tests); it can fail devices, whole batches or single items, and block on
 * a gate. fake_ops_pipelined drives it through submit/collect with up to
 * max_in_flight batches in flight (compute, the gate and the clock happen
 * in collect, as on a device that works while the host packs the next
 * batch). With len_from_x1 it is a text model with per-request lengths
 * that logs each batch's padded tokens. A collector records completions by
 * token. Not a model of any
 * real kernel's timing. */
#ifndef SCHED_FAKE_MODEL_H
#define SCHED_FAKE_MODEL_H

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine_internal.h"

/* ---- clock ---- */
typedef struct fake_clock {
    _Atomic int64_t now;
} fake_clock;

static inline int64_t fake_clock_now(void *ctx) {
    return atomic_load(&((fake_clock *)ctx)->now);
}

static inline kinfer_clock fake_clock_make(fake_clock *c, int64_t start) {
    atomic_store(&c->now, start);
    kinfer_clock k = {fake_clock_now, c};
    return k;
}

static inline void fake_clock_set(fake_clock *c, int64_t t) {
    atomic_store(&c->now, t);
}

/* ---- model ---- */
#define FAKE_MAX_LOG 65536

typedef struct fake_model_ctx {
    fake_clock *clock;    /* non-NULL: execute advances it */
    int64_t exec_base_us; /* simulated compute: base + per_row * rows */
    int64_t exec_per_row_us;
    int64_t sleep_us;            /* real sleep per execute (threaded tests) */
    const char *fail_devices[4]; /* replica_new on these fails with KINFER_ERR_DEVICE */
    kinfer_err fail_load;        /* load returns this when != OK */
    kinfer_err fail_batch;       /* execute fails the whole batch with this when != OK */
    bool max_len_from_cols;      /* report tokens as a text model would */
    /* Text model with per-row lengths: row k's length is x[2k+1] (> 0,
     * whole); max_len is the request's longest, tokens = rows x max_len.
     * Each batch's padded tokens, (sum rows) x (longest), are logged, and
     * compute takes exec_per_token_us per padded token on top. */
    bool len_from_x1;
    int64_t exec_per_token_us;
    uint64_t padded_total;               /* over all batches */
    uint32_t batch_padded[FAKE_MAX_LOG]; /* per batch, in order */

    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool gate_closed;  /* execute and collect wait while true ... */
    int gate_tickets;  /* ... unless a ticket is left (fake_gate_pass) */
    int in_execute;    /* executes currently inside (waiting or not) */
    int executes;      /* execute calls so far */
    int replicas_live; /* replica_new minus destroy */
    int models_live;   /* load minus destroy */
    int log_len;       /* batches run: first token value of each row in order */
    uintptr_t log[FAKE_MAX_LOG];
    int batch_sizes[FAKE_MAX_LOG]; /* requests per execute call */
    int nbatches;

    /* Pipelined ops only (fake_ops_pipelined). */
    uint32_t max_in_flight; /* what replica_max_in_flight reports (0 reads as 1) */
    kinfer_err fail_submit; /* submit fails the whole batch with this when != OK */
    int fail_collect_nth;   /* the nth collect (1-based, over all replicas) fails its batch */
    int submits, collects;  /* calls so far */
    int in_flight_now;      /* submitted, not collected, over all replicas */
    int in_flight_peak;     /* most in flight at once on one replica */
    int misuse;             /* submit past max_in_flight or collect with nothing in flight */
    int ops_len;            /* calls in order: 'S' submit, 'C' collect */
    char ops[FAKE_MAX_LOG];
} fake_model_ctx;

#define FAKE_FLIGHT 2

typedef struct fake_replica {
    fake_model_ctx *ctx;
    char device[16];
    uint32_t max_rows;
    float *out;
    /* Pipelined: the batches in flight, oldest at head, and two output
     * buffers used by alternate collects. */
    kinfer_batch_item *fl_items[FAKE_FLIGHT];
    size_t fl_n[FAKE_FLIGHT];
    int fl_head, fl_count;
    float *outs[FAKE_FLIGHT];
    int ncollected;
} fake_replica;

static inline void fake_model_init(fake_model_ctx *f) {
    memset(f, 0, sizeof(*f));
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cond, NULL);
}

static inline void fake_model_fini(fake_model_ctx *f) {
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cond);
}

static inline void fake_gate(fake_model_ctx *f, bool closed) {
    pthread_mutex_lock(&f->mu);
    f->gate_closed = closed;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->mu);
}

/* Lets n calls through the closed gate (those waiting first). */
static inline void fake_gate_pass(fake_model_ctx *f, int n) {
    pthread_mutex_lock(&f->mu);
    f->gate_tickets += n;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->mu);
}

/* Under f->mu: waits at the gate. */
static inline void fake_gate_wait_locked(fake_model_ctx *f) {
    while (f->gate_closed && f->gate_tickets == 0)
        pthread_cond_wait(&f->cond, &f->mu);
    if (f->gate_closed)
        f->gate_tickets--;
}

static inline int fake_in_execute(fake_model_ctx *f) {
    pthread_mutex_lock(&f->mu);
    int n = f->in_execute;
    pthread_mutex_unlock(&f->mu);
    return n;
}

static inline kinfer_err fake_load(void *ctx, const kinfer_model_options *opts, void **model,
                                   kinfer_error *err) {
    fake_model_ctx *f = ctx;
    if (f->fail_load != KINFER_OK)
        return kinfer_error_set(err, f->fail_load, "%s: fake load failure", opts->path);
    pthread_mutex_lock(&f->mu);
    f->models_live++;
    pthread_mutex_unlock(&f->mu);
    *model = f;
    return KINFER_OK;
}

static inline void fake_destroy(void *ctx, void *model) {
    fake_model_ctx *f = ctx;
    (void)model;
    pthread_mutex_lock(&f->mu);
    f->models_live--;
    pthread_mutex_unlock(&f->mu);
}

static inline kinfer_err fake_check(void *ctx, const void *model, const kinfer_tensor *inputs,
                                    size_t ninputs, const kinfer_param *params, size_t nparams,
                                    kinfer_request_cost *cost, kinfer_error *err) {
    fake_model_ctx *f = ctx;
    (void)model, (void)params, (void)nparams;
    if (ninputs != 1 || inputs[0].name.len != 1 || inputs[0].name.ptr[0] != 'x' ||
        inputs[0].dtype != KINFER_DTYPE_FP32 || inputs[0].ndim != 2 || inputs[0].shape[1] != 2 ||
        inputs[0].shape[0] < 0 || inputs[0].nbytes != (size_t)inputs[0].shape[0] * 2 * 4)
        return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST,
                                "expected one input x FP32 [rows, 2]");
    cost->rows = (uint32_t)inputs[0].shape[0];
    cost->max_len = f->max_len_from_cols ? 2 : 0;
    cost->tokens = f->max_len_from_cols ? cost->rows * 2 : 0;
    if (f->len_from_x1) {
        const float *x = inputs[0].data;
        uint32_t len = 0;
        for (uint32_t k = 0; k < cost->rows; k++) {
            if (!(x[2 * k + 1] >= 1 && x[2 * k + 1] <= 100000))
                return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST, "fake: bad length");
            if ((uint32_t)x[2 * k + 1] > len)
                len = (uint32_t)x[2 * k + 1];
        }
        cost->max_len = len;
        cost->tokens = cost->rows * len;
    }
    return KINFER_OK;
}

static inline kinfer_err fake_replica_new(void *ctx, void *model, const char *device,
                                          uint32_t max_rows, void **replica, kinfer_error *err) {
    fake_model_ctx *f = ctx;
    (void)model;
    for (int i = 0; i < 4; i++)
        if (f->fail_devices[i] && strcmp(f->fail_devices[i], device) == 0)
            return kinfer_error_set(err, KINFER_ERR_DEVICE, "fake: no device %s", device);
    fake_replica *r = calloc(1, sizeof(*r));
    r->ctx = f;
    snprintf(r->device, sizeof(r->device), "%s", device);
    r->max_rows = max_rows;
    r->out = calloc(max_rows, sizeof(float));
    for (int k = 0; k < FAKE_FLIGHT; k++)
        r->outs[k] = calloc(max_rows, sizeof(float));
    pthread_mutex_lock(&f->mu);
    f->replicas_live++;
    pthread_mutex_unlock(&f->mu);
    *replica = r;
    return KINFER_OK;
}

static inline void fake_replica_destroy(void *ctx, void *replica) {
    fake_model_ctx *f = ctx;
    fake_replica *r = replica;
    free(r->out);
    for (int k = 0; k < FAKE_FLIGHT; k++)
        free(r->outs[k]);
    free(r);
    pthread_mutex_lock(&f->mu);
    f->replicas_live--;
    pthread_mutex_unlock(&f->mu);
}

/* Under f->mu: logs a batch (first x of each item, and its size). */
static inline uint64_t fake_padded(const kinfer_batch_item *items, size_t nitems) {
    uint64_t rows = 0, len = 0;
    for (size_t i = 0; i < nitems; i++) {
        rows += items[i].cost.rows;
        if (items[i].cost.max_len > len)
            len = items[i].cost.max_len;
    }
    return rows * len;
}

static inline void fake_log_batch(fake_model_ctx *f, const kinfer_batch_item *items,
                                  size_t nitems) {
    uint64_t padded = fake_padded(items, nitems);
    f->padded_total += padded;
    if (f->nbatches < FAKE_MAX_LOG)
        f->batch_padded[f->nbatches] = (uint32_t)padded;
    if (f->nbatches < FAKE_MAX_LOG)
        f->batch_sizes[f->nbatches++] = (int)nitems;
    for (size_t i = 0; i < nitems && f->log_len < FAKE_MAX_LOG; i++) {
        const float *x = items[i].inputs[0].data;
        f->log[f->log_len++] = (uintptr_t)x[0];
    }
}

/* The batch's compute, no lock: advances the clock or sleeps, then fails
 * it whole (fail != OK) or writes y = x0 + x1 into out [max_rows]. */
static inline kinfer_err fake_compute(fake_model_ctx *f, fake_replica *rep,
                                      kinfer_batch_item *items, size_t nitems, float *out,
                                      kinfer_err fail, kinfer_error *err) {
    uint32_t rows = 0;
    for (size_t i = 0; i < nitems; i++)
        rows += items[i].cost.rows;
    if (rows > rep->max_rows)
        return kinfer_error_set(err, KINFER_ERR_INTERNAL, "fake: %u rows > max %u", rows,
                                rep->max_rows);
    if (f->clock)
        atomic_fetch_add(&f->clock->now,
                         f->exec_base_us + f->exec_per_row_us * (int64_t)rows +
                             f->exec_per_token_us * (int64_t)fake_padded(items, nitems));
    if (f->sleep_us > 0) {
        struct timespec ts = {f->sleep_us / 1000000, (f->sleep_us % 1000000) * 1000};
        nanosleep(&ts, NULL);
    }
    if (fail != KINFER_OK)
        return kinfer_error_set(err, fail, "fake: batch failed");
    uint32_t row = 0;
    for (size_t i = 0; i < nitems; i++) {
        const float *x = items[i].inputs[0].data;
        if (items[i].cost.rows > 0 && isinf(x[1])) {
            items[i].status = KINFER_ERR_INVALID_REQUEST;
            snprintf(items[i].error, sizeof(items[i].error), "fake: infinite input");
            continue;
        }
        float *y = out + row;
        for (uint32_t k = 0; k < items[i].cost.rows; k++)
            y[k] = x[2 * k] + x[2 * k + 1];
        kinfer_tensor *t = &items[i].outputs[0];
        t->name.ptr = "y";
        t->name.len = 1;
        t->dtype = KINFER_DTYPE_FP32;
        t->ndim = 2;
        t->shape[0] = items[i].cost.rows;
        t->shape[1] = 1;
        t->data = y;
        t->nbytes = items[i].cost.rows * sizeof(float);
        items[i].noutputs = 1;
        row += items[i].cost.rows;
    }
    return KINFER_OK;
}

static inline kinfer_err fake_execute(void *ctx, void *replica, kinfer_batch_item *items,
                                      size_t nitems, kinfer_error *err) {
    fake_model_ctx *f = ctx;
    fake_replica *rep = replica;
    pthread_mutex_lock(&f->mu);
    f->in_execute++;
    f->executes++;
    fake_gate_wait_locked(f);
    fake_log_batch(f, items, nitems);
    pthread_mutex_unlock(&f->mu);
    kinfer_err rc = fake_compute(f, rep, items, nitems, rep->out, f->fail_batch, err);
    pthread_mutex_lock(&f->mu);
    f->in_execute--;
    pthread_mutex_unlock(&f->mu);
    return rc;
}

/* ---- pipelined model (submit/collect) ---- */

static inline uint32_t fake_max_in_flight(void *ctx, const void *replica) {
    (void)replica;
    return ((fake_model_ctx *)ctx)->max_in_flight;
}

/* Records the batch; computes nothing (collect does). */
static inline kinfer_err fake_submit(void *ctx, void *replica, kinfer_batch_item *items,
                                     size_t nitems, kinfer_error *err) {
    fake_model_ctx *f = ctx;
    fake_replica *rep = replica;
    uint32_t cap = f->max_in_flight ? f->max_in_flight : 1;
    kinfer_err rc = KINFER_OK;
    pthread_mutex_lock(&f->mu);
    f->submits++;
    if (f->ops_len < FAKE_MAX_LOG)
        f->ops[f->ops_len++] = 'S';
    fake_log_batch(f, items, nitems);
    if (rep->fl_count >= (int)cap || rep->fl_count >= FAKE_FLIGHT) {
        f->misuse++;
        rc = kinfer_error_set(err, KINFER_ERR_INTERNAL, "fake: %d batches already in flight",
                              rep->fl_count);
    } else if (f->fail_submit != KINFER_OK) {
        rc = kinfer_error_set(err, f->fail_submit, "fake: submit failed");
    } else {
        int k = (rep->fl_head + rep->fl_count) % FAKE_FLIGHT;
        rep->fl_items[k] = items;
        rep->fl_n[k] = nitems;
        rep->fl_count++;
        f->in_flight_now++;
        if (rep->fl_count > f->in_flight_peak)
            f->in_flight_peak = rep->fl_count;
    }
    pthread_mutex_unlock(&f->mu);
    return rc;
}

/* Computes the oldest batch (waiting at the gate first). The outputs of the
 * batch collected before it are poisoned with NaN: the engine must be done
 * with them by now, and a completion that reads them would see it. */
static inline kinfer_err fake_collect(void *ctx, void *replica, kinfer_error *err) {
    fake_model_ctx *f = ctx;
    fake_replica *rep = replica;
    pthread_mutex_lock(&f->mu);
    f->collects++;
    if (f->ops_len < FAKE_MAX_LOG)
        f->ops[f->ops_len++] = 'C';
    if (rep->fl_count == 0) {
        f->misuse++;
        pthread_mutex_unlock(&f->mu);
        return kinfer_error_set(err, KINFER_ERR_INTERNAL, "fake: nothing in flight");
    }
    kinfer_batch_item *items = rep->fl_items[rep->fl_head];
    size_t nitems = rep->fl_n[rep->fl_head];
    rep->fl_head = (rep->fl_head + 1) % FAKE_FLIGHT;
    rep->fl_count--;
    bool fail = f->fail_collect_nth > 0 && f->collects == f->fail_collect_nth;
    f->in_execute++;
    fake_gate_wait_locked(f);
    pthread_mutex_unlock(&f->mu);
    int k = rep->ncollected++;
    if (k > 0)
        for (uint32_t i = 0; i < rep->max_rows; i++)
            rep->outs[(k - 1) % FAKE_FLIGHT][i] = NAN;
    kinfer_err rc = fake_compute(f, rep, items, nitems, rep->outs[k % FAKE_FLIGHT],
                                 fail ? KINFER_ERR_DEVICE : f->fail_batch, err);
    pthread_mutex_lock(&f->mu);
    f->in_execute--;
    f->in_flight_now--;
    pthread_mutex_unlock(&f->mu);
    return rc;
}

static const sched_model_ops fake_ops = {
    .load = fake_load,
    .destroy = fake_destroy,
    .describe = NULL,
    .check_request = fake_check,
    .replica_new = fake_replica_new,
    .replica_destroy = fake_replica_destroy,
    .replica_execute = fake_execute,
};

/* The same model driven through submit/collect (set max_in_flight). */
static const sched_model_ops fake_ops_pipelined = {
    .load = fake_load,
    .destroy = fake_destroy,
    .describe = NULL,
    .check_request = fake_check,
    .replica_new = fake_replica_new,
    .replica_destroy = fake_replica_destroy,
    .replica_execute = fake_execute,
    .replica_submit = fake_submit,
    .replica_collect = fake_collect,
    .replica_max_in_flight = fake_max_in_flight,
};

/* ---- requests and completions ---- */

/* One request's inputs and its completion record; the token is its index. */
typedef struct fake_req {
    float x[2 * 16];
    kinfer_tensor t;
    int completions;
    kinfer_err status;
    char error[256];
    char device[16];
    float y0;             /* first output value */
    int64_t completed_at; /* clock at completion */
    int64_t queue_us, compute_us;
    uint32_t batch_size;
    bool has_deadline;
    int64_t deadline_slack_us;
    const char *version;
} fake_req;

typedef struct fake_sink {
    pthread_mutex_t mu;
    fake_req *reqs; /* indexed by token */
    size_t nreqs;
    kinfer_clock clock;
    int total;      /* completions */
    int duplicates; /* completions of an already-completed token */
    int congestion_on, congestion_off;
    bool last_congested;
    char congestion_model[64];
    int order[FAKE_MAX_LOG]; /* token of each completion, in order */
} fake_sink;

static inline void fake_sink_init(fake_sink *s, fake_req *reqs, size_t n, kinfer_clock clock) {
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    s->reqs = reqs;
    s->nreqs = n;
    s->clock = clock;
}

static inline void fake_on_complete(void *ctx, const kinfer_engine_result *res) {
    fake_sink *s = ctx;
    size_t i = (size_t)(uintptr_t)res->token;
    pthread_mutex_lock(&s->mu);
    if (i < s->nreqs) {
        fake_req *r = &s->reqs[i];
        if (r->completions++)
            s->duplicates++;
        r->status = res->status;
        snprintf(r->error, sizeof(r->error), "%s", res->error ? res->error : "");
        snprintf(r->device, sizeof(r->device), "%s", res->device ? res->device : "(null)");
        r->y0 = res->noutputs ? ((const float *)res->outputs[0].data)[0] : NAN;
        r->completed_at = s->clock.now_us(s->clock.ctx);
        r->queue_us = res->queue_us;
        r->compute_us = res->compute_us;
        r->batch_size = res->batch_size;
        r->has_deadline = res->has_deadline;
        r->deadline_slack_us = res->deadline_slack_us;
        r->version = res->model_version;
    }
    if (s->total < FAKE_MAX_LOG)
        s->order[s->total] = (int)i;
    s->total++;
    pthread_mutex_unlock(&s->mu);
}

static inline void fake_on_congestion(void *ctx, const char *model, bool congested) {
    fake_sink *s = ctx;
    pthread_mutex_lock(&s->mu);
    if (congested)
        s->congestion_on++;
    else
        s->congestion_off++;
    s->last_congested = congested;
    snprintf(s->congestion_model, sizeof(s->congestion_model), "%s", model);
    pthread_mutex_unlock(&s->mu);
}

/* Fills request i with `rows` rows; x[0] = id (so the fake model logs it). */
static inline void fake_req_fill(fake_req *r, size_t id, uint32_t rows) {
    for (uint32_t k = 0; k < rows && k < 16; k++) {
        r->x[2 * k] = (float)id;
        r->x[2 * k + 1] = 0.5f;
    }
    memset(&r->t, 0, sizeof(r->t));
    r->t.name.ptr = "x";
    r->t.name.len = 1;
    r->t.dtype = KINFER_DTYPE_FP32;
    r->t.ndim = 2;
    r->t.shape[0] = rows;
    r->t.shape[1] = 2;
    r->t.data = r->x;
    r->t.nbytes = rows * 2 * sizeof(float);
}

static inline kinfer_engine_request fake_request(const char *model, fake_req *r, size_t id,
                                                 int64_t deadline_us, int32_t priority) {
    kinfer_engine_request q;
    memset(&q, 0, sizeof(q));
    q.model.ptr = model;
    q.model.len = strlen(model);
    q.inputs = &r->t;
    q.ninputs = 1;
    q.deadline_us = deadline_us;
    q.priority = priority;
    q.token = (void *)(uintptr_t)id;
    return q;
}

#endif
