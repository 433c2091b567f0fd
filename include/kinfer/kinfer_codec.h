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
/* The same for the released v1 schema (schemas/v1/, before generation):
 * single-object messages written with it are still read (the fields added
 * since take their defaults). */
uint64_t kinfer_codec_schema_fingerprint_v1(kinfer_codec_schema schema);
/* The v1 .avsc text. Never NULL. */
const char *kinfer_codec_schema_json_v1(kinfer_codec_schema schema);

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

/* ---- schema resolution ---------------------------------------------------- */

/* Avro schema resolution (the spec's "Schema Resolution"): a message written
 * with one schema (the writer's) read as another (the reader's, normally
 * one of the two kinfer schemas). Rules: fields matched by name in any
 * order; a writer field the reader lacks is skipped; a reader field the
 * writer lacks takes its default (none: the schemas do not resolve);
 * int -> long -> float -> double and string <-> bytes promote; enum symbols
 * map by name (an unknown one takes the reader enum's default, else that
 * message fails); unions pick the first matching reader branch; records,
 * enums and fixed match by unqualified name. Recursive schemas and records
 * of more than 128 fields are refused. Immutable once built: one
 * resolution may be used by many threads at once. */
typedef struct kinfer_codec_resolution kinfer_codec_resolution;

/* Builds the resolution of writer_json to reader_json (both Avro schema
 * JSON). Errors: KINFER_ERR_INVALID_ARG (not a schema), KINFER_ERR_UNSUPPORTED
 * (the schemas do not resolve; the message names the field and the rule),
 * KINFER_ERR_NOMEM. */
kinfer_err kinfer_codec_resolution_new(const char *writer_json, const char *reader_json,
                                       kinfer_codec_resolution **out, kinfer_error *err);
void kinfer_codec_resolution_destroy(kinfer_codec_resolution *res);
/* Whether writer and reader have the same Parsing Canonical Form (a message
 * needs no rewriting). */
bool kinfer_codec_resolution_identity(const kinfer_codec_resolution *res);
/* CRC-64-AVRO fingerprint of the writer schema's canonical form. */
uint64_t kinfer_codec_resolution_writer_fingerprint(const kinfer_codec_resolution *res);

/* Rewrites one Avro body written with res's writer schema as reader-schema
 * binary: *out is malloc'd (the caller frees it), at most max_out bytes
 * (else KINFER_ERR_TOO_LARGE). Malformed bytes are KINFER_ERR_DECODE, with
 * the same bounds checks as the decoder (hostile input costs nothing). */
kinfer_err kinfer_codec_resolve(const kinfer_codec_resolution *res, const uint8_t *body, size_t len,
                                size_t max_out, uint8_t **out, size_t *out_len, kinfer_error *err);

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
    /* Generation: prompt, message content and reply text bytes; 4 MiB.
     * Chat messages, stop strings and token ids are bounded by max_strings
     * (messages + stop strings) and max_numel (token ids, logprobs). */
    size_t max_text_bytes;
} kinfer_codec_limits;

void kinfer_codec_limits_default(kinfer_codec_limits *out);

/* ---- messages ------------------------------------------------------------- */

/* ---- generation (fields added after v1; README "Generation over Kafka") -- */

typedef struct kinfer_codec_chat_message {
    kinfer_str role;
    kinfer_str content;
} kinfer_codec_chat_message;

/* GenerationOptions: has_X false = the field was null (the default). */
typedef struct kinfer_codec_gen_options {
    bool has_max_tokens;
    int32_t max_tokens;
    bool has_temperature;
    float temperature;
    bool has_top_p;
    float top_p;
    bool has_top_k;
    int32_t top_k;
    bool has_min_p;
    float min_p;
    bool has_seed;
    int64_t seed;
    const kinfer_str *stop;
    size_t nstop;
    const int32_t *stop_token_ids;
    size_t nstop_token_ids;
    bool stream;
    bool has_presence_penalty;
    float presence_penalty;
    bool has_frequency_penalty;
    float frequency_penalty;
    bool has_repetition_penalty;
    float repetition_penalty;
    bool logprobs;
    int32_t top_logprobs;
    bool ignore_eos;
} kinfer_codec_gen_options;

/* TokenLogprob / TopLogprob. */
typedef struct kinfer_codec_token_logprob {
    int32_t token_id;
    float logprob;
    kinfer_str token; /* bytes: maybe part of a UTF-8 character */
} kinfer_codec_token_logprob;

typedef struct kinfer_codec_logprob {
    kinfer_codec_token_logprob chosen;
    const kinfer_codec_token_logprob *top;
    size_t ntop;
} kinfer_codec_logprob;

/* Finish reasons, in the FinishReason enum's order (= kinfer_finish_reason). */
#define KINFER_CODEC_FINISH_REASONS 5

/* The Generation record of a final reply. */
typedef struct kinfer_codec_generation {
    kinfer_str text;
    const int32_t *token_ids;
    size_t ntoken_ids;
    int finish_reason; /* 0..4: stop, length, deadline, cancelled, error */
    int32_t prompt_tokens;
    int32_t completion_tokens; /* total_tokens is their sum on the wire */
    int64_t queue_us, ttft_us, per_token_us, total_us;
    int64_t seed;
    int32_t chunks;
    int32_t preemptions;
    const kinfer_codec_logprob *logprobs;
    size_t nlogprobs;
} kinfer_codec_generation;

/* The Chunk record of a chunk reply. */
typedef struct kinfer_codec_chunk {
    int32_t index;
    kinfer_str text;
    const int32_t *token_ids;
    size_t ntoken_ids;
    const kinfer_codec_logprob *logprobs;
    size_t nlogprobs;
} kinfer_codec_chunk;

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
    /* Generation (absent from a v1 message: all empty). */
    bool has_prompt;
    kinfer_str prompt;
    const kinfer_codec_chat_message *messages;
    size_t nmessages;
    const int32_t *prompt_token_ids;
    size_t nprompt_token_ids;
    bool has_generation;
    kinfer_codec_gen_options generation;
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
    /* A generation's final reply carries generation; a chunk reply carries
     * chunk (and status OK, no outputs); other replies neither. */
    bool has_generation;
    kinfer_codec_generation generation;
    bool has_chunk;
    kinfer_codec_chunk chunk;
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

/* The same with the writer schema given: writer (built for the request or
 * response schema as reader, else KINFER_ERR_INVALID_ARG) says how the body
 * was written, whatever the framing (a Confluent id looked up in a schema
 * registry, say). writer NULL = kinfer_codec_request_decode: bare and
 * Confluent bodies are read as the current schema; a single-object
 * fingerprint selects the current schema, a released version
 * (kinfer_codec_released_*) or one added with kinfer_codec_decoder_add_writer,
 * and anything else is KINFER_ERR_UNSUPPORTED. A body written with another
 * schema is rewritten for the current one first (kinfer_codec_resolve);
 * its errors are DECODE (malformed, or a value the reader cannot take, such
 * as an enum symbol it lacks) or TOO_LARGE, and the views then point into
 * the decoder's copy (same lifetime) unless kinfer_codec_decoder_take_body
 * hands it over. */
kinfer_err kinfer_codec_request_decode_as(kinfer_codec_decoder *dec, const uint8_t *msg, size_t len,
                                          const kinfer_codec_resolution *writer,
                                          kinfer_codec_request *out, kinfer_error *err);
kinfer_err kinfer_codec_response_decode_as(kinfer_codec_decoder *dec, const uint8_t *msg,
                                           size_t len, const kinfer_codec_resolution *writer,
                                           kinfer_codec_response *out, kinfer_error *err);

/* When the last decode rewrote its body for the reader schema, hands that
 * malloc'd copy (which the decoded views point into) to the caller, who
 * frees it with free(); NULL when the views point into the caller's own
 * message. Lets a decoded request outlive the next decode. */
void *kinfer_codec_decoder_take_body(kinfer_codec_decoder *dec);

/* Adds a writer schema (Avro JSON) that single-object framing may name by
 * fingerprint, resolved to `schema`'s current version. Errors as
 * kinfer_codec_resolution_new. */
kinfer_err kinfer_codec_decoder_add_writer(kinfer_codec_decoder *dec, kinfer_codec_schema schema,
                                           const char *writer_json, kinfer_error *err);

/* The released schema versions built in from schemas/<version>/ (each a
 * writer schema every decoder accepts by single-object fingerprint): how
 * many, and the i-th's schema kind, path under schemas/ and JSON text. */
size_t kinfer_codec_released_count(void);
bool kinfer_codec_released_get(size_t i, kinfer_codec_schema *schema, const char **path,
                               const char **json);

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
 * ...) or any string in it (id, model, error, tensor names, STRING
 * elements, timing, source) is not valid UTF-8, naming the field; nothing
 * is returned in *out then, so no invalid record reaches the wire. */
kinfer_err kinfer_codec_response_encode(kinfer_codec_encoder *enc,
                                        const kinfer_codec_response *resp,
                                        const kinfer_codec_frame *frame, const uint8_t **out,
                                        size_t *out_len, kinfer_error *err);

/* Encodes req (for `kinfer send` / `kinfer bench`); same rules, with the
 * request schema's fingerprint for SINGLE_OBJECT. An empty id, a tensor
 * whose shape and data disagree or a string (reply_to and parameters too)
 * that is not valid UTF-8 is KINFER_ERR_INVALID_ARG. */
kinfer_err kinfer_codec_request_encode(kinfer_codec_encoder *enc, const kinfer_codec_request *req,
                                       const kinfer_codec_frame *frame, const uint8_t **out,
                                       size_t *out_len, kinfer_error *err);

/* ---- UTF-8 ---------------------------------------------------------------- */

/* Whether s[0..len) is valid UTF-8, as every Avro string must be: no
 * overlong forms, no surrogates, nothing past U+10FFFF. On false *bad (may
 * be NULL) is the offset of the first byte of the first invalid sequence. */
bool kinfer_codec_utf8_valid(const char *s, size_t len, size_t *bad);

/* The repair rule for text a reply carries but did not make (README, "The
 * wire contract"): copies s[0..len) into out[0..cap) with each maximal
 * subpart of an ill-formed sequence (Unicode §3.9; what Python's
 * errors="replace" and the WHATWG decoder do) replaced by U+FFFD, and cut
 * after the last whole character that fits in cap. Returns the bytes
 * written, always valid UTF-8; 3 * len bytes of out always suffice. */
size_t kinfer_codec_utf8_repair(const char *s, size_t len, char *out, size_t cap);

/* The longest prefix of the valid UTF-8 string s that is at most max bytes
 * and ends on a character boundary: len when len <= max. */
size_t kinfer_codec_utf8_prefix(const char *s, size_t len, size_t max);

/* Short name of a framing: "bare", "single-object", "confluent". */
const char *kinfer_codec_framing_name(kinfer_codec_framing framing);

#ifdef __cplusplus
}
#endif
#endif
