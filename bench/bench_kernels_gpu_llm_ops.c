/* bench_kernels_gpu_llm_ops.c — the llm CUDA ops alone on one GPU: the
 * quantized matmul per weight type and row count (fused GEMV up to 32 rows,
 * dequantize + cuBLAS above; GB/s of weights, GFLOP/s), paged decode
 * attention at a few context lengths, and a whole SmolLM2-135M-shaped step
 * (30 layers, d 576, ff 1536, 9/3 heads, vocab 49152; Q4_1 layers, Q8_0
 * head, fused QKV and gate|up, F16 KV) on random weights, as tokens/s for
 * decode at 1/8/32 sequences and prompt tokens/s for a 512-token prefill.
 * Device time by CUDA events around many launches, no host round trips.
 * Without a GPU: a SKIPPED line and exit 0. Not a test.
 *
 *   bench_kernels_gpu_llm_ops [--iters N] [--prec f32|f16]
 * Lines starting with RESULT are key=value for tests/gpu/run.sh. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kinfer/kinfer_device.h"

#ifdef KINFER_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "ops/llm_ops.h"
#include "ops/llm_ops_cuda.h"
#include "ops/paged_kv.h"
#include "ops/paged_kv_cuda.h"
#include "ops/qmatmul_cuda.h"
#include "ops/quant.h"

#define CK(call)                                                                                   \
    do {                                                                                           \
        cudaError_t rc_ = (call);                                                                  \
        if (rc_ != cudaSuccess) {                                                                  \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call,                          \
                    cudaGetErrorString(rc_));                                                      \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)
static uint64_t g_rng = 0x2545f4914f6cdd1dull;
static float frand(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (float)((g_rng >> 40) / (double)(1ull << 24)) * 2.0f - 1.0f;
}

static size_t wbytes(kinfer_qtype t, size_t n, size_t k) {
    size_t rb = 0;
    kinfer_qtype_row_bytes(t, k, &rb, NULL);
    return n * rb;
}

/* Random weights quantized on the host, uploaded once. */
static void *dev_weights(kinfer_qtype t, size_t n, size_t k) {
    size_t rb = wbytes(t, 1, k);
    unsigned char *h = malloc(n * rb);
    float *row = malloc(k * sizeof(float));
    if (!h || !row)
        exit(1);
    for (size_t r = 0; r < n; r++) {
        for (size_t i = 0; i < k; i++)
            row[i] = 0.05f * frand();
        kinfer_quantize_row_cpu(row, t, h + r * rb, k);
    }
    void *d = NULL;
    CK(cudaMalloc(&d, n * rb));
    CK(cudaMemcpy(d, h, n * rb, cudaMemcpyHostToDevice));
    free(h);
    free(row);
    return d;
}

static float *dev_floats(size_t n, float scale) {
    float *h = malloc(n * sizeof(float)), *d = NULL;
    if (!h)
        exit(1);
    for (size_t i = 0; i < n; i++)
        h[i] = scale * frand();
    CK(cudaMalloc((void **)&d, n * sizeof(float)));
    CK(cudaMemcpy(d, h, n * sizeof(float), cudaMemcpyHostToDevice));
    free(h);
    return d;
}

static void check(kinfer_err rc, const kinfer_error *e) {
    if (rc != KINFER_OK) {
        fprintf(stderr, "error: %s\n", e->msg);
        exit(1);
    }
}

typedef void (*gpu_fn)(void *ctx, cudaStream_t s);
/* Device µs per call: warm-up, then iters calls between two events. */
static double time_us(gpu_fn fn, void *ctx, cudaStream_t s, int iters) {
    cudaEvent_t a, b;
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
    for (int i = 0; i < 3; i++)
        fn(ctx, s);
    CK(cudaEventRecord(a, s));
    for (int i = 0; i < iters; i++)
        fn(ctx, s);
    CK(cudaEventRecord(b, s));
    CK(cudaEventSynchronize(b));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, a, b));
    CK(cudaGetLastError());
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    return ms * 1000.0 / iters;
}

/* ---- qmatmul ---------------------------------------------------------------- */
typedef struct mm_ctx {
    kinfer_qmm_cuda *qmm;
    const float *x;
    float *y;
    const void *w;
    kinfer_qtype t;
    size_t M, N, K;
} mm_ctx;
static void run_mm(void *p, cudaStream_t s) {
    mm_ctx *c = p;
    kinfer_error e;
    check(kinfer_qmatmul_cuda(c->qmm, c->x, c->M, c->K, c->w, c->t, c->N, c->y, false, s, &e), &e);
}

/* ---- the 135M model ---------------------------------------------------------- */
enum { L = 30, D = 576, FF = 1536, NH = 9, NKV = 3, HD = 64, VOCAB = 49152, T = 16 };
typedef struct model_ctx {
    kinfer_qmm_cuda *qmm;
    void *wqkv[L], *wo[L], *wgu[L], *wdown[L], *head;
    float *norm_w, *x, *h, *qkv, *att, *gu, *ff, *logits, *cs, *inv_freq;
    uint32_t *pos;
    unsigned char *pool;
    uint32_t nblocks;
    kinfer_kv_layout layout;
    kinfer_kv_seq *seqs;
    uint32_t *table;
    size_t M, nseqs, nlogits;
} model_ctx;

static void run_model(void *p, cudaStream_t s) {
    model_ctx *c = p;
    kinfer_error e;
    const size_t M = c->M, ld = (NH + 2 * NKV) * HD;
    CK(kinfer_rope_table_cuda(c->pos, M, c->inv_freq, HD, c->cs, s));
    for (int l = 0; l < L; l++) {
        CK(kinfer_rmsnorm_cuda(c->x, c->norm_w, c->h, M, D, 1e-5f, s));
        check(kinfer_qmatmul_cuda(c->qmm, c->h, M, D, c->wqkv[l], KINFER_QTYPE_Q4_1, ld, c->qkv,
                                  false, s, &e),
              &e);
        CK(kinfer_rope_cuda(c->qkv, ld, M, NH + NKV, HD, HD, c->cs, KINFER_ROPE_NORM, s));
        kinfer_kv_view kv = kinfer_kv_layer_view(&c->layout, c->pool, c->nblocks, (uint32_t)l);
        CK(kinfer_kv_write_cuda(&kv, c->qkv + NH * HD, c->qkv + (NH + NKV) * HD, ld, c->seqs,
                                c->nseqs, c->table, M, s));
        CK(kinfer_paged_attention_cuda(&kv, c->qkv, ld, c->att, NH * HD, NH, c->seqs, c->nseqs,
                                       c->table, 0.125f, M, s));
        check(kinfer_qmatmul_cuda(c->qmm, c->att, M, D, c->wo[l], KINFER_QTYPE_Q4_1, D, c->x, true,
                                  s, &e),
              &e);
        CK(kinfer_rmsnorm_cuda(c->x, c->norm_w, c->h, M, D, 1e-5f, s));
        check(kinfer_qmatmul_cuda(c->qmm, c->h, M, D, c->wgu[l], KINFER_QTYPE_Q4_1, 2 * FF, c->gu,
                                  false, s, &e),
              &e);
        CK(kinfer_swiglu_cuda(c->gu, c->gu + FF, 2 * FF, c->ff, M, FF, s));
        check(kinfer_qmatmul_cuda(c->qmm, c->ff, M, FF, c->wdown[l], KINFER_QTYPE_Q4_1, D, c->x,
                                  true, s, &e),
              &e);
    }
    /* logits of each sequence's last row only (decode: every row) */
    CK(kinfer_rmsnorm_cuda(c->x, c->norm_w, c->h, c->nlogits, D, 1e-5f, s));
    check(kinfer_qmatmul_cuda(c->qmm, c->h, c->nlogits, D, c->head, KINFER_QTYPE_Q8_0, VOCAB,
                              c->logits, false, s, &e),
          &e);
    CK(kinfer_rmsnorm_cuda(c->x, c->norm_w, c->x, M, D, 1e-5f, s)); /* keep x O(1) */
}

/* nseqs sequences feeding `each` tokens at position ctx. */
static void model_bench(kinfer_qmm_cuda *qmm, size_t nseqs, size_t each, uint32_t ctx, int iters,
                        cudaStream_t s, const char *what) {
    model_ctx c = {.qmm = qmm, .M = nseqs * each, .nseqs = nseqs, .nlogits = nseqs};
    size_t bytes = 0;
    for (int l = 0; l < L; l++) {
        c.wqkv[l] = dev_weights(KINFER_QTYPE_Q4_1, (NH + 2 * NKV) * HD, D);
        c.wo[l] = dev_weights(KINFER_QTYPE_Q4_1, D, D);
        c.wgu[l] = dev_weights(KINFER_QTYPE_Q4_1, 2 * FF, D);
        c.wdown[l] = dev_weights(KINFER_QTYPE_Q4_1, D, FF);
        bytes += wbytes(KINFER_QTYPE_Q4_1, (NH + 2 * NKV) * HD, D) +
                 wbytes(KINFER_QTYPE_Q4_1, D, D) + wbytes(KINFER_QTYPE_Q4_1, 2 * FF, D) +
                 wbytes(KINFER_QTYPE_Q4_1, D, FF);
    }
    c.head = dev_weights(KINFER_QTYPE_Q8_0, VOCAB, D);
    bytes += wbytes(KINFER_QTYPE_Q8_0, VOCAB, D);
    const size_t M = c.M;
    c.norm_w = dev_floats(D, 1.0f);
    c.x = dev_floats(M * D, 1.0f);
    c.h = dev_floats(M * D, 1.0f);
    c.qkv = dev_floats(M * (NH + 2 * NKV) * HD, 1.0f);
    c.att = dev_floats(M * D, 1.0f);
    c.gu = dev_floats(M * 2 * FF, 1.0f);
    c.ff = dev_floats(M * FF, 1.0f);
    c.logits = dev_floats(nseqs * VOCAB, 1.0f);
    c.cs = dev_floats(M * HD, 1.0f);
    float inv[HD / 2];
    kinfer_rope_params rp = {.theta = 100000.0f};
    kinfer_rope_freqs(&rp, HD, inv, NULL);
    CK(cudaMalloc((void **)&c.inv_freq, sizeof(inv)));
    CK(cudaMemcpy(c.inv_freq, inv, sizeof(inv), cudaMemcpyHostToDevice));
    c.layout = (kinfer_kv_layout){L, NKV, HD, T, KINFER_KV_F16};
    uint32_t per_seq = (uint32_t)((ctx + each + T - 1) / T);
    c.nblocks = per_seq * (uint32_t)nseqs;
    size_t kvb = kinfer_kv_block_bytes(&c.layout);
    CK(cudaMalloc((void **)&c.pool, kvb * c.nblocks));
    CK(cudaMemset(c.pool, 0, kvb * c.nblocks));
    kinfer_kv_seq *hs = malloc(nseqs * sizeof(*hs));
    uint32_t *ht = malloc(c.nblocks * sizeof(uint32_t)), *hp = malloc(M * sizeof(uint32_t));
    for (uint32_t b = 0; b < c.nblocks; b++)
        ht[b] = b;
    for (size_t q = 0; q < nseqs; q++) {
        hs[q] = (kinfer_kv_seq){(uint32_t)(q * each), (uint32_t)each, ctx, (uint32_t)q * per_seq,
                                per_seq};
        for (size_t i = 0; i < each; i++)
            hp[q * each + i] = ctx + (uint32_t)i;
    }
    CK(cudaMalloc((void **)&c.seqs, nseqs * sizeof(*hs)));
    CK(cudaMemcpy(c.seqs, hs, nseqs * sizeof(*hs), cudaMemcpyHostToDevice));
    CK(cudaMalloc((void **)&c.table, c.nblocks * sizeof(uint32_t)));
    CK(cudaMemcpy(c.table, ht, c.nblocks * sizeof(uint32_t), cudaMemcpyHostToDevice));
    CK(cudaMalloc((void **)&c.pos, M * sizeof(uint32_t)));
    CK(cudaMemcpy(c.pos, hp, M * sizeof(uint32_t), cudaMemcpyHostToDevice));
    double us = time_us(run_model, &c, s, iters);
    double tps = (double)M / (us * 1e-6);
    printf("model  135M %-7s seqs=%-3zu tokens/step=%-4zu ctx=%-5u %9.1f us/step %10.1f tok/s "
           "(%.0f GB/s of weights)\n",
           what, nseqs, M, ctx, us, tps, bytes / (us * 1e-6) / 1e9);
    printf("RESULT op=model_%s seqs=%zu rows=%zu ctx=%u us=%.1f tok_s=%.1f\n", what, nseqs, M, ctx,
           us, tps);
    for (int l = 0; l < L; l++) {
        cudaFree(c.wqkv[l]);
        cudaFree(c.wo[l]);
        cudaFree(c.wgu[l]);
        cudaFree(c.wdown[l]);
    }
    void *bufs[] = {c.head,   c.norm_w, c.x,        c.h,    c.qkv,  c.att,   c.gu, c.ff,
                    c.logits, c.cs,     c.inv_freq, c.pool, c.seqs, c.table, c.pos};
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++)
        cudaFree(bufs[i]);
    free(hs);
    free(ht);
    free(hp);
}

int main(int argc, char **argv) {
    int iters = 50;
    kinfer_qmm_cuda_prec prec = KINFER_QMM_CUDA_F32;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--iters") && i + 1 < argc)
            iters = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--prec") && i + 1 < argc)
            prec = !strcmp(argv[++i], "f16") ? KINFER_QMM_CUDA_F16 : KINFER_QMM_CUDA_F32;
        else {
            fprintf(stderr, "usage: %s [--iters N] [--prec f32|f16]\n", argv[0]);
            return 2;
        }
    }
    if (iters < 1) {
        fprintf(stderr, "--iters must be >= 1\n");
        return 2;
    }
    if (kinfer_cuda_device_count() <= 0) {
        printf("SKIPPED: no CUDA device\n");
        return 0;
    }
    cudaStream_t s;
    CK(cudaStreamCreate(&s));
    kinfer_qmm_cuda *qmm = NULL;
    kinfer_error err;
    check(kinfer_qmm_cuda_new(512, 3072, 1536, prec, &qmm, &err), &err);
    printf("llm ops on GPU: prefill GEMM %s, %d iterations per point\n",
           prec == KINFER_QMM_CUDA_F16 ? "fp16 tensor cores" : "fp32", iters);
    static const kinfer_qtype types[] = {KINFER_QTYPE_Q4_1, KINFER_QTYPE_Q4_0, KINFER_QTYPE_Q8_0,
                                         KINFER_QTYPE_F16,  KINFER_QTYPE_BF16, KINFER_QTYPE_F32};
    static const size_t rows[] = {1, 8, 32, 512};
    const size_t N = 1536, K = 576;
    for (size_t ti = 0; ti < sizeof(types) / sizeof(types[0]); ti++) {
        void *w = dev_weights(types[ti], N, K);
        for (size_t ri = 0; ri < 4; ri++) {
            mm_ctx c = {qmm,
                        dev_floats(rows[ri] * K, 1.0f),
                        dev_floats(rows[ri] * N, 1.0f),
                        w,
                        types[ti],
                        rows[ri],
                        N,
                        K};
            double us = time_us(run_mm, &c, s, iters);
            double gbs = wbytes(types[ti], N, K) / (us * 1e-6) / 1e9;
            double gf = 2.0 * rows[ri] * N * K / (us * 1e-6) / 1e9;
            printf("qmm    %-5s N=%zu K=%zu M=%-4zu %9.2f us %8.1f GB/s %9.1f GFLOP/s\n",
                   kinfer_qtype_name(types[ti]), N, K, rows[ri], us, gbs, gf);
            printf("RESULT op=qmatmul qtype=%s rows=%zu us=%.2f gbs=%.1f gflops=%.1f\n",
                   kinfer_qtype_name(types[ti]), rows[ri], us, gbs, gf);
            cudaFree((void *)c.x);
            cudaFree(c.y);
        }
        cudaFree(w);
    }
    static const size_t seqs[] = {1, 8, 32};
    for (size_t i = 0; i < 3; i++)
        model_bench(qmm, seqs[i], 1, 128, iters, s, "decode");
    model_bench(qmm, 1, 1, 1024, iters, s, "decode");
    model_bench(qmm, 1, 512, 0, iters > 10 ? 10 : iters, s, "prefill");
    kinfer_qmm_cuda_destroy(qmm);
    cudaStreamDestroy(s);
    return 0;
}
#else
int main(void) {
    printf("SKIPPED: this build has no CUDA backend\n");
    return 0;
}
#endif
