/* gateway.h — `kinfer gateway`, an OpenAI-compatible HTTP front door that
 * bridges to Kafka. Stateless apart from a files directory: synchronous
 * /v1/embeddings, /v1/chat/completions and /v1/completions through the
 * request and reply topics (gw_bridge.c; "stream": true as Server-Sent
 * Events, gw_sse.c), file bytes in a directory (gw_files.c), batch state in a compacted Kafka topic
 * so that any instance answers for any batch, batches run by the `kinfer
 * batch` loop (gw_batches.c), HTTP, routing, bearer keys and the OpenAI
 * error shape (gw_http.c). Internal to the gateway folder. */
#ifndef KINFER_GATEWAY_H
#define KINFER_GATEWAY_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "kinfer/kinfer_error.h"

#define GW_MAX_KEYS 64
#define GW_MAX_PROPS 32

typedef struct gw_opts {
    const char *brokers, *topic, *reply_topic, *state_topic;
    const char *listen_host;
    int port;
    const char *files_dir;
    const char *keys[GW_MAX_KEYS];
    size_t nkeys;
    bool no_auth;
    int64_t timeout_ms;      /* a synchronous request's wait for its reply */
    uint64_t max_file_bytes; /* an upload's limit */
    uint32_t batch_in_flight;
    const char *instance; /* this instance's name, in request ids */
    const char *props[GW_MAX_PROPS];
    size_t nprops;
} gw_opts;

typedef struct gw_bridge gw_bridge;
typedef struct gw_batches gw_batches;

typedef struct gateway {
    gw_opts o;
    gw_bridge *bridge;
    gw_batches *batches;
    struct MHD_Daemon *http;
    int bound_port;
} gateway;

/* ---- gw_bridge.c: synchronous requests through Kafka ---- */

/* The reply to one synchronous /v1/embeddings request. On OK, values holds
 * rows x dim floats (malloc'd); otherwise http/code/message say why. */
typedef struct gw_embed_result {
    int http; /* 200 on success */
    char code[48];
    char message[600];
    float *values;
    size_t rows, dim;
} gw_embed_result;

/* The reply to one synchronous generation: text (malloc'd), finish reason,
 * token counts; or http/code/message. */
typedef struct gw_gen_result {
    int http;
    char code[48];
    char message[600];
    char *text;
    size_t text_len;
    int finish_reason;
    int64_t prompt_tokens, completion_tokens;
} gw_gen_result;

struct batch_line;
/* Sends a parsed generation request (batch_body_parse_generation) at online
 * priority and waits for its final reply. Thread-safe. */
void gw_bridge_generate(gw_bridge *b, const struct batch_line *l, gw_gen_result *res);

/* A streamed generation (stream true): the chunk replies of one request,
 * in index order, then its final reply. */
typedef struct gw_stream gw_stream;

typedef enum gw_stream_kind {
    GW_STREAM_NONE,  /* nothing yet within the wait */
    GW_STREAM_CHUNK, /* text (malloc'd), the next piece */
    GW_STREAM_FINAL, /* the final reply: gen (its text the whole text) */
    GW_STREAM_ERROR, /* gen.http/code/message: local failure or timeout */
} gw_stream_kind;

typedef struct gw_stream_event {
    gw_stream_kind kind;
    char *text; /* CHUNK */
    size_t text_len;
    gw_gen_result gen; /* FINAL, ERROR */
} gw_stream_event;

/* Sends a parsed generation with stream on at online priority. NULL only
 * when out of memory; a failure to send comes as the first event. */
gw_stream *gw_bridge_stream_open(gw_bridge *b, const struct batch_line *l);
/* The next event, waiting up to wait_ms; after the request's deadline
 * (plus a grace for the final reply to arrive) a timeout ERROR. The caller
 * frees ev->text and ev->gen.text. */
void gw_stream_next(gw_stream *s, int64_t wait_ms, gw_stream_event *ev);
/* Asks the worker to stop the generation (a cancel record: same key as
 * the request, header kinfer-cancel), when it was sent and its final reply
 * has not arrived; best effort (a failure to send is logged). The final
 * reply, finish reason cancelled, still comes; call gw_stream_close after,
 * which drops it. Thread-safe. */
void gw_bridge_cancel(gw_bridge *b, gw_stream *s);
/* Unregisters and frees the stream (events not yet read are dropped). */
void gw_stream_close(gw_stream *s);

kinfer_err gw_bridge_start(const gw_opts *o, gw_bridge **out, kinfer_error *err);
void gw_bridge_stop(gw_bridge *b);
/* Sends texts to model at online priority and waits for the reply (up to
 * the timeout: 504). Thread-safe. */
void gw_bridge_embed(gw_bridge *b, const char *model, const char *const *texts, size_t ntexts,
                     gw_embed_result *res);

/* ---- gw_files.c: file bytes and metadata in the files directory ---- */

/* Stores bytes as a new file; *out is its OpenAI file object. */
kinfer_err gw_files_create(const char *dir, const char *filename, const char *purpose,
                           const void *data, size_t len, json_t **out, kinfer_error *err);
/* Registers an existing file (moved into the directory under a new id). */
kinfer_err gw_files_adopt(const char *dir, const char *path, const char *filename,
                          const char *purpose, json_t **out, kinfer_error *err);
/* The file object of id, or NULL (KINFER_ERR_INVALID_ARG: no such file). */
json_t *gw_files_get(const char *dir, const char *id);
/* Path of id's bytes into buf; false when id is not a valid file id. */
bool gw_files_path(const char *dir, const char *id, char *buf, size_t cap);
/* Every file object (of that purpose, when not NULL), newest first. */
json_t *gw_files_list(const char *dir, const char *purpose);
/* Removes file id; false when there is no such file. */
bool gw_files_delete(const char *dir, const char *id);

/* ---- gw_batches.c: /v1/batches ---- */

kinfer_err gw_batches_start(const gw_opts *o, gw_batches **out, kinfer_error *err);
void gw_batches_stop(gw_batches *b);
/* Each returns the HTTP status and sets *body (a batch object, a list, or
 * an OpenAI error body). */
int gw_batches_create(gw_batches *b, json_t *req, json_t **body);
int gw_batches_get(gw_batches *b, const char *id, json_t **body);
int gw_batches_list(gw_batches *b, int limit, const char *after, json_t **body);
int gw_batches_cancel(gw_batches *b, const char *id, json_t **body);

/* ---- gw_sse.c: stream true, as Server-Sent Events ---- */

struct MHD_Connection;
/* Sends l (a parsed generation) with stream on and queues an SSE response
 * on c once the first chunk is there: 0 then (-1 when libmicrohttpd could
 * not queue it). A failure before any chunk returns its HTTP status and
 * sets *error_body (an OpenAI error body) for the caller to send. Picks a
 * seed when l has none. */
int gw_sse_respond(gateway *g, struct MHD_Connection *c, struct batch_line *l, bool chat,
                   bool include_usage, json_t **error_body);

/* ---- gw_http.c ---- */

/* Appends n bytes to a growing NUL-terminated buffer; false when that
 * would pass limit bytes or memory runs out (the buffer is unchanged). */
bool gw_buf_append(char **buf, size_t *len, size_t *cap, const char *data, size_t n, size_t limit);

/* The OpenAI name of a kinfer finish reason. */
const char *gw_finish_name(int finish_reason);

kinfer_err gw_http_start(gateway *g, kinfer_error *err);
void gw_http_stop(gateway *g);

/* An OpenAI error body (status decides the type). */
json_t *gw_error(int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Random hex id with a prefix: "file-" + 24 hex. */
void gw_new_id(const char *prefix, char *buf, size_t cap);

#endif
