/* codec_tool_gen.h — the generation fields of kinfer_codec_tool's JSON
 * (codec_tool_gen.c): the same names as the schemas, floats as JSON
 * numbers, token bytes as hex ("token_hex"). */
#ifndef KINFER_CODEC_TOOL_GEN_H
#define KINFER_CODEC_TOOL_GEN_H

#include <jansson.h>

#include "kinfer/kinfer_codec.h"

/* Allocation for the parsed structs: freed by the caller's arena. */
typedef void *(*tool_alloc_fn)(void *arena, size_t n);

/* Adds prompt, messages, prompt_token_ids, generation to obj. */
void tool_gen_request_json(json_t *obj, const kinfer_codec_request *req);
/* Adds generation, chunk to obj. */
void tool_gen_response_json(json_t *obj, const kinfer_codec_response *resp);
/* Fills the generation fields of req/resp from j (absent keys: empty). */
void tool_gen_request_parse(json_t *j, kinfer_codec_request *req, tool_alloc_fn alloc, void *arena);
void tool_gen_response_parse(json_t *j, kinfer_codec_response *resp, tool_alloc_fn alloc,
                             void *arena);

#endif
