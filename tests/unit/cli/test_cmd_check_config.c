/* test_cmd_check_config.c — `kinfer check-config` exits as documented: 0 for
 * a valid file (and --help), 1 for a file that does not load, 2 for a usage
 * error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cli.h"

static void test_check_config_command(void **state) {
    (void)state;
    char *ok[] = {"check-config", "--quiet", KINFER_SOURCE_DIR "/examples/kinfer.conf", NULL};
    assert_int_equal(kinfer_cmd_check_config(3, ok), 0);
    char *missing[] = {"check-config", "/nonexistent/kinfer.conf", NULL};
    assert_int_equal(kinfer_cmd_check_config(2, missing), 1);
    char *help[] = {"check-config", "--help", NULL};
    assert_int_equal(kinfer_cmd_check_config(2, help), 0);
    char *none[] = {"check-config", NULL};
    assert_int_equal(kinfer_cmd_check_config(1, none), 2);
    char *bogus[] = {"check-config", "--bogus", NULL};
    assert_int_equal(kinfer_cmd_check_config(2, bogus), 2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_config_command),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
