/* gguf.c — opens and validates GGUF files (mmapped or in memory). Every
 * check of the format happens here, once, at open: after a successful open
 * every string and array lies inside the buffer, every tensor has a known
 * type, sane dims and aligned, non-overlapping bytes inside the data
 * section, so users never re-check. Does not interpret the metadata. */
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct kinfer_gguf {
    char *label;
    const uint8_t *base;
    size_t len;
    void *map; /* non-NULL when we mmapped base */
    uint32_t version, alignment;
    kinfer_gguf_kv *kvs;
    size_t nkv;
    size_t *kv_by_key; /* indices sorted by key */
    kinfer_gguf_tensor *tensors;
    size_t ntensors;
    size_t *t_by_name; /* indices sorted by name */
    uint64_t data_start;
};

/* --- type tables ------------------------------------------------------------ */

static const struct {
    const char *name;
    uint32_t block, bytes;
} k_types[KINFER_GGUF_TYPE_LIMIT] = {
    [KINFER_GGUF_F32] = {"F32", 1, 4},
    [KINFER_GGUF_F16] = {"F16", 1, 2},
    [KINFER_GGUF_Q4_0] = {"Q4_0", 32, 18},
    [KINFER_GGUF_Q4_1] = {"Q4_1", 32, 20},
    [KINFER_GGUF_Q5_0] = {"Q5_0", 32, 22},
    [KINFER_GGUF_Q5_1] = {"Q5_1", 32, 24},
    [KINFER_GGUF_Q8_0] = {"Q8_0", 32, 34},
    [KINFER_GGUF_Q8_1] = {"Q8_1", 32, 40},
    [KINFER_GGUF_Q2_K] = {"Q2_K", 256, 84},
    [KINFER_GGUF_Q3_K] = {"Q3_K", 256, 110},
    [KINFER_GGUF_Q4_K] = {"Q4_K", 256, 144},
    [KINFER_GGUF_Q5_K] = {"Q5_K", 256, 176},
    [KINFER_GGUF_Q6_K] = {"Q6_K", 256, 210},
    [KINFER_GGUF_Q8_K] = {"Q8_K", 256, 292},
    [KINFER_GGUF_IQ2_XXS] = {"IQ2_XXS", 256, 66},
    [KINFER_GGUF_IQ2_XS] = {"IQ2_XS", 256, 74},
    [KINFER_GGUF_IQ3_XXS] = {"IQ3_XXS", 256, 98},
    [KINFER_GGUF_IQ1_S] = {"IQ1_S", 256, 50},
    [KINFER_GGUF_IQ4_NL] = {"IQ4_NL", 32, 18},
    [KINFER_GGUF_IQ3_S] = {"IQ3_S", 256, 110},
    [KINFER_GGUF_IQ2_S] = {"IQ2_S", 256, 82},
    [KINFER_GGUF_IQ4_XS] = {"IQ4_XS", 256, 136},
    [KINFER_GGUF_I8] = {"I8", 1, 1},
    [KINFER_GGUF_I16] = {"I16", 1, 2},
    [KINFER_GGUF_I32] = {"I32", 1, 4},
    [KINFER_GGUF_I64] = {"I64", 1, 8},
    [KINFER_GGUF_F64] = {"F64", 1, 8},
    [KINFER_GGUF_IQ1_M] = {"IQ1_M", 256, 56},
    [KINFER_GGUF_BF16] = {"BF16", 1, 2},
    [KINFER_GGUF_TQ1_0] = {"TQ1_0", 256, 54},
    [KINFER_GGUF_TQ2_0] = {"TQ2_0", 256, 66},
    [KINFER_GGUF_MXFP4] = {"MXFP4", 32, 17},
    [KINFER_GGUF_NVFP4] = {"NVFP4", 64, 36},
    [KINFER_GGUF_Q1_0] = {"Q1_0", 128, 18},
};

const char *kinfer_gguf_type_name(uint32_t type) {
    return type < KINFER_GGUF_TYPE_LIMIT ? k_types[type].name : NULL;
}

uint32_t kinfer_gguf_type_block(uint32_t type) {
    return type < KINFER_GGUF_TYPE_LIMIT ? k_types[type].block : 0;
}

uint32_t kinfer_gguf_type_block_bytes(uint32_t type) {
    return type < KINFER_GGUF_TYPE_LIMIT ? k_types[type].bytes : 0;
}

static const char *const k_vtype_names[KINFER_GGUF_VTYPE_COUNT] = {
    "UINT8", "INT8",   "UINT16", "INT16",  "UINT32", "INT32",   "FLOAT32",
    "BOOL",  "STRING", "ARRAY",  "UINT64", "INT64",  "FLOAT64",
};

const char *kinfer_gguf_vtype_name(uint32_t vtype) {
    return vtype < KINFER_GGUF_VTYPE_COUNT ? k_vtype_names[vtype] : "?";
}

/* Bytes of one scalar of a fixed-size vtype; 0 for STRING/ARRAY/unknown. */
static size_t vtype_size(uint32_t t) {
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

static bool vtype_is_int(uint32_t t) {
    return t <= KINFER_GGUF_INT32 || t == KINFER_GGUF_UINT64 || t == KINFER_GGUF_INT64;
}

static bool vtype_is_signed(uint32_t t) {
    return t == KINFER_GGUF_INT8 || t == KINFER_GGUF_INT16 || t == KINFER_GGUF_INT32 ||
           t == KINFER_GGUF_INT64;
}

/* --- little-endian reads ---------------------------------------------------- */

static uint64_t rd_le(const uint8_t *p, size_t n) {
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;)
        v = (v << 8) | p[i];
    return v;
}

static double rd_f32(const uint8_t *p) {
    uint32_t u = (uint32_t)rd_le(p, 4);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static double rd_f64(const uint8_t *p) {
    uint64_t u = rd_le(p, 8);
    double d;
    memcpy(&d, &u, 8);
    return d;
}

/* Sign-extends an n-byte two's complement value. */
static int64_t rd_sle(const uint8_t *p, size_t n) {
    uint64_t u = rd_le(p, n);
    if (n < 8 && (u >> (8 * n - 1)) & 1)
        u |= ~(uint64_t)0 << (8 * n);
    return (int64_t)u;
}

int64_t kinfer_gguf_arr_int(const kinfer_gguf_kv *kv, uint64_t i) {
    size_t n = vtype_size(kv->elem_type);
    const uint8_t *p = kv->elems + i * n;
    if (vtype_is_signed(kv->elem_type))
        return rd_sle(p, n);
    if (kv->elem_type == KINFER_GGUF_BOOL)
        return p[0] != 0;
    return (int64_t)rd_le(p, n);
}

double kinfer_gguf_arr_float(const kinfer_gguf_kv *kv, uint64_t i) {
    if (kv->elem_type == KINFER_GGUF_FLOAT32)
        return rd_f32(kv->elems + i * 4);
    if (kv->elem_type == KINFER_GGUF_FLOAT64)
        return rd_f64(kv->elems + i * 8);
    if (kv->elem_type == KINFER_GGUF_UINT64)
        return (double)(uint64_t)kinfer_gguf_arr_int(kv, i);
    return (double)kinfer_gguf_arr_int(kv, i);
}

/* --- the parser ------------------------------------------------------------- */

typedef struct cursor {
    const uint8_t *p;
    size_t len, pos;
} cursor;

/* Messages quote names bounded so a hostile 64 kB key cannot swamp them. */
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

static size_t remain(const cursor *c) {
    return c->len - c->pos;
}

/* Reads n bytes (n <= 8) as a LE integer; `what` names it when truncated. */
static kinfer_err rd_uint(cursor *c, size_t n, uint64_t *out, const char *what, kinfer_error *err) {
    *out = 0;
    if (remain(c) < n)
        return fmt_err(err, "truncated at byte %zu reading %s (%zu bytes needed, %zu left)", c->pos,
                       what, n, remain(c));
    *out = rd_le(c->p + c->pos, n);
    c->pos += n;
    return KINFER_OK;
}

/* A GGUF string: u64 length + bytes. */
static kinfer_err rd_str(cursor *c, kinfer_str *out, const char *what, kinfer_error *err) {
    uint64_t n = 0;
    size_t at = c->pos;
    if (rd_uint(c, 8, &n, what, err) != KINFER_OK)
        return KINFER_ERR_MODEL_LOAD;
    if (n > remain(c))
        return fmt_err(err, "%s at byte %zu: length %llu exceeds the %zu bytes left", what, at,
                       (unsigned long long)n, remain(c));
    out->ptr = (const char *)c->p + c->pos;
    out->len = (size_t)n;
    c->pos += (size_t)n;
    return KINFER_OK;
}

/* Copies a name, refusing empty ones, NUL bytes and names over max bytes. */
static kinfer_err dup_name(kinfer_str s, size_t max, const char *what, char **out,
                           kinfer_error *err) {
    if (s.len == 0)
        return fmt_err(err, "%s is empty", what);
    if (s.len > max)
        return fmt_err(err, "%s '%.64s...' is %zu bytes, at most %zu allowed", what, s.ptr, s.len,
                       max);
    if (memchr(s.ptr, '\0', s.len))
        return fmt_err(err, "%s '%.*s' contains a NUL byte", what, (int)strnlen(s.ptr, s.len),
                       s.ptr);
    *out = malloc(s.len + 1);
    if (!*out)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
    memcpy(*out, s.ptr, s.len);
    (*out)[s.len] = '\0';
    return KINFER_OK;
}

static kinfer_err parse_value(cursor *c, kinfer_gguf_kv *kv, kinfer_error *err) {
    uint64_t t;
    if (rd_uint(c, 4, &t, "a value type", err) != KINFER_OK)
        return kinfer_error_prefix(err, "key " NAME_FMT, kv->key);
    if (t >= KINFER_GGUF_VTYPE_COUNT)
        return fmt_err(err, "key " NAME_FMT ": unknown value type %llu", kv->key,
                       (unsigned long long)t);
    kv->type = (kinfer_gguf_vtype)t;
    if (t == KINFER_GGUF_STRING) {
        if (rd_str(c, &kv->str, "string value", err) != KINFER_OK)
            return kinfer_error_prefix(err, "key " NAME_FMT, kv->key);
        return KINFER_OK;
    }
    if (t != KINFER_GGUF_ARRAY) {
        size_t n = vtype_size((uint32_t)t);
        uint64_t u;
        if (rd_uint(c, n, &u, "a value", err) != KINFER_OK)
            return kinfer_error_prefix(err, "key " NAME_FMT, kv->key);
        const uint8_t *p = c->p + c->pos - n;
        if (t == KINFER_GGUF_FLOAT32)
            kv->v.f = rd_f32(p);
        else if (t == KINFER_GGUF_FLOAT64)
            kv->v.f = rd_f64(p);
        else if (t == KINFER_GGUF_BOOL) {
            if (u > 1)
                return fmt_err(err, "key " NAME_FMT ": BOOL value is %llu, expected 0 or 1",
                               kv->key, (unsigned long long)u);
            kv->v.b = u != 0;
        } else if (vtype_is_signed((uint32_t)t))
            kv->v.i = rd_sle(p, n);
        else
            kv->v.u = u;
        return KINFER_OK;
    }
    uint64_t et, count;
    if (rd_uint(c, 4, &et, "an array element type", err) != KINFER_OK ||
        rd_uint(c, 8, &count, "an array length", err) != KINFER_OK)
        return kinfer_error_prefix(err, "key " NAME_FMT, kv->key);
    if (et == KINFER_GGUF_ARRAY)
        return fmt_err(err, "key " NAME_FMT ": nested arrays are not supported", kv->key);
    if (et >= KINFER_GGUF_VTYPE_COUNT)
        return fmt_err(err, "key " NAME_FMT ": unknown array element type %llu", kv->key,
                       (unsigned long long)et);
    kv->elem_type = (kinfer_gguf_vtype)et;
    kv->count = count;
    kv->elems = c->p + c->pos;
    if (et != KINFER_GGUF_STRING) {
        size_t n = vtype_size((uint32_t)et);
        if (count > remain(c) / n)
            return fmt_err(err,
                           "key " NAME_FMT ": array of %llu %s needs %llu bytes, %zu left in the "
                           "file",
                           kv->key, (unsigned long long)count, k_vtype_names[et],
                           (unsigned long long)count * n, remain(c));
        if (et == KINFER_GGUF_BOOL)
            for (uint64_t i = 0; i < count; i++)
                if (kv->elems[i] > 1)
                    return fmt_err(err, "key " NAME_FMT ": BOOL element %llu is %u", kv->key,
                                   (unsigned long long)i, kv->elems[i]);
        c->pos += (size_t)(count * n);
        return KINFER_OK;
    }
    /* Each string takes at least its 8-byte length: bounds the allocation. */
    if (count > remain(c) / 8)
        return fmt_err(err,
                       "key " NAME_FMT ": array of %llu strings cannot fit in the %zu bytes left",
                       kv->key, (unsigned long long)count, remain(c));
    kinfer_str *strs = malloc((count ? (size_t)count : 1) * sizeof(*strs));
    if (!strs)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
    kv->strs = strs;
    for (uint64_t i = 0; i < count; i++) {
        char what[48];
        snprintf(what, sizeof(what), "string element %llu", (unsigned long long)i);
        if (rd_str(c, &strs[i], what, err) != KINFER_OK)
            return kinfer_error_prefix(err, "key " NAME_FMT, kv->key);
    }
    return KINFER_OK;
}

/* Sorting by name without a qsort context: pairs of (name, index). */
typedef struct name_ref {
    const char *name;
    size_t index;
} name_ref;

static int cmp_name_ref(const void *a, const void *b) {
    return strcmp(((const name_ref *)a)->name, ((const name_ref *)b)->name);
}

/* Builds a sorted index over n names (stride bytes apart) and reports the
 * first duplicate in *dup (NULL when none). */
static kinfer_err build_index(const void *items, size_t n, size_t stride, size_t **out,
                              const char **dup, kinfer_error *err) {
    *dup = NULL;
    name_ref *refs = malloc((n ? n : 1) * sizeof(*refs));
    *out = malloc((n ? n : 1) * sizeof(size_t));
    if (!refs || !*out) {
        free(refs);
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++)
        refs[i] = (name_ref){*(const char *const *)((const char *)items + i * stride), i};
    qsort(refs, n, sizeof(*refs), cmp_name_ref);
    for (size_t i = 0; i < n; i++) {
        (*out)[i] = refs[i].index;
        if (i > 0 && !*dup && strcmp(refs[i - 1].name, refs[i].name) == 0)
            *dup = refs[i].name;
    }
    free(refs);
    return KINFER_OK;
}

static size_t index_find(const void *items, size_t stride, const size_t *by_name, size_t n,
                         const char *name) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *s = *(const char *const *)((const char *)items + by_name[mid] * stride);
        int c = strcmp(s, name);
        if (c == 0)
            return by_name[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return SIZE_MAX;
}

static kinfer_err parse_tensor_info(cursor *c, size_t i, kinfer_gguf_tensor *t, kinfer_error *err) {
    kinfer_str name;
    char what[48];
    snprintf(what, sizeof(what), "the name of tensor %zu", i);
    if (rd_str(c, &name, what, err) != KINFER_OK)
        return KINFER_ERR_MODEL_LOAD;
    snprintf(what, sizeof(what), "tensor %zu's name", i);
    kinfer_err rc = dup_name(name, KINFER_GGUF_MAX_NAME, what, (char **)&t->name, err);
    if (rc != KINFER_OK)
        return rc;
    uint64_t ndim, type, off;
    if (rd_uint(c, 4, &ndim, "the dimension count", err) != KINFER_OK)
        return kinfer_error_prefix(err, "tensor " NAME_FMT, t->name);
    if (ndim < 1 || ndim > KINFER_GGUF_MAX_DIMS)
        return fmt_err(err, "tensor " NAME_FMT ": %llu dimensions (1 to %d supported)", t->name,
                       (unsigned long long)ndim, KINFER_GGUF_MAX_DIMS);
    t->ndim = (uint32_t)ndim;
    uint64_t numel = 1;
    for (uint32_t d = 0; d < KINFER_GGUF_MAX_DIMS; d++) {
        t->ne[d] = 1;
        if (d >= t->ndim)
            continue;
        if (rd_uint(c, 8, &t->ne[d], "a dimension", err) != KINFER_OK)
            return kinfer_error_prefix(err, "tensor " NAME_FMT, t->name);
        /* ggml keeps dims as int64 and sizes as size_t: both must hold. */
        if (t->ne[d] > (uint64_t)INT64_MAX || (t->ne[d] && numel > (uint64_t)INT64_MAX / t->ne[d]))
            return fmt_err(err, "tensor " NAME_FMT ": dimensions overflow (ne[%u] = %llu)", t->name,
                           d, (unsigned long long)t->ne[d]);
        numel *= t->ne[d];
    }
    t->numel = numel;
    if (rd_uint(c, 4, &type, "the tensor type", err) != KINFER_OK ||
        rd_uint(c, 8, &off, "the data offset", err) != KINFER_OK)
        return kinfer_error_prefix(err, "tensor " NAME_FMT, t->name);
    if (type >= KINFER_GGUF_TYPE_LIMIT || !k_types[type].name)
        return fmt_err(err, "tensor " NAME_FMT ": unknown tensor type id %llu", t->name,
                       (unsigned long long)type);
    t->type = (uint32_t)type;
    uint32_t block = k_types[type].block;
    if (t->ne[0] % block != 0)
        return fmt_err(err,
                       "tensor " NAME_FMT ": row length %llu is not a multiple of the %s block "
                       "size %u",
                       t->name, (unsigned long long)t->ne[0], k_types[type].name, block);
    uint64_t blocks = numel / block; /* ne[0] % block == 0, so numel is a multiple */
    if (blocks > (uint64_t)SIZE_MAX / k_types[type].bytes)
        return fmt_err(err, "tensor " NAME_FMT ": byte size overflows", t->name);
    t->nbytes = (size_t)(blocks * k_types[type].bytes);
    t->offset = off; /* relative for now; made absolute once the data section is known */
    return KINFER_OK;
}

static int cmp_tensor_offset(const void *a, const void *b) {
    const kinfer_gguf_tensor *x = *(const kinfer_gguf_tensor *const *)a;
    const kinfer_gguf_tensor *y = *(const kinfer_gguf_tensor *const *)b;
    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

/* Tensors must lie inside the data section at aligned offsets and never
 * share bytes (two tensors aliasing memory would let a hostile file make
 * one weight's writes or reads another's). Gaps are allowed: ggml pads. */
static kinfer_err place_tensors(kinfer_gguf *g, kinfer_error *err) {
    uint64_t data_len = g->data_start <= g->len ? g->len - g->data_start : 0;
    kinfer_gguf_tensor **order = malloc((g->ntensors ? g->ntensors : 1) * sizeof(*order));
    if (!order)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
    kinfer_err rc = KINFER_OK;
    for (size_t i = 0; i < g->ntensors; i++) {
        kinfer_gguf_tensor *t = &g->tensors[i];
        order[i] = t;
        if (t->offset % g->alignment != 0) {
            rc = fmt_err(err,
                         "tensor " NAME_FMT ": data offset %llu is not a multiple of the "
                         "alignment %u",
                         t->name, (unsigned long long)t->offset, g->alignment);
            goto out;
        }
        if (t->offset > data_len || t->nbytes > data_len - t->offset) {
            rc = fmt_err(err,
                         "tensor " NAME_FMT ": %s data [%llu, +%zu) runs past the %llu-byte data "
                         "section (file truncated?)",
                         t->name, k_types[t->type].name, (unsigned long long)t->offset, t->nbytes,
                         (unsigned long long)data_len);
            goto out;
        }
    }
    qsort(order, g->ntensors, sizeof(*order), cmp_tensor_offset);
    for (size_t i = 1; i < g->ntensors; i++) {
        const kinfer_gguf_tensor *a = order[i - 1], *b = order[i];
        if (a->nbytes && b->nbytes && b->offset < a->offset + a->nbytes) {
            rc = fmt_err(
                err, "tensor " NAME_FMT ": data at %llu overlaps tensor " NAME_FMT " [%llu, +%zu)",
                b->name, (unsigned long long)b->offset, a->name, (unsigned long long)a->offset,
                a->nbytes);
            goto out;
        }
    }
    for (size_t i = 0; i < g->ntensors; i++) {
        kinfer_gguf_tensor *t = &g->tensors[i];
        t->offset += g->data_start;
        t->data = t->nbytes ? g->base + t->offset : NULL;
    }
out:
    free(order);
    return rc;
}

static kinfer_err parse(kinfer_gguf *g, kinfer_error *err) {
    cursor c = {g->base, g->len, 0};
    uint64_t version, ntensors, nkv;
    if (g->len < 4 || rd_le(g->base, 4) != KINFER_GGUF_MAGIC)
        return fmt_err(err, "not a GGUF file (no 'GGUF' magic at byte 0)");
    c.pos = 4;
    if (rd_uint(&c, 4, &version, "the version", err) != KINFER_OK)
        return KINFER_ERR_MODEL_LOAD;
    if (version == 1)
        return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                "GGUF version 1 is not supported (2 and 3 are): re-convert the "
                                "model");
    if (version > 0xFFFF && (version & 0xFFFF) == 0)
        return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                "big-endian GGUF files are not supported");
    if (version != 2 && version != 3)
        return fmt_err(err, "GGUF version %llu is not supported (2 and 3 are)",
                       (unsigned long long)version);
    g->version = (uint32_t)version;
    if (rd_uint(&c, 8, &ntensors, "the tensor count", err) != KINFER_OK ||
        rd_uint(&c, 8, &nkv, "the metadata count", err) != KINFER_OK)
        return KINFER_ERR_MODEL_LOAD;
    /* Bound counts by the bytes that could hold them (a KV is at least 13
     * bytes, a tensor info at least 25) before allocating anything. */
    if (nkv > remain(&c) / 13)
        return fmt_err(err, "metadata count %llu cannot fit in a %zu-byte file",
                       (unsigned long long)nkv, g->len);
    if (ntensors > remain(&c) / 25)
        return fmt_err(err, "tensor count %llu cannot fit in a %zu-byte file",
                       (unsigned long long)ntensors, g->len);
    g->kvs = calloc(nkv ? (size_t)nkv : 1, sizeof(*g->kvs));
    g->tensors = calloc(ntensors ? (size_t)ntensors : 1, sizeof(*g->tensors));
    if (!g->kvs || !g->tensors)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
    g->alignment = KINFER_GGUF_DEFAULT_ALIGNMENT;
    for (size_t i = 0; i < nkv; i++) {
        kinfer_gguf_kv *kv = &g->kvs[i];
        kinfer_str key;
        char what[48];
        snprintf(what, sizeof(what), "the key of metadata entry %zu", i);
        if (rd_str(&c, &key, what, err) != KINFER_OK)
            return KINFER_ERR_MODEL_LOAD;
        snprintf(what, sizeof(what), "metadata key %zu", i);
        kinfer_err rc = dup_name(key, KINFER_GGUF_MAX_KEY, what, (char **)&kv->key, err);
        g->nkv = i + 1; /* owns kv->key (and strs) from here for close */
        if (rc != KINFER_OK)
            return rc;
        if ((rc = parse_value(&c, kv, err)) != KINFER_OK)
            return rc;
        if (strcmp(kv->key, "general.alignment") == 0) {
            if (kv->type != KINFER_GGUF_UINT32)
                return fmt_err(err, "key 'general.alignment' is %s, expected UINT32",
                               k_vtype_names[kv->type]);
            if (kv->v.u == 0 || (kv->v.u & (kv->v.u - 1)) != 0)
                return fmt_err(err, "key 'general.alignment' is %llu, expected a power of two",
                               (unsigned long long)kv->v.u);
            g->alignment = (uint32_t)kv->v.u;
        }
    }
    const char *dup;
    if (build_index(g->kvs, g->nkv, sizeof(*g->kvs), &g->kv_by_key, &dup, err) != KINFER_OK)
        return KINFER_ERR_NOMEM;
    if (dup)
        return fmt_err(err, "metadata key " NAME_FMT " appears twice", dup);
    for (size_t i = 0; i < ntensors; i++) {
        g->ntensors = i + 1;
        kinfer_err rc = parse_tensor_info(&c, i, &g->tensors[i], err);
        if (rc != KINFER_OK)
            return rc;
    }
    if (build_index(g->tensors, g->ntensors, sizeof(*g->tensors), &g->t_by_name, &dup, err) !=
        KINFER_OK)
        return KINFER_ERR_NOMEM;
    if (dup)
        return fmt_err(err, "tensor " NAME_FMT " appears twice", dup);
    uint64_t a = g->alignment;
    g->data_start = ((uint64_t)c.pos + a - 1) / a * a;
    if (g->ntensors && g->data_start > g->len)
        return fmt_err(err, "data section would start at %llu, past the end of the %zu-byte file",
                       (unsigned long long)g->data_start, g->len);
    return place_tensors(g, err);
}

static kinfer_err finish_open(kinfer_gguf *g, kinfer_gguf **out, kinfer_error *err) {
    kinfer_err rc = parse(g, err);
    if (rc != KINFER_OK) {
        kinfer_error_prefix(err, "%s", g->label);
        kinfer_gguf_close(g);
        return rc;
    }
    *out = g;
    return KINFER_OK;
}

kinfer_err kinfer_gguf_open_memory(const void *data, size_t len, const char *label,
                                   kinfer_gguf **out, kinfer_error *err) {
    *out = NULL;
    kinfer_gguf *g = calloc(1, sizeof(*g));
    if (!g || !(g->label = strdup(label ? label : "<memory>"))) {
        free(g);
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
    }
    g->base = data;
    g->len = len;
    return finish_open(g, out, err);
}

kinfer_err kinfer_gguf_open(const char *path, kinfer_gguf **out, kinfer_error *err) {
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
    if (sb.st_size < 24) {
        close(fd);
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD,
                                "%s: file is %lld bytes, shorter than a GGUF header (24)", path,
                                (long long)sb.st_size);
    }
    size_t len = (size_t)sb.st_size;
    void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED)
        return kinfer_error_set(err, KINFER_ERR_IO, "%s: cannot mmap: %s", path, strerror(e));
    kinfer_gguf *g = calloc(1, sizeof(*g));
    if (!g || !(g->label = strdup(path))) {
        free(g);
        munmap(map, len);
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "%s: out of memory", path);
    }
    g->map = map;
    g->base = map;
    g->len = len;
    return finish_open(g, out, err);
}

void kinfer_gguf_close(kinfer_gguf *g) {
    if (!g)
        return;
    for (size_t i = 0; i < g->nkv; i++) {
        free((char *)g->kvs[i].key);
        free((kinfer_str *)g->kvs[i].strs);
    }
    for (size_t i = 0; i < g->ntensors; i++)
        free((char *)g->tensors[i].name);
    free(g->kvs);
    free(g->kv_by_key);
    free(g->tensors);
    free(g->t_by_name);
    if (g->map)
        munmap(g->map, g->len);
    free(g->label);
    free(g);
}

/* --- accessors -------------------------------------------------------------- */

const char *kinfer_gguf_label(const kinfer_gguf *g) {
    return g->label;
}

uint32_t kinfer_gguf_version(const kinfer_gguf *g) {
    return g->version;
}

uint32_t kinfer_gguf_alignment(const kinfer_gguf *g) {
    return g->alignment;
}

size_t kinfer_gguf_kv_count(const kinfer_gguf *g) {
    return g->nkv;
}

const kinfer_gguf_kv *kinfer_gguf_kv_at(const kinfer_gguf *g, size_t i) {
    return i < g->nkv ? &g->kvs[i] : NULL;
}

const kinfer_gguf_kv *kinfer_gguf_find(const kinfer_gguf *g, const char *key) {
    size_t i = index_find(g->kvs, sizeof(*g->kvs), g->kv_by_key, g->nkv, key);
    return i == SIZE_MAX ? NULL : &g->kvs[i];
}

size_t kinfer_gguf_tensor_count(const kinfer_gguf *g) {
    return g->ntensors;
}

const kinfer_gguf_tensor *kinfer_gguf_tensor_at(const kinfer_gguf *g, size_t i) {
    return i < g->ntensors ? &g->tensors[i] : NULL;
}

const kinfer_gguf_tensor *kinfer_gguf_tensor_find(const kinfer_gguf *g, const char *name) {
    size_t i = index_find(g->tensors, sizeof(*g->tensors), g->t_by_name, g->ntensors, name);
    return i == SIZE_MAX ? NULL : &g->tensors[i];
}

/* --- typed getters ---------------------------------------------------------- */

static kinfer_err lookup(const kinfer_gguf *g, const char *key, bool required,
                         const kinfer_gguf_kv **kv, kinfer_error *err) {
    *kv = kinfer_gguf_find(g, key);
    if (!*kv && required)
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD, "%s: metadata key '%s' is missing",
                                g->label, key);
    return KINFER_OK;
}

static kinfer_err wrong_type(const kinfer_gguf *g, const kinfer_gguf_kv *kv, const char *want,
                             kinfer_error *err) {
    return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD, "%s: metadata key '%s' is %s, expected %s",
                            g->label, kv->key, k_vtype_names[kv->type], want);
}

kinfer_err kinfer_gguf_get_u64(const kinfer_gguf *g, const char *key, bool required, uint64_t max,
                               uint64_t *out, kinfer_error *err) {
    const kinfer_gguf_kv *kv;
    if (lookup(g, key, required, &kv, err) != KINFER_OK)
        return KINFER_ERR_MODEL_LOAD;
    if (!kv)
        return KINFER_OK;
    if (!vtype_is_int(kv->type))
        return wrong_type(g, kv, "an integer", err);
    if (vtype_is_signed(kv->type) && kv->v.i < 0)
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD,
                                "%s: metadata key '%s' is %lld, expected at least 0", g->label, key,
                                (long long)kv->v.i);
    uint64_t v = vtype_is_signed(kv->type) ? (uint64_t)kv->v.i : kv->v.u;
    if (v > max)
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD,
                                "%s: metadata key '%s' is %llu, at most %llu allowed", g->label,
                                key, (unsigned long long)v, (unsigned long long)max);
    *out = v;
    return KINFER_OK;
}

kinfer_err kinfer_gguf_get_u32(const kinfer_gguf *g, const char *key, bool required, uint32_t *out,
                               kinfer_error *err) {
    uint64_t v = *out;
    kinfer_err rc = kinfer_gguf_get_u64(g, key, required, UINT32_MAX, &v, err);
    if (rc == KINFER_OK)
        *out = (uint32_t)v;
    return rc;
}

kinfer_err kinfer_gguf_get_f64(const kinfer_gguf *g, const char *key, bool required, double *out,
                               kinfer_error *err) {
    const kinfer_gguf_kv *kv;
    if (lookup(g, key, required, &kv, err) != KINFER_OK)
        return KINFER_ERR_MODEL_LOAD;
    if (!kv)
        return KINFER_OK;
    if (kv->type == KINFER_GGUF_FLOAT32 || kv->type == KINFER_GGUF_FLOAT64)
        *out = kv->v.f;
    else if (vtype_is_signed(kv->type))
        *out = (double)kv->v.i;
    else if (vtype_is_int(kv->type))
        *out = (double)kv->v.u;
    else
        return wrong_type(g, kv, "a number", err);
    return KINFER_OK;
}

kinfer_err kinfer_gguf_get_bool(const kinfer_gguf *g, const char *key, bool required, bool *out,
                                kinfer_error *err) {
    const kinfer_gguf_kv *kv;
    if (lookup(g, key, required, &kv, err) != KINFER_OK)
        return KINFER_ERR_MODEL_LOAD;
    if (!kv)
        return KINFER_OK;
    if (kv->type != KINFER_GGUF_BOOL)
        return wrong_type(g, kv, "BOOL", err);
    *out = kv->v.b;
    return KINFER_OK;
}

kinfer_err kinfer_gguf_get_str(const kinfer_gguf *g, const char *key, bool required,
                               kinfer_str *out, kinfer_error *err) {
    const kinfer_gguf_kv *kv;
    if (lookup(g, key, required, &kv, err) != KINFER_OK)
        return KINFER_ERR_MODEL_LOAD;
    if (!kv)
        return KINFER_OK;
    if (kv->type != KINFER_GGUF_STRING)
        return wrong_type(g, kv, "STRING", err);
    *out = kv->str;
    return KINFER_OK;
}

kinfer_err kinfer_gguf_get_array(const kinfer_gguf *g, const char *key, bool required,
                                 kinfer_gguf_vtype elem, const kinfer_gguf_kv **out,
                                 kinfer_error *err) {
    *out = NULL;
    const kinfer_gguf_kv *kv;
    if (lookup(g, key, required, &kv, err) != KINFER_OK)
        return KINFER_ERR_MODEL_LOAD;
    if (!kv)
        return KINFER_OK;
    bool ok = kv->type == KINFER_GGUF_ARRAY &&
              (elem == KINFER_GGUF_INT64 ? vtype_is_int(kv->elem_type) : kv->elem_type == elem);
    if (!ok) {
        char want[48];
        snprintf(want, sizeof(want), "an array of %s",
                 elem == KINFER_GGUF_INT64 ? "integers" : k_vtype_names[elem]);
        if (kv->type == KINFER_GGUF_ARRAY)
            return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD,
                                    "%s: metadata key '%s' is an array of %s, expected %s",
                                    g->label, key, k_vtype_names[kv->elem_type], want);
        return wrong_type(g, kv, want, err);
    }
    *out = kv;
    return KINFER_OK;
}
