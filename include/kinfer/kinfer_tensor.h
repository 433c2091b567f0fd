/* kinfer_tensor.h — dtypes and a non-owning tensor view shared by the codec
 * (wire tensors) and the engine (model inputs/outputs).
 *
 * A kinfer_tensor never owns its memory: whoever fills it says how long the
 * pointed-to bytes live. The dtype order equals the Avro enum DType in
 * schemas/inference_request.avsc, so the wire index is the enum value. */
#ifndef KINFER_TENSOR_H
#define KINFER_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kinfer/kinfer_error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kinfer_dtype {
    KINFER_DTYPE_FP32 = 0,
    KINFER_DTYPE_FP16 = 1,
    KINFER_DTYPE_BF16 = 2,
    KINFER_DTYPE_FP64 = 3,
    KINFER_DTYPE_INT64 = 4,
    KINFER_DTYPE_INT32 = 5,
    KINFER_DTYPE_INT16 = 6,
    KINFER_DTYPE_INT8 = 7,
    KINFER_DTYPE_UINT8 = 8,
    KINFER_DTYPE_BOOL = 9,
    KINFER_DTYPE_STRING = 10,
    KINFER_DTYPE_COUNT = 11
} kinfer_dtype;

/* Most dimensions a tensor may have, on the wire and in the engine. */
#define KINFER_MAX_DIMS 8

/* A byte string that is not NUL-terminated (e.g. a view into a message). */
typedef struct kinfer_str {
    const char *ptr;
    size_t len;
} kinfer_str;

typedef struct kinfer_tensor {
    kinfer_str name;
    kinfer_dtype dtype;
    int ndim;
    int64_t shape[KINFER_MAX_DIMS];
    const void *data; /* little-endian row-major elements; NULL when nbytes==0 */
    size_t nbytes;
    const kinfer_str *strings; /* STRING tensors only: numel entries */
    size_t nstrings;
} kinfer_tensor;

/* One request parameter (Avro map<string> entry), e.g. normalize=true. */
typedef struct kinfer_param {
    kinfer_str key;
    kinfer_str value;
} kinfer_param;

/* Bytes per element; 0 for STRING. */
size_t kinfer_dtype_size(kinfer_dtype dtype);
/* Wire name, e.g. "FP32"; "?" for out-of-range values. */
const char *kinfer_dtype_name(kinfer_dtype dtype);
/* Parses a wire name; returns false when unknown. */
bool kinfer_dtype_from_name(const char *name, kinfer_dtype *out);

/* Product of the shape with overflow and sign checks. Fails with
 * KINFER_ERR_INVALID_REQUEST when a dim is negative or the product
 * exceeds max_numel. */
kinfer_err kinfer_shape_numel(const int64_t *shape, int ndim, uint64_t max_numel, uint64_t *out,
                              kinfer_error *err);

/* Checks that a tensor is self-consistent: ndim within bounds, dims
 * non-negative, numel <= max_numel, and nbytes == numel * dtype size (or
 * nstrings == numel for STRING). The message names the tensor. */
kinfer_err kinfer_tensor_check(const kinfer_tensor *t, uint64_t max_numel, kinfer_error *err);

/* Writes "[2, 3]" style text into buf (always NUL-terminated). */
void kinfer_shape_format(const int64_t *shape, int ndim, char *buf, size_t buflen);

#ifdef __cplusplus
}
#endif
#endif
