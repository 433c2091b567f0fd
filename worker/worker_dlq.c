/* worker_dlq.c — dead letters: a message that cannot be decoded, is too
 * large, or has no usable reply address goes, byte for byte with its key
 * and headers, to the dead-letter topic with the reason and its source
 * coordinates in headers. Its offset finishes when that delivery succeeds.
 * Not the header rules (worker_route.c). */
#include <string.h>
#include <unistd.h>

#include "kinfer/kinfer_log.h"
#include "worker_internal.h"

static rd_kafka_resp_err_t dlq_produce(kinfer_worker *w, kinfer_worker_msg *msg, const void *key,
                                       size_t key_len, const void *value, size_t len,
                                       rd_kafka_headers_t *hdrs) {
    rd_kafka_resp_err_t rerr;
    for (;;) {
        rerr = rd_kafka_producev(w->producer, RD_KAFKA_V_TOPIC(msg->reply_topic),
                                 RD_KAFKA_V_KEY(key, key_len), RD_KAFKA_V_VALUE((void *)value, len),
                                 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(hdrs),
                                 RD_KAFKA_V_OPAQUE(msg), RD_KAFKA_V_END);
        if (rerr != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            return rerr;
        usleep(1000);
    }
}

void kinfer_worker_dlq_send(kinfer_worker_msg *msg, const char *reason) {
    kinfer_worker *w = msg->w;
    kinfer_error err;
    if (kinfer_worker_pattern_expand(w->cfg->kafka.dlq_topic_pattern, msg->part->topic,
                                     msg->reply_topic, sizeof msg->reply_topic,
                                     &err) != KINFER_OK) {
        kinfer_worker_msg_abandon(msg, err.msg, true);
        return;
    }
    rd_kafka_message_t *rkm = msg->rkm;
    rd_kafka_headers_t *req_hdrs = NULL;
    if (rd_kafka_message_headers(rkm, &req_hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
        req_hdrs = NULL;
    rd_kafka_headers_t *hdrs = NULL;
    if (kinfer_worker_dlq_headers(req_hdrs, reason, msg->part->topic, msg->partition, msg->offset,
                                  &hdrs, &err) != KINFER_OK) {
        kinfer_worker_msg_abandon(msg, err.msg, true);
        return;
    }
    KINFER_LOGW("worker.dead_letter", "topic=%s partition=%d offset=%lld dlq=%s reason=\"%s\"",
                msg->part->topic, (int)msg->partition, (long long)msg->offset, msg->reply_topic,
                reason);
    msg->is_dlq = true;
    if (w->eos) {
        /* Exactly-once: the dead letter commits with the offsets, too. */
        if (kinfer_worker_txn_prepare(msg, rkm->key, rkm->key_len, rkm->payload, rkm->len, hdrs) !=
            KINFER_OK) {
            rd_kafka_headers_destroy(hdrs);
            kinfer_worker_msg_abandon(msg, "out of memory", true);
            return;
        }
        kinfer_worker_txn_hold(msg);
        return;
    }
    msg->rkm = NULL; /* the delivery report owns msg from the produce on */
    rd_kafka_resp_err_t rerr =
        dlq_produce(w, msg, rkm->key, rkm->key_len, rkm->payload, rkm->len, hdrs);
    if (rerr == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE) {
        /* Larger than the producer may send: keep the evidence we can. */
        rd_kafka_headers_t *h2 = NULL;
        char why[KINFER_ERROR_MSG_MAX + 96];
        snprintf(why, sizeof why, "%s; value of %zu bytes dropped: too large to forward", reason,
                 rkm->len);
        if (kinfer_worker_dlq_headers(req_hdrs, why, msg->part->topic, msg->partition, msg->offset,
                                      &h2, &err) == KINFER_OK) {
            rd_kafka_headers_destroy(hdrs);
            hdrs = h2;
            rerr = dlq_produce(w, msg, rkm->key, rkm->key_len, NULL, 0, hdrs);
        }
    }
    if (rerr != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_headers_destroy(hdrs);
        msg->rkm = rkm;
        kinfer_worker_msg_abandon(msg, rd_kafka_err2str(rerr), true);
        return;
    }
    rd_kafka_message_destroy(rkm);
}
