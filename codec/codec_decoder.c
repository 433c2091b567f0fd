/* codec_decoder.c — the reusable decoder object: limits, framing policy,
 * storage, and the begin/end steps shared by request and response decode. */
#include "codec_decoder.h"

#include <stdio.h>
#include <stdlib.h>

#include "codec_resolve.h"

/* Generated from schemas/<version>/ (codec/CMakeLists.txt). */
extern const struct codec_released {
    kinfer_codec_schema schema;
    const char *path;
    const char *json;
} codec_released[];
extern const unsigned long codec_nreleased;

size_t kinfer_codec_released_count(void) {
    return codec_nreleased;
}

bool kinfer_codec_released_get(size_t i, kinfer_codec_schema *schema, const char **path,
                               const char **json) {
    if (i >= codec_nreleased)
        return false;
    *schema = codec_released[i].schema;
    *path = codec_released[i].path;
    *json = codec_released[i].json;
    return true;
}

kinfer_err kinfer_codec_decoder_add_writer(kinfer_codec_decoder *dec, kinfer_codec_schema schema,
                                           const char *writer_json, kinfer_error *err) {
    kinfer_codec_resolution *res;
    kinfer_err rc =
        kinfer_codec_resolution_new(writer_json, kinfer_codec_schema_json(schema), &res, err);
    if (rc != KINFER_OK)
        return rc;
    struct codec_writer *w = realloc(dec->writers, (dec->nwriters + 1) * sizeof *w);
    if (!w) {
        kinfer_codec_resolution_destroy(res);
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "codec decoder: out of memory");
    }
    dec->writers = w;
    dec->writers[dec->nwriters++] = (struct codec_writer){.schema = schema, .res = res};
    return KINFER_OK;
}

static const kinfer_codec_resolution *find_writer(const kinfer_codec_decoder *dec,
                                                  kinfer_codec_schema schema, uint64_t fp) {
    for (size_t i = 0; i < dec->nwriters; i++)
        if (dec->writers[i].schema == schema &&
            kinfer_codec_resolution_writer_fingerprint(dec->writers[i].res) == fp)
            return dec->writers[i].res;
    return NULL;
}

void *kinfer_codec_decoder_take_body(kinfer_codec_decoder *dec) {
    if (!dec->used_resolved)
        return NULL;
    void *body = dec->resolved.data;
    dec->resolved = (codec_buf){0};
    dec->used_resolved = false;
    return body;
}

void kinfer_codec_limits_default(kinfer_codec_limits *out) {
    *out = (kinfer_codec_limits){
        .max_message_bytes = 64u << 20,
        .max_tensors = 64,
        .max_dims = KINFER_MAX_DIMS,
        .max_numel = 1ull << 28,
        .max_strings = 65536,
        .max_string_bytes = 1u << 20,
        .max_params = 64,
        .max_id_bytes = 256,
        .max_name_bytes = 256,
        .max_error_bytes = 64u << 10,
        .max_text_bytes = 4u << 20,
    };
}

kinfer_err kinfer_codec_decoder_new(const kinfer_codec_limits *limits,
                                    const kinfer_codec_frame_policy *policy,
                                    kinfer_codec_decoder **out, kinfer_error *err) {
    *out = NULL;
    kinfer_codec_limits lim;
    if (limits)
        lim = *limits;
    else
        kinfer_codec_limits_default(&lim);
    if (lim.max_dims > KINFER_MAX_DIMS)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "codec limits: max_dims %u exceeds KINFER_MAX_DIMS (%d)",
                                lim.max_dims, KINFER_MAX_DIMS);
    kinfer_codec_decoder *dec = calloc(1, sizeof(*dec));
    if (!dec)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "codec decoder: out of memory");
    dec->limits = lim;
    if (policy)
        dec->policy = *policy;
    else
        kinfer_codec_frame_policy_default(&dec->policy);
    dec->policy.confluent_ids = NULL;
    if (policy && policy->confluent_ids && policy->n_confluent_ids) {
        dec->ids = malloc(policy->n_confluent_ids * sizeof(*dec->ids));
        if (!dec->ids) {
            free(dec);
            return kinfer_error_set(err, KINFER_ERR_NOMEM, "codec decoder: out of memory");
        }
        memcpy(dec->ids, policy->confluent_ids, policy->n_confluent_ids * sizeof(*dec->ids));
        dec->policy.confluent_ids = dec->ids;
    } else {
        dec->policy.n_confluent_ids = 0;
    }
    /* A released schema that no longer resolves to the current one is a
     * broken evolution rule: refuse, naming the file. */
    for (size_t i = 0; i < codec_nreleased; i++) {
        kinfer_err rc = kinfer_codec_decoder_add_writer(dec, codec_released[i].schema,
                                                        codec_released[i].json, err);
        if (rc != KINFER_OK) {
            codec_error_path(err, rc, "schemas/%s: ", codec_released[i].path);
            kinfer_codec_decoder_destroy(dec);
            return rc;
        }
    }
    *out = dec;
    return KINFER_OK;
}

void kinfer_codec_decoder_destroy(kinfer_codec_decoder *dec) {
    if (!dec)
        return;
    free(dec->ids);
    for (size_t i = 0; i < dec->nwriters; i++)
        kinfer_codec_resolution_destroy(dec->writers[i].res);
    free(dec->writers);
    codec_buf_free(&dec->resolved);
    free(dec->tensors);
    free(dec->str_start);
    free(dec->strings);
    free(dec->params);
    free(dec->msgs);
    free(dec->stops);
    free(dec->ints);
    free(dec->lps);
    free(dec->tops);
    free(dec);
}

void codec_soft(kinfer_codec_decoder *dec, kinfer_err code, const char *fmt, ...) {
    if (dec->has_soft)
        return;
    dec->has_soft = true;
    dec->soft.code = code;
    dec->soft.retriable = false;
    dec->soft.fatal = false;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dec->soft.msg, sizeof(dec->soft.msg), fmt, ap);
    va_end(ap);
}

void codec_check_text(kinfer_codec_decoder *dec, kinfer_str s, size_t max, const char *path_fmt,
                      ...) {
    if (dec->has_soft)
        return; /* only the first soft error is reported: skip the work */
    size_t bad = 0;
    bool too_long = s.len > max;
    if (!too_long && codec_utf8_valid(s.ptr, s.len, &bad))
        return;
    char path[160];
    va_list ap;
    va_start(ap, path_fmt);
    vsnprintf(path, sizeof(path), path_fmt, ap);
    va_end(ap);
    if (too_long)
        codec_soft(dec, KINFER_ERR_TOO_LARGE, "%s: %zu bytes, at most %zu allowed", path, s.len,
                   max);
    else
        codec_soft(dec, KINFER_ERR_INVALID_REQUEST, "%s: invalid UTF-8 at byte %zu", path, bad);
}

kinfer_err codec_decode_begin(kinfer_codec_decoder *dec, const uint8_t *msg, size_t len,
                              kinfer_codec_schema schema, const kinfer_codec_resolution *writer,
                              kinfer_codec_frame *frame, codec_reader *r, kinfer_error *err) {
    dec->ntensors = 0;
    dec->nstrings = 0;
    dec->nmsgs = dec->nstops = dec->nints = dec->nlps = dec->ntops = 0;
    dec->has_soft = false;
    dec->used_resolved = false;
    if (len > dec->limits.max_message_bytes)
        return kinfer_error_set(err, KINFER_ERR_TOO_LARGE,
                                "message: %zu bytes, at most %zu allowed", len,
                                dec->limits.max_message_bytes);
    if (writer &&
        codec_resolution_reader_fingerprint(writer) != kinfer_codec_schema_fingerprint(schema))
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "decode: the writer schema's resolution is for another reader "
                                "schema");
    const uint8_t *body;
    size_t body_len;
    kinfer_err rc =
        kinfer_codec_frame_strip(msg, len, schema, &dec->policy, frame, &body, &body_len, err);
    if (rc == KINFER_ERR_UNSUPPORTED && frame->framing == KINFER_CODEC_FRAMING_SINGLE_OBJECT) {
        /* Not the current schema's fingerprint: a released or added one? */
        const kinfer_codec_resolution *known =
            writer && kinfer_codec_resolution_writer_fingerprint(writer) == frame->fingerprint
                ? writer
                : find_writer(dec, schema, frame->fingerprint);
        if (known) {
            writer = known;
            body = msg + 10;
            body_len = len - 10;
            rc = KINFER_OK;
        } else {
            char more[80];
            snprintf(more, sizeof more, " nor one of the %zu released versions", dec->nwriters);
            size_t n = strnlen(err ? err->msg : "", KINFER_ERROR_MSG_MAX);
            if (err && n + strlen(more) < sizeof err->msg)
                memcpy(err->msg + n, more, strlen(more) + 1);
        }
    }
    if (rc != KINFER_OK)
        return rc;
    if (writer && !kinfer_codec_resolution_identity(writer)) {
        dec->resolved.len = 0;
        dec->resolved.oom = false;
        rc = codec_resolve_into(writer, body, body_len, dec->limits.max_message_bytes,
                                &dec->resolved, err);
        if (rc != KINFER_OK)
            return rc;
        body = dec->resolved.data;
        body_len = dec->resolved.len;
        dec->used_resolved = true;
    }
    r->base = body;
    r->p = body;
    r->end = body + body_len;
    r->err = err;
    return KINFER_OK;
}

kinfer_err codec_decode_end(kinfer_codec_decoder *dec, codec_reader *r, kinfer_error *err) {
    if (r->p != r->end)
        return kinfer_error_set(err, KINFER_ERR_DECODE,
                                "trailing bytes: %zu after the record ends at byte %zu",
                                codec_reader_left(r), codec_reader_offset(r));
    codec_fixup_strings(dec);
    if (dec->has_soft) {
        if (err)
            *err = dec->soft;
        return dec->soft.code;
    }
    return KINFER_OK;
}
