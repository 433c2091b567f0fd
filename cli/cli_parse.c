/* cli_parse.c — strict numeric option parsing for the kinfer commands:
 * strtoll/strtod over the whole text with errno and range checks, and one
 * error wording naming the option. Not getopt handling, not config files. */
#include "cli_parse.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* strtoll/strtod accept leading spaces; an option value with them is a
 * quoting mistake worth reporting rather than guessing. */
static int starts_clean(const char *text) {
    return text && *text && !isspace((unsigned char)text[0]);
}

kinfer_err kinfer_cli_parse_int(const char *text, long long min, long long max, long long *out,
                                kinfer_error *err) {
    if (starts_clean(text)) {
        char *end;
        errno = 0;
        long long v = strtoll(text, &end, 10);
        if (!errno && *end == '\0' && v >= min && v <= max) {
            *out = v;
            return KINFER_OK;
        }
    }
    return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                            "expected an integer between %lld and %lld, got '%s'", min, max,
                            text ? text : "");
}

/* A finite decimal number (no hex, inf or nan, which strtod also takes);
 * *unit points after it. Returns 0, or -1. */
static int parse_decimal(const char *text, double *v, const char **unit) {
    if (!starts_clean(text))
        return -1;
    const char *p = text;
    if (*p == '+' || *p == '-')
        p++;
    if (!isdigit((unsigned char)*p) && !(*p == '.' && isdigit((unsigned char)p[1])))
        return -1;
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
        return -1;
    char *end;
    errno = 0;
    double d = strtod(text, &end);
    if (errno || !isfinite(d))
        return -1;
    *v = d;
    *unit = end;
    return 0;
}

kinfer_err kinfer_cli_parse_ms(const char *text, long long min, long long max, long long *out,
                               kinfer_error *err) {
    double v;
    const char *unit;
    if (!parse_decimal(text, &v, &unit) &&
        (!strcmp(unit, "") || !strcmp(unit, "ms") || !strcmp(unit, "s"))) {
        if (!strcmp(unit, "s"))
            v *= 1000.0;
        /* Compare as doubles first: converting an out-of-range double to
         * long long is undefined. */
        if (v >= (double)min && v <= (double)max) {
            *out = (long long)v;
            return KINFER_OK;
        }
    }
    return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                            "expected milliseconds between %lld and %lld (e.g. 1500, 1500ms or "
                            "1.5s), got '%s'",
                            min, max, text ? text : "");
}

kinfer_err kinfer_cli_parse_seconds(const char *text, double min, double max, double *out,
                                    kinfer_error *err) {
    double v;
    const char *unit;
    if (!parse_decimal(text, &v, &unit) && *unit == '\0' && v >= min && v <= max) {
        *out = v;
        return KINFER_OK;
    }
    return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                            "expected seconds between %.10g and %.10g, got '%s'", min, max,
                            text ? text : "");
}

static int report(const char *cmd, const char *opt, const kinfer_error *err) {
    fprintf(stderr, "kinfer %s: --%s: %s\n", cmd, opt, err->msg);
    return 2;
}

int kinfer_cli_opt_int(const char *cmd, const char *opt, const char *text, long long min,
                       long long max, long long *out) {
    kinfer_error err;
    return kinfer_cli_parse_int(text, min, max, out, &err) ? report(cmd, opt, &err) : 0;
}

int kinfer_cli_opt_ms(const char *cmd, const char *opt, const char *text, long long min,
                      long long max, long long *out) {
    kinfer_error err;
    return kinfer_cli_parse_ms(text, min, max, out, &err) ? report(cmd, opt, &err) : 0;
}

int kinfer_cli_opt_seconds(const char *cmd, const char *opt, const char *text, double min,
                           double max, double *out) {
    kinfer_error err;
    return kinfer_cli_parse_seconds(text, min, max, out, &err) ? report(cmd, opt, &err) : 0;
}
