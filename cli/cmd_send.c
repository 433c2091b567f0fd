/* cmd_send.c — `kinfer send`: build one request from the command line,
 * produce it, wait for its reply and print it. Exit status: 0 = reply OK,
 * 1 = reply with an error status, 2 = usage (a bad -X included), 3 = no
 * reply (timeout) or a Kafka/encoding failure; a wrong credential,
 * certificate or security.protocol is a Kafka failure reported at once. */
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
#include "send_gen.h"
#include "send_print.h"
#include "kinfer/kinfer_clock.h"
#include "kinfer/kinfer_codec.h"
#include "kinfer/kinfer_route.h"

#define MAX_PARAMS 32
#define MAX_HEADERS 32
#define MAX_PROPS 32
#define MAX_TEXTS 256

static void usage(FILE *out) {
    fprintf(out,
            "usage: kinfer send -b BROKERS -t TOPIC -m MODEL INPUT [options]\n"
            "\n"
            "Send one inference request and print its reply.\n"
            "\n"
            "INPUT, one of:\n"
            "  --text T               a text (repeatable: --text A --text B): a STRING\n"
            "                         tensor [n], what text models (kind bert) take\n"
            "  --input V,V,...        FP32 values (shape [n] unless --shape)\n"
            "  --input-file FILE      .json (nested array, or {\"shape\":..,\"data\":..}) or .npy\n"
            "  --random               random FP32 values of --shape\n"
            "  --shape D,D,...        tensor shape, e.g. 1,8\n"
            "  --input-name NAME      tensor name (default \"input\", \"text\" for --text)\n");
    kinfer_send_gen_usage(out);
    fprintf(out,
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
            "                         500ms; default 10000, 60000 for --prompt/--chat)\n"
            "      --json             print the reply as JSON\n"
            "\n"
            "The reply: small outputs in full; rows wider than 16 values (an embedding) as\n"
            "their dims, L2 norm and first 8 values; STRING outputs (a classifier's labels)\n"
            "one per row, each beside the --text it answers.\n"
            "  -h, --help             this text\n"
            "\n"
            "Exit status: 0 reply OK, 1 reply with an error status, 2 usage error,\n"
            "3 no reply in time or a Kafka error (a refused password, an untrusted\n"
            "certificate or a wrong security.protocol ends it at once, naming the\n"
            "properties to check).\n"
            "\n"
            "Secrets need not be on the command line: -X sasl.password='${env:VAR}' or\n"
            "-X sasl.password='${file:PATH}' (single quotes: the shell must not expand it).\n");
}

static int split_kv(const char *s, char **k, char **v) {
    const char *eq = strchr(s, '=');
    if (!eq || eq == s)
        return -1;
    *k = strndup(s, (size_t)(eq - s));
    *v = strdup(eq + 1);
    return (*k && *v) ? 0 : -1;
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
    const char *texts[MAX_TEXTS];
    int ntexts;
    kinfer_send_gen gen;
} send_args;

static int parse_args(int argc, char **argv, send_args *a) {
    static const struct option base_opts[] = {
        {"brokers", required_argument, 0, 'b'},
        {"topic", required_argument, 0, 't'},
        {"model", required_argument, 0, 'm'},
        {"id", required_argument, 0, 'i'},
        {"key", required_argument, 0, 'k'},
        {"reply-topic", required_argument, 0, 'r'},
        {"reply-via", required_argument, 0, 'V'},
        {"input", required_argument, 0, 'I'},
        {"text", required_argument, 0, 'x'},
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
    };
    /* Ours, then the generation options (send_gen.c), then the end. */
    enum { NBASE = sizeof base_opts / sizeof base_opts[0] };
    struct option longopts[NBASE + 24];
    size_t n = 0;
    for (; n < NBASE; n++)
        longopts[n] = base_opts[n];
    for (size_t i = 0;
         kinfer_send_gen_options[i].name && n + 1 < sizeof longopts / sizeof *longopts; i++)
        longopts[n++] = kinfer_send_gen_options[i];
    longopts[n] = (struct option){0, 0, 0, 0};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "b:t:m:X:h", longopts, NULL)) != -1) {
        if (kinfer_send_gen_is_option(c)) {
            if (kinfer_send_gen_option(&a->gen, c, optarg))
                return 2;
            continue;
        }
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
        case 'x':
            if (a->ntexts == MAX_TEXTS) {
                fprintf(stderr, "kinfer send: at most %d --text\n", MAX_TEXTS);
                return 2;
            }
            a->texts[a->ntexts++] = optarg;
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
    bool gen = kinfer_send_gen_wanted(&a->gen);
    if (!!a->input + !!a->input_file + a->random + !!a->ntexts + gen != 1) {
        fprintf(stderr,
                "kinfer send: give exactly one of --text (repeatable), --input, --input-file, "
                "--random, --prompt, --chat (repeatable)\n");
        return 2;
    }
    if (!gen && (a->gen.any_option || a->gen.no_stream)) {
        fprintf(stderr, "kinfer send: generation options go with --prompt or --chat\n");
        return 2;
    }
    if (gen && a->shape) {
        fprintf(stderr, "kinfer send: --shape does not go with --prompt/--chat\n");
        return 2;
    }
    if (!a->timeout_ms)
        a->timeout_ms = gen ? 60000 : 10000;
    if (a->ntexts && a->shape) {
        fprintf(stderr, "kinfer send: --shape does not go with --text (the shape is [n texts])\n");
        return 2;
    }
    for (int i = 0; i < a->ntexts; i++)
        if (!kinfer_codec_utf8_valid(a->texts[i], strlen(a->texts[i]), NULL)) {
            fprintf(stderr, "kinfer send: --text #%d is not valid UTF-8 (Avro strings are)\n",
                    i + 1);
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

/* Waits for the reply to id and prints it. (The kind llm's streamed
 * replies, branch llmserve, arrive here as chunks before the final reply:
 * this loop hands them to send_print.c as they come.) */
static int wait_reply(kinfer_client *c, const char *id, int64_t t0, long long timeout_ms,
                      int as_json, kinfer_send_request_info *info) {
    kinfer_send_stream stream = {0, 0};
    info->stream = &stream;
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
        if (kinfer_client_check_auth(c, &err) != KINFER_OK) {
            fprintf(stderr, "kinfer send: %s\n", err.msg);
            break;
        }
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
        if (r.has_chunk) { /* a generation's chunk: printed as it comes */
            kinfer_send_print_chunk(&r, &stream, as_json);
            rd_kafka_message_destroy(m);
            continue;
        }
        kinfer_send_print_reply(&r, info, (double)(kinfer_mono_us() - t0) / 1000.0, as_json);
        status = r.status == 0 ? 0 : 1;
        rd_kafka_message_destroy(m);
        break;
    }
    if (status == 3 && !c->failed && !c->auth_class && kinfer_mono_us() >= deadline)
        fprintf(stderr, "kinfer send: no reply within %lld ms\n", timeout_ms);
    if (status == 3 && stream.printed && !as_json)
        printf("\n");
    info->stream = NULL;
    kinfer_codec_decoder_destroy(dec);
    return status;
}

int kinfer_cmd_send(int argc, char **argv) {
    send_args a;
    memset(&a, 0, sizeof a);
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
    bool gen = kinfer_send_gen_wanted(&a.gen);
    if (!a.ntexts && !gen && load_input(&a, &input, &err) != KINFER_OK) {
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
    /* --text: one STRING tensor [n] whose strings are the arguments. */
    kinfer_str strs[MAX_TEXTS];
    if (a.ntexts) {
        for (int i = 0; i < a.ntexts; i++)
            strs[i] = (kinfer_str){a.texts[i], strlen(a.texts[i])};
        const char *name = a.input_name ? a.input_name : "text";
        memset(&view, 0, sizeof view);
        view.name = (kinfer_str){name, strlen(name)};
        view.dtype = KINFER_DTYPE_STRING;
        view.ndim = 1;
        view.shape[0] = a.ntexts;
        view.strings = strs;
        view.nstrings = (size_t)a.ntexts;
    }
    kinfer_param params[MAX_PARAMS];
    for (int i = 0; i < a.nparams; i++) {
        params[i].key = (kinfer_str){a.pk[i], strlen(a.pk[i])};
        params[i].value = (kinfer_str){a.pv[i], strlen(a.pv[i])};
    }
    kinfer_codec_request req;
    memset(&req, 0, sizeof req);
    req.id = (kinfer_str){a.id, strlen(a.id)};
    req.model = (kinfer_str){a.model, strlen(a.model)};
    req.inputs = gen ? NULL : &view;
    req.ninputs = gen ? 0 : 1;
    if (gen && kinfer_send_gen_fill(&a.gen, &req)) {
        status = 2;
        goto out;
    }
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
        status = err.code == KINFER_ERR_INVALID_ARG ? 2 : 3; /* a bad -X is a usage error */
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
    kinfer_send_request_info info = {a.ntexts ? a.texts : NULL, (size_t)a.ntexts, NULL};
    status = wait_reply(&c, a.id, t0, a.timeout_ms, a.as_json, &info);
out:
    kinfer_client_close(&c);
    if (enc)
        kinfer_codec_encoder_destroy(enc);
    kinfer_client_tensor_free(&input);
    kinfer_send_gen_free(&a.gen);
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
