/* client_input.h — input tensors for `kinfer send` and `kinfer bench` from
 * the command line: comma-separated values with a shape, a JSON file, a
 * NumPy .npy file, or random values. Each result owns its bytes. Not the
 * wire encoding (codec) and not Kafka. */
#ifndef KINFER_CLIENT_INPUT_H
#define KINFER_CLIENT_INPUT_H

#include <stddef.h>
#include <stdint.h>

#include "kinfer/kinfer_error.h"
#include "kinfer/kinfer_tensor.h"

typedef struct kinfer_client_tensor {
    char name[64];
    kinfer_dtype dtype;
    int ndim;
    int64_t shape[KINFER_MAX_DIMS];
    void *data; /* malloc'd, little-endian row-major */
    size_t nbytes;
} kinfer_client_tensor;

/* "2,8" or "[2, 8]" -> {2, 8}. Dims >= 0, at most KINFER_MAX_DIMS. */
kinfer_err kinfer_client_parse_shape(const char *text, int64_t *shape, int *ndim,
                                     kinfer_error *err);

/* FP32 values "0.1,0.2,..." with an optional shape (ndim 0 = [count]); the
 * count must match the shape. */
kinfer_err kinfer_client_parse_values(const char *csv, const int64_t *shape, int ndim,
                                      kinfer_client_tensor *out, kinfer_error *err);

/* JSON: a (nested, rectangular) array of numbers -> FP32 with that shape,
 * or an object {"name": .., "dtype": "FP32"|"FP64"|"INT64"|"INT32",
 * "shape": [..], "data": [..] (flat or nested)}. */
kinfer_err kinfer_client_load_json(const char *path, kinfer_client_tensor *out, kinfer_error *err);

/* NumPy .npy (format 1.0-3.0, C order): <f4 -> FP32, <f8 -> FP32 (converted:
 * NumPy's default float type is rarely what a model wants), <f2 FP16, <i8,
 * <i4, |i1, |u1, |b1. */
kinfer_err kinfer_client_load_npy(const char *path, kinfer_client_tensor *out, kinfer_error *err);

/* FP32 standard-normal-ish values of the given shape, deterministic in seed. */
kinfer_err kinfer_client_random(const int64_t *shape, int ndim, uint64_t seed,
                                kinfer_client_tensor *out, kinfer_error *err);

/* A view for the codec (name defaults to "input"). */
kinfer_tensor kinfer_client_tensor_view(const kinfer_client_tensor *t);

void kinfer_client_tensor_free(kinfer_client_tensor *t);

#endif
