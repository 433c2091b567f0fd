/* probe_close.c — two rd_kafka_consumer_close bugs of cooperative-sticky
 * consumers:
 *  - #4312 (fixed in 2.3.0 by #4381): close (destroy) before the first
 *    assignment, between the JoinGroup and the SyncGroup response, aborts
 *    the process in rd_kafka_sticky_assignor_state_destroy. The case runs
 *    in this process: an abort is the answer (the caller sees SIGABRT).
 *  - #4527 (fixed in 2.4.0 by #4528): an assignment that arrives while
 *    close runs leaves the consumer stuck in WAIT_ASSIGN_CALL; close never
 *    returns. A watchdog reports the hang and exits without cleaning up.
 *    (The worker still meets a hang of this kind on 2.14.2, under load;
 *    this probe's timing has not hit it on any version: docs/RELIABILITY.md.) */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "probe.h"

#define EARLY_MEMBERS 5

typedef struct early_arg {
    const char *bootstrap, *topic;
    char group[256];
    int poll_ms;
} early_arg;

static void *early_member(void *p) {
    early_arg *ea = p;
    probe_member *m = calloc(1, sizeof *m);
    if (!m || probe_member_new(m, ea->bootstrap, ea->group, ea->topic, NULL) != 0)
        return m;
    probe_member_poll(m, ea->poll_ms);
    rd_kafka_consumer_close(m->rk);
    rd_kafka_destroy(m->rk);
    return m;
}

int probe_close_before_assign(const char *bootstrap, const char *group, const char *topic,
                              int rounds) {
    int closed = 0;
    for (int r = 0; r < rounds; r++) {
        pthread_t th[EARLY_MEMBERS];
        early_arg ea[EARLY_MEMBERS];
        for (int i = 0; i < EARLY_MEMBERS; i++) {
            ea[i].bootstrap = bootstrap;
            ea[i].topic = topic;
            snprintf(ea[i].group, sizeof ea[i].group, "%s-r%d", group, r);
            /* Spread the closes over the first join (the broker's initial
             * rebalance delay is 3 s unless configured). */
            ea[i].poll_ms = 300 + 600 * ((i + r) % EARLY_MEMBERS);
            pthread_create(&th[i], NULL, early_member, &ea[i]);
        }
        for (int i = 0; i < EARLY_MEMBERS; i++) {
            void *m = NULL;
            pthread_join(th[i], &m);
            free(m);
            closed++;
        }
    }
    printf("{\"case\":\"close-before-assign\",\"rdkafka\":\"%s\",\"rounds\":%d,\"closed\":%d}\n",
           rd_kafka_version_str(), rounds, closed);
    return 0;
}

typedef struct closer {
    probe_member *m;
    atomic_int done;
} closer;

static void *close_thread(void *p) {
    closer *c = p;
    rd_kafka_consumer_close(c->m->rk);
    atomic_store(&c->done, 1);
    return NULL;
}

/* One attempt on a 2-partition topic: returns the close time in ms, -1 for
 * a hang (the consumer is then leaked: it cannot be destroyed), -2 when the
 * set-up did not get as far as the close. */
static long long one_attempt(const char *bootstrap, const char *group, const char *topic,
                             int quiet_ms) {
    static probe_member ms[64];
    static int used;
    if (used == 64)
        return -2;
    probe_member *m = &ms[used++];
    const char *extra[] = {"topic.metadata.refresh.interval.ms", "500", NULL};
    if (probe_member_new(m, bootstrap, group, topic, extra) != 0)
        return -2;
    /* As the worker under backpressure: partitions paused, the revoked ones
     * committed synchronously, no resume while closing. */
    m->pause_assigned = true;
    m->commit_on_revoke = true;
    int64_t deadline = probe_now_us() + 30 * 1000000LL;
    while (atomic_load(&m->partitions) == 0 && probe_now_us() < deadline)
        probe_member_poll(m, 50);
    /* The topic grows to 4 partitions through the admin API. */
    rd_kafka_NewPartitions_t *np = rd_kafka_NewPartitions_new(topic, 4, NULL, 0);
    rd_kafka_queue_t *q = rd_kafka_queue_new(m->rk);
    rd_kafka_CreatePartitions(m->rk, &np, 1, NULL, q);
    rd_kafka_event_t *ev = NULL;
    while (!ev && probe_now_us() < deadline) {
        ev = rd_kafka_queue_poll(q, 50);
        probe_member_poll(m, 1);
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewPartitions_destroy(np);
    /* Once the consumer sees the new partition count it rejoins; stop
     * polling then (as a worker draining on SIGTERM does) for quiet_ms, so
     * that the new assignment waits in the queue that close serves. */
    while (!atomic_load(&m->partition_count_changed) && probe_now_us() < deadline)
        probe_member_poll(m, 1);
    if (!atomic_load(&m->partition_count_changed))
        return -2;
    usleep((useconds_t)quiet_ms * 1000);
    fprintf(stderr, "probe: closing %s after %d ms quiet: assigns=%d partitions=%d\n", topic,
            quiet_ms, atomic_load(&m->assigns), atomic_load(&m->partitions));
    static closer c;
    c.m = m;
    atomic_store(&c.done, 0);
    pthread_t th;
    int64_t t0 = probe_now_us();
    pthread_create(&th, NULL, close_thread, &c);
    while (!atomic_load(&c.done) && probe_now_us() - t0 < 15 * 1000000LL)
        usleep(10000);
    if (!atomic_load(&c.done)) {
        pthread_detach(th);
        return -1;
    }
    pthread_join(th, NULL);
    fprintf(stderr, "probe: closed: assigns=%d revokes=%d\n", atomic_load(&m->assigns),
            atomic_load(&m->revokes));
    rd_kafka_destroy(m->rk);
    return (probe_now_us() - t0) / 1000;
}

int probe_close_during_assign(const char *bootstrap, const char *group, char *topics) {
    int attempts = 0, hangs = 0, setup_failed = 0;
    char close_ms[512] = "";
    size_t len = 0;
    char *save = NULL;
    for (char *t = strtok_r(topics, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char g[256];
        snprintf(g, sizeof g, "%s-%d", group, attempts);
        /* The assignment follows the new partition count by 1-400 ms. */
        static const int quiet_ms[] = {0, 2, 5, 10, 20, 50, 100, 200, 500, 1000};
        long long ms = one_attempt(bootstrap, g, t, quiet_ms[attempts % 10]);
        attempts++;
        if (ms == -2) {
            setup_failed++;
            continue;
        }
        if (ms == -1)
            hangs++;
        int n = snprintf(close_ms + len, sizeof close_ms - len, "%s%lld", len ? "," : "", ms);
        if (n > 0 && (size_t)n < sizeof close_ms - len)
            len += (size_t)n;
    }
    printf("{\"case\":\"close-during-assign\",\"rdkafka\":\"%s\",\"attempts\":%d,\"hangs\":%d,"
           "\"setup_failed\":%d,\"close_ms\":[%s]}\n",
           rd_kafka_version_str(), attempts, hangs, setup_failed, close_ms);
    fflush(stdout);
    if (hangs)
        _exit(0); /* a hung consumer cannot be destroyed */
    return setup_failed ? 1 : 0;
}
