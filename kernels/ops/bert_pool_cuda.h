/* bert_pool_cuda.h — CUDA launchers of the encoder's sentence pooling
 * (cls / max / mean / mean_sqrt_len over each packed sequence, the
 * sentence-transformers modes concatenated in that order) and the per-row
 * L2 normalisation after it. Twins: bert_pool_cpu and bert_l2_normalize_cpu
 * (bert_ops.h), same argument order, then a stream. Launchers enqueue on
 * `stream`, return the launch status and never synchronise. Pointers are
 * device pointers. */
#ifndef KINFER_BERT_POOL_CUDA_H
#define KINFER_BERT_POOL_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

/* x [T, hidden]; sequence s is rows [seq_start[s], seq_start[s+1]), at
 * least one row each; out [nseqs, k*hidden] with k the number of BERT_POOL_*
 * bits in modes. nseqs 0: nothing launched. modes 0 or with unknown bits,
 * hidden 0, or a NULL pointer: cudaErrorInvalidValue. */
cudaError_t bert_pool_cuda(const float *x, const uint32_t *seq_start, size_t nseqs, size_t hidden,
                           unsigned modes, float *out, cudaStream_t stream);

/* rows [nrows, n]: each row r with flags == NULL or flags[r] != 0 becomes
 * row / max(||row||_2, 1e-12) (torch.nn.functional.normalize); others are
 * left alone. The twin is bert_l2_normalize_cpu applied to those rows.
 * nrows 0: nothing launched; n 0 or rows NULL: cudaErrorInvalidValue. */
cudaError_t bert_l2_normalize_cuda(float *rows, size_t nrows, size_t n, const uint8_t *flags,
                                   cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
