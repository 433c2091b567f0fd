/* bert_ops.h — the encoder ops besides GEMM and bias/activation (which are
 * blas_cpu.h and bias_act.h): residual + LayerNorm, masked multi-head
 * attention over unpadded sequences, pooling and L2 normalisation.
 * The C implementations (bert_layernorm_cpu.c, bert_attention_cpu.c,
 * bert_pool_cpu.c, bert_bias_cpu.c) are the oracles of the CUDA twins
 * beside them (bert_*.cu, same argument order). Shapes are in the
 * comments; all FP32. */
#ifndef KINFER_BERT_OPS_H
#define KINFER_BERT_OPS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Pooling modes of sentence-transformers, concatenated in this order. */
enum {
    BERT_POOL_CLS = 1 << 0,
    BERT_POOL_MAX = 1 << 1,
    BERT_POOL_MEAN = 1 << 2,
    BERT_POOL_MEAN_SQRT = 1 << 3,
};

/* x [rows, cols] = LayerNorm(x + res) * g + b, per row, biased variance, as
 * torch.nn.LayerNorm. res may be NULL (no residual). */
void bert_add_layernorm_cpu(float *x, const float *res, const float *g, const float *b, size_t rows,
                            size_t cols, float eps);

/* Embeddings: x[t] = word[ids[t]] + pos[pos[t]] + type[types[t]], then
 * LayerNorm. Ids are trusted (checked by bert_request.c). */
void bert_embed_cpu(float *x, const int32_t *ids, const int32_t *pos, const int32_t *types,
                    size_t ntokens, const float *word, const float *posemb, const float *typeemb,
                    const float *g, const float *b, size_t hidden, float eps);

/* Self-attention of nseqs packed sequences: sequence s is tokens
 * [seq_start[s], seq_start[s+1]) of qkv [T, 3H] (query | key | value
 * columns); ctx [T, H] receives softmax(Q K^T / sqrt(dh)) V per head. A
 * sequence only attends to itself, which is the padding mask of a padded
 * batch. scores: scratch of at least max_len * max_len floats. */
void bert_attention_cpu(const float *qkv, float *ctx, const uint32_t *seq_start, size_t nseqs,
                        size_t hidden, size_t heads, float *scores);

/* One (sequence, head) of the above: tokens [a, a + len), head h; the unit
 * of work the replica spreads over its threads. scores: len * len floats. */
void bert_attention_head_cpu(const float *qkv, float *ctx, size_t a, size_t len, size_t hidden,
                             size_t heads, size_t h, float *scores);

/* Pooling of each sequence of x [T, H] into out [nseqs, k*H], the k modes
 * of `modes` (BERT_POOL_* bits) concatenated in the order cls, max, mean,
 * mean_sqrt_len, as sentence-transformers does. */
void bert_pool_cpu(const float *x, const uint32_t *seq_start, size_t nseqs, size_t hidden,
                   unsigned modes, float *out);

/* y [rows, cols] += bias [cols]; with gelu, then y = GELU(y), the erf form
 * kinfer_gelu_erf (kinfer_hd.h: |erf error| < 4e-7, the accuracy of
 * PyTorch's own vectorised erf), as the CUDA epilogue computes it.
 * Vectorised for the CPU at hand. */
void bert_bias_cpu(float *y, const float *bias, size_t rows, size_t cols);
void bert_bias_gelu_cpu(float *y, const float *bias, size_t rows, size_t cols);
/* y = GELU(y) (the bias already added, by the dense layer). */
void bert_gelu_cpu(float *y, size_t rows, size_t cols);
/* kinfer_erf_fast and kinfer_exp_fast (kinfer_hd.h) as out-of-line
 * functions, for their accuracy tests. */
float bert_erf_fast(float x);
/* The softmax's exp (relative error ~2e-7 for x <= 0); for its test. */
float bert_exp_fast(float x);

/* row /= max(||row||_2, 1e-12), as torch.nn.functional.normalize. */
void bert_l2_normalize_cpu(float *row, size_t n);

#ifdef __cplusplus
}
#endif
#endif
