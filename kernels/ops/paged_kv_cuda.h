/* paged_kv_cuda.h — CUDA twins of paged_kv.h: the KV write and causal GQA
 * attention over paged KV blocks in device memory. Same argument order as
 * the CPU twins (the attention's thread pool dropped), then `rows` (the
 * step's fed tokens, sizing the grid) and a stream. seqs and blocks are
 * device copies of what kinfer_kv_seqs_check accepted on the host; the
 * kernels still read no block index >= kv->nblocks (such a slot is
 * skipped by the write, and gives NaN from the attention). The view is a
 * host struct whose base points into device memory. Launchers enqueue on
 * `stream` and never synchronise; rows 0 launches nothing. */
#ifndef KINFER_PAGED_KV_CUDA_H
#define KINFER_PAGED_KV_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#include "ops/paged_kv.h"

#ifdef __cplusplus
extern "C" {
#endif

/* kinfer_kv_write_cpu: K/V of row r (k/v + r * ld) into its sequence's
 * slot. cudaErrorInvalidValue: NULL pointers, nseqs 0 with rows > 0, an
 * invalid dtype, head_dim 0. */
cudaError_t kinfer_kv_write_cuda(const kinfer_kv_view *kv, const float *k, const float *v,
                                 size_t ld, const kinfer_kv_seq *seqs, size_t nseqs,
                                 const uint32_t *blocks, size_t rows, cudaStream_t stream);

/* kinfer_paged_attention_cpu: one block per (row, kv head), its n_head /
 * n_kv_head query heads together; warps take the sequence's KV blocks in
 * turn with an online softmax, merged at the end. out may be q.
 * cudaErrorInvalidValue: NULL pointers, n_head not a multiple of
 * n_kv_head, head_dim above KINFER_KV_MAX_HEAD_DIM, block_tokens above
 * KINFER_KV_MAX_BLOCK_TOKENS. */
cudaError_t kinfer_paged_attention_cuda(const kinfer_kv_view *kv, const float *q, size_t ldq,
                                        float *out, size_t ldo, size_t n_head,
                                        const kinfer_kv_seq *seqs, size_t nseqs,
                                        const uint32_t *blocks, float scale, size_t rows,
                                        cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
