/* worker_http.c — the metrics and health endpoint on http.listen:
 * /metrics (Prometheus text), /healthz (liveness: 503 when the poll loop
 * stopped polling or an executor is stuck in a batch), /readyz (readiness:
 * 503 before the first join, while the cluster is unreachable past the
 * grace, while draining); both bodies are one line saying why
 * (worker_health.c decides). libmicrohttpd runs it on its own thread, and
 * the health probe thread (cluster metadata every health.probe_interval_ms,
 * state changes logged, gauges set) runs alongside it. Without
 * libmicrohttpd in the build a configured listen address is an error, not
 * silently ignored. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kinfer/kinfer_log.h"
#include "worker_internal.h"

#ifdef KINFER_HAVE_MHD
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

struct kinfer_worker_http {
    struct MHD_Daemon *daemon;
    /* The reasons last logged, to log each change once: both the HTTP
     * and the probe thread judge, whichever sees a change first says so. */
    _Atomic(const char *) logged_ready;
    _Atomic(const char *) logged_live;
};

/* A fresh verdict (HTTP or probe thread): set the gauges, log changes. */
static void note_verdict(kinfer_worker *w, const kinfer_worker_health_verdict *v) {
    kinfer_worker_http *h = w->http;
    kinfer_worker_metrics_set_health(w->metrics, v->ready, v->ready_reason, v->live,
                                     v->live_reason);
    if (atomic_exchange(&h->logged_ready, v->ready_reason) != v->ready_reason) {
        if (v->ready)
            KINFER_LOGI("worker.ready", "readyz=200");
        else
            KINFER_LOGW("worker.not_ready", "reason=%s detail=\"%s\"", v->ready_reason,
                        v->ready_line);
    }
    if (atomic_exchange(&h->logged_live, v->live_reason) != v->live_reason) {
        if (v->live)
            KINFER_LOGI("worker.live", "healthz=200");
        else
            KINFER_LOGE("worker.not_live", "reason=%s detail=\"%s\"", v->live_reason, v->live_line);
    }
}

static void on_verdict(void *ctx, const kinfer_worker_health_verdict *v) {
    note_verdict(ctx, v);
}

#if MHD_VERSION >= 0x00097002
typedef enum MHD_Result mhd_result;
#else
typedef int mhd_result;
#endif

static mhd_result respond(struct MHD_Connection *conn, unsigned status, const char *type,
                          char *body, size_t len, enum MHD_ResponseMemoryMode mode) {
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    mhd_result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* A health answer: 200 or 503 with the one-line reason. */
static mhd_result respond_health(struct MHD_Connection *conn, bool ok, const char *line) {
    size_t n = strlen(line);
    char *body = malloc(n + 2);
    if (!body)
        return MHD_NO;
    memcpy(body, line, n);
    body[n] = '\n';
    body[n + 1] = '\0';
    return respond(conn, ok ? 200 : 503, "text/plain", body, n + 1, MHD_RESPMEM_MUST_FREE);
}

/* The scheduler's per-model view (queue depth, busy replicas) at the
 * moment of the scrape, and for a generative model its KV-cache blocks and
 * running sequences. */
static void refresh_model_gauges(kinfer_worker *w) {
    size_t n = kinfer_engine_model_count(w->engine);
    for (size_t i = 0; i < n; i++) {
        kinfer_engine_stats st;
        if (kinfer_engine_stats_get(w->engine, i, &st) != KINFER_OK)
            continue;
        kinfer_worker_model_gauges g = {
            .queued = st.queued,
            .queued_rows = st.queued_rows,
            .in_flight = st.in_flight,
            .replicas = st.replicas,
            .replicas_busy = st.replicas_busy,
            .congested = st.congested,
        };
        int idx = kinfer_worker_model_index(w, (kinfer_str){st.name, strlen(st.name)});
        kinfer_worker_metrics_set_model(w->metrics, idx, &g);
        if (st.generative) {
            kinfer_worker_gen_gauges gg = {.running = st.gen_running,
                                           .kv_blocks_used = st.kv_blocks_used,
                                           .kv_blocks_total = st.kv_blocks_total};
            kinfer_worker_metrics_set_gen(w->metrics, idx, &gg);
        }
    }
}

static mhd_result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                             const char *method, const char *version, const char *upload,
                             size_t *upload_len, void **req_cls) {
    (void)version;
    (void)upload;
    (void)upload_len;
    (void)req_cls;
    kinfer_worker *w = cls;
    static char notfound[] = "not found\n", badmethod[] = "method not allowed\n";
    if (strcmp(method, "GET") && strcmp(method, "HEAD"))
        return respond(conn, 405, "text/plain", badmethod, sizeof badmethod - 1,
                       MHD_RESPMEM_PERSISTENT);
    bool healthz = !strcmp(url, "/healthz"), readyz = !strcmp(url, "/readyz");
    bool metrics = !strcmp(url, "/metrics");
    kinfer_worker_health_verdict v;
    if (healthz || readyz || metrics) {
        /* Judged fresh at each request (the probe thread only refreshes
         * reachability); the gauges and the log follow what was answered. */
        kinfer_worker_health_check(w->health, w->engine, &v);
        note_verdict(w, &v);
    }
    if (healthz)
        return respond_health(conn, v.live, v.live_line);
    if (readyz)
        return respond_health(conn, v.ready, v.ready_line);
    if (metrics) {
        char *body;
        size_t len;
        kinfer_error err;
        /* The loop refreshes the gauges once per turn; read them fresh. */
        kinfer_worker_metrics_set_in_flight(w->metrics, atomic_load(&w->in_flight),
                                            atomic_load(&w->in_flight_bytes));
        size_t waiting_bytes, waiting = kinfer_worker_handoff_len(&w->handoff, &waiting_bytes);
        kinfer_worker_metrics_set_handoff(w->metrics, (int64_t)waiting, (int64_t)waiting_bytes,
                                          (int64_t)kinfer_worker_handoff_peak(&w->handoff));
        refresh_model_gauges(w);
        if (kinfer_worker_metrics_render(w->metrics, w->worker_id, &body, &len, &err) != KINFER_OK)
            return MHD_NO;
        return respond(conn, 200, "text/plain; version=0.0.4", body, len, MHD_RESPMEM_MUST_FREE);
    }
    return respond(conn, 404, "text/plain", notfound, sizeof notfound - 1, MHD_RESPMEM_PERSISTENT);
}

/* A listening socket for "host:port" ("[v6]:port"; an empty host or "*"
 * is every IPv4 address), bound here and not inside libmicrohttpd so that a
 * failure says why (MHD_start_daemon only returns NULL): the usual one is
 * a second worker on the host with the same http.listen. */
static kinfer_err listen_socket(const char *addr, int *out, kinfer_error *err) {
    const char *colon = strrchr(addr, ':');
    if (!colon)
        return kinfer_error_set(err, KINFER_ERR_CONFIG, "http.listen '%s': expected host:port",
                                addr);
    char host[256];
    size_t hlen = (size_t)(colon - addr);
    const char *h = addr;
    if (hlen >= 2 && addr[0] == '[' && colon[-1] == ']') {
        h++;
        hlen -= 2;
    }
    if (hlen >= sizeof host)
        return kinfer_error_set(err, KINFER_ERR_CONFIG, "http.listen '%s': host too long", addr);
    memcpy(host, h, hlen);
    host[hlen] = 0;
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    /* No host, or "*": every IPv4 address, as ever. */
    int gai = getaddrinfo(hlen && strcmp(host, "*") ? host : "0.0.0.0", colon + 1, &hints, &res);
    if (gai != 0)
        return kinfer_error_set(err, KINFER_ERR_CONFIG, "http.listen '%s': cannot listen: %s", addr,
                                gai_strerror(gai));
    int fd = -1, e = 0;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            e = errno;
            continue;
        }
        int one = 1; /* a restarted worker rebinds at once; not SO_REUSEPORT: no sharing */
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 64) != 0) {
            e = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        return kinfer_error_set(
            err, KINFER_ERR_IO, "http.listen '%s': cannot listen: %s%s", addr, strerror(e),
            e == EADDRINUSE ? " (another process, e.g. a second worker on this host, listens "
                              "there: give each worker its own http.listen, or \"\" for none)"
                            : "");
    *out = fd;
    return KINFER_OK;
}

kinfer_err kinfer_worker_http_start(kinfer_worker *w, kinfer_error *err) {
    const char *addr = w->cfg->http.listen;
    int fd;
    kinfer_err rc = listen_socket(addr, &fd, err);
    if (rc != KINFER_OK)
        return rc;
    kinfer_worker_http *h = calloc(1, sizeof *h);
    if (!h) {
        close(fd);
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "http: out of memory");
    }
    w->http = h; /* before the daemon: its first request may come at once */
    /* libmicrohttpd takes the socket over (and closes it when stopped). */
    h->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, on_request, w,
                                 MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
    if (!h->daemon) {
        int e = errno;
        w->http = NULL;
        close(fd);
        free(h);
        return kinfer_error_set(err, KINFER_ERR_IO,
                                "http.listen '%s': cannot listen: libmicrohttpd did not start on "
                                "the bound socket (%s)",
                                addr, strerror(e));
    }
    KINFER_LOGI("http.listen", "addr=%s endpoints=/metrics,/healthz,/readyz", addr);
    return kinfer_worker_health_start(w->health, w->cfg->health.probe_interval_ms,
                                      kinfer_worker_probe_cluster, on_verdict, w, w->engine, err);
}

void kinfer_worker_http_stop(kinfer_worker *w) {
    if (!w->http)
        return;
    kinfer_worker_health_stop(w->health); /* before the producer it probes goes */
    MHD_stop_daemon(w->http->daemon);
    free(w->http);
    w->http = NULL;
}

#else

kinfer_err kinfer_worker_http_start(kinfer_worker *w, kinfer_error *err) {
    return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                            "http.listen '%s': this build has no libmicrohttpd",
                            w->cfg->http.listen);
}

void kinfer_worker_http_stop(kinfer_worker *w) {
    (void)w;
}

#endif
