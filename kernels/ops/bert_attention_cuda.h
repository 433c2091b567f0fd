/* bert_attention_cuda.h — CUDA launcher of the encoder's self-attention over
 * packed variable-length sequences (no padding, no mask tensor: a sequence
 * attends only to its own tokens). Twin: bert_attention_cpu (bert_ops.h),
 * same argument order; the twin's `scores` scratch becomes `max_len` (the
 * longest sequence, which sizes the kernel's shared memory), then a stream.
 * Enqueues on `stream`, returns the launch status, never synchronises.
 * Pointers are device pointers. */
#ifndef KINFER_BERT_ATTENTION_CUDA_H
#define KINFER_BERT_ATTENTION_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Head dimensions (hidden / heads) the kernel accepts. */
#define BERT_ATTENTION_MAX_HEAD_DIM 256

/* qkv [T, 3*hidden] (query | key | value columns, biases already added);
 * ctx [T, hidden] receives softmax(Q K^T / sqrt(dh)) V per head for every
 * sequence s = tokens [seq_start[s], seq_start[s+1]) (seq_start has
 * nseqs + 1 entries, ascending, on the device). max_len >= the longest
 * sequence (a shorter one is undefined behaviour the launcher cannot see).
 * nseqs 0: nothing launched. cudaErrorInvalidValue when heads is 0, hidden
 * is not a multiple of heads, the head dimension exceeds
 * BERT_ATTENTION_MAX_HEAD_DIM, max_len is 0, a pointer is NULL, or the
 * shared memory for max_len exceeds what the device allows. */
cudaError_t bert_attention_cuda(const float *qkv, float *ctx, const uint32_t *seq_start,
                                size_t nseqs, size_t hidden, size_t heads, size_t max_len,
                                cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
