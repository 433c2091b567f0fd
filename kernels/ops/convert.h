/* convert.h — IEEE binary16 and bfloat16 to binary32 conversion, exact
 * for every input (subnormals, infinities, NaN payload kept), used when
 * loading F16/BF16 weights. Host-only; GPU code uses its own intrinsics. */
#ifndef KINFER_FP_CONVERT_H
#define KINFER_FP_CONVERT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

float kinfer_fp16_to_fp32(uint16_t h);
float kinfer_bf16_to_fp32(uint16_t b);
/* Round-to-nearest-even fp32 -> fp16/bf16 (tests and the writer use them). */
uint16_t kinfer_fp32_to_fp16(float f);
uint16_t kinfer_fp32_to_bf16(float f);

/* n little-endian 16-bit values at src (any alignment) -> dst. */
void kinfer_fp16_to_fp32_n(const void *src, float *dst, size_t n);
void kinfer_bf16_to_fp32_n(const void *src, float *dst, size_t n);

#ifdef __cplusplus
}
#endif
#endif
