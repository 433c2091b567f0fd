/* worker_registry.c — the Schema Registry cache and its thread. The poll
 * thread looks a key up (a writer schema id, or a reply subject) under a
 * mutex and never waits: an unknown key is queued and answered PENDING;
 * the registry thread fetches (bounded by kafka.schema_registry_timeout_ms),
 * resolves a writer schema to the current InferenceRequest, stores the
 * answer and bumps the generation, which tells the poll loop to retry the
 * messages that wait (worker_park.c). A success is kept for the worker's
 * life (ids are immutable in a registry); a failure for REG_RETRY_US, so a
 * registry that comes back is used again. Not the HTTP
 * (worker_registry_http.c). */
#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kinfer/kinfer_clock.h"
#include "kinfer/kinfer_log.h"
#include "worker_metrics.h"
#include "worker_registry.h"

/* Distinct ids and subjects one worker keeps; a flood of made-up ids
 * cannot grow the cache past this (they fail instead). */
#define REG_MAX_ENTRIES 4096
#define REG_RETRY_US (5 * 1000000LL)
#define REG_SUBJECT_MAX 320

typedef struct reg_entry {
    bool is_subject;
    uint32_t id; /* schema id asked for, or (subject) the id answered */
    char subject[REG_SUBJECT_MAX];
    kinfer_worker_reg_state state;
    bool queued; /* waiting for the registry thread */
    kinfer_codec_resolution *res;
    char why[KINFER_ERROR_MSG_MAX];
    int64_t failed_us;
} reg_entry;

struct kinfer_worker_registry {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pthread_t thread;
    bool started;
    bool stop;
    reg_entry *entries; /* addressed by index: the array may move */
    size_t n, cap;
    size_t nqueued;
    _Atomic uint64_t gen;
    kinfer_worker_registry_conn conn;
    char *base;
    kinfer_worker_metrics *metrics;
};

static void fetch(kinfer_worker_registry *reg, const reg_entry *key, reg_entry *out) {
    out->state = KINFER_WORKER_REG_FAILED;
    if (key->is_subject) {
        uint32_t id = 0;
        if (kinfer_worker_registry_http_register(
                &reg->conn, key->subject, kinfer_codec_schema_json(KINFER_CODEC_SCHEMA_RESPONSE),
                &id, out->why, sizeof out->why) == KINFER_OK) {
            out->id = id;
            out->state = KINFER_WORKER_REG_READY;
            KINFER_LOGI("registry.registered", "subject=%s id=%u", key->subject, id);
        }
        return;
    }
    char *schema = NULL;
    if (kinfer_worker_registry_http_schema(&reg->conn, key->id, &schema, out->why,
                                           sizeof out->why) != KINFER_OK)
        return;
    kinfer_error err;
    kinfer_err rc = kinfer_codec_resolution_new(
        schema, kinfer_codec_schema_json(KINFER_CODEC_SCHEMA_REQUEST), &out->res, &err);
    free(schema);
    if (rc != KINFER_OK) {
        snprintf(out->why, sizeof out->why, "schema id %u: %.400s", key->id, err.msg);
        return;
    }
    out->state = KINFER_WORKER_REG_READY;
    KINFER_LOGI("registry.schema", "id=%u fingerprint=0x%016llx resolution=%s", key->id,
                (unsigned long long)kinfer_codec_resolution_writer_fingerprint(out->res),
                kinfer_codec_resolution_identity(out->res) ? "identity" : "rewrite");
}

static void *registry_thread(void *arg) {
    kinfer_worker_registry *reg = arg;
    pthread_mutex_lock(&reg->lock);
    for (;;) {
        while (!reg->stop && reg->nqueued == 0)
            pthread_cond_wait(&reg->cond, &reg->lock);
        if (reg->stop)
            break;
        size_t i = 0;
        while (i < reg->n && !reg->entries[i].queued)
            i++;
        if (i == reg->n) { /* not reached: nqueued counts the queued ones */
            reg->nqueued = 0;
            continue;
        }
        reg->entries[i].queued = false;
        reg->nqueued--;
        reg_entry key = reg->entries[i];
        pthread_mutex_unlock(&reg->lock);
        reg_entry got = {.id = key.id};
        fetch(reg, &key, &got);
        if (reg->metrics)
            kinfer_worker_metrics_registry(reg->metrics, got.state == KINFER_WORKER_REG_READY);
        if (got.state == KINFER_WORKER_REG_FAILED && key.is_subject)
            KINFER_LOGW("registry.failed", "subject=%s reason=\"%s\"", key.subject, got.why);
        else if (got.state == KINFER_WORKER_REG_FAILED)
            KINFER_LOGW("registry.failed", "id=%u reason=\"%s\"", key.id, got.why);
        pthread_mutex_lock(&reg->lock);
        reg_entry *e = &reg->entries[i];
        e->state = got.state;
        if (got.state == KINFER_WORKER_REG_READY) {
            if (e->is_subject)
                e->id = got.id;
            e->res = got.res;
        } else {
            snprintf(e->why, sizeof e->why, "%s", got.why);
            e->failed_us = kinfer_mono_us();
        }
        atomic_fetch_add(&reg->gen, 1);
    }
    pthread_mutex_unlock(&reg->lock);
    return NULL;
}

kinfer_err kinfer_worker_registry_new(const kinfer_config_kafka *k,
                                      struct kinfer_worker_metrics *metrics,
                                      kinfer_worker_registry **out, kinfer_error *err) {
    *out = NULL;
    kinfer_err rc = kinfer_worker_registry_http_init(err);
    if (rc != KINFER_OK)
        return rc;
    kinfer_worker_registry *reg = calloc(1, sizeof *reg);
    if (!reg)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "schema registry: out of memory");
    pthread_mutex_init(&reg->lock, NULL);
    pthread_cond_init(&reg->cond, NULL);
    reg->base = strdup(k->schema_registry_url);
    reg->conn.curl = curl_easy_init();
    if (!reg->base || !reg->conn.curl) {
        kinfer_worker_registry_destroy(reg);
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "schema registry: out of memory");
    }
    size_t n = strlen(reg->base);
    while (n && reg->base[n - 1] == '/')
        reg->base[--n] = '\0';
    reg->conn.base = reg->base;
    reg->metrics = metrics;
    reg->conn.user = k->schema_registry_user;
    reg->conn.password = k->schema_registry_password;
    reg->conn.timeout_ms = k->schema_registry_timeout_ms ? k->schema_registry_timeout_ms : 5000;
    if (pthread_create(&reg->thread, NULL, registry_thread, reg) != 0) {
        kinfer_worker_registry_destroy(reg);
        return kinfer_error_set(err, KINFER_ERR_INTERNAL, "schema registry: no thread");
    }
    reg->started = true;
    KINFER_LOGI("registry.start", "url=%s auth=%s timeout_ms=%lld", reg->base,
                reg->conn.user ? "basic" : "none", (long long)reg->conn.timeout_ms);
    *out = reg;
    return KINFER_OK;
}

void kinfer_worker_registry_destroy(kinfer_worker_registry *reg) {
    if (!reg)
        return;
    if (reg->started) {
        pthread_mutex_lock(&reg->lock);
        reg->stop = true;
        pthread_cond_signal(&reg->cond);
        pthread_mutex_unlock(&reg->lock);
        pthread_join(reg->thread, NULL);
    }
    for (size_t i = 0; i < reg->n; i++)
        kinfer_codec_resolution_destroy(reg->entries[i].res);
    free(reg->entries);
    if (reg->conn.curl)
        curl_easy_cleanup(reg->conn.curl);
    free(reg->base);
    pthread_cond_destroy(&reg->cond);
    pthread_mutex_destroy(&reg->lock);
    free(reg);
}

uint64_t kinfer_worker_registry_generation(kinfer_worker_registry *reg) {
    return atomic_load(&reg->gen);
}

/* Under the lock: the entry for the key, added (and queued) when new;
 * NULL when the cache is full. A failure old enough is queued again. */
static reg_entry *entry_for(kinfer_worker_registry *reg, bool is_subject, uint32_t id,
                            const char *subject) {
    reg_entry *e = NULL;
    for (size_t i = 0; i < reg->n && !e; i++) {
        reg_entry *c = &reg->entries[i];
        if (c->is_subject == is_subject &&
            (is_subject ? !strcmp(c->subject, subject) : c->id == id))
            e = c;
    }
    if (!e) {
        if (reg->n == REG_MAX_ENTRIES)
            return NULL;
        if (reg->n == reg->cap) {
            size_t cap = reg->cap ? reg->cap * 2 : 16;
            reg_entry *grown = realloc(reg->entries, cap * sizeof *grown);
            if (!grown)
                return NULL;
            reg->entries = grown;
            reg->cap = cap;
        }
        e = &reg->entries[reg->n++];
        memset(e, 0, sizeof *e);
        e->is_subject = is_subject;
        e->id = is_subject ? 0 : id;
        if (is_subject)
            snprintf(e->subject, sizeof e->subject, "%s", subject);
        e->state = KINFER_WORKER_REG_FAILED;
        e->failed_us = INT64_MIN / 2; /* queued just below */
    }
    if (e->state == KINFER_WORKER_REG_FAILED && !e->queued &&
        kinfer_mono_us() - e->failed_us >= REG_RETRY_US) {
        e->state = KINFER_WORKER_REG_PENDING;
        e->queued = true;
        reg->nqueued++;
        pthread_cond_signal(&reg->cond);
    }
    return e;
}

kinfer_worker_reg_state kinfer_worker_registry_schema(kinfer_worker_registry *reg, uint32_t id,
                                                      const kinfer_codec_resolution **res,
                                                      char *why, size_t cap) {
    *res = NULL;
    pthread_mutex_lock(&reg->lock);
    reg_entry *e = entry_for(reg, false, id, NULL);
    kinfer_worker_reg_state st = e ? e->state : KINFER_WORKER_REG_FAILED;
    if (!e)
        snprintf(why, cap, "schema id %u: the worker already keeps %d schema ids and subjects", id,
                 REG_MAX_ENTRIES);
    else if (st == KINFER_WORKER_REG_READY)
        *res = e->res;
    else if (st == KINFER_WORKER_REG_FAILED)
        snprintf(why, cap, "%s", e->why);
    pthread_mutex_unlock(&reg->lock);
    return st;
}

kinfer_worker_reg_state kinfer_worker_registry_reply_id(kinfer_worker_registry *reg,
                                                        const char *topic, uint32_t *id, char *why,
                                                        size_t cap) {
    *id = 0;
    char subject[REG_SUBJECT_MAX];
    snprintf(subject, sizeof subject, "%s-value", topic);
    pthread_mutex_lock(&reg->lock);
    reg_entry *e = entry_for(reg, true, 0, subject);
    kinfer_worker_reg_state st = e ? e->state : KINFER_WORKER_REG_FAILED;
    if (!e)
        snprintf(why, cap, "subject %s: the worker already keeps %d schema ids and subjects",
                 subject, REG_MAX_ENTRIES);
    else if (st == KINFER_WORKER_REG_READY)
        *id = e->id;
    else if (st == KINFER_WORKER_REG_FAILED)
        snprintf(why, cap, "reply schema under subject %.200s: %.280s", subject, e->why);
    pthread_mutex_unlock(&reg->lock);
    return st;
}
