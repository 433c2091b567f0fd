/* cmd_worker.c — `kinfer worker`: parse the command line, load the config,
 * start the embedded cluster when asked (or when the config names no
 * brokers), install the signal handlers and run the worker. Not the worker
 * itself (worker_loop.c). */
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_parse.h"
#include "kinfer/kinfer_config.h"
#include "kinfer/kinfer_log.h"
#include "kinfer/kinfer_model.h"
#include "kinfer/kinfer_worker.h"
#include "kinfer/kinfer_embedded.h"

/* The only global of the worker: a signal handler can reach nothing else.
 * Written by the handler, read by the poll loop. */
static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) {
    (void)sig;
    if (stop_requested) {
        /* Second signal: the user wants out now. _exit and write are
         * async-signal-safe; nothing is flushed or committed. */
        static const char msg[] = "kinfer: second signal, exiting at once\n";
        ssize_t n = write(STDERR_FILENO, msg, sizeof msg - 1);
        (void)n;
        _exit(130);
    }
    stop_requested = 1;
    static const char msg[] =
        "kinfer: stopping (finishing in-flight requests; signal again to exit at once)\n";
    ssize_t n = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)n;
}

static void usage(FILE *out) {
    fprintf(
        out,
        "usage: kinfer worker [-c FILE] [--embedded-kafka] [options]\n"
        "\n"
        "Consume inference requests from Kafka, run the models, produce replies.\n"
        "\n"
        "  -c, --config FILE        configuration file (libconfig). Without -c: $KINFER_CONFIG,\n"
        "                           else examples/kinfer.conf of the kinfer checkout the binary\n"
        "                           was built in (<binary dir>/../examples/kinfer.conf), else\n"
        "                           ./examples/kinfer.conf\n"
        "      --embedded-kafka     serve on an in-process Kafka cluster (librdkafka's mock\n"
        "                           cluster) instead of kafka.brokers; also the default when\n"
        "                           the config names no brokers\n"
        "      --partitions N       embedded cluster: partitions per topic (default 3)\n"
        "      --max-in-flight N    unacknowledged requests before input pauses (default:\n"
        "                           from the models' queue sizes)\n"
        "      --max-in-flight-bytes N  same in request bytes (default 268435456)\n"
        "      --log-level LEVEL    debug|info|warn|error (overrides worker.log_level)\n"
        "  -h, --help               this text\n"
        "\n"
        "SIGTERM or SIGINT stops gracefully: consumption stops, in-flight requests finish\n"
        "(worker.drain_timeout_ms), replies are flushed, offsets committed, the group left.\n"
        "A second signal exits at once.\n");
}

/* Default config path: see usage(). */
static const char *default_config(char *buf, size_t len) {
    const char *env = getenv("KINFER_CONFIG");
    if (env && *env)
        return env;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = 0;
            snprintf(buf, len, "%s/../examples/kinfer.conf", exe);
            if (access(buf, R_OK) == 0)
                return buf;
        }
    }
    return "examples/kinfer.conf";
}

/* How this binary is best typed from the current directory. */
static void self_path(char *buf, size_t len) {
    char exe[PATH_MAX], cwd[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        snprintf(buf, len, "kinfer");
        return;
    }
    exe[n] = 0;
    if (getcwd(cwd, sizeof cwd)) {
        size_t cl = strlen(cwd);
        if (!strncmp(exe, cwd, cl) && exe[cl] == '/') {
            snprintf(buf, len, "%s", exe + cl + 1);
            return;
        }
    }
    snprintf(buf, len, "%s", exe);
}

/* The model's own account of itself (kinfer_model_info): the banner shows
 * its description and, for a fixed-width numeric input, a request to paste.
 * Loaded again here: the engine's copy is not the CLI's to reach. */
static bool model_info(const kinfer_model_config *m, kinfer_model **model,
                       kinfer_model_info *info) {
    kinfer_error err;
    if (kinfer_model_load(&m->load, model, &err) != KINFER_OK)
        return false;
    kinfer_model_info_get(*model, info);
    return true;
}

/* A ready-to-paste `kinfer send` for one model, from its own account of
 * its input: --text for a STRING input (kind bert: embeddings or a
 * classifier's labels), values for a fixed-width FP32 one (an MLP), a
 * chat message for a generative model (kind llm). */
static void try_line(const char *self, const char *bootstrap, const char *topic,
                     const kinfer_model_config *m, const kinfer_model_info *info) {
    printf("  %s send -b %s -t %s -m %s ", self, bootstrap, topic, m->name);
    if (info && info->kind && !strcmp(info->kind, "llm")) {
        printf("--chat 'user:What is the capital of France?' --max-tokens 64\n");
        return;
    }
    if (info && info->input_dtype == KINFER_DTYPE_STRING) {
        printf("--text 'Kafka carries the request.' --text 'The worker answers it.'\n");
        return;
    }
    long width = info && info->input_dtype == KINFER_DTYPE_FP32 ? (long)info->input_width : 0;
    if (width > 0 && width <= 16) {
        printf("--input ");
        for (long i = 0; i < width; i++)
            printf("%s%.1f", i ? "," : "", (double)(i % 10) / 10.0);
    } else if (width > 0) {
        printf("--random --shape 1,%ld", width);
    } else {
        printf("--input-file input.json");
    }
    printf("\n");
}

static void embedded_banner(const kinfer_config *cfg, const char *bootstrap, int partitions) {
    char self[PATH_MAX];
    self_path(self, sizeof self);
    const char *topic = cfg->kafka.topics.n ? cfg->kafka.topics.items[0] : "inference.requests";
    printf("\nkinfer worker: embedded Kafka cluster (in-process, data lost on exit)\n");
    printf("  bootstrap   %s\n", bootstrap);
    for (size_t i = 0; i < cfg->kafka.topics.n; i++)
        printf("  topic       %s (%d partitions; replies to %s, dead letters to %s)\n",
               cfg->kafka.topics.items[i], partitions, cfg->kafka.reply_topic_pattern,
               cfg->kafka.dlq_topic_pattern);
    /* The models' own accounts of themselves, kept for the lines below
     * (zeroed when a model does not load here: no line to suggest). */
    kinfer_model_info *infos = calloc(cfg->nmodels ? cfg->nmodels : 1, sizeof *infos);
    kinfer_model **models = calloc(cfg->nmodels ? cfg->nmodels : 1, sizeof *models);
    for (size_t i = 0; i < cfg->nmodels; i++) {
        bool ok = infos && models && model_info(&cfg->models[i], &models[i], &infos[i]);
        printf("  model       %s (%s, %s)\n", cfg->models[i].name,
               ok ? infos[i].description : cfg->models[i].load.kind, cfg->models[i].load.path);
    }
    if (cfg->nmodels)
        printf("\nTry it from another terminal:\n\n");
    for (size_t i = 0; i < cfg->nmodels; i++)
        try_line(self, bootstrap, topic, &cfg->models[i], infos ? &infos[i] : NULL);
    if (cfg->nmodels)
        printf("\n");
    for (size_t i = 0; models && i < cfg->nmodels; i++)
        kinfer_model_destroy(models[i]);
    free(models);
    free(infos);
    printf("Ctrl-C stops the worker.\n\n");
    fflush(stdout);
}

int kinfer_cmd_worker(int argc, char **argv) {
    static const struct option longopts[] = {
        {"config", required_argument, 0, 'c'},
        {"embedded-kafka", no_argument, 0, 'E'},
        {"partitions", required_argument, 0, 'P'},
        {"max-in-flight", required_argument, 0, 'M'},
        {"max-in-flight-bytes", required_argument, 0, 'B'},
        {"log-level", required_argument, 0, 'L'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *path = NULL, *log_level = NULL;
    int embedded = 0;
    long long partitions = 3, max_in_flight = 0, max_bytes = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case 'E':
            embedded = 1;
            break;
        case 'P':
            if (kinfer_cli_opt_int("worker", "partitions", optarg, 1, 1000, &partitions))
                return 2;
            break;
        case 'M':
            if (kinfer_cli_opt_int("worker", "max-in-flight", optarg, 1, 10000000, &max_in_flight))
                return 2;
            break;
        case 'B':
            if (kinfer_cli_opt_int("worker", "max-in-flight-bytes", optarg, 1024, 1LL << 40,
                                   &max_bytes))
                return 2;
            break;
        case 'L':
            log_level = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "kinfer worker: unexpected argument '%s'\n\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    char defbuf[PATH_MAX + 32];
    if (!path)
        path = default_config(defbuf, sizeof defbuf);

    kinfer_config cfg;
    kinfer_error err;
    if (kinfer_config_load(path, &cfg, &err) != KINFER_OK) {
        fprintf(stderr, "kinfer worker: %s\n", err.msg);
        return 1;
    }
    kinfer_log_level lvl = cfg.worker.log_level;
    if (log_level && kinfer_log_level_parse(log_level, &lvl)) {
        fprintf(stderr, "kinfer worker: --log-level: unknown level '%s'\n", log_level);
        kinfer_config_free(&cfg);
        return 2;
    }
    if (log_level || !getenv("KINFER_LOG_LEVEL"))
        kinfer_log_set_level(lvl);

    kinfer_worker_embedded *emb = NULL;
    kinfer_worker_options opts = {0};
    opts.stop_flag = &stop_requested;
    opts.max_in_flight = (uint32_t)max_in_flight;
    opts.max_in_flight_bytes = (uint64_t)max_bytes;
    /* A test hook (README, "Tests"): never set it in production. */
    opts.test_wedge_file = getenv("KINFER_TEST_WEDGE_FILE");
    opts.test_close_directly = getenv("KINFER_TEST_CLOSE_DIRECTLY") != NULL;
    if (embedded || !cfg.kafka.brokers || !*cfg.kafka.brokers) {
        if (cfg.kafka.topic_pattern) {
            fprintf(stderr,
                    "kinfer worker: %s: the embedded cluster needs kafka.topics, not "
                    "kafka.topic_pattern\n",
                    path);
            kinfer_config_free(&cfg);
            return 1;
        }
        if (kinfer_worker_embedded_start(cfg.kafka.topics.items, cfg.kafka.topics.n,
                                         (int)partitions, cfg.kafka.reply_topic_pattern,
                                         cfg.kafka.dlq_topic_pattern, &emb, &err) != KINFER_OK) {
            fprintf(stderr, "kinfer worker: %s\n", err.msg);
            kinfer_config_free(&cfg);
            return 1;
        }
        opts.brokers_override = kinfer_worker_embedded_bootstrap(emb);
        opts.embedded = true;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    kinfer_worker *w = NULL;
    int status = 0;
    if (kinfer_worker_new(&cfg, &opts, &w, &err) != KINFER_OK) {
        fprintf(stderr, "kinfer worker: %s\n", err.msg);
        status = 1;
    } else {
        if (emb)
            embedded_banner(&cfg, opts.brokers_override, (int)partitions);
        if (kinfer_worker_run(w, &err) != KINFER_OK) {
            fprintf(stderr, "kinfer worker: %s\n", err.msg);
            status = 1;
        }
    }
    kinfer_worker_destroy(w);
    kinfer_worker_embedded_stop(emb);
    kinfer_config_free(&cfg);
    return status;
}
