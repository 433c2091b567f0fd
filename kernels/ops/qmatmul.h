/* qmatmul.h — the quantized matrix product of the llm kind on the CPU:
 * Y[M,N] = X[M,K] . W[N,K]^T with W in any kinfer_qtype (quant.h), FP32 X
 * and Y. M is 1..32 at decode (one row per running sequence), hundreds at
 * prefill. Decode is memory-bound, so W is never dequantized to memory:
 * each block is unpacked in registers inside the dot product. The N rows
 * are split over a kinfer_threads pool; the SIMD path (portable, AVX2,
 * AVX-512) is picked at run time (cpu_isa.h). Twin: qmatmul_cuda.h. */
#ifndef KINFER_QMATMUL_H
#define KINFER_QMATMUL_H

#include <stdbool.h>
#include <stddef.h>

#include "kinfer/kinfer_error.h"
#include "ops/cpu_isa.h"
#include "ops/cpu_threads.h"
#include "ops/quant.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How X enters the dot products with block-type weights (Q8_0, Q4_0, Q4_1).
 * F32/F16/BF16 weights always use exact FP32 products. */
typedef enum kinfer_qmm_act {
    /* Each 32-element block of a row of X is quantized to int8 with one
     * FP32 scale (d = amax / 127, round to nearest), as llama.cpp does:
     * integer dot products (VNNI), inexact by ~|x| / 254 per element. */
    KINFER_QMM_ACT_Q8 = 0,
    /* X stays FP32; the weight block is widened to FP32 in registers:
     * exact up to FP32 summation order. */
    KINFER_QMM_ACT_F32,
    KINFER_QMM_ACT_COUNT
} kinfer_qmm_act;

/* "q8", "f32". */
const char *kinfer_qmm_act_name(kinfer_qmm_act act);

/* The environment variable KINFER_QMM_ACT=q8|f32 overrides opts.act (to
 * measure both modes on a real model without rebuilding its replica);
 * KINFER_CPU_ISA lowers the path (cpu_isa.h). */
typedef struct kinfer_qmm_opts {
    kinfer_cpu_isa isa; /* AUTO: kinfer_cpu_isa_best() */
    kinfer_qmm_act act; /* see kinfer_qmm_act; the default (zeroed opts) is Q8 */
} kinfer_qmm_opts;

/* Per-replica context: the borrowed pool, the chosen path and the scratch
 * for quantized activations (max_rows x max_k), so a call never allocates.
 * One thread at a time uses it (the replica's executor). */
typedef struct kinfer_qmm kinfer_qmm;

/* threads: borrowed, must outlive the context; NULL runs inline on the
 * caller. max_rows, max_k >= 1 bound every later call's M and K. opts NULL
 * = defaults. Errors: INVALID_ARG (zero bounds, an isa this CPU cannot run,
 * named), NOMEM. */
kinfer_err kinfer_qmm_new(kinfer_threads *threads, size_t max_rows, size_t max_k,
                          const kinfer_qmm_opts *opts, kinfer_qmm **out, kinfer_error *err);
void kinfer_qmm_destroy(kinfer_qmm *qmm);
/* The path and activation mode in use (AUTO resolved). */
kinfer_cpu_isa kinfer_qmm_isa(const kinfer_qmm *qmm);
kinfer_qmm_act kinfer_qmm_act_mode(const kinfer_qmm *qmm);

/* x [M, K] row-major FP32; w [N rows of K elements of wtype], rows packed
 * back to back (kinfer_qtype_row_bytes(wtype, K) bytes each), as a GGUF
 * tensor of shape {K, N} stores them; y [M, N] row-major FP32.
 * accumulate: y += X . W^T (the residual add after o_proj and down_proj),
 * else y = X . W^T. M or N == 0: nothing is done, KINFER_OK. K == 0: y is
 * zeroed (or left, with accumulate). x and y must not overlap.
 * Errors (KINFER_ERR_INVALID_ARG, y untouched): M > max_rows, K > max_k, K
 * not a multiple of 32 for a block type (named), invalid wtype, NULL
 * pointers with M, N > 0.
 * NaN/Inf in X or W propagate to the affected outputs as IEEE arithmetic
 * gives (in Q8 mode a block of X holding Inf or NaN makes its scale NaN,
 * so every output of that row becomes NaN). */
kinfer_err kinfer_qmatmul_cpu(kinfer_qmm *qmm, const float *x, size_t M, size_t K, const void *w,
                              kinfer_qtype wtype, size_t N, float *y, bool accumulate,
                              kinfer_error *err);

#ifdef __cplusplus
}
#endif
#endif
