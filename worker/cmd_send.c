/* cmd_send.c — `kinfer send`: build one request from the command line,
 * produce it, wait for its reply and print it. Exit status: 0 = reply OK,
 * 1 = reply with an error status, 2 = usage, 3 = no reply (timeout) or a
 * Kafka/encoding failure. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "cli_parse.h"
#include "client_input.h"
#include "client_kafka.h"
#include "kinfer/kinfer_clock.h"
#include "kinfer_codec.h"
#include "worker_route.h"

#define MAX_PARAMS 32
#define MAX_HEADERS 32
#define MAX_PROPS 32

static void usage(FILE *out) {
    fprintf(out,
            "usage: kinfer send -b BROKERS -t TOPIC -m MODEL INPUT [options]\n"
            "\n"
            "Send one inference request and print its reply.\n"
            "\n"
            "INPUT, one of:\n"
            "  --input V,V,...        FP32 values (shape [n] unless --shape)\n"
            "  --input-file FILE      .json (nested array, or {\"shape\":..,\"data\":..}) or .npy\n"
            "  --random               random FP32 values of --shape\n"
            "  --shape D,D,...        tensor shape, e.g. 1,8\n"
            "  --input-name NAME      tensor name (default \"input\")\n"
            "\n"
            "options:\n"
            "  -b, --brokers LIST     bootstrap servers (host:port,...)\n"
            "  -t, --topic TOPIC      request topic\n"
            "  -m, --model NAME       model name\n"
            "      --id ID            request id (default send-<pid>-<time>)\n"
            "      --key KEY          message key (default: none; the reply is keyed by id)\n"
            "      --reply-topic T    where the reply should go (default <topic>.replies)\n"
            "      --reply-via field|header  name it in the reply_to field (default) or the\n"
            "                         kinfer-reply-to header\n"
            "      --deadline-ms MS   deadline, MS milliseconds from now (or 5s)\n"
            "      --priority N       priority (default 0)\n"
            "      --param K=V        request parameter (repeatable)\n"
            "      --header K=V       Kafka header on the request (repeatable)\n"
            "      --framing bare|single-object  request framing (default bare)\n"
            "  -X  K=V                librdkafka property for both clients (repeatable)\n"
            "      --timeout MS       how long to wait for the reply, ms or with a unit (10s,\n"
            "                         500ms; default 10000)\n"
            "      --json             print the reply as JSON\n"
            "  -h, --help             this text\n"
            "\n"
            "Exit status: 0 reply OK, 1 reply with an error status, 2 usage error,\n"
            "3 no reply in time or a Kafka error.\n");
}

static int split_kv(const char *s, char **k, char **v) {
    const char *eq = strchr(s, '=');
    if (!eq || eq == s)
        return -1;
    *k = strndup(s, (size_t)(eq - s));
    *v = strdup(eq + 1);
    return (*k && *v) ? 0 : -1;
}

/* Prints a tensor's values row by row (FP32/FP64/INT32/INT64), at most 64. */
static void print_values(const kinfer_tensor *t) {
    uint64_t n = 0;
    if (kinfer_shape_numel(t->shape, t->ndim, UINT64_MAX, &n, NULL) != KINFER_OK)
        return;
    size_t es = kinfer_dtype_size(t->dtype);
    if (!es || t->nbytes != n * es)
        return;
    int64_t row = t->ndim >= 2 ? t->shape[t->ndim - 1] : (int64_t)n;
    if (row <= 0)
        row = 1;
    uint64_t shown = n < 64 ? n : 64;
    for (uint64_t i = 0; i < shown; i++) {
        const char *p = (const char *)t->data + i * es;
        if (i % (uint64_t)row == 0)
            printf("  [");
        switch (t->dtype) {
        case KINFER_DTYPE_FP32: {
            float f;
            memcpy(&f, p, 4);
            printf("%.6g", f);
            break;
        }
        case KINFER_DTYPE_FP64: {
            double d;
            memcpy(&d, p, 8);
            printf("%.9g", d);
            break;
        }
        case KINFER_DTYPE_INT64: {
            int64_t v;
            memcpy(&v, p, 8);
            printf("%" PRId64, v);
            break;
        }
        case KINFER_DTYPE_INT32: {
            int32_t v;
            memcpy(&v, p, 4);
            printf("%" PRId32, v);
            break;
        }
        default:
            printf("?");
        }
        printf((i + 1) % (uint64_t)row == 0 || i + 1 == shown ? "]\n" : ", ");
    }
    if (shown < n)
        printf("  ... (%" PRIu64 " values in all)\n", n);
}

/* Decoded views of empty strings may have a NULL pointer. */
static json_t *jstr(kinfer_str s) {
    return json_stringn(s.ptr ? s.ptr : "", s.len);
}

static json_t *tensor_json(const kinfer_tensor *t) {
    json_t *shape = json_array(), *vals = json_array();
    for (int i = 0; i < t->ndim; i++)
        json_array_append_new(shape, json_integer(t->shape[i]));
    size_t es = kinfer_dtype_size(t->dtype);
    for (size_t i = 0; es && i < t->nbytes / es; i++) {
        const char *p = (const char *)t->data + i * es;
        if (t->dtype == KINFER_DTYPE_FP32) {
            float f;
            memcpy(&f, p, 4);
            json_array_append_new(vals, json_real(f));
        } else if (t->dtype == KINFER_DTYPE_FP64) {
            double d;
            memcpy(&d, p, 8);
            json_array_append_new(vals, json_real(d));
        } else if (t->dtype == KINFER_DTYPE_INT64) {
            int64_t v;
            memcpy(&v, p, 8);
            json_array_append_new(vals, json_integer(v));
        } else if (t->dtype == KINFER_DTYPE_INT32) {
            int32_t v;
            memcpy(&v, p, 4);
            json_array_append_new(vals, json_integer(v));
        }
    }
    json_t *o = json_object();
    json_object_set_new(o, "name", jstr(t->name));
    json_object_set_new(o, "dtype", json_string(kinfer_dtype_name(t->dtype)));
    json_object_set_new(o, "shape", shape);
    json_object_set_new(o, "data", vals);
    return o;
}

static void print_reply(const kinfer_codec_response *r, double rtt_ms, int as_json) {
    static const char *const status[] = {
        "OK",         "INVALID_REQUEST", "MODEL_NOT_FOUND", "DEADLINE_EXCEEDED",
        "OVERLOADED", "INTERNAL_ERROR"};
    const char *st = r->status >= 0 && r->status <= 5 ? status[r->status] : "?";
    if (as_json) {
        json_t *outs = json_array();
        for (size_t i = 0; i < r->noutputs; i++)
            json_array_append_new(outs, tensor_json(&r->outputs[i]));
        json_t *timing = json_object(), *source = json_object(), *o = json_object();
        json_object_set_new(timing, "queue_us", json_integer(r->timing.queue_us));
        json_object_set_new(timing, "compute_us", json_integer(r->timing.compute_us));
        json_object_set_new(timing, "batch_size", json_integer(r->timing.batch_size));
        json_object_set_new(timing, "worker", jstr(r->timing.worker));
        json_object_set_new(timing, "device", jstr(r->timing.device));
        json_object_set_new(source, "topic", jstr(r->source.topic));
        json_object_set_new(source, "partition", json_integer(r->source.partition));
        json_object_set_new(source, "offset", json_integer(r->source.offset));
        json_object_set_new(o, "id", jstr(r->id));
        json_object_set_new(o, "model", jstr(r->model));
        json_object_set_new(o, "status", json_string(st));
        json_object_set_new(o, "outputs", outs);
        json_object_set_new(o, "timing", timing);
        json_object_set_new(o, "source", source);
        json_object_set_new(o, "round_trip_ms", json_real(rtt_ms));
        if (r->has_error)
            json_object_set_new(o, "error", jstr(r->error));
        char *s = json_dumps(o, JSON_COMPACT);
        printf("%s\n", s ? s : "{}");
        free(s);
        json_decref(o);
        return;
    }
    printf("reply   id=%.*s status=%s model=%.*s", (int)r->id.len, r->id.ptr, st, (int)r->model.len,
           r->model.ptr);
    if (r->has_model_version)
        printf(" version=%.*s", (int)r->model_version.len, r->model_version.ptr);
    printf("\n");
    if (r->has_error)
        printf("error   %.*s\n", (int)r->error.len, r->error.ptr);
    for (size_t i = 0; i < r->noutputs; i++) {
        char shape[128];
        kinfer_shape_format(r->outputs[i].shape, r->outputs[i].ndim, shape, sizeof shape);
        printf("output  %.*s %s %s\n", (int)r->outputs[i].name.len, r->outputs[i].name.ptr,
               kinfer_dtype_name(r->outputs[i].dtype), shape);
        print_values(&r->outputs[i]);
    }
    printf("timing  queue=%" PRId64 "us compute=%" PRId64 "us batch=%d worker=%.*s device=%.*s "
           "round_trip=%.2fms\n",
           r->timing.queue_us, r->timing.compute_us, (int)r->timing.batch_size,
           (int)r->timing.worker.len, r->timing.worker.ptr, (int)r->timing.device.len,
           r->timing.device.ptr, rtt_ms);
    printf("source  %.*s[%d]@%" PRId64 "\n", (int)r->source.topic.len, r->source.topic.ptr,
           (int)r->source.partition, r->source.offset);
}

typedef struct send_args {
    const char *brokers, *topic, *model, *id, *key, *reply_topic, *input, *input_file, *shape;
    const char *input_name, *framing;
    int random, reply_header, as_json;
    long long deadline_ms, timeout_ms;
    int priority;
    char *pk[MAX_PARAMS], *pv[MAX_PARAMS];
    int nparams;
    char *hk[MAX_HEADERS], *hv[MAX_HEADERS];
    int nheaders;
    const char *props[MAX_PROPS];
    int nprops;
} send_args;

static int parse_args(int argc, char **argv, send_args *a) {
    static const struct option longopts[] = {
        {"brokers", required_argument, 0, 'b'},
        {"topic", required_argument, 0, 't'},
        {"model", required_argument, 0, 'm'},
        {"id", required_argument, 0, 'i'},
        {"key", required_argument, 0, 'k'},
        {"reply-topic", required_argument, 0, 'r'},
        {"reply-via", required_argument, 0, 'V'},
        {"input", required_argument, 0, 'I'},
        {"input-file", required_argument, 0, 'F'},
        {"random", no_argument, 0, 'R'},
        {"shape", required_argument, 0, 'S'},
        {"input-name", required_argument, 0, 'N'},
        {"deadline-ms", required_argument, 0, 'D'},
        {"priority", required_argument, 0, 'p'},
        {"param", required_argument, 0, 'P'},
        {"header", required_argument, 0, 'H'},
        {"framing", required_argument, 0, 'f'},
        {"timeout", required_argument, 0, 'T'},
        {"json", no_argument, 0, 'J'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "b:t:m:X:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'b':
            a->brokers = optarg;
            break;
        case 't':
            a->topic = optarg;
            break;
        case 'm':
            a->model = optarg;
            break;
        case 'i':
            a->id = optarg;
            break;
        case 'k':
            a->key = optarg;
            break;
        case 'r':
            a->reply_topic = optarg;
            break;
        case 'V':
            if (strcmp(optarg, "field") && strcmp(optarg, "header")) {
                fprintf(stderr, "kinfer send: --reply-via wants field or header\n");
                return 2;
            }
            a->reply_header = !strcmp(optarg, "header");
            break;
        case 'I':
            a->input = optarg;
            break;
        case 'F':
            a->input_file = optarg;
            break;
        case 'R':
            a->random = 1;
            break;
        case 'S':
            a->shape = optarg;
            break;
        case 'N':
            a->input_name = optarg;
            break;
        case 'D':
            /* Negative: a deadline already past, for testing expiry. */
            if (kinfer_cli_opt_ms("send", "deadline-ms", optarg, -31536000000LL, 31536000000LL,
                                  &a->deadline_ms))
                return 2;
            break;
        case 'p': {
            long long v;
            if (kinfer_cli_opt_int("send", "priority", optarg, INT32_MIN, INT32_MAX, &v))
                return 2;
            a->priority = (int)v;
            break;
        }
        case 'T':
            if (kinfer_cli_opt_ms("send", "timeout", optarg, 1, 86400000, &a->timeout_ms))
                return 2;
            break;
        case 'f':
            a->framing = optarg;
            break;
        case 'J':
            a->as_json = 1;
            break;
        case 'P':
            if (a->nparams == MAX_PARAMS ||
                split_kv(optarg, &a->pk[a->nparams], &a->pv[a->nparams])) {
                fprintf(stderr, "kinfer send: --param wants K=V (at most %d)\n", MAX_PARAMS);
                return 2;
            }
            a->nparams++;
            break;
        case 'H':
            if (a->nheaders == MAX_HEADERS ||
                split_kv(optarg, &a->hk[a->nheaders], &a->hv[a->nheaders])) {
                fprintf(stderr, "kinfer send: --header wants K=V (at most %d)\n", MAX_HEADERS);
                return 2;
            }
            a->nheaders++;
            break;
        case 'X':
            if (a->nprops == MAX_PROPS) {
                fprintf(stderr, "kinfer send: too many -X\n");
                return 2;
            }
            a->props[a->nprops++] = optarg;
            break;
        case 'h':
            usage(stdout);
            return 1;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "kinfer send: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!a->brokers || !a->topic || !a->model) {
        fprintf(stderr, "kinfer send: -b BROKERS, -t TOPIC and -m MODEL are required "
                        "(kinfer send --help)\n");
        return 2;
    }
    if (!!a->input + !!a->input_file + a->random != 1) {
        fprintf(stderr, "kinfer send: give exactly one of --input, --input-file, --random\n");
        return 2;
    }
    if (a->random && !a->shape) {
        fprintf(stderr, "kinfer send: --random needs --shape\n");
        return 2;
    }
    if (a->framing && strcmp(a->framing, "bare") && strcmp(a->framing, "single-object")) {
        fprintf(stderr, "kinfer send: --framing wants bare or single-object\n");
        return 2;
    }
    return 0;
}

static kinfer_err load_input(const send_args *a, kinfer_client_tensor *t, kinfer_error *err) {
    int64_t shape[KINFER_MAX_DIMS];
    int ndim = 0;
    kinfer_err rc = KINFER_OK;
    if (a->shape && (rc = kinfer_client_parse_shape(a->shape, shape, &ndim, err)) != KINFER_OK)
        return rc;
    if (a->input)
        rc = kinfer_client_parse_values(a->input, shape, ndim, t, err);
    else if (a->random)
        rc = kinfer_client_random(shape, ndim, (uint64_t)getpid(), t, err);
    else {
        size_t n = strlen(a->input_file);
        rc = n > 4 && !strcmp(a->input_file + n - 4, ".npy")
                 ? kinfer_client_load_npy(a->input_file, t, err)
                 : kinfer_client_load_json(a->input_file, t, err);
    }
    if (rc == KINFER_OK && a->input_name)
        snprintf(t->name, sizeof t->name, "%s", a->input_name);
    return rc;
}

static int wait_reply(kinfer_client *c, const char *id, int64_t t0, long long timeout_ms,
                      int as_json) {
    kinfer_codec_decoder *dec = NULL;
    kinfer_error err;
    if (kinfer_codec_decoder_new(NULL, NULL, &dec, &err) != KINFER_OK) {
        fprintf(stderr, "kinfer send: %s\n", err.msg);
        return 3;
    }
    int64_t deadline = t0 + timeout_ms * 1000;
    size_t idlen = strlen(id);
    int status = 3;
    while (kinfer_mono_us() < deadline) {
        rd_kafka_poll(c->producer, 0);
        if (c->failed) {
            fprintf(stderr, "kinfer send: the request was not delivered: %s\n", c->last_error);
            break;
        }
        rd_kafka_message_t *m = rd_kafka_consume_queue(c->replies, 50);
        if (!m)
            continue;
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                fprintf(stderr, "kinfer send: consumer: %s\n", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        rd_kafka_headers_t *h = NULL;
        rd_kafka_message_headers(m, &h);
        kinfer_str cid = kinfer_worker_header_last(h, KINFER_HDR_CORRELATION_ID);
        if (cid.ptr && (cid.len != idlen || memcmp(cid.ptr, id, idlen))) {
            rd_kafka_message_destroy(m);
            continue; /* someone else's reply */
        }
        kinfer_codec_response r;
        if (kinfer_codec_response_decode(dec, m->payload, m->len, &r, &err) != KINFER_OK) {
            if (cid.ptr)
                fprintf(stderr, "kinfer send: reply does not decode: %s\n", err.msg);
            rd_kafka_message_destroy(m);
            if (cid.ptr) {
                status = 3;
                break;
            }
            continue;
        }
        if (r.id.len != idlen || memcmp(r.id.ptr, id, idlen)) {
            rd_kafka_message_destroy(m);
            continue;
        }
        print_reply(&r, (double)(kinfer_mono_us() - t0) / 1000.0, as_json);
        status = r.status == 0 ? 0 : 1;
        rd_kafka_message_destroy(m);
        break;
    }
    if (status == 3 && !c->failed && kinfer_mono_us() >= deadline)
        fprintf(stderr, "kinfer send: no reply within %lld ms\n", timeout_ms);
    kinfer_codec_decoder_destroy(dec);
    return status;
}

int kinfer_cmd_send(int argc, char **argv) {
    send_args a;
    memset(&a, 0, sizeof a);
    a.timeout_ms = 10000;
    int status = parse_args(argc, argv, &a);
    kinfer_client_tensor input;
    memset(&input, 0, sizeof input);
    kinfer_client c;
    memset(&c, 0, sizeof c);
    kinfer_codec_encoder *enc = NULL;
    kinfer_error err;
    if (status) {
        status = status == 1 ? 0 : status;
        goto out;
    }
    if (load_input(&a, &input, &err) != KINFER_OK) {
        fprintf(stderr, "kinfer send: %s\n", err.msg);
        status = 2;
        goto out;
    }
    char reply_topic[KINFER_WORKER_TOPIC_MAX + 1];
    if (kinfer_worker_pattern_expand(a.reply_topic ? a.reply_topic : "{topic}.replies", a.topic,
                                     reply_topic, sizeof reply_topic, &err) != KINFER_OK) {
        fprintf(stderr, "kinfer send: %s\n", err.msg);
        status = 2;
        goto out;
    }
    char idbuf[64];
    if (!a.id) {
        snprintf(idbuf, sizeof idbuf, "send-%d-%lld", (int)getpid(), (long long)kinfer_wall_ms());
        a.id = idbuf;
    }
    kinfer_tensor view = kinfer_client_tensor_view(&input);
    kinfer_param params[MAX_PARAMS];
    for (int i = 0; i < a.nparams; i++) {
        params[i].key = (kinfer_str){a.pk[i], strlen(a.pk[i])};
        params[i].value = (kinfer_str){a.pv[i], strlen(a.pv[i])};
    }
    kinfer_codec_request req;
    memset(&req, 0, sizeof req);
    req.id = (kinfer_str){a.id, strlen(a.id)};
    req.model = (kinfer_str){a.model, strlen(a.model)};
    req.inputs = &view;
    req.ninputs = 1;
    req.params = params;
    req.nparams = (size_t)a.nparams;
    req.priority = a.priority;
    if (a.deadline_ms) {
        req.has_deadline = true;
        req.deadline_ms = kinfer_wall_ms() + a.deadline_ms;
    }
    if (!a.reply_header) {
        req.has_reply_to = true;
        req.reply_to = (kinfer_str){reply_topic, strlen(reply_topic)};
    }
    kinfer_codec_frame frame = {0};
    frame.framing = a.framing && !strcmp(a.framing, "single-object")
                        ? KINFER_CODEC_FRAMING_SINGLE_OBJECT
                        : KINFER_CODEC_FRAMING_BARE;
    const uint8_t *buf;
    size_t len;
    if (kinfer_codec_encoder_new(&enc, &err) != KINFER_OK ||
        kinfer_codec_request_encode(enc, &req, &frame, &buf, &len, &err) != KINFER_OK) {
        fprintf(stderr, "kinfer send: %s\n", err.msg);
        status = 2;
        goto out;
    }
    if (kinfer_client_open(&c, a.brokers, reply_topic, a.props, (size_t)a.nprops,
                           (int)(a.timeout_ms < 5000 ? 5000 : a.timeout_ms), &err) != KINFER_OK) {
        fprintf(stderr, "kinfer send: %s\n", err.msg);
        status = 3;
        goto out;
    }
    if (kinfer_client_prepare_topic(&c, a.topic, 5000, &err) != KINFER_OK) {
        fprintf(stderr, "kinfer send: %s\n", err.msg);
        status = 3;
        goto out;
    }
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new((size_t)a.nheaders + 1);
    for (int i = 0; i < a.nheaders; i++)
        rd_kafka_header_add(hdrs, a.hk[i], -1, a.hv[i], -1);
    if (a.reply_header)
        rd_kafka_header_add(hdrs, KINFER_HDR_REPLY_TO, -1, reply_topic, -1);
    int64_t t0 = kinfer_mono_us();
    if (kinfer_client_produce(&c, a.topic, a.key, a.key ? strlen(a.key) : 0, buf, len, hdrs,
                              &err) != KINFER_OK) {
        fprintf(stderr, "kinfer send: %s\n", err.msg);
        status = 3;
        goto out;
    }
    status = wait_reply(&c, a.id, t0, a.timeout_ms, a.as_json);
out:
    kinfer_client_close(&c);
    if (enc)
        kinfer_codec_encoder_destroy(enc);
    kinfer_client_tensor_free(&input);
    for (int i = 0; i < a.nparams; i++) {
        free(a.pk[i]);
        free(a.pv[i]);
    }
    for (int i = 0; i < a.nheaders; i++) {
        free(a.hk[i]);
        free(a.hv[i]);
    }
    return status;
}
