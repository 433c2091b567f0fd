/* kinfer_error.c — names and formatting for the one error type. */
#include "kinfer/kinfer_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* The one per-code table: name, text, wire status and the flags that
 * kinfer_error_set copies into every error of that code. The worker's
 * decisions read the flags (worker_msg.c: kinfer_worker_failure_action):
 *   retriable  the same operation may succeed later or elsewhere: OVERLOADED
 *              (the client retries, told by its reply), SHUTDOWN (the next
 *              owner of the partition answers), IO and KAFKA (transient;
 *              a fatal Kafka error is marked fatal where it is seen).
 *   fatal      the process cannot go on safely: NOMEM (kinfer stops
 *              gracefully rather than answer or track requests half-way).
 * wire: index into the reply's Status enum (kinfer_err_to_wire_status). */
typedef struct err_desc {
    kinfer_err code;
    const char *name;
    const char *text;
    int wire;
    bool retriable;
    bool fatal;
} err_desc;

enum { WIRE_OK, WIRE_INVALID, WIRE_NOT_FOUND, WIRE_DEADLINE, WIRE_OVERLOADED, WIRE_INTERNAL };

static const err_desc err_table[] = {
    {KINFER_OK, "OK", "success", WIRE_OK, false, false},
    {KINFER_ERR_INVALID_REQUEST, "INVALID_REQUEST", "invalid request", WIRE_INVALID, false, false},
    {KINFER_ERR_MODEL_NOT_FOUND, "MODEL_NOT_FOUND", "model not found", WIRE_NOT_FOUND, false,
     false},
    {KINFER_ERR_DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED", "deadline exceeded", WIRE_DEADLINE, false,
     false},
    {KINFER_ERR_OVERLOADED, "OVERLOADED", "overloaded", WIRE_OVERLOADED, true, false},
    {KINFER_ERR_INTERNAL, "INTERNAL_ERROR", "internal error", WIRE_INTERNAL, false, false},
    {KINFER_ERR_DECODE, "DECODE", "malformed message", WIRE_INVALID, false, false},
    {KINFER_ERR_TOO_LARGE, "TOO_LARGE", "size limit exceeded", WIRE_INVALID, false, false},
    {KINFER_ERR_CONFIG, "CONFIG", "configuration error", WIRE_INTERNAL, false, false},
    {KINFER_ERR_IO, "IO", "I/O error", WIRE_INTERNAL, true, false},
    {KINFER_ERR_NOMEM, "NOMEM", "out of memory", WIRE_INTERNAL, false, true},
    {KINFER_ERR_UNSUPPORTED, "UNSUPPORTED", "unsupported", WIRE_INVALID, false, false},
    {KINFER_ERR_SHUTDOWN, "SHUTDOWN", "shutting down", WIRE_INTERNAL, true, false},
    {KINFER_ERR_DEVICE, "DEVICE", "compute device error", WIRE_INTERNAL, false, false},
    {KINFER_ERR_KAFKA, "KAFKA", "Kafka error", WIRE_INTERNAL, true, false},
    {KINFER_ERR_MODEL_LOAD, "MODEL_LOAD", "invalid model file", WIRE_INTERNAL, false, false},
    {KINFER_ERR_INVALID_ARG, "INVALID_ARG", "invalid argument", WIRE_INTERNAL, false, false},
};

static const err_desc *err_find(kinfer_err code) {
    for (size_t i = 0; i < sizeof(err_table) / sizeof(err_table[0]); i++)
        if (err_table[i].code == code)
            return &err_table[i];
    return NULL;
}

const char *kinfer_err2str(kinfer_err code) {
    const err_desc *d = err_find(code);
    return d ? d->text : "unknown error";
}

const char *kinfer_err2name(kinfer_err code) {
    const err_desc *d = err_find(code);
    return d ? d->name : "UNKNOWN";
}

bool kinfer_err_retriable(kinfer_err code) {
    const err_desc *d = err_find(code);
    return d && d->retriable;
}

bool kinfer_err_fatal(kinfer_err code) {
    const err_desc *d = err_find(code);
    return d && d->fatal;
}

kinfer_err kinfer_error_set(kinfer_error *err, kinfer_err code, const char *fmt, ...) {
    if (!err)
        return code;
    err->code = code;
    err->retriable = kinfer_err_retriable(code);
    err->fatal = kinfer_err_fatal(code);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return code;
}

kinfer_err kinfer_error_prefix(kinfer_error *err, const char *fmt, ...) {
    if (!err)
        return KINFER_OK;
    char prefix[KINFER_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    /* Build "<prefix>: <old>" by hand; snprintf with two bounded strings
     * trips -Wformat-truncation although truncation is what we want. */
    char old[KINFER_ERROR_MSG_MAX];
    memcpy(old, err->msg, sizeof(old));
    old[sizeof(old) - 1] = '\0';
    size_t cap = sizeof(err->msg) - 1, off = 0;
    for (const char *parts[] = {prefix, ": ", old}, **p = parts; p < parts + 3; p++) {
        size_t n = strlen(*p);
        if (n > cap - off)
            n = cap - off;
        memcpy(err->msg + off, *p, n);
        off += n;
    }
    err->msg[off] = '\0';
    return err->code;
}

void kinfer_error_clear(kinfer_error *err) {
    if (!err)
        return;
    err->code = KINFER_OK;
    err->retriable = false;
    err->fatal = false;
    err->msg[0] = '\0';
}

int kinfer_err_to_wire_status(kinfer_err code) {
    const err_desc *d = err_find(code);
    return d ? d->wire : WIRE_INTERNAL;
}

kinfer_err kinfer_err_from_wire_status(int status) {
    static const kinfer_err map[] = {KINFER_OK,
                                     KINFER_ERR_INVALID_REQUEST,
                                     KINFER_ERR_MODEL_NOT_FOUND,
                                     KINFER_ERR_DEADLINE_EXCEEDED,
                                     KINFER_ERR_OVERLOADED,
                                     KINFER_ERR_INTERNAL};
    if (status < 0 || status > 5)
        return KINFER_ERR_INTERNAL;
    return map[status];
}
