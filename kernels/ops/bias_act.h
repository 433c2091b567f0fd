/* bias_act.h — the per-layer epilogue ops after a GEMM: add the bias and
 * apply an activation in place, and a numerically stable row softmax.
 * bias_act_cpu.c is the C twin (and test oracle) of the CUDA kernels;
 * per-element math comes from kinfer_hd.h so the two cannot drift. */
#ifndef KINFER_BIAS_ACT_H
#define KINFER_BIAS_ACT_H

#include <stddef.h>

#include "kinfer_hd.h"

#ifdef __cplusplus
extern "C" {
#endif

/* y [rows, cols] row-major: y[r][c] = act(y[r][c] + bias[c]). bias may be
 * NULL (no bias). */
void kinfer_bias_act_cpu(float *y, const float *bias, size_t rows, size_t cols,
                         kinfer_activation act);

/* y [rows, cols]: each row replaced by softmax(row), computed as
 * exp(x - max) / sum. A row containing NaN becomes all NaN; +Inf entries
 * share the mass (NaN when max is +Inf, as IEEE gives for inf - inf). */
void kinfer_softmax_rows_cpu(float *y, size_t rows, size_t cols);

#ifdef __cplusplus
}
#endif
#endif
