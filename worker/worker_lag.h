/* worker_lag.h — module-local: consumer lag per assigned request partition,
 * read from librdkafka's statistics JSON (topics.<t>.partitions.<p>: the
 * end offsets and the committed offset), for kinfer_consumer_lag on
 * /metrics. The parse is a pure function (unit-tested); applying it uses
 * the worker's own commit points, which exactly-once commits through the
 * transaction where librdkafka's committed_offset does not follow. */
#ifndef KINFER_WORKER_LAG_H
#define KINFER_WORKER_LAG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kinfer/kinfer_error.h"

/* One partition the application has assigned ("desired"), as the
 * statistics report it; offsets are -1 when librdkafka does not know them
 * (it writes -1001 for an invalid offset). */
typedef struct kinfer_worker_stats_part {
    char topic[256];
    int32_t partition;
    int64_t hi_offset;        /* high watermark */
    int64_t ls_offset;        /* last stable offset (read_committed's end) */
    int64_t lo_offset;        /* log start */
    int64_t committed_offset; /* the group's committed offset as librdkafka last saw it */
} kinfer_worker_stats_part;

/* Calls fn for every assigned partition (partition >= 0, desired) in the
 * statistics. KINFER_ERR_INVALID_ARG when json does not parse. */
kinfer_err kinfer_worker_stats_parts(const char *json, size_t len,
                                     void (*fn)(const kinfer_worker_stats_part *part, void *ctx),
                                     void *ctx, kinfer_error *err);

/* The lag of one partition: its end (ls_offset when read_committed, else
 * hi_offset) minus the committed offset: `ours` (the worker's commit point,
 * >= 0 when it has committed since the assignment), else librdkafka's
 * committed_offset, else the log start (nothing committed yet and
 * auto.offset.reset = earliest, kinfer's default). -1 when the end is not
 * known yet; never below 0. */
int64_t kinfer_worker_lag_of(const kinfer_worker_stats_part *part, bool read_committed,
                             int64_t ours);

#endif
