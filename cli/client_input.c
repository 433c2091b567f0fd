/* client_input.c — parse input tensors for the client commands (see
 * client_input.h). Files are read whole: these are command-line inputs,
 * bounded by a 256 MiB cap. */
#include "client_input.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define MAX_FILE_BYTES (256u << 20)

static void tensor_init(kinfer_client_tensor *t) {
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "input");
}

void kinfer_client_tensor_free(kinfer_client_tensor *t) {
    free(t->data);
    tensor_init(t);
}

kinfer_tensor kinfer_client_tensor_view(const kinfer_client_tensor *t) {
    kinfer_tensor v;
    memset(&v, 0, sizeof v);
    v.name.ptr = t->name;
    v.name.len = strlen(t->name);
    v.dtype = t->dtype;
    v.ndim = t->ndim;
    memcpy(v.shape, t->shape, sizeof v.shape);
    v.data = t->data;
    v.nbytes = t->nbytes;
    return v;
}

kinfer_err kinfer_client_parse_shape(const char *text, int64_t *shape, int *ndim,
                                     kinfer_error *err) {
    const char *p = text;
    int n = 0;
    while (*p == ' ' || *p == '[' || *p == '(')
        p++;
    while (*p && *p != ']' && *p != ')') {
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno || v < 0)
            return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                    "shape '%s': expected non-negative integers like 2,8", text);
        if (n == KINFER_MAX_DIMS)
            return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                    "shape '%s': more than %d dimensions", text, KINFER_MAX_DIMS);
        shape[n++] = v;
        p = end;
        while (*p == ' ' || *p == ',')
            p++;
    }
    if (!n)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "shape '%s' is empty", text);
    *ndim = n;
    return KINFER_OK;
}

static kinfer_err shape_count(const int64_t *shape, int ndim, size_t *count, kinfer_error *err) {
    uint64_t n = 0;
    kinfer_err rc = kinfer_shape_numel(shape, ndim, 1ULL << 28, &n, err);
    *count = (size_t)n;
    return rc;
}

kinfer_err kinfer_client_parse_values(const char *csv, const int64_t *shape, int ndim,
                                      kinfer_client_tensor *out, kinfer_error *err) {
    tensor_init(out);
    size_t cap = 16, n = 0;
    float *vals = malloc(cap * sizeof *vals);
    if (!vals)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
    const char *p = csv;
    while (*p) {
        while (*p == ' ' || *p == ',' || *p == '[' || *p == ']')
            p++;
        if (!*p)
            break;
        char *end;
        errno = 0;
        float v = strtof(p, &end);
        if (end == p || errno == ERANGE) {
            free(vals);
            return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                    "input: '%.20s' is not a number (values are comma-separated)",
                                    p);
        }
        if (n == cap) {
            float *nv = realloc(vals, 2 * cap * sizeof *vals);
            if (!nv) {
                free(vals);
                return kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
            }
            vals = nv;
            cap *= 2;
        }
        vals[n++] = v;
        p = end;
    }
    if (!n) {
        free(vals);
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "input: no values given");
    }
    out->dtype = KINFER_DTYPE_FP32;
    if (ndim > 0) {
        size_t want;
        if (shape_count(shape, ndim, &want, err) != KINFER_OK) {
            free(vals);
            return err ? err->code : KINFER_ERR_INVALID_ARG;
        }
        if (want != n) {
            free(vals);
            return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                    "input: %zu values do not fill the shape (%zu elements)", n,
                                    want);
        }
        out->ndim = ndim;
        memcpy(out->shape, shape, (size_t)ndim * sizeof *shape);
    } else {
        out->ndim = 1;
        out->shape[0] = (int64_t)n;
    }
    out->data = vals;
    out->nbytes = n * sizeof(float);
    return KINFER_OK;
}

static kinfer_err read_file(const char *path, char **buf, size_t *len, kinfer_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return kinfer_error_set(err, KINFER_ERR_IO, "%s: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *b = malloc(cap + 1);
    while (b) {
        size_t got = fread(b + n, 1, cap - n, f);
        n += got;
        if (n < cap)
            break;
        if (cap >= MAX_FILE_BYTES) {
            free(b);
            fclose(f);
            return kinfer_error_set(err, KINFER_ERR_TOO_LARGE, "%s: larger than 256 MiB", path);
        }
        char *nb = realloc(b, 2 * cap + 1);
        if (!nb) {
            free(b);
            b = NULL;
            break;
        }
        b = nb;
        cap *= 2;
    }
    int ioerr = ferror(f);
    fclose(f);
    if (!b)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "%s: out of memory", path);
    if (ioerr) {
        free(b);
        return kinfer_error_set(err, KINFER_ERR_IO, "%s: read error", path);
    }
    b[n] = 0;
    *buf = b;
    *len = n;
    return KINFER_OK;
}

/* ---- JSON --------------------------------------------------------------- */

/* Infers the shape of a nested array from its first elements. */
static kinfer_err json_shape(const json_t *v, int64_t *shape, int *ndim, kinfer_error *err) {
    int n = 0;
    while (json_is_array(v)) {
        if (n == KINFER_MAX_DIMS)
            return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "JSON array nested too deeply");
        shape[n++] = (int64_t)json_array_size(v);
        if (!json_array_size(v))
            break;
        v = json_array_get(v, 0);
    }
    *ndim = n;
    return KINFER_OK;
}

typedef struct json_fill {
    kinfer_dtype dtype;
    char *dst;
    size_t i, count;
} json_fill;

static kinfer_err json_flatten(const json_t *v, const int64_t *shape, int ndim, int depth,
                               json_fill *f, kinfer_error *err) {
    if (depth < ndim) {
        if (!json_is_array(v) || (int64_t)json_array_size(v) != shape[depth])
            return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                    "JSON data is not rectangular at depth %d (want %lld items)",
                                    depth, (long long)shape[depth]);
        for (size_t i = 0; i < json_array_size(v); i++) {
            kinfer_err rc = json_flatten(json_array_get(v, i), shape, ndim, depth + 1, f, err);
            if (rc != KINFER_OK)
                return rc;
        }
        return KINFER_OK;
    }
    if (!json_is_number(v))
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "JSON data: element %zu is not a "
                                "number",
                                f->i);
    if (f->i >= f->count)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "JSON data: too many elements");
    double d = json_number_value(v);
    switch (f->dtype) {
    case KINFER_DTYPE_FP32:
        ((float *)f->dst)[f->i] = (float)d;
        break;
    case KINFER_DTYPE_FP64:
        ((double *)f->dst)[f->i] = d;
        break;
    case KINFER_DTYPE_INT64:
        ((int64_t *)f->dst)[f->i] = (int64_t)d;
        break;
    default: /* INT32 */
        ((int32_t *)f->dst)[f->i] = (int32_t)d;
        break;
    }
    f->i++;
    return KINFER_OK;
}

kinfer_err kinfer_client_load_json(const char *path, kinfer_client_tensor *out, kinfer_error *err) {
    tensor_init(out);
    char *text;
    size_t len;
    kinfer_err rc = read_file(path, &text, &len, err);
    if (rc != KINFER_OK)
        return rc;
    json_error_t jerr;
    json_t *root = json_loadb(text, len, 0, &jerr);
    free(text);
    if (!root)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "%s:%d: %s", path, jerr.line,
                                jerr.text);
    const json_t *data = root;
    out->dtype = KINFER_DTYPE_FP32;
    int64_t shape[KINFER_MAX_DIMS];
    int ndim = 0;
    bool explicit_shape = false;
    if (json_is_object(root)) {
        data = json_object_get(root, "data");
        const json_t *name = json_object_get(root, "name");
        if (json_is_string(name))
            snprintf(out->name, sizeof out->name, "%s", json_string_value(name));
        const json_t *dt = json_object_get(root, "dtype");
        if (json_is_string(dt)) {
            kinfer_dtype d;
            if (!kinfer_dtype_from_name(json_string_value(dt), &d) ||
                !(d == KINFER_DTYPE_FP32 || d == KINFER_DTYPE_FP64 || d == KINFER_DTYPE_INT64 ||
                  d == KINFER_DTYPE_INT32)) {
                json_decref(root);
                return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                        "%s: dtype must be FP32, FP64, INT64 or INT32", path);
            }
            out->dtype = d;
        }
        const json_t *sh = json_object_get(root, "shape");
        if (json_is_array(sh)) {
            explicit_shape = true;
            ndim = (int)json_array_size(sh);
            if (ndim > KINFER_MAX_DIMS) {
                json_decref(root);
                return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "%s: shape too long", path);
            }
            for (int i = 0; i < ndim; i++) {
                const json_t *d = json_array_get(sh, (size_t)i);
                if (!json_is_integer(d) || json_integer_value(d) < 0) {
                    json_decref(root);
                    return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                            "%s: shape entries must be non-negative integers",
                                            path);
                }
                shape[i] = json_integer_value(d);
            }
        }
    }
    if (!json_is_array(data)) {
        json_decref(root);
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "%s: want an array of numbers or an object with \"data\"", path);
    }
    int64_t dshape[KINFER_MAX_DIMS];
    int dndim = 0;
    json_shape(data, dshape, &dndim, err);
    size_t count;
    rc = shape_count(explicit_shape ? shape : dshape, explicit_shape ? ndim : dndim, &count, err);
    if (rc == KINFER_OK) {
        size_t es = kinfer_dtype_size(out->dtype);
        json_fill f = {out->dtype, malloc(count * es + 1), 0, count};
        if (!f.dst)
            rc = kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
        /* An explicit shape takes the data flat or nested alike. */
        if (rc == KINFER_OK && explicit_shape && dndim == 1) {
            int64_t flat = (int64_t)count;
            rc = json_flatten(data, &flat, 1, 0, &f, err);
        } else if (rc == KINFER_OK) {
            rc = json_flatten(data, dshape, dndim, 0, &f, err);
        }
        if (rc == KINFER_OK && f.i != count)
            rc = kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                  "%s: %zu elements do not fill the shape (%zu)", path, f.i, count);
        if (rc == KINFER_OK) {
            out->data = f.dst;
            out->nbytes = count * es;
            out->ndim = explicit_shape ? ndim : dndim;
            memcpy(out->shape, explicit_shape ? shape : dshape, sizeof shape);
        } else {
            free(f.dst);
        }
    }
    json_decref(root);
    if (rc != KINFER_OK && err)
        kinfer_error_prefix(err, "%s", path);
    return rc;
}

/* ---- .npy --------------------------------------------------------------- */

static const char *dict_value(const char *hdr, const char *key) {
    const char *p = strstr(hdr, key);
    if (!p)
        return NULL;
    p = strchr(p + strlen(key), ':');
    if (!p)
        return NULL;
    p++;
    while (*p == ' ')
        p++;
    return p;
}

kinfer_err kinfer_client_load_npy(const char *path, kinfer_client_tensor *out, kinfer_error *err) {
    tensor_init(out);
    char *buf;
    size_t len;
    kinfer_err rc = read_file(path, &buf, &len, err);
    if (rc != KINFER_OK)
        return rc;
    const unsigned char *u = (const unsigned char *)buf;
    size_t hlen, hoff;
    if (len < 10 || memcmp(buf, "\x93NUMPY", 6)) {
        rc = kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "%s: not a .npy file", path);
        goto out;
    }
    if (u[6] == 1) {
        hlen = u[8] | (size_t)u[9] << 8;
        hoff = 10;
    } else if ((u[6] == 2 || u[6] == 3) && len >= 12) {
        hlen = u[8] | (size_t)u[9] << 8 | (size_t)u[10] << 16 | (size_t)u[11] << 24;
        hoff = 12;
    } else {
        rc = kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "%s: unknown .npy version %d", path,
                              u[6]);
        goto out;
    }
    if (hoff + hlen > len) {
        rc = kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "%s: truncated header", path);
        goto out;
    }
    char hdr[4096];
    if (hlen >= sizeof hdr) {
        rc = kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "%s: header too long", path);
        goto out;
    }
    memcpy(hdr, buf + hoff, hlen);
    hdr[hlen] = 0;
    const char *descr = dict_value(hdr, "'descr'");
    const char *fortran = dict_value(hdr, "'fortran_order'");
    const char *shp = dict_value(hdr, "'shape'");
    if (!descr || !fortran || !shp || *shp != '(') {
        rc = kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "%s: header lacks descr/shape", path);
        goto out;
    }
    if (!strncmp(fortran, "True", 4)) {
        rc = kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                              "%s: Fortran-order arrays are not supported (save C order)", path);
        goto out;
    }
    static const struct {
        const char *descr;
        kinfer_dtype dtype;
        size_t size;
    } types[] = {{"'<f4'", KINFER_DTYPE_FP32, 4},  {"'<f8'", KINFER_DTYPE_FP32, 8},
                 {"'<f2'", KINFER_DTYPE_FP16, 2},  {"'<i8'", KINFER_DTYPE_INT64, 8},
                 {"'<i4'", KINFER_DTYPE_INT32, 4}, {"'|i1'", KINFER_DTYPE_INT8, 1},
                 {"'|u1'", KINFER_DTYPE_UINT8, 1}, {"'|b1'", KINFER_DTYPE_BOOL, 1}};
    int ti = -1;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (!strncmp(descr, types[i].descr, strlen(types[i].descr)))
            ti = (int)i;
    if (ti < 0) {
        rc = kinfer_error_set(err, KINFER_ERR_UNSUPPORTED, "%s: dtype %.8s is not supported", path,
                              descr);
        goto out;
    }
    const char *p = shp + 1;
    int ndim = 0;
    while (*p && *p != ')') {
        while (*p == ' ' || *p == ',')
            p++;
        if (*p == ')')
            break;
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p || v < 0 || ndim == KINFER_MAX_DIMS) {
            rc = kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "%s: bad shape", path);
            goto out;
        }
        out->shape[ndim++] = v;
        p = end;
    }
    out->ndim = ndim; /* () is a scalar: ndim 0, one element */
    size_t count;
    if (shape_count(out->shape, ndim, &count, err) != KINFER_OK) {
        rc = err ? err->code : KINFER_ERR_INVALID_ARG;
        goto out;
    }
    size_t body = hoff + hlen, need = count * types[ti].size;
    if (len - body != need) {
        rc =
            kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                             "%s: %zu data bytes, shape and dtype say %zu", path, len - body, need);
        goto out;
    }
    out->dtype = types[ti].dtype;
    size_t es = kinfer_dtype_size(out->dtype);
    out->data = malloc(count * es + 1);
    if (!out->data) {
        rc = kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (types[ti].size == 8 && out->dtype == KINFER_DTYPE_FP32) {
        for (size_t i = 0; i < count; i++) {
            double d;
            memcpy(&d, buf + body + 8 * i, 8);
            ((float *)out->data)[i] = (float)d;
        }
    } else {
        memcpy(out->data, buf + body, need);
    }
    out->nbytes = count * es;
out:
    free(buf);
    if (rc != KINFER_OK)
        kinfer_client_tensor_free(out);
    return rc;
}

kinfer_err kinfer_client_random(const int64_t *shape, int ndim, uint64_t seed,
                                kinfer_client_tensor *out, kinfer_error *err) {
    tensor_init(out);
    size_t count;
    kinfer_err rc = shape_count(shape, ndim, &count, err);
    if (rc != KINFER_OK)
        return rc;
    float *v = malloc(count * sizeof *v + 1);
    if (!v)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
    uint64_t s = seed * 0x9E3779B97F4A7C15ULL + 1;
    for (size_t i = 0; i < count; i++) {
        /* Sum of uniforms: cheap, deterministic, roughly normal. */
        float acc = 0;
        for (int k = 0; k < 4; k++) {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            acc += (float)(s >> 40) / (float)(1 << 24);
        }
        v[i] = (acc - 2.0f) * 1.7f;
    }
    out->dtype = KINFER_DTYPE_FP32;
    out->ndim = ndim;
    memcpy(out->shape, shape, (size_t)ndim * sizeof *shape);
    out->data = v;
    out->nbytes = count * sizeof *v;
    return KINFER_OK;
}
