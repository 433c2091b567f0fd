/* worker_rebalance.c — partition assignment and offset commits. On assign a
 * partition starts a fresh watermark; on revoke the worker waits (up to
 * worker.drain_timeout_ms) for that partition's in-flight replies, commits
 * its watermark synchronously and only then lets it go, so a partition's
 * next owner starts exactly after the last acknowledged reply. Commits
 * carry the lowest unfinished offset per partition. Exactly-once commits go
 * through the transaction instead (worker_txn.c). Around librdkafka's
 * lost-assignment bug before 2.8.0: periodic commits wait while the group
 * rebalances; and on any version a lost partition's watermark is parked for
 * the next assignment. All on the
 * poll thread (librdkafka serves these callbacks from
 * rd_kafka_consumer_poll/close). */
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

/* librdkafka 2.0.2 treats an OffsetCommit that fails with ILLEGAL_GENERATION
 * as a lost assignment (issue #4059, fixed in 2.8 by PR #4908), and with the
 * cooperative protocol members keep consuming, so keep committing, while
 * the group's generation moves on. The statistics' join_state says when
 * this member is rejoining; a periodic commit then waits for "steady".
 * (While the broker prepares a rebalance and the member does not know yet,
 * commits with the current generation are still accepted.) From 2.8.0 such
 * a commit still fails but the assignment is kept and the next round
 * retries, so the hold is off there (stats_hold, worker_kafka.c). */
int kinfer_worker_on_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque) {
    (void)rk;
    (void)len;
    kinfer_worker *w = opaque;
    /* librdkafka writes `"cgrp": { ... "join_state": "steady", ... }`. */
    const char *cgrp = strstr(json, "\"cgrp\"");
    const char *js = cgrp ? strstr(cgrp, "\"join_state\"") : NULL;
    if (js) {
        js += strlen("\"join_state\"");
        js += strspn(js, " \t\n:");
        if (*js == '"')
            js++;
        bool steady = !strncmp(js, "steady\"", 7);
        int before = atomic_load(&w->group_steady);
        if (steady != (before > 0))
            KINFER_LOGD("worker.group_state", "join_state=%.*s", (int)strcspn(js, "\""), js);
        /* Counts consecutive steady reports; a rebalance callback resets it. */
        atomic_store(&w->group_steady, steady ? (before < 1000 ? before + 1 : before) : 0);
    }
    kinfer_worker_lag_on_stats(w, json, len);
    return 0; /* librdkafka frees json */
}

void kinfer_worker_commit(kinfer_worker *w, bool sync) {
    if (w->eos) {
        kinfer_worker_txn_commit(w, false);
        return;
    }
    /* Two steady reports in a row: one taken just before a rejoin (a
     * cooperative revoke is followed by one) must not let a commit out. */
    if (!sync && w->stats_hold && atomic_load(&w->group_steady) < 2)
        return; /* rebalancing: see kinfer_worker_on_stats */
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
 * drain timeout passes. Completions, the producer thread and delivery
 * reports run on other threads meanwhile, so a plain sleep loop is enough. */
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

/* librdkafka before 2.8 (issue #4059, fixed by PR #4908; Debian ships
 * 2.0.2) marks the whole assignment lost when an offset commit fails with
 * ILLEGAL_GENERATION, which any commit racing a cooperative rebalance can;
 * any version loses an assignment whose session expired (a broker outage).
 * The member is still in the group and the sticky assignor usually hands
 * the same partitions straight back, but their committed offsets are as old
 * as the last commit that got through: everything answered since would be
 * answered again. So a lost partition's watermark is parked, not reset,
 * and when the partition comes back in the next assignment its watermark
 * is committed (new generation) before fetching starts, unless the group
 * already committed further (someone else owned it meanwhile). */
static void commit_parked(kinfer_worker *w, rd_kafka_topic_partition_list_t *list) {
    rd_kafka_topic_partition_list_t *ours = rd_kafka_topic_partition_list_new(list->cnt);
    for (int i = 0; i < list->cnt; i++) {
        kinfer_worker_part *part =
            kinfer_worker_parts_find(w->parts, list->elems[i].topic, list->elems[i].partition);
        int64_t off = part && part->parked ? kinfer_worker_part_commit_offset(part) : -1;
        if (off >= 0)
            rd_kafka_topic_partition_list_add(ours, part->topic, part->partition)->offset = off;
    }
    if (ours->cnt) {
        rd_kafka_topic_partition_list_t *theirs = rd_kafka_topic_partition_list_copy(ours);
        rd_kafka_topic_partition_list_t *commit = rd_kafka_topic_partition_list_new(ours->cnt);
        rd_kafka_resp_err_t rerr = rd_kafka_committed(w->consumer, theirs, 10000);
        for (int i = 0; !rerr && i < ours->cnt; i++)
            if (!theirs->elems[i].err && theirs->elems[i].offset < ours->elems[i].offset)
                rd_kafka_topic_partition_list_add(commit, ours->elems[i].topic,
                                                  ours->elems[i].partition)
                    ->offset = ours->elems[i].offset;
        KINFER_LOGI("worker.parked_commit", "partitions=%d committing=%d error=\"%s\"", ours->cnt,
                    commit->cnt, rerr ? rd_kafka_err2str(rerr) : "");
        commit_list(w, commit, true);
        rd_kafka_topic_partition_list_destroy(commit);
        rd_kafka_topic_partition_list_destroy(theirs);
    }
    rd_kafka_topic_partition_list_destroy(ours);
}

static void unpark_visit(kinfer_worker_part *part, void *ctx) {
    (void)ctx;
    if (part->parked) {
        kinfer_worker_part_reset(part);
        part->parked = false;
    }
}

static void on_assign(kinfer_worker *w, rd_kafka_topic_partition_list_t *list, bool cooperative) {
    commit_parked(w, list);
    kinfer_worker_parts_foreach(w->parts, unpark_visit, NULL);
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
    kinfer_worker_metrics_set_partitions(w->metrics, w->assigned_count, 0,
                                         KINFER_WORKER_PAUSE_CONGESTED_MODEL);
    kinfer_worker_health_joined(w->health); /* even an empty assignment is a join */
}

static void on_revoke(kinfer_worker *w, rd_kafka_topic_partition_list_t *list, bool cooperative) {
    bool lost = rd_kafka_assignment_lost(w->consumer);
    /* Requests waiting for the schema registry would hold the drain up. */
    kinfer_worker_park_release(w, list, "partition revoked while waiting for the schema registry");
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
     * assigned back later is not silently left paused. Not while the
     * consumer closes: the handle goes away with its pauses, and librdkafka
     * 2.0.2 can block forever in rd_kafka_resume_partitions called from a
     * revoke that rd_kafka_consumer_close serves right after an assign
     * (test_worker_backpressure_stop.py). */
    bool closing = rd_kafka_consumer_closed(w->consumer) ||
                   (w->opts.stop_flag && *w->opts.stop_flag) || atomic_load(&w->fatal);
    rd_kafka_topic_partition_list_t *paused = rd_kafka_topic_partition_list_new(list->cnt);
    for (int i = 0; !closing && i < list->cnt; i++) {
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
         * longer move any commit point. A lost at-least-once partition is
         * parked instead (see commit_parked). */
        if (lost && !w->eos)
            part->parked = true;
        else if (w->eos)
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
    kinfer_worker_metrics_set_partitions(w->metrics, w->assigned_count, 0,
                                         KINFER_WORKER_PAUSE_CONGESTED_MODEL);
    w->applied_congestion_gen = atomic_load(&w->congestion_gen) - 1;
}

void kinfer_worker_on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                                rd_kafka_topic_partition_list_t *parts, void *opaque) {
    kinfer_worker *w = opaque;
    /* The consumer protocol (KIP-848) is always incremental. */
    bool cooperative = w->cfg->kafka.group_protocol == KINFER_CONFIG_GROUP_PROTOCOL_CONSUMER ||
                       !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
    atomic_store(&w->group_steady, 0); /* wait for the statistics to say steady again */
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        on_assign(w, parts, cooperative);
    } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        on_revoke(w, parts, cooperative);
    } else {
        KINFER_LOGE("worker.rebalance_error", "error=\"%s\"", rd_kafka_err2str(err));
        on_revoke(w, parts, cooperative);
    }
}
