/* probe_common.c — the probe's group member: a cooperative-sticky consumer
 * whose rebalance callback only counts and (un)assigns, spawning members in
 * their own processes, and main(). */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "probe.h"

extern char **environ;

int64_t probe_now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque) {
    probe_member *m = opaque;
    atomic_store(&m->last_rebalance_us, probe_now_us());
    bool cooperative = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
    rd_kafka_error_t *e = NULL;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        atomic_fetch_add(&m->assigns, 1);
        atomic_fetch_add(&m->partitions, parts->cnt);
        if (m->pause_assigned)
            rd_kafka_pause_partitions(rk, parts);
        if (cooperative)
            e = rd_kafka_incremental_assign(rk, parts);
        else
            rd_kafka_assign(rk, parts);
    } else {
        atomic_fetch_add(&m->revokes, 1);
        if (rd_kafka_assignment_lost(rk))
            atomic_fetch_add(&m->lost, 1);
        atomic_fetch_sub(&m->partitions, parts->cnt);
        if (m->commit_on_revoke && !rd_kafka_assignment_lost(rk)) {
            rd_kafka_topic_partition_list_t *c = rd_kafka_topic_partition_list_copy(parts);
            for (int i = 0; i < c->cnt; i++)
                c->elems[i].offset = 0;
            rd_kafka_commit(rk, c, 0 /* sync */);
            rd_kafka_topic_partition_list_destroy(c);
        }
        if (m->pause_assigned && !rd_kafka_consumer_closed(rk))
            rd_kafka_resume_partitions(rk, parts); /* as the worker: not while closing */
        if (cooperative)
            e = rd_kafka_incremental_unassign(rk, parts);
        else
            rd_kafka_assign(rk, NULL);
    }
    if (e) {
        fprintf(stderr, "probe: %s: %s\n", rd_kafka_name(rk), rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    }
}

static void on_commit(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *offsets, void *opaque) {
    (void)rk;
    (void)offsets;
    probe_member *m = opaque;
    if (!err)
        atomic_fetch_add(&m->commit_ok, 1);
    else if (err == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION)
        atomic_fetch_add(&m->commit_illegal_generation, 1);
    else if (err != RD_KAFKA_RESP_ERR__NO_OFFSET)
        atomic_fetch_add(&m->commit_other_error, 1);
}

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    probe_member *m = rd_kafka_opaque(rk);
    if (m && strstr(buf, "partition count changed"))
        atomic_store(&m->partition_count_changed, 1);
    if (level <= 4)
        fprintf(stderr, "probe: rdkafka %s %s: %s\n", rd_kafka_name(rk), fac, buf);
}

int probe_member_new(probe_member *m, const char *bootstrap, const char *group, const char *topic,
                     const char *const *extra) {
    memset(m, 0, sizeof *m);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *base[] = {"bootstrap.servers",
                          bootstrap,
                          "group.id",
                          group,
                          "partition.assignment.strategy",
                          "cooperative-sticky",
                          "session.timeout.ms",
                          "6000",
                          "heartbeat.interval.ms",
                          "500",
                          "enable.auto.commit",
                          "false",
                          "auto.offset.reset",
                          "earliest",
                          NULL};
    char errstr[512];
    for (int pass = 0; pass < 2; pass++) {
        const char *const *kv = pass ? extra : base;
        for (size_t i = 0; kv && kv[i]; i += 2)
            if (rd_kafka_conf_set(conf, kv[i], kv[i + 1], errstr, sizeof errstr) !=
                RD_KAFKA_CONF_OK) {
                fprintf(stderr, "probe: %s=%s: %s\n", kv[i], kv[i + 1], errstr);
                rd_kafka_conf_destroy(conf);
                return -1;
            }
    }
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_offset_commit_cb(conf, on_commit);
    rd_kafka_conf_set_log_cb(conf, on_log);
    rd_kafka_conf_set_opaque(conf, m);
    m->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (!m->rk) {
        fprintf(stderr, "probe: consumer: %s\n", errstr);
        return -1;
    }
    rd_kafka_poll_set_consumer(m->rk);
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t rerr = rd_kafka_subscribe(m->rk, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (rerr) {
        fprintf(stderr, "probe: subscribe: %s\n", rd_kafka_err2str(rerr));
        return -1;
    }
    return 0;
}

void probe_member_poll(probe_member *m, int ms) {
    int64_t until = probe_now_us() + (int64_t)ms * 1000;
    do {
        rd_kafka_message_t *msg = rd_kafka_consumer_poll(m->rk, 20);
        if (msg)
            rd_kafka_message_destroy(msg);
    } while (probe_now_us() < until);
}

pid_t probe_spawn_member(const char *argv0, const char *bootstrap, const char *group,
                         const char *topic, int *out_fd) {
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    char *argv[] = {(char *)argv0, "member",      (char *)bootstrap,
                    (char *)group, (char *)topic, (char *)NULL};
    pid_t pid = -1;
    int rc = posix_spawn(&pid, "/proc/self/exe", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc != 0) {
        close(fds[0]);
        return -1;
    }
    *out_fd = fds[0];
    return pid;
}

bool probe_wait_line(int fd, int ms) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    char buf[64];
    return poll(&p, 1, ms) == 1 && read(fd, buf, sizeof buf) > 0;
}

/* A member in its own process: polls until killed (or its stdin... none). */
int probe_member_main(const char *bootstrap, const char *group, const char *topic) {
    static probe_member m;
    if (probe_member_new(&m, bootstrap, group, topic, NULL) != 0)
        return 2;
    bool said = false;
    for (;;) {
        probe_member_poll(&m, 100);
        if (!said && atomic_load(&m.partitions) > 0) {
            printf("assigned\n");
            fflush(stdout);
            said = true;
        }
    }
}

static int usage(void) {
    fprintf(stderr, "usage: kinfer_rdkafka_probe CASE BOOTSTRAP GROUP TOPIC...\n"
                    "  commit-during-rebalance BOOTSTRAP GROUP TOPIC      (librdkafka #4059)\n"
                    "  close-before-assign BOOTSTRAP GROUP TOPIC ROUNDS   (#4312)\n"
                    "  close-during-assign BOOTSTRAP GROUP TOPIC[,TOPIC]  (#4527)\n"
                    "  assignor-loop BOOTSTRAP GROUP TOPIC1 TOPIC2 N      (#4783)\n");
    return 2;
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 5)
        return usage();
    const char *c = argv[1];
    if (!strcmp(c, "member"))
        return probe_member_main(argv[2], argv[3], argv[4]);
    if (!strcmp(c, "commit-during-rebalance"))
        return probe_commit_during_rebalance(argv[0], argv[2], argv[3], argv[4]);
    if (!strcmp(c, "close-before-assign") && argc == 6)
        return probe_close_before_assign(argv[2], argv[3], argv[4], atoi(argv[5]));
    if (!strcmp(c, "close-during-assign"))
        return probe_close_during_assign(argv[2], argv[3], argv[4]);
    if (!strcmp(c, "assignor-loop") && argc == 7)
        return probe_assignor_loop(argv[2], argv[3], argv[4], argv[5], atoi(argv[6]));
    return usage();
}
