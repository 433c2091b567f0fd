/* batch_input.c — parsing `kinfer batch` input lines; see batch_input.h.
 * Error codes follow what OpenAI's batch validation names where it has a
 * name (invalid_json, missing_custom_id, invalid_url, ...). */
#include "batch_input.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kinfer/kinfer_codec.h"

static const struct {
    batch_url url;
    const char *path;
} urls[] = {
    {BATCH_URL_EMBEDDINGS, "/v1/embeddings"},
    {BATCH_URL_CHAT_COMPLETIONS, "/v1/chat/completions"},
    {BATCH_URL_COMPLETIONS, "/v1/completions"},
};

const char *batch_url_path(batch_url u) {
    for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++)
        if (urls[i].url == u)
            return urls[i].path;
    return "";
}

static int fail(batch_line *l, const char *code, const char *fmt, ...) {
    snprintf(l->error_code, sizeof l->error_code, "%s", code);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->error_message, sizeof l->error_message, fmt, ap);
    va_end(ap);
    return -1;
}

static void init(batch_line *l) {
    memset(l, 0, sizeof(*l));
}

void batch_line_free(batch_line *l) {
    free(l->texts);
    free(l->owned);
    if (l->root)
        json_decref(l->root);
    init(l);
}

static int set_model(batch_line *l, const char *model) {
    size_t n = strlen(model);
    if (n == 0)
        return fail(l, "invalid_body", "body.model is empty");
    if (n > BATCH_MODEL_MAX)
        return fail(l, "invalid_body", "body.model is longer than %d bytes", BATCH_MODEL_MAX);
    memcpy(l->model, model, n + 1);
    return 0;
}

/* body.input of /v1/embeddings: a string or an array of strings. */
static int embeddings_input(batch_line *l, json_t *input) {
    if (!input)
        return fail(l, "invalid_body", "body.input is required for /v1/embeddings");
    size_t n = json_is_array(input) ? json_array_size(input) : 1;
    if (!json_is_array(input) && !json_is_string(input))
        return fail(l, "invalid_body", "body.input must be a string or an array of strings");
    if (n == 0)
        return fail(l, "invalid_body", "body.input is an empty array");
    if (n > BATCH_MAX_TEXTS)
        return fail(l, "invalid_body", "body.input has %zu items, at most %d", n, BATCH_MAX_TEXTS);
    l->texts = calloc(n, sizeof(*l->texts));
    if (!l->texts)
        return -2;
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_is_array(input) ? json_array_get(input, i) : input;
        if (!json_is_string(s))
            return fail(l, "invalid_body",
                        "body.input[%zu] is not a string (token arrays are not supported)", i);
        if (json_string_length(s) == 0)
            return fail(l, "invalid_body", "body.input[%zu] is an empty string", i);
        l->texts[i] = json_string_value(s);
    }
    l->ntexts = n;
    return 0;
}

int batch_line_parse_jsonl(const char *line, size_t len, const char *default_model,
                           batch_line *out) {
    init(out);
    json_error_t je;
    out->root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
    if (!out->root)
        return fail(out, "invalid_json", "not valid JSON: %s (column %d)", je.text, je.column);
    if (!json_is_object(out->root))
        return fail(out, "invalid_json", "a line must be a JSON object");
    json_t *cid = json_object_get(out->root, "custom_id");
    if (!cid || !json_is_string(cid) || json_string_length(cid) == 0)
        return fail(out, "missing_custom_id",
                    cid ? "custom_id must be a non-empty string" : "custom_id is missing");
    if (json_string_length(cid) > BATCH_CUSTOM_ID_MAX)
        return fail(out, "invalid_custom_id", "custom_id is longer than %d bytes",
                    BATCH_CUSTOM_ID_MAX);
    memcpy(out->custom_id, json_string_value(cid), json_string_length(cid) + 1);
    out->has_custom_id = true;
    json_t *method = json_object_get(out->root, "method");
    if (method && (!json_is_string(method) || strcmp(json_string_value(method), "POST")))
        return fail(out, "invalid_method", "method must be \"POST\"");
    json_t *url = json_object_get(out->root, "url");
    if (!url || !json_is_string(url))
        return fail(out, "invalid_url",
                    "url is missing (one of /v1/embeddings, "
                    "/v1/chat/completions, /v1/completions)");
    for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++)
        if (!strcmp(json_string_value(url), urls[i].path))
            out->url = urls[i].url;
    if (out->url == BATCH_URL_NONE)
        return fail(out, "invalid_url",
                    "url '%.200s' is not one of /v1/embeddings, /v1/chat/completions, "
                    "/v1/completions",
                    json_string_value(url));
    json_t *body = json_object_get(out->root, "body");
    if (!body || !json_is_object(body))
        return fail(out, "invalid_body", "body must be a JSON object");
    json_t *model = json_object_get(body, "model");
    if (model && !json_is_string(model))
        return fail(out, "invalid_body", "body.model must be a string");
    if (!model && !default_model)
        return fail(out, "invalid_body", "body.model is missing (or give --model)");
    if (out->url != BATCH_URL_EMBEDDINGS)
        return batch_body_parse_generation(body, out->url, default_model, out);
    return batch_body_parse_embeddings(body, default_model, out);
}

static int num_opt(batch_line *l, json_t *body, const char *key, double lo, double hi, bool *has,
                   float *v) {
    json_t *x = json_object_get(body, key);
    if (!x || json_is_null(x))
        return 0;
    if (!json_is_number(x) || json_number_value(x) < lo || json_number_value(x) > hi)
        return fail(l, "invalid_body", "body.%s must be a number from %g to %g", key, lo, hi);
    *has = true;
    *v = (float)json_number_value(x);
    return 0;
}

int batch_body_parse_generation(json_t *body, batch_url url, const char *default_model,
                                batch_line *out) {
    json_t *model = json_object_get(body, "model");
    if (model && !json_is_string(model))
        return fail(out, "invalid_body", "body.model must be a string");
    if (!model && !default_model)
        return fail(out, "invalid_body", "body.model is missing");
    if (set_model(out, model ? json_string_value(model) : default_model) != 0)
        return -1;
    if (url == BATCH_URL_CHAT_COMPLETIONS) {
        json_t *msgs = json_object_get(body, "messages");
        if (!json_is_array(msgs) || json_array_size(msgs) == 0)
            return fail(out, "invalid_body", "body.messages must be a non-empty array");
        if (json_array_size(msgs) > BATCH_MAX_MESSAGES)
            return fail(out, "invalid_body", "body.messages has more than %d messages",
                        BATCH_MAX_MESSAGES);
        for (size_t i = 0; i < json_array_size(msgs); i++) {
            json_t *m = json_array_get(msgs, i);
            json_t *role = json_object_get(m, "role"), *content = json_object_get(m, "content");
            if (!json_is_string(role) || !json_is_string(content))
                return fail(out, "invalid_body",
                            "body.messages[%zu] needs a string role and a string content", i);
            out->messages[i] = (kinfer_codec_chat_message){
                {json_string_value(role), json_string_length(role)},
                {json_string_value(content), json_string_length(content)}};
        }
        out->nmessages = json_array_size(msgs);
    } else {
        json_t *prompt = json_object_get(body, "prompt");
        if (!json_is_string(prompt) || json_string_length(prompt) == 0)
            return fail(out, "invalid_body",
                        "body.prompt must be a non-empty string (arrays are not supported)");
        out->prompt = json_string_value(prompt);
    }
    json_t *stream = json_object_get(body, "stream");
    if (stream && json_is_true(stream))
        return fail(out, "invalid_body", "body.stream is not supported in a batch");
    json_t *n = json_object_get(body, "n");
    if (n && !json_is_null(n) && (!json_is_integer(n) || json_integer_value(n) != 1))
        return fail(out, "invalid_body", "body.n must be 1");
    kinfer_codec_gen_options *g = &out->gen;
    json_t *mt = json_object_get(body, "max_completion_tokens");
    if (!mt || json_is_null(mt))
        mt = json_object_get(body, "max_tokens");
    if (mt && !json_is_null(mt)) {
        if (!json_is_integer(mt) || json_integer_value(mt) < 1 ||
            json_integer_value(mt) > INT32_MAX)
            return fail(out, "invalid_body", "body.max_tokens must be a positive integer");
        g->has_max_tokens = true;
        g->max_tokens = (int32_t)json_integer_value(mt);
    }
    if (num_opt(out, body, "temperature", 0, 2, &g->has_temperature, &g->temperature) ||
        num_opt(out, body, "top_p", 0, 1, &g->has_top_p, &g->top_p) ||
        num_opt(out, body, "presence_penalty", -2, 2, &g->has_presence_penalty,
                &g->presence_penalty) ||
        num_opt(out, body, "frequency_penalty", -2, 2, &g->has_frequency_penalty,
                &g->frequency_penalty))
        return -1;
    json_t *seed = json_object_get(body, "seed");
    if (seed && !json_is_null(seed)) {
        if (!json_is_integer(seed))
            return fail(out, "invalid_body", "body.seed must be an integer");
        g->has_seed = true;
        g->seed = (int64_t)json_integer_value(seed);
    }
    json_t *stop = json_object_get(body, "stop");
    if (stop && !json_is_null(stop)) {
        size_t ns = json_is_array(stop) ? json_array_size(stop) : 1;
        if ((!json_is_array(stop) && !json_is_string(stop)) || ns > BATCH_MAX_STOP)
            return fail(out, "invalid_body", "body.stop must be a string or up to %d strings",
                        BATCH_MAX_STOP);
        for (size_t i = 0; i < ns; i++) {
            json_t *x = json_is_array(stop) ? json_array_get(stop, i) : stop;
            if (!json_is_string(x) || json_string_length(x) == 0)
                return fail(out, "invalid_body", "body.stop[%zu] must be a non-empty string", i);
            out->stop[i] = (kinfer_str){json_string_value(x), json_string_length(x)};
        }
        g->stop = out->stop;
        g->nstop = ns;
    }
    g->stream = false;
    return 0;
}

int batch_body_parse_embeddings(json_t *body, const char *default_model, batch_line *out) {
    json_t *model = json_object_get(body, "model");
    if (model && !json_is_string(model))
        return fail(out, "invalid_body", "body.model must be a string");
    if (!model && !default_model)
        return fail(out, "invalid_body", "body.model is missing");
    if (set_model(out, model ? json_string_value(model) : default_model) != 0)
        return -1;
    json_t *fmt = json_object_get(body, "encoding_format");
    if (fmt) {
        const char *f = json_is_string(fmt) ? json_string_value(fmt) : "";
        if (strcmp(f, "float") && strcmp(f, "base64"))
            return fail(out, "invalid_body",
                        "body.encoding_format must be \"float\" or "
                        "\"base64\"");
        out->base64 = !strcmp(f, "base64");
    }
    if (json_object_get(body, "dimensions"))
        return fail(out, "invalid_body",
                    "body.dimensions is not supported: the model's own dimension is returned");
    return embeddings_input(out, json_object_get(body, "input"));
}

int batch_line_parse_text(const char *text, size_t len, size_t lineno, const char *default_model,
                          batch_line *out) {
    init(out);
    snprintf(out->custom_id, sizeof out->custom_id, "line-%zu", lineno);
    out->has_custom_id = true;
    out->url = BATCH_URL_EMBEDDINGS;
    if (!default_model)
        return fail(out, "invalid_body", "plain text input needs --model");
    if (set_model(out, default_model) != 0)
        return -1;
    if (len == 0)
        return fail(out, "invalid_body", "line %zu is empty", lineno);
    size_t bad;
    if (!kinfer_codec_utf8_valid(text, len, &bad))
        return fail(out, "invalid_body", "line %zu is not valid UTF-8 (byte %zu)", lineno, bad + 1);
    if (memchr(text, '\0', len))
        return fail(out, "invalid_body", "line %zu holds a NUL byte", lineno);
    out->owned = malloc(len + 1);
    out->texts = calloc(1, sizeof(*out->texts));
    if (!out->owned || !out->texts)
        return -2;
    memcpy(out->owned, text, len);
    out->owned[len] = '\0';
    out->texts[0] = out->owned;
    out->ntexts = 1;
    return 0;
}
