/* codec_decode_request.c — decodes and validates one InferenceRequest
 * (schemas/inference_request.avsc, field order as there). */
#include "codec_decoder.h"

#include <stdio.h>

kinfer_err kinfer_codec_request_decode(kinfer_codec_decoder *dec, const uint8_t *msg, size_t len,
                                       kinfer_codec_request *out, kinfer_error *err) {
    return kinfer_codec_request_decode_as(dec, msg, len, NULL, out, err);
}

kinfer_err kinfer_codec_request_decode_as(kinfer_codec_decoder *dec, const uint8_t *msg, size_t len,
                                          const kinfer_codec_resolution *writer,
                                          kinfer_codec_request *out, kinfer_error *err) {
    memset(out, 0, sizeof(*out));
    codec_reader r;
    kinfer_err rc = codec_decode_begin(dec, msg, len, KINFER_CODEC_SCHEMA_REQUEST, writer,
                                       &out->frame, &r, err);
    if (rc != KINFER_OK)
        return rc;
    const kinfer_codec_limits *lim = &dec->limits;

    if ((rc = codec_read_bytes(&r, "id", &out->id)) != KINFER_OK)
        return rc;
    if (out->id.len == 0)
        codec_soft(dec, KINFER_ERR_INVALID_REQUEST, "id: must not be empty");
    codec_check_text(dec, out->id, lim->max_id_bytes, "id");

    if ((rc = codec_read_bytes(&r, "model", &out->model)) != KINFER_OK)
        return rc;
    codec_check_text(dec, out->model, lim->max_name_bytes, "model");

    if ((rc = codec_read_opt_string(&r, "model_version", &out->has_model_version,
                                    &out->model_version)) != KINFER_OK)
        return rc;
    codec_check_text(dec, out->model_version, lim->max_name_bytes, "model_version");

    if ((rc = codec_decode_tensors(dec, &r, "inputs")) != KINFER_OK)
        return rc;

    if ((rc = codec_read_optional(&r, "deadline_ms", &out->has_deadline)) != KINFER_OK)
        return rc;
    if (out->has_deadline &&
        (rc = codec_read_long(&r, "deadline_ms", &out->deadline_ms)) != KINFER_OK)
        return rc;

    if ((rc = codec_read_int(&r, "priority", &out->priority)) != KINFER_OK)
        return rc;

    if ((rc = codec_read_opt_string(&r, "reply_to", &out->has_reply_to, &out->reply_to)) !=
        KINFER_OK)
        return rc;
    codec_check_text(dec, out->reply_to, lim->max_name_bytes, "reply_to");

    if ((rc = codec_decode_params(dec, &r, &out->params, &out->nparams)) != KINFER_OK)
        return rc;
    /* A v1 request ends here; the generation fields take their defaults. */
    if ((rc = codec_decode_request_gen(dec, &r, out)) != KINFER_OK)
        return rc;

    rc = codec_decode_end(dec, &r, err);
    out->inputs = dec->ntensors ? dec->tensors : NULL;
    out->ninputs = dec->ntensors;
    return rc;
}
