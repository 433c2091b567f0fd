/* test_cli_parse.c — the strict numeric option parser of the kinfer
 * commands: good integers, milliseconds and seconds at their range edges,
 * and each class of bad text (garbage, trailing junk, out of range,
 * overflow, empty, spaces, hex/inf/nan) with the error naming it. */
#include <limits.h>
#include <stdio.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cli_parse.h"

static void test_int_ok(void **state) {
    (void)state;
    long long v = -1;
    kinfer_error err;
    assert_int_equal(kinfer_cli_parse_int("0", 0, 10, &v, &err), KINFER_OK);
    assert_int_equal(v, 0);
    assert_int_equal(kinfer_cli_parse_int("10", 0, 10, &v, &err), KINFER_OK);
    assert_int_equal(v, 10);
    assert_int_equal(kinfer_cli_parse_int("-7", -10, 10, &v, &err), KINFER_OK);
    assert_int_equal(v, -7);
    assert_int_equal(kinfer_cli_parse_int("+3", 0, 10, &v, &err), KINFER_OK);
    assert_int_equal(v, 3);
    assert_int_equal(kinfer_cli_parse_int("9223372036854775807", 0, LLONG_MAX, &v, &err),
                     KINFER_OK);
    assert_true(v == LLONG_MAX);
}

static void expect_int_bad(const char *text, long long min, long long max) {
    long long v = 42;
    kinfer_error err;
    assert_int_equal(kinfer_cli_parse_int(text, min, max, &v, &err), KINFER_ERR_INVALID_ARG);
    assert_int_equal(v, 42); /* untouched on error */
    char want[256];
    snprintf(want, sizeof want, "expected an integer between %lld and %lld, got '%s'", min, max,
             text ? text : "");
    assert_string_equal(err.msg, want);
}

static void test_int_bad(void **state) {
    (void)state;
    expect_int_bad("abc", 0, 10000000);   /* garbage: atoll would say 0 */
    expect_int_bad("12abc", 0, 10000000); /* trailing junk: atoll would say 12 */
    expect_int_bad("1.5", 0, 10);         /* not an integer */
    expect_int_bad("-5", 1, 1000000000);  /* below the range */
    expect_int_bad("0", 1, 10);           /* below the range */
    expect_int_bad("11", 0, 10);          /* above the range */
    expect_int_bad("9999999999", INT32_MIN, INT32_MAX);
    expect_int_bad("99999999999999999999", 0, LLONG_MAX); /* overflows long long */
    expect_int_bad("-99999999999999999999", LLONG_MIN, 0);
    expect_int_bad("", 0, 10);
    expect_int_bad(" 5", 0, 10);
    expect_int_bad("5 ", 0, 10);
    expect_int_bad("0x10", 0, 100);
    expect_int_bad("-", 0, 10);
    expect_int_bad(NULL, 0, 10);
}

static void test_ms(void **state) {
    (void)state;
    long long v = 0;
    kinfer_error err;
    assert_int_equal(kinfer_cli_parse_ms("1500", 1, 86400000, &v, &err), KINFER_OK);
    assert_int_equal(v, 1500);
    assert_int_equal(kinfer_cli_parse_ms("1500ms", 1, 86400000, &v, &err), KINFER_OK);
    assert_int_equal(v, 1500);
    assert_int_equal(kinfer_cli_parse_ms("1.5s", 1, 86400000, &v, &err), KINFER_OK);
    assert_int_equal(v, 1500);
    assert_int_equal(kinfer_cli_parse_ms("-2s", -10000, 10000, &v, &err), KINFER_OK);
    assert_int_equal(v, -2000);
    assert_int_equal(kinfer_cli_parse_ms("86400s", 1, 86400000, &v, &err), KINFER_OK);
    assert_int_equal(v, 86400000);
    const char *bad[] = {"x",   "",    "1e99", "86401s", "0",     "-1", "5m",
                         "5 s", "inf", "nan",  "0x10",   "10msx", "s",  " 10"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        v = 7;
        assert_int_equal(kinfer_cli_parse_ms(bad[i], 1, 86400000, &v, &err),
                         KINFER_ERR_INVALID_ARG);
        assert_int_equal(v, 7);
        assert_non_null(strstr(err.msg, "expected milliseconds between 1 and 86400000"));
        char got[64];
        snprintf(got, sizeof got, "got '%s'", bad[i]);
        assert_non_null(strstr(err.msg, got));
    }
}

static void test_seconds(void **state) {
    (void)state;
    double v = 0;
    kinfer_error err;
    assert_int_equal(kinfer_cli_parse_seconds("2.5", 0.001, 31536000, &v, &err), KINFER_OK);
    assert_true(v == 2.5);
    assert_int_equal(kinfer_cli_parse_seconds("31536000", 0.001, 31536000, &v, &err), KINFER_OK);
    const char *bad[] = {"abc", "0", "-1", "inf", "nan", "1e99", "2s", "", "0x1p3"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(kinfer_cli_parse_seconds(bad[i], 0.001, 31536000, &v, &err),
                         KINFER_ERR_INVALID_ARG);
        assert_non_null(strstr(err.msg, "expected seconds between 0.001 and 31536000"));
    }
}

static void test_opt_wrappers_return_usage_status(void **state) {
    (void)state;
    long long v = 0;
    double d = 0;
    assert_int_equal(kinfer_cli_opt_int("bench", "rate", "abc", 0, 10, &v), 2);
    assert_int_equal(kinfer_cli_opt_int("bench", "rate", "3", 0, 10, &v), 0);
    assert_int_equal(v, 3);
    assert_int_equal(kinfer_cli_opt_ms("send", "timeout", "1e99", 1, 10, &v), 2);
    assert_int_equal(kinfer_cli_opt_ms("send", "timeout", "10ms", 1, 10, &v), 0);
    assert_int_equal(v, 10);
    assert_int_equal(kinfer_cli_opt_seconds("bench", "duration", "x", 1, 10, &d), 2);
    assert_int_equal(kinfer_cli_opt_seconds("bench", "duration", "1", 1, 10, &d), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_int_ok),
        cmocka_unit_test(test_int_bad),
        cmocka_unit_test(test_ms),
        cmocka_unit_test(test_seconds),
        cmocka_unit_test(test_opt_wrappers_return_usage_status),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
