/* config_table.h — private to the config module (config/config_*.c): the
 * shape of the one property table, the load state that records where every
 * value came from, and helpers shared by loading and printing.
 * Not a public API: the rest of the worker uses config.h only. */
#ifndef KINFER_CONFIG_TABLE_H
#define KINFER_CONFIG_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kinfer/kinfer_config.h"

typedef enum kinfer_config_type {
    KINFER_CONFIG_TYPE_STRING,  /* const char * */
    KINFER_CONFIG_TYPE_INT,     /* integer of `size` bytes, range [min, max] */
    KINFER_CONFIG_TYPE_ENUM,    /* string from `choices`, stored as int (the index) */
    KINFER_CONFIG_TYPE_CHOICE,  /* string from `choices`, stored as const char * to it */
    KINFER_CONFIG_TYPE_STRLIST, /* array of strings -> kinfer_config_strlist */
    KINFER_CONFIG_TYPE_KVLIST,  /* array of "key=value" strings -> kinfer_config_kvlist */
    KINFER_CONFIG_TYPE_DEVICES, /* array of strings -> kinfer_model_config.devices/ndevices */
    KINFER_CONFIG_TYPE_PATH     /* string; resolved against the file's directory, must exist */
} kinfer_config_type;

typedef enum kinfer_config_scope {
    KINFER_CONFIG_SCOPE_ROOT, /* offset into kinfer_config; name is the full path */
    KINFER_CONFIG_SCOPE_MODEL /* offset into kinfer_model_config; name inside models.[i] */
} kinfer_config_scope;

/* Must be given; no default. */
#define KINFER_CONFIG_F_REQUIRED 0x1u
/* No default: stays unset (NULL / empty) unless given. */
#define KINFER_CONFIG_F_OPTIONAL 0x2u
/* Model property that may also be set in the `scheduler` section; a model
 * that does not set it inherits the scheduler's value (whose default is `def`). */
#define KINFER_CONFIG_F_SCHED 0x4u
/* Default computed at load; `def_doc` says how. */
#define KINFER_CONFIG_F_COMPUTED 0x8u

/* Extra check of one string value (each element for lists). Returns false
 * and writes the reason into why when the value is bad. */
typedef bool (*kinfer_config_check_fn)(const char *value, char *why, size_t whylen);

typedef struct kinfer_config_prop {
    const char *name;
    kinfer_config_type type;
    kinfer_config_scope scope;
    unsigned flags;
    size_t offset;
    size_t size;                /* sizeof the member; INT values are 4 or 8 bytes */
    int64_t min, max;           /* INT: inclusive range; lists: element count range */
    const char *const *choices; /* ENUM/CHOICE: NULL-terminated, index = stored value */
    /* CHOICE whose values belong to another table (the engine's kind
     * table, config_kinds.c): called instead of `choices`. */
    const char *const *(*choices_of)(void);
    /* The default written as libconfig text ("kinfer", 1000, ["cpu"]); it is
     * parsed by libconfig at load, so the docs show exactly what is applied.
     * NULL for REQUIRED, OPTIONAL and COMPUTED properties. */
    const char *def;
    const char *def_doc; /* COMPUTED / OPTIONAL: what the docs say instead of a value */
    kinfer_config_check_fn check;
    const char *description;
} kinfer_config_prop;

typedef struct kinfer_config_section {
    const char *name; /* "kafka", ...; "" for top-level scalars like `delivery` */
    const char *description;
} kinfer_config_section;

extern const kinfer_config_prop kinfer_config_props[];
extern const size_t kinfer_config_nprops;
extern const kinfer_config_section kinfer_config_sections[];
extern const size_t kinfer_config_nsections;

/* Where a value came from: a line number (> 0) or one of these. */
#define KINFER_CONFIG_SRC_UNSET 0            /* optional and not given */
#define KINFER_CONFIG_SRC_DEFAULT -1         /* the table's default */
#define KINFER_CONFIG_SRC_COMPUTED -2        /* computed at load */
#define KINFER_CONFIG_SRC_INHERIT -3         /* models.[i] took the scheduler section's value */
#define KINFER_CONFIG_SRC_INHERIT_DEFAULT -4 /* ... which was itself a default (printing only) */

/* Storage and provenance owned by a kinfer_config. */
struct kinfer_config_state {
    void **allocs; /* every block the config owns */
    size_t nallocs, capallocs;
    int *root_src;   /* [kinfer_config_nprops], ROOT props */
    int *sched_src;  /* [kinfer_config_nprops], SCHED props in the scheduler section */
    int *model_src;  /* [nmodels * kinfer_config_nprops] */
    int *model_line; /* [nmodels]: line of each model's group */
    int models_line; /* line of `models`; 0 when absent */
    char **secrets;  /* expanded ${env:}/${file:} values: zeroed, then freed */
    size_t nsecrets, capsecrets;
};

/* A choice property's values, NULL-terminated. */
static inline const char *const *kinfer_config_choices(const kinfer_config_prop *p) {
    return p->choices_of ? p->choices_of() : p->choices;
}

/* config_kinds.c: the values the kinds of the engine's kind table accept,
 * over all kinds (a model's own kind is checked by the rules). */
const char *const *kinfer_config_kind_choices(void);
const char *const *kinfer_config_precision_choices(void);
const char *const *kinfer_config_activation_choices(void);
const char *const *kinfer_config_output_activation_choices(void);

/* Reads an INT property's value of `size` bytes (4 or 8). */
static inline int64_t kinfer_config_get_int(const char *src, size_t size) {
    if (size == sizeof(int64_t)) {
        int64_t v;
        memcpy(&v, src, sizeof(v));
        return v;
    }
    int32_t v32;
    memcpy(&v32, src, sizeof(v32));
    return v32;
}

/* --- loader internals: the load context (config_ctx.c), shared by
 * config_load.c, config_rules.c and config_kinds.c --- */

#define KEY_MAX 256

typedef struct kinfer_config_load_ctx {
    kinfer_config *cfg;
    struct kinfer_config_state *st;
    const char *file;           /* for messages */
    const char *text;           /* source being stored from; NULL while applying defaults */
    struct rd_kafka_conf_s *rk; /* created on first property, to let librdkafka check it */
    kinfer_error *err;
} kinfer_config_load_ctx;

/* Fills c->err with "<file>:<line>: <key>: <what>" (no line part when
 * line <= 0) and returns KINFER_ERR_CONFIG. */
kinfer_err kinfer_config_fail(kinfer_config_load_ctx *c, int line, const char *key, const char *fmt,
                              ...) __attribute__((format(printf, 4, 5)));
kinfer_err kinfer_config_nomem(kinfer_config_load_ctx *c);
/* Makes p owned by the config being loaded (freed by kinfer_config_free);
 * NULL (and p freed) when out of memory. */
void *kinfer_config_own(kinfer_config_load_ctx *c, void *p);
char *kinfer_config_own_strdup(kinfer_config_load_ctx *c, const char *s);
/* calloc owned by the config being loaded. */
void *kinfer_config_own_calloc(kinfer_config_load_ctx *c, size_t n, size_t size);
/* config_table.c: index of models.[i].queue_low_watermark in the table. */
int kinfer_config_low_watermark_index(void);
/* config_rules.c: cross-key rules, after defaults are applied. */
kinfer_err kinfer_config_check_rules(kinfer_config_load_ctx *c);
/* config_kinds.c: models.[mi] against its kind's entry in the engine's kind
 * table (path kind, precision, activations, kind-specific keys). Its path
 * is already resolved. */
kinfer_err kinfer_config_check_model_kind(kinfer_config_load_ctx *c, size_t mi);
/* config_kinds.c: models.[mi].path (resolved; raw as written) is what its
 * kind's path kind says, a file or a directory, and exists. */
kinfer_err kinfer_config_check_model_path_kind(kinfer_config_load_ctx *c, size_t mi,
                                               const char *raw);

/* Index of the property with this scope and name, or -1. */
int kinfer_config_prop_find(kinfer_config_scope scope, const char *name);

/* Levenshtein distance, capped at cap+1 (cheap for long strings). */
size_t kinfer_config_edit_distance(const char *a, const char *b, size_t cap);

/* librdkafka keys that kinfer sets itself and that `properties` must not
 * override; returns the kinfer key to use instead, or NULL when allowed. */
const char *kinfer_config_reserved_rdkafka_key(const char *key);

/* Validators used by the table (config_check.c). */
bool kinfer_config_check_nonempty(const char *value, char *why, size_t whylen);
bool kinfer_config_check_printable(const char *value, char *why, size_t whylen);
bool kinfer_config_check_group(const char *value, char *why, size_t whylen);
bool kinfer_config_check_topic(const char *value, char *why, size_t whylen);
bool kinfer_config_check_topic_pattern(const char *value, char *why, size_t whylen);
bool kinfer_config_check_topic_template(const char *value, char *why, size_t whylen);
bool kinfer_config_check_listen(const char *value, char *why, size_t whylen);
bool kinfer_config_check_url(const char *value, char *why, size_t whylen);
bool kinfer_config_check_identifier(const char *value, char *why, size_t whylen);
bool kinfer_config_check_device(const char *value, char *why, size_t whylen);
bool kinfer_config_check_kv(const char *value, char *why, size_t whylen);
bool kinfer_config_check_header(const char *value, char *why, size_t whylen);

#endif
