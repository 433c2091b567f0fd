/* kinfer_config.h — kinfer's configuration: one libconfig file, validated against one
 * table of properties (config_table.c) from which validation, the output of
 * `kinfer check-config` and docs/CONFIGURATION.md all come.
 *
 * Not the Kafka client setup or the engine: this module only parses and
 * validates; the worker maps the values onto librdkafka, the codec limits
 * and kinfer_engine_config. Nothing here loads a model (it only checks that
 * each model's file exists). */
#ifndef KINFER_CONFIG_H
#define KINFER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "kinfer/kinfer_error.h"
#include "kinfer/kinfer_log.h"
#include "kinfer/kinfer_engine.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A list of strings in file order. */
typedef struct kinfer_config_strlist {
    const char **items;
    size_t n;
} kinfer_config_strlist;

/* One librdkafka property, value rendered as text ("true", "5000", ...). */
typedef struct kinfer_config_kv {
    const char *key;
    const char *value; /* what librdkafka gets: references already expanded */
    /* The value as written when it held a `${env:NAME}` / `${file:PATH}`
     * reference (or a `$${` escape); NULL when value is as written. */
    const char *raw;
    /* Never shown: a secret property (kinfer_config_secret_key) or a value
     * that came from a reference. check-config prints raw or "[redacted]". */
    bool secret;
    int line; /* where the file sets it; 0 = not from a file */
} kinfer_config_kv;

/* Key/value pairs in file order, passed to librdkafka verbatim (rd_kafka_conf_set). */
typedef struct kinfer_config_kvlist {
    kinfer_config_kv *items;
    size_t n;
} kinfer_config_kvlist;

typedef enum kinfer_config_delivery {
    KINFER_CONFIG_DELIVERY_AT_LEAST_ONCE = 0,
    KINFER_CONFIG_DELIVERY_EXACTLY_ONCE = 1
} kinfer_config_delivery;

typedef enum kinfer_config_assignment {
    KINFER_CONFIG_ASSIGNMENT_COOPERATIVE_STICKY = 0,
    KINFER_CONFIG_ASSIGNMENT_EAGER = 1, /* librdkafka "range,roundrobin" */
    KINFER_CONFIG_ASSIGNMENT_RANGE = 2,
    KINFER_CONFIG_ASSIGNMENT_ROUNDROBIN = 3
} kinfer_config_assignment;

/* The consumer group protocol (librdkafka group.protocol). */
typedef enum kinfer_config_group_protocol {
    KINFER_CONFIG_GROUP_PROTOCOL_CLASSIC = 0, /* JoinGroup/SyncGroup, client-side assignor */
    KINFER_CONFIG_GROUP_PROTOCOL_CONSUMER = 1 /* KIP-848: the broker assigns */
} kinfer_config_group_protocol;

typedef enum kinfer_config_framing {
    KINFER_CONFIG_FRAMING_SAME = 0, /* reply in the request's framing */
    KINFER_CONFIG_FRAMING_BARE = 1, /* bare Avro binary */
    KINFER_CONFIG_FRAMING_SINGLE_OBJECT = 2,
    KINFER_CONFIG_FRAMING_CONFLUENT = 3
} kinfer_config_framing;

typedef struct kinfer_config_kafka {
    const char *brokers;                      /* "" = run the embedded in-process cluster */
    const char *group;                        /* group.id */
    kinfer_config_strlist topics;             /* n == 0 when topic_pattern is used */
    const char *topic_pattern;                /* regex starting with "^"; NULL when topics */
    kinfer_config_kvlist properties;          /* both consumer and producer */
    kinfer_config_kvlist consumer_properties; /* consumer only, applied after properties */
    kinfer_config_kvlist producer_properties; /* producer only, applied after properties */
    const char *reply_topic_pattern;          /* "{topic}" is the request topic */
    const char *dlq_topic_pattern;            /* "{topic}" is the request topic */
    kinfer_config_strlist copy_headers;       /* request headers copied to replies */
    const char *group_instance_id;            /* static membership; NULL = dynamic */
    kinfer_config_assignment assignment_strategy;
    kinfer_config_group_protocol group_protocol;
    int64_t max_message_bytes;  /* requests larger than this go to the DLQ */
    int64_t commit_interval_ms; /* at-least-once: how often watermarks are committed */
    /* exactly-once: transactional.id = "<prefix>-<worker.id>"; defaults to the group. */
    const char *transactional_id_prefix;
    /* Confluent Schema Registry API base URL; NULL = none (Confluent ids
     * are then read as the current schema). */
    const char *schema_registry_url;
    const char *schema_registry_user;     /* HTTP basic auth; NULL = none */
    const char *schema_registry_password; /* a secret: ${env:}/${file:} expanded */
    int64_t schema_registry_timeout_ms;   /* bound on one registry request */
} kinfer_config_kafka;

typedef struct kinfer_config_worker {
    const char *id; /* default "<hostname>-<pid>", computed at load */
    int64_t drain_timeout_ms;
    int cpu_threads; /* 0 = online cores */
    kinfer_log_level log_level;
    kinfer_config_framing reply_framing;
    int32_t confluent_response_schema_id; /* 0 = not set; required when framing is confluent */
} kinfer_config_worker;

/* Request decoding limits; the worker maps them onto the codec's limits. */
typedef struct kinfer_config_limits {
    uint32_t max_tensors;  /* input tensors per request */
    uint32_t max_dims;     /* dimensions per tensor (<= KINFER_MAX_DIMS) */
    uint64_t max_elements; /* elements per tensor */
    uint32_t max_strings;  /* strings per STRING tensor */
    uint32_t max_params;   /* entries of the parameters map */
} kinfer_config_limits;

typedef struct kinfer_config_http {
    const char *listen; /* "host:port"; "" = no HTTP server */
} kinfer_config_http;

/* What the health endpoints call not ready / not live (README, "Operations"). */
typedef struct kinfer_config_health {
    int64_t broker_grace_ms;    /* cluster unreachable this long: not ready */
    int64_t probe_interval_ms;  /* metadata probe period and timeout */
    int64_t batch_stall_factor; /* inside one batch > factor x learned latency ... */
    int64_t batch_stall_min_ms; /* ... and > this: not live */
    /* Never reached the cluster and authentication/TLS failing this long:
     * stop with a start-up error; 0 = never. */
    int64_t startup_auth_timeout_ms;
} kinfer_config_health;

struct kinfer_config_state; /* provenance and storage; config_*.c only */

/* The whole validated configuration. Owns every string and array it points
 * to (including those inside models); kinfer_config_free releases them. */
typedef struct kinfer_config {
    const char *path;     /* the file as named by the caller (or the origin name) */
    const char *base_dir; /* relative model paths were resolved against this */
    kinfer_config_kafka kafka;
    kinfer_config_delivery delivery;
    kinfer_config_worker worker;
    kinfer_config_limits limits;
    kinfer_config_http http;
    kinfer_config_health health;
    /* The `scheduler` section: only the scheduling fields (replicas_per_device
     * .. max_queue_hard) are meaningful; each model inherits what it does not set. */
    kinfer_model_config scheduler;
    /* Ready for kinfer_engine_config.models: defaults filled, paths absolute
     * or relative to the process cwd, load.cpu_threads = worker.cpu_threads. */
    const kinfer_model_config *models;
    size_t nmodels;
    struct kinfer_config_state *state;
} kinfer_config;

/* Parses and validates a libconfig file. On success *cfg owns everything;
 * on failure *cfg is zeroed and err says "<file>:<line>: <key>: <what>"
 * (KINFER_ERR_CONFIG; KINFER_ERR_IO when the file cannot be read). Checks
 * that model paths exist but does not load them. Any thread; no globals. */
kinfer_err kinfer_config_load(const char *path, kinfer_config *cfg, kinfer_error *err);

/* Same from text in memory. origin_name is used in messages and its
 * directory is the base for relative model paths ("." when it has none). */
kinfer_err kinfer_config_load_string(const char *text, const char *origin_name, kinfer_config *cfg,
                                     kinfer_error *err);

/* Frees everything *cfg owns and zeroes it. Safe on a zeroed config. */
void kinfer_config_free(kinfer_config *cfg);

/* Writes the effective configuration (every key, defaults filled) as
 * libconfig text; keys that came from defaults are marked "# default". */
kinfer_err kinfer_config_print(const kinfer_config *cfg, FILE *out, kinfer_error *err);

/* Writes the markdown reference of every property (docs/CONFIGURATION.md). */
kinfer_err kinfer_config_print_reference(FILE *out, kinfer_error *err);

/* Secrets outside the config (config_secret.c). Expands `${env:NAME}` (an
 * environment variable, set and not empty) and `${file:PATH}` (a file's
 * contents, one trailing newline dropped; a relative PATH is against
 * base_dir, NULL or "." = the current directory) anywhere in raw; `$${`
 * is a literal `${`. *out: NULL when raw has none of them (use raw as
 * is), else the malloc'd expansion (the caller frees it, best zeroed).
 * Errors (KINFER_ERR_CONFIG) name the reference, the variable or the file,
 * never the secret. */
kinfer_err kinfer_config_expand_refs(const char *raw, const char *base_dir, char **out,
                                     kinfer_error *err);
/* Whether a librdkafka property holds a secret (sasl.password,
 * ssl.key.password, ssl.keystore.password, ssl.key.pem,
 * sasl.oauthbearer.client.secret, sasl.oauthbearer.config, ...). */
bool kinfer_config_secret_key(const char *key);
/* A librdkafka property naming a file (ssl.ca.location, ssl.key.location,
 * ssl.certificate.location, ssl.keystore.location, sasl.kerberos.keytab,
 * ...): false, with why, when that file cannot be read. True for every
 * other property. */
bool kinfer_config_check_rdkafka_file(const char *key, const char *value, char *why, size_t len);
/* What to show of a property's value in messages and check-config: the
 * value as written when it held references, "[redacted]" for a secret,
 * else the value. */
const char *kinfer_config_kv_shown(const kinfer_config_kv *kv);

/* Names as written in the file, e.g. "exactly-once", "cooperative-sticky", "confluent". */
const char *kinfer_config_delivery_name(kinfer_config_delivery delivery);
const char *kinfer_config_assignment_name(kinfer_config_assignment assignment);
const char *kinfer_config_framing_name(kinfer_config_framing framing);
/* The librdkafka partition.assignment.strategy value, e.g. "range,roundrobin" for eager. */
const char *kinfer_config_assignment_rdkafka(kinfer_config_assignment assignment);

#ifdef __cplusplus
}
#endif
#endif
