/* test_codec_roundtrip.c — encode then decode, for requests and responses,
 * every dtype, awkward shapes (scalar, empty, many dims), all three
 * framings; and that decoder/encoder storage is reused across messages. */
#include "codec_test_util.h"

#include "codec_decoder.h"

static const kinfer_codec_frame frames[] = {
    {.framing = KINFER_CODEC_FRAMING_BARE},
    {.framing = KINFER_CODEC_FRAMING_SINGLE_OBJECT},
    {.framing = KINFER_CODEC_FRAMING_CONFLUENT, .schema_id = 0x01020304},
};

static void assert_tensor_equal(const kinfer_tensor *a, const kinfer_tensor *b) {
    assert_int_equal(a->name.len, b->name.len);
    assert_memory_equal(a->name.ptr, b->name.ptr, a->name.len);
    assert_int_equal(a->dtype, b->dtype);
    assert_int_equal(a->ndim, b->ndim);
    for (int d = 0; d < a->ndim; d++)
        assert_int_equal(a->shape[d], b->shape[d]);
    assert_int_equal(a->nbytes, b->nbytes);
    if (a->nbytes)
        assert_memory_equal(a->data, b->data, a->nbytes);
    else
        assert_null(b->data);
    assert_int_equal(a->nstrings, b->nstrings);
    for (size_t k = 0; k < a->nstrings; k++) {
        assert_int_equal(a->strings[k].len, b->strings[k].len);
        if (a->strings[k].len)
            assert_memory_equal(a->strings[k].ptr, b->strings[k].ptr, a->strings[k].len);
    }
}

static void test_sample_request_all_framings(void **state) {
    (void)state;
    sample s;
    sample_init(&s);
    kinfer_codec_encoder *enc;
    kinfer_codec_decoder *dec;
    kinfer_error err;
    assert_int_equal(kinfer_codec_encoder_new(&enc, &err), KINFER_OK);
    assert_int_equal(kinfer_codec_decoder_new(NULL, NULL, &dec, &err), KINFER_OK);
    for (size_t f = 0; f < 3; f++) {
        const uint8_t *msg;
        size_t len;
        assert_int_equal(kinfer_codec_request_encode(enc, &s.req, &frames[f], &msg, &len, &err),
                         KINFER_OK);
        kinfer_codec_request got;
        kinfer_err rc = kinfer_codec_request_decode(dec, msg, len, &got, &err);
        if (rc != KINFER_OK)
            fail_msg("framing %zu: %s", f, err.msg);
        assert_int_equal(got.frame.framing, frames[f].framing);
        if (frames[f].framing == KINFER_CODEC_FRAMING_CONFLUENT)
            assert_int_equal(got.frame.schema_id, 0x01020304);
        if (frames[f].framing == KINFER_CODEC_FRAMING_SINGLE_OBJECT)
            assert_true(got.frame.fingerprint ==
                        kinfer_codec_schema_fingerprint(KINFER_CODEC_SCHEMA_REQUEST));
        assert_true(str_eq(got.id, "req-1"));
        assert_true(str_eq(got.model, "fraud"));
        assert_true(got.has_model_version && str_eq(got.model_version, "3"));
        assert_true(got.has_deadline && got.deadline_ms == 1764288000123);
        assert_int_equal(got.priority, -2);
        assert_true(got.has_reply_to && str_eq(got.reply_to, "replies"));
        assert_int_equal(got.ninputs, 3);
        for (int i = 0; i < 3; i++)
            assert_tensor_equal(&s.inputs[i], &got.inputs[i]);
        /* zero-copy: tensor bytes point into the message */
        assert_true((const uint8_t *)got.inputs[0].data > msg &&
                    (const uint8_t *)got.inputs[0].data < msg + len);
        assert_int_equal(got.nparams, 2);
        assert_true(str_eq(got.params[0].key, "normalize") && str_eq(got.params[0].value, "true"));
        assert_true(str_eq(got.params[1].key, "k") && str_eq(got.params[1].value, ""));
    }
    kinfer_codec_decoder_destroy(dec);
    kinfer_codec_encoder_destroy(enc);
}

static void test_every_dtype_and_shape(void **state) {
    (void)state;
    static const int64_t shapes[][KINFER_MAX_DIMS] = {
        {0}, {0}, {3}, {2, 3}, {1, 2, 1, 3}, {2, 0, 4}, {1, 1, 1, 1, 1, 1, 1, 2}};
    static const int ndims[] = {0, 1, 1, 2, 4, 3, 8};
    kinfer_codec_encoder *enc;
    kinfer_codec_decoder *dec;
    kinfer_error err;
    assert_int_equal(kinfer_codec_encoder_new(&enc, &err), KINFER_OK);
    assert_int_equal(kinfer_codec_decoder_new(NULL, NULL, &dec, &err), KINFER_OK);
    uint8_t payload[64 * 8];
    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)(i * 37 + 11);
    kinfer_str strs[8] = {{"a", 1}, {"bb", 2}, {"", 0},  {"\xe2\x9c\x93", 3},
                          {"e", 1}, {"f", 1},  {"g", 1}, {"h", 1}};
    for (int dt = 0; dt < KINFER_DTYPE_COUNT; dt++) {
        for (size_t si = 0; si < sizeof(ndims) / sizeof(ndims[0]); si++) {
            kinfer_tensor t = {.name = {"t", 1}, .dtype = (kinfer_dtype)dt, .ndim = ndims[si]};
            uint64_t numel = 1;
            for (int d = 0; d < t.ndim; d++) {
                t.shape[d] = shapes[si][d];
                numel *= (uint64_t)shapes[si][d];
            }
            if (dt == KINFER_DTYPE_STRING) {
                t.nstrings = numel;
                t.strings = numel ? strs : NULL;
            } else {
                t.nbytes = numel * kinfer_dtype_size(t.dtype);
                t.data = t.nbytes ? payload : NULL;
            }
            kinfer_codec_response resp = {.id = {"r", 1},
                                          .model = {"m", 1},
                                          .status = 0,
                                          .outputs = &t,
                                          .noutputs = 1,
                                          .timing = {.queue_us = -5,
                                                     .compute_us = INT64_MAX,
                                                     .batch_size = INT32_MIN,
                                                     .worker = {"w", 1},
                                                     .device = {"cpu", 3}},
                                          .source = {{"topic", 5}, 7, INT64_MIN}};
            kinfer_codec_request req = {
                .id = {"q", 1}, .model = {"m", 1}, .inputs = &t, .ninputs = 1};
            for (size_t f = 0; f < 3; f++) {
                const uint8_t *msg;
                size_t len;
                assert_int_equal(
                    kinfer_codec_response_encode(enc, &resp, &frames[f], &msg, &len, &err),
                    KINFER_OK);
                kinfer_codec_response r;
                if (kinfer_codec_response_decode(dec, msg, len, &r, &err) != KINFER_OK)
                    fail_msg("dtype %d shape %zu framing %zu: %s", dt, si, f, err.msg);
                assert_int_equal(r.noutputs, 1);
                assert_tensor_equal(&t, &r.outputs[0]);
                assert_true(r.timing.queue_us == -5 && r.timing.compute_us == INT64_MAX);
                assert_true(r.timing.batch_size == INT32_MIN && r.source.offset == INT64_MIN);
                assert_true(str_eq(r.source.topic, "topic") && r.source.partition == 7);
                assert_true(str_eq(r.timing.device, "cpu"));

                assert_int_equal(
                    kinfer_codec_request_encode(enc, &req, &frames[f], &msg, &len, &err),
                    KINFER_OK);
                kinfer_codec_request q;
                if (kinfer_codec_request_decode(dec, msg, len, &q, &err) != KINFER_OK)
                    fail_msg("request dtype %d shape %zu: %s", dt, si, err.msg);
                assert_int_equal(q.ninputs, 1);
                assert_tensor_equal(&t, &q.inputs[0]);
                assert_false(q.has_deadline || q.has_reply_to || q.has_model_version);
            }
        }
    }
    kinfer_codec_decoder_destroy(dec);
    kinfer_codec_encoder_destroy(enc);
}

static void test_response_status_and_error(void **state) {
    (void)state;
    kinfer_codec_encoder *enc;
    kinfer_codec_decoder *dec;
    kinfer_error err;
    assert_int_equal(kinfer_codec_encoder_new(&enc, &err), KINFER_OK);
    assert_int_equal(kinfer_codec_decoder_new(NULL, NULL, &dec, &err), KINFER_OK);
    for (int st = 0; st <= 5; st++) {
        kinfer_codec_response resp = {.id = {"r", 1},
                                      .model = {"m", 1},
                                      .has_model_version = st & 1,
                                      .model_version = {"v", 1},
                                      .status = st,
                                      .has_error = st != 0,
                                      .error = {"boom", 4}};
        const uint8_t *msg;
        size_t len;
        assert_int_equal(kinfer_codec_response_encode(enc, &resp, NULL, &msg, &len, &err),
                         KINFER_OK);
        kinfer_codec_response r;
        assert_int_equal(kinfer_codec_response_decode(dec, msg, len, &r, &err), KINFER_OK);
        assert_int_equal(r.status, st);
        assert_int_equal(r.has_error, st != 0);
        assert_int_equal(r.has_model_version, st & 1);
        assert_int_equal(r.noutputs, 0);
        assert_null(r.outputs);
        if (st)
            assert_true(str_eq(r.error, "boom"));
        assert_int_equal(kinfer_err_from_wire_status(r.status), kinfer_err_from_wire_status(st));
    }
    kinfer_codec_decoder_destroy(dec);
    kinfer_codec_encoder_destroy(enc);
}

static void test_storage_reused(void **state) {
    (void)state;
    sample s;
    sample_init(&s);
    kinfer_codec_encoder *enc;
    kinfer_codec_decoder *dec;
    kinfer_error err;
    assert_int_equal(kinfer_codec_encoder_new(&enc, &err), KINFER_OK);
    assert_int_equal(kinfer_codec_decoder_new(NULL, NULL, &dec, &err), KINFER_OK);
    const uint8_t *msg, *first_out = NULL;
    size_t len;
    const kinfer_tensor *first_inputs = NULL;
    const kinfer_str *first_strings = NULL;
    for (int i = 0; i < 100; i++) {
        assert_int_equal(kinfer_codec_request_encode(enc, &s.req, NULL, &msg, &len, &err),
                         KINFER_OK);
        kinfer_codec_request got;
        assert_int_equal(kinfer_codec_request_decode(dec, msg, len, &got, &err), KINFER_OK);
        if (i == 0) {
            first_out = msg;
            first_inputs = got.inputs;
            first_strings = got.inputs[1].strings;
        }
        /* no allocation per message once warm: same buffers every time */
        assert_ptr_equal(msg, first_out);
        assert_ptr_equal(got.inputs, first_inputs);
        assert_ptr_equal(got.inputs[1].strings, first_strings);
    }
    size_t cap = dec->tensors_cap;
    assert_true(cap >= 3 && cap <= 8);
    kinfer_codec_decoder_destroy(dec);
    kinfer_codec_encoder_destroy(enc);
}

static void test_many_tensors_and_strings_grow(void **state) {
    (void)state;
    /* 40 STRING tensors of 10 strings each: storage grows several times
     * while decoding, and the fix-up must point each at its own strings. */
    enum { NT = 40, NS = 10 };
    kinfer_tensor ts[NT];
    char names[NT][8];
    kinfer_str strs[NT][NS];
    char text[NT][NS][8];
    for (int i = 0; i < NT; i++) {
        snprintf(names[i], sizeof(names[i]), "t%d", i);
        for (int k = 0; k < NS; k++) {
            snprintf(text[i][k], sizeof(text[i][k]), "%d.%d", i, k);
            strs[i][k] = (kinfer_str){text[i][k], strlen(text[i][k])};
        }
        ts[i] = (kinfer_tensor){.name = {names[i], strlen(names[i])},
                                .dtype = KINFER_DTYPE_STRING,
                                .ndim = 2,
                                .shape = {2, 5},
                                .strings = strs[i],
                                .nstrings = NS};
    }
    kinfer_codec_request req = {.id = {"x", 1}, .model = {"m", 1}, .inputs = ts, .ninputs = NT};
    kinfer_codec_encoder *enc;
    kinfer_codec_decoder *dec;
    kinfer_error err;
    assert_int_equal(kinfer_codec_encoder_new(&enc, &err), KINFER_OK);
    assert_int_equal(kinfer_codec_decoder_new(NULL, NULL, &dec, &err), KINFER_OK);
    const uint8_t *msg;
    size_t len;
    assert_int_equal(kinfer_codec_request_encode(enc, &req, NULL, &msg, &len, &err), KINFER_OK);
    kinfer_codec_request got;
    assert_int_equal(kinfer_codec_request_decode(dec, msg, len, &got, &err), KINFER_OK);
    assert_int_equal(got.ninputs, NT);
    for (int i = 0; i < NT; i++)
        assert_tensor_equal(&ts[i], &got.inputs[i]);
    kinfer_codec_decoder_destroy(dec);
    kinfer_codec_encoder_destroy(enc);
}

static void test_encoder_refuses_inconsistent_input(void **state) {
    (void)state;
    kinfer_codec_encoder *enc;
    kinfer_error err;
    assert_int_equal(kinfer_codec_encoder_new(&enc, &err), KINFER_OK);
    const uint8_t *msg;
    size_t len;
    float x[3] = {0};
    kinfer_tensor t = {.name = {"y", 1},
                       .dtype = KINFER_DTYPE_FP32,
                       .ndim = 1,
                       .shape = {4},
                       .data = x,
                       .nbytes = sizeof(x)};
    kinfer_codec_response resp = {.id = {"r", 1}, .outputs = &t, .noutputs = 1};
    expect_error(kinfer_codec_response_encode(enc, &resp, NULL, &msg, &len, &err), &err,
                 KINFER_ERR_INVALID_ARG, "outputs[0]: tensor 'y': FP32 shape [4] needs 16 data");
    resp.status = 6;
    expect_error(kinfer_codec_response_encode(enc, &resp, NULL, &msg, &len, &err), &err,
                 KINFER_ERR_INVALID_ARG, "status: 6 is not a wire Status");
    resp = (kinfer_codec_response){.model = {"m", 1}};
    expect_error(kinfer_codec_response_encode(enc, &resp, NULL, &msg, &len, &err), &err,
                 KINFER_ERR_INVALID_ARG, "id: must not be empty in a bare reply");
    kinfer_codec_frame cf = {.framing = KINFER_CODEC_FRAMING_CONFLUENT};
    assert_int_equal(kinfer_codec_response_encode(enc, &resp, &cf, &msg, &len, &err), KINFER_OK);
    kinfer_codec_request req = {.model = {"m", 1}};
    expect_error(kinfer_codec_request_encode(enc, &req, NULL, &msg, &len, &err), &err,
                 KINFER_ERR_INVALID_ARG, "id: must not be empty");
    kinfer_str one = {"a", 1};
    kinfer_tensor st = {.name = {"s", 1},
                        .dtype = KINFER_DTYPE_STRING,
                        .ndim = 1,
                        .shape = {1},
                        .strings = &one,
                        .nstrings = 1,
                        .data = x,
                        .nbytes = 4};
    req = (kinfer_codec_request){.id = {"q", 1}, .inputs = &st, .ninputs = 1};
    expect_error(kinfer_codec_request_encode(enc, &req, NULL, &msg, &len, &err), &err,
                 KINFER_ERR_INVALID_ARG, "inputs[0].data: STRING tensors carry strings");
    kinfer_codec_frame bad = {.framing = (kinfer_codec_framing)9};
    req.inputs = NULL;
    req.ninputs = 0;
    expect_error(kinfer_codec_request_encode(enc, &req, &bad, &msg, &len, &err), &err,
                 KINFER_ERR_INVALID_ARG, "unknown framing 9");
    kinfer_codec_encoder_destroy(enc);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sample_request_all_framings),
        cmocka_unit_test(test_every_dtype_and_shape),
        cmocka_unit_test(test_response_status_and_error),
        cmocka_unit_test(test_storage_reused),
        cmocka_unit_test(test_many_tensors_and_strings_grow),
        cmocka_unit_test(test_encoder_refuses_inconsistent_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
