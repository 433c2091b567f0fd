/* test_client_input.c — `kinfer send` inputs: values with shapes, JSON
 * (nested and object forms), .npy files, and each kind of bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "client_input.h"

static void write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void test_shape(void **state) {
    (void)state;
    int64_t s[KINFER_MAX_DIMS];
    int n;
    kinfer_error err;
    assert_int_equal(kinfer_client_parse_shape("2,8", s, &n, &err), KINFER_OK);
    assert_int_equal(n, 2);
    assert_int_equal(s[1], 8);
    assert_int_equal(kinfer_client_parse_shape("[1, 2, 3]", s, &n, &err), KINFER_OK);
    assert_int_equal(n, 3);
    assert_int_equal(kinfer_client_parse_shape("2,-1", s, &n, &err), KINFER_ERR_INVALID_ARG);
    assert_int_equal(kinfer_client_parse_shape("", s, &n, &err), KINFER_ERR_INVALID_ARG);
    assert_int_equal(kinfer_client_parse_shape("1,1,1,1,1,1,1,1,1", s, &n, &err),
                     KINFER_ERR_INVALID_ARG);
    assert_int_equal(kinfer_client_parse_shape("a", s, &n, &err), KINFER_ERR_INVALID_ARG);
}

static void test_values(void **state) {
    (void)state;
    kinfer_client_tensor t;
    kinfer_error err;
    assert_int_equal(kinfer_client_parse_values("0.5, 1,2", NULL, 0, &t, &err), KINFER_OK);
    assert_int_equal(t.ndim, 1);
    assert_int_equal(t.shape[0], 3);
    assert_int_equal(t.nbytes, 12);
    assert_true(((float *)t.data)[0] == 0.5f);
    kinfer_tensor v = kinfer_client_tensor_view(&t);
    assert_int_equal(v.name.len, 5);
    kinfer_client_tensor_free(&t);
    int64_t shape[2] = {2, 2};
    assert_int_equal(kinfer_client_parse_values("1,2,3,4", shape, 2, &t, &err), KINFER_OK);
    assert_int_equal(t.ndim, 2);
    kinfer_client_tensor_free(&t);
    assert_int_equal(kinfer_client_parse_values("1,2,3", shape, 2, &t, &err),
                     KINFER_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "do not fill"));
    assert_int_equal(kinfer_client_parse_values("1,x", NULL, 0, &t, &err), KINFER_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "not a number"));
    assert_int_equal(kinfer_client_parse_values(" , ", NULL, 0, &t, &err), KINFER_ERR_INVALID_ARG);
}

static void test_json_forms(void **state) {
    (void)state;
    char path[] = "/tmp/kinfer-test-input-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    kinfer_client_tensor t;
    kinfer_error err;
    const char *nested = "[[1, 2, 3], [4, 5, 6]]";
    write_file(path, nested, strlen(nested));
    assert_int_equal(kinfer_client_load_json(path, &t, &err), KINFER_OK);
    assert_int_equal(t.ndim, 2);
    assert_int_equal(t.shape[0], 2);
    assert_int_equal(t.shape[1], 3);
    assert_true(((float *)t.data)[5] == 6.0f);
    kinfer_client_tensor_free(&t);

    const char *obj = "{\"name\": \"x\", \"dtype\": \"INT64\", \"shape\": [2, 2], "
                      "\"data\": [1, 2, 3, 4]}";
    write_file(path, obj, strlen(obj));
    assert_int_equal(kinfer_client_load_json(path, &t, &err), KINFER_OK);
    assert_string_equal(t.name, "x");
    assert_int_equal(t.dtype, KINFER_DTYPE_INT64);
    assert_int_equal(t.nbytes, 32);
    assert_int_equal(((int64_t *)t.data)[3], 4);
    kinfer_client_tensor_free(&t);

    static const char *const bad[] = {
        "[[1, 2], [3]]",                         /* ragged */
        "[1, \"a\"]",                            /* not a number */
        "{\"data\": 5}",                         /* data not an array */
        "{\"shape\": [3], \"data\": [1, 2]}",    /* too few for the shape */
        "{\"dtype\": \"STRING\", \"data\": []}", /* unsupported dtype */
        "[1, 2",                                 /* not JSON */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_file(path, bad[i], strlen(bad[i]));
        assert_int_not_equal(kinfer_client_load_json(path, &t, &err), KINFER_OK);
        assert_non_null(strstr(err.msg, path));
        assert_null(t.data);
    }
    unlink(path);
    assert_int_equal(kinfer_client_load_json(path, &t, &err), KINFER_ERR_IO);
}

static size_t npy(char *buf, const char *descr, const char *shape, const void *data, size_t len) {
    char hdr[128];
    int n = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                     descr, shape);
    while ((10 + n + 1) % 64)
        hdr[n++] = ' ';
    hdr[n++] = '\n';
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (char)(n & 0xff);
    buf[9] = (char)(n >> 8);
    memcpy(buf + 10, hdr, (size_t)n);
    memcpy(buf + 10 + n, data, len);
    return 10 + (size_t)n + len;
}

static void test_npy(void **state) {
    (void)state;
    char path[] = "/tmp/kinfer-test-npy-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    char buf[512];
    kinfer_client_tensor t;
    kinfer_error err;
    double d[6] = {1, 2, 3, 4, 5, 6.5};
    write_file(path, buf, npy(buf, "<f8", "(2, 3)", d, sizeof d));
    assert_int_equal(kinfer_client_load_npy(path, &t, &err), KINFER_OK);
    assert_int_equal(t.dtype, KINFER_DTYPE_FP32); /* converted */
    assert_int_equal(t.ndim, 2);
    assert_int_equal(t.nbytes, 24);
    assert_true(((float *)t.data)[5] == 6.5f);
    kinfer_client_tensor_free(&t);
    int32_t i4[3] = {7, 8, 9};
    write_file(path, buf, npy(buf, "<i4", "(3,)", i4, sizeof i4));
    assert_int_equal(kinfer_client_load_npy(path, &t, &err), KINFER_OK);
    assert_int_equal(t.dtype, KINFER_DTYPE_INT32);
    assert_int_equal(t.ndim, 1);
    assert_int_equal(((int32_t *)t.data)[2], 9);
    kinfer_client_tensor_free(&t);
    /* Bad: wrong length, unsupported dtype, not npy. */
    write_file(path, buf, npy(buf, "<f4", "(2, 3)", d, 8));
    assert_int_equal(kinfer_client_load_npy(path, &t, &err), KINFER_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "data bytes"));
    write_file(path, buf, npy(buf, "<c16", "(1,)", d, 16));
    assert_int_equal(kinfer_client_load_npy(path, &t, &err), KINFER_ERR_UNSUPPORTED);
    write_file(path, "hello world", 11);
    assert_int_equal(kinfer_client_load_npy(path, &t, &err), KINFER_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "not a .npy"));
    unlink(path);
}

static void test_random_deterministic(void **state) {
    (void)state;
    int64_t shape[2] = {3, 4};
    kinfer_client_tensor a, b;
    assert_int_equal(kinfer_client_random(shape, 2, 9, &a, NULL), KINFER_OK);
    assert_int_equal(kinfer_client_random(shape, 2, 9, &b, NULL), KINFER_OK);
    assert_int_equal(a.nbytes, 48);
    assert_memory_equal(a.data, b.data, a.nbytes);
    kinfer_client_tensor_free(&a);
    kinfer_client_tensor_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shape),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_json_forms),
        cmocka_unit_test(test_npy),
        cmocka_unit_test(test_random_deterministic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
