/* test_kafka_diag.c — kinfer_kafka_diagnose over the errors librdkafka
 * really reports (texts from Debian's 2.0.2 against the SASL_SSL broker of
 * scripts/kafka.sh): each configuration mistake gets its class and a hint
 * that names the properties to check; transport trouble is not one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <librdkafka/rdkafka.h>

#include "kinfer/kinfer_worker.h"

static void expect(int code, const char *reason, kinfer_kafka_error_class want,
                   const char *hint_names) {
    kinfer_kafka_error_class got = kinfer_kafka_diagnose(code, reason);
    if (got != want)
        fail_msg("\"%s\": class %s, wanted %s", reason, kinfer_kafka_error_class_name(got),
                 kinfer_kafka_error_class_name(want));
    const char *hint = kinfer_kafka_error_hint(got);
    if (!hint_names) {
        assert_null(hint);
        assert_false(kinfer_kafka_error_is_config(got));
        return;
    }
    assert_true(kinfer_kafka_error_is_config(got));
    if (!strstr(hint, hint_names))
        fail_msg("hint \"%s\" does not name %s", hint, hint_names);
}

static void test_real_errors(void **state) {
    (void)state;
    expect(RD_KAFKA_RESP_ERR__AUTHENTICATION,
           "sasl_ssl://127.0.0.1:19722/bootstrap: SASL authentication error: Authentication "
           "failed during authentication due to invalid credentials with SASL mechanism "
           "SCRAM-SHA-512 (after 426ms in state AUTH_REQ)",
           KINFER_KAFKA_ERROR_SASL, "sasl.password");
    expect(RD_KAFKA_RESP_ERR__SSL,
           "sasl_ssl://127.0.0.1:19722/bootstrap: SSL handshake failed: error:0A000086:SSL "
           "routines::certificate verify failed: broker certificate could not be verified, "
           "verify that ssl.ca.location is correctly configured or root CA certificates are "
           "installed (install ca-certificates package) (after 17ms in state SSL_HANDSHAKE)",
           KINFER_KAFKA_ERROR_TLS_TRUST, "ssl.ca.location");
    expect(RD_KAFKA_RESP_ERR__TRANSPORT,
           "sasl_plaintext://127.0.0.1:19722/bootstrap: Disconnected while requesting "
           "ApiVersion: might be caused by incorrect security.protocol configuration "
           "(connecting to a SSL listener?) or broker version is < 0.10 (see "
           "api.version.request) (after 5ms in state APIVERSION_QUERY)",
           KINFER_KAFKA_ERROR_PROTOCOL, "security.protocol");
    expect(RD_KAFKA_RESP_ERR_UNSUPPORTED_SASL_MECHANISM, "Unsupported SASL mechanism: PLAIN",
           KINFER_KAFKA_ERROR_SASL_MECHANISM, "sasl.mechanism");
    expect(RD_KAFKA_RESP_ERR__SSL,
           "ssl://127.0.0.1:9/bootstrap: SSL handshake failed: wrong "
           "version number",
           KINFER_KAFKA_ERROR_TLS, "security.protocol");
    /* The log callback has no code: the text alone classifies it. */
    expect(0,
           "[thrd:sasl_ssl://127.0.0.1:19722/bootstrap]: SASL authentication error: "
           "Authentication failed",
           KINFER_KAFKA_ERROR_SASL, "sasl.username");
    /* Not configuration: the brokers may come (back) up. */
    expect(RD_KAFKA_RESP_ERR__TRANSPORT,
           "127.0.0.1:19722/bootstrap: Connect to ipv4#127.0.0.1:19722 failed: Connection "
           "refused (after 0ms in state CONNECT)",
           KINFER_KAFKA_ERROR_OTHER, NULL);
    expect(RD_KAFKA_RESP_ERR__TRANSPORT,
           "sasl_ssl://127.0.0.1:9/bootstrap: SSL handshake failed: Disconnected: connection "
           "reset by peer",
           KINFER_KAFKA_ERROR_OTHER, NULL);
    expect(RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN, "1/1 brokers are down", KINFER_KAFKA_ERROR_OTHER,
           NULL);
    expect(0, NULL, KINFER_KAFKA_ERROR_OTHER, NULL);
    assert_string_equal(kinfer_kafka_error_class_name(KINFER_KAFKA_ERROR_TLS_TRUST),
                        "tls_untrusted");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
