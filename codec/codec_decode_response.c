/* codec_decode_response.c — decodes one InferenceResponse
 * (schemas/inference_response.avsc), for `kinfer send` and `kinfer bench`.
 * Same bounds checks and lifetime rules as the request decoder. */
#include "codec_decoder.h"

kinfer_err kinfer_codec_response_decode(kinfer_codec_decoder *dec, const uint8_t *msg, size_t len,
                                        kinfer_codec_response *out, kinfer_error *err) {
    return kinfer_codec_response_decode_as(dec, msg, len, NULL, out, err);
}

kinfer_err kinfer_codec_response_decode_as(kinfer_codec_decoder *dec, const uint8_t *msg,
                                           size_t len, const kinfer_codec_resolution *writer,
                                           kinfer_codec_response *out, kinfer_error *err) {
    memset(out, 0, sizeof(*out));
    codec_reader r;
    kinfer_err rc = codec_decode_begin(dec, msg, len, KINFER_CODEC_SCHEMA_RESPONSE, writer,
                                       &out->frame, &r, err);
    if (rc != KINFER_OK)
        return rc;
    const kinfer_codec_limits *lim = &dec->limits;

    if ((rc = codec_read_bytes(&r, "id", &out->id)) != KINFER_OK)
        return rc;
    codec_check_text(dec, out->id, lim->max_id_bytes, "id");
    if ((rc = codec_read_bytes(&r, "model", &out->model)) != KINFER_OK)
        return rc;
    codec_check_text(dec, out->model, lim->max_name_bytes, "model");
    if ((rc = codec_read_opt_string(&r, "model_version", &out->has_model_version,
                                    &out->model_version)) != KINFER_OK)
        return rc;
    codec_check_text(dec, out->model_version, lim->max_name_bytes, "model_version");

    int64_t status;
    if ((rc = codec_read_index(&r, "status", "enum", 6, &status)) != KINFER_OK)
        return rc;
    out->status = (int)status;
    if ((rc = codec_read_opt_string(&r, "error", &out->has_error, &out->error)) != KINFER_OK)
        return rc;
    codec_check_text(dec, out->error, lim->max_error_bytes, "error");

    if ((rc = codec_decode_tensors(dec, &r, "outputs")) != KINFER_OK)
        return rc;

    kinfer_codec_timing *tm = &out->timing;
    if ((rc = codec_read_long(&r, "timing.queue_us", &tm->queue_us)) != KINFER_OK ||
        (rc = codec_read_long(&r, "timing.compute_us", &tm->compute_us)) != KINFER_OK ||
        (rc = codec_read_int(&r, "timing.batch_size", &tm->batch_size)) != KINFER_OK ||
        (rc = codec_read_bytes(&r, "timing.worker", &tm->worker)) != KINFER_OK ||
        (rc = codec_read_bytes(&r, "timing.device", &tm->device)) != KINFER_OK)
        return rc;
    codec_check_text(dec, tm->worker, lim->max_name_bytes, "timing.worker");
    codec_check_text(dec, tm->device, lim->max_name_bytes, "timing.device");

    kinfer_codec_source *src = &out->source;
    if ((rc = codec_read_bytes(&r, "source.topic", &src->topic)) != KINFER_OK ||
        (rc = codec_read_int(&r, "source.partition", &src->partition)) != KINFER_OK ||
        (rc = codec_read_long(&r, "source.offset", &src->offset)) != KINFER_OK)
        return rc;
    codec_check_text(dec, src->topic, lim->max_name_bytes, "source.topic");
    /* A v1 response ends here. */
    if ((rc = codec_decode_response_gen(dec, &r, out)) != KINFER_OK)
        return rc;

    rc = codec_decode_end(dec, &r, err);
    out->outputs = dec->ntensors ? dec->tensors : NULL;
    out->noutputs = dec->ntensors;
    return rc;
}
