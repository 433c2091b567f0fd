/* test_codec_resolve.c — writer -> reader schema resolution, one rule per
 * test (added field with default, removed field, promotions, reordered
 * fields, enums, unions), schemas that do not resolve, hostile writer
 * bytes, and the decoder's use of it: an older and a newer client's
 * InferenceRequest read as the current one, by fingerprint and by a given
 * writer. */
#include <jansson.h>

#include "codec_test_util.h"

#define REC(fields) "{\"type\":\"record\",\"name\":\"R\",\"fields\":[" fields "]}"

/* Resolves body (writer w) to reader r and checks the output bytes. */
static void expect(const char *w, const char *r, const tb *body, const tb *want) {
    kinfer_codec_resolution *res = NULL;
    kinfer_error err = {0};
    kinfer_err rc = kinfer_codec_resolution_new(w, r, &res, &err);
    if (rc != KINFER_OK)
        fail_msg("resolution_new: %s", err.msg);
    uint8_t *out = NULL;
    size_t n = 0;
    rc = kinfer_codec_resolve(res, body->b, body->n, 1 << 20, &out, &n, &err);
    if (rc != KINFER_OK)
        fail_msg("resolve: %s", err.msg);
    assert_int_equal(n, want->n);
    assert_memory_equal(out, want->b, n);
    free(out);
    kinfer_codec_resolution_destroy(res);
}

/* Resolves body and expects code with text in the message. */
static void expect_fail(const char *w, const char *r, const tb *body, kinfer_err code,
                        const char *text) {
    kinfer_codec_resolution *res = NULL;
    kinfer_error err = {0};
    kinfer_err rc = kinfer_codec_resolution_new(w, r, &res, &err);
    if (rc == KINFER_OK) {
        uint8_t *out = NULL;
        size_t n = 0;
        rc = kinfer_codec_resolve(res, body->b, body->n, 1 << 20, &out, &n, &err);
        assert_null(out);
        kinfer_codec_resolution_destroy(res);
    }
    assert_int_equal(rc, code);
    if (!strstr(err.msg, text))
        fail_msg("message \"%s\" lacks \"%s\"", err.msg, text);
}

static void test_identity(void **state) {
    (void)state;
    const char *s = REC("{\"name\":\"a\",\"type\":\"int\"}");
    kinfer_codec_resolution *res;
    kinfer_error err;
    assert_int_equal(kinfer_codec_resolution_new(s, s, &res, &err), KINFER_OK);
    assert_true(kinfer_codec_resolution_identity(res));
    kinfer_codec_resolution_destroy(res);
    tb b = {0};
    tb_long(&b, 7);
    expect(s, s, &b, &b);
}

static void test_added_field_takes_default(void **state) {
    (void)state;
    tb b = {0}, want = {0};
    tb_long(&b, 5);
    tb_long(&want, 5);
    tb_str(&want, "dflt");
    tb_long(&want, 0); /* ["null","long"] default null: branch 0 */
    tb_long(&want, 1); /* array [1] */
    tb_long(&want, 1);
    tb_long(&want, 0);
    tb_long(&want, 0); /* empty map */
    expect(REC("{\"name\":\"a\",\"type\":\"int\"}"),
           REC("{\"name\":\"a\",\"type\":\"int\"},"
               "{\"name\":\"s\",\"type\":\"string\",\"default\":\"dflt\"},"
               "{\"name\":\"o\",\"type\":[\"null\",\"long\"],\"default\":null},"
               "{\"name\":\"l\",\"type\":{\"type\":\"array\",\"items\":\"int\"},\"default\":[1]},"
               "{\"name\":\"m\",\"type\":{\"type\":\"map\",\"values\":\"string\"},\"default\":{}}"),
           &b, &want);
}

static void test_added_field_without_default_refused(void **state) {
    (void)state;
    tb b = {0};
    expect_fail(REC("{\"name\":\"a\",\"type\":\"int\"}"),
                REC("{\"name\":\"a\",\"type\":\"int\"},{\"name\":\"b\",\"type\":\"int\"}"), &b,
                KINFER_ERR_UNSUPPORTED, "b: reader field missing from the writer schema");
}

static void test_removed_field_skipped(void **state) {
    (void)state;
    tb b = {0}, want = {0};
    tb_long(&b, 1);
    tb_str(&b, "gone");
    tb_long(&b, 2); /* array of 2 maps */
    tb_long(&b, 1);
    tb_str(&b, "k");
    tb_str(&b, "v");
    tb_long(&b, 0);
    tb_long(&b, 0);
    tb_long(&b, 0);
    tb_long(&b, 1); /* union branch 1: double */
    double d = 2.5;
    tb_raw(&b, &d, 8);
    tb_long(&b, 3);
    tb_long(&want, 1);
    tb_long(&want, 3);
    expect(REC("{\"name\":\"a\",\"type\":\"int\"},{\"name\":\"x\",\"type\":\"string\"},"
               "{\"name\":\"y\",\"type\":{\"type\":\"array\",\"items\":{\"type\":\"map\","
               "\"values\":\"string\"}}},{\"name\":\"z\",\"type\":[\"null\",\"double\"]},"
               "{\"name\":\"b\",\"type\":\"long\"}"),
           REC("{\"name\":\"a\",\"type\":\"int\"},{\"name\":\"b\",\"type\":\"long\"}"), &b, &want);
}

static void test_promotions(void **state) {
    (void)state;
    tb b = {0}, want = {0};
    tb_long(&b, -3);        /* int -> long */
    tb_long(&b, 4);         /* int -> float */
    tb_long(&b, 1LL << 40); /* long -> double */
    float f = 1.5f;         /* float -> double */
    tb_raw(&b, &f, 4);
    tb_str(&b, "text"); /* string -> bytes */
    tb_str(&b, "raw");  /* bytes -> string */
    tb_long(&want, -3);
    float f4 = 4.0f;
    tb_raw(&want, &f4, 4);
    double d40 = (double)(1LL << 40), d15 = 1.5;
    tb_raw(&want, &d40, 8);
    tb_raw(&want, &d15, 8);
    tb_str(&want, "text");
    tb_str(&want, "raw");
    expect(REC("{\"name\":\"a\",\"type\":\"int\"},{\"name\":\"b\",\"type\":\"int\"},"
               "{\"name\":\"c\",\"type\":\"long\"},{\"name\":\"d\",\"type\":\"float\"},"
               "{\"name\":\"e\",\"type\":\"string\"},{\"name\":\"f\",\"type\":\"bytes\"}"),
           REC("{\"name\":\"a\",\"type\":\"long\"},{\"name\":\"b\",\"type\":\"float\"},"
               "{\"name\":\"c\",\"type\":\"double\"},{\"name\":\"d\",\"type\":\"double\"},"
               "{\"name\":\"e\",\"type\":\"bytes\"},{\"name\":\"f\",\"type\":\"string\"}"),
           &b, &want);
}

static void test_demotion_refused(void **state) {
    (void)state;
    tb b = {0};
    expect_fail(REC("{\"name\":\"a\",\"type\":\"long\"}"), REC("{\"name\":\"a\",\"type\":\"int\"}"),
                &b, KINFER_ERR_UNSUPPORTED, "a: writer type long cannot be read as int");
    expect_fail(REC("{\"name\":\"a\",\"type\":\"string\"}"),
                REC("{\"name\":\"a\",\"type\":\"int\"}"), &b, KINFER_ERR_UNSUPPORTED,
                "writer type string cannot be read as int");
}

static void test_reordered_fields(void **state) {
    (void)state;
    tb b = {0}, want = {0};
    tb_str(&b, "second");
    tb_long(&b, 9);
    tb_long(&b, 1);
    tb_long(&want, 9);
    tb_long(&want, 1);
    tb_str(&want, "second");
    expect(REC("{\"name\":\"s\",\"type\":\"string\"},{\"name\":\"i\",\"type\":\"int\"},"
               "{\"name\":\"j\",\"type\":\"int\"}"),
           REC("{\"name\":\"i\",\"type\":\"long\"},{\"name\":\"j\",\"type\":\"int\"},"
               "{\"name\":\"s\",\"type\":\"string\"}"),
           &b, &want);
}

#define ENUM_W                                                                                     \
    "{\"name\":\"e\",\"type\":{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"C\",\"A\",\"NEW\"]" \
    "}}"
#define ENUM_R                                                                                     \
    "{\"name\":\"e\",\"type\":{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\",\"B\",\"C\"]}}"
#define ENUM_RD                                                                                    \
    "{\"name\":\"e\",\"type\":{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\",\"B\"],"        \
    "\"default\":\"B\"}}"

static void test_enum_by_name(void **state) {
    (void)state;
    tb b = {0}, want = {0};
    tb_long(&b, 0); /* C */
    tb_long(&want, 2);
    expect(REC(ENUM_W), REC(ENUM_R), &b, &want);
    tb b2 = {0}, want2 = {0};
    tb_long(&b2, 1); /* A */
    tb_long(&want2, 0);
    expect(REC(ENUM_W), REC(ENUM_R), &b2, &want2);
}

static void test_enum_unknown_symbol(void **state) {
    (void)state;
    tb b = {0}, want = {0};
    tb_long(&b, 2); /* NEW: not in the reader */
    expect_fail(REC(ENUM_W), REC(ENUM_R), &b, KINFER_ERR_DECODE,
                "e.writer symbol 'NEW' is not in the reader's enum E");
    tb_long(&want, 1); /* the reader's default B */
    expect(REC(ENUM_W), REC(ENUM_RD), &b, &want);
}

static void test_unions(void **state) {
    (void)state;
    /* writer union -> reader union, with promotion inside */
    tb b = {0}, want = {0};
    tb_long(&b, 1);
    tb_long(&b, 6);
    tb_long(&want, 1);
    tb_long(&want, 6);
    expect(REC("{\"name\":\"u\",\"type\":[\"null\",\"int\"]}"),
           REC("{\"name\":\"u\",\"type\":[\"null\",\"long\"]}"), &b, &want);
    /* plain writer -> reader union: the matching branch */
    tb b2 = {0}, want2 = {0};
    tb_str(&b2, "x");
    tb_long(&want2, 2);
    tb_str(&want2, "x");
    expect(REC("{\"name\":\"u\",\"type\":\"string\"}"),
           REC("{\"name\":\"u\",\"type\":[\"null\",\"long\",\"string\"]}"), &b2, &want2);
    /* writer union -> plain reader: the null branch cannot be read */
    tb b3 = {0}, want3 = {0};
    tb_long(&b3, 1);
    tb_str(&b3, "y");
    tb_str(&want3, "y");
    const char *w = REC("{\"name\":\"u\",\"type\":[\"null\",\"string\"]}");
    const char *r = REC("{\"name\":\"u\",\"type\":\"string\"}");
    expect(w, r, &b3, &want3);
    tb b4 = {0};
    tb_long(&b4, 0);
    expect_fail(w, r, &b4, KINFER_ERR_DECODE, "writer type null cannot be read as string");
}

static void test_record_name_must_match(void **state) {
    (void)state;
    tb b = {0};
    expect_fail("{\"type\":\"record\",\"name\":\"a.X\",\"fields\":[]}",
                "{\"type\":\"record\",\"name\":\"b.Y\",\"fields\":[]}", &b, KINFER_ERR_UNSUPPORTED,
                "writer type a.X cannot be read as b.Y");
    /* unqualified names match across namespaces */
    expect("{\"type\":\"record\",\"name\":\"a.X\",\"fields\":[]}",
           "{\"type\":\"record\",\"name\":\"b.X\",\"fields\":[]}", &b, &b);
}

static void test_hostile_bytes(void **state) {
    (void)state;
    const char *w = REC("{\"name\":\"a\",\"type\":{\"type\":\"array\",\"items\":\"null\"}},"
                        "{\"name\":\"s\",\"type\":\"string\"}");
    const char *r = REC("{\"name\":\"a\",\"type\":{\"type\":\"array\",\"items\":\"null\"}}");
    tb b = {0};
    tb_long(&b, 1LL << 50); /* 2^50 zero-byte items in 8 bytes */
    expect_fail(w, r, &b, KINFER_ERR_DECODE, "more items than a message of this size can hold");
    tb b2 = {0};
    tb_long(&b2, 0);
    tb_long(&b2, 1000); /* a removed string declaring 1000 bytes */
    tb_raw(&b2, "ab", 2);
    expect_fail(w, r, &b2, KINFER_ERR_DECODE, "s (skipped).string: truncated");
    tb b3 = {0};
    tb_long(&b3, 0);
    tb_str(&b3, "ok");
    tb_byte(&b3, 0x42);
    expect_fail(w, r, &b3, KINFER_ERR_DECODE, "trailing bytes");
}

static void test_bad_schemas(void **state) {
    (void)state;
    tb b = {0};
    expect_fail("{", REC(""), &b, KINFER_ERR_INVALID_ARG, "writer schema: not JSON");
    expect_fail(REC("{\"name\":\"a\",\"type\":\"Nope\"}"), REC(""), &b, KINFER_ERR_INVALID_ARG,
                "unknown type 'Nope'");
    expect_fail(
        "{\"type\":\"record\",\"name\":\"L\",\"fields\":[{\"name\":\"n\",\"type\":[\"null\","
        "\"L\"]}]}",
        REC(""), &b, KINFER_ERR_INVALID_ARG, "recursive type 'L' is not supported");
}

/* ---- the kinfer request schema ------------------------------------------- */

/* An older client: no model_version, priority, reply_to or parameters; a
 * newer one: everything plus a trace field (string, default ""). */
static char *schema_without(const char *drop, const char *add) {
    const char *cur = kinfer_codec_schema_json(KINFER_CODEC_SCHEMA_REQUEST);
    json_error_t je;
    json_t *root = json_loads(cur, 0, &je);
    assert_non_null(root);
    json_t *fields = json_object_get(root, "fields");
    json_t *kept = json_array();
    size_t i;
    json_t *f;
    json_array_foreach(fields, i, f) {
        char word[64];
        snprintf(word, sizeof word, " %s ", json_string_value(json_object_get(f, "name")));
        if (!drop || !strstr(drop, word))
            json_array_append(kept, f);
    }
    if (add)
        json_array_append_new(kept, json_loads(add, 0, &je));
    json_object_set_new(root, "fields", kept);
    char *s = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return s;
}

static void tb_tensor_fp32(tb *t, float v) {
    tb_long(t, 1);
    tb_str(t, "x");
    tb_long(t, 0); /* FP32 */
    tb_long(t, 1);
    tb_long(t, 1); /* shape [1] */
    tb_long(t, 0);
    tb_long(t, 4);
    tb_raw(t, &v, 4);
    tb_long(t, 0); /* strings [] */
    tb_long(t, 0);
}

static void test_request_older_and_newer_client(void **state) {
    (void)state;
    kinfer_codec_decoder *dec;
    kinfer_error err;
    assert_int_equal(kinfer_codec_decoder_new(NULL, NULL, &dec, &err), KINFER_OK);
    char *older = schema_without(
        " model_version priority reply_to parameters prompt messages prompt_token_ids generation ",
        NULL);
    char *newer = schema_without(NULL, "{\"name\":\"trace\",\"type\":\"string\",\"default\":\"\"}");
    kinfer_codec_resolution *res_old, *res_new;
    const char *cur = kinfer_codec_schema_json(KINFER_CODEC_SCHEMA_REQUEST);
    assert_int_equal(kinfer_codec_resolution_new(older, cur, &res_old, &err), KINFER_OK);
    assert_int_equal(kinfer_codec_resolution_new(newer, cur, &res_new, &err), KINFER_OK);

    /* older: id, model, inputs, deadline; Confluent framing, writer given */
    tb o = {0};
    tb_byte(&o, 0);
    tb_raw(&o, "\0\0\0\7", 4);
    tb_str(&o, "old-1");
    tb_str(&o, "mlp");
    tb_tensor_fp32(&o, 2.5f);
    tb_long(&o, 1);
    tb_long(&o, 1234);
    kinfer_codec_request req;
    kinfer_err rc = kinfer_codec_request_decode_as(dec, o.b, o.n, res_old, &req, &err);
    if (rc != KINFER_OK)
        fail_msg("older: %s", err.msg);
    assert_int_equal(req.frame.schema_id, 7);
    assert_int_equal(req.id.len, 5);
    assert_memory_equal(req.id.ptr, "old-1", 5);
    assert_int_equal(req.ninputs, 1);
    assert_int_equal(req.inputs[0].shape[0], 1);
    assert_true(req.has_deadline);
    assert_int_equal(req.deadline_ms, 1234);
    assert_int_equal(req.priority, 0);
    assert_false(req.has_reply_to);
    assert_int_equal(req.nparams, 0);
    /* the views point into the decoder's rewritten copy: take it */
    void *body = kinfer_codec_decoder_take_body(dec);
    assert_non_null(body);
    assert_true((const uint8_t *)req.id.ptr >= (const uint8_t *)body);
    assert_null(kinfer_codec_decoder_take_body(dec));
    free(body);

    /* newer, single-object framed: known once added by fingerprint */
    tb n = {0};
    tb_byte(&n, 0xC3);
    tb_byte(&n, 0x01);
    uint64_t fp = kinfer_codec_resolution_writer_fingerprint(res_new);
    for (int i = 0; i < 8; i++)
        tb_byte(&n, (uint8_t)(fp >> (8 * i)));
    tb_str(&n, "new-1");
    tb_str(&n, "mlp");
    tb_long(&n, 0);
    tb_tensor_fp32(&n, 1.0f);
    tb_long(&n, 0);
    tb_long(&n, -2); /* priority */
    tb_long(&n, 1);
    tb_str(&n, "replies");
    tb_long(&n, 1);
    tb_str(&n, "k");
    tb_str(&n, "v");
    tb_long(&n, 0);
    tb_long(&n, 0);          /* prompt: null */
    tb_long(&n, 0);          /* messages: [] */
    tb_long(&n, 0);          /* prompt_token_ids: [] */
    tb_long(&n, 0);          /* generation: null */
    tb_str(&n, "trace-abc"); /* the added field, dropped by the reader */
    rc = kinfer_codec_request_decode(dec, n.b, n.n, &req, &err);
    assert_int_equal(rc, KINFER_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "released versions"));
    assert_int_equal(kinfer_codec_decoder_add_writer(dec, KINFER_CODEC_SCHEMA_REQUEST, newer, &err),
                     KINFER_OK);
    rc = kinfer_codec_request_decode(dec, n.b, n.n, &req, &err);
    if (rc != KINFER_OK)
        fail_msg("newer: %s", err.msg);
    assert_int_equal(req.frame.framing, KINFER_CODEC_FRAMING_SINGLE_OBJECT);
    assert_int_equal(req.priority, -2);
    assert_true(req.has_reply_to);
    assert_int_equal(req.nparams, 1);

    /* the newer writer's schema cannot be passed as a response's writer */
    kinfer_codec_response resp;
    assert_int_equal(kinfer_codec_response_decode_as(dec, n.b, n.n, res_new, &resp, &err),
                     KINFER_ERR_INVALID_ARG);

    kinfer_codec_resolution_destroy(res_old);
    kinfer_codec_resolution_destroy(res_new);
    free(older);
    free(newer);
    kinfer_codec_decoder_destroy(dec);
}

/* Every released version in schemas/<version>/ resolves (the decoder would
 * refuse to start otherwise) and is accepted by its fingerprint. */
static void test_released_versions(void **state) {
    (void)state;
    kinfer_error err;
    for (size_t i = 0; i < kinfer_codec_released_count(); i++) {
        kinfer_codec_schema schema;
        const char *path, *json;
        assert_true(kinfer_codec_released_get(i, &schema, &path, &json));
        kinfer_codec_resolution *res;
        if (kinfer_codec_resolution_new(json, kinfer_codec_schema_json(schema), &res, &err) !=
            KINFER_OK)
            fail_msg("schemas/%s does not resolve to the current schema: %s", path, err.msg);
        kinfer_codec_resolution_destroy(res);
    }
    assert_false(kinfer_codec_released_get(kinfer_codec_released_count(), &(kinfer_codec_schema){0},
                                           &(const char *){0}, &(const char *){0}));
    kinfer_codec_decoder *dec;
    if (kinfer_codec_decoder_new(NULL, NULL, &dec, &err) != KINFER_OK)
        fail_msg("decoder_new: %s", err.msg);
    kinfer_codec_decoder_destroy(dec);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identity),
        cmocka_unit_test(test_added_field_takes_default),
        cmocka_unit_test(test_added_field_without_default_refused),
        cmocka_unit_test(test_removed_field_skipped),
        cmocka_unit_test(test_promotions),
        cmocka_unit_test(test_demotion_refused),
        cmocka_unit_test(test_reordered_fields),
        cmocka_unit_test(test_enum_by_name),
        cmocka_unit_test(test_enum_unknown_symbol),
        cmocka_unit_test(test_unions),
        cmocka_unit_test(test_record_name_must_match),
        cmocka_unit_test(test_hostile_bytes),
        cmocka_unit_test(test_bad_schemas),
        cmocka_unit_test(test_request_older_and_newer_client),
        cmocka_unit_test(test_released_versions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
