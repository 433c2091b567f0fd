/* codec_avro.h — module-local: the bounds-checked Avro binary reader and the
 * growable writer that the kinfer codec is built on. Not public API.
 *
 * Why our own: avro-c 1.11 allocates whatever length a bytes/string field
 * declares (2 GiB from a 7-byte message) and leaks it on failure. Here every
 * length and count is checked against the bytes remaining BEFORE it is used,
 * and varints are checked for overflow, so hostile input costs nothing. */
#ifndef KINFER_CODEC_AVRO_H
#define KINFER_CODEC_AVRO_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kinfer/kinfer_error.h"
#include "kinfer/kinfer_tensor.h"

/* ---- reader --------------------------------------------------------------- */

typedef struct codec_reader {
    const uint8_t *base; /* start of the Avro body, for byte offsets in errors */
    const uint8_t *p;
    const uint8_t *end;
    kinfer_error *err;
} codec_reader;

static inline size_t codec_reader_left(const codec_reader *r) {
    return (size_t)(r->end - r->p);
}

static inline size_t codec_reader_offset(const codec_reader *r) {
    return (size_t)(r->p - r->base);
}

/* Prepends raw text (no separator) to err->msg, e.g. "inputs[0]" before
 * ".data: ...". Returns err->code (or code when err is NULL). */
kinfer_err codec_error_path(kinfer_error *err, kinfer_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Slow path of codec_read_long: multi-byte varints and every error. */
kinfer_err codec_read_long_slow(codec_reader *r, const char *field, int64_t *out);

/* Avro long: zigzag varint, at most 10 bytes, no bits beyond 64. */
static inline kinfer_err codec_read_long(codec_reader *r, const char *field, int64_t *out) {
    if (r->p < r->end && !(r->p[0] & 0x80)) {
        uint64_t v = r->p[0];
        r->p++;
        *out = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
        return KINFER_OK;
    }
    return codec_read_long_slow(r, field, out);
}

/* Avro int: a long that must fit 32 bits. */
kinfer_err codec_read_int(codec_reader *r, const char *field, int32_t *out);

/* A length (of bytes or string): non-negative and <= bytes remaining. */
kinfer_err codec_read_len(codec_reader *r, const char *field, size_t *out);

/* bytes / string as a view into the buffer (ptr NULL when empty). */
static inline kinfer_err codec_read_bytes(codec_reader *r, const char *field, kinfer_str *out) {
    size_t n;
    kinfer_err rc = codec_read_len(r, field, &n);
    if (rc != KINFER_OK)
        return rc;
    out->ptr = n ? (const char *)r->p : NULL;
    out->len = n;
    r->p += n;
    return KINFER_OK;
}

/* An enum or union index in [0, n). */
kinfer_err codec_read_index(codec_reader *r, const char *field, const char *what, int64_t n,
                            int64_t *out);

/* A ["null", T] union's branch: *present is whether T follows. */
static inline kinfer_err codec_read_optional(codec_reader *r, const char *field, bool *present) {
    int64_t branch = 0;
    kinfer_err rc = codec_read_index(r, field, "union branch", 2, &branch);
    *present = branch == 1;
    return rc;
}

/* A ["null", "string"] union. */
static inline kinfer_err codec_read_opt_string(codec_reader *r, const char *field, bool *has,
                                               kinfer_str *s) {
    kinfer_err rc = codec_read_optional(r, field, has);
    if (rc == KINFER_OK && *has)
        rc = codec_read_bytes(r, field, s);
    return rc;
}

/* One array/map block header: returns the item count (0 = end). Negative
 * counts (followed by a block byte size) are handled. The count is checked
 * against the bytes remaining given that each item takes at least
 * min_item_bytes on the wire, so a loop over it is bounded by the message. */
kinfer_err codec_read_block(codec_reader *r, const char *field, size_t min_item_bytes,
                            size_t *count);

/* ---- writer --------------------------------------------------------------- */

typedef struct codec_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
    bool oom; /* a grow failed; everything after it is dropped */
} codec_buf;

bool codec_buf_grow(codec_buf *b, size_t need);
void codec_buf_free(codec_buf *b);

static inline bool codec_buf_reserve(codec_buf *b, size_t n) {
    if (b->cap - b->len >= n)
        return true;
    return codec_buf_grow(b, n);
}

static inline void codec_write_raw(codec_buf *b, const void *src, size_t n) {
    if (n == 0 || !codec_buf_reserve(b, n))
        return;
    memcpy(b->data + b->len, src, n);
    b->len += n;
}

static inline void codec_write_long(codec_buf *b, int64_t v) {
    if (!codec_buf_reserve(b, 10))
        return;
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    uint8_t *o = b->data + b->len;
    while (z >= 0x80) {
        *o++ = (uint8_t)(z | 0x80);
        z >>= 7;
    }
    *o++ = (uint8_t)z;
    b->len = (size_t)(o - b->data);
}

static inline void codec_write_bytes(codec_buf *b, const void *src, size_t n) {
    codec_write_long(b, (int64_t)n);
    codec_write_raw(b, src, n);
}

static inline void codec_write_str(codec_buf *b, kinfer_str s) {
    codec_write_bytes(b, s.ptr, s.len);
}

/* ---- shared helpers ------------------------------------------------------- */

/* True when s is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF);
 * else *bad is the offset of the first invalid byte. */
bool codec_utf8_valid(const char *s, size_t len, size_t *bad);

#endif
