/* worker_dlq.c — dead letters: a message that cannot be decoded, is too
 * large, or has no usable reply address becomes a record for the
 * dead-letter topic, byte for byte with its key and headers, plus the
 * reason and its source coordinates in headers. Its offset finishes when
 * that delivery succeeds. Not the header rules (worker_route.c) and not
 * the produce or its too-large fallback (worker_produce.c). */
#include <string.h>

#include "kinfer/kinfer_log.h"
#include "worker_internal.h"

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
    /* Key and value stay in rkm until the produce copies them. */
    msg->is_dlq = true;
    msg->out_key = rkm->key;
    msg->out_key_len = rkm->key_len;
    msg->out_value = rkm->payload;
    msg->out_len = rkm->len;
    msg->out_value_owned = false;
    msg->out_hdrs = hdrs;
    msg->node.bytes = 0; /* nothing beyond the request, already in the in-flight bytes */
    kinfer_worker_produce(msg);
}
