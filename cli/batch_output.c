/* batch_output.c — the output and error lines of batch_output.h, built with
 * jansson (object keys kept in insertion order, so "id" comes first). */
#include "batch_output.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

/* float32 needs 9 significant digits to read back exactly. */
#define DUMP_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9))

static json_t *line_head(const char *job, uint64_t lineno, const char *custom_id) {
    char id[600];
    snprintf(id, sizeof id, "batch_req_%s_%llu", job, (unsigned long long)lineno);
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "custom_id", custom_id ? json_string(custom_id) : json_null());
    return o;
}

static char *dump(json_t *o) {
    char *s = o ? json_dumps(o, DUMP_FLAGS) : NULL;
    json_decref(o);
    return s;
}

static char *b64(const uint8_t *p, size_t n) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        *o++ = tab[(v >> 18) & 63];
        *o++ = tab[(v >> 12) & 63];
        *o++ = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        *o++ = i + 2 < n ? tab[v & 63] : '=';
    }
    *o = '\0';
    return out;
}

json_t *batch_embeddings_body(const char *model, const float *values, size_t rows, size_t dim,
                              bool base64) {
    json_t *data = json_array();
    for (size_t r = 0; data && r < rows; r++) {
        json_t *e = json_object();
        json_object_set_new(e, "object", json_string("embedding"));
        json_object_set_new(e, "index", json_integer((json_int_t)r));
        const float *row = values + r * dim;
        if (base64) {
            /* The values are in host order; kinfer runs on little-endian
             * hosts only, which is what base64 embeddings carry. */
            char *s = b64((const uint8_t *)row, dim * sizeof(float));
            json_object_set_new(e, "embedding", s ? json_string(s) : json_null());
            free(s);
        } else {
            json_t *v = json_array();
            for (size_t k = 0; k < dim; k++)
                json_array_append_new(v, json_real((double)row[k]));
            json_object_set_new(e, "embedding", v);
        }
        json_array_append_new(data, e);
    }
    json_t *body = json_object();
    json_object_set_new(body, "object", json_string("list"));
    json_object_set_new(body, "data", data);
    json_object_set_new(body, "model", json_string(model));
    /* The worker reports no token counts for embeddings: 0 (documented). */
    json_t *usage = json_object();
    json_object_set_new(usage, "prompt_tokens", json_integer(0));
    json_object_set_new(usage, "total_tokens", json_integer(0));
    json_object_set_new(body, "usage", usage);
    return body;
}

char *batch_output_embeddings(const char *job, uint64_t lineno, const char *custom_id,
                              const char *request_id, const char *model, const float *values,
                              size_t rows, size_t dim, bool base64) {
    json_t *body = batch_embeddings_body(model, values, rows, dim, base64);
    json_t *resp = json_object();
    json_object_set_new(resp, "status_code", json_integer(200));
    json_object_set_new(resp, "request_id", json_string(request_id));
    json_object_set_new(resp, "body", body);
    json_t *o = line_head(job, lineno, custom_id);
    if (!o) {
        json_decref(resp);
        return NULL;
    }
    json_object_set_new(o, "response", resp);
    json_object_set_new(o, "error", json_null());
    return dump(o);
}

const char *batch_error_type(int status_code) {
    if (status_code == 401)
        return "authentication_error";
    if (status_code == 404)
        return "invalid_request_error";
    if (status_code >= 500)
        return "server_error";
    if (status_code == 429)
        return "rate_limit_error";
    return "invalid_request_error";
}

char *batch_output_error(const char *job, uint64_t lineno, const char *custom_id,
                         const char *request_id, int status_code, const char *code,
                         const char *message) {
    json_t *o = line_head(job, lineno, custom_id);
    if (!o)
        return NULL;
    /* json_string refuses invalid UTF-8: a worker's text is valid (the
     * codec checks), ours is built from valid parts; fall back to a fixed
     * text rather than lose the line. */
    json_t *msg = json_string(message);
    if (!msg)
        msg = json_string("(message not valid UTF-8)");
    if (status_code > 0) {
        json_t *body = batch_error_body(json_string_value(msg), status_code, code);
        json_t *resp = json_object();
        json_object_set_new(resp, "status_code", json_integer(status_code));
        json_object_set_new(resp, "request_id", request_id ? json_string(request_id) : json_null());
        json_object_set_new(resp, "body", body);
        json_object_set_new(o, "response", resp);
    } else {
        json_object_set_new(o, "response", json_null());
    }
    json_t *e = json_object();
    json_object_set_new(e, "code", json_string(code));
    json_object_set_new(e, "message", msg);
    json_object_set_new(o, "error", e);
    return dump(o);
}

json_t *batch_generation_body(const char *request_id, const char *model, bool chat,
                              const char *text, size_t text_len, const char *finish_reason,
                              int64_t prompt_tokens, int64_t completion_tokens) {
    char id[300];
    snprintf(id, sizeof id, "%s-%s", chat ? "chatcmpl" : "cmpl", request_id);
    json_t *body = json_object();
    json_object_set_new(body, "id", json_string(id));
    json_object_set_new(body, "object", json_string(chat ? "chat.completion" : "text_completion"));
    json_object_set_new(body, "created", json_integer((json_int_t)time(NULL)));
    json_object_set_new(body, "model", json_string(model));
    /* Generated text is valid UTF-8 (the worker repairs what it sends). */
    json_t *t = json_stringn(text, text_len);
    json_t *choice = json_object();
    json_object_set_new(choice, "index", json_integer(0));
    if (chat) {
        json_t *msg = json_object();
        json_object_set_new(msg, "role", json_string("assistant"));
        json_object_set_new(msg, "content", t ? t : json_string(""));
        json_object_set_new(choice, "message", msg);
    } else {
        json_object_set_new(choice, "text", t ? t : json_string(""));
    }
    json_object_set_new(choice, "logprobs", json_null());
    json_object_set_new(choice, "finish_reason", json_string(finish_reason));
    json_t *choices = json_array();
    json_array_append_new(choices, choice);
    json_object_set_new(body, "choices", choices);
    json_t *usage = json_object();
    json_object_set_new(usage, "prompt_tokens", json_integer(prompt_tokens));
    json_object_set_new(usage, "completion_tokens", json_integer(completion_tokens));
    json_object_set_new(usage, "total_tokens", json_integer(prompt_tokens + completion_tokens));
    json_object_set_new(body, "usage", usage);
    return body;
}

char *batch_output_generation(const char *job, uint64_t lineno, const char *custom_id,
                              const char *request_id, const char *model, bool chat,
                              const char *text, size_t text_len, const char *finish_reason,
                              int64_t prompt_tokens, int64_t completion_tokens) {
    json_t *body = batch_generation_body(request_id, model, chat, text, text_len, finish_reason,
                                         prompt_tokens, completion_tokens);
    json_t *resp = json_object();
    json_object_set_new(resp, "status_code", json_integer(200));
    json_object_set_new(resp, "request_id", json_string(request_id));
    json_object_set_new(resp, "body", body);
    json_t *o = line_head(job, lineno, custom_id);
    if (!o) {
        json_decref(resp);
        return NULL;
    }
    json_object_set_new(o, "response", resp);
    json_object_set_new(o, "error", json_null());
    return dump(o);
}

json_t *batch_error_body(const char *message, int status_code, const char *code) {
    json_t *err = json_object();
    json_t *msg = json_string(message);
    json_object_set_new(err, "message", msg ? msg : json_string("(message not valid UTF-8)"));
    json_object_set_new(err, "type", json_string(batch_error_type(status_code)));
    json_object_set_new(err, "param", json_null());
    json_object_set_new(err, "code", code ? json_string(code) : json_null());
    json_t *body = json_object();
    json_object_set_new(body, "error", err);
    return body;
}

uint64_t batch_output_lineno(const char *line, size_t len) {
    static const char head[] = "{\"id\":\"batch_req_";
    size_t hl = sizeof(head) - 1;
    if (len < hl || memcmp(line, head, hl))
        return 0;
    const char *end = memchr(line + hl, '"', len - hl);
    if (!end)
        return 0;
    const char *us = end;
    while (us > line + hl && us[-1] != '_')
        us--;
    if (us == end || us == line + hl)
        return 0;
    uint64_t n = 0;
    for (const char *p = us; p < end; p++) {
        if (*p < '0' || *p > '9' || n > UINT64_MAX / 10 - 1)
            return 0;
        n = n * 10 + (uint64_t)(*p - '0');
    }
    return n;
}

int batch_wire_status_http(int s) {
    switch (s) {
    case 1:
        return 400; /* INVALID_REQUEST */
    case 2:
        return 404; /* MODEL_NOT_FOUND */
    case 3:
        return 408; /* DEADLINE_EXCEEDED */
    case 4:
        return 429; /* OVERLOADED */
    default:
        return 500;
    }
}

const char *batch_wire_status_code(int s) {
    switch (s) {
    case 1:
        return "invalid_request";
    case 2:
        return "model_not_found";
    case 3:
        return "deadline_exceeded";
    case 4:
        return "overloaded";
    default:
        return "internal_error";
    }
}
