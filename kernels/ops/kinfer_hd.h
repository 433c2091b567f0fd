/* kinfer_hd.h — per-element math shared by the C CPU kernels and the CUDA
 * kernels, so the two cannot drift. KINFER_HD marks a function usable on
 * host and device: `__host__ __device__` under nvcc, plain `static inline`
 * in C. Keep these free of libc calls other than <math.h> functions that
 * CUDA also provides (expf, tanhf, erff). */
#ifndef KINFER_HD_H
#define KINFER_HD_H

#include <math.h>

#ifdef __CUDACC__
#define KINFER_HD static inline __host__ __device__
#else
#define KINFER_HD static inline
#endif

/* Activation kinds for dense layers. The order is part of the model format
 * metadata parsing in mlp_model.c, not of any wire contract. */
typedef enum kinfer_activation {
    KINFER_ACT_NONE = 0,
    KINFER_ACT_RELU,
    KINFER_ACT_GELU, /* exact erf form, as PyTorch's nn.GELU() default */
    KINFER_ACT_TANH,
    KINFER_ACT_SIGMOID,
    KINFER_ACT_COUNT
} kinfer_activation;

/* Written as "x < 0 ? 0 : x" so NaN propagates, as PyTorch's relu does. */
KINFER_HD float kinfer_relu(float x) {
    return x < 0.0f ? 0.0f : x;
}

/* erf by the branch-free rational approximation XLA and Eigen use:
 * |error| < 4e-7 against erf on floats (PyTorch's vectorised erf is no
 * closer); NaN propagates, beyond +-4 the result is erf(+-4), 1 in float.
 * Plain arithmetic rather than libm's erff so that the CPU loops vectorise
 * and the CPU and CUDA kernels evaluate one formula. */
KINFER_HD float kinfer_erf_fast(float x) {
    x = x < -4.0f ? -4.0f : x; /* not fminf: a libm call that blocks vectorising */
    x = x > 4.0f ? 4.0f : x;
    float x2 = x * x;
    float p = -2.72614225801306e-10f;
    p = p * x2 + 2.77068142495902e-08f;
    p = p * x2 + -2.10102402082508e-06f;
    p = p * x2 + -5.69250639462346e-05f;
    p = p * x2 + -7.34990630326855e-04f;
    p = p * x2 + -2.95459980854025e-03f;
    p = p * x2 + -1.60960333262415e-02f;
    float q = -1.45660718464996e-05f;
    q = q * x2 + -2.13374055278905e-04f;
    q = q * x2 + -1.68282697438203e-03f;
    q = q * x2 + -7.37332916720468e-03f;
    q = q * x2 + -1.42647390514189e-02f;
    return x * p / q;
}

/* exp for softmax rows, vectorisable: 2^n * p(r) with r = x - n ln2 split
 * in two constants, p a degree-6 polynomial; relative error ~2e-7 over the
 * range a softmax sees (x <= 0). Inputs are clamped to [-87, 88]: below
 * -87 the result is ~1.6e-38, never 0; NaN gives NaN. Used by the bert
 * attention softmax on both sides. */
KINFER_HD float kinfer_exp_fast(float x) {
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    /* n from a number even for NaN (converting NaN to int is undefined);
     * r keeps the NaN, so NaN in gives NaN out, as expf. */
    float xn = x == x ? x : 0.0f;
    /* Round to nearest by the 1.5 * 2^23 trick: floorf would not vectorise
     * without -fno-trapping-math. */
    float n = (xn * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int e = ((int)n + 127) << 23; /* n in [-126, 127]: a normal power of two */
#ifdef __CUDA_ARCH__
    return p * __int_as_float(e);
#else
    union {
        int i;
        float f;
    } two_n; /* no designated initializer: .cu host passes are C++17 */
    two_n.i = e;
    return p * two_n.f;
#endif
}

/* GELU, erf form, through kinfer_erf_fast: the MLP epilogues and the bert
 * FFN, CPU and CUDA alike. */
KINFER_HD float kinfer_gelu_erf(float x) {
    return 0.5f * x * (1.0f + kinfer_erf_fast(x * 0.70710678118654752440f));
}

KINFER_HD float kinfer_sigmoid(float x) {
    /* Split by sign so expf never overflows to inf/inf. */
    if (x >= 0.0f) {
        float z = expf(-x);
        return 1.0f / (1.0f + z);
    }
    float z = expf(x);
    return z / (1.0f + z);
}

/* SiLU for SwiGLU, x / (1 + e^-x) through kinfer_exp_fast (so CPU loops
 * vectorise and the CUDA twin evaluates the same formula): relative error
 * ~3e-7; NaN gives NaN, +Inf gives +Inf, -Inf gives -Inf (e^-x is clamped
 * at e^88, where torch's x * sigmoid(x) gives NaN). */
KINFER_HD float kinfer_silu(float x) {
    return x / (1.0f + kinfer_exp_fast(-x));
}

KINFER_HD float kinfer_activate(kinfer_activation act, float x) {
    switch (act) {
    case KINFER_ACT_RELU:
        return kinfer_relu(x);
    case KINFER_ACT_GELU:
        return kinfer_gelu_erf(x);
    case KINFER_ACT_TANH:
        return tanhf(x);
    case KINFER_ACT_SIGMOID:
        return kinfer_sigmoid(x);
    default:
        return x;
    }
}

#endif
