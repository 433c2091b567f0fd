/* test_registry.c — the worker's Schema Registry cache (worker_registry.c)
 * against a small in-test HTTP server speaking the Confluent API: a lookup
 * never waits (PENDING, then READY once the thread has fetched), each id is
 * fetched once, failures are cached with their reason (404, not Avro, a
 * writer schema that does not resolve), a reply subject is registered with
 * the response schema and basic auth goes out on every request. The real
 * registry (Apicurio) is exercised by tests/integration/test_schema_registry.py. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "kinfer/kinfer_clock.h"
#include "worker_registry.h"

#define OLDER                                                                                      \
    "{\"type\":\"record\",\"name\":\"InferenceRequest\",\"namespace\":\"io.kinfer.v1\","           \
    "\"fields\":[{\"name\":\"id\",\"type\":\"string\"},{\"name\":\"model\",\"type\":\"string\"},"  \
    "{\"name\":\"inputs\",\"type\":{\"type\":\"array\",\"items\":{\"type\":\"record\",\"name\":"   \
    "\"Tensor\",\"fields\":[{\"name\":\"name\",\"type\":\"string\"},{\"name\":\"dtype\","          \
    "\"type\":{\"type\":\"enum\",\"name\":\"DType\",\"symbols\":[\"FP32\"]}},{\"name\":"           \
    "\"shape\",\"type\":{\"type\":\"array\",\"items\":\"long\"}}]}}}]}"

typedef struct server {
    int fd, port;
    pthread_t thread;
    pthread_mutex_t lock;
    int hits[4]; /* GET id 5, GET id 6, POST subject, other */
    bool saw_auth, saw_response_schema;
} server;

static void reply(int c, int status, const char *body) {
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     status, strlen(body));
    if (write(c, head, (size_t)n) < 0 || write(c, body, strlen(body)) < 0)
        return;
}

static void *serve(void *arg) {
    server *s = arg;
    for (;;) {
        int c = accept(s->fd, NULL, NULL);
        if (c < 0)
            return NULL;
        char req[65536];
        size_t n = 0;
        ssize_t got;
        /* The headers, then Content-Length bytes of body. */
        while (n < sizeof req - 1 && (got = read(c, req + n, sizeof req - 1 - n)) > 0) {
            n += (size_t)got;
            req[n] = '\0';
            char *end = strstr(req, "\r\n\r\n");
            const char *cl = strstr(req, "Content-Length: ");
            if (end && (!cl || n >= (size_t)(end + 4 - req) + strtoul(cl + 16, NULL, 10)))
                break;
        }
        req[n] = '\0';
        pthread_mutex_lock(&s->lock);
        /* "svc:pw" in base64 */
        if (strstr(req, "Authorization: Basic c3ZjOnB3\r\n"))
            s->saw_auth = true;
        int which = 3;
        if (!strncmp(req, "GET /ccompat/schemas/ids/5 ", 27))
            which = 0;
        else if (!strncmp(req, "GET /ccompat/schemas/ids/6 ", 27))
            which = 1;
        else if (!strncmp(req, "POST /ccompat/subjects/t.replies-value/versions ", 48)) {
            which = 2;
            s->saw_response_schema = strstr(req, "InferenceResponse") != NULL;
        }
        s->hits[which]++;
        pthread_mutex_unlock(&s->lock);
        if (which == 0) {
            char *esc = malloc(2 * sizeof OLDER + 64), *o = esc;
            o += sprintf(o, "{\"schema\":\"");
            for (const char *p = OLDER; *p; p++) {
                if (*p == '"')
                    *o++ = '\\';
                *o++ = *p;
            }
            sprintf(o, "\"}");
            reply(c, 200, esc);
            free(esc);
        } else if (which == 1) {
            reply(c, 404, "{\"error_code\":40403,\"message\":\"Schema 6 not found\"}");
        } else if (which == 2) {
            reply(c, 200, "{\"id\":42}");
        } else if (strstr(req, "/schemas/ids/7 ")) {
            reply(c, 200, "{\"schemaType\":\"PROTOBUF\",\"schema\":\"syntax = 1;\"}");
        } else if (strstr(req, "/schemas/ids/8 ")) {
            reply(c, 200,
                  "{\"schema\":\"{\\\"type\\\":\\\"record\\\",\\\"name\\\":"
                  "\\\"InferenceRequest\\\",\\\"fields\\\":[{\\\"name\\\":\\\"id\\\","
                  "\\\"type\\\":\\\"int\\\"}]}\"}");
        } else {
            reply(c, 500, "{\"message\":\"no\"}");
        }
        close(c);
    }
}

static int server_start(server *s) {
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->lock, NULL);
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(s->fd, 8), 0);
    assert_int_equal(getsockname(s->fd, (struct sockaddr *)&a, &len), 0);
    s->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&s->thread, NULL, serve, s), 0);
    return s->port;
}

static void server_stop(server *s) {
    shutdown(s->fd, SHUT_RDWR);
    close(s->fd);
    pthread_join(s->thread, NULL);
    pthread_mutex_destroy(&s->lock);
}

/* Waits (bounded) until the registry's answers change from gen. */
static void wait_answer(kinfer_worker_registry *reg, uint64_t gen) {
    int64_t until = kinfer_mono_us() + 20 * 1000000LL;
    while (kinfer_worker_registry_generation(reg) == gen && kinfer_mono_us() < until)
        usleep(2000);
    assert_int_not_equal(kinfer_worker_registry_generation(reg), gen);
}

static void test_cache(void **state) {
    (void)state;
    server s;
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/ccompat/", server_start(&s));
    kinfer_config_kafka k = {.schema_registry_url = url,
                             .schema_registry_user = "svc",
                             .schema_registry_password = "pw",
                             .schema_registry_timeout_ms = 5000};
    kinfer_worker_registry *reg;
    kinfer_error err;
    assert_int_equal(kinfer_worker_registry_new(&k, NULL, &reg, &err), KINFER_OK);
    char why[KINFER_ERROR_MSG_MAX];
    const kinfer_codec_resolution *res = NULL;

    /* id 5: PENDING at once, READY after the fetch, fetched once */
    uint64_t gen = kinfer_worker_registry_generation(reg);
    assert_int_equal(kinfer_worker_registry_schema(reg, 5, &res, why, sizeof why),
                     KINFER_WORKER_REG_PENDING);
    wait_answer(reg, gen);
    assert_int_equal(kinfer_worker_registry_schema(reg, 5, &res, why, sizeof why),
                     KINFER_WORKER_REG_READY);
    assert_non_null(res);
    assert_false(kinfer_codec_resolution_identity(res));
    assert_int_equal(kinfer_worker_registry_schema(reg, 5, &res, why, sizeof why),
                     KINFER_WORKER_REG_READY);

    /* id 6: 404, the reason kept and not fetched again right away */
    gen = kinfer_worker_registry_generation(reg);
    assert_int_equal(kinfer_worker_registry_schema(reg, 6, &res, why, sizeof why),
                     KINFER_WORKER_REG_PENDING);
    wait_answer(reg, gen);
    assert_int_equal(kinfer_worker_registry_schema(reg, 6, &res, why, sizeof why),
                     KINFER_WORKER_REG_FAILED);
    assert_non_null(strstr(why, "schema id 6 is not known to the schema registry"));
    assert_non_null(strstr(why, "HTTP 404"));
    assert_int_equal(kinfer_worker_registry_schema(reg, 6, &res, why, sizeof why),
                     KINFER_WORKER_REG_FAILED);

    /* a Protobuf schema, and an Avro one that does not resolve */
    const struct {
        uint32_t id;
        const char *want;
    } bad[] = {{7, "schema id 7 is a PROTOBUF schema, not Avro"},
               {8, "schema id 8: writer schema does not resolve to io.kinfer.v1.InferenceRequest"}};
    for (size_t i = 0; i < 2; i++) {
        gen = kinfer_worker_registry_generation(reg);
        assert_int_equal(kinfer_worker_registry_schema(reg, bad[i].id, &res, why, sizeof why),
                         KINFER_WORKER_REG_PENDING);
        wait_answer(reg, gen);
        assert_int_equal(kinfer_worker_registry_schema(reg, bad[i].id, &res, why, sizeof why),
                         KINFER_WORKER_REG_FAILED);
        if (!strstr(why, bad[i].want))
            fail_msg("\"%s\" lacks \"%s\"", why, bad[i].want);
    }

    /* the reply subject: the response schema registered, its id kept */
    uint32_t id = 0;
    gen = kinfer_worker_registry_generation(reg);
    assert_int_equal(kinfer_worker_registry_reply_id(reg, "t.replies", &id, why, sizeof why),
                     KINFER_WORKER_REG_PENDING);
    wait_answer(reg, gen);
    assert_int_equal(kinfer_worker_registry_reply_id(reg, "t.replies", &id, why, sizeof why),
                     KINFER_WORKER_REG_READY);
    assert_int_equal(id, 42);

    kinfer_worker_registry_destroy(reg);
    pthread_mutex_lock(&s.lock);
    assert_int_equal(s.hits[0], 1);
    assert_int_equal(s.hits[1], 1);
    assert_int_equal(s.hits[2], 1);
    assert_true(s.saw_auth);
    assert_true(s.saw_response_schema);
    pthread_mutex_unlock(&s.lock);
    server_stop(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cache),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
