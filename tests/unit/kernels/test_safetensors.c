/* test_safetensors.c — the safetensors loader: valid files (written by our
 * writer, from memory and via mmap, and by the Python reference package)
 * and one test per class of hostile header, each checking the error code
 * and that the message names the problem (and the tensor). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "formats/safetensors.h"
#include "test_mlp_util.h"

/* A file image: 8-byte LE header length (hlen, or strlen(json) when
 * hlen == UINT64_MAX), the JSON, then data_len bytes 0..255. */
static uint8_t *image(const char *json, size_t data_len, uint64_t hlen, size_t *len) {
    size_t jl = strlen(json);
    if (hlen == UINT64_MAX)
        hlen = jl;
    *len = 8 + jl + data_len;
    uint8_t *buf = malloc(*len + 1);
    for (int i = 0; i < 8; i++)
        buf[i] = (uint8_t)(hlen >> (8 * i));
    memcpy(buf + 8, json, jl);
    for (size_t i = 0; i < data_len; i++)
        buf[8 + jl + i] = (uint8_t)i;
    return buf;
}

/* Opens an image; returns the code and copies the message into msg. */
static kinfer_err open_img(const char *json, size_t data_len, uint64_t hlen, char *msg,
                           size_t msglen) {
    size_t len;
    uint8_t *buf = image(json, data_len, hlen, &len);
    kinfer_safetensors *st = NULL;
    kinfer_error err;
    kinfer_error_clear(&err);
    kinfer_err rc = kinfer_safetensors_open_memory(buf, len, "hostile.st", &st, &err);
    if (rc == KINFER_OK) {
        assert_non_null(st);
        kinfer_safetensors_close(st);
        msg[0] = '\0';
    } else {
        assert_null(st);
        assert_int_equal(err.code, rc);
        snprintf(msg, msglen, "%s", err.msg);
    }
    free(buf);
    return rc;
}

/* Expects a MODEL_LOAD error whose message contains each of the strings. */
static void expect_bad(const char *json, size_t data_len, uint64_t hlen, const char *want1,
                       const char *want2) {
    char msg[KINFER_ERROR_MSG_MAX];
    kinfer_err rc = open_img(json, data_len, hlen, msg, sizeof(msg));
    if (rc != KINFER_ERR_MODEL_LOAD || !strstr(msg, "hostile.st") ||
        (want1 && !strstr(msg, want1)) || (want2 && !strstr(msg, want2)))
        fail_msg("json %s: rc %d msg '%s' (want '%s' '%s')", json, rc, msg, want1 ? want1 : "",
                 want2 ? want2 : "");
}

static void test_valid_memory(void **state) {
    (void)state;
    const char *json = "{\"__metadata__\":{\"activation\":\"gelu\",\"a\":\"b\"},"
                       "\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
                       "\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[24,28]},"
                       "\"s\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[28,36]},"
                       "\"e\":{\"dtype\":\"U8\",\"shape\":[0,5],\"data_offsets\":[36,36]},"
                       "\"z\":{\"dtype\":\"BOOL\",\"shape\":[4],\"data_offsets\":[36,40]}}   ";
    size_t len;
    uint8_t *buf = image(json, 40, UINT64_MAX, &len);
    kinfer_safetensors *st;
    kinfer_error err;
    assert_int_equal(kinfer_safetensors_open_memory(buf, len, "mem", &st, &err), KINFER_OK);
    assert_int_equal(kinfer_safetensors_count(st), 5);
    size_t data_start = 8 + strlen(json);
    const kinfer_st_tensor *w = kinfer_safetensors_find(st, "w");
    assert_non_null(w);
    assert_int_equal(w->dtype, KINFER_DTYPE_FP32);
    assert_int_equal(w->ndim, 2);
    assert_int_equal(w->shape[0], 2);
    assert_int_equal(w->shape[1], 3);
    assert_int_equal(w->numel, 6);
    assert_int_equal(w->nbytes, 24);
    assert_ptr_equal(w->data, buf + data_start);
    const kinfer_st_tensor *s = kinfer_safetensors_find(st, "s");
    assert_int_equal(s->ndim, 0);
    assert_int_equal(s->numel, 1);
    assert_int_equal(s->offset, data_start + 28);
    const kinfer_st_tensor *e = kinfer_safetensors_find(st, "e");
    assert_int_equal(e->nbytes, 0);
    assert_null(e->data);
    assert_null(kinfer_safetensors_find(st, "nope"));
    /* file order = ascending offset */
    assert_string_equal(kinfer_safetensors_at(st, 0)->name, "w");
    assert_string_equal(kinfer_safetensors_at(st, 1)->name, "b");
    assert_string_equal(kinfer_safetensors_at(st, 4)->name, "z");
    assert_null(kinfer_safetensors_at(st, 5));
    assert_int_equal(kinfer_safetensors_metadata_count(st), 2);
    assert_string_equal(kinfer_safetensors_metadata(st, "activation"), "gelu");
    assert_null(kinfer_safetensors_metadata(st, "nope"));
    const char *k, *v;
    kinfer_safetensors_metadata_at(st, 0, &k, &v);
    assert_string_equal(k, "a");
    assert_string_equal(v, "b");
    assert_string_equal(kinfer_safetensors_label(st), "mem");
    kinfer_safetensors_close(st);
    free(buf);
}

static void test_valid_empty_and_null_metadata(void **state) {
    (void)state;
    char msg[KINFER_ERROR_MSG_MAX];
    assert_int_equal(open_img("{}", 0, UINT64_MAX, msg, sizeof(msg)), KINFER_OK);
    assert_int_equal(open_img("{\"__metadata__\":null}", 0, UINT64_MAX, msg, sizeof(msg)),
                     KINFER_OK);
    assert_int_equal(open_img("{\"__metadata__\":{}}", 0, UINT64_MAX, msg, sizeof(msg)), KINFER_OK);
}

static void test_writer_roundtrip_file(void **state) {
    (void)state;
    char *dir = tu_tempdir();
    assert_non_null(dir);
    char path[600];
    snprintf(path, sizeof(path), "%s/rt.safetensors", dir);
    float a[6] = {1, 2, 3, 4, 5, 6};
    uint16_t h[3] = {0x3c00, 0xc000, 0x7bff};
    int64_t i64 = -42;
    kinfer_st_write_tensor t[] = {
        {"a", KINFER_DTYPE_FP32, 2, {3, 2}, a},
        {"h \"quoted\" \xc3\xa9", KINFER_DTYPE_FP16, 1, {3}, h},
        {"i", KINFER_DTYPE_INT64, 0, {0}, &i64},
    };
    const char *keys[] = {"format", "note"}, *vals[] = {"pt", "x\ny"};
    kinfer_error err;
    assert_int_equal(kinfer_safetensors_write(path, t, 3, keys, vals, 2, &err), KINFER_OK);
    kinfer_safetensors *st;
    assert_int_equal(kinfer_safetensors_open(path, &st, &err), KINFER_OK);
    assert_int_equal(kinfer_safetensors_count(st), 3);
    const kinfer_st_tensor *ta = kinfer_safetensors_find(st, "a");
    assert_memory_equal(ta->data, a, sizeof(a));
    /* the writer pads the header to 8 bytes, so F32 data is aligned in the map */
    assert_int_equal(ta->offset % 8, 0);
    const kinfer_st_tensor *th = kinfer_safetensors_find(st, "h \"quoted\" \xc3\xa9");
    assert_non_null(th);
    assert_memory_equal(th->data, h, sizeof(h));
    const kinfer_st_tensor *ti = kinfer_safetensors_find(st, "i");
    assert_memory_equal(ti->data, &i64, 8);
    assert_string_equal(kinfer_safetensors_metadata(st, "note"), "x\ny");
    assert_string_equal(kinfer_safetensors_label(st), path);
    kinfer_safetensors_close(st);
    tu_rmdir(dir);
}

static void test_file_errors(void **state) {
    (void)state;
    char *dir = tu_tempdir();
    char path[600];
    kinfer_safetensors *st;
    kinfer_error err;
    snprintf(path, sizeof(path), "%s/missing.safetensors", dir);
    assert_int_equal(kinfer_safetensors_open(path, &st, &err), KINFER_ERR_IO);
    assert_non_null(strstr(err.msg, path));
    assert_int_equal(kinfer_safetensors_open(dir, &st, &err), KINFER_ERR_IO);
    assert_non_null(strstr(err.msg, "not a regular file"));
    snprintf(path, sizeof(path), "%s/empty.safetensors", dir);
    FILE *f = fopen(path, "wb");
    fclose(f);
    assert_int_equal(kinfer_safetensors_open(path, &st, &err), KINFER_ERR_MODEL_LOAD);
    assert_non_null(strstr(err.msg, "shorter than the 8-byte"));
    snprintf(path, sizeof(path), "%s/short.safetensors", dir);
    f = fopen(path, "wb");
    fwrite("\x02\0\0\0\0\0\0\0{}", 1, 9, f); /* says 2 bytes of header, has 1 */
    fclose(f);
    assert_int_equal(kinfer_safetensors_open(path, &st, &err), KINFER_ERR_MODEL_LOAD);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "exceeds the 1 bytes"));
    tu_rmdir(dir);
}

static void test_short_file(void **state) {
    (void)state;
    kinfer_safetensors *st;
    kinfer_error err;
    assert_int_equal(kinfer_safetensors_open_memory("\x02\0\0", 3, "hostile.st", &st, &err),
                     KINFER_ERR_MODEL_LOAD);
    assert_non_null(strstr(err.msg, "3 bytes, shorter than"));
    assert_int_equal(kinfer_safetensors_open_memory("", 0, "hostile.st", &st, &err),
                     KINFER_ERR_MODEL_LOAD);
}

static void test_header_length(void **state) {
    (void)state;
    expect_bad("{}", 0, 1000, "header length 1000 exceeds the 2 bytes", NULL);
    expect_bad("{}", 0, UINT64_MAX - 1, "exceeds the 104857600-byte limit", NULL);
    expect_bad("{}", 0, KINFER_ST_MAX_HEADER + 1, "limit", NULL);
    expect_bad("{}", 0, 0, "does not start with '{'", NULL);
}

static void test_not_json(void **state) {
    (void)state;
    expect_bad("{not json", 0, UINT64_MAX, "not valid JSON", NULL);
    expect_bad("{\"a\":1,}", 0, UINT64_MAX, "not valid JSON", NULL);
    expect_bad("{\"a\xff\":{}}", 0, UINT64_MAX, "not valid JSON", NULL); /* bad UTF-8 */
    /* an embedded NUL inside the declared header */
    size_t len;
    uint8_t *buf = image("{\"a\":{}}", 0, UINT64_MAX, &len);
    buf[10] = 0;
    kinfer_safetensors *st;
    kinfer_error err;
    assert_int_equal(kinfer_safetensors_open_memory(buf, len, "hostile.st", &st, &err),
                     KINFER_ERR_MODEL_LOAD);
    free(buf);
    /* nesting deep enough to overflow a naive recursive parser's stack */
    size_t depth = 100000;
    char *deep = malloc(2 * depth + 16);
    strcpy(deep, "{\"a\":");
    memset(deep + 5, '[', depth);
    memset(deep + 5 + depth, ']', depth);
    strcpy(deep + 5 + 2 * depth, "}");
    expect_bad(deep, 0, UINT64_MAX, "not valid JSON", NULL);
    free(deep);
    /* a valid object followed by more JSON */
    expect_bad("{} {}", 0, UINT64_MAX, "not valid JSON", NULL);
}

static void test_not_object(void **state) {
    (void)state;
    expect_bad("[1, 2]", 0, UINT64_MAX, "does not start with '{'", NULL);
    expect_bad("\"str\"", 0, UINT64_MAX, "does not start with '{'", NULL);
    expect_bad("{\"t\":[1,2]}", 0, UINT64_MAX, "tensor 't'", "is an array, expected an object");
    expect_bad("{\"t\":3}", 0, UINT64_MAX, "tensor 't'", "expected an object");
}

static void test_missing_fields(void **state) {
    (void)state;
    expect_bad("{\"t\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, UINT64_MAX, "tensor 't'",
               "missing \"dtype\"");
    expect_bad("{\"t\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, UINT64_MAX, "tensor 't'",
               "missing \"shape\"");
    expect_bad("{\"t\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, UINT64_MAX, "tensor 't'",
               "missing \"data_offsets\"");
    expect_bad("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, UINT64_MAX,
               "tensor 't'", "[begin, end]");
    expect_bad("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":\"0,4\"}}", 4, UINT64_MAX,
               "tensor 't'", "[begin, end]");
    expect_bad("{\"t\":{\"dtype\":\"F32\",\"shape\":1,\"data_offsets\":[0,4]}}", 4, UINT64_MAX,
               "tensor 't'", "\"shape\" is an integer");
}

static void test_bad_dtype(void **state) {
    (void)state;
    expect_bad("{\"t\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
               UINT64_MAX, "tensor 't'", "unsupported dtype 'F8_E4M3'");
    expect_bad("{\"t\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, UINT64_MAX,
               "tensor 't'", "unsupported dtype");
    expect_bad("{\"t\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, UINT64_MAX,
               "tensor 't'", "\"dtype\" is an integer");
}

static void test_bad_shape(void **state) {
    (void)state;
    expect_bad("{\"t\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, UINT64_MAX,
               "tensor 't'", "shape[0] is negative");
    expect_bad("{\"t\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, UINT64_MAX,
               "tensor 't'", "shape[0] is a real number");
    expect_bad("{\"t\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
               "\"data_offsets\":[0,4]}}",
               4, UINT64_MAX, "tensor 't'", "element count overflows");
    /* numel fits but numel * 8 bytes does not */
    expect_bad("{\"t\":{\"dtype\":\"F64\",\"shape\":[4611686018427387904],"
               "\"data_offsets\":[0,8]}}",
               8, UINT64_MAX, "tensor 't'", "overflows");
    /* too big for json_int_t: jansson refuses it */
    expect_bad("{\"t\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],"
               "\"data_offsets\":[0,4]}}",
               4, UINT64_MAX, "not valid JSON", NULL);
    expect_bad("{\"t\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],"
               "\"data_offsets\":[0,4]}}",
               4, UINT64_MAX, "tensor 't'", "9 dims");
    /* a zero dim wins over an overflowing product: 0 elements, 0 bytes */
    char msg[KINFER_ERROR_MSG_MAX];
    assert_int_equal(open_img("{\"t\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,0,"
                              "4294967296],\"data_offsets\":[0,0]}}",
                              0, UINT64_MAX, msg, sizeof(msg)),
                     KINFER_OK);
}

static void test_offsets_out_of_bounds(void **state) {
    (void)state;
    expect_bad("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, UINT64_MAX,
               "tensor 't'", "beyond the 4-byte data section");
    expect_bad("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8, UINT64_MAX,
               "tensor 't'", "end before begin");
    expect_bad("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4, UINT64_MAX,
               "tensor 't'", "data_offsets[0] is negative");
    expect_bad("{\"t\":{\"dtype\":\"U8\",\"shape\":[1],"
               "\"data_offsets\":[9223372036854775807,9223372036854775807]}}",
               4, UINT64_MAX, "tensor 't'", "beyond");
}

static void test_overlap_gap_trailing(void **state) {
    (void)state;
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
               12, UINT64_MAX, "tensor 'b'", "overlaps tensor 'a'");
    /* the same bytes claimed twice */
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
               8, UINT64_MAX, "overlaps", NULL);
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
               12, UINT64_MAX, "tensor 'b'", "4-byte gap");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, UINT64_MAX,
               "tensor 'a'", "gap");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 6, UINT64_MAX,
               "2 bytes of data after the last tensor", NULL);
    /* out of order in the JSON is fine: tensors are sorted by offset */
    char msg[KINFER_ERROR_MSG_MAX];
    assert_int_equal(open_img("{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},"
                              "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
                              8, UINT64_MAX, msg, sizeof(msg)),
                     KINFER_OK);
}

static void test_size_mismatch(void **state) {
    (void)state;
    expect_bad("{\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, UINT64_MAX,
               "tensor 't'", "F32 [3] needs 12 bytes");
    expect_bad("{\"t\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", 16,
               UINT64_MAX, "tensor 't'", "needs 8 bytes");
}

static void test_duplicate_names(void **state) {
    (void)state;
    expect_bad("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
               8, UINT64_MAX, "duplicate", NULL);
    expect_bad("{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}", 0, UINT64_MAX, "duplicate", NULL);
}

static void test_bad_metadata(void **state) {
    (void)state;
    expect_bad("{\"__metadata__\":{\"k\":1}}", 0, UINT64_MAX, "\"__metadata__\" key 'k'",
               "an integer, expected a string");
    expect_bad("{\"__metadata__\":[\"a\"]}", 0, UINT64_MAX, "\"__metadata__\" is an array", NULL);
    expect_bad("{\"__metadata__\":{\"k\":{\"x\":\"y\"}}}", 0, UINT64_MAX, "key 'k'", NULL);
}

static void test_long_name_is_bounded(void **state) {
    (void)state;
    char json[4096];
    char name[3001];
    memset(name, 'n', 3000);
    name[3000] = '\0';
    snprintf(json, sizeof(json), "{\"%s\":{\"dtype\":\"X\",\"shape\":[],\"data_offsets\":[0,0]}}",
             name);
    char msg[KINFER_ERROR_MSG_MAX];
    assert_int_equal(open_img(json, 0, UINT64_MAX, msg, sizeof(msg)), KINFER_ERR_MODEL_LOAD);
    assert_non_null(strstr(msg, "unsupported dtype"));
}

static void test_reads_python_written_file(void **state) {
    (void)state;
    /* models/example_mlp.safetensors is written by scripts/make_test_models.py
     * with the reference `safetensors` package. */
    char path[1024];
    snprintf(path, sizeof(path), "%s/models/example_mlp.safetensors", KINFER_SOURCE_DIR);
    kinfer_safetensors *st;
    kinfer_error err;
    assert_int_equal(kinfer_safetensors_open(path, &st, &err), KINFER_OK);
    assert_int_equal(kinfer_safetensors_count(st), 4);
    const kinfer_st_tensor *w0 = kinfer_safetensors_find(st, "layers.0.weight");
    assert_non_null(w0);
    assert_int_equal(w0->dtype, KINFER_DTYPE_FP32);
    assert_int_equal(w0->shape[0], 16);
    assert_int_equal(w0->shape[1], 8);
    assert_string_equal(kinfer_safetensors_metadata(st, "output_activation"), "sigmoid");
    kinfer_safetensors_close(st);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_memory),
        cmocka_unit_test(test_valid_empty_and_null_metadata),
        cmocka_unit_test(test_writer_roundtrip_file),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_short_file),
        cmocka_unit_test(test_header_length),
        cmocka_unit_test(test_not_json),
        cmocka_unit_test(test_not_object),
        cmocka_unit_test(test_missing_fields),
        cmocka_unit_test(test_bad_dtype),
        cmocka_unit_test(test_bad_shape),
        cmocka_unit_test(test_offsets_out_of_bounds),
        cmocka_unit_test(test_overlap_gap_trailing),
        cmocka_unit_test(test_size_mismatch),
        cmocka_unit_test(test_duplicate_names),
        cmocka_unit_test(test_bad_metadata),
        cmocka_unit_test(test_long_name_is_bounded),
        cmocka_unit_test(test_reads_python_written_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
