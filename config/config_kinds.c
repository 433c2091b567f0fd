/* config_kinds.c — the configuration's view of model kinds, asked of the
 * engine's kind table (kinfer_model_kind_*, kinfer_model.h) rather than
 * known here: the values `kind`, `precision`, `activation` and
 * `output_activation` may take (over all kinds, for parsing and the docs),
 * and the rules for one model entry against its own kind (path kind,
 * precision, activations, keys only some kinds read). A new kind needs
 * nothing in this file. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "config_table.h"
#include "kinfer/kinfer_model.h"

/* Most distinct values one union holds (kinds, or values over all kinds). */
#define UNION_MAX 64

static const char *const fp32_only[] = {"fp32", NULL};

static const char *const *kind_precisions(const kinfer_model_kind_info *k) {
    return k->precisions ? k->precisions : fp32_only;
}

typedef enum which { KINDS, PRECISIONS, ACTIVATIONS, OUTPUT_ACTIVATIONS, NWHICH } which;

static const char *const *list_of(const kinfer_model_kind_info *k, which w) {
    switch (w) {
    case PRECISIONS:
        return kind_precisions(k);
    case ACTIVATIONS:
        return k->activations;
    case OUTPUT_ACTIVATIONS:
        return k->output_activations;
    default:
        return NULL;
    }
}

/* NULL-terminated unions, in kind-table order, first occurrence first;
 * built once (the table is static). */
static const char *unions[NWHICH][UNION_MAX + 1];
static pthread_once_t unions_once = PTHREAD_ONCE_INIT;

static void add(const char **u, const char *v) {
    size_t n = 0;
    for (; u[n]; n++)
        if (!strcmp(u[n], v))
            return;
    if (n < UNION_MAX)
        u[n] = v;
}

static void build_unions(void) {
    for (size_t i = 0; i < kinfer_model_kind_count(); i++) {
        const kinfer_model_kind_info *k = kinfer_model_kind_at(i);
        add(unions[KINDS], k->name);
        for (int w = PRECISIONS; w < NWHICH; w++)
            for (const char *const *v = list_of(k, (which)w); v && *v; v++)
                add(unions[w], *v);
    }
}

static const char *const *union_of(which w) {
    pthread_once(&unions_once, build_unions);
    return unions[w];
}

const char *const *kinfer_config_kind_choices(void) {
    return union_of(KINDS);
}
const char *const *kinfer_config_precision_choices(void) {
    return union_of(PRECISIONS);
}
const char *const *kinfer_config_activation_choices(void) {
    return union_of(ACTIVATIONS);
}
const char *const *kinfer_config_output_activation_choices(void) {
    return union_of(OUTPUT_ACTIVATIONS);
}

/* ---- one model against its kind ------------------------------------------ */

static bool listed(const char *const *list, const char *v) {
    for (; list && *list; list++)
        if (!strcmp(*list, v))
            return true;
    return false;
}

/* "a, b, c" of a NULL-terminated list. */
static const char *joined(const char *const *list, char *buf, size_t len) {
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; list && list[i] && off < len; i++) {
        int n = snprintf(buf + off, len - off, "%s%s", i ? ", " : "", list[i]);
        off += n > 0 ? (size_t)n : 0;
    }
    return buf;
}

/* The kinds that read a kind-specific key, for the message. */
static const char *readers_of(const char *key, char *buf, size_t len) {
    const char *names[UNION_MAX + 1] = {0};
    size_t n = 0;
    for (size_t i = 0; i < kinfer_model_kind_count() && n < UNION_MAX; i++)
        if (listed(kinfer_model_kind_at(i)->options, key))
            names[n++] = kinfer_model_kind_at(i)->name;
    return joined(names, buf, len);
}

static int model_line(kinfer_config_load_ctx *c, size_t mi, const char *name) {
    int idx = kinfer_config_prop_find(KINFER_CONFIG_SCOPE_MODEL, name);
    int line = idx >= 0 ? c->st->model_src[mi * kinfer_config_nprops + (size_t)idx] : 0;
    return line > 0 ? line : c->st->model_line[mi];
}

static kinfer_err check_path(kinfer_config_load_ctx *c, size_t mi, const kinfer_model_kind_info *k,
                             const char *raw) {
    const kinfer_model_config *m = &c->cfg->models[mi];
    char key[KEY_MAX];
    snprintf(key, sizeof(key), "models.[%zu].path", mi);
    int line = model_line(c, mi, "path");
    struct stat sb;
    if (stat(m->load.path, &sb) != 0)
        return kinfer_config_fail(c, line, key, "\"%s\" does not exist (looked for %s: %s)", raw,
                                  m->load.path, strerror(errno));
    if (k->path == KINFER_MODEL_PATH_DIR && !S_ISDIR(sb.st_mode))
        return kinfer_config_fail(c, line, key,
                                  "kind \"%s\" needs a model directory, and %s is not one", k->name,
                                  m->load.path);
    if (k->path == KINFER_MODEL_PATH_FILE && !S_ISREG(sb.st_mode))
        return kinfer_config_fail(c, line, key,
                                  "kind \"%s\" needs a model file, and %s is not a regular file",
                                  k->name, m->load.path);
    return KINFER_OK;
}

/* A value of `name` (activation, output_activation) the kind must offer. */
static kinfer_err check_value(kinfer_config_load_ctx *c, size_t mi, const kinfer_model_kind_info *k,
                              const char *name, const char *value, const char *const *allowed) {
    if (!value || listed(allowed, value))
        return KINFER_OK;
    char key[KEY_MAX], list[256];
    snprintf(key, sizeof(key), "models.[%zu].%s", mi, name);
    if (!allowed)
        return kinfer_config_fail(c, model_line(c, mi, name), key, "kind \"%s\" has no %s option",
                                  k->name, name);
    return kinfer_config_fail(c, model_line(c, mi, name), key,
                              "kind \"%s\" supports %s (got \"%s\")", k->name,
                              joined(allowed, list, sizeof(list)), value);
}

kinfer_err kinfer_config_check_model_kind(kinfer_config_load_ctx *c, size_t mi) {
    const kinfer_model_config *m = &c->cfg->models[mi];
    const kinfer_model_kind_info *k = kinfer_model_kind_lookup(m->load.kind);
    char key[KEY_MAX], list[256];
    if (!k) /* the choice list comes from the same table: cannot happen */
        return kinfer_config_fail(c, model_line(c, mi, "kind"), "kind", "unknown kind \"%s\"",
                                  m->load.kind);
    /* A key only some kinds read, set in this model's own group (an
     * inherited scheduler value is not the model's choice). */
    for (size_t i = 0; i < kinfer_config_nprops; i++) {
        const kinfer_config_prop *p = &kinfer_config_props[i];
        if (p->scope != KINFER_CONFIG_SCOPE_MODEL ||
            c->st->model_src[mi * kinfer_config_nprops + i] <= 0 || listed(k->options, p->name))
            continue;
        char readers[256];
        if (!*readers_of(p->name, readers, sizeof(readers)))
            continue; /* every kind reads it */
        snprintf(key, sizeof(key), "models.[%zu].%s", mi, p->name);
        return kinfer_config_fail(c, c->st->model_src[mi * kinfer_config_nprops + i], key,
                                  "does not apply to kind \"%s\" (only to %s)", k->name, readers);
    }
    kinfer_err rc = check_value(c, mi, k, "activation", m->load.activation, k->activations);
    if (rc == KINFER_OK)
        rc = check_value(c, mi, k, "output_activation", m->load.output_activation,
                         k->output_activations);
    if (rc != KINFER_OK)
        return rc;
    const char *precision = m->load.precision ? m->load.precision : kind_precisions(k)[0];
    if (!listed(kind_precisions(k), precision)) {
        snprintf(key, sizeof(key), "models.[%zu].precision", mi);
        return kinfer_config_fail(c, model_line(c, mi, "precision"), key,
                                  "kind \"%s\" supports %s (got \"%s\")", k->name,
                                  joined(kind_precisions(k), list, sizeof(list)), precision);
    }
    return KINFER_OK;
}

/* The path rule needs the raw text for its message: config_rules.c resolves
 * the path, then asks here. */
kinfer_err kinfer_config_check_model_path_kind(kinfer_config_load_ctx *c, size_t mi,
                                               const char *raw) {
    const kinfer_model_kind_info *k = kinfer_model_kind_lookup(c->cfg->models[mi].load.kind);
    if (!k)
        return KINFER_OK; /* reported by kinfer_config_check_model_kind */
    return check_path(c, mi, k, raw);
}
