/* cmd_batch.c — `kinfer batch`: options, signals, then batch_run.c. The
 * first SIGINT/SIGTERM cancels (no more lines are sent; those in flight
 * finish or time out), a second stops at once; either way the job is
 * checkpointed and resumable with the same --job and -o. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch_run.h"
#include "cli.h"
#include "cli_parse.h"
#include "kinfer/kinfer_route.h"

#define MAX_PROPS 32

static volatile sig_atomic_t stop_level;

static void on_signal(int sig) {
    (void)sig;
    if (stop_level < 2)
        stop_level++;
}

static void usage(FILE *out) {
    fprintf(out,
            "usage: kinfer batch -b BROKERS -t TOPIC -i INPUT -o OUTPUT [options]\n"
            "\n"
            "Run a batch job: one request per input line, through Kafka, to an output file in\n"
            "the OpenAI batch output format. Resumable: run the same command again (same -o,\n"
            "same --job) after Ctrl-C, kill -9 or a crash, and it finishes the job without\n"
            "redoing or repeating a finished line.\n"
            "\n"
            "INPUT (-i FILE):\n"
            "  JSONL in the OpenAI batch input format (default): each line\n"
            "    {\"custom_id\": \"..\", \"method\": \"POST\", \"url\": \"/v1/embeddings\",\n"
            "     \"body\": {\"model\": \"minilm\", \"input\": \"text\" | [\"text\", ..]}}\n"
            "  or url /v1/chat/completions (body.messages) or /v1/completions (body.prompt)\n"
            "  for a generative model, or with --text-input one text per line (custom_id\n"
            "  line-N, the model from -m).\n"
            "\n"
            "options:\n"
            "  -b, --brokers LIST     bootstrap servers (host:port,...)\n"
            "  -t, --topic TOPIC      request topic\n"
            "  -i, --input FILE       input file\n"
            "  -o, --output FILE      output JSONL (successful lines); its journal is\n"
            "                         FILE.journal\n"
            "  -e, --errors FILE      error lines (default: OUTPUT with .errors.jsonl)\n"
            "  -j, --job ID           job id (default: new, or the journal's when resuming)\n"
            "  -m, --model NAME       model when a line's body has none (needed by\n"
            "                         --text-input)\n"
            "      --text-input       the input is plain text, one text per line\n"
            "      --reply-topic T    where replies go (default <topic>.replies)\n"
            "      --max-in-flight N  lines out at once (default 64)\n"
            "      --rate R           lines per second at most (default: no limit)\n"
            "      --timeout MS       per attempt, ms or with a unit (default 120s)\n"
            "      --attempts N       tries per line (timeouts, OVERLOADED) (default 3)\n"
            "      --priority N       request priority (default -1: the bulk lane, which\n"
            "                         never delays online requests)\n"
            "      --deadline-ms MS   request deadline from its sending (default none)\n"
            "      --progress auto|bar|lines|none  (default auto: a bar on a terminal)\n"
            "  -X  K=V                librdkafka property for both clients (repeatable)\n"
            "  -h, --help             this text\n"
            "\n"
            "Exit status: 0 the job completed (every line is in the output or the errors\n"
            "file), 2 usage error or an output of another job, 3 Kafka or file failure\n"
            "(resumable), 4 cancelled by a signal (resumable).\n");
}

typedef struct batch_args {
    batch_opts o;
    const char *reply_topic;
    const char *props[MAX_PROPS];
    char *errors_owned;
} batch_args;

static int parse_progress(const char *s, batch_progress_mode *m) {
    static const char *names[] = {"auto", "bar", "lines", "none"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, names[i])) {
            *m = (batch_progress_mode)i;
            return 0;
        }
    fprintf(stderr, "kinfer batch: --progress wants auto, bar, lines or none\n");
    return 2;
}

static int parse_args(int argc, char **argv, batch_args *a) {
    static const struct option longopts[] = {
        {"brokers", required_argument, 0, 'b'},
        {"topic", required_argument, 0, 't'},
        {"input", required_argument, 0, 'i'},
        {"output", required_argument, 0, 'o'},
        {"errors", required_argument, 0, 'e'},
        {"job", required_argument, 0, 'j'},
        {"model", required_argument, 0, 'm'},
        {"text-input", no_argument, 0, 'T'},
        {"reply-topic", required_argument, 0, 'r'},
        {"max-in-flight", required_argument, 0, 'W'},
        {"rate", required_argument, 0, 'R'},
        {"timeout", required_argument, 0, 'O'},
        {"attempts", required_argument, 0, 'A'},
        {"priority", required_argument, 0, 'p'},
        {"deadline-ms", required_argument, 0, 'D'},
        {"progress", required_argument, 0, 'P'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    batch_opts *o = &a->o;
    int c;
    long long v;
    optind = 1;
    while ((c = getopt_long(argc, argv, "b:t:i:o:e:j:m:X:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'b':
            o->brokers = optarg;
            break;
        case 't':
            o->topic = optarg;
            break;
        case 'i':
            o->input = optarg;
            break;
        case 'o':
            o->output = optarg;
            break;
        case 'e':
            o->errors = optarg;
            break;
        case 'j':
            o->job = optarg;
            break;
        case 'm':
            o->model = optarg;
            break;
        case 'T':
            o->text_input = true;
            break;
        case 'r':
            a->reply_topic = optarg;
            break;
        case 'W':
            if (kinfer_cli_opt_int("batch", "max-in-flight", optarg, 1, 65536, &v))
                return 2;
            o->max_in_flight = (uint32_t)v;
            break;
        case 'R':
            if (kinfer_cli_opt_seconds("batch", "rate", optarg, 0, 1e9, &o->rate))
                return 2;
            break;
        case 'O':
            if (kinfer_cli_opt_ms("batch", "timeout", optarg, 1, 86400000, &v))
                return 2;
            o->timeout_ms = v;
            break;
        case 'A':
            if (kinfer_cli_opt_int("batch", "attempts", optarg, 1, 100, &v))
                return 2;
            o->attempts = (uint32_t)v;
            break;
        case 'p':
            if (kinfer_cli_opt_int("batch", "priority", optarg, INT32_MIN, INT32_MAX, &v))
                return 2;
            o->priority = (int32_t)v;
            break;
        case 'D':
            if (kinfer_cli_opt_ms("batch", "deadline-ms", optarg, 1, 31536000000LL, &v))
                return 2;
            o->deadline_ms = v;
            break;
        case 'P':
            if (parse_progress(optarg, &o->progress))
                return 2;
            break;
        case 'X':
            if (o->nprops == MAX_PROPS) {
                fprintf(stderr, "kinfer batch: too many -X\n");
                return 2;
            }
            a->props[o->nprops++] = optarg;
            break;
        case 'h':
            usage(stdout);
            return 1;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "kinfer batch: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!o->brokers || !o->topic || !o->input || !o->output) {
        fprintf(stderr, "kinfer batch: -b BROKERS, -t TOPIC, -i INPUT and -o OUTPUT are "
                        "required (kinfer batch --help)\n");
        return 2;
    }
    if (o->text_input && !o->model) {
        fprintf(stderr, "kinfer batch: --text-input needs -m MODEL\n");
        return 2;
    }
    return 0;
}

/* OUTPUT.jsonl -> OUTPUT.errors.jsonl; other names get .errors.jsonl added. */
static char *errors_path(const char *out) {
    size_t n = strlen(out);
    const char *ext = ".jsonl";
    size_t base = n >= 6 && !strcmp(out + n - 6, ext) ? n - 6 : n;
    char *s = malloc(base + 14);
    if (s)
        snprintf(s, base + 14, "%.*s.errors.jsonl", (int)base, out);
    return s;
}

int kinfer_cmd_batch(int argc, char **argv) {
    batch_args a;
    memset(&a, 0, sizeof a);
    a.o.max_in_flight = 64;
    a.o.timeout_ms = 120000;
    a.o.attempts = 3;
    a.o.priority = -1;
    int st = parse_args(argc, argv, &a);
    if (st)
        return st == 1 ? 0 : st;
    a.o.props = a.props;
    if (!a.o.errors) {
        a.errors_owned = errors_path(a.o.output);
        if (!a.errors_owned) {
            fprintf(stderr, "kinfer batch: out of memory\n");
            return BATCH_EXIT_FAILURE;
        }
        a.o.errors = a.errors_owned;
    }
    if (!strcmp(a.o.errors, a.o.output) || !strcmp(a.o.input, a.o.output) ||
        !strcmp(a.o.input, a.o.errors)) {
        fprintf(stderr, "kinfer batch: the input, output and errors files must differ\n");
        free(a.errors_owned);
        return BATCH_EXIT_USAGE;
    }
    char reply_topic[KINFER_WORKER_TOPIC_MAX + 1];
    kinfer_error err;
    if (kinfer_worker_pattern_expand(a.reply_topic ? a.reply_topic : "{topic}.replies", a.o.topic,
                                     reply_topic, sizeof reply_topic, &err) != KINFER_OK) {
        fprintf(stderr, "kinfer batch: %s\n", err.msg);
        free(a.errors_owned);
        return BATCH_EXIT_USAGE;
    }
    a.o.reply_topic = reply_topic;
    stop_level = 0;
    a.o.stop = &stop_level;
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    st = batch_run(&a.o);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    free(a.errors_owned);
    return st;
}
