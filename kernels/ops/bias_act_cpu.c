/* bias_act_cpu.c — C twin of the CUDA epilogue kernels: bias + activation
 * in place after each GEMM, and the output softmax. Per-element math is
 * kinfer_hd.h's, shared with the .cu kernels. */
#include <math.h>

#include "bias_act.h"

void kinfer_bias_act_cpu(float *y, const float *bias, size_t rows, size_t cols,
                         kinfer_activation act) {
    for (size_t r = 0; r < rows; r++) {
        float *row = y + r * cols;
        if (bias)
            for (size_t c = 0; c < cols; c++)
                row[c] += bias[c];
        /* The switch sits outside the inner loop so each case vectorises. */
        switch (act) {
        case KINFER_ACT_NONE:
            break;
        case KINFER_ACT_RELU:
            for (size_t c = 0; c < cols; c++)
                row[c] = kinfer_relu(row[c]);
            break;
        default:
            for (size_t c = 0; c < cols; c++)
                row[c] = kinfer_activate(act, row[c]);
            break;
        }
    }
}

void kinfer_softmax_rows_cpu(float *y, size_t rows, size_t cols) {
    for (size_t r = 0; r < rows; r++) {
        float *row = y + r * cols;
        if (cols == 0)
            continue;
        /* Subtracting the max keeps expf <= 1: no overflow for large
         * logits, and the largest term is exactly 1 so sum >= 1. A NaN
         * anywhere makes max (and so the whole row) NaN. */
        float max = -INFINITY;
        int has_nan = 0;
        for (size_t c = 0; c < cols; c++) {
            if (isnan(row[c]))
                has_nan = 1;
            else if (row[c] > max)
                max = row[c];
        }
        if (has_nan) {
            for (size_t c = 0; c < cols; c++)
                row[c] = NAN;
            continue;
        }
        float sum = 0.0f;
        for (size_t c = 0; c < cols; c++) {
            row[c] = expf(row[c] - max);
            sum += row[c];
        }
        float inv = 1.0f / sum;
        for (size_t c = 0; c < cols; c++)
            row[c] *= inv;
    }
}
