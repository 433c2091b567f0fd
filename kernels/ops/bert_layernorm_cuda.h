/* bert_layernorm_cuda.h — CUDA launchers of the encoder's row-wise
 * LayerNorm ops: the embedding gather + LayerNorm that starts the forward,
 * and residual (+ bias) + LayerNorm after each attention and feed-forward
 * block. Twins: bert_embed_cpu and bert_add_layernorm_cpu (bert_ops.h),
 * same argument order, then the extra arguments and a stream. Launchers
 * enqueue on `stream` and return the launch status (never synchronise);
 * bad arguments are cudaErrorInvalidValue before anything is launched.
 * Pointers are device pointers. */
#ifndef KINFER_BERT_LAYERNORM_CUDA_H
#define KINFER_BERT_LAYERNORM_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

/* x [rows, cols] = LayerNorm(x + res + res_bias) * g + b per row (biased
 * variance, as torch.nn.LayerNorm). res [rows, cols] and res_bias [cols]
 * may be NULL. With res_bias NULL this is bert_add_layernorm_cpu; with it,
 * bert_bias_cpu(res, res_bias, ...) followed by bert_add_layernorm_cpu,
 * without writing res. rows 0: nothing launched. cols 0, or x/g/b NULL
 * with rows > 0: cudaErrorInvalidValue. */
cudaError_t bert_add_layernorm_cuda(float *x, const float *res, const float *g, const float *b,
                                    size_t rows, size_t cols, float eps, const float *res_bias,
                                    cudaStream_t stream);

/* x [ntokens, hidden] = LayerNorm(word[ids[t]] + type[types[t]] +
 * posemb[pos[t]]) * g + b. Ids are trusted (bert_request.c checked them
 * against the table sizes). ntokens 0: nothing launched. */
cudaError_t bert_embed_cuda(float *x, const int32_t *ids, const int32_t *pos, const int32_t *types,
                            size_t ntokens, const float *word, const float *posemb,
                            const float *typeemb, const float *g, const float *b, size_t hidden,
                            float eps, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
