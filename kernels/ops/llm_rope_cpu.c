/* llm_rope_cpu.c — rotary position embedding (llm_ops.h), the C twin of
 * llm_rope.cu: the inverse frequencies with linear or llama3 scaling, the
 * per-step (cos, sin) table in double, and the in-place rotation in both
 * pairings. */
#include <math.h>

#include "ops/llm_ops.h"

kinfer_err kinfer_rope_freqs(const kinfer_rope_params *p, size_t n_rot, float *inv_freq,
                             kinfer_error *err) {
    if (n_rot < 2 || n_rot % 2 != 0)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "rope: rotated dimensions must be even and >= 2 (got %zu)", n_rot);
    if (!(p->theta > 0.0f) || !isfinite(p->theta))
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "rope: freq_base must be a positive number (got %g)",
                                (double)p->theta);
    if (p->scaling != KINFER_ROPE_SCALING_NONE && (!(p->factor > 0.0f) || !isfinite(p->factor)))
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "rope: scaling factor must be a positive number (got %g)",
                                (double)p->factor);
    if (p->scaling == KINFER_ROPE_SCALING_LLAMA3 &&
        (!(p->high_freq_factor > p->low_freq_factor) || !(p->low_freq_factor > 0.0f) ||
         p->original_context == 0))
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "rope: llama3 scaling needs 0 < low_freq_factor < "
                                "high_freq_factor and original_max_position_embeddings > 0 "
                                "(got %g, %g, %u)",
                                (double)p->low_freq_factor, (double)p->high_freq_factor,
                                p->original_context);
    if ((unsigned)p->scaling > KINFER_ROPE_SCALING_LLAMA3)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "rope: invalid scaling type %d",
                                (int)p->scaling);
    const double pi = 3.14159265358979323846;
    for (size_t i = 0; i < n_rot / 2; i++) {
        double f = pow((double)p->theta, -2.0 * (double)i / (double)n_rot);
        if (p->scaling == KINFER_ROPE_SCALING_LINEAR) {
            f /= p->factor;
        } else if (p->scaling == KINFER_ROPE_SCALING_LLAMA3) {
            /* HF's _compute_llama3_parameters: long wavelengths are divided
             * by factor, short ones kept, the band between interpolated. */
            double low_wl = p->original_context / (double)p->low_freq_factor;
            double high_wl = p->original_context / (double)p->high_freq_factor;
            double wl = 2.0 * pi / f;
            if (wl > low_wl) {
                f /= p->factor;
            } else if (wl >= high_wl) {
                double smooth = (p->original_context / wl - p->low_freq_factor) /
                                (p->high_freq_factor - p->low_freq_factor);
                f = (1.0 - smooth) * f / p->factor + smooth * f;
            }
        }
        inv_freq[i] = (float)f;
    }
    return KINFER_OK;
}

void kinfer_rope_table_cpu(const uint32_t *pos, size_t rows, const float *inv_freq, size_t n_rot,
                           float *cs) {
    size_t half = n_rot / 2;
    for (size_t r = 0; r < rows; r++)
        for (size_t i = 0; i < half; i++) {
            double a = (double)pos[r] * (double)inv_freq[i];
            cs[(r * half + i) * 2] = (float)cos(a);
            cs[(r * half + i) * 2 + 1] = (float)sin(a);
        }
}

void kinfer_rope_cpu(float *x, size_t ld, size_t rows, size_t nheads, size_t head_dim, size_t n_rot,
                     const float *cs, kinfer_rope_mode mode) {
    size_t half = n_rot / 2;
    /* NORM pairs (2i, 2i+1); NEOX pairs (i, i + half). */
    size_t stride = mode == KINFER_ROPE_NEOX ? 1 : 2, other = mode == KINFER_ROPE_NEOX ? half : 1;
    for (size_t r = 0; r < rows; r++) {
        const float *c = cs + r * half * 2;
        for (size_t h = 0; h < nheads; h++) {
            float *v = x + r * ld + h * head_dim;
            for (size_t i = 0; i < half; i++) {
                float *a = v + i * stride, *b = a + other;
                float co = c[2 * i], si = c[2 * i + 1];
                float a0 = *a, b0 = *b;
                *a = a0 * co - b0 * si;
                *b = a0 * si + b0 * co;
            }
        }
    }
}
