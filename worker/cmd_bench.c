/* cmd_bench.c — `kinfer bench`. Not built yet: arrives with the worker issue. */
#include <stdio.h>

#include "cli.h"

int kinfer_cmd_bench(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "kinfer bench: not available in this build yet\n");
    return 2;
}
