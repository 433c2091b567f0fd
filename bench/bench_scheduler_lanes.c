/* bench_scheduler_lanes.c — the bulk lane of the engine (no Kafka, no Avro)
 * on the real MLP 256-512-512-16 (bench_mlp_model.h), 1-row requests:
 *   online       open-loop Poisson online requests at --rate req/s, each due
 *                --deadline-ms after its scheduled arrival; latency counts
 *                from the scheduled arrival (no coordinated omission)
 *   online+bulk  the same online schedule (same seed) with a bulk job running
 *                closed loop (--window outstanding requests, priority -1)
 *   bulk alone   the bulk job with no online traffic: requests/s
 *   online alone the same closed loop at priority 0: requests/s (the peer)
 * Each run does all four in turn on fresh engines; the table gives each
 * run and the medians, the online p99 ratio (with bulk / without) and the
 * bulk throughput ratio (bulk alone / the same work online). --rate 0 (the
 * default) sets the online rate to --load times the first closed-loop
 * run's throughput. Results go to docs/BENCHMARKS.md.
 *
 *   bench_scheduler_lanes [--runs N] [--duration-ms MS] [--rate R | --load F]
 *       [--window W] [--deadline-ms MS] [--delay-us US] [--batch B]
 *       [--slice-us US] [--cpu-threads N] */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kinfer/kinfer_clock.h"
#include "kinfer/kinfer_engine.h"
#include "kinfer/kinfer_log.h"

#include "bench_mlp_model.h"

#define MAX_ONLINE (1 << 20)
#define TOKEN_BULK ((uintptr_t)1 << 62) /* token bit: a bulk slot */

typedef struct opts {
    int runs;
    int64_t duration_ms, deadline_ms, delay_us, slice_us;
    double rate, load;
    size_t window;
    uint32_t batch;
    int cpu_threads;
    const char *path;
} opts;

typedef struct run_state {
    kinfer_engine *engine;
    float x[IN];
    kinfer_tensor t;
    /* online: scheduled arrival of request i (mono µs), latency when done */
    int64_t *arrival, *lat;
    _Atomic uint64_t online_done, online_late, online_failed;
    /* closed loop */
    int32_t loop_priority;
    atomic_bool stop, measuring;
    _Atomic uint64_t loop_done, loop_failed;
} run_state;

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void sleep_until(int64_t mono_us) {
    int64_t d = mono_us - kinfer_mono_us();
    if (d <= 0)
        return;
    struct timespec ts = {d / 1000000, (d % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

static kinfer_err submit(run_state *s, uintptr_t token, int32_t prio, int64_t deadline_us) {
    kinfer_engine_request q = {0};
    q.model.ptr = "mlp";
    q.model.len = 3;
    q.inputs = &s->t;
    q.ninputs = 1;
    q.priority = prio;
    q.deadline_us = deadline_us;
    q.token = (void *)token;
    kinfer_error err;
    return kinfer_engine_submit(s->engine, &q, &err);
}

static void on_complete(void *ctx, const kinfer_engine_result *res) {
    run_state *s = ctx;
    uintptr_t tok = (uintptr_t)res->token;
    if (tok & TOKEN_BULK) {
        if (res->status != KINFER_OK)
            atomic_fetch_add(&s->loop_failed, 1);
        else if (atomic_load(&s->measuring))
            atomic_fetch_add(&s->loop_done, 1);
        if (!atomic_load(&s->stop) && submit(s, tok, s->loop_priority, 0) != KINFER_OK)
            atomic_fetch_add(&s->loop_failed, 1);
        return;
    }
    int64_t now = kinfer_mono_us();
    s->lat[tok] = now - s->arrival[tok];
    if (res->status != KINFER_OK)
        atomic_fetch_add(&s->online_failed, 1);
    atomic_fetch_add(&s->online_done, 1);
}

static kinfer_err make_engine(const opts *o, run_state *s) {
    kinfer_model_config mc = {0};
    mc.name = "mlp";
    mc.load.kind = "mlp";
    mc.load.path = o->path;
    mc.devices[0] = "cpu";
    mc.ndevices = 1;
    mc.replicas_per_device = 1;
    mc.max_batch_size = o->batch;
    mc.max_queue_delay_us = o->delay_us;
    mc.default_timeout_ms = 30000;
    mc.bulk_slice_us = o->slice_us;
    kinfer_engine_config cfg = {0};
    cfg.models = &mc;
    cfg.nmodels = 1;
    cfg.cpu_threads = o->cpu_threads;
    cfg.on_complete = on_complete;
    cfg.callback_ctx = s;
    kinfer_error err;
    kinfer_err rc = kinfer_engine_new(&cfg, &s->engine, &err);
    if (rc != KINFER_OK)
        fprintf(stderr, "engine: %s\n", err.msg);
    return rc;
}

static void state_init(run_state *s, int64_t *arrival, int64_t *lat) {
    memset(s, 0, sizeof(*s));
    unsigned seed = 5;
    for (int k = 0; k < IN; k++)
        s->x[k] = bench_mlp_frand(&seed);
    s->t.name.ptr = "input";
    s->t.name.len = 5;
    s->t.dtype = KINFER_DTYPE_FP32;
    s->t.ndim = 2;
    s->t.shape[0] = 1;
    s->t.shape[1] = IN;
    s->t.data = s->x;
    s->t.nbytes = sizeof(s->x);
    s->arrival = arrival;
    s->lat = lat;
}

/* Starts the closed loop of `window` requests at priority prio. */
static int loop_start(run_state *s, size_t window, int32_t prio) {
    s->loop_priority = prio;
    for (size_t i = 0; i < window; i++)
        if (submit(s, TOKEN_BULK | i, prio, 0) != KINFER_OK)
            return -1;
    return 0;
}

static void finish(run_state *s) {
    atomic_store(&s->stop, true);
    kinfer_engine_shutdown(s->engine, 10000);
    kinfer_engine_destroy(s->engine);
    s->engine = NULL;
}

/* Closed loop alone: requests/s while measuring. */
static int closed_loop(const opts *o, int32_t prio, int64_t *arrival, int64_t *lat, double *rps) {
    run_state s;
    state_init(&s, arrival, lat);
    if (make_engine(o, &s) != KINFER_OK || loop_start(&s, o->window, prio) != 0)
        return -1;
    sleep_until(kinfer_mono_us() + 300000); /* warm-up: estimator, caches */
    atomic_store(&s.measuring, true);
    int64_t t0 = kinfer_mono_us();
    sleep_until(t0 + o->duration_ms * 1000);
    atomic_store(&s.measuring, false);
    int64_t t1 = kinfer_mono_us();
    *rps = (double)atomic_load(&s.loop_done) * 1e6 / (double)(t1 - t0);
    uint64_t failed = atomic_load(&s.loop_failed);
    finish(&s);
    if (failed)
        fprintf(stderr, "closed loop: %llu failed\n", (unsigned long long)failed);
    return failed ? -1 : 0;
}

typedef struct online_result {
    double p50_ms, p99_ms, bulk_rps;
    uint64_t n, late, failed;
} online_result;

/* Open-loop online traffic, with a bulk loop when `bulk`. */
static int online_run(const opts *o, double rate, bool bulk, int64_t *arrival, int64_t *lat,
                      online_result *r) {
    run_state s;
    state_init(&s, arrival, lat);
    if (make_engine(o, &s) != KINFER_OK)
        return -1;
    if (bulk && loop_start(&s, o->window, -1) != 0)
        return -1;
    /* Warm-up: a few online requests teach the estimator. */
    int64_t t = kinfer_mono_us();
    for (int i = 0; i < 200; i++) {
        arrival[0] = t;
        submit(&s, 0, 0, 0);
        sleep_until(t += 1000);
    }
    while (atomic_load(&s.online_done) < 200)
        sleep_until(kinfer_mono_us() + 1000);
    unsigned seed = 42; /* the same schedule with and without bulk */
    size_t n = (size_t)(rate * (double)o->duration_ms / 1000.0);
    if (n > MAX_ONLINE)
        n = MAX_ONLINE;
    atomic_store(&s.online_done, 0);
    atomic_store(&s.online_failed, 0);
    atomic_store(&s.measuring, true);
    int64_t t0 = kinfer_mono_us(), at = t0;
    for (size_t i = 0; i < n; i++) {
        double u = ((double)rand_r(&seed) + 1.0) / ((double)RAND_MAX + 2.0);
        at += (int64_t)(-log(u) / rate * 1e6);
        arrival[i] = at;
        sleep_until(at);
        int64_t deadline = kinfer_wall_us() + (at - kinfer_mono_us()) + o->deadline_ms * 1000;
        if (submit(&s, i, 0, deadline) != KINFER_OK) {
            lat[i] = INT64_MAX;
            atomic_fetch_add(&s.online_failed, 1);
            atomic_fetch_add(&s.online_done, 1);
        }
    }
    while (atomic_load(&s.online_done) < n)
        sleep_until(kinfer_mono_us() + 1000);
    int64_t t1 = kinfer_mono_us();
    atomic_store(&s.measuring, false);
    r->bulk_rps = (double)atomic_load(&s.loop_done) * 1e6 / (double)(t1 - t0);
    finish(&s);
    uint64_t late = 0;
    for (size_t i = 0; i < n; i++)
        late += lat[i] > o->deadline_ms * 1000;
    qsort(lat, n, sizeof(*lat), cmp_i64);
    r->n = n;
    r->late = late;
    r->failed = atomic_load(&s.online_failed);
    r->p50_ms = n ? lat[(n - 1) / 2] / 1000.0 : 0;
    r->p99_ms = n ? lat[(size_t)ceil(0.99 * n) - 1] / 1000.0 : 0;
    return 0;
}

static double median(double *v, int n) {
    qsort(v, n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv) {
    opts o = {.runs = 5,
              .duration_ms = 3000,
              .deadline_ms = 50,
              .delay_us = 2000,
              .slice_us = 0,
              .load = 0.3,
              .window = 256,
              .batch = 64};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--runs") && v)
            o.runs = atoi(v), i++;
        else if (!strcmp(a, "--duration-ms") && v)
            o.duration_ms = atoll(v), i++;
        else if (!strcmp(a, "--rate") && v)
            o.rate = atof(v), i++;
        else if (!strcmp(a, "--load") && v)
            o.load = atof(v), i++;
        else if (!strcmp(a, "--window") && v)
            o.window = (size_t)atoll(v), i++;
        else if (!strcmp(a, "--deadline-ms") && v)
            o.deadline_ms = atoll(v), i++;
        else if (!strcmp(a, "--delay-us") && v)
            o.delay_us = atoll(v), i++;
        else if (!strcmp(a, "--batch") && v)
            o.batch = (uint32_t)atoi(v), i++;
        else if (!strcmp(a, "--slice-us") && v)
            o.slice_us = atoll(v), i++;
        else if (!strcmp(a, "--cpu-threads") && v)
            o.cpu_threads = atoi(v), i++;
        else {
            fprintf(stderr,
                    "usage: %s [--runs N] [--duration-ms MS] [--rate R | --load F] [--window W] "
                    "[--deadline-ms MS] [--delay-us US] [--batch B] [--slice-us US] "
                    "[--cpu-threads N]\n",
                    argv[0]);
            return 2;
        }
    }
    if (o.runs < 1 || o.runs > 15 || o.window < 1 || o.duration_ms < 100 || o.batch < 1 ||
        o.load <= 0 || o.load >= 1) {
        fprintf(stderr, "runs 1..15, window >= 1, duration >= 100 ms, batch >= 1, load in (0,1)\n");
        return 2;
    }
    if (!getenv("KINFER_LOG_LEVEL"))
        kinfer_log_set_level(KINFER_LOG_WARN);
    char path[128];
    snprintf(path, sizeof(path), "/tmp/kinfer_bench_lanes_%d.safetensors", (int)getpid());
    o.path = path;
    if (bench_mlp_write(path) != 0)
        return 1;
    int64_t *arrival = malloc(MAX_ONLINE * sizeof(*arrival));
    int64_t *lat = malloc(MAX_ONLINE * sizeof(*lat));
    if (!arrival || !lat)
        return 1;
    printf("lanes bench: mlp %d-%d-%d-%d on cpu (cpu_threads %d), 1-row requests, "
           "max_batch_size %u, max_queue_delay_us %lld, bulk_slice_us %lld, bulk window %zu, "
           "online deadline %lld ms, %d runs x %lld ms\n",
           IN, H1, H2, OUTW, o.cpu_threads, o.batch, (long long)o.delay_us,
           (long long)(o.slice_us ? o.slice_us : KINFER_DEFAULT_BULK_SLICE_US), o.window,
           (long long)o.deadline_ms, o.runs, (long long)o.duration_ms);
    double p50a[15], p99a[15], p50b[15], p99b[15], brps[15], bulk_alone[15], online_alone[15];
    double p99ratio[15], tputratio[15];
    double rate = o.rate;
    int rc = 0;
    printf("%-4s %9s %11s %11s %11s %11s %11s %10s %10s %9s %9s\n", "run", "rate", "p50 ms",
           "p99 ms", "p50 ms+b", "p99 ms+b", "bulk r/s+", "bulk r/s", "online r/s", "p99 x",
           "tput x");
    for (int k = 0; k < o.runs; k++) {
        if (closed_loop(&o, 0, arrival, lat, &online_alone[k]) != 0 ||
            closed_loop(&o, -1, arrival, lat, &bulk_alone[k]) != 0) {
            rc = 1;
            break;
        }
        if (rate <= 0)
            rate = o.load * online_alone[k];
        online_result a, b;
        if (online_run(&o, rate, false, arrival, lat, &a) != 0 ||
            online_run(&o, rate, true, arrival, lat, &b) != 0) {
            rc = 1;
            break;
        }
        p50a[k] = a.p50_ms;
        p99a[k] = a.p99_ms;
        p50b[k] = b.p50_ms;
        p99b[k] = b.p99_ms;
        brps[k] = b.bulk_rps;
        p99ratio[k] = b.p99_ms / a.p99_ms;
        tputratio[k] = bulk_alone[k] / online_alone[k];
        printf("%-4d %9.0f %11.3f %11.3f %11.3f %11.3f %11.0f %10.0f %10.0f %9.3f %9.3f   late "
               "%llu/%llu, %llu/%llu with bulk; failed %llu, %llu\n",
               k + 1, rate, a.p50_ms, a.p99_ms, b.p50_ms, b.p99_ms, b.bulk_rps, bulk_alone[k],
               online_alone[k], p99ratio[k], tputratio[k], (unsigned long long)a.late,
               (unsigned long long)a.n, (unsigned long long)b.late, (unsigned long long)b.n,
               (unsigned long long)a.failed, (unsigned long long)b.failed);
        fflush(stdout);
    }
    if (rc == 0) {
        int n = o.runs;
        printf("%-4s %9.0f %11.3f %11.3f %11.3f %11.3f %11.0f %10.0f %10.0f %9.3f %9.3f\n", "med",
               rate, median(p50a, n), median(p99a, n), median(p50b, n), median(p99b, n),
               median(brps, n), median(bulk_alone, n), median(online_alone, n), median(p99ratio, n),
               median(tputratio, n));
    }
    unlink(path);
    free(arrival);
    free(lat);
    return rc;
}
