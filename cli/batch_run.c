/* batch_run.c — the job loop of batch_run.h.
 *
 * One request per input line, id "<job>.<run>.<line>.<attempt>" (the run
 * number keeps a resumed job's ids apart from an earlier run's), a STRING
 * tensor "text" [n] of the line's inputs, at the bulk priority, replies to
 * the reply topic read from its end. Up to max_in_flight lines are out at
 * once; a line whose reply does not come within timeout_ms, or that comes
 * back OVERLOADED, is sent again, up to `attempts` tries, then written to
 * the errors file. Output and error lines are checkpointed every 250 ms
 * (batch_state.h), so an interruption loses at most the lines since. */
#include "batch_run.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "batch_dupes.h"
#include "batch_input.h"
#include "batch_output.h"
#include "batch_state.h"
#include "client_kafka.h"
#include "kinfer/kinfer_clock.h"
#include "kinfer/kinfer_codec.h"

#define CHECKPOINT_US 250000
#define OVERLOAD_BACKOFF_US 500000

typedef struct slot {
    bool used;
    uint64_t lineno;
    uint32_t attempt;
    batch_line line;
    char id[BATCH_JOB_MAX + 64];
    int64_t sent_us;     /* last send; 0 = waiting for retry_at_us */
    int64_t retry_at_us; /* > 0: send again then */
} slot;

typedef struct job {
    const batch_opts *o;
    batch_state st;
    kinfer_client c;
    kinfer_codec_encoder *enc;
    kinfer_codec_decoder *dec;
    slot *slots;
    uint32_t nslots, in_flight;
    char prefix[BATCH_JOB_MAX + 32]; /* "<job>.<run>." */
    size_t prefix_len;
    float *scratch;
    size_t scratch_cap;
    int64_t last_commit_us;
    kinfer_error err;
    bool failed; /* a Kafka or file failure: stop */
} job;

static int64_t now_us(void) {
    return kinfer_mono_us();
}

static void sleep_us(int64_t us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

static void slot_free(job *j, slot *s) {
    batch_line_free(&s->line);
    memset(s, 0, sizeof(*s));
    j->in_flight--;
}

static void write_line(job *j, uint64_t lineno, bool ok, char *line) {
    if (!line) {
        kinfer_error_set(&j->err, KINFER_ERR_NOMEM, "out of memory");
        j->failed = true;
        return;
    }
    if (batch_state_append(&j->st, lineno, ok, line, &j->err) != KINFER_OK)
        j->failed = true;
    free(line);
}

static void write_error(job *j, uint64_t lineno, const char *custom_id, const char *request_id,
                        int http, const char *code, const char *msg) {
    write_line(j, lineno, false,
               batch_output_error(j->st.job, lineno, custom_id, request_id, http, code, msg));
}

/* Encodes and produces the slot's next attempt. */
static void send_slot(job *j, slot *s) {
    s->attempt++;
    snprintf(s->id, sizeof s->id, "%s%" PRIu64 ".%u", j->prefix, s->lineno, s->attempt);
    kinfer_str strs[BATCH_MAX_TEXTS];
    for (size_t i = 0; i < s->line.ntexts; i++)
        strs[i] = (kinfer_str){s->line.texts[i], strlen(s->line.texts[i])};
    kinfer_tensor t;
    memset(&t, 0, sizeof t);
    t.name = (kinfer_str){"text", 4};
    t.dtype = KINFER_DTYPE_STRING;
    t.ndim = 1;
    t.shape[0] = (int64_t)s->line.ntexts;
    t.strings = strs;
    t.nstrings = s->line.ntexts;
    kinfer_codec_request req;
    memset(&req, 0, sizeof req);
    req.id = (kinfer_str){s->id, strlen(s->id)};
    req.model = (kinfer_str){s->line.model, strlen(s->line.model)};
    if (s->line.url == BATCH_URL_EMBEDDINGS) {
        req.inputs = &t;
        req.ninputs = 1;
    } else { /* a generation: only its final reply comes (stream false) */
        if (s->line.prompt) {
            req.has_prompt = true;
            req.prompt = (kinfer_str){s->line.prompt, strlen(s->line.prompt)};
        }
        req.messages = s->line.nmessages ? s->line.messages : NULL;
        req.nmessages = s->line.nmessages;
        req.has_generation = true;
        req.generation = s->line.gen;
    }
    req.priority = j->o->priority;
    if (j->o->deadline_ms > 0) {
        req.has_deadline = true;
        req.deadline_ms = kinfer_wall_ms() + j->o->deadline_ms;
    }
    req.has_reply_to = true;
    req.reply_to = (kinfer_str){j->o->reply_topic, strlen(j->o->reply_topic)};
    kinfer_codec_frame frame = {0};
    frame.framing = KINFER_CODEC_FRAMING_BARE;
    const uint8_t *buf;
    size_t len;
    kinfer_error e;
    if (kinfer_codec_request_encode(j->enc, &req, &frame, &buf, &len, &e) != KINFER_OK) {
        /* e.g. a model name the codec refuses: this line's error only */
        write_error(j, s->lineno, s->line.custom_id, NULL, 0, "invalid_body", e.msg);
        slot_free(j, s);
        return;
    }
    if (kinfer_client_produce(&j->c, j->o->topic, s->id, strlen(s->id), buf, len, NULL, &j->err) !=
        KINFER_OK) {
        j->failed = true;
        return;
    }
    s->sent_us = now_us();
    s->retry_at_us = 0;
}

static slot *find_slot(job *j, uint64_t lineno) {
    for (uint32_t i = 0; i < j->nslots; i++)
        if (j->slots[i].used && j->slots[i].lineno == lineno)
            return &j->slots[i];
    return NULL;
}

/* "<prefix><line>.<attempt>" -> line; 0 when not this run's. */
static uint64_t reply_lineno(const job *j, kinfer_str id) {
    if (id.len <= j->prefix_len || memcmp(id.ptr, j->prefix, j->prefix_len))
        return 0;
    uint64_t n = 0;
    size_t i = j->prefix_len;
    for (; i < id.len && id.ptr[i] >= '0' && id.ptr[i] <= '9'; i++)
        n = n * 10 + (uint64_t)(id.ptr[i] - '0');
    return i < id.len && id.ptr[i] == '.' ? n : 0;
}

static const kinfer_tensor *find_output(const kinfer_codec_response *r, const char *name) {
    for (size_t i = 0; i < r->noutputs; i++)
        if (r->outputs[i].name.len == strlen(name) &&
            !memcmp(r->outputs[i].name.ptr, name, r->outputs[i].name.len))
            return &r->outputs[i];
    return NULL;
}

static const char *finish_name(int f) {
    static const char *names[] = {"stop", "length", "deadline", "cancelled", "error"};
    return f >= 0 && f < 5 ? names[f] : "error";
}

static void on_ok_reply(job *j, slot *s, const kinfer_codec_response *r) {
    if (s->line.url != BATCH_URL_EMBEDDINGS) {
        if (!r->has_generation) {
            char msg[400];
            snprintf(msg, sizeof msg,
                     "model '%s' returned no generation: it is not a generative model",
                     s->line.model);
            write_error(j, s->lineno, s->line.custom_id, s->id, 400, "invalid_model", msg);
            return;
        }
        const kinfer_codec_generation *g = &r->generation;
        write_line(j, s->lineno, true,
                   batch_output_generation(j->st.job, s->lineno, s->line.custom_id, s->id,
                                           s->line.model, s->line.url == BATCH_URL_CHAT_COMPLETIONS,
                                           g->text.ptr, g->text.len, finish_name(g->finish_reason),
                                           g->prompt_tokens, g->completion_tokens));
        return;
    }
    const kinfer_tensor *e = find_output(r, "embedding");
    if (!e || e->dtype != KINFER_DTYPE_FP32 || e->ndim != 2 ||
        e->shape[0] != (int64_t)s->line.ntexts) {
        char names[200] = "";
        for (size_t i = 0; i < r->noutputs; i++) {
            size_t l = strlen(names);
            snprintf(names + l, sizeof names - l, "%s%.*s", i ? ", " : "",
                     (int)r->outputs[i].name.len, r->outputs[i].name.ptr);
        }
        char msg[400];
        snprintf(msg, sizeof msg,
                 "model '%s' returned no FP32 'embedding' output [%zu, dim] (outputs: %s): it "
                 "is not an embedding model",
                 s->line.model, s->line.ntexts, names[0] ? names : "none");
        write_error(j, s->lineno, s->line.custom_id, s->id, 400, "invalid_model", msg);
        return;
    }
    size_t n = (size_t)(e->shape[0] * e->shape[1]);
    if (n > j->scratch_cap) {
        float *ns = realloc(j->scratch, n * sizeof(float));
        if (!ns) {
            kinfer_error_set(&j->err, KINFER_ERR_NOMEM, "out of memory");
            j->failed = true;
            return;
        }
        j->scratch = ns;
        j->scratch_cap = n;
    }
    memcpy(j->scratch, e->data, n * sizeof(float)); /* the view may be unaligned */
    write_line(j, s->lineno, true,
               batch_output_embeddings(j->st.job, s->lineno, s->line.custom_id, s->id,
                                       s->line.model, j->scratch, (size_t)e->shape[0],
                                       (size_t)e->shape[1], s->line.base64));
}

static void retry_or_fail(job *j, slot *s, const char *code, int http, const char *msg) {
    if (s->attempt < j->o->attempts) {
        s->sent_us = 0;
        s->retry_at_us = now_us() + (int64_t)OVERLOAD_BACKOFF_US * s->attempt;
        return;
    }
    char m[600];
    snprintf(m, sizeof m, "%s (after %u attempts)", msg, s->attempt);
    write_error(j, s->lineno, s->line.custom_id, s->id, http, code, m);
    slot_free(j, s);
}

/* Reads replies for up to wait_ms; handles each. */
static void poll_replies(job *j, int wait_ms) {
    rd_kafka_poll(j->c.producer, 0);
    if (kinfer_client_check_auth(&j->c, &j->err) != KINFER_OK) {
        j->failed = true;
        return;
    }
    for (int k = 0; k < 1024; k++) {
        rd_kafka_message_t *m = rd_kafka_consume_queue(j->c.replies, k == 0 ? wait_ms : 0);
        if (!m)
            return;
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                fprintf(stderr, "kinfer batch: consumer: %s\n", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        kinfer_codec_response r;
        kinfer_error e;
        if (kinfer_codec_response_decode(j->dec, m->payload, m->len, &r, &e) == KINFER_OK &&
            !r.has_chunk) { /* (lines never ask for chunks; a stray one is not the answer) */
            uint64_t ln = reply_lineno(j, r.id);
            slot *s = ln ? find_slot(j, ln) : NULL;
            if (s && s->sent_us > 0) { /* else: not ours, or an old attempt's twin */
                if (r.status == 0) {
                    on_ok_reply(j, s, &r);
                    slot_free(j, s);
                } else if (r.status == 4) { /* OVERLOADED: try again later */
                    retry_or_fail(j, s, "overloaded", 429, "the worker was overloaded");
                } else {
                    char msg[600];
                    snprintf(msg, sizeof msg, "%.*s", (int)(r.has_error ? r.error.len : 0),
                             r.has_error ? r.error.ptr : "");
                    write_error(j, s->lineno, s->line.custom_id, s->id,
                                batch_wire_status_http(r.status), batch_wire_status_code(r.status),
                                msg[0] ? msg : batch_wire_status_code(r.status));
                    slot_free(j, s);
                }
            }
        }
        rd_kafka_message_destroy(m);
    }
}

/* Resends due retries and times out silent attempts. */
static void tend_slots(job *j) {
    int64_t now = now_us();
    for (uint32_t i = 0; i < j->nslots && !j->failed; i++) {
        slot *s = &j->slots[i];
        if (!s->used)
            continue;
        bool due = s->retry_at_us > 0 && now >= s->retry_at_us;
        bool late = s->sent_us > 0 && now - s->sent_us > j->o->timeout_ms * 1000;
        if (*j->o->stop && (due || late)) {
            slot_free(j, s); /* cancelled: left for a resumed run */
            continue;
        }
        if (due)
            send_slot(j, s);
        else if (late) {
            char msg[200];
            snprintf(msg, sizeof msg, "no reply within %lld ms", (long long)j->o->timeout_ms);
            if (s->attempt < j->o->attempts)
                send_slot(j, s);
            else
                retry_or_fail(j, s, "timeout", 504, msg);
        }
    }
}

static void publish_counts(job *j, uint64_t total) {
    if (!j->o->counts)
        return;
    atomic_store(&j->o->counts->total, total);
    atomic_store(&j->o->counts->completed, j->st.ndone_ok);
    atomic_store(&j->o->counts->failed, j->st.ndone_failed);
}

static void maybe_commit(job *j, bool force) {
    int64_t now = now_us();
    if (j->failed || (!force && now - j->last_commit_us < CHECKPOINT_US))
        return;
    j->last_commit_us = now;
    if (batch_state_commit(&j->st, &j->err) != KINFER_OK)
        j->failed = true;
}

static slot *free_slot(job *j) {
    for (uint32_t i = 0; i < j->nslots; i++)
        if (!j->slots[i].used)
            return &j->slots[i];
    return NULL;
}

/* Takes input line lineno: an error line at once, or a slot sent. */
static void take_line(job *j, const char *text, size_t len, uint64_t lineno) {
    slot *s = free_slot(j);
    batch_line *l = &s->line;
    int rc = j->o->text_input ? batch_line_parse_text(text, len, lineno, j->o->model, l)
                              : batch_line_parse_jsonl(text, len, j->o->model, l);
    if (rc == -2) {
        kinfer_error_set(&j->err, KINFER_ERR_NOMEM, "out of memory");
        j->failed = true;
        batch_line_free(l);
        return;
    }
    if (rc != 0) {
        char msg[600];
        snprintf(msg, sizeof msg, "line %" PRIu64 ": %s", lineno, l->error_message);
        write_error(j, lineno, l->has_custom_id ? l->custom_id : NULL, NULL, 0, l->error_code, msg);
        batch_line_free(l);
        return;
    }
    s->used = true;
    s->lineno = lineno;
    j->in_flight++;
    send_slot(j, s);
}

int batch_run(const batch_opts *o) {
    job j;
    memset(&j, 0, sizeof j);
    j.o = o;
    int status = BATCH_EXIT_FAILURE;
    FILE *in = NULL;
    batch_dupes dupes = {0};
    kinfer_err rc = batch_state_open(&j.st, o->job, o->input, o->output, o->errors, &j.err);
    if (rc != KINFER_OK) {
        fprintf(stderr, "kinfer batch: %s\n", j.err.msg);
        status = rc == KINFER_ERR_INVALID_ARG ? BATCH_EXIT_USAGE : BATCH_EXIT_FAILURE;
        goto out;
    }
    if (batch_dupes_scan(&dupes, o->input, o->text_input, &j.err) != KINFER_OK) {
        fprintf(stderr, "kinfer batch: %s\n", j.err.msg);
        goto out;
    }
    if (batch_state_start_run(&j.st, &j.err) != KINFER_OK) {
        fprintf(stderr, "kinfer batch: %s\n", j.err.msg);
        goto out;
    }
    snprintf(j.prefix, sizeof j.prefix, "%s.%u.", j.st.job, j.st.run);
    j.prefix_len = strlen(j.prefix);
    fprintf(stderr, "kinfer batch: job %s, %s%" PRIu64 " lines (%" PRIu64 " already done)\n",
            j.st.job, j.st.resumed ? "resumed, " : "", dupes.nlines,
            j.st.ndone_ok + j.st.ndone_failed);
    j.nslots = o->max_in_flight;
    j.slots = calloc(j.nslots, sizeof(*j.slots));
    if (!j.slots || kinfer_codec_encoder_new(&j.enc, &j.err) != KINFER_OK ||
        kinfer_codec_decoder_new(NULL, NULL, &j.dec, &j.err) != KINFER_OK) {
        fprintf(stderr, "kinfer batch: %s\n", j.slots ? j.err.msg : "out of memory");
        goto out;
    }
    if (kinfer_client_open(&j.c, o->brokers, o->reply_topic, o->props, o->nprops, 10000, &j.err) !=
            KINFER_OK ||
        kinfer_client_prepare_topic(&j.c, o->topic, 10000, &j.err) != KINFER_OK) {
        fprintf(stderr, "kinfer batch: %s\n", j.err.msg);
        status = j.err.code == KINFER_ERR_INVALID_ARG ? BATCH_EXIT_USAGE : BATCH_EXIT_FAILURE;
        goto out;
    }
    in = fopen(o->input, "r");
    if (!in) {
        fprintf(stderr, "kinfer batch: open %s: %s\n", o->input, strerror(errno));
        goto out;
    }
    batch_progress prog;
    batch_progress_init(&prog, stderr, o->progress, dupes.nlines, j.st.ndone_ok + j.st.ndone_failed,
                        now_us());
    j.last_commit_us = now_us();
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    uint64_t lineno = 0;
    int64_t t0 = now_us();
    uint64_t sent_this_run = 0;
    bool eof = false;
    while (!j.failed) {
        if (*o->stop >= 2)
            break;
        /* Send while the window, the rate and the input allow. */
        while (!eof && !j.failed && *o->stop == 0 && j.in_flight < j.nslots) {
            if (o->rate > 0 && (double)sent_this_run >= o->rate * (double)(now_us() - t0) / 1e6)
                break;
            if ((n = getline(&line, &cap, in)) <= 0) {
                eof = true;
                break;
            }
            lineno++;
            size_t len = (size_t)n;
            if (len && line[len - 1] == '\n')
                len--;
            if (len && line[len - 1] == '\r')
                len--;
            if (batch_state_is_done(&j.st, lineno))
                continue;
            if (!o->text_input && len == 0) {
                write_error(&j, lineno, NULL, NULL, 0, "invalid_json", "empty line");
                continue;
            }
            const char *first = batch_dupes_first(&dupes, lineno);
            if (first) {
                char msg[700];
                snprintf(msg, sizeof msg,
                         "line %" PRIu64 ": custom_id '%.500s' is also on an earlier line: "
                         "custom_id must be unique in a batch",
                         lineno, first);
                write_error(&j, lineno, first, NULL, 0, "duplicate_custom_id", msg);
                continue;
            }
            take_line(&j, line, len, lineno);
            sent_this_run++;
        }
        if ((eof || *o->stop) && j.in_flight == 0)
            break;
        poll_replies(&j, 20);
        tend_slots(&j);
        maybe_commit(&j, false);
        batch_progress_update(&prog, j.st.ndone_ok + j.st.ndone_failed, j.st.ndone_failed,
                              j.in_flight, now_us(), false);
        publish_counts(&j, dupes.nlines);
        if (o->rate > 0 && j.in_flight == 0 && !eof)
            sleep_us(1000);
    }
    free(line);
    if (!j.failed && eof && j.in_flight == 0) {
        if (batch_state_finish(&j.st, &j.err) != KINFER_OK)
            j.failed = true;
    } else {
        maybe_commit(&j, true);
    }
    batch_progress_update(&prog, j.st.ndone_ok + j.st.ndone_failed, j.st.ndone_failed, j.in_flight,
                          now_us(), true);
    batch_progress_end(&prog);
    publish_counts(&j, dupes.nlines);
    if (j.failed) {
        fprintf(stderr, "kinfer batch: %s (run it again with --job %s to resume)\n", j.err.msg,
                j.st.job);
        status = BATCH_EXIT_FAILURE;
    } else if (j.st.finished) {
        fprintf(stderr,
                "kinfer batch: job %s completed: %" PRIu64 " lines, %" PRIu64 " ok in %s, %" PRIu64
                " failed in %s\n",
                j.st.job, j.st.ndone_ok + j.st.ndone_failed, j.st.ndone_ok, o->output,
                j.st.ndone_failed, o->errors);
        status = BATCH_EXIT_DONE;
    } else {
        fprintf(stderr,
                "kinfer batch: job %s cancelled with %u lines in flight (%" PRIu64
                " done); run it again with --job %s to finish it\n",
                j.st.job, j.in_flight, j.st.ndone_ok + j.st.ndone_failed, j.st.job);
        status = BATCH_EXIT_CANCELLED;
    }
out:
    if (in)
        fclose(in);
    for (uint32_t i = 0; j.slots && i < j.nslots; i++)
        batch_line_free(&j.slots[i].line);
    free(j.slots);
    free(j.scratch);
    kinfer_client_close(&j.c);
    if (j.enc)
        kinfer_codec_encoder_destroy(j.enc);
    if (j.dec)
        kinfer_codec_decoder_destroy(j.dec);
    batch_dupes_free(&dupes);
    batch_state_close(&j.st);
    return status;
}
