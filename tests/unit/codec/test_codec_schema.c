/* test_codec_schema.c — Parsing Canonical Form and CRC-64-AVRO against the
 * Avro project's published vectors (share/test/data/schema-tests.txt), and
 * the kinfer schemas' embedded text, canonical form and fingerprints. */
#include "codec_test_util.h"

typedef struct vec {
    const char *input;
    const char *canonical;
    int64_t fingerprint; /* as published: a signed Java long; 0 = none given */
} vec;

static const vec vectors[] = {
    {"\"null\"", "\"null\"", 7195948357588979594},
    {"{\"type\":\"null\"}", "\"null\"", 0},
    {"\"boolean\"", "\"boolean\"", -6970731678124411036},
    {"\"int\"", "\"int\"", 8247732601305521295},
    {"{\"type\":\"int\"}", "\"int\"", 0},
    {"\"long\"", "\"long\"", -3434872931120570953},
    {"\"float\"", "\"float\"", 5583340709985441680},
    {"\"double\"", "\"double\"", -8181574048448539266},
    {"\"bytes\"", "\"bytes\"", 5746618253357095269},
    {"\"string\"", "\"string\"", -8142146995180207161},
    {"[  ]", "[]", -1241056759729112623},
    {"[ \"int\"  ]", "[\"int\"]", -5232228896498058493},
    {"[ \"int\" , {\"type\":\"boolean\"} ]", "[\"int\",\"boolean\"]", 5392556393470105090},
    {"{\"fields\":[], \"type\":\"record\", \"name\":\"foo\"}",
     "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[]}", -4824392279771201922},
    {"{\"fields\":[], \"type\":\"record\", \"name\":\"foo\", \"namespace\":\"x.y\"}",
     "{\"name\":\"x.y.foo\",\"type\":\"record\",\"fields\":[]}", 5916914534497305771},
    {"{\"fields\":[], \"type\":\"record\", \"name\":\"a.b.foo\", \"namespace\":\"x.y\"}",
     "{\"name\":\"a.b.foo\",\"type\":\"record\",\"fields\":[]}", -4616218487480524110},
    {"{\"fields\":[], \"type\":\"record\", \"name\":\"foo\", \"doc\":\"foo\", "
     "\"aliases\":[\"foo\",\"bar\"]}",
     "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[]}", -4824392279771201922},
    {"{\"fields\":[{\"type\":{\"type\":\"boolean\"}, \"name\":\"f1\"}], \"type\":\"record\", "
     "\"name\":\"foo\"}",
     "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[{\"name\":\"f1\",\"type\":\"boolean\"}]}",
     7843277075252814651},
    {"{ \"fields\":[{\"type\":\"boolean\", \"aliases\":[], \"name\":\"f1\", "
     "\"default\":\"true\"},\n"
     "  {\"order\":\"descending\",\"name\":\"f2\",\"doc\":\"Hello\",\"type\":\"int\"}],\n"
     "  \"type\":\"record\", \"name\":\"foo\"\n}",
     "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[{\"name\":\"f1\",\"type\":\"boolean\"},{"
     "\"name\":\"f2\",\"type\":\"int\"}]}",
     -4860222112080293046},
    {"{\"type\":\"enum\", \"name\":\"foo\", \"symbols\":[\"A1\"]}",
     "{\"name\":\"foo\",\"type\":\"enum\",\"symbols\":[\"A1\"]}", -6342190197741309591},
    {"{\"namespace\":\"x.y.z\", \"type\":\"enum\", \"name\":\"foo\", \"doc\":\"foo bar\", "
     "\"symbols\":[\"A1\", \"A2\"]}",
     "{\"name\":\"x.y.z.foo\",\"type\":\"enum\",\"symbols\":[\"A1\",\"A2\"]}",
     -4448647247586288245},
    {"{\"name\":\"foo\",\"type\":\"fixed\",\"size\":15}",
     "{\"name\":\"foo\",\"type\":\"fixed\",\"size\":15}", 1756455273707447556},
    {"{\"namespace\":\"x.y.z\", \"type\":\"fixed\", \"name\":\"foo\", \"doc\":\"foo bar\", "
     "\"size\":32}",
     "{\"name\":\"x.y.z.foo\",\"type\":\"fixed\",\"size\":32}", -3064184465700546786},
    {"{ \"items\":{\"type\":\"null\"}, \"type\":\"array\"}",
     "{\"type\":\"array\",\"items\":\"null\"}", -589620603366471059},
    {"{ \"values\":\"string\", \"type\":\"map\"}", "{\"type\":\"map\",\"values\":\"string\"}",
     -8732877298790414990},
    {"{\"name\":\"PigValue\",\"type\":\"record\",\n"
     " \"fields\":[{\"name\":\"value\", \"type\":[\"null\", \"int\", \"long\", \"PigValue\"]}]}",
     "{\"name\":\"PigValue\",\"type\":\"record\",\"fields\":[{\"name\":\"value\",\"type\":["
     "\"null\","
     "\"int\",\"long\",\"PigValue\"]}]}",
     -1759257747318642341},
};

static void test_spec_vectors(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        char *form = NULL;
        kinfer_error err;
        kinfer_err rc = kinfer_codec_canonical_form(vectors[i].input, &form, &err);
        if (rc != KINFER_OK)
            fail_msg("vector %zu: %s", i, err.msg);
        if (strcmp(form, vectors[i].canonical) != 0)
            fail_msg("vector %zu: got %s want %s", i, form, vectors[i].canonical);
        if (vectors[i].fingerprint) {
            uint64_t fp = kinfer_codec_crc64_avro(form, strlen(form));
            if (fp != (uint64_t)vectors[i].fingerprint)
                fail_msg("vector %zu: fingerprint %lld want %lld", i, (long long)fp,
                         (long long)vectors[i].fingerprint);
        }
        free(form);
    }
}

static void test_crc_empty_is_seed(void **state) {
    (void)state;
    assert_true(kinfer_codec_crc64_avro("", 0) == 0xc15d213aa4d7a795ull);
}

static void test_kinfer_schemas(void **state) {
    (void)state;
    for (int s = 0; s < 2; s++) {
        const char *canon = kinfer_codec_schema_canonical((kinfer_codec_schema)s);
        assert_non_null(canon);
        assert_non_null(strstr(kinfer_codec_schema_json((kinfer_codec_schema)s), "io.kinfer.v1"));
        assert_true(kinfer_codec_schema_fingerprint((kinfer_codec_schema)s) ==
                    kinfer_codec_crc64_avro(canon, strlen(canon)));
    }
    const char *req = kinfer_codec_schema_canonical(KINFER_CODEC_SCHEMA_REQUEST);
    assert_int_equal(
        strncmp(req, "{\"name\":\"io.kinfer.v1.InferenceRequest\",\"type\":\"record\"", 55), 0);
    /* STRIP: docs and defaults are gone. */
    assert_null(strstr(req, "doc"));
    assert_null(strstr(req, "default"));
    /* The embedded texts are the committed files, byte for byte. */
    static const char *const files[2] = {KINFER_SOURCE_DIR "/schemas/inference_request.avsc",
                                         KINFER_SOURCE_DIR "/schemas/inference_response.avsc"};
    for (int s = 0; s < 2; s++) {
        FILE *f = fopen(files[s], "rb");
        assert_non_null(f);
        static char buf[16384];
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        assert_true(n < sizeof(buf) - 1); /* the whole file was read */
        buf[n] = '\0';
        assert_string_equal(buf, kinfer_codec_schema_json((kinfer_codec_schema)s));
    }
    /* The values fastavro 1.13 gives for the committed files (fingerprint()
     * of to_parsing_canonical_form(), read as little-endian; the fastavro
     * ctest checks live). Pinned because producers put them on the wire: a
     * schema edit that changes one breaks every single-object client, so it
     * must be deliberate and update these. */
    assert_true(kinfer_codec_schema_fingerprint(KINFER_CODEC_SCHEMA_REQUEST) ==
                0x41e6d6b8cbc17849ull);
    assert_true(kinfer_codec_schema_fingerprint(KINFER_CODEC_SCHEMA_RESPONSE) ==
                0xe0f4c741658b4509ull);
    /* The released v1 schemas (schemas/v1/), still accepted on input. */
    assert_true(kinfer_codec_schema_fingerprint_v1(KINFER_CODEC_SCHEMA_REQUEST) ==
                0xe0d975b88bea4690ull);
    assert_true(kinfer_codec_schema_fingerprint_v1(KINFER_CODEC_SCHEMA_RESPONSE) ==
                0x7af6bafe9f47633aull);
}

static void test_canonical_errors(void **state) {
    (void)state;
    char *form = NULL;
    kinfer_error err;
    expect_error(kinfer_codec_canonical_form("{\"type\":", &form, &err), &err,
                 KINFER_ERR_INVALID_ARG, "not JSON");
    expect_error(kinfer_codec_canonical_form("\"Nope\"", &form, &err), &err, KINFER_ERR_INVALID_ARG,
                 "unknown type 'Nope'");
    expect_error(kinfer_codec_canonical_form("{\"type\":\"record\",\"fields\":[]}", &form, &err),
                 &err, KINFER_ERR_INVALID_ARG, "record without a name");
    expect_error(kinfer_codec_canonical_form("{\"type\":\"enum\",\"name\":\"E\"}", &form, &err),
                 &err, KINFER_ERR_INVALID_ARG, "no symbols");
    expect_error(kinfer_codec_canonical_form("{\"type\":\"array\"}", &form, &err), &err,
                 KINFER_ERR_INVALID_ARG, "without \"items\"");
    expect_error(kinfer_codec_canonical_form("42", &form, &err), &err, KINFER_ERR_INVALID_ARG,
                 "must be a string, array or object");
    /* Deep nesting is refused, not a stack overflow. */
    char deep[4096] = "";
    for (int i = 0; i < 100; i++)
        strcat(deep, "{\"type\":\"array\",\"items\":");
    strcat(deep, "\"int\"");
    for (int i = 0; i < 100; i++)
        strcat(deep, "}");
    expect_error(kinfer_codec_canonical_form(deep, &form, &err), &err, KINFER_ERR_INVALID_ARG,
                 "deeper than 64");
    assert_null(form);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_vectors),
        cmocka_unit_test(test_crc_empty_is_seed),
        cmocka_unit_test(test_kinfer_schemas),
        cmocka_unit_test(test_canonical_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
