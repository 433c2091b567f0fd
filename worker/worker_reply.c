/* worker_reply.c — from an engine completion (or an early error) to a
 * produced reply, and from its delivery report to a finished offset.
 * Runs on engine threads and the poll thread (produce) and on the producer
 * thread (delivery reports). Not the routing rules (worker_route.c). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kinfer/kinfer_clock.h"
#include "kinfer/kinfer_log.h"
#include "worker_internal.h"

/* ---- encoder pool ------------------------------------------------------- */

kinfer_err kinfer_worker_encoders_init(kinfer_worker_encoders *pool, kinfer_error *err) {
    memset(pool, 0, sizeof *pool);
    pthread_mutex_init(&pool->lock, NULL);
    (void)err;
    return KINFER_OK;
}

void kinfer_worker_encoders_free(kinfer_worker_encoders *pool) {
    for (size_t i = 0; i < pool->nfree; i++)
        kinfer_codec_encoder_destroy(pool->free[i]);
    free(pool->free);
    pthread_mutex_destroy(&pool->lock);
    memset(pool, 0, sizeof *pool);
}

static kinfer_codec_encoder *encoder_get(kinfer_worker_encoders *pool, kinfer_error *err) {
    kinfer_codec_encoder *enc = NULL;
    pthread_mutex_lock(&pool->lock);
    if (pool->nfree)
        enc = pool->free[--pool->nfree];
    pthread_mutex_unlock(&pool->lock);
    if (!enc && kinfer_codec_encoder_new(&enc, err) != KINFER_OK)
        return NULL;
    return enc;
}

static void encoder_put(kinfer_worker_encoders *pool, kinfer_codec_encoder *enc) {
    pthread_mutex_lock(&pool->lock);
    if (pool->nfree == pool->cap) {
        size_t ncap = pool->cap ? pool->cap * 2 : 16;
        kinfer_codec_encoder **nf = realloc(pool->free, ncap * sizeof *nf);
        if (!nf) {
            pthread_mutex_unlock(&pool->lock);
            kinfer_codec_encoder_destroy(enc);
            return;
        }
        pool->free = nf;
        pool->cap = ncap;
    }
    pool->free[pool->nfree++] = enc;
    pthread_mutex_unlock(&pool->lock);
}

/* ---- reply -------------------------------------------------------------- */

static void reply_frame(const kinfer_worker *w, const kinfer_worker_msg *msg,
                        kinfer_codec_frame *f) {
    memset(f, 0, sizeof *f);
    int32_t sid = w->cfg->worker.confluent_response_schema_id;
    switch (w->cfg->worker.reply_framing) {
    case KINFER_CONFIG_FRAMING_SAME:
        f->framing = msg->frame.framing;
        /* A Confluent request's schema id is the request schema's; the reply
         * needs the response schema's id, which only the config knows.
         * Without it, bare Avro is the honest answer. */
        if (f->framing == KINFER_CODEC_FRAMING_CONFLUENT) {
            if (sid > 0)
                f->schema_id = (uint32_t)sid;
            else
                f->framing = KINFER_CODEC_FRAMING_BARE;
        }
        break;
    case KINFER_CONFIG_FRAMING_BARE:
        f->framing = KINFER_CODEC_FRAMING_BARE;
        break;
    case KINFER_CONFIG_FRAMING_SINGLE_OBJECT:
        f->framing = KINFER_CODEC_FRAMING_SINGLE_OBJECT;
        break;
    case KINFER_CONFIG_FRAMING_CONFLUENT:
        f->framing = KINFER_CODEC_FRAMING_CONFLUENT;
        f->schema_id = (uint32_t)sid;
        break;
    }
}

void kinfer_worker_reply_send(kinfer_worker_msg *msg, kinfer_codec_response *resp) {
    kinfer_worker *w = msg->w;
    kinfer_error err;
    resp->timing.worker.ptr = w->worker_id;
    resp->timing.worker.len = strlen(w->worker_id);
    resp->source.topic.ptr = msg->part->topic;
    resp->source.topic.len = strlen(msg->part->topic);
    resp->source.partition = msg->partition;
    resp->source.offset = msg->offset;
    msg->wire_status = resp->status;

    kinfer_codec_frame frame;
    reply_frame(w, msg, &frame);
    kinfer_codec_encoder *enc = encoder_get(&w->encoders, &err);
    if (!enc) {
        kinfer_worker_msg_abandon(msg, err.msg, true);
        return;
    }
    const uint8_t *buf;
    size_t len;
    if (kinfer_codec_response_encode(enc, resp, &frame, &buf, &len, &err) != KINFER_OK) {
        /* The engine produced something the schema cannot carry: answer
         * with INTERNAL_ERROR rather than leave the request hanging. */
        KINFER_LOGE("worker.encode_failed", "topic=%s partition=%d offset=%lld error=\"%s\"",
                    msg->part->topic, (int)msg->partition, (long long)msg->offset, err.msg);
        kinfer_codec_response fallback = *resp;
        fallback.status = kinfer_err_to_wire_status(KINFER_ERR_INTERNAL);
        fallback.has_error = true;
        fallback.error.ptr = err.msg;
        fallback.error.len = strlen(err.msg);
        fallback.outputs = NULL;
        fallback.noutputs = 0;
        msg->wire_status = fallback.status;
        if (kinfer_codec_response_encode(enc, &fallback, &frame, &buf, &len, &err) != KINFER_OK) {
            encoder_put(&w->encoders, enc);
            kinfer_worker_msg_abandon(msg, err.msg, true);
            return;
        }
    }

    rd_kafka_message_t *rkm = msg->rkm;
    rd_kafka_headers_t *req_hdrs = NULL;
    if (rd_kafka_message_headers(rkm, &req_hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
        req_hdrs = NULL;
    rd_kafka_headers_t *hdrs = NULL;
    if (kinfer_worker_reply_headers(req_hdrs, w->cfg->kafka.copy_headers.items,
                                    w->cfg->kafka.copy_headers.n, resp->id, &hdrs,
                                    &err) != KINFER_OK) {
        encoder_put(&w->encoders, enc);
        kinfer_worker_msg_abandon(msg, err.msg, true);
        return;
    }
    kinfer_str key = kinfer_worker_reply_key(rkm->key, rkm->key_len, resp->id);
    if (w->eos) {
        /* Exactly-once: the reply waits for its turn in the transaction. */
        msg->is_dlq = false;
        if (kinfer_worker_txn_prepare(msg, key.ptr, key.len, buf, len, hdrs) != KINFER_OK) {
            encoder_put(&w->encoders, enc);
            rd_kafka_headers_destroy(hdrs);
            kinfer_worker_msg_abandon(msg, "out of memory", true);
            return;
        }
        encoder_put(&w->encoders, enc);
        kinfer_worker_txn_hold(msg);
        return;
    }
    /* From here the delivery report owns msg and may free it at any moment
     * on the producer thread: take rkm out first, destroy it ourselves. */
    msg->rkm = NULL;
    msg->is_dlq = false;
    rd_kafka_resp_err_t rerr;
    for (;;) {
        rerr = rd_kafka_producev(
            w->producer, RD_KAFKA_V_TOPIC(msg->reply_topic), RD_KAFKA_V_KEY(key.ptr, key.len),
            RD_KAFKA_V_VALUE((void *)buf, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(msg), RD_KAFKA_V_END);
        if (rerr != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            break;
        /* The local queue is full: wait for deliveries (backpressure on
         * this engine thread; the poll loop keeps polling meanwhile). */
        usleep(1000);
    }
    encoder_put(&w->encoders, enc);
    if (rerr != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_headers_destroy(hdrs);
        msg->rkm = rkm;
        kinfer_worker_msg_abandon(msg, rd_kafka_err2str(rerr), true);
        return;
    }
    rd_kafka_message_destroy(rkm);
}

void kinfer_worker_reply_error(kinfer_worker_msg *msg, kinfer_err status, const char *error) {
    kinfer_codec_response resp;
    memset(&resp, 0, sizeof resp);
    resp.id = msg->id;
    resp.model = msg->model;
    resp.has_model_version = msg->has_model_version;
    resp.model_version = msg->model_version;
    resp.status = kinfer_err_to_wire_status(status);
    resp.has_error = true;
    resp.error.ptr = error;
    resp.error.len = strlen(error);
    resp.timing.device.ptr = "";
    kinfer_worker_reply_send(msg, &resp);
}

void kinfer_worker_on_complete(void *ctx, const kinfer_engine_result *result) {
    kinfer_worker *w = ctx;
    kinfer_worker_msg *msg = result->token;
    if (result->status == KINFER_ERR_SHUTDOWN) {
        /* Abandoned at shutdown: no reply, offset uncommitted, another
         * worker (or this one restarted) answers it. */
        kinfer_worker_msg_abandon(msg, result->error ? result->error : "shutdown", false);
        return;
    }
    if (result->batch_size)
        kinfer_worker_metrics_batch(w->metrics, msg->model_idx, result->batch_size,
                                    result->queue_us, result->compute_us);
    kinfer_codec_response resp;
    memset(&resp, 0, sizeof resp);
    resp.id = msg->id;
    resp.model = msg->model;
    if (result->model_version) {
        resp.has_model_version = true;
        resp.model_version.ptr = result->model_version;
        resp.model_version.len = strlen(result->model_version);
    } else {
        resp.has_model_version = msg->has_model_version;
        resp.model_version = msg->model_version;
    }
    resp.status = kinfer_err_to_wire_status(result->status);
    if (result->status != KINFER_OK) {
        const char *e = result->error ? result->error : kinfer_err2str(result->status);
        resp.has_error = true;
        resp.error.ptr = e;
        resp.error.len = strlen(e);
    } else {
        resp.outputs = result->outputs;
        resp.noutputs = result->noutputs;
    }
    resp.timing.queue_us = result->queue_us;
    resp.timing.compute_us = result->compute_us;
    resp.timing.batch_size = (int32_t)result->batch_size;
    resp.timing.device.ptr = result->device ? result->device : "";
    resp.timing.device.len = strlen(resp.timing.device.ptr);
    kinfer_worker_reply_send(msg, &resp);
}

void kinfer_worker_on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque) {
    (void)rk;
    (void)opaque;
    kinfer_worker_msg *msg = rkm->_private;
    if (!msg)
        return;
    kinfer_worker *w = msg->w;
    bool in_txn = msg->in_txn;
    if (rkm->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE ||
        rkm->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT) {
        /* Purged by a transaction abort: that abort already rewinds. */
        kinfer_worker_msg_abandon(msg, rd_kafka_err2str(rkm->err), false);
        if (in_txn)
            atomic_fetch_sub(&w->txn_outstanding, 1);
        return;
    }
    if (rkm->err) {
        char why[256];
        snprintf(why, sizeof why, "%s %s: %s", msg->is_dlq ? "dead letter to" : "reply to",
                 rd_kafka_topic_name(rkm->rkt), rd_kafka_err2str(rkm->err));
        kinfer_worker_msg_abandon(msg, why, true);
        if (in_txn)
            atomic_fetch_sub(&w->txn_outstanding, 1);
        return;
    }
    kinfer_worker_offset_done(&msg->ref);
    if (msg->is_dlq)
        kinfer_worker_metrics_dlq(w->metrics);
    else
        kinfer_worker_metrics_reply(w->metrics, msg->model_idx, msg->wire_status);
    kinfer_worker_metrics_e2e(w->metrics, kinfer_mono_us() - msg->consumed_us);
    kinfer_worker_msg_free(msg);
    if (in_txn) /* last: the committer reads watermarks once this is 0 */
        atomic_fetch_sub(&w->txn_outstanding, 1);
}
