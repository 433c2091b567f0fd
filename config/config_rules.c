/* config_rules.c — the rules that span several keys, checked after the
 * walk and the defaults: topics vs pattern, reply topics that would loop,
 * confluent framing, queue watermarks, unique model names, model paths and
 * each model against its kind (config_kinds.c). Single values are checked
 * while storing (config_load.c, config_check.c). */
#include <stdio.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "config_table.h"

/* Line to blame for a key: where it was set, else where `fallback` was set. */
static int src_line(int src, int fallback) {
    return src > 0 ? src : fallback;
}

static kinfer_err check_queue_rules(kinfer_config_load_ctx *c, const kinfer_model_config *m,
                                    const int *src, int fallback, const char *prefix) {
    int low = kinfer_config_low_watermark_index();
    int hard = kinfer_config_prop_find(KINFER_CONFIG_SCOPE_MODEL, "max_queue_hard");
    int maxq = kinfer_config_prop_find(KINFER_CONFIG_SCOPE_MODEL, "max_queue");
    char key[KEY_MAX];
    if (m->queue_low_watermark >= m->max_queue) { /* the engine needs a gap to resume */
        snprintf(key, sizeof(key), "%squeue_low_watermark", prefix);
        return kinfer_config_fail(c, src_line(src[low], src_line(src[maxq], fallback)), key,
                                  "must be below max_queue (%u) (got %u)", m->max_queue,
                                  m->queue_low_watermark);
    }
    if (m->max_queue_hard != 0 && m->max_queue_hard < m->max_queue) {
        snprintf(key, sizeof(key), "%smax_queue_hard", prefix);
        return kinfer_config_fail(c, src_line(src[hard], src_line(src[maxq], fallback)), key,
                                  "must be 0 or at least max_queue (%u) (got %u)", m->max_queue,
                                  m->max_queue_hard);
    }
    return KINFER_OK;
}

/* Resolves a relative path against the config file's directory, then asks
 * the model's kind what the path must be (config_kinds.c). */
static kinfer_err check_model_path(kinfer_config_load_ctx *c, size_t mi) {
    kinfer_model_config *m = (kinfer_model_config *)&c->cfg->models[mi];
    const char *raw = m->load.path;
    if (raw[0] != '/' && strcmp(c->cfg->base_dir, ".")) {
        size_t len = strlen(c->cfg->base_dir) + 1 + strlen(raw) + 1;
        char *joined = kinfer_config_own_calloc(c, len, 1);
        if (!joined)
            return kinfer_config_nomem(c);
        snprintf(joined, len, "%s/%s", c->cfg->base_dir, raw);
        m->load.path = joined;
    }
    return kinfer_config_check_model_path_kind(c, mi, raw);
}

static int root_line(kinfer_config_load_ctx *c, const char *name) {
    return c->st->root_src[kinfer_config_prop_find(KINFER_CONFIG_SCOPE_ROOT, name)];
}

/* Expands a topic template ("{topic}.replies") for one request topic. */
static void expand_template(const char *tmpl, const char *topic, char *out, size_t outlen) {
    size_t n = 0;
    out[0] = '\0';
    for (const char *p = tmpl; *p && n + 1 < outlen;) {
        if (!strncmp(p, "{topic}", 7)) {
            n += (size_t)snprintf(out + n, outlen - n, "%s", topic);
            if (n >= outlen)
                return;
            p += 7;
        } else {
            out[n++] = *p++;
            out[n] = '\0';
        }
    }
}

/* kafka.group_protocol = "consumer" (KIP-848): librdkafka has it from 2.10
 * (preview; GA in 2.12), and there the broker owns what the classic
 * protocol let the client choose; librdkafka refuses those properties with
 * the consumer protocol, so say which line to drop, at load. */
static kinfer_err check_group_protocol(kinfer_config_load_ctx *c) {
    const kinfer_config_kafka *k = &c->cfg->kafka;
    if (k->group_protocol != KINFER_CONFIG_GROUP_PROTOCOL_CONSUMER)
        return KINFER_OK;
    int gl = root_line(c, "kafka.group_protocol");
    int al = root_line(c, "kafka.assignment_strategy");
    if (al > 0)
        return kinfer_config_fail(c, al, "kafka.assignment_strategy",
                                  "is a classic-protocol setting; with kafka.group_protocol = "
                                  "\"consumer\" (line %d) the broker assigns partitions (choose "
                                  "its assignor with group.remote.assignor in "
                                  "kafka.consumer_properties)",
                                  gl);
    static const struct {
        const char *key, *broker;
    } broker_side[] = {{"session.timeout.ms", "group.consumer.session.timeout.ms"},
                       {"heartbeat.interval.ms", "group.consumer.heartbeat.interval.ms"},
                       {"group.protocol.type", NULL}};
    const kinfer_config_kvlist *lists[] = {&k->properties, &k->consumer_properties};
    const char *names[] = {"kafka.properties", "kafka.consumer_properties"};
    for (size_t l = 0; l < 2; l++)
        for (size_t i = 0; i < lists[l]->n; i++)
            for (size_t b = 0; b < sizeof broker_side / sizeof broker_side[0]; b++)
                if (!strcmp(lists[l]->items[i].key, broker_side[b].key))
                    return kinfer_config_fail(
                        c, lists[l]->items[i].line ? lists[l]->items[i].line : gl, names[l],
                        "%s is not a client setting with kafka.group_protocol = \"consumer\" "
                        "(line %d)%s%s%s",
                        broker_side[b].key, gl, broker_side[b].broker ? ": the broker's " : "",
                        broker_side[b].broker ? broker_side[b].broker : "",
                        broker_side[b].broker ? " applies (drop it here)" : " (drop it)");
    if ((rd_kafka_version() & ~0xff) < 0x020a0000)
        return kinfer_config_fail(c, gl, "kafka.group_protocol",
                                  "\"consumer\" (KIP-848) needs librdkafka 2.10 or newer; this "
                                  "kinfer runs on librdkafka %s (build against a newer one, "
                                  "docs/KAFKA-VERSIONS.md, or use \"classic\")",
                                  rd_kafka_version_str());
    return KINFER_OK;
}

static kinfer_err check_kafka_rules(kinfer_config_load_ctx *c) {
    const kinfer_config_kafka *k = &c->cfg->kafka;
    int tl = root_line(c, "kafka.topics"), pl = root_line(c, "kafka.topic_pattern");
    if (tl > 0 && pl > 0)
        return kinfer_config_fail(
            c, tl > pl ? tl : pl, tl > pl ? "kafka.topics" : "kafka.topic_pattern",
            "set either kafka.topics or kafka.topic_pattern, not both (the other is at "
            "line %d)",
            tl > pl ? pl : tl);
    if (!k->topic_pattern && k->topics.n == 0)
        return kinfer_config_fail(c, tl, "kafka.topics",
                                  "needs at least one topic (or set kafka.topic_pattern)");
    /* A reply or DLQ topic that is itself consumed would feed the worker its
     * own output forever. */
    for (size_t i = 0; i < k->topics.n; i++) {
        const char *tmpl[2] = {k->reply_topic_pattern, k->dlq_topic_pattern};
        const char *names[2] = {"kafka.reply_topic_pattern", "kafka.dlq_topic_pattern"};
        for (int t = 0; t < 2; t++) {
            char out[600];
            expand_template(tmpl[t], k->topics.items[i], out, sizeof(out));
            for (size_t j = 0; j < k->topics.n; j++)
                if (!strcmp(out, k->topics.items[j]))
                    return kinfer_config_fail(
                        c, src_line(root_line(c, names[t]), tl), names[t],
                        "for request topic \"%s\" this is \"%s\", which is itself "
                        "consumed (the worker would answer its own output)",
                        k->topics.items[i], out);
        }
    }
    if (!strcmp(k->reply_topic_pattern, k->dlq_topic_pattern))
        return kinfer_config_fail(
            c, root_line(c, "kafka.dlq_topic_pattern"), "kafka.dlq_topic_pattern",
            "must differ from kafka.reply_topic_pattern (\"%s\")", k->reply_topic_pattern);
    return check_group_protocol(c);
}

kinfer_err kinfer_config_check_rules(kinfer_config_load_ctx *c) {
    kinfer_config *cfg = c->cfg;
    kinfer_err rc = check_kafka_rules(c);
    if (rc)
        return rc;
    if (cfg->worker.reply_framing == KINFER_CONFIG_FRAMING_CONFLUENT &&
        cfg->worker.confluent_response_schema_id == 0 && !cfg->kafka.schema_registry_url)
        return kinfer_config_fail(c, root_line(c, "worker.reply_framing"),
                                  "worker.confluent_response_schema_id",
                                  "required (non-zero) when worker.reply_framing is \"confluent\" "
                                  "and no kafka.schema_registry_url is set");
    const kinfer_config_kafka *k = &cfg->kafka;
    if (!k->schema_registry_user != !k->schema_registry_password)
        return kinfer_config_fail(
            c,
            root_line(c, k->schema_registry_user ? "kafka.schema_registry_user"
                                                 : "kafka.schema_registry_password"),
            k->schema_registry_user ? "kafka.schema_registry_password"
                                    : "kafka.schema_registry_user",
            "kafka.schema_registry_user and kafka.schema_registry_password go together");
    if (k->schema_registry_user && !k->schema_registry_url)
        return kinfer_config_fail(c, root_line(c, "kafka.schema_registry_user"),
                                  "kafka.schema_registry_url",
                                  "required when kafka.schema_registry_user is set");
    if ((rc = check_queue_rules(c, &cfg->scheduler, c->st->sched_src, 0, "scheduler.")))
        return rc;
    if (c->st->models_line == 0)
        return kinfer_config_fail(c, 0, "models",
                                  "at least one model is required (models = ( { name = ...; "
                                  "kind = ...; path = ...; } );)");
    if (cfg->nmodels == 0)
        return kinfer_config_fail(c, c->st->models_line, "models",
                                  "at least one model is required");
    int nidx = kinfer_config_prop_find(KINFER_CONFIG_SCOPE_MODEL, "name");
    for (size_t i = 0; i < cfg->nmodels; i++) {
        const int *src = c->st->model_src + i * kinfer_config_nprops;
        char prefix[64];
        snprintf(prefix, sizeof(prefix), "models.[%zu].", i);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(cfg->models[i].name, cfg->models[j].name)) {
                char key[KEY_MAX];
                snprintf(key, sizeof(key), "models.[%zu].name", i);
                return kinfer_config_fail(c, src[nidx], key,
                                          "model \"%s\" is already defined by models.[%zu]",
                                          cfg->models[i].name, j);
            }
        if ((rc = check_queue_rules(c, &cfg->models[i], src, c->st->model_line[i], prefix)))
            return rc;
        if ((rc = kinfer_config_check_model_kind(c, i)))
            return rc;
        if ((rc = check_model_path(c, i)))
            return rc;
    }
    return KINFER_OK;
}
