/* kinfer_embedded.h — an in-process Kafka-protocol cluster (librdkafka's
 * mock cluster) for `kinfer worker --embedded-kafka`: real TCP listeners on
 * 127.0.0.1 that kinfer send/bench and any Kafka client can use, with the
 * topics created up front. For trying kinfer without a broker; data lives
 * in memory and is gone when the process exits. Not for production and not
 * what the transport is tested against (that is the real broker). */
#ifndef KINFER_WORKER_EMBEDDED_H
#define KINFER_WORKER_EMBEDDED_H

#include <stddef.h>

#include "kinfer/kinfer_error.h"

typedef struct kinfer_worker_embedded kinfer_worker_embedded;

/* Starts a one-broker cluster and creates each request topic with
 * `partitions` partitions plus its reply and dead-letter topics (patterns
 * with {topic}; NULL skips). */
kinfer_err kinfer_worker_embedded_start(const char *const *topics, size_t ntopics, int partitions,
                                        const char *reply_pattern, const char *dlq_pattern,
                                        kinfer_worker_embedded **out, kinfer_error *err);
/* "127.0.0.1:PORT" for bootstrap.servers. */
const char *kinfer_worker_embedded_bootstrap(const kinfer_worker_embedded *emb);
void kinfer_worker_embedded_stop(kinfer_worker_embedded *emb);

#endif
