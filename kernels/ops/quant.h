/* quant.h — the weight types of the llm kind (GGUF's F32, F16, BF16, Q8_0,
 * Q4_0, Q4_1) with GGML's block layouts byte for byte as a GGUF file stores
 * them, row sizes, dequantize/quantize-row (portable C; the dot products
 * that never dequantize a whole row are qmatmul.h's). Every other GGML type
 * is refused by name. Host C; the CUDA side reads the same bytes
 * (quant_cuda.cuh). */
#ifndef KINFER_QUANT_H
#define KINFER_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kinfer/kinfer_error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kinfer_qtype {
    KINFER_QTYPE_F32 = 0,
    KINFER_QTYPE_F16,  /* IEEE binary16, little-endian */
    KINFER_QTYPE_BF16, /* bfloat16, little-endian */
    KINFER_QTYPE_Q8_0, /* blocks of 32: x = d * q, q int8 */
    KINFER_QTYPE_Q4_0, /* blocks of 32: x = d * (q - 8), q 4-bit */
    KINFER_QTYPE_Q4_1, /* blocks of 32: x = d * q + m, q 4-bit */
    KINFER_QTYPE_COUNT
} kinfer_qtype;

/* Elements per block of the block types (Q8_0, Q4_0, Q4_1). */
#define KINFER_QK 32

/* GGML's blocks. d and m are binary16 bit patterns (little-endian, as this
 * project only runs on little-endian hosts). In the 4-bit blocks byte j
 * holds element j in its low nibble and element j + 16 in its high one.
 * Blocks follow each other with no padding; a row of n elements is n / 32
 * blocks. Alignment 2: a GGUF file aligns tensor data to 32 bytes, so
 * every block there is 2-byte aligned. */
typedef struct kinfer_block_q8_0 {
    uint16_t d;
    int8_t qs[KINFER_QK];
} kinfer_block_q8_0; /* 34 bytes */
typedef struct kinfer_block_q4_0 {
    uint16_t d;
    uint8_t qs[KINFER_QK / 2];
} kinfer_block_q4_0; /* 18 bytes */
typedef struct kinfer_block_q4_1 {
    uint16_t d, m;
    uint8_t qs[KINFER_QK / 2];
} kinfer_block_q4_1; /* 20 bytes */

#ifdef __cplusplus
#define KINFER_QUANT_STATIC_ASSERT static_assert
#else
#define KINFER_QUANT_STATIC_ASSERT _Static_assert
#endif
KINFER_QUANT_STATIC_ASSERT(sizeof(kinfer_block_q8_0) == 34, "GGML block_q8_0 is 34 bytes");
KINFER_QUANT_STATIC_ASSERT(sizeof(kinfer_block_q4_0) == 18, "GGML block_q4_0 is 18 bytes");
KINFER_QUANT_STATIC_ASSERT(sizeof(kinfer_block_q4_1) == 20, "GGML block_q4_1 is 20 bytes");

/* "F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1"; "?" for anything else. */
const char *kinfer_qtype_name(kinfer_qtype t);
/* Elements per block: 1 for F32/F16/BF16, KINFER_QK for the block types;
 * 0 for an invalid type. */
size_t kinfer_qtype_block_elems(kinfer_qtype t);
/* Bytes per block (4, 2, 2, 34, 18, 20); 0 for an invalid type. */
size_t kinfer_qtype_block_bytes(kinfer_qtype t);
/* True when t is a block type (n must then be a multiple of KINFER_QK). */
bool kinfer_qtype_is_block(kinfer_qtype t);

/* Bytes of one row of n elements. KINFER_ERR_INVALID_ARG naming the type
 * when n is not a multiple of the block size, or t is not a kinfer_qtype. */
kinfer_err kinfer_qtype_row_bytes(kinfer_qtype t, size_t n, size_t *bytes, kinfer_error *err);

/* GGUF tensor type id (ggml_type: F32 0, F16 1, Q4_0 2, Q4_1 3, Q8_0 8,
 * BF16 30) -> kinfer_qtype. Any other id: KINFER_ERR_UNSUPPORTED with the
 * GGML name ("tensor type Q4_K is not supported (supported: F32, F16, ...)").
 * what (may be NULL) names the tensor in the message. */
kinfer_err kinfer_qtype_from_ggml(uint32_t ggml_type, const char *what, kinfer_qtype *out,
                                  kinfer_error *err);
/* GGML's name of a GGUF tensor type id ("Q4_K", "IQ2_XXS", ...), or
 * "unknown" for an id GGML never assigned. */
const char *kinfer_ggml_type_name(uint32_t ggml_type);

/* src: one row of n elements in type t -> dst [n] floats. n must be a
 * multiple of the type's block (kinfer_qtype_row_bytes checks it; this does
 * not). Exact: every quantized value and scale is representable in FP32,
 * d * q and d * q + m are computed in FP32 as GGML does. */
void kinfer_dequantize_row_cpu(const void *src, kinfer_qtype t, float *dst, size_t n);
/* Inverse, for tests and for loaders that quantize: src [n] -> one row of
 * type t in dst, GGML's reference rounding (Q8_0: d = amax / 127; Q4_0:
 * d = max / -8 by the signed extreme; Q4_1: d = (max - min) / 15, m = min;
 * round half away from zero). n a multiple of the block. */
void kinfer_quantize_row_cpu(const float *src, kinfer_qtype t, void *dst, size_t n);

#ifdef __cplusplus
}
#endif
#endif
