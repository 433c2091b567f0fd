/* gw_http.c — the gateway's HTTP side (libmicrohttpd, a thread per
 * connection, since /v1/embeddings waits for its Kafka reply): bearer-key
 * check, body collection (JSON, or multipart/form-data for /v1/files),
 * routing, and every error in the OpenAI shape {"error": {message, type,
 * param, code}}. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <unistd.h>

#include "batch_input.h"
#include "batch_output.h"
#include "gateway.h"

#if MHD_VERSION >= 0x00097002
typedef enum MHD_Result mhd_result;
#else
typedef int mhd_result;
#endif

#define MAX_JSON_BODY (16u << 20)

json_t *gw_error(int status, const char *code, const char *fmt, ...) {
    char msg[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return batch_error_body(msg, status, code);
}

/* One request's state across libmicrohttpd's calls. */
typedef struct conn_ctx {
    gateway *g;
    char *body; /* JSON body */
    size_t len, cap;
    bool too_large, bad_form;
    struct MHD_PostProcessor *pp; /* multipart uploads */
    char *file;                   /* the "file" part */
    size_t file_len, file_cap;
    char filename[256];
    char purpose[64];
} conn_ctx;

static mhd_result send_json(struct MHD_Connection *c, int status, json_t *o) {
    char *text =
        o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9)) : NULL;
    if (o)
        json_decref(o);
    if (!text)
        text = strdup("{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\","
                      "\"param\":null,\"code\":null}}");
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", "application/json");
    mhd_result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

bool gw_buf_append(char **buf, size_t *len, size_t *cap, const char *data, size_t n, size_t limit) {
    if (*len + n > limit)
        return false;
    if (*len + n + 1 > *cap) {
        size_t ncap = *cap ? *cap : 4096;
        while (ncap < *len + n + 1)
            ncap *= 2;
        char *nb = realloc(*buf, ncap);
        if (!nb)
            return false;
        *buf = nb;
        *cap = ncap;
    }
    memcpy(*buf + *len, data, n);
    *len += n;
    (*buf)[*len] = '\0';
    return true;
}

static mhd_result on_part(void *cls, enum MHD_ValueKind kind, const char *key, const char *filename,
                          const char *content_type, const char *transfer_encoding, const char *data,
                          uint64_t off, size_t size) {
    (void)kind;
    (void)content_type;
    (void)transfer_encoding;
    (void)off;
    conn_ctx *x = cls;
    gateway *g = x->g;
    if (!strcmp(key, "file")) {
        if (filename && !x->filename[0])
            snprintf(x->filename, sizeof x->filename, "%s", filename);
        if (!gw_buf_append(&x->file, &x->file_len, &x->file_cap, data, size,
                           (size_t)g->o.max_file_bytes))
            x->too_large = true;
    } else if (!strcmp(key, "purpose")) {
        size_t have = strlen(x->purpose);
        snprintf(x->purpose + have, sizeof x->purpose - have, "%.*s", (int)size, data);
    }
    return MHD_YES;
}

static bool authorized(gateway *g, struct MHD_Connection *c) {
    if (g->o.no_auth)
        return true;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h || strncmp(h, "Bearer ", 7))
        return false;
    for (size_t i = 0; i < g->o.nkeys; i++)
        if (!strcmp(h + 7, g->o.keys[i]))
            return true;
    return false;
}

static mhd_result embeddings(gateway *g, struct MHD_Connection *c, json_t *req) {
    batch_line l;
    memset(&l, 0, sizeof l);
    if (batch_body_parse_embeddings(req, NULL, &l) != 0) {
        json_t *e = gw_error(400, l.error_code[0] ? l.error_code : "invalid_request", "%s",
                             l.error_message[0] ? l.error_message : "out of memory");
        free(l.texts);
        return send_json(c, 400, e);
    }
    gw_embed_result res;
    gw_bridge_embed(g->bridge, l.model, l.texts, l.ntexts, &res);
    json_t *out = res.http == 200
                      ? batch_embeddings_body(l.model, res.values, res.rows, res.dim, l.base64)
                      : gw_error(res.http, res.code, "%s", res.message);
    free(res.values);
    free(l.texts);
    return send_json(c, res.http, out);
}

const char *gw_finish_name(int f) {
    static const char *names[] = {"stop", "length", "deadline", "cancelled", "error"};
    return f >= 0 && f < 5 ? names[f] : "error";
}

/* /v1/chat/completions and /v1/completions; stream true goes to gw_sse.c. */
static mhd_result generate(gateway *g, struct MHD_Connection *c, json_t *req, bool chat) {
    json_t *stream = json_object_get(req, "stream");
    if (stream && !json_is_boolean(stream) && !json_is_null(stream))
        return send_json(c, 400, gw_error(400, "invalid_value", "stream must be a boolean"));
    bool streaming = json_is_true(stream);
    bool include_usage = false;
    json_t *so = json_object_get(req, "stream_options");
    if (so && !json_is_null(so)) {
        json_t *iu = json_object_get(so, "include_usage");
        if (!json_is_object(so) || (iu && !json_is_boolean(iu) && !json_is_null(iu)))
            return send_json(c, 400,
                             gw_error(400, "invalid_value",
                                      "stream_options must be an object with a boolean "
                                      "include_usage"));
        if (!streaming)
            return send_json(c, 400,
                             gw_error(400, "invalid_value",
                                      "stream_options is only allowed when stream is true"));
        include_usage = json_is_true(iu);
    }
    json_object_del(req, "stream"); /* the batch parser refuses stream true */
    batch_line l;
    memset(&l, 0, sizeof l);
    if (batch_body_parse_generation(req, chat ? BATCH_URL_CHAT_COMPLETIONS : BATCH_URL_COMPLETIONS,
                                    NULL, &l) != 0)
        return send_json(c, 400,
                         gw_error(400, l.error_code[0] ? l.error_code : "invalid_request", "%s",
                                  l.error_message));
    if (streaming) {
        json_t *error_body;
        int st = gw_sse_respond(g, c, &l, chat, include_usage, &error_body);
        if (st > 0)
            return send_json(c, st, error_body);
        return st == 0 ? MHD_YES : MHD_NO;
    }
    gw_gen_result res;
    gw_bridge_generate(g->bridge, &l, &res);
    json_t *out;
    if (res.http == 200) {
        char id[64];
        gw_new_id("", id, sizeof id);
        out = batch_generation_body(id, l.model, chat, res.text, res.text_len,
                                    gw_finish_name(res.finish_reason), res.prompt_tokens,
                                    res.completion_tokens);
    } else {
        out = gw_error(res.http, res.code, "%s", res.message);
    }
    free(res.text);
    return send_json(c, res.http, out);
}

/* "/v1/x/ID" or "/v1/x/ID/tail": the ID (copied) when url starts with
 * prefix, and the rest after it. */
static bool path_id(const char *url, const char *prefix, char *id, size_t cap, const char **rest) {
    size_t n = strlen(prefix);
    if (strncmp(url, prefix, n) || !url[n])
        return false;
    const char *s = url + n, *slash = strchr(s, '/');
    size_t len = slash ? (size_t)(slash - s) : strlen(s);
    if (len == 0 || len >= cap)
        return false;
    memcpy(id, s, len);
    id[len] = '\0';
    *rest = slash ? slash : "";
    return true;
}

static mhd_result file_content(struct MHD_Connection *c, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return send_json(c, 404, gw_error(404, "file_not_found", "the file's bytes are gone"));
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    struct MHD_Response *r = MHD_create_response_from_fd((uint64_t)n, dup(fileno(f)));
    fclose(f);
    if (!r)
        return send_json(c, 500, gw_error(500, "internal_error", "cannot send the file"));
    MHD_add_response_header(r, "Content-Type", "application/octet-stream");
    mhd_result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
}

static mhd_result route(gateway *g, struct MHD_Connection *c, const char *method, const char *url,
                        conn_ctx *x) {
    bool post = !strcmp(method, "POST"), get = !strcmp(method, "GET");
    char id[128];
    const char *rest;
    if (post && !strcmp(url, "/v1/files")) {
        if (x->too_large)
            return send_json(c, 413,
                             gw_error(413, "file_too_large", "the file is larger than %llu bytes",
                                      (unsigned long long)g->o.max_file_bytes));
        if (x->bad_form || !x->file || !x->purpose[0])
            return send_json(c, 400,
                             gw_error(400, "invalid_request",
                                      "a multipart/form-data body with 'file' and 'purpose' "
                                      "is required"));
        if (strcmp(x->purpose, "batch"))
            return send_json(c, 400,
                             gw_error(400, "invalid_value",
                                      "purpose '%.60s' is not supported: use \"batch\"",
                                      x->purpose));
        json_t *f;
        kinfer_error err;
        if (gw_files_create(g->o.files_dir, x->filename[0] ? x->filename : "upload.jsonl",
                            x->purpose, x->file, x->file_len, &f, &err) != KINFER_OK)
            return send_json(c, 500, gw_error(500, "internal_error", "%s", err.msg));
        return send_json(c, 200, f);
    }
    if (get && !strcmp(url, "/v1/files"))
        return send_json(c, 200,
                         gw_files_list(g->o.files_dir, MHD_lookup_connection_value(
                                                           c, MHD_GET_ARGUMENT_KIND, "purpose")));
    if (!strcmp(method, "DELETE") && path_id(url, "/v1/files/", id, sizeof id, &rest) && !*rest) {
        if (!gw_files_delete(g->o.files_dir, id))
            return send_json(c, 404, gw_error(404, "file_not_found", "no file with id '%s'", id));
        json_t *o = json_object();
        json_object_set_new(o, "id", json_string(id));
        json_object_set_new(o, "object", json_string("file"));
        json_object_set_new(o, "deleted", json_true());
        return send_json(c, 200, o);
    }
    if (get && path_id(url, "/v1/files/", id, sizeof id, &rest)) {
        json_t *f = gw_files_get(g->o.files_dir, id);
        if (!f)
            return send_json(c, 404, gw_error(404, "file_not_found", "no file with id '%s'", id));
        if (!*rest)
            return send_json(c, 200, f);
        json_decref(f);
        char path[4200];
        if (!strcmp(rest, "/content") && gw_files_path(g->o.files_dir, id, path, sizeof path))
            return file_content(c, path);
    }
    json_t *body = NULL;
    int st = 0;
    if (get && !strcmp(url, "/v1/batches")) {
        const char *lim = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "limit");
        int limit = lim ? atoi(lim) : 20;
        if (limit < 1 || limit > 100)
            return send_json(c, 400, gw_error(400, "invalid_value", "limit must be 1 to 100"));
        st = gw_batches_list(g->batches, limit,
                             MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "after"), &body);
        return send_json(c, st, body);
    }
    if (get && path_id(url, "/v1/batches/", id, sizeof id, &rest) && !*rest) {
        st = gw_batches_get(g->batches, id, &body);
        return send_json(c, st, body);
    }
    if (post && path_id(url, "/v1/batches/", id, sizeof id, &rest) && !strcmp(rest, "/cancel")) {
        st = gw_batches_cancel(g->batches, id, &body);
        return send_json(c, st, body);
    }
    bool json_route =
        post && (!strcmp(url, "/v1/embeddings") || !strcmp(url, "/v1/batches") ||
                 !strcmp(url, "/v1/chat/completions") || !strcmp(url, "/v1/completions"));
    if (!json_route)
        return send_json(c, 404,
                         gw_error(404, "unknown_url", "Unknown request URL: %s %s", method, url));
    if (x->too_large)
        return send_json(c, 413,
                         gw_error(413, "request_too_large",
                                  "the request body is larger than %u bytes", MAX_JSON_BODY));
    json_error_t je;
    json_t *req = json_loadb(x->body ? x->body : "", x->len, 0, &je);
    if (!req || !json_is_object(req)) {
        if (req)
            json_decref(req);
        return send_json(
            c, 400, gw_error(400, "invalid_json", "the body is not a JSON object: %s", je.text));
    }
    mhd_result ret;
    if (!strcmp(url, "/v1/embeddings"))
        ret = embeddings(g, c, req);
    else if (!strcmp(url, "/v1/batches")) {
        st = gw_batches_create(g->batches, req, &body);
        ret = send_json(c, st, body);
    } else
        ret = generate(g, c, req, !strcmp(url, "/v1/chat/completions"));
    json_decref(req);
    return ret;
}

static mhd_result on_request(void *cls, struct MHD_Connection *c, const char *url,
                             const char *method, const char *version, const char *upload,
                             size_t *upload_size, void **con_cls) {
    (void)version;
    gateway *g = cls;
    conn_ctx *x = *con_cls;
    if (!x) {
        x = calloc(1, sizeof(*x));
        if (!x)
            return MHD_NO;
        *con_cls = x;
        x->g = g;
        /* A missing or wrong key is answered before any upload is read. */
        if (!authorized(g, c))
            return send_json(c, 401,
                             gw_error(401, "invalid_api_key",
                                      "Incorrect or missing API key: send Authorization: Bearer "
                                      "<key> with a key the gateway is configured with"));
        const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
        if (!strcmp(method, "POST") && ct && !strncmp(ct, "multipart/form-data", 19))
            x->pp = MHD_create_post_processor(c, 64 * 1024, on_part, x);
        return MHD_YES;
    }
    if (*upload_size) {
        if (x->pp) {
            if (!x->bad_form && MHD_post_process(x->pp, upload, *upload_size) != MHD_YES)
                x->bad_form = true;
        } else if (!x->too_large &&
                   !gw_buf_append(&x->body, &x->len, &x->cap, upload, *upload_size, MAX_JSON_BODY))
            x->too_large = true;
        *upload_size = 0;
        return MHD_YES;
    }
    return route(g, c, method, url, x);
}

static void on_done(void *cls, struct MHD_Connection *c, void **con_cls,
                    enum MHD_RequestTerminationCode toe) {
    (void)cls;
    (void)c;
    (void)toe;
    conn_ctx *x = *con_cls;
    if (!x)
        return;
    if (x->pp)
        MHD_destroy_post_processor(x->pp);
    free(x->body);
    free(x->file);
    free(x);
    *con_cls = NULL;
}

kinfer_err gw_http_start(gateway *g, kinfer_error *err) {
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)g->o.port);
    if (inet_pton(AF_INET, g->o.listen_host, &sa.sin_addr) != 1)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "--listen: '%s' is not an IPv4 address", g->o.listen_host);
    g->http = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG,
        (uint16_t)g->o.port, NULL, NULL, on_request, g, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&sa, MHD_OPTION_NOTIFY_COMPLETED, on_done, g, MHD_OPTION_END);
    if (!g->http)
        return kinfer_error_set(err, KINFER_ERR_IO,
                                "cannot listen on %s:%d (in use, or not allowed)", g->o.listen_host,
                                g->o.port);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(g->http, MHD_DAEMON_INFO_BIND_PORT);
    g->bound_port = info ? info->port : g->o.port;
    return KINFER_OK;
}

void gw_http_stop(gateway *g) {
    if (g->http)
        MHD_stop_daemon(g->http);
    g->http = NULL;
}
