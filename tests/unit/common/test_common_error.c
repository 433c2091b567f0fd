/* test_common_error.c — the error type, dtype tables and shape checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "kinfer/kinfer_error.h"
#include "kinfer/kinfer_tensor.h"

static void test_error_set_and_prefix(void **state) {
    (void)state;
    kinfer_error err;
    kinfer_error_clear(&err);
    assert_int_equal(kinfer_error_set(&err, KINFER_ERR_CONFIG, "key %s", "x"), KINFER_ERR_CONFIG);
    kinfer_error_prefix(&err, "file.conf:%d", 3);
    assert_string_equal(err.msg, "file.conf:3: key x");
    assert_int_equal(err.code, KINFER_ERR_CONFIG);
    assert_string_equal(kinfer_err2name(KINFER_ERR_DEADLINE_EXCEEDED), "DEADLINE_EXCEEDED");
    assert_string_equal(kinfer_err2name((kinfer_err)-999), "UNKNOWN");
}

static void test_wire_status_roundtrip(void **state) {
    (void)state;
    for (int s = 0; s <= 5; s++)
        assert_int_equal(kinfer_err_to_wire_status(kinfer_err_from_wire_status(s)), s);
    assert_int_equal(kinfer_err_to_wire_status(KINFER_ERR_NOMEM), 5);
    assert_int_equal(kinfer_err_to_wire_status(KINFER_ERR_DECODE), 1);
}

/* The flags come from the per-code table and survive a prefix. */
static void test_flags_from_the_code_table(void **state) {
    (void)state;
    kinfer_error err;
    kinfer_error_set(&err, KINFER_ERR_SHUTDOWN, "stopping");
    assert_true(err.retriable);
    assert_false(err.fatal);
    kinfer_error_prefix(&err, "engine");
    assert_true(err.retriable);
    kinfer_error_set(&err, KINFER_ERR_NOMEM, "no memory");
    assert_false(err.retriable);
    assert_true(err.fatal);
    kinfer_error_set(&err, KINFER_ERR_INVALID_REQUEST, "bad shape");
    assert_false(err.retriable);
    assert_false(err.fatal);
    assert_true(kinfer_err_retriable(KINFER_ERR_OVERLOADED));
    assert_false(kinfer_err_fatal(KINFER_ERR_OVERLOADED));
    assert_false(kinfer_err_retriable((kinfer_err)-999));
    assert_false(kinfer_err_fatal((kinfer_err)-999));
    kinfer_error_clear(&err);
    assert_false(err.retriable);
    assert_false(err.fatal);
    /* Every named code has a wire status. */
    for (int c = 0; c >= -40; c--)
        if (strcmp(kinfer_err2name((kinfer_err)c), "UNKNOWN")) {
            int s = kinfer_err_to_wire_status((kinfer_err)c);
            assert_true(s >= 0 && s <= 5);
        }
    assert_int_equal(kinfer_err_to_wire_status((kinfer_err)-999), 5);
}

static void test_dtype_table(void **state) {
    (void)state;
    kinfer_dtype dt;
    for (int i = 0; i < KINFER_DTYPE_COUNT; i++) {
        assert_true(kinfer_dtype_from_name(kinfer_dtype_name((kinfer_dtype)i), &dt));
        assert_int_equal(dt, i);
    }
    assert_false(kinfer_dtype_from_name("FP8", &dt));
    assert_int_equal(kinfer_dtype_size(KINFER_DTYPE_BF16), 2);
    assert_int_equal(kinfer_dtype_size(KINFER_DTYPE_STRING), 0);
}

static void test_shape_numel_overflow_and_negative(void **state) {
    (void)state;
    kinfer_error err;
    uint64_t n = 0;
    int64_t ok[] = {2, 3, 4};
    assert_int_equal(kinfer_shape_numel(ok, 3, 1000, &n, &err), KINFER_OK);
    assert_int_equal(n, 24);
    int64_t neg[] = {2, -1};
    assert_int_equal(kinfer_shape_numel(neg, 2, 1000, &n, &err), KINFER_ERR_INVALID_REQUEST);
    assert_non_null(strstr(err.msg, "negative"));
    int64_t huge[] = {INT64_MAX, INT64_MAX, 2};
    assert_int_equal(kinfer_shape_numel(huge, 3, UINT64_MAX, &n, &err), KINFER_ERR_INVALID_REQUEST);
    int64_t zero[] = {0, INT64_MAX};
    assert_int_equal(kinfer_shape_numel(zero, 2, 10, &n, &err), KINFER_OK);
    assert_int_equal(n, 0);
}

static void test_tensor_check_mismatch(void **state) {
    (void)state;
    float data[6] = {0};
    kinfer_tensor t = {.name = {"x", 1},
                       .dtype = KINFER_DTYPE_FP32,
                       .ndim = 2,
                       .shape = {2, 3},
                       .data = data,
                       .nbytes = sizeof(data)};
    kinfer_error err;
    assert_int_equal(kinfer_tensor_check(&t, 1 << 20, &err), KINFER_OK);
    t.nbytes = 20;
    assert_int_equal(kinfer_tensor_check(&t, 1 << 20, &err), KINFER_ERR_INVALID_REQUEST);
    assert_string_equal(err.msg, "tensor 'x': FP32 shape [2, 3] needs 24 data bytes, got 20");
    t.ndim = KINFER_MAX_DIMS + 1;
    assert_int_equal(kinfer_tensor_check(&t, 1 << 20, &err), KINFER_ERR_INVALID_REQUEST);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_set_and_prefix),
        cmocka_unit_test(test_wire_status_roundtrip),
        cmocka_unit_test(test_flags_from_the_code_table),
        cmocka_unit_test(test_dtype_table),
        cmocka_unit_test(test_shape_numel_overflow_and_negative),
        cmocka_unit_test(test_tensor_check_mismatch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
