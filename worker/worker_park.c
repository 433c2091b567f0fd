/* worker_park.c — requests that wait for the Schema Registry (a writer
 * schema id or a reply subject not yet answered). The poll thread never
 * waits: such a message, with its tracked offset, is parked here (it still
 * counts as in flight, so backpressure and the commit point see it) and
 * consumed again from the start once the registry's answers change. The
 * registry bounds each fetch, so a parked message leaves within
 * kafka.schema_registry_timeout_ms (then to the DLQ on a failure). On
 * revoke and stop, parked messages are let go unanswered: their offsets
 * stay uncommitted and the next owner reads them again. Not the registry
 * itself (worker_registry.c). */
#include <stdlib.h>
#include <string.h>

#include "kinfer/kinfer_log.h"
#include "worker_internal.h"

void kinfer_worker_park(kinfer_worker_msg *msg) {
    kinfer_worker *w = msg->w;
    if (w->nparked == w->capparked) {
        size_t cap = w->capparked ? w->capparked * 2 : 64;
        kinfer_worker_msg **grown = realloc(w->parked, cap * sizeof *grown);
        if (!grown) {
            kinfer_worker_msg_abandon(msg,
                                      "out of memory parking a request for the schema "
                                      "registry",
                                      false);
            return;
        }
        w->parked = grown;
        w->capparked = cap;
    }
    w->parked[w->nparked++] = msg;
    kinfer_worker_metrics_set_registry_waiting(w->metrics, (int64_t)w->nparked);
}

void kinfer_worker_park_retry(kinfer_worker *w) {
    if (!w->registry || !w->nparked)
        return;
    uint64_t gen = kinfer_worker_registry_generation(w->registry);
    if (gen == w->parked_gen)
        return;
    w->parked_gen = gen;
    /* Consuming again may park again: work on the list as it was. */
    size_t n = w->nparked;
    kinfer_worker_msg **list = w->parked;
    w->parked = NULL;
    w->nparked = w->capparked = 0;
    for (size_t i = 0; i < n; i++) {
        kinfer_worker_msg *msg = list[i];
        if (!msg->part->assigned) {
            kinfer_worker_msg_abandon(msg,
                                      "partition revoked while waiting for the schema "
                                      "registry",
                                      false);
            continue;
        }
        rd_kafka_message_t *rkm = msg->rkm;
        kinfer_worker_part *part = msg->part;
        kinfer_worker_offset_ref ref = msg->ref;
        msg->rkm = NULL; /* the message goes on; its bookkeeping starts afresh */
        kinfer_worker_msg_free(msg);
        kinfer_worker_consume_tracked(w, rkm, part, ref);
    }
    free(list);
    kinfer_worker_metrics_set_registry_waiting(w->metrics, (int64_t)w->nparked);
}

static bool listed(const rd_kafka_topic_partition_list_t *list, const kinfer_worker_msg *msg) {
    if (!list)
        return true;
    for (int i = 0; i < list->cnt; i++)
        if (list->elems[i].partition == msg->partition &&
            !strcmp(list->elems[i].topic, msg->part->topic))
            return true;
    return false;
}

void kinfer_worker_park_release(kinfer_worker *w, const rd_kafka_topic_partition_list_t *list,
                                const char *why) {
    size_t kept = 0, released = 0;
    for (size_t i = 0; i < w->nparked; i++) {
        kinfer_worker_msg *msg = w->parked[i];
        if (listed(list, msg)) {
            kinfer_worker_msg_abandon(msg, why, false);
            released++;
        } else {
            w->parked[kept++] = msg;
        }
    }
    w->nparked = kept;
    kinfer_worker_metrics_set_registry_waiting(w->metrics, (int64_t)w->nparked);
    if (released)
        KINFER_LOGW("worker.parked_released",
                    "count=%zu reason=\"%s\" action=\"offsets stay "
                    "uncommitted; redelivered to the next owner\"",
                    released, why);
}
