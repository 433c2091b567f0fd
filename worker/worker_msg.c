/* worker_msg.c — the life of one consumed request's bookkeeping object:
 * allocation with copies of the decoder's arrays, in-flight accounting, and
 * the two ends (freed after its delivery report, or abandoned so that its
 * offset stays uncommitted). Not the decode or the produce. */
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

void kinfer_worker_msg_free(kinfer_worker_msg *msg) {
    kinfer_worker *w = msg->w;
    if (msg->rkm)
        rd_kafka_message_destroy(msg->rkm);
    kinfer_worker_txn_out_free(msg);
    atomic_fetch_sub_explicit(&w->in_flight, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&w->in_flight_bytes, (int64_t)msg->bytes, memory_order_relaxed);
    free(msg);
}

void kinfer_worker_msg_abandon(kinfer_worker_msg *msg, const char *why, bool delivery_failure) {
    kinfer_worker *w = msg->w;
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
