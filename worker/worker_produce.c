/* worker_produce.c — the one produce path, for replies and dead letters in
 * both delivery modes. Whoever finishes a record (an engine thread's
 * completion; the poll thread for early error replies and dead letters)
 * calls kinfer_worker_produce, which only appends it to the bounded
 * hand-off (worker_handoff.h) — exactly-once first passes it through the
 * partition's release order (worker_txn.c) — and never touches librdkafka's
 * queue. One producer thread, "kinfer-produce", moves records from the
 * hand-off into librdkafka, serves the delivery reports, and when
 * librdkafka refuses a record (QUEUE_FULL) keeps it at the front and tries
 * again once a delivery report has made room; meanwhile produce_blocked
 * makes the poll loop pause the partitions (worker_backpressure.c), so
 * engine threads keep computing and expiring up to the in-flight window
 * and nothing sleeps on a full queue. The too-large fallback of dead
 * letters is here, once.
 *
 * Why a thread of its own and not the poll thread: the poll thread blocks
 * in rd_kafka_consumer_poll and inside rebalance callbacks (a revoke waits
 * up to worker.drain_timeout_ms for that partition's replies, which this
 * thread produces) and exactly-once commits; records would wait behind
 * those. The delivery-report thread existed already; owning the produce
 * too, it is the one thread that talks to librdkafka's producer queue
 * (flushes aside), and it wakes on both a new record (the hand-off's pipe)
 * and a delivery report (librdkafka's queue event on the same pipe). */
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "kinfer/kinfer_clock.h"
#include "kinfer/kinfer_log.h"
#include "worker_internal.h"

/* Waiting time of the producer thread: short while a record waits for room
 * (delivery reports wake it anyway), long when idle (a push wakes it). */
#define PRODUCER_BLOCKED_WAIT_MS 5
#define PRODUCER_IDLE_WAIT_MS 100
/* Records produced per hold of txn_lock, so a commit waits for at most this
 * many produce calls. */
#define PRODUCER_TXN_RUN 64

static kinfer_worker_msg *msg_of(kinfer_worker_handoff_node *node) {
    return (kinfer_worker_msg *)((char *)node - offsetof(kinfer_worker_msg, node));
}

void kinfer_worker_produce(kinfer_worker_msg *msg) {
    if (msg->w->eos && msg->is_chunk && !msg->ref.part)
        kinfer_worker_msg_abandon(msg, "duplicate offset", false); /* as its final reply */
    else if (msg->w->eos && !msg->is_chunk)
        kinfer_worker_txn_hold(msg); /* appends to the hand-off in consumption order */
    else
        /* At-least-once, and chunks in both modes: a chunk goes into the
         * open transaction at once (it finishes no offset, so it cannot
         * break the release order that the final replies keep). */
        kinfer_worker_handoff_push(&msg->w->handoff, &msg->node);
}

static rd_kafka_resp_err_t producev(kinfer_worker *w, kinfer_worker_msg *msg, void *value,
                                    size_t len, bool owned, rd_kafka_headers_t *hdrs) {
    /* An owned value goes to librdkafka as it is (F_FREE); a borrowed one
     * (a dead letter's request bytes) is copied. The key is always copied. */
    return rd_kafka_producev(w->producer, RD_KAFKA_V_TOPIC(msg->reply_topic),
                             RD_KAFKA_V_KEY(msg->out_key, msg->out_key_len),
                             RD_KAFKA_V_VALUE(value, len),
                             RD_KAFKA_V_MSGFLAGS(owned ? RD_KAFKA_MSG_F_FREE : RD_KAFKA_MSG_F_COPY),
                             RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(msg), RD_KAFKA_V_END);
}

/* Gives msg's record to librdkafka. NO_ERROR: the delivery report owns msg
 * from now on (it may already be freed: a flush on the poll thread serves
 * reports too). QUEUE_FULL: msg is unchanged, try again later. Any other
 * error: msg was abandoned. Exactly-once: caller holds txn_lock shared. */
static rd_kafka_resp_err_t record_produce(kinfer_worker *w, kinfer_worker_msg *msg) {
    /* Take what librdkafka will own out of msg first: after a successful
     * produce msg must not be touched. The key stays valid in rkm until
     * rkm is destroyed below. */
    rd_kafka_message_t *rkm = msg->rkm;
    rd_kafka_headers_t *hdrs = msg->out_hdrs;
    void *value = msg->out_value;
    size_t len = msg->out_len;
    bool owned = msg->out_value_owned;
    bool in_txn = w->eos;
    msg->rkm = NULL;
    msg->out_hdrs = NULL;
    msg->out_value = NULL;
    msg->out_value_owned = false;
    if (in_txn) {
        msg->in_txn = true;
        atomic_fetch_add(&w->txn_outstanding, 1);
        atomic_fetch_add(&w->txn_produced, 1);
    }
    rd_kafka_resp_err_t rerr = producev(w, msg, value, len, owned, hdrs);
    if (rerr == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE && msg->is_dlq) {
        /* A dead letter larger than the producer may send: keep the key and
         * the headers (with the reason saying so), drop the value. */
        kinfer_error err;
        if (kinfer_worker_dlq_value_dropped(hdrs, len, &err) == KINFER_OK) {
            KINFER_LOGW("worker.dead_letter_truncated",
                        "topic=%s partition=%d offset=%lld dlq=%s dropped_bytes=%zu",
                        msg->part->topic, (int)msg->partition, (long long)msg->offset,
                        msg->reply_topic, len);
            if (owned)
                free(value);
            value = NULL;
            len = 0;
            owned = false;
            rerr = producev(w, msg, NULL, 0, false, hdrs);
        }
    }
    if (rerr == RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (rkm) /* a chunk has none */
            rd_kafka_message_destroy(rkm);
        return rerr;
    }
    /* Not taken: the record is msg's again. */
    msg->rkm = rkm;
    msg->out_hdrs = hdrs;
    msg->out_value = value;
    msg->out_len = len;
    msg->out_value_owned = owned;
    if (in_txn) {
        msg->in_txn = false;
        atomic_fetch_sub(&w->txn_outstanding, 1);
    }
    if (rerr != RD_KAFKA_RESP_ERR__QUEUE_FULL)
        kinfer_worker_msg_abandon(msg, rd_kafka_err2str(rerr), true); /* eos: sets txn_abort */
    return rerr;
}

/* Produces what waits in the hand-off, in order, until it is empty or
 * librdkafka's queue is full. Returns true when a record is left waiting
 * for room. Producer thread. */
static bool produce_waiting(kinfer_worker *w) {
    bool blocked = false;
    int run = 0;
    kinfer_worker_handoff_node *node;
    while ((node = kinfer_worker_handoff_pop(&w->handoff))) {
        kinfer_worker_msg *msg = msg_of(node);
        if (w->eos && run == 0)
            pthread_rwlock_rdlock(&w->txn_lock); /* a commit in progress: wait for it */
        if (w->eos && kinfer_worker_txn_stale(msg)) {
            kinfer_worker_msg_abandon(msg, "stale generation (aborted or revoked)", false);
        } else if (msg->no_record) {
            /* A cancel record, next in its partition's order: done. */
            kinfer_worker_offset_done(&msg->ref);
            kinfer_worker_msg_free(msg);
        } else if (record_produce(w, msg) == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            kinfer_worker_handoff_push_front(&w->handoff, node);
            kinfer_worker_metrics_queue_full(w->metrics);
            blocked = true;
        }
        if (w->eos && (blocked || ++run == PRODUCER_TXN_RUN)) {
            pthread_rwlock_unlock(&w->txn_lock);
            run = 0;
        }
        if (blocked)
            break;
    }
    if (w->eos && run)
        pthread_rwlock_unlock(&w->txn_lock);
    if (blocked != (bool)atomic_load(&w->produce_blocked)) {
        atomic_store(&w->produce_blocked, blocked);
        KINFER_LOGD("worker.produce_blocked", "blocked=%d waiting=%zu", (int)blocked,
                    kinfer_worker_handoff_len(&w->handoff, NULL));
    }
    return blocked;
}

/* At shutdown, past the stop budget: what still waits is left for
 * redelivery (offsets uncommitted), loudly. */
static void abandon_waiting(kinfer_worker *w) {
    kinfer_worker_handoff_node *node;
    while ((node = kinfer_worker_handoff_pop(&w->handoff)))
        kinfer_worker_msg_abandon(msg_of(node), "not produced before the worker stopped", true);
}

static void *producer_main(void *arg) {
    kinfer_worker *w = arg;
    /* Named so that per-thread CPU accounting (bench/pipeline_bench.sh) can
     * tell the Kafka side from the engine threads. */
    pthread_setname_np(pthread_self(), "kinfer-produce");
    struct pollfd pfd = {.fd = kinfer_worker_handoff_fd(&w->handoff), .events = POLLIN};
    int64_t give_up_us = 0;
    for (;;) {
        kinfer_worker_handoff_clear_wake(&w->handoff);
        rd_kafka_poll(w->producer, 0); /* delivery reports: make room, finish offsets */
        bool blocked = produce_waiting(w);
        if (atomic_load(&w->producer_stop)) {
            if (!kinfer_worker_handoff_len(&w->handoff, NULL))
                break;
            int64_t now = kinfer_mono_us();
            if (!give_up_us)
                give_up_us = now + w->producer_stop_ms * 1000;
            else if (now >= give_up_us) {
                abandon_waiting(w);
                break;
            }
        }
        poll(&pfd, 1, blocked ? PRODUCER_BLOCKED_WAIT_MS : PRODUCER_IDLE_WAIT_MS);
    }
    rd_kafka_poll(w->producer, 0);
    return NULL;
}

kinfer_err kinfer_worker_producer_start(kinfer_worker *w, kinfer_error *err) {
    /* librdkafka writes a byte to the hand-off's pipe when a delivery
     * report (or any event) lands in its empty main queue, so one poll()
     * waits for both. */
    w->producer_events = rd_kafka_queue_get_main(w->producer);
    if (!w->producer_events)
        return kinfer_error_set(err, KINFER_ERR_KAFKA, "producer: no main queue");
    rd_kafka_queue_io_event_enable(w->producer_events, w->handoff.fd[1], "d", 1);
    if (w->producer_stop_ms <= 0)
        w->producer_stop_ms = 5000;
    if (pthread_create(&w->producer_thread, NULL, producer_main, w))
        return kinfer_error_set(err, KINFER_ERR_INTERNAL, "cannot start the producer thread");
    w->producer_started = true;
    return KINFER_OK;
}

bool kinfer_worker_producer_drain(kinfer_worker *w, int64_t timeout_ms) {
    int64_t until = kinfer_mono_us() + timeout_ms * 1000;
    while (kinfer_worker_handoff_len(&w->handoff, NULL)) {
        if (kinfer_mono_us() >= until)
            return false;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return true;
}

void kinfer_worker_producer_stop(kinfer_worker *w) {
    if (w->producer_started) {
        atomic_store(&w->producer_stop, 1);
        kinfer_worker_handoff_wake(&w->handoff);
        pthread_join(w->producer_thread, NULL);
        w->producer_started = false;
    }
    abandon_waiting(w); /* only when the thread never ran (a failed start) */
    if (w->producer_events) {
        rd_kafka_queue_io_event_enable(w->producer_events, -1, NULL, 0);
        rd_kafka_queue_destroy(w->producer_events);
        w->producer_events = NULL;
    }
}

void kinfer_worker_on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque) {
    (void)rk;
    (void)opaque;
    kinfer_worker_msg *msg = rkm->_private;
    if (!msg)
        return;
    kinfer_worker *w = msg->w;
    bool in_txn = msg->in_txn;
    if (rkm->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE ||
        rkm->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT) {
        /* Purged by a transaction abort: that abort already rewinds. */
        kinfer_worker_msg_abandon(msg, rd_kafka_err2str(rkm->err), false);
        if (in_txn)
            atomic_fetch_sub(&w->txn_outstanding, 1);
        return;
    }
    if (rkm->err) {
        char why[256];
        snprintf(why, sizeof why, "%s %s: %s",
                 msg->is_dlq     ? "dead letter to"
                 : msg->is_chunk ? "chunk reply to"
                                 : "reply to",
                 rd_kafka_topic_name(rkm->rkt), rd_kafka_err2str(rkm->err));
        kinfer_worker_msg_abandon(msg, why, true);
        if (in_txn)
            atomic_fetch_sub(&w->txn_outstanding, 1);
        return;
    }
    if (msg->is_chunk) {
        kinfer_worker_msg_free(msg);
        if (in_txn)
            atomic_fetch_sub(&w->txn_outstanding, 1);
        return;
    }
    kinfer_worker_offset_done(&msg->ref);
    if (msg->is_dlq)
        kinfer_worker_metrics_dlq(w->metrics);
    else
        kinfer_worker_metrics_reply(w->metrics, msg->model_idx, msg->wire_status);
    kinfer_worker_metrics_e2e(w->metrics, kinfer_mono_us() - msg->consumed_us);
    kinfer_worker_msg_free(msg);
    if (in_txn) /* last: the committer reads watermarks once this is 0 */
        atomic_fetch_sub(&w->txn_outstanding, 1);
}
