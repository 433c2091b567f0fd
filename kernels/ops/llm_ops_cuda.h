/* llm_ops_cuda.h — CUDA launchers of the decoder's row-wise ops, twins of
 * llm_ops.h (same argument order, then a stream): RMSNorm, the RoPE table
 * and rotation, SwiGLU, the embedding gather. Launchers enqueue on
 * `stream` and return the launch status (never synchronise); bad
 * arguments are cudaErrorInvalidValue before anything is launched; rows 0
 * launches nothing. Pointers are device pointers. */
#ifndef KINFER_LLM_OPS_CUDA_H
#define KINFER_LLM_OPS_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#include "ops/llm_ops.h"
#include "ops/quant.h"

#ifdef __cplusplus
extern "C" {
#endif

/* kinfer_rmsnorm_cpu: y [rows, n] = x / sqrt(mean(x^2) + eps) * w; y may be
 * x. One block per row. */
cudaError_t kinfer_rmsnorm_cuda(const float *x, const float *w, float *y, size_t rows, size_t n,
                                float eps, cudaStream_t stream);

/* kinfer_rope_table_cpu: cs [rows, n_rot / 2, 2] (cos, sin) of
 * pos[r] * inv_freq[i], in double (as the twin) rounded once. */
cudaError_t kinfer_rope_table_cuda(const uint32_t *pos, size_t rows, const float *inv_freq,
                                   size_t n_rot, float *cs, cudaStream_t stream);

/* kinfer_rope_cpu: rotates the first n_rot dims of each of nheads heads
 * of each row (x + r * ld + h * head_dim) in place by cs row r. */
cudaError_t kinfer_rope_cuda(float *x, size_t ld, size_t rows, size_t nheads, size_t head_dim,
                             size_t n_rot, const float *cs, kinfer_rope_mode mode,
                             cudaStream_t stream);

/* kinfer_swiglu_cpu: out [rows, n] = silu(gate) * up, gate/up rows ld
 * floats apart. Threads run concurrently, so out may be gate (or up) only
 * where each element is read and written by the same thread: ld == n, or
 * a single row. A fused gate|up buffer (ld = 2n) needs a separate out. */
cudaError_t kinfer_swiglu_cuda(const float *gate, const float *up, size_t ld, float *out,
                               size_t rows, size_t n, cudaStream_t stream);

/* kinfer_embed_rows_cpu: out [rows, n_embd] = dequantized table rows ids[r].
 * ids (device) are trusted: the caller checked them on the host; an id
 * outside [0, vocab) still reads nothing outside the table and gives a row
 * of NaN. */
cudaError_t kinfer_embed_rows_cuda(const void *table, kinfer_qtype t, size_t vocab, size_t n_embd,
                                   const int32_t *ids, size_t rows, float *out,
                                   cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
