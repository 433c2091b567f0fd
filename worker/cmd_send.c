/* cmd_send.c — `kinfer send`. Not built yet: arrives with the worker issue. */
#include <stdio.h>

#include "cli.h"

int kinfer_cmd_send(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "kinfer send: not available in this build yet\n");
    return 2;
}
