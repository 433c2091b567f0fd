/* worker_kafka_diag.c — what a librdkafka client error says about the
 * configuration (kinfer_kafka_diagnose, kinfer_worker.h): an authentication
 * or TLS failure is a wrong password, user, mechanism, CA or protocol,
 * which retrying never fixes, so it gets a class and a one-line hint that
 * names the properties to check. Shared by the worker and by `kinfer
 * send/bench`. Not what anyone does about it. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <librdkafka/rdkafka.h>

#include "kinfer/kinfer_worker.h"

static bool has(const char *s, const char *what) {
    return s && strcasestr(s, what) != NULL;
}

kinfer_kafka_error_class kinfer_kafka_diagnose(int code, const char *reason) {
    rd_kafka_resp_err_t e = (rd_kafka_resp_err_t)code;
    if (e == RD_KAFKA_RESP_ERR_UNSUPPORTED_SASL_MECHANISM ||
        has(reason, "unsupported sasl mechanism"))
        return KINFER_KAFKA_ERROR_SASL_MECHANISM;
    if (e == RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED ||
        e == RD_KAFKA_RESP_ERR_ILLEGAL_SASL_STATE ||
        (e == RD_KAFKA_RESP_ERR__AUTHENTICATION && !has(reason, "ssl")) ||
        has(reason, "SASL authentication error"))
        return KINFER_KAFKA_ERROR_SASL;
    /* OpenSSL's verify failures: an unknown CA, an expired certificate, a
     * name that does not match the broker's address. */
    if (has(reason, "certificate verify failed") || has(reason, "hostname mismatch") ||
        has(reason, "broker certificate could not be verified"))
        return KINFER_KAFKA_ERROR_TLS_TRUST;
    /* By code only: a connection reset in the middle of a handshake (a
     * broker restarting) also says "SSL handshake failed", as a transport
     * error. */
    if (e == RD_KAFKA_RESP_ERR__SSL || e == RD_KAFKA_RESP_ERR__AUTHENTICATION)
        return KINFER_KAFKA_ERROR_TLS;
    /* A plain client on a TLS listener (or the other way round): librdkafka
     * says "might be caused by incorrect security.protocol". */
    if (has(reason, "incorrect security.protocol"))
        return KINFER_KAFKA_ERROR_PROTOCOL;
    return KINFER_KAFKA_ERROR_OTHER;
}

const char *kinfer_kafka_error_class_name(kinfer_kafka_error_class cls) {
    switch (cls) {
    case KINFER_KAFKA_ERROR_SASL:
        return "sasl_credentials";
    case KINFER_KAFKA_ERROR_SASL_MECHANISM:
        return "sasl_mechanism";
    case KINFER_KAFKA_ERROR_TLS_TRUST:
        return "tls_untrusted";
    case KINFER_KAFKA_ERROR_TLS:
        return "tls_handshake";
    case KINFER_KAFKA_ERROR_PROTOCOL:
        return "security_protocol";
    case KINFER_KAFKA_ERROR_OTHER:
        break;
    }
    return "other";
}

const char *kinfer_kafka_error_hint(kinfer_kafka_error_class cls) {
    switch (cls) {
    case KINFER_KAFKA_ERROR_SASL:
        return "the cluster refused the credentials: check sasl.username and sasl.password "
               "(and sasl.mechanism)";
    case KINFER_KAFKA_ERROR_SASL_MECHANISM:
        return "the broker does not offer this SASL mechanism: check sasl.mechanism (e.g. "
               "SCRAM-SHA-512, PLAIN) against the listener's sasl.enabled.mechanisms";
    case KINFER_KAFKA_ERROR_TLS_TRUST:
        return "the broker's TLS certificate is not trusted: check ssl.ca.location (the CA "
               "that signed the broker's certificate) and that the bootstrap address matches "
               "the certificate's names";
    case KINFER_KAFKA_ERROR_TLS:
        return "the TLS handshake with the broker failed: check security.protocol and the "
               "ssl.* properties (ssl.ca.location, ssl.certificate.location, ssl.key.location)";
    case KINFER_KAFKA_ERROR_PROTOCOL:
        return "the broker closed the connection at the first request: check security.protocol "
               "(SSL or SASL_SSL for a TLS listener, PLAINTEXT or SASL_PLAINTEXT for a plain one)";
    case KINFER_KAFKA_ERROR_OTHER:
        break;
    }
    return NULL;
}

bool kinfer_kafka_error_is_config(kinfer_kafka_error_class cls) {
    return cls != KINFER_KAFKA_ERROR_OTHER;
}
