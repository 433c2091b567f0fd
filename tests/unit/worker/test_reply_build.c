/* test_reply_build.c — the reply the worker builds (worker_reply_build.c):
 * which requests become dead letters because their id cannot be echoed,
 * and that every reply encoded from hostile text (invalid UTF-8 in model,
 * model_version, error, output names and STRING elements; text past the
 * field limits; a truncation inside a character) decodes under the strict
 * decoder with the documented repair applied. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "worker_reply_build.h"

#define FFFD "\xef\xbf\xbd"

static kinfer_str S(const char *s) {
    kinfer_str out = {s, strlen(s)};
    return out;
}

static bool str_is(kinfer_str s, const char *want) {
    return s.len == strlen(want) && (s.len == 0 || !memcmp(s.ptr, want, s.len));
}

static void test_verdicts(void **state) {
    (void)state;
    char why[256];
    kinfer_error err = {.msg = "trailing bytes: 3 after the record"};
    kinfer_codec_request req = {.id = S("ok-id")};
    assert_int_equal(kinfer_worker_verdict_of(KINFER_ERR_DECODE, &req, &err, why, sizeof why),
                     KINFER_WORKER_VERDICT_DEAD_LETTER);
    assert_string_equal(why, "undecodable request: trailing bytes: 3 after the record");
    assert_int_equal(kinfer_worker_verdict_of(KINFER_ERR_UNSUPPORTED, &req, &err, why, sizeof why),
                     KINFER_WORKER_VERDICT_DEAD_LETTER);
    assert_int_equal(kinfer_worker_verdict_of(KINFER_OK, &req, &err, why, sizeof why),
                     KINFER_WORKER_VERDICT_SUBMIT);
    snprintf(err.msg, sizeof err.msg, "inputs[0].shape[0]: negative dimension -1");
    assert_int_equal(
        kinfer_worker_verdict_of(KINFER_ERR_INVALID_REQUEST, &req, &err, why, sizeof why),
        KINFER_WORKER_VERDICT_ERROR_REPLY);
    assert_int_equal(kinfer_worker_verdict_of(KINFER_ERR_TOO_LARGE, &req, &err, why, sizeof why),
                     KINFER_WORKER_VERDICT_ERROR_REPLY);

    /* Ids no reply can carry, whatever else the decode said. */
    snprintf(err.msg, sizeof err.msg, "id: invalid UTF-8 at byte 1");
    req.id = S("h\xdf"
               "369");
    assert_int_equal(
        kinfer_worker_verdict_of(KINFER_ERR_INVALID_REQUEST, &req, &err, why, sizeof why),
        KINFER_WORKER_VERDICT_DEAD_LETTER);
    assert_non_null(strstr(why, "request id cannot be echoed in a reply: invalid UTF-8 at byte 1"));
    req.id = S("");
    assert_int_equal(
        kinfer_worker_verdict_of(KINFER_ERR_INVALID_REQUEST, &req, &err, why, sizeof why),
        KINFER_WORKER_VERDICT_DEAD_LETTER);
    assert_non_null(strstr(why, "it is empty"));
    char longid[KINFER_WORKER_ID_MAX + 2];
    memset(longid, 'a', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    req.id = S(longid); /* one byte past the limit */
    assert_int_equal(kinfer_worker_verdict_of(KINFER_ERR_TOO_LARGE, &req, &err, why, sizeof why),
                     KINFER_WORKER_VERDICT_DEAD_LETTER);
    assert_non_null(strstr(why, "257 bytes, at most 256 allowed"));
    req.id.len = KINFER_WORKER_ID_MAX; /* exactly the limit: answerable */
    assert_int_equal(kinfer_worker_verdict_of(KINFER_OK, &req, &err, why, sizeof why),
                     KINFER_WORKER_VERDICT_SUBMIT);
}

/* Encodes resp through the worker's path, then decodes it with the strict
 * default decoder, which must accept it. */
static void encode_decode(const kinfer_codec_response *resp, kinfer_codec_decoder *dec,
                          kinfer_codec_encoder *enc, kinfer_codec_response *got, int *status) {
    const uint8_t *buf;
    size_t len;
    kinfer_error err;
    kinfer_codec_frame frame = {.framing = KINFER_CODEC_FRAMING_SINGLE_OBJECT};
    kinfer_err rc = kinfer_worker_reply_encode(enc, resp, &frame, &buf, &len, status, &err);
    if (rc != KINFER_OK)
        fail_msg("encode: %s", err.msg);
    rc = kinfer_codec_response_decode(dec, buf, len, got, &err);
    if (rc != KINFER_OK)
        fail_msg("strict decode of the reply: %s", err.msg);
}

static void test_error_reply_text_is_repaired(void **state) {
    (void)state;
    kinfer_codec_encoder *enc;
    kinfer_codec_decoder *dec;
    kinfer_error err;
    assert_int_equal(kinfer_codec_encoder_new(&enc, &err), KINFER_OK);
    assert_int_equal(kinfer_codec_decoder_new(NULL, NULL, &dec, &err), KINFER_OK);

    /* The example: model "h-m\xecp" echoed into an INVALID_REQUEST. */
    kinfer_worker_echo echo = {.id = S("h250"),
                               .model = S("h-m\xecp"),
                               .has_model_version = true,
                               .model_version = S("v\xc0\x80")};
    /* An error text cut by snprintf inside a two-byte character. */
    char error[] = "model 'caf\xc3";
    kinfer_codec_response resp, got;
    kinfer_worker_reply_build_error(&resp, &echo, KINFER_ERR_INVALID_REQUEST, error);
    resp.timing.worker = S("w\xff");
    resp.source.topic = S("t");
    int status;
    encode_decode(&resp, dec, enc, &got, &status);
    assert_int_equal(status, kinfer_err_to_wire_status(KINFER_ERR_INVALID_REQUEST));
    assert_int_equal(got.status, status);
    assert_true(str_is(got.id, "h250"));
    assert_true(str_is(got.model, "h-m" FFFD "p"));
    assert_true(got.has_model_version && str_is(got.model_version, "v" FFFD FFFD));
    assert_true(got.has_error && str_is(got.error, "model 'caf" FFFD));
    assert_true(str_is(got.timing.worker, "w" FFFD));
    /* The request's own buffers are untouched (they are Kafka's). */
    assert_memory_equal(echo.model.ptr, "h-m\xecp", 5);

    /* Text past a field's limit is cut at a character boundary. */
    char model[400];
    for (size_t i = 0; i + 2 <= 300; i += 2)
        memcpy(model + i, "\xc3\xa9", 2); /* 150 x é */
    echo.model = (kinfer_str){model, 300};
    echo.has_model_version = false;
    kinfer_worker_reply_build_error(&resp, &echo, KINFER_ERR_TOO_LARGE, "model: 300 bytes");
    encode_decode(&resp, dec, enc, &got, &status);
    assert_int_equal(got.model.len, 256);
    assert_memory_equal(got.model.ptr, model, 256);
    echo.model.len = 255; /* 127 x é and half of one: invalid, then repaired and cut */
    kinfer_worker_reply_build_error(&resp, &echo, KINFER_ERR_TOO_LARGE, "x");
    encode_decode(&resp, dec, enc, &got, &status);
    assert_true(got.model.len <= 256);
    assert_memory_equal(got.model.ptr, model, 254);
    assert_true(kinfer_codec_utf8_valid(got.model.ptr, got.model.len, NULL));

    kinfer_codec_decoder_destroy(dec);
    kinfer_codec_encoder_destroy(enc);
}

static void test_engine_outputs_are_repaired_or_replaced(void **state) {
    (void)state;
    kinfer_codec_encoder *enc;
    kinfer_codec_decoder *dec;
    kinfer_error err;
    assert_int_equal(kinfer_codec_encoder_new(&enc, &err), KINFER_OK);
    assert_int_equal(kinfer_codec_decoder_new(NULL, NULL, &dec, &err), KINFER_OK);
    /* What a text-producing kind might hand over: a token cut mid-character. */
    kinfer_str texts[3] = {S("fine"), S("tok\xe2\x82"), S("")};
    float y[2] = {1, 2};
    kinfer_tensor outs[2] = {
        {.name = S("text\x80"),
         .dtype = KINFER_DTYPE_STRING,
         .ndim = 1,
         .shape = {3},
         .strings = texts,
         .nstrings = 3},
        {.name = S("y"),
         .dtype = KINFER_DTYPE_FP32,
         .ndim = 1,
         .shape = {2},
         .data = y,
         .nbytes = 8},
    };
    kinfer_engine_result res = {.status = KINFER_OK,
                                .outputs = outs,
                                .noutputs = 2,
                                .device = "cpu",
                                .model_version = "3",
                                .batch_size = 1};
    kinfer_worker_echo echo = {.id = S("q"), .model = S("m")};
    kinfer_codec_response resp, got;
    kinfer_worker_reply_build_result(&resp, &echo, &res);
    resp.timing.worker = S("w");
    resp.source.topic = S("t");
    int status;
    encode_decode(&resp, dec, enc, &got, &status);
    assert_int_equal(status, 0);
    assert_int_equal(got.noutputs, 2);
    assert_true(str_is(got.outputs[0].name, "text" FFFD));
    assert_int_equal(got.outputs[0].nstrings, 3);
    assert_true(str_is(got.outputs[0].strings[0], "fine"));
    assert_true(str_is(got.outputs[0].strings[1], "tok" FFFD));
    assert_true(str_is(got.outputs[0].strings[2], ""));
    assert_true(got.has_model_version && str_is(got.model_version, "3"));
    assert_memory_equal(got.outputs[1].data, y, 8);

    /* An output the schema cannot carry: INTERNAL_ERROR, no outputs. */
    outs[1].nbytes = 4;
    kinfer_worker_reply_build_result(&resp, &echo, &res);
    resp.timing.worker = S("w");
    resp.source.topic = S("t");
    encode_decode(&resp, dec, enc, &got, &status);
    assert_int_equal(status, kinfer_err_to_wire_status(KINFER_ERR_INTERNAL));
    assert_int_equal(got.noutputs, 0);
    static const char fell[] = "reply could not be encoded: outputs[1]";
    assert_true(got.error.len > sizeof fell - 1);
    assert_memory_equal(got.error.ptr, fell, sizeof fell - 1);

    /* An engine error whose text carries echoed bytes. */
    res = (kinfer_engine_result){.status = KINFER_ERR_MODEL_NOT_FOUND,
                                 .error = "model 'x\xf0\x9f' is not loaded",
                                 .device = ""};
    kinfer_worker_reply_build_result(&resp, &echo, &res);
    resp.timing.worker = S("w");
    resp.source.topic = S("t");
    encode_decode(&resp, dec, enc, &got, &status);
    assert_true(str_is(got.error, "model 'x" FFFD "' is not loaded"));

    kinfer_codec_decoder_destroy(dec);
    kinfer_codec_encoder_destroy(enc);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verdicts),
        cmocka_unit_test(test_error_reply_text_is_repaired),
        cmocka_unit_test(test_engine_outputs_are_repaired_or_replaced),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
