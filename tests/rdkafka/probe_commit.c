/* probe_commit.c — librdkafka #4059 (fixed in 2.8.0 by #4908): an offset
 * commit sent while a cooperative member rejoins is answered with
 * ILLEGAL_GENERATION, and librdkafka then marks the member's whole
 * assignment lost. Made long here the way a crash does it: member B is
 * killed (SIGKILL), member C joins, and the broker waits for B's session
 * (6 s) to end the join while A keeps committing every 100 ms. */
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "probe.h"

/* A's assignment, offset 0 each (any offset will do: nothing is consumed). */
static void commit_assignment(probe_member *a) {
    rd_kafka_topic_partition_list_t *asg = NULL;
    if (rd_kafka_assignment(a->rk, &asg) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
    for (int i = 0; i < asg->cnt; i++)
        asg->elems[i].offset = 0;
    if (asg->cnt)
        rd_kafka_commit(a->rk, asg, 1 /* async */);
    rd_kafka_topic_partition_list_destroy(asg);
}

static void stop_child(pid_t pid, int fd) {
    if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    if (fd >= 0)
        close(fd);
}

int probe_commit_during_rebalance(const char *argv0, const char *bootstrap, const char *group,
                                  const char *topic) {
    static probe_member a;
    int bfd = -1, cfd = -1;
    pid_t b = -1, c = -1;
    const char *phase = "a-join";
    if (probe_member_new(&a, bootstrap, group, topic, NULL) != 0)
        return 2;
    int64_t deadline = probe_now_us() + 30 * 1000000LL;
    while (atomic_load(&a.partitions) == 0 && probe_now_us() < deadline)
        probe_member_poll(&a, 100);
    if (atomic_load(&a.partitions) == 0)
        goto fail;
    phase = "b-join";
    b = probe_spawn_member(argv0, bootstrap, group, topic, &bfd);
    bool b_in = false;
    while (b > 0 && !b_in && probe_now_us() < deadline) {
        probe_member_poll(&a, 100);
        b_in = probe_wait_line(bfd, 0);
    }
    if (!b_in)
        goto fail;
    probe_member_poll(&a, 1500); /* let the cooperative second round finish */
    int revokes_before = atomic_load(&a.revokes), lost_before = atomic_load(&a.lost);
    /* B dies holding partitions; C's join then waits for B's session. */
    kill(b, SIGKILL);
    waitpid(b, NULL, 0);
    b = -1;
    phase = "c-join";
    c = probe_spawn_member(argv0, bootstrap, group, topic, &cfd);
    int64_t t0 = probe_now_us();
    bool c_in = false;
    int64_t settle_until = t0 + 20 * 1000000LL;
    while (c > 0 && probe_now_us() < settle_until) {
        probe_member_poll(&a, 100);
        commit_assignment(&a);
        if (!c_in && probe_wait_line(cfd, 0)) {
            c_in = true;
            settle_until = probe_now_us() + 3 * 1000000LL; /* then 3 s more */
        }
    }
    printf("{\"case\":\"commit-during-rebalance\",\"rdkafka\":\"%s\",\"c_assigned\":%s,"
           "\"c_assigned_ms\":%lld,\"revokes\":%d,\"lost\":%d,\"commit_ok\":%d,"
           "\"commit_illegal_generation\":%d,\"commit_other_error\":%d}\n",
           rd_kafka_version_str(), c_in ? "true" : "false",
           (long long)((probe_now_us() - t0) / 1000), atomic_load(&a.revokes) - revokes_before,
           atomic_load(&a.lost) - lost_before, atomic_load(&a.commit_ok),
           atomic_load(&a.commit_illegal_generation), atomic_load(&a.commit_other_error));
    stop_child(c, cfd);
    rd_kafka_consumer_close(a.rk);
    rd_kafka_destroy(a.rk);
    return c_in ? 0 : 1;
fail:
    fprintf(stderr, "probe: commit-during-rebalance: timed out in phase %s\n", phase);
    stop_child(b, bfd);
    stop_child(c, cfd);
    rd_kafka_destroy(a.rk);
    return 1;
}
