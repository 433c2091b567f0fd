/* send_print.c — `kinfer send`'s view of a reply (send_print.h): small
 * tensors in full, wide rows (an embedding) as dims, L2 norm and the first
 * values, STRING outputs (a classifier's labels) one per row, each row
 * next to the text it answers when the request was --text; or the whole
 * reply as one JSON object. */
#include "send_print.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define MAX_ROWS_SHOWN 16
#define TEXT_SHOWN 48

/* Element i as a double, for the numeric dtypes a reply carries. */
static bool value_at(const kinfer_tensor *t, uint64_t i, double *out) {
    const char *p = (const char *)t->data + i * kinfer_dtype_size(t->dtype);
    switch (t->dtype) {
    case KINFER_DTYPE_FP32: {
        float f;
        memcpy(&f, p, 4);
        *out = f;
        return true;
    }
    case KINFER_DTYPE_FP64:
        memcpy(out, p, 8);
        return true;
    case KINFER_DTYPE_INT64: {
        int64_t v;
        memcpy(&v, p, 8);
        *out = (double)v;
        return true;
    }
    case KINFER_DTYPE_INT32: {
        int32_t v;
        memcpy(&v, p, 4);
        *out = v;
        return true;
    }
    default:
        return false;
    }
}

/* A short, escaped, quoted copy of s: at most TEXT_SHOWN bytes, cut at a
 * UTF-8 character boundary. */
static void print_quoted(kinfer_str s) {
    size_t n = s.len > TEXT_SHOWN ? TEXT_SHOWN : s.len;
    while (n < s.len && n > 0 && ((unsigned char)s.ptr[n] & 0xC0) == 0x80)
        n--;
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            printf("\\x%02x", c);
        else
            putchar(c);
    }
    printf(n < s.len ? "...\"" : "\"");
}

static void print_row_text(const kinfer_send_request_info *req, uint64_t row) {
    if (req && req->texts && row < req->ntexts) {
        printf("  text=");
        print_quoted((kinfer_str){req->texts[row], strlen(req->texts[row])});
    }
}

static void print_strings(const kinfer_tensor *t, const kinfer_send_request_info *req) {
    size_t shown = t->nstrings < MAX_ROWS_SHOWN ? t->nstrings : MAX_ROWS_SHOWN;
    for (size_t i = 0; i < shown; i++) {
        printf("  [%zu] ", i);
        kinfer_str s = t->strings[i];
        fwrite(s.ptr ? s.ptr : "", 1, s.len, stdout);
        print_row_text(req, i);
        putchar('\n');
    }
    if (shown < t->nstrings)
        printf("  ... (%zu in all)\n", t->nstrings);
}

/* Numeric outputs row by row: in full when a row has at most
 * KINFER_SEND_COMPACT_WIDTH values, else dims, norm and the first values. */
static void print_numbers(const kinfer_tensor *t, const kinfer_send_request_info *req) {
    uint64_t n = 0;
    size_t es = kinfer_dtype_size(t->dtype);
    double v;
    if (kinfer_shape_numel(t->shape, t->ndim, UINT64_MAX, &n, NULL) != KINFER_OK || !es ||
        t->nbytes != n * es || (n && !value_at(t, 0, &v)))
        return;
    uint64_t width = t->ndim >= 2 ? (uint64_t)t->shape[t->ndim - 1] : n;
    if (!width)
        return;
    uint64_t rows = n / width, shown = rows < MAX_ROWS_SHOWN ? rows : MAX_ROWS_SHOWN;
    bool compact = width > KINFER_SEND_COMPACT_WIDTH;
    for (uint64_t r = 0; r < shown; r++) {
        if (compact) {
            double sq = 0;
            for (uint64_t j = 0; j < width; j++) {
                value_at(t, r * width + j, &v);
                sq += v * v;
            }
            printf("  [%" PRIu64 "] dims=%" PRIu64 " norm=%.4f [", r, width, sqrt(sq));
            for (uint64_t j = 0; j < KINFER_SEND_COMPACT_VALUES; j++) {
                value_at(t, r * width + j, &v);
                printf("%s%.4f", j ? ", " : "", v);
            }
            printf(", ...]");
        } else {
            printf("  [");
            for (uint64_t j = 0; j < width; j++) {
                value_at(t, r * width + j, &v);
                printf(t->dtype == KINFER_DTYPE_FP32 ? "%s%.6g" : "%s%.9g", j ? ", " : "", v);
            }
            printf("]");
        }
        if (rows > 1 || (req && req->ntexts))
            print_row_text(req, r);
        putchar('\n');
    }
    if (shown < rows)
        printf("  ... (%" PRIu64 " rows in all)\n", rows);
}

/* Decoded views of empty strings may have a NULL pointer. */
static json_t *jstr(kinfer_str s) {
    return json_stringn(s.ptr ? s.ptr : "", s.len);
}

static json_t *tensor_json(const kinfer_tensor *t) {
    json_t *shape = json_array(), *o = json_object();
    for (int i = 0; i < t->ndim; i++)
        json_array_append_new(shape, json_integer(t->shape[i]));
    json_object_set_new(o, "name", jstr(t->name));
    json_object_set_new(o, "dtype", json_string(kinfer_dtype_name(t->dtype)));
    json_object_set_new(o, "shape", shape);
    if (t->dtype == KINFER_DTYPE_STRING) {
        json_t *strs = json_array();
        for (size_t i = 0; i < t->nstrings; i++)
            json_array_append_new(strs, jstr(t->strings[i]));
        json_object_set_new(o, "strings", strs);
        return o;
    }
    json_t *vals = json_array();
    size_t es = kinfer_dtype_size(t->dtype);
    double v;
    for (size_t i = 0; es && i < t->nbytes / es; i++) {
        if (!value_at(t, i, &v))
            break;
        json_array_append_new(vals, t->dtype == KINFER_DTYPE_INT64 || t->dtype == KINFER_DTYPE_INT32
                                        ? json_integer((json_int_t)v)
                                        : json_real(v));
    }
    json_object_set_new(o, "data", vals);
    return o;
}

static const char *const finish_names[KINFER_CODEC_FINISH_REASONS] = {"stop", "length", "deadline",
                                                                      "cancelled", "error"};

static json_t *jints(const int32_t *v, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_integer(v[i]));
    return a;
}

static json_t *generation_json(const kinfer_codec_generation *g) {
    json_t *o = json_object();
    json_object_set_new(o, "text", jstr(g->text));
    json_object_set_new(o, "token_ids", jints(g->token_ids, g->ntoken_ids));
    json_object_set_new(o, "finish_reason", json_string(finish_names[g->finish_reason]));
    json_object_set_new(o, "usage",
                        json_pack("{s:i,s:i,s:i}", "prompt_tokens", g->prompt_tokens,
                                  "completion_tokens", g->completion_tokens, "total_tokens",
                                  g->prompt_tokens + g->completion_tokens));
    json_object_set_new(o, "timing",
                        json_pack("{s:I,s:I,s:I,s:I}", "queue_us", (json_int_t)g->queue_us,
                                  "ttft_us", (json_int_t)g->ttft_us, "per_token_us",
                                  (json_int_t)g->per_token_us, "total_us",
                                  (json_int_t)g->total_us));
    json_object_set_new(o, "seed", json_integer(g->seed));
    json_object_set_new(o, "chunks", json_integer(g->chunks));
    if (g->nlogprobs) {
        json_t *lps = json_array();
        for (size_t i = 0; i < g->nlogprobs; i++)
            json_array_append_new(lps,
                                  json_pack("{s:i,s:f}", "token_id", g->logprobs[i].chosen.token_id,
                                            "logprob", (double)g->logprobs[i].chosen.logprob));
        json_object_set_new(o, "logprobs", lps);
    }
    return o;
}

void kinfer_send_print_chunk(const kinfer_codec_response *r, kinfer_send_stream *s, bool as_json) {
    const kinfer_codec_chunk *c = &r->chunk;
    if (c->index < 0 || (uint32_t)c->index < s->next)
        return; /* seen (a restarted generation re-sends from chunk 0) */
    s->next = (uint32_t)c->index + 1;
    s->printed += c->text.len;
    if (as_json) {
        json_t *o =
            json_pack("{s:o,s:{s:i,s:o,s:o}}", "id", jstr(r->id), "chunk", "index", c->index,
                      "text", jstr(c->text), "token_ids", jints(c->token_ids, c->ntoken_ids));
        char *txt = json_dumps(o, JSON_COMPACT);
        printf("%s\n", txt ? txt : "{}");
        free(txt);
        json_decref(o);
    } else {
        fwrite(c->text.ptr ? c->text.ptr : "", 1, c->text.len, stdout);
    }
    fflush(stdout);
}

static void print_generation(const kinfer_codec_response *r, const kinfer_send_request_info *req) {
    const kinfer_codec_generation *g = &r->generation;
    bool streamed = req && req->stream && req->stream->next > 0;
    if (!streamed)
        fwrite(g->text.ptr ? g->text.ptr : "", 1, g->text.len, stdout);
    else if (req->stream->printed != g->text.len)
        /* Chunks missed or from an earlier run of the generation: the
         * final text is the answer. */
        printf("\n[the chunks above differ from the final text, which is:]\n%.*s", (int)g->text.len,
               g->text.ptr ? g->text.ptr : "");
    printf("\n");
    printf("finish  reason=%s prompt_tokens=%d completion_tokens=%d total_tokens=%d seed=%" PRId64
           " chunks=%d\n",
           finish_names[g->finish_reason], (int)g->prompt_tokens, (int)g->completion_tokens,
           (int)(g->prompt_tokens + g->completion_tokens), g->seed, (int)g->chunks);
    printf("gen     queue=%.2fms ttft=%.2fms per_token=%.2fms total=%.2fms\n",
           (double)g->queue_us / 1000.0, (double)g->ttft_us / 1000.0,
           (double)g->per_token_us / 1000.0, (double)g->total_us / 1000.0);
}

static const char *status_name(int status) {
    static const char *const names[] = {
        "OK",         "INVALID_REQUEST", "MODEL_NOT_FOUND", "DEADLINE_EXCEEDED",
        "OVERLOADED", "INTERNAL_ERROR"};
    return status >= 0 && status <= 5 ? names[status] : "?";
}

static void print_json(const kinfer_codec_response *r, double rtt_ms) {
    json_t *outs = json_array();
    for (size_t i = 0; i < r->noutputs; i++)
        json_array_append_new(outs, tensor_json(&r->outputs[i]));
    json_t *timing = json_object(), *source = json_object(), *o = json_object();
    json_object_set_new(timing, "queue_us", json_integer(r->timing.queue_us));
    json_object_set_new(timing, "compute_us", json_integer(r->timing.compute_us));
    json_object_set_new(timing, "batch_size", json_integer(r->timing.batch_size));
    json_object_set_new(timing, "worker", jstr(r->timing.worker));
    json_object_set_new(timing, "device", jstr(r->timing.device));
    json_object_set_new(source, "topic", jstr(r->source.topic));
    json_object_set_new(source, "partition", json_integer(r->source.partition));
    json_object_set_new(source, "offset", json_integer(r->source.offset));
    json_object_set_new(o, "id", jstr(r->id));
    json_object_set_new(o, "model", jstr(r->model));
    json_object_set_new(o, "status", json_string(status_name(r->status)));
    json_object_set_new(o, "outputs", outs);
    json_object_set_new(o, "timing", timing);
    json_object_set_new(o, "source", source);
    json_object_set_new(o, "round_trip_ms", json_real(rtt_ms));
    if (r->has_error)
        json_object_set_new(o, "error", jstr(r->error));
    if (r->has_generation)
        json_object_set_new(o, "generation", generation_json(&r->generation));
    char *s = json_dumps(o, JSON_COMPACT);
    printf("%s\n", s ? s : "{}");
    free(s);
    json_decref(o);
}

void kinfer_send_print_reply(const kinfer_codec_response *r, const kinfer_send_request_info *req,
                             double rtt_ms, bool as_json) {
    if (as_json) {
        print_json(r, rtt_ms);
        return;
    }
    if (r->has_generation)
        print_generation(r, req);
    printf("reply   id=%.*s status=%s model=%.*s", (int)r->id.len, r->id.ptr,
           status_name(r->status), (int)r->model.len, r->model.ptr);
    if (r->has_model_version)
        printf(" version=%.*s", (int)r->model_version.len, r->model_version.ptr);
    printf("\n");
    if (r->has_error)
        printf("error   %.*s\n", (int)r->error.len, r->error.ptr);
    for (size_t i = 0; i < r->noutputs; i++) {
        const kinfer_tensor *t = &r->outputs[i];
        char shape[128];
        kinfer_shape_format(t->shape, t->ndim, shape, sizeof shape);
        printf("output  %.*s %s %s\n", (int)t->name.len, t->name.ptr, kinfer_dtype_name(t->dtype),
               shape);
        if (t->dtype == KINFER_DTYPE_STRING)
            print_strings(t, req);
        else
            print_numbers(t, req);
    }
    printf("timing  queue=%" PRId64 "us compute=%" PRId64 "us batch=%d worker=%.*s device=%.*s "
           "round_trip=%.2fms\n",
           r->timing.queue_us, r->timing.compute_us, (int)r->timing.batch_size,
           (int)r->timing.worker.len, r->timing.worker.ptr, (int)r->timing.device.len,
           r->timing.device.ptr, rtt_ms);
    printf("source  %.*s[%d]@%" PRId64 "\n", (int)r->source.topic.len, r->source.topic.ptr,
           (int)r->source.partition, r->source.offset);
}
