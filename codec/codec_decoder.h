/* codec_decoder.h — module-local: the decoder object and the pieces that the
 * request and response decoders share (tensor arrays, soft errors). */
#ifndef KINFER_CODEC_DECODER_H
#define KINFER_CODEC_DECODER_H

#include "codec_avro.h"
#include "kinfer/kinfer_codec.h"

struct kinfer_codec_decoder {
    kinfer_codec_limits limits;
    kinfer_codec_frame_policy policy; /* confluent_ids points at ids below */
    uint32_t *ids;

    /* Writer schemas single-object framing may name by fingerprint besides
     * the current one: the released versions, then any added. Owned. */
    struct codec_writer {
        kinfer_codec_schema schema;
        kinfer_codec_resolution *res;
    } * writers;
    size_t nwriters;
    /* The body of the last decode, rewritten for the reader schema when it
     * was written with another; views then point here. */
    codec_buf resolved;
    bool used_resolved;

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
    /* Generation fields (codec_decode_gen.c): chat messages, stop strings,
     * token ids (prompt, stop, generated) and logprobs, same rules. */
    kinfer_codec_chat_message *msgs;
    size_t msgs_cap, nmsgs;
    kinfer_str *stops;
    size_t stops_cap, nstops;
    int32_t *ints;
    size_t ints_cap, nints;
    kinfer_codec_logprob *lps;
    size_t lps_cap, nlps;
    kinfer_codec_token_logprob *tops;
    size_t tops_cap, ntops;

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

/* The generation fields of a request (prompt, messages, prompt_token_ids,
 * generation), read when the body goes on after parameters; a v1 body ends
 * there and out keeps them empty. Pointers into dec's storage are set. */
kinfer_err codec_decode_request_gen(kinfer_codec_decoder *dec, codec_reader *r,
                                    kinfer_codec_request *out);
/* The generation and chunk fields of a response, likewise after source. */
kinfer_err codec_decode_response_gen(kinfer_codec_decoder *dec, codec_reader *r,
                                     kinfer_codec_response *out);

/* Avro float: 4 bytes little-endian IEEE 754. */
kinfer_err codec_read_float(codec_reader *r, const char *field, float *out);

/* Starts a decode: size limit, framing, writer schema resolution (writer
 * NULL: the framing's own: a single-object fingerprint among the known
 * writers, else the reader's schema), reader over the body. */
kinfer_err codec_decode_begin(kinfer_codec_decoder *dec, const uint8_t *msg, size_t len,
                              kinfer_codec_schema schema, const kinfer_codec_resolution *writer,
                              kinfer_codec_frame *frame, codec_reader *r, kinfer_error *err);

/* Ends a decode: trailing bytes, string fix-up, soft error. */
kinfer_err codec_decode_end(kinfer_codec_decoder *dec, codec_reader *r, kinfer_error *err);

#endif
