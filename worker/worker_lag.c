/* worker_lag.c — consumer lag from librdkafka's statistics (worker_lag.h):
 * the JSON walk, the lag of one partition, and the statistics hook that
 * refreshes the kinfer_consumer_lag table about once a second. Not the
 * group join-state tracking that shares the statistics callback
 * (worker_rebalance.c). */
#include "worker_lag.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kinfer/kinfer_clock.h"
#include "kinfer/kinfer_log.h"
#include "worker_internal.h"

static int64_t offset_of(json_t *p, const char *key) {
    json_t *v = json_object_get(p, key);
    if (!json_is_integer(v))
        return -1;
    json_int_t o = json_integer_value(v);
    return o >= 0 ? (int64_t)o : -1; /* -1001: RD_KAFKA_OFFSET_INVALID */
}

kinfer_err kinfer_worker_stats_parts(const char *json, size_t len,
                                     void (*fn)(const kinfer_worker_stats_part *part, void *ctx),
                                     void *ctx, kinfer_error *err) {
    json_error_t jerr;
    json_t *root = json_loadb(json, len, 0, &jerr);
    if (!root)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "statistics: not JSON (line %d: %s)",
                                jerr.line, jerr.text);
    json_t *topics = json_object_get(root, "topics");
    const char *tname;
    json_t *topic;
    json_object_foreach(topics, tname, topic) {
        json_t *parts = json_object_get(topic, "partitions");
        const char *pkey;
        json_t *p;
        json_object_foreach(parts, pkey, p) {
            json_t *id = json_object_get(p, "partition");
            /* -1 is librdkafka's internal "unassigned" partition. */
            if (!json_is_integer(id) || json_integer_value(id) < 0 ||
                json_integer_value(id) > INT32_MAX || !json_is_true(json_object_get(p, "desired")))
                continue;
            kinfer_worker_stats_part sp;
            snprintf(sp.topic, sizeof sp.topic, "%s", tname);
            sp.partition = (int32_t)json_integer_value(id);
            sp.hi_offset = offset_of(p, "hi_offset");
            sp.ls_offset = offset_of(p, "ls_offset");
            sp.lo_offset = offset_of(p, "lo_offset");
            sp.committed_offset = offset_of(p, "committed_offset");
            fn(&sp, ctx);
        }
    }
    json_decref(root);
    return KINFER_OK;
}

int64_t kinfer_worker_lag_of(const kinfer_worker_stats_part *part, bool read_committed,
                             int64_t ours) {
    int64_t end = read_committed ? part->ls_offset : part->hi_offset;
    int64_t committed = ours >= 0                     ? ours
                        : part->committed_offset >= 0 ? part->committed_offset
                                                      : part->lo_offset;
    if (end < 0 || committed < 0)
        return -1;
    return end > committed ? end - committed : 0;
}

/* ---- the worker's hook ------------------------------------------------------ */

#define LAG_REFRESH_US 1000000
#define LAG_MAX_PARTS 4096

typedef struct lag_walk {
    kinfer_worker *w;
    kinfer_worker_lag *lags;
    size_t n;
} lag_walk;

static void lag_visit(const kinfer_worker_stats_part *sp, void *ctx) {
    lag_walk *lw = ctx;
    if (lw->n >= LAG_MAX_PARTS)
        return;
    kinfer_worker_part *part = kinfer_worker_parts_find(lw->w->parts, sp->topic, sp->partition);
    if (!part || !part->assigned)
        return; /* a reply or dead-letter topic the consumer never reads */
    int64_t ours = kinfer_worker_part_last_committed(part);
    int64_t lag = kinfer_worker_lag_of(sp, lw->w->eos, ours);
    if (lag < 0)
        return;
    lw->lags[lw->n++] = (kinfer_worker_lag){part->topic, sp->partition, lag};
}

void kinfer_worker_lag_on_stats(kinfer_worker *w, const char *json, size_t len) {
    int64_t now = kinfer_mono_us();
    if (w->lag_refreshed_us && now - w->lag_refreshed_us < LAG_REFRESH_US)
        return;
    w->lag_refreshed_us = now;
    lag_walk lw = {w, calloc(LAG_MAX_PARTS, sizeof(kinfer_worker_lag)), 0};
    kinfer_error err;
    if (!lw.lags)
        return;
    if (kinfer_worker_stats_parts(json, len, lag_visit, &lw, &err) == KINFER_OK)
        kinfer_worker_metrics_set_lags(w->metrics, lw.lags, lw.n, &err);
    else
        KINFER_LOGD("worker.stats", "error=\"%s\"", err.msg);
    free(lw.lags);
}
