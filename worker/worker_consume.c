/* worker_consume.c — one consumed message on the poll thread: size check,
 * decode, reply address, then either the engine, an error reply or a dead
 * letter. Never blocks on compute and never drops a message silently: each
 * path ends in a produce whose delivery report finishes the offset (or, for
 * a fatal code, in a graceful stop that leaves it for redelivery).
 * Not the poll loop (worker_loop.c) or the produce (worker_produce.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kinfer/kinfer_log.h"
#include "worker_gen.h"
#include "worker_internal.h"
#include "worker_reply_build.h"

static void consume_error(kinfer_worker *w, rd_kafka_message_t *rkm) {
    if (rkm->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
        return;
    KINFER_LOGW("consumer.error", "topic=%s partition=%d error=\"%s\"",
                rkm->rkt ? rd_kafka_topic_name(rkm->rkt) : "-", (int)rkm->partition,
                rd_kafka_message_errstr(rkm));
    kinfer_worker_health_client_error(w->health, rkm->err, rd_kafka_err2name(rkm->err),
                                      rd_kafka_message_errstr(rkm));
    if (rkm->err == RD_KAFKA_RESP_ERR__FATAL)
        atomic_store(&w->fatal, 1);
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

/* A record with the kinfer-cancel header (README "The wire contract"). */
static bool is_cancel(rd_kafka_message_t *rkm) {
    rd_kafka_headers_t *hdrs = NULL;
    if (rd_kafka_message_headers(rkm, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return false;
    return kinfer_worker_header_last(hdrs, KINFER_HDR_CANCEL).ptr != NULL;
}

/* No memory for the bookkeeping of a tracked message: NOMEM is fatal (the
 * per-code table), so stop gracefully; the message stays pending, its
 * offset uncommitted, and is redelivered. */
static void no_memory(kinfer_worker *w, rd_kafka_message_t *rkm) {
    KINFER_LOGE("worker.fatal_error",
                "topic=%s partition=%d offset=%lld code=NOMEM error=\"out of memory\" "
                "action=\"stopping; request left for redelivery\"",
                rd_kafka_topic_name(rkm->rkt), (int)rkm->partition, (long long)rkm->offset);
    atomic_store(&w->fatal, 1);
    rd_kafka_message_destroy(rkm);
}

/* A request the decoder or the engine refused with rc: what the code's
 * flags say (kinfer_worker_failure_action). */
static void refuse(kinfer_worker_msg *msg, kinfer_err rc, const char *why) {
    switch (kinfer_worker_failure_action(rc)) {
    case KINFER_WORKER_ACT_STOP:
        kinfer_worker_msg_stop(msg, rc, why);
        return;
    case KINFER_WORKER_ACT_REDELIVER:
        kinfer_worker_msg_abandon(msg, why, false);
        return;
    case KINFER_WORKER_ACT_DEAD_LETTER:
        kinfer_worker_dlq_send(msg, why);
        return;
    case KINFER_WORKER_ACT_REPLY:
        kinfer_worker_reply_error(msg, rc, why);
        return;
    }
}

/* With a schema registry, a reply to a Confluent-framed request (or every
 * reply, with worker.reply_framing "confluent") is framed with the id of
 * the response schema under the reply topic's subject. True when that id
 * is known (or not needed); else msg is parked or dead-lettered. */
static bool reply_schema_known(kinfer_worker *w, kinfer_worker_msg *msg) {
    kinfer_config_framing rf = w->cfg->worker.reply_framing;
    if (!w->registry || !(rf == KINFER_CONFIG_FRAMING_CONFLUENT ||
                          (rf == KINFER_CONFIG_FRAMING_SAME &&
                           msg->frame.framing == KINFER_CODEC_FRAMING_CONFLUENT)))
        return true;
    char why[KINFER_ERROR_MSG_MAX];
    switch (kinfer_worker_registry_reply_id(w->registry, msg->reply_topic, &msg->reply_schema_id,
                                            why, sizeof why)) {
    case KINFER_WORKER_REG_READY:
        return true;
    case KINFER_WORKER_REG_PENDING:
        kinfer_worker_park(msg);
        return false;
    case KINFER_WORKER_REG_FAILED:
        break;
    }
    kinfer_worker_dlq_send(msg, why);
    return false;
}

/* With a schema registry, a Confluent-framed request's writer schema:
 * true with *writer set (NULL = not Confluent or no registry); false when
 * the message was parked (the registry has not answered yet) or
 * dead-lettered (it failed). */
static bool writer_schema(kinfer_worker *w, rd_kafka_message_t *rkm, kinfer_worker_part *part,
                          const kinfer_worker_offset_ref *ref,
                          const kinfer_codec_resolution **writer) {
    *writer = NULL;
    const uint8_t *p = rkm->payload;
    if (!w->registry || rkm->len < 5 || p[0] != 0x00)
        return true;
    uint32_t id = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
    char why[KINFER_ERROR_MSG_MAX];
    kinfer_worker_reg_state st =
        kinfer_worker_registry_schema(w->registry, id, writer, why, sizeof why);
    if (st == KINFER_WORKER_REG_READY)
        return true;
    kinfer_worker_msg *msg = kinfer_worker_msg_new(w, rkm, part, ref, NULL);
    if (!msg)
        no_memory(w, rkm);
    else if (st == KINFER_WORKER_REG_PENDING)
        kinfer_worker_park(msg);
    else
        kinfer_worker_dlq_send(msg, why);
    return false;
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
    kinfer_worker_consume_tracked(w, rkm, part, ref);
}

void kinfer_worker_consume_tracked(kinfer_worker *w, rd_kafka_message_t *rkm,
                                   kinfer_worker_part *part, kinfer_worker_offset_ref ref) {
    kinfer_error err;
    /* Too large: dead letter without decoding a byte of it. */
    if (rkm->len > (size_t)w->cfg->kafka.max_message_bytes) {
        kinfer_worker_msg *msg = kinfer_worker_msg_new(w, rkm, part, &ref, NULL);
        char why[160];
        snprintf(why, sizeof why, "message of %zu bytes exceeds kafka.max_message_bytes = %lld",
                 rkm->len, (long long)w->cfg->kafka.max_message_bytes);
        if (msg)
            kinfer_worker_dlq_send(msg, why);
        else
            no_memory(w, rkm);
        return;
    }

    const kinfer_codec_resolution *writer;
    if (!writer_schema(w, rkm, part, &ref, &writer))
        return;
    kinfer_codec_request req;
    kinfer_err rc = kinfer_codec_request_decode_as(
        w->decoder, rkm->payload ? rkm->payload : (void *)"", rkm->len, writer, &req, &err);
    /* A body rewritten for the current schema: the views point into it. */
    void *body = kinfer_codec_decoder_take_body(w->decoder);
    if (rc != KINFER_OK && kinfer_worker_failure_action(rc) == KINFER_WORKER_ACT_STOP) {
        free(body);
        /* A fatal code (no memory to decode): stop, leave it for redelivery. */
        kinfer_worker_msg *msg = kinfer_worker_msg_new(w, rkm, part, &ref, NULL);
        if (msg)
            kinfer_worker_msg_stop(msg, rc, err.msg);
        else
            no_memory(w, rkm);
        return;
    }
    char why[2 * KINFER_ERROR_MSG_MAX + 8];
    kinfer_worker_verdict verdict = kinfer_worker_verdict_of(rc, &req, &err, why, sizeof why);
    if (verdict != KINFER_WORKER_VERDICT_DEAD_LETTER && is_cancel(rkm)) {
        /* A cancel record (worker_cancel.c): never a reply, not even an
         * error reply, which would read as the cancelled request's. */
        bool owned = kinfer_worker_cancel_record(w, rkm, part, &ref, &req);
        free(body);
        if (!owned)
            no_memory(w, rkm);
        return;
    }
    if (verdict == KINFER_WORKER_VERDICT_DEAD_LETTER) {
        free(body); /* the dead letter forwards the request's own bytes */
        /* Undecodable, or an id no reply can carry (worker_reply_build.h). */
        kinfer_worker_msg *msg = kinfer_worker_msg_new(w, rkm, part, &ref, NULL);
        if (msg)
            kinfer_worker_dlq_send(msg, why);
        else
            no_memory(w, rkm);
        return;
    }
    if (verdict == KINFER_WORKER_VERDICT_ERROR_REPLY) {
        /* Decodable enough to answer: an error reply, if we know where to. */
        kinfer_codec_request head = req;
        head.ninputs = head.nparams = 0; /* possibly partial; not needed */
        kinfer_worker_msg *msg = kinfer_worker_msg_new(w, rkm, part, &ref, &head);
        if (!msg) {
            free(body);
            no_memory(w, rkm);
            return;
        }
        msg->owned_body = body;
        kinfer_error rerr;
        if (reply_address(w, rkm, &req, msg->reply_topic, sizeof msg->reply_topic, &rerr) !=
            KINFER_OK) {
            snprintf(why, sizeof why, "%s; %s", err.msg, rerr.msg);
            kinfer_worker_dlq_send(msg, why);
            return;
        }
        if (!reply_schema_known(w, msg))
            return;
        msg->model_idx = kinfer_worker_model_index(w, req.model);
        kinfer_worker_reply_error(msg, rc, err.msg);
        return;
    }

    kinfer_worker_msg *msg = kinfer_worker_msg_new(w, rkm, part, &ref, &req);
    if (!msg) {
        free(body);
        no_memory(w, rkm);
        return;
    }
    msg->owned_body = body;
    if (reply_address(w, rkm, &req, msg->reply_topic, sizeof msg->reply_topic, &err) != KINFER_OK) {
        kinfer_worker_dlq_send(msg, err.msg);
        return;
    }
    if (!reply_schema_known(w, msg))
        return;
    msg->model_idx = kinfer_worker_model_index(w, req.model);
    if (msg->model_idx >= 0 && msg->model_idx < KINFER_WORKER_MAX_MODEL_BITS)
        part->model_mask |= 1ULL << msg->model_idx;

    /* A generation (worker_gen.c): its fields become the engine's
     * kinfer_gen_request; a generative model refuses tensors and
     * parameters here, the engine the rest at submit. */
    const kinfer_model_config *mcfg = msg->model_idx >= 0 ? &w->cfg->models[msg->model_idx] : NULL;
    kinfer_gen_request greq;
    kinfer_chat_message *chat = NULL;
    bool gen = kinfer_worker_gen_wanted(mcfg, &req);
    if (gen && (rc = kinfer_worker_gen_request(mcfg, &req, &greq, &chat, &err)) != KINFER_OK) {
        refuse(msg, rc, err.msg);
        return;
    }
    kinfer_engine_request ereq = {
        .model = msg->model,
        .model_version = msg->has_model_version ? msg->model_version : (kinfer_str){"", 0},
        .inputs = msg->inputs,
        .ninputs = msg->ninputs,
        .params = msg->params,
        .nparams = msg->nparams,
        .deadline_us = kinfer_worker_deadline_us(&req),
        .priority = req.priority,
        .token = msg,
        .gen = gen ? &greq : NULL,
    };
    if (gen) /* before submit: a cancel record may follow at once */
        kinfer_worker_gens_add(w, msg);
    rc = kinfer_engine_submit(w->engine, &ereq, &err);
    free(chat); /* submit copied the generation request */
    if (rc == KINFER_OK)
        return; /* the completion produces the reply */
    kinfer_worker_gens_remove(w, msg);
    refuse(msg, rc, rc == KINFER_ERR_SHUTDOWN ? "engine shutting down" : err.msg);
}
