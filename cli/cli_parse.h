/* cli_parse.h — strict parsing of the numeric command-line options of
 * `kinfer worker`, `kinfer send` and `kinfer bench`: the whole text must be
 * a number within a range, so that garbage never silently becomes 0. Not
 * the config file's parser (config_load.c). */
#ifndef KINFER_CLI_PARSE_H
#define KINFER_CLI_PARSE_H

#include "kinfer/kinfer_error.h"

/* A decimal integer (optional sign, no spaces, nothing after it) in
 * [min, max]. KINFER_ERR_INVALID_ARG with "expected an integer between MIN
 * and MAX, got 'TEXT'" otherwise. */
kinfer_err kinfer_cli_parse_int(const char *text, long long min, long long max, long long *out,
                                kinfer_error *err);

/* Milliseconds: "1500", "1500ms" or "1.5s" (a finite decimal number with an
 * optional unit), rounded toward zero, in [min, max]. */
kinfer_err kinfer_cli_parse_ms(const char *text, long long min, long long max, long long *out,
                               kinfer_error *err);

/* Seconds: a finite decimal number in [min, max], e.g. "2.5". */
kinfer_err kinfer_cli_parse_seconds(const char *text, double min, double max, double *out,
                                    kinfer_error *err);

/* The same, for an option of a command: on bad text prints
 * "kinfer CMD: --OPT: <why>" to stderr and returns 2 (the usage-error exit
 * status); 0 on success. */
int kinfer_cli_opt_int(const char *cmd, const char *opt, const char *text, long long min,
                       long long max, long long *out);
int kinfer_cli_opt_ms(const char *cmd, const char *opt, const char *text, long long min,
                      long long max, long long *out);
int kinfer_cli_opt_seconds(const char *cmd, const char *opt, const char *text, double min,
                           double max, double *out);

#endif
