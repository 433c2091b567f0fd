/* cmd_check_config.c — `kinfer check-config FILE`. Replaced by the config module. */
#include <stdio.h>

#include "cli.h"

int kinfer_cmd_check_config(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "kinfer check-config: not available in this build yet\n");
    return 2;
}
