/* worker_txn.c — exactly-once delivery (delivery = "exactly-once"): one
 * transactional producer per worker (transactional.id
 * "<kafka.transactional_id_prefix>-<worker.id>"), consume-transform-produce.
 *
 * Replies and dead letters are produced inside the open transaction in
 * each partition's consumption order: a finished reply whose predecessors
 * are still computing is held here, and every reply that is next in order
 * goes into the hand-off (worker_handoff.h), whose FIFO the producer thread
 * produces in order (worker_produce.c). So when the commit flushes, every
 * reply in the transaction is for an offset below the partition watermark
 * that the transaction commits (never one at or above it, which a crash
 * would otherwise answer twice). The producer thread produces holding
 * txn_lock shared; commit and reset hold it exclusively, so a reply never
 * enters a transaction between "offsets computed" and "committed"; a reply
 * of a generation reset since is dropped. Commit: flush, send_offsets_to_transaction
 * with the watermarks and the consumer's group metadata, commit. Abort:
 * abort the transaction, forget tracked offsets (in-flight results of that
 * generation are then dropped) and seek every assigned partition back to
 * its committed offset. Retriable errors of commit and abort are retried
 * until twice transaction.timeout.ms. Fatal (fenced by a newer worker with
 * the same id, a fatal producer error, a commit unanswered by the
 * deadline): the worker stops with an error. Not the at-least-once commit
 * (worker_rebalance.c). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kinfer/kinfer_clock.h"
#include "kinfer/kinfer_log.h"
#include "worker_internal.h"

/* init_transactions and the flush get this long per try. Commit, abort
 * and send_offsets pass -1 (the remaining transaction time), as
 * librdkafka's documentation insists: another value risks desynchronising
 * its state when a protocol request fails. */
#define TXN_CALL_TIMEOUT_MS 30000
#define TXN_TRIES 5
/* Pause between retries of a call that failed at once (a timed-out
 * transaction answers immediately): no busy loop while the broker is away. */
#define TXN_RETRY_PAUSE_US 100000

/* The producer's transaction.timeout.ms (librdkafka's default 60000 when it
 * cannot be read). */
static int64_t txn_timeout_ms(kinfer_worker *w) {
    char buf[32];
    size_t size = sizeof buf;
    if (rd_kafka_conf_get(rd_kafka_conf(w->producer), "transaction.timeout.ms", buf, &size) !=
        RD_KAFKA_CONF_OK)
        return 60000;
    long long v = atoll(buf);
    return v > 0 ? v : 60000;
}

/* A retriable error is retried until the deadline: by twice the
 * transaction timeout the coordinator has settled the transaction on its
 * own (aborted it), so more waiting changes nothing. */
static bool retry_before(rd_kafka_error_t *e, int64_t until_us) {
    if (!rd_kafka_error_is_retriable(e) || rd_kafka_error_txn_requires_abort(e) ||
        rd_kafka_error_is_fatal(e) || kinfer_mono_us() >= until_us)
        return false;
    usleep(TXN_RETRY_PAUSE_US);
    return true;
}

static kinfer_err txn_error(kinfer_worker *w, const char *what, rd_kafka_error_t *e,
                            kinfer_error *err) {
    kinfer_err rc =
        kinfer_error_set(err, KINFER_ERR_KAFKA, "%s: %s", what, rd_kafka_error_string(e));
    if (rd_kafka_error_is_fatal(e))
        atomic_store(&w->fatal, 1);
    rd_kafka_error_destroy(e);
    return rc;
}

kinfer_err kinfer_worker_txn_init(kinfer_worker *w, kinfer_error *err) {
    for (int attempt = 0;; attempt++) {
        rd_kafka_error_t *e = rd_kafka_init_transactions(w->producer, TXN_CALL_TIMEOUT_MS);
        if (!e)
            break;
        if (rd_kafka_error_is_retriable(e) && attempt < TXN_TRIES) {
            KINFER_LOGW("txn.init_retry", "error=\"%s\"", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
            continue;
        }
        return txn_error(w, "init_transactions", e, err);
    }
    rd_kafka_error_t *e = rd_kafka_begin_transaction(w->producer);
    if (e)
        return txn_error(w, "begin_transaction", e, err);
    w->txn_retry_us = 2 * txn_timeout_ms(w) * 1000;
    KINFER_LOGI("txn.ready", "worker=%s retry_ms=%lld", w->worker_id,
                (long long)(w->txn_retry_us / 1000));
    return KINFER_OK;
}

/* Hands the partition's held replies that are next in order to the
 * producer thread, in order. Caller holds the partition's release_lock, so
 * two threads never interleave one partition's releases. */
static void release_ready(kinfer_worker *w, kinfer_worker_part *part) {
    kinfer_worker_msg *head;
    while ((head = part->held) && head->ref.seq == part->release_seq) {
        part->held = head->held_next;
        head->held_next = NULL;
        part->release_seq++;
        kinfer_worker_handoff_push(&w->handoff, &head->node);
    }
}

void kinfer_worker_txn_hold(kinfer_worker_msg *msg) {
    kinfer_worker *w = msg->w;
    kinfer_worker_part *part = msg->ref.part;
    if (!part) {
        /* An offset seen twice in one generation: the first copy owns the
         * reply; a second one in the transaction would be a duplicate. */
        kinfer_worker_msg_abandon(msg, "duplicate offset", false);
        return;
    }
    pthread_mutex_lock(&part->release_lock);
    if (msg->ref.generation != part->release_gen) {
        /* From before an abort or revoke: the partition was rewound (or
         * handed over), so this result must not reach any transaction. */
        pthread_mutex_unlock(&part->release_lock);
        kinfer_worker_msg_abandon(msg, "stale generation (aborted or revoked)", false);
        return;
    }
    kinfer_worker_msg **pp = (kinfer_worker_msg **)&part->held;
    while (*pp && (*pp)->ref.seq < msg->ref.seq)
        pp = &(*pp)->held_next;
    msg->held_next = *pp;
    *pp = msg;
    release_ready(w, part);
    pthread_mutex_unlock(&part->release_lock);
}

bool kinfer_worker_txn_stale(const kinfer_worker_msg *msg) {
    kinfer_worker_part *part = msg->ref.part;
    pthread_mutex_lock(&part->release_lock);
    bool stale = msg->ref.generation != part->release_gen;
    pthread_mutex_unlock(&part->release_lock);
    return stale;
}

/* Caller holds txn_lock exclusively. */
static void part_reset_locked(kinfer_worker_part *part) {
    kinfer_worker_part_reset(part);
    pthread_mutex_lock(&part->release_lock);
    kinfer_worker_msg *m = part->held;
    part->held = NULL;
    pthread_mutex_lock(&part->lock);
    part->release_gen = part->generation;
    pthread_mutex_unlock(&part->lock);
    part->release_seq = 0;
    pthread_mutex_unlock(&part->release_lock);
    while (m) {
        kinfer_worker_msg *next = m->held_next;
        kinfer_worker_msg_abandon(m, "dropped: partition reset", false);
        m = next;
    }
}

void kinfer_worker_txn_part_reset(kinfer_worker *w, kinfer_worker_part *part) {
    pthread_rwlock_wrlock(&w->txn_lock);
    part_reset_locked(part);
    pthread_rwlock_unlock(&w->txn_lock);
}

typedef struct txn_walk {
    rd_kafka_topic_partition_list_t *list;
    bool all; /* every assigned partition, else those whose watermark moved */
} txn_walk;

static void offsets_visit(kinfer_worker_part *part, void *ctx) {
    txn_walk *tw = ctx;
    if (!part->assigned)
        return;
    if (tw->all) {
        rd_kafka_topic_partition_list_add(tw->list, part->topic, part->partition);
        return;
    }
    int64_t off = kinfer_worker_part_commit_offset(part);
    if (off >= 0 && off != part->last_committed)
        rd_kafka_topic_partition_list_add(tw->list, part->topic, part->partition)->offset = off;
}

/* After an abort: every assigned partition starts a new generation (so the
 * aborted generation's in-flight results are dropped) and is sought back to
 * its committed offset. Caller holds txn_lock exclusively. */
static void rewind_locked(kinfer_worker *w) {
    txn_walk tw = {rd_kafka_topic_partition_list_new(16), true};
    kinfer_worker_parts_foreach(w->parts, offsets_visit, &tw);
    for (int i = 0; i < tw.list->cnt; i++) {
        kinfer_worker_part *part = kinfer_worker_parts_find(w->parts, tw.list->elems[i].topic,
                                                            tw.list->elems[i].partition);
        if (part)
            part_reset_locked(part);
    }
    if (!tw.list->cnt) {
        rd_kafka_topic_partition_list_destroy(tw.list);
        return;
    }
    rd_kafka_resp_err_t rerr = rd_kafka_committed(w->consumer, tw.list, TXN_CALL_TIMEOUT_MS);
    rd_kafka_error_t *e = NULL;
    if (!rerr) {
        for (int i = 0; i < tw.list->cnt; i++)
            if (tw.list->elems[i].offset < 0) /* nothing committed yet */
                tw.list->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
        e = rd_kafka_seek_partitions(w->consumer, tw.list, TXN_CALL_TIMEOUT_MS);
    }
    for (int i = 0; !rerr && !e && i < tw.list->cnt; i++)
        rerr = tw.list->elems[i].err;
    if (rerr || e) {
        /* Cannot tell where to restart: stop (nothing wrong was committed;
         * the group hands these partitions to someone who can). */
        KINFER_LOGE("txn.rewind_failed", "error=\"%s\" action=\"stopping\"",
                    e ? rd_kafka_error_string(e) : rd_kafka_err2str(rerr));
        atomic_store(&w->fatal, 1);
    } else {
        for (int i = 0; i < tw.list->cnt; i++)
            KINFER_LOGI("txn.rewind", "topic=%s partition=%d offset=%lld", tw.list->elems[i].topic,
                        (int)tw.list->elems[i].partition, (long long)tw.list->elems[i].offset);
    }
    if (e)
        rd_kafka_error_destroy(e);
    rd_kafka_topic_partition_list_destroy(tw.list);
}

/* Waits for every produced message's delivery report: the watermarks are
 * then final for this transaction. False on timeout. */
static bool flush_all(kinfer_worker *w) {
    if (rd_kafka_flush(w->producer, TXN_CALL_TIMEOUT_MS) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return false;
    int64_t deadline = kinfer_mono_us() + 5 * 1000000;
    while (atomic_load(&w->txn_outstanding) > 0) {
        if (kinfer_mono_us() > deadline)
            return false;
        usleep(200);
    }
    return true;
}

/* Commits the open transaction with `offsets`. Returns 0 on success, 1 when
 * it must be aborted, -1 on a fatal error — or when a commit stays
 * unanswered past the retry deadline: its outcome is then unknown, an abort
 * is not allowed (librdkafka: a retriable commit error is answered by
 * committing again), and only a new producer's init_transactions, with the
 * same transactional.id, settles it. */
static int commit_locked(kinfer_worker *w, rd_kafka_topic_partition_list_t *offsets) {
    int64_t until = kinfer_mono_us() + w->txn_retry_us;
    rd_kafka_error_t *e = NULL;
    if (offsets->cnt) {
        rd_kafka_consumer_group_metadata_t *cgmd = rd_kafka_consumer_group_metadata(w->consumer);
        while ((e = rd_kafka_send_offsets_to_transaction(w->producer, offsets, cgmd, -1)) &&
               retry_before(e, until)) {
            KINFER_LOGW("txn.send_offsets_retry", "error=\"%s\"", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
        }
        rd_kafka_consumer_group_metadata_destroy(cgmd);
        if (e) { /* the commit was not begun: abortable unless fatal */
            int verdict = rd_kafka_error_is_fatal(e) ? -1 : 1;
            KINFER_LOGW("txn.send_offsets_failed", "error=\"%s\" fatal=%d requires_abort=%d",
                        rd_kafka_error_string(e), (int)rd_kafka_error_is_fatal(e),
                        (int)rd_kafka_error_txn_requires_abort(e));
            rd_kafka_error_destroy(e);
            return verdict;
        }
    }
    while ((e = rd_kafka_commit_transaction(w->producer, -1)) && retry_before(e, until)) {
        KINFER_LOGW("txn.commit_retry", "error=\"%s\"", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    }
    if (!e)
        return 0;
    int verdict = rd_kafka_error_txn_requires_abort(e) && !rd_kafka_error_is_fatal(e) ? 1 : -1;
    KINFER_LOGW("txn.commit_failed", "error=\"%s\" fatal=%d requires_abort=%d retriable=%d",
                rd_kafka_error_string(e), (int)rd_kafka_error_is_fatal(e),
                (int)rd_kafka_error_txn_requires_abort(e), (int)rd_kafka_error_is_retriable(e));
    rd_kafka_error_destroy(e);
    return verdict;
}

static bool abort_locked(kinfer_worker *w) {
    int64_t until = kinfer_mono_us() + w->txn_retry_us;
    for (;;) {
        rd_kafka_error_t *e = rd_kafka_abort_transaction(w->producer, -1);
        if (!e)
            return true;
        bool retry = retry_before(e, until);
        KINFER_LOGE("txn.abort_failed", "error=\"%s\" fatal=%d retry=%d", rd_kafka_error_string(e),
                    (int)rd_kafka_error_is_fatal(e), (int)retry);
        rd_kafka_error_destroy(e);
        if (!retry) {
            atomic_store(&w->fatal, 1);
            return false;
        }
    }
}

kinfer_err kinfer_worker_txn_commit(kinfer_worker *w, bool force_abort) {
    if (atomic_load(&w->fatal))
        return KINFER_ERR_KAFKA;
    pthread_rwlock_wrlock(&w->txn_lock);
    int verdict = force_abort || atomic_exchange(&w->txn_abort, 0) ? 1 : 0;
    txn_walk tw = {rd_kafka_topic_partition_list_new(16), false};
    if (!verdict && !flush_all(w)) {
        KINFER_LOGW("txn.flush_timeout", "outstanding=%lld action=abort",
                    (long long)atomic_load(&w->txn_outstanding));
        verdict = 1;
    }
    if (!verdict && atomic_exchange(&w->txn_abort, 0))
        verdict = 1; /* a delivery failed during the flush */
    if (!verdict) {
        kinfer_worker_parts_foreach(w->parts, offsets_visit, &tw);
        if (!tw.list->cnt && !atomic_load(&w->txn_produced)) {
            rd_kafka_topic_partition_list_destroy(tw.list);
            pthread_rwlock_unlock(&w->txn_lock);
            return KINFER_OK; /* nothing to commit */
        }
        verdict = commit_locked(w, tw.list);
    }
    if (verdict == 0) {
        w->txn_commits++;
        for (int i = 0; i < tw.list->cnt; i++) {
            kinfer_worker_part *part = kinfer_worker_parts_find(w->parts, tw.list->elems[i].topic,
                                                                tw.list->elems[i].partition);
            if (part)
                part->last_committed = tw.list->elems[i].offset;
            KINFER_LOGD("txn.commit", "topic=%s partition=%d offset=%lld", tw.list->elems[i].topic,
                        (int)tw.list->elems[i].partition, (long long)tw.list->elems[i].offset);
        }
    } else if (verdict == 1) {
        w->txn_aborts++;
        KINFER_LOGW("txn.abort", "produced=%lld action=\"rewind to committed offsets\"",
                    (long long)atomic_load(&w->txn_produced));
        if (abort_locked(w))
            rewind_locked(w);
    } else {
        atomic_store(&w->fatal, 1);
        KINFER_LOGE("txn.fatal",
                    "action=\"stopping: fenced, fatal producer error or commit outcome unknown\"");
    }
    rd_kafka_topic_partition_list_destroy(tw.list);
    atomic_store(&w->txn_produced, 0);
    kinfer_err rc = verdict == 0 ? KINFER_OK : KINFER_ERR_KAFKA;
    if (!atomic_load(&w->fatal)) {
        rd_kafka_error_t *e = rd_kafka_begin_transaction(w->producer);
        if (e) {
            kinfer_error ignored;
            txn_error(w, "begin_transaction", e, &ignored);
            KINFER_LOGE("txn.begin_failed", "error=\"%s\"", ignored.msg);
            atomic_store(&w->fatal, 1);
            rc = KINFER_ERR_KAFKA;
        }
    }
    pthread_rwlock_unlock(&w->txn_lock);
    return rc;
}
