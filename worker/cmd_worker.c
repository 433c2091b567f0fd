/* cmd_worker.c — `kinfer worker`. Not built yet: arrives with the worker issue. */
#include <stdio.h>

#include "cli.h"

int kinfer_cmd_worker(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "kinfer worker: not available in this build yet\n");
    return 2;
}
