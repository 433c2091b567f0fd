/* worker_kafka.c — the worker's two librdkafka clients configured from
 * kinfer_config: a group consumer (manual commits of watermarks, no auto
 * offset store) and an idempotent acks=all producer for replies and dead
 * letters (transactional in exactly-once mode, with a read_committed
 * consumer), plus librdkafka's log and error callbacks mapped onto kinfer_log.
 * Not the poll loop or the rebalance logic. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kinfer/kinfer_log.h"
#include "worker_internal.h"

static kinfer_err conf_set(rd_kafka_conf_t *conf, const char *key, const char *value,
                           const char *what, kinfer_error *err) {
    char errstr[512];
    if (rd_kafka_conf_set(conf, key, value, errstr, sizeof errstr) != RD_KAFKA_CONF_OK)
        return kinfer_error_set(err, KINFER_ERR_CONFIG, "%s: librdkafka property %s=%s: %s", what,
                                key, value, errstr);
    return KINFER_OK;
}

static kinfer_err conf_set_list(rd_kafka_conf_t *conf, const kinfer_config_kvlist *list,
                                const char *what, kinfer_error *err) {
    for (size_t i = 0; i < list->n; i++) {
        const kinfer_config_kv *kv = &list->items[i];
        char errstr[512];
        if (rd_kafka_conf_set(conf, kv->key, kv->value, errstr, sizeof errstr) == RD_KAFKA_CONF_OK)
            continue;
        /* Never the secret itself, not even inside librdkafka's reason. */
        return kinfer_error_set(err, KINFER_ERR_CONFIG, "%s: librdkafka property %s=%s: %s", what,
                                kv->key, kinfer_config_kv_shown(kv),
                                kv->secret ? "refused" : errstr);
    }
    return KINFER_OK;
}

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    /* librdkafka 2.14 only says this at debug level (cgrp) and then keeps
     * looking for a coordinator that can do it, forever. */
    kinfer_worker *w = rd_kafka_opaque(rk);
    if (w && strstr(buf, "ConsumerGroupHeartbeatRequest not supported by broker"))
        atomic_store(&w->kip848_unsupported, 1);
    kinfer_log_level lvl = level <= 3   ? KINFER_LOG_ERROR
                           : level == 4 ? KINFER_LOG_WARN
                           : level <= 6 ? KINFER_LOG_INFO
                                        : KINFER_LOG_DEBUG;
    /* librdkafka repeats an authentication/TLS failure on every reconnect;
     * kafka.auth_failed says it once at error level, with what to check. */
    if (lvl == KINFER_LOG_ERROR && kinfer_kafka_error_is_config(kinfer_kafka_diagnose(0, buf)))
        lvl = KINFER_LOG_INFO;
    kinfer_log(lvl, "rdkafka.log", "client=%s facility=%s msg=\"%s\"", rd_kafka_name(rk), fac, buf);
}

static void on_error(rd_kafka_t *rk, int code, const char *reason, void *opaque) {
    kinfer_worker *w = opaque;
    if (code == RD_KAFKA_RESP_ERR__FATAL) {
        /* The process cannot go on with this client (fenced transactional
         * producer, idempotence broken, fenced static member): the loop
         * stops and the worker exits non-zero. */
        char why[512];
        rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, why, sizeof why);
        KINFER_LOGE("kafka.fatal", "client=%s code=%s error=\"%s\" action=\"stopping; exit 1\"",
                    rd_kafka_name(rk), rd_kafka_err2name(orig), why);
        atomic_store(&w->fatal, 1);
        return;
    }
    if (kinfer_worker_health_client_error(w->health, code,
                                          rd_kafka_err2name((rd_kafka_resp_err_t)code), reason)) {
        /* Once per streak: librdkafka retries (and logs) every reconnect. */
        kinfer_kafka_error_class cls = kinfer_kafka_diagnose(code, reason);
        KINFER_LOGE("kafka.auth_failed", "client=%s class=%s hint=\"%s\" error=\"%s\"",
                    rd_kafka_name(rk), kinfer_kafka_error_class_name(cls),
                    kinfer_kafka_error_hint(cls), reason);
    }
    /* Transport errors are retried by librdkafka itself; say so quietly. */
    kinfer_log(code == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN ? KINFER_LOG_WARN : KINFER_LOG_INFO,
               "kafka.error", "client=%s code=%s reason=\"%s\"", rd_kafka_name(rk),
               rd_kafka_err2name((rd_kafka_resp_err_t)code), reason);
}

static kinfer_err common_conf(kinfer_worker *w, rd_kafka_conf_t *conf, const char *role,
                              kinfer_error *err) {
    const kinfer_config *cfg = w->cfg;
    const char *brokers = w->opts.brokers_override ? w->opts.brokers_override : cfg->kafka.brokers;
    char client_id[256];
    snprintf(client_id, sizeof client_id, "kinfer-%s-%s", w->worker_id, role);
    kinfer_err rc = conf_set(conf, "client.id", client_id, role, err);
    if (rc == KINFER_OK)
        rc = conf_set_list(conf, &cfg->kafka.properties, "kafka.properties", err);
    if (rc == KINFER_OK)
        rc = conf_set(conf, "bootstrap.servers", brokers, role, err);
    rd_kafka_conf_set_log_cb(conf, on_log);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_opaque(conf, w);
    return rc;
}

static bool list_has(const kinfer_config_kvlist *list, const char *key) {
    for (size_t i = 0; i < list->n; i++)
        if (!strcmp(list->items[i].key, key))
            return true;
    return false;
}

/* Whether kafka.properties or kafka.consumer_properties set `key`. */
static bool user_set(const kinfer_config *cfg, const char *key) {
    return list_has(&cfg->kafka.properties, key) || list_has(&cfg->kafka.consumer_properties, key);
}

static kinfer_err consumer_new(kinfer_worker *w, kinfer_error *err) {
    const kinfer_config *cfg = w->cfg;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    kinfer_err rc = conf_set(conf, "auto.offset.reset", "earliest", "consumer", err);
    /* KIP-848: the broker assigns (and owns the session and heartbeat
     * timing); librdkafka refuses partition.assignment.strategy there. The
     * config load already refused the classic-only keys with their lines. */
    bool kip848 = cfg->kafka.group_protocol == KINFER_CONFIG_GROUP_PROTOCOL_CONSUMER;
    if (rc == KINFER_OK && kip848)
        rc = conf_set(conf, "group.protocol", "consumer", "consumer", err);
    else if (rc == KINFER_OK)
        rc = conf_set(conf, "partition.assignment.strategy",
                      kinfer_config_assignment_rdkafka(cfg->kafka.assignment_strategy), "consumer",
                      err);
    /* A resumed partition's first fetch waits behind the fetch in flight
     * when it was paused, up to fetch.wait.max.ms: with librdkafka's 500 ms
     * every backpressure pause costs half a second of idle engine. 100 ms
     * bounds that; the embedded cluster does not wake long-polling fetches
     * when data arrives at all, so there 10 ms keeps round trips
     * interactive. kafka.consumer_properties may override both. */
    if (rc == KINFER_OK)
        rc = conf_set(conf, "fetch.wait.max.ms", w->opts.embedded ? "10" : "100", "consumer", err);
    if (rc == KINFER_OK)
        rc = common_conf(w, conf, "consumer", err);
    if (rc == KINFER_OK)
        rc = conf_set_list(conf, &cfg->kafka.consumer_properties, "kafka.consumer_properties", err);
    /* With the consumer protocol, cgrp debugging is how a broker without
     * KIP-848 shows (on_log); those lines stay at kinfer's debug level. */
    if (rc == KINFER_OK && kip848 && !user_set(cfg, "debug"))
        rc = conf_set(conf, "debug", "cgrp", "consumer", err);
    /* librdkafka's statistics give the consumer lag per partition (for
     * /metrics, worker_lag.c) and, for cooperative at-least-once on a
     * librdkafka before 2.8.0, the join state that holds periodic commits
     * during a rebalance (the #4059 lost-assignment bug, worker_rebalance.c),
     * which wants them often.
     * kafka.consumer_properties may set another interval; 0 there turns
     * both off. */
    if (rc == KINFER_OK) {
        bool hold = !w->eos && !kip848 && w->rdk_commit_loses_assignment &&
                    cfg->kafka.assignment_strategy == KINFER_CONFIG_ASSIGNMENT_COOPERATIVE_STICKY;
        char v[32];
        size_t vlen = sizeof v;
        if (!user_set(cfg, "statistics.interval.ms"))
            rc = conf_set(conf, "statistics.interval.ms", hold ? "100" : "1000", "consumer", err);
        if (rc == KINFER_OK &&
            rd_kafka_conf_get(conf, "statistics.interval.ms", v, &vlen) == RD_KAFKA_CONF_OK &&
            strcmp(v, "0")) {
            rd_kafka_conf_set_stats_cb(conf, kinfer_worker_on_stats);
            w->stats_hold = hold;
        }
    }
    /* What at-least-once rests on: kinfer alone decides what is committed. */
    if (rc == KINFER_OK)
        rc = conf_set(conf, "group.id", cfg->kafka.group, "consumer", err);
    if (rc == KINFER_OK)
        rc = conf_set(conf, "enable.auto.commit", "false", "consumer", err);
    if (rc == KINFER_OK)
        rc = conf_set(conf, "enable.auto.offset.store", "false", "consumer", err);
    /* Exactly-once: aborted replies and requests must stay invisible. */
    if (rc == KINFER_OK && w->eos)
        rc = conf_set(conf, "isolation.level", "read_committed", "consumer", err);
    if (rc == KINFER_OK && cfg->kafka.group_instance_id)
        rc = conf_set(conf, "group.instance.id", cfg->kafka.group_instance_id, "consumer", err);
    if (rc != KINFER_OK) {
        rd_kafka_conf_destroy(conf);
        return rc;
    }
    rd_kafka_conf_set_rebalance_cb(conf, kinfer_worker_on_rebalance);
    rd_kafka_conf_set_offset_commit_cb(conf, kinfer_worker_on_commit);
    char errstr[512];
    w->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (!w->consumer)
        return kinfer_error_set(err, KINFER_ERR_KAFKA, "consumer: %s", errstr);
    rd_kafka_poll_set_consumer(w->consumer);
    return KINFER_OK;
}

static kinfer_err producer_new(kinfer_worker *w, kinfer_error *err) {
    const kinfer_config *cfg = w->cfg;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* A short linger: replies are latency-bound, and batching still forms
     * under load because deliveries overlap. */
    kinfer_err rc = conf_set(conf, "linger.ms", "1", "producer", err);
    if (rc == KINFER_OK)
        rc = common_conf(w, conf, "producer", err);
    if (rc == KINFER_OK)
        rc = conf_set_list(conf, &cfg->kafka.producer_properties, "kafka.producer_properties", err);
    if (rc == KINFER_OK)
        rc = conf_set(conf, "enable.idempotence", "true", "producer", err);
    if (rc == KINFER_OK)
        rc = conf_set(conf, "acks", "all", "producer", err);
    if (rc == KINFER_OK && w->eos) {
        /* One transactional id per worker: a restarted worker with the same
         * worker.id fences its predecessor (zombie) at init_transactions. */
        char txn_id[512];
        snprintf(txn_id, sizeof txn_id, "%s-%s",
                 cfg->kafka.transactional_id_prefix ? cfg->kafka.transactional_id_prefix
                                                    : cfg->kafka.group,
                 w->worker_id);
        rc = conf_set(conf, "transactional.id", txn_id, "producer", err);
    }
    if (rc != KINFER_OK) {
        rd_kafka_conf_destroy(conf);
        return rc;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, kinfer_worker_on_delivery);
    char errstr[512];
    w->producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!w->producer)
        return kinfer_error_set(err, KINFER_ERR_KAFKA, "producer: %s", errstr);
    return KINFER_OK;
}

int64_t kinfer_worker_max_poll_interval_ms(const kinfer_config *cfg) {
    int64_t v = 300000; /* librdkafka's default */
    const kinfer_config_kvlist *lists[] = {&cfg->kafka.properties, &cfg->kafka.consumer_properties};
    for (size_t l = 0; l < 2; l++) /* consumer_properties are applied last */
        for (size_t i = 0; i < lists[l]->n; i++)
            if (!strcmp(lists[l]->items[i].key, "max.poll.interval.ms"))
                v = strtoll(lists[l]->items[i].value, NULL, 10);
    return v > 0 ? v : 300000;
}

int kinfer_worker_probe_cluster(void *worker, int timeout_ms, char *why, size_t why_len) {
    kinfer_worker *w = worker;
    const struct rd_kafka_metadata *md = NULL;
    /* all_topics=0, no topic: the topics the producer knows (its reply
     * topics), answered by any broker that is up. */
    rd_kafka_resp_err_t rerr = rd_kafka_metadata(w->producer, 0, NULL, &md, timeout_ms);
    if (rerr == RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_metadata_destroy(md);
        return 0;
    }
    snprintf(why, why_len, "metadata probe: %s", rd_kafka_err2str(rerr));
    return -1;
}

kinfer_err kinfer_worker_kafka_new(kinfer_worker *w, kinfer_error *err) {
    kinfer_err rc = producer_new(w, err);
    if (rc == KINFER_OK)
        rc = consumer_new(w, err);
    return rc;
}
