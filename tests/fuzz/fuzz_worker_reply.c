/* fuzz_worker_reply.c — libFuzzer target for "no record the worker
 * produces is invalid against its schema" (issue 15): any bytes are a
 * consumed request and go the worker's way without Kafka: decode, the
 * verdict (dead letter / error reply / engine), the reply address, the
 * real engine with two real models (the example MLP, the tiny BERT
 * classifier: their request checks write the error texts), the reply the
 * worker builds (worker_reply_build.c) and its encoding. Every encoded
 * reply must decode with the project's own decoder under the default,
 * strict limits (UTF-8 and lengths of every string), carry the request's
 * id and the status the worker meant, and keep text that needed no repair
 * unchanged. A second reply per request stands for a kind that emits text
 * (the LLM): STRING outputs and names made of the request's raw tensor
 * bytes, valid UTF-8 or not. Not a benchmark.
 *
 * Run: scripts/fuzz.sh -t 120 fuzz_worker_reply (clang, ASan+UBSan). Seeds
 * in tests/fuzz/corpus/fuzz_worker_reply/ replay as a ctest. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kinfer/kinfer_codec.h"
#include "kinfer/kinfer_config.h"
#include "kinfer/kinfer_engine.h"
#include "kinfer/kinfer_log.h"
#include "kinfer/kinfer_route.h"
#include "worker_reply_build.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "CHECK failed: %s (line %d)\n", #cond, __LINE__);                      \
            __builtin_trap();                                                                      \
        }                                                                                          \
    } while (0)

#define TOPIC "inference.requests"
#define WORKER "fuzz-worker"

static kinfer_config cfg;
static kinfer_engine *engine;
static kinfer_codec_decoder *req_dec, *reply_dec;
static kinfer_codec_encoder *enc;

/* One request's trip through the engine: the completion signals it. */
typedef struct trip {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    kinfer_worker_echo echo;
    kinfer_codec_frame frame;
    int64_t offset;
} trip;

static bool str_same(kinfer_str a, kinfer_str b) {
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static bool text_fits(kinfer_str s, size_t limit) {
    return s.len <= limit && kinfer_codec_utf8_valid(s.ptr, s.len, NULL);
}

/* Encodes resp as the worker would, decodes it strictly, checks it. */
static void encode_and_check(kinfer_codec_response *resp, const kinfer_codec_frame *frame,
                             int64_t offset) {
    resp->timing.worker = (kinfer_str){WORKER, strlen(WORKER)};
    resp->source.topic = (kinfer_str){TOPIC, strlen(TOPIC)};
    resp->source.partition = 0;
    resp->source.offset = offset;
    const uint8_t *buf;
    size_t len;
    int status;
    kinfer_error err;
    kinfer_err rc = kinfer_worker_reply_encode(enc, resp, frame, &buf, &len, &status, &err);
    if (rc != KINFER_OK)
        fprintf(stderr, "reply not encoded: %s\n", err.msg);
    CHECK(rc == KINFER_OK);
    kinfer_codec_response got;
    rc = kinfer_codec_response_decode(reply_dec, buf, len, &got, &err);
    if (rc != KINFER_OK)
        fprintf(stderr, "reply not decodable: %s\n", err.msg);
    CHECK(rc == KINFER_OK);
    CHECK(str_same(got.id, resp->id));
    CHECK(got.status == status);
    CHECK(got.source.offset == offset);
    /* The repair touches only what needed it. */
    if (text_fits(resp->model, 256))
        CHECK(str_same(got.model, resp->model));
    if (resp->has_error && status == resp->status && text_fits(resp->error, 64 << 10))
        CHECK(str_same(got.error, resp->error));
    if (status == resp->status)
        CHECK(got.noutputs == resp->noutputs);
}

static void on_complete(void *ctx, const kinfer_engine_result *result) {
    (void)ctx;
    trip *t = result->token;
    kinfer_codec_response resp;
    kinfer_worker_reply_build_result(&resp, &t->echo, result);
    encode_and_check(&resp, &t->frame, t->offset); /* result's views live until we return */
    pthread_mutex_lock(&t->mu);
    t->done = true;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

static void setup(void) {
    if (engine)
        return;
    kinfer_log_set_level(KINFER_LOG_ERROR);
    char text[2048];
    snprintf(
        text, sizeof text,
        "kafka = { brokers = \"127.0.0.1:1\"; topics = [\"" TOPIC "\"]; };\n"
        "worker = { id = \"" WORKER "\"; cpu_threads = 1; };\n"
        "http = { listen = \"\"; };\n"
        "scheduler = { max_queue_delay_us = 0; default_timeout_ms = 60000; };\n"
        "models = (\n"
        "  { name = \"example-mlp\"; kind = \"mlp\"; path = \"%s/models/example_mlp.safetensors\";"
        " devices = [\"cpu\"]; max_batch_size = 4; },\n"
        "  { name = \"tiny-bert\"; kind = \"bert\"; path = \"%s/tests/data/minilm/tiny_cls\";"
        " devices = [\"cpu\"]; max_batch_size = 4; max_batch_tokens = 256; }\n"
        ");\n",
        KINFER_SOURCE_DIR, KINFER_SOURCE_DIR);
    kinfer_error err;
    if (kinfer_config_load_string(text, "fuzz_worker_reply.conf", &cfg, &err) != KINFER_OK) {
        fprintf(stderr, "fuzz_worker_reply: config: %s\n", err.msg);
        abort();
    }
    /* The worker's decoder limits (worker_loop.c), from the same config. */
    kinfer_codec_limits lim;
    kinfer_codec_limits_default(&lim);
    lim.max_message_bytes = (size_t)cfg.kafka.max_message_bytes;
    lim.max_tensors = cfg.limits.max_tensors;
    lim.max_dims = cfg.limits.max_dims;
    lim.max_numel = cfg.limits.max_elements;
    lim.max_strings = cfg.limits.max_strings;
    lim.max_params = cfg.limits.max_params;
    kinfer_engine_config ecfg = {
        .models = cfg.models, .nmodels = cfg.nmodels, .cpu_threads = 1, .on_complete = on_complete};
    if (kinfer_codec_decoder_new(&lim, NULL, &req_dec, &err) != KINFER_OK ||
        kinfer_codec_decoder_new(NULL, NULL, &reply_dec, &err) != KINFER_OK ||
        kinfer_codec_encoder_new(&enc, &err) != KINFER_OK ||
        kinfer_engine_new(&ecfg, &engine, &err) != KINFER_OK) {
        fprintf(stderr, "fuzz_worker_reply: setup: %s\n", err.msg);
        abort();
    }
}

/* The reply framing of worker.reply_framing = "same" with a Confluent
 * response schema id configured (worker_reply.c's reply_frame). */
static kinfer_codec_frame reply_frame(const kinfer_codec_frame *req) {
    kinfer_codec_frame f = {.framing = req->framing};
    if (f.framing == KINFER_CODEC_FRAMING_CONFLUENT)
        f.schema_id = 7;
    return f;
}

/* A kind that emits text: a STRING output per input tensor, made of that
 * tensor's raw data bytes, under a name made of them too. */
static void text_kind_reply(const kinfer_codec_request *req, const kinfer_worker_echo *echo,
                            const kinfer_codec_frame *frame) {
    kinfer_tensor outs[4];
    kinfer_str strs[4];
    size_t n = req->ninputs < 4 ? req->ninputs : 4;
    for (size_t i = 0; i < n; i++) {
        const kinfer_tensor *in = &req->inputs[i];
        strs[i] = (kinfer_str){in->data, in->nbytes};
        outs[i] = (kinfer_tensor){.name = {in->data, in->nbytes},
                                  .dtype = KINFER_DTYPE_STRING,
                                  .ndim = 1,
                                  .shape = {1},
                                  .strings = &strs[i],
                                  .nstrings = 1};
    }
    kinfer_engine_result res = {
        .status = KINFER_OK, .outputs = outs, .noutputs = n, .device = "cpu", .batch_size = 1};
    kinfer_codec_response resp;
    kinfer_worker_reply_build_result(&resp, echo, &res);
    encode_and_check(&resp, frame, 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    setup();
    kinfer_codec_request req;
    kinfer_error err;
    kinfer_err rc = kinfer_codec_request_decode(req_dec, data, size, &req, &err);
    char why[2 * KINFER_ERROR_MSG_MAX + 8];
    kinfer_worker_verdict v = kinfer_worker_verdict_of(rc, &req, &err, why, sizeof why);
    if (v == KINFER_WORKER_VERDICT_DEAD_LETTER) {
        CHECK(why[0] != '\0'); /* the kinfer-error header: never empty */
        return 0;
    }
    /* The reply address, as worker_consume.c finds it (no header here). */
    char topic[KINFER_WORKER_TOPIC_MAX + 1];
    kinfer_error rerr;
    kinfer_str field = req.has_reply_to ? req.reply_to : (kinfer_str){NULL, 0};
    if (kinfer_worker_reply_topic(field, (kinfer_str){NULL, 0}, TOPIC,
                                  cfg.kafka.reply_topic_pattern, topic, sizeof topic,
                                  &rerr) != KINFER_OK)
        return 0; /* a dead letter */
    kinfer_worker_echo echo = {req.id, req.model, req.model_version, req.has_model_version};
    kinfer_codec_frame frame = reply_frame(&req.frame);
    kinfer_codec_response resp;
    if (v == KINFER_WORKER_VERDICT_ERROR_REPLY) {
        kinfer_worker_reply_build_error(&resp, &echo, rc, err.msg);
        encode_and_check(&resp, &frame, 0);
        return 0;
    }
    text_kind_reply(&req, &echo, &frame);
    trip t = {.echo = echo, .frame = frame, .offset = 2};
    pthread_mutex_init(&t.mu, NULL);
    pthread_cond_init(&t.cv, NULL);
    kinfer_engine_request ereq = {
        .model = req.model,
        .model_version = req.has_model_version ? req.model_version : (kinfer_str){"", 0},
        .inputs = req.inputs,
        .ninputs = req.ninputs,
        .params = req.params,
        .nparams = req.nparams,
        .deadline_us = kinfer_worker_deadline_us(&req),
        .priority = req.priority,
        .token = &t,
    };
    rc = kinfer_engine_submit(engine, &ereq, &err);
    if (rc != KINFER_OK) {
        kinfer_worker_reply_build_error(&resp, &echo, rc, err.msg);
        encode_and_check(&resp, &frame, 2);
    } else {
        pthread_mutex_lock(&t.mu);
        while (!t.done)
            pthread_cond_wait(&t.cv, &t.mu);
        pthread_mutex_unlock(&t.mu);
    }
    pthread_cond_destroy(&t.cv);
    pthread_mutex_destroy(&t.mu);
    return 0;
}
