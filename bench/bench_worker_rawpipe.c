/* bench_worker_rawpipe.c — the baseline for the pipeline benchmark: the
 * least a Kafka consume -> produce service can do. It consumes the request
 * topic in a group and produces each message's value and key unchanged,
 * with a kinfer-correlation-id header, to the reply topic (idempotent,
 * acks=all, linger 1 ms — the worker's producer settings), committing
 * consumed positions every second. No decode, no model, no per-message
 * tracking: kinfer's ratio against it is the cost of everything kinfer adds.
 *
 *   bench_worker_rawpipe BROKERS IN_TOPIC OUT_TOPIC GROUP
 *
 * Runs until SIGTERM/SIGINT, then prints one JSON line: messages and the
 * process CPU time per message (getrusage). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig) {
    (void)sig;
    stop = 1;
}

static void set(rd_kafka_conf_t *conf, const char *k, const char *v) {
    char errstr[256];
    if (rd_kafka_conf_set(conf, k, v, errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "rawpipe: %s=%s: %s\n", k, v, errstr);
        exit(2);
    }
}

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void on_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    if (m->err)
        ++*(unsigned long *)opaque;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: bench_worker_rawpipe BROKERS IN_TOPIC OUT_TOPIC GROUP\n");
        return 2;
    }
    const char *brokers = argv[1], *in = argv[2], *out = argv[3], *group = argv[4];
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    char errstr[256];
    unsigned long failed = 0;

    rd_kafka_conf_t *pc = rd_kafka_conf_new();
    set(pc, "bootstrap.servers", brokers);
    set(pc, "enable.idempotence", "true");
    set(pc, "acks", "all");
    set(pc, "linger.ms", "1");
    rd_kafka_conf_set_dr_msg_cb(pc, on_dr);
    rd_kafka_conf_set_opaque(pc, &failed);
    rd_kafka_t *prod = rd_kafka_new(RD_KAFKA_PRODUCER, pc, errstr, sizeof errstr);
    if (!prod) {
        fprintf(stderr, "rawpipe: %s\n", errstr);
        return 1;
    }
    rd_kafka_conf_t *cc = rd_kafka_conf_new();
    set(cc, "bootstrap.servers", brokers);
    set(cc, "group.id", group);
    set(cc, "auto.offset.reset", "earliest");
    set(cc, "enable.auto.commit", "true");
    set(cc, "auto.commit.interval.ms", "1000");
    rd_kafka_t *cons = rd_kafka_new(RD_KAFKA_CONSUMER, cc, errstr, sizeof errstr);
    if (!cons) {
        fprintf(stderr, "rawpipe: %s\n", errstr);
        return 1;
    }
    rd_kafka_poll_set_consumer(cons);
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, in, RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(cons, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    fprintf(stderr, "rawpipe: %s -> %s (group %s)\n", in, out, group);

    unsigned long n = 0;
    double cpu0 = -1;
    while (!stop) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(cons, 100);
        rd_kafka_poll(prod, 0);
        if (!m)
            continue;
        if (m->err) {
            rd_kafka_message_destroy(m);
            continue;
        }
        if (cpu0 < 0)
            cpu0 = cpu_seconds(); /* start counting at the first message */
        rd_kafka_headers_t *h = rd_kafka_headers_new(1);
        rd_kafka_header_add(h, "kinfer-correlation-id", -1, m->key, (ssize_t)m->key_len);
        rd_kafka_resp_err_t err;
        while ((err = rd_kafka_producev(
                    prod, RD_KAFKA_V_TOPIC(out), RD_KAFKA_V_KEY(m->key, m->key_len),
                    RD_KAFKA_V_VALUE(m->payload, m->len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                    RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(prod, 1);
        if (err) {
            rd_kafka_headers_destroy(h);
            failed++;
        }
        rd_kafka_message_destroy(m);
        n++;
    }
    rd_kafka_flush(prod, 10000);
    double cpu = cpu0 < 0 ? 0 : cpu_seconds() - cpu0;
    rd_kafka_consumer_close(cons);
    rd_kafka_destroy(cons);
    rd_kafka_destroy(prod);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"messages\":%lu,\"failed\":%lu,\"cpu_s\":%.3f,\"cpu_us_per_msg\":%.2f,"
           "\"max_rss_kb\":%ld}\n",
           n, failed, cpu, n ? cpu * 1e6 / (double)n : 0.0, ru.ru_maxrss);
    return 0;
}
