/* codec_decoder.h — module-local: the decoder object and the pieces that the
 * request and response decoders share (tensor arrays, soft errors). */
#ifndef KINFER_CODEC_DECODER_H
#define KINFER_CODEC_DECODER_H

#include "codec_avro.h"
#include "kinfer_codec.h"

struct kinfer_codec_decoder {
    kinfer_codec_limits limits;
    kinfer_codec_frame_policy policy; /* confluent_ids points at ids below */
    uint32_t *ids;

    /* Storage reused across messages; grown on demand, never shrunk. Every
     * element count is bounded by the message size (each item takes at least
     * one wire byte) and by the limits. */
    kinfer_tensor *tensors;
    size_t *str_start; /* per tensor: index of its first string in strings */
    size_t tensors_cap;
    kinfer_str *strings;
    size_t strings_cap;
    kinfer_param *params;
    size_t params_cap;

    /* Per decode. A soft error (limit exceeded, invalid value) is recorded
     * and parsing goes on, so that the caller still gets id/reply_to for an
     * error reply; malformed bytes stop parsing at once. */
    size_t ntensors;
    size_t nstrings;
    bool has_soft;
    kinfer_error soft;
};

/* Records the first soft error (code + message); later ones are ignored. */
void codec_soft(kinfer_codec_decoder *dec, kinfer_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Checks a string field: length against max (TOO_LARGE) and UTF-8
 * (INVALID_REQUEST), both soft. The path (printf format) is only formatted
 * when the check fails, keeping snprintf off the hot path. */
void codec_check_text(kinfer_codec_decoder *dec, kinfer_str s, size_t max, const char *path_fmt,
                      ...) __attribute__((format(printf, 4, 5)));

/* Decodes an array<Tensor> ("inputs" or "outputs") into dec->tensors and
 * validates each tensor. Returns a hard error only for malformed bytes or
 * out-of-memory. */
kinfer_err codec_decode_tensors(kinfer_codec_decoder *dec, codec_reader *r, const char *field);

/* Decodes the request's parameters map into dec->params. */
kinfer_err codec_decode_params(kinfer_codec_decoder *dec, codec_reader *r, const kinfer_param **out,
                               size_t *nout);

/* Points each stored STRING tensor at its strings (the strings array may
 * have moved while it grew). Call once after the whole message is parsed. */
void codec_fixup_strings(kinfer_codec_decoder *dec);

/* Starts a decode: size limit, framing, reader over the body. */
kinfer_err codec_decode_begin(kinfer_codec_decoder *dec, const uint8_t *msg, size_t len,
                              kinfer_codec_schema schema, kinfer_codec_frame *frame,
                              codec_reader *r, kinfer_error *err);

/* Ends a decode: trailing bytes, string fix-up, soft error. */
kinfer_err codec_decode_end(kinfer_codec_decoder *dec, codec_reader *r, kinfer_error *err);

#endif
