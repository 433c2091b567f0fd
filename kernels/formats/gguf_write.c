/* gguf_write.c — builds GGUF files for tests, fuzz seeds and tools (tiny
 * llama models, hostile variants). Writes what llama.cpp's gguf writer
 * does: version 3, metadata in the order added, tensor infos, data padded
 * to the alignment. Not used on the serving path. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"

typedef struct wbuf {
    uint8_t *p;
    size_t len, cap;
} wbuf;

typedef struct wtensor {
    char *name;
    uint32_t type, ndim;
    uint64_t ne[KINFER_GGUF_MAX_DIMS];
    uint8_t *data;
    size_t nbytes;
} wtensor;

struct kinfer_gguf_writer {
    wbuf kv; /* serialised metadata entries */
    uint64_t nkv;
    wtensor *tensors;
    size_t ntensors, cap;
    bool failed; /* an earlier append ran out of memory */
};

static bool wb_put(wbuf *b, const void *src, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p)
            return false;
        b->p = p;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, src, n);
    b->len += n;
    return true;
}

static bool wb_le(wbuf *b, uint64_t v, size_t n) {
    uint8_t tmp[8];
    for (size_t i = 0; i < n; i++)
        tmp[i] = (uint8_t)(v >> (8 * i));
    return wb_put(b, tmp, n);
}

static bool wb_str(wbuf *b, const char *s, size_t len) {
    return wb_le(b, len, 8) && wb_put(b, s, len);
}

static kinfer_err oom(kinfer_gguf_writer *w, kinfer_error *err) {
    w->failed = true;
    return kinfer_error_set(err, KINFER_ERR_NOMEM, "gguf write: out of memory");
}

kinfer_err kinfer_gguf_writer_new(kinfer_gguf_writer **out, kinfer_error *err) {
    *out = calloc(1, sizeof(**out));
    return *out ? KINFER_OK : kinfer_error_set(err, KINFER_ERR_NOMEM, "gguf write: out of memory");
}

void kinfer_gguf_writer_destroy(kinfer_gguf_writer *w) {
    if (!w)
        return;
    for (size_t i = 0; i < w->ntensors; i++) {
        free(w->tensors[i].name);
        free(w->tensors[i].data);
    }
    free(w->tensors);
    free(w->kv.p);
    free(w);
}

static size_t scalar_size(kinfer_gguf_vtype t) {
    switch (t) {
    case KINFER_GGUF_UINT8:
    case KINFER_GGUF_INT8:
    case KINFER_GGUF_BOOL:
        return 1;
    case KINFER_GGUF_UINT16:
    case KINFER_GGUF_INT16:
        return 2;
    case KINFER_GGUF_UINT32:
    case KINFER_GGUF_INT32:
    case KINFER_GGUF_FLOAT32:
        return 4;
    case KINFER_GGUF_UINT64:
    case KINFER_GGUF_INT64:
    case KINFER_GGUF_FLOAT64:
        return 8;
    default:
        return 0;
    }
}

static kinfer_err kv_head(kinfer_gguf_writer *w, const char *key, kinfer_gguf_vtype type,
                          kinfer_error *err) {
    if (!wb_str(&w->kv, key, strlen(key)) || !wb_le(&w->kv, (uint64_t)type, 4))
        return oom(w, err);
    w->nkv++;
    return KINFER_OK;
}

kinfer_err kinfer_gguf_writer_uint(kinfer_gguf_writer *w, const char *key, kinfer_gguf_vtype type,
                                   uint64_t v, kinfer_error *err) {
    size_t n = scalar_size(type);
    if (n == 0 || type == KINFER_GGUF_FLOAT32 || type == KINFER_GGUF_FLOAT64)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "gguf write: %s: not an integer type",
                                key);
    if (kv_head(w, key, type, err) != KINFER_OK || !wb_le(&w->kv, v, n))
        return oom(w, err);
    return KINFER_OK;
}

kinfer_err kinfer_gguf_writer_int(kinfer_gguf_writer *w, const char *key, kinfer_gguf_vtype type,
                                  int64_t v, kinfer_error *err) {
    return kinfer_gguf_writer_uint(w, key, type, (uint64_t)v, err);
}

kinfer_err kinfer_gguf_writer_float(kinfer_gguf_writer *w, const char *key, kinfer_gguf_vtype type,
                                    double v, kinfer_error *err) {
    uint64_t bits;
    if (type == KINFER_GGUF_FLOAT32) {
        float f = (float)v;
        uint32_t u;
        memcpy(&u, &f, 4);
        bits = u;
    } else if (type == KINFER_GGUF_FLOAT64) {
        memcpy(&bits, &v, 8);
    } else {
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "gguf write: %s: not a float type",
                                key);
    }
    if (kv_head(w, key, type, err) != KINFER_OK || !wb_le(&w->kv, bits, scalar_size(type)))
        return oom(w, err);
    return KINFER_OK;
}

kinfer_err kinfer_gguf_writer_bool(kinfer_gguf_writer *w, const char *key, bool v,
                                   kinfer_error *err) {
    if (kv_head(w, key, KINFER_GGUF_BOOL, err) != KINFER_OK || !wb_le(&w->kv, v ? 1 : 0, 1))
        return oom(w, err);
    return KINFER_OK;
}

kinfer_err kinfer_gguf_writer_str(kinfer_gguf_writer *w, const char *key, const char *s, size_t len,
                                  kinfer_error *err) {
    if (kv_head(w, key, KINFER_GGUF_STRING, err) != KINFER_OK || !wb_str(&w->kv, s, len))
        return oom(w, err);
    return KINFER_OK;
}

kinfer_err kinfer_gguf_writer_array(kinfer_gguf_writer *w, const char *key, kinfer_gguf_vtype elem,
                                    const void *data, uint64_t count, kinfer_error *err) {
    size_t n = scalar_size(elem);
    if (n == 0)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "gguf write: %s: use the string array writer", key);
    if (kv_head(w, key, KINFER_GGUF_ARRAY, err) != KINFER_OK || !wb_le(&w->kv, elem, 4) ||
        !wb_le(&w->kv, count, 8) || !wb_put(&w->kv, data, (size_t)count * n))
        return oom(w, err);
    return KINFER_OK;
}

kinfer_err kinfer_gguf_writer_str_array(kinfer_gguf_writer *w, const char *key,
                                        const kinfer_str *strs, uint64_t count, kinfer_error *err) {
    if (kv_head(w, key, KINFER_GGUF_ARRAY, err) != KINFER_OK ||
        !wb_le(&w->kv, KINFER_GGUF_STRING, 4) || !wb_le(&w->kv, count, 8))
        return oom(w, err);
    for (uint64_t i = 0; i < count; i++)
        if (!wb_str(&w->kv, strs[i].ptr, strs[i].len))
            return oom(w, err);
    return KINFER_OK;
}

kinfer_err kinfer_gguf_writer_tensor(kinfer_gguf_writer *w, const char *name, uint32_t type,
                                     uint32_t ndim, const uint64_t *ne, const void *data,
                                     kinfer_error *err) {
    uint32_t block = kinfer_gguf_type_block(type);
    if (block == 0 || ndim < 1 || ndim > KINFER_GGUF_MAX_DIMS || ne[0] % block != 0)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "gguf write: tensor %s: bad type, ndim or row length", name);
    if (w->ntensors == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 16;
        wtensor *t = realloc(w->tensors, cap * sizeof(*t));
        if (!t)
            return oom(w, err);
        w->tensors = t;
        w->cap = cap;
    }
    wtensor *t = &w->tensors[w->ntensors];
    memset(t, 0, sizeof(*t));
    uint64_t numel = 1;
    for (uint32_t d = 0; d < KINFER_GGUF_MAX_DIMS; d++) {
        t->ne[d] = d < ndim ? ne[d] : 1;
        numel *= t->ne[d];
    }
    t->type = type;
    t->ndim = ndim;
    t->nbytes = (size_t)(numel / block * kinfer_gguf_type_block_bytes(type));
    t->name = strdup(name);
    t->data = malloc(t->nbytes ? t->nbytes : 1);
    if (!t->name || !t->data) {
        free(t->name);
        free(t->data);
        return oom(w, err);
    }
    if (t->nbytes)
        memcpy(t->data, data, t->nbytes);
    w->ntensors++;
    return KINFER_OK;
}

static uint64_t align_up(uint64_t v, uint64_t a) {
    return (v + a - 1) / a * a;
}

kinfer_err kinfer_gguf_writer_image(const kinfer_gguf_writer *w, uint32_t alignment, uint8_t **out,
                                    size_t *len, kinfer_error *err) {
    *out = NULL;
    *len = 0;
    if (w->failed)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "gguf write: an earlier append failed");
    if (alignment == 0 || (alignment & (alignment - 1)) != 0)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "gguf write: alignment %u is not a power of two", alignment);
    wbuf b = {0};
    bool ok = wb_le(&b, KINFER_GGUF_MAGIC, 4) && wb_le(&b, 3, 4) && wb_le(&b, w->ntensors, 8) &&
              wb_le(&b, w->nkv + (alignment != KINFER_GGUF_DEFAULT_ALIGNMENT), 8) &&
              wb_put(&b, w->kv.p, w->kv.len);
    if (ok && alignment != KINFER_GGUF_DEFAULT_ALIGNMENT)
        ok = wb_str(&b, "general.alignment", 17) && wb_le(&b, KINFER_GGUF_UINT32, 4) &&
             wb_le(&b, alignment, 4);
    uint64_t off = 0;
    for (size_t i = 0; ok && i < w->ntensors; i++) {
        const wtensor *t = &w->tensors[i];
        ok = wb_str(&b, t->name, strlen(t->name)) && wb_le(&b, t->ndim, 4);
        for (uint32_t d = 0; ok && d < t->ndim; d++)
            ok = wb_le(&b, t->ne[d], 8);
        ok = ok && wb_le(&b, t->type, 4) && wb_le(&b, off, 8);
        off = align_up(off + t->nbytes, alignment);
    }
    static const uint8_t zeros[64];
    while (ok && b.len % alignment != 0)
        ok = wb_put(&b, zeros,
                    (alignment - b.len % alignment) < sizeof(zeros) ? alignment - b.len % alignment
                                                                    : sizeof(zeros));
    for (size_t i = 0; ok && i < w->ntensors; i++) {
        ok = wb_put(&b, w->tensors[i].data, w->tensors[i].nbytes);
        while (ok && i + 1 < w->ntensors && b.len % alignment != 0)
            ok = wb_put(&b, zeros,
                        (alignment - b.len % alignment) < sizeof(zeros)
                            ? alignment - b.len % alignment
                            : sizeof(zeros));
    }
    if (!ok) {
        free(b.p);
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "gguf write: out of memory");
    }
    *out = b.p;
    *len = b.len;
    return KINFER_OK;
}

kinfer_err kinfer_gguf_writer_save(const kinfer_gguf_writer *w, const char *path,
                                   kinfer_error *err) {
    uint8_t *img;
    size_t len;
    kinfer_err rc = kinfer_gguf_writer_image(w, KINFER_GGUF_DEFAULT_ALIGNMENT, &img, &len, err);
    if (rc != KINFER_OK)
        return rc;
    FILE *f = fopen(path, "wb");
    if (!f) {
        free(img);
        return kinfer_error_set(err, KINFER_ERR_IO, "%s: cannot create", path);
    }
    bool ok = fwrite(img, 1, len, f) == len;
    ok = (fclose(f) == 0) && ok;
    free(img);
    return ok ? KINFER_OK : kinfer_error_set(err, KINFER_ERR_IO, "%s: write failed", path);
}
