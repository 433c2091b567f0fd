/* codec_tool_gen.c — JSON <-> the codec's generation fields, for
 * kinfer_codec_tool (see codec_tool_gen.h). Not part of the product. */
#include "codec_tool_gen.h"

#include <stdlib.h>
#include <string.h>

static json_t *jstr(kinfer_str s) {
    json_t *j = json_stringn(s.ptr ? s.ptr : "", s.len);
    return j ? j : json_string("<invalid utf-8>");
}

static json_t *jhex(kinfer_str s) {
    static const char digits[] = "0123456789abcdef";
    char *h = malloc(2 * s.len + 1);
    for (size_t i = 0; i < s.len; i++) {
        h[2 * i] = digits[(uint8_t)s.ptr[i] >> 4];
        h[2 * i + 1] = digits[(uint8_t)s.ptr[i] & 15];
    }
    h[2 * s.len] = '\0';
    json_t *j = json_string(h);
    free(h);
    return j;
}

static json_t *jints(const int32_t *v, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_integer(v[i]));
    return a;
}

static json_t *jopt_int(bool has, int64_t v) {
    return has ? json_integer(v) : json_null();
}

static json_t *jopt_real(bool has, float v) {
    return has ? json_real(v) : json_null();
}

static json_t *jtoken(const kinfer_codec_token_logprob *t) {
    return json_pack("{s:i,s:o,s:f}", "token_id", t->token_id, "token_hex", jhex(t->token),
                     "logprob", (double)t->logprob);
}

static json_t *jlogprobs(const kinfer_codec_logprob *lp, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *e = jtoken(&lp[i].chosen);
        json_t *top = json_array();
        for (size_t k = 0; k < lp[i].ntop; k++)
            json_array_append_new(top, jtoken(&lp[i].top[k]));
        json_object_set_new(e, "top_logprobs", top);
        json_array_append_new(a, e);
    }
    return a;
}

void tool_gen_request_json(json_t *obj, const kinfer_codec_request *req) {
    json_object_set_new(obj, "prompt", req->has_prompt ? jstr(req->prompt) : json_null());
    json_t *msgs = json_array();
    for (size_t i = 0; i < req->nmessages; i++)
        json_array_append_new(msgs, json_pack("{s:o,s:o}", "role", jstr(req->messages[i].role),
                                              "content", jstr(req->messages[i].content)));
    json_object_set_new(obj, "messages", msgs);
    json_object_set_new(obj, "prompt_token_ids",
                        jints(req->prompt_token_ids, req->nprompt_token_ids));
    if (!req->has_generation) {
        json_object_set_new(obj, "generation", json_null());
        return;
    }
    const kinfer_codec_gen_options *g = &req->generation;
    json_t *stop = json_array();
    for (size_t i = 0; i < g->nstop; i++)
        json_array_append_new(stop, jstr(g->stop[i]));
    json_t *o = json_object();
    json_object_set_new(o, "max_tokens", jopt_int(g->has_max_tokens, g->max_tokens));
    json_object_set_new(o, "temperature", jopt_real(g->has_temperature, g->temperature));
    json_object_set_new(o, "top_p", jopt_real(g->has_top_p, g->top_p));
    json_object_set_new(o, "top_k", jopt_int(g->has_top_k, g->top_k));
    json_object_set_new(o, "min_p", jopt_real(g->has_min_p, g->min_p));
    json_object_set_new(o, "seed", jopt_int(g->has_seed, g->seed));
    json_object_set_new(o, "stop", stop);
    json_object_set_new(o, "stop_token_ids", jints(g->stop_token_ids, g->nstop_token_ids));
    json_object_set_new(o, "stream", json_boolean(g->stream));
    json_object_set_new(o, "presence_penalty",
                        jopt_real(g->has_presence_penalty, g->presence_penalty));
    json_object_set_new(o, "frequency_penalty",
                        jopt_real(g->has_frequency_penalty, g->frequency_penalty));
    json_object_set_new(o, "repetition_penalty",
                        jopt_real(g->has_repetition_penalty, g->repetition_penalty));
    json_object_set_new(o, "logprobs", json_boolean(g->logprobs));
    json_object_set_new(o, "top_logprobs", json_integer(g->top_logprobs));
    json_object_set_new(o, "ignore_eos", json_boolean(g->ignore_eos));
    json_object_set_new(obj, "generation", o);
}

static const char *const reasons[KINFER_CODEC_FINISH_REASONS] = {"stop", "length", "deadline",
                                                                 "cancelled", "error"};

void tool_gen_response_json(json_t *obj, const kinfer_codec_response *resp) {
    if (resp->has_generation) {
        const kinfer_codec_generation *g = &resp->generation;
        json_object_set_new(
            obj, "generation",
            json_pack("{s:o,s:o,s:s,s:{s:i,s:i,s:i},s:{s:I,s:I,s:I,s:I},s:I,s:i,s:i,s:o}", "text",
                      jstr(g->text), "token_ids", jints(g->token_ids, g->ntoken_ids),
                      "finish_reason", reasons[g->finish_reason], "usage", "prompt_tokens",
                      g->prompt_tokens, "completion_tokens", g->completion_tokens, "total_tokens",
                      g->prompt_tokens + g->completion_tokens, "timing", "queue_us",
                      (json_int_t)g->queue_us, "ttft_us", (json_int_t)g->ttft_us, "per_token_us",
                      (json_int_t)g->per_token_us, "total_us", (json_int_t)g->total_us, "seed",
                      (json_int_t)g->seed, "chunks", g->chunks, "preemptions", g->preemptions,
                      "logprobs", jlogprobs(g->logprobs, g->nlogprobs)));
    } else {
        json_object_set_new(obj, "generation", json_null());
    }
    if (resp->has_chunk) {
        const kinfer_codec_chunk *c = &resp->chunk;
        json_object_set_new(obj, "chunk",
                            json_pack("{s:i,s:o,s:o,s:o}", "index", c->index, "text", jstr(c->text),
                                      "token_ids", jints(c->token_ids, c->ntoken_ids), "logprobs",
                                      jlogprobs(c->logprobs, c->nlogprobs)));
    } else {
        json_object_set_new(obj, "chunk", json_null());
    }
}

/* ---- JSON -> structs ---------------------------------------------------- */

static kinfer_str sget(json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    return (kinfer_str){json_string_value(v), json_string_length(v)};
}

static int hexval(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : 0;
}

static kinfer_str hexget(json_t *o, const char *key, tool_alloc_fn alloc, void *arena) {
    const char *h = json_string_value(json_object_get(o, key));
    size_t n = h ? strlen(h) / 2 : 0;
    char *b = alloc(arena, n);
    for (size_t i = 0; i < n; i++)
        b[i] = (char)(hexval(h[2 * i]) << 4 | hexval(h[2 * i + 1]));
    return (kinfer_str){n ? b : NULL, n};
}

static const int32_t *ints(json_t *a, size_t *n, tool_alloc_fn alloc, void *arena) {
    *n = json_array_size(a);
    int32_t *v = alloc(arena, *n * sizeof *v);
    for (size_t i = 0; i < *n; i++)
        v[i] = (int32_t)json_integer_value(json_array_get(a, i));
    return *n ? v : NULL;
}

static bool opt_int(json_t *o, const char *key, int32_t *v) {
    json_t *j = json_object_get(o, key);
    *v = (int32_t)json_integer_value(j);
    return json_is_integer(j);
}

static bool opt_real(json_t *o, const char *key, float *v) {
    json_t *j = json_object_get(o, key);
    *v = (float)json_number_value(j);
    return json_is_number(j);
}

void tool_gen_request_parse(json_t *j, kinfer_codec_request *req, tool_alloc_fn alloc,
                            void *arena) {
    json_t *p = json_object_get(j, "prompt");
    req->has_prompt = json_is_string(p);
    req->prompt = sget(j, "prompt");
    json_t *msgs = json_object_get(j, "messages");
    req->nmessages = json_array_size(msgs);
    kinfer_codec_chat_message *m = alloc(arena, req->nmessages * sizeof *m);
    for (size_t i = 0; i < req->nmessages; i++) {
        m[i].role = sget(json_array_get(msgs, i), "role");
        m[i].content = sget(json_array_get(msgs, i), "content");
    }
    req->messages = m;
    req->prompt_token_ids =
        ints(json_object_get(j, "prompt_token_ids"), &req->nprompt_token_ids, alloc, arena);
    json_t *g = json_object_get(j, "generation");
    req->has_generation = json_is_object(g);
    if (!req->has_generation)
        return;
    kinfer_codec_gen_options *o = &req->generation;
    o->has_max_tokens = opt_int(g, "max_tokens", &o->max_tokens);
    o->has_temperature = opt_real(g, "temperature", &o->temperature);
    o->has_top_p = opt_real(g, "top_p", &o->top_p);
    o->has_top_k = opt_int(g, "top_k", &o->top_k);
    o->has_min_p = opt_real(g, "min_p", &o->min_p);
    json_t *seed = json_object_get(g, "seed");
    o->has_seed = json_is_integer(seed);
    o->seed = json_integer_value(seed);
    json_t *stop = json_object_get(g, "stop");
    o->nstop = json_array_size(stop);
    kinfer_str *ss = alloc(arena, o->nstop * sizeof *ss);
    for (size_t i = 0; i < o->nstop; i++) {
        json_t *s = json_array_get(stop, i);
        ss[i] = (kinfer_str){json_string_value(s), json_string_length(s)};
    }
    o->stop = ss;
    o->stop_token_ids =
        ints(json_object_get(g, "stop_token_ids"), &o->nstop_token_ids, alloc, arena);
    o->stream = json_is_true(json_object_get(g, "stream"));
    o->has_presence_penalty = opt_real(g, "presence_penalty", &o->presence_penalty);
    o->has_frequency_penalty = opt_real(g, "frequency_penalty", &o->frequency_penalty);
    o->has_repetition_penalty = opt_real(g, "repetition_penalty", &o->repetition_penalty);
    o->logprobs = json_is_true(json_object_get(g, "logprobs"));
    o->top_logprobs = (int32_t)json_integer_value(json_object_get(g, "top_logprobs"));
    o->ignore_eos = json_is_true(json_object_get(g, "ignore_eos"));
}

static void token(json_t *t, kinfer_codec_token_logprob *out, tool_alloc_fn alloc, void *arena) {
    out->token_id = (int32_t)json_integer_value(json_object_get(t, "token_id"));
    out->token = hexget(t, "token_hex", alloc, arena);
    out->logprob = (float)json_number_value(json_object_get(t, "logprob"));
}

static const kinfer_codec_logprob *logprobs(json_t *a, size_t *n, tool_alloc_fn alloc,
                                            void *arena) {
    *n = json_array_size(a);
    kinfer_codec_logprob *lp = alloc(arena, *n * sizeof *lp);
    for (size_t i = 0; i < *n; i++) {
        json_t *e = json_array_get(a, i);
        token(e, &lp[i].chosen, alloc, arena);
        json_t *top = json_object_get(e, "top_logprobs");
        lp[i].ntop = json_array_size(top);
        kinfer_codec_token_logprob *t = alloc(arena, lp[i].ntop * sizeof *t);
        for (size_t k = 0; k < lp[i].ntop; k++)
            token(json_array_get(top, k), &t[k], alloc, arena);
        lp[i].top = lp[i].ntop ? t : NULL;
    }
    return *n ? lp : NULL;
}

void tool_gen_response_parse(json_t *j, kinfer_codec_response *resp, tool_alloc_fn alloc,
                             void *arena) {
    json_t *g = json_object_get(j, "generation");
    resp->has_generation = json_is_object(g);
    if (resp->has_generation) {
        kinfer_codec_generation *o = &resp->generation;
        o->text = sget(g, "text");
        o->token_ids = ints(json_object_get(g, "token_ids"), &o->ntoken_ids, alloc, arena);
        const char *fr = json_string_value(json_object_get(g, "finish_reason"));
        o->finish_reason = -1;
        for (int i = 0; fr && i < KINFER_CODEC_FINISH_REASONS; i++)
            if (strcmp(fr, reasons[i]) == 0)
                o->finish_reason = i;
        json_t *u = json_object_get(g, "usage"), *tm = json_object_get(g, "timing");
        o->prompt_tokens = (int32_t)json_integer_value(json_object_get(u, "prompt_tokens"));
        o->completion_tokens = (int32_t)json_integer_value(json_object_get(u, "completion_tokens"));
        o->queue_us = json_integer_value(json_object_get(tm, "queue_us"));
        o->ttft_us = json_integer_value(json_object_get(tm, "ttft_us"));
        o->per_token_us = json_integer_value(json_object_get(tm, "per_token_us"));
        o->total_us = json_integer_value(json_object_get(tm, "total_us"));
        o->seed = json_integer_value(json_object_get(g, "seed"));
        o->chunks = (int32_t)json_integer_value(json_object_get(g, "chunks"));
        o->preemptions = (int32_t)json_integer_value(json_object_get(g, "preemptions"));
        o->logprobs = logprobs(json_object_get(g, "logprobs"), &o->nlogprobs, alloc, arena);
    }
    json_t *c = json_object_get(j, "chunk");
    resp->has_chunk = json_is_object(c);
    if (resp->has_chunk) {
        kinfer_codec_chunk *o = &resp->chunk;
        o->index = (int32_t)json_integer_value(json_object_get(c, "index"));
        o->text = sget(c, "text");
        o->token_ids = ints(json_object_get(c, "token_ids"), &o->ntoken_ids, alloc, arena);
        o->logprobs = logprobs(json_object_get(c, "logprobs"), &o->nlogprobs, alloc, arena);
    }
}
