/* bench_bert_common.h — what the `bert` benches share (header-only: each
 * bench_*.c is its own executable): reading TEXTS.jsonl, loading the model
 * with one replica, the timed loop of one B-text request per batch through
 * the public model/replica seam, and the summary (throughput, nearest-rank
 * p50/p99). Argument parsing, device choice and the JSON line each bench
 * prints stay in the benches. Not a test. */
#ifndef BENCH_BERT_COMMON_H
#define BENCH_BERT_COMMON_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kinfer/kinfer_clock.h"
#include "kinfer/kinfer_model.h"

/* CPU time of the whole process (all threads), microseconds: unlike wall
 * time it does not grow while other processes hold the CPU, so on a
 * shared machine it is the steadier measure of the work per batch. */
static int64_t bench_cpu_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int bench_cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile index into n sorted samples. */
static size_t bench_pct_index(size_t n, double q) {
    size_t k = (size_t)(q * (double)n + 0.999999);
    return k == 0 ? 0 : (k > n ? n - 1 : k - 1);
}

/* Reads the "text" of every line of a JSONL file (lines without one are
 * skipped); *n gets the count. NULL (after perror) when the file cannot be
 * opened. Free with bench_free_texts. */
static kinfer_str *bench_read_texts(const char *path, size_t *n) {
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

static void bench_free_texts(kinfer_str *texts, size_t n) {
    for (size_t i = 0; i < n; i++)
        free((void *)texts[i].ptr);
    free(texts);
}

/* A loaded bench: the texts, the model and one replica. */
typedef struct bench_bert {
    kinfer_str *texts;
    size_t ntexts;
    kinfer_model *m;
    kinfer_replica *r;
} bench_bert;

/* Reads the texts at texts_path and loads model `o` with one replica on
 * `device` taking batches of `batch`. Returns 0, or the exit code (1)
 * after printing the error. */
static int bench_bert_open(bench_bert *b, const char *texts_path, const kinfer_model_options *o,
                           const char *device, int batch) {
    memset(b, 0, sizeof(*b));
    b->texts = bench_read_texts(texts_path, &b->ntexts);
    if (!b->texts || b->ntexts == 0) {
        fprintf(stderr, "%s: no texts\n", texts_path);
        return 1;
    }
    kinfer_error err;
    if (kinfer_model_load(o, &b->m, &err) != KINFER_OK ||
        kinfer_replica_new(b->m, device, (uint32_t)batch, &b->r, &err) != KINFER_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    return 0;
}

static void bench_bert_close(bench_bert *b) {
    bench_free_texts(b->texts, b->ntexts);
    kinfer_replica_destroy(b->r);
    kinfer_model_destroy(b->m);
}

/* What bench_bert_run measured over the timed batches. */
typedef struct bench_bert_result {
    size_t batches; /* latencies kept (at most maxlat) */
    double sentences_per_s;
    double p50_ms, p99_ms; /* nearest-rank, per batch */
    double cpu_p50_ms;     /* process CPU time per batch, median */
    double padded_tokens_per_text;
} bench_bert_result;

/* Runs `warmup` untimed batches, then timed batches of `batch` texts (one
 * request per batch, cycling through texts) until `seconds` have passed
 * since the last warm-up batch ended. Each batch is timed host to host as
 * a worker pays it: the request check (tokenizing) and the execute. Keeps
 * at most maxlat latencies. Returns 0, or -1 after printing the error. */
static int bench_bert_run(const bench_bert *b, int batch, int warmup, double seconds, size_t maxlat,
                          bench_bert_result *res) {
    memset(res, 0, sizeof(*res));
    kinfer_model *m = b->m;
    kinfer_replica *r = b->r;
    const kinfer_str *texts = b->texts;
    size_t ntexts = b->ntexts;
    kinfer_str *window = malloc((size_t)batch * sizeof(kinfer_str));
    int64_t *lat = malloc(maxlat * sizeof(int64_t));
    int64_t *cpu = malloc(maxlat * sizeof(int64_t));
    if (!window || !lat || !cpu) {
        fprintf(stderr, "out of memory\n");
        free(window);
        free(lat);
        free(cpu);
        return -1;
    }
    kinfer_error err;
    size_t nlat = 0, next = 0;
    uint64_t sentences = 0, tokens = 0;
    int64_t t_start = 0, t_end = 0;
    for (int iter = -warmup;; iter++) {
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
        int64_t t0 = kinfer_mono_us(), c0 = bench_cpu_us();
        if (kinfer_model_check_request(m, &t, 1, NULL, 0, &it.cost, &err) != KINFER_OK ||
            kinfer_replica_execute(r, &it, 1, &err) != KINFER_OK || it.status != KINFER_OK) {
            fprintf(stderr, "%s %s\n", err.msg, it.error);
            free(window);
            free(lat);
            free(cpu);
            return -1;
        }
        int64_t t1 = kinfer_mono_us(), c1 = bench_cpu_us();
        if (iter < 0) { /* warm-up: first-use costs (kernels, caches) */
            t_start = t1;
            continue;
        }
        if (nlat < maxlat) {
            cpu[nlat] = c1 - c0;
            lat[nlat++] = t1 - t0;
        }
        sentences += (uint64_t)batch;
        tokens += it.cost.tokens;
        t_end = t1;
        if (t_end - t_start >= (int64_t)(seconds * 1e6))
            break;
    }
    free(window);
    qsort(lat, nlat, sizeof(int64_t), bench_cmp_i64);
    qsort(cpu, nlat, sizeof(int64_t), bench_cmp_i64);
    res->cpu_p50_ms = (double)cpu[bench_pct_index(nlat, 0.50)] / 1e3;
    free(cpu);
    double wall = (double)(t_end - t_start) / 1e6;
    res->batches = nlat;
    res->sentences_per_s = (double)sentences / wall;
    res->p50_ms = (double)lat[bench_pct_index(nlat, 0.50)] / 1e3;
    res->p99_ms = (double)lat[bench_pct_index(nlat, 0.99)] / 1e3;
    res->padded_tokens_per_text = (double)tokens / (double)sentences;
    free(lat);
    return 0;
}

/* The whole measurement: bench_bert_open, bench_bert_run, bench_bert_close.
 * Returns 0, or the exit code (1) after printing the error. */
static int bench_bert_measure(const char *texts_path, const kinfer_model_options *o,
                              const char *device, int batch, int warmup, double seconds,
                              size_t maxlat, bench_bert_result *res) {
    bench_bert b;
    int rc = bench_bert_open(&b, texts_path, o, device, batch);
    if (rc == 0 && bench_bert_run(&b, batch, warmup, seconds, maxlat, res) != 0)
        rc = 1;
    bench_bert_close(&b);
    return rc;
}

#endif
