/* kinfer_route.h — where a reply or a dead letter goes, its key, and the
 * headers it carries (DESIGN.md §2). Pure functions over strings and
 * librdkafka header lists; no handle, no I/O, so every rule is unit-tested.
 * Not the producer: worker_reply.c and worker_dlq.c build records from
 * what this decides, worker_produce.c sends them. */
#ifndef KINFER_WORKER_ROUTE_H
#define KINFER_WORKER_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "kinfer/kinfer_error.h"
#include "kinfer/kinfer_tensor.h"

/* Kafka's own limit on topic names. */
#define KINFER_WORKER_TOPIC_MAX 249

#define KINFER_HDR_REPLY_TO "kinfer-reply-to"
#define KINFER_HDR_CORRELATION_ID "kinfer-correlation-id"
#define KINFER_HDR_ERROR "kinfer-error"
#define KINFER_HDR_SOURCE_TOPIC "kinfer-source-topic"
#define KINFER_HDR_SOURCE_PARTITION "kinfer-source-partition"
#define KINFER_HDR_SOURCE_OFFSET "kinfer-source-offset"
/* On a request record: it cancels the generation with its id (value "1"). */
#define KINFER_HDR_CANCEL "kinfer-cancel"

/* True when name is a legal Kafka topic: 1..249 of [A-Za-z0-9._-], not "."
 * or "..". On false *why (if non-NULL) says what is wrong. */
bool kinfer_worker_topic_valid(const char *name, size_t len, const char **why);

/* Expands every "{topic}" in pattern with topic into out (NUL-terminated).
 * KINFER_ERR_INVALID_REQUEST when the result is not a legal topic name
 * (too long, bad characters) or the pattern is empty. */
kinfer_err kinfer_worker_pattern_expand(const char *pattern, const char *topic, char *out,
                                        size_t outlen, kinfer_error *err);

/* Where the reply for one request goes. reply_to is the request's field
 * (ptr NULL = null), header the value of its last kinfer-reply-to header
 * (ptr NULL = none). Precedence: the field, else the header, else the
 * pattern with {topic} = request_topic. An empty field or header counts as
 * absent; a non-empty one that is not a legal topic name is an error, not
 * a fall-through (the client asked for somewhere we cannot send).
 * KINFER_ERR_INVALID_REQUEST means "no usable reply address": dead letter. */
kinfer_err kinfer_worker_reply_topic(kinfer_str reply_to, kinfer_str header,
                                     const char *request_topic, const char *pattern, char *out,
                                     size_t outlen, kinfer_error *err);

/* The reply key: the request's key when it has one (non-empty), else id. */
kinfer_str kinfer_worker_reply_key(const void *request_key, size_t request_key_len, kinfer_str id);

/* Last value of header name in hdrs as a kinfer_str ({NULL,0} when absent or
 * hdrs is NULL; a header with a NULL value gives {"",0}). */
kinfer_str kinfer_worker_header_last(const rd_kafka_headers_t *hdrs, const char *name);

/* Headers for a reply: every request header whose name is in copy (all
 * occurrences, in order), then kinfer-correlation-id = id. *out is new and
 * owned by the caller (producev takes it over on success). */
kinfer_err kinfer_worker_reply_headers(const rd_kafka_headers_t *request_hdrs,
                                       const char *const *copy, size_t ncopy, kinfer_str id,
                                       rd_kafka_headers_t **out, kinfer_error *err);

/* Headers for a dead letter: the original headers, minus any kinfer-error /
 * kinfer-source-* already there (a re-processed dead letter must not carry
 * two answers), plus kinfer-error = reason (made valid UTF-8 by
 * kinfer_codec_utf8_repair when it is not: it may quote request bytes) and
 * the source coordinates as decimal text. *out is new and owned by the
 * caller. */
kinfer_err kinfer_worker_dlq_headers(const rd_kafka_headers_t *request_hdrs, const char *reason,
                                     const char *topic, int32_t partition, int64_t offset,
                                     rd_kafka_headers_t **out, kinfer_error *err);

/* A dead letter larger than the producer may send keeps its key and
 * headers and loses its value: rewrites kinfer-error in hdrs to
 * "<reason>; value of <dropped_len> bytes dropped: too large to forward". */
kinfer_err kinfer_worker_dlq_value_dropped(rd_kafka_headers_t *hdrs, size_t dropped_len,
                                           kinfer_error *err);

#endif
