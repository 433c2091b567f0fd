/* test_cuda_llm_ops.c — parity of the llm CUDA kernels with their C twins:
 * the fused decode GEMV and the dequantize + cuBLAS prefill path
 * (qmatmul.cu, qmatmul_cuda.c) against the double reference of
 * test_llm_util.h, the dequantization, RMSNorm, the RoPE table and
 * rotation, SwiGLU, the embedding gather, the paged KV write (byte for byte
 * against the CPU-written pool) and paged attention (against the CPU twin
 * on the same pool). Random inputs, awkward shapes (1, not a multiple of
 * the kernels' tiles, misaligned X, N above the prefill scratch), sentinel
 * guards on every device buffer, NaN checks. Skips loudly (exit 77)
 * without a GPU.
 *
 * Tolerances (mag = sum_k |w_k x_k|, nb = K / 32 or K / 8):
 *   GEMV (FP32 products): (nb + 32) * 2^-24 * mag, as the CPU F32 mode;
 *   prefill FP32 (SGEMM): (K / 4 + 32) * 2^-24 * mag (cuBLAS's summation
 *     order is its own);
 *   prefill FP16: 2^-9 * mag (X and W rounded to FP16: 2^-11 each);
 *   dequantize, embedding, KV write, RoPE rotation: exact (same FP32
 *     operations, no fused multiply-add on the rotation);
 *   RoPE table: 6e-8 absolute (cos/sin in double on both sides);
 *   RMSNorm: 5e-7 * |ref| + 1e-7 * max|ref|; SwiGLU: 1e-6 * |ref| + 1e-30
 *     (nvcc fuses kinfer_exp_fast's polynomial into FMAs);
 *   attention: 3e-6 absolute (V ~ U(-1, 1): both sides are FP32 online
 *     softmaxes with kinfer_exp_fast, in different orders). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/llm_ops.h"
#include "ops/paged_kv.h"
#include "ops/qmatmul.h"
#include "ops/quant.h"
#include "test_cuda_util.h"
#include "test_llm_util.h"

#ifdef KINFER_HAVE_CUDA
#include "ops/llm_ops_cuda.h"
#include "ops/paged_kv_cuda.h"
#include "ops/qmatmul_cuda.h"

static const kinfer_qtype all_types[] = {KINFER_QTYPE_F32,  KINFER_QTYPE_F16,  KINFER_QTYPE_BF16,
                                         KINFER_QTYPE_Q8_0, KINFER_QTYPE_Q4_0, KINFER_QTYPE_Q4_1};
#define NTYPES (sizeof(all_types) / sizeof(all_types[0]))

static int g_small; /* KINFER_GPU_TEST_SMALL: memcheck is slow, trim the largest cases */

static void up(tc_buf *b, const void *host, size_t bytes) {
    assert_int_equal(tc_alloc(b, host, bytes), 0);
}

static void sync_ok(void) {
    cudaError_t rc = cudaDeviceSynchronize();
    if (rc != cudaSuccess)
        fail_msg("CUDA: %s", cudaGetErrorString(rc));
}

/* Fetches a device buffer (checking its guards) into fresh host memory. */
static void *down(const tc_buf *b) {
    void *h = malloc(b->bytes + 16);
    assert_non_null(h);
    assert_int_equal(tc_fetch(b, h), 0);
    return h;
}

/* ---- qmatmul ---------------------------------------------------------------- */

typedef struct mm_case {
    size_t M, N, K;
    kinfer_qtype t;
    float *x;
    unsigned char *w;
    double *ref, *mag;
} mm_case;

static void mm_make(mm_case *c, tl_rng *rng, kinfer_qtype t, size_t M, size_t N, size_t K) {
    *c = (mm_case){.M = M, .N = N, .K = K, .t = t};
    c->x = tl_floats(rng, M * K, 2.0f);
    c->w = tl_weights(rng, t, N, K);
    c->ref = calloc(M * N + 1, sizeof(double));
    c->mag = calloc(M * N + 1, sizeof(double));
    size_t rb = tl_row_bytes(t, K);
    double *wd = malloc((K + 1) * sizeof(double));
    for (size_t n = 0; n < N; n++) {
        for (size_t k = 0; k < K; k++)
            wd[k] = tl_deq(c->w + n * rb, t, k);
        for (size_t m = 0; m < M; m++) {
            double s = 0, g = 0;
            for (size_t k = 0; k < K; k++) {
                s += wd[k] * c->x[m * K + k];
                g += fabs(wd[k] * c->x[m * K + k]);
            }
            c->ref[m * N + n] = s;
            c->mag[m * N + n] = g;
        }
    }
    free(wd);
}

static void mm_free(mm_case *c) {
    free(c->x);
    free(c->w);
    free(c->ref);
    free(c->mag);
}

/* Runs the case on the GPU (fused kernel when qmm is NULL, else the
 * context's pick) and compares with the reference; y0: accumulate onto. */
static void mm_check(const mm_case *c, kinfer_qmm_cuda *qmm, bool misalign, const float *y0,
                     double tol_per_mag, double tol_abs_k, const char *what) {
    size_t off = misalign ? 1 : 0; /* X one float past a 16-byte boundary */
    tc_buf bx, bw, by;
    float *xh = calloc(c->M * c->K + 1, sizeof(float));
    memcpy(xh + off, c->x, c->M * c->K * sizeof(float));
    up(&bx, xh, (c->M * c->K + off) * sizeof(float));
    up(&bw, c->w, c->N * tl_row_bytes(c->t, c->K));
    up(&by, y0, c->M * c->N * sizeof(float)); /* NULL y0: poison (NaN) */
    const float *dx = (const float *)tc_ptr(&bx) + off;
    if (qmm) {
        kinfer_error err;
        kinfer_err rc = kinfer_qmatmul_cuda(qmm, dx, c->M, c->K, tc_ptr(&bw), c->t, c->N,
                                            tc_ptr(&by), y0 != NULL, 0, &err);
        if (rc != KINFER_OK)
            fail_msg("qmatmul_cuda: %s", err.msg);
    } else {
        assert_int_equal(
            kinfer_qgemv_cuda(dx, c->M, c->K, tc_ptr(&bw), c->t, c->N, tc_ptr(&by), y0 != NULL, 0),
            cudaSuccess);
    }
    sync_ok();
    float *y = down(&by);
    size_t bad = 0;
    for (size_t i = 0; i < c->M * c->N; i++) {
        double want = c->ref[i] + (y0 ? y0[i] : 0.0);
        double tol = tol_per_mag * c->mag[i] + tol_abs_k + (y0 ? fabs(y0[i]) * 1.2e-7 : 0.0);
        if (!(fabs(y[i] - want) <= tol) && bad++ < 3)
            fprintf(stderr, "  %s %s M=%zu N=%zu K=%zu [%zu]: gpu %.9g want %.9g (tol %.3g)\n",
                    what, kinfer_qtype_name(c->t), c->M, c->N, c->K, i, y[i], want, tol);
    }
    assert_int_equal(bad, 0);
    free(y);
    free(xh);
    tc_free(&bx);
    tc_free(&bw);
    tc_free(&by);
}

static void test_qgemv(void **state) {
    (void)state;
    tl_rng rng = {21};
    static const size_t Ms[] = {1, 2, 7, 8, 9, 32};
    static const size_t Ns[] = {1, 5, 130};
    static const size_t Kb[] = {32, 96, 576}, Kf[] = {1, 17, 576};
    for (size_t ti = 0; ti < NTYPES; ti++) {
        kinfer_qtype t = all_types[ti];
        bool block = kinfer_qtype_is_block(t);
        for (size_t ki = 0; ki < 3; ki++)
            for (size_t mi = 0; mi < sizeof(Ms) / sizeof(Ms[0]); mi++)
                for (size_t ni = 0; ni < sizeof(Ns) / sizeof(Ns[0]); ni++) {
                    size_t K = block ? Kb[ki] : Kf[ki];
                    if (g_small && Ns[ni] == 130 && Ms[mi] > 8)
                        continue;
                    mm_case c;
                    mm_make(&c, &rng, t, Ms[mi], Ns[ni], K);
                    double nb = block ? (double)K / 32 : (double)K / 8;
                    double tol = (nb + 32) * ldexp(1.0, -24);
                    mm_check(&c, NULL, false, NULL, tol, 1e-30, "gemv");
                    if (mi == 0 || mi == 3) {
                        mm_check(&c, NULL, true, NULL, tol, 1e-30, "gemv-misaligned");
                        float *y0 = tl_floats(&rng, c.M * c.N, 1.0f);
                        mm_check(&c, NULL, false, y0, tol, 1e-30, "gemv-accumulate");
                        free(y0);
                    }
                    mm_free(&c);
                }
    }
}

static void test_qmatmul_prefill(void **state) {
    (void)state;
    tl_rng rng = {22};
    for (int prec = KINFER_QMM_CUDA_F32; prec <= KINFER_QMM_CUDA_F16; prec++) {
        kinfer_qmm_cuda *qmm = NULL;
        kinfer_error err;
        /* max_n 64 < N: the W chunks of the prefill path */
        if (kinfer_qmm_cuda_new(512, 64, 1536, (kinfer_qmm_cuda_prec)prec, &qmm, &err) != KINFER_OK)
            fail_msg("qmm_cuda_new: %s", err.msg);
        static const size_t shapes[][3] = {
            {33, 130, 576}, {100, 64, 96}, {512, 77, 1536}, {8, 130, 576}};
        for (size_t ti = 0; ti < NTYPES; ti++)
            for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
                if (!kinfer_qtype_is_block(all_types[ti]) && shapes[s][2] == 96)
                    continue;
                if (g_small && shapes[s][0] == 512)
                    continue;
                mm_case c;
                mm_make(&c, &rng, all_types[ti], shapes[s][0], shapes[s][1], shapes[s][2]);
                double tol = prec == KINFER_QMM_CUDA_F16 ? ldexp(1.0, -9)
                                                         : ((double)c.K / 4 + 32) * ldexp(1.0, -24);
                mm_check(&c, qmm, false, NULL, tol, 1e-30, prec ? "prefill-f16" : "prefill-f32");
                float *y0 = tl_floats(&rng, c.M * c.N, 1.0f);
                mm_check(&c, qmm, true, y0, tol, 1e-30, "prefill-accumulate");
                free(y0);
                mm_free(&c);
            }
        /* bounds of the context: INVALID_ARG, nothing launched */
        float dummy[4];
        assert_int_equal(kinfer_qmatmul_cuda(qmm, dummy, 513, 64, dummy, KINFER_QTYPE_Q4_1, 8,
                                             dummy, false, 0, &err),
                         KINFER_ERR_INVALID_ARG);
        assert_int_equal(kinfer_qmatmul_cuda(qmm, dummy, 2, 1568, dummy, KINFER_QTYPE_Q4_1, 8,
                                             dummy, false, 0, &err),
                         KINFER_ERR_INVALID_ARG);
        kinfer_qmm_cuda_destroy(qmm);
    }
}

/* NaN in a row of X: that row's outputs NaN, the others finite. */
static void test_qgemv_nan(void **state) {
    (void)state;
    tl_rng rng = {23};
    for (size_t ti = 0; ti < NTYPES; ti++) {
        mm_case c;
        mm_make(&c, &rng, all_types[ti], 3, 6, 64);
        c.x[64 + 10] = NAN;
        tc_buf bx, bw, by;
        up(&bx, c.x, c.M * c.K * sizeof(float));
        up(&bw, c.w, c.N * tl_row_bytes(c.t, c.K));
        up(&by, NULL, c.M * c.N * sizeof(float));
        assert_int_equal(
            kinfer_qgemv_cuda(tc_ptr(&bx), 3, 64, tc_ptr(&bw), c.t, 6, tc_ptr(&by), false, 0),
            cudaSuccess);
        sync_ok();
        float *y = down(&by);
        for (size_t n = 0; n < 6; n++) {
            assert_true(isfinite(y[n]));
            assert_true(isnan(y[6 + n]));
            assert_true(isfinite(y[12 + n]));
        }
        free(y);
        tc_free(&bx);
        tc_free(&bw);
        tc_free(&by);
        mm_free(&c);
    }
}

static void test_dequantize(void **state) {
    (void)state;
    tl_rng rng = {24};
    const size_t N = 7, K = 96;
    for (size_t ti = 0; ti < NTYPES; ti++) {
        kinfer_qtype t = all_types[ti];
        unsigned char *w = tl_weights(&rng, t, N, K);
        float *want = malloc(N * K * sizeof(float));
        for (size_t n = 0; n < N; n++)
            kinfer_dequantize_row_cpu(w + n * tl_row_bytes(t, K), t, want + n * K, K);
        for (int f16 = 0; f16 < 2; f16++) {
            tc_buf bw, bo;
            up(&bw, w, N * tl_row_bytes(t, K));
            up(&bo, NULL, N * K * (f16 ? 2 : 4));
            assert_int_equal(kinfer_dequantize_cuda(tc_ptr(&bw), t, N, K, tc_ptr(&bo), f16, 0),
                             cudaSuccess);
            sync_ok();
            unsigned char *o = down(&bo);
            for (size_t i = 0; i < N * K; i++) {
                if (f16) {
                    uint16_t h;
                    memcpy(&h, o + 2 * i, 2);
                    assert_int_equal(h, kinfer_fp32_to_fp16(want[i]));
                } else {
                    float v;
                    memcpy(&v, o + 4 * i, 4);
                    assert_true(v == want[i]);
                }
            }
            free(o);
            tc_free(&bw);
            tc_free(&bo);
        }
        free(w);
        free(want);
    }
}

/* ---- row ops ----------------------------------------------------------------- */

static void test_rmsnorm_swiglu(void **state) {
    (void)state;
    tl_rng rng = {25};
    static const size_t ns[] = {1, 17, 576, 1536};
    for (size_t a = 0; a < 4; a++) {
        size_t n = ns[a], rows = 5;
        float *x = tl_floats(&rng, rows * n, 3.0f), *w = tl_floats(&rng, n, 2.0f);
        float *want = malloc(rows * n * sizeof(float));
        kinfer_rmsnorm_cpu(x, w, want, rows, n, 1e-5f);
        for (int inplace = 0; inplace < 2; inplace++) {
            tc_buf bx, bw, by;
            up(&bx, x, rows * n * sizeof(float));
            up(&bw, w, n * sizeof(float));
            up(&by, NULL, rows * n * sizeof(float));
            float *dy = inplace ? tc_ptr(&bx) : tc_ptr(&by);
            assert_int_equal(kinfer_rmsnorm_cuda(tc_ptr(&bx), tc_ptr(&bw), dy, rows, n, 1e-5f, 0),
                             cudaSuccess);
            sync_ok();
            float *got = down(inplace ? &bx : &by);
            double maxref = 0;
            for (size_t i = 0; i < rows * n; i++)
                maxref = fmax(maxref, fabs(want[i]));
            for (size_t i = 0; i < rows * n; i++)
                if (!(fabs(got[i] - want[i]) <= 5e-7 * fabs(want[i]) + 1e-7 * maxref))
                    fail_msg("rmsnorm n=%zu [%zu]: gpu %.9g cpu %.9g", n, i, got[i], want[i]);
            free(got);
            tc_free(&bx);
            tc_free(&bw);
            tc_free(&by);
        }
        free(x);
        free(w);
        free(want);
        /* SwiGLU on a fused gate|up buffer; in place only for one row */
        float *gu = tl_floats(&rng, rows * 2 * n, 12.0f), *sw = malloc(rows * n * sizeof(float));
        kinfer_swiglu_cpu(gu, gu + n, 2 * n, sw, rows, n);
        for (int inplace = 0; inplace < 2; inplace++) {
            tc_buf bg, bo;
            up(&bg, gu, rows * 2 * n * sizeof(float));
            up(&bo, NULL, rows * n * sizeof(float));
            float *dg = tc_ptr(&bg), *dout = inplace ? dg : tc_ptr(&bo);
            size_t nrows = inplace ? 1 : rows;
            assert_int_equal(kinfer_swiglu_cuda(dg, dg + n, 2 * n, dout, nrows, n, 0), cudaSuccess);
            sync_ok();
            float *all = down(inplace ? &bg : &bo);
            for (size_t i = 0; i < (inplace ? n : rows * n); i++)
                if (!(fabs(all[i] - sw[i]) <= 1e-6 * fabs(sw[i]) + 1e-30))
                    fail_msg("swiglu n=%zu [%zu]: gpu %.9g cpu %.9g", n, i, all[i], sw[i]);
            free(all);
            tc_free(&bg);
            tc_free(&bo);
        }
        free(gu);
        free(sw);
    }
}

static void test_rope(void **state) {
    (void)state;
    tl_rng rng = {26};
    static const uint32_t pos[] = {0, 1, 17, 1000, 8191, 131071};
    const size_t rows = 6;
    static const size_t shapes[][4] = {{12, 64, 64, 0}, {2, 64, 32, 5}, {4, 80, 80, 3}};
    for (size_t s = 0; s < 3; s++)
        for (int mode = KINFER_ROPE_NORM; mode <= KINFER_ROPE_NEOX; mode++) {
            size_t nh = shapes[s][0], hd = shapes[s][1], nrot = shapes[s][2];
            size_t ld = nh * hd + shapes[s][3];
            float inv[64];
            kinfer_rope_params p = {.theta = 100000.0f};
            assert_int_equal(kinfer_rope_freqs(&p, nrot, inv, NULL), KINFER_OK);
            float *cs = malloc(rows * nrot * sizeof(float));
            kinfer_rope_table_cpu(pos, rows, inv, nrot, cs);
            tc_buf bp, bi, bc;
            up(&bp, pos, sizeof(pos));
            up(&bi, inv, nrot / 2 * sizeof(float));
            up(&bc, NULL, rows * nrot * sizeof(float));
            assert_int_equal(
                kinfer_rope_table_cuda(tc_ptr(&bp), rows, tc_ptr(&bi), nrot, tc_ptr(&bc), 0),
                cudaSuccess);
            sync_ok();
            float *gcs = down(&bc);
            for (size_t i = 0; i < rows * nrot; i++)
                assert_float_equal(gcs[i], cs[i], 6e-8);
            free(gcs);
            /* the rotation from the CPU's table: bit-identical */
            float *x = tl_floats(&rng, rows * ld, 2.0f), *want = malloc(rows * ld * sizeof(float));
            memcpy(want, x, rows * ld * sizeof(float));
            kinfer_rope_cpu(want, ld, rows, nh, hd, nrot, cs, (kinfer_rope_mode)mode);
            tc_buf bx, bt;
            up(&bx, x, rows * ld * sizeof(float));
            up(&bt, cs, rows * nrot * sizeof(float));
            assert_int_equal(kinfer_rope_cuda(tc_ptr(&bx), ld, rows, nh, hd, nrot, tc_ptr(&bt),
                                              (kinfer_rope_mode)mode, 0),
                             cudaSuccess);
            sync_ok();
            float *got = down(&bx);
            assert_memory_equal(got, want, rows * ld * sizeof(float));
            free(got);
            free(x);
            free(want);
            free(cs);
            tc_free(&bp);
            tc_free(&bi);
            tc_free(&bc);
            tc_free(&bx);
            tc_free(&bt);
        }
}

static void test_embed(void **state) {
    (void)state;
    tl_rng rng = {27};
    const size_t vocab = 37, n = 96;
    const int32_t ids[] = {0, 36, 5, 5, 17, 37, -1};
    for (size_t ti = 0; ti < NTYPES; ti++) {
        kinfer_qtype t = all_types[ti];
        unsigned char *table = tl_weights(&rng, t, vocab, n);
        float *want = malloc(5 * n * sizeof(float));
        assert_int_equal(kinfer_embed_rows_cpu(table, t, vocab, n, ids, 5, want, NULL), KINFER_OK);
        tc_buf bt, bi, bo;
        up(&bt, table, vocab * tl_row_bytes(t, n));
        up(&bi, ids, sizeof(ids));
        up(&bo, NULL, 7 * n * sizeof(float));
        assert_int_equal(
            kinfer_embed_rows_cuda(tc_ptr(&bt), t, vocab, n, tc_ptr(&bi), 7, tc_ptr(&bo), 0),
            cudaSuccess);
        sync_ok();
        float *got = down(&bo);
        assert_memory_equal(got, want, 5 * n * sizeof(float));
        for (size_t k = 0; k < 2 * n; k++) /* ids 37 and -1: NaN rows */
            assert_true(isnan(got[5 * n + k]));
        free(got);
        free(want);
        free(table);
        tc_free(&bt);
        tc_free(&bi);
        tc_free(&bo);
    }
}

/* ---- paged KV -------------------------------------------------------------------- */

typedef struct kv_cfg {
    uint32_t n_head, n_kv, hd, T;
    kinfer_kv_dtype dtype;
    int alias;
} kv_cfg;

/* Two steps of three sequences on both sides from the same pool image:
 * the GPU write must give the CPU's bytes, the GPU attention the CPU's
 * outputs. */
static void run_kv(const kv_cfg *c) {
    tl_rng rng = {300 + c->hd + c->T};
    kinfer_kv_layout l = {2, c->n_kv, c->hd, c->T, c->dtype};
    const uint32_t nseq = 3, per_seq = (80 + c->T - 1) / c->T, nblocks = nseq * per_seq + 2;
    size_t bb = kinfer_kv_block_bytes(&l), pool_bytes = bb * nblocks;
    unsigned char *pool = malloc(pool_bytes);
    memset(pool, 0xA5, pool_bytes);
    tc_buf bpool;
    up(&bpool, pool, pool_bytes);
    uint32_t table[3 * 80];
    for (uint32_t s = 0; s < nseq; s++) /* interleaved, reversed: not in order */
        for (uint32_t b = 0; b < per_seq; b++)
            table[s * per_seq + b] = nblocks - 1 - (b * nseq + s);
    static const uint32_t feed[2][3] = {{5, 40, 1}, {1, 9, 33}};
    uint32_t pos[3] = {0, 0, 0};
    const size_t qw = (size_t)c->n_head * c->hd, kw = (size_t)c->n_kv * c->hd, ld = qw + 2 * kw;
    const float scale = 1.0f / sqrtf((float)c->hd);
    for (int step = 0; step < 2; step++) {
        kinfer_kv_seq seqs[3];
        uint32_t flat[3 * 80];
        size_t rows = 0, nt = 0;
        for (uint32_t s = 0; s < nseq; s++) {
            uint32_t need = (pos[s] + feed[step][s] + c->T - 1) / c->T;
            seqs[s] = (kinfer_kv_seq){(uint32_t)rows, feed[step][s], pos[s], (uint32_t)nt, need};
            memcpy(flat + nt, table + s * per_seq, need * sizeof(uint32_t));
            nt += need;
            rows += feed[step][s];
        }
        tc_buf bs, bf;
        up(&bs, seqs, sizeof(seqs));
        up(&bf, flat, nt * sizeof(uint32_t));
        for (uint32_t layer = 0; layer < 2; layer++) {
            kinfer_kv_view hv = kinfer_kv_layer_view(&l, pool, nblocks, layer);
            kinfer_kv_view dv = kinfer_kv_layer_view(&l, tc_ptr(&bpool), nblocks, layer);
            assert_int_equal(kinfer_kv_seqs_check(&hv, seqs, nseq, flat, nt, rows, NULL),
                             KINFER_OK);
            float *qkv = tl_floats(&rng, rows * ld, 1.0f);
            tc_buf bq, bo;
            up(&bq, qkv, rows * ld * sizeof(float));
            up(&bo, NULL, rows * qw * sizeof(float));
            float *dq = tc_ptr(&bq);
            /* CPU twin */
            kinfer_kv_write_cpu(&hv, qkv + qw, qkv + qw + kw, ld, seqs, nseq, flat);
            float *want = malloc(rows * qw * sizeof(float));
            kinfer_paged_attention_cpu(NULL, &hv, qkv, ld, want, qw, c->n_head, seqs, nseq, flat,
                                       scale);
            /* GPU */
            assert_int_equal(kinfer_kv_write_cuda(&dv, dq + qw, dq + qw + kw, ld, tc_ptr(&bs), nseq,
                                                  tc_ptr(&bf), rows, 0),
                             cudaSuccess);
            float *dout = c->alias ? dq : tc_ptr(&bo);
            size_t ldo = c->alias ? ld : qw;
            assert_int_equal(kinfer_paged_attention_cuda(&dv, dq, ld, dout, ldo, c->n_head,
                                                         tc_ptr(&bs), nseq, tc_ptr(&bf), scale,
                                                         rows, 0),
                             cudaSuccess);
            sync_ok();
            unsigned char *gpool = down(&bpool);
            assert_memory_equal(gpool, pool, pool_bytes); /* same bytes, nothing else touched */
            free(gpool);
            float *got = down(c->alias ? &bq : &bo);
            size_t bad = 0;
            for (size_t r = 0; r < rows; r++)
                for (size_t e = 0; e < qw; e++) {
                    float g = got[r * ldo + e], w = want[r * qw + e];
                    if (!(fabs(g - w) <= 3e-6) && bad++ < 3)
                        fprintf(stderr, "  attention row %zu [%zu]: gpu %.8g cpu %.8g\n", r, e, g,
                                w);
                }
            if (bad)
                fail_msg("attention: %zu outputs off (%u/%u heads, hd %u, T %u)", bad, c->n_head,
                         c->n_kv, c->hd, c->T);
            free(got);
            free(want);
            free(qkv);
            tc_free(&bq);
            tc_free(&bo);
        }
        for (uint32_t s = 0; s < nseq; s++)
            pos[s] += feed[step][s];
        tc_free(&bs);
        tc_free(&bf);
    }
    free(pool);
    tc_free(&bpool);
}

static void test_paged_kv(void **state) {
    (void)state;
    static const kv_cfg cfgs[] = {
        {9, 3, 64, 16, KINFER_KV_F16, 0},   {9, 3, 64, 16, KINFER_KV_F32, 1},
        {8, 8, 32, 1, KINFER_KV_F32, 0},    {12, 1, 80, 5, KINFER_KV_F16, 1},
        {4, 2, 1, 3, KINFER_KV_F32, 0},     {2, 1, 256, 256, KINFER_KV_F16, 0},
        {32, 8, 128, 16, KINFER_KV_F16, 0},
    };
    for (size_t i = 0; i < sizeof(cfgs) / sizeof(cfgs[0]); i++)
        run_kv(&cfgs[i]);
}

/* A block index outside the pool: the write skips it, attention gives NaN. */
static void test_paged_kv_bad_block(void **state) {
    (void)state;
    kinfer_kv_layout l = {1, 1, 32, 4, KINFER_KV_F16};
    size_t bb = kinfer_kv_block_bytes(&l);
    tc_buf bpool;
    unsigned char *pool = malloc(2 * bb);
    memset(pool, 0x5A, 2 * bb);
    up(&bpool, pool, 2 * bb);
    kinfer_kv_view dv = kinfer_kv_layer_view(&l, tc_ptr(&bpool), 2, 0);
    kinfer_kv_seq s = {0, 6, 0, 0, 2};
    uint32_t blocks[2] = {1, 7}; /* 7: outside a pool of 2 */
    float q[6 * 32], kv[6 * 64];
    tl_rng rng = {28};
    for (int i = 0; i < 6 * 32; i++)
        q[i] = tl_uniform(&rng);
    for (int i = 0; i < 6 * 64; i++)
        kv[i] = tl_uniform(&rng);
    tc_buf bs, bb_, bq, bk, bo;
    up(&bs, &s, sizeof(s));
    up(&bb_, blocks, sizeof(blocks));
    up(&bq, q, sizeof(q));
    up(&bk, kv, sizeof(kv));
    up(&bo, NULL, sizeof(q));
    float *dk = tc_ptr(&bk);
    assert_int_equal(kinfer_kv_write_cuda(&dv, dk, dk + 32, 64, tc_ptr(&bs), 1, tc_ptr(&bb_), 6, 0),
                     cudaSuccess);
    assert_int_equal(kinfer_paged_attention_cuda(&dv, tc_ptr(&bq), 32, tc_ptr(&bo), 32, 1,
                                                 tc_ptr(&bs), 1, tc_ptr(&bb_), 0.17f, 6, 0),
                     cudaSuccess);
    sync_ok();
    unsigned char *g = down(&bpool);
    for (size_t i = 0; i < bb; i++) /* block 0 belongs to nobody: untouched */
        assert_int_equal(g[i], 0x5A);
    float *o = down(&bo);
    for (int t = 0; t < 6; t++)
        for (int d = 0; d < 32; d++)
            assert_true(isnan(o[t * 32 + d]) == (t >= 4)); /* positions 4, 5 see block 7 */
    free(g);
    free(o);
    free(pool);
    tc_free(&bpool);
    tc_free(&bs);
    tc_free(&bb_);
    tc_free(&bq);
    tc_free(&bk);
    tc_free(&bo);
}
#endif

int main(void) {
    int skip = tc_require_gpu("test_cuda_llm_ops");
    if (skip)
        return skip;
#ifdef KINFER_HAVE_CUDA
    g_small = getenv("KINFER_GPU_TEST_SMALL") != NULL;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_qgemv),
        cmocka_unit_test(test_qmatmul_prefill),
        cmocka_unit_test(test_qgemv_nan),
        cmocka_unit_test(test_dequantize),
        cmocka_unit_test(test_rmsnorm_swiglu),
        cmocka_unit_test(test_rope),
        cmocka_unit_test(test_embed),
        cmocka_unit_test(test_paged_kv),
        cmocka_unit_test(test_paged_kv_bad_block),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
#else
    return TC_SKIP;
#endif
}
