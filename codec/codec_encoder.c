/* codec_encoder.c — encodes InferenceResponse (the worker's replies) and
 * InferenceRequest (`kinfer send` / `kinfer bench`) into one reused, growable
 * buffer, with the chosen framing. Inputs are checked, not trusted: a tensor
 * whose shape and data disagree, or a string that is not valid UTF-8 (which
 * every Avro reader would throw on), is refused rather than put on the
 * wire. Repairing text is the caller's choice (kinfer_codec_utf8_repair). */
#include "codec_avro.h"
#include "codec_encode_gen.h"
#include "kinfer/kinfer_codec.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

struct kinfer_codec_encoder {
    codec_buf buf;
};

kinfer_err kinfer_codec_encoder_new(kinfer_codec_encoder **out, kinfer_error *err) {
    *out = calloc(1, sizeof(**out));
    if (!*out)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "codec encoder: out of memory");
    return KINFER_OK;
}

void kinfer_codec_encoder_destroy(kinfer_codec_encoder *enc) {
    if (!enc)
        return;
    codec_buf_free(&enc->buf);
    free(enc);
}

static kinfer_err write_frame(codec_buf *b, const kinfer_codec_frame *frame,
                              kinfer_codec_schema schema, kinfer_error *err) {
    if (!frame || frame->framing == KINFER_CODEC_FRAMING_BARE)
        return KINFER_OK;
    uint8_t h[10];
    if (frame->framing == KINFER_CODEC_FRAMING_SINGLE_OBJECT) {
        uint64_t fp = kinfer_codec_schema_fingerprint(schema);
        h[0] = 0xC3;
        h[1] = 0x01;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (uint8_t)(fp >> (8 * i)); /* little-endian */
        codec_write_raw(b, h, 10);
        return KINFER_OK;
    }
    if (frame->framing == KINFER_CODEC_FRAMING_CONFLUENT) {
        h[0] = 0x00;
        for (int i = 0; i < 4; i++)
            h[1 + i] = (uint8_t)(frame->schema_id >> (24 - 8 * i)); /* big-endian */
        codec_write_raw(b, h, 5);
        return KINFER_OK;
    }
    return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "framing: unknown framing %d",
                            (int)frame->framing);
}

/* Writes an Avro string after checking it is valid UTF-8; the field path
 * (a printf format) is only formatted when it is not. */
static kinfer_err write_text(codec_buf *b, kinfer_str s, kinfer_error *err, const char *path_fmt,
                             ...) __attribute__((format(printf, 4, 5)));
static kinfer_err write_text(codec_buf *b, kinfer_str s, kinfer_error *err, const char *path_fmt,
                             ...) {
    size_t bad;
    if (!codec_utf8_valid(s.ptr, s.len, &bad)) {
        char path[96];
        va_list ap;
        va_start(ap, path_fmt);
        vsnprintf(path, sizeof path, path_fmt, ap);
        va_end(ap);
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "%s: invalid UTF-8 at byte %zu (Avro strings are UTF-8)", path,
                                bad);
    }
    codec_write_str(b, s);
    return KINFER_OK;
}

static kinfer_err write_opt_text(codec_buf *b, bool has, kinfer_str s, const char *field,
                                 kinfer_error *err) {
    codec_write_long(b, has ? 1 : 0);
    return has ? write_text(b, s, err, "%s", field) : KINFER_OK;
}

static kinfer_err write_tensors(codec_buf *b, const kinfer_tensor *ts, size_t n, const char *field,
                                kinfer_error *err) {
    if (n && !ts)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "%s: %zu tensors but NULL array",
                                field, n);
    if (n)
        codec_write_long(b, (int64_t)n);
    for (size_t i = 0; i < n; i++) {
        const kinfer_tensor *t = &ts[i];
        if (t->dtype == KINFER_DTYPE_STRING && t->nbytes)
            return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                    "%s[%zu].data: STRING tensors carry strings, not data", field,
                                    i);
        if (t->dtype != KINFER_DTYPE_STRING && t->nstrings)
            return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                    "%s[%zu].strings: only STRING tensors carry strings", field, i);
        /* The common case formats nothing; kinfer_tensor_check words a
         * mismatch. The numel bound only guards numel * size against overflow. */
        uint64_t numel;
        bool ok =
            t->ndim >= 0 && t->ndim <= KINFER_MAX_DIMS && (unsigned)t->dtype < KINFER_DTYPE_COUNT &&
            kinfer_shape_numel(t->shape, t->ndim, SIZE_MAX / 16, &numel, NULL) == KINFER_OK &&
            (t->dtype == KINFER_DTYPE_STRING ? t->nstrings == numel
                                             : t->nbytes == numel * kinfer_dtype_size(t->dtype));
        if (!ok && kinfer_tensor_check(t, SIZE_MAX / 16, err) != KINFER_OK) {
            if (err)
                err->code = KINFER_ERR_INVALID_ARG;
            return codec_error_path(err, KINFER_ERR_INVALID_ARG, "%s[%zu]: ", field, i);
        }
        if (!ok)
            return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "%s[%zu]: inconsistent tensor",
                                    field, i);
        if ((t->nbytes && !t->data) || (t->nstrings && !t->strings))
            return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "%s[%zu]: NULL data", field, i);
        kinfer_err rc = write_text(b, t->name, err, "%s[%zu].name", field, i);
        if (rc != KINFER_OK)
            return rc;
        codec_write_long(b, t->dtype);
        if (t->ndim) {
            codec_write_long(b, t->ndim);
            for (int d = 0; d < t->ndim; d++)
                codec_write_long(b, t->shape[d]);
        }
        codec_write_long(b, 0);
        codec_write_bytes(b, t->data, t->nbytes);
        if (t->nstrings) {
            codec_write_long(b, (int64_t)t->nstrings);
            for (size_t k = 0; k < t->nstrings; k++)
                if ((rc = write_text(b, t->strings[k], err, "%s[%zu].strings[%zu]", field, i, k)) !=
                    KINFER_OK)
                    return rc;
        }
        codec_write_long(b, 0);
    }
    codec_write_long(b, 0);
    return KINFER_OK;
}

static kinfer_err finish(codec_buf *b, const uint8_t **out, size_t *out_len, kinfer_error *err) {
    if (b->oom)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "codec encoder: out of memory");
    *out = b->data;
    *out_len = b->len;
    return KINFER_OK;
}

kinfer_err kinfer_codec_response_encode(kinfer_codec_encoder *enc,
                                        const kinfer_codec_response *resp,
                                        const kinfer_codec_frame *frame, const uint8_t **out,
                                        size_t *out_len, kinfer_error *err) {
    codec_buf *b = &enc->buf;
    b->len = 0;
    b->oom = false;
    if (resp->status < 0 || resp->status > 5)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "status: %d is not a wire Status 0..5",
                                resp->status);
    /* Bare Avro starting with an empty id begins with 0x00, which every
     * reader of kinfer framing takes for a Confluent header. */
    if (resp->id.len == 0 && (!frame || frame->framing == KINFER_CODEC_FRAMING_BARE))
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "id: must not be empty in a bare reply (it would read as "
                                "Confluent framing)");
    kinfer_err rc = write_frame(b, frame, KINFER_CODEC_SCHEMA_RESPONSE, err);
    if (rc != KINFER_OK)
        return rc;
    if ((rc = write_text(b, resp->id, err, "id")) != KINFER_OK ||
        (rc = write_text(b, resp->model, err, "model")) != KINFER_OK ||
        (rc = write_opt_text(b, resp->has_model_version, resp->model_version, "model_version",
                             err)) != KINFER_OK)
        return rc;
    codec_write_long(b, resp->status);
    if ((rc = write_opt_text(b, resp->has_error, resp->error, "error", err)) != KINFER_OK ||
        (rc = write_tensors(b, resp->outputs, resp->noutputs, "outputs", err)) != KINFER_OK)
        return rc;
    codec_write_long(b, resp->timing.queue_us);
    codec_write_long(b, resp->timing.compute_us);
    codec_write_long(b, resp->timing.batch_size);
    if ((rc = write_text(b, resp->timing.worker, err, "timing.worker")) != KINFER_OK ||
        (rc = write_text(b, resp->timing.device, err, "timing.device")) != KINFER_OK ||
        (rc = write_text(b, resp->source.topic, err, "source.topic")) != KINFER_OK)
        return rc;
    codec_write_long(b, resp->source.partition);
    codec_write_long(b, resp->source.offset);
    if ((rc = codec_encode_response_gen(b, resp, err)) != KINFER_OK)
        return rc;
    return finish(b, out, out_len, err);
}

kinfer_err kinfer_codec_request_encode(kinfer_codec_encoder *enc, const kinfer_codec_request *req,
                                       const kinfer_codec_frame *frame, const uint8_t **out,
                                       size_t *out_len, kinfer_error *err) {
    codec_buf *b = &enc->buf;
    b->len = 0;
    b->oom = false;
    if (req->id.len == 0)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "id: must not be empty");
    if (req->nparams && !req->params)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "parameters: NULL array");
    kinfer_err rc = write_frame(b, frame, KINFER_CODEC_SCHEMA_REQUEST, err);
    if (rc != KINFER_OK)
        return rc;
    if ((rc = write_text(b, req->id, err, "id")) != KINFER_OK ||
        (rc = write_text(b, req->model, err, "model")) != KINFER_OK ||
        (rc = write_opt_text(b, req->has_model_version, req->model_version, "model_version",
                             err)) != KINFER_OK ||
        (rc = write_tensors(b, req->inputs, req->ninputs, "inputs", err)) != KINFER_OK)
        return rc;
    codec_write_long(b, req->has_deadline ? 1 : 0);
    if (req->has_deadline)
        codec_write_long(b, req->deadline_ms);
    codec_write_long(b, req->priority);
    if ((rc = write_opt_text(b, req->has_reply_to, req->reply_to, "reply_to", err)) != KINFER_OK)
        return rc;
    if (req->nparams) {
        codec_write_long(b, (int64_t)req->nparams);
        for (size_t i = 0; i < req->nparams; i++)
            if ((rc = write_text(b, req->params[i].key, err, "parameters[%zu].key", i)) !=
                    KINFER_OK ||
                (rc = write_text(b, req->params[i].value, err, "parameters[%zu].value", i)) !=
                    KINFER_OK)
                return rc;
    }
    codec_write_long(b, 0);
    if ((rc = codec_encode_request_gen(b, req, err)) != KINFER_OK)
        return rc;
    return finish(b, out, out_len, err);
}
