/* kinfer_tensor.c — dtype tables and shape checks shared by codec and engine. */
#include "kinfer/kinfer_tensor.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    size_t size;
} dtype_table[KINFER_DTYPE_COUNT] = {
    [KINFER_DTYPE_FP32] = {"FP32", 4},     [KINFER_DTYPE_FP16] = {"FP16", 2},
    [KINFER_DTYPE_BF16] = {"BF16", 2},     [KINFER_DTYPE_FP64] = {"FP64", 8},
    [KINFER_DTYPE_INT64] = {"INT64", 8},   [KINFER_DTYPE_INT32] = {"INT32", 4},
    [KINFER_DTYPE_INT16] = {"INT16", 2},   [KINFER_DTYPE_INT8] = {"INT8", 1},
    [KINFER_DTYPE_UINT8] = {"UINT8", 1},   [KINFER_DTYPE_BOOL] = {"BOOL", 1},
    [KINFER_DTYPE_STRING] = {"STRING", 0},
};

_Static_assert(sizeof(dtype_table) / sizeof(dtype_table[0]) == KINFER_DTYPE_COUNT,
               "dtype table must cover every dtype");

size_t kinfer_dtype_size(kinfer_dtype dtype) {
    if ((unsigned)dtype >= KINFER_DTYPE_COUNT)
        return 0;
    return dtype_table[dtype].size;
}

const char *kinfer_dtype_name(kinfer_dtype dtype) {
    if ((unsigned)dtype >= KINFER_DTYPE_COUNT)
        return "?";
    return dtype_table[dtype].name;
}

bool kinfer_dtype_from_name(const char *name, kinfer_dtype *out) {
    for (int i = 0; i < KINFER_DTYPE_COUNT; i++) {
        if (strcmp(name, dtype_table[i].name) == 0) {
            *out = (kinfer_dtype)i;
            return true;
        }
    }
    return false;
}

kinfer_err kinfer_shape_numel(const int64_t *shape, int ndim, uint64_t max_numel, uint64_t *out,
                              kinfer_error *err) {
    uint64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST,
                                    "shape dim %d is negative (%lld)", i, (long long)shape[i]);
        uint64_t d = (uint64_t)shape[i];
        if (d != 0 && n > max_numel / d)
            return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST,
                                    "shape has more than %llu elements",
                                    (unsigned long long)max_numel);
        n *= d;
    }
    if (n > max_numel)
        return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST,
                                "shape has more than %llu elements", (unsigned long long)max_numel);
    *out = n;
    return KINFER_OK;
}

kinfer_err kinfer_tensor_check(const kinfer_tensor *t, uint64_t max_numel, kinfer_error *err) {
    char shp[160];
    if (t->ndim < 0 || t->ndim > KINFER_MAX_DIMS)
        return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST,
                                "tensor '%.*s': %d dims, at most %d allowed", (int)t->name.len,
                                t->name.ptr ? t->name.ptr : "", t->ndim, KINFER_MAX_DIMS);
    if ((unsigned)t->dtype >= KINFER_DTYPE_COUNT)
        return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST, "tensor '%.*s': unknown dtype %d",
                                (int)t->name.len, t->name.ptr ? t->name.ptr : "", (int)t->dtype);
    uint64_t numel;
    if (kinfer_shape_numel(t->shape, t->ndim, max_numel, &numel, err) != KINFER_OK)
        return kinfer_error_prefix(err, "tensor '%.*s'", (int)t->name.len,
                                   t->name.ptr ? t->name.ptr : "");
    kinfer_shape_format(t->shape, t->ndim, shp, sizeof(shp));
    if (t->dtype == KINFER_DTYPE_STRING) {
        if (t->nstrings != numel)
            return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST,
                                    "tensor '%.*s': STRING shape %s needs %llu strings, got %zu",
                                    (int)t->name.len, t->name.ptr ? t->name.ptr : "", shp,
                                    (unsigned long long)numel, t->nstrings);
        return KINFER_OK;
    }
    uint64_t want = numel * kinfer_dtype_size(t->dtype);
    if (t->nbytes != want)
        return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST,
                                "tensor '%.*s': %s shape %s needs %llu data bytes, got %zu",
                                (int)t->name.len, t->name.ptr ? t->name.ptr : "",
                                kinfer_dtype_name(t->dtype), shp, (unsigned long long)want,
                                t->nbytes);
    return KINFER_OK;
}

void kinfer_shape_format(const int64_t *shape, int ndim, char *buf, size_t buflen) {
    if (buflen == 0)
        return;
    size_t off = 0;
    int n = snprintf(buf, buflen, "[");
    off = n > 0 ? (size_t)n : 0;
    for (int i = 0; i < ndim && off < buflen; i++) {
        n = snprintf(buf + off, buflen - off, i ? ", %lld" : "%lld", (long long)shape[i]);
        if (n < 0)
            break;
        off += (size_t)n;
    }
    if (off < buflen)
        snprintf(buf + off, buflen - off, "]");
}
