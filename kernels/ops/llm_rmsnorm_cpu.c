/* llm_rmsnorm_cpu.c — RMSNorm (llm_ops.h), the C twin of llm_rmsnorm.cu,
 * and argmax. The sum of squares runs in 16 FP32 lanes (vectorised for the
 * CPU at hand) combined in double. */
#include <math.h>

#include "ops/cpu_multiversion.h"
#include "ops/llm_ops.h"

KINFER_CPU_MULTIVERSION
static double sum_squares(const float *x, size_t n) {
    float lanes[16] = {0};
    size_t k = 0;
    for (; k + 16 <= n; k += 16)
        for (int l = 0; l < 16; l++)
            lanes[l] += x[k + (size_t)l] * x[k + (size_t)l];
    double s = 0.0;
    for (int l = 0; l < 16; l++)
        s += lanes[l];
    for (; k < n; k++)
        s += (double)x[k] * x[k];
    return s;
}

KINFER_CPU_MULTIVERSION
static void scale_row(const float *x, const float *w, float *y, size_t n, float r) {
    for (size_t k = 0; k < n; k++)
        y[k] = x[k] * r * w[k];
}

void kinfer_rmsnorm_cpu(const float *x, const float *w, float *y, size_t rows, size_t n,
                        float eps) {
    if (n == 0)
        return;
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * n;
        float mean = (float)(sum_squares(xr, n) / (double)n);
        scale_row(xr, w, y + r * n, n, 1.0f / sqrtf(mean + eps));
    }
}

size_t kinfer_argmax_cpu(const float *x, size_t n) {
    size_t best = 0;
    float v = -INFINITY;
    int found = 0;
    for (size_t i = 0; i < n; i++)
        if (x[i] == x[i] && (!found || x[i] > v)) {
            v = x[i];
            best = i;
            found = 1;
        }
    return best;
}
