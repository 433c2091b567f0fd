/* worker_route.c — reply/DLQ topic choice, reply key, reply and dead-letter
 * headers (see worker_route.h). No Kafka I/O: only header lists are built. */
#include "kinfer/kinfer_route.h"
#include "kinfer/kinfer_codec.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

bool kinfer_worker_topic_valid(const char *name, size_t len, const char **why) {
    const char *dummy;
    if (!why)
        why = &dummy;
    if (len == 0) {
        *why = "empty topic name";
        return false;
    }
    if (len > KINFER_WORKER_TOPIC_MAX) {
        *why = "topic name longer than 249 characters";
        return false;
    }
    if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.')) {
        *why = "topic name '.' or '..'";
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-')) {
            *why = "topic name has a character outside [A-Za-z0-9._-]";
            return false;
        }
    }
    return true;
}

kinfer_err kinfer_worker_pattern_expand(const char *pattern, const char *topic, char *out,
                                        size_t outlen, kinfer_error *err) {
    static const char key[] = "{topic}";
    size_t n = 0, tlen = strlen(topic);
    const char *p = pattern ? pattern : "";
    bool overflow = false;
    while (*p) {
        if (!strncmp(p, key, sizeof key - 1)) {
            if (n + tlen >= outlen)
                overflow = true;
            else
                memcpy(out + n, topic, tlen);
            n += tlen;
            p += sizeof key - 1;
        } else {
            if (n + 1 >= outlen)
                overflow = true;
            else
                out[n] = *p;
            n++;
            p++;
        }
        if (overflow)
            break;
    }
    if (outlen)
        out[overflow ? 0 : n] = '\0';
    if (overflow)
        return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST,
                                "topic pattern '%s' with topic '%s' is too long", pattern, topic);
    const char *why;
    if (!kinfer_worker_topic_valid(out, n, &why))
        return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST,
                                "topic pattern '%s' with topic '%s' gives no valid topic: %s",
                                pattern ? pattern : "", topic, why);
    return KINFER_OK;
}

static kinfer_err route_explicit(kinfer_str name, const char *what, char *out, size_t outlen,
                                 kinfer_error *err) {
    const char *why;
    if (!kinfer_worker_topic_valid(name.ptr, name.len, &why))
        return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST, "%s '%.*s' is unusable: %s", what,
                                (int)(name.len > 300 ? 300 : name.len), name.ptr, why);
    if (name.len >= outlen)
        return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST, "%s is too long", what);
    memcpy(out, name.ptr, name.len);
    out[name.len] = '\0';
    return KINFER_OK;
}

kinfer_err kinfer_worker_reply_topic(kinfer_str reply_to, kinfer_str header,
                                     const char *request_topic, const char *pattern, char *out,
                                     size_t outlen, kinfer_error *err) {
    if (reply_to.ptr && reply_to.len)
        return route_explicit(reply_to, "reply_to", out, outlen, err);
    if (header.ptr && header.len)
        return route_explicit(header, "header " KINFER_HDR_REPLY_TO, out, outlen, err);
    if (!pattern || !*pattern)
        return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST,
                                "no reply address: no reply_to field, no " KINFER_HDR_REPLY_TO
                                " header and no default reply topic pattern");
    return kinfer_worker_pattern_expand(pattern, request_topic, out, outlen, err);
}

kinfer_str kinfer_worker_reply_key(const void *request_key, size_t request_key_len, kinfer_str id) {
    if (request_key && request_key_len) {
        kinfer_str k = {(const char *)request_key, request_key_len};
        return k;
    }
    return id;
}

kinfer_str kinfer_worker_header_last(const rd_kafka_headers_t *hdrs, const char *name) {
    kinfer_str s = {NULL, 0};
    const void *val;
    size_t len;
    if (hdrs && rd_kafka_header_get_last(hdrs, name, &val, &len) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        s.ptr = val ? (const char *)val : "";
        s.len = val ? len : 0;
    }
    return s;
}

static kinfer_err header_add(rd_kafka_headers_t *hdrs, const char *name, const void *val,
                             ssize_t len, kinfer_error *err) {
    if (rd_kafka_header_add(hdrs, name, -1, val, len) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return kinfer_error_set(err, KINFER_ERR_INTERNAL, "cannot add header %s", name);
    return KINFER_OK;
}

kinfer_err kinfer_worker_reply_headers(const rd_kafka_headers_t *request_hdrs,
                                       const char *const *copy, size_t ncopy, kinfer_str id,
                                       rd_kafka_headers_t **out, kinfer_error *err) {
    size_t nreq = request_hdrs ? rd_kafka_header_cnt(request_hdrs) : 0;
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(1 + (ncopy ? nreq : 0));
    kinfer_err rc = KINFER_OK;
    /* Walk the request's headers once, in order, keeping the listed names:
     * repeated headers (several traceparent-like values) stay repeated. */
    for (size_t i = 0; ncopy && i < nreq && rc == KINFER_OK; i++) {
        const char *name;
        const void *val;
        size_t len;
        if (rd_kafka_header_get_all(request_hdrs, i, &name, &val, &len))
            break;
        for (size_t c = 0; c < ncopy; c++)
            if (!strcmp(copy[c], name)) {
                rc = header_add(hdrs, name, val, val ? (ssize_t)len : 0, err);
                break;
            }
    }
    if (rc == KINFER_OK)
        rc = header_add(hdrs, KINFER_HDR_CORRELATION_ID, id.ptr, (ssize_t)id.len, err);
    if (rc != KINFER_OK) {
        rd_kafka_headers_destroy(hdrs);
        return rc;
    }
    *out = hdrs;
    return KINFER_OK;
}

kinfer_err kinfer_worker_dlq_headers(const rd_kafka_headers_t *request_hdrs, const char *reason,
                                     const char *topic, int32_t partition, int64_t offset,
                                     rd_kafka_headers_t **out, kinfer_error *err) {
    rd_kafka_headers_t *hdrs =
        request_hdrs ? rd_kafka_headers_copy(request_hdrs) : rd_kafka_headers_new(4);
    static const char *const ours[] = {KINFER_HDR_ERROR, KINFER_HDR_SOURCE_TOPIC,
                                       KINFER_HDR_SOURCE_PARTITION, KINFER_HDR_SOURCE_OFFSET};
    for (size_t i = 0; i < sizeof ours / sizeof ours[0]; i++)
        rd_kafka_header_remove(hdrs, ours[i]); /* NOENT when absent: fine */
    char part[16], off[24];
    snprintf(part, sizeof part, "%" PRId32, partition);
    snprintf(off, sizeof off, "%" PRId64, offset);
    /* The reason may quote request bytes (an unusable reply_to, say): our
     * own header is text, so it follows the replies' repair rule, while
     * the request's headers above keep their bytes. */
    char fixed[3 * 1024];
    size_t rlen = strlen(reason);
    if (!kinfer_codec_utf8_valid(reason, rlen, NULL) || rlen > sizeof fixed) {
        rlen = kinfer_codec_utf8_repair(reason, rlen, fixed, sizeof fixed);
        reason = fixed;
    }
    kinfer_err rc = header_add(hdrs, KINFER_HDR_ERROR, reason, (ssize_t)rlen, err);
    if (rc == KINFER_OK)
        rc = header_add(hdrs, KINFER_HDR_SOURCE_TOPIC, topic, -1, err);
    if (rc == KINFER_OK)
        rc = header_add(hdrs, KINFER_HDR_SOURCE_PARTITION, part, -1, err);
    if (rc == KINFER_OK)
        rc = header_add(hdrs, KINFER_HDR_SOURCE_OFFSET, off, -1, err);
    if (rc != KINFER_OK) {
        rd_kafka_headers_destroy(hdrs);
        return rc;
    }
    *out = hdrs;
    return KINFER_OK;
}

kinfer_err kinfer_worker_dlq_value_dropped(rd_kafka_headers_t *hdrs, size_t dropped_len,
                                           kinfer_error *err) {
    kinfer_str reason = kinfer_worker_header_last(hdrs, KINFER_HDR_ERROR);
    char why[KINFER_ERROR_MSG_MAX + 96];
    snprintf(why, sizeof why, "%.*s%svalue of %zu bytes dropped: too large to forward",
             (int)(reason.len > KINFER_ERROR_MSG_MAX ? KINFER_ERROR_MSG_MAX : reason.len),
             reason.ptr ? reason.ptr : "", reason.len ? "; " : "", dropped_len);
    rd_kafka_header_remove(hdrs, KINFER_HDR_ERROR); /* NOENT when absent: fine */
    return header_add(hdrs, KINFER_HDR_ERROR, why, -1, err);
}
