/* codec_avro_read.c — the bounds-checked Avro binary primitives: varints,
 * lengths, enum/union indexes and array blocks. Each error names the field
 * and the byte offset; callers prepend the path (e.g. "inputs[0]."). */
#include "codec_avro.h"

#include <stdio.h>

kinfer_err codec_error_path(kinfer_error *err, kinfer_err code, const char *fmt, ...) {
    if (!err)
        return code;
    char prefix[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    if (n < 0)
        return err->code;
    size_t plen = strlen(prefix);
    size_t olen = strnlen(err->msg, sizeof(err->msg) - 1);
    if (plen > sizeof(err->msg) - 1)
        plen = sizeof(err->msg) - 1;
    if (olen > sizeof(err->msg) - 1 - plen)
        olen = sizeof(err->msg) - 1 - plen;
    memmove(err->msg + plen, err->msg, olen);
    memcpy(err->msg, prefix, plen);
    err->msg[plen + olen] = '\0';
    return err->code;
}

kinfer_err codec_read_long_slow(codec_reader *r, const char *field, int64_t *out) {
    size_t start = codec_reader_offset(r);
    uint64_t v = 0;
    for (int i = 0; i < 10; i++) {
        if (r->p >= r->end)
            return kinfer_error_set(r->err, KINFER_ERR_DECODE,
                                    "%s: truncated varint at byte %zu (%d of at most 10 bytes "
                                    "present)",
                                    field, start, i);
        uint8_t b = *r->p++;
        /* The 10th byte carries bit 63 only: a continuation bit means more
         * than 10 bytes, any other bit overflows 64 bits. */
        if (i == 9 && (b & 0x80))
            return kinfer_error_set(r->err, KINFER_ERR_DECODE,
                                    "%s: varint at byte %zu is longer than 10 bytes", field, start);
        if (i == 9 && b > 1)
            return kinfer_error_set(r->err, KINFER_ERR_DECODE,
                                    "%s: varint at byte %zu overflows 64 bits", field, start);
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *out = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
            return KINFER_OK;
        }
    }
    return kinfer_error_set(r->err, KINFER_ERR_DECODE,
                            "%s: varint at byte %zu is malformed", /* not reached */
                            field, start);
}

kinfer_err codec_read_int(codec_reader *r, const char *field, int32_t *out) {
    size_t start = codec_reader_offset(r);
    int64_t v;
    kinfer_err rc = codec_read_long(r, field, &v);
    if (rc != KINFER_OK)
        return rc;
    if (v < INT32_MIN || v > INT32_MAX)
        return kinfer_error_set(r->err, KINFER_ERR_DECODE,
                                "%s: int at byte %zu out of 32-bit range (%lld)", field, start,
                                (long long)v);
    *out = (int32_t)v;
    return KINFER_OK;
}

kinfer_err codec_read_len(codec_reader *r, const char *field, size_t *out) {
    size_t start = codec_reader_offset(r);
    int64_t v;
    kinfer_err rc = codec_read_long(r, field, &v);
    if (rc != KINFER_OK)
        return rc;
    if (v < 0)
        return kinfer_error_set(r->err, KINFER_ERR_DECODE, "%s: negative length %lld at byte %zu",
                                field, (long long)v, start);
    size_t left = codec_reader_left(r);
    if ((uint64_t)v > left)
        return kinfer_error_set(r->err, KINFER_ERR_DECODE,
                                "%s: truncated at byte %zu: declared %lld bytes, %zu remain", field,
                                start, (long long)v, left);
    *out = (size_t)v;
    return KINFER_OK;
}

kinfer_err codec_read_index(codec_reader *r, const char *field, const char *what, int64_t n,
                            int64_t *out) {
    size_t start = codec_reader_offset(r);
    int64_t v;
    kinfer_err rc = codec_read_long(r, field, &v);
    if (rc != KINFER_OK)
        return rc;
    if (v < 0 || v >= n)
        return kinfer_error_set(r->err, KINFER_ERR_DECODE,
                                "%s: bad %s index %lld at byte %zu (valid 0..%lld)", field, what,
                                (long long)v, start, (long long)(n - 1));
    *out = v;
    return KINFER_OK;
}

/* Whether count items of at least min bytes each cannot fit in avail bytes.
 * A multiply with an overflow check: a division here showed in profiles. */
static inline bool codec_items_exceed(uint64_t count, size_t min, size_t avail) {
    uint64_t need;
    return __builtin_mul_overflow(count, (uint64_t)min, &need) || need > avail;
}

kinfer_err codec_read_block(codec_reader *r, const char *field, size_t min_item_bytes,
                            size_t *count) {
    size_t start = codec_reader_offset(r);
    int64_t v;
    kinfer_err rc = codec_read_long(r, field, &v);
    if (rc != KINFER_OK)
        return rc;
    if (v < 0) {
        /* A negative count is followed by the block's size in bytes (which
         * lets readers skip it); we check it like any other length. */
        if (v == INT64_MIN)
            return kinfer_error_set(r->err, KINFER_ERR_DECODE,
                                    "%s: block count at byte %zu out of range", field, start);
        v = -v;
        size_t bsize;
        rc = codec_read_len(r, field, &bsize);
        if (rc != KINFER_OK)
            return codec_error_path(r->err, rc, "%s", "block size of ");
        if (codec_items_exceed((uint64_t)v, min_item_bytes, bsize))
            return kinfer_error_set(r->err, KINFER_ERR_DECODE,
                                    "%s: block at byte %zu declares %lld items in %zu bytes", field,
                                    start, (long long)v, bsize);
    }
    size_t left = codec_reader_left(r);
    if (codec_items_exceed((uint64_t)v, min_item_bytes, left))
        return kinfer_error_set(r->err, KINFER_ERR_DECODE,
                                "%s: truncated at byte %zu: block declares %lld items, %zu bytes "
                                "remain",
                                field, start, (long long)v, left);
    *count = (size_t)v;
    return KINFER_OK;
}
