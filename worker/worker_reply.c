/* worker_reply.c — from an engine completion (or an early error) to a
 * finished reply record handed to the produce path. Runs on engine threads
 * (executors, expiry timer) and the poll thread; encodes and never waits
 * for Kafka. Not the routing rules (worker_route.c), not the produce
 * (worker_produce.c). */
#include <stdlib.h>
#include <string.h>

#include "kinfer/kinfer_clock.h"
#include "kinfer/kinfer_log.h"
#include "worker_gen.h"
#include "worker_internal.h"
#include "worker_reply_build.h"

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
    /* The registry's id for the reply topic's subject, else the config's. */
    int32_t sid = msg->reply_schema_id ? (int32_t)msg->reply_schema_id
                                       : w->cfg->worker.confluent_response_schema_id;
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

/* Encodes resp for msg's request (reply framing, repair rule) into a
 * malloc'd value with the reply headers: the record of a reply or a chunk.
 * Fills resp's worker and source. On failure err says why and *nomem
 * whether it was memory. Any thread. */
static kinfer_err reply_record(kinfer_worker_msg *msg, kinfer_codec_response *resp, void **value,
                               size_t *len, rd_kafka_headers_t **hdrs, int *wire_status,
                               bool *nomem, kinfer_error *err) {
    kinfer_worker *w = msg->w;
    *nomem = false;
    resp->timing.worker.ptr = w->worker_id;
    resp->timing.worker.len = strlen(w->worker_id);
    resp->source.topic.ptr = msg->part->topic;
    resp->source.topic.len = strlen(msg->part->topic);
    resp->source.partition = msg->partition;
    resp->source.offset = msg->offset;

    kinfer_codec_frame frame;
    reply_frame(w, msg, &frame);
    kinfer_codec_encoder *enc = encoder_get(&w->encoders, err);
    if (!enc)
        return KINFER_ERR_NOMEM;
    const uint8_t *buf;
    /* Repairs echoed text and falls back to INTERNAL_ERROR when the engine
     * produced something the schema cannot carry (worker_reply_build.c). */
    kinfer_err rc = kinfer_worker_reply_encode(enc, resp, &frame, &buf, len, wire_status, err);
    if (rc != KINFER_OK) {
        KINFER_LOGE("worker.encode_failed", "topic=%s partition=%d offset=%lld error=\"%s\"",
                    msg->part->topic, (int)msg->partition, (long long)msg->offset, err->msg);
        encoder_put(&w->encoders, enc);
        return rc;
    }
    if (*wire_status != resp->status)
        KINFER_LOGE("worker.encode_failed",
                    "topic=%s partition=%d offset=%lld error=\"%s\" action=\"INTERNAL_ERROR "
                    "reply\"",
                    msg->part->topic, (int)msg->partition, (long long)msg->offset, err->msg);

    rd_kafka_message_t *rkm = msg->rkm;
    rd_kafka_headers_t *req_hdrs = NULL;
    if (rd_kafka_message_headers(rkm, &req_hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
        req_hdrs = NULL;
    if ((rc = kinfer_worker_reply_headers(req_hdrs, w->cfg->kafka.copy_headers.items,
                                          w->cfg->kafka.copy_headers.n, resp->id, hdrs, err)) !=
        KINFER_OK) {
        encoder_put(&w->encoders, enc);
        return rc;
    }
    /* The encoder's buffer is reused at once: the record owns a copy, which
     * librdkafka takes over without copying again (worker_produce.c). */
    *value = *len ? malloc(*len) : NULL;
    if (*len && !*value) {
        encoder_put(&w->encoders, enc);
        rd_kafka_headers_destroy(*hdrs);
        *nomem = true;
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "reply: out of memory");
    }
    if (*len)
        memcpy(*value, buf, *len);
    encoder_put(&w->encoders, enc);
    return KINFER_OK;
}

void kinfer_worker_reply_send(kinfer_worker_msg *msg, kinfer_codec_response *resp) {
    kinfer_error err;
    msg->wire_status = resp->status;
    void *value = NULL;
    size_t len = 0;
    rd_kafka_headers_t *hdrs = NULL;
    bool nomem;
    if (reply_record(msg, resp, &value, &len, &hdrs, &msg->wire_status, &nomem, &err) !=
        KINFER_OK) {
        if (nomem)
            kinfer_worker_msg_stop(msg, KINFER_ERR_NOMEM, err.msg);
        else
            kinfer_worker_msg_abandon(msg, err.msg, true);
        return;
    }
    /* The key is the request's key or its id: both live in rkm. */
    rd_kafka_message_t *rkm = msg->rkm;
    kinfer_str key = kinfer_worker_reply_key(rkm->key, rkm->key_len, resp->id);
    msg->is_dlq = false;
    msg->out_key = key.ptr;
    msg->out_key_len = key.len;
    msg->out_value = value;
    msg->out_len = len;
    msg->out_value_owned = true;
    msg->out_hdrs = hdrs;
    msg->node.bytes = len;
    kinfer_worker_produce(msg);
}

static kinfer_worker_echo echo_of(const kinfer_worker_msg *msg) {
    kinfer_worker_echo e = {msg->id, msg->model, msg->model_version, msg->has_model_version};
    return e;
}

void kinfer_worker_reply_error(kinfer_worker_msg *msg, kinfer_err status, const char *error) {
    kinfer_codec_response resp;
    kinfer_worker_echo echo = echo_of(msg);
    kinfer_worker_reply_build_error(&resp, &echo, status, error);
    kinfer_worker_reply_send(msg, &resp);
}

static void complete(kinfer_worker *w, kinfer_worker_msg *msg, const kinfer_engine_result *result) {
    kinfer_worker_metrics_completion(w->metrics, kinfer_err_to_wire_status(result->status));
    if (result->status != KINFER_OK) {
        const char *why = result->error ? result->error : kinfer_err2str(result->status);
        switch (kinfer_worker_failure_action(result->status)) {
        case KINFER_WORKER_ACT_REDELIVER:
            /* E.g. abandoned at shutdown: no reply, offset uncommitted,
             * another worker (or this one restarted) answers it. */
            kinfer_worker_msg_abandon(msg, why, false);
            return;
        case KINFER_WORKER_ACT_STOP:
            kinfer_worker_msg_stop(msg, result->status, why);
            return;
        case KINFER_WORKER_ACT_DEAD_LETTER:
        case KINFER_WORKER_ACT_REPLY:
            break; /* the engine judged a decoded request: it gets a reply */
        }
    }
    if (result->batch_size) {
        kinfer_worker_metrics_batch(w->metrics, msg->model_idx, result->batch_size,
                                    result->queue_us, result->compute_us);
        if (result->has_deadline)
            kinfer_worker_metrics_deadline(w->metrics, msg->model_idx, result->deadline_slack_us,
                                           result->compute_us);
    }
    if (result->gen) /* a generation: tokens, time to first token, per-token time */
        kinfer_worker_metrics_gen(w->metrics, msg->model_idx, result->gen->ttft_us,
                                  result->gen->per_token_us, result->gen->prompt_tokens,
                                  result->gen->completion_tokens, result->gen->preemptions);
    kinfer_codec_response resp;
    kinfer_worker_echo echo = echo_of(msg);
    kinfer_worker_reply_build_result(&resp, &echo, result);
    kinfer_codec_logprob *lps = NULL;
    if (result->gen) {
        kinfer_error err;
        if (kinfer_worker_gen_logprobs(result->gen->logprobs, result->gen->nids, &lps, &err) !=
            KINFER_OK) {
            kinfer_worker_msg_stop(msg, KINFER_ERR_NOMEM, err.msg);
            return;
        }
        kinfer_worker_gen_reply(&resp, result->gen, lps);
    }
    kinfer_worker_reply_send(msg, &resp);
    free(lps);
}

void kinfer_worker_on_gen_chunk(void *ctx, const kinfer_gen_chunk *chunk) {
    kinfer_worker *w = ctx;
    kinfer_worker_msg *msg = chunk->token;
    int64_t t0 = kinfer_mono_us();
    kinfer_error err;
    kinfer_codec_logprob *lps = NULL;
    kinfer_codec_response resp;
    memset(&resp, 0, sizeof resp);
    resp.id = msg->id;
    resp.model = msg->model;
    resp.has_model_version = msg->has_model_version;
    resp.model_version = msg->model_version;
    resp.status = kinfer_err_to_wire_status(KINFER_OK);
    resp.timing.device = (kinfer_str){"", 0};
    void *value = NULL;
    size_t len = 0;
    rd_kafka_headers_t *hdrs = NULL;
    int wire_status;
    bool nomem = false;
    kinfer_worker_msg *c = NULL;
    kinfer_err rc = kinfer_worker_gen_logprobs(chunk->logprobs, chunk->nids, &lps, &err);
    if (rc == KINFER_OK) {
        kinfer_worker_gen_chunk_reply(&resp, chunk, lps);
        rc = reply_record(msg, &resp, &value, &len, &hdrs, &wire_status, &nomem, &err);
    }
    free(lps);
    if (rc == KINFER_OK && wire_status != resp.status) {
        /* The chunk could not be encoded: an INTERNAL_ERROR record in its
         * place would read as the request's final reply. Dropped. */
        free(value);
        rd_kafka_headers_destroy(hdrs);
        rc = KINFER_ERR_INTERNAL;
    }
    if (rc == KINFER_OK) {
        rd_kafka_message_t *rkm = msg->rkm;
        c = kinfer_worker_chunk_new(msg, kinfer_worker_reply_key(rkm->key, rkm->key_len, msg->id),
                                    value, len, hdrs);
        if (!c) {
            free(value);
            rd_kafka_headers_destroy(hdrs);
            rc = kinfer_error_set(&err, KINFER_ERR_NOMEM, "chunk reply: out of memory");
        }
    }
    if (rc == KINFER_OK) {
        kinfer_worker_produce(c);
    } else {
        /* The final reply still carries the whole text; say the chunk is
         * missing rather than stop the generation. */
        kinfer_worker_metrics_delivery_failed(w->metrics);
        KINFER_LOGW("worker.chunk_lost", "topic=%s partition=%d offset=%lld chunk=%u error=\"%s\"",
                    msg->part->topic, (int)msg->partition, (long long)msg->offset, chunk->index,
                    err.msg);
        if (w->eos)
            atomic_store(&w->txn_abort, 1);
    }
    kinfer_worker_metrics_callback(w->metrics, kinfer_mono_us() - t0);
}

void kinfer_worker_on_complete(void *ctx, const kinfer_engine_result *result) {
    kinfer_worker *w = ctx;
    /* How long this engine thread is ours: the engine's contract is "must
     * not block for long", and /metrics shows the worst case. */
    int64_t t0 = kinfer_mono_us();
    /* Out of the cancel registry before the reply can free the msg. */
    kinfer_worker_gens_remove(w, result->token);
    complete(w, result->token, result);
    kinfer_worker_metrics_callback(w->metrics, kinfer_mono_us() - t0);
}
