/* config_table.c — THE table of configuration properties: name, type,
 * range or choices, default and description. Validation (config_load.c),
 * `kinfer check-config` output and docs/CONFIGURATION.md (config_print.c)
 * all read it; a property exists only if it is here. No parsing here. */
#include <stddef.h>
#include <string.h>

#include "config_table.h"

/* Short spellings for the table below, local to this file. */
#define ROOT(member)                                                                               \
    .scope = KINFER_CONFIG_SCOPE_ROOT, .offset = offsetof(kinfer_config, member),                  \
    .size = sizeof(((kinfer_config *)0)->member)
#define MODEL(member)                                                                              \
    .scope = KINFER_CONFIG_SCOPE_MODEL, .offset = offsetof(kinfer_model_config, member),           \
    .size = sizeof(((kinfer_model_config *)0)->member)
#define STRING .type = KINFER_CONFIG_TYPE_STRING
#define INT .type = KINFER_CONFIG_TYPE_INT
#define ENUM .type = KINFER_CONFIG_TYPE_ENUM
#define CHOICE .type = KINFER_CONFIG_TYPE_CHOICE
#define STRLIST .type = KINFER_CONFIG_TYPE_STRLIST
#define KVLIST .type = KINFER_CONFIG_TYPE_KVLIST
#define DEVICES .type = KINFER_CONFIG_TYPE_DEVICES
#define PATH .type = KINFER_CONFIG_TYPE_PATH
#define REQUIRED KINFER_CONFIG_F_REQUIRED
#define OPTIONAL KINFER_CONFIG_F_OPTIONAL
#define SCHED KINFER_CONFIG_F_SCHED
#define COMPUTED KINFER_CONFIG_F_COMPUTED

/* Choice lists. For ENUM types the order is the C enum's order. */
static const char *const delivery_choices[] = {"at-least-once", "exactly-once", NULL};
static const char *const assignment_choices[] = {"cooperative-sticky", "eager", "range",
                                                 "roundrobin", NULL};
static const char *const group_protocol_choices[] = {"classic", "consumer", NULL};
static const char *const framing_choices[] = {"same", "bare", "single-object", "confluent", NULL};
static const char *const log_level_choices[] = {"debug", "info", "warn", "error", NULL};
static const char *const nan_policy_choices[] = {"reject", "pass", NULL};

#define MIB (1024LL * 1024LL)

const kinfer_config_section kinfer_config_sections[] = {
    {"kafka", "Where requests come from and replies go. Without `brokers` the worker runs an "
              "embedded in-process Kafka cluster (for trying kinfer with no broker)."},
    {"", "Top-level settings."},
    {"worker", "The process itself."},
    {"limits", "Limits on one decoded request; a request beyond them gets an INVALID_REQUEST "
               "reply without reaching a model."},
    {"http", "The metrics and health endpoint (`/metrics`, `/healthz`, `/readyz`)."},
    {"health", "What `/readyz` and `/healthz` call not ready and not live (README, "
               "\"Operations\"). Liveness also watches the poll loop against the consumer's "
               "`max.poll.interval.ms`."},
    {"scheduler", "Scheduling defaults for every model that does not set the key itself."},
    {"models", "The model repository: a list of groups `( { ... }, { ... } )`, at least one. "
               "Every key of the `scheduler` section may also be set per model."},
};
const size_t kinfer_config_nsections =
    sizeof(kinfer_config_sections) / sizeof(kinfer_config_sections[0]);

const kinfer_config_prop kinfer_config_props[] = {
    /* --- kafka ----------------------------------------------------------- */
    {.name = "kafka.brokers",
     STRING,
     ROOT(kafka.brokers),
     .def = "\"\"",
     .check = kinfer_config_check_printable,
     .description = "Bootstrap servers, `host:port[,host:port...]` (librdkafka "
                    "`bootstrap.servers`). Empty: run an embedded in-process Kafka cluster "
                    "instead of connecting anywhere."},
    {.name = "kafka.group",
     STRING,
     ROOT(kafka.group),
     .def = "\"kinfer\"",
     .check = kinfer_config_check_group,
     .description = "Consumer group id. Every worker of one fleet uses the same group; Kafka "
                    "spreads the request partitions over them."},
    {.name = "kafka.topics",
     STRLIST,
     ROOT(kafka.topics),
     .min = 0,
     .max = 1024,
     .def = "[\"inference.requests\"]",
     .check = kinfer_config_check_topic,
     .description = "Request topics to consume. Not together with `topic_pattern`; the default "
                    "applies only when neither is set."},
    {.name = "kafka.topic_pattern",
     STRING,
     ROOT(kafka.topic_pattern),
     .flags = OPTIONAL,
     .def_doc = "unset",
     .check = kinfer_config_check_topic_pattern,
     .description = "Subscribe to every topic matching this regular expression (librdkafka "
                    "syntax); must start with `^`. Not together with `topics`. Reply and "
                    "dead-letter topics must not match it."},
    {.name = "kafka.properties",
     KVLIST,
     ROOT(kafka.properties),
     .min = 0,
     .max = 1024,
     .def = "[]",
     .check = kinfer_config_check_kv,
     .description = "librdkafka properties for both the consumer and the producer, as "
                    "`\"key=value\"` strings applied in order, e.g. "
                    "`[\"security.protocol=SASL_SSL\", \"sasl.mechanism=PLAIN\"]` (libconfig "
                    "setting names cannot contain dots, hence strings). Names and values are "
                    "checked by librdkafka at load, and files named by `*.location` properties "
                    "must be readable. Keys that kinfer sets from its own settings "
                    "(`bootstrap.servers`, `group.id`, `enable.auto.commit`, ...) are refused. "
                    "Secrets can stay out of the file: `${env:NAME}` in a value is the "
                    "environment variable NAME, `${file:PATH}` the contents of the file PATH "
                    "(one trailing newline dropped; relative to this file's directory); `$${` "
                    "is a literal `${`. Both are resolved at load (a missing or empty one is "
                    "an error naming the line and key) and never shown: `check-config` prints "
                    "references as written and the values of secret properties "
                    "(`sasl.password`, `ssl.key.password`, ...) as `[redacted]`. The same "
                    "holds for `consumer_properties` and `producer_properties`."},
    {.name = "kafka.consumer_properties",
     KVLIST,
     ROOT(kafka.consumer_properties),
     .min = 0,
     .max = 1024,
     .def = "[]",
     .check = kinfer_config_check_kv,
     .description = "Like `properties`, for the consumer only; applied after `properties`."},
    {.name = "kafka.producer_properties",
     KVLIST,
     ROOT(kafka.producer_properties),
     .min = 0,
     .max = 1024,
     .def = "[]",
     .check = kinfer_config_check_kv,
     .description = "Like `properties`, for the producer only; applied after `properties`."},
    {.name = "kafka.reply_topic_pattern",
     STRING,
     ROOT(kafka.reply_topic_pattern),
     .def = "\"{topic}.replies\"",
     .check = kinfer_config_check_topic_template,
     .description = "Reply topic for a request that names none (neither `reply_to` nor the "
                    "`kinfer-reply-to` header). `{topic}` is replaced by the request's topic."},
    {.name = "kafka.dlq_topic_pattern",
     STRING,
     ROOT(kafka.dlq_topic_pattern),
     .def = "\"{topic}.dlq\"",
     .check = kinfer_config_check_topic_template,
     .description = "Dead-letter topic for messages that cannot be decoded or answered. "
                    "`{topic}` is replaced by the request's topic."},
    {.name = "kafka.copy_headers",
     STRLIST,
     ROOT(kafka.copy_headers),
     .min = 0,
     .max = 64,
     .def = "[\"traceparent\", \"correlation-id\"]",
     .check = kinfer_config_check_header,
     .description = "Request headers copied onto the reply (tracing, correlation)."},
    {.name = "kafka.group_instance_id",
     STRING,
     ROOT(kafka.group_instance_id),
     .flags = OPTIONAL,
     .def_doc = "unset (dynamic membership)",
     .check = kinfer_config_check_identifier,
     .description = "Static group membership (`group.instance.id`): a restarted worker with the "
                    "same id gets its partitions back without a rebalance. Must differ between "
                    "workers."},
    {.name = "kafka.assignment_strategy",
     ENUM,
     ROOT(kafka.assignment_strategy),
     .choices = assignment_choices,
     .def = "\"cooperative-sticky\"",
     .description = "Partition assignment. `cooperative-sticky` moves only the partitions that "
                    "must move; `eager` (librdkafka `range,roundrobin`), `range` and "
                    "`roundrobin` revoke every partition on each rebalance. Classic group "
                    "protocol only."},
    {.name = "kafka.group_protocol",
     ENUM,
     ROOT(kafka.group_protocol),
     .choices = group_protocol_choices,
     .def = "\"classic\"",
     .description = "Consumer group protocol (librdkafka `group.protocol`). `consumer` is "
                    "KIP-848: the broker computes the assignment and members are never stopped "
                    "for a rebalance; it needs librdkafka 2.10+ (GA in 2.12) and a broker with "
                    "the protocol enabled (Kafka 4.0+ by default), and rules out "
                    "`kafka.assignment_strategy`, `session.timeout.ms` and "
                    "`heartbeat.interval.ms` (broker settings there: "
                    "`group.consumer.session.timeout.ms`...). See docs/KAFKA-VERSIONS.md."},
    {.name = "kafka.max_message_bytes",
     INT,
     ROOT(kafka.max_message_bytes),
     .min = 1024,
     .max = 1024 * MIB,
     .def = "16777216",
     .description = "Largest request message accepted, in bytes; a larger one goes to the "
                    "dead-letter topic unread. 16 MiB is 16x the broker's default "
                    "`message.max.bytes` (1 MB), so it refuses nothing a default broker "
                    "delivers, while bounding what one message can make the worker allocate."},
    {.name = "kafka.commit_interval_ms",
     INT,
     ROOT(kafka.commit_interval_ms),
     .min = 10,
     .max = 600000,
     .def = "1000",
     .description = "How often finished-offset watermarks are committed: consumer commits in "
                    "at-least-once mode (shorter means fewer repeated replies after a crash), "
                    "transaction commits in exactly-once mode (shorter means replies become "
                    "visible to read_committed readers sooner), at the cost of more requests "
                    "to the broker."},
    {.name = "kafka.transactional_id_prefix",
     STRING,
     ROOT(kafka.transactional_id_prefix),
     .flags = COMPUTED,
     .def_doc = "the value of `kafka.group`",
     .check = kinfer_config_check_identifier,
     .description = "Exactly-once: the producer's `transactional.id` is `<prefix>-<worker.id>`. "
                    "Keep `worker.id` stable across restarts (e.g. the pod name) so that a "
                    "restarted worker at once fences its predecessor's open transaction."},
    {.name = "kafka.schema_registry_url",
     STRING,
     ROOT(kafka.schema_registry_url),
     .flags = OPTIONAL,
     .def_doc = "none: a Confluent-framed request is read as the current schema",
     .check = kinfer_config_check_url,
     .description = "Base URL of a Schema Registry's Confluent-compatible API (e.g. "
                    "`http://registry:8081` for Confluent's, "
                    "`http://registry:8080/apis/ccompat/v7` for Apicurio's). When set, a "
                    "Confluent-framed request's writer schema is fetched by id "
                    "(`GET /schemas/ids/{id}`, once per id, off the poll thread) and resolved "
                    "to the current schema; a reply to a Confluent-framed request is "
                    "registered under `<reply topic>-value` and framed with that id. "
                    "Credentials go in the two keys below, never in the URL."},
    {.name = "kafka.schema_registry_user",
     STRING,
     ROOT(kafka.schema_registry_user),
     .flags = OPTIONAL,
     .def_doc = "none: no authentication",
     .check = kinfer_config_check_printable,
     .description = "HTTP basic-auth user for the Schema Registry; needs "
                    "`schema_registry_password`."},
    {.name = "kafka.schema_registry_password",
     STRING,
     ROOT(kafka.schema_registry_password),
     .flags = OPTIONAL,
     .def_doc = "none",
     .description = "HTTP basic-auth password for the Schema Registry. A secret: write "
                    "`${env:NAME}` or `${file:PATH}` to keep it out of the file (expanded at "
                    "load); never logged, and `check-config` shows it as `[redacted]`."},
    {.name = "kafka.schema_registry_timeout_ms",
     INT,
     ROOT(kafka.schema_registry_timeout_ms),
     .min = 100,
     .max = 60000,
     .def = "5000",
     .description = "Bound on one Schema Registry request (connect and transfer). Requests "
                    "waiting for a schema id wait at most this long (the poll loop never "
                    "waits); then they go to the dead-letter topic with the reason."},

    /* --- top level ------------------------------------------------------- */
    {.name = "delivery",
     ENUM,
     ROOT(delivery),
     .choices = delivery_choices,
     .def = "\"at-least-once\"",
     .description = "`at-least-once`: an offset is committed after its reply is acknowledged "
                    "(acks=all); a crash may repeat replies. `exactly-once`: replies and "
                    "offsets commit in one Kafka transaction; read_committed readers see one "
                    "reply per request."},

    /* --- worker ---------------------------------------------------------- */
    {.name = "worker.id",
     STRING,
     ROOT(worker.id),
     .flags = COMPUTED,
     .def_doc = "`<hostname>-<pid>`",
     .check = kinfer_config_check_identifier,
     .description = "This worker's name in replies, logs and metrics (and its transactional "
                    "id)."},
    {.name = "worker.drain_timeout_ms",
     INT,
     ROOT(worker.drain_timeout_ms),
     .min = 0,
     .max = 600000,
     .def = "10000",
     .description = "On shutdown or partition revocation: how long in-flight requests may take "
                    "to finish before they are abandoned (their offsets stay uncommitted, so "
                    "another worker redoes them)."},
    {.name = "worker.cpu_threads",
     INT,
     ROOT(worker.cpu_threads),
     .min = 0,
     .max = 1024,
     .def = "0",
     .description = "Threads of the CPU backend; 0 = the number of online cores."},
    {.name = "worker.log_level",
     ENUM,
     ROOT(worker.log_level),
     .choices = log_level_choices,
     .def = "\"info\"",
     .description = "Lowest level of log lines written."},
    {.name = "worker.reply_framing",
     ENUM,
     ROOT(worker.reply_framing),
     .choices = framing_choices,
     .def = "\"same\"",
     .description = "Framing of replies: `same` as the request, `bare` Avro binary, Avro "
                    "`single-object` (C3 01 + fingerprint) or `confluent` (0x00 + schema id)."},
    {.name = "worker.confluent_response_schema_id",
     INT,
     ROOT(worker.confluent_response_schema_id),
     .min = 0,
     .max = 2147483647,
     .def = "0",
     .description = "Schema-registry id of InferenceResponse, written in Confluent-framed "
                    "replies; 0 = not set. Required when `reply_framing` is `confluent` and no "
                    "`kafka.schema_registry_url` is set (a registry gives the id of the "
                    "reply topic's subject instead)."},

    /* --- limits ---------------------------------------------------------- */
    {.name = "limits.max_tensors",
     INT,
     ROOT(limits.max_tensors),
     .min = 1,
     .max = 4096,
     .def = "64",
     .description = "Most input tensors in one request."},
    {.name = "limits.max_dims",
     INT,
     ROOT(limits.max_dims),
     .min = 1,
     .max = KINFER_MAX_DIMS,
     .def = "8",
     .description = "Most dimensions of one tensor."},
    {.name = "limits.max_elements",
     INT,
     ROOT(limits.max_elements),
     .min = 1,
     .max = 1LL << 32,
     .def = "16777216",
     .description = "Most elements in one tensor (the product of its shape), checked before any "
                    "allocation."},
    {.name = "limits.max_strings",
     INT,
     ROOT(limits.max_strings),
     .min = 1,
     .max = 16777216,
     .def = "65536",
     .description = "Most strings in one STRING tensor."},
    {.name = "limits.max_params",
     INT,
     ROOT(limits.max_params),
     .min = 0,
     .max = 4096,
     .def = "64",
     .description = "Most entries in a request's `parameters` map."},

    /* --- http ------------------------------------------------------------ */
    {.name = "http.listen",
     STRING,
     ROOT(http.listen),
     .def = "\"127.0.0.1:9464\"",
     .check = kinfer_config_check_listen,
     .description = "`host:port` of the HTTP server (`[::1]:9464` for IPv6); empty disables "
                    "it."},

    /* --- health ---------------------------------------------------------- */
    {.name = "health.broker_grace_ms",
     INT,
     ROOT(health.broker_grace_ms),
     .min = 0,
     .max = 3600000,
     .def = "15000",
     .description = "How long the cluster may stay unreachable (every broker down, no answer "
                    "to the worker's metadata probe, or authentication/TLS failing) before "
                    "`/readyz` turns 503. Kubernetes' readiness probe then needs only a short "
                    "failure threshold of its own."},
    {.name = "health.probe_interval_ms",
     INT,
     ROOT(health.probe_interval_ms),
     .min = 100,
     .max = 60000,
     .def = "2000",
     .description = "How often the worker asks the cluster for metadata (a small request) to "
                    "know that it answers; also that probe's timeout. Only with `http.listen` "
                    "set."},
    {.name = "health.startup_auth_timeout_ms",
     INT,
     ROOT(health.startup_auth_timeout_ms),
     .min = 0,
     .max = 3600000,
     .def = "10000",
     .description = "A worker that has never reached the cluster stops with a start-up error "
                    "(exit status 1, one log line naming the properties to check) once an "
                    "authentication or TLS failure has lasted this long: a wrong "
                    "`sasl.password`, `sasl.username` or `sasl.mechanism`, an untrusted "
                    "certificate (`ssl.ca.location`), a `security.protocol` that does not "
                    "match the listener. Retrying does not fix those; the wait covers SCRAM "
                    "users that are still reaching every broker. Once the worker has reached "
                    "the cluster, such failures only make it not ready (`auth_failed`) while "
                    "librdkafka retries. 0: never stop, only be not ready."},
    {.name = "health.batch_stall_factor",
     INT,
     ROOT(health.batch_stall_factor),
     .min = 2,
     .max = 1000000,
     .def = "20",
     .description = "`/healthz` turns 503 when an executor has been inside one batch longer "
                    "than this many times the latency learned for a batch of its size (and "
                    "longer than `batch_stall_min_ms`): a wedged kernel, driver or BLAS call."},
    {.name = "health.batch_stall_min_ms",
     INT,
     ROOT(health.batch_stall_min_ms),
     .min = 1,
     .max = 86400000,
     .def = "60000",
     .description = "The least time inside one batch that `/healthz` calls stalled, whatever "
                    "the learned latency (first batches, cold GPUs and cuBLAS start-up are "
                    "slow)."},

    /* --- models (and scheduler) ------------------------------------------ */
    {.name = "name",
     STRING,
     MODEL(name),
     .flags = REQUIRED,
     .check = kinfer_config_check_identifier,
     .description = "What requests put in `model`; unique. Letters, digits, `.`, `_`, `-`."},
    {.name = "version",
     STRING,
     MODEL(version),
     .flags = OPTIONAL,
     .def_doc = "unset",
     .check = kinfer_config_check_identifier,
     .description = "Version reported in replies (`model_version`)."},
    {.name = "kind",
     CHOICE,
     MODEL(load.kind),
     .flags = REQUIRED,
     .choices_of = kinfer_config_kind_choices,
     .description = "A kind of the engine's kind table; what each kind takes is under "
                    "[Model kinds](#model-kinds)."},
    {.name = "path",
     PATH,
     MODEL(load.path),
     .flags = REQUIRED,
     .check = kinfer_config_check_nonempty,
     .description = "The model: a file or a directory, as its kind says ([Model "
                    "kinds](#model-kinds)). A relative path is relative to the config file's "
                    "directory. Must exist (checked at load; the worker loads the model)."},
    {.name = "activation",
     CHOICE,
     MODEL(load.activation),
     .flags = OPTIONAL,
     .choices_of = kinfer_config_activation_choices,
     .def_doc = "unset (the model file's)",
     .description = "Hidden-layer activation, overriding the model file's metadata. Only for "
                    "kinds that have activations ([Model kinds](#model-kinds))."},
    {.name = "output_activation",
     CHOICE,
     MODEL(load.output_activation),
     .flags = OPTIONAL,
     .choices_of = kinfer_config_output_activation_choices,
     .def_doc = "unset (the model file's)",
     .description = "Activation of the last layer, overriding the model file's metadata. Only "
                    "for kinds that have activations ([Model kinds](#model-kinds))."},
    {.name = "nan_policy",
     ENUM,
     MODEL(load.nan_policy),
     .choices = nan_policy_choices,
     .def = "\"reject\"",
     .description = "`reject`: a NaN or Inf in an input is an INVALID_REQUEST; `pass`: "
                    "computed through."},
    {.name = "precision",
     CHOICE,
     MODEL(load.precision),
     .choices_of = kinfer_config_precision_choices,
     .def = "\"fp32\"",
     .description = "Weight and compute type, one of the model's kind's precisions. GPUs: "
                    "fp32, fp16, bf16. CPU: fp32, bf16 (needs AVX512-BF16 or AMX), int8 "
                    "(dynamic per-row activations, per-channel weights; needs AVX512-VNNI, "
                    "AVX-VNNI or AMX; kind bert runs int8 in the dense layers measured "
                    "insensitive and bf16, else fp32, in the others); a CPU without them, and "
                    "fp16, run fp32 with a logged warning."},
    {.name = "devices",
     DEVICES,
     MODEL(devices),
     .min = 1,
     .max = KINFER_MAX_DEVICES,
     .def = "[\"cpu\"]",
     .check = kinfer_config_check_device,
     .description = "Where replicas run, in preference order: `cpu` or `cuda:N`, each at most "
                    "once."},
    {.name = "replicas_per_device",
     INT,
     MODEL(replicas_per_device),
     .flags = SCHED,
     .min = 1,
     .max = 64,
     .def = "1",
     .description = "Replicas (executors with their own buffers) of the model on each device."},
    {.name = "max_batch_size",
     INT,
     MODEL(max_batch_size),
     .flags = SCHED,
     .min = 1,
     .max = 65536,
     .def = "64",
     .description = "Most rows in one batch."},
    {.name = "max_batch_tokens",
     INT,
     MODEL(max_batch_tokens),
     .flags = SCHED,
     .min = 0,
     .max = 16777216,
     .def = "0",
     .description = "Text models: most padded tokens in one batch; 0 = no limit beyond "
                    "`max_batch_size`. Generative models (`llm`): the per-step token budget "
                    "(one decode token per running sequence plus prefill chunks of newly "
                    "admitted ones); 0 = 512; at least `max_batch_size`."},
    {.name = "context_length",
     INT,
     MODEL(load.context_length),
     .min = 0,
     .max = 1048576,
     .def = "0",
     .description = "Generative models: the most positions (prompt + generated tokens) of "
                    "one sequence, at most the model's own; 0 = the model's own. A prompt "
                    "plus `max_tokens` beyond it is an INVALID_REQUEST."},
    {.name = "kv_block_tokens",
     INT,
     MODEL(load.kv_block_tokens),
     .min = 0,
     .max = 4096,
     .def = "0",
     .description = "Generative models: tokens per block of the paged KV cache; 0 = 16."},
    {.name = "kv_cache_bytes",
     INT,
     MODEL(kv_cache_bytes),
     .min = 0,
     .max = 1099511627776LL,
     .def = "0",
     .description = "Generative models: KV cache memory per replica, in bytes (write values "
                    "over 2^31 with an L suffix); 0 = 256 MiB. When its blocks run out the "
                    "least urgent sequence is preempted and recomputed later."},
    {.name = "default_max_tokens",
     INT,
     MODEL(default_max_tokens),
     .min = 0,
     .max = 1048576,
     .def = "0",
     .description = "Generative models: `max_tokens` of a request whose `generation` sets "
                    "none; 0 = as many as the context (and the KV cache) leave after the "
                    "prompt."},
    {.name = "max_queue_delay_us",
     INT,
     MODEL(max_queue_delay_us),
     .flags = SCHED,
     .min = 0,
     .max = 10000000,
     .def = "2000",
     .description = "Longest the oldest queued request waits for others to batch with, in "
                    "microseconds."},
    {.name = "default_timeout_ms",
     INT,
     MODEL(default_timeout_ms),
     .flags = SCHED,
     .min = 0,
     .max = 86400000,
     .def = "30000",
     .description = "Deadline of a request that carries none, counted from its arrival; 0 = no "
                    "deadline."},
    {.name = "max_queue",
     INT,
     MODEL(max_queue),
     .flags = SCHED,
     .min = 1,
     .max = 16777216,
     .def = "1024",
     .description = "Queued requests at which the model counts as congested: the partitions "
                    "feeding it are paused."},
    {.name = "queue_low_watermark",
     INT,
     MODEL(queue_low_watermark),
     .flags = SCHED | COMPUTED,
     .min = 0,
     .max = 16777216,
     .def_doc = "`max_queue / 2`",
     .description = "Queued requests at or below which paused partitions resume; below "
                    "`max_queue`."},
    {.name = "max_queue_hard",
     INT,
     MODEL(max_queue_hard),
     .flags = SCHED,
     .min = 0,
     .max = 16777216,
     .def = "0",
     .description = "Queued requests beyond which new ones get OVERLOADED replies; 0 = never "
                    "(pausing alone bounds the queue). Otherwise at least `max_queue`."},
    {.name = "bulk_slice_us",
     INT,
     MODEL(bulk_slice_us),
     .flags = SCHED,
     .min = 1,
     .max = 3600000000LL,
     .def = "1000",
     .description = "Bulk lane (requests with `priority` below 0): while online requests are "
                    "around, the most estimated compute of a batch of bulk requests, in "
                    "microseconds (it takes at least one); an online arrival waits behind "
                    "about this much bulk work."},
    {.name = "bulk_idle_ms",
     INT,
     MODEL(bulk_idle_ms),
     .flags = SCHED,
     .min = 1,
     .max = 2592000000LL,
     .def = "1000",
     .description = "Bulk lane: how long after the last online request arrived the online "
                    "lane still counts as active (bulk batches capped by `bulk_slice_us`); "
                    "after that, bulk batches are as full as online ones."},
};
const size_t kinfer_config_nprops = sizeof(kinfer_config_props) / sizeof(kinfer_config_props[0]);

int kinfer_config_low_watermark_index(void) {
    return kinfer_config_prop_find(KINFER_CONFIG_SCOPE_MODEL, "queue_low_watermark");
}

int kinfer_config_prop_find(kinfer_config_scope scope, const char *name) {
    for (size_t i = 0; i < kinfer_config_nprops; i++)
        if (kinfer_config_props[i].scope == scope && !strcmp(kinfer_config_props[i].name, name))
            return (int)i;
    return -1;
}

/* The public enum names come from the same choice lists as the table. */
static const char *choice_name(const char *const *choices, size_t n, int value) {
    return value >= 0 && (size_t)value < n ? choices[value] : "?";
}

const char *kinfer_config_delivery_name(kinfer_config_delivery delivery) {
    return choice_name(delivery_choices, 2, (int)delivery);
}

const char *kinfer_config_assignment_name(kinfer_config_assignment assignment) {
    return choice_name(assignment_choices, 4, (int)assignment);
}

const char *kinfer_config_framing_name(kinfer_config_framing framing) {
    return choice_name(framing_choices, 4, (int)framing);
}

const char *kinfer_config_assignment_rdkafka(kinfer_config_assignment assignment) {
    switch (assignment) {
    case KINFER_CONFIG_ASSIGNMENT_COOPERATIVE_STICKY:
        return "cooperative-sticky";
    case KINFER_CONFIG_ASSIGNMENT_EAGER:
        return "range,roundrobin";
    case KINFER_CONFIG_ASSIGNMENT_RANGE:
        return "range";
    case KINFER_CONFIG_ASSIGNMENT_ROUNDROBIN:
        return "roundrobin";
    }
    return "cooperative-sticky";
}

_Static_assert(KINFER_CONFIG_DELIVERY_EXACTLY_ONCE == 1, "delivery_choices order");
_Static_assert(KINFER_CONFIG_ASSIGNMENT_ROUNDROBIN == 3, "assignment_choices order");
_Static_assert(KINFER_CONFIG_FRAMING_CONFLUENT == 3, "framing_choices order");
_Static_assert(KINFER_CONFIG_GROUP_PROTOCOL_CONSUMER == 1, "group_protocol_choices order");
_Static_assert(KINFER_LOG_DEBUG == 0 && KINFER_LOG_ERROR == 3, "log_level_choices order");
_Static_assert(KINFER_NAN_REJECT == 0 && KINFER_NAN_PASS == 1, "nan_policy_choices order");
_Static_assert(sizeof(kinfer_config_delivery) == sizeof(int), "ENUM properties are stored as int");
