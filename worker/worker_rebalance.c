/* worker_rebalance.c — partition assignment and offset commits. On assign a
 * partition starts a fresh watermark; on revoke the worker waits (up to
 * worker.drain_timeout_ms) for that partition's in-flight replies, commits
 * its watermark synchronously and only then lets it go, so a partition's
 * next owner starts exactly after the last acknowledged reply. Commits
 * carry the lowest unfinished offset per partition. All on the poll thread
 * (librdkafka serves these callbacks from rd_kafka_consumer_poll/close). */
#include <string.h>
#include <unistd.h>

#include "kinfer/kinfer_clock.h"
#include "kinfer/kinfer_log.h"
#include "worker_internal.h"

typedef struct commit_walk {
    rd_kafka_topic_partition_list_t *list;
    bool sync;
} commit_walk;

static void commit_visit(kinfer_worker_part *part, void *ctx) {
    commit_walk *cw = ctx;
    if (!part->assigned)
        return;
    int64_t off = kinfer_worker_part_commit_offset(part);
    if (off < 0 || (!cw->sync && off == part->last_committed))
        return;
    rd_kafka_topic_partition_list_add(cw->list, part->topic, part->partition)->offset = off;
    part->last_committed = off; /* undone by on_commit when the commit fails */
}

static void commit_list(kinfer_worker *w, rd_kafka_topic_partition_list_t *list, bool sync) {
    if (!list->cnt)
        return;
    rd_kafka_resp_err_t rerr = rd_kafka_commit(w->consumer, list, sync ? 0 : 1);
    if (rerr && sync)
        KINFER_LOGW("worker.commit_failed", "partitions=%d error=\"%s\"", list->cnt,
                    rd_kafka_err2str(rerr));
    else if (kinfer_log_enabled(KINFER_LOG_DEBUG))
        for (int i = 0; i < list->cnt; i++)
            KINFER_LOGD("worker.commit", "topic=%s partition=%d offset=%lld sync=%d",
                        list->elems[i].topic, (int)list->elems[i].partition,
                        (long long)list->elems[i].offset, (int)sync);
}

void kinfer_worker_commit(kinfer_worker *w, bool sync) {
    if (w->eos) {
        kinfer_worker_txn_commit(w, false);
        return;
    }
    commit_walk cw = {rd_kafka_topic_partition_list_new(16), sync};
    kinfer_worker_parts_foreach(w->parts, commit_visit, &cw);
    commit_list(w, cw.list, sync);
    rd_kafka_topic_partition_list_destroy(cw.list);
}

void kinfer_worker_on_commit(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                             rd_kafka_topic_partition_list_t *offsets, void *opaque) {
    (void)rk;
    kinfer_worker *w = opaque;
    if (err == RD_KAFKA_RESP_ERR__NO_OFFSET)
        return;
    for (int i = 0; offsets && i < offsets->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &offsets->elems[i];
        if (!err && !tp->err)
            continue;
        /* Forget what we thought was committed so the next round retries. */
        kinfer_worker_part *part = kinfer_worker_parts_find(w->parts, tp->topic, tp->partition);
        if (part && part->last_committed == tp->offset)
            part->last_committed = -1;
        KINFER_LOGW("worker.commit_failed", "topic=%s partition=%d offset=%lld error=\"%s\"",
                    tp->topic, (int)tp->partition, (long long)tp->offset,
                    rd_kafka_err2str(tp->err ? tp->err : err));
    }
}

/* Waits until the listed partitions have no unacknowledged replies, or the
 * drain timeout passes. Completions and delivery reports run on other
 * threads meanwhile, so a plain sleep loop is enough. */
static void revoke_drain(kinfer_worker *w, rd_kafka_topic_partition_list_t *list) {
    int64_t deadline = kinfer_mono_us() + w->cfg->worker.drain_timeout_ms * 1000;
    for (;;) {
        uint64_t pending = 0;
        for (int i = 0; i < list->cnt; i++) {
            kinfer_worker_part *part =
                kinfer_worker_parts_find(w->parts, list->elems[i].topic, list->elems[i].partition);
            if (part)
                pending += kinfer_worker_part_pending(part);
        }
        if (!pending)
            return;
        if (kinfer_mono_us() >= deadline) {
            KINFER_LOGW("worker.revoke_timeout",
                        "pending=%llu action=\"abandoned; their offsets stay uncommitted\"",
                        (unsigned long long)pending);
            return;
        }
        usleep(1000);
    }
}

static void on_assign(kinfer_worker *w, rd_kafka_topic_partition_list_t *list, bool cooperative) {
    for (int i = 0; i < list->cnt; i++) {
        kinfer_worker_part *part =
            kinfer_worker_parts_get(w->parts, list->elems[i].topic, list->elems[i].partition);
        if (!part) {
            atomic_store(&w->fatal, 1);
            continue;
        }
        if (w->eos)
            kinfer_worker_txn_part_reset(w, part);
        else
            kinfer_worker_part_reset(part);
        if (!part->assigned)
            w->assigned_count++;
        part->assigned = true;
        kinfer_worker_backpressure_assigned(w, part);
    }
    rd_kafka_error_t *e = NULL;
    rd_kafka_resp_err_t rerr = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (cooperative)
        e = rd_kafka_incremental_assign(w->consumer, list);
    else
        rerr = rd_kafka_assign(w->consumer, list);
    if (e || rerr) {
        KINFER_LOGE("worker.assign_failed", "error=\"%s\"",
                    e ? rd_kafka_error_string(e) : rd_kafka_err2str(rerr));
        if (e)
            rd_kafka_error_destroy(e);
    }
    KINFER_LOGI("worker.assigned", "partitions=%d total=%lld first=%s[%d]", list->cnt,
                (long long)w->assigned_count, list->cnt ? list->elems[0].topic : "-",
                list->cnt ? (int)list->elems[0].partition : -1);
    kinfer_worker_metrics_set_partitions(w->metrics, w->assigned_count, 0);
}

static void on_revoke(kinfer_worker *w, rd_kafka_topic_partition_list_t *list, bool cooperative) {
    bool lost = rd_kafka_assignment_lost(w->consumer);
    if (!lost && w->eos) {
        /* The replies of the revoked partitions and their watermarks
         * commit in one transaction before the partitions go. */
        revoke_drain(w, list);
        kinfer_worker_txn_commit(w, false);
    } else if (!lost) {
        revoke_drain(w, list);
        /* Commit exactly the revoked partitions, synchronously, before
         * letting them go. */
        rd_kafka_topic_partition_list_t *commit = rd_kafka_topic_partition_list_new(list->cnt);
        for (int i = 0; i < list->cnt; i++) {
            kinfer_worker_part *part =
                kinfer_worker_parts_find(w->parts, list->elems[i].topic, list->elems[i].partition);
            if (!part || !part->assigned)
                continue;
            int64_t off = kinfer_worker_part_commit_offset(part);
            if (off >= 0)
                rd_kafka_topic_partition_list_add(commit, part->topic, part->partition)->offset =
                    off;
        }
        commit_list(w, commit, true);
        rd_kafka_topic_partition_list_destroy(commit);
    }
    /* librdkafka keeps an application pause on a partition object across
     * unassign/assign: lift ours before letting go, so that a partition
     * assigned back later is not silently left paused. */
    rd_kafka_topic_partition_list_t *paused = rd_kafka_topic_partition_list_new(list->cnt);
    for (int i = 0; i < list->cnt; i++) {
        kinfer_worker_part *part =
            kinfer_worker_parts_find(w->parts, list->elems[i].topic, list->elems[i].partition);
        if (part && part->paused)
            rd_kafka_topic_partition_list_add(paused, part->topic, part->partition);
    }
    if (paused->cnt)
        rd_kafka_resume_partitions(w->consumer, paused);
    rd_kafka_topic_partition_list_destroy(paused);
    for (int i = 0; i < list->cnt; i++) {
        kinfer_worker_part *part =
            kinfer_worker_parts_find(w->parts, list->elems[i].topic, list->elems[i].partition);
        if (!part)
            continue;
        /* Late completions of this generation are now stale: their replies
         * still go out (at-least-once; exactly-once drops them), but they no
         * longer move any commit point. */
        if (w->eos)
            kinfer_worker_txn_part_reset(w, part);
        else
            kinfer_worker_part_reset(part);
        if (part->assigned)
            w->assigned_count--;
        part->assigned = false;
        part->paused = false;
    }
    if (lost && w->eos)
        /* Lost: commit nothing. The open transaction may hold replies of the
         * lost partitions; abort it and rewind whatever is still ours. */
        kinfer_worker_txn_commit(w, true);
    rd_kafka_error_t *e = NULL;
    if (cooperative)
        e = rd_kafka_incremental_unassign(w->consumer, list);
    else
        rd_kafka_assign(w->consumer, NULL);
    if (e) {
        KINFER_LOGE("worker.unassign_failed", "error=\"%s\"", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    }
    KINFER_LOGI("worker.revoked", "partitions=%d lost=%d total=%lld", list->cnt, (int)lost,
                (long long)w->assigned_count);
    kinfer_worker_metrics_set_partitions(w->metrics, w->assigned_count, 0);
    w->applied_congestion_gen = atomic_load(&w->congestion_gen) - 1;
}

void kinfer_worker_on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                                rd_kafka_topic_partition_list_t *parts, void *opaque) {
    kinfer_worker *w = opaque;
    bool cooperative = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        on_assign(w, parts, cooperative);
    } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        on_revoke(w, parts, cooperative);
    } else {
        KINFER_LOGE("worker.rebalance_error", "error=\"%s\"", rd_kafka_err2str(err));
        on_revoke(w, parts, cooperative);
    }
}
