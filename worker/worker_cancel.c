/* worker_cancel.c — cancel records (README "The wire contract"): the
 * registry of generations in flight on this worker, keyed by request id,
 * and what a record with the kinfer-cancel header does.
 *
 * A generation's msg is added on the poll thread just before
 * kinfer_engine_submit and removed on submit failure or when its final
 * completion arrives (worker_reply.c), before anything can free it. A
 * cancel record looks its id up and calls kinfer_engine_cancel while
 * holding the registry lock, so the msg (the engine's token) cannot
 * complete and be freed meanwhile. Lock order: registry lock, then the
 * engine's own lock (inside kinfer_engine_cancel); the engine calls the
 * worker back (completions, chunks, congestion) with none of its locks
 * held, and never from inside kinfer_engine_cancel, so a completion that
 * waits for the registry lock waits for no one who waits for it.
 *
 * The cancel record gets no reply: at-least-once marks its offset done at
 * once; exactly-once passes it through the partition's release order
 * (worker_txn.c) as a record with nothing to produce (no_record), which
 * the producer thread settles in order like any reply. Not the engine's
 * cancel (scheduler/engine_gen_submit.c). */
#include <stdlib.h>
#include <string.h>

#include "kinfer/kinfer_log.h"
#include "worker_internal.h"

static size_t bucket_of(kinfer_str id) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < id.len; i++)
        h = (h ^ (uint8_t)id.ptr[i]) * 16777619u;
    return h % KINFER_WORKER_GENS_BUCKETS;
}

static bool str_eq(kinfer_str a, kinfer_str b) {
    return a.len == b.len && (!a.len || !memcmp(a.ptr, b.ptr, a.len));
}

void kinfer_worker_gens_init(kinfer_worker_gens *g) {
    pthread_mutex_init(&g->lock, NULL);
    memset(g->buckets, 0, sizeof g->buckets);
}

void kinfer_worker_gens_destroy(kinfer_worker_gens *g) {
    pthread_mutex_destroy(&g->lock);
}

void kinfer_worker_gens_add(kinfer_worker *w, kinfer_worker_msg *msg) {
    kinfer_worker_gens *g = &w->gens;
    kinfer_worker_msg **head = &g->buckets[bucket_of(msg->id)];
    pthread_mutex_lock(&g->lock);
    msg->gen_next = *head;
    if (*head)
        (*head)->gen_pprev = &msg->gen_next;
    msg->gen_pprev = head;
    *head = msg;
    msg->gen_registered = true;
    pthread_mutex_unlock(&g->lock);
}

void kinfer_worker_gens_remove(kinfer_worker *w, kinfer_worker_msg *msg) {
    if (!msg->gen_registered) /* set before submit, so before any completion */
        return;
    kinfer_worker_gens *g = &w->gens;
    pthread_mutex_lock(&g->lock);
    if (msg->gen_pprev) {
        *msg->gen_pprev = msg->gen_next;
        if (msg->gen_next)
            msg->gen_next->gen_pprev = msg->gen_pprev;
        msg->gen_pprev = NULL;
        msg->gen_next = NULL;
    }
    pthread_mutex_unlock(&g->lock);
}

/* Cancels every generation in flight with this id (and model, when the
 * record names one). Returns how many the engine accepted. Poll thread. */
static size_t gens_cancel(kinfer_worker *w, kinfer_str id, kinfer_str model) {
    kinfer_worker_gens *g = &w->gens;
    size_t n = 0;
    pthread_mutex_lock(&g->lock);
    for (kinfer_worker_msg *m = g->buckets[bucket_of(id)]; m; m = m->gen_next) {
        if (!str_eq(m->id, id) || (model.len && !str_eq(m->model, model)))
            continue;
        kinfer_error err;
        if (kinfer_engine_cancel(w->engine, m, &err) == KINFER_OK)
            n++;
        else /* finishing already: its final reply is on its way */
            KINFER_LOGD("worker.cancel_late", "id=%.*s error=\"%s\"", (int)id.len, id.ptr, err.msg);
    }
    pthread_mutex_unlock(&g->lock);
    return n;
}

bool kinfer_worker_cancel_record(kinfer_worker *w, rd_kafka_message_t *rkm,
                                 kinfer_worker_part *part, const kinfer_worker_offset_ref *ref,
                                 const kinfer_codec_request *req) {
    size_t n = gens_cancel(w, req->id, req->model);
    int idlen = (int)(req->id.len > 128 ? 128 : req->id.len);
    if (n) {
        kinfer_worker_metrics_cancelled(w->metrics, n);
        KINFER_LOGI("worker.cancel", "topic=%s partition=%d offset=%lld id=%.*s generations=%zu",
                    rd_kafka_topic_name(rkm->rkt), (int)rkm->partition, (long long)rkm->offset,
                    idlen, req->id.ptr, n);
    } else {
        KINFER_LOGD("worker.cancel_unknown",
                    "topic=%s partition=%d offset=%lld id=%.*s action=\"none: not in flight here\"",
                    rd_kafka_topic_name(rkm->rkt), (int)rkm->partition, (long long)rkm->offset,
                    idlen, req->id.ptr);
    }
    if (!w->eos) {
        kinfer_worker_offset_done(ref);
        rd_kafka_message_destroy(rkm);
        return true;
    }
    kinfer_worker_msg *msg = kinfer_worker_msg_new(w, rkm, part, ref, NULL);
    if (!msg)
        return false;
    msg->no_record = true;
    kinfer_worker_produce(msg); /* the release order settles it (worker_txn.c) */
    return true;
}
