/* test_mlp_cpu.c — the mlp CPU backend against a naive double-precision
 * triple-loop reference: random models with awkward widths (1, 7, 13, 257),
 * 1 row and max rows, batched execute of uneven items equal to per-item
 * runs, every hidden and output activation, F16/BF16 weights, the request
 * contract (shapes, dtypes, NaN policy both ways), per-item failures and
 * the python-written example model. Tolerance: tu_compare in
 * test_mlp_util.h (abs 1e-6 + rel 1e-5 of the summed magnitude). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ops/bias_act.h"
#include "kinfer/kinfer_model.h"
#include "test_mlp_util.h"

static char *dir;

static int setup(void **state) {
    (void)state;
    dir = tu_tempdir();
    return dir ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    tu_rmdir(dir);
    return 0;
}

typedef struct fixture {
    tu_mlp ref;
    kinfer_model *model;
    kinfer_replica *replica;
    const char *act, *out_act;
} fixture;

/* Writes a random model, loads it, makes a cpu replica of max_rows. */
static void fixture_new(fixture *f, const uint32_t *dims, int nlayers, uint64_t seed,
                        kinfer_dtype dtype, const char *act, const char *out_act,
                        kinfer_nan_policy nan, uint32_t max_rows) {
    char path[600];
    snprintf(path, sizeof(path), "%s/m%llu.st", dir, (unsigned long long)seed);
    tu_mlp_random(&f->ref, dims, nlayers, seed, dtype);
    assert_int_equal(tu_mlp_write(&f->ref, path, dtype, act, out_act), KINFER_OK);
    kinfer_model_options o;
    memset(&o, 0, sizeof(o));
    o.name = "t";
    o.kind = "mlp";
    o.path = path;
    o.nan_policy = nan;
    o.cpu_threads = 2;
    kinfer_error err;
    if (kinfer_model_load(&o, &f->model, &err) != KINFER_OK)
        fail_msg("load: %s", err.msg);
    if (kinfer_replica_new(f->model, "cpu", max_rows, &f->replica, &err) != KINFER_OK)
        fail_msg("replica: %s", err.msg);
    f->act = act ? act : "relu";
    f->out_act = out_act ? out_act : "none";
}

static void fixture_free(fixture *f) {
    kinfer_replica_destroy(f->replica);
    kinfer_model_destroy(f->model);
    tu_mlp_free(&f->ref);
}

static kinfer_tensor input(const float *x, size_t rows, uint32_t in, int rank) {
    kinfer_tensor t;
    memset(&t, 0, sizeof(t));
    t.name = (kinfer_str){"x", 1};
    t.dtype = KINFER_DTYPE_FP32;
    t.ndim = rank;
    if (rank == 2) {
        t.shape[0] = (int64_t)rows;
        t.shape[1] = in;
    } else {
        t.shape[0] = in;
    }
    t.data = x;
    t.nbytes = rows * in * sizeof(float);
    return t;
}

static float *random_input(size_t rows, uint32_t in, uint64_t seed) {
    tu_rng r = {seed};
    float *x = malloc(rows * in * sizeof(float) + 4);
    for (size_t i = 0; i < rows * in; i++)
        x[i] = tu_uniform(&r) * 2.0f;
    return x;
}

/* Runs one item of `rows` rows and compares to the reference. */
static void check_single(fixture *f, size_t rows, int rank, uint64_t seed) {
    uint32_t in = f->ref.dims[0], out = f->ref.dims[f->ref.nlayers];
    float *x = random_input(rows, in, seed);
    kinfer_tensor t = input(x, rows, in, rank);
    kinfer_batch_item item;
    memset(&item, 0, sizeof(item));
    item.inputs = &t;
    item.ninputs = 1;
    kinfer_error err;
    assert_int_equal(kinfer_model_check_request(f->model, &t, 1, NULL, 0, &item.cost, &err),
                     KINFER_OK);
    assert_int_equal(item.cost.rows, rows);
    assert_int_equal(kinfer_replica_execute(f->replica, &item, 1, &err), KINFER_OK);
    assert_int_equal(item.status, KINFER_OK);
    assert_int_equal(item.noutputs, 1);
    const kinfer_tensor *o = &item.outputs[0];
    assert_int_equal(o->name.len, 6);
    assert_memory_equal(o->name.ptr, "output", 6);
    assert_int_equal(o->dtype, KINFER_DTYPE_FP32);
    assert_int_equal(o->ndim, rank);
    assert_int_equal(o->shape[rank - 1], out);
    if (rank == 2)
        assert_int_equal(o->shape[0], rows);
    assert_int_equal(o->nbytes, rows * out * sizeof(float));
    double *ref = malloc(rows * out * sizeof(double));
    double *mag = malloc(rows * out * sizeof(double));
    tu_reference(&f->ref, x, rows, f->act, f->out_act, ref, mag);
    long bad = tu_compare(o->data, ref, mag, rows * out);
    free(ref);
    free(mag);
    free(x);
    if (bad >= 0)
        fail_msg("rows %zu: mismatch at %ld", rows, bad);
}

static void test_odd_sizes(void **state) {
    (void)state;
    static const uint32_t shapes[][5] = {
        {1, 1, 0, 0, 0},      /* 1 -> 1 */
        {7, 13, 1, 0, 0},     /* 7 -> 13 -> 1 */
        {13, 257, 7, 0, 0},   /* 13 -> 257 -> 7 */
        {257, 1, 257, 13, 0}, /* bottleneck of 1 */
        {8, 16, 16, 16, 3},   /* deeper */
    };
    static const int nlayers[] = {1, 2, 2, 3, 4};
    for (size_t s = 0; s < sizeof(nlayers) / sizeof(nlayers[0]); s++) {
        fixture f;
        fixture_new(&f, shapes[s], nlayers[s], 100 + s, KINFER_DTYPE_FP32, "relu", "none",
                    KINFER_NAN_REJECT, 33);
        check_single(&f, 1, 1, 1); /* rank 1 */
        check_single(&f, 1, 2, 2); /* [1, in] */
        check_single(&f, 5, 2, 3);
        check_single(&f, 33, 2, 4); /* max rows */
        fixture_free(&f);
    }
}

static void test_each_activation(void **state) {
    (void)state;
    const char *acts[] = {"relu", "gelu", "tanh", "sigmoid", "none"};
    const char *outs[] = {"none", "sigmoid", "softmax"};
    const uint32_t dims[] = {9, 17, 11, 5};
    uint64_t seed = 200;
    for (size_t a = 0; a < 5; a++) {
        for (size_t o = 0; o < 3; o++) {
            fixture f;
            fixture_new(&f, dims, 3, seed++, KINFER_DTYPE_FP32, acts[a], outs[o], KINFER_NAN_REJECT,
                        16);
            check_single(&f, 16, 2, seed);
            fixture_free(&f);
        }
    }
}

static void test_softmax_rows_sum_to_one(void **state) {
    (void)state;
    const uint32_t dims[] = {4, 7};
    fixture f;
    fixture_new(&f, dims, 1, 300, KINFER_DTYPE_FP32, NULL, "softmax", KINFER_NAN_REJECT, 4);
    float x[16];
    for (int i = 0; i < 16; i++)
        x[i] = (float)(i * 40 - 300); /* large logits: max-subtraction matters */
    kinfer_tensor t = input(x, 4, 4, 2);
    kinfer_batch_item item;
    memset(&item, 0, sizeof(item));
    item.inputs = &t;
    item.ninputs = 1;
    item.cost.rows = 4;
    kinfer_error err;
    assert_int_equal(kinfer_replica_execute(f.replica, &item, 1, &err), KINFER_OK);
    const float *y = item.outputs[0].data;
    for (int r = 0; r < 4; r++) {
        double s = 0;
        for (int c = 0; c < 7; c++) {
            assert_true(isfinite(y[r * 7 + c]) && y[r * 7 + c] >= 0.0f);
            s += y[r * 7 + c];
        }
        assert_true(fabs(s - 1.0) < 1e-5);
    }
    fixture_free(&f);
}

static void test_half_weights(void **state) {
    (void)state;
    const uint32_t dims[] = {13, 31, 3};
    kinfer_dtype dts[] = {KINFER_DTYPE_FP16, KINFER_DTYPE_BF16};
    for (int d = 0; d < 2; d++) {
        fixture f;
        fixture_new(&f, dims, 2, 400 + d, dts[d], "gelu", "sigmoid", KINFER_NAN_REJECT, 8);
        assert_non_null(
            strstr(kinfer_model_describe(f.model), d == 0 ? "weights=F16" : "weights=BF16"));
        check_single(&f, 8, 2, 9);
        check_single(&f, 1, 1, 10);
        fixture_free(&f);
    }
}

/* Several items of different row counts in one execute equal per-item runs. */
static void test_batched_equals_single(void **state) {
    (void)state;
    const uint32_t dims[] = {13, 257, 7};
    fixture f;
    fixture_new(&f, dims, 2, 500, KINFER_DTYPE_FP32, "tanh", "none", KINFER_NAN_REJECT, 64);
    const size_t rows[] = {1, 5, 17, 1, 3, 37};
    const int rank[] = {1, 2, 2, 2, 2, 2};
    enum { N = 6 };
    float *x[N];
    kinfer_tensor t[N];
    kinfer_batch_item items[N];
    float *single[N];
    kinfer_error err;
    memset(items, 0, sizeof(items));
    for (int i = 0; i < N; i++) {
        x[i] = random_input(rows[i], 13, 600 + i);
        t[i] = input(x[i], rows[i], 13, rank[i]);
        items[i].inputs = &t[i];
        items[i].ninputs = 1;
        assert_int_equal(
            kinfer_model_check_request(f.model, &t[i], 1, NULL, 0, &items[i].cost, &err),
            KINFER_OK);
        /* per-item run first; copy its output (valid only until the next execute) */
        assert_int_equal(kinfer_replica_execute(f.replica, &items[i], 1, &err), KINFER_OK);
        single[i] = malloc(rows[i] * 7 * sizeof(float));
        memcpy(single[i], items[i].outputs[0].data, rows[i] * 7 * sizeof(float));
    }
    /* 1+5+17+1+3+37 = 64 = max_rows */
    assert_int_equal(kinfer_replica_execute(f.replica, items, N, &err), KINFER_OK);
    for (int i = 0; i < N; i++) {
        assert_int_equal(items[i].status, KINFER_OK);
        assert_int_equal(items[i].outputs[0].ndim, rank[i]);
        double *ref = malloc(rows[i] * 7 * sizeof(double));
        double *mag = malloc(rows[i] * 7 * sizeof(double));
        for (size_t k = 0; k < rows[i] * 7; k++) {
            ref[k] = single[i][k];
            mag[k] = fabs(single[i][k]) + 1.0;
        }
        assert_true(tu_compare(items[i].outputs[0].data, ref, mag, rows[i] * 7) < 0);
        tu_reference(&f.ref, x[i], rows[i], "tanh", "none", ref, mag);
        assert_true(tu_compare(items[i].outputs[0].data, ref, mag, rows[i] * 7) < 0);
        free(ref);
        free(mag);
        free(single[i]);
        free(x[i]);
    }
    /* outputs of different items do not overlap: each is its own slice */
    assert_ptr_equal((const float *)items[1].outputs[0].data,
                     (const float *)items[0].outputs[0].data + 7);
    fixture_free(&f);
}

static kinfer_err check(fixture *f, const kinfer_tensor *t, size_t n, char *msg) {
    kinfer_request_cost cost;
    kinfer_error err;
    kinfer_err rc = kinfer_model_check_request(f->model, t, n, NULL, 0, &cost, &err);
    snprintf(msg, KINFER_ERROR_MSG_MAX, "%s", rc == KINFER_OK ? "" : err.msg);
    return rc;
}

static void test_request_contract(void **state) {
    (void)state;
    const uint32_t dims[] = {256, 4};
    fixture f;
    fixture_new(&f, dims, 1, 700, KINFER_DTYPE_FP32, NULL, NULL, KINFER_NAN_REJECT, 8);
    static float x[3 * 256];
    char msg[KINFER_ERROR_MSG_MAX];
    kinfer_tensor t = input(x, 3, 255, 2);
    assert_int_equal(check(&f, &t, 1, msg), KINFER_ERR_INVALID_REQUEST);
    assert_string_equal(msg, "input 'x': expected FP32 [n, 256] (n >= 1) or [256], got FP32 [3, "
                             "255]");
    t = input(x, 3, 256, 2);
    t.dtype = KINFER_DTYPE_FP16;
    t.nbytes /= 2;
    assert_int_equal(check(&f, &t, 1, msg), KINFER_ERR_INVALID_REQUEST);
    assert_non_null(strstr(msg, "got FP16 [3, 256]"));
    t = input(x, 1, 256, 1);
    t.ndim = 0;
    assert_int_equal(check(&f, &t, 1, msg), KINFER_ERR_INVALID_REQUEST);
    assert_non_null(strstr(msg, "got FP32 []"));
    t = input(x, 3, 256, 2);
    t.ndim = 3;
    t.shape[0] = 1;
    t.shape[1] = 3;
    t.shape[2] = 256;
    assert_int_equal(check(&f, &t, 1, msg), KINFER_ERR_INVALID_REQUEST);
    assert_non_null(strstr(msg, "got FP32 [1, 3, 256]"));
    t = input(x, 0, 256, 2);
    assert_int_equal(check(&f, &t, 1, msg), KINFER_ERR_INVALID_REQUEST);
    assert_non_null(strstr(msg, "got FP32 [0, 256]"));
    t = input(x, 3, 256, 2);
    t.shape[0] = -3;
    assert_int_equal(check(&f, &t, 1, msg), KINFER_ERR_INVALID_REQUEST);
    t = input(x, 3, 256, 2);
    t.nbytes -= 4;
    assert_int_equal(check(&f, &t, 1, msg), KINFER_ERR_INVALID_REQUEST);
    assert_non_null(strstr(msg, "needs 3072 data bytes, got 3068"));
    t = input(x, 3, 256, 2);
    assert_int_equal(check(&f, &t, 0, msg), KINFER_ERR_INVALID_REQUEST);
    assert_non_null(strstr(msg, "expected exactly 1 input tensor"));
    kinfer_tensor two[2] = {t, t};
    assert_int_equal(check(&f, two, 2, msg), KINFER_ERR_INVALID_REQUEST);
    assert_non_null(strstr(msg, "got 2"));
    /* any name is accepted; parameters are ignored */
    t.name = (kinfer_str){"features", 8};
    kinfer_param p = {{"normalize", 9}, {"true", 4}};
    kinfer_request_cost cost;
    kinfer_error err;
    assert_int_equal(kinfer_model_check_request(f.model, &t, 1, &p, 1, &cost, &err), KINFER_OK);
    assert_int_equal(cost.rows, 3);
    assert_int_equal(cost.tokens, 0);
    t = input(x, 1, 256, 1);
    assert_int_equal(kinfer_model_check_request(f.model, &t, 1, NULL, 0, &cost, &err), KINFER_OK);
    assert_int_equal(cost.rows, 1);
    fixture_free(&f);
}

static void test_nan_reject(void **state) {
    (void)state;
    const uint32_t dims[] = {4, 3};
    fixture f;
    fixture_new(&f, dims, 1, 800, KINFER_DTYPE_FP32, NULL, NULL, KINFER_NAN_REJECT, 4);
    float x[8] = {0, 1, 2, 3, 4, NAN, 6, 7};
    kinfer_tensor t = input(x, 2, 4, 2);
    char msg[KINFER_ERROR_MSG_MAX];
    assert_int_equal(check(&f, &t, 1, msg), KINFER_ERR_INVALID_REQUEST);
    assert_non_null(strstr(msg, "element 5 (row 1, column 1) is NaN"));
    x[5] = 5;
    x[2] = -INFINITY;
    assert_int_equal(check(&f, &t, 1, msg), KINFER_ERR_INVALID_REQUEST);
    assert_non_null(strstr(msg, "element 2 (row 0, column 2) is -Inf"));
    x[2] = 2;
    assert_int_equal(check(&f, &t, 1, msg), KINFER_OK);
    /* unaligned input data is read safely */
    uint8_t raw[4 * 4 + 1];
    float vals[4] = {1, 2, INFINITY, 4};
    memcpy(raw + 1, vals, sizeof(vals));
    t = input((const float *)(const void *)(raw + 1), 1, 4, 1);
    assert_int_equal(check(&f, &t, 1, msg), KINFER_ERR_INVALID_REQUEST);
    assert_non_null(strstr(msg, "element 2"));
    fixture_free(&f);
}

static void test_nan_pass(void **state) {
    (void)state;
    const uint32_t dims[] = {4, 3};
    fixture f;
    /* activation "none" on a single layer: NaN reaches the output as IEEE says */
    fixture_new(&f, dims, 1, 900, KINFER_DTYPE_FP32, NULL, "none", KINFER_NAN_PASS, 4);
    float x[8] = {0, 1, 2, 3, 4, NAN, 6, 7};
    kinfer_tensor t = input(x, 2, 4, 2);
    kinfer_batch_item item;
    memset(&item, 0, sizeof(item));
    item.inputs = &t;
    item.ninputs = 1;
    kinfer_error err;
    assert_int_equal(kinfer_model_check_request(f.model, &t, 1, NULL, 0, &item.cost, &err),
                     KINFER_OK);
    assert_int_equal(kinfer_replica_execute(f.replica, &item, 1, &err), KINFER_OK);
    const float *y = item.outputs[0].data;
    for (int c = 0; c < 3; c++) {
        assert_true(isfinite(y[c])); /* row 0 untouched */
        assert_true(isnan(y[3 + c]));
    }
    fixture_free(&f);
}

static void test_per_item_failure_and_limits(void **state) {
    (void)state;
    const uint32_t dims[] = {5, 2};
    fixture f;
    fixture_new(&f, dims, 1, 1000, KINFER_DTYPE_FP32, NULL, NULL, KINFER_NAN_REJECT, 4);
    float a[5] = {1, 2, 3, 4, 5}, b[6] = {0};
    kinfer_tensor ta = input(a, 1, 5, 1), tb = input(b, 1, 6, 1);
    kinfer_batch_item items[3];
    memset(items, 0, sizeof(items));
    items[0].inputs = &ta;
    items[0].ninputs = 1;
    items[0].cost.rows = 1;
    items[1].inputs = &tb; /* wrong width: this item alone fails */
    items[1].ninputs = 1;
    items[1].cost.rows = 1;
    items[2].inputs = &ta;
    items[2].ninputs = 1;
    items[2].cost.rows = 1;
    kinfer_error err;
    assert_int_equal(kinfer_replica_execute(f.replica, items, 3, &err), KINFER_OK);
    assert_int_equal(items[0].status, KINFER_OK);
    assert_int_equal(items[1].status, KINFER_ERR_INVALID_REQUEST);
    assert_int_equal(items[1].noutputs, 0);
    assert_non_null(strstr(items[1].error, "expected FP32 [n, 5]"));
    assert_int_equal(items[2].status, KINFER_OK);
    /* the failed item takes no rows: item 2 follows item 0 directly */
    assert_ptr_equal((const float *)items[2].outputs[0].data,
                     (const float *)items[0].outputs[0].data + 2);
    assert_memory_equal(items[0].outputs[0].data, items[2].outputs[0].data, 2 * sizeof(float));
    /* cost.rows that disagrees with the input fails that item */
    items[1].inputs = &ta;
    items[1].cost.rows = 2;
    assert_int_equal(kinfer_replica_execute(f.replica, items, 3, &err), KINFER_OK);
    assert_int_equal(items[1].status, KINFER_ERR_INVALID_REQUEST);
    /* more rows than max_rows fails the whole batch */
    items[1].cost.rows = 3;
    assert_int_equal(kinfer_replica_execute(f.replica, items, 3, &err), KINFER_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "exceeds max_rows 4"));
    /* an empty batch is fine */
    assert_int_equal(kinfer_replica_execute(f.replica, items, 0, &err), KINFER_OK);
    fixture_free(&f);
}

/* The pipelined seam on a backend without async support: one batch in
 * flight, the same results as execute, FIFO collect with the submitted
 * array handed back, and a clear error for each misuse. */
static void test_submit_collect_seam(void **state) {
    (void)state;
    const uint32_t dims[] = {5, 3, 2};
    fixture f;
    fixture_new(&f, dims, 2, 1001, KINFER_DTYPE_FP32, "tanh", "none", KINFER_NAN_REJECT, 4);
    float a[10], b[5];
    for (int i = 0; i < 10; i++)
        a[i] = (float)i / 10.0f - 0.3f;
    for (int i = 0; i < 5; i++)
        b[i] = 0.7f - (float)i / 5.0f;
    kinfer_tensor ta = input(a, 2, 5, 2), tb = input(b, 1, 5, 1);
    kinfer_batch_item ref[2], items[2];
    memset(ref, 0, sizeof(ref));
    ref[0].inputs = &ta;
    ref[0].ninputs = 1;
    ref[0].cost.rows = 2;
    ref[1].inputs = &tb;
    ref[1].ninputs = 1;
    ref[1].cost.rows = 1;
    memcpy(items, ref, sizeof(items));
    kinfer_error err;
    assert_int_equal(kinfer_replica_max_in_flight(f.replica), 1);
    assert_int_equal(kinfer_replica_in_flight(f.replica), 0);
    /* execute's results, copied out (they live until the next call) */
    assert_int_equal(kinfer_replica_execute(f.replica, ref, 2, &err), KINFER_OK);
    float want[6];
    memcpy(want, ref[0].outputs[0].data, 4 * sizeof(float));
    memcpy(want + 4, ref[1].outputs[0].data, 2 * sizeof(float));

    /* collect with nothing in flight */
    kinfer_batch_item *got = items;
    assert_int_equal(kinfer_replica_collect(f.replica, &got, &err), KINFER_ERR_INVALID_ARG);
    assert_null(got);
    assert_non_null(strstr(err.msg, "no batch in flight"));

    assert_int_equal(kinfer_replica_submit(f.replica, items, 2, &err), KINFER_OK);
    assert_int_equal(kinfer_replica_in_flight(f.replica), 1);
    /* a second submit past max_in_flight, and execute with one in flight */
    assert_int_equal(kinfer_replica_submit(f.replica, items, 1, &err), KINFER_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "already in flight (at most 1)"));
    assert_int_equal(kinfer_replica_execute(f.replica, items, 1, &err), KINFER_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "in flight"));
    assert_int_equal(kinfer_replica_in_flight(f.replica), 1);

    assert_int_equal(kinfer_replica_collect(f.replica, &got, &err), KINFER_OK);
    assert_ptr_equal(got, items);
    assert_int_equal(kinfer_replica_in_flight(f.replica), 0);
    assert_int_equal(items[0].status, KINFER_OK);
    assert_int_equal(items[1].status, KINFER_OK);
    assert_memory_equal(items[0].outputs[0].data, want, 4 * sizeof(float));
    assert_memory_equal(items[1].outputs[0].data, want + 4, 2 * sizeof(float));

    /* a submit that fails (rows over max_rows) leaves nothing in flight */
    items[0].cost.rows = 4;
    assert_int_equal(kinfer_replica_submit(f.replica, items, 2, &err), KINFER_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "exceeds max_rows 4"));
    assert_int_equal(kinfer_replica_in_flight(f.replica), 0);
    items[0].cost.rows = 2;

    /* an empty batch goes in and out; NULL items is fine to collect into */
    assert_int_equal(kinfer_replica_submit(f.replica, items, 0, &err), KINFER_OK);
    assert_int_equal(kinfer_replica_collect(f.replica, NULL, &err), KINFER_OK);
    /* nitems without an array */
    assert_int_equal(kinfer_replica_submit(f.replica, NULL, 1, &err), KINFER_ERR_INVALID_ARG);

    /* a bad item fails alone at collect; a good one still computes */
    float c[6] = {0};
    kinfer_tensor tc = input(c, 1, 6, 1);
    items[0].inputs = &tc;
    items[0].cost.rows = 1;
    assert_int_equal(kinfer_replica_submit(f.replica, items, 2, &err), KINFER_OK);
    assert_int_equal(kinfer_replica_collect(f.replica, &got, &err), KINFER_OK);
    assert_int_equal(items[0].status, KINFER_ERR_INVALID_REQUEST);
    assert_int_equal(items[1].status, KINFER_OK);
    assert_memory_equal(items[1].outputs[0].data, want + 4, 2 * sizeof(float));
    fixture_free(&f);
}

static void test_example_model(void **state) {
    (void)state;
    char path[1024];
    snprintf(path, sizeof(path), "%s/models/example_mlp.safetensors", KINFER_SOURCE_DIR);
    kinfer_model_options o;
    memset(&o, 0, sizeof(o));
    o.kind = "mlp";
    o.path = path;
    kinfer_model *m;
    kinfer_replica *r;
    kinfer_error err;
    assert_int_equal(kinfer_model_load(&o, &m, &err), KINFER_OK);
    assert_string_equal(kinfer_model_describe(m), "mlp 8-16-1 relu/sigmoid");
    assert_int_equal(kinfer_replica_new(m, "cpu", 2, &r, &err), KINFER_OK);
    float x[8];
    for (int i = 0; i < 8; i++)
        x[i] = (float)i / 8.0f;
    kinfer_tensor t = input(x, 1, 8, 1);
    kinfer_batch_item item;
    memset(&item, 0, sizeof(item));
    item.inputs = &t;
    item.ninputs = 1;
    item.cost.rows = 1;
    assert_int_equal(kinfer_replica_execute(r, &item, 1, &err), KINFER_OK);
    /* printed by scripts/make_test_models.py from numpy's forward pass */
    float y = ((const float *)item.outputs[0].data)[0];
    assert_true(fabs(y - 0.377400786) < 1e-6);
    kinfer_replica_destroy(r);
    kinfer_model_destroy(m);
}

static void test_softmax_special_values(void **state) {
    (void)state;
    float y[9] = {1, NAN, 2, 1000, 1000, -1000, -INFINITY, 0, 0};
    kinfer_softmax_rows_cpu(y, 3, 3);
    assert_true(isnan(y[0]) && isnan(y[1]) && isnan(y[2]));
    assert_true(fabsf(y[3] - 0.5f) < 1e-7f && fabsf(y[4] - 0.5f) < 1e-7f && y[5] == 0.0f);
    assert_true(y[6] == 0.0f && fabsf(y[7] - 0.5f) < 1e-7f);
    float b[4] = {-1, 0, 1, 2}, bias[2] = {1, -1};
    kinfer_bias_act_cpu(b, bias, 2, 2, KINFER_ACT_RELU);
    assert_true(b[0] == 0.0f && b[1] == 0.0f && b[2] == 2.0f && b[3] == 1.0f);
    kinfer_bias_act_cpu(b, NULL, 2, 2, KINFER_ACT_NONE);
    assert_true(b[2] == 2.0f);
}

/* Inserts one space into a safetensors header (fixing the length prefix) so
 * that every tensor's data lands on an odd address in the mapping. */
static void misalign_file(const char *src, const char *dst) {
    FILE *f = fopen(src, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)len + 1);
    assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | buf[i];
    uint64_t nh = hlen + 1;
    for (int i = 0; i < 8; i++)
        buf[i] = (uint8_t)(nh >> (8 * i));
    f = fopen(dst, "wb");
    fwrite(buf, 1, 8 + hlen, f);
    fputc(' ', f);
    fwrite(buf + 8 + hlen, 1, (size_t)len - 8 - hlen, f);
    fclose(f);
    free(buf);
}

static void test_f32_in_place_and_unaligned_copy(void **state) {
    (void)state;
    const uint32_t dims[] = {7, 13, 3};
    tu_mlp ref;
    tu_mlp_random(&ref, dims, 2, 1100, KINFER_DTYPE_FP32);
    char a[600], b[600];
    snprintf(a, sizeof(a), "%s/aligned.st", dir);
    snprintf(b, sizeof(b), "%s/unaligned.st", dir);
    assert_int_equal(tu_mlp_write(&ref, a, KINFER_DTYPE_FP32, NULL, NULL), KINFER_OK);
    misalign_file(a, b);
    kinfer_model_options o;
    memset(&o, 0, sizeof(o));
    o.path = a;
    mlp_model *ma, *mb;
    kinfer_error err;
    assert_int_equal(mlp_model_load(&o, &ma, &err), KINFER_OK);
    o.path = b;
    assert_int_equal(mlp_model_load(&o, &mb, &err), KINFER_OK);
    /* aligned F32 is used from the mapping; misaligned is copied */
    assert_null(ma->owned);
    assert_ptr_equal(ma->layers[0].weight,
                     kinfer_safetensors_find(ma->file, "layers.0.weight")->data);
    assert_non_null(mb->owned);
    assert_true((uintptr_t)kinfer_safetensors_find(mb->file, "layers.0.weight")->data % 4 != 0);
    for (int l = 0; l < 2; l++) {
        assert_memory_equal(ma->layers[l].weight, ref.w[l], dims[l] * dims[l + 1] * 4);
        assert_memory_equal(mb->layers[l].weight, ref.w[l], dims[l] * dims[l + 1] * 4);
        assert_memory_equal(mb->layers[l].bias, ref.b[l], dims[l + 1] * 4);
    }
    mlp_model_destroy(ma);
    mlp_model_destroy(mb);
    tu_mlp_free(&ref);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_odd_sizes),
        cmocka_unit_test(test_each_activation),
        cmocka_unit_test(test_softmax_rows_sum_to_one),
        cmocka_unit_test(test_half_weights),
        cmocka_unit_test(test_batched_equals_single),
        cmocka_unit_test(test_request_contract),
        cmocka_unit_test(test_nan_reject),
        cmocka_unit_test(test_nan_pass),
        cmocka_unit_test(test_per_item_failure_and_limits),
        cmocka_unit_test(test_submit_collect_seam),
        cmocka_unit_test(test_example_model),
        cmocka_unit_test(test_softmax_special_values),
        cmocka_unit_test(test_f32_in_place_and_unaligned_copy),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
