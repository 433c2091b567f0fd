/* main.c — the kinfer binary: one process, several subcommands. */
#include <stdio.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "cli.h"

#define KINFER_VERSION_STRING "0.1.0"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"worker", kinfer_cmd_worker, "consume requests, run models, produce replies"},
    {"send", kinfer_cmd_send, "send one request and print its reply"},
    {"bench", kinfer_cmd_bench, "load generator: throughput, latency, lost and duplicate replies"},
    {"batch", kinfer_cmd_batch,
     "run a batch job: a JSONL file (OpenAI batch format) to results, resumable"},
#ifdef KINFER_HAVE_GATEWAY
    {"gateway", kinfer_cmd_gateway,
     "OpenAI-compatible HTTP front door: /v1/embeddings, /v1/files, /v1/batches"},
#endif
    {"check-config", kinfer_cmd_check_config,
     "validate a config file and print the effective config"},
};

static void usage(FILE *out) {
    fprintf(out, "usage: kinfer <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-13s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "  %-13s %s\n", "version", "print the version (and the librdkafka in use)");
    fprintf(out, "\n'kinfer <command> --help' describes each command.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
        /* The librdkafka actually loaded (KINFER_RDKAFKA may pick another
         * than the system one), not the header it was built with. */
        printf("kinfer %s (librdkafka %s)\n", KINFER_VERSION_STRING, rd_kafka_version_str());
        return 0;
    }
    /* Before the worker does anything: OpenBLAS on its generic kernels
     * is fixed by re-executing, else refused (blas_guard.c). */
    if (!strcmp(argv[1], "worker") && kinfer_blas_guard(argv) != 0)
        return 1;
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "kinfer: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
