/* fuzz_config_load.c — libFuzzer target for the config loader: arbitrary
 * text through libconfig's parser and kinfer's validation, and, when it
 * loads, through the effective-config printer. Model paths in the seeds
 * point at files every Linux has (/etc/passwd, /tmp) so valid inputs get
 * past the existence check. Crashes, leaks and UB are the findings. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kinfer/kinfer_config.h"

/* libconfig 1.5 (Debian 12) leaks the scanner's token strings when a syntax
 * error follows them (e.g. `a"x"`, or `""` in the wrong place): a few bytes
 * per failed parse, inside libconfig, with nothing we can call to free them
 * (a once-per-start cost for the worker, which exits on a bad config).
 * Suppress exactly the scanner's allocation frames so the fuzzer goes on
 * looking for kinfer's own leaks; libconfig's setting nodes (config_destroy's
 * job, i.e. ours) stay checked. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) {
    return "leak:strbuf_append\nleak:libconfig_yylex\n";
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 65536)
        return 0; /* configs are small; bigger inputs only slow the search */
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    kinfer_config cfg;
    kinfer_error err;
    if (kinfer_config_load_string(text, "fuzz.conf", &cfg, &err) == KINFER_OK) {
        FILE *out = fopen("/dev/null", "w");
        if (out) {
            kinfer_config_print(&cfg, out, &err);
            fclose(out);
        }
        kinfer_config_free(&cfg);
    } else if (!memchr(err.msg, '\0', sizeof(err.msg)) || cfg.state || cfg.models) {
        abort(); /* every failure leaves a terminated message and a zeroed config */
    }
    free(text);
    return 0;
}
