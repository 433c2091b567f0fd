/* worker_backpressure.c — pause and resume request partitions so that
 * memory stays bounded: every assigned partition pauses when the worker
 * holds too many unacknowledged requests (count, or bytes of requests plus
 * finished records waiting in the produce hand-off, with hysteresis) or
 * while librdkafka refuses records (produce_blocked: a full producer queue,
 * e.g. a stalled broker; worker_produce.c), and the partitions that fed a
 * model pause while the engine reports that model's queue congested (a partition that fed none yet,
 * e.g. one assigned during the congestion, pauses too). The poll loop keeps polling while paused,
 * so the group never sees a stalled member. Not the engine's queue policy. */
#include <stdio.h>
#include <string.h>

#include "kinfer/kinfer_log.h"
#include "worker_internal.h"

void kinfer_worker_on_congestion(void *ctx, const char *model, bool congested) {
    kinfer_worker *w = ctx;
    kinfer_str name = {model, strlen(model)};
    int idx = kinfer_worker_model_index(w, name);
    if (idx < 0 || idx >= KINFER_WORKER_MAX_MODEL_BITS)
        return;
    if (congested)
        atomic_fetch_or(&w->congested_mask, 1ULL << idx);
    else
        atomic_fetch_and(&w->congested_mask, ~(1ULL << idx));
    atomic_fetch_add(&w->congestion_gen, 1);
    KINFER_LOGD("worker.congestion", "model=%s congested=%d", model, (int)congested);
}

typedef struct bp_walk {
    kinfer_worker *w;
    uint64_t mask;
    rd_kafka_topic_partition_list_t *pause, *resume;
    int64_t npaused;
} bp_walk;

static void bp_visit(kinfer_worker_part *part, void *ctx) {
    bp_walk *bw = ctx;
    if (!part->assigned)
        return;
    /* A partition that has not fed any model yet (just assigned) could feed
     * the congested one: it starts paused while any model is congested. */
    bool want = bw->w->over_limit ||
                (part->model_mask ? (part->model_mask & bw->mask) != 0 : bw->mask != 0);
    if (want != part->paused) {
        rd_kafka_topic_partition_list_add(want ? bw->pause : bw->resume, part->topic,
                                          part->partition);
        part->paused = want;
    }
    bw->npaused += part->paused;
}

/* "topic[0],topic[3]" for the log, so that an operator (and the tests) can
 * tell exactly which partitions were paused or resumed; truncated with
 * "..." when long. */
static const char *part_names(const rd_kafka_topic_partition_list_t *list, char *buf, size_t cap) {
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < list->cnt; i++) {
        int n = snprintf(buf + len, cap - len, "%s%s[%d]", i ? "," : "", list->elems[i].topic,
                         (int)list->elems[i].partition);
        if (n < 0 || (size_t)n >= cap - len) {
            snprintf(buf + (len < cap - 4 ? len : cap - 4), 4, "...");
            break;
        }
        len += (size_t)n;
    }
    return buf;
}

/* Why the in-flight limit holds, for operators: librdkafka refusing
 * records (a full producer queue), or most of the unacknowledged requests
 * answered and waiting for the producer (in the hand-off, for a delivery
 * report, exactly-once replies held for the next commit), is a produce
 * backlog; most of them still in the engine (queued or computing) is a
 * plain in-flight limit. */
static kinfer_worker_pause_reason limit_reason(const kinfer_worker *w, int64_t in_flight,
                                               bool blocked) {
    int64_t engine = (int64_t)kinfer_engine_in_flight(w->engine);
    return blocked || in_flight - engine > engine ? KINFER_WORKER_PAUSE_PRODUCE_BACKLOG
                                                  : KINFER_WORKER_PAUSE_IN_FLIGHT_LIMIT;
}

void kinfer_worker_backpressure_apply(kinfer_worker *w) {
    int64_t n = atomic_load_explicit(&w->in_flight, memory_order_relaxed);
    size_t waiting_bytes;
    size_t waiting = kinfer_worker_handoff_len(&w->handoff, &waiting_bytes);
    int64_t req_bytes = atomic_load_explicit(&w->in_flight_bytes, memory_order_relaxed);
    int64_t bytes = req_bytes + (int64_t)waiting_bytes;
    bool blocked = atomic_load(&w->produce_blocked);
    bool changed = false;
    if (!w->over_limit &&
        (blocked || n >= (int64_t)w->max_in_flight || bytes >= (int64_t)w->max_in_flight_bytes)) {
        w->over_limit = changed = true;
    } else if (w->over_limit && !blocked && n <= (int64_t)w->max_in_flight / 2 &&
               bytes <= (int64_t)w->max_in_flight_bytes / 2) {
        w->over_limit = false;
        changed = true;
    }
    kinfer_worker_metrics_set_in_flight(w->metrics, n, req_bytes);
    kinfer_worker_metrics_set_handoff(w->metrics, waiting, waiting_bytes,
                                      kinfer_worker_handoff_peak(&w->handoff));
    /* While the limit holds it pauses every partition: it is the reason. */
    kinfer_worker_pause_reason reason =
        w->over_limit ? limit_reason(w, n, blocked) : KINFER_WORKER_PAUSE_CONGESTED_MODEL;
    uint64_t gen = atomic_load(&w->congestion_gen);
    if (!changed && gen == w->applied_congestion_gen) {
        kinfer_worker_metrics_set_partitions(w->metrics, w->assigned_count, w->paused_count,
                                             reason);
        return;
    }
    w->applied_congestion_gen = gen;
    bp_walk bw = {w, atomic_load(&w->congested_mask), rd_kafka_topic_partition_list_new(8),
                  rd_kafka_topic_partition_list_new(8), 0};
    kinfer_worker_parts_foreach(w->parts, bp_visit, &bw);
    char names[1024];
    if (bw.pause->cnt) {
        rd_kafka_pause_partitions(w->consumer, bw.pause);
        kinfer_worker_metrics_paused(w->metrics, reason, bw.pause->cnt);
        KINFER_LOGI("worker.pause",
                    "partitions=%d reason=%s in_flight=%lld bytes=%lld congested=%#llx "
                    "over_limit=%d produce_blocked=%d waiting=%zu parts=%s",
                    bw.pause->cnt, kinfer_worker_pause_reason_name(reason), (long long)n,
                    (long long)bytes, (unsigned long long)bw.mask, (int)w->over_limit, (int)blocked,
                    waiting, part_names(bw.pause, names, sizeof(names)));
    }
    if (bw.resume->cnt) {
        rd_kafka_resume_partitions(w->consumer, bw.resume);
        KINFER_LOGI("worker.resume",
                    "partitions=%d in_flight=%lld bytes=%lld congested=%#llx over_limit=%d "
                    "produce_blocked=%d waiting=%zu parts=%s",
                    bw.resume->cnt, (long long)n, (long long)bytes, (unsigned long long)bw.mask,
                    (int)w->over_limit, (int)blocked, waiting,
                    part_names(bw.resume, names, sizeof(names)));
    }
    w->paused_count = bw.npaused;
    kinfer_worker_metrics_set_partitions(w->metrics, w->assigned_count, bw.npaused, reason);
    rd_kafka_topic_partition_list_destroy(bw.pause);
    rd_kafka_topic_partition_list_destroy(bw.resume);
}

void kinfer_worker_backpressure_assigned(kinfer_worker *w, kinfer_worker_part *part) {
    part->paused = false;
    part->model_mask = 0;
    /* A partition assigned while the worker is saturated or any model is
     * congested starts paused: pause it here, in the rebalance callback and
     * before the assignment takes effect (librdkafka keeps an application
     * pause across assign), so that not even the first fetch of it reaches
     * the congested model. Waiting for the next loop turn would leave a
     * window in which a burst of its messages could be consumed. Not while
     * the consumer closes: nothing is fetched then, and a partition paused
     * in that window must be resumed again in the revoke that follows,
     * which librdkafka 2.0.2 can block on inside rd_kafka_consumer_close. */
    bool closing = (w->opts.stop_flag && *w->opts.stop_flag) || atomic_load(&w->fatal) ||
                   rd_kafka_consumer_closed(w->consumer);
    if ((w->over_limit || atomic_load(&w->congested_mask)) && !closing) {
        rd_kafka_topic_partition_list_t *one = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(one, part->topic, part->partition);
        rd_kafka_resp_err_t rerr = rd_kafka_pause_partitions(w->consumer, one);
        if (!rerr && !one->elems[0].err) {
            part->paused = true;
            char names[1024];
            kinfer_worker_pause_reason reason =
                w->over_limit
                    ? limit_reason(w, atomic_load(&w->in_flight), atomic_load(&w->produce_blocked))
                    : KINFER_WORKER_PAUSE_CONGESTED_MODEL;
            kinfer_worker_metrics_paused(w->metrics, reason, 1);
            KINFER_LOGI("worker.pause",
                        "partitions=1 reason=%s in_flight=%lld bytes=%lld congested=%#llx "
                        "over_limit=%d parts=%s assigned=1",
                        kinfer_worker_pause_reason_name(reason),
                        (long long)atomic_load(&w->in_flight),
                        (long long)atomic_load(&w->in_flight_bytes),
                        (unsigned long long)atomic_load(&w->congested_mask), (int)w->over_limit,
                        part_names(one, names, sizeof(names)));
        }
        rd_kafka_topic_partition_list_destroy(one);
    }
    /* Re-evaluate on the next loop turn in any case: it pauses the partition
     * if the pause above could not be applied, and updates the gauges. */
    w->applied_congestion_gen = atomic_load(&w->congestion_gen) - 1;
}
