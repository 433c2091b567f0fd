/* batch_output.h — lines of a `kinfer batch` output and errors file in the
 * OpenAI batch output format: {"id", "custom_id", "response": {"status_code",
 * "request_id", "body"}, "error"}. Each line's id is
 * "batch_req_<job>_<line>" (line = 1-based input line), written first, so a
 * resume finds which input lines are done by reading ids alone
 * (batch_output_lineno). Pure: no files, no Kafka. */
#ifndef KINFER_BATCH_OUTPUT_H
#define KINFER_BATCH_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* A successful /v1/embeddings line: rows x dim FP32 values (row-major), as
 * float arrays or base64 of their little-endian bytes. Returns a malloc'd
 * line without its newline, or NULL when out of memory. */
char *batch_output_embeddings(const char *job, uint64_t lineno, const char *custom_id,
                              const char *request_id, const char *model, const float *values,
                              size_t rows, size_t dim, bool base64);

/* A successful generation line: a chat.completion (chat true) or a
 * text_completion body with one choice of text, the finish reason by its
 * wire name, and the token counts. */
char *batch_output_generation(const char *job, uint64_t lineno, const char *custom_id,
                              const char *request_id, const char *model, bool chat,
                              const char *text, size_t text_len, const char *finish_reason,
                              int64_t prompt_tokens, int64_t completion_tokens);

/* The body alone (a chat.completion or text_completion object). */
json_t *batch_generation_body(const char *request_id, const char *model, bool chat,
                              const char *text, size_t text_len, const char *finish_reason,
                              int64_t prompt_tokens, int64_t completion_tokens);

/* A failed line. status_code 0: no response (the line was never sent, e.g.
 * it did not parse): "response" is null; else the response carries the
 * status, request_id (may be NULL) and an OpenAI error body. custom_id may be
 * NULL (null). code/message also fill "error". */
char *batch_output_error(const char *job, uint64_t lineno, const char *custom_id,
                         const char *request_id, int status_code, const char *code,
                         const char *message);

/* The body of a /v1/embeddings response (object list, data, model, usage). */
json_t *batch_embeddings_body(const char *model, const float *values, size_t rows, size_t dim,
                              bool base64);

/* The OpenAI error body {"error": {message, type, param, code}}; the type
 * follows the HTTP status (invalid_request_error, authentication_error for
 * 401, rate_limit_error, server_error). code may be NULL. */
json_t *batch_error_body(const char *message, int status_code, const char *code);
const char *batch_error_type(int status_code);

/* The input line number of an output line (its id's last "_<n>"), or 0
 * when the line is not one of ours (no such id first). */
uint64_t batch_output_lineno(const char *line, size_t len);

/* HTTP status and error code for a wire Status index (1..5). */
int batch_wire_status_http(int wire_status);
const char *batch_wire_status_code(int wire_status);

#endif
