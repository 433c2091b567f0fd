/* gguf.h — a read-only GGUF file (the llama.cpp/ggml model format: magic,
 * version 2 or 3, typed metadata key/values, a tensor index, aligned tensor
 * data), mmapped or borrowed from memory and fully validated at open, so
 * that hostile files give an error naming the file and the key or tensor
 * and never a crash. Knows the block layout of every ggml tensor type (to
 * bound its bytes), not what a model does with it: kinds decide which types
 * they support. Also a small writer for tests and tools. */
#ifndef KINFER_GGUF_H
#define KINFER_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kinfer/kinfer_error.h"
#include "kinfer/kinfer_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KINFER_GGUF_MAGIC 0x46554747u /* "GGUF" read as little-endian u32 */
#define KINFER_GGUF_DEFAULT_ALIGNMENT 32u
#define KINFER_GGUF_MAX_DIMS 4     /* GGML_MAX_DIMS */
#define KINFER_GGUF_MAX_NAME 64    /* tensor name bytes (GGML_MAX_NAME incl. NUL is 64) */
#define KINFER_GGUF_MAX_KEY 65535u /* metadata key bytes */

/* Metadata value types, numbered as in the GGUF specification. */
typedef enum kinfer_gguf_vtype {
    KINFER_GGUF_UINT8 = 0,
    KINFER_GGUF_INT8 = 1,
    KINFER_GGUF_UINT16 = 2,
    KINFER_GGUF_INT16 = 3,
    KINFER_GGUF_UINT32 = 4,
    KINFER_GGUF_INT32 = 5,
    KINFER_GGUF_FLOAT32 = 6,
    KINFER_GGUF_BOOL = 7,
    KINFER_GGUF_STRING = 8,
    KINFER_GGUF_ARRAY = 9,
    KINFER_GGUF_UINT64 = 10,
    KINFER_GGUF_INT64 = 11,
    KINFER_GGUF_FLOAT64 = 12,
    KINFER_GGUF_VTYPE_COUNT = 13
} kinfer_gguf_vtype;

/* ggml tensor types, numbered as in ggml.h. Ids ggml retired (4, 5,
 * 31-33, 36-38) are unknown here and refused at open. */
typedef enum kinfer_gguf_type {
    KINFER_GGUF_F32 = 0,
    KINFER_GGUF_F16 = 1,
    KINFER_GGUF_Q4_0 = 2,
    KINFER_GGUF_Q4_1 = 3,
    KINFER_GGUF_Q5_0 = 6,
    KINFER_GGUF_Q5_1 = 7,
    KINFER_GGUF_Q8_0 = 8,
    KINFER_GGUF_Q8_1 = 9,
    KINFER_GGUF_Q2_K = 10,
    KINFER_GGUF_Q3_K = 11,
    KINFER_GGUF_Q4_K = 12,
    KINFER_GGUF_Q5_K = 13,
    KINFER_GGUF_Q6_K = 14,
    KINFER_GGUF_Q8_K = 15,
    KINFER_GGUF_IQ2_XXS = 16,
    KINFER_GGUF_IQ2_XS = 17,
    KINFER_GGUF_IQ3_XXS = 18,
    KINFER_GGUF_IQ1_S = 19,
    KINFER_GGUF_IQ4_NL = 20,
    KINFER_GGUF_IQ3_S = 21,
    KINFER_GGUF_IQ2_S = 22,
    KINFER_GGUF_IQ4_XS = 23,
    KINFER_GGUF_I8 = 24,
    KINFER_GGUF_I16 = 25,
    KINFER_GGUF_I32 = 26,
    KINFER_GGUF_I64 = 27,
    KINFER_GGUF_F64 = 28,
    KINFER_GGUF_IQ1_M = 29,
    KINFER_GGUF_BF16 = 30,
    KINFER_GGUF_TQ1_0 = 34,
    KINFER_GGUF_TQ2_0 = 35,
    KINFER_GGUF_MXFP4 = 39,
    KINFER_GGUF_NVFP4 = 40,
    KINFER_GGUF_Q1_0 = 41,
    KINFER_GGUF_TYPE_LIMIT = 42 /* ids are < this */
} kinfer_gguf_type;

/* Name ("Q4_1"), values per block and bytes per block of a tensor type;
 * name NULL and sizes 0 for an id this table does not know. */
const char *kinfer_gguf_type_name(uint32_t type);
uint32_t kinfer_gguf_type_block(uint32_t type);
uint32_t kinfer_gguf_type_block_bytes(uint32_t type);
/* "UINT32", "ARRAY", ...; "?" out of range. */
const char *kinfer_gguf_vtype_name(uint32_t vtype);

/* One metadata entry. Scalars are decoded; strings and array elements point
 * into the file (little-endian, any alignment; read arrays with the
 * kinfer_gguf_arr_* helpers). */
typedef struct kinfer_gguf_kv {
    const char *key; /* NUL-terminated copy */
    kinfer_gguf_vtype type;
    union {
        uint64_t u; /* UINT8/16/32/64 */
        int64_t i;  /* INT8/16/32/64 */
        double f;   /* FLOAT32/64 */
        bool b;     /* BOOL */
    } v;
    kinfer_str str; /* STRING: bytes in the file, not NUL-terminated */
    /* ARRAY: element type (never ARRAY: nested arrays are refused), count,
     * first element's bytes; for string arrays, strs[count] views. */
    kinfer_gguf_vtype elem_type;
    uint64_t count;
    const uint8_t *elems;
    const kinfer_str *strs;
} kinfer_gguf_kv;

typedef struct kinfer_gguf_tensor {
    const char *name; /* NUL-terminated copy, at most KINFER_GGUF_MAX_NAME bytes */
    uint32_t type;    /* kinfer_gguf_type; always one the type table knows */
    uint32_t ndim;    /* 1..KINFER_GGUF_MAX_DIMS */
    /* ggml order: ne[0] is the row length (contiguous), ne[1] the rows...;
     * unused dims are 1. ne[0] is a multiple of the type's block. */
    uint64_t ne[KINFER_GGUF_MAX_DIMS];
    uint64_t numel;
    size_t nbytes;
    uint64_t offset;  /* absolute byte offset in the file */
    const void *data; /* nbytes bytes inside the file, aligned to the file's alignment */
} kinfer_gguf_tensor;

typedef struct kinfer_gguf kinfer_gguf;

/* mmaps `path` (read-only, MAP_PRIVATE) and validates it. Errors:
 * KINFER_ERR_IO (cannot open/stat/map), KINFER_ERR_MODEL_LOAD (bad format,
 * message starting with the path and naming the key or tensor),
 * KINFER_ERR_UNSUPPORTED (GGUF version 1, big-endian files), NOMEM. */
kinfer_err kinfer_gguf_open(const char *path, kinfer_gguf **out, kinfer_error *err);
/* Same validation over `len` borrowed bytes at `data` (they must outlive the
 * handle); `label` names the source in messages (copied). */
kinfer_err kinfer_gguf_open_memory(const void *data, size_t len, const char *label,
                                   kinfer_gguf **out, kinfer_error *err);
void kinfer_gguf_close(kinfer_gguf *g);

const char *kinfer_gguf_label(const kinfer_gguf *g);
uint32_t kinfer_gguf_version(const kinfer_gguf *g);
uint32_t kinfer_gguf_alignment(const kinfer_gguf *g);

/* Metadata in file order; kinfer_gguf_find returns NULL when absent. */
size_t kinfer_gguf_kv_count(const kinfer_gguf *g);
const kinfer_gguf_kv *kinfer_gguf_kv_at(const kinfer_gguf *g, size_t i);
const kinfer_gguf_kv *kinfer_gguf_find(const kinfer_gguf *g, const char *key);

/* Tensors in file (index) order; find returns NULL when absent. */
size_t kinfer_gguf_tensor_count(const kinfer_gguf *g);
const kinfer_gguf_tensor *kinfer_gguf_tensor_at(const kinfer_gguf *g, size_t i);
const kinfer_gguf_tensor *kinfer_gguf_tensor_find(const kinfer_gguf *g, const char *name);

/* Typed getters of one key. With `required`, an absent key is an error
 * ("<label>: metadata key 'k' is missing"); otherwise *out keeps its value
 * (the caller's default) and KINFER_OK is returned. A present key of the
 * wrong type, or an integer that does not fit, is KINFER_ERR_MODEL_LOAD
 * naming the key, its type and the value. Integers accept any integer
 * vtype; floats accept FLOAT32/FLOAT64 and integers. */
kinfer_err kinfer_gguf_get_u64(const kinfer_gguf *g, const char *key, bool required, uint64_t max,
                               uint64_t *out, kinfer_error *err);
kinfer_err kinfer_gguf_get_u32(const kinfer_gguf *g, const char *key, bool required, uint32_t *out,
                               kinfer_error *err);
kinfer_err kinfer_gguf_get_f64(const kinfer_gguf *g, const char *key, bool required, double *out,
                               kinfer_error *err);
kinfer_err kinfer_gguf_get_bool(const kinfer_gguf *g, const char *key, bool required, bool *out,
                                kinfer_error *err);
kinfer_err kinfer_gguf_get_str(const kinfer_gguf *g, const char *key, bool required,
                               kinfer_str *out, kinfer_error *err);
/* An ARRAY key whose elements have type `elem` (any integer vtype when
 * elem is KINFER_GGUF_INT64: read them with kinfer_gguf_arr_int). *out is
 * NULL when absent and not required. */
kinfer_err kinfer_gguf_get_array(const kinfer_gguf *g, const char *key, bool required,
                                 kinfer_gguf_vtype elem, const kinfer_gguf_kv **out,
                                 kinfer_error *err);

/* Element i (< count) of a numeric array, widened. */
int64_t kinfer_gguf_arr_int(const kinfer_gguf_kv *kv, uint64_t i);
double kinfer_gguf_arr_float(const kinfer_gguf_kv *kv, uint64_t i);

/* --- writer (gguf_write.c): tests, fuzz seeds, tools --------------------- */

typedef struct kinfer_gguf_writer kinfer_gguf_writer;

kinfer_err kinfer_gguf_writer_new(kinfer_gguf_writer **out, kinfer_error *err);
void kinfer_gguf_writer_destroy(kinfer_gguf_writer *w);
/* Metadata, in the order added. Strings are copied. */
kinfer_err kinfer_gguf_writer_uint(kinfer_gguf_writer *w, const char *key, kinfer_gguf_vtype type,
                                   uint64_t v, kinfer_error *err);
kinfer_err kinfer_gguf_writer_int(kinfer_gguf_writer *w, const char *key, kinfer_gguf_vtype type,
                                  int64_t v, kinfer_error *err);
kinfer_err kinfer_gguf_writer_float(kinfer_gguf_writer *w, const char *key, kinfer_gguf_vtype type,
                                    double v, kinfer_error *err);
kinfer_err kinfer_gguf_writer_bool(kinfer_gguf_writer *w, const char *key, bool v,
                                   kinfer_error *err);
kinfer_err kinfer_gguf_writer_str(kinfer_gguf_writer *w, const char *key, const char *s, size_t len,
                                  kinfer_error *err);
/* A numeric array: count little-endian elements of `elem` at data. */
kinfer_err kinfer_gguf_writer_array(kinfer_gguf_writer *w, const char *key, kinfer_gguf_vtype elem,
                                    const void *data, uint64_t count, kinfer_error *err);
kinfer_err kinfer_gguf_writer_str_array(kinfer_gguf_writer *w, const char *key,
                                        const kinfer_str *strs, uint64_t count, kinfer_error *err);
/* A tensor of `type` with ggml dims ne[0..ndim); data holds its bytes
 * (copied). */
kinfer_err kinfer_gguf_writer_tensor(kinfer_gguf_writer *w, const char *name, uint32_t type,
                                     uint32_t ndim, const uint64_t *ne, const void *data,
                                     kinfer_error *err);
/* The whole file image (malloc'd, caller frees) with `alignment` (a power
 * of two; writes general.alignment when not 32). */
kinfer_err kinfer_gguf_writer_image(const kinfer_gguf_writer *w, uint32_t alignment, uint8_t **out,
                                    size_t *len, kinfer_error *err);
kinfer_err kinfer_gguf_writer_save(const kinfer_gguf_writer *w, const char *path,
                                   kinfer_error *err);

#ifdef __cplusplus
}
#endif
#endif
