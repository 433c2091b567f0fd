/* kinfer_error.c — names and formatting for the one error type. */
#include "kinfer/kinfer_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef struct err_desc {
    kinfer_err code;
    const char *name;
    const char *text;
} err_desc;

static const err_desc err_table[] = {
    {KINFER_OK, "OK", "success"},
    {KINFER_ERR_INVALID_REQUEST, "INVALID_REQUEST", "invalid request"},
    {KINFER_ERR_MODEL_NOT_FOUND, "MODEL_NOT_FOUND", "model not found"},
    {KINFER_ERR_DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED", "deadline exceeded"},
    {KINFER_ERR_OVERLOADED, "OVERLOADED", "overloaded"},
    {KINFER_ERR_INTERNAL, "INTERNAL_ERROR", "internal error"},
    {KINFER_ERR_DECODE, "DECODE", "malformed message"},
    {KINFER_ERR_TOO_LARGE, "TOO_LARGE", "size limit exceeded"},
    {KINFER_ERR_CONFIG, "CONFIG", "configuration error"},
    {KINFER_ERR_IO, "IO", "I/O error"},
    {KINFER_ERR_NOMEM, "NOMEM", "out of memory"},
    {KINFER_ERR_UNSUPPORTED, "UNSUPPORTED", "unsupported"},
    {KINFER_ERR_SHUTDOWN, "SHUTDOWN", "shutting down"},
    {KINFER_ERR_DEVICE, "DEVICE", "compute device error"},
    {KINFER_ERR_KAFKA, "KAFKA", "Kafka error"},
    {KINFER_ERR_MODEL_LOAD, "MODEL_LOAD", "invalid model file"},
    {KINFER_ERR_INVALID_ARG, "INVALID_ARG", "invalid argument"},
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

kinfer_err kinfer_error_set(kinfer_error *err, kinfer_err code, const char *fmt, ...) {
    if (!err)
        return code;
    err->code = code;
    err->retriable = false;
    err->fatal = false;
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
    switch (code) {
    case KINFER_OK:
        return 0;
    case KINFER_ERR_INVALID_REQUEST:
    case KINFER_ERR_DECODE:
    case KINFER_ERR_TOO_LARGE:
    case KINFER_ERR_UNSUPPORTED:
        return 1;
    case KINFER_ERR_MODEL_NOT_FOUND:
        return 2;
    case KINFER_ERR_DEADLINE_EXCEEDED:
        return 3;
    case KINFER_ERR_OVERLOADED:
        return 4;
    default:
        return 5;
    }
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
