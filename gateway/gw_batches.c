/* gw_batches.c — /v1/batches with the state in Kafka.
 *
 * Every batch object is a message keyed by its id on a compacted state
 * topic; each gateway reads the topic from the beginning into a map and
 * answers create/retrieve/list/cancel from it, so any instance answers for
 * any batch. The instance that creates a batch runs it with the `kinfer
 * batch` loop (batch_run.h) over the input file in the files directory,
 * its output, errors and journal beside it; a runner holds an flock on
 * <dir>/<batch>.lock for its lifetime. Every few seconds each instance
 * offers to run every unfinished batch nobody runs (the lock says), so a
 * batch whose gateway died resumes from its journal on another (or the
 * restarted) instance without losing or repeating a line.
 *
 * Life cycle: validating (created) -> in_progress (its runner started) ->
 * finalizing (every line done) -> completed (output_file_id, and
 * error_file_id when a line failed); failed (the input file is missing);
 * cancelling (cancel asked) -> cancelled (with what finished). request_counts
 * {total, completed, failed} follow the runner. completion_window is "24h"
 * and no batch expires. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "batch_run.h"
#include "gateway.h"

#define TAKEOVER_EVERY_US 3000000
#define COUNTS_EVERY_US 500000

typedef struct runner {
    char id[80];
    gw_batches *owner;
    pthread_t thread;
    volatile sig_atomic_t stop;
    atomic_bool cancel_asked, finished;
    batch_counts counts;
    struct runner *next;
} runner;

struct gw_batches {
    const gw_opts *o;
    rd_kafka_t *producer, *consumer;
    pthread_mutex_t mu;
    json_t *map; /* id -> batch object */
    runner *runners;
    atomic_bool stop;
    pthread_t thread;
    bool started;
    char reply_topic[300];
    /* Per state-topic partition: the next offset the map has applied
     * (written by the state thread). A runner waits until the map has
     * caught up with the topic's end before it trusts a status. */
    int nparts;
    _Atomic int64_t *applied;
};

static const char *str(json_t *o, const char *k) {
    return json_string_value(json_object_get(o, k));
}

static bool unfinished(const char *status) {
    return status && (!strcmp(status, "validating") || !strcmp(status, "in_progress") ||
                      !strcmp(status, "finalizing") || !strcmp(status, "cancelling"));
}

/* Produces obj (keyed by its id) and waits until the broker has it; then the
 * local map holds it too. Returns 0 or -1. */
static int publish(gw_batches *b, json_t *obj) {
    char *text = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    const char *id = str(obj, "id");
    if (!text || !id) {
        free(text);
        return -1;
    }
    rd_kafka_resp_err_t e =
        rd_kafka_producev(b->producer, RD_KAFKA_V_TOPIC(b->o->state_topic),
                          RD_KAFKA_V_KEY(id, strlen(id)), RD_KAFKA_V_VALUE(text, strlen(text)),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    free(text);
    if (e || rd_kafka_flush(b->producer, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, "kinfer gateway: state topic %s: %s\n", b->o->state_topic,
                rd_kafka_err2str(e ? e : RD_KAFKA_RESP_ERR__TIMED_OUT));
        return -1;
    }
    pthread_mutex_lock(&b->mu);
    json_object_set(b->map, id, obj);
    pthread_mutex_unlock(&b->mu);
    return 0;
}

/* A copy of the batch (NULL when unknown). */
static json_t *lookup(gw_batches *b, const char *id) {
    pthread_mutex_lock(&b->mu);
    json_t *o = json_object_get(b->map, id);
    json_t *c = o ? json_deep_copy(o) : NULL;
    pthread_mutex_unlock(&b->mu);
    return c;
}

static void set_counts(json_t *obj, const batch_counts *c) {
    json_t *rc = json_object();
    json_object_set_new(rc, "total", json_integer((json_int_t)atomic_load(&c->total)));
    json_object_set_new(rc, "completed", json_integer((json_int_t)atomic_load(&c->completed)));
    json_object_set_new(rc, "failed", json_integer((json_int_t)atomic_load(&c->failed)));
    json_object_set_new(obj, "request_counts", rc);
}

static void set_time(json_t *obj, const char *key) {
    json_object_set_new(obj, key, json_integer((json_int_t)time(NULL)));
}

static void set_status(json_t *obj, const char *status) {
    json_object_set_new(obj, "status", json_string(status));
}

static void paths(const gw_batches *b, const char *id, char *out, char *errs, char *lock,
                  size_t cap) {
    snprintf(out, cap, "%s/%s.output.jsonl", b->o->files_dir, id);
    snprintf(errs, cap, "%s/%s.errors.jsonl", b->o->files_dir, id);
    snprintf(lock, cap, "%s/%s.lock", b->o->files_dir, id);
}

static void fail_batch(gw_batches *b, json_t *obj, const char *code, const char *msg) {
    json_t *errors = json_object();
    json_object_set_new(errors, "object", json_string("list"));
    json_t *e = json_object();
    json_object_set_new(e, "code", json_string(code));
    json_object_set_new(e, "message", json_string(msg));
    json_object_set_new(e, "param", json_string("input_file_id"));
    json_object_set_new(e, "line", json_null());
    json_t *data = json_array();
    json_array_append_new(data, e);
    json_object_set_new(errors, "data", data);
    json_object_set_new(obj, "errors", errors);
    set_status(obj, "failed");
    set_time(obj, "failed_at");
    publish(b, obj);
}

/* After the loop: output (and errors) become files; the final status. */
static void finalize(gw_batches *b, runner *r, json_t *obj, const char *final_status,
                     const char *out, const char *errs) {
    if (!strcmp(final_status, "completed")) {
        set_status(obj, "finalizing");
        set_time(obj, "finalizing_at");
        publish(b, obj);
    }
    kinfer_error err;
    json_t *f = NULL;
    char name[200];
    snprintf(name, sizeof name, "%s_output.jsonl", r->id);
    if (gw_files_adopt(b->o->files_dir, out, name, "batch_output", &f, &err) == KINFER_OK) {
        json_object_set_new(obj, "output_file_id", json_string(str(f, "id")));
        json_decref(f);
    }
    struct stat sb;
    if (stat(errs, &sb) == 0 && sb.st_size > 0) {
        snprintf(name, sizeof name, "%s_errors.jsonl", r->id);
        if (gw_files_adopt(b->o->files_dir, errs, name, "batch_output", &f, &err) == KINFER_OK) {
            json_object_set_new(obj, "error_file_id", json_string(str(f, "id")));
            json_decref(f);
        }
    }
    set_counts(obj, &r->counts);
    set_status(obj, final_status);
    set_time(obj, !strcmp(final_status, "completed") ? "completed_at" : "cancelled_at");
    publish(b, obj);
}

/* True once the map holds every state record written before this call:
 * a runner that took a batch's lock right after its previous runner
 * finished must see that runner's last status (publish flushes before the
 * lock is released), or it would run a finished batch again and finalize
 * it a second time (a new output file). */
static bool caught_up(gw_batches *b, int timeout_ms) {
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int p = 0; p < b->nparts; p++) {
        int64_t lo = 0, hi = 0;
        if (rd_kafka_query_watermark_offsets(b->consumer, b->o->state_topic, p, &lo, &hi,
                                             timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR)
            return false;
        while (hi > lo && atomic_load(&b->applied[p]) < hi) {
            clock_gettime(CLOCK_MONOTONIC, &now);
            if ((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000 > timeout_ms)
                return false;
            struct timespec ts = {0, 20000000};
            nanosleep(&ts, NULL);
        }
    }
    return true;
}

static void *run_batch(void *arg) {
    runner *r = arg;
    gw_batches *b = r->owner;
    char out[4200], errs[4200], lock[4200], input[4200];
    paths(b, r->id, out, errs, lock, sizeof out);
    int lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lfd < 0 || flock(lfd, LOCK_EX | LOCK_NB) != 0) {
        if (lfd >= 0)
            close(lfd); /* another runner has it */
        atomic_store(&r->finished, true);
        return NULL;
    }
    json_t *obj = NULL;
    if (!caught_up(b, 10000)) {
        fprintf(stderr, "kinfer gateway: batch %s: state topic %s not caught up; retried later\n",
                r->id, b->o->state_topic);
        goto done;
    }
    obj = lookup(b, r->id);
    if (!obj || !unfinished(str(obj, "status")))
        goto done; /* finished meanwhile */
    const char *fid = str(obj, "input_file_id");
    struct stat sb;
    if (!fid || !gw_files_path(b->o->files_dir, fid, input, sizeof input) ||
        stat(input, &sb) != 0) {
        fail_batch(b, obj, "invalid_file", "the input file does not exist");
        goto done;
    }
    if (!strcmp(str(obj, "status"), "cancelling")) {
        r->stop = 1;
        atomic_store(&r->cancel_asked, true);
    } else if (!strcmp(str(obj, "status"), "validating")) {
        set_status(obj, "in_progress");
        set_time(obj, "in_progress_at");
        publish(b, obj);
    }
    batch_opts o;
    memset(&o, 0, sizeof o);
    o.brokers = b->o->brokers;
    o.topic = b->o->topic;
    o.reply_topic = b->o->reply_topic;
    o.input = input;
    o.output = out;
    o.errors = errs;
    o.job = r->id;
    o.max_in_flight = b->o->batch_in_flight;
    o.timeout_ms = 120000;
    o.attempts = 3;
    o.priority = -1;
    o.props = b->o->props;
    o.nprops = b->o->nprops;
    o.progress = BATCH_PROGRESS_NONE;
    o.stop = &r->stop;
    o.counts = &r->counts;
    int st = batch_run(&o);
    json_decref(obj);
    obj = lookup(b, r->id);
    if (!obj)
        goto done;
    if (st == BATCH_EXIT_DONE)
        finalize(b, r, obj, "completed", out, errs);
    else if (st == BATCH_EXIT_CANCELLED && atomic_load(&r->cancel_asked))
        finalize(b, r, obj, "cancelled", out, errs);
    else if (st == BATCH_EXIT_USAGE)
        fail_batch(b, obj, "invalid_file", "the batch's files could not be used (see the log)");
    /* else: the gateway is stopping or Kafka failed: left unfinished, resumed
     * by the next runner from its journal. */
done:
    json_decref(obj);
    close(lfd);
    atomic_store(&r->finished, true);
    return NULL;
}

/* Under no lock: starts a runner for id unless this process has one. */
static void start_runner(gw_batches *b, const char *id) {
    pthread_mutex_lock(&b->mu);
    for (runner *r = b->runners; r; r = r->next)
        if (!strcmp(r->id, id) && !atomic_load(&r->finished)) {
            pthread_mutex_unlock(&b->mu);
            return;
        }
    runner *r = calloc(1, sizeof(*r));
    if (!r) {
        pthread_mutex_unlock(&b->mu);
        return;
    }
    snprintf(r->id, sizeof r->id, "%s", id);
    r->owner = b;
    if (pthread_create(&r->thread, NULL, run_batch, r) != 0) {
        free(r);
        pthread_mutex_unlock(&b->mu);
        return;
    }
    r->next = b->runners;
    b->runners = r;
    pthread_mutex_unlock(&b->mu);
}

/* The state consumer: the map, cancels for local runners, counts, takeovers. */
static void *state_thread(void *arg) {
    gw_batches *b = arg;
    int64_t last_takeover = 0, last_counts = 0;
    while (!atomic_load(&b->stop)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(b->consumer, 100);
        if (m && !m->err && m->key && m->payload) {
            json_t *obj = json_loadb(m->payload, m->len, 0, NULL);
            const char *status = obj ? str(obj, "status") : NULL;
            if (status) {
                char id[80];
                snprintf(id, sizeof id, "%.*s", (int)m->key_len, (const char *)m->key);
                pthread_mutex_lock(&b->mu);
                json_object_set(b->map, id, obj);
                if (!strcmp(status, "cancelling"))
                    for (runner *r = b->runners; r; r = r->next)
                        if (!strcmp(r->id, id)) {
                            atomic_store(&r->cancel_asked, true);
                            r->stop = 1;
                        }
                pthread_mutex_unlock(&b->mu);
            }
            if (obj)
                json_decref(obj);
        }
        if (m && !m->err && m->partition >= 0 && m->partition < b->nparts)
            atomic_store(&b->applied[m->partition], m->offset + 1);
        if (m)
            rd_kafka_message_destroy(m);
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t now = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
        if (now - last_counts >= COUNTS_EVERY_US) {
            last_counts = now;
            /* Running batches' counts, when they moved. */
            pthread_mutex_lock(&b->mu);
            json_t *changed = json_array();
            for (runner *r = b->runners; r; r = r->next) {
                json_t *o = json_object_get(b->map, r->id);
                if (!o || atomic_load(&r->finished) || strcmp(str(o, "status"), "in_progress"))
                    continue;
                json_t *rc = json_object_get(o, "request_counts");
                if (json_integer_value(json_object_get(rc, "completed")) ==
                        (json_int_t)atomic_load(&r->counts.completed) &&
                    json_integer_value(json_object_get(rc, "failed")) ==
                        (json_int_t)atomic_load(&r->counts.failed) &&
                    json_integer_value(json_object_get(rc, "total")) ==
                        (json_int_t)atomic_load(&r->counts.total))
                    continue;
                json_t *c = json_deep_copy(o);
                set_counts(c, &r->counts);
                json_array_append_new(changed, c);
            }
            pthread_mutex_unlock(&b->mu);
            size_t i;
            json_t *c;
            json_array_foreach(changed, i, c) publish(b, c);
            json_decref(changed);
        }
        if (now - last_takeover >= TAKEOVER_EVERY_US) {
            last_takeover = now;
            pthread_mutex_lock(&b->mu);
            json_t *todo = json_array();
            const char *id;
            json_t *o;
            json_object_foreach(b->map, id, o) if (unfinished(str(o, "status")))
                json_array_append_new(todo, json_string(id));
            pthread_mutex_unlock(&b->mu);
            size_t i;
            json_t *v;
            json_array_foreach(todo, i, v) start_runner(b, json_string_value(v));
            json_decref(todo);
        }
    }
    return NULL;
}

static rd_kafka_conf_t *conf(const gw_opts *o, kinfer_error *err) {
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    char es[256];
    if (rd_kafka_conf_set(c, "bootstrap.servers", o->brokers, es, sizeof es) != RD_KAFKA_CONF_OK)
        goto bad;
    for (size_t i = 0; i < o->nprops; i++) {
        const char *eq = strchr(o->props[i], '=');
        char k[256];
        if (!eq || (size_t)(eq - o->props[i]) >= sizeof k) {
            snprintf(es, sizeof es, "-X %s: want K=V", o->props[i]);
            goto bad;
        }
        snprintf(k, sizeof k, "%.*s", (int)(eq - o->props[i]), o->props[i]);
        if (rd_kafka_conf_set(c, k, eq + 1, es, sizeof es) != RD_KAFKA_CONF_OK)
            goto bad;
    }
    return c;
bad:
    kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "%s", es);
    rd_kafka_conf_destroy(c);
    return NULL;
}

/* Creates the state topic compacted (an existing one is used as it is). */
static kinfer_err ensure_topic(gw_batches *b, kinfer_error *err) {
    char es[256];
    rd_kafka_NewTopic_t *t = rd_kafka_NewTopic_new(b->o->state_topic, 1, -1, es, sizeof es);
    if (!t)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "state topic: %s", es);
    rd_kafka_NewTopic_set_config(t, "cleanup.policy", "compact");
    rd_kafka_queue_t *q = rd_kafka_queue_new(b->producer);
    rd_kafka_CreateTopics(b->producer, &t, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 15000);
    kinfer_err rc = KINFER_OK;
    if (!ev)
        rc = kinfer_error_set(err, KINFER_ERR_KAFKA, "state topic %s: no answer from the broker",
                              b->o->state_topic);
    else {
        const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
        size_t n = 0;
        const rd_kafka_topic_result_t **tr =
            res ? rd_kafka_CreateTopics_result_topics(res, &n) : NULL;
        rd_kafka_resp_err_t e = n ? rd_kafka_topic_result_error(tr[0]) : rd_kafka_event_error(ev);
        if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
            rc = kinfer_error_set(err, KINFER_ERR_KAFKA, "create state topic %s: %s",
                                  b->o->state_topic, rd_kafka_err2str(e));
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(t);
    return rc;
}

/* Reads the state topic from the beginning (every partition). */
static kinfer_err start_consumer(gw_batches *b, kinfer_error *err) {
    rd_kafka_conf_t *c = conf(b->o, err);
    if (!c)
        return KINFER_ERR_INVALID_ARG;
    char es[256], group[128];
    snprintf(group, sizeof group, "kinfer-gateway-%s-%d", b->o->instance, (int)getpid());
    rd_kafka_conf_set(c, "group.id", group, es, sizeof es);
    rd_kafka_conf_set(c, "enable.auto.commit", "false", es, sizeof es);
    b->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, c, es, sizeof es);
    if (!b->consumer)
        return kinfer_error_set(err, KINFER_ERR_KAFKA, "consumer: %s", es);
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(b->consumer, b->o->state_topic, NULL);
    rd_kafka_resp_err_t e = rd_kafka_metadata(b->consumer, 0, rkt, &md, 10000);
    rd_kafka_topic_destroy(rkt);
    if (e || !md || md->topic_cnt != 1 || md->topics[0].err) {
        if (md)
            rd_kafka_metadata_destroy(md);
        return kinfer_error_set(err, KINFER_ERR_KAFKA, "state topic %s: %s", b->o->state_topic,
                                rd_kafka_err2str(e ? e : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC));
    }
    b->nparts = md->topics[0].partition_cnt;
    b->applied = calloc((size_t)(b->nparts ? b->nparts : 1), sizeof(*b->applied));
    if (!b->applied) {
        rd_kafka_metadata_destroy(md);
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
    }
    rd_kafka_topic_partition_list_t *list =
        rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
    for (int p = 0; p < md->topics[0].partition_cnt; p++)
        rd_kafka_topic_partition_list_add(list, b->o->state_topic, p)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_metadata_destroy(md);
    e = rd_kafka_assign(b->consumer, list);
    rd_kafka_topic_partition_list_destroy(list);
    if (e)
        return kinfer_error_set(err, KINFER_ERR_KAFKA, "assign: %s", rd_kafka_err2str(e));
    return KINFER_OK;
}

kinfer_err gw_batches_start(const gw_opts *o, gw_batches **out, kinfer_error *err) {
    gw_batches *b = calloc(1, sizeof(*b));
    if (!b)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
    b->o = o;
    pthread_mutex_init(&b->mu, NULL);
    b->map = json_object();
    kinfer_err rc = KINFER_OK;
    rd_kafka_conf_t *pc = conf(o, err);
    char es[256];
    if (!pc)
        rc = KINFER_ERR_INVALID_ARG;
    else {
        rd_kafka_conf_set(pc, "enable.idempotence", "true", es, sizeof es);
        rd_kafka_conf_set(pc, "linger.ms", "0", es, sizeof es);
        b->producer = rd_kafka_new(RD_KAFKA_PRODUCER, pc, es, sizeof es);
        if (!b->producer)
            rc = kinfer_error_set(err, KINFER_ERR_KAFKA, "producer: %s", es);
    }
    if (rc == KINFER_OK)
        rc = ensure_topic(b, err);
    if (rc == KINFER_OK)
        rc = start_consumer(b, err);
    if (rc == KINFER_OK && pthread_create(&b->thread, NULL, state_thread, b) != 0)
        rc = kinfer_error_set(err, KINFER_ERR_INTERNAL, "cannot start the state thread");
    if (rc != KINFER_OK) {
        gw_batches_stop(b);
        return rc;
    }
    b->started = true;
    *out = b;
    return KINFER_OK;
}

void gw_batches_stop(gw_batches *b) {
    if (!b)
        return;
    atomic_store(&b->stop, true);
    if (b->started)
        pthread_join(b->thread, NULL);
    /* Runners stop now and stay unfinished: resumed later from their journals. */
    for (runner *r = b->runners; r; r = r->next)
        r->stop = 2;
    for (runner *r = b->runners, *next; r; r = next) {
        next = r->next;
        pthread_join(r->thread, NULL);
        free(r);
    }
    if (b->consumer) {
        rd_kafka_consumer_close(b->consumer);
        rd_kafka_destroy(b->consumer);
    }
    if (b->producer) {
        rd_kafka_flush(b->producer, 5000);
        rd_kafka_destroy(b->producer);
    }
    json_decref(b->map);
    free(b->applied);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

int gw_batches_create(gw_batches *b, json_t *req, json_t **body) {
    if (!json_is_object(req)) {
        *body = gw_error(400, "invalid_request", "the body must be a JSON object");
        return 400;
    }
    const char *fid = str(req, "input_file_id"), *ep = str(req, "endpoint"),
               *win = str(req, "completion_window");
    json_t *meta = json_object_get(req, "metadata");
    if (!fid) {
        *body = gw_error(400, "missing_required_parameter", "input_file_id is required");
        return 400;
    }
    if (!ep || (strcmp(ep, "/v1/embeddings") && strcmp(ep, "/v1/chat/completions") &&
                strcmp(ep, "/v1/completions"))) {
        *body = gw_error(400, "invalid_value",
                         "endpoint must be /v1/embeddings, /v1/chat/completions or "
                         "/v1/completions");
        return 400;
    }
    if (!win || strcmp(win, "24h")) {
        *body = gw_error(400, "invalid_value", "completion_window must be \"24h\"");
        return 400;
    }
    if (meta && !json_is_object(meta) && !json_is_null(meta)) {
        *body = gw_error(400, "invalid_value", "metadata must be an object");
        return 400;
    }
    json_t *f = gw_files_get(b->o->files_dir, fid);
    if (!f) {
        *body = gw_error(404, "file_not_found", "no file with id '%.100s'", fid);
        return 404;
    }
    json_decref(f);
    char id[64];
    gw_new_id("batch_", id, sizeof id);
    json_int_t now = (json_int_t)time(NULL);
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "object", json_string("batch"));
    json_object_set_new(o, "endpoint", json_string(ep));
    json_object_set_new(o, "errors", json_null());
    json_object_set_new(o, "input_file_id", json_string(fid));
    json_object_set_new(o, "completion_window", json_string(win));
    json_object_set_new(o, "status", json_string("validating"));
    json_object_set_new(o, "output_file_id", json_null());
    json_object_set_new(o, "error_file_id", json_null());
    json_object_set_new(o, "created_at", json_integer(now));
    json_object_set_new(o, "in_progress_at", json_null());
    json_object_set_new(o, "expires_at", json_integer(now + 86400));
    json_object_set_new(o, "finalizing_at", json_null());
    json_object_set_new(o, "completed_at", json_null());
    json_object_set_new(o, "failed_at", json_null());
    json_object_set_new(o, "expired_at", json_null());
    json_object_set_new(o, "cancelling_at", json_null());
    json_object_set_new(o, "cancelled_at", json_null());
    batch_counts zero = {0};
    set_counts(o, &zero);
    json_object_set(o, "metadata", meta ? meta : json_null());
    if (publish(b, o) != 0) {
        json_decref(o);
        *body = gw_error(503, "kafka_unavailable", "the batch state topic cannot be written");
        return 503;
    }
    start_runner(b, id);
    *body = o;
    return 200;
}

/* Waits up to 2 s for id to reach this instance's map (another instance
 * may have created it a moment ago). */
static json_t *lookup_wait(gw_batches *b, const char *id) {
    for (int i = 0; i < 40; i++) {
        json_t *o = lookup(b, id);
        if (o)
            return o;
        struct timespec ts = {0, 50000000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

int gw_batches_get(gw_batches *b, const char *id, json_t **body) {
    json_t *o = lookup_wait(b, id);
    if (!o) {
        *body = gw_error(404, "batch_not_found", "no batch with id '%.100s'", id);
        return 404;
    }
    *body = o;
    return 200;
}

static int by_created_desc(const void *pa, const void *pb) {
    json_t *x = *(json_t *const *)pa, *y = *(json_t *const *)pb;
    json_int_t tx = json_integer_value(json_object_get(x, "created_at"));
    json_int_t ty = json_integer_value(json_object_get(y, "created_at"));
    if (tx != ty)
        return tx < ty ? 1 : -1;
    return strcmp(str(y, "id"), str(x, "id"));
}

int gw_batches_list(gw_batches *b, int limit, const char *after, json_t **body) {
    pthread_mutex_lock(&b->mu);
    size_t n = json_object_size(b->map), k = 0;
    json_t **v = malloc((n ? n : 1) * sizeof(*v));
    const char *id;
    json_t *o;
    json_object_foreach(b->map, id, o) if (v) v[k++] = json_deep_copy(o);
    pthread_mutex_unlock(&b->mu);
    if (!v) {
        *body = gw_error(500, "internal_error", "out of memory");
        return 500;
    }
    qsort(v, k, sizeof(*v), by_created_desc);
    size_t start = 0;
    if (after) {
        for (size_t i = 0; i < k; i++)
            if (!strcmp(str(v[i], "id"), after))
                start = i + 1;
    }
    json_t *data = json_array();
    size_t i;
    for (i = start; i < k && json_array_size(data) < (size_t)limit; i++)
        json_array_append(data, v[i]);
    bool more = i < k;
    json_t *list = json_object();
    json_object_set_new(list, "object", json_string("list"));
    size_t nd = json_array_size(data);
    json_object_set_new(list, "first_id",
                        nd ? json_string(str(json_array_get(data, 0), "id")) : json_null());
    json_object_set_new(list, "last_id",
                        nd ? json_string(str(json_array_get(data, nd - 1), "id")) : json_null());
    json_object_set_new(list, "has_more", json_boolean(more));
    json_object_set_new(list, "data", data);
    for (size_t j = 0; j < k; j++)
        json_decref(v[j]);
    free(v);
    *body = list;
    return 200;
}

int gw_batches_cancel(gw_batches *b, const char *id, json_t **body) {
    json_t *o = lookup_wait(b, id);
    if (!o) {
        *body = gw_error(404, "batch_not_found", "no batch with id '%.100s'", id);
        return 404;
    }
    const char *status = str(o, "status");
    if (!strcmp(status, "cancelling") || !strcmp(status, "cancelled")) {
        *body = o;
        return 200;
    }
    if (!unfinished(status) || !strcmp(status, "finalizing")) {
        *body =
            gw_error(409, "invalid_state", "batch %s is %s: it cannot be cancelled", id, status);
        json_decref(o);
        return 409;
    }
    set_status(o, "cancelling");
    set_time(o, "cancelling_at");
    if (publish(b, o) != 0) {
        json_decref(o);
        *body = gw_error(503, "kafka_unavailable", "the batch state topic cannot be written");
        return 503;
    }
    pthread_mutex_lock(&b->mu);
    for (runner *r = b->runners; r; r = r->next)
        if (!strcmp(r->id, id)) {
            atomic_store(&r->cancel_asked, true);
            r->stop = 1;
        }
    pthread_mutex_unlock(&b->mu);
    *body = o;
    return 200;
}
