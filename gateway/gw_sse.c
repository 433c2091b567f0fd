/* gw_sse.c — `"stream": true` on /v1/chat/completions and /v1/completions:
 * the worker's chunk replies (gw_bridge.c's gw_stream) as Server-Sent
 * Events in the OpenAI shape — `data: {chunk}` per piece of text, a last
 * chunk with the finish reason, a usage chunk when stream_options asks for
 * one, then `data: [DONE]`.
 *
 * The response starts only when the first chunk (or the final reply) is
 * there, so a request the worker refuses (unknown model, bad options,
 * timeout before any token) still gets its HTTP status and the OpenAI
 * error body, as without streaming. Once streaming, a failure is a `data:
 * {"error": ...}` event, which is how the OpenAI clients expect it.
 *
 * What was streamed always ends up equal to the final text: chunks missing
 * (one the worker could not send, or ones left out after a redelivery ran
 * the request again from the start) are made up from the final reply. The
 * gateway picks the seed when the request has none, so a request run again
 * after a worker failure samples the same tokens; should the text still
 * differ from what was streamed, the stream ends with an error event. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include <microhttpd.h>

#include "batch_input.h"
#include "gateway.h"

/* A comment line this often while nothing comes: it keeps proxies from
 * closing an idle stream and finds a client that went away. */
#define KEEPALIVE_MS 5000

typedef struct sse {
    gw_bridge *bridge;
    gw_stream *s;
    bool chat, include_usage;
    char id[80];
    char model[BATCH_MODEL_MAX + 1];
    json_int_t created;
    char *out; /* formatted bytes not yet handed to libmicrohttpd */
    size_t out_len, out_off, out_cap;
    char *sent; /* the text streamed so far */
    size_t sent_len, sent_cap;
    bool role_sent, ended;
    gw_stream_event first;
    bool have_first;
} sse;

static bool append(char **buf, size_t *len, size_t *cap, const char *data, size_t n) {
    return gw_buf_append(buf, len, cap, data, n, SIZE_MAX);
}

/* Appends "data: <o>\n\n" and releases o. */
static bool emit(sse *x, json_t *o) {
    if (!o)
        return false;
    char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!text)
        return false;
    bool ok = append(&x->out, &x->out_len, &x->out_cap, "data: ", 6) &&
              append(&x->out, &x->out_len, &x->out_cap, text, strlen(text)) &&
              append(&x->out, &x->out_len, &x->out_cap, "\n\n", 2);
    free(text);
    return ok;
}

/* A chunk object; choice NULL = the usage chunk (choices empty). */
static json_t *chunk(sse *x, json_t *choice, json_t *usage) {
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(x->id));
    json_object_set_new(o, "object",
                        json_string(x->chat ? "chat.completion.chunk" : "text_completion"));
    json_object_set_new(o, "created", json_integer(x->created));
    json_object_set_new(o, "model", json_string(x->model));
    json_t *choices = json_array();
    if (choice)
        json_array_append_new(choices, choice);
    json_object_set_new(o, "choices", choices);
    if (x->include_usage)
        json_object_set_new(o, "usage", usage ? usage : json_null());
    return o;
}

/* One choice: a piece of text (NULL: none) and a finish reason (NULL: not
 * yet). role adds the assistant role (chat's first chunk). */
static json_t *choice(sse *x, const char *text, size_t len, const char *finish, bool role) {
    json_t *c = json_object();
    json_object_set_new(c, "index", json_integer(0));
    json_t *t = text ? json_stringn(text, len) : NULL;
    if (text && !t) { /* the worker sends valid UTF-8; never pass on what is not */
        json_decref(c);
        return NULL;
    }
    if (x->chat) {
        json_t *delta = json_object();
        if (role)
            json_object_set_new(delta, "role", json_string("assistant"));
        if (t)
            json_object_set_new(delta, "content", t);
        else if (role)
            json_object_set_new(delta, "content", json_string(""));
        json_object_set_new(c, "delta", delta);
    } else {
        json_object_set_new(c, "text", t ? t : json_string(""));
    }
    json_object_set_new(c, "logprobs", json_null());
    json_object_set_new(c, "finish_reason", finish ? json_string(finish) : json_null());
    return c;
}

static bool emit_text(sse *x, const char *text, size_t len) {
    bool role = x->chat && !x->role_sent;
    x->role_sent = true;
    json_t *c = choice(x, text, len, NULL, role);
    return c && emit(x, chunk(x, c, NULL)) &&
           append(&x->sent, &x->sent_len, &x->sent_cap, text, len);
}

static bool emit_error(sse *x, int http, const char *code, const char *message) {
    x->ended = true;
    return emit(x, gw_error(http, code, "%s", message));
}

static bool emit_final(sse *x, const gw_gen_result *g) {
    if (g->text_len < x->sent_len || memcmp(g->text, x->sent, x->sent_len))
        return emit_error(x, 500, "stream_diverged",
                          "the generation was run again after a worker failure and its text "
                          "differs from what was already streamed");
    if (g->text_len > x->sent_len &&
        !emit_text(x, g->text + x->sent_len, g->text_len - x->sent_len))
        return false;
    json_t *c = choice(x, NULL, 0, gw_finish_name(g->finish_reason), x->chat && !x->role_sent);
    if (!c || !emit(x, chunk(x, c, NULL)))
        return false;
    if (x->include_usage) {
        json_t *u = json_object();
        json_object_set_new(u, "prompt_tokens", json_integer(g->prompt_tokens));
        json_object_set_new(u, "completion_tokens", json_integer(g->completion_tokens));
        json_object_set_new(u, "total_tokens",
                            json_integer(g->prompt_tokens + g->completion_tokens));
        if (!emit(x, chunk(x, NULL, u)))
            return false;
    }
    x->ended = true;
    return append(&x->out, &x->out_len, &x->out_cap, "data: [DONE]\n\n", 14);
}

/* Formats one event into x->out; false when out of memory. Frees the
 * event's texts. */
static bool format(sse *x, gw_stream_event *ev) {
    bool ok;
    switch (ev->kind) {
    case GW_STREAM_NONE:
        ok = append(&x->out, &x->out_len, &x->out_cap, ": keep-alive\n\n", 14);
        break;
    case GW_STREAM_CHUNK:
        ok = emit_text(x, ev->text, ev->text_len);
        break;
    case GW_STREAM_FINAL:
        ok = ev->gen.http == 200 ? emit_final(x, &ev->gen)
                                 : emit_error(x, ev->gen.http, ev->gen.code, ev->gen.message);
        break;
    default:
        ok = emit_error(x, ev->gen.http, ev->gen.code, ev->gen.message);
    }
    free(ev->text);
    free(ev->gen.text);
    memset(ev, 0, sizeof(*ev));
    return ok;
}

/* libmicrohttpd's content reader, on the connection's own thread (thread
 * per connection), so it may wait for the next event. */
static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    sse *x = cls;
    while (x->out_off == x->out_len) {
        if (x->ended)
            return MHD_CONTENT_READER_END_OF_STREAM;
        x->out_len = x->out_off = 0;
        gw_stream_event ev;
        if (x->have_first) {
            ev = x->first; /* handed over: format frees its texts */
            memset(&x->first, 0, sizeof x->first);
            x->have_first = false;
        } else {
            gw_stream_next(x->s, KEEPALIVE_MS, &ev);
        }
        if (!format(x, &ev))
            return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = x->out_len - x->out_off < max ? x->out_len - x->out_off : max;
    memcpy(buf, x->out + x->out_off, n);
    x->out_off += n;
    return (ssize_t)n;
}

/* Called when the response ends, the client went away included: a stream
 * that had not ended is cancelled, so the worker stops computing it. */
static void release(void *cls) {
    sse *x = cls;
    if (!x->ended)
        gw_bridge_cancel(x->bridge, x->s);
    gw_stream_close(x->s);
    free(x->first.text);
    free(x->first.gen.text);
    free(x->out);
    free(x->sent);
    free(x);
}

static void pick_seed(batch_line *l) {
    if (l->gen.has_seed)
        return;
    char hex[32];
    gw_new_id("", hex, sizeof hex);
    hex[15] = '\0'; /* 60 random bits */
    l->gen.has_seed = true;
    l->gen.seed = (int64_t)strtoull(hex, NULL, 16);
}

int gw_sse_respond(gateway *g, struct MHD_Connection *c, batch_line *l, bool chat,
                   bool include_usage, json_t **error_body) {
    *error_body = NULL;
    pick_seed(l);
    sse *x = calloc(1, sizeof(*x));
    if (!x || !(x->s = gw_bridge_stream_open(g->bridge, l))) {
        free(x);
        *error_body = gw_error(500, "internal_error", "out of memory");
        return 500;
    }
    x->bridge = g->bridge;
    x->chat = chat;
    x->include_usage = include_usage;
    snprintf(x->model, sizeof x->model, "%s", l->model);
    char rid[64];
    gw_new_id("", rid, sizeof rid);
    snprintf(x->id, sizeof x->id, "%s-%s", chat ? "chatcmpl" : "cmpl", rid);
    x->created = (json_int_t)time(NULL);
    do
        gw_stream_next(x->s, KEEPALIVE_MS, &x->first);
    while (x->first.kind == GW_STREAM_NONE);
    if (x->first.kind == GW_STREAM_ERROR ||
        (x->first.kind == GW_STREAM_FINAL && x->first.gen.http != 200)) {
        int status = x->first.gen.http;
        *error_body = gw_error(status, x->first.gen.code, "%s", x->first.gen.message);
        release(x);
        return status;
    }
    x->have_first = true;
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, reader, x, release);
    if (!r) {
        *error_body = gw_error(500, "internal_error", "cannot start the response");
        release(x);
        return 500;
    }
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    MHD_add_response_header(r, "X-Accel-Buffering", "no");
    int ret = MHD_queue_response(c, 200, r) == MHD_YES ? 0 : -1;
    MHD_destroy_response(r);
    return ret;
}
