/* bench_scheduler_mlp.c — the engine alone (no Kafka, no Avro) on a real
 * MLP 256-512-512-16 with random weights: closed-loop load with a fixed
 * number of outstanding 1-row requests, requests/s and p50/p99 latency at
 * batch caps 1, 8, 64, 256 (batch 1 is the baseline of the same run),
 * median of several runs; then a flood against a hard queue cap to show
 * that memory stays bounded. Results go to docs/benchmarks/engine.md.
 *
 *   bench_scheduler_mlp [--runs N] [--duration-ms MS] [--concurrency C]
 *                       [--delay-us US] [--device cpu|cuda:0] [--flood N]
 *                       [--deadline-rate R]... [--deadline-ms MS] [--cpu-threads N]
 *                       [--no-caps] [--sgemm] [--precision fp32|bf16|int8]
 * --deadline-rate adds an open-loop run at R req/s whose requests are due
 * --deadline-ms later: it shows how well the latency estimate times
 * deadline-triggered batches (on time / late / expired). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>

#include "kinfer/kinfer_device.h"
#include "kinfer/kinfer_engine.h"
#include "kinfer/kinfer_log.h"
#include "bench_mlp_model.h"
#define MAX_SAMPLES (1 << 22)

typedef struct slot {
    float x[IN];
    kinfer_tensor t;
    int64_t submitted_us;
} slot;

typedef struct load {
    kinfer_engine *engine;
    slot *slots;
    size_t nslots;
    atomic_bool stop;
    atomic_bool measuring;
    _Atomic uint64_t done;    /* completions while measuring */
    _Atomic uint64_t errors;  /* non-OK completions (any time) */
    _Atomic uint64_t refused; /* resubmits refused */
    _Atomic uint64_t nsamples;
    int64_t *lat_us;              /* MAX_SAMPLES latencies while measuring */
    _Atomic uint64_t batch_rows;  /* sum of batch_size over measured completions */
    _Atomic uint64_t compute_sum; /* sum of compute_us over measured completions */
} load;

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static kinfer_err submit_slot(load *l, size_t i) {
    kinfer_engine_request q = {0};
    q.model.ptr = "mlp";
    q.model.len = 3;
    q.inputs = &l->slots[i].t;
    q.ninputs = 1;
    q.token = (void *)(uintptr_t)i;
    l->slots[i].submitted_us = kinfer_mono_us();
    kinfer_error err;
    return kinfer_engine_submit(l->engine, &q, &err);
}

/* Closed loop: each completion resubmits its slot (the callback may call
 * submit), so `nslots` requests are always outstanding. */
static void on_complete(void *ctx, const kinfer_engine_result *res) {
    load *l = ctx;
    size_t i = (size_t)(uintptr_t)res->token;
    if (res->status != KINFER_OK)
        atomic_fetch_add(&l->errors, 1);
    if (atomic_load(&l->measuring)) {
        int64_t lat = kinfer_mono_us() - l->slots[i].submitted_us;
        uint64_t k = atomic_fetch_add(&l->nsamples, 1);
        if (k < MAX_SAMPLES)
            l->lat_us[k] = lat;
        atomic_fetch_add(&l->done, 1);
        atomic_fetch_add(&l->batch_rows, res->batch_size);
        atomic_fetch_add(&l->compute_sum, (uint64_t)res->compute_us);
    }
    /* A refusal counts only while the load runs: a completion that read
     * stop == false just before run_once set it may resubmit into the engine's
     * shutdown, which refuses it by design. */
    if (!atomic_load(&l->stop) && submit_slot(l, i) != KINFER_OK && !atomic_load(&l->stop))
        atomic_fetch_add(&l->refused, 1);
}

static void sleep_us(int64_t us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

static long peak_rss_kb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static long current_rss_kb(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

typedef struct opts {
    int runs;
    int64_t duration_ms;
    size_t concurrency;
    int64_t delay_us;
    const char *device;
    size_t flood;
    const char *path;
    double deadline_rates[8]; /* --deadline-rate, repeatable */
    size_t ndeadline_rates;
    int64_t deadline_ms;
    int cpu_threads; /* 0 = online cores */
    bool no_caps;    /* skip the closed-loop batch-cap runs */
    bool sgemm;      /* also time the raw OpenBLAS ceiling */
    const char *precision;
} opts;

static kinfer_err make_engine(const opts *o, uint32_t cap, uint32_t hard, void *ctx,
                              kinfer_engine_complete_fn fn, kinfer_engine **out) {
    kinfer_model_config mc = {0};
    mc.name = "mlp";
    mc.load.kind = "mlp";
    mc.load.path = o->path;
    mc.load.precision = o->precision;
    mc.devices[0] = o->device;
    mc.ndevices = 1;
    mc.replicas_per_device = 1;
    mc.max_batch_size = cap;
    mc.max_queue_delay_us = o->delay_us;
    mc.max_queue_hard = hard;
    kinfer_engine_config cfg = {0};
    cfg.models = &mc;
    cfg.nmodels = 1;
    cfg.cpu_threads = o->cpu_threads;
    cfg.on_complete = fn;
    cfg.callback_ctx = ctx;
    kinfer_error err;
    kinfer_err rc = kinfer_engine_new(&cfg, out, &err);
    if (rc != KINFER_OK)
        fprintf(stderr, "engine: %s\n", err.msg);
    return rc;
}

typedef struct result {
    double rps, p50_ms, p99_ms, mean_batch;
    double compute_ms;  /* mean batch compute time seen by requests */
    double estimate_ms; /* the engine's estimate for a full batch at the end */
    double cpu_us;      /* process CPU time (user + sys, all threads) per request */
} result;

static int64_t cpu_time_us(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 + ru.ru_utime.tv_usec +
           ru.ru_stime.tv_usec;
}

static int run_once(const opts *o, uint32_t cap, slot *slots, int64_t *lat, result *res) {
    load l;
    memset(&l, 0, sizeof(l));
    l.slots = slots;
    l.nslots = o->concurrency;
    l.lat_us = lat;
    if (make_engine(o, cap, 0, &l, on_complete, &l.engine) != KINFER_OK)
        return -1;
    for (size_t i = 0; i < l.nslots; i++)
        if (submit_slot(&l, i) != KINFER_OK)
            return -1;
    sleep_us(300000); /* warm-up: estimator, caches, BLAS threads */
    atomic_store(&l.measuring, true);
    int64_t t0 = kinfer_mono_us(), c0 = cpu_time_us();
    sleep_us(o->duration_ms * 1000);
    atomic_store(&l.measuring, false);
    int64_t t1 = kinfer_mono_us(), c1 = cpu_time_us();
    uint64_t done = atomic_load(&l.done);
    kinfer_engine_stats st;
    kinfer_engine_stats_get(l.engine, 0, &st);
    res->estimate_ms = st.latency_estimate_max_us / 1000.0;
    atomic_store(&l.stop, true);
    kinfer_engine_shutdown(l.engine, 10000);
    kinfer_engine_destroy(l.engine);
    uint64_t n = atomic_load(&l.nsamples);
    if (n > MAX_SAMPLES)
        n = MAX_SAMPLES;
    if (atomic_load(&l.errors) || atomic_load(&l.refused) || n == 0) {
        fprintf(stderr, "cap %u: %llu errors, %llu refused, %llu samples\n", cap,
                (unsigned long long)atomic_load(&l.errors),
                (unsigned long long)atomic_load(&l.refused), (unsigned long long)n);
        return -1;
    }
    qsort(lat, n, sizeof(*lat), cmp_i64);
    res->rps = (double)done / ((double)(t1 - t0) / 1e6);
    res->p50_ms = lat[n / 2] / 1000.0;
    res->p99_ms = lat[(n * 99) / 100] / 1000.0;
    res->mean_batch = (double)atomic_load(&l.batch_rows) / (double)done;
    res->compute_ms = (double)atomic_load(&l.compute_sum) / (double)done / 1000.0;
    res->cpu_us = (double)(c1 - c0) / (double)done;
    return 0;
}

/* ---- flood: open loop against a hard cap ---- */

typedef struct flood_ctx {
    _Atomic uint64_t completed;
} flood_ctx;

static void flood_complete(void *ctx, const kinfer_engine_result *res) {
    (void)res;
    atomic_fetch_add(&((flood_ctx *)ctx)->completed, 1);
}

static int flood(const opts *o, slot *one) {
    flood_ctx fc = {0};
    kinfer_engine *engine;
    uint32_t hard = 10000;
    if (make_engine(o, 64, hard, &fc, flood_complete, &engine) != KINFER_OK)
        return -1;
    long rss0 = current_rss_kb();
    uint64_t accepted = 0, overloaded = 0;
    kinfer_engine_request q = {0};
    q.model.ptr = "mlp";
    q.model.len = 3;
    q.inputs = &one->t; /* every request reads the same input */
    q.ninputs = 1;
    long rss_max = rss0;
    for (size_t i = 0; i < o->flood; i++) {
        kinfer_error err;
        kinfer_err rc = kinfer_engine_submit(engine, &q, &err);
        if (rc == KINFER_OK)
            accepted++;
        else if (rc == KINFER_ERR_OVERLOADED)
            overloaded++;
        else {
            fprintf(stderr, "flood: %s\n", err.msg);
            return -1;
        }
        if (i % 100000 == 0) {
            long r = current_rss_kb();
            if (r > rss_max)
                rss_max = r;
        }
    }
    size_t in_flight = kinfer_engine_in_flight(engine);
    kinfer_engine_shutdown(engine, 60000);
    kinfer_engine_destroy(engine);
    printf("flood: %zu submits as fast as one thread can, max_queue_hard %u: %llu accepted, "
           "%llu OVERLOADED, %llu completed; in flight at end of flood %zu\n",
           o->flood, hard, (unsigned long long)accepted, (unsigned long long)overloaded,
           (unsigned long long)atomic_load(&fc.completed), in_flight);
    printf("flood: RSS after engine start %ld KiB, max sampled during flood %ld KiB (+%ld KiB), "
           "process peak %ld KiB\n",
           rss0, rss_max, rss_max - rss0, peak_rss_kb());
    return atomic_load(&fc.completed) == accepted ? 0 : -1;
}

/* ---- deadlines: open loop at a fixed rate, every request due D ms later ---- */

typedef struct dl_ctx {
    _Atomic uint64_t ok_on_time, ok_late, expired, other;
    _Atomic int64_t worst_late_us;
} dl_ctx;

static void dl_complete(void *ctx, const kinfer_engine_result *res) {
    dl_ctx *d = ctx;
    int64_t deadline = (int64_t)(uintptr_t)res->token;
    if (res->status == KINFER_OK) {
        int64_t late = kinfer_wall_us() - deadline;
        if (late > 0) {
            atomic_fetch_add(&d->ok_late, 1);
            int64_t w = atomic_load(&d->worst_late_us);
            while (late > w && !atomic_compare_exchange_weak(&d->worst_late_us, &w, late))
                ;
        } else
            atomic_fetch_add(&d->ok_on_time, 1);
    } else if (res->status == KINFER_ERR_DEADLINE_EXCEEDED)
        atomic_fetch_add(&d->expired, 1);
    else
        atomic_fetch_add(&d->other, 1);
}

/* Max batch 64 and a long max_queue_delay (50 ms) so that the deadline
 * trigger, i.e. the latency estimate, decides when batches leave. */
static int deadline_run(const opts *o, slot *one, double rate, int64_t deadline_ms) {
    opts oo = *o;
    oo.delay_us = 50000;
    dl_ctx d = {0};
    kinfer_engine *engine;
    if (make_engine(&oo, 64, 0, &d, dl_complete, &engine) != KINFER_OK)
        return -1;
    kinfer_engine_request q = {0};
    q.model.ptr = "mlp";
    q.model.len = 3;
    q.inputs = &one->t;
    q.ninputs = 1;
    int64_t start = kinfer_mono_us(), dur = o->duration_ms * 1000;
    uint64_t sent = 0, refused = 0;
    for (;;) {
        int64_t due = start + (int64_t)((double)sent * 1e6 / rate);
        int64_t now = kinfer_mono_us();
        if (now - start >= dur)
            break;
        if (due > now) {
            sleep_us(due - now);
            continue;
        }
        q.deadline_us = kinfer_wall_us() + deadline_ms * 1000;
        q.token = (void *)(uintptr_t)q.deadline_us;
        kinfer_error err;
        if (kinfer_engine_submit(engine, &q, &err) != KINFER_OK)
            refused++;
        sent++;
    }
    kinfer_engine_stats st;
    kinfer_engine_stats_get(engine, 0, &st);
    kinfer_engine_shutdown(engine, 10000);
    printf("deadline %lld ms at %.0f req/s: %llu sent, %llu on time, %llu OK but late (worst "
           "%.2f ms), %llu expired in queue, %llu refused at submit; %.1f rows/batch; estimate "
           "1 row %.3f ms, 64 rows %.3f ms; dispatch lag %.3f ms\n",
           (long long)deadline_ms, rate, (unsigned long long)sent,
           (unsigned long long)atomic_load(&d.ok_on_time),
           (unsigned long long)atomic_load(&d.ok_late), atomic_load(&d.worst_late_us) / 1000.0,
           (unsigned long long)atomic_load(&d.expired), (unsigned long long)refused,
           st.batches ? (double)st.rows / (double)st.batches : 0, st.latency_estimate_1_us / 1000.0,
           st.latency_estimate_max_us / 1000.0, st.dispatch_lag_us / 1000.0);
    kinfer_engine_destroy(engine);
    return atomic_load(&d.other) ? -1 : 0;
}

static float frand_u(unsigned *seed) {
    return (float)rand_r(seed) / (float)RAND_MAX * 2.0f - 1.0f;
}

/* ---- ceiling: the same three GEMMs straight through OpenBLAS ---- */

/* Times y = x W^T for the three layers with cblas_sgemm on one thread, no
 * bias, no activation, no engine: the compute floor per row that batching
 * can reach on this CPU. Run last: it sets OpenBLAS's (process-wide)
 * thread count to 1. */
static void sgemm_ceiling(void) {
    openblas_set_num_threads(1);
    const int dims[4] = {IN, H1, H2, OUTW};
    float *w[3], *buf[2];
    unsigned seed = 3;
    for (int l = 0; l < 3; l++) {
        w[l] = malloc((size_t)dims[l] * dims[l + 1] * sizeof(float));
        for (int i = 0; i < dims[l] * dims[l + 1]; i++)
            w[l][i] = frand_u(&seed);
    }
    for (int b = 0; b < 2; b++) {
        buf[b] = malloc((size_t)256 * H1 * sizeof(float));
        for (int i = 0; i < 256 * H1; i++)
            buf[b][i] = frand_u(&seed);
    }
    static const int ms[] = {1, 8, 64, 256};
    double us_row1 = 0;
    for (int k = 0; k < 4; k++) {
        int m = ms[k], iters = 4096 / m + 20;
        int64_t t0 = kinfer_mono_us();
        for (int it = 0; it < iters; it++) {
            const float *in = buf[0];
            for (int l = 0; l < 3; l++) {
                float *out = buf[(l + 1) % 2];
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, dims[l + 1], dims[l], 1.0f,
                            in, dims[l], w[l], dims[l], 0.0f, out, dims[l + 1]);
                in = out;
            }
        }
        double us = (double)(kinfer_mono_us() - t0) / iters;
        if (m == 1)
            us_row1 = us;
        printf("sgemm ceiling (OpenBLAS, 1 thread, 3 layers, no engine): m=%-3d %9.3f ms/batch "
               "%8.1f us/row  %5.1fx row 1\n",
               m, us / 1000, us / m, us_row1 / (us / m));
    }
    for (int l = 0; l < 3; l++)
        free(w[l]);
    free(buf[0]);
    free(buf[1]);
}

static float frand(unsigned *seed) {
    return bench_mlp_frand(seed);
}

int main(int argc, char **argv) {
    opts o = {.runs = 3,
              .duration_ms = 2000,
              .concurrency = 1024,
              .delay_us = 2000,
              .device = "cpu",
              .flood = 2000000,
              .deadline_ms = 10};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--runs") && v)
            o.runs = atoi(v), i++;
        else if (!strcmp(a, "--duration-ms") && v)
            o.duration_ms = atoll(v), i++;
        else if (!strcmp(a, "--concurrency") && v)
            o.concurrency = (size_t)atoll(v), i++;
        else if (!strcmp(a, "--delay-us") && v)
            o.delay_us = atoll(v), i++;
        else if (!strcmp(a, "--device") && v)
            o.device = v, i++;
        else if (!strcmp(a, "--flood") && v)
            o.flood = (size_t)atoll(v), i++;
        else if (!strcmp(a, "--deadline-rate") && v && o.ndeadline_rates < 8)
            o.deadline_rates[o.ndeadline_rates++] = atof(v), i++;
        else if (!strcmp(a, "--no-caps"))
            o.no_caps = true;
        else if (!strcmp(a, "--sgemm"))
            o.sgemm = true;
        else if (!strcmp(a, "--precision") && v)
            o.precision = v, i++;
        else if (!strcmp(a, "--cpu-threads") && v)
            o.cpu_threads = atoi(v), i++;
        else if (!strcmp(a, "--deadline-ms") && v)
            o.deadline_ms = atoll(v), i++;
        else {
            fprintf(stderr,
                    "usage: %s [--runs N] [--duration-ms MS] [--concurrency C] [--delay-us US] "
                    "[--device D] [--flood N] [--deadline-rate R]... [--deadline-ms MS] "
                    "[--cpu-threads N] [--no-caps] [--sgemm] [--precision fp32|bf16|int8]\n",
                    argv[0]);
            return 2;
        }
    }
    if (o.runs < 1 || o.runs > 15 || o.concurrency < 1 || o.duration_ms < 100) {
        fprintf(stderr, "runs 1..15, concurrency >= 1, duration >= 100 ms\n");
        return 2;
    }
    if (!getenv("KINFER_LOG_LEVEL"))
        kinfer_log_set_level(KINFER_LOG_WARN);
    char path[128];
    snprintf(path, sizeof(path), "/tmp/kinfer_bench_mlp_%d.safetensors", (int)getpid());
    o.path = path;
    if (bench_mlp_write(path) != 0)
        return 1;
    slot *slots = calloc(o.concurrency, sizeof(*slots));
    int64_t *lat = malloc(MAX_SAMPLES * sizeof(*lat));
    unsigned seed = 5;
    for (size_t i = 0; i < o.concurrency; i++) {
        for (int k = 0; k < IN; k++)
            slots[i].x[k] = frand(&seed);
        kinfer_tensor *t = &slots[i].t;
        t->name.ptr = "input";
        t->name.len = 5;
        t->dtype = KINFER_DTYPE_FP32;
        t->ndim = 2;
        t->shape[0] = 1;
        t->shape[1] = IN;
        t->data = slots[i].x;
        t->nbytes = sizeof(slots[i].x);
    }
    printf("engine bench: mlp %d-%d-%d-%d relu precision %s on %s (cpu_threads %d), 1-row "
           "requests, closed loop with %zu outstanding, max_queue_delay_us %lld, %d runs x %lld ms "
           "(median); dense kernels %s, OpenBLAS core %s\n",
           IN, H1, H2, OUTW, o.precision ? o.precision : "fp32", o.device, o.cpu_threads,
           o.concurrency, (long long)o.delay_us, o.runs, (long long)o.duration_ms,
           kinfer_cpu_dense_isa(), kinfer_cpu_blas_core());
    static const uint32_t caps[] = {1, 8, 64, 256};
    double base = 0;
    int rc = 0;
    printf("%-6s %10s %9s %9s %10s %8s %10s %10s %11s   runs (req/s)\n", "cap", "req/s", "p50 ms",
           "p99 ms", "rows/batch", "x cap 1", "compute ms", "estim. ms", "cpu us/req");
    for (size_t c = 0; !o.no_caps && c < sizeof(caps) / sizeof(caps[0]); c++) {
        result r[15];
        double rps[15], p50[15], p99[15], mb[15], cm[15], em[15], cu[15];
        for (int k = 0; k < o.runs; k++) {
            if (run_once(&o, caps[c], slots, lat, &r[k]) != 0) {
                rc = 1;
                goto out;
            }
            rps[k] = r[k].rps;
            p50[k] = r[k].p50_ms;
            p99[k] = r[k].p99_ms;
            mb[k] = r[k].mean_batch;
            cm[k] = r[k].compute_ms;
            em[k] = r[k].estimate_ms;
            cu[k] = r[k].cpu_us;
        }
        char runs_txt[256] = "";
        for (int k = 0; k < o.runs; k++) {
            size_t len = strlen(runs_txt);
            snprintf(runs_txt + len, sizeof(runs_txt) - len, "%s%.0f", k ? " " : "", rps[k]);
        }
        qsort(rps, o.runs, sizeof(double), cmp_double);
        qsort(p50, o.runs, sizeof(double), cmp_double);
        qsort(p99, o.runs, sizeof(double), cmp_double);
        qsort(mb, o.runs, sizeof(double), cmp_double);
        qsort(cm, o.runs, sizeof(double), cmp_double);
        qsort(em, o.runs, sizeof(double), cmp_double);
        qsort(cu, o.runs, sizeof(double), cmp_double);
        double med = rps[o.runs / 2];
        if (caps[c] == 1)
            base = med;
        int h = o.runs / 2;
        printf("%-6u %10.0f %9.2f %9.2f %10.1f %7.1fx %10.3f %10.3f %11.1f   %s\n", caps[c], med,
               p50[h], p99[h], mb[h], base > 0 ? med / base : 0, cm[h], em[h], cu[h], runs_txt);
        fflush(stdout);
    }
    if (o.flood > 0 && flood(&o, &slots[0]) != 0)
        rc = 1;
    for (size_t k = 0; k < o.ndeadline_rates; k++)
        if (deadline_run(&o, &slots[0], o.deadline_rates[k], o.deadline_ms) != 0)
            rc = 1;
    if (o.sgemm)
        sgemm_ceiling();
out:
    unlink(path);
    free(lat);
    free(slots);
    return rc;
}
