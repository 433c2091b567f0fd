/* worker_http.c — the metrics and health endpoint on http.listen:
 * /metrics (Prometheus text), /healthz (the process serves HTTP),
 * /readyz (subscribed and consuming; 503 while starting or draining).
 * libmicrohttpd runs it on its own thread; without libmicrohttpd in the
 * build a configured listen address is an error, not silently ignored. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kinfer/kinfer_log.h"
#include "worker_internal.h"

#ifdef KINFER_HAVE_MHD
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>

struct kinfer_worker_http {
    struct MHD_Daemon *daemon;
};

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

static mhd_result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                             const char *method, const char *version, const char *upload,
                             size_t *upload_len, void **req_cls) {
    (void)version;
    (void)upload;
    (void)upload_len;
    (void)req_cls;
    kinfer_worker *w = cls;
    static char ok[] = "ok\n", notready[] = "not ready\n", notfound[] = "not found\n",
                badmethod[] = "method not allowed\n";
    if (strcmp(method, "GET") && strcmp(method, "HEAD"))
        return respond(conn, 405, "text/plain", badmethod, sizeof badmethod - 1,
                       MHD_RESPMEM_PERSISTENT);
    if (!strcmp(url, "/healthz"))
        return respond(conn, 200, "text/plain", ok, sizeof ok - 1, MHD_RESPMEM_PERSISTENT);
    if (!strcmp(url, "/readyz")) {
        if (kinfer_worker_metrics_ready(w->metrics))
            return respond(conn, 200, "text/plain", ok, sizeof ok - 1, MHD_RESPMEM_PERSISTENT);
        return respond(conn, 503, "text/plain", notready, sizeof notready - 1,
                       MHD_RESPMEM_PERSISTENT);
    }
    if (!strcmp(url, "/metrics")) {
        char *body;
        size_t len;
        kinfer_error err;
        /* The loop refreshes the gauges once per turn; read them fresh. */
        kinfer_worker_metrics_set_in_flight(w->metrics, atomic_load(&w->in_flight),
                                            atomic_load(&w->in_flight_bytes));
        if (kinfer_worker_metrics_render(w->metrics, w->worker_id, &body, &len, &err) != KINFER_OK)
            return MHD_NO;
        return respond(conn, 200, "text/plain; version=0.0.4", body, len, MHD_RESPMEM_MUST_FREE);
    }
    return respond(conn, 404, "text/plain", notfound, sizeof notfound - 1, MHD_RESPMEM_PERSISTENT);
}

kinfer_err kinfer_worker_http_start(kinfer_worker *w, kinfer_error *err) {
    const char *listen = w->cfg->http.listen;
    const char *colon = strrchr(listen, ':');
    if (!colon)
        return kinfer_error_set(err, KINFER_ERR_CONFIG, "http.listen '%s': expected host:port",
                                listen);
    char host[64];
    size_t hlen = (size_t)(colon - listen);
    if (hlen >= sizeof host)
        return kinfer_error_set(err, KINFER_ERR_CONFIG, "http.listen '%s': host too long", listen);
    memcpy(host, listen, hlen);
    host[hlen] = 0;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535)
        return kinfer_error_set(err, KINFER_ERR_CONFIG, "http.listen '%s': bad port", listen);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (!hlen || !strcmp(host, "0.0.0.0") || !strcmp(host, "*"))
        sa.sin_addr.s_addr = htonl(INADDR_ANY);
    else if (!strcmp(host, "localhost"))
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    else if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return kinfer_error_set(err, KINFER_ERR_CONFIG,
                                "http.listen '%s': host must be an IPv4 address", listen);
    kinfer_worker_http *h = calloc(1, sizeof *h);
    if (!h)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "http: out of memory");
    h->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, (uint16_t)port, NULL, NULL,
                                 on_request, w, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
    if (!h->daemon) {
        free(h);
        return kinfer_error_set(err, KINFER_ERR_IO, "http.listen '%s': cannot listen", listen);
    }
    w->http = h;
    KINFER_LOGI("http.listen", "addr=%s endpoints=/metrics,/healthz,/readyz", listen);
    return KINFER_OK;
}

void kinfer_worker_http_stop(kinfer_worker *w) {
    if (!w->http)
        return;
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
