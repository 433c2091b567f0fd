/* cmd_check_config.c — `kinfer check-config FILE`: validate a config file
 * and print the effective configuration, or `--reference` for the markdown
 * reference (docs/CONFIGURATION.md). Loads no model, contacts no broker. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "kinfer/kinfer_config.h"

static void check_config_usage(FILE *out) {
    fprintf(out,
            "usage: kinfer check-config FILE\n"
            "       kinfer check-config --reference\n"
            "\n"
            "Validates FILE (types, ranges, unknown keys, model paths exist, librdkafka\n"
            "properties) and prints the effective configuration with every default filled\n"
            "in and marked. Exits 0 when valid, 1 with \"file:line: key: problem\" when not.\n"
            "Loads no model and connects to no broker.\n"
            "\n"
            "  --reference  print the markdown reference of every key (docs/CONFIGURATION.md)\n"
            "  -q, --quiet  validate only; print nothing when valid\n"
            "  -h, --help   this text\n");
}

int kinfer_cmd_check_config(int argc, char **argv) {
    const char *path = NULL;
    bool reference = false, quiet = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            check_config_usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--reference")) {
            reference = true;
        } else if (!strcmp(argv[i], "-q") || !strcmp(argv[i], "--quiet")) {
            quiet = true;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "kinfer check-config: unknown option '%s'\n\n", argv[i]);
            check_config_usage(stderr);
            return 2;
        } else if (path) {
            fprintf(stderr, "kinfer check-config: one FILE only\n\n");
            check_config_usage(stderr);
            return 2;
        } else {
            path = argv[i];
        }
    }
    kinfer_error err = {0};
    if (reference) {
        if (path) {
            fprintf(stderr, "kinfer check-config: --reference takes no FILE\n");
            return 2;
        }
        if (kinfer_config_print_reference(stdout, &err) != KINFER_OK) {
            fprintf(stderr, "kinfer check-config: %s\n", err.msg);
            return 1;
        }
        return 0;
    }
    if (!path) {
        check_config_usage(stderr);
        return 2;
    }
    kinfer_config cfg;
    if (kinfer_config_load(path, &cfg, &err) != KINFER_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    int status = 0;
    if (!quiet && kinfer_config_print(&cfg, stdout, &err) != KINFER_OK) {
        fprintf(stderr, "kinfer check-config: %s\n", err.msg);
        status = 1;
    }
    kinfer_config_free(&cfg);
    return status;
}
