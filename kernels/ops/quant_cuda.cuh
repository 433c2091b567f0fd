/* quant_cuda.cuh — device-side reading of the GGUF weight types (quant.h):
 * the binary16 scales and one weight, or eight weights at a time, of a
 * row in its stored bytes. The arithmetic is the C twin's
 * (kinfer_dequantize_row_cpu): d * q, d * (q - 8), d * q + m in FP32.
 * Device code only, included by .cu files. */
#ifndef KINFER_QUANT_CUDA_CUH
#define KINFER_QUANT_CUDA_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "quant.h"

namespace quant_cuda {

__device__ __forceinline__ float h2f(uint16_t h) {
    return __half2float(__ushort_as_half(h));
}

__device__ __forceinline__ float bf2f(uint16_t b) {
    return __uint_as_float((uint32_t)b << 16);
}

/* Element e of a row (any type). */
__device__ __forceinline__ float weight(const unsigned char *row, kinfer_qtype t, size_t e) {
    switch (t) {
    case KINFER_QTYPE_F32:
        return ((const float *)row)[e];
    case KINFER_QTYPE_F16:
        return h2f(((const uint16_t *)row)[e]);
    case KINFER_QTYPE_BF16:
        return bf2f(((const uint16_t *)row)[e]);
    case KINFER_QTYPE_Q8_0: {
        const kinfer_block_q8_0 *b = (const kinfer_block_q8_0 *)row + e / KINFER_QK;
        return h2f(b->d) * (float)b->qs[e % KINFER_QK];
    }
    case KINFER_QTYPE_Q4_0: {
        const kinfer_block_q4_0 *b = (const kinfer_block_q4_0 *)row + e / KINFER_QK;
        unsigned i = (unsigned)(e % KINFER_QK);
        int q = i < 16 ? (b->qs[i] & 15) : (b->qs[i - 16] >> 4);
        return h2f(b->d) * (float)(q - 8);
    }
    default: { /* KINFER_QTYPE_Q4_1 */
        const kinfer_block_q4_1 *b = (const kinfer_block_q4_1 *)row + e / KINFER_QK;
        unsigned i = (unsigned)(e % KINFER_QK);
        int q = i < 16 ? (b->qs[i] & 15) : (b->qs[i - 16] >> 4);
        return h2f(b->d) * (float)q + h2f(b->m);
    }
    }
}

/* Part p (0..3) of block j of a row of a block type, eight weights: for
 * the 4-bit types w[0..3] = elements 4p..4p+3 and w[4..7] = elements
 * 16+4p..16+4p+3 of the block (one 32-bit word of codes); for Q8_0 w[0..7]
 * = elements 8p..8p+7. */
__device__ __forceinline__ void block_part(const unsigned char *row, kinfer_qtype t, unsigned j,
                                           unsigned p, float w[8]) {
    if (t == KINFER_QTYPE_Q8_0) {
        const kinfer_block_q8_0 *b = (const kinfer_block_q8_0 *)row + j;
        float d = h2f(b->d);
        /* qs starts 2 bytes into a 34-byte block: 16-bit loads stay aligned */
        const uint16_t *q16 = (const uint16_t *)(const void *)(b->qs + 8 * p);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            uint16_t v = q16[i];
            w[2 * i] = d * (float)(int8_t)(v & 0xff);
            w[2 * i + 1] = d * (float)(int8_t)(v >> 8);
        }
        return;
    }
    const uint8_t *qs;
    float d, m;
    if (t == KINFER_QTYPE_Q4_0) {
        const kinfer_block_q4_0 *b = (const kinfer_block_q4_0 *)row + j;
        qs = b->qs;
        d = h2f(b->d);
        m = -8.0f * d;
    } else {
        const kinfer_block_q4_1 *b = (const kinfer_block_q4_1 *)row + j;
        qs = b->qs;
        d = h2f(b->d);
        m = h2f(b->m);
    }
    /* 18- and 20-byte blocks: 2-byte aligned, so two 16-bit loads */
    const uint16_t *q16 = (const uint16_t *)(const void *)(qs + 4 * p);
    uint32_t v = (uint32_t)q16[0] | ((uint32_t)q16[1] << 16);
#pragma unroll
    for (int i = 0; i < 4; i++) {
        uint32_t byte = (v >> (8 * i)) & 0xff;
        if (t == KINFER_QTYPE_Q4_0) { /* d * (q - 8), as the twin */
            w[i] = d * (float)((int)(byte & 15) - 8);
            w[4 + i] = d * (float)((int)(byte >> 4) - 8);
        } else {
            w[i] = d * (float)(byte & 15) + m;
            w[4 + i] = d * (float)(byte >> 4) + m;
        }
    }
}

} // namespace quant_cuda

#endif
