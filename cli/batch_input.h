/* batch_input.h — one line of a `kinfer batch` input file, parsed: the
 * OpenAI batch input format (custom_id, method, url, body) or a plain
 * text line. Pure (no Kafka, no files): a bad line becomes an error code and
 * message for the errors file, never a failure of the job. */
#ifndef KINFER_BATCH_INPUT_H
#define KINFER_BATCH_INPUT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "kinfer/kinfer_codec.h"

/* The endpoints a line may name. */
typedef enum batch_url {
    BATCH_URL_NONE = 0,
    BATCH_URL_EMBEDDINGS,       /* /v1/embeddings */
    BATCH_URL_CHAT_COMPLETIONS, /* /v1/chat/completions */
    BATCH_URL_COMPLETIONS,      /* /v1/completions */
} batch_url;

#define BATCH_CUSTOM_ID_MAX 512
#define BATCH_MODEL_MAX 256
#define BATCH_MAX_TEXTS 2048 /* inputs per line, as OpenAI */
#define BATCH_MAX_MESSAGES 64
#define BATCH_MAX_STOP 4 /* as OpenAI */

/* A parsed line. On success `error_code` is empty; texts are borrowed from
 * `root` (the parsed JSON, owned here) or from the line itself for plain
 * text. On failure error_code names the class (invalid_json,
 * missing_custom_id, invalid_url, invalid_method, invalid_body,
 * unsupported_url, ...) and error_message says what and where. */
typedef struct batch_line {
    char custom_id[BATCH_CUSTOM_ID_MAX + 1];
    bool has_custom_id;
    batch_url url;
    char model[BATCH_MODEL_MAX + 1];
    const char **texts; /* malloc'd array of borrowed strings */
    size_t ntexts;
    bool base64; /* encoding_format "base64" */
    json_t *root;
    char *owned; /* a plain text line's copy */
    /* Generation lines: the prompt (/v1/completions) or the messages
     * (/v1/chat/completions) and the options, borrowed from root. */
    const char *prompt;
    kinfer_codec_chat_message messages[BATCH_MAX_MESSAGES];
    size_t nmessages;
    kinfer_codec_gen_options gen;
    kinfer_str stop[BATCH_MAX_STOP];
    char error_code[48];
    char error_message[512];
} batch_line;

/* Parses an OpenAI batch input line (without its newline). default_model
 * (may be NULL) is used when body.model is absent. Returns 0 when the line
 * is usable, -1 when error_code/message are set (the line still has its
 * custom_id when one could be read), -2 when out of memory. */
int batch_line_parse_jsonl(const char *line, size_t len, const char *default_model,
                           batch_line *out);

/* The body of a /v1/embeddings request (a batch line's, or an HTTP
 * request's): model (default_model when absent; may be NULL), input,
 * encoding_format, dimensions. The texts are borrowed from body, which the
 * caller keeps alive. Same results as batch_line_parse_jsonl. */
int batch_body_parse_embeddings(json_t *body, const char *default_model, batch_line *out);

/* The body of a /v1/chat/completions (messages) or /v1/completions
 * (prompt) request: model, max_tokens (or max_completion_tokens),
 * temperature, top_p, seed, stop, presence_penalty, frequency_penalty; n
 * other than 1 and stream true are refused. Strings are borrowed from body. */
int batch_body_parse_generation(json_t *body, batch_url url, const char *default_model,
                                batch_line *out);

/* A plain text line: one text (copied), custom_id "line-<lineno>"
 * (1-based), model default_model, url /v1/embeddings. */
int batch_line_parse_text(const char *text, size_t len, size_t lineno, const char *default_model,
                          batch_line *out);

void batch_line_free(batch_line *l);

/* "/v1/embeddings" etc.; "" for NONE. */
const char *batch_url_path(batch_url u);

#endif
