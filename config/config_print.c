/* config_print.c — writes a loaded configuration back as libconfig text
 * (every key, defaults marked), and the markdown reference of the property
 * table that is docs/CONFIGURATION.md. Both walk the same table as the
 * loader; nothing here validates. */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "config_table.h"
#include "kinfer/kinfer_model.h"

/* --- effective configuration ------------------------------------------------ */

static void put_escaped(FILE *out, const char *s) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"':
            fputs("\\\"", out);
            break;
        case '\\':
            fputs("\\\\", out);
            break;
        case '\n':
            fputs("\\n", out);
            break;
        case '\r':
            fputs("\\r", out);
            break;
        case '\t':
            fputs("\\t", out);
            break;
        case '\f':
            fputs("\\f", out);
            break;
        default:
            if (*p < 0x20 || *p == 0x7f)
                fprintf(out, "\\x%02x", *p);
            else
                fputc(*p, out);
        }
    }
}

static void put_string(FILE *out, const char *s) {
    fputc('"', out);
    put_escaped(out, s);
    fputc('"', out);
}

static const char *src_note(int src) {
    switch (src) {
    case KINFER_CONFIG_SRC_DEFAULT:
        return "  # default";
    case KINFER_CONFIG_SRC_COMPUTED:
        return "  # computed";
    case KINFER_CONFIG_SRC_INHERIT:
        return "  # from scheduler";
    case KINFER_CONFIG_SRC_INHERIT_DEFAULT:
        return "  # default (scheduler)";
    default:
        return "";
    }
}

static bool in_list(const char *const *list, const char *s) {
    for (size_t i = 0; list && list[i]; i++)
        if (!strcmp(list[i], s))
            return true;
    return false;
}

/* A kind-specific key (some kind's `options`) that m's kind does not read. */
static bool not_read_by_kind(const kinfer_model_config *m, const char *key) {
    const kinfer_model_kind_info *k = m->load.kind ? kinfer_model_kind_lookup(m->load.kind) : NULL;
    if (!k || in_list(k->options, key))
        return false;
    for (size_t i = 0; i < kinfer_model_kind_count(); i++)
        if (in_list(kinfer_model_kind_at(i)->options, key))
            return true;
    return false;
}

/* One `name = value;` line. base is a kinfer_config or kinfer_model_config. */
static void print_value(FILE *out, const kinfer_config_prop *p, const char *base, const char *name,
                        int src, const char *indent) {
    const char *at = base + p->offset;
    const char *str = NULL;
    switch (p->type) {
    case KINFER_CONFIG_TYPE_STRING:
    case KINFER_CONFIG_TYPE_PATH:
    case KINFER_CONFIG_TYPE_CHOICE:
        memcpy(&str, at, sizeof(str));
        if (!str) {
            fprintf(out, "%s# %s: %s\n", indent, name, p->def_doc ? p->def_doc : "unset");
            return;
        }
        fprintf(out, "%s%s = ", indent, name);
        put_string(out, kinfer_config_secret_key(p->name) ? "[redacted]" : str);
        break;
    case KINFER_CONFIG_TYPE_INT: {
        int64_t v = kinfer_config_get_int(at, p->size);
        /* Beyond 32 bits libconfig needs the L suffix to read it back. */
        bool wide = v > INT32_MAX || v < INT32_MIN;
        fprintf(out, "%s%s = %" PRId64 "%s", indent, name, v, wide ? "L" : "");
        break;
    }
    case KINFER_CONFIG_TYPE_ENUM: {
        int idx;
        memcpy(&idx, at, sizeof(idx));
        fprintf(out, "%s%s = ", indent, name);
        put_string(out, kinfer_config_choices(p)[idx]);
        break;
    }
    case KINFER_CONFIG_TYPE_STRLIST: {
        kinfer_config_strlist list;
        memcpy(&list, at, sizeof(list));
        fprintf(out, "%s%s = [", indent, name);
        for (size_t i = 0; i < list.n; i++) {
            fputs(i ? ", " : "", out);
            put_string(out, list.items[i]);
        }
        fputc(']', out);
        break;
    }
    case KINFER_CONFIG_TYPE_KVLIST: {
        kinfer_config_kvlist list;
        memcpy(&list, at, sizeof(list));
        fprintf(out, "%s%s = [", indent, name);
        for (size_t i = 0; i < list.n; i++) {
            fprintf(out, "%s\"", i ? ", " : "");
            put_escaped(out, list.items[i].key);
            fputc('=', out);
            /* Never a secret: its reference as written, or [redacted]. */
            put_escaped(out, kinfer_config_kv_shown(&list.items[i]));
            fputc('"', out);
        }
        fputc(']', out);
        break;
    }
    case KINFER_CONFIG_TYPE_DEVICES: {
        const kinfer_model_config *m = (const kinfer_model_config *)base;
        fprintf(out, "%s%s = [", indent, name);
        for (int i = 0; i < m->ndevices; i++) {
            fputs(i ? ", " : "", out);
            put_string(out, m->devices[i]);
        }
        fputc(']', out);
        break;
    }
    }
    fprintf(out, ";%s\n", src_note(src));
}

/* A model value inherited from a scheduler default is a default too. */
static int model_src(const struct kinfer_config_state *st, size_t m, size_t i) {
    int src = st->model_src[m * kinfer_config_nprops + i];
    if (src == KINFER_CONFIG_SRC_INHERIT && st->sched_src[i] <= 0)
        return KINFER_CONFIG_SRC_INHERIT_DEFAULT;
    return src;
}

static bool in_section(const kinfer_config_prop *p, const char *section) {
    if (p->scope != KINFER_CONFIG_SCOPE_ROOT)
        return false;
    if (!section[0])
        return !strchr(p->name, '.');
    size_t n = strlen(section);
    return !strncmp(p->name, section, n) && p->name[n] == '.';
}

kinfer_err kinfer_config_print(const kinfer_config *cfg, FILE *out, kinfer_error *err) {
    if (!cfg || !cfg->state || !out)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "config print: not a loaded config");
    const struct kinfer_config_state *st = cfg->state;
    fprintf(out, "# Effective configuration of %s (kinfer check-config).\n", cfg->path);
    fprintf(out, "# \"# default\" marks values the file does not set; model paths are resolved\n"
                 "# against the current directory. Secrets are never shown: ${env:...} and\n"
                 "# ${file:...} references as written, other secret values as [redacted].\n");
    for (size_t s = 0; s < kinfer_config_nsections; s++) {
        const char *section = kinfer_config_sections[s].name;
        if (!strcmp(section, "models") || !strcmp(section, "scheduler"))
            continue;
        const char *indent = section[0] ? "    " : "";
        if (section[0])
            fprintf(out, "%s = {\n", section);
        for (size_t i = 0; i < kinfer_config_nprops; i++) {
            const kinfer_config_prop *p = &kinfer_config_props[i];
            if (!in_section(p, section))
                continue;
            const char *name = section[0] ? p->name + strlen(section) + 1 : p->name;
            print_value(out, p, (const char *)cfg, name, st->root_src[i], indent);
        }
        if (section[0])
            fputs("};\n", out);
    }
    fputs("scheduler = {\n", out);
    for (size_t i = 0; i < kinfer_config_nprops; i++)
        if (kinfer_config_props[i].flags & KINFER_CONFIG_F_SCHED)
            print_value(out, &kinfer_config_props[i], (const char *)&cfg->scheduler,
                        kinfer_config_props[i].name, st->sched_src[i], "    ");
    fputs("};\nmodels = (\n", out);
    for (size_t m = 0; m < cfg->nmodels; m++) {
        fputs("    {\n", out);
        for (size_t i = 0; i < kinfer_config_nprops; i++) {
            const kinfer_config_prop *p = &kinfer_config_props[i];
            if (p->scope != KINFER_CONFIG_SCOPE_MODEL)
                continue;
            if (not_read_by_kind(&cfg->models[m], p->name))
                /* Setting it would be an error (config_kinds.c): the text
                 * must load back. */
                fprintf(out, "        # %s: not read by kind %s\n", p->name,
                        cfg->models[m].load.kind);
            else
                print_value(out, p, (const char *)&cfg->models[m], p->name, model_src(st, m, i),
                            "        ");
        }
        fprintf(out, "    }%s\n", m + 1 < cfg->nmodels ? "," : "");
    }
    fputs(");\n", out);
    if (fflush(out) != 0 || ferror(out))
        return kinfer_error_set(err, KINFER_ERR_IO, "config print: write failed: %s",
                                strerror(errno));
    return KINFER_OK;
}

/* --- markdown reference ------------------------------------------------------ */

static const char *type_doc(const kinfer_config_prop *p) {
    switch (p->type) {
    case KINFER_CONFIG_TYPE_STRING:
        return "string";
    case KINFER_CONFIG_TYPE_PATH:
        return "string (path)";
    case KINFER_CONFIG_TYPE_INT:
        return "integer";
    case KINFER_CONFIG_TYPE_ENUM:
    case KINFER_CONFIG_TYPE_CHOICE:
        return "string (choice)";
    case KINFER_CONFIG_TYPE_STRLIST:
    case KINFER_CONFIG_TYPE_DEVICES:
        return "array of strings";
    case KINFER_CONFIG_TYPE_KVLIST:
        return "array of `\"key=value\"`";
    }
    return "?";
}

static void allowed_doc(FILE *out, const kinfer_config_prop *p) {
    switch (p->type) {
    case KINFER_CONFIG_TYPE_INT:
        fprintf(out, "%" PRId64 " to %" PRId64, p->min, p->max);
        break;
    case KINFER_CONFIG_TYPE_ENUM:
    case KINFER_CONFIG_TYPE_CHOICE:
        for (int i = 0; kinfer_config_choices(p)[i]; i++)
            fprintf(out, "%s`%s`", i ? ", " : "", kinfer_config_choices(p)[i]);
        break;
    case KINFER_CONFIG_TYPE_STRLIST:
    case KINFER_CONFIG_TYPE_KVLIST:
    case KINFER_CONFIG_TYPE_DEVICES:
        fprintf(out, "%" PRId64 " to %" PRId64 " entries", p->min, p->max);
        break;
    default:
        break;
    }
    /* What the extra check of a string accepts, in words. */
    static const struct {
        kinfer_config_check_fn check;
        const char *doc;
    } checks[] = {
        {kinfer_config_check_nonempty, "not empty"},
        {kinfer_config_check_printable, "printable ASCII"},
        {kinfer_config_check_group, "not empty, printable ASCII"},
        {kinfer_config_check_topic, "topic names"},
        {kinfer_config_check_topic_pattern, "regex starting with `^`"},
        {kinfer_config_check_topic_template, "topic name; `{topic}` allowed"},
        {kinfer_config_check_listen, "`host:port` or `\"\"`"},
        {kinfer_config_check_identifier, "letters, digits, `.` `_` `-`"},
        {kinfer_config_check_device, "`cpu`, `cuda:N`"},
        {kinfer_config_check_kv, "librdkafka properties"},
        {kinfer_config_check_header, "header names"},
    };
    for (size_t i = 0; p->check && i < sizeof(checks) / sizeof(checks[0]); i++)
        if (checks[i].check == p->check)
            fprintf(out, "%s%s",
                    p->type == KINFER_CONFIG_TYPE_STRING || p->type == KINFER_CONFIG_TYPE_PATH
                        ? ""
                        : "; ",
                    checks[i].doc);
}

static void default_doc(FILE *out, const kinfer_config_prop *p, bool in_models) {
    if (p->flags & KINFER_CONFIG_F_REQUIRED)
        fputs("**required**", out);
    else if (in_models && (p->flags & KINFER_CONFIG_F_SCHED) &&
             (p->flags & KINFER_CONFIG_F_COMPUTED))
        fprintf(out, "`scheduler.%s` if set there, else %s", p->name, p->def_doc);
    else if (in_models && (p->flags & KINFER_CONFIG_F_SCHED))
        fprintf(out, "`scheduler.%s`", p->name);
    else if (p->def)
        fprintf(out, "`%s`", p->def);
    else if (p->def_doc)
        fputs(p->def_doc, out);
}

static void row(FILE *out, const kinfer_config_prop *p, const char *key, bool in_models) {
    fprintf(out, "| `%s` | %s | ", key, type_doc(p));
    default_doc(out, p, in_models);
    fputs(" | ", out);
    allowed_doc(out, p);
    fputs(" | ", out);
    /* Descriptions never contain '|'; a table-breaking one would show in review. */
    fputs(p->description, out);
    fputs(" |\n", out);
}

static const char reference_intro[] =
    "# kinfer configuration reference\n"
    "\n"
    "<!-- Generated by `kinfer check-config --reference` from the property table in\n"
    "     config/config_table.c. Do not edit by hand: change the table, then run\n"
    "     build/kinfer check-config --reference > docs/CONFIGURATION.md\n"
    "     (the unit test test_config_docs fails while this file is stale). -->\n"
    "\n"
    "kinfer reads one [libconfig](https://hyperrealm.github.io/libconfig/) file:\n"
    "`kinfer worker -c FILE`. `kinfer check-config FILE` validates it without loading\n"
    "any model or connecting to Kafka, and prints the effective configuration with every\n"
    "default filled in. Copy `examples/kinfer.conf` (embedded Kafka) or\n"
    "`examples/kinfer-kafka.conf` (a real broker) to start.\n"
    "\n"
    "Rules:\n"
    "\n"
    "- Unknown keys are errors, with a \"did you mean\" suggestion: a misspelt key that\n"
    "  was silently ignored would leave a default in force in production.\n"
    "- Every error names the file, the line and the key, e.g.\n"
    "  `kinfer.conf:12: models.[0].max_batch_size: must be between 1 and 65536 (got 0)`.\n"
    "- Integers beyond 32 bits need libconfig's `L` suffix (`4294967296L`); without it\n"
    "  libconfig would wrap the value, so kinfer refuses it.\n"
    "- librdkafka properties are `\"key=value\"` strings (libconfig setting names cannot\n"
    "  contain dots) and are checked by librdkafka at load.\n"
    "- `@include` is refused: the whole configuration is one file.\n"
    "- A model's `path` must exist when the file is loaded; the model itself is loaded\n"
    "  by the worker.\n"
    "\n"
    "Smallest useful file:\n"
    "\n"
    "```\n"
    "models = ( { name = \"example-mlp\"; kind = \"mlp\"; path = \"model.safetensors\"; } );\n"
    "```\n";

static void list_doc(FILE *out, const char *const *list, const char *none) {
    if (!list || !list[0]) {
        fputs(none, out);
        return;
    }
    for (size_t i = 0; list[i]; i++)
        fprintf(out, "%s`%s`", i ? ", " : "", list[i]);
}

/* What each kind takes, from the engine's kind table: the per-kind rules
 * that config_kinds.c applies to a model entry. */
static void kinds_doc(FILE *out) {
    fputs("\n## Model kinds\n\n"
          "What each kind takes, from the engine's kind table (kernels/model_registry.c; "
          "each kind's entry lives in its own folder). A model's `precision`, `activation` "
          "and `output_activation` must be among its kind's; a kind-specific key set on a "
          "kind that does not read it is an error.\n\n"
          "| Kind | `path` | `precision` | `activation` | `output_activation` | Kind-specific "
          "keys | What it is |\n|---|---|---|---|---|---|---|\n",
          out);
    static const char *const fp32_only[] = {"fp32", NULL};
    for (size_t i = 0; i < kinfer_model_kind_count(); i++) {
        const kinfer_model_kind_info *k = kinfer_model_kind_at(i);
        fprintf(out, "| `%s` | %s | ", k->name,
                k->path == KINFER_MODEL_PATH_FILE  ? "a file"
                : k->path == KINFER_MODEL_PATH_DIR ? "a directory"
                                                   : "a file or a directory");
        list_doc(out, k->precisions ? k->precisions : fp32_only, "");
        fputs(" | ", out);
        list_doc(out, k->activations, "none");
        fputs(" | ", out);
        list_doc(out, k->output_activations, "none");
        fputs(" | ", out);
        list_doc(out, k->options, "none");
        fprintf(out, " | %s |\n", k->summary ? k->summary : "");
    }
}

kinfer_err kinfer_config_print_reference(FILE *out, kinfer_error *err) {
    if (!out)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "config reference: no output");
    fputs(reference_intro, out);
    for (size_t s = 0; s < kinfer_config_nsections; s++) {
        const kinfer_config_section *sec = &kinfer_config_sections[s];
        bool models = !strcmp(sec->name, "models"), sched = !strcmp(sec->name, "scheduler");
        fprintf(out, "\n## %s\n\n%s\n\n", sec->name[0] ? sec->name : "Top level", sec->description);
        fputs("| Key | Type | Default | Allowed | Description |\n", out);
        fputs("|---|---|---|---|---|\n", out);
        for (size_t i = 0; i < kinfer_config_nprops; i++) {
            const kinfer_config_prop *p = &kinfer_config_props[i];
            char key[128];
            if (models && p->scope == KINFER_CONFIG_SCOPE_MODEL) {
                snprintf(key, sizeof(key), "models.[i].%s", p->name);
                row(out, p, key, true);
            } else if (sched && (p->flags & KINFER_CONFIG_F_SCHED)) {
                snprintf(key, sizeof(key), "scheduler.%s", p->name);
                row(out, p, key, false);
            } else if (!models && !sched && in_section(p, sec->name)) {
                row(out, p, p->name, false);
            }
        }
    }
    kinds_doc(out);
    if (fflush(out) != 0 || ferror(out))
        return kinfer_error_set(err, KINFER_ERR_IO, "config reference: write failed: %s",
                                strerror(errno));
    return KINFER_OK;
}
