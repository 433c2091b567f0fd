/* codec_frame.c — detects and strips the three input framings and writes
 * them on output. Not the Avro body: that is codec_decode_*.c.
 *
 * Why the prefixes cannot be mistaken for bare Avro: a bare message starts
 * with the id string's length, a zigzag varint. A first byte 0x00 is length
 * 0, i.e. an empty id, which is invalid (ids are non-empty), so 0x00 always
 * means Confluent. A first byte with its low bit set (0xC3 included) encodes
 * a negative length, which no valid Avro string has, so C3 01 always means
 * single-object (and C3 followed by anything else is a broken header). */
#include "codec_avro.h"
#include "kinfer/kinfer_codec.h"

#include <stdio.h>

const char *kinfer_codec_framing_name(kinfer_codec_framing framing) {
    switch (framing) {
    case KINFER_CODEC_FRAMING_BARE:
        return "bare";
    case KINFER_CODEC_FRAMING_SINGLE_OBJECT:
        return "single-object";
    case KINFER_CODEC_FRAMING_CONFLUENT:
        return "confluent";
    }
    return "?";
}

void kinfer_codec_frame_policy_default(kinfer_codec_frame_policy *out) {
    *out = (kinfer_codec_frame_policy){
        .allow_bare = true, .allow_single_object = true, .allow_confluent = true};
}

static const char *schema_name(kinfer_codec_schema schema) {
    return schema == KINFER_CODEC_SCHEMA_RESPONSE ? "io.kinfer.v1.InferenceResponse"
                                                  : "io.kinfer.v1.InferenceRequest";
}

kinfer_err kinfer_codec_frame_strip(const uint8_t *msg, size_t len, kinfer_codec_schema schema,
                                    const kinfer_codec_frame_policy *policy,
                                    kinfer_codec_frame *frame, const uint8_t **body,
                                    size_t *body_len, kinfer_error *err) {
    kinfer_codec_frame_policy def;
    if (!policy) {
        kinfer_codec_frame_policy_default(&def);
        policy = &def;
    }
    *frame = (kinfer_codec_frame){.framing = KINFER_CODEC_FRAMING_BARE};
    if (len == 0)
        return kinfer_error_set(err, KINFER_ERR_DECODE, "message: empty");
    if (msg[0] == 0x00) {
        if (!policy->allow_confluent)
            return kinfer_error_set(err, KINFER_ERR_DECODE,
                                    "framing: Confluent header (0x00) not accepted here");
        if (len < 5)
            return kinfer_error_set(err, KINFER_ERR_DECODE,
                                    "framing: truncated Confluent header: %zu of 5 bytes", len);
        uint32_t id = (uint32_t)msg[1] << 24 | (uint32_t)msg[2] << 16 | (uint32_t)msg[3] << 8 |
                      (uint32_t)msg[4];
        if (policy->n_confluent_ids && policy->confluent_ids) {
            bool ok = false;
            for (size_t i = 0; i < policy->n_confluent_ids && !ok; i++)
                ok = policy->confluent_ids[i] == id;
            if (!ok)
                return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                        "framing: Confluent schema id %u is not one of the %zu "
                                        "configured for %s",
                                        id, policy->n_confluent_ids, schema_name(schema));
        }
        frame->framing = KINFER_CODEC_FRAMING_CONFLUENT;
        frame->schema_id = id;
        *body = msg + 5;
        *body_len = len - 5;
        return KINFER_OK;
    }
    if (msg[0] == 0xC3) {
        if (len < 2 || msg[1] != 0x01)
            return kinfer_error_set(err, KINFER_ERR_DECODE,
                                    len < 2 ? "framing: truncated single-object header: 1 of 10 "
                                              "bytes"
                                            : "framing: bad single-object magic C3 %02X "
                                              "(expected C3 01)",
                                    len < 2 ? 0 : msg[1]);
        if (!policy->allow_single_object)
            return kinfer_error_set(err, KINFER_ERR_DECODE,
                                    "framing: single-object header (C3 01) not accepted here");
        if (len < 10)
            return kinfer_error_set(err, KINFER_ERR_DECODE,
                                    "framing: truncated single-object header: %zu of 10 bytes",
                                    len);
        uint64_t fp = 0;
        for (int i = 7; i >= 0; i--)
            fp = fp << 8 | msg[2 + i];
        uint64_t want = kinfer_codec_schema_fingerprint(schema);
        frame->framing = KINFER_CODEC_FRAMING_SINGLE_OBJECT;
        frame->fingerprint = fp;
        if (fp != want) /* the decoder then looks among the released versions */
            return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                    "framing: single-object fingerprint 0x%016llx is not %s "
                                    "(0x%016llx)",
                                    (unsigned long long)fp, schema_name(schema),
                                    (unsigned long long)want);
        *body = msg + 10;
        *body_len = len - 10;
        return KINFER_OK;
    }
    if (!policy->allow_bare)
        return kinfer_error_set(err, KINFER_ERR_DECODE,
                                "framing: no Confluent (0x00) or single-object (C3 01) header "
                                "and bare Avro is not accepted here (first byte 0x%02X)",
                                msg[0]);
    *body = msg;
    *body_len = len;
    return KINFER_OK;
}
