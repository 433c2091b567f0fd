/* worker_msg.c — the life of one consumed request's bookkeeping object:
 * allocation with copies of the decoder's arrays, in-flight accounting, the
 * record it owns, and the ends (freed after its delivery report, abandoned
 * so that its offset stays uncommitted, or the worker stopped); plus the
 * one decision table from an error code's flags to what the worker does.
 * Not the decode or the produce. */
#include <stdlib.h>
#include <string.h>

#include "kinfer/kinfer_clock.h"
#include "kinfer/kinfer_log.h"
#include "worker_internal.h"

int kinfer_worker_model_index(const kinfer_worker *w, kinfer_str model) {
    for (size_t i = 0; i < w->cfg->nmodels; i++) {
        const char *name = w->cfg->models[i].name;
        if (strlen(name) == model.len && !memcmp(name, model.ptr, model.len))
            return (int)i;
    }
    return -1;
}

kinfer_worker_msg *kinfer_worker_msg_new(kinfer_worker *w, rd_kafka_message_t *rkm,
                                         kinfer_worker_part *part,
                                         const kinfer_worker_offset_ref *ref,
                                         const kinfer_codec_request *req) {
    size_t ninputs = req ? req->ninputs : 0, nparams = req ? req->nparams : 0, nstrings = 0;
    for (size_t i = 0; i < ninputs; i++)
        nstrings += req->inputs[i].strings ? req->inputs[i].nstrings : 0;
    size_t size = sizeof(kinfer_worker_msg) + ninputs * sizeof(kinfer_tensor) +
                  nparams * sizeof(kinfer_param) + nstrings * sizeof(kinfer_str);
    kinfer_worker_msg *msg = malloc(size);
    if (!msg)
        return NULL;
    memset(msg, 0, sizeof *msg);
    msg->w = w;
    msg->rkm = rkm;
    msg->part = part;
    msg->ref = *ref;
    msg->partition = rkm->partition;
    msg->offset = rkm->offset;
    msg->model_idx = -1;
    msg->bytes = rkm->len;
    msg->consumed_us = kinfer_mono_us();
    char *p = (char *)(msg + 1);
    if (req) {
        msg->frame = req->frame;
        msg->id = req->id;
        msg->model = req->model;
        msg->has_model_version = req->has_model_version;
        msg->model_version = req->model_version;
        msg->inputs = (kinfer_tensor *)p;
        msg->ninputs = ninputs;
        if (ninputs)
            memcpy(msg->inputs, req->inputs, ninputs * sizeof(kinfer_tensor));
        p += ninputs * sizeof(kinfer_tensor);
        msg->params = (kinfer_param *)p;
        msg->nparams = nparams;
        if (nparams)
            memcpy(msg->params, req->params, nparams * sizeof(kinfer_param));
        p += nparams * sizeof(kinfer_param);
        /* STRING tensors: the element views live in the decoder too. */
        kinfer_str *strs = (kinfer_str *)p;
        for (size_t i = 0; i < ninputs; i++) {
            if (!req->inputs[i].strings || !req->inputs[i].nstrings)
                continue;
            memcpy(strs, req->inputs[i].strings, req->inputs[i].nstrings * sizeof(kinfer_str));
            msg->inputs[i].strings = strs;
            strs += req->inputs[i].nstrings;
        }
    }
    atomic_fetch_add_explicit(&w->in_flight, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&w->in_flight_bytes, (int64_t)msg->bytes, memory_order_relaxed);
    return msg;
}

kinfer_worker_msg *kinfer_worker_chunk_new(kinfer_worker_msg *parent, kinfer_str key, void *value,
                                           size_t len, rd_kafka_headers_t *hdrs) {
    kinfer_worker *w = parent->w;
    kinfer_worker_msg *c = malloc(sizeof *c + key.len + 1);
    if (!c)
        return NULL;
    memset(c, 0, sizeof *c);
    c->w = w;
    c->part = parent->part;
    c->ref = parent->ref;
    c->partition = parent->partition;
    c->offset = parent->offset;
    c->model_idx = parent->model_idx;
    c->is_chunk = true;
    c->consumed_us = parent->consumed_us;
    memcpy(c->reply_topic, parent->reply_topic, sizeof c->reply_topic);
    char *k = (char *)(c + 1);
    if (key.len)
        memcpy(k, key.ptr, key.len);
    c->out_key = k;
    c->out_key_len = key.len;
    c->out_value = value;
    c->out_len = len;
    c->out_value_owned = true;
    c->out_hdrs = hdrs;
    c->node.bytes = len;
    c->bytes = len;
    atomic_fetch_add_explicit(&w->in_flight_bytes, (int64_t)len, memory_order_relaxed);
    return c;
}

void kinfer_worker_msg_free(kinfer_worker_msg *msg) {
    kinfer_worker *w = msg->w;
    if (msg->rkm)
        rd_kafka_message_destroy(msg->rkm);
    if (msg->out_value_owned)
        free(msg->out_value);
    free(msg->owned_body);
    if (msg->out_hdrs)
        rd_kafka_headers_destroy(msg->out_hdrs);
    if (!msg->is_chunk)
        atomic_fetch_sub_explicit(&w->in_flight, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&w->in_flight_bytes, (int64_t)msg->bytes, memory_order_relaxed);
    free(msg);
}

void kinfer_worker_msg_abandon(kinfer_worker_msg *msg, const char *why, bool delivery_failure) {
    kinfer_worker *w = msg->w;
    if (msg->is_chunk) {
        /* No offset of its own. Exactly-once: a lost chunk aborts the
         * transaction (so the generation is redone from chunk 0); at-least-
         * once: the final reply still carries the whole text. */
        if (delivery_failure) {
            if (w->eos)
                atomic_store(&w->txn_abort, 1);
            kinfer_worker_metrics_delivery_failed(w->metrics);
            KINFER_LOGW("worker.chunk_lost",
                        "topic=%s partition=%d offset=%lld reply_topic=%s error=\"%s\"",
                        msg->part->topic, (int)msg->partition, (long long)msg->offset,
                        msg->reply_topic, why);
        }
        kinfer_worker_msg_free(msg);
        return;
    }
    kinfer_worker_offset_failed(&msg->ref);
    if (delivery_failure && w->eos)
        /* The transaction cannot commit past this offset, and replies
         * after it are held: abort and redo from the committed offsets. */
        atomic_store(&w->txn_abort, 1);
    if (delivery_failure) {
        /* Loud on purpose: the request will be answered again after a
         * restart or rebalance, and until then its partition's commit point
         * cannot move past it. */
        kinfer_worker_metrics_delivery_failed(w->metrics);
        KINFER_LOGE("worker.delivery_failed",
                    "topic=%s partition=%d offset=%lld reply_topic=%s error=\"%s\" "
                    "action=\"offset left uncommitted; request will be redelivered\"",
                    msg->part->topic, (int)msg->partition, (long long)msg->offset,
                    msg->reply_topic[0] ? msg->reply_topic : "-", why);
    } else {
        kinfer_worker_metrics_abandoned(w->metrics);
        KINFER_LOGD("worker.abandoned", "topic=%s partition=%d offset=%lld reason=\"%s\"",
                    msg->part->topic, (int)msg->partition, (long long)msg->offset, why);
    }
    kinfer_worker_msg_free(msg);
}

kinfer_worker_action kinfer_worker_failure_action(kinfer_err code) {
    if (kinfer_err_fatal(code))
        return KINFER_WORKER_ACT_STOP;
    if (code == KINFER_ERR_DECODE)
        return KINFER_WORKER_ACT_DEAD_LETTER;
    /* A retriable code with a wire status of its own (OVERLOADED) is the
     * client's to retry; one without (SHUTDOWN) is the next owner's. */
    if (kinfer_err_retriable(code) &&
        kinfer_err_from_wire_status(kinfer_err_to_wire_status(code)) != code)
        return KINFER_WORKER_ACT_REDELIVER;
    return KINFER_WORKER_ACT_REPLY;
}

void kinfer_worker_msg_stop(kinfer_worker_msg *msg, kinfer_err code, const char *why) {
    kinfer_worker *w = msg->w;
    KINFER_LOGE("worker.fatal_error",
                "topic=%s partition=%d offset=%lld code=%s error=\"%s\" "
                "action=\"stopping; request left for redelivery\"",
                msg->part->topic, (int)msg->partition, (long long)msg->offset,
                kinfer_err2name(code), why);
    atomic_store(&w->fatal, 1);
    kinfer_worker_msg_abandon(msg, why, false);
}
