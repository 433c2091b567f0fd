/* worker_reply_build.c — the reply the worker builds, without Kafka: the
 * verdict on a decoded request, responses from errors and engine results,
 * and their encoding under the repair rule, so that no record the worker
 * produces is invalid against its schema whatever the request held.
 * Not the produce (worker_reply.c) nor the routing (worker_route.c). */
#include "worker_reply_build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool kinfer_worker_id_echoable(kinfer_str id, char *why, size_t why_len) {
    size_t bad;
    if (id.len == 0) {
        snprintf(why, why_len, "it is empty");
        return false;
    }
    if (id.len > KINFER_WORKER_ID_MAX) {
        snprintf(why, why_len, "%zu bytes, at most %d allowed", id.len, KINFER_WORKER_ID_MAX);
        return false;
    }
    if (!kinfer_codec_utf8_valid(id.ptr, id.len, &bad)) {
        snprintf(why, why_len, "invalid UTF-8 at byte %zu", bad);
        return false;
    }
    return true;
}

kinfer_worker_verdict kinfer_worker_verdict_of(kinfer_err rc, const kinfer_codec_request *req,
                                               const kinfer_error *err, char *why, size_t why_len) {
    if (rc != KINFER_OK && rc != KINFER_ERR_INVALID_REQUEST && rc != KINFER_ERR_TOO_LARGE) {
        snprintf(why, why_len, "undecodable request: %s", err->msg);
        return KINFER_WORKER_VERDICT_DEAD_LETTER;
    }
    char idwhy[96];
    if (!kinfer_worker_id_echoable(req->id, idwhy, sizeof idwhy)) {
        /* The decode error (when there is one) is usually about the id
         * too; it is kept in case it is not. */
        snprintf(why, why_len, "request id cannot be echoed in a reply: %s%s%s", idwhy,
                 rc != KINFER_OK ? "; " : "", rc != KINFER_OK ? err->msg : "");
        return KINFER_WORKER_VERDICT_DEAD_LETTER;
    }
    return rc == KINFER_OK ? KINFER_WORKER_VERDICT_SUBMIT : KINFER_WORKER_VERDICT_ERROR_REPLY;
}

int64_t kinfer_worker_deadline_us(const kinfer_codec_request *req) {
    if (!req->has_deadline)
        return 0;
    if (req->deadline_ms <= 0)
        return 1; /* long gone: the engine answers DEADLINE_EXCEEDED */
    if (req->deadline_ms > INT64_MAX / 1000)
        return INT64_MAX;
    return req->deadline_ms * 1000;
}

static kinfer_str cstr(const char *s) {
    kinfer_str out = {s ? s : "", s ? strlen(s) : 0};
    return out;
}

void kinfer_worker_reply_build_error(kinfer_codec_response *resp, const kinfer_worker_echo *echo,
                                     kinfer_err status, const char *error) {
    memset(resp, 0, sizeof *resp);
    resp->id = echo->id;
    resp->model = echo->model;
    resp->has_model_version = echo->has_model_version;
    resp->model_version = echo->model_version;
    resp->status = kinfer_err_to_wire_status(status);
    resp->has_error = true;
    resp->error = cstr(error ? error : kinfer_err2str(status));
    resp->timing.device = cstr("");
}

void kinfer_worker_reply_build_result(kinfer_codec_response *resp, const kinfer_worker_echo *echo,
                                      const kinfer_engine_result *result) {
    memset(resp, 0, sizeof *resp);
    resp->id = echo->id;
    resp->model = echo->model;
    if (result->model_version) {
        resp->has_model_version = true;
        resp->model_version = cstr(result->model_version);
    } else {
        resp->has_model_version = echo->has_model_version;
        resp->model_version = echo->model_version;
    }
    resp->status = kinfer_err_to_wire_status(result->status);
    if (result->status != KINFER_OK) {
        resp->has_error = true;
        resp->error = cstr(result->error ? result->error : kinfer_err2str(result->status));
    } else {
        resp->outputs = result->outputs;
        resp->noutputs = result->noutputs;
    }
    resp->timing.queue_us = result->queue_us;
    resp->timing.compute_us = result->compute_us;
    resp->timing.batch_size = (int32_t)result->batch_size;
    resp->timing.device = cstr(result->device);
}

/* ---- the repair rule ---------------------------------------------------- */

/* Per-field limits: the codec's defaults, which every kinfer reader of the
 * reply topic (kinfer send, kinfer bench) decodes replies with. */
typedef struct reply_limits {
    size_t name, error, string;
} reply_limits;

static reply_limits limits_get(void) {
    kinfer_codec_limits d;
    kinfer_codec_limits_default(&d);
    reply_limits l = {d.max_name_bytes, d.max_error_bytes, d.max_string_bytes};
    return l;
}

static bool text_ok(kinfer_str s, size_t limit) {
    return s.len <= limit && kinfer_codec_utf8_valid(s.ptr, s.len, NULL);
}

/* Whether any string of resp (id aside) breaks the rule. */
static bool needs_repair(const kinfer_codec_response *resp, const reply_limits *l) {
    if (!text_ok(resp->model, l->name) ||
        (resp->has_model_version && !text_ok(resp->model_version, l->name)) ||
        (resp->has_error && !text_ok(resp->error, l->error)) ||
        !text_ok(resp->timing.worker, l->name) || !text_ok(resp->timing.device, l->name) ||
        !text_ok(resp->source.topic, l->name))
        return true;
    for (size_t i = 0; i < resp->noutputs; i++) {
        const kinfer_tensor *t = &resp->outputs[i];
        if (!text_ok(t->name, l->name))
            return true;
        for (size_t k = 0; t->strings && k < t->nstrings; k++)
            if (!text_ok(t->strings[k], l->string))
                return true;
    }
    return false;
}

/* Bytes a repaired copy of s may need (U+FFFD is 3 bytes for each bad one). */
static size_t repair_bound(kinfer_str s, size_t limit) {
    return s.len > limit / 3 ? limit : 3 * s.len;
}

typedef struct repair_arena {
    char *chars;
    size_t used, cap;
} repair_arena;

static kinfer_str fix(repair_arena *a, kinfer_str s, size_t limit) {
    if (kinfer_codec_utf8_valid(s.ptr, s.len, NULL)) {
        s.len = kinfer_codec_utf8_prefix(s.ptr, s.len, limit);
        return s; /* still a view: nothing to copy */
    }
    size_t room = a->cap - a->used;
    char *o = a->chars + a->used;
    size_t n = kinfer_codec_utf8_repair(s.ptr, s.len, o, room < limit ? room : limit);
    a->used += n;
    kinfer_str out = {o, n};
    return out;
}

/* A copy of resp that follows the rule, in one malloc'd block (*block, the
 * caller frees it) holding the repaired text and output arrays. */
static kinfer_err repaired(const kinfer_codec_response *resp, const reply_limits *l,
                           kinfer_codec_response *out, void **block, kinfer_error *err) {
    size_t chars =
        repair_bound(resp->model, l->name) + repair_bound(resp->model_version, l->name) +
        repair_bound(resp->error, l->error) + repair_bound(resp->timing.worker, l->name) +
        repair_bound(resp->timing.device, l->name) + repair_bound(resp->source.topic, l->name);
    size_t nstrings = 0;
    for (size_t i = 0; i < resp->noutputs; i++) {
        const kinfer_tensor *t = &resp->outputs[i];
        chars += repair_bound(t->name, l->name);
        for (size_t k = 0; t->strings && k < t->nstrings; k++)
            chars += repair_bound(t->strings[k], l->string);
        nstrings += t->strings ? t->nstrings : 0;
    }
    size_t tbytes = resp->noutputs * sizeof(kinfer_tensor);
    size_t sbytes = nstrings * sizeof(kinfer_str);
    char *p = malloc(tbytes + sbytes + chars + 1);
    if (!p)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "reply: out of memory repairing its text");
    *block = p;
    kinfer_tensor *ts = (kinfer_tensor *)p;
    kinfer_str *strs = (kinfer_str *)(p + tbytes);
    repair_arena a = {p + tbytes + sbytes, 0, chars};

    *out = *resp;
    out->model = fix(&a, resp->model, l->name);
    if (resp->has_model_version)
        out->model_version = fix(&a, resp->model_version, l->name);
    if (resp->has_error)
        out->error = fix(&a, resp->error, l->error);
    out->timing.worker = fix(&a, resp->timing.worker, l->name);
    out->timing.device = fix(&a, resp->timing.device, l->name);
    out->source.topic = fix(&a, resp->source.topic, l->name);
    for (size_t i = 0; i < resp->noutputs; i++) {
        ts[i] = resp->outputs[i];
        ts[i].name = fix(&a, ts[i].name, l->name);
        if (!ts[i].strings)
            continue;
        for (size_t k = 0; k < ts[i].nstrings; k++)
            strs[k] = fix(&a, ts[i].strings[k], l->string);
        ts[i].strings = strs;
        strs += ts[i].nstrings;
    }
    out->outputs = resp->noutputs ? ts : NULL;
    return KINFER_OK;
}

static kinfer_err encode_repaired(kinfer_codec_encoder *enc, const kinfer_codec_response *resp,
                                  const kinfer_codec_frame *frame, const uint8_t **out,
                                  size_t *out_len, kinfer_error *err) {
    reply_limits l = limits_get();
    if (!needs_repair(resp, &l))
        return kinfer_codec_response_encode(enc, resp, frame, out, out_len, err);
    kinfer_codec_response fixed;
    void *block = NULL;
    kinfer_err rc = repaired(resp, &l, &fixed, &block, err);
    if (rc == KINFER_OK)
        rc = kinfer_codec_response_encode(enc, &fixed, frame, out, out_len, err);
    free(block); /* the encoder copied everything into its buffer */
    return rc;
}

kinfer_err kinfer_worker_reply_encode(kinfer_codec_encoder *enc, const kinfer_codec_response *resp,
                                      const kinfer_codec_frame *frame, const uint8_t **out,
                                      size_t *out_len, int *wire_status, kinfer_error *err) {
    *wire_status = resp->status;
    kinfer_err rc = encode_repaired(enc, resp, frame, out, out_len, err);
    if (rc != KINFER_ERR_INVALID_ARG)
        return rc;
    /* Something the schema cannot carry (an inconsistent output tensor):
     * answer INTERNAL_ERROR rather than leave the request hanging. */
    char why[KINFER_ERROR_MSG_MAX + 40];
    snprintf(why, sizeof why, "reply could not be encoded: %s", err->msg);
    kinfer_codec_response fallback = *resp;
    fallback.status = kinfer_err_to_wire_status(KINFER_ERR_INTERNAL);
    fallback.has_error = true;
    fallback.error = cstr(why);
    fallback.outputs = NULL;
    fallback.noutputs = 0;
    fallback.has_generation = false; /* the engine's text is what failed, possibly */
    fallback.has_chunk = false;
    *wire_status = fallback.status;
    kinfer_error ferr;
    rc = encode_repaired(enc, &fallback, frame, out, out_len, &ferr);
    if (rc != KINFER_OK)
        *err = ferr; /* else *err keeps why the reply fell back */
    return rc;
}
