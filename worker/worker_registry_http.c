/* worker_registry_http.c — the two Schema Registry calls the worker makes,
 * over libcurl, on the registry thread only: GET /schemas/ids/{id} (a
 * writer schema) and POST /subjects/{subject}/versions (register the
 * response schema, get its id). Each is bounded by
 * kafka.schema_registry_timeout_ms; the answer is capped at 4 MiB. The
 * password goes to libcurl only, never into a message. Not the cache or
 * the thread (worker_registry.c). */
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker_registry.h"

#define ANSWER_MAX (4u << 20)

typedef struct answer {
    char *data;
    size_t len;
    bool too_big;
} answer;

static size_t on_data(char *p, size_t size, size_t n, void *ctx) {
    answer *a = ctx;
    size_t add = size * n;
    if (a->len + add > ANSWER_MAX) {
        a->too_big = true;
        return 0; /* aborts the transfer */
    }
    char *grown = realloc(a->data, a->len + add + 1);
    if (!grown)
        return 0;
    memcpy(grown + a->len, p, add);
    a->data = grown;
    a->len += add;
    a->data[a->len] = '\0';
    return add;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void) {
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

kinfer_err kinfer_worker_registry_http_init(kinfer_error *err) {
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK)
        return kinfer_error_set(err, KINFER_ERR_INTERNAL, "libcurl: %s",
                                curl_easy_strerror(curl_init_rc));
    return KINFER_OK;
}

/* The registry's own error text ({"error_code":40403,"message":"..."}), or
 * the start of the body. */
static void registry_message(const answer *a, char *out, size_t cap) {
    out[0] = '\0';
    if (!a->data)
        return;
    json_t *j = json_loads(a->data, 0, NULL);
    const char *m = j ? json_string_value(json_object_get(j, "message")) : NULL;
    snprintf(out, cap, "%.200s", m ? m : a->data);
    for (char *p = out; *p; p++)
        if (*p == '"' || *p == '\n' || *p == '\r')
            *p = '\'';
    json_decref(j);
}

/* One request; on HTTP 200 *out is the parsed JSON answer. */
static kinfer_err call(const kinfer_worker_registry_conn *c, const char *path, const char *body,
                       json_t **out, long *status, char *why, size_t cap) {
    *out = NULL;
    *status = 0;
    CURL *h = c->curl;
    char url[1024];
    snprintf(url, sizeof url, "%s%s", c->base, path);
    answer a = {0};
    struct curl_slist *hdrs = NULL;
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &a);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "kinfer");
    hdrs = curl_slist_append(hdrs, "Accept: application/vnd.schemaregistry.v1+json, "
                                   "application/json");
    if (body) {
        hdrs = curl_slist_append(hdrs, "Content-Type: application/vnd.schemaregistry.v1+json");
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    if (c->user) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(h, CURLOPT_USERNAME, c->user);
        curl_easy_setopt(h, CURLOPT_PASSWORD, c->password);
    }
    CURLcode rc = curl_easy_perform(h);
    curl_slist_free_all(hdrs);
    kinfer_err ret = KINFER_OK;
    if (rc != CURLE_OK) {
        snprintf(why, cap, "schema registry %s unreachable: %s%s (%s %s)", c->base,
                 curl_easy_strerror(rc), a.too_big ? " (answer over 4 MiB)" : "",
                 body ? "POST" : "GET", path);
        ret = KINFER_ERR_IO;
    } else {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
        if (*status == 200) {
            json_error_t je;
            *out = a.data ? json_loads(a.data, 0, &je) : NULL;
            if (!*out) {
                snprintf(why, cap, "schema registry answered %s %s with something not JSON",
                         body ? "POST" : "GET", path);
                ret = KINFER_ERR_IO;
            }
        } else {
            char msg[256];
            registry_message(&a, msg, sizeof msg);
            snprintf(why, cap, "schema registry answered HTTP %ld to %s %s%s%s", *status,
                     body ? "POST" : "GET", path, msg[0] ? ": " : "", msg);
            ret = KINFER_ERR_IO;
        }
    }
    free(a.data);
    return ret;
}

kinfer_err kinfer_worker_registry_http_schema(const kinfer_worker_registry_conn *c, uint32_t id,
                                              char **schema, char *why, size_t cap) {
    *schema = NULL;
    char path[64];
    snprintf(path, sizeof path, "/schemas/ids/%u", id);
    json_t *j;
    long status;
    kinfer_err rc = call(c, path, NULL, &j, &status, why, cap);
    if (rc != KINFER_OK) {
        if (status == 404) {
            /* call() wrote "...: <the registry's message>"; keep that part. */
            const char *detail = strstr(why, ": ");
            char msg[256];
            snprintf(msg, sizeof msg, "%s", detail ? detail + 2 : "");
            snprintf(why, cap,
                     "schema id %u is not known to the schema registry %.300s (HTTP 404%s%s)", id,
                     c->base, msg[0] ? ": " : "", msg);
        }
        return rc;
    }
    const char *type = json_string_value(json_object_get(j, "schemaType"));
    const char *text = json_string_value(json_object_get(j, "schema"));
    if (type && strcmp(type, "AVRO") != 0) {
        snprintf(why, cap, "schema id %u is a %.32s schema, not Avro", id, type);
        rc = KINFER_ERR_UNSUPPORTED;
    } else if (!text) {
        snprintf(why, cap, "schema registry answer for id %u has no \"schema\"", id);
        rc = KINFER_ERR_IO;
    } else if (!(*schema = strdup(text))) {
        snprintf(why, cap, "out of memory");
        rc = KINFER_ERR_NOMEM;
    }
    json_decref(j);
    return rc;
}

kinfer_err kinfer_worker_registry_http_register(const kinfer_worker_registry_conn *c,
                                                const char *subject, const char *schema_json,
                                                uint32_t *id, char *why, size_t cap) {
    *id = 0;
    char path[512];
    snprintf(path, sizeof path, "/subjects/%s/versions", subject);
    json_t *req = json_pack("{s:s}", "schema", schema_json);
    char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (!body) {
        snprintf(why, cap, "out of memory");
        return KINFER_ERR_NOMEM;
    }
    json_t *j;
    long status;
    kinfer_err rc = call(c, path, body, &j, &status, why, cap);
    free(body);
    if (rc != KINFER_OK)
        return rc;
    json_int_t v = json_integer_value(json_object_get(j, "id"));
    json_decref(j);
    if (v <= 0 || v > UINT32_MAX) {
        snprintf(why, cap, "schema registry answer to POST %s has no valid \"id\"", path);
        return KINFER_ERR_IO;
    }
    *id = (uint32_t)v;
    return KINFER_OK;
}
