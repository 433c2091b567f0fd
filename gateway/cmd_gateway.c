/* cmd_gateway.c — `kinfer gateway`: options, the API keys file, start the
 * bridge, the batch state and HTTP, serve until SIGINT/SIGTERM. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cli_parse.h"
#include "gateway.h"
#include "kinfer/kinfer_route.h"

static volatile sig_atomic_t stopping;

static void on_signal(int sig) {
    (void)sig;
    stopping = 1;
}

static void usage(FILE *out) {
    fprintf(out,
            "usage: kinfer gateway -b BROKERS -t TOPIC --files-dir DIR (--api-keys-file FILE |\n"
            "                      --api-key KEY... | --no-auth) [options]\n"
            "\n"
            "An OpenAI-compatible HTTP front door over Kafka: POST /v1/embeddings,\n"
            "/v1/chat/completions and /v1/completions (synchronous requests through TOPIC\n"
            "and its reply topic; \"stream\": true answers with Server-Sent Events as the\n"
            "tokens come), /v1/files (upload with\n"
            "purpose \"batch\", retrieve, list, content) and /v1/batches (create, retrieve,\n"
            "list, cancel; state on a compacted Kafka topic, so any gateway instance answers\n"
            "for any batch, and an unfinished batch resumes on another instance). Stateless\n"
            "but for the files directory: run several behind a load balancer, sharing DIR.\n"
            "\n"
            "options:\n"
            "  -b, --brokers LIST       bootstrap servers\n"
            "  -t, --topic TOPIC        request topic the workers consume\n"
            "      --reply-topic T      reply topic (default <topic>.replies)\n"
            "      --state-topic T      batch state topic, created compacted when missing\n"
            "                           (default kinfer.gateway.batches)\n"
            "      --listen HOST:PORT   IPv4 address and port (default 127.0.0.1:8080; port 0\n"
            "                           picks a free one, printed at start)\n"
            "      --files-dir DIR      where uploaded, output and batch files live\n"
            "      --api-keys-file FILE bearer keys, one per line (# comments)\n"
            "      --api-key KEY        a bearer key (repeatable)\n"
            "      --no-auth            accept requests without a key\n"
            "      --timeout MS         how long /v1/embeddings waits for its reply (default\n"
            "                           60s; then 504)\n"
            "      --max-file-bytes N   largest upload (default 209715200; then 413)\n"
            "      --batch-in-flight N  lines in flight per running batch (default 64)\n"
            "      --instance NAME      this instance's name in request ids (default\n"
            "                           <host>-<pid>)\n"
            "  -X  K=V                  librdkafka property (repeatable)\n"
            "  -h, --help               this text\n");
}

static char *keys_owned[GW_MAX_KEYS];
static size_t nkeys_owned;

static int read_keys(const char *path, gw_opts *o) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "kinfer gateway: --api-keys-file %s: %s\n", path, strerror(errno));
        return 2;
    }
    char line[1024];
    int ln = 0, rc = 0;
    while (fgets(line, sizeof line, f)) {
        ln++;
        char *s = line, *e = line + strlen(line);
        while (*s == ' ' || *s == '\t')
            s++;
        while (e > s && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
            *--e = '\0';
        if (!*s || *s == '#')
            continue;
        if (strpbrk(s, " \t")) {
            fprintf(stderr, "kinfer gateway: %s:%d: a key holds a space\n", path, ln);
            rc = 2;
            break;
        }
        if (o->nkeys == GW_MAX_KEYS) {
            fprintf(stderr, "kinfer gateway: %s:%d: more than %d keys\n", path, ln, GW_MAX_KEYS);
            rc = 2;
            break;
        }
        keys_owned[nkeys_owned] = strdup(s);
        o->keys[o->nkeys++] = keys_owned[nkeys_owned++];
    }
    fclose(f);
    if (rc == 0 && o->nkeys == 0) {
        fprintf(stderr, "kinfer gateway: %s holds no key\n", path);
        rc = 2;
    }
    return rc;
}

static int parse_listen(const char *s, gw_opts *o, char *host, size_t cap) {
    const char *colon = strrchr(s, ':');
    long long port;
    if (!colon || colon == s || (size_t)(colon - s) >= cap ||
        kinfer_cli_parse_int(colon + 1, 0, 65535, &port, &(kinfer_error){0}) != KINFER_OK) {
        fprintf(stderr, "kinfer gateway: --listen wants HOST:PORT (got '%s')\n", s);
        return 2;
    }
    snprintf(host, cap, "%.*s", (int)(colon - s), s);
    o->listen_host = host;
    o->port = (int)port;
    return 0;
}

static int parse_args(int argc, char **argv, gw_opts *o, char *host, size_t hcap) {
    static const struct option longopts[] = {
        {"brokers", required_argument, 0, 'b'},
        {"topic", required_argument, 0, 't'},
        {"reply-topic", required_argument, 0, 'r'},
        {"state-topic", required_argument, 0, 's'},
        {"listen", required_argument, 0, 'l'},
        {"files-dir", required_argument, 0, 'd'},
        {"api-keys-file", required_argument, 0, 'K'},
        {"api-key", required_argument, 0, 'k'},
        {"no-auth", no_argument, 0, 'N'},
        {"timeout", required_argument, 0, 'T'},
        {"max-file-bytes", required_argument, 0, 'M'},
        {"batch-in-flight", required_argument, 0, 'W'},
        {"instance", required_argument, 0, 'i'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    int c, rc;
    long long v;
    optind = 1;
    while ((c = getopt_long(argc, argv, "b:t:X:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'b':
            o->brokers = optarg;
            break;
        case 't':
            o->topic = optarg;
            break;
        case 'r':
            o->reply_topic = optarg;
            break;
        case 's':
            o->state_topic = optarg;
            break;
        case 'l':
            if ((rc = parse_listen(optarg, o, host, hcap)))
                return rc;
            break;
        case 'd':
            o->files_dir = optarg;
            break;
        case 'K':
            if ((rc = read_keys(optarg, o)))
                return rc;
            break;
        case 'k':
            if (o->nkeys == GW_MAX_KEYS || !*optarg) {
                fprintf(stderr, "kinfer gateway: --api-key: empty or too many\n");
                return 2;
            }
            o->keys[o->nkeys++] = optarg;
            break;
        case 'N':
            o->no_auth = true;
            break;
        case 'T':
            if (kinfer_cli_opt_ms("gateway", "timeout", optarg, 1, 3600000, &v))
                return 2;
            o->timeout_ms = v;
            break;
        case 'M':
            if (kinfer_cli_opt_int("gateway", "max-file-bytes", optarg, 1, 1LL << 40, &v))
                return 2;
            o->max_file_bytes = (uint64_t)v;
            break;
        case 'W':
            if (kinfer_cli_opt_int("gateway", "batch-in-flight", optarg, 1, 65536, &v))
                return 2;
            o->batch_in_flight = (uint32_t)v;
            break;
        case 'i':
            o->instance = optarg;
            break;
        case 'X':
            if (o->nprops == GW_MAX_PROPS) {
                fprintf(stderr, "kinfer gateway: too many -X\n");
                return 2;
            }
            o->props[o->nprops++] = optarg;
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
        fprintf(stderr, "kinfer gateway: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!o->brokers || !o->topic || !o->files_dir) {
        fprintf(stderr, "kinfer gateway: -b BROKERS, -t TOPIC and --files-dir DIR are required "
                        "(kinfer gateway --help)\n");
        return 2;
    }
    if (!o->nkeys && !o->no_auth) {
        fprintf(stderr, "kinfer gateway: give --api-keys-file, --api-key or (explicitly) "
                        "--no-auth\n");
        return 2;
    }
    struct stat sb;
    if (stat(o->files_dir, &sb) != 0 || !S_ISDIR(sb.st_mode) || access(o->files_dir, W_OK) != 0) {
        fprintf(stderr, "kinfer gateway: --files-dir %s is not a writable directory\n",
                o->files_dir);
        return 2;
    }
    return 0;
}

int kinfer_cmd_gateway(int argc, char **argv) {
    gateway g;
    memset(&g, 0, sizeof g);
    char host[64] = "127.0.0.1";
    g.o.listen_host = host;
    g.o.port = 8080;
    g.o.state_topic = "kinfer.gateway.batches";
    g.o.timeout_ms = 60000;
    g.o.max_file_bytes = 200ull << 20;
    g.o.batch_in_flight = 64;
    int st = parse_args(argc, argv, &g.o, host, sizeof host);
    char reply[KINFER_WORKER_TOPIC_MAX + 1], inst[96];
    kinfer_error err;
    if (st) {
        st = st == 1 ? 0 : st;
        goto out;
    }
    if (kinfer_worker_pattern_expand(g.o.reply_topic ? g.o.reply_topic : "{topic}.replies",
                                     g.o.topic, reply, sizeof reply, &err) != KINFER_OK) {
        fprintf(stderr, "kinfer gateway: %s\n", err.msg);
        st = 2;
        goto out;
    }
    g.o.reply_topic = reply;
    if (!g.o.instance) {
        char hn[64] = "gw";
        gethostname(hn, sizeof hn - 1);
        snprintf(inst, sizeof inst, "%s-%d", hn, (int)getpid());
        g.o.instance = inst;
    }
    st = 3;
    if (gw_bridge_start(&g.o, &g.bridge, &err) != KINFER_OK ||
        gw_batches_start(&g.o, &g.batches, &err) != KINFER_OK ||
        gw_http_start(&g, &err) != KINFER_OK) {
        fprintf(stderr, "kinfer gateway: %s\n", err.msg);
        goto stop;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    fprintf(stderr, "kinfer gateway: listening on http://%s:%d (topic %s, replies %s, state %s)\n",
            g.o.listen_host, g.bound_port, g.o.topic, g.o.reply_topic, g.o.state_topic);
    while (!stopping) {
        struct timespec ts = {0, 100000000};
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "kinfer gateway: stopping\n");
    st = 0;
stop:
    gw_http_stop(&g);
    gw_batches_stop(g.batches);
    gw_bridge_stop(g.bridge);
out:
    for (size_t i = 0; i < nkeys_owned; i++)
        free(keys_owned[i]);
    nkeys_owned = 0;
    return st;
}
