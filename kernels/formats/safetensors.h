/* safetensors.h — a read-only safetensors file (Hugging Face format: u64 LE
 * header length, JSON header, raw little-endian tensor data), mmapped or
 * borrowed from memory, fully validated at open so that hostile files give
 * an error naming the file and tensor and never a crash. Also a small
 * writer for tests and benches. Not a model: kinds interpret the tensors. */
#ifndef KINFER_SAFETENSORS_H
#define KINFER_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "kinfer/kinfer_error.h"
#include "kinfer/kinfer_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest JSON header accepted (the reference implementation uses 100 MB). */
#define KINFER_ST_MAX_HEADER ((uint64_t)100 * 1024 * 1024)

typedef struct kinfer_safetensors kinfer_safetensors;

typedef struct kinfer_st_tensor {
    const char *name;   /* NUL-terminated; owned by the file handle */
    kinfer_dtype dtype; /* FP32, FP16, BF16, FP64, INT64..INT8, UINT8, BOOL */
    int ndim;           /* 0..KINFER_MAX_DIMS (0 = scalar) */
    int64_t shape[KINFER_MAX_DIMS];
    uint64_t numel;
    const void *data; /* nbytes bytes inside the file; any alignment; NULL if 0 */
    size_t nbytes;
    uint64_t offset; /* byte offset of data from the start of the file */
} kinfer_st_tensor;

/* mmaps `path` (read-only, MAP_PRIVATE) and validates it. Errors:
 * KINFER_ERR_IO (cannot open/stat/map), KINFER_ERR_MODEL_LOAD (bad format),
 * KINFER_ERR_NOMEM. Messages start with the path. The data stays mapped
 * until kinfer_safetensors_close; if the file is truncated on disk while
 * mapped, reading it faults (as with every mmap loader): replace model
 * files by rename, never rewrite them in place. */
kinfer_err kinfer_safetensors_open(const char *path, kinfer_safetensors **out, kinfer_error *err);

/* Same validation over `len` bytes at `data`, which are borrowed and must
 * outlive the handle. `label` names the source in messages (copied). */
kinfer_err kinfer_safetensors_open_memory(const void *data, size_t len, const char *label,
                                          kinfer_safetensors **out, kinfer_error *err);

void kinfer_safetensors_close(kinfer_safetensors *st);

/* The path or label given at open. */
const char *kinfer_safetensors_label(const kinfer_safetensors *st);

/* Tensors in file order (ascending data offset). */
size_t kinfer_safetensors_count(const kinfer_safetensors *st);
const kinfer_st_tensor *kinfer_safetensors_at(const kinfer_safetensors *st, size_t i);
/* The tensor named `name`, or NULL. */
const kinfer_st_tensor *kinfer_safetensors_find(const kinfer_safetensors *st, const char *name);

/* `__metadata__` entries (string -> string), in key order. */
size_t kinfer_safetensors_metadata_count(const kinfer_safetensors *st);
void kinfer_safetensors_metadata_at(const kinfer_safetensors *st, size_t i, const char **key,
                                    const char **value);
/* The value of metadata `key`, or NULL. */
const char *kinfer_safetensors_metadata(const kinfer_safetensors *st, const char *key);

/* --- writer (safetensors_write.c): tests, benches, tools ------------------ */

typedef struct kinfer_st_write_tensor {
    const char *name;
    kinfer_dtype dtype; /* a dtype kinfer_st_dtype_name knows */
    int ndim;
    int64_t shape[KINFER_MAX_DIMS];
    const void *data; /* numel x dtype size bytes, little-endian */
} kinfer_st_write_tensor;

/* Writes a valid safetensors file: header padded with spaces to a multiple
 * of 8 (as the reference writer does), tensors in the order given.
 * metadata: nmeta key/value pairs (may be 0). Errors: IO, NOMEM, INVALID_ARG. */
kinfer_err kinfer_safetensors_write(const char *path, const kinfer_st_write_tensor *tensors,
                                    size_t ntensors, const char *const *meta_keys,
                                    const char *const *meta_values, size_t nmeta,
                                    kinfer_error *err);

/* Safetensors dtype text ("F32", "BF16", ...) of a kinfer dtype; NULL for
 * STRING or out of range. And the reverse; returns 0 on success. */
const char *kinfer_st_dtype_name(kinfer_dtype dtype);
int kinfer_st_dtype_parse(const char *name, kinfer_dtype *out);

#ifdef __cplusplus
}
#endif
#endif
