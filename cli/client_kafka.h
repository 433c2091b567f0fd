/* client_kafka.h — the Kafka side of `kinfer send` and `kinfer bench`: a
 * producer for requests and a consumer that reads the reply topic from its
 * current end (assigned, no group membership), set up before the first
 * request goes out so that no reply can be missed. Not the worker's clients. */
#ifndef KINFER_CLIENT_KAFKA_H
#define KINFER_CLIENT_KAFKA_H

#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "kinfer/kinfer_error.h"

typedef struct kinfer_client {
    rd_kafka_t *producer;
    rd_kafka_t *consumer;
    rd_kafka_queue_t *replies; /* the consumer's queue */
    int reply_partitions;
    /* Delivery reports of requests (served by rd_kafka_poll on producer). */
    uint64_t delivered, failed;
    char last_error[256];
    /* The first authentication/TLS failure either client reported
     * (kinfer_kafka_diagnose): the credentials, certificate or protocol are
     * wrong, so the commands stop at once instead of waiting out their
     * timeouts. Set by the error callback, inside rd_kafka_poll. */
    int auth_class; /* kinfer_kafka_error_class; 0 = none */
    char auth_error[384];
} kinfer_client;

/* After rd_kafka_poll: KINFER_ERR_KAFKA with a message naming the
 * properties to check when a client reported an authentication/TLS
 * failure, else KINFER_OK. */
kinfer_err kinfer_client_check_auth(const kinfer_client *c, kinfer_error *err);

/* props: "key=value" librdkafka properties for both clients (may be NULL).
 * Waits up to timeout_ms for the reply topic's metadata (asking the broker
 * to create it when it does not exist and the broker allows it). */
kinfer_err kinfer_client_open(kinfer_client *c, const char *brokers, const char *reply_topic,
                              const char *const *props, size_t nprops, int timeout_ms,
                              kinfer_error *err);
void kinfer_client_close(kinfer_client *c);

/* Looks up topic's partitions with the producer (so the first produce does
 * not wait for metadata) and fails when it does not exist. */
kinfer_err kinfer_client_prepare_topic(kinfer_client *c, const char *topic, int timeout_ms,
                                       kinfer_error *err);

/* Produces one request (value copied; headers taken over even on failure).
 * Retries while the local queue is full. */
kinfer_err kinfer_client_produce(kinfer_client *c, const char *topic, const void *key,
                                 size_t key_len, const void *value, size_t len,
                                 rd_kafka_headers_t *hdrs, kinfer_error *err);

#endif
