/* codec_decode_tensor.c — decodes and validates array<Tensor> (request inputs,
 * response outputs) into the decoder's reused storage. Data bytes and
 * strings stay views into the message. */
#include "codec_decoder.h"

#include <stdio.h>
#include <stdlib.h>

/* Grows an array to hold at least need elements (doubling). */
static bool grow(void **arr, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap)
        return true;
    size_t n = *cap ? *cap : 8;
    while (n < need)
        n *= 2;
    void *p = realloc(*arr, n * elem);
    if (!p)
        return false;
    *arr = p;
    *cap = n;
    return true;
}

/* tensors and str_start grow together (same capacity). */
static bool grow_tensors(kinfer_codec_decoder *dec, size_t need) {
    if (need <= dec->tensors_cap)
        return true;
    size_t cap = dec->tensors_cap, scap = dec->tensors_cap;
    if (!grow((void **)&dec->str_start, &scap, need, sizeof(size_t)))
        return false;
    if (!grow((void **)&dec->tensors, &cap, need, sizeof(kinfer_tensor)))
        return false;
    dec->tensors_cap = cap;
    return true;
}

static kinfer_err oom(codec_reader *r) {
    return kinfer_error_set(r->err, KINFER_ERR_NOMEM, "codec decoder: out of memory");
}

/* shape: array<long>. Dims past what we may store are still read. */
static kinfer_err decode_shape(kinfer_codec_decoder *dec, codec_reader *r, const char *field,
                               size_t idx, kinfer_tensor *t, bool *shape_ok) {
    size_t ndim = 0, count;
    *shape_ok = true;
    for (;;) {
        kinfer_err rc = codec_read_block(r, "shape", 1, &count);
        if (rc != KINFER_OK)
            return codec_error_path(r->err, rc, "%s[%zu].", field, idx);
        if (count == 0)
            break;
        for (size_t k = 0; k < count; k++, ndim++) {
            int64_t d;
            /* Empty leaf name: the path carries the index, e.g. "x.shape[2]: ..." */
            if ((rc = codec_read_long(r, "", &d)) != KINFER_OK)
                return codec_error_path(r->err, rc, "%s[%zu].shape[%zu]", field, idx, ndim);
            if (ndim < KINFER_MAX_DIMS)
                t->shape[ndim] = d;
            if (d < 0) {
                *shape_ok = false;
                codec_soft(dec, KINFER_ERR_INVALID_REQUEST,
                           "%s[%zu].shape[%zu]: negative dimension %lld", field, idx, ndim,
                           (long long)d);
            }
        }
    }
    if (ndim > dec->limits.max_dims) {
        *shape_ok = false;
        codec_soft(dec, KINFER_ERR_TOO_LARGE, "%s[%zu].shape: %zu dimensions, at most %u allowed",
                   field, idx, ndim, dec->limits.max_dims);
        ndim = dec->limits.max_dims;
    }
    t->ndim = (int)ndim;
    return KINFER_OK;
}

/* strings: array<string>; stored (up to max_strings in the message) when
 * store is set, else only checked. */
static kinfer_err decode_strings(kinfer_codec_decoder *dec, codec_reader *r, const char *field,
                                 size_t idx, kinfer_tensor *t, bool store) {
    size_t count, n = 0;
    for (;;) {
        kinfer_err rc = codec_read_block(r, "strings", 1, &count);
        if (rc != KINFER_OK)
            return codec_error_path(r->err, rc, "%s[%zu].", field, idx);
        if (count == 0)
            break;
        if (store) {
            size_t want = dec->nstrings + count;
            if (want > dec->limits.max_strings)
                want = dec->limits.max_strings;
            if (!grow((void **)&dec->strings, &dec->strings_cap, want, sizeof(kinfer_str)))
                return oom(r);
        }
        for (size_t k = 0; k < count; k++, n++) {
            kinfer_str s;
            if ((rc = codec_read_bytes(r, "", &s)) != KINFER_OK)
                return codec_error_path(r->err, rc, "%s[%zu].strings[%zu]", field, idx, n);
            codec_check_text(dec, s, dec->limits.max_string_bytes, "%s[%zu].strings[%zu]", field,
                             idx, n);
            if (!store)
                continue;
            if (dec->nstrings >= dec->limits.max_strings) {
                codec_soft(dec, KINFER_ERR_TOO_LARGE,
                           "%s[%zu].strings[%zu]: more than %u strings in the message", field, idx,
                           n, dec->limits.max_strings);
                store = false;
                continue;
            }
            dec->strings[dec->nstrings++] = s;
        }
    }
    t->nstrings = n;
    return KINFER_OK;
}

/* Checks a parsed tensor: element count, then data/strings against the
 * dtype and shape. The common case formats nothing; on a mismatch
 * kinfer_tensor_check supplies the exact wording. */
static void validate_tensor(kinfer_codec_decoder *dec, const char *field, size_t idx,
                            kinfer_tensor *t) {
    if (dec->has_soft)
        return;
    uint64_t numel;
    kinfer_error e;
    if (kinfer_shape_numel(t->shape, t->ndim, dec->limits.max_numel, &numel, &e) != KINFER_OK) {
        char shp[160];
        kinfer_shape_format(t->shape, t->ndim, shp, sizeof(shp));
        codec_soft(dec, KINFER_ERR_TOO_LARGE, "%s[%zu].shape: %s has more than %llu elements",
                   field, idx, shp, (unsigned long long)dec->limits.max_numel);
        return;
    }
    if (t->dtype == KINFER_DTYPE_STRING) {
        if (t->nbytes) {
            codec_soft(dec, KINFER_ERR_INVALID_REQUEST,
                       "%s[%zu].data: STRING tensors carry strings, not data (got %zu bytes)",
                       field, idx, t->nbytes);
            return;
        }
        if (t->nstrings == numel)
            return;
    } else {
        if (t->nstrings) {
            codec_soft(dec, KINFER_ERR_INVALID_REQUEST,
                       "%s[%zu].strings: %s tensors carry data, not strings (got %zu)", field, idx,
                       kinfer_dtype_name(t->dtype), t->nstrings);
            return;
        }
        /* numel <= max_numel (<= 2^63 / 8 in practice), so no overflow */
        if (t->nbytes == numel * kinfer_dtype_size(t->dtype))
            return;
    }
    if (kinfer_tensor_check(t, dec->limits.max_numel, &e) != KINFER_OK)
        codec_soft(dec, e.code, "%s[%zu]: %s", field, idx, e.msg);
}

kinfer_err codec_decode_tensors(kinfer_codec_decoder *dec, codec_reader *r, const char *field) {
    size_t count, i = 0;
    kinfer_tensor scratch;
    /* A Tensor takes at least 5 wire bytes (name, dtype, shape, data and
     * strings each at least one), which bounds the count by the message. */
    for (;;) {
        kinfer_err rc = codec_read_block(r, field, 5, &count);
        if (rc != KINFER_OK)
            return rc;
        if (count == 0)
            break;
        size_t want = dec->ntensors + count;
        if (want > dec->limits.max_tensors)
            want = dec->limits.max_tensors;
        if (!grow_tensors(dec, want))
            return oom(r);
        for (size_t k = 0; k < count; k++, i++) {
            bool store = i < dec->limits.max_tensors;
            if (!store && i == dec->limits.max_tensors)
                codec_soft(dec, KINFER_ERR_TOO_LARGE, "%s: more than %u tensors", field,
                           dec->limits.max_tensors);
            kinfer_tensor *t = store ? &dec->tensors[i] : &scratch;
            if ((rc = codec_read_bytes(r, "name", &t->name)) != KINFER_OK)
                return codec_error_path(r->err, rc, "%s[%zu].", field, i);
            codec_check_text(dec, t->name, dec->limits.max_name_bytes, "%s[%zu].name", field, i);
            int64_t dt;
            if ((rc = codec_read_index(r, "dtype", "enum", KINFER_DTYPE_COUNT, &dt)) != KINFER_OK)
                return codec_error_path(r->err, rc, "%s[%zu].", field, i);
            t->dtype = (kinfer_dtype)dt;
            bool shape_ok;
            if ((rc = decode_shape(dec, r, field, i, t, &shape_ok)) != KINFER_OK)
                return rc;
            kinfer_str data;
            if ((rc = codec_read_bytes(r, "data", &data)) != KINFER_OK)
                return codec_error_path(r->err, rc, "%s[%zu].", field, i);
            t->data = data.ptr;
            t->nbytes = data.len;
            t->strings = NULL; /* set by codec_fixup_strings */
            if (store)
                dec->str_start[i] = dec->nstrings;
            if ((rc = decode_strings(dec, r, field, i, t, store)) != KINFER_OK)
                return rc;
            if (shape_ok)
                validate_tensor(dec, field, i, t);
            if (store)
                dec->ntensors = i + 1;
        }
    }
    return KINFER_OK;
}

void codec_fixup_strings(kinfer_codec_decoder *dec) {
    for (size_t i = 0; i < dec->ntensors; i++) {
        kinfer_tensor *t = &dec->tensors[i];
        size_t start = dec->str_start[i];
        /* Strings past max_strings were not stored: clamp the view. */
        size_t avail = dec->nstrings - start;
        if (t->nstrings > avail)
            t->nstrings = avail;
        t->strings = t->nstrings ? dec->strings + start : NULL;
    }
}
