/* test_scheduler_mlp.c — the engine end to end with the real compute side:
 * an MLP written to a temporary safetensors file, loaded by
 * kinfer_engine_new with devices ["cuda:0", "cpu"] (the CPU fallback on a
 * host without CUDA), outputs checked against a naive double-precision
 * reference, then several submitter threads at once. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "kinfer/kinfer_engine.h"
#include "formats/safetensors.h"

#define IN 12
#define HID 24
#define OUT 5
#define MAXROWS 6

typedef struct mlp_ref {
    float w1[HID * IN], b1[HID], w2[OUT * HID], b2[OUT];
} mlp_ref;

static float frand(unsigned *seed) {
    return (float)rand_r(seed) / (float)RAND_MAX * 2.0f - 1.0f;
}

/* Writes a 2-layer relu MLP with random weights; fills the reference. */
static void write_mlp(const char *path, mlp_ref *ref) {
    unsigned seed = 42;
    for (int i = 0; i < HID * IN; i++)
        ref->w1[i] = frand(&seed) * 0.5f;
    for (int i = 0; i < HID; i++)
        ref->b1[i] = frand(&seed) * 0.1f;
    for (int i = 0; i < OUT * HID; i++)
        ref->w2[i] = frand(&seed) * 0.5f;
    for (int i = 0; i < OUT; i++)
        ref->b2[i] = frand(&seed) * 0.1f;
    kinfer_st_write_tensor t[4] = {
        {"layers.0.weight", KINFER_DTYPE_FP32, 2, {HID, IN}, ref->w1},
        {"layers.0.bias", KINFER_DTYPE_FP32, 1, {HID}, ref->b1},
        {"layers.1.weight", KINFER_DTYPE_FP32, 2, {OUT, HID}, ref->w2},
        {"layers.1.bias", KINFER_DTYPE_FP32, 1, {OUT}, ref->b2},
    };
    const char *keys[] = {"activation", "output_activation"};
    const char *vals[] = {"relu", "none"};
    kinfer_error err;
    if (kinfer_safetensors_write(path, t, 4, keys, vals, 2, &err) != KINFER_OK)
        fail_msg("write %s: %s", path, err.msg);
}

static void reference(const mlp_ref *m, const float *x, double *y) {
    double h[HID];
    for (int j = 0; j < HID; j++) {
        double s = m->b1[j];
        for (int k = 0; k < IN; k++)
            s += (double)m->w1[j * IN + k] * x[k];
        h[j] = s > 0 ? s : 0;
    }
    for (int j = 0; j < OUT; j++) {
        double s = m->b2[j];
        for (int k = 0; k < HID; k++)
            s += (double)m->w2[j * HID + k] * h[k];
        y[j] = s;
    }
}

typedef struct req {
    float x[MAXROWS * IN];
    kinfer_tensor t;
    uint32_t rows;
    int completions;
    kinfer_err status;
    float y[MAXROWS * OUT];
    int64_t shape0, shape1;
    char device[16];
    uint32_t batch_size;
} req;

typedef struct ctx {
    pthread_mutex_t mu;
    req *reqs;
    int total, duplicates;
} ctx;

static void on_complete(void *p, const kinfer_engine_result *res) {
    ctx *c = p;
    req *r = &c->reqs[(uintptr_t)res->token];
    pthread_mutex_lock(&c->mu);
    c->total++;
    if (r->completions++)
        c->duplicates++;
    r->status = res->status;
    snprintf(r->device, sizeof(r->device), "%s", res->device);
    r->batch_size = res->batch_size;
    if (res->status == KINFER_OK && res->noutputs == 1) {
        const kinfer_tensor *o = &res->outputs[0];
        r->shape0 = o->shape[0];
        r->shape1 = o->ndim > 1 ? o->shape[1] : -1;
        size_t n = o->nbytes < sizeof(r->y) ? o->nbytes : sizeof(r->y);
        memcpy(r->y, o->data, n); /* valid only during the callback */
    }
    pthread_mutex_unlock(&c->mu);
}

static void fill(req *r, unsigned *seed, uint32_t rows) {
    r->rows = rows;
    for (uint32_t i = 0; i < rows * IN; i++)
        r->x[i] = frand(seed);
    memset(&r->t, 0, sizeof(r->t));
    r->t.name.ptr = "input";
    r->t.name.len = 5;
    r->t.dtype = KINFER_DTYPE_FP32;
    r->t.ndim = 2;
    r->t.shape[0] = rows;
    r->t.shape[1] = IN;
    r->t.data = r->x;
    r->t.nbytes = rows * IN * sizeof(float);
}

static void check_outputs(const mlp_ref *m, req *r) {
    assert_int_equal(r->completions, 1);
    assert_int_equal(r->status, KINFER_OK);
    assert_int_equal(r->shape0, r->rows);
    assert_int_equal(r->shape1, OUT);
    for (uint32_t i = 0; i < r->rows; i++) {
        double want[OUT];
        reference(m, r->x + i * IN, want);
        for (int j = 0; j < OUT; j++) {
            double got = r->y[i * OUT + j];
            /* FP32 accumulation over 24 terms; 1e-4 abs + 1e-4 rel */
            if (fabs(got - want[j]) > 1e-4 + 1e-4 * fabs(want[j]))
                fail_msg("row %u out %d: got %.7g want %.7g", i, j, got, want[j]);
        }
    }
}

typedef struct fixture {
    char path[256];
    mlp_ref ref;
    ctx c;
    kinfer_model_config mc;
    kinfer_engine *engine;
} fixture;

static fixture *fixture_new(size_t nreqs, uint32_t max_batch) {
    fixture *f = calloc(1, sizeof(*f));
    snprintf(f->path, sizeof(f->path), "/tmp/kinfer_sched_mlp_%d.safetensors", (int)getpid());
    write_mlp(f->path, &f->ref);
    pthread_mutex_init(&f->c.mu, NULL);
    f->c.reqs = calloc(nreqs, sizeof(req));
    f->mc.name = "scorer";
    f->mc.version = "3";
    f->mc.load.kind = "mlp";
    f->mc.load.path = f->path;
    f->mc.devices[0] = "cuda:0";
    f->mc.devices[1] = "cpu";
    f->mc.ndevices = 2;
    f->mc.replicas_per_device = 1;
    f->mc.max_batch_size = max_batch;
    f->mc.max_queue_delay_us = 1000;
    kinfer_engine_config cfg = {0};
    cfg.models = &f->mc;
    cfg.nmodels = 1;
    cfg.cpu_threads = 1;
    cfg.on_complete = on_complete;
    cfg.callback_ctx = &f->c;
    kinfer_error err;
    if (kinfer_engine_new(&cfg, &f->engine, &err) != KINFER_OK)
        fail_msg("engine: %s", err.msg);
    return f;
}

static void fixture_free(fixture *f) {
    kinfer_engine_destroy(f->engine);
    assert_int_equal(f->c.duplicates, 0);
    unlink(f->path);
    pthread_mutex_destroy(&f->c.mu);
    free(f->c.reqs);
    free(f);
}

static kinfer_err submit(fixture *f, size_t id) {
    kinfer_engine_request q = {0};
    q.model.ptr = "scorer";
    q.model.len = 6;
    q.inputs = &f->c.reqs[id].t;
    q.ninputs = 1;
    q.token = (void *)(uintptr_t)id;
    kinfer_error err;
    return kinfer_engine_submit(f->engine, &q, &err);
}

static void test_mlp_end_to_end(void **state) {
    (void)state;
    enum { N = 200 };
    fixture *f = fixture_new(N, 16);
    unsigned seed = 9;
    for (size_t i = 0; i < N; i++) {
        fill(&f->c.reqs[i], &seed, 1 + (uint32_t)(i % MAXROWS));
        assert_int_equal(submit(f, i), KINFER_OK);
    }
    /* a bad shape is refused by the model's own check, naming the width */
    req bad;
    fill(&bad, &seed, 1);
    bad.t.shape[1] = IN + 1;
    bad.t.nbytes = (IN + 1) * sizeof(float);
    kinfer_engine_request q = {.model = {"scorer", 6}, .inputs = &bad.t, .ninputs = 1};
    kinfer_error err;
    assert_int_equal(kinfer_engine_submit(f->engine, &q, &err), KINFER_ERR_INVALID_REQUEST);
    assert_non_null(strstr(err.msg, "12"));
    kinfer_engine_shutdown(f->engine, 10000);
    assert_int_equal(f->c.total, N);
    int batched = 0;
    for (size_t i = 0; i < N; i++) {
        check_outputs(&f->ref, &f->c.reqs[i]);
        batched += f->c.reqs[i].batch_size > 1;
    }
    assert_true(batched > 0); /* requests shared batches */
    print_message("mlp e2e: %d requests on %s, %d in shared batches\n", N, f->c.reqs[0].device,
                  batched);
    fixture_free(f);
}

#define MT_THREADS 4
#define MT_PER 1500

typedef struct mt_arg {
    fixture *f;
    int index;
    _Atomic int *refused;
} mt_arg;

static void *mt_submitter(void *p) {
    mt_arg *a = p;
    for (int k = 0; k < MT_PER; k++) {
        size_t id = (size_t)a->index * MT_PER + (size_t)k;
        if (submit(a->f, id) != KINFER_OK)
            atomic_fetch_add(a->refused, 1);
    }
    return NULL;
}

static void test_mlp_stress(void **state) {
    (void)state;
    fixture *f = fixture_new(MT_THREADS * MT_PER, 64);
    unsigned seed = 11;
    for (size_t i = 0; i < MT_THREADS * MT_PER; i++)
        fill(&f->c.reqs[i], &seed, 1 + (uint32_t)(i % 3));
    _Atomic int refused = 0;
    pthread_t th[MT_THREADS];
    mt_arg args[MT_THREADS];
    for (int i = 0; i < MT_THREADS; i++) {
        args[i] = (mt_arg){f, i, &refused};
        pthread_create(&th[i], NULL, mt_submitter, &args[i]);
    }
    for (int i = 0; i < MT_THREADS; i++)
        pthread_join(th[i], NULL);
    kinfer_engine_shutdown(f->engine, 60000);
    assert_int_equal(atomic_load(&refused), 0);
    assert_int_equal(f->c.total, MT_THREADS * MT_PER);
    for (size_t i = 0; i < MT_THREADS * MT_PER; i++)
        check_outputs(&f->ref, &f->c.reqs[i]);
    kinfer_engine_stats st;
    assert_int_equal(kinfer_engine_stats_get(f->engine, 0, &st), KINFER_OK);
    assert_int_equal(st.completed_ok, MT_THREADS * MT_PER);
    print_message("mlp stress: %d requests in %llu batches (%.1f rows/batch)\n",
                  MT_THREADS * MT_PER, (unsigned long long)st.batches,
                  (double)st.rows / (double)st.batches);
    fixture_free(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mlp_end_to_end),
        cmocka_unit_test(test_mlp_stress),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
