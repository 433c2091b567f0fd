/* worker_loop.c — the worker's lifecycle: construction of its parts, the
 * poll loop, and the graceful stop (stop consuming, drain the engine, flush
 * replies, commit, leave the group). Not the per-message path
 * (worker_consume.c) nor the callbacks it wires up. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kinfer/kinfer_clock.h"
#include "kinfer/kinfer_log.h"
#include "worker_internal.h"

static void *dr_main(void *arg) {
    kinfer_worker *w = arg;
    /* Named so that per-thread CPU accounting (bench/pipeline_bench.sh) can
     * tell the Kafka side from the engine threads. */
    pthread_setname_np(pthread_self(), "kinfer-dr");
    while (!atomic_load(&w->dr_stop))
        rd_kafka_poll(w->producer, 50);
    rd_kafka_poll(w->producer, 0);
    return NULL;
}

/* Requests the worker may hold unacknowledged before it pauses its input:
 * enough to keep every model's queue at its high watermark with a full
 * batch running, never unbounded. */
static uint32_t auto_max_in_flight(const kinfer_config *cfg) {
    uint64_t n = 0;
    for (size_t i = 0; i < cfg->nmodels; i++) {
        const kinfer_model_config *m = &cfg->models[i];
        uint64_t q = m->max_queue ? m->max_queue : 1024;
        n += q + 2ULL * (m->max_batch_size ? m->max_batch_size : 64) *
                     (uint64_t)(m->ndevices ? m->ndevices : 1) *
                     (uint64_t)(m->replicas_per_device ? m->replicas_per_device : 1);
    }
    if (n < 256)
        n = 256;
    if (n > 1000000)
        n = 1000000;
    return (uint32_t)n;
}

kinfer_err kinfer_worker_new(const kinfer_config *cfg, const kinfer_worker_options *opts,
                             kinfer_worker **out, kinfer_error *err) {
    kinfer_worker *w = calloc(1, sizeof *w);
    if (!w)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "worker: out of memory");
    w->cfg = cfg;
    w->eos = cfg->delivery == KINFER_CONFIG_DELIVERY_EXACTLY_ONCE;
    {
        /* Writer-preferring: a commit must not starve behind a steady
         * stream of engine threads producing replies. */
        pthread_rwlockattr_t attr;
        pthread_rwlockattr_init(&attr);
        pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
        pthread_rwlock_init(&w->txn_lock, &attr);
        pthread_rwlockattr_destroy(&attr);
        w->txn_lock_init = true;
    }
    if (opts)
        w->opts = *opts;
    w->worker_id = cfg->worker.id ? cfg->worker.id : "kinfer";
    w->max_in_flight = w->opts.max_in_flight ? w->opts.max_in_flight : auto_max_in_flight(cfg);
    w->max_in_flight_bytes =
        w->opts.max_in_flight_bytes ? w->opts.max_in_flight_bytes : 256ULL << 20;
    kinfer_worker_encoders_init(&w->encoders, err);
    *out = w;

    kinfer_codec_limits limits;
    kinfer_codec_limits_default(&limits);
    limits.max_message_bytes = (size_t)cfg->kafka.max_message_bytes;
    limits.max_tensors = cfg->limits.max_tensors;
    limits.max_dims = cfg->limits.max_dims;
    limits.max_numel = cfg->limits.max_elements;
    limits.max_strings = cfg->limits.max_strings;
    limits.max_params = cfg->limits.max_params;
    kinfer_codec_frame_policy_default(&w->policy);
    kinfer_err rc = kinfer_codec_decoder_new(&limits, &w->policy, &w->decoder, err);
    if (rc == KINFER_OK)
        rc = kinfer_worker_parts_new(&w->parts, err);
    if (rc == KINFER_OK) {
        const char **names = calloc(cfg->nmodels ? cfg->nmodels : 1, sizeof *names);
        if (!names)
            return kinfer_error_set(err, KINFER_ERR_NOMEM, "worker: out of memory");
        for (size_t i = 0; i < cfg->nmodels; i++)
            names[i] = cfg->models[i].name;
        rc = kinfer_worker_metrics_new(names, cfg->nmodels, &w->metrics, err);
        free(names);
    }
    if (rc == KINFER_OK) {
        kinfer_engine_config ecfg = {
            .models = cfg->models,
            .nmodels = cfg->nmodels,
            .cpu_threads = cfg->worker.cpu_threads,
            .on_complete = kinfer_worker_on_complete,
            .on_congestion = kinfer_worker_on_congestion,
            .callback_ctx = w,
        };
        rc = kinfer_engine_new(&ecfg, &w->engine, err);
    }
    if (rc == KINFER_OK)
        rc = kinfer_worker_kafka_new(w, err);
    if (rc == KINFER_OK && !cfg->kafka.topic_pattern && cfg->kafka.topics.n) {
        /* A topic object makes librdkafka fetch its metadata in the
         * background, so the first reply does not wait for it. */
        w->warm_topics = calloc(cfg->kafka.topics.n, sizeof *w->warm_topics);
        for (size_t i = 0; w->warm_topics && i < cfg->kafka.topics.n; i++) {
            char name[KINFER_WORKER_TOPIC_MAX + 1];
            kinfer_error ignored;
            if (kinfer_worker_pattern_expand(cfg->kafka.reply_topic_pattern,
                                             cfg->kafka.topics.items[i], name, sizeof name,
                                             &ignored) == KINFER_OK)
                w->warm_topics[w->nwarm_topics++] = rd_kafka_topic_new(w->producer, name, NULL);
        }
    }
    if (rc == KINFER_OK) {
        if (pthread_create(&w->dr_thread, NULL, dr_main, w))
            rc = kinfer_error_set(err, KINFER_ERR_INTERNAL, "cannot start the producer thread");
        else
            w->dr_started = true;
    }
    if (rc == KINFER_OK && cfg->http.listen && *cfg->http.listen)
        rc = kinfer_worker_http_start(w, err);
    /* On failure the caller calls kinfer_worker_destroy(*out). */
    return rc;
}

static kinfer_err subscribe(kinfer_worker *w, kinfer_error *err) {
    const kinfer_config_kafka *k = &w->cfg->kafka;
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(
        k->topic_pattern ? 1 : (int)(k->topics.n ? k->topics.n : 1));
    if (k->topic_pattern)
        rd_kafka_topic_partition_list_add(topics, k->topic_pattern, RD_KAFKA_PARTITION_UA);
    else
        for (size_t i = 0; i < k->topics.n; i++)
            rd_kafka_topic_partition_list_add(topics, k->topics.items[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t rerr = rd_kafka_subscribe(w->consumer, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (rerr)
        return kinfer_error_set(err, KINFER_ERR_KAFKA, "subscribe: %s", rd_kafka_err2str(rerr));
    w->subscribed = true;
    return KINFER_OK;
}

/* The graceful half of a stop: everything accepted is finished or
 * abandoned, every finished reply acknowledged, the watermarks committed. */
/* Leaves the assignment through ordinary polls before rd_kafka_consumer_close:
 * with librdkafka 2.0.2, an incremental assign that arrives while close runs
 * its own rebalance makes the revoke's rd_kafka_incremental_unassign block
 * forever inside close (test_worker_backpressure_stop.py). Unsubscribing
 * first lets the poll loop serve the assign and the revoke as usual; close
 * then has nothing left to hand back. Messages still returned meanwhile are
 * dropped unprocessed: their offsets are above the committed watermark, so
 * the next owner reads them again. */
static void unsubscribe_and_release(kinfer_worker *w, int64_t timeout_ms) {
    rd_kafka_resp_err_t uerr = rd_kafka_unsubscribe(w->consumer);
    if (uerr) {
        KINFER_LOGW("worker.unsubscribe", "error=\"%s\"", rd_kafka_err2str(uerr));
        return;
    }
    int64_t until = kinfer_mono_us() + timeout_ms * 1000;
    while (kinfer_mono_us() < until) {
        rd_kafka_topic_partition_list_t *assignment = NULL;
        if (rd_kafka_assignment(w->consumer, &assignment) == RD_KAFKA_RESP_ERR_NO_ERROR) {
            int left = assignment->cnt;
            rd_kafka_topic_partition_list_destroy(assignment);
            if (left == 0 && w->assigned_count == 0)
                return;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(w->consumer, 100);
        if (m)
            rd_kafka_message_destroy(m);
    }
    KINFER_LOGW("worker.unsubscribe", "still assigned after %lld ms; closing anyway",
                (long long)timeout_ms);
}

static void drain_and_commit(kinfer_worker *w) {
    int64_t t0 = kinfer_mono_us();
    KINFER_LOGI("worker.draining", "in_flight=%lld drain_timeout_ms=%lld",
                (long long)atomic_load(&w->in_flight), (long long)w->cfg->worker.drain_timeout_ms);
    kinfer_engine_shutdown(w->engine, w->cfg->worker.drain_timeout_ms);
    /* Replies still queued in the producer: give them the drain budget
     * too (at least a few seconds, acks=all takes a round trip). */
    int64_t flush_ms = w->cfg->worker.drain_timeout_ms;
    if (flush_ms < 5000)
        flush_ms = 5000;
    rd_kafka_resp_err_t ferr = rd_kafka_flush(w->producer, (int)flush_ms);
    if (ferr)
        KINFER_LOGE("worker.flush_timeout", "queued=%d action=\"offsets stay uncommitted\"",
                    rd_kafka_outq_len(w->producer));
    /* Delivery reports run on the producer thread; wait for the last ones. */
    for (int i = 0; i < 2000 && atomic_load(&w->in_flight) > 0; i++)
        usleep(1000);
    kinfer_worker_commit(w, true);
    KINFER_LOGI("worker.drained", "ms=%lld left=%lld", (long long)((kinfer_mono_us() - t0) / 1000),
                (long long)atomic_load(&w->in_flight));
}

kinfer_err kinfer_worker_run(kinfer_worker *w, kinfer_error *err) {
    kinfer_err rc = KINFER_OK;
    if (w->eos && w->opts.embedded)
        return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                "delivery = \"exactly-once\" needs a real broker (the embedded "
                                "cluster does not implement transactions)");
    if (w->eos)
        rc = kinfer_worker_txn_init(w, err);
    if (rc == KINFER_OK)
        rc = subscribe(w, err);
    if (rc != KINFER_OK)
        return rc;
    kinfer_worker_metrics_set_ready(w->metrics, 1);
    KINFER_LOGI("worker.start", "worker=%s group=%s models=%zu max_in_flight=%u delivery=%s",
                w->worker_id, w->cfg->kafka.group, w->cfg->nmodels, w->max_in_flight,
                kinfer_config_delivery_name(w->cfg->delivery));
    const volatile sig_atomic_t *stop = w->opts.stop_flag;
    int64_t interval_us = w->cfg->kafka.commit_interval_ms * 1000;
    w->last_commit_us = kinfer_mono_us();
    while (!(stop && *stop) && !atomic_load(&w->fatal)) {
        /* Short waits while saturated, so that a resume follows the drain
         * closely; the loop never blocks on anything but this poll. */
        int timeout = (w->over_limit || atomic_load(&w->congested_mask)) ? 2 : 100;
        rd_kafka_message_t *rkm = rd_kafka_consumer_poll(w->consumer, timeout);
        for (int burst = 0; rkm; burst++) {
            kinfer_worker_consume(w, rkm);
            if (burst >= 256 || atomic_load(&w->fatal))
                break;
            if ((burst & 31) == 31) {
                kinfer_worker_backpressure_apply(w);
                if (w->over_limit)
                    break;
            }
            rkm = rd_kafka_consumer_poll(w->consumer, 0);
        }
        kinfer_worker_backpressure_apply(w);
        int64_t now = kinfer_mono_us();
        /* Exactly-once also commits by count, so one transaction stays
         * small when replies are many and the interval long. */
        if (now - w->last_commit_us >= interval_us ||
            (w->eos && atomic_load(&w->txn_produced) >= 10000)) {
            kinfer_worker_commit(w, false);
            w->last_commit_us = now;
        }
    }
    kinfer_worker_metrics_set_ready(w->metrics, 0);
    bool fatal = atomic_load(&w->fatal);
    KINFER_LOGI("worker.stopping", "reason=%s", fatal ? "fatal-error" : "signal");
    drain_and_commit(w);
    unsubscribe_and_release(w, 10000);
    rd_kafka_resp_err_t cerr = rd_kafka_consumer_close(w->consumer);
    if (cerr)
        KINFER_LOGW("worker.close", "error=\"%s\"", rd_kafka_err2str(cerr));
    w->subscribed = false;
    KINFER_LOGI("worker.stopped", "dead_letters=%llu delivery_failures=%llu",
                (unsigned long long)kinfer_worker_metrics_dlq_count(w->metrics),
                (unsigned long long)kinfer_worker_metrics_delivery_failed_count(w->metrics));
    if (fatal)
        return kinfer_error_set(err, KINFER_ERR_KAFKA,
                                "stopped after a fatal error (see the log above)");
    return KINFER_OK;
}

void kinfer_worker_destroy(kinfer_worker *w) {
    if (!w)
        return;
    kinfer_worker_http_stop(w);
    /* The engine first: its last completions still produce. */
    if (w->engine)
        kinfer_engine_destroy(w->engine);
    if (w->producer)
        rd_kafka_flush(w->producer, 5000);
    if (w->dr_started) {
        atomic_store(&w->dr_stop, 1);
        pthread_join(w->dr_thread, NULL);
    }
    if (w->consumer) {
        if (w->subscribed)
            rd_kafka_consumer_close(w->consumer);
        rd_kafka_destroy(w->consumer);
    }
    for (size_t i = 0; i < w->nwarm_topics; i++)
        if (w->warm_topics[i])
            rd_kafka_topic_destroy(w->warm_topics[i]);
    free(w->warm_topics);
    if (w->txn_lock_init)
        pthread_rwlock_destroy(&w->txn_lock);
    if (w->producer)
        rd_kafka_destroy(w->producer);
    if (w->decoder)
        kinfer_codec_decoder_destroy(w->decoder);
    kinfer_worker_encoders_free(&w->encoders);
    kinfer_worker_parts_destroy(w->parts);
    kinfer_worker_metrics_destroy(w->metrics);
    free(w);
}
