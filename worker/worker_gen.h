/* worker_gen.h — module-local, Kafka-free: a decoded request's generation
 * fields made into the engine's kinfer_gen_request (worker_gen.c), with
 * the checks that belong to the wire rather than the engine (tensors or
 * parameters sent to a generative model, max_tokens below 1, negative
 * top_k); and the reply's Generation / Chunk records made from the
 * engine's results. The engine checks the rest (ranges, prompt length
 * against the context, invalid prompts) when the request is submitted. */
#ifndef KINFER_WORKER_GEN_H
#define KINFER_WORKER_GEN_H

#include <stdbool.h>
#include <stddef.h>

#include "kinfer/kinfer_codec.h"
#include "kinfer/kinfer_engine.h"

/* Whether req goes to the engine as a generation: the model is generative,
 * or the request carries any generation field (the engine then refuses it
 * for a model that is not). model NULL = unknown. */
bool kinfer_worker_gen_wanted(const kinfer_model_config *model, const kinfer_codec_request *req);

/* Fills *gen from req for model (NULL = unknown model: the engine answers
 * MODEL_NOT_FOUND). Views into req; *messages (the chat messages, or NULL)
 * is malloc'd and freed by the caller once submit returns.
 * KINFER_ERR_INVALID_REQUEST with a message naming the field; NOMEM. */
kinfer_err kinfer_worker_gen_request(const kinfer_model_config *model,
                                     const kinfer_codec_request *req, kinfer_gen_request *gen,
                                     kinfer_chat_message **messages, kinfer_error *err);

/* The logprobs of n tokens in the codec's form, in one malloc'd block
 * (*out, the caller frees it; NULL when lp is NULL or n is 0). NOMEM. */
kinfer_err kinfer_worker_gen_logprobs(const kinfer_gen_logprobs *lp, size_t n,
                                      kinfer_codec_logprob **out, kinfer_error *err);

/* resp->generation from an engine result's gen (views into it). */
void kinfer_worker_gen_reply(kinfer_codec_response *resp, const kinfer_gen_result *gen,
                             const kinfer_codec_logprob *lps);
/* resp->chunk from a chunk event (views into it). */
void kinfer_worker_gen_chunk_reply(kinfer_codec_response *resp, const kinfer_gen_chunk *chunk,
                                   const kinfer_codec_logprob *lps);

#endif
