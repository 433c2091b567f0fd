/* test_codec_malformed.c — every class of malformed or invalid input, each
 * checked for its error code AND the text that says what and where; plus
 * truncation at every byte offset of valid messages and the "2 GiB bytes
 * field in a 7-byte message" hazard that avro-c falls into. */
#include "codec_test_util.h"

#include "codec_decoder.h"

static kinfer_codec_decoder *dec;

static int setup(void **state) {
    (void)state;
    kinfer_error err;
    return kinfer_codec_decoder_new(NULL, NULL, &dec, &err) == KINFER_OK ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    kinfer_codec_decoder_destroy(dec);
    dec = NULL;
    return 0;
}

static kinfer_err decode(const tb *t, kinfer_codec_request *out, kinfer_error *err) {
    return kinfer_codec_request_decode(dec, t->b, t->n, out, err);
}

#define EXPECT(t, code, text)                                                                      \
    do {                                                                                           \
        kinfer_codec_request out_;                                                                 \
        kinfer_error err_;                                                                         \
        expect_error(decode((t), &out_, &err_), &err_, (code), (text));                            \
    } while (0)

/* One tensor "x" FP32 with the given shape and data bytes. */
static void tb_tensor(tb *t, int64_t dtype, int ndim, const int64_t *shape, size_t nbytes,
                      int nstrings) {
    tb_str(t, "x");
    tb_long(t, dtype);
    if (ndim) {
        tb_long(t, ndim);
        for (int i = 0; i < ndim; i++)
            tb_long(t, shape[i]);
    }
    tb_long(t, 0);
    tb_long(t, (int64_t)nbytes);
    for (size_t i = 0; i < nbytes; i++)
        tb_byte(t, 0);
    if (nstrings) {
        tb_long(t, nstrings);
        for (int i = 0; i < nstrings; i++)
            tb_str(t, "s");
    }
    tb_long(t, 0);
}

static void request_with_tensor(tb *t, int64_t dtype, int ndim, const int64_t *shape, size_t nbytes,
                                int nstrings) {
    memset(t, 0, sizeof(*t));
    tb_request_head(t, "id1");
    tb_long(t, 1);
    tb_tensor(t, dtype, ndim, shape, nbytes, nstrings);
    tb_long(t, 0);
    tb_request_tail(t);
}

static void test_valid_baseline(void **state) {
    (void)state;
    tb t;
    int64_t shape[] = {2};
    request_with_tensor(&t, KINFER_DTYPE_FP32, 1, shape, 8, 0);
    kinfer_codec_request out;
    kinfer_error err;
    assert_int_equal(decode(&t, &out, &err), KINFER_OK);
    assert_int_equal(out.ninputs, 1);
}

static void test_empty_and_negative_lengths(void **state) {
    (void)state;
    tb t = {0};
    kinfer_codec_request out;
    kinfer_error err;
    expect_error(kinfer_codec_request_decode(dec, t.b, 0, &out, &err), &err, KINFER_ERR_DECODE,
                 "message: empty");
    tb_long(&t, -3);
    tb_raw(&t, "abc", 3);
    /* 0x05 = -3: not a framing prefix, and a negative length as bare Avro */
    EXPECT(&t, KINFER_ERR_DECODE, "id: negative length -3 at byte 0");
    memset(&t, 0, sizeof(t));
    tb_str(&t, "id");
    tb_long(&t, -2);
    EXPECT(&t, KINFER_ERR_DECODE, "model: negative length -2 at byte 3");
}

static void test_huge_length_in_seven_bytes(void **state) {
    (void)state;
    /* id declares 2147483647 bytes: 5 varint bytes + 2 bytes of "payload" */
    tb t = {0};
    tb_long(&t, 2147483647);
    tb_raw(&t, "ab", 2);
    assert_int_equal(t.n, 7);
    EXPECT(&t, KINFER_ERR_DECODE, "id: truncated at byte 0: declared 2147483647 bytes, 2 remain");
    /* the same inside a tensor's data */
    memset(&t, 0, sizeof(t));
    tb_request_head(&t, "id1");
    tb_long(&t, 1);
    tb_str(&t, "x");
    tb_long(&t, 0);
    tb_long(&t, 0);
    tb_long(&t, 2147483647);
    tb_raw(&t, "12345", 5);
    EXPECT(&t, KINFER_ERR_DECODE,
           "inputs[0].data: truncated at byte 12: declared 2147483647 "
           "bytes, 5 remain");
    /* an array that declares 2^62 items in a few bytes */
    memset(&t, 0, sizeof(t));
    tb_request_head(&t, "id1");
    tb_long(&t, INT64_MAX / 2);
    tb_raw(&t, "xyz", 3);
    EXPECT(&t, KINFER_ERR_DECODE, "inputs: truncated at byte 7: block declares");
    memset(&t, 0, sizeof(t));
    tb_request_head(&t, "id1");
    tb_long(&t, 1);
    tb_str(&t, "x");
    tb_long(&t, 0);
    tb_long(&t, 1000000);
    EXPECT(&t, KINFER_ERR_DECODE,
           "inputs[0].shape: truncated at byte 11: block declares 1000000 items");
    /* inside a shape and a strings array: the path names the element */
    memset(&t, 0, sizeof(t));
    tb_request_head(&t, "id1");
    tb_long(&t, 1);
    tb_str(&t, "x");
    tb_long(&t, 0);
    tb_long(&t, 2);
    tb_long(&t, 1);
    tb_byte(&t, 0x80);
    EXPECT(&t, KINFER_ERR_DECODE, "inputs[0].shape[1]: truncated varint at byte 13");
    memset(&t, 0, sizeof(t));
    tb_request_head(&t, "id1");
    tb_long(&t, 1);
    tb_str(&t, "x");
    tb_long(&t, KINFER_DTYPE_STRING);
    tb_long(&t, 0);
    tb_long(&t, 0);
    tb_long(&t, 2);
    tb_str(&t, "a");
    tb_long(&t, 1000);
    tb_raw(&t, "bc", 2);
    EXPECT(&t, KINFER_ERR_DECODE,
           "inputs[0].strings[1]: truncated at byte 16: declared 1000 bytes, 2 remain");
    /* nothing was allocated for any of it: storage stays tiny */
    assert_true(dec->tensors_cap <= 8);
    assert_true(dec->strings_cap <= 8);
    assert_true(dec->params_cap <= 8);
}

static void test_varint_overflow(void **state) {
    (void)state;
    tb t = {0};
    for (int i = 0; i < 11; i++)
        tb_byte(&t, 0x82);
    tb_byte(&t, 0x00);
    /* 0x82 has the low bit clear so framing sees bare Avro */
    EXPECT(&t, KINFER_ERR_DECODE, "id: varint at byte 0 is longer than 10 bytes");
    memset(&t, 0, sizeof(t));
    for (int i = 0; i < 9; i++)
        tb_byte(&t, 0x82);
    tb_byte(&t, 0x02); /* bit 64: overflow */
    EXPECT(&t, KINFER_ERR_DECODE, "id: varint at byte 0 overflows 64 bits");
    memset(&t, 0, sizeof(t));
    tb_str(&t, "id");
    tb_byte(&t, 0x80);
    tb_byte(&t, 0x80);
    EXPECT(&t, KINFER_ERR_DECODE, "model: truncated varint at byte 3 (2 of at most 10");
}

static void test_bad_enum_and_union(void **state) {
    (void)state;
    tb t;
    request_with_tensor(&t, 11, 0, NULL, 0, 0);
    EXPECT(&t, KINFER_ERR_DECODE, "inputs[0].dtype: bad enum index 11 at byte 10 (valid 0..10)");
    request_with_tensor(&t, -1, 0, NULL, 0, 0);
    EXPECT(&t, KINFER_ERR_DECODE, "inputs[0].dtype: bad enum index -1");
    memset(&t, 0, sizeof(t));
    tb_str(&t, "id");
    tb_str(&t, "m");
    tb_long(&t, 2);
    EXPECT(&t, KINFER_ERR_DECODE, "model_version: bad union branch index 2 at byte 5 (valid 0..1)");
    memset(&t, 0, sizeof(t));
    tb_request_head(&t, "id");
    tb_long(&t, 0);
    tb_long(&t, -1);
    EXPECT(&t, KINFER_ERR_DECODE, "deadline_ms: bad union branch index -1");
    memset(&t, 0, sizeof(t));
    tb_request_head(&t, "id");
    tb_long(&t, 0);
    tb_long(&t, 0);
    tb_long(&t, 0);
    tb_long(&t, 7);
    EXPECT(&t, KINFER_ERR_DECODE, "reply_to: bad union branch index 7");
}

static void test_int_out_of_range(void **state) {
    (void)state;
    tb t = {0};
    tb_request_head(&t, "id");
    tb_long(&t, 0);
    tb_long(&t, 0);
    tb_long(&t, (int64_t)INT32_MAX + 1);
    EXPECT(&t, KINFER_ERR_DECODE, "priority: int at byte 8 out of 32-bit range (2147483648)");
}

static void test_blocks(void **state) {
    (void)state;
    tb t = {0};
    /* negative count with a negative block size */
    tb_request_head(&t, "id");
    tb_long(&t, -1);
    tb_long(&t, -5);
    EXPECT(&t, KINFER_ERR_DECODE, "block size of inputs: negative length -5");
    memset(&t, 0, sizeof(t));
    tb_request_head(&t, "id");
    tb_long(&t, -3);
    tb_long(&t, 4); /* 3 tensors can't fit 4 bytes */
    tb_raw(&t, "abcdefghijklmnop", 16);
    EXPECT(&t, KINFER_ERR_DECODE, "inputs: block at byte 6 declares 3 items in 4 bytes");
    memset(&t, 0, sizeof(t));
    tb_request_head(&t, "id");
    tb_long(&t, INT64_MIN);
    EXPECT(&t, KINFER_ERR_DECODE, "inputs: block count at byte 6 out of range");
}

static void test_trailing_bytes(void **state) {
    (void)state;
    tb t = {0};
    tb_request_head(&t, "id");
    tb_long(&t, 0);
    tb_request_tail(&t); /* with the generation fields */
    tb_byte(&t, 0);
    EXPECT(&t, KINFER_ERR_DECODE, "trailing bytes: 1 after the record ends at byte 15");
}

static void test_shape_and_data(void **state) {
    (void)state;
    tb t;
    int64_t neg[] = {-3, 2};
    request_with_tensor(&t, KINFER_DTYPE_FP32, 2, neg, 0, 0);
    EXPECT(&t, KINFER_ERR_INVALID_REQUEST, "inputs[0].shape[0]: negative dimension -3");
    int64_t two[] = {2};
    request_with_tensor(&t, KINFER_DTYPE_FP32, 1, two, 4, 0);
    EXPECT(&t, KINFER_ERR_INVALID_REQUEST,
           "inputs[0]: tensor 'x': FP32 shape [2] needs 8 data bytes, got 4");
    request_with_tensor(&t, KINFER_DTYPE_STRING, 1, two, 0, 3);
    EXPECT(&t, KINFER_ERR_INVALID_REQUEST,
           "inputs[0]: tensor 'x': STRING shape [2] needs 2 strings, got 3");
    request_with_tensor(&t, KINFER_DTYPE_STRING, 1, two, 1, 2);
    EXPECT(&t, KINFER_ERR_INVALID_REQUEST,
           "inputs[0].data: STRING tensors carry strings, not data (got 1 bytes)");
    request_with_tensor(&t, KINFER_DTYPE_INT8, 1, two, 2, 1);
    EXPECT(&t, KINFER_ERR_INVALID_REQUEST,
           "inputs[0].strings: INT8 tensors carry data, not strings (got 1)");
    int64_t huge[] = {1ll << 40, 1ll << 40};
    request_with_tensor(&t, KINFER_DTYPE_FP32, 2, huge, 0, 0);
    EXPECT(&t, KINFER_ERR_TOO_LARGE,
           "inputs[0].shape: [1099511627776, 1099511627776] has more than 268435456 elements");
    int64_t nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    request_with_tensor(&t, KINFER_DTYPE_FP32, 9, nine, 4, 0);
    EXPECT(&t, KINFER_ERR_TOO_LARGE, "inputs[0].shape: 9 dimensions, at most 8 allowed");
}

static void test_ids_and_text(void **state) {
    (void)state;
    tb t = {0};
    tb_str(&t, "");
    EXPECT(&t, KINFER_ERR_DECODE, "framing: truncated Confluent header: 1 of 5 bytes");
    memset(&t, 0, sizeof(t));
    tb_byte(&t, 0x00);
    tb_raw(&t, "\0\0\0\1", 4);
    tb_request_head(&t, "");
    tb_long(&t, 0);
    tb_long(&t, 0);
    tb_long(&t, 0);
    tb_long(&t, 1);
    tb_str(&t, "reply.here");
    tb_long(&t, 0);
    kinfer_codec_request out;
    kinfer_error err;
    expect_error(decode(&t, &out, &err), &err, KINFER_ERR_INVALID_REQUEST, "id: must not be empty");
    /* decodable-but-invalid: the reply address is still there */
    assert_true(out.has_reply_to && str_eq(out.reply_to, "reply.here"));

    memset(&t, 0, sizeof(t));
    tb_request_head(&t, "bad\xff");
    tb_long(&t, 0);
    tb_request_tail(&t);
    EXPECT(&t, KINFER_ERR_INVALID_REQUEST, "id: invalid UTF-8 at byte 3");
    memset(&t, 0, sizeof(t));
    tb_str(&t, "ok");
    tb_str(&t, "\xed\xa0\x80"); /* a UTF-16 surrogate */
    tb_long(&t, 0);
    tb_long(&t, 0);
    tb_request_tail(&t);
    EXPECT(&t, KINFER_ERR_INVALID_REQUEST, "model: invalid UTF-8 at byte 0");
    memset(&t, 0, sizeof(t));
    tb_request_head(&t, "ok");
    tb_long(&t, 0);
    tb_long(&t, 0);
    tb_long(&t, 0);
    tb_long(&t, 0);
    tb_long(&t, 2);
    tb_str(&t, "k");
    tb_str(&t, "1");
    tb_str(&t, "k");
    tb_str(&t, "\xc0\x80"); /* overlong NUL */
    tb_long(&t, 0);
    EXPECT(&t, KINFER_ERR_INVALID_REQUEST, "parameters[1].value: invalid UTF-8 at byte 0");
    memset(&t, 0, sizeof(t));
    tb_request_head(&t, "ok");
    tb_long(&t, 0);
    tb_long(&t, 0);
    tb_long(&t, 0);
    tb_long(&t, 0);
    tb_long(&t, 2);
    tb_str(&t, "k");
    tb_str(&t, "1");
    tb_str(&t, "k");
    tb_str(&t, "2");
    tb_long(&t, 0);
    EXPECT(&t, KINFER_ERR_INVALID_REQUEST, "parameters[1].key: duplicate key 'k'");
}

static void test_framing_errors(void **state) {
    (void)state;
    sample s;
    sample_init(&s);
    kinfer_codec_encoder *enc;
    kinfer_error err;
    assert_int_equal(kinfer_codec_encoder_new(&enc, &err), KINFER_OK);
    const uint8_t *msg;
    size_t len;
    kinfer_codec_frame so = {.framing = KINFER_CODEC_FRAMING_SINGLE_OBJECT};
    assert_int_equal(kinfer_codec_request_encode(enc, &s.req, &so, &msg, &len, &err), KINFER_OK);
    uint8_t buf[4096];
    memcpy(buf, msg, len);
    buf[5] ^= 0x40; /* wrong fingerprint */
    kinfer_codec_request out;
    expect_error(kinfer_codec_request_decode(dec, buf, len, &out, &err), &err,
                 KINFER_ERR_UNSUPPORTED, "is not io.kinfer.v1.InferenceRequest");
    buf[5] ^= 0x40;
    buf[1] = 0x02; /* wrong magic */
    expect_error(kinfer_codec_request_decode(dec, buf, len, &out, &err), &err, KINFER_ERR_DECODE,
                 "framing: bad single-object magic C3 02 (expected C3 01)");
    /* a response schema's single-object header on a request */
    kinfer_codec_response resp = {.id = {"r", 1}};
    assert_int_equal(kinfer_codec_response_encode(enc, &resp, &so, &msg, &len, &err), KINFER_OK);
    expect_error(kinfer_codec_request_decode(dec, msg, len, &out, &err), &err,
                 KINFER_ERR_UNSUPPORTED, "fingerprint");

    /* policies: bare refused, Confluent refused, Confluent id list */
    kinfer_codec_frame_policy pol = {.allow_single_object = true, .allow_confluent = true};
    uint32_t ids[] = {5, 6};
    pol.confluent_ids = ids;
    pol.n_confluent_ids = 2;
    kinfer_codec_decoder *strict;
    assert_int_equal(kinfer_codec_decoder_new(NULL, &pol, &strict, &err), KINFER_OK);
    ids[0] = 99; /* the decoder copied the list */
    assert_int_equal(kinfer_codec_request_encode(enc, &s.req, NULL, &msg, &len, &err), KINFER_OK);
    expect_error(kinfer_codec_request_decode(strict, msg, len, &out, &err), &err, KINFER_ERR_DECODE,
                 "bare Avro is not accepted here (first byte 0x0A)");
    kinfer_codec_frame cf = {.framing = KINFER_CODEC_FRAMING_CONFLUENT, .schema_id = 5};
    assert_int_equal(kinfer_codec_request_encode(enc, &s.req, &cf, &msg, &len, &err), KINFER_OK);
    assert_int_equal(kinfer_codec_request_decode(strict, msg, len, &out, &err), KINFER_OK);
    assert_int_equal(out.frame.schema_id, 5);
    cf.schema_id = 7;
    assert_int_equal(kinfer_codec_request_encode(enc, &s.req, &cf, &msg, &len, &err), KINFER_OK);
    expect_error(kinfer_codec_request_decode(strict, msg, len, &out, &err), &err,
                 KINFER_ERR_UNSUPPORTED, "Confluent schema id 7 is not one of the 2 configured");
    kinfer_codec_decoder_destroy(strict);
    pol = (kinfer_codec_frame_policy){.allow_bare = true};
    assert_int_equal(kinfer_codec_decoder_new(NULL, &pol, &strict, &err), KINFER_OK);
    expect_error(kinfer_codec_request_decode(strict, msg, len, &out, &err), &err, KINFER_ERR_DECODE,
                 "Confluent header (0x00) not accepted here");
    assert_int_equal(kinfer_codec_request_encode(enc, &s.req, &so, &msg, &len, &err), KINFER_OK);
    expect_error(kinfer_codec_request_decode(strict, msg, len, &out, &err), &err, KINFER_ERR_DECODE,
                 "single-object header (C3 01) not accepted here");
    kinfer_codec_decoder_destroy(strict);
    kinfer_codec_encoder_destroy(enc);
}

/* Every strict prefix of a valid message fails with a truncation error,
 * but one: the prefix that ends where a v1 record ends (before the
 * generation fields) is a v1 message, which decodes with those fields
 * empty. */
static void truncate_everywhere(const uint8_t *msg, size_t len, bool response) {
    char *copy = malloc(len ? len : 1);
    int v1_prefixes = 0;
    for (size_t n = 0; n < len; n++) {
        /* a fresh heap copy of exactly n bytes, so ASan sees any overread */
        uint8_t *p = (uint8_t *)realloc(copy, n ? n : 1);
        assert_non_null(p);
        copy = (char *)p;
        memcpy(p, msg, n);
        kinfer_error err;
        kinfer_err rc;
        bool gen_empty;
        if (response) {
            kinfer_codec_response out;
            rc = kinfer_codec_response_decode(dec, p, n, &out, &err);
            gen_empty = !out.has_generation && !out.has_chunk;
        } else {
            kinfer_codec_request out;
            rc = kinfer_codec_request_decode(dec, p, n, &out, &err);
            gen_empty =
                !out.has_prompt && !out.nmessages && !out.nprompt_token_ids && !out.has_generation;
        }
        if (rc == KINFER_OK && gen_empty && ++v1_prefixes == 1)
            continue;
        if (rc != KINFER_ERR_DECODE || (n > 0 && !strstr(err.msg, "truncated")))
            fail_msg("prefix %zu of %zu: %s \"%s\"", n, len, kinfer_err2name(rc), err.msg);
    }
    assert_int_equal(v1_prefixes, 1);
    free(copy);
}

static void test_truncated_at_every_offset(void **state) {
    (void)state;
    sample s;
    sample_init(&s);
    kinfer_codec_encoder *enc;
    kinfer_error err;
    assert_int_equal(kinfer_codec_encoder_new(&enc, &err), KINFER_OK);
    static const kinfer_codec_frame frames[] = {
        {.framing = KINFER_CODEC_FRAMING_BARE},
        {.framing = KINFER_CODEC_FRAMING_SINGLE_OBJECT},
        {.framing = KINFER_CODEC_FRAMING_CONFLUENT, .schema_id = 3}};
    float y[16] = {1};
    kinfer_tensor out_t = {.name = {"y", 1},
                           .dtype = KINFER_DTYPE_FP32,
                           .ndim = 2,
                           .shape = {1, 16},
                           .data = y,
                           .nbytes = sizeof(y)};
    kinfer_codec_response resp = {.id = {"r", 1},
                                  .model = {"m", 1},
                                  .has_model_version = true,
                                  .model_version = {"v", 1},
                                  .status = 1,
                                  .has_error = true,
                                  .error = {"e", 1},
                                  .outputs = &out_t,
                                  .noutputs = 1,
                                  .timing = {1, 2, 3, {"w", 1}, {"d", 1}},
                                  .source = {{"t", 1}, 4, 5}};
    for (int f = 0; f < 3; f++) {
        const uint8_t *msg;
        size_t len;
        assert_int_equal(kinfer_codec_request_encode(enc, &s.req, &frames[f], &msg, &len, &err),
                         KINFER_OK);
        truncate_everywhere(msg, len, false);
        assert_int_equal(kinfer_codec_response_encode(enc, &resp, &frames[f], &msg, &len, &err),
                         KINFER_OK);
        truncate_everywhere(msg, len, true);
    }
    kinfer_codec_encoder_destroy(enc);
}

static void test_response_specific(void **state) {
    (void)state;
    tb t = {0};
    tb_str(&t, "r");
    tb_str(&t, "m");
    tb_long(&t, 0);
    tb_long(&t, 6); /* status 6 */
    kinfer_codec_response out;
    kinfer_error err;
    expect_error(kinfer_codec_response_decode(dec, t.b, t.n, &out, &err), &err, KINFER_ERR_DECODE,
                 "status: bad enum index 6 at byte 5 (valid 0..5)");
    memset(&t, 0, sizeof(t));
    tb_str(&t, "r");
    tb_str(&t, "m");
    tb_long(&t, 0);
    tb_long(&t, 0);
    tb_long(&t, 0);
    tb_long(&t, 0);
    tb_long(&t, 1);
    tb_long(&t, 2);
    tb_long(&t, (int64_t)INT32_MIN - 1);
    expect_error(kinfer_codec_response_decode(dec, t.b, t.n, &out, &err), &err, KINFER_ERR_DECODE,
                 "timing.batch_size: int at byte 10 out of 32-bit range");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_baseline),
        cmocka_unit_test(test_empty_and_negative_lengths),
        cmocka_unit_test(test_huge_length_in_seven_bytes),
        cmocka_unit_test(test_varint_overflow),
        cmocka_unit_test(test_bad_enum_and_union),
        cmocka_unit_test(test_int_out_of_range),
        cmocka_unit_test(test_blocks),
        cmocka_unit_test(test_trailing_bytes),
        cmocka_unit_test(test_shape_and_data),
        cmocka_unit_test(test_ids_and_text),
        cmocka_unit_test(test_framing_errors),
        cmocka_unit_test(test_truncated_at_every_offset),
        cmocka_unit_test(test_response_specific),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
