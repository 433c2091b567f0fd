/* worker_embedded.c — librdkafka's mock cluster as kinfer's embedded Kafka
 * (see worker_embedded.h). The cluster needs an rd_kafka_t to live in; a
 * producer handle with no bootstrap servers serves as that host and does
 * nothing else. */
#include "kinfer/kinfer_embedded.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "kinfer/kinfer_log.h"
#include "kinfer/kinfer_route.h"

struct kinfer_worker_embedded {
    rd_kafka_t *host;
    rd_kafka_mock_cluster_t *cluster;
};

static void quiet_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    (void)rk;
    if (level <= 3)
        KINFER_LOGE("embedded.log", "facility=%s msg=\"%s\"", fac, buf);
}

static kinfer_err create_topic(kinfer_worker_embedded *emb, const char *pattern, const char *topic,
                               int partitions, kinfer_error *err) {
    char name[KINFER_WORKER_TOPIC_MAX + 1];
    if (pattern) {
        kinfer_err rc = kinfer_worker_pattern_expand(pattern, topic, name, sizeof name, err);
        if (rc != KINFER_OK)
            return rc;
    } else {
        snprintf(name, sizeof name, "%s", topic);
    }
    rd_kafka_resp_err_t rerr = rd_kafka_mock_topic_create(emb->cluster, name, partitions, 1);
    if (rerr)
        return kinfer_error_set(err, KINFER_ERR_KAFKA, "embedded cluster: topic %s: %s", name,
                                rd_kafka_err2str(rerr));
    return KINFER_OK;
}

kinfer_err kinfer_worker_embedded_start(const char *const *topics, size_t ntopics, int partitions,
                                        const char *reply_pattern, const char *dlq_pattern,
                                        kinfer_worker_embedded **out, kinfer_error *err) {
    kinfer_worker_embedded *emb = calloc(1, sizeof *emb);
    if (!emb)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "embedded cluster: out of memory");
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char errstr[256];
    rd_kafka_conf_set(conf, "client.id", "kinfer-embedded", errstr, sizeof errstr);
    rd_kafka_conf_set_log_cb(conf, quiet_log);
    emb->host = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!emb->host) {
        free(emb);
        return kinfer_error_set(err, KINFER_ERR_KAFKA, "embedded cluster: %s", errstr);
    }
    emb->cluster = rd_kafka_mock_cluster_new(emb->host, 1);
    if (!emb->cluster) {
        kinfer_worker_embedded_stop(emb);
        return kinfer_error_set(err, KINFER_ERR_KAFKA,
                                "embedded cluster: librdkafka could not start its mock cluster");
    }
    for (size_t i = 0; i < ntopics; i++) {
        kinfer_err rc = create_topic(emb, NULL, topics[i], partitions, err);
        if (rc == KINFER_OK && reply_pattern)
            rc = create_topic(emb, reply_pattern, topics[i], partitions, err);
        if (rc == KINFER_OK && dlq_pattern)
            rc = create_topic(emb, dlq_pattern, topics[i], partitions, err);
        if (rc != KINFER_OK) {
            kinfer_worker_embedded_stop(emb);
            return rc;
        }
    }
    *out = emb;
    return KINFER_OK;
}

const char *kinfer_worker_embedded_bootstrap(const kinfer_worker_embedded *emb) {
    return rd_kafka_mock_cluster_bootstraps(emb->cluster);
}

void kinfer_worker_embedded_stop(kinfer_worker_embedded *emb) {
    if (!emb)
        return;
    if (emb->cluster)
        rd_kafka_mock_cluster_destroy(emb->cluster);
    if (emb->host)
        rd_kafka_destroy(emb->host);
    free(emb);
}
