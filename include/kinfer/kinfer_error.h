/* kinfer_error.h — the one error type of kinfer.
 *
 * Every fallible function returns a kinfer_err and, given a non-NULL
 * kinfer_error, fills a readable message plus retriable/fatal flags, taken
 * from one per-code table (common/kinfer_error.c), so the caller can choose
 * between retry, error reply, dead letter and shutdown (the worker does:
 * kinfer_worker_failure_action in worker/worker_msg.c).
 * Not a logging facility: callers decide what to print. */
#ifndef KINFER_ERROR_H
#define KINFER_ERROR_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 0 = OK. The first five failures map 1:1 onto the wire Status enum of
 * schemas/inference_response.avsc (see kinfer_err_to_wire_status). The rest
 * are local errors that never appear on the wire as such. */
typedef enum kinfer_err {
    KINFER_OK = 0,
    KINFER_ERR_INVALID_REQUEST = -1,
    KINFER_ERR_MODEL_NOT_FOUND = -2,
    KINFER_ERR_DEADLINE_EXCEEDED = -3,
    KINFER_ERR_OVERLOADED = -4,
    KINFER_ERR_INTERNAL = -5,

    KINFER_ERR_DECODE = -20,      /* bytes are not a valid message */
    KINFER_ERR_TOO_LARGE = -21,   /* a configured size limit was exceeded */
    KINFER_ERR_CONFIG = -22,      /* configuration file or value invalid */
    KINFER_ERR_IO = -23,          /* file or socket I/O failed */
    KINFER_ERR_NOMEM = -24,       /* allocation failed */
    KINFER_ERR_UNSUPPORTED = -25, /* valid but not supported here */
    KINFER_ERR_SHUTDOWN = -26,    /* the component is shutting down */
    KINFER_ERR_DEVICE = -27,      /* a compute device (CUDA, BLAS) failed */
    KINFER_ERR_KAFKA = -28,       /* the Kafka client reported an error */
    KINFER_ERR_MODEL_LOAD = -29,  /* a model file is invalid */
    KINFER_ERR_INVALID_ARG = -30, /* programmer passed an invalid argument */
} kinfer_err;

#define KINFER_ERROR_MSG_MAX 512

typedef struct kinfer_error {
    kinfer_err code;
    bool retriable; /* trying the same thing again may succeed (the code's flag) */
    bool fatal;     /* the process cannot go on safely (the code's flag) */
    char msg[KINFER_ERROR_MSG_MAX];
} kinfer_error;

/* Short human text, e.g. "invalid request". Never NULL. */
const char *kinfer_err2str(kinfer_err code);
/* Symbolic name, e.g. "INVALID_REQUEST" (equal to the wire name for the
 * wire-mapped codes). Never NULL. */
const char *kinfer_err2name(kinfer_err code);

/* The per-code flags (false for an unknown code). */
bool kinfer_err_retriable(kinfer_err code);
bool kinfer_err_fatal(kinfer_err code);

/* Fills err (if non-NULL) with code, the code's flags and a printf-formatted
 * message. Returns code so callers can `return kinfer_error_set(...)`. */
kinfer_err kinfer_error_set(kinfer_error *err, kinfer_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepends "<context>: " to the existing message, keeping code and flags.
 * Returns err->code (KINFER_OK when err is NULL). */
kinfer_err kinfer_error_prefix(kinfer_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void kinfer_error_clear(kinfer_error *err);

/* Index into the wire Status enum {OK, INVALID_REQUEST, MODEL_NOT_FOUND,
 * DEADLINE_EXCEEDED, OVERLOADED, INTERNAL_ERROR}, from the per-code table.
 * Local errors map to INTERNAL_ERROR (5), except DECODE/TOO_LARGE/UNSUPPORTED
 * -> INVALID_REQUEST. */
int kinfer_err_to_wire_status(kinfer_err code);
kinfer_err kinfer_err_from_wire_status(int status);

#ifdef __cplusplus
}
#endif
#endif
