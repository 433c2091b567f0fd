/* blas_cpu.h — the CPU backends' door to OpenBLAS: the process-wide
 * thread-count policy and the one GEMM shape the dense layers need.
 * Shared by every CPU model kind (mlp, bert). */
#ifndef KINFER_BLAS_CPU_H
#define KINFER_BLAS_CPU_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Asks for `threads` OpenBLAS threads (0 = online cores). OpenBLAS keeps
 * one process-wide count, so this raises it to the largest count any
 * caller has asked for and never lowers it (see blas_cpu.c). Returns the
 * count now in force. Thread-safe. */
int kinfer_blas_cpu_request_threads(int threads);

/* y[m, n] = x[m, k] * w[n, k]^T (all row-major, FP32, packed). m, n, k
 * must fit in int (callers check at replica creation). */
void kinfer_blas_cpu_gemm_xwt(const float *x, const float *w, float *y, size_t m, size_t n,
                              size_t k);

#ifdef __cplusplus
}
#endif
#endif
