/* bench_kernels_llm_ops.c — the llm CPU ops alone: the pool's per-call
 * cost, the quantized matrix product per weight type and row count (GB/s of
 * weights streamed, GFLOP/s), the row-wise ops and paged attention, and a
 * whole decode step of SmolLM2-135M's shapes (30 layers, d 576, ff 1536,
 * 9/3 heads, vocab 49152; Q4_1 layers, Q8_0 output head, fused QKV and
 * gate|up products, F32 KV at a given context) on random weights, as
 * tokens/s. Not a test; numbers go to docs/benchmarks.
 *
 *   bench_kernels_llm_ops [--threads 2] [--min-ms 300] [--rows 1,8,32,512]
 *       [--isa auto|portable|avx2|avx512] [--act q8|f32] [--ctx 128]
 *       [--only pool|qmm|rows|model] [--cpu-time (with --threads 1)]
 * Lines starting with RESULT are key=value for scripts. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kinfer/kinfer_clock.h"
#include "ops/cpu_threads.h"
#include "ops/llm_ops.h"
#include "ops/paged_kv.h"
#include "ops/qmatmul.h"
#include "ops/quant.h"

#define MAXL 16

static int parse_list(const char *s, size_t *out) {
    int n = 0;
    while (*s && n < MAXL) {
        char *end;
        unsigned long v = strtoul(s, &end, 10);
        if (end == s || v == 0 || v > 4096)
            return -1;
        out[n++] = v;
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

/* --cpu-time (one thread only): time this thread ran, not the wall clock,
 * so a machine shared with other work measures what the code costs. */
static int g_cpu_time;
static int64_t now_us(void) {
    if (!g_cpu_time)
        return kinfer_mono_us();
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

typedef void (*run_fn)(void *ctx);
/* The fastest sample of the last median_us call: on a machine shared with
 * other work the median measures the neighbours too, the minimum is what
 * the code does when it gets the cores. Both are printed. */
static double g_best_us;

/* Runs fn until min_ms passed (at least 3 times, one warm-up first);
 * returns the median µs. */
static double median_us(run_fn fn, void *ctx, int min_ms) {
    static int64_t t[200000];
    int n = 0;
    fn(ctx);
    int64_t start = now_us();
    while (n < 200000 && (n < 3 || now_us() - start < (int64_t)min_ms * 1000)) {
        int64_t t0 = now_us();
        fn(ctx);
        t[n++] = now_us() - t0;
    }
    qsort(t, (size_t)n, sizeof(t[0]), cmp_i64);
    g_best_us = (double)(t[0] > 0 ? t[0] : 1);
    return (double)t[n / 2];
}

/* A finer clock for the pool: many calls per sample. */
static double per_call_us(run_fn fn, void *ctx, int reps, int min_ms) {
    static int64_t t[20000];
    int n = 0;
    int64_t start = now_us();
    while (n < 20000 && (n < 5 || now_us() - start < (int64_t)min_ms * 1000)) {
        int64_t t0 = now_us();
        for (int i = 0; i < reps; i++)
            fn(ctx);
        t[n++] = now_us() - t0;
    }
    qsort(t, (size_t)n, sizeof(t[0]), cmp_i64);
    return (double)t[n / 2] / reps;
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static float frand(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (float)((g_rng >> 40) / (double)(1ull << 24)) * 2.0f - 1.0f;
}

static float *rand_floats(size_t n, float scale) {
    float *p = xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        p[i] = scale * frand();
    return p;
}

/* Random weights of type t, quantized from U(-0.05, 0.05) as a model's. */
static void *rand_weights(kinfer_qtype t, size_t n, size_t k) {
    size_t rb = 0;
    kinfer_qtype_row_bytes(t, k, &rb, NULL);
    unsigned char *w = xmalloc(n * rb);
    float *row = rand_floats(k, 0.05f);
    for (size_t r = 0; r < n; r++) {
        for (size_t i = 0; i < k; i++)
            row[i] = 0.05f * frand();
        kinfer_quantize_row_cpu(row, t, w + r * rb, k);
    }
    free(row);
    return w;
}

static size_t wbytes(kinfer_qtype t, size_t n, size_t k) {
    size_t rb = 0;
    kinfer_qtype_row_bytes(t, k, &rb, NULL);
    return n * rb;
}

static void check(kinfer_err rc, const kinfer_error *err) {
    if (rc != KINFER_OK) {
        fprintf(stderr, "error: %s\n", err->msg);
        exit(1);
    }
}

/* ---- pool ------------------------------------------------------------------ */
static void nop_task(void *ctx, size_t task, int worker) {
    (void)ctx;
    (void)task;
    (void)worker;
}
typedef struct pool_ctx {
    kinfer_threads *t;
    size_t ntasks;
    int spin; /* work per task: iterations of a dependent FP chain */
} pool_ctx;
static void run_pool(void *p) {
    pool_ctx *c = p;
    kinfer_threads_run(c->t, nop_task, NULL, c->ntasks);
}
static volatile float g_sink;
static void work_task(void *ctx, size_t task, int worker) {
    (void)task;
    (void)worker;
    const pool_ctx *c = ctx;
    float v = 1.0f;
    for (int i = 0; i < c->spin; i++)
        v = v * 0.999999f + 1e-7f;
    g_sink = v;
}
static void run_work(void *p) {
    pool_ctx *c = p;
    kinfer_threads_run(c->t, work_task, c, c->ntasks);
}
static void run_work_inline(void *p) {
    pool_ctx *c = p;
    for (size_t i = 0; i < c->ntasks; i++)
        work_task(c, i, 0);
}

/* ---- qmatmul ------------------------------------------------------------- */
#define NCOPIES 24 /* distinct weight copies cycled, so M=1 streams from memory */
typedef struct qmm_ctx {
    kinfer_qmm *qmm;
    kinfer_qtype t;
    size_t M, N, K;
    void *w[NCOPIES];
    int next;
    float *x, *y;
} qmm_ctx;
static void run_qmm(void *p) {
    qmm_ctx *c = p;
    kinfer_error err;
    check(
        kinfer_qmatmul_cpu(c->qmm, c->x, c->M, c->K, c->w[c->next], c->t, c->N, c->y, false, &err),
        &err);
    c->next = (c->next + 1) % NCOPIES;
}

/* ---- the 135M model's decode step ---------------------------------------- */
enum { L = 30, D = 576, FF = 1536, NH = 9, NKV = 3, HD = 64, VOCAB = 49152, T = 16 };
typedef struct model_ctx {
    kinfer_threads *pool;
    kinfer_qmm *qmm;
    void *wqkv[L], *wo[L], *wgu[L], *wdown[L], *head;
    float *norm_w;
    size_t M; /* sequences, one token each */
    float *x, *h, *qkv, *att, *gu, *ff, *logits, *cs, *inv_freq;
    uint32_t *pos;
    unsigned char *pool_kv;
    uint32_t nblocks, ctx_len;
    kinfer_kv_layout layout;
    kinfer_kv_seq *seqs;
    uint32_t *table;
} model_ctx;

static void run_model(void *p) {
    model_ctx *c = p;
    kinfer_error err;
    const size_t M = c->M;
    kinfer_rope_table_cpu(c->pos, M, c->inv_freq, HD, c->cs);
    for (int l = 0; l < L; l++) {
        kinfer_rmsnorm_cpu(c->x, c->norm_w, c->h, M, D, 1e-5f);
        check(kinfer_qmatmul_cpu(c->qmm, c->h, M, D, c->wqkv[l], KINFER_QTYPE_Q4_1,
                                 (NH + 2 * NKV) * HD, c->qkv, false, &err),
              &err);
        size_t ld = (NH + 2 * NKV) * HD;
        kinfer_rope_cpu(c->qkv, ld, M, NH + NKV, HD, HD, c->cs, KINFER_ROPE_NORM);
        kinfer_kv_view kv = kinfer_kv_layer_view(&c->layout, c->pool_kv, c->nblocks, (uint32_t)l);
        kinfer_kv_write_cpu(&kv, c->qkv + NH * HD, c->qkv + (NH + NKV) * HD, ld, c->seqs, M,
                            c->table);
        kinfer_paged_attention_cpu(c->pool, &kv, c->qkv, ld, c->att, NH * HD, NH, c->seqs, M,
                                   c->table, 0.125f);
        check(kinfer_qmatmul_cpu(c->qmm, c->att, M, D, c->wo[l], KINFER_QTYPE_Q4_1, D, c->x, true,
                                 &err),
              &err);
        kinfer_rmsnorm_cpu(c->x, c->norm_w, c->h, M, D, 1e-5f);
        check(kinfer_qmatmul_cpu(c->qmm, c->h, M, D, c->wgu[l], KINFER_QTYPE_Q4_1, 2 * FF, c->gu,
                                 false, &err),
              &err);
        kinfer_swiglu_cpu(c->gu, c->gu + FF, 2 * FF, c->ff, M, FF);
        check(kinfer_qmatmul_cpu(c->qmm, c->ff, M, FF, c->wdown[l], KINFER_QTYPE_Q4_1, D, c->x,
                                 true, &err),
              &err);
    }
    kinfer_rmsnorm_cpu(c->x, c->norm_w, c->h, M, D, 1e-5f);
    check(kinfer_qmatmul_cpu(c->qmm, c->h, M, D, c->head, KINFER_QTYPE_Q8_0, VOCAB, c->logits,
                             false, &err),
          &err);
    /* keep the residual stream O(1) so the loop does not drift into Inf */
    kinfer_rmsnorm_cpu(c->x, c->norm_w, c->x, M, D, 1e-5f);
}

static void model_bench(kinfer_threads *pool, const kinfer_qmm_opts *o, size_t M, uint32_t ctx,
                        int min_ms, int nthreads) {
    model_ctx c = {.pool = pool, .M = M, .ctx_len = ctx};
    kinfer_error err;
    check(kinfer_qmm_new(pool, M, FF, o, &c.qmm, &err), &err);
    size_t bytes = 0;
    for (int l = 0; l < L; l++) {
        c.wqkv[l] = rand_weights(KINFER_QTYPE_Q4_1, (NH + 2 * NKV) * HD, D);
        c.wo[l] = rand_weights(KINFER_QTYPE_Q4_1, D, D);
        c.wgu[l] = rand_weights(KINFER_QTYPE_Q4_1, 2 * FF, D);
        c.wdown[l] = rand_weights(KINFER_QTYPE_Q4_1, D, FF);
        bytes += wbytes(KINFER_QTYPE_Q4_1, (NH + 2 * NKV) * HD, D) +
                 wbytes(KINFER_QTYPE_Q4_1, D, D) + wbytes(KINFER_QTYPE_Q4_1, 2 * FF, D) +
                 wbytes(KINFER_QTYPE_Q4_1, D, FF);
    }
    c.head = rand_weights(KINFER_QTYPE_Q8_0, VOCAB, D);
    bytes += wbytes(KINFER_QTYPE_Q8_0, VOCAB, D);
    c.norm_w = rand_floats(FF, 1.0f);
    c.x = rand_floats(M * D, 1.0f);
    c.h = rand_floats(M * D, 1.0f);
    c.qkv = rand_floats(M * (NH + 2 * NKV) * HD, 1.0f);
    c.att = rand_floats(M * D, 1.0f);
    c.gu = rand_floats(M * 2 * FF, 1.0f);
    c.ff = rand_floats(M * FF, 1.0f);
    c.logits = rand_floats(M * VOCAB, 1.0f);
    c.cs = rand_floats(M * HD, 1.0f);
    c.inv_freq = rand_floats(HD / 2, 1.0f);
    kinfer_rope_params rp = {.theta = 100000.0f};
    check(kinfer_rope_freqs(&rp, HD, c.inv_freq, &err), &err);
    c.layout = (kinfer_kv_layout){L, NKV, HD, T, KINFER_KV_F32};
    uint32_t per_seq = (ctx + 1 + T - 1) / T;
    c.nblocks = per_seq * (uint32_t)M;
    size_t kvb = kinfer_kv_block_bytes(&c.layout);
    c.pool_kv = xmalloc(kvb * c.nblocks);
    memset(c.pool_kv, 0, kvb * c.nblocks);
    c.seqs = xmalloc(M * sizeof(kinfer_kv_seq));
    c.table = xmalloc(c.nblocks * sizeof(uint32_t));
    c.pos = xmalloc(M * sizeof(uint32_t));
    for (uint32_t b = 0; b < c.nblocks; b++)
        c.table[b] = b;
    for (size_t s = 0; s < M; s++) {
        /* every step rewrites position ctx: the same work each time */
        c.seqs[s] = (kinfer_kv_seq){(uint32_t)s, 1, ctx, (uint32_t)s * per_seq, per_seq};
        c.pos[s] = ctx;
    }
    kinfer_kv_view kv0 = kinfer_kv_layer_view(&c.layout, c.pool_kv, c.nblocks, 0);
    check(kinfer_kv_seqs_check(&kv0, c.seqs, M, c.table, c.nblocks, M, &err), &err);
    double us = median_us(run_model, &c, min_ms), best = g_best_us;
    double tps = (double)M / (us * 1e-6), tps_best = (double)M / (best * 1e-6);
    printf("model  135M-Q4_1 decode  M=%-4zu ctx=%-5u median %8.0f us/step %7.1f tok/s | best "
           "%8.0f us %7.1f tok/s  (%.1f MB weights, %.2f GB/s best)\n",
           M, ctx, us, tps, best, tps_best, bytes / 1e6, bytes / (best * 1e-6) / 1e9);
    printf("RESULT op=model_decode isa=%s act=%s threads=%d rows=%zu ctx=%u us=%.0f tok_s=%.1f "
           "best_us=%.0f best_tok_s=%.1f\n",
           kinfer_cpu_isa_name(kinfer_qmm_isa(c.qmm)),
           kinfer_qmm_act_name(kinfer_qmm_act_mode(c.qmm)), nthreads, M, ctx, us, tps, best,
           tps_best);
    for (int l = 0; l < L; l++) {
        free(c.wqkv[l]);
        free(c.wo[l]);
        free(c.wgu[l]);
        free(c.wdown[l]);
    }
    free(c.head);
    free(c.norm_w);
    free(c.x);
    free(c.h);
    free(c.qkv);
    free(c.att);
    free(c.gu);
    free(c.ff);
    free(c.logits);
    free(c.cs);
    free(c.inv_freq);
    free(c.pool_kv);
    free(c.seqs);
    free(c.table);
    free(c.pos);
    kinfer_qmm_destroy(c.qmm);
}

/* ---- row ops ---------------------------------------------------------------- */
typedef struct rows_ctx {
    size_t M;
    float *x, *y, *w, *gu, *cs;
    int op;
} rows_ctx;
static void run_rows(void *p) {
    rows_ctx *c = p;
    switch (c->op) {
    case 0:
        kinfer_rmsnorm_cpu(c->x, c->w, c->y, c->M, D, 1e-5f);
        break;
    case 1:
        kinfer_rope_cpu(c->x, (NH + 2 * NKV) * HD, c->M, NH + NKV, HD, HD, c->cs, KINFER_ROPE_NORM);
        break;
    default:
        kinfer_swiglu_cpu(c->gu, c->gu + FF, 2 * FF, c->y, c->M, FF);
        break;
    }
}

int main(int argc, char **argv) {
    int nthreads = 2, min_ms = 300;
    size_t rows[MAXL] = {1, 8, 32, 512};
    int nrows = 4;
    uint32_t ctx = 128;
    const char *only = NULL;
    kinfer_qmm_opts o = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--threads") && v)
            nthreads = atoi(argv[++i]);
        else if (!strcmp(a, "--min-ms") && v)
            min_ms = atoi(argv[++i]);
        else if (!strcmp(a, "--rows") && v) {
            if ((nrows = parse_list(argv[++i], rows)) <= 0) {
                fprintf(stderr, "--rows: a list of 1..4096\n");
                return 2;
            }
        } else if (!strcmp(a, "--ctx") && v)
            ctx = (uint32_t)atoi(argv[++i]);
        else if (!strcmp(a, "--only") && v)
            only = argv[++i];
        else if (!strcmp(a, "--cpu-time"))
            g_cpu_time = 1;
        else if (!strcmp(a, "--act") && v) {
            const char *s = argv[++i];
            o.act = !strcmp(s, "f32") ? KINFER_QMM_ACT_F32 : KINFER_QMM_ACT_Q8;
        } else if (!strcmp(a, "--isa") && v) {
            const char *s = argv[++i];
            o.isa = KINFER_CPU_ISA_COUNT;
            for (int k = 0; k < KINFER_CPU_ISA_COUNT; k++)
                if (!strcmp(s, kinfer_cpu_isa_name((kinfer_cpu_isa)k)))
                    o.isa = (kinfer_cpu_isa)k;
            if (o.isa == KINFER_CPU_ISA_COUNT) {
                fprintf(stderr, "--isa: auto|portable|avx2|avx512\n");
                return 2;
            }
        } else {
            fprintf(stderr,
                    "usage: %s [--threads N] [--min-ms MS] [--rows 1,8,32,512] [--isa I] "
                    "[--act q8|f32] [--ctx N] [--only pool|qmm|rows|model] [--cpu-time]\n",
                    argv[0]);
            return 2;
        }
    }
    if (g_cpu_time && nthreads != 1) {
        fprintf(stderr, "--cpu-time measures one thread: use it with --threads 1\n");
        return 2;
    }
    if (nthreads < 1 || min_ms < 1) {
        fprintf(stderr, "--threads and --min-ms must be >= 1\n");
        return 2;
    }
    kinfer_error err;
    kinfer_threads *pool = NULL;
    check(kinfer_threads_new(nthreads, &pool, &err), &err);
    kinfer_qmm *probe = NULL;
    check(kinfer_qmm_new(pool, 1, 32, &o, &probe, &err), &err);
    printf("llm ops: %d threads, path %s, activations %s, min %d ms per point, %s\n", nthreads,
           kinfer_cpu_isa_name(kinfer_qmm_isa(probe)), kinfer_qmm_act_name(o.act), min_ms,
           g_cpu_time ? "thread CPU time" : "wall clock");
    kinfer_qmm_destroy(probe);

    if (!only || !strcmp(only, "pool")) {
        for (size_t nt = 2; nt <= 16; nt *= 2) {
            pool_ctx pc = {pool, nt, 0};
            double us = per_call_us(run_pool, &pc, 100, min_ms);
            printf("pool   kinfer_threads_run, %2zu empty tasks: %7.2f us per call\n", nt, us);
            printf("RESULT op=pool threads=%d tasks=%zu us=%.2f\n", nthreads, nt, us);
        }
        /* The hand-off cost that matters at decode: two tasks of real work
         * (about a small matmul's share) on the pool vs one after the other
         * on the caller. Overhead = pool time - inline time / workers. */
        for (int spin = 2000; spin <= 32000; spin *= 4) {
            pool_ctx pc = {pool, (size_t)nthreads, spin};
            double inl = per_call_us(run_work_inline, &pc, 20, min_ms);
            double par = per_call_us(run_work, &pc, 20, min_ms);
            printf("pool   %d tasks of %6.1f us each: inline %7.1f us, pool %7.1f us (hand-off "
                   "%+.1f us)\n",
                   nthreads, inl / nthreads, inl, par, par - inl / nthreads);
            printf("RESULT op=pool_work threads=%d task_us=%.1f inline_us=%.1f pool_us=%.1f\n",
                   nthreads, inl / nthreads, inl, par);
        }
    }
    if (!only || !strcmp(only, "qmm")) {
        static const kinfer_qtype types[] = {KINFER_QTYPE_Q4_1, KINFER_QTYPE_Q4_0,
                                             KINFER_QTYPE_Q8_0, KINFER_QTYPE_F16,
                                             KINFER_QTYPE_BF16, KINFER_QTYPE_F32};
        const size_t N = getenv("QN") ? (size_t)atoi(getenv("QN")) : 1536,
                     K = getenv("QK") ? (size_t)atoi(getenv("QK")) : 576;
        for (size_t ti = 0; ti < sizeof(types) / sizeof(types[0]); ti++)
            for (int ri = 0; ri < nrows; ri++) {
                qmm_ctx c = {.t = types[ti], .M = rows[ri], .N = N, .K = K};
                check(kinfer_qmm_new(pool, c.M, K, &o, &c.qmm, &err), &err);
                int copies = c.M >= 8 ? 1 : NCOPIES; /* big M is compute-bound */
                for (int i = 0; i < NCOPIES; i++)
                    c.w[i] = i < copies ? rand_weights(c.t, N, K) : c.w[0];
                c.x = rand_floats(c.M * K, 1.0f);
                c.y = rand_floats(c.M * N, 1.0f);
                double us = median_us(run_qmm, &c, min_ms), best = g_best_us;
                double gbs = wbytes(c.t, N, K) / (best * 1e-6) / 1e9;
                double gflops = 2.0 * c.M * N * K / (best * 1e-6) / 1e9;
                printf("qmm    %-5s N=%zu K=%zu M=%-4zu median %8.1f us | best %8.1f us %7.2f "
                       "GB/s %8.1f GFLOP/s\n",
                       kinfer_qtype_name(c.t), N, K, c.M, us, best, gbs, gflops);
                printf("RESULT op=qmatmul qtype=%s isa=%s act=%s threads=%d rows=%zu n=%zu k=%zu "
                       "us=%.1f best_us=%.1f gbs=%.2f gflops=%.1f\n",
                       kinfer_qtype_name(c.t), kinfer_cpu_isa_name(kinfer_qmm_isa(c.qmm)),
                       kinfer_qmm_act_name(o.act), nthreads, c.M, N, K, us, best, gbs, gflops);
                for (int i = 0; i < copies; i++)
                    free(c.w[i]);
                free(c.x);
                free(c.y);
                kinfer_qmm_destroy(c.qmm);
            }
    }
    if (!only || !strcmp(only, "rows")) {
        static const char *const names[] = {"rmsnorm", "rope", "swiglu"};
        for (int op = 0; op < 3; op++)
            for (int ri = 0; ri < nrows; ri++) {
                rows_ctx c = {.M = rows[ri], .op = op};
                c.x = rand_floats(c.M * (NH + 2 * NKV) * HD, 1.0f);
                c.y = rand_floats(c.M * 2 * FF, 1.0f);
                c.w = rand_floats(D, 1.0f);
                c.gu = rand_floats(c.M * 2 * FF, 1.0f);
                c.cs = rand_floats(c.M * HD, 1.0f);
                uint32_t *pos = xmalloc(c.M * sizeof(uint32_t));
                float inv[HD / 2];
                kinfer_rope_params rp = {.theta = 100000.0f};
                check(kinfer_rope_freqs(&rp, HD, inv, &err), &err);
                for (size_t r = 0; r < c.M; r++)
                    pos[r] = (uint32_t)(r * 7 + 100);
                kinfer_rope_table_cpu(pos, c.M, inv, HD, c.cs); /* unit rotations */
                free(pos);
                double us = median_us(run_rows, &c, min_ms / 3 + 1);
                printf("rows   %-8s M=%-4zu median %9.2f us | best %9.2f us\n", names[op], c.M, us,
                       g_best_us);
                printf("RESULT op=%s rows=%zu us=%.2f best_us=%.2f\n", names[op], c.M, us,
                       g_best_us);
                free(c.x);
                free(c.y);
                free(c.w);
                free(c.gu);
                free(c.cs);
            }
    }
    if (!only || !strcmp(only, "model"))
        for (int ri = 0; ri < nrows; ri++)
            if (rows[ri] <= 64)
                model_bench(pool, &o, rows[ri], ctx, min_ms * 3, nthreads);
    kinfer_threads_destroy(pool);
    return 0;
}
