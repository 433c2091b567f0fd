/* worker_reply_build.h — module-local: the reply the worker builds for a
 * request, with no Kafka in sight: the verdict on a decoded request
 * (engine, error reply or dead letter), the response made from an error or
 * an engine result, and its encoding under the text repair rule (README,
 * "The wire contract"). worker_consume.c and worker_reply.c use it, and so
 * does tests/fuzz/fuzz_worker_reply.c, which is why it is Kafka-free. */
#ifndef KINFER_WORKER_REPLY_BUILD_H
#define KINFER_WORKER_REPLY_BUILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kinfer/kinfer_codec.h"
#include "kinfer/kinfer_engine.h"

/* The longest request id a reply echoes (bytes of UTF-8); the codec's
 * default max_id_bytes, which every kinfer reader applies to replies. */
#define KINFER_WORKER_ID_MAX 256

typedef enum kinfer_worker_verdict {
    KINFER_WORKER_VERDICT_SUBMIT = 0,  /* valid: to the engine */
    KINFER_WORKER_VERDICT_ERROR_REPLY, /* decodable but invalid: an error reply */
    KINFER_WORKER_VERDICT_DEAD_LETTER, /* undecodable, or its id cannot be echoed */
} kinfer_worker_verdict;

/* What becomes of a request given kinfer_codec_request_decode's result rc,
 * out and err. DEAD_LETTER: why holds the reason (for kinfer-error).
 * ERROR_REPLY: answer with status rc and err->msg. A reply can only carry
 * an id that is non-empty, valid UTF-8 and at most KINFER_WORKER_ID_MAX
 * bytes: any other id cannot be correlated by the client and would make
 * the reply unreadable, so such a request is a dead letter. */
kinfer_worker_verdict kinfer_worker_verdict_of(kinfer_err rc, const kinfer_codec_request *req,
                                               const kinfer_error *err, char *why, size_t why_len);

/* Whether id can be echoed; else *why says what is wrong with it. */
bool kinfer_worker_id_echoable(kinfer_str id, char *why, size_t why_len);

/* The request's absolute deadline in engine µs; 0 = the model's default. */
int64_t kinfer_worker_deadline_us(const kinfer_codec_request *req);

/* What a reply echoes of its request. Views the caller keeps alive. */
typedef struct kinfer_worker_echo {
    kinfer_str id, model, model_version;
    bool has_model_version;
} kinfer_worker_echo;

/* Fills *resp (zeroed first) for an error reply: wire status of status,
 * error text `error` (NUL-terminated, not copied). Timing and source are
 * left empty for the caller. */
void kinfer_worker_reply_build_error(kinfer_codec_response *resp, const kinfer_worker_echo *echo,
                                     kinfer_err status, const char *error);
/* Fills *resp (zeroed first) from an engine completion: outputs on OK, the
 * error otherwise, the engine's model version when it reports one, timing.
 * Views into result: encode before the completion callback returns. */
void kinfer_worker_reply_build_result(kinfer_codec_response *resp, const kinfer_worker_echo *echo,
                                      const kinfer_engine_result *result);

/* Encodes resp in frame after applying the repair rule to every string but
 * the id (each maximal invalid UTF-8 subsequence becomes U+FFFD, then text
 * is cut at a character boundary to the field's limit: 256 bytes for
 * names, 64 KiB for error, 1 MiB for a STRING element; the codec's
 * defaults). resp itself is not modified. When the encoder still refuses
 * it (an engine output the schema cannot carry) the reply becomes
 * INTERNAL_ERROR naming the reason, without outputs; *err then says why
 * (on KINFER_OK). *wire_status is the status actually encoded. Errors: out of memory, or an id the
 * encoder refuses (the verdict keeps those away). *out is valid until the next encode on enc. Any
 * thread (enc is the caller's). */
kinfer_err kinfer_worker_reply_encode(kinfer_codec_encoder *enc, const kinfer_codec_response *resp,
                                      const kinfer_codec_frame *frame, const uint8_t **out,
                                      size_t *out_len, int *wire_status, kinfer_error *err);

#endif
