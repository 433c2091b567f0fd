/* bench_kernels_cpu_mlp.c — the mlp CPU backend against bare OpenBLAS on
 * the same shapes in the same run: how much the seam, packing and the C
 * epilogue add on top of the GEMMs. Each batch is B single-row requests.
 *
 *   bench_kernels_cpu_mlp [--dims 256,1024,1024,16] [--batches 1,16,64,256]
 *       [--threads 1] [--min-ms 300]
 * Prints median µs per batch and GFLOP/s for both. Not a test. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ops/blas_cpu.h"
#include "kinfer/kinfer_clock.h"
#include "kinfer/kinfer_model.h"
#include "formats/safetensors.h"

#define MAXL 16

static int parse_list(const char *s, uint32_t *out) {
    int n = 0;
    while (*s && n < MAXL) {
        char *end;
        unsigned long v = strtoul(s, &end, 10);
        if (end == s || v == 0 || v > (1u << 20))
            return -1;
        out[n++] = (uint32_t)v;
        if (*end != ',' && *end)
            return -1;
        s = *end ? end + 1 : end;
    }
    return n;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Runs fn until min_ms passed (at least 5 times); returns the median µs. */
typedef void (*run_fn)(void *ctx);
static double median_us(run_fn fn, void *ctx, int min_ms) {
    static int64_t t[100000];
    int n = 0;
    int64_t start = kinfer_mono_us();
    while (n < 100000 && (n < 5 || kinfer_mono_us() - start < (int64_t)min_ms * 1000)) {
        int64_t t0 = kinfer_mono_us();
        fn(ctx);
        t[n++] = kinfer_mono_us() - t0;
    }
    qsort(t, (size_t)n, sizeof(t[0]), cmp_i64);
    return (double)t[n / 2];
}

typedef struct ctx {
    kinfer_replica *replica;
    kinfer_batch_item *items;
    uint32_t b;
    uint32_t *dims;
    int nd;
    float **w, *x, *y0, *y1;
} ctx;

static void run_seam(void *p) {
    ctx *c = p;
    kinfer_error err;
    if (kinfer_replica_execute(c->replica, c->items, c->b, &err) != KINFER_OK) {
        fprintf(stderr, "execute: %s\n", err.msg);
        exit(1);
    }
}

static void run_bare(void *p) {
    ctx *c = p;
    const float *in = c->x;
    for (int l = 0; l + 1 < c->nd; l++) {
        float *out = l & 1 ? c->y1 : c->y0;
        kinfer_blas_cpu_gemm_xwt(in, c->w[l], out, c->b, c->dims[l + 1], c->dims[l]);
        in = out;
    }
}

int main(int argc, char **argv) {
    uint32_t dims[MAXL] = {256, 1024, 1024, 16}, batches[MAXL] = {1, 16, 64, 256};
    int nd = 4, nb = 4, threads = 1, min_ms = 300;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--dims"))
            nd = parse_list(argv[i + 1], dims);
        else if (!strcmp(argv[i], "--batches"))
            nb = parse_list(argv[i + 1], batches);
        else if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--min-ms"))
            min_ms = atoi(argv[i + 1]);
        else
            nd = -1;
    }
    if (nd < 2 || nb < 1) {
        fprintf(stderr, "usage: %s [--dims a,b,..] [--batches 1,16] [--threads N] [--min-ms M]\n",
                argv[0]);
        return 2;
    }
    uint32_t maxb = 0, maxw = 0;
    for (int i = 0; i < nb; i++)
        maxb = batches[i] > maxb ? batches[i] : maxb;
    for (int i = 0; i < nd; i++)
        maxw = dims[i] > maxw ? dims[i] : maxw;
    /* a random model file in /tmp, written by our writer */
    char path[] = "/tmp/bench_kernels_cpu_mlp-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return 1;
    close(fd);
    kinfer_st_write_tensor t[2 * MAXL];
    char names[2 * MAXL][32];
    float *w[MAXL], *bias[MAXL];
    double flops = 0;
    srand(1);
    for (int l = 0; l + 1 < nd; l++) {
        size_t nw = (size_t)dims[l] * dims[l + 1];
        w[l] = malloc(nw * sizeof(float));
        bias[l] = calloc(dims[l + 1], sizeof(float));
        for (size_t i = 0; i < nw; i++)
            w[l][i] = ((float)rand() / RAND_MAX - 0.5f) * 0.1f;
        snprintf(names[2 * l], 32, "layers.%d.weight", l);
        snprintf(names[2 * l + 1], 32, "layers.%d.bias", l);
        t[2 * l] = (kinfer_st_write_tensor){
            names[2 * l], KINFER_DTYPE_FP32, 2, {dims[l + 1], dims[l]}, w[l]};
        t[2 * l + 1] = (kinfer_st_write_tensor){
            names[2 * l + 1], KINFER_DTYPE_FP32, 1, {dims[l + 1]}, bias[l]};
        flops += 2.0 * (double)nw;
    }
    kinfer_error err;
    kinfer_model_options o = {.name = "bench",
                              .kind = "mlp",
                              .path = path,
                              .nan_policy = KINFER_NAN_PASS,
                              .cpu_threads = threads};
    kinfer_model *m;
    kinfer_replica *r;
    if (kinfer_safetensors_write(path, t, (size_t)(2 * (nd - 1)), NULL, NULL, 0, &err) ||
        kinfer_model_load(&o, &m, &err) || kinfer_replica_new(m, "cpu", maxb, &r, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    unlink(path);
    float *x = calloc((size_t)maxb * dims[0], sizeof(float));
    float *y0 = malloc((size_t)maxb * maxw * sizeof(float));
    float *y1 = malloc((size_t)maxb * maxw * sizeof(float));
    kinfer_tensor *in = calloc(maxb, sizeof(*in));
    kinfer_batch_item *items = calloc(maxb, sizeof(*items));
    for (uint32_t i = 0; i < maxb; i++) {
        in[i].name = (kinfer_str){"x", 1};
        in[i].dtype = KINFER_DTYPE_FP32;
        in[i].ndim = 1;
        in[i].shape[0] = dims[0];
        in[i].data = x + (size_t)i * dims[0];
        in[i].nbytes = dims[0] * sizeof(float);
        items[i].inputs = &in[i];
        items[i].ninputs = 1;
        items[i].cost.rows = 1;
    }
    printf("bench_kernels_cpu_mlp: %s, OpenBLAS threads %d, %ld online cores\n",
           kinfer_model_describe(m), kinfer_blas_cpu_request_threads(threads),
           sysconf(_SC_NPROCESSORS_ONLN));
    printf("batch   seam_us   bare_us  seam_gflops  bare_gflops  overhead\n");
    for (int i = 0; i < nb; i++) {
        ctx c = {r, items, batches[i], dims, nd, w, x, y0, y1};
        double su = median_us(run_seam, &c, min_ms);
        double bu = median_us(run_bare, &c, min_ms);
        double f = flops * batches[i];
        printf("%5u %9.1f %9.1f %12.2f %12.2f %8.1f%%\n", batches[i], su, bu,
               su > 0 ? f / su / 1e3 : 0, bu > 0 ? f / bu / 1e3 : 0,
               bu > 0 ? (su - bu) / bu * 100 : 0);
    }
    kinfer_replica_destroy(r);
    kinfer_model_destroy(m);
    for (int l = 0; l + 1 < nd; l++)
        free(w[l]), free(bias[l]);
    free(x), free(y0), free(y1), free(in), free(items);
    return 0;
}
