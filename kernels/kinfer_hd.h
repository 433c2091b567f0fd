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

KINFER_HD float kinfer_gelu_erf(float x) {
    return 0.5f * x * (1.0f + erff(x * 0.70710678118654752440f));
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
