/* dense_quant_cpu.h — the element-wise halves of the reduced-precision dense
 * layers (dense_cpu.c): FP32 rows to BF16, dynamic per-row asymmetric UINT8
 * quantization of activations, per-channel symmetric INT8 quantization of
 * weights, and the INT8 GEMM's epilogue back to FP32. Plain C loops that
 * GCC vectorises for the CPU at hand (cpu_multiversion.h); kept apart from
 * the GEMM so the unit tests can check them against their definitions. */
#ifndef KINFER_DENSE_QUANT_CPU_H
#define KINFER_DENSE_QUANT_CPU_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* dst[r, c] = bf16(src[r, c]) (round to nearest even; NaN stays a quiet
 * NaN) for rows x cols, row strides ld_src / ld_dst in elements. */
void kinfer_rows_to_bf16(const float *src, size_t ld_src, uint16_t *dst, size_t ld_dst, size_t rows,
                         size_t cols);

/* Per-row asymmetric quantization: for each row, lo = min(min(x), 0),
 * hi = max(max(x), 0), scale = (hi - lo) / 255 (1 when hi == lo),
 * zp = round(-lo / scale) in 0..255, q = clamp(round(x / scale) + zp, 0, 255).
 * x ~ (q - zp) * scale; 0 is exact. scale[rows], zp[rows] receive the
 * row parameters. */
void kinfer_quant_rows_u8(const float *src, size_t ld_src, uint8_t *dst, size_t ld_dst, size_t rows,
                          size_t cols, float *scale, int32_t *zp);

/* Per-channel symmetric quantization of weights w[n, k] (row = output
 * channel): scale[i] = max|w[i, :]| / 127 (1 for an all-zero row),
 * q = clamp(round(w / scale), -127, 127); sum[i] = sum of q over the row
 * (the UINT8 zero point's correction term). */
void kinfer_quant_weights_s8(const float *w, size_t n, size_t k, int8_t *q, float *scale,
                             int32_t *sum);

/* The INT8 GEMM's epilogue: for rows x cols of acc (int32, the exact
 * products of the quantized operands),
 *   y[r, c] = (acc[r, c] - zp[r] * wsum[c]) * (xscale[r] * wscale[c]) + bias[c]
 * (bias may be NULL). Strides in elements. */
void kinfer_dequant_rows(const int32_t *acc, size_t ld_acc, float *y, size_t ld_y, size_t rows,
                         size_t cols, const float *xscale, const int32_t *zp, const float *wscale,
                         const int32_t *wsum, const float *bias);

#ifdef __cplusplus
}
#endif
#endif
