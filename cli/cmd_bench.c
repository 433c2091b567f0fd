/* cmd_bench.c — `kinfer bench`: a load generator. Produces requests at a
 * rate (or as fast as an in-flight window allows) for a duration or count,
 * reads the reply topic from its end, matches replies to requests by key
 * (the request key is its id; the worker keys replies by the request key),
 * and reports throughput, produce->reply latency percentiles, lost and
 * duplicate replies and error replies by status. One thread: the numbers
 * are the client's, not the worker's. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_parse.h"
#include "client_input.h"
#include "client_kafka.h"
#include "kinfer/kinfer_clock.h"
#include "kinfer/kinfer_codec.h"
#include "kinfer/kinfer_route.h"

#define MAX_PROPS 32

static const char *const status_names[7] = {
    "OK",         "INVALID_REQUEST", "MODEL_NOT_FOUND", "DEADLINE_EXCEEDED",
    "OVERLOADED", "INTERNAL_ERROR",  "UNDECODABLE"};

static void usage(FILE *out) {
    fprintf(out,
            "usage: kinfer bench -b BROKERS -t TOPIC -m MODEL [options]\n"
            "\n"
            "Load generator: requests at a rate for a duration (or a count), replies matched\n"
            "by key; prints throughput, latency percentiles (produce -> reply), lost and\n"
            "duplicate replies and error replies by status.\n"
            "\n"
            "  -b, --brokers LIST     bootstrap servers\n"
            "  -t, --topic TOPIC      request topic\n"
            "  -m, --model NAME       model name\n"
            "      --shape D,D        input shape (default 1,256); FP32 random values\n"
            "      --bytes N          instead of --shape: [1, N/4] FP32 (N bytes of tensor data)\n"
            "      --rate R           requests per second; 0 = as fast as the window allows\n"
            "                         (default 0)\n"
            "      --duration S       seconds of sending (default 10 unless --count)\n"
            "      --count N          requests to send (instead of --duration)\n"
            "      --concurrency C    most requests without a reply at once (default 1000)\n"
            "      --grace MS         after sending, wait this long for the last replies\n"
            "                         (default 10000); what is still missing is lost\n"
            "      --reply-topic T    (default <topic>.replies)\n"
            "      --deadline-ms MS   relative deadline put on each request (default none)\n"
            "      --framing bare|single-object  (default bare)\n"
            "      --raw              do not decode replies (for a pass-through baseline that\n"
            "                         echoes requests); every reply counts as OK\n"
            "  -X  K=V                librdkafka property for both clients (repeatable)\n"
            "      --json             print the summary as one JSON object on stdout\n"
            "      --warmup N         requests sent and answered before measuring (default 200;\n"
            "                         warms the producers' connections and idempotence set-up)\n"
            "      --quiet            no progress line\n"
            "  -h, --help             this text\n"
            "\n"
            "Exit status: 0 every request answered, 1 lost requests or failed deliveries,\n"
            "2 usage error (a bad -X included), 3 a Kafka error (a refused password, an\n"
            "untrusted certificate or a wrong security.protocol ends it at once, naming\n"
            "the properties to check). -X sasl.password='${env:VAR}' or '${file:PATH}'\n"
            "keeps a secret off the command line.\n");
}

typedef struct bench {
    /* arguments */
    const char *brokers, *topic, *model, *reply_topic_arg, *shape_arg, *framing;
    long long bytes, rate, count, concurrency, grace_ms, deadline_ms, warmup;
    double duration_s;
    int raw, as_json, quiet;
    const char *props[MAX_PROPS];
    int nprops;
    /* state */
    char prefix[32];
    size_t prefix_len;
    int64_t *sent_us; /* per seq; 0 = not sent */
    uint8_t *seen;    /* per seq: replies received */
    size_t cap;
    uint64_t sent, unique, dups, foreign, status[7];
    int64_t *lat_us;
    size_t nlat;
    int64_t t0, t_last_reply;
    int64_t sum_compute_batch_us_x1000; /* sum of compute_us / batch_size, x1000 */
} bench;

static int parse_args(bench *b, int argc, char **argv) {
    static const struct option longopts[] = {
        {"brokers", required_argument, 0, 'b'},
        {"topic", required_argument, 0, 't'},
        {"model", required_argument, 0, 'm'},
        {"shape", required_argument, 0, 'S'},
        {"bytes", required_argument, 0, 'Y'},
        {"rate", required_argument, 0, 'r'},
        {"duration", required_argument, 0, 'd'},
        {"count", required_argument, 0, 'n'},
        {"concurrency", required_argument, 0, 'c'},
        {"grace", required_argument, 0, 'g'},
        {"reply-topic", required_argument, 0, 'R'},
        {"deadline-ms", required_argument, 0, 'D'},
        {"framing", required_argument, 0, 'f'},
        {"raw", no_argument, 0, 'W'},
        {"json", no_argument, 0, 'J'},
        {"quiet", no_argument, 0, 'q'},
        {"warmup", required_argument, 0, 'w'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "b:t:m:X:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'b':
            b->brokers = optarg;
            break;
        case 't':
            b->topic = optarg;
            break;
        case 'm':
            b->model = optarg;
            break;
        case 'S':
            b->shape_arg = optarg;
            break;
        case 'Y':
            if (kinfer_cli_opt_int("bench", "bytes", optarg, 4, 1LL << 30, &b->bytes))
                return 2;
            break;
        case 'r':
            if (kinfer_cli_opt_int("bench", "rate", optarg, 0, 10000000, &b->rate))
                return 2;
            break;
        case 'd':
            if (kinfer_cli_opt_seconds("bench", "duration", optarg, 0.001, 31536000,
                                       &b->duration_s))
                return 2;
            break;
        case 'n':
            if (kinfer_cli_opt_int("bench", "count", optarg, 1, 1000000000, &b->count))
                return 2;
            break;
        case 'c':
            if (kinfer_cli_opt_int("bench", "concurrency", optarg, 1, 10000000, &b->concurrency))
                return 2;
            break;
        case 'g':
            if (kinfer_cli_opt_ms("bench", "grace", optarg, 1, 86400000, &b->grace_ms))
                return 2;
            break;
        case 'R':
            b->reply_topic_arg = optarg;
            break;
        case 'D':
            if (kinfer_cli_opt_ms("bench", "deadline-ms", optarg, 1, 86400000, &b->deadline_ms))
                return 2;
            break;
        case 'f':
            b->framing = optarg;
            break;
        case 'W':
            b->raw = 1;
            break;
        case 'J':
            b->as_json = 1;
            break;
        case 'q':
            b->quiet = 1;
            break;
        case 'w':
            if (kinfer_cli_opt_int("bench", "warmup", optarg, 0, 10000000, &b->warmup))
                return 2;
            break;
        case 'X':
            if (b->nprops == MAX_PROPS) {
                fprintf(stderr, "kinfer bench: too many -X (at most %d)\n", MAX_PROPS);
                return 2;
            }
            b->props[b->nprops++] = optarg;
            break;
        case 'h':
            usage(stdout);
            return 1;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc || !b->brokers || !b->topic || !b->model) {
        fprintf(stderr, "kinfer bench: -b BROKERS, -t TOPIC and -m MODEL are required "
                        "(kinfer bench --help)\n");
        return 2;
    }
    /* The numbers were range-checked as they were parsed (cli_parse.c). */
    if (!b->count && b->duration_s == 0)
        b->duration_s = 10;
    if (!b->concurrency)
        b->concurrency = 1000;
    if (b->warmup < 0)
        b->warmup = 200;
    if (!b->grace_ms)
        b->grace_ms = 10000;
    if (b->framing && strcmp(b->framing, "bare") && strcmp(b->framing, "single-object")) {
        fprintf(stderr, "kinfer bench: --framing wants bare or single-object\n");
        return 2;
    }
    return 0;
}

static int grow(bench *b, size_t need) {
    if (need <= b->cap)
        return 0;
    size_t ncap = b->cap ? b->cap : 65536;
    while (ncap < need)
        ncap *= 2;
    int64_t *s = realloc(b->sent_us, ncap * sizeof *s);
    if (!s)
        return -1;
    b->sent_us = s;
    uint8_t *seen = realloc(b->seen, ncap);
    if (!seen)
        return -1;
    b->seen = seen;
    int64_t *lat = realloc(b->lat_us, ncap * sizeof *lat);
    if (!lat)
        return -1;
    b->lat_us = lat;
    memset(b->sent_us + b->cap, 0, (ncap - b->cap) * sizeof *s);
    memset(b->seen + b->cap, 0, ncap - b->cap);
    b->cap = ncap;
    return 0;
}

static void on_reply(bench *b, kinfer_codec_decoder *dec, rd_kafka_message_t *m, int64_t now) {
    if (m->err) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            fprintf(stderr, "kinfer bench: consumer: %s\n", rd_kafka_message_errstr(m));
        return;
    }
    const char *key = m->key;
    if (!key || m->key_len <= b->prefix_len || memcmp(key, b->prefix, b->prefix_len)) {
        b->foreign++;
        return;
    }
    uint64_t seq = 0;
    for (size_t i = b->prefix_len; i < m->key_len; i++) {
        if (key[i] < '0' || key[i] > '9') {
            b->foreign++;
            return;
        }
        seq = seq * 10 + (uint64_t)(key[i] - '0');
    }
    if (seq >= b->sent || !b->sent_us[seq]) {
        b->foreign++;
        return;
    }
    if (b->seen[seq]++) {
        b->dups++;
        return;
    }
    b->unique++;
    b->t_last_reply = now;
    b->lat_us[b->nlat++] = now - b->sent_us[seq];
    int st = 0;
    if (!b->raw) {
        kinfer_codec_response r;
        kinfer_error err;
        if (kinfer_codec_response_decode(dec, m->payload, m->len, &r, &err) != KINFER_OK) {
            st = 6;
        } else {
            st = r.status >= 0 && r.status <= 5 ? r.status : 6;
            if (r.timing.batch_size > 0)
                b->sum_compute_batch_us_x1000 += r.timing.compute_us * 1000 / r.timing.batch_size;
        }
    }
    b->status[st]++;
}

/* Sends n requests keyed "<prefix>w<i>" and waits (up to 30 s) until all
 * are answered. Nothing here is counted. */
static int warmup(bench *b, kinfer_client *c, kinfer_codec_encoder *enc, kinfer_codec_request *req,
                  const kinfer_codec_frame *frame, kinfer_error *err) {
    char id[64];
    for (long long i = 0; i < b->warmup; i++) {
        int idlen = snprintf(id, sizeof id, "%sw%lld", b->prefix, i);
        req->id = (kinfer_str){id, (size_t)idlen};
        const uint8_t *buf;
        size_t len;
        if (kinfer_codec_request_encode(enc, req, frame, &buf, &len, err) != KINFER_OK ||
            kinfer_client_produce(c, b->topic, id, (size_t)idlen, buf, len, NULL, err) != KINFER_OK)
            return -1;
    }
    long long got = 0;
    int64_t deadline = kinfer_mono_us() + 30000000;
    rd_kafka_message_t *msgs[512];
    while (got < b->warmup && kinfer_mono_us() < deadline) {
        rd_kafka_poll(c->producer, 0);
        if (kinfer_client_check_auth(c, err) != KINFER_OK)
            return -1;
        ssize_t n = rd_kafka_consume_batch_queue(c->replies, 10, msgs, 512);
        for (ssize_t i = 0; i < n; i++) {
            if (!msgs[i]->err && msgs[i]->key_len > b->prefix_len &&
                !memcmp(msgs[i]->key, b->prefix, b->prefix_len) &&
                ((const char *)msgs[i]->key)[b->prefix_len] == 'w')
                got++;
            rd_kafka_message_destroy(msgs[i]);
        }
    }
    if (got < b->warmup) {
        kinfer_error_set(err, KINFER_ERR_KAFKA,
                         "warm-up: %lld of %lld requests answered in 30 s; is a worker serving "
                         "%s?",
                         got, b->warmup, b->topic);
        return -1;
    }
    return 0;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(const int64_t *v, size_t n, double p) {
    if (!n)
        return 0;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return (double)v[i] / 1000.0;
}

static void report(bench *b, int64_t t_end_send) {
    qsort(b->lat_us, b->nlat, sizeof *b->lat_us, cmp_i64);
    int64_t span = (b->t_last_reply > b->t0 ? b->t_last_reply : t_end_send) - b->t0;
    double secs = (double)span / 1e6;
    double tput = secs > 0 ? (double)b->unique / secs : 0;
    uint64_t lost = b->sent - b->unique;
    double p50 = pct(b->lat_us, b->nlat, .5), p90 = pct(b->lat_us, b->nlat, .9),
           p99 = pct(b->lat_us, b->nlat, .99), mx = pct(b->lat_us, b->nlat, 1);
    double compute_ms = (double)b->sum_compute_batch_us_x1000 / 1e6;
    if (b->as_json) {
        printf("{\"sent\":%" PRIu64 ",\"replies\":%" PRIu64 ",\"lost\":%" PRIu64
               ",\"duplicates\":%" PRIu64 ",\"foreign\":%" PRIu64
               ",\"seconds\":%.3f,\"throughput_rps\":%.1f,"
               "\"latency_ms\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"max\":%.3f},"
               "\"batch_compute_ms\":%.3f,\"status\":{",
               b->sent, b->unique, lost, b->dups, b->foreign, secs, tput, p50, p90, p99, mx,
               compute_ms);
        for (int i = 0; i < 7; i++)
            printf("%s\"%s\":%" PRIu64, i ? "," : "", status_names[i], b->status[i]);
        printf("}}\n");
        return;
    }
    printf("sent        %" PRIu64 " requests in %.2f s\n", b->sent,
           (double)(t_end_send - b->t0) / 1e6);
    printf("replies     %" PRIu64 " (%.1f/s)   lost %" PRIu64 "   duplicates %" PRIu64 "\n",
           b->unique, tput, lost, b->dups);
    printf("latency     p50 %.2f ms   p90 %.2f ms   p99 %.2f ms   max %.2f ms\n", p50, p90, p99,
           mx);
    printf("status     ");
    for (int i = 0; i < 7; i++)
        if (b->status[i])
            printf(" %s=%" PRIu64, status_names[i], b->status[i]);
    printf("\n");
    if (b->foreign)
        printf("other       %" PRIu64 " messages on the reply topic were not ours\n", b->foreign);
}

int kinfer_cmd_bench(int argc, char **argv) {
    bench b;
    memset(&b, 0, sizeof b);
    b.warmup = -1;
    int status = parse_args(&b, argc, argv);
    if (status)
        return status == 1 ? 0 : status;
    kinfer_error err;
    kinfer_client_tensor input;
    memset(&input, 0, sizeof input);
    int64_t shape[KINFER_MAX_DIMS] = {1, 256};
    int ndim = 2;
    if (b.bytes) {
        shape[1] = b.bytes / 4;
    } else if (b.shape_arg && kinfer_client_parse_shape(b.shape_arg, shape, &ndim, &err)) {
        fprintf(stderr, "kinfer bench: %s\n", err.msg);
        return 2;
    }
    if (kinfer_client_random(shape, ndim, 42, &input, &err) != KINFER_OK) {
        fprintf(stderr, "kinfer bench: %s\n", err.msg);
        return 2;
    }
    char reply_topic[KINFER_WORKER_TOPIC_MAX + 1];
    if (kinfer_worker_pattern_expand(b.reply_topic_arg ? b.reply_topic_arg : "{topic}.replies",
                                     b.topic, reply_topic, sizeof reply_topic, &err) != KINFER_OK) {
        fprintf(stderr, "kinfer bench: %s\n", err.msg);
        kinfer_client_tensor_free(&input);
        return 2;
    }
    kinfer_client c;
    kinfer_codec_encoder *enc = NULL;
    kinfer_codec_decoder *dec = NULL;
    if (kinfer_client_open(&c, b.brokers, reply_topic, b.props, (size_t)b.nprops, 15000, &err) !=
            KINFER_OK ||
        kinfer_codec_encoder_new(&enc, &err) != KINFER_OK ||
        kinfer_codec_decoder_new(NULL, NULL, &dec, &err) != KINFER_OK) {
        fprintf(stderr, "kinfer bench: %s\n", err.msg);
        status = err.code == KINFER_ERR_INVALID_ARG ? 2 : 3; /* a bad -X is a usage error */
        goto out;
    }
    if (kinfer_client_prepare_topic(&c, b.topic, 15000, &err) != KINFER_OK) {
        fprintf(stderr, "kinfer bench: %s\n", err.msg);
        status = 3;
        goto out;
    }
    snprintf(b.prefix, sizeof b.prefix, "b%d-%lld-", (int)getpid(),
             (long long)(kinfer_wall_ms() % 100000000));
    b.prefix_len = strlen(b.prefix);

    kinfer_tensor view = kinfer_client_tensor_view(&input);
    kinfer_codec_request req;
    memset(&req, 0, sizeof req);
    req.model = (kinfer_str){b.model, strlen(b.model)};
    req.inputs = &view;
    req.ninputs = 1;
    req.has_reply_to = true;
    req.reply_to = (kinfer_str){reply_topic, strlen(reply_topic)};
    kinfer_codec_frame frame = {0};
    frame.framing = b.framing && !strcmp(b.framing, "single-object")
                        ? KINFER_CODEC_FRAMING_SINGLE_OBJECT
                        : KINFER_CODEC_FRAMING_BARE;

    if (b.warmup && warmup(&b, &c, enc, &req, &frame, &err)) {
        fprintf(stderr, "kinfer bench: %s\n", err.msg);
        status = 3;
        goto out;
    }
    rd_kafka_message_t *msgs[512];
    b.t0 = kinfer_mono_us();
    int64_t duration_us = (int64_t)(b.duration_s * 1e6), t_end_send = 0, next_progress = b.t0;
    uint64_t last_unique = 0;
    for (;;) {
        int64_t now = kinfer_mono_us(), el = now - b.t0;
        bool sending = !t_end_send && (b.count ? b.sent < (uint64_t)b.count : el < duration_us);
        if (!sending && !t_end_send)
            t_end_send = now;
        if (sending) {
            uint64_t allowed =
                b.rate ? (uint64_t)((double)b.rate * (double)el / 1e6) + 1 : UINT64_MAX;
            while (b.sent < allowed && b.sent - b.unique < (uint64_t)b.concurrency &&
                   (!b.count || b.sent < (uint64_t)b.count)) {
                if (grow(&b, b.sent + 1)) {
                    fprintf(stderr, "kinfer bench: out of memory\n");
                    status = 3;
                    goto out;
                }
                char id[64];
                int idlen = snprintf(id, sizeof id, "%s%" PRIu64, b.prefix, b.sent);
                req.id = (kinfer_str){id, (size_t)idlen};
                if (b.deadline_ms) {
                    req.has_deadline = true;
                    req.deadline_ms = kinfer_wall_ms() + b.deadline_ms;
                }
                const uint8_t *buf;
                size_t len;
                if (kinfer_codec_request_encode(enc, &req, &frame, &buf, &len, &err) != KINFER_OK ||
                    kinfer_client_produce(&c, b.topic, id, (size_t)idlen, buf, len, NULL, &err) !=
                        KINFER_OK) {
                    fprintf(stderr, "kinfer bench: %s\n", err.msg);
                    status = 3;
                    goto out;
                }
                b.sent_us[b.sent++] = kinfer_mono_us();
            }
        }
        rd_kafka_poll(c.producer, 0);
        if (kinfer_client_check_auth(&c, &err) != KINFER_OK) {
            fprintf(stderr, "\nkinfer bench: %s\n", err.msg);
            status = 3;
            goto out;
        }
        ssize_t n = rd_kafka_consume_batch_queue(c.replies, 1, msgs, 512);
        int64_t t = kinfer_mono_us();
        for (ssize_t i = 0; i < n; i++) {
            on_reply(&b, dec, msgs[i], t);
            rd_kafka_message_destroy(msgs[i]);
        }
        if (!b.quiet && t >= next_progress) {
            fprintf(stderr,
                    "\r  %5.1fs  sent %" PRIu64 "  replies %" PRIu64 "  (%" PRIu64
                    "/s)  outstanding %" PRIu64 "   ",
                    (double)(t - b.t0) / 1e6, b.sent, b.unique, b.unique - last_unique,
                    b.sent - b.unique);
            last_unique = b.unique;
            next_progress = t + 1000000;
        }
        if (t_end_send && (b.unique == b.sent || t >= t_end_send + b.grace_ms * 1000))
            break;
    }
    if (!b.quiet)
        fprintf(stderr, "\n");
    rd_kafka_flush(c.producer, 5000);
    if (c.failed)
        fprintf(stderr, "kinfer bench: %" PRIu64 " requests were not delivered: %s\n", c.failed,
                c.last_error);
    report(&b, t_end_send);
    status = (b.sent != b.unique || c.failed) ? 1 : 0;
out:
    if (c.producer || c.consumer)
        kinfer_client_close(&c);
    if (enc)
        kinfer_codec_encoder_destroy(enc);
    if (dec)
        kinfer_codec_decoder_destroy(dec);
    kinfer_client_tensor_free(&input);
    free(b.sent_us);
    free(b.seen);
    free(b.lat_us);
    return status;
}
