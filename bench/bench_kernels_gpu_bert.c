/* bench_kernels_gpu_bert.c — throughput and latency of kind `bert` on a
 * device (cuda:N, or cpu for comparison) through the public model/replica
 * seam, for bench/st_gpu_bench.py, which runs it beside sentence-transformers
 * FP16 on the same GPU with the same texts and joins the numbers.
 *
 *   bench_kernels_gpu_bert MODEL_DIR TEXTS.jsonl [--device cuda:0]
 *       [--precision fp32|fp16|bf16] [--batch B] [--seconds S]
 *
 * TEXTS.jsonl: one {"text": ...} per line. Runs batches of B texts (one
 * request of B texts, cycling through the file) for about S seconds after
 * two warm-up batches, timed host to host as a worker pays it: request
 * check (tokenizing), packing, H2D, the forward, D2H and the wait. Prints
 * one JSON line: sentences/s, batch latency p50/p99 (ms), padded tokens per
 * text. Without the device: a SKIPPED line and exit 0. Not a test. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kinfer/kinfer_clock.h"
#include "kinfer_device.h"
#include "kinfer_model.h"

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile index into n sorted samples. */
static size_t pct_index(size_t n, double q) {
    size_t k = (size_t)(q * (double)n + 0.999999);
    return k == 0 ? 0 : (k > n ? n - 1 : k - 1);
}

static kinfer_str *read_texts(const char *path, size_t *n) {
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        return NULL;
    }
    size_t cap = 0;
    kinfer_str *texts = NULL;
    char *line = NULL;
    size_t lcap = 0;
    *n = 0;
    while (getline(&line, &lcap, f) > 0) {
        json_error_t jerr;
        json_t *o = json_loads(line, 0, &jerr);
        json_t *t = json_object_get(o, "text");
        if (t) {
            if (*n == cap) {
                cap = cap ? cap * 2 : 256;
                kinfer_str *grown = realloc(texts, cap * sizeof(*texts));
                if (!grown)
                    break;
                texts = grown;
            }
            size_t len = json_string_length(t);
            char *copy = malloc(len + 1);
            if (copy) {
                memcpy(copy, json_string_value(t), len + 1);
                texts[(*n)++] = (kinfer_str){copy, len};
            }
        }
        json_decref(o);
    }
    free(line);
    fclose(f);
    return texts;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr,
                "usage: %s MODEL_DIR TEXTS.jsonl [--device cuda:0] [--precision fp32|fp16|bf16] "
                "[--batch B] [--seconds S]\n",
                argv[0]);
        return 2;
    }
    const char *device = "cuda:0", *precision = "fp32";
    int batch = 32;
    double seconds = 3.0;
    for (int i = 3; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--batch") == 0)
            batch = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--seconds") == 0)
            seconds = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--device") == 0)
            device = argv[i + 1];
        else if (strcmp(argv[i], "--precision") == 0)
            precision = argv[i + 1];
        else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (batch < 1 || batch > 4096 || !(seconds > 0)) {
        fprintf(stderr, "--batch must be 1..4096 and --seconds > 0\n");
        return 2;
    }
    kinfer_device dev;
    kinfer_error err;
    if (kinfer_device_parse(device, &dev, &err) != KINFER_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 2;
    }
    if (dev.type == KINFER_DEVICE_CUDA && kinfer_cuda_device_count() <= dev.index) {
        printf("*** bench_kernels_gpu_bert: SKIPPED: no CUDA device %s (%d visible%s) ***\n",
               device, kinfer_cuda_device_count(),
               kinfer_cuda_built() ? "" : "; this build has no CUDA backend");
        return 0;
    }
    size_t ntexts = 0;
    kinfer_str *texts = read_texts(argv[2], &ntexts);
    if (!texts || ntexts == 0) {
        fprintf(stderr, "%s: no texts\n", argv[2]);
        return 1;
    }
    kinfer_model_options o = {
        .name = "bench", .kind = "bert", .path = argv[1], .precision = precision};
    kinfer_model *m;
    kinfer_replica *r;
    if (kinfer_model_load(&o, &m, &err) != KINFER_OK ||
        kinfer_replica_new(m, device, (uint32_t)batch, &r, &err) != KINFER_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    kinfer_str *window = malloc((size_t)batch * sizeof(kinfer_str));
    size_t maxlat = 1 << 18, nlat = 0, next = 0;
    int64_t *lat = malloc(maxlat * sizeof(int64_t));
    if (!window || !lat)
        return 1;
    uint64_t sentences = 0, tokens = 0;
    int64_t t_start = 0, t_end = 0;
    for (int iter = -2;; iter++) {
        for (int k = 0; k < batch; k++)
            window[k] = texts[(next + (size_t)k) % ntexts];
        next = (next + (size_t)batch) % ntexts;
        kinfer_tensor t;
        memset(&t, 0, sizeof(t));
        t.name = (kinfer_str){"text", 4};
        t.dtype = KINFER_DTYPE_STRING;
        t.ndim = 1;
        t.shape[0] = batch;
        t.strings = window;
        t.nstrings = (size_t)batch;
        kinfer_batch_item it;
        memset(&it, 0, sizeof(it));
        it.inputs = &t;
        it.ninputs = 1;
        int64_t t0 = kinfer_mono_us();
        if (kinfer_model_check_request(m, &t, 1, NULL, 0, &it.cost, &err) != KINFER_OK ||
            kinfer_replica_execute(r, &it, 1, &err) != KINFER_OK || it.status != KINFER_OK) {
            fprintf(stderr, "%s %s\n", err.msg, it.error);
            return 1;
        }
        int64_t t1 = kinfer_mono_us();
        if (iter < 0) { /* warm-up: first-use costs (cuBLAS kernels, caches) */
            t_start = t1;
            continue;
        }
        if (nlat < maxlat)
            lat[nlat++] = t1 - t0;
        sentences += (uint64_t)batch;
        tokens += it.cost.tokens;
        t_end = t1;
        if (t_end - t_start >= (int64_t)(seconds * 1e6))
            break;
    }
    qsort(lat, nlat, sizeof(int64_t), cmp_i64);
    double wall = (double)(t_end - t_start) / 1e6;
    printf("{\"impl\": \"kinfer\", \"device\": \"%s\", \"precision\": \"%s\", \"batch\": %d, "
           "\"batches\": %zu, \"sentences_per_s\": %.1f, \"p50_ms\": %.3f, \"p99_ms\": %.3f, "
           "\"padded_tokens_per_text\": %.1f}\n",
           device, precision, batch, nlat, (double)sentences / wall,
           lat[pct_index(nlat, 0.50)] / 1e3, lat[pct_index(nlat, 0.99)] / 1e3,
           (double)tokens / (double)sentences);
    free(lat);
    free(window);
    for (size_t i = 0; i < ntexts; i++)
        free((void *)texts[i].ptr);
    free(texts);
    kinfer_replica_destroy(r);
    kinfer_model_destroy(m);
    return 0;
}
