/* probe_loop.c — librdkafka #4783 (fixed in 2.6.1 by #4800): the
 * cooperative-sticky assignor could loop forever (the group leader's main
 * thread at 100 % CPU, the group never settles) for some orders of members
 * and partitions, reported with members of one group subscribed to two
 * different topics under the same client.id. Members join one by one, first
 * on topic 1, then on topic 2; the answer is whether the group settles and
 * how busy the process is once it should be idle. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include "probe.h"

#define LOOP_MAX 32

typedef struct loop_member {
    probe_member m;
    pthread_t th;
    atomic_int *stop;
    int ok;
} loop_member;

static void *loop_poll(void *p) {
    loop_member *lm = p;
    while (!atomic_load(lm->stop))
        probe_member_poll(&lm->m, 50);
    return NULL;
}

static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static int partition_count(rd_kafka_t *rk, const char *topic) {
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    int n = -1;
    if (rkt && rd_kafka_metadata(rk, 0, rkt, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (md->topic_cnt == 1 && !md->topics[0].err)
            n = md->topics[0].partition_cnt;
        rd_kafka_metadata_destroy(md);
    }
    if (rkt)
        rd_kafka_topic_destroy(rkt);
    return n;
}

int probe_assignor_loop(const char *bootstrap, const char *group, const char *topic1,
                        const char *topic2, int per_topic) {
    static loop_member lms[LOOP_MAX];
    static atomic_int stop;
    int n = per_topic * 2 > LOOP_MAX ? LOOP_MAX : per_topic * 2;
    const char *extra[] = {"client.id", "kinfer-probe", NULL};
    int started = 0;
    for (int i = 0; i < n; i++) {
        lms[i].stop = &stop;
        lms[i].ok =
            probe_member_new(&lms[i].m, bootstrap, group, i < n / 2 ? topic1 : topic2, extra) == 0;
        if (!lms[i].ok)
            break;
        pthread_create(&lms[i].th, NULL, loop_poll, &lms[i]);
        started++;
        usleep(300000);
    }
    int want = partition_count(lms[0].m.rk, topic1) + partition_count(lms[0].m.rk, topic2);
    int64_t t0 = probe_now_us(), deadline = t0 + 40 * 1000000LL;
    bool settled = false;
    int held = 0;
    while (!settled && probe_now_us() < deadline) {
        usleep(200000);
        held = 0;
        int64_t last = 0;
        for (int i = 0; i < started; i++) {
            held += atomic_load(&lms[i].m.partitions);
            int64_t l = atomic_load(&lms[i].m.last_rebalance_us);
            last = l > last ? l : last;
        }
        settled = held == want && probe_now_us() - last > 3 * 1000000LL;
    }
    int64_t settle_ms = (probe_now_us() - t0) / 1000;
    /* Idle now (no messages): a looping assignor keeps a core busy. */
    double c0 = cpu_s();
    int64_t w0 = probe_now_us();
    sleep(2);
    double busy = (cpu_s() - c0) / ((probe_now_us() - w0) / 1e6);
    int rebalances = 0;
    for (int i = 0; i < started; i++)
        rebalances += atomic_load(&lms[i].m.assigns) + atomic_load(&lms[i].m.revokes);
    printf("{\"case\":\"assignor-loop\",\"rdkafka\":\"%s\",\"members\":%d,\"partitions\":%d,"
           "\"held\":%d,\"settled\":%s,\"settle_ms\":%lld,\"rebalance_callbacks\":%d,"
           "\"idle_cpu_cores\":%.2f}\n",
           rd_kafka_version_str(), started, want, held, settled ? "true" : "false",
           (long long)settle_ms, rebalances, busy);
    fflush(stdout);
    if (!settled || started < n)
        _exit(started < n ? 1 : 0); /* a looping client cannot be closed */
    atomic_store(&stop, 1);
    for (int i = 0; i < started; i++) {
        pthread_join(lms[i].th, NULL);
        rd_kafka_consumer_close(lms[i].m.rk);
        rd_kafka_destroy(lms[i].m.rk);
    }
    return 0;
}
