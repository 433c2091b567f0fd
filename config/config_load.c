/* config_load.c — reads a libconfig file and fills a kinfer_config from the
 * property table: one walk over the file in file order (unknown keys, types,
 * ranges, choices), then defaults. Every error names file, line and key
 * (config_ctx.c). Rules across keys are in config_rules.c, the model kinds'
 * rules in config_kinds.c; nothing here loads a model. */
#include <errno.h>
#include <libconfig.h>
#include <librdkafka/rdkafka.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config_table.h"

static const char *type_name(int type) {
    switch (type) {
    case CONFIG_TYPE_GROUP:
        return "group";
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        return "integer";
    case CONFIG_TYPE_FLOAT:
        return "float";
    case CONFIG_TYPE_STRING:
        return "string";
    case CONFIG_TYPE_BOOL:
        return "boolean";
    case CONFIG_TYPE_ARRAY:
        return "array";
    case CONFIG_TYPE_LIST:
        return "list";
    default:
        return "nothing";
    }
}

static int line_of(const config_setting_t *s) {
    return (int)config_setting_source_line(s);
}

static void put_int(char *dst, size_t size, int64_t v) {
    if (size == sizeof(int64_t)) {
        memcpy(dst, &v, sizeof(v));
    } else {
        int32_t v32 = (int32_t)v; /* ranges in the table keep 4-byte values in int32 */
        memcpy(dst, &v32, sizeof(v32));
    }
}

/* --- "did you mean" ------------------------------------------------------------ */

typedef enum level {
    LEVEL_TOP,       /* root of the file */
    LEVEL_SECTION,   /* kafka, worker, limits, http */
    LEVEL_SCHEDULER, /* scheduler */
    LEVEL_MODEL      /* models.[i] */
} level;

static void consider(const char *name, const char *cand, const char **best, size_t *bestd) {
    size_t cap = strlen(name) <= 4 ? 1 : strlen(name) <= 8 ? 2 : 3;
    size_t d = kinfer_config_edit_distance(name, cand, cap);
    if (d <= cap && d < *bestd) {
        *best = cand;
        *bestd = d;
    }
}

/* Writes a suggestion for an unknown key into hint ("" when none). First a
 * near spelling at the same level, else the same name at another level
 * (e.g. `brokers` at the top level -> kafka.brokers). */
static void suggest(level lvl, const char *section, const char *name, char *hint, size_t hintlen) {
    const char *best = NULL;
    size_t bestd = (size_t)-1;
    size_t seclen = strlen(section);
    hint[0] = '\0';
    for (size_t i = 0; i < kinfer_config_nprops; i++) {
        const kinfer_config_prop *p = &kinfer_config_props[i];
        if (lvl == LEVEL_MODEL && p->scope == KINFER_CONFIG_SCOPE_MODEL)
            consider(name, p->name, &best, &bestd);
        if (lvl == LEVEL_SCHEDULER && (p->flags & KINFER_CONFIG_F_SCHED))
            consider(name, p->name, &best, &bestd);
        if (lvl == LEVEL_SECTION && p->scope == KINFER_CONFIG_SCOPE_ROOT &&
            !strncmp(p->name, section, seclen) && p->name[seclen] == '.')
            consider(name, p->name + seclen + 1, &best, &bestd);
        if (lvl == LEVEL_TOP && p->scope == KINFER_CONFIG_SCOPE_ROOT && !strchr(p->name, '.'))
            consider(name, p->name, &best, &bestd);
    }
    if (lvl == LEVEL_TOP) {
        for (size_t i = 0; i < kinfer_config_nsections; i++)
            if (kinfer_config_sections[i].name[0])
                consider(name, kinfer_config_sections[i].name, &best, &bestd);
    }
    if (best) {
        snprintf(hint, hintlen, "; did you mean \"%s\"?", best);
        return;
    }
    /* The right name in the wrong place. */
    for (size_t i = 0; i < kinfer_config_nprops; i++) {
        const kinfer_config_prop *p = &kinfer_config_props[i];
        const char *last = strrchr(p->name, '.');
        last = last ? last + 1 : p->name;
        if (strcmp(last, name))
            continue;
        if (p->scope == KINFER_CONFIG_SCOPE_ROOT)
            snprintf(hint, hintlen, "; it belongs in %s", p->name);
        else if (lvl == LEVEL_SCHEDULER)
            snprintf(hint, hintlen, "; it can only be set per model, in models.[i]");
        else if (p->flags & KINFER_CONFIG_F_SCHED)
            snprintf(hint, hintlen, "; it belongs in scheduler or in models.[i]");
        else
            snprintf(hint, hintlen, "; it belongs in models.[i]");
        return;
    }
}

static kinfer_err unknown_key(kinfer_config_load_ctx *c, const config_setting_t *s, const char *key,
                              level lvl, const char *section) {
    char hint[160];
    suggest(lvl, section, config_setting_name(s), hint, sizeof(hint));
    return kinfer_config_fail(c, line_of(s), key, "unknown key%s", hint);
}

/* --- storing one value ----------------------------------------------------------- */

/* libconfig 1.5 silently wraps an integer literal beyond 32 bits that lacks
 * the L suffix. Find the literal on the setting's line and compare. */
static bool int_literal_wrapped(const kinfer_config_load_ctx *c, const config_setting_t *s,
                                int64_t value) {
    const char *name = config_setting_name(s);
    if (!c->text || !name)
        return false;
    const char *p = c->text;
    for (int line = 1; line < line_of(s) && p; line++) {
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    if (!p)
        return false;
    const char *eol = strchr(p, '\n');
    size_t nlen = strlen(name);
    bool seen = false;
    for (const char *q = p; (q = strstr(q, name)) && (!eol || q < eol); q += nlen) {
        const char *v = q + nlen;
        while (*v == ' ' || *v == '\t')
            v++;
        if (*v != '=' && *v != ':')
            continue;
        v++;
        while (*v == ' ' || *v == '\t')
            v++;
        errno = 0;
        char *end = NULL;
        /* Decimal like libconfig ("010" is ten), hex only with 0x. */
        const char *digits = v + (*v == '-' || *v == '+');
        int base = digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X') ? 16 : 10;
        long long lit = strtoll(v, &end, base);
        if (end == v)
            continue;
        if (*end == 'L')
            return false;
        if (errno == 0 && lit == value)
            return false;
        seen = true;
    }
    return seen;
}

/* A value quoted back in a message: escaped, so control bytes cannot garble
 * a terminal or a log line, and cut short when long. */
static const char *shown(const char *value, char *buf, size_t buflen) {
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)value; *p && n + 8 < buflen; p++) {
        if (*p == '"' || *p == '\\')
            n += (size_t)snprintf(buf + n, buflen - n, "\\%c", *p);
        else if (*p < 0x20 || *p > 0x7e)
            n += (size_t)snprintf(buf + n, buflen - n, "\\x%02x", *p);
        else
            buf[n++] = (char)*p;
        if (n + 8 >= buflen && p[1]) {
            n += (size_t)snprintf(buf + n, buflen - n, "...");
            break;
        }
    }
    buf[n < buflen ? n : buflen - 1] = '\0';
    return buf;
}

static kinfer_err check_string(kinfer_config_load_ctx *c, const kinfer_config_prop *p,
                               const char *value, int line, const char *key) {
    char why[256], buf[128];
    if (p->check && !p->check(value, why, sizeof(why))) {
        /* A URL refused for its user:password@ part is not quoted back. */
        if (p->check == kinfer_config_check_url && strchr(value, '@'))
            return kinfer_config_fail(c, line, key, "%s", why);
        return kinfer_config_fail(c, line, key, "%s (got \"%s\")", why,
                                  shown(value, buf, sizeof(buf)));
    }
    return KINFER_OK;
}

static kinfer_err choice_index(kinfer_config_load_ctx *c, const kinfer_config_prop *p,
                               const char *value, int line, const char *key, int *out) {
    char list[256] = "", buf[128];
    const char *best = NULL;
    size_t bestd = (size_t)-1;
    for (int i = 0; kinfer_config_choices(p)[i]; i++) {
        if (!strcmp(kinfer_config_choices(p)[i], value)) {
            *out = i;
            return KINFER_OK;
        }
        size_t used = strlen(list);
        snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "",
                 kinfer_config_choices(p)[i]);
        consider(value, kinfer_config_choices(p)[i], &best, &bestd);
    }
    if (best)
        return kinfer_config_fail(c, line, key,
                                  "must be one of %s (got \"%s\"; did you mean \"%s\"?)", list,
                                  shown(value, buf, sizeof(buf)), best);
    return kinfer_config_fail(c, line, key, "must be one of %s (got \"%s\")", list,
                              shown(value, buf, sizeof(buf)));
}

/* A "key=value" property: the check looks at the key. A message quotes the
 * value only when the key is a well-formed name of no secret: a misspelt
 * "sasl password" may well carry one. */
static kinfer_err check_kv_string(kinfer_config_load_ctx *c, const kinfer_config_prop *p,
                                  const char *value, int line, const char *key) {
    char why[256], buf[128];
    if (!p->check || p->check(value, why, sizeof(why)))
        return KINFER_OK;
    const char *eq = strchr(value, '=');
    char name[128];
    snprintf(name, sizeof(name), "%.*s", eq ? (int)(eq - value) : (int)strlen(value), value);
    bool plain = name[0] && strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                         "0123456789._-") == strlen(name);
    if (!eq || (plain && !kinfer_config_secret_key(name)))
        return check_string(c, p, value, line, key);
    return kinfer_config_fail(c, line, key, "%s (got \"%s=...\")", why,
                              shown(name, buf, sizeof(buf)));
}

/* `${env:NAME}` / `${file:PATH}` in a property's value (config_secret.c):
 * expanded now, so that a missing variable or file fails at load with
 * file, line and key. The expansion is a secret; raw keeps what was
 * written, for check-config. */
static kinfer_err expand_kv(kinfer_config_load_ctx *c, kinfer_config_kv *kv, int line,
                            const char *key) {
    char *expanded = NULL;
    kinfer_error xerr;
    kinfer_error_clear(&xerr);
    if (kinfer_config_expand_refs(kv->value, c->cfg->base_dir, &expanded, &xerr) != KINFER_OK)
        return kinfer_config_fail(c, line, key, "%s: %s", kv->key, xerr.msg);
    if (!expanded)
        return KINFER_OK;
    struct kinfer_config_state *st = c->st;
    if (st->nsecrets == st->capsecrets) {
        size_t cap = st->capsecrets ? st->capsecrets * 2 : 8;
        char **grown = realloc(st->secrets, cap * sizeof(*grown));
        if (!grown) {
            memset(expanded, 0, strlen(expanded));
            free(expanded);
            return kinfer_config_nomem(c);
        }
        st->secrets = grown;
        st->capsecrets = cap;
    }
    st->secrets[st->nsecrets++] = expanded; /* zeroed and freed by kinfer_config_free */
    kv->raw = kv->value;
    kv->value = expanded;
    kv->secret = true;
    return KINFER_OK;
}

/* A secret string property (kafka.schema_registry_password): ${env:} and
 * ${file:} expanded now like a secret librdkafka property; the value is
 * never put in a message. */
static kinfer_err store_secret(kinfer_config_load_ctx *c, const char *v, char *dst, int line,
                               const char *key) {
    kinfer_config_kv kv = {.key = "value", .value = v};
    kinfer_err rc = expand_kv(c, &kv, line, key);
    if (rc)
        return rc;
    if (!kv.value[0])
        return kinfer_config_fail(c, line, key, "must not be empty");
    char *copy = kv.secret ? (char *)kv.value : kinfer_config_own_strdup(c, kv.value);
    if (!copy)
        return kinfer_config_nomem(c);
    memcpy(dst, &copy, sizeof(copy));
    return KINFER_OK;
}

/* librdkafka knows its own properties: let it check names and values now,
 * so that a typo fails check-config instead of the worker's start. */
static kinfer_err check_rdkafka(kinfer_config_load_ctx *c, const kinfer_config_kv *kv, int line,
                                const char *key) {
    const char *k = kv->key, *v = kv->value;
    /* plugin.library.paths dlopen()s at set time; leave it to the worker. */
    if (!strcmp(k, "plugin.library.paths"))
        return KINFER_OK;
    if (!c->rk && !(c->rk = rd_kafka_conf_new()))
        return kinfer_config_nomem(c);
    char errstr[256] = "";
    rd_kafka_conf_res_t res = rd_kafka_conf_set(c->rk, k, v, errstr, sizeof(errstr));
    if (res == RD_KAFKA_CONF_OK) {
        /* A CA or key file that is not there fails here, not as an
         * OpenSSL error at the worker's start. */
        char why[512];
        if (!kinfer_config_check_rdkafka_file(k, v, why, sizeof why))
            return kinfer_config_fail(c, line, key, "%s", why);
        return KINFER_OK;
    }
    if (res == RD_KAFKA_CONF_UNKNOWN)
        return kinfer_config_fail(c, line, key, "librdkafka has no property \"%s\"", k);
    char buf[128];
    /* librdkafka's reason may quote the value: not for a secret. */
    if (kv->secret)
        return kinfer_config_fail(c, line, key, "librdkafka refuses \"%s=%s\"%s%s", k,
                                  kinfer_config_kv_shown(kv), strstr(errstr, v) ? "" : ": ",
                                  strstr(errstr, v) ? "" : errstr);
    return kinfer_config_fail(c, line, key, "librdkafka refuses \"%s=%s\": %s", k,
                              shown(v, buf, sizeof(buf)), errstr);
}

static kinfer_err store_list(kinfer_config_load_ctx *c, const kinfer_config_prop *p, char *base,
                             const config_setting_t *s, const char *key) {
    char *dst = base + p->offset;
    int n = config_setting_length(s);
    int line = line_of(s);
    if (n < p->min || n > p->max)
        return kinfer_config_fail(c, line, key, "must have between %lld and %lld entries (got %d)",
                                  (long long)p->min, (long long)p->max, n);
    const char **items = NULL;
    kinfer_config_kv *kvs = NULL;
    if (p->type == KINFER_CONFIG_TYPE_STRLIST &&
        !(items = kinfer_config_own_calloc(c, (size_t)n, sizeof(*items))))
        return kinfer_config_nomem(c);
    if (p->type == KINFER_CONFIG_TYPE_KVLIST &&
        !(kvs = kinfer_config_own_calloc(c, (size_t)n, sizeof(*kvs))))
        return kinfer_config_nomem(c);
    kinfer_model_config *model = (kinfer_model_config *)base; /* DEVICES only */
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        char ekey[KEY_MAX];
        snprintf(ekey, sizeof(ekey), "%s.[%d]", key, i);
        int eline = line_of(e) > 0 ? line_of(e) : line;
        if (config_setting_type(e) != CONFIG_TYPE_STRING)
            return kinfer_config_fail(c, eline, ekey, "expected string, got %s",
                                      type_name(config_setting_type(e)));
        const char *v = config_setting_get_string(e);
        kinfer_err rc = p->type == KINFER_CONFIG_TYPE_KVLIST ? check_kv_string(c, p, v, eline, ekey)
                                                             : check_string(c, p, v, eline, ekey);
        if (rc)
            return rc;
        char *copy = kinfer_config_own_strdup(c, v);
        if (!copy)
            return kinfer_config_nomem(c);
        if (p->type == KINFER_CONFIG_TYPE_STRLIST) {
            items[i] = copy;
        } else if (p->type == KINFER_CONFIG_TYPE_KVLIST) {
            char *eq = strchr(copy, '=');
            *eq = '\0';
            for (int j = 0; j < i; j++)
                if (!strcmp(kvs[j].key, copy))
                    return kinfer_config_fail(c, eline, ekey, "\"%s\" is already set by %s.[%d]",
                                              copy, key, j);
            kvs[i].key = copy;
            kvs[i].value = eq + 1;
            kvs[i].secret = kinfer_config_secret_key(copy);
            kvs[i].line = eline;
            if ((rc = expand_kv(c, &kvs[i], eline, ekey)))
                return rc;
            if ((rc = check_rdkafka(c, &kvs[i], eline, ekey)))
                return rc;
        } else { /* DEVICES */
            for (int j = 0; j < i; j++)
                if (!strcmp(model->devices[j], copy))
                    return kinfer_config_fail(c, eline, ekey, "device \"%s\" is listed twice",
                                              copy);
            model->devices[i] = copy;
        }
    }
    if (p->type == KINFER_CONFIG_TYPE_STRLIST) {
        kinfer_config_strlist list = {items, (size_t)n};
        memcpy(dst, &list, sizeof(list));
    } else if (p->type == KINFER_CONFIG_TYPE_KVLIST) {
        kinfer_config_kvlist list = {kvs, (size_t)n};
        memcpy(dst, &list, sizeof(list));
    } else {
        for (int i = n; i < KINFER_MAX_DEVICES; i++)
            model->devices[i] = NULL;
        model->ndevices = n;
    }
    return KINFER_OK;
}

/* Type-checks, validates and stores setting s as property p into base
 * (a kinfer_config or a kinfer_model_config, by p->scope). */
static kinfer_err store(kinfer_config_load_ctx *c, const kinfer_config_prop *p, char *base,
                        const config_setting_t *s, const char *key) {
    int type = config_setting_type(s);
    int line = line_of(s);
    char *dst = base + p->offset;
    switch (p->type) {
    case KINFER_CONFIG_TYPE_INT: {
        if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64)
            return kinfer_config_fail(c, line, key, "expected integer, got %s", type_name(type));
        int64_t v = config_setting_get_int64(s);
        if (type == CONFIG_TYPE_INT && int_literal_wrapped(c, s, v))
            return kinfer_config_fail(
                c, line, key,
                "integer does not fit in 32 bits; write it with an L suffix (e.g. "
                "3000000000L)");
        if (v < p->min || v > p->max)
            return kinfer_config_fail(c, line, key, "must be between %lld and %lld (got %lld)",
                                      (long long)p->min, (long long)p->max, (long long)v);
        put_int(dst, p->size, v);
        return KINFER_OK;
    }
    case KINFER_CONFIG_TYPE_STRING:
    case KINFER_CONFIG_TYPE_PATH: {
        if (type != CONFIG_TYPE_STRING)
            return kinfer_config_fail(c, line, key, "expected string, got %s", type_name(type));
        const char *v = config_setting_get_string(s);
        if (kinfer_config_secret_key(p->name))
            return store_secret(c, v, dst, line, key);
        kinfer_err rc = check_string(c, p, v, line, key);
        if (rc)
            return rc;
        char *copy = kinfer_config_own_strdup(c, v);
        if (!copy)
            return kinfer_config_nomem(c);
        memcpy(dst, &copy, sizeof(copy));
        return KINFER_OK;
    }
    case KINFER_CONFIG_TYPE_ENUM:
    case KINFER_CONFIG_TYPE_CHOICE: {
        if (type != CONFIG_TYPE_STRING)
            return kinfer_config_fail(c, line, key, "expected string, got %s", type_name(type));
        int idx = 0;
        kinfer_err rc = choice_index(c, p, config_setting_get_string(s), line, key, &idx);
        if (rc)
            return rc;
        if (p->type == KINFER_CONFIG_TYPE_ENUM)
            memcpy(dst, &idx, sizeof(idx));
        else
            memcpy(dst, &kinfer_config_choices(p)[idx], sizeof(kinfer_config_choices(p)[idx]));
        return KINFER_OK;
    }
    case KINFER_CONFIG_TYPE_STRLIST:
    case KINFER_CONFIG_TYPE_KVLIST:
    case KINFER_CONFIG_TYPE_DEVICES:
        if (type != CONFIG_TYPE_ARRAY && type != CONFIG_TYPE_LIST) {
            if (p->type == KINFER_CONFIG_TYPE_KVLIST)
                return kinfer_config_fail(c, line, key,
                                          "expected array of \"key=value\" strings, got %s",
                                          type_name(type));
            return kinfer_config_fail(c, line, key, "expected array of strings, got %s",
                                      type_name(type));
        }
        return store_list(c, p, base, s, key);
    }
    return kinfer_config_fail(c, line, key, "internal: unhandled property type");
}

/* Stores the table default of p (its libconfig text) as if it were written
 * in the file, so the docs can never disagree with what is applied. */
static kinfer_err store_default(kinfer_config_load_ctx *c, const kinfer_config_prop *p, char *base,
                                const char *key) {
    char text[256];
    snprintf(text, sizeof(text), "v = %s;", p->def);
    config_t dc;
    config_init(&dc);
    kinfer_err rc;
    if (!config_read_string(&dc, text)) {
        rc = kinfer_config_fail(c, 0, key, "internal: default %s does not parse", p->def);
    } else {
        const char *saved = c->text;
        c->text = NULL;
        rc = store(c, p, base, config_lookup(&dc, "v"), key);
        c->text = saved;
    }
    config_destroy(&dc);
    return rc;
}

/* --- the walk over the file ---------------------------------------------------- */

static bool is_section(const char *name) {
    for (size_t i = 0; i < kinfer_config_nsections; i++)
        if (kinfer_config_sections[i].name[0] && !strcmp(kinfer_config_sections[i].name, name) &&
            strcmp(name, "models"))
            return true;
    return false;
}

static kinfer_err walk_model(kinfer_config_load_ctx *c, size_t mi, const config_setting_t *g) {
    char mkey[64];
    snprintf(mkey, sizeof(mkey), "models.[%zu]", mi);
    c->st->model_line[mi] = line_of(g);
    if (config_setting_type(g) != CONFIG_TYPE_GROUP)
        return kinfer_config_fail(c, line_of(g), mkey, "expected group { name = ...; ... }, got %s",
                                  type_name(config_setting_type(g)));
    int *src = c->st->model_src + mi * kinfer_config_nprops;
    for (int i = 0; i < config_setting_length(g); i++) {
        const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
        char key[KEY_MAX];
        snprintf(key, sizeof(key), "%s.%s", mkey, config_setting_name(s));
        int idx = kinfer_config_prop_find(KINFER_CONFIG_SCOPE_MODEL, config_setting_name(s));
        if (idx < 0)
            return unknown_key(c, s, key, LEVEL_MODEL, "");
        kinfer_err rc = store(c, &kinfer_config_props[idx], (char *)&c->cfg->models[mi], s, key);
        if (rc)
            return rc;
        src[idx] = line_of(s);
    }
    return KINFER_OK;
}

static kinfer_err walk_section(kinfer_config_load_ctx *c, const config_setting_t *sec) {
    const char *sname = config_setting_name(sec);
    bool sched = !strcmp(sname, "scheduler");
    if (config_setting_type(sec) != CONFIG_TYPE_GROUP)
        return kinfer_config_fail(c, line_of(sec), sname, "expected group { ... }, got %s",
                                  type_name(config_setting_type(sec)));
    for (int i = 0; i < config_setting_length(sec); i++) {
        const config_setting_t *s = config_setting_get_elem(sec, (unsigned)i);
        char key[KEY_MAX];
        snprintf(key, sizeof(key), "%s.%s", sname, config_setting_name(s));
        int idx = sched ? kinfer_config_prop_find(KINFER_CONFIG_SCOPE_MODEL, config_setting_name(s))
                        : kinfer_config_prop_find(KINFER_CONFIG_SCOPE_ROOT, key);
        if (idx >= 0 && sched && !(kinfer_config_props[idx].flags & KINFER_CONFIG_F_SCHED))
            idx = -1;
        if (idx < 0)
            return unknown_key(c, s, key, sched ? LEVEL_SCHEDULER : LEVEL_SECTION, sname);
        char *base = sched ? (char *)&c->cfg->scheduler : (char *)c->cfg;
        kinfer_err rc = store(c, &kinfer_config_props[idx], base, s, key);
        if (rc)
            return rc;
        (sched ? c->st->sched_src : c->st->root_src)[idx] = line_of(s);
    }
    return KINFER_OK;
}

static kinfer_err walk_root(kinfer_config_load_ctx *c, const config_setting_t *root) {
    for (int i = 0; i < config_setting_length(root); i++) {
        const config_setting_t *s = config_setting_get_elem(root, (unsigned)i);
        const char *name = config_setting_name(s);
        kinfer_err rc;
        if (!strcmp(name, "models")) {
            c->st->models_line = line_of(s);
            if (config_setting_type(s) != CONFIG_TYPE_LIST)
                return kinfer_config_fail(c, line_of(s), "models",
                                          "expected a list of groups ( { ... }, { ... } ), got %s",
                                          type_name(config_setting_type(s)));
            for (size_t m = 0; m < c->cfg->nmodels; m++)
                if ((rc = walk_model(c, m, config_setting_get_elem(s, (unsigned)m))))
                    return rc;
            continue;
        }
        if (is_section(name)) {
            if ((rc = walk_section(c, s)))
                return rc;
            continue;
        }
        int idx = strchr(name, '.') ? -1 : kinfer_config_prop_find(KINFER_CONFIG_SCOPE_ROOT, name);
        if (idx < 0)
            return unknown_key(c, s, name, LEVEL_TOP, "");
        if ((rc = store(c, &kinfer_config_props[idx], (char *)c->cfg, s, name)))
            return rc;
        c->st->root_src[idx] = line_of(s);
    }
    return KINFER_OK;
}

/* --- defaults ---------------------------------------------------------------------- */

static kinfer_err apply_root_defaults(kinfer_config_load_ctx *c) {
    kinfer_config *cfg = c->cfg;
    int *src = c->st->root_src;
    int topics = kinfer_config_prop_find(KINFER_CONFIG_SCOPE_ROOT, "kafka.topics");
    int pattern = kinfer_config_prop_find(KINFER_CONFIG_SCOPE_ROOT, "kafka.topic_pattern");
    for (size_t i = 0; i < kinfer_config_nprops; i++) {
        const kinfer_config_prop *p = &kinfer_config_props[i];
        if (p->scope != KINFER_CONFIG_SCOPE_ROOT || src[i] != KINFER_CONFIG_SRC_UNSET)
            continue;
        if ((int)i == topics && src[pattern] > 0)
            continue; /* the pattern replaces the default topic list */
        if (p->def) {
            kinfer_err rc = store_default(c, p, (char *)cfg, p->name);
            if (rc)
                return rc;
            src[i] = KINFER_CONFIG_SRC_DEFAULT;
        }
    }
    /* Computed: the worker id, then the transactional prefix from the group. */
    int wid = kinfer_config_prop_find(KINFER_CONFIG_SCOPE_ROOT, "worker.id");
    if (src[wid] == KINFER_CONFIG_SRC_UNSET) {
        char host[128] = "kinfer", id[160];
        if (gethostname(host, sizeof(host)) != 0 || !host[0])
            strcpy(host, "kinfer");
        host[sizeof(host) - 1] = '\0';
        snprintf(id, sizeof(id), "%s-%ld", host, (long)getpid());
        if (!(cfg->worker.id = kinfer_config_own_strdup(c, id)))
            return kinfer_config_nomem(c);
        src[wid] = KINFER_CONFIG_SRC_COMPUTED;
    }
    int txn = kinfer_config_prop_find(KINFER_CONFIG_SCOPE_ROOT, "kafka.transactional_id_prefix");
    if (src[txn] == KINFER_CONFIG_SRC_UNSET) {
        if (!(cfg->kafka.transactional_id_prefix = kinfer_config_own_strdup(c, cfg->kafka.group)))
            return kinfer_config_nomem(c);
        src[txn] = KINFER_CONFIG_SRC_COMPUTED;
    }
    return KINFER_OK;
}

static kinfer_err apply_scheduler_defaults(kinfer_config_load_ctx *c) {
    int *src = c->st->sched_src;
    for (size_t i = 0; i < kinfer_config_nprops; i++) {
        const kinfer_config_prop *p = &kinfer_config_props[i];
        if (!(p->flags & KINFER_CONFIG_F_SCHED) || src[i] != KINFER_CONFIG_SRC_UNSET || !p->def)
            continue;
        char key[KEY_MAX];
        snprintf(key, sizeof(key), "scheduler.%s", p->name);
        kinfer_err rc = store_default(c, p, (char *)&c->cfg->scheduler, key);
        if (rc)
            return rc;
        src[i] = KINFER_CONFIG_SRC_DEFAULT;
    }
    int low = kinfer_config_low_watermark_index();
    if (src[low] == KINFER_CONFIG_SRC_UNSET) {
        c->cfg->scheduler.queue_low_watermark = c->cfg->scheduler.max_queue / 2;
        src[low] = KINFER_CONFIG_SRC_COMPUTED;
    }
    return KINFER_OK;
}

static kinfer_err apply_model_defaults(kinfer_config_load_ctx *c, size_t mi) {
    kinfer_model_config *m = (kinfer_model_config *)&c->cfg->models[mi];
    int *src = c->st->model_src + mi * kinfer_config_nprops;
    int low = kinfer_config_low_watermark_index();
    for (size_t i = 0; i < kinfer_config_nprops; i++) {
        const kinfer_config_prop *p = &kinfer_config_props[i];
        if (p->scope != KINFER_CONFIG_SCOPE_MODEL || src[i] != KINFER_CONFIG_SRC_UNSET)
            continue;
        char key[KEY_MAX];
        snprintf(key, sizeof(key), "models.[%zu].%s", mi, p->name);
        if (p->flags & KINFER_CONFIG_F_REQUIRED)
            return kinfer_config_fail(c, c->st->model_line[mi], key, "required but not set");
        if ((int)i == low && c->st->sched_src[i] == KINFER_CONFIG_SRC_COMPUTED)
            continue; /* computed from this model's max_queue below */
        if (p->flags & KINFER_CONFIG_F_SCHED) {
            memcpy((char *)m + p->offset, (char *)&c->cfg->scheduler + p->offset, p->size);
            src[i] = KINFER_CONFIG_SRC_INHERIT;
        } else if (p->def) {
            kinfer_err rc = store_default(c, p, (char *)m, key);
            if (rc)
                return rc;
            src[i] = KINFER_CONFIG_SRC_DEFAULT;
        }
    }
    if (src[low] == KINFER_CONFIG_SRC_UNSET) {
        m->queue_low_watermark = m->max_queue / 2;
        src[low] = KINFER_CONFIG_SRC_COMPUTED;
    }
    m->load.name = m->name;
    m->load.cpu_threads = c->cfg->worker.cpu_threads;
    return KINFER_OK;
}

/* --- entry points ---------------------------------------------------------------- */

/* libconfig's @include would read other files (and, fed untrusted text,
 * any file); one config is one file, so it is refused. libconfig only
 * honours it at the start of a line after blanks, which is what is checked. */
static int find_include(const char *text) {
    int line = 1;
    for (const char *p = text; *p; line++) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!strncmp(p, "@include", 8))
            return line;
        p = strchr(p, '\n');
        if (!p)
            break;
        p++;
    }
    return 0;
}

static kinfer_err load_parsed(kinfer_config_load_ctx *c, config_t *lc) {
    kinfer_config *cfg = c->cfg;
    const config_setting_t *models = config_lookup(lc, "models");
    size_t nmodels = models && config_setting_type(models) == CONFIG_TYPE_LIST
                         ? (size_t)config_setting_length(models)
                         : 0;
    struct kinfer_config_state *st = c->st;
    if (!(st->root_src = kinfer_config_own_calloc(c, kinfer_config_nprops, sizeof(int))) ||
        !(st->sched_src = kinfer_config_own_calloc(c, kinfer_config_nprops, sizeof(int))) ||
        !(st->model_src =
              kinfer_config_own_calloc(c, nmodels * kinfer_config_nprops, sizeof(int))) ||
        !(st->model_line = kinfer_config_own_calloc(c, nmodels, sizeof(int))) ||
        !(cfg->models = kinfer_config_own_calloc(c, nmodels, sizeof(kinfer_model_config))))
        return kinfer_config_nomem(c);
    cfg->nmodels = nmodels;
    kinfer_err rc;
    if ((rc = walk_root(c, config_root_setting(lc))) || (rc = apply_root_defaults(c)) ||
        (rc = apply_scheduler_defaults(c)))
        return rc;
    for (size_t i = 0; i < nmodels; i++)
        if ((rc = apply_model_defaults(c, i)))
            return rc;
    return kinfer_config_check_rules(c);
}

static kinfer_err set_origin(kinfer_config_load_ctx *c, const char *origin) {
    kinfer_config *cfg = c->cfg;
    if (!(cfg->path = kinfer_config_own_strdup(c, origin)))
        return kinfer_config_nomem(c);
    const char *slash = strrchr(origin, '/');
    char *dir;
    if (!slash)
        dir = kinfer_config_own_strdup(c, ".");
    else if (slash == origin)
        dir = kinfer_config_own_strdup(c, "/");
    else
        dir = kinfer_config_own(c, strndup(origin, (size_t)(slash - origin)));
    if (!dir)
        return kinfer_config_nomem(c);
    cfg->base_dir = dir;
    return KINFER_OK;
}

kinfer_err kinfer_config_load_string(const char *text, const char *origin_name, kinfer_config *cfg,
                                     kinfer_error *err) {
    if (!text || !cfg)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "config: NULL argument");
    memset(cfg, 0, sizeof(*cfg));
    if (!origin_name)
        origin_name = "<string>";
    kinfer_config_load_ctx c = {.cfg = cfg, .file = origin_name, .text = text, .err = err};
    if (!(cfg->state = c.st = calloc(1, sizeof(*c.st))))
        return kinfer_config_nomem(&c);
    kinfer_err rc = set_origin(&c, origin_name);
    int incl = rc ? 0 : find_include(text);
    if (incl)
        rc = kinfer_config_fail(&c, incl, "@include",
                                "not supported: the whole configuration is one file");
    if (!rc) {
        config_t lc;
        config_init(&lc);
        if (!config_read_string(&lc, text))
            rc = kinfer_error_set(err, KINFER_ERR_CONFIG, "%s:%d: %s", origin_name,
                                  config_error_line(&lc), config_error_text(&lc));
        else
            rc = load_parsed(&c, &lc);
        config_destroy(&lc);
    }
    if (c.rk)
        rd_kafka_conf_destroy(c.rk);
    if (rc)
        kinfer_config_free(cfg);
    return rc;
}

kinfer_err kinfer_config_load(const char *path, kinfer_config *cfg, kinfer_error *err) {
    if (!path || !cfg)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "config: NULL argument");
    memset(cfg, 0, sizeof(*cfg));
    FILE *f = fopen(path, "rb");
    if (!f)
        return kinfer_error_set(err, KINFER_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    /* A config is small; anything past 1 MiB is not one. */
    enum { MAX_CONFIG_BYTES = 1 << 20 };
    struct stat sb;
    kinfer_err rc = KINFER_OK;
    char *text = NULL;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode))
        rc = kinfer_error_set(err, KINFER_ERR_IO, "%s: not a regular file", path);
    else if (sb.st_size > MAX_CONFIG_BYTES)
        rc = kinfer_error_set(err, KINFER_ERR_CONFIG, "%s: larger than 1 MiB; not a config file",
                              path);
    else if (!(text = malloc((size_t)sb.st_size + 1)))
        rc = kinfer_error_set(err, KINFER_ERR_NOMEM, "%s: out of memory", path);
    size_t n = text ? fread(text, 1, (size_t)sb.st_size, f) : 0;
    if (!rc && (ferror(f) || n != (size_t)sb.st_size))
        rc = kinfer_error_set(err, KINFER_ERR_IO, "%s: read error", path);
    fclose(f);
    if (!rc && memchr(text, '\0', n))
        rc = kinfer_error_set(err, KINFER_ERR_CONFIG, "%s: contains a NUL byte; not a text file",
                              path);
    if (!rc) {
        text[n] = '\0';
        rc = kinfer_config_load_string(text, path, cfg, err);
    }
    free(text);
    return rc;
}

void kinfer_config_free(kinfer_config *cfg) {
    if (!cfg)
        return;
    struct kinfer_config_state *st = cfg->state;
    if (st) {
        for (size_t i = 0; i < st->nallocs; i++)
            free(st->allocs[i]);
        free(st->allocs);
        /* Expanded secrets do not linger in freed memory. */
        for (size_t i = 0; i < st->nsecrets; i++) {
            memset(st->secrets[i], 0, strlen(st->secrets[i]));
            free(st->secrets[i]);
        }
        free(st->secrets);
        free(st);
    }
    memset(cfg, 0, sizeof(*cfg));
}
