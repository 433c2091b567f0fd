/* worker_consume.c — one consumed message on the poll thread: size check,
 * decode, reply address, then either the engine, an error reply or a dead
 * letter. Never blocks on compute and never drops a message silently: each
 * path ends in a produce whose delivery report finishes the offset.
 * Not the poll loop (worker_loop.c) or the produce (worker_reply.c). */
#include <stdio.h>
#include <string.h>

#include "kinfer/kinfer_log.h"
#include "worker_internal.h"

static void consume_error(kinfer_worker *w, rd_kafka_message_t *rkm) {
    if (rkm->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
        return;
    KINFER_LOGW("consumer.error", "topic=%s partition=%d error=\"%s\"",
                rkm->rkt ? rd_kafka_topic_name(rkm->rkt) : "-", (int)rkm->partition,
                rd_kafka_message_errstr(rkm));
    if (rkm->err == RD_KAFKA_RESP_ERR__FATAL)
        atomic_store(&w->fatal, 1);
}

/* Absolute epoch ms -> engine µs; 0 keeps "the model's default". */
static int64_t deadline_us(const kinfer_codec_request *req) {
    if (!req->has_deadline)
        return 0;
    if (req->deadline_ms <= 0)
        return 1; /* long gone: the engine answers DEADLINE_EXCEEDED */
    if (req->deadline_ms > INT64_MAX / 1000)
        return INT64_MAX;
    return req->deadline_ms * 1000;
}

static kinfer_err reply_address(kinfer_worker *w, rd_kafka_message_t *rkm,
                                const kinfer_codec_request *req, char *out, size_t outlen,
                                kinfer_error *err) {
    rd_kafka_headers_t *hdrs = NULL;
    if (rd_kafka_message_headers(rkm, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
        hdrs = NULL;
    kinfer_str field = {NULL, 0};
    if (req && req->has_reply_to)
        field = req->reply_to;
    return kinfer_worker_reply_topic(field, kinfer_worker_header_last(hdrs, KINFER_HDR_REPLY_TO),
                                     rd_kafka_topic_name(rkm->rkt),
                                     w->cfg->kafka.reply_topic_pattern, out, outlen, err);
}

void kinfer_worker_consume(kinfer_worker *w, rd_kafka_message_t *rkm) {
    if (rkm->err) {
        consume_error(w, rkm);
        rd_kafka_message_destroy(rkm);
        return;
    }
    kinfer_worker_metrics_consumed(w->metrics);
    const char *topic = rd_kafka_topic_name(rkm->rkt);
    kinfer_error err;
    kinfer_worker_part *part = kinfer_worker_parts_get(w->parts, topic, rkm->partition);
    kinfer_worker_offset_ref ref = {0};
    if (part && part->wm.last_added >= 0 && rkm->offset != part->wm.last_added + 1)
        /* Not an error (compaction and transaction markers leave holes),
         * but worth a line: a hole is where a lost message would show. */
        KINFER_LOGD("consumer.offset_jump", "topic=%s partition=%d from=%lld to=%lld", topic,
                    (int)rkm->partition, (long long)part->wm.last_added, (long long)rkm->offset);
    if (!part || kinfer_worker_part_track(part, rkm->offset, &ref, &err) != KINFER_OK) {
        /* Out of memory. Processing on untracked would let a later offset
         * commit past this one, so stop: the graceful shutdown commits only
         * what was answered and this message is redelivered. */
        KINFER_LOGE("worker.track_failed", "topic=%s partition=%d offset=%lld error=\"%s\"", topic,
                    (int)rkm->partition, (long long)rkm->offset, part ? err.msg : "out of memory");
        atomic_store(&w->fatal, 1);
        rd_kafka_message_destroy(rkm);
        return;
    }

    /* Too large: dead letter without decoding a byte of it. */
    if (rkm->len > (size_t)w->cfg->kafka.max_message_bytes) {
        kinfer_worker_msg *msg = kinfer_worker_msg_new(w, rkm, part, &ref, NULL);
        char why[160];
        snprintf(why, sizeof why, "message of %zu bytes exceeds kafka.max_message_bytes = %lld",
                 rkm->len, (long long)w->cfg->kafka.max_message_bytes);
        if (msg)
            kinfer_worker_dlq_send(msg, why);
        else
            rd_kafka_message_destroy(rkm);
        return;
    }

    kinfer_codec_request req;
    kinfer_err rc = kinfer_codec_request_decode(
        w->decoder, rkm->payload ? rkm->payload : (void *)"", rkm->len, &req, &err);
    if (rc == KINFER_ERR_INVALID_REQUEST || rc == KINFER_ERR_TOO_LARGE) {
        /* Decodable enough to answer: an error reply, if we know where to. */
        kinfer_codec_request head = req;
        head.ninputs = head.nparams = 0; /* possibly partial; not needed */
        kinfer_worker_msg *msg = kinfer_worker_msg_new(w, rkm, part, &ref, &head);
        if (!msg) {
            rd_kafka_message_destroy(rkm);
            return;
        }
        kinfer_error rerr;
        if (reply_address(w, rkm, &req, msg->reply_topic, sizeof msg->reply_topic, &rerr) !=
            KINFER_OK) {
            char why[2 * KINFER_ERROR_MSG_MAX + 8];
            snprintf(why, sizeof why, "%s; %s", err.msg, rerr.msg);
            kinfer_worker_dlq_send(msg, why);
            return;
        }
        msg->model_idx = kinfer_worker_model_index(w, req.model);
        kinfer_worker_reply_error(msg, rc, err.msg);
        return;
    }
    if (rc != KINFER_OK) {
        kinfer_worker_msg *msg = kinfer_worker_msg_new(w, rkm, part, &ref, NULL);
        char why[KINFER_ERROR_MSG_MAX + 32];
        snprintf(why, sizeof why, "undecodable request: %s", err.msg);
        if (msg)
            kinfer_worker_dlq_send(msg, why);
        else
            rd_kafka_message_destroy(rkm);
        return;
    }

    kinfer_worker_msg *msg = kinfer_worker_msg_new(w, rkm, part, &ref, &req);
    if (!msg) {
        rd_kafka_message_destroy(rkm);
        return;
    }
    if (reply_address(w, rkm, &req, msg->reply_topic, sizeof msg->reply_topic, &err) != KINFER_OK) {
        kinfer_worker_dlq_send(msg, err.msg);
        return;
    }
    msg->model_idx = kinfer_worker_model_index(w, req.model);
    if (msg->model_idx >= 0 && msg->model_idx < KINFER_WORKER_MAX_MODEL_BITS)
        part->model_mask |= 1ULL << msg->model_idx;

    kinfer_engine_request ereq = {
        .model = msg->model,
        .model_version = msg->has_model_version ? msg->model_version : (kinfer_str){"", 0},
        .inputs = msg->inputs,
        .ninputs = msg->ninputs,
        .params = msg->params,
        .nparams = msg->nparams,
        .deadline_us = deadline_us(&req),
        .priority = req.priority,
        .token = msg,
    };
    rc = kinfer_engine_submit(w->engine, &ereq, &err);
    if (rc == KINFER_OK)
        return; /* the completion produces the reply */
    if (rc == KINFER_ERR_SHUTDOWN) {
        kinfer_worker_msg_abandon(msg, "engine shutting down", false);
        return;
    }
    kinfer_worker_reply_error(msg, rc, err.msg);
}
