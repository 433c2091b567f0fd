/* bench_kernels_bert.c — throughput and latency of kind `bert` on the CPU
 * through the public model/replica seam, for bench/st_bench.py (which
 * compares it with sentence-transformers on the same texts in the same run).
 *
 *   bench_kernels_bert MODEL_DIR TEXTS.jsonl [--batch B] [--seconds S] [--threads T]
 *
 * TEXTS.jsonl: one {"text": ...} per line. Runs batches of B texts (one
 * request of B texts per batch, cycling through the file) for about S
 * seconds after one warm-up batch, then prints one JSON line: sentences/s,
 * batch latency p50/p99 (ms), mean tokens per text. Not a test. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kinfer/kinfer_clock.h"
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

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL_DIR TEXTS.jsonl [--batch B] [--seconds S] [--threads T]\n",
                argv[0]);
        return 2;
    }
    int batch = 32, threads = 0;
    double seconds = 5.0;
    for (int i = 3; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--batch") == 0)
            batch = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--seconds") == 0)
            seconds = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--threads") == 0)
            threads = atoi(argv[i + 1]);
    }
    if (batch < 1 || batch > 4096) {
        fprintf(stderr, "--batch must be 1..4096\n");
        return 2;
    }
    FILE *f = fopen(argv[2], "r");
    if (!f) {
        perror(argv[2]);
        return 1;
    }
    size_t ntexts = 0, cap = 0;
    kinfer_str *texts = NULL;
    char *line = NULL;
    size_t lcap = 0;
    while (getline(&line, &lcap, f) > 0) {
        json_error_t jerr;
        json_t *o = json_loads(line, 0, &jerr);
        json_t *t = json_object_get(o, "text");
        if (t) {
            if (ntexts == cap) {
                cap = cap ? cap * 2 : 256;
                texts = realloc(texts, cap * sizeof(*texts));
            }
            size_t len = json_string_length(t);
            char *copy = malloc(len + 1);
            memcpy(copy, json_string_value(t), len + 1);
            texts[ntexts++] = (kinfer_str){copy, len};
        }
        json_decref(o);
    }
    free(line);
    fclose(f);
    if (ntexts == 0) {
        fprintf(stderr, "%s: no texts\n", argv[2]);
        return 1;
    }

    kinfer_model_options o = {
        .name = "bench", .kind = "bert", .path = argv[1], .cpu_threads = threads};
    kinfer_model *m;
    kinfer_replica *r;
    kinfer_error err;
    if (kinfer_model_load(&o, &m, &err) != KINFER_OK ||
        kinfer_replica_new(m, "cpu", (uint32_t)batch, &r, &err) != KINFER_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    kinfer_str *window = malloc((size_t)batch * sizeof(kinfer_str));
    size_t maxlat = 1 << 16, nlat = 0, next = 0;
    int64_t *lat = malloc(maxlat * sizeof(int64_t));
    uint64_t sentences = 0, tokens = 0;
    int64_t t_start = 0, t_end = 0;
    for (int iter = -1;; iter++) {
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
        /* Latency includes the request check (tokenizing) as a worker pays it. */
        int64_t t0 = kinfer_mono_us();
        if (kinfer_model_check_request(m, &t, 1, NULL, 0, &it.cost, &err) != KINFER_OK ||
            kinfer_replica_execute(r, &it, 1, &err) != KINFER_OK || it.status != KINFER_OK) {
            fprintf(stderr, "%s %s\n", err.msg, it.error);
            return 1;
        }
        int64_t t1 = kinfer_mono_us();
        if (iter < 0) { /* warm-up */
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
    printf("{\"impl\": \"kinfer\", \"batch\": %d, \"threads\": %d, \"batches\": %zu, "
           "\"sentences_per_s\": %.1f, \"p50_ms\": %.2f, \"p99_ms\": %.2f, "
           "\"padded_tokens_per_text\": %.1f}\n",
           batch, threads, nlat, (double)sentences / wall, lat[pct_index(nlat, 0.50)] / 1e3,
           lat[pct_index(nlat, 0.99)] / 1e3, (double)tokens / (double)sentences);
    free(lat);
    free(window);
    for (size_t i = 0; i < ntexts; i++)
        free((void *)texts[i].ptr);
    free(texts);
    kinfer_replica_destroy(r);
    kinfer_model_destroy(m);
    return 0;
}
