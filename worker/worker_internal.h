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

#include "config.h"
#include "kinfer_codec.h"
#include "kinfer_engine.h"
#include "worker.h"
#include "worker_metrics.h"
#include "worker_offsets.h"
#include "worker_route.h"

typedef struct kinfer_worker_http kinfer_worker_http;

/* A pool of response encoders: engine threads borrow one per reply (an
 * encoder is single-threaded; one per thread would leak on thread exit). */
typedef struct kinfer_worker_encoders {
    pthread_mutex_t lock;
    kinfer_codec_encoder **free;
    size_t nfree, cap;
} kinfer_worker_encoders;

/* One consumed request from poll to delivery report. Owns rkm until the
 * reply (or dead letter) is handed to the producer; the views id/model and
 * the input tensors point into rkm's payload (zero copy), so they are valid
 * only while rkm is. Allocated in one block with its tensor/param arrays. */
typedef struct kinfer_worker_msg {
    kinfer_worker *w;
    rd_kafka_message_t *rkm; /* NULL once produced */
    kinfer_worker_part *part;
    kinfer_worker_offset_ref ref;
    int32_t partition;
    int64_t offset;
    int model_idx;   /* index in cfg->models; -1 = unknown or not decoded */
    bool is_dlq;     /* what was produced: a dead letter, else a reply */
    int wire_status; /* the reply's status (metrics at delivery) */
    size_t bytes;
    int64_t consumed_us; /* monotonic */
    kinfer_codec_frame frame;
    kinfer_str id, model, model_version;
    bool has_model_version;
    char reply_topic[KINFER_WORKER_TOPIC_MAX + 1];
    /* Copies of the decoder's arrays (the decoder reuses its own). */
    kinfer_tensor *inputs;
    size_t ninputs;
    kinfer_param *params;
    size_t nparams;
    /* Exactly-once: the produce, prepared and held until its turn in the
     * partition's release order (worker_txn.c). out_* are owned copies. */
    struct kinfer_worker_msg *held_next;
    void *out_key, *out_value;
    size_t out_key_len, out_len;
    rd_kafka_headers_t *out_hdrs;
    bool in_txn; /* produced inside a transaction: counted in txn_outstanding */
} kinfer_worker_msg;

struct kinfer_worker {
    const kinfer_config *cfg;
    kinfer_worker_options opts;
    const char *worker_id;

    rd_kafka_t *consumer; /* poll thread only (plus thread-safe calls) */
    rd_kafka_t *producer; /* produce from any thread; polled by dr_thread */
    kinfer_engine *engine;
    kinfer_codec_decoder *decoder; /* poll thread only */
    kinfer_codec_frame_policy policy;
    kinfer_worker_encoders encoders;
    kinfer_worker_parts *parts; /* table: poll thread; parts: see worker_offsets.h */
    kinfer_worker_metrics *metrics;
    kinfer_worker_http *http;

    rd_kafka_topic_t **warm_topics; /* default reply topics, known to the producer early */
    size_t nwarm_topics;

    pthread_t dr_thread;
    bool dr_started;
    atomic_int dr_stop;

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

    int64_t last_commit_us; /* poll thread */
    /* Cooperative at-least-once: false while librdkafka's statistics say
     * the group is rebalancing (join_state other than "steady"); periodic
     * commits wait for steady (worker_rebalance.c explains the 2.0.2 bug). */
    atomic_int group_steady; /* consecutive "steady" statistics reports */
    bool stats_hold;         /* the hold is in use (statistics enabled by us) */

    /* Exactly-once (worker_txn.c). Produces into the open transaction hold
     * txn_lock shared; commit/abort and every partition reset hold it
     * exclusively, so no reply slips between "offsets computed" and
     * "transaction committed". */
    bool eos;
    bool txn_lock_init;
    pthread_rwlock_t txn_lock;
    atomic_int txn_abort;             /* a produce failed: abort + rewind at the next commit */
    _Atomic int64_t txn_produced;     /* produces since the transaction began */
    _Atomic int64_t txn_outstanding;  /* produced, delivery report not yet handled */
    uint64_t txn_commits, txn_aborts; /* poll thread */
    bool subscribed;
    atomic_int fatal; /* a fatal Kafka error was reported */
};

/* worker_kafka.c: client configuration from kinfer_config. */
kinfer_err kinfer_worker_kafka_new(kinfer_worker *w, kinfer_error *err);

/* worker_msg.c */
kinfer_worker_msg *kinfer_worker_msg_new(kinfer_worker *w, rd_kafka_message_t *rkm,
                                         kinfer_worker_part *part,
                                         const kinfer_worker_offset_ref *ref,
                                         const kinfer_codec_request *req);
/* Destroys rkm if still held, updates in-flight accounting, frees msg. */
void kinfer_worker_msg_free(kinfer_worker_msg *msg);
/* The reply (or dead letter) finally failed or was abandoned: the offset
 * stays uncommitted so the request is redelivered. Frees msg. */
void kinfer_worker_msg_abandon(kinfer_worker_msg *msg, const char *why, bool delivery_failure);

/* worker_reply.c */
kinfer_err kinfer_worker_encoders_init(kinfer_worker_encoders *pool, kinfer_error *err);
void kinfer_worker_encoders_free(kinfer_worker_encoders *pool);
/* Encodes resp in the reply framing, produces it to msg->reply_topic with
 * the reply key and headers, and gives msg to the delivery report. On any
 * failure the msg is abandoned (offset left uncommitted). Any thread. */
void kinfer_worker_reply_send(kinfer_worker_msg *msg, kinfer_codec_response *resp);
/* An error reply built from the request alone (no engine result). */
void kinfer_worker_reply_error(kinfer_worker_msg *msg, kinfer_err status, const char *error);
/* Engine completion callback. */
void kinfer_worker_on_complete(void *ctx, const kinfer_engine_result *result);
/* Producer delivery report callback (dr_thread). */
void kinfer_worker_on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque);

/* worker_dlq.c: sends msg->rkm (key, value, headers) to the dead-letter
 * topic with the reason. Poll thread. */
void kinfer_worker_dlq_send(kinfer_worker_msg *msg, const char *reason);

/* worker_consume.c: one consumed message, from bytes to engine. Poll thread. */
void kinfer_worker_consume(kinfer_worker *w, rd_kafka_message_t *rkm);

/* worker_rebalance.c */
void kinfer_worker_on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                                rd_kafka_topic_partition_list_t *parts, void *opaque);
/* Statistics callback: tracks the group's join state (see group_steady). */
int kinfer_worker_on_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque);
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
/* Copies key and value into msg->out_* and takes hdrs (not on failure). */
kinfer_err kinfer_worker_txn_prepare(kinfer_worker_msg *msg, const void *key, size_t key_len,
                                     const void *value, size_t len, rd_kafka_headers_t *hdrs);
/* Hands a prepared produce (msg->out_*) over: in release order, inside the
 * open transaction; stale generations are dropped. Any thread. */
void kinfer_worker_txn_hold(kinfer_worker_msg *msg);
/* Flushes, sends the partition watermarks with the consumer's group
 * metadata and commits the transaction, then begins the next one. On an
 * abortable error (or a failed produce since the last commit) aborts and
 * rewinds every assigned partition to its committed offset; on a fatal
 * one (fenced) sets w->fatal. Poll thread. */
kinfer_err kinfer_worker_txn_commit(kinfer_worker *w, bool force_abort);
/* Produces replies parked while a commit held txn_lock. Poll thread. */
void kinfer_worker_txn_release_all(kinfer_worker *w);
/* Forgets a partition's tracked offsets and drops its held replies (takes
 * txn_lock exclusively). Poll thread. */
void kinfer_worker_txn_part_reset(kinfer_worker *w, kinfer_worker_part *part);
/* Frees the prepared produce of a msg that never reached the producer. */
void kinfer_worker_txn_out_free(kinfer_worker_msg *msg);

/* worker_http.c (libmicrohttpd; a no-op without it). */
kinfer_err kinfer_worker_http_start(kinfer_worker *w, kinfer_error *err);
void kinfer_worker_http_stop(kinfer_worker *w);

/* Index of a model in cfg->models, -1 when unknown. */
int kinfer_worker_model_index(const kinfer_worker *w, kinfer_str model);

#endif
