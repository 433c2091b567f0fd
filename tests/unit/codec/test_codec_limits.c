/* test_codec_limits.c — each kinfer_codec_limits bound gives TOO_LARGE with
 * a message naming the field, the request is still parsed to the end so id
 * and reply_to are there for an error reply, and the decoder is reusable. */
#include "codec_test_util.h"

static const uint8_t *encode_sample(kinfer_codec_encoder *enc, sample *s, size_t *len) {
    const uint8_t *msg;
    kinfer_error err;
    assert_int_equal(kinfer_codec_request_encode(enc, &s->req, NULL, &msg, len, &err), KINFER_OK);
    return msg;
}

/* Decodes the sample with one limit changed; checks the error and that the
 * fields a worker needs for the error reply are present. */
static void check_limit(void (*tweak)(kinfer_codec_limits *), void (*edit)(sample *),
                        const char *want) {
    kinfer_codec_limits lim;
    kinfer_codec_limits_default(&lim);
    tweak(&lim);
    sample s;
    sample_init(&s);
    if (edit)
        edit(&s);
    kinfer_codec_encoder *enc;
    kinfer_codec_decoder *dec;
    kinfer_error err;
    assert_int_equal(kinfer_codec_encoder_new(&enc, &err), KINFER_OK);
    assert_int_equal(kinfer_codec_decoder_new(&lim, NULL, &dec, &err), KINFER_OK);
    size_t len;
    const uint8_t *msg = encode_sample(enc, &s, &len);
    kinfer_codec_request out;
    expect_error(kinfer_codec_request_decode(dec, msg, len, &out, &err), &err, KINFER_ERR_TOO_LARGE,
                 want);
    if (strncmp(want, "message", 7) != 0) {
        assert_true(out.has_reply_to && str_eq(out.reply_to, "replies"));
        assert_true(out.has_deadline && out.deadline_ms == 1764288000123);
    }
    /* the same decoder then takes a message within limits */
    kinfer_codec_request small = {.id = {"ok", 2}, .model = {"m", 1}};
    const uint8_t *m2;
    size_t l2;
    assert_int_equal(kinfer_codec_request_encode(enc, &small, NULL, &m2, &l2, &err), KINFER_OK);
    kinfer_err rc = kinfer_codec_request_decode(dec, m2, l2, &out, &err);
    if (rc != KINFER_OK && strncmp(want, "message", 7) != 0)
        fail_msg("decoder not reusable after TOO_LARGE: %s", err.msg);
    kinfer_codec_decoder_destroy(dec);
    kinfer_codec_encoder_destroy(enc);
}

static void lim_msg(kinfer_codec_limits *l) {
    l->max_message_bytes = 100;
}
static void lim_tensors(kinfer_codec_limits *l) {
    l->max_tensors = 2;
}
static void lim_dims(kinfer_codec_limits *l) {
    l->max_dims = 1;
}
static void lim_numel(kinfer_codec_limits *l) {
    l->max_numel = 100;
}
static void lim_strings(kinfer_codec_limits *l) {
    l->max_strings = 2;
}
static void lim_string_bytes(kinfer_codec_limits *l) {
    l->max_string_bytes = 4;
}
static void lim_params(kinfer_codec_limits *l) {
    l->max_params = 1;
}
static void lim_id(kinfer_codec_limits *l) {
    l->max_id_bytes = 4;
}
static void lim_name(kinfer_codec_limits *l) {
    l->max_name_bytes = 4;
}

static void test_each_limit(void **state) {
    (void)state;
    check_limit(lim_msg, NULL, "message: 1123 bytes, at most 100 allowed");
    check_limit(lim_tensors, NULL, "inputs: more than 2 tensors");
    check_limit(lim_dims, NULL, "inputs[0].shape: 2 dimensions, at most 1 allowed");
    check_limit(lim_numel, NULL, "inputs[0].shape: [1, 256] has more than 100 elements");
    check_limit(lim_strings, NULL, "inputs[1].strings[2]: more than 2 strings in the message");
    check_limit(lim_string_bytes, NULL, "inputs[1].strings[0]: 5 bytes, at most 4 allowed");
    check_limit(lim_params, NULL, "parameters: more than 1 entries");
    check_limit(lim_id, NULL, "id: 5 bytes, at most 4 allowed");
    check_limit(lim_name, NULL, "model: 5 bytes, at most 4 allowed");
}

static void test_too_many_tensors_keeps_first(void **state) {
    (void)state;
    kinfer_codec_limits lim;
    kinfer_codec_limits_default(&lim);
    lim.max_tensors = 1;
    sample s;
    sample_init(&s);
    kinfer_codec_encoder *enc;
    kinfer_codec_decoder *dec;
    kinfer_error err;
    assert_int_equal(kinfer_codec_encoder_new(&enc, &err), KINFER_OK);
    assert_int_equal(kinfer_codec_decoder_new(&lim, NULL, &dec, &err), KINFER_OK);
    size_t len;
    const uint8_t *msg = encode_sample(enc, &s, &len);
    kinfer_codec_request out;
    assert_int_equal(kinfer_codec_request_decode(dec, msg, len, &out, &err), KINFER_ERR_TOO_LARGE);
    assert_int_equal(out.ninputs, 1);
    assert_true(str_eq(out.inputs[0].name, "x"));
    assert_int_equal(out.nparams, 2); /* parsing went on past the inputs */
    kinfer_codec_decoder_destroy(dec);
    kinfer_codec_encoder_destroy(enc);
}

static void test_response_error_limit(void **state) {
    (void)state;
    kinfer_codec_limits lim;
    kinfer_codec_limits_default(&lim);
    lim.max_error_bytes = 3;
    kinfer_codec_encoder *enc;
    kinfer_codec_decoder *dec;
    kinfer_error err;
    assert_int_equal(kinfer_codec_encoder_new(&enc, &err), KINFER_OK);
    assert_int_equal(kinfer_codec_decoder_new(&lim, NULL, &dec, &err), KINFER_OK);
    kinfer_codec_response resp = {
        .id = {"r", 1}, .status = 5, .has_error = true, .error = {"oops", 4}};
    const uint8_t *msg;
    size_t len;
    assert_int_equal(kinfer_codec_response_encode(enc, &resp, NULL, &msg, &len, &err), KINFER_OK);
    kinfer_codec_response out;
    expect_error(kinfer_codec_response_decode(dec, msg, len, &out, &err), &err,
                 KINFER_ERR_TOO_LARGE, "error: 4 bytes, at most 3 allowed");
    assert_true(str_eq(out.id, "r"));
    kinfer_codec_decoder_destroy(dec);
    kinfer_codec_encoder_destroy(enc);
}

static void test_bad_limits_refused(void **state) {
    (void)state;
    kinfer_codec_limits lim;
    kinfer_codec_limits_default(&lim);
    assert_int_equal(lim.max_dims, KINFER_MAX_DIMS);
    lim.max_dims = KINFER_MAX_DIMS + 1;
    kinfer_codec_decoder *dec;
    kinfer_error err;
    expect_error(kinfer_codec_decoder_new(&lim, NULL, &dec, &err), &err, KINFER_ERR_INVALID_ARG,
                 "max_dims 9 exceeds KINFER_MAX_DIMS");
    assert_null(dec);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_limit),
        cmocka_unit_test(test_too_many_tensors_keeps_first),
        cmocka_unit_test(test_response_error_limit),
        cmocka_unit_test(test_bad_limits_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
