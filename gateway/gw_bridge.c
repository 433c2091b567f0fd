/* gw_bridge.c — synchronous requests over Kafka: one producer and one
 * reply consumer (the reply topic read from its end, as `kinfer send`
 * does) per gateway; a thread reads replies and hands each to the HTTP
 * thread waiting for its id ("gw.<instance>.<seq>"). Requests go at online
 * priority (0) with a deadline of the wait. A stream whose client went
 * away is cancelled with a cancel record (README "The wire contract"). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "batch_input.h"
#include "batch_output.h"
#include "client_kafka.h"
#include "gateway.h"
#include "kinfer/kinfer_clock.h"
#include "kinfer/kinfer_codec.h"
#include "kinfer/kinfer_route.h"

typedef struct waiter {
    char id[160];
    bool done;
    gw_embed_result *res;
    gw_gen_result *gen; /* a generation's waiter: res unused */
    gw_stream *stream;  /* a streamed generation's: chunks and final queue there */
    size_t ntexts;
    pthread_cond_t cond;
    struct waiter *next;
} waiter;

typedef struct queued_event {
    gw_stream_event ev;
    struct queued_event *next;
} queued_event;

struct gw_stream {
    gw_bridge *b;
    waiter w;
    queued_event *head, **tail; /* under b->mu */
    uint32_t next_index;        /* the chunk index taken next */
    uint32_t repeated, skipped; /* chunks left out: seen before, after a gap */
    int64_t give_up_ms;         /* monotonic: the deadline and a grace */
    bool registered;
    char model[BATCH_MODEL_MAX + 1]; /* for a cancel record */
};

struct gw_bridge {
    const gw_opts *o;
    kinfer_client c;
    kinfer_codec_decoder *dec;
    pthread_mutex_t mu;
    waiter *waiting;
    _Atomic uint64_t seq;
    atomic_bool stop;
    pthread_t thread;
    bool started;
};

static int64_t mono_ms(void) {
    return kinfer_mono_us() / 1000;
}

static void set_res(gw_embed_result *r, int http, const char *code, const char *msg) {
    r->http = http;
    snprintf(r->code, sizeof r->code, "%s", code);
    snprintf(r->message, sizeof r->message, "%s", msg);
}

static const kinfer_tensor *find_output(const kinfer_codec_response *r, const char *name) {
    for (size_t i = 0; i < r->noutputs; i++)
        if (r->outputs[i].name.len == strlen(name) &&
            !memcmp(r->outputs[i].name.ptr, name, r->outputs[i].name.len))
            return &r->outputs[i];
    return NULL;
}

static void deliver_gen(gw_gen_result *g, const kinfer_codec_response *r) {
    if (r->status != 0 || !r->has_generation) {
        char msg[600];
        snprintf(msg, sizeof msg, "%.*s", (int)(r->has_error ? r->error.len : 0),
                 r->has_error ? r->error.ptr : "");
        g->http = r->status ? batch_wire_status_http(r->status) : 400;
        snprintf(g->code, sizeof g->code, "%s",
                 r->status ? batch_wire_status_code(r->status) : "invalid_model");
        snprintf(g->message, sizeof g->message, "%s",
                 msg[0] ? msg : "the model returned no generation: it is not generative");
        return;
    }
    g->text = malloc(r->generation.text.len + 1);
    if (!g->text) {
        g->http = 500;
        snprintf(g->code, sizeof g->code, "internal_error");
        snprintf(g->message, sizeof g->message, "out of memory");
        return;
    }
    memcpy(g->text, r->generation.text.ptr, r->generation.text.len);
    g->text[r->generation.text.len] = '\0';
    g->text_len = r->generation.text.len;
    g->finish_reason = r->generation.finish_reason;
    g->prompt_tokens = r->generation.prompt_tokens;
    g->completion_tokens = r->generation.completion_tokens;
    g->http = 200;
}

/* Under mu: fills w's result from its reply. */
static void deliver(waiter *w, const kinfer_codec_response *r) {
    if (w->gen) {
        deliver_gen(w->gen, r);
        return;
    }
    gw_embed_result *res = w->res;
    if (r->status != 0) {
        char msg[600];
        snprintf(msg, sizeof msg, "%.*s", (int)(r->has_error ? r->error.len : 0),
                 r->has_error ? r->error.ptr : "");
        set_res(res, batch_wire_status_http(r->status), batch_wire_status_code(r->status),
                msg[0] ? msg : batch_wire_status_code(r->status));
        return;
    }
    const kinfer_tensor *e = find_output(r, "embedding");
    if (!e || e->dtype != KINFER_DTYPE_FP32 || e->ndim != 2 || e->shape[0] != (int64_t)w->ntexts) {
        set_res(res, 400, "invalid_model",
                "the model returned no FP32 'embedding' output: it is not an embedding model");
        return;
    }
    size_t n = (size_t)(e->shape[0] * e->shape[1]);
    res->values = malloc(n * sizeof(float));
    if (!res->values) {
        set_res(res, 500, "internal_error", "out of memory");
        return;
    }
    memcpy(res->values, e->data, n * sizeof(float));
    res->rows = (size_t)e->shape[0];
    res->dim = (size_t)e->shape[1];
    res->http = 200;
}

static void stream_push(gw_stream *s, queued_event *q) {
    q->next = NULL;
    *s->tail = q;
    s->tail = &q->next;
}

/* Under mu: queues a streamed request's chunk or final reply. Chunks are
 * taken in index order only: one seen before (a redelivered request run
 * again from the start) or after a gap (a chunk the worker could not
 * send) is left out, and the final reply, which carries the whole text,
 * lets the reader make up what was left out. */
static void stream_take(gw_stream *s, const kinfer_codec_response *r) {
    if (r->has_chunk && (uint32_t)r->chunk.index != s->next_index) {
        if ((uint32_t)r->chunk.index < s->next_index)
            s->repeated++;
        else
            s->skipped++;
        return;
    }
    queued_event *q = calloc(1, sizeof(*q));
    if (!q)
        return; /* a chunk: the final text makes up for it; a final: the reader times out */
    if (r->has_chunk) {
        s->next_index++;
        if (r->chunk.text.len == 0) { /* ids only: nothing to stream */
            free(q);
            return;
        }
        q->ev.kind = GW_STREAM_CHUNK;
        q->ev.text = malloc(r->chunk.text.len + 1);
        if (!q->ev.text) {
            free(q);
            s->next_index = UINT32_MAX; /* a gap: the rest comes with the final */
            return;
        }
        memcpy(q->ev.text, r->chunk.text.ptr, r->chunk.text.len);
        q->ev.text[r->chunk.text.len] = '\0';
        q->ev.text_len = r->chunk.text.len;
    } else {
        q->ev.kind = GW_STREAM_FINAL;
        deliver_gen(&q->ev.gen, r);
    }
    stream_push(s, q);
}

static void *reply_thread(void *arg) {
    gw_bridge *b = arg;
    while (!atomic_load(&b->stop)) {
        rd_kafka_poll(b->c.producer, 0);
        rd_kafka_message_t *m = rd_kafka_consume_queue(b->c.replies, 100);
        if (!m)
            continue;
        kinfer_codec_response r;
        kinfer_error e;
        if (!m->err && kinfer_codec_response_decode(b->dec, m->payload, m->len, &r, &e) == 0) {
            pthread_mutex_lock(&b->mu);
            for (waiter *w = b->waiting; w; w = w->next)
                if (!w->done && strlen(w->id) == r.id.len && !memcmp(w->id, r.id.ptr, r.id.len)) {
                    if (w->stream)
                        stream_take(w->stream, &r);
                    else if (!r.has_chunk)
                        deliver(w, &r);
                    else
                        break; /* a chunk nobody streams */
                    w->done = !r.has_chunk;
                    pthread_cond_signal(&w->cond);
                    break;
                }
            pthread_mutex_unlock(&b->mu);
        }
        rd_kafka_message_destroy(m);
    }
    return NULL;
}

kinfer_err gw_bridge_start(const gw_opts *o, gw_bridge **out, kinfer_error *err) {
    gw_bridge *b = calloc(1, sizeof(*b));
    if (!b)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
    b->o = o;
    pthread_mutex_init(&b->mu, NULL);
    kinfer_err rc =
        kinfer_client_open(&b->c, o->brokers, o->reply_topic, o->props, o->nprops, 10000, err);
    if (rc == KINFER_OK)
        rc = kinfer_client_prepare_topic(&b->c, o->topic, 10000, err);
    if (rc == KINFER_OK)
        rc = kinfer_codec_decoder_new(NULL, NULL, &b->dec, err);
    if (rc == KINFER_OK && pthread_create(&b->thread, NULL, reply_thread, b) != 0)
        rc = kinfer_error_set(err, KINFER_ERR_INTERNAL, "cannot start the reply thread");
    if (rc != KINFER_OK) {
        gw_bridge_stop(b);
        return rc;
    }
    b->started = true;
    *out = b;
    return KINFER_OK;
}

void gw_bridge_stop(gw_bridge *b) {
    if (!b)
        return;
    atomic_store(&b->stop, true);
    if (b->started)
        pthread_join(b->thread, NULL);
    kinfer_client_close(&b->c);
    if (b->dec)
        kinfer_codec_decoder_destroy(b->dec);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

static struct timespec realtime_in(int64_t ms) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_sec += ms / 1000;
    t.tv_nsec += (ms % 1000) * 1000000;
    if (t.tv_nsec >= 1000000000) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000;
    }
    return t;
}

static void unregister(gw_bridge *b, waiter *w) {
    for (waiter **p = &b->waiting; *p; p = &(*p)->next)
        if (*p == w) {
            *p = w->next;
            break;
        }
}

/* Encodes req (its id set here), registers w for its replies and produces
 * it. 0 when sent; otherwise the HTTP status, with code/msg set (and w not
 * registered). w->cond is initialised here, in every case. */
static int send_request(gw_bridge *b, waiter *w, kinfer_codec_request *req, char *code,
                        size_t code_cap, char *msg, size_t msg_cap) {
    snprintf(w->id, sizeof w->id, "gw.%s.%" PRIu64, b->o->instance, atomic_fetch_add(&b->seq, 1));
    pthread_cond_init(&w->cond, NULL);
    req->id = (kinfer_str){w->id, strlen(w->id)};
    req->has_deadline = true;
    req->deadline_ms = kinfer_wall_ms() + b->o->timeout_ms;
    req->has_reply_to = true;
    req->reply_to = (kinfer_str){b->o->reply_topic, strlen(b->o->reply_topic)};
    kinfer_codec_encoder *enc = NULL;
    kinfer_error e;
    kinfer_codec_frame frame = {0};
    const uint8_t *buf;
    size_t len;
    int http = 0;
    if (kinfer_codec_encoder_new(&enc, &e) != KINFER_OK ||
        kinfer_codec_request_encode(enc, req, &frame, &buf, &len, &e) != KINFER_OK) {
        http = 400;
        snprintf(code, code_cap, "invalid_request");
        snprintf(msg, msg_cap, "%s", e.msg);
        goto out;
    }
    pthread_mutex_lock(&b->mu);
    w->next = b->waiting;
    b->waiting = w;
    pthread_mutex_unlock(&b->mu);
    if (kinfer_client_produce(&b->c, b->o->topic, w->id, strlen(w->id), buf, len, NULL, &e) !=
        KINFER_OK) {
        pthread_mutex_lock(&b->mu);
        unregister(b, w);
        pthread_mutex_unlock(&b->mu);
        http = 503;
        snprintf(code, code_cap, "kafka_unavailable");
        snprintf(msg, msg_cap, "%s", e.msg);
    }
out:
    if (enc)
        kinfer_codec_encoder_destroy(enc);
    return http;
}

/* Sends req and waits for its reply; on a local failure or a timeout sets
 * *http/code/msg instead. */
static void call(gw_bridge *b, waiter *w, kinfer_codec_request *req, int *http, char *code,
                 size_t code_cap, char *msg, size_t msg_cap) {
    int failed = send_request(b, w, req, code, code_cap, msg, msg_cap);
    if (failed) {
        *http = failed;
        pthread_cond_destroy(&w->cond);
        return;
    }
    struct timespec until = realtime_in(b->o->timeout_ms);
    pthread_mutex_lock(&b->mu);
    while (!w->done)
        if (pthread_cond_timedwait(&w->cond, &b->mu, &until) != 0 && !w->done) {
            *http = 504;
            snprintf(code, code_cap, "timeout");
            snprintf(msg, msg_cap, "no reply from a worker within %lld ms",
                     (long long)b->o->timeout_ms);
            break;
        }
    unregister(b, w);
    pthread_mutex_unlock(&b->mu);
    pthread_cond_destroy(&w->cond);
}

static void generation_request(const batch_line *l, kinfer_codec_request *req) {
    memset(req, 0, sizeof(*req));
    req->model = (kinfer_str){l->model, strlen(l->model)};
    if (l->prompt) {
        req->has_prompt = true;
        req->prompt = (kinfer_str){l->prompt, strlen(l->prompt)};
    }
    req->messages = l->nmessages ? l->messages : NULL;
    req->nmessages = l->nmessages;
    req->has_generation = true;
    req->generation = l->gen;
}

void gw_bridge_generate(gw_bridge *b, const batch_line *l, gw_gen_result *res) {
    memset(res, 0, sizeof(*res));
    waiter w;
    memset(&w, 0, sizeof w);
    w.gen = res;
    kinfer_codec_request req;
    generation_request(l, &req);
    req.generation.stream = false;
    call(b, &w, &req, &res->http, res->code, sizeof res->code, res->message, sizeof res->message);
}

/* The final reply is produced by the worker at the deadline at the
 * latest; this much more is its way through Kafka. */
#define STREAM_GRACE_MS 5000

gw_stream *gw_bridge_stream_open(gw_bridge *b, const batch_line *l) {
    gw_stream *s = calloc(1, sizeof(*s));
    queued_event *q = calloc(1, sizeof(*q));
    if (!s || !q) {
        free(s);
        free(q);
        return NULL;
    }
    s->b = b;
    s->tail = &s->head;
    s->w.stream = s;
    s->give_up_ms = mono_ms() + b->o->timeout_ms + STREAM_GRACE_MS;
    snprintf(s->model, sizeof s->model, "%s", l->model);
    kinfer_codec_request req;
    generation_request(l, &req);
    req.generation.stream = true;
    gw_gen_result *g = &q->ev.gen;
    int failed =
        send_request(b, &s->w, &req, g->code, sizeof g->code, g->message, sizeof g->message);
    if (failed) { /* the reader gets the failure as the first event */
        q->ev.kind = GW_STREAM_ERROR;
        g->http = failed;
        stream_push(s, q);
        return s;
    }
    free(q);
    s->registered = true;
    return s;
}

void gw_stream_next(gw_stream *s, int64_t wait_ms, gw_stream_event *ev) {
    memset(ev, 0, sizeof(*ev));
    gw_bridge *b = s->b;
    int64_t now = mono_ms();
    int64_t until_ms = now + wait_ms < s->give_up_ms ? now + wait_ms : s->give_up_ms;
    struct timespec until = realtime_in(until_ms > now ? until_ms - now : 0);
    pthread_mutex_lock(&b->mu);
    while (!s->head && mono_ms() < until_ms)
        if (pthread_cond_timedwait(&s->w.cond, &b->mu, &until) != 0)
            break;
    queued_event *q = s->head;
    if (q) {
        s->head = q->next;
        if (!s->head)
            s->tail = &s->head;
    }
    pthread_mutex_unlock(&b->mu);
    if (q) {
        *ev = q->ev;
        free(q);
    } else if (mono_ms() >= s->give_up_ms) {
        ev->kind = GW_STREAM_ERROR;
        ev->gen.http = 504;
        snprintf(ev->gen.code, sizeof ev->gen.code, "timeout");
        snprintf(ev->gen.message, sizeof ev->gen.message,
                 "no final reply from a worker within %lld ms", (long long)b->o->timeout_ms);
    }
}

void gw_bridge_cancel(gw_bridge *b, gw_stream *s) {
    if (!s)
        return;
    pthread_mutex_lock(&b->mu);
    bool live = s->registered && !s->w.done; /* sent, final reply not seen */
    pthread_mutex_unlock(&b->mu);
    if (!live)
        return;
    kinfer_codec_request req;
    memset(&req, 0, sizeof req);
    req.id = (kinfer_str){s->w.id, strlen(s->w.id)};
    req.model = (kinfer_str){s->model, strlen(s->model)};
    kinfer_codec_encoder *enc = NULL;
    kinfer_error e;
    kinfer_codec_frame frame = {0};
    const uint8_t *buf;
    size_t len;
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(1);
    kinfer_err rc = hdrs ? KINFER_OK : kinfer_error_set(&e, KINFER_ERR_NOMEM, "out of memory");
    if (rc == KINFER_OK)
        rd_kafka_header_add(hdrs, KINFER_HDR_CANCEL, -1, "1", 1);
    if (rc == KINFER_OK)
        rc = kinfer_codec_encoder_new(&enc, &e);
    if (rc == KINFER_OK)
        rc = kinfer_codec_request_encode(enc, &req, &frame, &buf, &len, &e);
    if (rc == KINFER_OK) {
        /* Keyed like the request: same partition, so the same worker. */
        rc =
            kinfer_client_produce(&b->c, b->o->topic, s->w.id, strlen(s->w.id), buf, len, hdrs, &e);
        hdrs = NULL; /* taken over even on failure */
    }
    if (hdrs)
        rd_kafka_headers_destroy(hdrs);
    if (enc)
        kinfer_codec_encoder_destroy(enc);
    if (rc != KINFER_OK) /* best effort: the generation runs to its end */
        fprintf(stderr, "kinfer gateway: stream %s: cannot send its cancel: %s\n", s->w.id, e.msg);
}

void gw_stream_close(gw_stream *s) {
    if (!s)
        return;
    gw_bridge *b = s->b;
    pthread_mutex_lock(&b->mu);
    if (s->registered)
        unregister(b, &s->w);
    queued_event *q = s->head;
    s->head = NULL;
    pthread_mutex_unlock(&b->mu);
    if (s->repeated || s->skipped) /* an operator's hint: a worker restarted it, or lost one */
        fprintf(stderr,
                "kinfer gateway: stream %s: %u chunk(s) seen again (the generation was "
                "restarted), %u left out after a gap\n",
                s->w.id, s->repeated, s->skipped);
    while (q) {
        queued_event *n = q->next;
        free(q->ev.text);
        free(q->ev.gen.text);
        free(q);
        q = n;
    }
    pthread_cond_destroy(&s->w.cond);
    free(s);
}

void gw_bridge_embed(gw_bridge *b, const char *model, const char *const *texts, size_t ntexts,
                     gw_embed_result *res) {
    memset(res, 0, sizeof(*res));
    waiter w;
    memset(&w, 0, sizeof w);
    w.res = res;
    w.ntexts = ntexts;
    kinfer_str *strs = calloc(ntexts ? ntexts : 1, sizeof(*strs));
    if (!strs) {
        set_res(res, 500, "internal_error", "out of memory");
        return;
    }
    for (size_t i = 0; i < ntexts; i++)
        strs[i] = (kinfer_str){texts[i], strlen(texts[i])};
    kinfer_tensor t;
    memset(&t, 0, sizeof t);
    t.name = (kinfer_str){"text", 4};
    t.dtype = KINFER_DTYPE_STRING;
    t.ndim = 1;
    t.shape[0] = (int64_t)ntexts;
    t.strings = strs;
    t.nstrings = ntexts;
    kinfer_codec_request req;
    memset(&req, 0, sizeof req);
    req.model = (kinfer_str){model, strlen(model)};
    req.inputs = &t;
    req.ninputs = 1;
    call(b, &w, &req, &res->http, res->code, sizeof res->code, res->message, sizeof res->message);
    free(strs);
}
