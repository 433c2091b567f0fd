/* test_cuda_mlp.c — random MLPs end to end through the seam
 * (kinfer_model_load, kinfer_replica_new("cuda:0"), kinfer_replica_execute)
 * against the CPU replica of the same model and a double reference: odd
 * widths, every activation and output activation, several items per batch
 * of uneven row counts, a bad item among good ones, repeated batches on one
 * replica (staging buffers reused), NaN/Inf passed through, FP16/BF16,
 * two batches in flight (kinfer_replica_submit/collect), and the device
 * errors. Skips loudly (exit 77) without a GPU.
 *
 * Tolerances, with scale = max(|ref|, sum of |terms| of the last layer's
 * dot product) from the double reference:
 *   FP32: |cuda - cpu| <= 1e-6 + 1e-5 * scale  (relative 1e-5, abs floor 1e-6)
 *   FP16: |cuda - ref| <= 1e-3 + 1e-2 * scale  (operands rounded to 11 bits)
 *   BF16: |cuda - ref| <= 1e-2 + 5e-2 * scale  (operands rounded to 8 bits)
 * NaN must be NaN on both sides, infinities equal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kinfer/kinfer_model.h"
#include "test_cuda_util.h"
#include "test_mlp_util.h"

typedef struct mlp_case {
    int nlayers;
    uint32_t dims[6];
    const char *act, *out_act, *precision;
    uint32_t max_rows;
} mlp_case;

static const mlp_case cases[] = {
    {1, {1, 1}, "relu", "none", "fp32", 1},
    {2, {13, 37, 3}, "relu", "none", "fp32", 77},
    {3, {7, 129, 255, 5}, "gelu", "softmax", "fp32", 300},
    {2, {1000, 257, 1}, "tanh", "sigmoid", "fp32", 64},
    {4, {31, 64, 33, 17, 9}, "sigmoid", "softmax", "fp32", 513},
    {3, {256, 1024, 1024, 16}, "relu", "none", "fp32", 1024},
    {2, {13, 37, 3}, "relu", "none", "fp16", 77},
    {3, {64, 200, 130, 10}, "gelu", "softmax", "fp16", 256},
    {3, {64, 200, 130, 10}, "tanh", "sigmoid", "bf16", 256},
    {3, {256, 1024, 1024, 16}, "relu", "none", "bf16", 1024},
};

typedef struct fixture {
    char *dir;
    tu_mlp ref;
    kinfer_model *model;
    kinfer_replica *cpu, *cuda;
} fixture;

static void fixture_open(fixture *f, const mlp_case *c, uint64_t seed, kinfer_nan_policy nan) {
    memset(f, 0, sizeof(*f));
    f->dir = tu_tempdir();
    assert_non_null(f->dir);
    tu_mlp_random(&f->ref, c->dims, c->nlayers, seed, KINFER_DTYPE_FP32);
    char path[600];
    snprintf(path, sizeof(path), "%s/m.safetensors", f->dir);
    assert_int_equal(tu_mlp_write(&f->ref, path, KINFER_DTYPE_FP32, c->act, c->out_act), KINFER_OK);
    kinfer_model_options o = {.name = "t",
                              .kind = "mlp",
                              .path = path,
                              .nan_policy = nan,
                              .precision = c->precision,
                              .cpu_threads = 1};
    kinfer_error err;
    kinfer_err rc = kinfer_model_load(&o, &f->model, &err);
    if (rc != KINFER_OK)
        fprintf(stderr, "load: %s\n", err.msg);
    assert_int_equal(rc, KINFER_OK);
    rc = kinfer_replica_new(f->model, "cpu", c->max_rows, &f->cpu, &err);
    if (rc != KINFER_OK)
        fprintf(stderr, "cpu replica: %s\n", err.msg);
    assert_int_equal(rc, KINFER_OK);
    rc = kinfer_replica_new(f->model, "cuda:0", c->max_rows, &f->cuda, &err);
    if (rc != KINFER_OK)
        fprintf(stderr, "cuda replica: %s\n", err.msg);
    assert_int_equal(rc, KINFER_OK);
    assert_string_equal(kinfer_replica_device(f->cuda), "cuda:0");
}

static void fixture_close(fixture *f) {
    kinfer_replica_destroy(f->cuda);
    kinfer_replica_destroy(f->cpu);
    kinfer_model_destroy(f->model);
    tu_mlp_free(&f->ref);
    tu_rmdir(f->dir);
}

/* A batch of items with uneven row counts summing to at most max_rows. */
typedef struct batch {
    size_t nitems;
    kinfer_tensor in[64];
    kinfer_batch_item items[64];
    float *x; /* all rows, item after item */
    size_t rows;
} batch;

static void batch_make(batch *b, const mlp_case *c, tu_rng *rng, uint32_t rows) {
    uint32_t in = c->dims[0];
    memset(b, 0, sizeof(*b));
    b->x = malloc((size_t)rows * in * sizeof(float) + 1);
    for (size_t i = 0; i < (size_t)rows * in; i++)
        b->x[i] = tu_uniform(rng) * 2.0f;
    b->rows = rows;
    uint32_t done = 0;
    while (done < rows && b->nitems < 64) {
        uint32_t left = rows - done;
        uint32_t n = b->nitems == 63 ? left : 1 + (uint32_t)(tu_next(rng) % 9);
        if (n > left)
            n = left;
        kinfer_tensor *t = &b->in[b->nitems];
        t->name = (kinfer_str){"x", 1};
        t->dtype = KINFER_DTYPE_FP32;
        /* Single rows alternate between rank 1 and rank 2. */
        if (n == 1 && b->nitems % 2) {
            t->ndim = 1;
            t->shape[0] = in;
        } else {
            t->ndim = 2;
            t->shape[0] = n;
            t->shape[1] = in;
        }
        t->data = b->x + (size_t)done * in;
        t->nbytes = (size_t)n * in * sizeof(float);
        kinfer_batch_item *it = &b->items[b->nitems];
        it->inputs = t;
        it->ninputs = 1;
        it->cost.rows = n;
        b->nitems++;
        done += n;
    }
    b->rows = done;
}

/* Copies the outputs of a run (they live in the replica until its next
 * execute) into one [rows, out] array. */
static float *collect(const batch *b, uint32_t out) {
    float *y = malloc(b->rows * out * sizeof(float) + 1);
    size_t off = 0;
    for (size_t i = 0; i < b->nitems; i++) {
        const kinfer_batch_item *it = &b->items[i];
        assert_int_equal(it->status, KINFER_OK);
        assert_int_equal(it->noutputs, 1);
        const kinfer_tensor *t = &it->outputs[0];
        assert_int_equal(t->dtype, KINFER_DTYPE_FP32);
        assert_int_equal(t->nbytes, (size_t)it->cost.rows * out * sizeof(float));
        assert_int_equal(t->shape[t->ndim - 1], out);
        memcpy(y + off, t->data, t->nbytes);
        off += (size_t)it->cost.rows * out;
    }
    return y;
}

static int compare(const float *got, const float *cpu, const double *ref, const double *mag,
                   size_t n, const char *precision) {
    double abs_tol = 1e-6, rel_tol = 1e-5;
    if (strcmp(precision, "fp16") == 0) {
        abs_tol = 1e-3;
        rel_tol = 1e-2;
    } else if (strcmp(precision, "bf16") == 0) {
        abs_tol = 1e-2;
        rel_tol = 5e-2;
    }
    int fp32 = strcmp(precision, "fp32") == 0;
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        double want = fp32 ? (double)cpu[i] : ref[i];
        int ok;
        if (isnan(want) || isnan(got[i]))
            ok = isnan(want) && isnan(got[i]);
        else if (isinf(want) || isinf(got[i]))
            ok = (double)got[i] == want;
        else {
            double scale = fabs(ref[i]) > mag[i] ? fabs(ref[i]) : mag[i];
            ok = fabs((double)got[i] - want) <= abs_tol + rel_tol * scale;
        }
        if (!ok && bad++ < 5)
            fprintf(stderr, "%s at %zu: cuda %.9g %s %.9g (ref %.9g, scale %.3g)\n", precision, i,
                    got[i], fp32 ? "cpu" : "ref", want, ref[i], mag[i]);
    }
    return bad == 0;
}

static void run_case(const mlp_case *c, uint64_t seed) {
    fixture f;
    fixture_open(&f, c, seed, KINFER_NAN_PASS);
    tu_rng rng = {seed * 31 + 1};
    uint32_t out = c->dims[c->nlayers];
    /* Several batches on the same replicas: 1 row, max_rows, and odd sizes
     * in between, so reused staging buffers must not leak old rows. */
    uint32_t sizes[4] = {1, c->max_rows, c->max_rows > 2 ? c->max_rows / 2 + 1 : 1,
                         c->max_rows > 3 ? c->max_rows - 3 : 1};
    for (int s = 0; s < 4; s++) {
        batch b;
        batch_make(&b, c, &rng, sizes[s]);
        kinfer_error err;
        kinfer_err rc = kinfer_replica_execute(f.cpu, b.items, b.nitems, &err);
        assert_int_equal(rc, KINFER_OK);
        float *cpu = collect(&b, out);
        rc = kinfer_replica_execute(f.cuda, b.items, b.nitems, &err);
        if (rc != KINFER_OK)
            fprintf(stderr, "cuda execute: %s\n", err.msg);
        assert_int_equal(rc, KINFER_OK);
        float *gpu = collect(&b, out);
        double *ref = malloc(b.rows * out * sizeof(double) + 1);
        double *mag = malloc(b.rows * out * sizeof(double) + 1);
        tu_reference(&f.ref, b.x, b.rows, c->act, c->out_act, ref, mag);
        if (!compare(gpu, cpu, ref, mag, b.rows * out, c->precision))
            fail_msg("mlp %u layers in=%u out=%u %s/%s %s, batch of %zu rows in %zu items",
                     c->nlayers, c->dims[0], out, c->act, c->out_act, c->precision, b.rows,
                     b.nitems);
        free(ref);
        free(mag);
        free(cpu);
        free(gpu);
        free(b.x);
    }
    fixture_close(&f);
}

static void test_random_mlps(void **state) {
    (void)state;
    /* Under compute-sanitizer (tests/gpu/run.sh) the 1024-row cases are
     * left out: memcheck slows every kernel many times over. */
    const char *small = getenv("KINFER_GPU_TEST_SMALL");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (small && *small && cases[i].max_rows >= 1024)
            continue;
        run_case(&cases[i], 1000 + i);
    }
}

/* One malformed item among good ones: it alone fails, on both backends,
 * in a small batch and in one large enough to run as two pipelined parts
 * (mlp_cuda.c splits at 256 rows). */
static void test_bad_item_isolated(void **state) {
    (void)state;
    const struct {
        const mlp_case *c;
        uint32_t rows;
    } runs[] = {{&cases[1], 20}, {&cases[2], 300}};
    for (size_t k = 0; k < 2; k++) {
        const mlp_case *c = runs[k].c;
        uint32_t out = c->dims[c->nlayers];
        fixture f;
        fixture_open(&f, c, 5 + k, KINFER_NAN_PASS);
        tu_rng rng = {77 + k};
        batch b;
        batch_make(&b, c, &rng, runs[k].rows);
        assert_true(b.nitems >= 3);
        b.in[1].shape[b.in[1].ndim - 1] = c->dims[0] + 1; /* wrong width */
        kinfer_error err;
        assert_int_equal(kinfer_replica_execute(f.cuda, b.items, b.nitems, &err), KINFER_OK);
        assert_int_equal(b.items[1].status, KINFER_ERR_INVALID_REQUEST);
        size_t total = 0;
        for (size_t i = 0; i < b.nitems; i++)
            if (i != 1) {
                assert_int_equal(b.items[i].status, KINFER_OK);
                total += b.items[i].outputs[0].nbytes / sizeof(float);
            }
        float *gpu = malloc(total * sizeof(float) + 1), *p = gpu;
        for (size_t i = 0; i < b.nitems; i++)
            if (i != 1) {
                memcpy(p, b.items[i].outputs[0].data, b.items[i].outputs[0].nbytes);
                p += b.items[i].outputs[0].nbytes / sizeof(float);
            }
        assert_int_equal(kinfer_replica_execute(f.cpu, b.items, b.nitems, &err), KINFER_OK);
        assert_int_equal(b.items[1].status, KINFER_ERR_INVALID_REQUEST);
        p = gpu;
        for (size_t i = 0; i < b.nitems; i++) {
            if (i == 1)
                continue;
            const float *cpu = b.items[i].outputs[0].data;
            size_t n = b.items[i].outputs[0].nbytes / sizeof(float);
            assert_int_equal(n, (size_t)b.items[i].cost.rows * out);
            for (size_t j = 0; j < n; j++)
                if (!(fabs(p[j] - cpu[j]) <= 1e-5 * (1 + fabs(cpu[j]))))
                    fail_msg("item %zu element %zu: cuda %.9g cpu %.9g", i, j, p[j], cpu[j]);
            p += n;
        }
        free(gpu);
        free(b.x);
        fixture_close(&f);
    }
}

/* NaN and Inf in the inputs (nan_policy pass) go through both backends the
 * same way: rows that see them give the same NaN/Inf pattern. */
static void test_nan_inf_pass_through(void **state) {
    (void)state;
    const char *acts[] = {"relu", "gelu", "tanh", "sigmoid"};
    const char *outs[] = {"none", "softmax", "sigmoid", "none"};
    for (int a = 0; a < 4; a++) {
        mlp_case c = {2, {9, 21, 4}, acts[a], outs[a], "fp32", 8};
        fixture f;
        fixture_open(&f, &c, 11 + a, KINFER_NAN_PASS);
        tu_rng rng = {300 + a};
        batch b;
        batch_make(&b, &c, &rng, 8);
        b.x[0] = NAN;
        b.x[9 * 2 + 3] = INFINITY;
        b.x[9 * 4 + 8] = -INFINITY;
        kinfer_error err;
        assert_int_equal(kinfer_replica_execute(f.cpu, b.items, b.nitems, &err), KINFER_OK);
        float *cpu = collect(&b, 4);
        assert_int_equal(kinfer_replica_execute(f.cuda, b.items, b.nitems, &err), KINFER_OK);
        float *gpu = collect(&b, 4);
        for (size_t i = 0; i < b.rows * 4; i++) {
            if (isnan(cpu[i]) || isnan(gpu[i]))
                assert_true(isnan(cpu[i]) && isnan(gpu[i]));
            else if (isinf(cpu[i]) || isinf(gpu[i]))
                assert_true(cpu[i] == gpu[i]);
            else
                assert_true(fabs(cpu[i] - gpu[i]) <= 1e-5 * (1 + fabs(cpu[i])));
        }
        free(cpu);
        free(gpu);
        free(b.x);
        fixture_close(&f);
    }
}

/* Double buffering through the seam: two batches submitted before either
 * is collected, collected in order with the submitted arrays handed back,
 * each equal to the CPU replica within the case's tolerance; a third
 * submit while two are in flight is refused and a failed submit leaves the
 * one in flight collectable; a collected batch's outputs stay intact while
 * the next batch is submitted and has run (its results go to another
 * buffer). Sizes include a batch split in two parts (>= 256 rows). */
static void test_submit_submit_collect_collect(void **state) {
    (void)state;
    const mlp_case *runs[] = {&cases[1], &cases[2], &cases[7]};
    for (size_t k = 0; k < sizeof(runs) / sizeof(runs[0]); k++) {
        const mlp_case *c = runs[k];
        uint32_t out = c->dims[c->nlayers];
        fixture f;
        fixture_open(&f, c, 40 + k, KINFER_NAN_PASS);
        assert_int_equal(kinfer_replica_max_in_flight(f.cuda), 2);
        assert_int_equal(kinfer_replica_max_in_flight(f.cpu), 1);
        tu_rng rng = {900 + k};
        batch *b = calloc(3, sizeof(*b));
        float *cpu[3], *ref_y[3];
        double *ref[3], *mag[3];
        uint32_t sizes[3] = {c->max_rows, c->max_rows > 2 ? c->max_rows / 2 + 1 : 1, 1};
        kinfer_error err;
        for (int i = 0; i < 3; i++) {
            batch_make(&b[i], c, &rng, sizes[i]);
            assert_int_equal(kinfer_replica_execute(f.cpu, b[i].items, b[i].nitems, &err),
                             KINFER_OK);
            cpu[i] = collect(&b[i], out);
            ref[i] = malloc(b[i].rows * out * sizeof(double) + 1);
            mag[i] = malloc(b[i].rows * out * sizeof(double) + 1);
            tu_reference(&f.ref, b[i].x, b[i].rows, c->act, c->out_act, ref[i], mag[i]);
            ref_y[i] = NULL;
        }
        kinfer_batch_item *got = NULL;
        assert_int_equal(kinfer_replica_submit(f.cuda, b[0].items, b[0].nitems, &err), KINFER_OK);
        assert_int_equal(kinfer_replica_submit(f.cuda, b[1].items, b[1].nitems, &err), KINFER_OK);
        assert_int_equal(kinfer_replica_in_flight(f.cuda), 2);
        assert_int_equal(kinfer_replica_submit(f.cuda, b[2].items, b[2].nitems, &err),
                         KINFER_ERR_INVALID_ARG);
        assert_non_null(strstr(err.msg, "already in flight"));
        assert_int_equal(kinfer_replica_collect(f.cuda, &got, &err), KINFER_OK);
        assert_ptr_equal(got, b[0].items);
        ref_y[0] = collect(&b[0], out);
        /* b[2] goes in while b[1] runs; after both have run on the device
         * b[0]'s outputs must still hold what was collected. */
        assert_int_equal(kinfer_replica_submit(f.cuda, b[2].items, b[2].nitems, &err), KINFER_OK);
#ifdef KINFER_HAVE_CUDA
        assert_int_equal(cudaDeviceSynchronize(), cudaSuccess);
#endif
        float *again = collect(&b[0], out);
        assert_memory_equal(again, ref_y[0], b[0].rows * out * sizeof(float));
        free(again);
        assert_int_equal(kinfer_replica_collect(f.cuda, &got, &err), KINFER_OK);
        assert_ptr_equal(got, b[1].items);
        ref_y[1] = collect(&b[1], out);
        /* a submit that fails (too many rows) leaves b[2] collectable */
        batch big;
        batch_make(&big, c, &rng, c->max_rows);
        big.items[0].cost.rows += 1;
        assert_int_equal(kinfer_replica_submit(f.cuda, big.items, big.nitems, &err),
                         KINFER_ERR_INVALID_ARG);
        assert_int_equal(kinfer_replica_in_flight(f.cuda), 1);
        free(big.x);
        assert_int_equal(kinfer_replica_collect(f.cuda, &got, &err), KINFER_OK);
        assert_ptr_equal(got, b[2].items);
        ref_y[2] = collect(&b[2], out);
        assert_int_equal(kinfer_replica_collect(f.cuda, &got, &err), KINFER_ERR_INVALID_ARG);
        for (int i = 0; i < 3; i++) {
            if (!compare(ref_y[i], cpu[i], ref[i], mag[i], b[i].rows * out, c->precision))
                fail_msg("pipelined batch %d of %zu rows, case %zu (%s)", i, b[i].rows, k,
                         c->precision);
            free(ref_y[i]);
            free(cpu[i]);
            free(ref[i]);
            free(mag[i]);
            free(b[i].x);
        }
        free(b);
        fixture_close(&f);
    }
}

/* A CUDA ordinal past the last device fails with DEVICE, naming it. */
static void test_missing_device_is_an_error(void **state) {
    (void)state;
    const mlp_case *c = &cases[1];
    fixture f;
    fixture_open(&f, c, 3, KINFER_NAN_PASS);
    char dev[32];
    snprintf(dev, sizeof(dev), "cuda:%d", kinfer_cuda_device_count());
    kinfer_replica *r = NULL;
    kinfer_error err;
    assert_int_equal(kinfer_replica_new(f.model, dev, 8, &r, &err), KINFER_ERR_DEVICE);
    assert_null(r);
    assert_non_null(strstr(err.msg, dev));
    fixture_close(&f);
}

int main(void) {
    int skip = tc_require_gpu("test_cuda_mlp");
    if (skip)
        return skip;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_mlps),
        cmocka_unit_test(test_bad_item_isolated),
        cmocka_unit_test(test_nan_inf_pass_through),
        cmocka_unit_test(test_submit_submit_collect_collect),
        cmocka_unit_test(test_missing_device_is_an_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
