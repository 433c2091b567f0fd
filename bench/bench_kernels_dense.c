/* bench_kernels_dense.c — one dense layer y = x W^T + b on the CPU:
 * OpenBLAS's cblas_sgemm (+ the bias) against ops/dense_cpu.h (oneDNN,
 * weights packed once) in FP32, BF16 and INT8, same shapes, same thread
 * count, interleaved in one run. The evidence for the library choice in
 * docs/benchmarks/bert.md. Not a test.
 *
 *   bench_kernels_dense [--threads T] [--reps R] [--m 1,16,128,1024] [--nk 1536x384,...]
 *
 * Prints, per (m, n, k) and implementation, the median time of R calls
 * (after 3 warm-up calls) and GFLOP/s, then the kernels that ran (OpenBLAS
 * core, oneDNN ISA). The weights are distinct per call site but reused
 * across calls, as in a model whose layers fit the caches they fit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "kinfer/kinfer_clock.h"
#include "kinfer/kinfer_device.h"
#include "ops/blas_cpu.h"
#include "ops/dense_cpu.h"

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static float *rnd(size_t n, unsigned *seed) {
    float *v = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
    for (size_t i = 0; i < n; i++) {
        *seed = *seed * 1103515245u + 12345u;
        v[i] = ((float)((*seed >> 9) & 0xffff) / 32768.0f - 1.0f) * 0.1f;
    }
    return v;
}

static size_t parse_list(const char *s, size_t *out, size_t max) {
    size_t n = 0;
    while (*s && n < max) {
        out[n++] = strtoul(s, (char **)&s, 10);
        if (*s == ',')
            s++;
    }
    return n;
}

int main(int argc, char **argv) {
    int threads = 1, reps = 50;
    size_t ms[16] = {1, 16, 128, 1024}, nm = 4;
    size_t nk[16][2] = {{1152, 384}, {384, 384}, {1536, 384}, {384, 1536}};
    size_t nnk = 4;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps"))
            reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--m"))
            nm = parse_list(argv[i + 1], ms, 16);
        else if (!strcmp(argv[i], "--nk")) {
            nnk = 0;
            for (const char *s = argv[i + 1]; *s && nnk < 16;) {
                nk[nnk][0] = strtoul(s, (char **)&s, 10);
                if (*s == 'x')
                    s++;
                nk[nnk++][1] = strtoul(s, (char **)&s, 10);
                if (*s == ',')
                    s++;
            }
        } else {
            fprintf(stderr, "usage: %s [--threads T] [--reps R] [--m LIST] [--nk NxK,...]\n",
                    argv[0]);
            return 2;
        }
    }
    if (reps < 1 || reps > 100000 || threads < 1)
        return 2;
    kinfer_blas_cpu_request_threads(threads);
    static const kinfer_dtype precs[] = {KINFER_DTYPE_FP32, KINFER_DTYPE_BF16, KINFER_DTYPE_INT8};
    size_t max_m = 0;
    for (size_t i = 0; i < nm; i++)
        max_m = ms[i] > max_m ? ms[i] : max_m;
    printf("%6s %6s %6s  %-14s %10s %9s\n", "m", "n", "k", "impl", "median us", "GFLOP/s");
    int64_t *t = malloc((size_t)reps * sizeof(int64_t));
    unsigned seed = 7;
    for (size_t s = 0; s < nnk; s++) {
        size_t n = nk[s][0], k = nk[s][1];
        float *w = rnd(n * k, &seed), *b = rnd(n, &seed), *x = rnd(max_m * k, &seed);
        float *y = aligned_alloc(64, (max_m * n * sizeof(float) + 63) / 64 * 64);
        kinfer_dense_ctx *ctx[3] = {NULL, NULL, NULL};
        kinfer_dense *d[3] = {NULL, NULL, NULL};
        for (int p = 0; p < 3; p++) {
            kinfer_error err;
            if (kinfer_dense_resolve(precs[p], NULL, 0) != precs[p])
                continue; /* not on this CPU: no row */
            if (kinfer_dense_ctx_new(max_m, threads, &ctx[p], &err) != KINFER_OK ||
                kinfer_dense_new(ctx[p], precs[p], w, b, n, k, &d[p], &err) != KINFER_OK) {
                fprintf(stderr, "%s\n", err.msg);
                return 1;
            }
        }
        for (size_t mi = 0; mi < nm; mi++) {
            size_t m = ms[mi];
            double flop = 2.0 * (double)m * (double)n * (double)k;
            for (int impl = -1; impl < 3; impl++) {
                if (impl >= 0 && !d[impl])
                    continue;
                for (int r = -3; r < reps; r++) {
                    int64_t t0 = kinfer_mono_us();
                    if (impl < 0) {
                        kinfer_blas_cpu_gemm_xwt(x, w, y, m, n, k);
                        for (size_t i = 0; i < m; i++)
                            for (size_t j = 0; j < n; j++)
                                y[i * n + j] += b[j];
                    } else {
                        kinfer_error err;
                        if (kinfer_dense_run(ctx[impl], d[impl], x, m, y, &err) != KINFER_OK) {
                            fprintf(stderr, "%s\n", err.msg);
                            return 1;
                        }
                    }
                    if (r >= 0)
                        t[r] = kinfer_mono_us() - t0;
                }
                qsort(t, (size_t)reps, sizeof(int64_t), cmp_i64);
                double us = (double)t[reps / 2];
                char name[32];
                snprintf(name, sizeof(name), "%s",
                         impl < 0    ? "openblas-fp32"
                         : impl == 0 ? "onednn-fp32"
                         : impl == 1 ? "onednn-bf16"
                                     : "onednn-int8");
                printf("%6zu %6zu %6zu  %-14s %10.1f %9.1f\n", m, n, k, name, us,
                       us > 0 ? flop / us / 1e3 : 0.0);
            }
        }
        for (int p = 0; p < 3; p++) {
            kinfer_dense_free(d[p]);
            kinfer_dense_ctx_free(ctx[p]);
        }
        free(w);
        free(b);
        free(x);
        free(y);
    }
    printf("threads %d, %d calls per cell (median); OpenBLAS core %s, oneDNN ISA %s\n", threads,
           reps, kinfer_cpu_blas_core(), kinfer_cpu_dense_isa());
    free(t);
    return 0;
}
