/* kinfer_codec.h — the wire contract in C: Avro request/response encode and
 * decode (schemas/inference_*.avsc, namespace io.kinfer.v1), input framing
 * (bare Avro, Avro single-object, Confluent) and request validation.
 *
 * Not a general Avro library: the reader/writer knows exactly these two
 * schemas and is bounds-checked against hostile bytes (no input makes it
 * allocate more than a small multiple of the message size). No Kafka here.
 *
 * Threads: a decoder or encoder is used by one thread at a time; different
 * objects are independent. The schema functions are thread-safe. */
#ifndef KINFER_CODEC_H
#define KINFER_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kinfer/kinfer_error.h"
#include "kinfer/kinfer_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- schemas -------------------------------------------------------------- */

typedef enum kinfer_codec_schema {
    KINFER_CODEC_SCHEMA_REQUEST = 0,  /* io.kinfer.v1.InferenceRequest */
    KINFER_CODEC_SCHEMA_RESPONSE = 1, /* io.kinfer.v1.InferenceResponse */
} kinfer_codec_schema;

/* The .avsc text embedded at build time. Never NULL. */
const char *kinfer_codec_schema_json(kinfer_codec_schema schema);
/* The schema's Avro Parsing Canonical Form (computed once, cached). Never
 * NULL for the two kinfer schemas. */
const char *kinfer_codec_schema_canonical(kinfer_codec_schema schema);
/* CRC-64-AVRO (Rabin) fingerprint of the canonical form, as used by the
 * single-object encoding. */
uint64_t kinfer_codec_schema_fingerprint(kinfer_codec_schema schema);

/* Parsing Canonical Form of any Avro schema given as JSON text. On success
 * *out is a malloc'd NUL-terminated string the caller frees. */
kinfer_err kinfer_codec_canonical_form(const char *schema_json, char **out, kinfer_error *err);
/* CRC-64-AVRO of len bytes (the Avro spec's Rabin fingerprint). */
uint64_t kinfer_codec_crc64_avro(const void *data, size_t len);

/* ---- framing -------------------------------------------------------------- */

typedef enum kinfer_codec_framing {
    KINFER_CODEC_FRAMING_BARE = 0,          /* Avro binary, schema agreed out of band */
    KINFER_CODEC_FRAMING_SINGLE_OBJECT = 1, /* C3 01 + 8-byte LE CRC-64-AVRO fingerprint */
    KINFER_CODEC_FRAMING_CONFLUENT = 2,     /* 00 + 4-byte BE schema-registry id */
} kinfer_codec_framing;

/* Which framing a message had (decode) or should get (encode). */
typedef struct kinfer_codec_frame {
    kinfer_codec_framing framing;
    uint32_t schema_id;   /* CONFLUENT: the id seen / to write */
    uint64_t fingerprint; /* SINGLE_OBJECT: the fingerprint seen; ignored on encode
                             (the encoder writes the encoded schema's own) */
} kinfer_codec_frame;

/* What the decoder accepts. Zero-initialised = nothing; use
 * kinfer_codec_frame_policy_default (all three framings, any Confluent id). */
typedef struct kinfer_codec_frame_policy {
    bool allow_bare;
    bool allow_single_object;
    bool allow_confluent;
    /* Confluent ids accepted; NULL or 0 entries = any id. The decoder copies
     * the list at _new time. */
    const uint32_t *confluent_ids;
    size_t n_confluent_ids;
} kinfer_codec_frame_policy;

void kinfer_codec_frame_policy_default(kinfer_codec_frame_policy *out);

/* Detects and strips the framing of msg for the given schema. On success
 * *body and *body_len are the Avro binary body (a view into msg) and *frame says
 * what was seen. Errors: KINFER_ERR_DECODE (frame header truncated, framing
 * not allowed by the policy), KINFER_ERR_UNSUPPORTED (single-object
 * fingerprint of another schema; Confluent id not in the list). policy NULL =
 * default policy. */
kinfer_err kinfer_codec_frame_strip(const uint8_t *msg, size_t len, kinfer_codec_schema schema,
                                    const kinfer_codec_frame_policy *policy,
                                    kinfer_codec_frame *frame, const uint8_t **body,
                                    size_t *body_len, kinfer_error *err);

/* ---- limits --------------------------------------------------------------- */

/* Every bound the decoder enforces. Exceeding one is KINFER_ERR_TOO_LARGE.
 * Lengths are in bytes. kinfer_codec_limits_default gives the defaults noted. */
typedef struct kinfer_codec_limits {
    size_t max_message_bytes; /* whole framed message; 64 MiB */
    uint32_t max_tensors;     /* inputs (or outputs) per message; 64 */
    uint32_t max_dims;        /* per tensor, <= KINFER_MAX_DIMS; KINFER_MAX_DIMS */
    uint64_t max_numel;       /* elements per tensor; 1 << 28 */
    uint32_t max_strings;     /* STRING elements in one message, all tensors; 65536 */
    size_t max_string_bytes;  /* one STRING element or parameter value; 1 MiB */
    uint32_t max_params;      /* parameters map entries; 64 */
    size_t max_id_bytes;      /* id; 256 */
    size_t max_name_bytes;    /* model, model_version, tensor names, reply_to, parameter
                                 keys, worker/device/topic in responses; 256 */
    size_t max_error_bytes;   /* response error text; 64 KiB */
} kinfer_codec_limits;

void kinfer_codec_limits_default(kinfer_codec_limits *out);

/* ---- messages ------------------------------------------------------------- */

/* A decoded (or to-be-encoded) InferenceRequest. After a decode every view
 * (kinfer_str, tensor data and strings) points into the caller's message
 * buffer, and the inputs/params arrays into the decoder's storage: valid
 * until the next decode on that decoder or its destroy, and only while the
 * caller keeps the message buffer alive. Strings are not NUL-terminated. */
typedef struct kinfer_codec_request {
    kinfer_codec_frame frame; /* decode: the framing seen; ignored by encode */
    kinfer_str id;            /* non-empty */
    kinfer_str model;
    bool has_model_version;
    kinfer_str model_version;
    const kinfer_tensor *inputs;
    size_t ninputs;
    bool has_deadline;
    int64_t deadline_ms; /* absolute Unix epoch ms; meaningful when has_deadline */
    int32_t priority;
    bool has_reply_to;
    kinfer_str reply_to;
    const kinfer_param *params;
    size_t nparams;
} kinfer_codec_request;

typedef struct kinfer_codec_timing {
    int64_t queue_us;
    int64_t compute_us;
    int32_t batch_size;
    kinfer_str worker;
    kinfer_str device;
} kinfer_codec_timing;

/* Where the request came from (Kafka coordinates). */
typedef struct kinfer_codec_source {
    kinfer_str topic;
    int32_t partition;
    int64_t offset;
} kinfer_codec_source;

/* A decoded (or to-be-encoded) InferenceResponse; same lifetime rules as
 * kinfer_codec_request. status is the wire Status index 0..5 (see
 * kinfer_err_to_wire_status). */
typedef struct kinfer_codec_response {
    kinfer_codec_frame frame; /* decode: the framing seen; ignored by encode */
    kinfer_str id;
    kinfer_str model;
    bool has_model_version;
    kinfer_str model_version;
    int status;
    bool has_error;
    kinfer_str error;
    const kinfer_tensor *outputs;
    size_t noutputs;
    kinfer_codec_timing timing;
    kinfer_codec_source source;
} kinfer_codec_response;

/* ---- decoder -------------------------------------------------------------- */

/* A reusable decoder: owns growable arrays for tensors, strings and
 * parameters, reused across messages (no allocation per message once warm). */
typedef struct kinfer_codec_decoder kinfer_codec_decoder;

/* limits/policy NULL = defaults; both are copied. */
kinfer_err kinfer_codec_decoder_new(const kinfer_codec_limits *limits,
                                    const kinfer_codec_frame_policy *policy,
                                    kinfer_codec_decoder **out, kinfer_error *err);
void kinfer_codec_decoder_destroy(kinfer_codec_decoder *dec);

/* Decodes and validates one framed InferenceRequest from msg[0..len).
 * Errors, each with a message naming the field path and the problem:
 *   KINFER_ERR_DECODE           malformed bytes (truncated, bad varint, bad enum
 *                               or union index, negative length, trailing bytes,
 *                               bad frame header)
 *   KINFER_ERR_UNSUPPORTED      framing for another schema (fingerprint, id)
 *   KINFER_ERR_TOO_LARGE        a kinfer_codec_limits bound exceeded
 *   KINFER_ERR_INVALID_REQUEST  decodable but invalid (empty id, negative dim,
 *                               shape/data mismatch, invalid UTF-8, ...)
 * On INVALID_REQUEST and TOO_LARGE the whole message was still parsed, so
 * out->id, model, model_version, reply_to, deadline_ms and priority are
 * filled (id may be empty) and the worker can send an error reply; inputs and
 * params may be partial. Exception: a message over max_message_bytes is not
 * parsed at all (out is zeroed). On DECODE/UNSUPPORTED *out is unspecified.
 * A tensor's shape[] entries past ndim are unspecified. */
kinfer_err kinfer_codec_request_decode(kinfer_codec_decoder *dec, const uint8_t *msg, size_t len,
                                       kinfer_codec_request *out, kinfer_error *err);

/* Decodes one framed InferenceResponse (for `kinfer send` / `kinfer bench`);
 * same error classes and lifetime rules. status outside 0..5 is DECODE. */
kinfer_err kinfer_codec_response_decode(kinfer_codec_decoder *dec, const uint8_t *msg, size_t len,
                                        kinfer_codec_response *out, kinfer_error *err);

/* ---- encoder -------------------------------------------------------------- */

/* A reusable encoder: owns one growable output buffer. */
typedef struct kinfer_codec_encoder kinfer_codec_encoder;

kinfer_err kinfer_codec_encoder_new(kinfer_codec_encoder **out, kinfer_error *err);
void kinfer_codec_encoder_destroy(kinfer_codec_encoder *enc);

/* Encodes resp with the given framing (NULL = bare). SINGLE_OBJECT writes
 * the response schema's fingerprint; CONFLUENT writes frame->schema_id as
 * given (the caller knows the response schema's registry id). An empty id
 * is refused with BARE framing only (its 0x00 first byte would read as a
 * Confluent header). On success
 * *out and *out_len view the encoder's buffer, valid until the next encode on
 * enc or its destroy. Fails with KINFER_ERR_INVALID_ARG when resp is
 * inconsistent (status outside 0..5, a tensor whose shape and data disagree,
 * ...), naming the field. */
kinfer_err kinfer_codec_response_encode(kinfer_codec_encoder *enc,
                                        const kinfer_codec_response *resp,
                                        const kinfer_codec_frame *frame, const uint8_t **out,
                                        size_t *out_len, kinfer_error *err);

/* Encodes req (for `kinfer send` / `kinfer bench`); same rules, with the
 * request schema's fingerprint for SINGLE_OBJECT. An empty id or a tensor
 * whose shape and data disagree is KINFER_ERR_INVALID_ARG. */
kinfer_err kinfer_codec_request_encode(kinfer_codec_encoder *enc, const kinfer_codec_request *req,
                                       const kinfer_codec_frame *frame, const uint8_t **out,
                                       size_t *out_len, kinfer_error *err);

/* Short name of a framing: "bare", "single-object", "confluent". */
const char *kinfer_codec_framing_name(kinfer_codec_framing framing);

#ifdef __cplusplus
}
#endif
#endif
