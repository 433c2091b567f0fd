/* convert_cpu.c — exact binary16/bfloat16 <-> binary32 conversion on the host
 * (bit manipulation, no F16C dependency, so results are the same on every
 * machine). Used by the weight loader; tests check every class of input. */
#include "convert.h"

#include <string.h>

static float bits_to_float(uint32_t bits) {
    float f;
    memcpy(&f, &bits, sizeof(f));
    return f;
}

static uint32_t float_to_bits(float f) {
    uint32_t bits;
    memcpy(&bits, &f, sizeof(bits));
    return bits;
}

float kinfer_fp16_to_fp32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    if (exp == 0x1f) /* inf, or NaN with its payload moved up */
        return bits_to_float(sign | 0x7f800000u | (man << 13));
    if (exp != 0)
        return bits_to_float(sign | ((exp + 112u) << 23) | (man << 13));
    if (man == 0)
        return bits_to_float(sign); /* +-0 */
    /* Subnormal: value = man * 2^-24. Shift until the implicit bit shows,
     * lowering the exponent once per shift. */
    uint32_t e = 113; /* biased fp32 exponent of 2^-14 */
    while (!(man & 0x400u)) {
        man <<= 1;
        e--;
    }
    return bits_to_float(sign | (e << 23) | ((man & 0x3ffu) << 13));
}

float kinfer_bf16_to_fp32(uint16_t b) {
    return bits_to_float((uint32_t)b << 16);
}

uint16_t kinfer_fp32_to_fp16(float f) {
    uint32_t x = float_to_bits(f);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t exp = (x >> 23) & 0xffu;
    uint32_t man = x & 0x7fffffu;
    if (exp == 0xff) /* keep NaN a NaN (quiet) even when the payload is low bits */
        return (uint16_t)(sign | 0x7c00u | (man ? 0x200u | (man >> 13) : 0));
    int e = (int)exp - 127 + 15;
    if (e >= 31)
        return (uint16_t)(sign | 0x7c00u);
    if (e <= 0) {
        if (e < -10)
            return (uint16_t)sign;
        uint32_t full = man | 0x800000u;
        int shift = 14 - e;
        uint32_t half = full >> shift;
        uint32_t rem = full & ((1u << shift) - 1);
        uint32_t halfway = 1u << (shift - 1);
        if (rem > halfway || (rem == halfway && (half & 1)))
            half++; /* may carry into the smallest normal: still correct */
        return (uint16_t)(sign | half);
    }
    uint32_t h = ((uint32_t)e << 10) | (man >> 13);
    uint32_t rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1)))
        h++; /* a carry out of the mantissa bumps the exponent, up to inf */
    return (uint16_t)(sign | h);
}

uint16_t kinfer_fp32_to_bf16(float f) {
    uint32_t x = float_to_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((x >> 16) | 0x40u); /* quiet NaN */
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

void kinfer_fp16_to_fp32_n(const void *src, float *dst, size_t n) {
    const uint8_t *p = src;
    for (size_t i = 0; i < n; i++)
        dst[i] = kinfer_fp16_to_fp32((uint16_t)(p[2 * i] | (p[2 * i + 1] << 8)));
}

void kinfer_bf16_to_fp32_n(const void *src, float *dst, size_t n) {
    const uint8_t *p = src;
    for (size_t i = 0; i < n; i++)
        dst[i] = kinfer_bf16_to_fp32((uint16_t)(p[2 * i] | (p[2 * i + 1] << 8)));
}
