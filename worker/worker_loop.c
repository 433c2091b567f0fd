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
    kinfer_worker_gens_init(&w->gens);
    if (opts)
        w->opts = *opts;
    kinfer_worker_rdkafka_bugs(w);
    w->worker_id = cfg->worker.id ? cfg->worker.id : "kinfer";
    w->max_in_flight = w->opts.max_in_flight ? w->opts.max_in_flight : auto_max_in_flight(cfg);
    w->max_in_flight_bytes =
        w->opts.max_in_flight_bytes ? w->opts.max_in_flight_bytes : 256ULL << 20;
    kinfer_worker_encoders_init(&w->encoders, err);
    w->producer_stop_ms = 5000;
    *out = w;
    kinfer_worker_health_limits hl = {
        .broker_grace_us = cfg->health.broker_grace_ms * 1000,
        .poll_bound_us = kinfer_worker_max_poll_interval_ms(cfg) * 1000,
        .stall_factor = cfg->health.batch_stall_factor,
        .stall_min_us = cfg->health.batch_stall_min_ms * 1000,
    };
    /* Before the Kafka clients: their error callbacks report to it. */
    if (kinfer_worker_health_new(&hl, &w->health, err) != KINFER_OK)
        return err ? err->code : KINFER_ERR_NOMEM;

    kinfer_codec_limits limits;
    kinfer_codec_limits_default(&limits);
    limits.max_message_bytes = (size_t)cfg->kafka.max_message_bytes;
    limits.max_tensors = cfg->limits.max_tensors;
    limits.max_dims = cfg->limits.max_dims;
    limits.max_numel = cfg->limits.max_elements;
    limits.max_strings = cfg->limits.max_strings;
    limits.max_params = cfg->limits.max_params;
    kinfer_codec_frame_policy_default(&w->policy);
    kinfer_err rc = kinfer_worker_handoff_init(&w->handoff, err);
    if (rc == KINFER_OK)
        rc = kinfer_codec_decoder_new(&limits, &w->policy, &w->decoder, err);
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
        /* Generative kinds get the kinfer_llm_* series. */
        for (size_t i = 0; rc == KINFER_OK && i < cfg->nmodels; i++)
            if (cfg->models[i].load.kind && !strcmp(cfg->models[i].load.kind, "llm"))
                kinfer_worker_metrics_set_generative(w->metrics, (int)i);
    }
    if (rc == KINFER_OK && cfg->kafka.schema_registry_url)
        rc = kinfer_worker_registry_new(&cfg->kafka, w->metrics, &w->registry, err);
    if (rc == KINFER_OK) {
        kinfer_engine_config ecfg = {
            .models = cfg->models,
            .nmodels = cfg->nmodels,
            .cpu_threads = cfg->worker.cpu_threads,
            .on_complete = kinfer_worker_on_complete,
            .on_congestion = kinfer_worker_on_congestion,
            .on_gen_chunk = kinfer_worker_on_gen_chunk,
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
    if (rc == KINFER_OK)
        rc = kinfer_worker_producer_start(w, err);
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
 * an incremental assign that arrives while close runs its own rebalance
 * makes the revoke's rd_kafka_incremental_unassign block forever inside
 * close (test_worker_backpressure_stop.py; librdkafka 2.0.2, and still
 * 2.14.2 although 2.4.0 fixed a neighbour, #4527: rdk_close_hangs_on_assign
 * is set on every version). Unsubscribing
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
    /* Replies still waiting for the producer thread or queued in librdkafka:
     * give them the drain budget too (at least a few seconds, acks=all
     * takes a round trip). */
    int64_t flush_ms = w->cfg->worker.drain_timeout_ms;
    if (flush_ms < 5000)
        flush_ms = 5000;
    w->producer_stop_ms = flush_ms;
    if (!kinfer_worker_producer_drain(w, flush_ms))
        KINFER_LOGE("worker.drain_timeout", "waiting=%zu action=\"offsets stay uncommitted\"",
                    kinfer_worker_handoff_len(&w->handoff, NULL));
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

/* The test hook behind KINFER_TEST_WEDGE_FILE (kinfer_worker_options): while
 * that file exists the loop stops polling, as a wedged loop would, so that
 * tests can see /healthz turn 503. Never set outside tests. */
static void test_wedge(kinfer_worker *w, const volatile sig_atomic_t *stop) {
    if (access(w->opts.test_wedge_file, F_OK) != 0)
        return;
    KINFER_LOGW("worker.test_wedge", "file=%s action=\"poll loop stops polling while it exists\"",
                w->opts.test_wedge_file);
    while (!(stop && *stop) && access(w->opts.test_wedge_file, F_OK) == 0)
        usleep(100000);
    KINFER_LOGW("worker.test_wedge", "file=%s action=\"polling again\"", w->opts.test_wedge_file);
}

/* "kinfer.conf: sasl.username line 8, sasl.password line 9 (${env:PW})":
 * where the configuration sets the properties a hint names, so that the
 * start-up error points at the lines to fix. */
static void where_set(const kinfer_config *cfg, const char *hint, char *buf, size_t cap) {
    static const char *const keys[] = {
        "security.protocol", "sasl.mechanism",           "sasl.username",   "sasl.password",
        "ssl.ca.location",   "ssl.certificate.location", "ssl.key.location"};
    const kinfer_config_kvlist *lists[] = {&cfg->kafka.properties, &cfg->kafka.consumer_properties,
                                           &cfg->kafka.producer_properties};
    size_t len = 0;
    buf[0] = '\0';
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        if (!hint || !strstr(hint, keys[k]))
            continue;
        const kinfer_config_kv *found = NULL;
        for (size_t l = 0; l < 3; l++)
            for (size_t i = 0; i < lists[l]->n; i++)
                if (!strcmp(lists[l]->items[i].key, keys[k]))
                    found = &lists[l]->items[i]; /* the last one applied wins */
        int n;
        if (!found)
            n = snprintf(buf + len, cap - len, "%s%s not set", len ? ", " : "", keys[k]);
        else if (found->raw && found->line)
            n = snprintf(buf + len, cap - len, "%s%s line %d (%s)", len ? ", " : "", keys[k],
                         found->line, kinfer_config_kv_shown(found));
        else
            n = snprintf(buf + len, cap - len, "%s%s line %d", len ? ", " : "", keys[k],
                         found->line);
        if (n < 0 || (size_t)n >= cap - len)
            break;
        len += (size_t)n;
    }
}

/* The start-up bound (health.startup_auth_timeout_ms): the cluster has
 * refused our credentials or certificate since the start. Poll thread. */
static bool startup_failed(kinfer_worker *w, kinfer_error *err) {
    const char *hint = NULL;
    char last[256];
    int64_t bound_ms = w->cfg->health.startup_auth_timeout_ms;
    if (w->opts.embedded ||
        !kinfer_worker_health_startup_failed(w->health, bound_ms * 1000, &hint, last, sizeof last))
        return false;
    if (!hint)
        hint = "authentication or TLS with the cluster failed";
    char where[512];
    where_set(w->cfg, hint, where, sizeof where);
    KINFER_LOGE("worker.startup_failed",
                "reason=auth_failed after_ms=%lld hint=\"%s\" config=%s set=\"%s\" error=\"%s\" "
                "action=\"stopping; exit 1\"",
                (long long)bound_ms, hint, w->cfg->path, where, last);
    /* The lines to fix before the (long) last error, which a cut drops. */
    char msg[KINFER_ERROR_MSG_MAX];
    if (where[0])
        snprintf(msg, sizeof msg, "start-up failed after %lld ms: %s; in %s: %s; last error: %s",
                 (long long)bound_ms, hint, w->cfg->path, where, last);
    else
        snprintf(msg, sizeof msg, "start-up failed after %lld ms: %s; last error: %s",
                 (long long)bound_ms, hint, last);
    kinfer_error_set(err, KINFER_ERR_CONFIG, "%s", msg);
    return true;
}

/* kafka.group_protocol = "consumer" on a broker without KIP-848 (Kafka 3.x
 * as shipped): librdkafka would look for a coordinator forever, the worker
 * would never join. A configuration mistake: say so and stop. */
static bool kip848_refused(kinfer_worker *w, kinfer_error *err) {
    if (!atomic_load(&w->kip848_unsupported) || kinfer_worker_health_is_joined(w->health))
        return false;
    KINFER_LOGE("worker.startup_failed",
                "reason=group_protocol_unsupported config=%s key=kafka.group_protocol "
                "action=\"stopping; exit 1\"",
                w->cfg->path);
    kinfer_error_set(err, KINFER_ERR_CONFIG,
                     "%s: kafka.group_protocol = \"consumer\": the broker does not support the "
                     "consumer group protocol (KIP-848: Kafka 4.0 or newer; Kafka 3.x only with "
                     "group.coordinator.rebalance.protocols including consumer); use "
                     "\"classic\"",
                     w->cfg->path);
    return true;
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
    kinfer_worker_health_set_phase(w->health, KINFER_WORKER_PHASE_RUNNING);
    kinfer_worker_metrics_set_in_flight_limit(w->metrics, w->max_in_flight);
    KINFER_LOGI("worker.start", "worker=%s group=%s models=%zu max_in_flight=%u delivery=%s",
                w->worker_id, w->cfg->kafka.group, w->cfg->nmodels, w->max_in_flight,
                kinfer_config_delivery_name(w->cfg->delivery));
    const volatile sig_atomic_t *stop = w->opts.stop_flag;
    int64_t interval_us = w->cfg->kafka.commit_interval_ms * 1000;
    w->last_commit_us = kinfer_mono_us();
    bool failed_start = false;
    while (!(stop && *stop) && !atomic_load(&w->fatal)) {
        kinfer_worker_health_polled(w->health, kinfer_mono_us());
        if (startup_failed(w, err) || kip848_refused(w, err)) {
            failed_start = true;
            break;
        }
        if (w->opts.test_wedge_file)
            test_wedge(w, stop);
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
        kinfer_worker_park_retry(w); /* the schema registry answered: go on */
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
    kinfer_worker_health_set_phase(w->health, KINFER_WORKER_PHASE_DRAINING);
    bool fatal = atomic_load(&w->fatal);
    KINFER_LOGI("worker.stopping", "reason=%s",
                failed_start ? "startup-failed"
                : fatal      ? "fatal-error"
                             : "signal");
    kinfer_worker_park_release(w, NULL, "stopping while waiting for the schema registry");
    drain_and_commit(w);
    if (w->rdk_close_hangs_on_assign && !w->opts.test_close_directly)
        unsubscribe_and_release(w, 10000);
    rd_kafka_resp_err_t cerr = rd_kafka_consumer_close(w->consumer);
    if (cerr)
        KINFER_LOGW("worker.close", "error=\"%s\"", rd_kafka_err2str(cerr));
    w->subscribed = false;
    kinfer_worker_health_set_phase(w->health, KINFER_WORKER_PHASE_STOPPED);
    KINFER_LOGI("worker.stopped", "dead_letters=%llu delivery_failures=%llu",
                (unsigned long long)kinfer_worker_metrics_dlq_count(w->metrics),
                (unsigned long long)kinfer_worker_metrics_delivery_failed_count(w->metrics));
    if (failed_start)
        return KINFER_ERR_CONFIG; /* err was set by startup_failed */
    if (fatal)
        return kinfer_error_set(err, KINFER_ERR_KAFKA,
                                "stopped after a fatal error (see the log above)");
    return KINFER_OK;
}

void kinfer_worker_destroy(kinfer_worker *w) {
    if (!w)
        return;
    kinfer_worker_http_stop(w);
    /* The engine first: its last completions still produce. Then the
     * producer thread, which produces what waits (producer_stop_ms), and a
     * flush for the delivery reports. */
    if (w->engine)
        kinfer_engine_destroy(w->engine);
    kinfer_worker_producer_stop(w);
    if (w->producer)
        rd_kafka_flush(w->producer, 5000);
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
    free(w->parked); /* emptied by the run's stop; a run never started parks nothing */
    kinfer_worker_registry_destroy(w->registry);
    kinfer_worker_encoders_free(&w->encoders);
    kinfer_worker_parts_destroy(w->parts);
    kinfer_worker_metrics_destroy(w->metrics);
    kinfer_worker_health_destroy(w->health);
    kinfer_worker_handoff_destroy(&w->handoff);
    kinfer_worker_gens_destroy(&w->gens);
    free(w);
}
