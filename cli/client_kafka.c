/* client_kafka.c — producer + reply-tail consumer for the client commands
 * (see client_kafka.h). */
#include "client_kafka.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kinfer/kinfer_clock.h"
#include "kinfer/kinfer_config.h"
#include "kinfer/kinfer_worker.h"

static void on_dr(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque) {
    (void)rk;
    kinfer_client *c = opaque;
    if (rkm->err) {
        c->failed++;
        snprintf(c->last_error, sizeof c->last_error, "%s", rd_kafka_err2str(rkm->err));
    } else {
        c->delivered++;
    }
}

static void on_error(rd_kafka_t *rk, int code, const char *reason, void *opaque) {
    (void)rk;
    kinfer_client *c = opaque;
    kinfer_kafka_error_class cls = kinfer_kafka_diagnose(code, reason);
    if (kinfer_kafka_error_is_config(cls) && !c->auth_class) {
        c->auth_class = (int)cls;
        snprintf(c->auth_error, sizeof c->auth_error, "%s: %s",
                 rd_kafka_err2name((rd_kafka_resp_err_t)code), reason ? reason : "");
    }
}

kinfer_err kinfer_client_check_auth(const kinfer_client *c, kinfer_error *err) {
    if (!c->auth_class)
        return KINFER_OK;
    return kinfer_error_set(err, KINFER_ERR_KAFKA, "%s (-X); last error: %s",
                            kinfer_kafka_error_hint((kinfer_kafka_error_class)c->auth_class),
                            c->auth_error);
}

/* librdkafka's errors, except those that an authentication/TLS failure
 * repeats on every reconnect: the command's own message names those, with
 * the properties to check. Called from librdkafka's threads. */
static void quiet_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    const kinfer_client *c = rd_kafka_opaque(rk);
    if (level > 3 || kinfer_kafka_error_is_config(kinfer_kafka_diagnose(0, buf)))
        return;
    if (c && c->auth_class)
        return;
    fprintf(stderr, "kafka: %s: %s\n", fac, buf);
}

static kinfer_err make_conf(rd_kafka_conf_t **out, const char *brokers, const char *const *props,
                            size_t nprops, kinfer_error *err) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char errstr[256];
    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, sizeof errstr)) {
        rd_kafka_conf_destroy(conf);
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "brokers: %s", errstr);
    }
    for (size_t i = 0; i < nprops; i++) {
        char key[256];
        const char *eq = strchr(props[i], '=');
        if (!eq || (size_t)(eq - props[i]) >= sizeof key) {
            rd_kafka_conf_destroy(conf);
            return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                    "property '%s': expected key=value", props[i]);
        }
        memcpy(key, props[i], (size_t)(eq - props[i]));
        key[eq - props[i]] = 0;
        /* -X sasl.password='${env:KAFKA_PASSWORD}': a secret need not sit
         * on the command line (where ps shows it). */
        char *expanded = NULL;
        kinfer_error xerr;
        if (kinfer_config_expand_refs(eq + 1, NULL, &expanded, &xerr) != KINFER_OK) {
            rd_kafka_conf_destroy(conf);
            return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "-X %s: %s", key, xerr.msg);
        }
        const char *value = expanded ? expanded : eq + 1;
        bool secret = expanded || kinfer_config_secret_key(key);
        rd_kafka_conf_res_t res = rd_kafka_conf_set(conf, key, value, errstr, sizeof errstr);
        char why[512];
        if (res == RD_KAFKA_CONF_OK &&
            !kinfer_config_check_rdkafka_file(key, value, why, sizeof why)) {
            if (expanded) {
                memset(expanded, 0, strlen(expanded));
                free(expanded);
            }
            rd_kafka_conf_destroy(conf);
            return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "-X %s", why);
        }
        if (expanded) {
            memset(expanded, 0, strlen(expanded));
            free(expanded);
        }
        if (res != RD_KAFKA_CONF_OK) {
            rd_kafka_conf_destroy(conf);
            return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "-X %s=%s: %s", key,
                                    secret ? "[redacted]" : eq + 1,
                                    secret ? "refused by librdkafka" : errstr);
        }
    }
    rd_kafka_conf_set_log_cb(conf, quiet_log);
    rd_kafka_conf_set_error_cb(conf, on_error);
    *out = conf;
    return KINFER_OK;
}

/* Partition count of topic; asks (via the producer, which may auto-create)
 * until it exists or the timeout passes, or an authentication/TLS failure
 * says it never will. */
static kinfer_err topic_partitions(kinfer_client *c, const char *what, const char *topic,
                                   int timeout_ms, int *out, kinfer_error *err) {
    rd_kafka_t *rk = c->producer;
    int64_t deadline = kinfer_mono_us() + (int64_t)timeout_ms * 1000;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const char *why = "no answer";
    for (;;) {
        const struct rd_kafka_metadata *md = NULL;
        /* Short asks: the error callback runs between them, in poll. */
        rd_kafka_resp_err_t rerr = rd_kafka_metadata(rk, 0, rkt, &md, 1000);
        rd_kafka_poll(rk, 0);
        if (c->auth_class) {
            if (md)
                rd_kafka_metadata_destroy(md);
            rd_kafka_topic_destroy(rkt);
            return kinfer_client_check_auth(c, err);
        }
        if (!rerr && md->topic_cnt == 1 && !md->topics[0].err && md->topics[0].partition_cnt > 0) {
            *out = md->topics[0].partition_cnt;
            rd_kafka_metadata_destroy(md);
            rd_kafka_topic_destroy(rkt);
            return KINFER_OK;
        }
        why = rd_kafka_err2str(rerr ? rerr : md->topics[0].err);
        if (md)
            rd_kafka_metadata_destroy(md);
        if (kinfer_mono_us() >= deadline)
            break;
        usleep(200 * 1000);
    }
    rd_kafka_topic_destroy(rkt);
    return kinfer_error_set(err, KINFER_ERR_KAFKA, "%s topic %s: %s", what, topic, why);
}

kinfer_err kinfer_client_open(kinfer_client *c, const char *brokers, const char *reply_topic,
                              const char *const *props, size_t nprops, int timeout_ms,
                              kinfer_error *err) {
    memset(c, 0, sizeof *c);
    rd_kafka_conf_t *pconf, *cconf;
    kinfer_err rc = make_conf(&pconf, brokers, props, nprops, err);
    if (rc != KINFER_OK)
        return rc;
    rd_kafka_conf_set_dr_msg_cb(pconf, on_dr);
    rd_kafka_conf_set_opaque(pconf, c);
    char errstr[256];
    rd_kafka_conf_set(pconf, "linger.ms", "1", errstr, sizeof errstr);
    c->producer = rd_kafka_new(RD_KAFKA_PRODUCER, pconf, errstr, sizeof errstr);
    if (!c->producer)
        return kinfer_error_set(err, KINFER_ERR_KAFKA, "producer: %s", errstr);
    rc = topic_partitions(c, "reply", reply_topic, timeout_ms, &c->reply_partitions, err);
    if (rc != KINFER_OK)
        goto fail;
    rc = make_conf(&cconf, brokers, props, nprops, err);
    if (rc != KINFER_OK)
        goto fail;
    char group[64];
    snprintf(group, sizeof group, "kinfer-client-%d", (int)getpid());
    rd_kafka_conf_set(cconf, "group.id", group, errstr, sizeof errstr);
    rd_kafka_conf_set(cconf, "enable.auto.commit", "false", errstr, sizeof errstr);
    rd_kafka_conf_set(cconf, "fetch.wait.max.ms", "10", errstr, sizeof errstr);
    rd_kafka_conf_set_opaque(cconf, c);
    c->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, cconf, errstr, sizeof errstr);
    if (!c->consumer) {
        rc = kinfer_error_set(err, KINFER_ERR_KAFKA, "consumer: %s", errstr);
        goto fail;
    }
    /* Start every reply partition at its current end, known before the
     * first request leaves: nothing older is read, nothing newer missed. */
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(c->reply_partitions);
    for (int p = 0; p < c->reply_partitions; p++) {
        int64_t lo, hi;
        rd_kafka_resp_err_t rerr =
            rd_kafka_query_watermark_offsets(c->consumer, reply_topic, p, &lo, &hi, 10000);
        if (rerr) {
            rd_kafka_topic_partition_list_destroy(list);
            rc = kinfer_error_set(err, KINFER_ERR_KAFKA, "reply topic %s[%d]: %s", reply_topic, p,
                                  rd_kafka_err2str(rerr));
            goto fail;
        }
        rd_kafka_topic_partition_list_add(list, reply_topic, p)->offset = hi;
    }
    rd_kafka_resp_err_t rerr = rd_kafka_assign(c->consumer, list);
    rd_kafka_topic_partition_list_destroy(list);
    if (rerr) {
        rc = kinfer_error_set(err, KINFER_ERR_KAFKA, "assign: %s", rd_kafka_err2str(rerr));
        goto fail;
    }
    c->replies = rd_kafka_queue_get_consumer(c->consumer);
    return KINFER_OK;
fail:
    kinfer_client_close(c);
    return rc;
}

kinfer_err kinfer_client_prepare_topic(kinfer_client *c, const char *topic, int timeout_ms,
                                       kinfer_error *err) {
    int n;
    return topic_partitions(c, "request", topic, timeout_ms, &n, err);
}

void kinfer_client_close(kinfer_client *c) {
    if (c->replies)
        rd_kafka_queue_destroy(c->replies);
    if (c->consumer) {
        rd_kafka_consumer_close(c->consumer);
        rd_kafka_destroy(c->consumer);
    }
    if (c->producer) {
        rd_kafka_flush(c->producer, 5000);
        rd_kafka_destroy(c->producer);
    }
    memset(c, 0, sizeof *c);
}

kinfer_err kinfer_client_produce(kinfer_client *c, const char *topic, const void *key,
                                 size_t key_len, const void *value, size_t len,
                                 rd_kafka_headers_t *hdrs, kinfer_error *err) {
    for (;;) {
        rd_kafka_resp_err_t rerr = rd_kafka_producev(
            c->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, key_len),
            RD_KAFKA_V_VALUE((void *)value, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END);
        if (!rerr)
            return KINFER_OK;
        if (rerr != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            if (hdrs)
                rd_kafka_headers_destroy(hdrs);
            return kinfer_error_set(err, KINFER_ERR_KAFKA, "produce to %s: %s", topic,
                                    rd_kafka_err2str(rerr));
        }
        rd_kafka_poll(c->producer, 1);
    }
}
