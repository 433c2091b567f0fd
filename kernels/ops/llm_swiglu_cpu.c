/* llm_swiglu_cpu.c — SwiGLU (llm_ops.h), the C twin of llm_swiglu.cu:
 * silu(gate) * up with kinfer_hd.h's silu, vectorised for the CPU at hand. */
#include "ops/cpu_multiversion.h"
#include "ops/kinfer_hd.h"
#include "ops/llm_ops.h"

KINFER_CPU_MULTIVERSION
static void swiglu_row(const float *g, const float *u, float *o, size_t n) {
    for (size_t c = 0; c < n; c++)
        o[c] = kinfer_silu(g[c]) * u[c];
}

void kinfer_swiglu_cpu(const float *gate, const float *up, size_t ld, float *out, size_t rows,
                       size_t n) {
    for (size_t r = 0; r < rows; r++)
        swiglu_row(gate + r * ld, up + r * ld, out + r * n, n);
}
