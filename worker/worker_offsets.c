/* worker_offsets.c — per-partition watermark of finished offsets and the
 * table of partitions (see worker_offsets.h). Pure bookkeeping: no Kafka
 * calls here, so the commit policy is unit-testable without a broker. */
#include "worker_offsets.h"

#include <stdlib.h>
#include <string.h>

/* ---- watermark ---------------------------------------------------------- */

void kinfer_worker_watermark_init(kinfer_worker_watermark *wm) {
    memset(wm, 0, sizeof *wm);
    wm->last_added = -1;
}

void kinfer_worker_watermark_free(kinfer_worker_watermark *wm) {
    free(wm->ring);
    kinfer_worker_watermark_init(wm);
}

void kinfer_worker_watermark_reset(kinfer_worker_watermark *wm) {
    wm->head = wm->tail = 0;
    wm->last_added = -1;
    wm->npending = wm->nfailed = 0;
}

/* Doubles the ring, keeping entries head..tail at the same seq positions
 * (seq & mask changes with the mask, so entries are re-placed). */
static bool watermark_grow(kinfer_worker_watermark *wm) {
    uint64_t ncap = wm->capacity ? wm->capacity * 2 : 64;
    kinfer_worker_slot *nring = calloc(ncap, sizeof *nring);
    if (!nring)
        return false;
    for (uint64_t s = wm->head; s < wm->tail; s++)
        nring[s & (ncap - 1)] = wm->ring[s & (wm->capacity - 1)];
    free(wm->ring);
    wm->ring = nring;
    wm->capacity = ncap;
    return true;
}

kinfer_err kinfer_worker_watermark_add(kinfer_worker_watermark *wm, int64_t offset, uint64_t *seq,
                                       kinfer_error *err) {
    if (offset < 0 || offset <= wm->last_added)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "offset %lld is not above the last tracked offset %lld",
                                (long long)offset, (long long)wm->last_added);
    if (wm->tail - wm->head == wm->capacity && !watermark_grow(wm))
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "offset ring: out of memory");
    kinfer_worker_slot *slot = &wm->ring[wm->tail & (wm->capacity - 1)];
    slot->offset = offset;
    slot->state = KINFER_WORKER_SLOT_PENDING;
    *seq = wm->tail++;
    wm->last_added = offset;
    wm->npending++;
    return KINFER_OK;
}

static void watermark_advance(kinfer_worker_watermark *wm) {
    while (wm->head < wm->tail &&
           wm->ring[wm->head & (wm->capacity - 1)].state == KINFER_WORKER_SLOT_DONE)
        wm->head++;
}

static kinfer_worker_complete_result watermark_settle(kinfer_worker_watermark *wm, uint64_t seq,
                                                      kinfer_worker_slot_state to) {
    if (seq >= wm->tail)
        return KINFER_WORKER_COMPLETE_UNKNOWN;
    if (seq < wm->head)
        return KINFER_WORKER_COMPLETE_DUPLICATE;
    kinfer_worker_slot *slot = &wm->ring[seq & (wm->capacity - 1)];
    if (slot->state != KINFER_WORKER_SLOT_PENDING)
        return KINFER_WORKER_COMPLETE_DUPLICATE;
    slot->state = (uint8_t)to;
    wm->npending--;
    if (to == KINFER_WORKER_SLOT_FAILED)
        wm->nfailed++;
    else if (seq == wm->head)
        watermark_advance(wm);
    return KINFER_WORKER_COMPLETE_OK;
}

kinfer_worker_complete_result kinfer_worker_watermark_complete(kinfer_worker_watermark *wm,
                                                               uint64_t seq) {
    return watermark_settle(wm, seq, KINFER_WORKER_SLOT_DONE);
}

kinfer_worker_complete_result kinfer_worker_watermark_fail(kinfer_worker_watermark *wm,
                                                           uint64_t seq) {
    return watermark_settle(wm, seq, KINFER_WORKER_SLOT_FAILED);
}

int64_t kinfer_worker_watermark_commit_offset(const kinfer_worker_watermark *wm) {
    if (wm->last_added < 0)
        return -1;
    if (wm->head < wm->tail)
        return wm->ring[wm->head & (wm->capacity - 1)].offset;
    return wm->last_added + 1;
}

/* ---- partition table ---------------------------------------------------- */

struct kinfer_worker_parts {
    kinfer_worker_part **items; /* open addressing, linear probing; never removed */
    size_t cap;                 /* power of two */
    size_t n;
    kinfer_worker_part *last; /* one-entry cache: messages come in runs per partition */
};

static uint64_t part_hash(const char *topic, int32_t partition) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)topic; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    h = (h ^ (uint32_t)partition) * 1099511628211ULL;
    return h ^ (h >> 29);
}

kinfer_err kinfer_worker_parts_new(kinfer_worker_parts **out, kinfer_error *err) {
    kinfer_worker_parts *parts = calloc(1, sizeof *parts);
    if (parts)
        parts->items = calloc(64, sizeof *parts->items);
    if (!parts || !parts->items) {
        free(parts);
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "partition table: out of memory");
    }
    parts->cap = 64;
    *out = parts;
    return KINFER_OK;
}

void kinfer_worker_parts_destroy(kinfer_worker_parts *parts) {
    if (!parts)
        return;
    for (size_t i = 0; i < parts->cap; i++) {
        kinfer_worker_part *part = parts->items[i];
        if (!part)
            continue;
        kinfer_worker_watermark_free(&part->wm);
        pthread_mutex_destroy(&part->lock);
        pthread_mutex_destroy(&part->release_lock);
        free(part->topic);
        free(part);
    }
    free(parts->items);
    free(parts);
}

static size_t parts_slot(kinfer_worker_part **items, size_t cap, const char *topic,
                         int32_t partition) {
    size_t i = part_hash(topic, partition) & (cap - 1);
    while (items[i] && !(items[i]->partition == partition && !strcmp(items[i]->topic, topic)))
        i = (i + 1) & (cap - 1);
    return i;
}

kinfer_worker_part *kinfer_worker_parts_find(kinfer_worker_parts *parts, const char *topic,
                                             int32_t partition) {
    kinfer_worker_part *last = parts->last;
    if (last && last->partition == partition && !strcmp(last->topic, topic))
        return last;
    kinfer_worker_part *part = parts->items[parts_slot(parts->items, parts->cap, topic, partition)];
    if (part)
        parts->last = part;
    return part;
}

static bool parts_grow(kinfer_worker_parts *parts) {
    size_t ncap = parts->cap * 2;
    kinfer_worker_part **nitems = calloc(ncap, sizeof *nitems);
    if (!nitems)
        return false;
    for (size_t i = 0; i < parts->cap; i++) {
        kinfer_worker_part *part = parts->items[i];
        if (part)
            nitems[parts_slot(nitems, ncap, part->topic, part->partition)] = part;
    }
    free(parts->items);
    parts->items = nitems;
    parts->cap = ncap;
    return true;
}

kinfer_worker_part *kinfer_worker_parts_get(kinfer_worker_parts *parts, const char *topic,
                                            int32_t partition) {
    kinfer_worker_part *part = kinfer_worker_parts_find(parts, topic, partition);
    if (part)
        return part;
    if ((parts->n + 1) * 2 > parts->cap && !parts_grow(parts))
        return NULL;
    part = calloc(1, sizeof *part);
    if (!part)
        return NULL;
    part->topic = strdup(topic);
    if (!part->topic) {
        free(part);
        return NULL;
    }
    part->partition = partition;
    part->last_committed = -1;
    pthread_mutex_init(&part->lock, NULL);
    pthread_mutex_init(&part->release_lock, NULL);
    kinfer_worker_watermark_init(&part->wm);
    parts->items[parts_slot(parts->items, parts->cap, topic, partition)] = part;
    parts->n++;
    parts->last = part;
    return part;
}

kinfer_err kinfer_worker_part_track(kinfer_worker_part *part, int64_t offset,
                                    kinfer_worker_offset_ref *ref, kinfer_error *err) {
    kinfer_error local;
    pthread_mutex_lock(&part->lock);
    kinfer_err rc = kinfer_worker_watermark_add(&part->wm, offset, &ref->seq, &local);
    ref->generation = part->generation;
    pthread_mutex_unlock(&part->lock);
    if (rc == KINFER_ERR_INVALID_ARG) {
        ref->part = NULL; /* duplicate/rewind: processed untracked */
        return KINFER_OK;
    }
    if (rc != KINFER_OK) {
        ref->part = NULL;
        if (err)
            *err = local;
        return rc;
    }
    ref->part = part;
    return KINFER_OK;
}

static bool offset_settle(const kinfer_worker_offset_ref *ref, bool ok) {
    kinfer_worker_part *part = ref->part;
    if (!part)
        return false;
    pthread_mutex_lock(&part->lock);
    bool counted = false;
    if (part->generation == ref->generation)
        counted =
            (ok ? kinfer_worker_watermark_complete(&part->wm, ref->seq)
                : kinfer_worker_watermark_fail(&part->wm, ref->seq)) == KINFER_WORKER_COMPLETE_OK;
    pthread_mutex_unlock(&part->lock);
    return counted;
}

bool kinfer_worker_offset_done(const kinfer_worker_offset_ref *ref) {
    return offset_settle(ref, true);
}

bool kinfer_worker_offset_failed(const kinfer_worker_offset_ref *ref) {
    return offset_settle(ref, false);
}

int64_t kinfer_worker_part_commit_offset(kinfer_worker_part *part) {
    pthread_mutex_lock(&part->lock);
    int64_t off = kinfer_worker_watermark_commit_offset(&part->wm);
    pthread_mutex_unlock(&part->lock);
    return off;
}

int64_t kinfer_worker_part_last_committed(kinfer_worker_part *part) {
    pthread_mutex_lock(&part->lock);
    int64_t off = part->last_committed;
    pthread_mutex_unlock(&part->lock);
    return off;
}

uint64_t kinfer_worker_part_pending(kinfer_worker_part *part) {
    pthread_mutex_lock(&part->lock);
    uint64_t n = part->wm.npending;
    pthread_mutex_unlock(&part->lock);
    return n;
}

void kinfer_worker_part_reset(kinfer_worker_part *part) {
    pthread_mutex_lock(&part->lock);
    kinfer_worker_watermark_reset(&part->wm);
    part->generation++;
    part->last_committed = -1;
    pthread_mutex_unlock(&part->lock);
}

void kinfer_worker_parts_foreach(kinfer_worker_parts *parts,
                                 void (*fn)(kinfer_worker_part *part, void *ctx), void *ctx) {
    for (size_t i = 0; i < parts->cap; i++)
        if (parts->items[i])
            fn(parts->items[i], ctx);
}
