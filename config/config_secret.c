/* config_secret.c — secrets kept out of the config file: `${env:NAME}` and
 * `${file:PATH}` references in librdkafka property values (kafka.*properties,
 * and `kinfer send/bench -X`), expanded at load, and which property names
 * hold secrets (never printed: check-config, error messages). Not a
 * general template language: those two forms only, `$${` for a literal
 * `${`, and anything else written like a reference (`${word:`) is an error
 * rather than a silent literal. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kinfer/kinfer_config.h"

/* A secret file is a password, a token or a PEM key, never more. */
#define SECRET_FILE_MAX (64 * 1024)

bool kinfer_config_secret_key(const char *key) {
    /* librdkafka's sensitive properties (sasl.password, ssl.key.password,
     * ssl.keystore.password, sasl.oauthbearer.client.secret, ...), the
     * private key given inline, and the OAUTHBEARER config string (which
     * may carry a token). */
    return strstr(key, "password") || strstr(key, "secret") || !strcmp(key, "ssl.key.pem") ||
           !strcmp(key, "ssl_key") || !strcmp(key, "sasl.oauthbearer.config");
}

typedef struct xbuf {
    char *p;
    size_t len, cap;
} xbuf;

static int xput(xbuf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->len + n + 1) * 2;
        char *np = realloc(b->p, cap);
        if (!np)
            return -1;
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

/* The whole file, one trailing newline (\n or \r\n) dropped: what `echo
 * secret > file` and Kubernetes secret volumes write. */
static kinfer_err read_secret_file(const char *path, const char *base_dir, xbuf *out,
                                   kinfer_error *err) {
    char full[8192 + 2];
    int fn = path[0] != '/' && base_dir && *base_dir && strcmp(base_dir, ".")
                 ? snprintf(full, sizeof full, "%.4096s/%.4096s", base_dir, path)
                 : snprintf(full, sizeof full, "%.4096s", path);
    if (fn < 0 || (size_t)fn >= sizeof full)
        return kinfer_error_set(err, KINFER_ERR_CONFIG, "${file:%s}: path too long", path);
    FILE *f = fopen(full, "rb");
    if (!f)
        return kinfer_error_set(err, KINFER_ERR_CONFIG, "${file:%s}: cannot read %s: %s", path,
                                full, strerror(errno));
    struct stat sb;
    kinfer_err rc = KINFER_OK;
    char *buf = NULL;
    size_t n = 0;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode))
        rc = kinfer_error_set(err, KINFER_ERR_CONFIG, "${file:%s}: %s is not a regular file", path,
                              full);
    else if (sb.st_size > SECRET_FILE_MAX)
        rc = kinfer_error_set(err, KINFER_ERR_CONFIG,
                              "${file:%s}: %s is larger than 64 KiB; not a secret", path, full);
    else if (!(buf = malloc((size_t)sb.st_size + 1)))
        rc = kinfer_error_set(err, KINFER_ERR_NOMEM, "${file:%s}: out of memory", path);
    if (!rc) {
        n = fread(buf, 1, (size_t)sb.st_size, f);
        if (ferror(f) || n != (size_t)sb.st_size)
            rc = kinfer_error_set(err, KINFER_ERR_CONFIG, "${file:%s}: read error on %s", path,
                                  full);
    }
    fclose(f);
    if (!rc && n && buf[n - 1] == '\n')
        n -= (n >= 2 && buf[n - 2] == '\r') ? 2 : 1;
    if (!rc && memchr(buf, '\0', n))
        rc = kinfer_error_set(err, KINFER_ERR_CONFIG, "${file:%s}: %s contains a NUL byte", path,
                              full);
    if (!rc && n == 0)
        rc = kinfer_error_set(err, KINFER_ERR_CONFIG, "${file:%s}: %s is empty", path, full);
    if (!rc && xput(out, buf, n))
        rc = kinfer_error_set(err, KINFER_ERR_NOMEM, "${file:%s}: out of memory", path);
    if (buf) {
        memset(buf, 0, (size_t)sb.st_size); /* the secret stays in one place */
        free(buf);
    }
    return rc;
}

static kinfer_err expand_env(const char *name, xbuf *out, kinfer_error *err) {
    bool ok = name[0] && (isalpha((unsigned char)name[0]) || name[0] == '_');
    for (const char *p = name; ok && *p; p++)
        ok = isalnum((unsigned char)*p) || *p == '_';
    if (!ok)
        return kinfer_error_set(err, KINFER_ERR_CONFIG,
                                "${env:%s}: not a variable name (letters, digits, '_')", name);
    const char *v = getenv(name);
    if (!v)
        return kinfer_error_set(err, KINFER_ERR_CONFIG,
                                "${env:%s}: environment variable %s is not set", name, name);
    if (!*v)
        return kinfer_error_set(err, KINFER_ERR_CONFIG,
                                "${env:%s}: environment variable %s is empty", name, name);
    if (xput(out, v, strlen(v)))
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "${env:%s}: out of memory", name);
    return KINFER_OK;
}

/* `${word:` at p (p points at '$'): the length of "word", else 0. */
static size_t ref_kind_len(const char *p) {
    if (p[0] != '$' || p[1] != '{')
        return 0;
    size_t n = 0;
    while (isalnum((unsigned char)p[2 + n]) || p[2 + n] == '_' || p[2 + n] == '-')
        n++;
    return n && p[2 + n] == ':' ? n : 0;
}

kinfer_err kinfer_config_expand_refs(const char *raw, const char *base_dir, char **out,
                                     kinfer_error *err) {
    *out = NULL;
    if (!strstr(raw, "${"))
        return KINFER_OK;
    xbuf b = {0};
    kinfer_err rc = KINFER_OK;
    bool expanded = false; /* a reference or an escape was replaced */
    const char *p = raw;
    while (*p && !rc) {
        const char *d = strchr(p, '$');
        if (!d) {
            rc = xput(&b, p, strlen(p)) ? KINFER_ERR_NOMEM : KINFER_OK;
            break;
        }
        if (xput(&b, p, (size_t)(d - p))) {
            rc = KINFER_ERR_NOMEM;
            break;
        }
        if (d[1] == '$' && d[2] == '{') { /* $${ -> a literal ${ */
            rc = xput(&b, "${", 2) ? KINFER_ERR_NOMEM : KINFER_OK;
            p = d + 3;
            expanded = true;
            continue;
        }
        size_t kind = ref_kind_len(d);
        if (!kind) { /* a plain '$' */
            rc = xput(&b, "$", 1) ? KINFER_ERR_NOMEM : KINFER_OK;
            p = d + 1;
            continue;
        }
        const char *arg = d + 2 + kind + 1;
        const char *close = strchr(arg, '}');
        if (!close) {
            rc = kinfer_error_set(err, KINFER_ERR_CONFIG,
                                  "unterminated reference \"%.*s...\" (no closing '}')",
                                  (int)(kind + 3), d);
            break;
        }
        char name[4096];
        size_t alen = (size_t)(close - arg);
        if (alen >= sizeof name) {
            rc = kinfer_error_set(err, KINFER_ERR_CONFIG, "reference too long");
            break;
        }
        memcpy(name, arg, alen);
        name[alen] = '\0';
        if (kind == 3 && !strncmp(d + 2, "env", 3))
            rc = expand_env(name, &b, err);
        else if (kind == 4 && !strncmp(d + 2, "file", 4))
            rc = alen ? read_secret_file(name, base_dir, &b, err)
                      : kinfer_error_set(err, KINFER_ERR_CONFIG, "${file:}: no path");
        else
            rc = kinfer_error_set(err, KINFER_ERR_CONFIG,
                                  "unknown reference \"${%.*s:\" (use ${env:NAME} or "
                                  "${file:PATH}; $${ writes a literal ${)",
                                  (int)kind, d + 2);
        p = close + 1;
        expanded = true;
    }
    if (rc == KINFER_ERR_NOMEM && (!err || err->code != KINFER_ERR_NOMEM))
        rc = kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory expanding a reference");
    if (rc || !expanded) { /* no reference at all: the value stays as written */
        if (b.p)
            memset(b.p, 0, b.cap);
        free(b.p);
        return rc;
    }
    *out = b.p; /* not NULL: an expansion wrote at least "${" or a non-empty secret */
    return KINFER_OK;
}

/* raw is one reference and nothing else ("${env:X}"): showing it shows no
 * part of the secret. */
static bool only_a_reference(const char *raw) {
    size_t n = strlen(raw);
    return n > 3 && !strncmp(raw, "${", 2) && raw[n - 1] == '}' && !strchr(raw + 2, '$') &&
           strchr(raw, '}') == raw + n - 1;
}

const char *kinfer_config_kv_shown(const kinfer_config_kv *kv) {
    /* A secret property's value written partly literally ("abc${env:X}")
     * is redacted whole. */
    if (kv->raw && (!kinfer_config_secret_key(kv->key) || only_a_reference(kv->raw)))
        return kv->raw;
    return kv->secret || kv->raw ? "[redacted]" : kv->value;
}

bool kinfer_config_check_rdkafka_file(const char *key, const char *value, char *why, size_t len) {
    size_t klen = strlen(key);
    bool file =
        (klen > 9 && !strcmp(key + klen - 9, ".location")) || !strcmp(key, "sasl.kerberos.keytab");
    /* ssl.ca.location=probe: librdkafka looks in the system's usual places. */
    if (!file || !*value || !strcmp(value, "probe"))
        return true;
    if (access(value, R_OK) == 0)
        return true;
    snprintf(why, len, "%s: cannot read %s: %s%s", key, value, strerror(errno),
             value[0] == '/' ? "" : " (relative to the current directory, as librdkafka reads it)");
    return false;
}
