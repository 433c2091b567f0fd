/* safetensors.c — opens and validates safetensors files (mmapped or in
 * memory). Every check of the format happens here, once, at open: after a
 * successful open each tensor's bytes lie inside the buffer and match its
 * dtype and shape, so users never re-check. Does not interpret tensors. */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct kinfer_safetensors {
    char *label;
    const uint8_t *base; /* whole file */
    size_t len;
    void *map;                 /* non-NULL when we mmapped base */
    kinfer_st_tensor *tensors; /* ascending offset */
    size_t ntensors;
    size_t *by_name;  /* indices into tensors, sorted by name */
    char **meta_keys; /* sorted */
    char **meta_values;
    size_t nmeta;
};

static const struct {
    const char *name;
    kinfer_dtype dtype;
} st_dtypes[] = {
    {"F32", KINFER_DTYPE_FP32},  {"F16", KINFER_DTYPE_FP16},  {"BF16", KINFER_DTYPE_BF16},
    {"F64", KINFER_DTYPE_FP64},  {"I64", KINFER_DTYPE_INT64}, {"I32", KINFER_DTYPE_INT32},
    {"I16", KINFER_DTYPE_INT16}, {"I8", KINFER_DTYPE_INT8},   {"U8", KINFER_DTYPE_UINT8},
    {"BOOL", KINFER_DTYPE_BOOL},
};

const char *kinfer_st_dtype_name(kinfer_dtype dtype) {
    for (size_t i = 0; i < sizeof(st_dtypes) / sizeof(st_dtypes[0]); i++)
        if (st_dtypes[i].dtype == dtype)
            return st_dtypes[i].name;
    return NULL;
}

int kinfer_st_dtype_parse(const char *name, kinfer_dtype *out) {
    for (size_t i = 0; i < sizeof(st_dtypes) / sizeof(st_dtypes[0]); i++) {
        if (strcmp(st_dtypes[i].name, name) == 0) {
            *out = st_dtypes[i].dtype;
            return 0;
        }
    }
    return -1;
}

static const char *json_type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a real number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

/* Messages quote names with %.*s bounded so a hostile 1 MB name cannot
 * swamp the error buffer (it is truncated anyway, but readably). */
#define NAME_FMT "'%.96s'"

static kinfer_err fmt_err(kinfer_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static kinfer_err fmt_err(kinfer_error *err, const char *fmt, ...) {
    char msg[KINFER_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD, "%s", msg);
}

/* A JSON integer >= 0 into *out; otherwise a message naming `what`. */
static kinfer_err get_u64(const json_t *v, const char *tname, const char *what, uint64_t *out,
                          kinfer_error *err) {
    if (!json_is_integer(v))
        return fmt_err(err, "tensor " NAME_FMT ": %s is %s, expected a non-negative integer", tname,
                       what, json_type_name(v));
    json_int_t i = json_integer_value(v);
    if (i < 0)
        return fmt_err(err, "tensor " NAME_FMT ": %s is negative (%lld)", tname, what,
                       (long long)i);
    *out = (uint64_t)i;
    return KINFER_OK;
}

static kinfer_err parse_tensor(const char *name, const json_t *entry, uint64_t data_len,
                               kinfer_st_tensor *t, kinfer_error *err) {
    char what[32];
    if (!json_is_object(entry))
        return fmt_err(err, "tensor " NAME_FMT ": entry is %s, expected an object", name,
                       json_type_name(entry));
    const json_t *dtype = json_object_get(entry, "dtype");
    const json_t *shape = json_object_get(entry, "shape");
    const json_t *offs = json_object_get(entry, "data_offsets");
    if (!dtype)
        return fmt_err(err, "tensor " NAME_FMT ": missing \"dtype\"", name);
    if (!shape)
        return fmt_err(err, "tensor " NAME_FMT ": missing \"shape\"", name);
    if (!offs)
        return fmt_err(err, "tensor " NAME_FMT ": missing \"data_offsets\"", name);
    if (!json_is_string(dtype))
        return fmt_err(err, "tensor " NAME_FMT ": \"dtype\" is %s, expected a string", name,
                       json_type_name(dtype));
    if (kinfer_st_dtype_parse(json_string_value(dtype), &t->dtype) != 0)
        return fmt_err(err,
                       "tensor " NAME_FMT ": unsupported dtype '%.32s' (known: F32, F16, BF16, "
                       "F64, I64, I32, I16, I8, U8, BOOL)",
                       name, json_string_value(dtype));
    if (!json_is_array(shape))
        return fmt_err(err, "tensor " NAME_FMT ": \"shape\" is %s, expected an array", name,
                       json_type_name(shape));
    size_t ndim = json_array_size(shape);
    if (ndim > KINFER_MAX_DIMS)
        return fmt_err(err, "tensor " NAME_FMT ": %zu dims, at most %d supported", name, ndim,
                       KINFER_MAX_DIMS);
    uint64_t numel = 1;
    bool overflow = false;
    for (size_t i = 0; i < ndim; i++) {
        uint64_t d;
        snprintf(what, sizeof(what), "shape[%zu]", i);
        if (get_u64(json_array_get(shape, i), name, what, &d, err) != KINFER_OK)
            return err ? err->code : KINFER_ERR_MODEL_LOAD;
        t->shape[i] = (int64_t)d; /* d <= INT64_MAX: it came from a json_int_t */
        if (d != 0 && numel > UINT64_MAX / d)
            overflow = true;
        else
            numel *= d;
    }
    t->ndim = (int)ndim;
    /* A zero dim makes the product 0 whatever overflowed before it. */
    for (size_t i = 0; i < ndim; i++)
        if (t->shape[i] == 0)
            overflow = false, numel = 0;
    size_t esize = kinfer_dtype_size(t->dtype);
    if (overflow || numel > UINT64_MAX / esize)
        return fmt_err(err, "tensor " NAME_FMT ": shape is too large (element count overflows)",
                       name);
    if (!json_is_array(offs) || json_array_size(offs) != 2)
        return fmt_err(err, "tensor " NAME_FMT ": \"data_offsets\" must be an array [begin, end]",
                       name);
    uint64_t begin, end;
    if (get_u64(json_array_get(offs, 0), name, "data_offsets[0]", &begin, err) != KINFER_OK ||
        get_u64(json_array_get(offs, 1), name, "data_offsets[1]", &end, err) != KINFER_OK)
        return err ? err->code : KINFER_ERR_MODEL_LOAD;
    if (begin > end)
        return fmt_err(err, "tensor " NAME_FMT ": data_offsets [%llu, %llu] end before begin", name,
                       (unsigned long long)begin, (unsigned long long)end);
    if (end > data_len)
        return fmt_err(err,
                       "tensor " NAME_FMT ": data_offsets [%llu, %llu] beyond the %llu-byte "
                       "data section",
                       name, (unsigned long long)begin, (unsigned long long)end,
                       (unsigned long long)data_len);
    uint64_t want = numel * esize;
    if (end - begin != want) {
        char shp[160];
        kinfer_shape_format(t->shape, t->ndim, shp, sizeof(shp));
        return fmt_err(err,
                       "tensor " NAME_FMT ": %s %s needs %llu bytes, data_offsets [%llu, %llu] "
                       "hold %llu",
                       name, kinfer_st_dtype_name(t->dtype), shp, (unsigned long long)want,
                       (unsigned long long)begin, (unsigned long long)end,
                       (unsigned long long)(end - begin));
    }
    t->numel = numel;
    t->offset = begin; /* made absolute by the caller */
    t->nbytes = (size_t)want;
    return KINFER_OK;
}

static kinfer_err parse_metadata(kinfer_safetensors *st, const json_t *meta, kinfer_error *err) {
    if (json_is_null(meta))
        return KINFER_OK;
    if (!json_is_object(meta))
        return fmt_err(err, "\"__metadata__\" is %s, expected an object of strings",
                       json_type_name(meta));
    size_t n = json_object_size(meta);
    st->meta_keys = calloc(n ? n : 1, sizeof(char *));
    st->meta_values = calloc(n ? n : 1, sizeof(char *));
    if (!st->meta_keys || !st->meta_values)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
    const char *key;
    const json_t *val;
    json_object_foreach((json_t *)meta, key, val) {
        if (!json_is_string(val))
            return fmt_err(err, "\"__metadata__\" key " NAME_FMT " is %s, expected a string", key,
                           json_type_name(val));
        /* Insertion sort: metadata maps are tiny. */
        size_t i = st->nmeta;
        while (i > 0 && strcmp(st->meta_keys[i - 1], key) > 0) {
            st->meta_keys[i] = st->meta_keys[i - 1];
            st->meta_values[i] = st->meta_values[i - 1];
            i--;
        }
        st->meta_keys[i] = strdup(key);
        st->meta_values[i] = strdup(json_string_value(val));
        st->nmeta++;
        if (!st->meta_keys[i] || !st->meta_values[i])
            return kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
    }
    return KINFER_OK;
}

static int cmp_offset(const void *a, const void *b) {
    const kinfer_st_tensor *x = a, *y = b;
    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    if (x->nbytes != y->nbytes)
        return x->nbytes < y->nbytes ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* qsort has no context argument; the name index sorts pairs instead. */
typedef struct name_ref {
    const char *name;
    size_t index;
} name_ref;

static int cmp_name_ref(const void *a, const void *b) {
    return strcmp(((const name_ref *)a)->name, ((const name_ref *)b)->name);
}

static kinfer_err build_name_index(kinfer_safetensors *st, kinfer_error *err) {
    size_t n = st->ntensors;
    name_ref *refs = malloc((n ? n : 1) * sizeof(*refs));
    st->by_name = malloc((n ? n : 1) * sizeof(size_t));
    if (!refs || !st->by_name) {
        free(refs);
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++)
        refs[i] = (name_ref){st->tensors[i].name, i};
    qsort(refs, n, sizeof(*refs), cmp_name_ref);
    for (size_t i = 0; i < n; i++)
        st->by_name[i] = refs[i].index;
    free(refs);
    return KINFER_OK;
}

static kinfer_err parse(kinfer_safetensors *st, kinfer_error *err) {
    if (st->len < 8)
        return fmt_err(err, "file is %zu bytes, shorter than the 8-byte header length prefix",
                       st->len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | st->base[i];
    if (hlen > KINFER_ST_MAX_HEADER)
        return fmt_err(err, "header length %llu exceeds the %llu-byte limit",
                       (unsigned long long)hlen, (unsigned long long)KINFER_ST_MAX_HEADER);
    if (hlen > st->len - 8)
        return fmt_err(err, "header length %llu exceeds the %zu bytes after the length prefix",
                       (unsigned long long)hlen, st->len - 8);
    if (hlen < 2 || st->base[8] != '{')
        return fmt_err(err, "header does not start with '{' (not a safetensors file?)");
    json_error_t jerr;
    json_t *root =
        json_loadb((const char *)st->base + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return fmt_err(err, "header is not valid JSON: %s (line %d, column %d)", jerr.text,
                       jerr.line, jerr.column);
    kinfer_err rc = KINFER_OK;
    if (!json_is_object(root)) {
        rc = fmt_err(err, "header is %s, expected a JSON object", json_type_name(root));
        goto out;
    }
    uint64_t data_start = 8 + hlen;
    uint64_t data_len = st->len - data_start;
    size_t n = json_object_size(root);
    st->tensors = calloc(n ? n : 1, sizeof(*st->tensors));
    if (!st->tensors) {
        rc = kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
        goto out;
    }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) {
            if ((rc = parse_metadata(st, val, err)) != KINFER_OK)
                goto out;
            continue;
        }
        kinfer_st_tensor *t = &st->tensors[st->ntensors];
        if ((rc = parse_tensor(key, val, data_len, t, err)) != KINFER_OK)
            goto out;
        t->name = strdup(key);
        if (!t->name) {
            rc = kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
            goto out;
        }
        st->ntensors++;
    }
    /* Tensors must tile the data section exactly, in offset order, as the
     * reference implementation requires: no overlap (two tensors aliasing
     * bytes), no gap, nothing after the last one. */
    qsort(st->tensors, st->ntensors, sizeof(*st->tensors), cmp_offset);
    uint64_t expect = 0;
    for (size_t i = 0; i < st->ntensors; i++) {
        kinfer_st_tensor *t = &st->tensors[i];
        if (t->offset < expect) {
            rc = fmt_err(err,
                         "tensor " NAME_FMT ": data at %llu overlaps tensor " NAME_FMT
                         " (which ends at %llu)",
                         t->name, (unsigned long long)t->offset, st->tensors[i - 1].name,
                         (unsigned long long)expect);
            goto out;
        }
        if (t->offset > expect) {
            rc = fmt_err(err, "tensor " NAME_FMT ": %llu-byte gap before its data at %llu", t->name,
                         (unsigned long long)(t->offset - expect), (unsigned long long)t->offset);
            goto out;
        }
        expect = t->offset + t->nbytes;
        t->data = t->nbytes ? st->base + data_start + t->offset : NULL;
        t->offset += data_start;
    }
    if (expect != data_len) {
        rc = fmt_err(err, "%llu bytes of data after the last tensor (data section is %llu bytes)",
                     (unsigned long long)(data_len - expect), (unsigned long long)data_len);
        goto out;
    }
    rc = build_name_index(st, err);
out:
    json_decref(root);
    return rc;
}

static kinfer_err finish_open(kinfer_safetensors *st, kinfer_safetensors **out, kinfer_error *err) {
    kinfer_err rc = parse(st, err);
    if (rc != KINFER_OK) {
        kinfer_error_prefix(err, "%s", st->label);
        kinfer_safetensors_close(st);
        return rc;
    }
    *out = st;
    return KINFER_OK;
}

kinfer_err kinfer_safetensors_open_memory(const void *data, size_t len, const char *label,
                                          kinfer_safetensors **out, kinfer_error *err) {
    *out = NULL;
    kinfer_safetensors *st = calloc(1, sizeof(*st));
    if (!st)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
    st->label = strdup(label ? label : "<memory>");
    if (!st->label) {
        free(st);
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
    }
    st->base = data;
    st->len = len;
    return finish_open(st, out, err);
}

kinfer_err kinfer_safetensors_open(const char *path, kinfer_safetensors **out, kinfer_error *err) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return kinfer_error_set(err, KINFER_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return kinfer_error_set(err, KINFER_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return kinfer_error_set(err, KINFER_ERR_IO, "%s: not a regular file", path);
    }
    if (sb.st_size < 8) {
        close(fd);
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD,
                                "%s: file is %lld bytes, shorter than the 8-byte header length "
                                "prefix",
                                path, (long long)sb.st_size);
    }
    size_t len = (size_t)sb.st_size;
    void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED)
        return kinfer_error_set(err, KINFER_ERR_IO, "%s: cannot mmap: %s", path, strerror(e));
    kinfer_safetensors *st = calloc(1, sizeof(*st));
    if (st)
        st->label = strdup(path);
    if (!st || !st->label) {
        free(st);
        munmap(map, len);
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "%s: out of memory", path);
    }
    st->map = map;
    st->base = map;
    st->len = len;
    return finish_open(st, out, err);
}

void kinfer_safetensors_close(kinfer_safetensors *st) {
    if (!st)
        return;
    for (size_t i = 0; i < st->ntensors; i++)
        free((char *)st->tensors[i].name);
    free(st->tensors);
    free(st->by_name);
    for (size_t i = 0; i < st->nmeta; i++) {
        free(st->meta_keys[i]);
        free(st->meta_values[i]);
    }
    free(st->meta_keys);
    free(st->meta_values);
    if (st->map)
        munmap(st->map, st->len);
    free(st->label);
    free(st);
}

const char *kinfer_safetensors_label(const kinfer_safetensors *st) {
    return st->label;
}

size_t kinfer_safetensors_count(const kinfer_safetensors *st) {
    return st->ntensors;
}

const kinfer_st_tensor *kinfer_safetensors_at(const kinfer_safetensors *st, size_t i) {
    return i < st->ntensors ? &st->tensors[i] : NULL;
}

const kinfer_st_tensor *kinfer_safetensors_find(const kinfer_safetensors *st, const char *name) {
    size_t lo = 0, hi = st->ntensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const kinfer_st_tensor *t = &st->tensors[st->by_name[mid]];
        int c = strcmp(t->name, name);
        if (c == 0)
            return t;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

size_t kinfer_safetensors_metadata_count(const kinfer_safetensors *st) {
    return st->nmeta;
}

void kinfer_safetensors_metadata_at(const kinfer_safetensors *st, size_t i, const char **key,
                                    const char **value) {
    *key = i < st->nmeta ? st->meta_keys[i] : NULL;
    *value = i < st->nmeta ? st->meta_values[i] : NULL;
}

const char *kinfer_safetensors_metadata(const kinfer_safetensors *st, const char *key) {
    for (size_t i = 0; i < st->nmeta; i++)
        if (strcmp(st->meta_keys[i], key) == 0)
            return st->meta_values[i];
    return NULL;
}
