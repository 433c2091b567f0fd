/* bench_kernels_gpu_mlp.c — MLP throughput of one replica (the seam the
 * engine's executor calls) at batch 1 and at larger batches, in the same
 * run, so "batched vs batch-1" is a ratio on one machine. Each batch is B
 * requests of one row (what the scheduler packs), timed host to host:
 * pack + H2D + GEMMs/epilogues + D2H + wait. Prints a table and RESULT
 * lines that tests/gpu/run.sh joins with bench/torch_mlp.py's.
 *
 *   bench_kernels_gpu_mlp [--device cuda:0|cpu] [--dims 256,1024,1024,16]
 *       [--act relu] [--precisions fp32,fp16,bf16] [--batches 1,8,64,256,1024]
 *       [--min-ms 300]
 * Not a test: asserts nothing about speed. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kinfer/kinfer_clock.h"
#include "kinfer/kinfer_device.h"
#include "kinfer/kinfer_model.h"
#include "formats/safetensors.h"

#ifdef KINFER_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

#define MAX_LIST 16

typedef struct opts {
    const char *device;
    uint32_t dims[MAX_LIST];
    int ndims;
    const char *act;
    char precisions[MAX_LIST][8];
    int nprec;
    uint32_t batches[MAX_LIST];
    int nbatches;
    int min_ms;
} opts;

static int parse_u32_list(const char *s, uint32_t *out, int max) {
    int n = 0;
    char *end;
    while (*s && n < max) {
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        if (end == s || errno || v == 0 || v > (1u << 24))
            return -1;
        out[n++] = (uint32_t)v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            return -1;
    }
    return n;
}

static int parse_args(int argc, char **argv, opts *o) {
    o->device = "cuda:0";
    o->ndims = parse_u32_list("256,1024,1024,16", o->dims, MAX_LIST);
    o->act = "relu";
    o->nprec = 3;
    strcpy(o->precisions[0], "fp32");
    strcpy(o->precisions[1], "fp16");
    strcpy(o->precisions[2], "bf16");
    o->nbatches = parse_u32_list("1,8,64,256,1024", o->batches, MAX_LIST);
    o->min_ms = 300;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "%s needs a value\n", a);
            return -1;
        }
        i++;
        if (strcmp(a, "--device") == 0)
            o->device = v;
        else if (strcmp(a, "--dims") == 0)
            o->ndims = parse_u32_list(v, o->dims, MAX_LIST);
        else if (strcmp(a, "--act") == 0)
            o->act = v;
        else if (strcmp(a, "--batches") == 0)
            o->nbatches = parse_u32_list(v, o->batches, MAX_LIST);
        else if (strcmp(a, "--min-ms") == 0)
            o->min_ms = atoi(v);
        else if (strcmp(a, "--precisions") == 0) {
            o->nprec = 0;
            const char *p = v;
            while (*p && o->nprec < MAX_LIST) {
                size_t len = strcspn(p, ",");
                if (len == 0 || len >= sizeof(o->precisions[0]))
                    return -1;
                memcpy(o->precisions[o->nprec], p, len);
                o->precisions[o->nprec++][len] = '\0';
                p += len + (p[len] == ',');
            }
        } else {
            fprintf(stderr, "unknown option %s\n", a);
            return -1;
        }
    }
    if (o->ndims < 2 || o->nbatches < 1 || o->nprec < 1 || o->min_ms < 1) {
        fprintf(stderr, "bad --dims/--batches/--precisions/--min-ms\n");
        return -1;
    }
    return 0;
}

/* Deterministic weights ~ U(-1,1)/sqrt(in), never zeros (see METHOD.md:
 * zeros can run faster than real data). */
static uint64_t rng_state = 0x1234567;
static float urand(void) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (float)((double)(z >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static int write_model(const opts *o, const char *path) {
    int nl = o->ndims - 1;
    kinfer_st_write_tensor *t = calloc((size_t)nl * 2, sizeof(*t));
    char(*names)[32] = calloc((size_t)nl * 2, 32);
    float **bufs = calloc((size_t)nl * 2, sizeof(float *));
    int rc = -1;
    if (!t || !names || !bufs)
        goto done;
    for (int l = 0; l < nl; l++) {
        uint32_t in = o->dims[l], out = o->dims[l + 1];
        float scale = 1.0f / sqrtf((float)in);
        bufs[2 * l] = malloc((size_t)in * out * sizeof(float));
        bufs[2 * l + 1] = malloc((size_t)out * sizeof(float));
        if (!bufs[2 * l] || !bufs[2 * l + 1])
            goto done;
        for (size_t i = 0; i < (size_t)in * out; i++)
            bufs[2 * l][i] = urand() * scale;
        for (uint32_t i = 0; i < out; i++)
            bufs[2 * l + 1][i] = urand() * 0.1f;
        snprintf(names[2 * l], 32, "layers.%d.weight", l);
        snprintf(names[2 * l + 1], 32, "layers.%d.bias", l);
        t[2 * l] =
            (kinfer_st_write_tensor){names[2 * l], KINFER_DTYPE_FP32, 2, {out, in}, bufs[2 * l]};
        t[2 * l + 1] = (kinfer_st_write_tensor){
            names[2 * l + 1], KINFER_DTYPE_FP32, 1, {out}, bufs[2 * l + 1]};
    }
    const char *keys[2] = {"activation", "output_activation"};
    const char *vals[2] = {o->act, "none"};
    kinfer_error err;
    if (kinfer_safetensors_write(path, t, (size_t)nl * 2, keys, vals, 2, &err) != KINFER_OK) {
        fprintf(stderr, "write %s: %s\n", path, err.msg);
        goto done;
    }
    rc = 0;
done:
    for (int i = 0; bufs && i < nl * 2; i++)
        free(bufs[i]);
    free(bufs);
    free(names);
    free(t);
    return rc;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Machine-readable lines, printed after the table. */
static char results[16384];

/* One precision: replica, then each batch size; prints rows. */
static int run_precision(const opts *o, const char *path, const char *precision,
                         const char *dims_text) {
    uint32_t max_b = 0;
    for (int i = 0; i < o->nbatches; i++)
        max_b = o->batches[i] > max_b ? o->batches[i] : max_b;
    kinfer_model_options mo = {.name = "bench",
                               .kind = "mlp",
                               .path = path,
                               .nan_policy = KINFER_NAN_PASS,
                               .precision = precision};
    kinfer_model *model = NULL;
    kinfer_replica *rep = NULL;
    kinfer_error err;
    if (kinfer_model_load(&mo, &model, &err) != KINFER_OK ||
        kinfer_replica_new(model, o->device, max_b, &rep, &err) != KINFER_OK) {
        fprintf(stderr, "%s %s: %s\n", o->device, precision, err.msg);
        kinfer_model_destroy(model);
        return -1;
    }
    uint32_t in = o->dims[0];
    float *x = malloc((size_t)max_b * in * sizeof(float));
    kinfer_tensor *tens = calloc(max_b, sizeof(*tens));
    kinfer_batch_item *items = calloc(max_b, sizeof(*items));
    int64_t *lat = malloc(200000 * sizeof(int64_t));
    int rc = -1;
    if (!x || !tens || !items || !lat)
        goto done;
    for (size_t i = 0; i < (size_t)max_b * in; i++)
        x[i] = urand();
    for (uint32_t i = 0; i < max_b; i++) {
        tens[i] = (kinfer_tensor){.name = {"x", 1},
                                  .dtype = KINFER_DTYPE_FP32,
                                  .ndim = 2,
                                  .shape = {1, in},
                                  .data = x + (size_t)i * in,
                                  .nbytes = in * sizeof(float)};
        items[i].inputs = &tens[i];
        items[i].ninputs = 1;
        items[i].cost.rows = 1;
    }
    double base = 0;
    for (int bi = 0; bi < o->nbatches; bi++) {
        uint32_t b = o->batches[bi];
        for (int w = 0; w < 20; w++) /* warm-up: cuBLAS picks kernels for this shape */
            if (kinfer_replica_execute(rep, items, b, &err) != KINFER_OK)
                goto fail;
        size_t n = 0;
        int64_t start = kinfer_mono_us(), now = start;
        while ((now - start < (int64_t)o->min_ms * 1000 || n < 20) && n < 200000) {
            int64_t t0 = kinfer_mono_us();
            if (kinfer_replica_execute(rep, items, b, &err) != KINFER_OK)
                goto fail;
            now = kinfer_mono_us();
            lat[n++] = now - t0;
        }
        for (uint32_t i = 0; i < b; i++)
            if (items[i].status != KINFER_OK) {
                fprintf(stderr, "item %u: %s\n", i, items[i].error);
                goto done;
            }
        qsort(lat, n, sizeof(*lat), cmp_i64);
        double med = (double)lat[n / 2], p90 = (double)lat[n * 9 / 10];
        if (med < 1)
            med = 1;
        double rows_s = b * 1e6 / med;
        if (b == 1)
            base = rows_s;
        if (base > 0)
            printf("%-9s %6u %11.1f %9.1f %13.0f %8.1fx\n", precision, b, med, p90, rows_s,
                   rows_s / base);
        else
            printf("%-9s %6u %11.1f %9.1f %13.0f %9s\n", precision, b, med, p90, rows_s, "-");
        size_t used = strlen(results);
        snprintf(results + used, sizeof(results) - used,
                 "RESULT impl=kinfer device=%s precision=%s dims=%s batch=%u median_us=%.1f "
                 "p90_us=%.1f rows_per_s=%.0f iters=%zu\n",
                 o->device, precision, dims_text, b, med, p90, rows_s, n);
    }
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "execute on %s (%s): %s\n", o->device, precision, err.msg);
done:
    free(x);
    free(tens);
    free(items);
    free(lat);
    kinfer_replica_destroy(rep);
    kinfer_model_destroy(model);
    return rc;
}

int main(int argc, char **argv) {
    opts o;
    if (parse_args(argc, argv, &o) != 0)
        return 2;
    kinfer_device dev;
    kinfer_error err;
    if (kinfer_device_parse(o.device, &dev, &err) != KINFER_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 2;
    }
    char devname[256] = "CPU";
    if (dev.type == KINFER_DEVICE_CUDA) {
        if (kinfer_cuda_device_count() <= dev.index) {
            printf("*** bench_kernels_gpu_mlp: SKIPPED: no CUDA device %s (%d visible) ***\n",
                   o.device, kinfer_cuda_device_count());
            return 0;
        }
#ifdef KINFER_HAVE_CUDA
        struct cudaDeviceProp prop;
        if (cudaGetDeviceProperties(&prop, dev.index) == cudaSuccess)
            snprintf(devname, sizeof(devname), "%s", prop.name);
#endif
    }
    char dims_text[160] = "";
    for (int i = 0; i < o.ndims; i++)
        snprintf(dims_text + strlen(dims_text), sizeof(dims_text) - strlen(dims_text), "%s%u",
                 i ? "-" : "", o.dims[i]);
    char path[] = "/tmp/kinfer-bench-mlp-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) {
        perror("mkstemp");
        return 1;
    }
    close(fd);
    if (write_model(&o, path) != 0) {
        unlink(path);
        return 1;
    }
    printf("bench_kernels_gpu_mlp: device %s (%s), mlp %s %s/none, B requests x 1 row, "
           "host-to-host, median of >= %d ms\n",
           o.device, devname, dims_text, o.act, o.min_ms);
    printf("%-9s %6s %11s %9s %13s %9s\n", "precision", "batch", "median_us", "p90_us",
           "rows_per_s", "vs_b1");
    int rc = 0;
    for (int p = 0; p < o.nprec; p++)
        if (run_precision(&o, path, o.precisions[p], dims_text) != 0)
            rc = 1;
    unlink(path);
    fputs(results, stdout);
    return rc;
}
