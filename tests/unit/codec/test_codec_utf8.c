/* test_codec_utf8.c — the UTF-8 guarantee: validation of every ill-formed
 * class, the repair rule (Unicode §3.9 maximal subparts to U+FFFD, cut at a
 * character boundary) against the standard's own example and as a property
 * over all short byte strings, and the encoders refusing (never writing) a
 * string that is not valid UTF-8 in any field. Python's decode(errors=
 * "replace") is the second reference, in test_codec_fastavro.py. */
#include "codec_test_util.h"

#define FFFD "\xef\xbf\xbd"

static void expect_repair(const char *in, size_t len, const char *want) {
    char out[256];
    size_t n = kinfer_codec_utf8_repair(in, len, out, sizeof out);
    if (n != strlen(want) || memcmp(out, want, n) != 0)
        fail_msg("repair of %zu bytes gave %zu bytes, want %zu", len, n, strlen(want));
    assert_true(kinfer_codec_utf8_valid(out, n, NULL));
}

static void test_validation_classes(void **state) {
    (void)state;
    static const struct {
        const char *s;
        size_t bad; /* SIZE_MAX = valid */
    } cases[] = {
        {"", SIZE_MAX},
        {"plain ascii, longer than eight bytes", SIZE_MAX},
        {"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", SIZE_MAX}, /* é € 😀 */
        {"\xf4\x8f\xbf\xbf", SIZE_MAX},                     /* U+10FFFF */
        {"\xed\x9f\xbf", SIZE_MAX},                         /* U+D7FF */
        {"ab\x80", 2},                                      /* lone continuation */
        {"\xc0\x80", 0},                                    /* overlong NUL */
        {"\xc1\xbf", 0},                                    /* overlong */
        {"\xe0\x9f\xbf", 0},                                /* overlong 3-byte */
        {"\xf0\x8f\xbf\xbf", 0},                            /* overlong 4-byte */
        {"x\xed\xa0\x80", 1},                               /* surrogate U+D800 */
        {"\xf4\x90\x80\x80", 0},                            /* U+110000 */
        {"\xf5\x80\x80\x80", 0},                            /* no such lead */
        {"\xff", 0},
        {"12345678\xe2\x82", 8}, /* truncated at the end, after the fast path */
        {"\xe2\x28\xa1", 0},     /* bad second byte */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t bad = 99;
        bool ok = kinfer_codec_utf8_valid(cases[i].s, strlen(cases[i].s), &bad);
        if (ok != (cases[i].bad == SIZE_MAX) || (!ok && bad != cases[i].bad))
            fail_msg("case %zu: valid=%d bad=%zu", i, ok, bad);
    }
}

static void test_repair_unicode_example(void **state) {
    (void)state;
    /* Unicode 15 §3.9, Table 3-8: each maximal subpart is one U+FFFD. */
    const char in[] = "\x61\xf1\x80\x80\xe1\x80\xc2\x62\x80\x63\x80\xbf\x64";
    expect_repair(in, sizeof in - 1, "a" FFFD FFFD FFFD "b" FFFD "c" FFFD FFFD "d");
    /* Ill-formed by the second byte: one U+FFFD each, then go on. */
    expect_repair("\xe0\x80\x80", 3, FFFD FFFD FFFD);
    expect_repair("\xed\xa0\x80z", 4, FFFD FFFD FFFD "z");
    expect_repair("\xf4\x90\x80\x80", 4, FFFD FFFD FFFD FFFD);
    expect_repair("\xf0\x9f\x98", 3, FFFD); /* a truncated emoji is one subpart */
    expect_repair("\xf0\x9f\x98\x80", 4, "\xf0\x9f\x98\x80");
    expect_repair("", 0, "");
}

static void test_repair_cuts_on_boundaries(void **state) {
    (void)state;
    char out[16];
    /* ASCII may be cut anywhere, a character only whole. */
    assert_int_equal(kinfer_codec_utf8_repair("abcdef", 6, out, 4), 4);
    assert_int_equal(kinfer_codec_utf8_repair("ab\xe2\x82\xac", 5, out, 4), 2);
    assert_int_equal(kinfer_codec_utf8_repair("ab\xff", 3, out, 4), 2); /* FFFD needs 3 */
    assert_int_equal(kinfer_codec_utf8_repair("ab\xff", 3, out, 5), 5);
    assert_int_equal(kinfer_codec_utf8_repair("abc", 3, out, 0), 0);
    /* prefix: the longest whole-character prefix within max. */
    const char *s = "a\xc3\xa9\xe2\x82\xac";
    assert_int_equal(kinfer_codec_utf8_prefix(s, 6, 10), 6);
    assert_int_equal(kinfer_codec_utf8_prefix(s, 6, 5), 3);
    assert_int_equal(kinfer_codec_utf8_prefix(s, 6, 4), 3);
    assert_int_equal(kinfer_codec_utf8_prefix(s, 6, 2), 1);
    assert_int_equal(kinfer_codec_utf8_prefix(s, 6, 0), 0);
}

/* Every string of up to 3 bytes drawn from an alphabet that covers each
 * boundary of Table 3-7, plus random longer ones: repair output is valid,
 * valid input comes back unchanged, and a cap never splits a character. */
static void test_repair_property(void **state) {
    (void)state;
    static const uint8_t alpha[] = {0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf,
                                    0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xec, 0xed, 0xee,
                                    0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xff};
    const size_t na = sizeof alpha;
    char in[16], out[64];
    uint64_t rng = 0x15u;
    for (size_t iter = 0; iter < na * na * na + 20000; iter++) {
        size_t len;
        if (iter < na * na * na) {
            in[0] = (char)alpha[iter % na];
            in[1] = (char)alpha[iter / na % na];
            in[2] = (char)alpha[iter / na / na];
            len = 3;
        } else {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            len = 1 + (size_t)(rng >> 60);
            for (size_t k = 0; k < len; k++) {
                rng = rng * 6364136223846793005ull + 1442695040888963407ull;
                in[k] = (char)alpha[(rng >> 33) % na];
            }
        }
        for (size_t l = 0; l <= len; l++) {
            size_t n = kinfer_codec_utf8_repair(in, l, out, sizeof out);
            assert_true(n <= 3 * l);
            assert_true(kinfer_codec_utf8_valid(out, n, NULL));
            if (kinfer_codec_utf8_valid(in, l, NULL)) {
                assert_int_equal(n, l);
                assert_memory_equal(out, in, l);
            }
            for (size_t cap = 0; l == len && cap < n; cap++) {
                char cut[64];
                size_t m = kinfer_codec_utf8_repair(in, l, cut, cap);
                assert_true(m <= cap);
                assert_true(kinfer_codec_utf8_valid(cut, m, NULL));
                assert_memory_equal(cut, out, m); /* a prefix of the full repair */
                assert_true(cap - m < 4);         /* and only a partial character short */
            }
        }
    }
}

/* A response with every string field valid; tests break one at a time. */
typedef struct resp_fixture {
    kinfer_str strs[2];
    kinfer_tensor out[1];
    kinfer_codec_response resp;
} resp_fixture;

static void resp_init(resp_fixture *f) {
    memset(f, 0, sizeof *f);
    f->strs[0] = (kinfer_str){"ok", 2};
    f->strs[1] = (kinfer_str){"\xc3\xa9", 2};
    f->out[0] = (kinfer_tensor){.name = {"o", 1},
                                .dtype = KINFER_DTYPE_STRING,
                                .ndim = 1,
                                .shape = {2},
                                .strings = f->strs,
                                .nstrings = 2};
    f->resp = (kinfer_codec_response){.id = {"r", 1},
                                      .model = {"m", 1},
                                      .has_model_version = true,
                                      .model_version = {"1", 1},
                                      .status = 1,
                                      .has_error = true,
                                      .error = {"e", 1},
                                      .outputs = f->out,
                                      .noutputs = 1,
                                      .timing = {.worker = {"w", 1}, .device = {"cpu", 3}},
                                      .source = {.topic = {"t", 1}}};
}

static void test_response_encoder_refuses_invalid_utf8(void **state) {
    (void)state;
    static const char *const fields[] = {"id",
                                         "model",
                                         "model_version",
                                         "error",
                                         "outputs[0].name",
                                         "outputs[0].strings[1]",
                                         "timing.worker",
                                         "timing.device",
                                         "source.topic"};
    kinfer_codec_encoder *enc;
    kinfer_error err;
    assert_int_equal(kinfer_codec_encoder_new(&enc, &err), KINFER_OK);
    const kinfer_str bad = {"x\xc3(", 3};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        resp_fixture f;
        resp_init(&f);
        const uint8_t *out = (const uint8_t *)"sentinel";
        size_t len = 12345;
        assert_int_equal(kinfer_codec_response_encode(enc, &f.resp, NULL, &out, &len, &err),
                         KINFER_OK);
        out = (const uint8_t *)"sentinel";
        len = 12345;
        kinfer_str *target[] = {
            &f.resp.id,          &f.resp.model, &f.resp.model_version, &f.resp.error,
            &f.out[0].name,      &f.strs[1],    &f.resp.timing.worker, &f.resp.timing.device,
            &f.resp.source.topic};
        *target[i] = bad;
        char want[96];
        snprintf(want, sizeof want, "%s: invalid UTF-8 at byte 1", fields[i]);
        expect_error(kinfer_codec_response_encode(enc, &f.resp, NULL, &out, &len, &err), &err,
                     KINFER_ERR_INVALID_ARG, want);
        /* Nothing handed out: the caller cannot produce it by mistake. */
        assert_string_equal((const char *)out, "sentinel");
        assert_int_equal(len, 12345);
    }
    kinfer_codec_encoder_destroy(enc);
}

static void test_request_encoder_refuses_invalid_utf8(void **state) {
    (void)state;
    kinfer_codec_encoder *enc;
    kinfer_error err;
    assert_int_equal(kinfer_codec_encoder_new(&enc, &err), KINFER_OK);
    const kinfer_str bad = {"\xed\xa0\x80", 3}; /* a surrogate */
    static const char *const fields[] = {"id",
                                         "model",
                                         "model_version",
                                         "reply_to",
                                         "inputs[1].strings[2]",
                                         "parameters[1].key",
                                         "parameters[0].value",
                                         "inputs[0].name"};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        sample s;
        sample_init(&s);
        kinfer_str *target[] = {&s.req.id,          &s.req.model,     &s.req.model_version,
                                &s.req.reply_to,    &s.words[2],      &s.params[1].key,
                                &s.params[0].value, &s.inputs[0].name};
        *target[i] = bad;
        const uint8_t *out = NULL;
        size_t len = 0;
        char want[96];
        snprintf(want, sizeof want, "%s: invalid UTF-8 at byte 0", fields[i]);
        expect_error(kinfer_codec_request_encode(enc, &s.req, NULL, &out, &len, &err), &err,
                     KINFER_ERR_INVALID_ARG, want);
        assert_null(out);
    }
    kinfer_codec_encoder_destroy(enc);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validation_classes),
        cmocka_unit_test(test_repair_unicode_example),
        cmocka_unit_test(test_repair_cuts_on_boundaries),
        cmocka_unit_test(test_repair_property),
        cmocka_unit_test(test_response_encoder_refuses_invalid_utf8),
        cmocka_unit_test(test_request_encoder_refuses_invalid_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
