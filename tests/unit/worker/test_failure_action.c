/* test_failure_action.c — the worker's decision for a failed request comes
 * from the error code's flags (common/kinfer_error.c), one table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "worker_internal.h"

static void test_actions_follow_the_code_flags(void **state) {
    (void)state;
    /* Answered with an error reply: the request's own fault, or the
     * engine's verdict; OVERLOADED is retriable, by the client. */
    static const kinfer_err reply[] = {
        KINFER_ERR_INVALID_REQUEST, KINFER_ERR_MODEL_NOT_FOUND, KINFER_ERR_DEADLINE_EXCEEDED,
        KINFER_ERR_OVERLOADED,      KINFER_ERR_INTERNAL,        KINFER_ERR_TOO_LARGE,
        KINFER_ERR_UNSUPPORTED,     KINFER_ERR_DEVICE,          KINFER_ERR_INVALID_ARG,
    };
    for (size_t i = 0; i < sizeof reply / sizeof reply[0]; i++)
        assert_int_equal(kinfer_worker_failure_action(reply[i]), KINFER_WORKER_ACT_REPLY);
    assert_int_equal(kinfer_worker_failure_action(KINFER_ERR_DECODE),
                     KINFER_WORKER_ACT_DEAD_LETTER);
    /* Retriable without a wire status: the next owner answers. */
    assert_int_equal(kinfer_worker_failure_action(KINFER_ERR_SHUTDOWN),
                     KINFER_WORKER_ACT_REDELIVER);
    assert_int_equal(kinfer_worker_failure_action(KINFER_ERR_KAFKA), KINFER_WORKER_ACT_REDELIVER);
    /* Fatal: stop. */
    assert_int_equal(kinfer_worker_failure_action(KINFER_ERR_NOMEM), KINFER_WORKER_ACT_STOP);
    /* And the decision really is the flags'. */
    assert_true(kinfer_err_fatal(KINFER_ERR_NOMEM));
    assert_true(kinfer_err_retriable(KINFER_ERR_SHUTDOWN));
    assert_false(kinfer_err_retriable(KINFER_ERR_DECODE) || kinfer_err_fatal(KINFER_ERR_DECODE));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_actions_follow_the_code_flags),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
