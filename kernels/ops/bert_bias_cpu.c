/* bert_bias_cpu.c — the encoder's bias (+ GELU) epilogue on the CPU, and
 * the fast erf/exp of kinfer_hd.h as out-of-line functions for their
 * accuracy tests. GELU's erf is kinfer_hd.h's vectorisable approximation
 * (few-ulp errors, below what PyTorch's own vector paths give), shared with
 * the CUDA epilogue (bias_act.cu). */
#include "bert_ops.h"
#include "bias_act.h"
#include "cpu_multiversion.h"

float bert_erf_fast(float x) {
    return kinfer_erf_fast(x);
}

KINFER_CPU_MULTIVERSION
void bert_bias_cpu(float *y, const float *bias, size_t rows, size_t cols) {
    for (size_t r = 0; r < rows; r++) {
        float *row = y + r * cols;
        for (size_t c = 0; c < cols; c++)
            row[c] += bias[c];
    }
}

KINFER_CPU_MULTIVERSION
void bert_bias_gelu_cpu(float *y, const float *bias, size_t rows, size_t cols) {
    for (size_t r = 0; r < rows; r++) {
        float *row = y + r * cols;
        for (size_t c = 0; c < cols; c++) {
            row[c] = kinfer_gelu_erf(row[c] + bias[c]);
        }
    }
}

KINFER_CPU_MULTIVERSION
void bert_gelu_cpu(float *y, size_t rows, size_t cols) {
    for (size_t i = 0; i < rows * cols; i++)
        y[i] = kinfer_gelu_erf(y[i]);
}
