/* worker_internal.h — the worker's private state, shared by worker_*.c
 * only (never by tests or other modules). Each field says which thread
 * touches it. */
#ifndef KINFER_WORKER_INTERNAL_H
#define KINFER_WORKER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "kinfer/kinfer_config.h"
#include "kinfer/kinfer_codec.h"
#include "kinfer/kinfer_engine.h"
#include "kinfer/kinfer_worker.h"
#include "kinfer/kinfer_route.h"
#include "worker_handoff.h"
#include "worker_health.h"
#include "worker_metrics.h"
#include "worker_offsets.h"
#include "worker_registry.h"

typedef struct kinfer_worker_http kinfer_worker_http;

/* A pool of response encoders: engine threads borrow one per reply (an
 * encoder is single-threaded; one per thread would leak on thread exit). */
typedef struct kinfer_worker_encoders {
    pthread_mutex_t lock;
    kinfer_codec_encoder **free;
    size_t nfree, cap;
} kinfer_worker_encoders;

/* One consumed request from poll to delivery report. Owns rkm until its
 * record (reply or dead letter) is in librdkafka's hands; the views
 * id/model and the input tensors point into rkm's payload (zero copy), so
 * they are valid only while rkm is. Allocated in one block with its
 * tensor/param arrays. */
typedef struct kinfer_worker_msg {
    kinfer_worker *w;
    rd_kafka_message_t *rkm; /* NULL once produced */
    kinfer_worker_part *part;
    kinfer_worker_offset_ref ref;
    int32_t partition;
    int64_t offset;
    int model_idx; /* index in cfg->models; -1 = unknown or not decoded */
    bool is_dlq;   /* what was produced: a dead letter, else a reply */
    /* A chunk reply of a streamed generation (kinfer_worker_chunk_new): no
     * rkm, its own copy of the key, not counted as a request in flight
     * (only its bytes are), and its delivery finishes no offset; its
     * request's final reply does. */
    bool is_chunk;
    int wire_status; /* the reply's status (metrics at delivery) */
    size_t bytes;
    int64_t consumed_us; /* monotonic */
    kinfer_codec_frame frame;
    /* The request body rewritten for the current schema (a writer schema
     * resolved): the decoded views point into it. Owned; NULL = they point
     * into rkm. */
    void *owned_body;
    /* With a schema registry: the reply's Confluent id (the response schema
     * under the reply topic's subject); 0 = worker.confluent_response_schema_id. */
    uint32_t reply_schema_id;
    kinfer_str id, model, model_version;
    bool has_model_version;
    char reply_topic[KINFER_WORKER_TOPIC_MAX + 1]; /* where the record goes */
    /* Copies of the decoder's arrays (the decoder reuses its own). */
    kinfer_tensor *inputs;
    size_t ninputs;
    kinfer_param *params;
    size_t nparams;
    /* The finished record, set once by whoever finished it (worker_reply.c,
     * worker_dlq.c) and produced by worker_produce.c. The key is borrowed
     * from rkm (the request's key or id); the value is owned when
     * out_value_owned (an encoded reply), else borrowed from rkm (a dead
     * letter forwards the request's bytes). Freed with the msg. */
    const void *out_key;
    size_t out_key_len;
    void *out_value;
    size_t out_len;
    bool out_value_owned;
    rd_kafka_headers_t *out_hdrs;
    kinfer_worker_handoff_node node; /* in w->handoff while it waits for the producer thread */
    /* Exactly-once: next in the partition's held list (worker_txn.c). */
    struct kinfer_worker_msg *held_next;
    bool in_txn; /* produced inside a transaction: counted in txn_outstanding */
    /* A cancel record in exactly-once mode: nothing to produce; settling
     * it in the release order marks its offset done (worker_produce.c). */
    bool no_record;
    /* A generation in w->gens (worker_cancel.c): set by the poll thread
     * before submit; the links are guarded by w->gens.lock. */
    bool gen_registered;
    struct kinfer_worker_msg *gen_next, **gen_pprev;
} kinfer_worker_msg;

/* The generations in flight, by request id, for cancel records
 * (worker_cancel.c). */
#define KINFER_WORKER_GENS_BUCKETS 256
typedef struct kinfer_worker_gens {
    pthread_mutex_t lock;
    kinfer_worker_msg *buckets[KINFER_WORKER_GENS_BUCKETS];
} kinfer_worker_gens;

struct kinfer_worker {
    const kinfer_config *cfg;
    kinfer_worker_options opts;
    const char *worker_id;

    rd_kafka_t *consumer; /* poll thread only (plus thread-safe calls) */
    rd_kafka_t *producer; /* the producer thread only (worker_produce.c), plus flushes */
    kinfer_engine *engine;
    kinfer_codec_decoder *decoder; /* poll thread only */
    kinfer_codec_frame_policy policy;
    kinfer_worker_encoders encoders;
    kinfer_worker_parts *parts; /* table: poll thread; parts: see worker_offsets.h */
    kinfer_worker_metrics *metrics;
    kinfer_worker_http *http;

    /* kafka.schema_registry_url (worker_registry.c); NULL = none. Messages
     * waiting for its answer are parked here (worker_park.c), poll thread. */
    kinfer_worker_registry *registry;
    kinfer_worker_msg **parked;
    size_t nparked, capparked;
    uint64_t parked_gen; /* the registry generation they were last tried at */

    rd_kafka_topic_t **warm_topics; /* default reply topics, known to the producer early */
    size_t nwarm_topics;

    /* The produce path (worker_produce.c): finished records wait in the
     * hand-off; the producer thread produces them and serves delivery
     * reports. produce_blocked: librdkafka refused a record (QUEUE_FULL)
     * and records wait, so the poll loop pauses input. */
    kinfer_worker_handoff handoff;
    rd_kafka_queue_t *producer_events; /* librdkafka's main queue, wakes the producer thread */
    pthread_t producer_thread;
    bool producer_started;
    atomic_int producer_stop;
    int64_t producer_stop_ms; /* how long a stop keeps producing what waits */
    atomic_int produce_blocked;

    /* In-flight accounting (any thread) and its limits. */
    _Atomic int64_t in_flight, in_flight_bytes;
    uint32_t max_in_flight;
    uint64_t max_in_flight_bytes;

    /* Congestion reported by the engine (any thread), applied by the poll loop. */
    _Atomic uint64_t congested_mask;
    _Atomic uint64_t congestion_gen;
    uint64_t applied_congestion_gen; /* poll thread */
    bool over_limit;                 /* poll thread: in-flight limit reached */
    int64_t assigned_count;          /* poll thread */
    int64_t paused_count;            /* poll thread: assigned partitions paused (last walk) */

    int64_t last_commit_us; /* poll thread */
    /* Cooperative at-least-once: false while librdkafka's statistics say
     * the group is rebalancing (join_state other than "steady"); periodic
     * commits wait for steady (worker_rebalance.c explains the 2.0.2 bug). */
    atomic_int group_steady; /* consecutive "steady" statistics reports */
    bool stats_hold;         /* the hold is in use (statistics enabled by us) */
    /* Which librdkafka bugs the loaded library has (rd_kafka_version() at
     * start-up; kinfer_worker_rdkafka_bugs, docs/RELIABILITY.md). */
    bool rdk_commit_loses_assignment; /* #4059, before 2.8.0 */
    bool rdk_close_hangs_on_assign;   /* every version so far (worker_rdkafka.c) */
    int64_t lag_refreshed_us; /* poll thread: last kinfer_consumer_lag refresh (worker_lag.c) */

    /* Exactly-once (worker_txn.c). The producer thread holds txn_lock
     * shared while it produces into the open transaction; commit/abort and
     * every partition reset hold it exclusively, so no reply slips between
     * "offsets computed" and "transaction committed". Engine threads never
     * take it. */
    bool eos;
    bool txn_lock_init;
    pthread_rwlock_t txn_lock;
    atomic_int txn_abort;             /* a produce failed: abort + rewind at the next commit */
    _Atomic int64_t txn_produced;     /* produces since the transaction began */
    _Atomic int64_t txn_outstanding;  /* produced, delivery report not yet handled */
    uint64_t txn_commits, txn_aborts; /* poll thread */
    /* How long commit/abort keep retrying retriable errors (worker_txn.c):
     * twice the producer's transaction.timeout.ms, read at start-up. */
    int64_t txn_retry_us;
    bool subscribed;
    atomic_int fatal; /* a fatal Kafka error was reported */
    /* kafka.group_protocol = "consumer" and librdkafka found that the
     * coordinator lacks ConsumerGroupHeartbeat (KIP-848): start-up fails. */
    atomic_int kip848_unsupported;
    kinfer_worker_health *health; /* readiness/liveness state (worker_health.h) */
    kinfer_worker_gens gens;      /* generations in flight (worker_cancel.c), any thread */
};

/* worker_kafka.c: client configuration from kinfer_config. */
kinfer_err kinfer_worker_kafka_new(kinfer_worker *w, kinfer_error *err);
/* The consumer's max.poll.interval.ms as configured (librdkafka's default
 * when unset): the liveness bound of the poll loop. */
int64_t kinfer_worker_max_poll_interval_ms(const kinfer_config *cfg);
/* The health probe: a metadata request on the producer. 0 when the
 * cluster answered within timeout_ms, else why says what failed. */
int kinfer_worker_probe_cluster(void *worker, int timeout_ms, char *why, size_t why_len);

/* worker_msg.c */
kinfer_worker_msg *kinfer_worker_msg_new(kinfer_worker *w, rd_kafka_message_t *rkm,
                                         kinfer_worker_part *part,
                                         const kinfer_worker_offset_ref *ref,
                                         const kinfer_codec_request *req);
/* A chunk record for parent's reply topic, key (copied) and partition
 * bookkeeping, holding the encoded value (owned) and headers. NULL when
 * out of memory (value and hdrs are then the caller's). Any thread. */
kinfer_worker_msg *kinfer_worker_chunk_new(kinfer_worker_msg *parent, kinfer_str key, void *value,
                                           size_t len, rd_kafka_headers_t *hdrs);
/* Destroys rkm if still held and the record's owned parts, updates
 * in-flight accounting, frees msg. */
void kinfer_worker_msg_free(kinfer_worker_msg *msg);
/* The reply (or dead letter) finally failed or was abandoned: the offset
 * stays uncommitted so the request is redelivered. Frees msg. */
void kinfer_worker_msg_abandon(kinfer_worker_msg *msg, const char *why, bool delivery_failure);
/* What the worker does about a request that failed with a code. */
typedef enum kinfer_worker_action {
    KINFER_WORKER_ACT_REPLY = 0,   /* an error reply with the code's wire status */
    KINFER_WORKER_ACT_DEAD_LETTER, /* not a request at all: to the dead-letter topic */
    KINFER_WORKER_ACT_REDELIVER,   /* no answer; offset left uncommitted for the next owner */
    KINFER_WORKER_ACT_STOP         /* stop the worker; the request is left for redelivery */
} kinfer_worker_action;
/* Decided from the code's flags alone (the one per-code table,
 * common/kinfer_error.c): fatal -> STOP; DECODE (bytes that are not a
 * request) -> DEAD_LETTER; retriable without a wire status of its own
 * (SHUTDOWN) -> REDELIVER; everything else -> REPLY (OVERLOADED is
 * retriable too, but by the client, which the reply tells). Pure. */
kinfer_worker_action kinfer_worker_failure_action(kinfer_err code);
/* STOP: logs, sets w->fatal (the poll loop stops gracefully) and leaves
 * msg for redelivery (frees it). Any thread. */
void kinfer_worker_msg_stop(kinfer_worker_msg *msg, kinfer_err code, const char *why);

/* worker_reply.c */
kinfer_err kinfer_worker_encoders_init(kinfer_worker_encoders *pool, kinfer_error *err);
void kinfer_worker_encoders_free(kinfer_worker_encoders *pool);
/* Encodes resp in the reply framing into msg's record (reply key and
 * headers) and hands it to the produce path. On any failure the msg is
 * abandoned (offset left uncommitted). Any thread; never blocks on Kafka. */
void kinfer_worker_reply_send(kinfer_worker_msg *msg, kinfer_codec_response *resp);
/* An error reply built from the request alone (no engine result). */
void kinfer_worker_reply_error(kinfer_worker_msg *msg, kinfer_err status, const char *error);
/* Engine chunk callback of a streamed generation (the executor running
 * it): encodes a chunk reply and hands it to the produce path, before the
 * request's final reply. Never blocks on Kafka. */
void kinfer_worker_on_gen_chunk(void *ctx, const kinfer_gen_chunk *chunk);
/* Engine completion callback (engine threads: executors, expiry timer). */
void kinfer_worker_on_complete(void *ctx, const kinfer_engine_result *result);

/* worker_dlq.c: makes msg's record the request (key, value, headers) for
 * the dead-letter topic, with the reason, and hands it to the produce
 * path. Poll thread. */
void kinfer_worker_dlq_send(kinfer_worker_msg *msg, const char *reason);

/* worker_produce.c: the one produce path (replies, dead letters, both
 * delivery modes). */
/* Hands msg's finished record to the producer thread: at-least-once into
 * the hand-off; exactly-once through the partition's release order
 * (kinfer_worker_txn_hold), which appends it in consumption order. Any
 * thread; never blocks on Kafka. Consumes msg. */
void kinfer_worker_produce(kinfer_worker_msg *msg);
/* Starts the producer thread (after the producer exists). */
kinfer_err kinfer_worker_producer_start(kinfer_worker *w, kinfer_error *err);
/* Poll thread, at shutdown: waits up to timeout_ms for the hand-off to
 * empty. True when it did. */
bool kinfer_worker_producer_drain(kinfer_worker *w, int64_t timeout_ms);
/* Stops the producer thread: it keeps producing what waits for up to
 * producer_stop_ms, abandons the rest (offsets stay uncommitted), exits.
 * Call after the engine is destroyed (no more records come). */
void kinfer_worker_producer_stop(kinfer_worker *w);
/* Producer delivery report callback (producer thread, or a flush). */
void kinfer_worker_on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque);

/* worker_consume.c: one consumed message, from bytes to engine. Poll thread. */
void kinfer_worker_consume(kinfer_worker *w, rd_kafka_message_t *rkm);
/* The part of consume after the offset is tracked (a parked message
 * resumes here). */
void kinfer_worker_consume_tracked(kinfer_worker *w, rd_kafka_message_t *rkm,
                                   kinfer_worker_part *part, kinfer_worker_offset_ref ref);

/* worker_cancel.c: the generations in flight and cancel records. */
void kinfer_worker_gens_init(kinfer_worker_gens *g);
void kinfer_worker_gens_destroy(kinfer_worker_gens *g);
/* Poll thread, before kinfer_engine_submit of a generation. */
void kinfer_worker_gens_add(kinfer_worker *w, kinfer_worker_msg *msg);
/* Any thread: on submit failure, or at the generation's final completion
 * before its msg can be freed. A no-op for a msg never added. */
void kinfer_worker_gens_remove(kinfer_worker *w, kinfer_worker_msg *msg);
/* A decoded record with the kinfer-cancel header (poll thread): cancels
 * the generations in flight with req's id (best effort; none is a no-op,
 * logged at debug), then finishes the record without a reply (its offset
 * done; exactly-once: in its partition's release order). Owns rkm on
 * true; false = out of memory, rkm still the caller's. req's views must
 * stay valid for the call only. */
bool kinfer_worker_cancel_record(kinfer_worker *w, rd_kafka_message_t *rkm,
                                 kinfer_worker_part *part, const kinfer_worker_offset_ref *ref,
                                 const kinfer_codec_request *req);

/* worker_park.c: messages that wait for the schema registry. */
void kinfer_worker_park(kinfer_worker_msg *msg);
void kinfer_worker_park_retry(kinfer_worker *w);
void kinfer_worker_park_release(kinfer_worker *w, const rd_kafka_topic_partition_list_t *list,
                                const char *why);

/* worker_rebalance.c */
void kinfer_worker_on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                                rd_kafka_topic_partition_list_t *parts, void *opaque);
/* Sets w->rdk_* from the librdkafka actually loaded, and logs it. */
void kinfer_worker_rdkafka_bugs(kinfer_worker *w);

/* Statistics callback: tracks the group's join state (see group_steady). */
int kinfer_worker_on_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque);
/* worker_lag.c: refreshes the kinfer_consumer_lag table from a statistics
 * report, at most once a second. Poll thread (the statistics callback). */
void kinfer_worker_lag_on_stats(kinfer_worker *w, const char *json, size_t len);
void kinfer_worker_on_commit(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                             rd_kafka_topic_partition_list_t *offsets, void *opaque);
/* Commits every assigned partition whose watermark moved (async) or all of
 * them (sync). Poll thread. */
void kinfer_worker_commit(kinfer_worker *w, bool sync);

/* worker_backpressure.c */
void kinfer_worker_on_congestion(void *ctx, const char *model, bool congested);
/* Pauses/resumes partitions after in-flight or congestion changes. Poll thread. */
void kinfer_worker_backpressure_apply(kinfer_worker *w);
/* A newly assigned partition: paused at once when the worker is saturated. */
void kinfer_worker_backpressure_assigned(kinfer_worker *w, kinfer_worker_part *part);

/* worker_txn.c: exactly-once mode. */
kinfer_err kinfer_worker_txn_init(kinfer_worker *w, kinfer_error *err);
/* Puts msg (record set) in its partition's release order and appends
 * every record that is next in that order to the hand-off; stale
 * generations are dropped. Any thread; takes no transaction lock. */
void kinfer_worker_txn_hold(kinfer_worker_msg *msg);
/* Flushes, sends the partition watermarks with the consumer's group
 * metadata and commits the transaction, then begins the next one. On an
 * abortable error (or a failed produce since the last commit) aborts and
 * rewinds every assigned partition to its committed offset; on a fatal
 * one (fenced) sets w->fatal. Poll thread. */
kinfer_err kinfer_worker_txn_commit(kinfer_worker *w, bool force_abort);
/* Forgets a partition's tracked offsets and drops its held replies (takes
 * txn_lock exclusively). Poll thread. */
void kinfer_worker_txn_part_reset(kinfer_worker *w, kinfer_worker_part *part);
/* True when msg belongs to a generation its partition has since reset
 * (abort, revoke): it must not reach any transaction. Caller holds
 * txn_lock (shared). */
bool kinfer_worker_txn_stale(const kinfer_worker_msg *msg);

/* worker_http.c (libmicrohttpd; a no-op without it). */
kinfer_err kinfer_worker_http_start(kinfer_worker *w, kinfer_error *err);
void kinfer_worker_http_stop(kinfer_worker *w);

/* Index of a model in cfg->models, -1 when unknown. */
int kinfer_worker_model_index(const kinfer_worker *w, kinfer_str model);

#endif
