/* dense_cpu.h — the CPU backends' dense layer y = x W^T + b with W packed
 * once, in FP32, BF16 or INT8, through oneDNN's matmul (which picks AMX,
 * AVX512-BF16/VNNI or AVX-512/AVX2 kernels at run time).
 *
 * Why not OpenBLAS's sgemm: it repacks W on every call, which at a few
 * rows (one short sentence: 16 tokens) is most of the time (see
 * docs/benchmarks/bert.md, "Batch 1"); oneDNN keeps W in its kernel's
 * layout. FP32 layers stay on OpenBLAS where oneDNN has no packed kernel
 * (CPUs without AVX-512, where its fallback is slower than OpenBLAS), and
 * builds without oneDNN (KINFER_ONEDNN=OFF) run every layer on OpenBLAS
 * in FP32.
 *
 * Precision, per layer (INT8: W per output channel symmetric, x per row
 * asymmetric UINT8, quantized on the fly each call; BF16: x rounded per
 * call, FP32 accumulation; FP32 as given), is checked against the CPU with
 * kinfer_dense_resolve: a CPU or build without the instructions gets FP32
 * and the reason. One kinfer_dense_ctx per replica: it owns the layers'
 * kernels, scratch and the thread count, and is used by one thread at a
 * time. */
#ifndef KINFER_DENSE_CPU_H
#define KINFER_DENSE_CPU_H

#include <stdbool.h>
#include <stddef.h>

#include "kinfer/kinfer_error.h"
#include "kinfer/kinfer_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kinfer_dense_ctx kinfer_dense_ctx;
typedef struct kinfer_dense kinfer_dense;

/* What this build and CPU run for a requested precision: FP32 and BF16 and
 * INT8 as asked when the instructions are there (BF16: AVX512-BF16 or AMX;
 * INT8: AVX512-VNNI, AVX-VNNI or AMX), else FP32; FP16 is a GPU type and is
 * always FP32 here. When the answer differs from `want`, `why` (may be
 * NULL) gets the reason, e.g. "this CPU lacks avx512_bf16/amx_bf16". */
kinfer_dtype kinfer_dense_resolve(kinfer_dtype want, char *why, size_t whylen);

/* The instruction set the dense kernels use here, e.g. "avx512_core_amx",
 * "avx2", or "openblas" in builds without oneDNN. For logs and benches. */
const char *kinfer_dense_isa(void);

/* A context for batches of up to max_rows rows, run on `threads` threads
 * (>= 1). Errors: NOMEM, DEVICE (oneDNN failed), INVALID_ARG. */
kinfer_err kinfer_dense_ctx_new(size_t max_rows, int threads, kinfer_dense_ctx **out,
                                kinfer_error *err);
/* Frees the context; every layer made with it must be freed first. */
void kinfer_dense_ctx_free(kinfer_dense_ctx *ctx);

/* Packs W[n, k] (row-major FP32, as nn.Linear stores it) and bias[n] (may
 * be NULL) into a layer of precision `prec` (FP32, BF16 or INT8, one that
 * kinfer_dense_resolve kept), and prepares its kernels for every batch
 * size up to the context's max_rows. W and bias must outlive the layer
 * (builds without oneDNN use them in place; with it they are copied into
 * the packed form). Errors: NOMEM, DEVICE, INVALID_ARG, UNSUPPORTED (INT8
 * with k > 65536, where int32 sums could overflow; BF16/INT8 without
 * oneDNN). */
kinfer_err kinfer_dense_new(kinfer_dense_ctx *ctx, kinfer_dtype prec, const float *w,
                            const float *bias, size_t n, size_t k, kinfer_dense **out,
                            kinfer_error *err);
void kinfer_dense_free(kinfer_dense *d);

/* y[m, n] = x[m, k] W^T + bias, row-major and packed, 1 <= m <= max_rows.
 * Allocates nothing of ours; oneDNN's primitive execute itself makes about
 * five small heap allocations per call (its argument map), freed before it
 * returns (measured with a uprobe on malloc: ~125 per MiniLM sentence).
 * Errors: DEVICE (a oneDNN call failed), INVALID_ARG. */
kinfer_err kinfer_dense_run(kinfer_dense_ctx *ctx, const kinfer_dense *d, const float *x, size_t m,
                            float *y, kinfer_error *err);

#ifdef __cplusplus
}
#endif
#endif
