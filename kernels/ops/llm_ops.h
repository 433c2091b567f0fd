/* llm_ops.h — the row-wise ops of a Llama-family decoder besides the
 * quantized matrix products (qmatmul.h) and paged attention (paged_kv.h):
 * RMSNorm, rotary position embedding (both pairings), SwiGLU, the
 * embedding-row gather from a quantized table, argmax. FP32 activations.
 * The C implementations (llm_*_cpu.c) are the oracles of the CUDA twins
 * (llm_*.cu, declared in llm_ops_cuda.h, same argument order + a stream).
 * Shapes in the comments; "ld" is the distance in floats between rows, so
 * an op can work on the Q or K columns of a fused QKV buffer. */
#ifndef KINFER_LLM_OPS_H
#define KINFER_LLM_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "kinfer/kinfer_error.h"
#include "ops/quant.h"

#ifdef __cplusplus
extern "C" {
#endif

/* y [rows, n] = x / sqrt(mean(x^2) + eps) * w, per row (the mean in FP32
 * over the row, as llama.cpp and HF's LlamaRMSNorm compute it). w [n]. y may
 * equal x (in place). A row with NaN/Inf gives NaN/Inf as the arithmetic
 * does. */
void kinfer_rmsnorm_cpu(const float *x, const float *w, float *y, size_t rows, size_t n, float eps);

/* ---- RoPE ---------------------------------------------------------------
 * The rotation of dimension pair i (0 <= i < n_rot / 2) of a head at
 * position p is by angle p * inv_freq[i]. Which two elements form pair i: */
typedef enum kinfer_rope_mode {
    /* (x[2i], x[2i+1]): GGML's "normal" mode, what GGUF llama weights need
     * (llama.cpp's converter permutes HF's q/k rows into this order). */
    KINFER_ROPE_NORM = 0,
    /* (x[i], x[i + n_rot/2]): the half-split ("NeoX") rotation of HF's
     * rotate_half, what safetensors weights from an HF directory need. */
    KINFER_ROPE_NEOX,
} kinfer_rope_mode;

typedef enum kinfer_rope_scaling {
    KINFER_ROPE_SCALING_NONE = 0,
    KINFER_ROPE_SCALING_LINEAR, /* positions divided by factor (HF "linear") */
    KINFER_ROPE_SCALING_LLAMA3, /* HF "llama3": per-frequency, by wavelength */
} kinfer_rope_scaling;

typedef struct kinfer_rope_params {
    float theta;                 /* base, e.g. 10000 (GGUF rope.freq_base) */
    kinfer_rope_scaling scaling; /* NONE: factor & co ignored */
    float factor;                /* LINEAR and LLAMA3: > 0 */
    float low_freq_factor;       /* LLAMA3 only (HF default 1) */
    float high_freq_factor;      /* LLAMA3 only (HF default 4), > low_freq_factor */
    uint32_t original_context;   /* LLAMA3 only: original_max_position_embeddings */
} kinfer_rope_params;

/* inv_freq [n_rot / 2] = theta^(-2i / n_rot), then the scaling (computed in
 * double, rounded once). n_rot even, >= 2. Errors: INVALID_ARG (odd or zero
 * n_rot, theta <= 0 or not finite, factor <= 0, llama3 frequency factors
 * out of order or original_context 0), each named. */
kinfer_err kinfer_rope_freqs(const kinfer_rope_params *params, size_t n_rot, float *inv_freq,
                             kinfer_error *err);

/* cs [rows, n_rot / 2, 2] = (cos, sin)(pos[r] * inv_freq[i]), the angle and
 * both functions in double, rounded once to FP32. Computed once per step
 * and shared by every layer's q and k. */
void kinfer_rope_table_cpu(const uint32_t *pos, size_t rows, const float *inv_freq, size_t n_rot,
                           float *cs);

/* In place on x: rows of ld floats, each holding nheads heads of head_dim
 * (at x + r * ld + h * head_dim); the first n_rot (<= head_dim, even)
 * dimensions of each head are rotated by the table row r of cs
 * (kinfer_rope_table_cpu), the rest are left. Pair (a, b) becomes
 * (a cos - b sin, a sin + b cos). */
void kinfer_rope_cpu(float *x, size_t ld, size_t rows, size_t nheads, size_t head_dim, size_t n_rot,
                     const float *cs, kinfer_rope_mode mode);

/* out [rows, n] = silu(gate) * up elementwise, silu(g) = g / (1 + e^-g);
 * gate and up rows are ld floats apart (a fused gate|up matmul output:
 * up = gate + n, ld = 2n). out may be gate itself (row r of out starts at
 * r * n <= r * ld: a write never runs ahead of the reads); no other
 * overlap. */
void kinfer_swiglu_cpu(const float *gate, const float *up, size_t ld, float *out, size_t rows,
                       size_t n);

/* out [rows, n_embd] = dequantized rows ids[r] of table [vocab, n_embd] of
 * type t (row r of the table: kinfer_qtype_row_bytes(t, n_embd) bytes).
 * Errors: INVALID_ARG naming the first id outside [0, vocab), n_embd not a
 * multiple of the block, an invalid type; out untouched then. */
kinfer_err kinfer_embed_rows_cpu(const void *table, kinfer_qtype t, size_t vocab, size_t n_embd,
                                 const int32_t *ids, size_t rows, float *out, kinfer_error *err);

/* Index of the largest element of x [n] (the first on ties; NaN never
 * wins; all NaN, or n == 0: 0). Greedy sampling's choice. */
size_t kinfer_argmax_cpu(const float *x, size_t n);

#ifdef __cplusplus
}
#endif
#endif
