/* probe.h — kinfer_rdkafka_probe: small programs that show whether the
 * librdkafka they are linked with still has a consumer-group bug the worker
 * works around (docs/RELIABILITY.md). They drive librdkafka directly, with
 * none of kinfer's work-arounds, against a real broker, and print one JSON
 * line of what happened; tests/integration/test_rdkafka_bugs.py judges it by
 * the linked version. Test code, not part of kinfer. */
#ifndef KINFER_RDKAFKA_PROBE_H
#define KINFER_RDKAFKA_PROBE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <librdkafka/rdkafka.h>

/* One group member and what its rebalance callback saw. The callback runs
 * on the thread that polls (or closes) the member. */
typedef struct probe_member {
    rd_kafka_t *rk;
    atomic_int partitions; /* currently assigned */
    atomic_int assigns;
    atomic_int revokes;
    atomic_int lost; /* revokes with rd_kafka_assignment_lost() */
    atomic_int commit_ok;
    atomic_int commit_illegal_generation;
    atomic_int commit_other_error;
    atomic_int partition_count_changed; /* the PARTCNT log line */
    atomic_llong last_rebalance_us;
    bool pause_assigned;   /* pause what is assigned, resume it before unassign */
    bool commit_on_revoke; /* commit the revoked partitions synchronously first */
} probe_member;

/* Monotonic microseconds. */
int64_t probe_now_us(void);

/* A cooperative-sticky consumer of `group` subscribed to `topic`, in
 * `m` (which must outlive it). `extra` is NULL or a NULL-terminated list of
 * key, value pairs. Returns 0, or -1 with the reason on stderr. */
int probe_member_new(probe_member *m, const char *bootstrap, const char *group, const char *topic,
                     const char *const *extra);

/* Polls m for up to ms milliseconds (messages are dropped). */
void probe_member_poll(probe_member *m, int ms);

/* Starts `argv0 member BOOTSTRAP GROUP TOPIC` (a member in its own process,
 * so that it can be killed with SIGKILL). Its stdout, a pipe, says
 * "assigned" once it holds partitions. Returns the pid or -1; *out_fd is
 * the pipe's read end. */
pid_t probe_spawn_member(const char *argv0, const char *bootstrap, const char *group,
                         const char *topic, int *out_fd);

/* Whether the spawned member said "assigned" within ms. */
bool probe_wait_line(int fd, int ms);

/* The cases; each prints one JSON line and returns the exit status. */
int probe_member_main(const char *bootstrap, const char *group, const char *topic);
int probe_commit_during_rebalance(const char *argv0, const char *bootstrap, const char *group,
                                  const char *topic);
int probe_close_before_assign(const char *bootstrap, const char *group, const char *topic,
                              int rounds);
int probe_close_during_assign(const char *bootstrap, const char *group, char *topics);
int probe_assignor_loop(const char *bootstrap, const char *group, const char *topic1,
                        const char *topic2, int per_topic);

#endif
