/* codec_resolve_schema.c — an Avro schema (JSON text) parsed into a tree for
 * resolution, the encoding of field defaults, and skipping a writer value.
 * Names and namespaces follow the spec; logical types read as their
 * underlying type; recursive types are refused (no kinfer schema has one,
 * and it keeps every walk bounded). Not the resolution itself
 * (codec_resolve.c). */
#include "codec_resolve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct rs_parse {
    rs_tree *t;
    kinfer_error *err;
} rs_parse;

static const struct {
    const char *name;
    rs_type type;
    size_t min_bytes;
} rs_primitives[] = {
    {"null", RS_NULL, 0},   {"boolean", RS_BOOLEAN, 1}, {"int", RS_INT, 1},
    {"long", RS_LONG, 1},   {"float", RS_FLOAT, 4},     {"double", RS_DOUBLE, 8},
    {"bytes", RS_BYTES, 1}, {"string", RS_STRING, 1},
};

const char *rs_type_name(const rs_schema *s) {
    if (s->name)
        return s->name;
    for (size_t i = 0; i < sizeof rs_primitives / sizeof rs_primitives[0]; i++)
        if (rs_primitives[i].type == s->type)
            return rs_primitives[i].name;
    return s->type == RS_ARRAY ? "array" : s->type == RS_MAP ? "map" : "union";
}

static rs_schema *node_new(rs_parse *p, rs_type type) {
    rs_tree *t = p->t;
    rs_schema **nodes = realloc(t->nodes, (t->nnodes + 1) * sizeof *nodes);
    rs_schema *s = calloc(1, sizeof *s);
    if (nodes)
        t->nodes = nodes;
    if (!nodes || !s) {
        free(s);
        kinfer_error_set(p->err, KINFER_ERR_NOMEM, "schema: out of memory");
        return NULL;
    }
    t->nodes[t->nnodes++] = s;
    s->type = type;
    s->enum_default = -1;
    return s;
}

static char *fullname(const char *name, const char *ns) {
    size_t n = strlen(name), m = ns ? strlen(ns) : 0;
    char *full = malloc(n + m + 2);
    if (!full)
        return NULL;
    if (strchr(name, '.') || m == 0)
        memcpy(full, name, n + 1);
    else
        snprintf(full, n + m + 2, "%s.%s", ns, name);
    return full;
}

static rs_schema *lookup(const rs_tree *t, const char *full) {
    for (size_t i = 0; i < t->nnodes; i++)
        if (t->nodes[i]->name && strcmp(t->nodes[i]->name, full) == 0)
            return t->nodes[i];
    return NULL;
}

static kinfer_err parse(rs_parse *p, json_t *j, const char *ns, int depth, rs_schema **out);

/* A type named by a string: a primitive or a reference to a named type. */
static kinfer_err parse_name(rs_parse *p, const char *name, const char *ns, rs_schema **out) {
    for (size_t i = 0; i < sizeof rs_primitives / sizeof rs_primitives[0]; i++)
        if (strcmp(name, rs_primitives[i].name) == 0) {
            rs_schema *s = node_new(p, rs_primitives[i].type);
            if (!s)
                return KINFER_ERR_NOMEM;
            s->min_bytes = rs_primitives[i].min_bytes;
            s->complete = true;
            *out = s;
            return KINFER_OK;
        }
    char *full = fullname(name, ns);
    if (!full)
        return kinfer_error_set(p->err, KINFER_ERR_NOMEM, "schema: out of memory");
    rs_schema *s = lookup(p->t, full);
    if (!s)
        s = lookup(p->t, name); /* a name from the null namespace */
    if (!s || !s->complete) {
        kinfer_error_set(
            p->err, KINFER_ERR_INVALID_ARG,
            s ? "schema: recursive type '%s' is not supported" : "schema: unknown type '%s'", full);
        free(full);
        return KINFER_ERR_INVALID_ARG;
    }
    free(full);
    *out = s;
    return KINFER_OK;
}

static kinfer_err parse_record(rs_parse *p, json_t *j, rs_schema *s, int depth) {
    json_t *fields = json_object_get(j, "fields");
    if (!json_is_array(fields))
        return kinfer_error_set(p->err, KINFER_ERR_INVALID_ARG,
                                "schema: record '%s' has no fields array", s->name);
    size_t n = json_array_size(fields);
    if (n > RS_MAX_FIELDS)
        return kinfer_error_set(p->err, KINFER_ERR_UNSUPPORTED,
                                "schema: record '%s' has %zu fields, at most %d supported", s->name,
                                n, RS_MAX_FIELDS);
    s->fields = calloc(n ? n : 1, sizeof *s->fields);
    if (!s->fields)
        return kinfer_error_set(p->err, KINFER_ERR_NOMEM, "schema: out of memory");
    /* Enclosed names resolve against the record's own namespace. */
    char inner_ns[512] = "";
    const char *dot = strrchr(s->name, '.');
    if (dot && (size_t)(dot - s->name) < sizeof inner_ns)
        snprintf(inner_ns, sizeof inner_ns, "%.*s", (int)(dot - s->name), s->name);
    size_t i;
    json_t *f;
    json_array_foreach(fields, i, f) {
        const char *fname = json_string_value(json_object_get(f, "name"));
        json_t *ftype = json_object_get(f, "type");
        if (!fname || !ftype)
            return kinfer_error_set(p->err, KINFER_ERR_INVALID_ARG,
                                    "schema: record '%s' field %zu needs a name and a type",
                                    s->name, i);
        rs_field *rf = &s->fields[s->nfields++];
        if (!(rf->name = strdup(fname)))
            return kinfer_error_set(p->err, KINFER_ERR_NOMEM, "schema: out of memory");
        kinfer_err rc = parse(p, ftype, inner_ns, depth + 1, &rf->type);
        if (rc != KINFER_OK)
            return codec_error_path(p->err, rc, "field '%s.%s': ", s->name, fname);
        json_t *def = json_object_get(f, "default");
        if (def)
            rf->def = json_incref(def);
        s->min_bytes += rf->type->min_bytes;
        if (s->min_bytes > (1u << 20))
            s->min_bytes = 1u << 20;
    }
    return KINFER_OK;
}

static kinfer_err parse_enum(rs_parse *p, json_t *j, rs_schema *s) {
    json_t *syms = json_object_get(j, "symbols");
    if (!json_is_array(syms) || json_array_size(syms) == 0)
        return kinfer_error_set(p->err, KINFER_ERR_INVALID_ARG, "schema: enum '%s' has no symbols",
                                s->name);
    size_t n = json_array_size(syms);
    s->symbols = calloc(n, sizeof *s->symbols);
    if (!s->symbols)
        return kinfer_error_set(p->err, KINFER_ERR_NOMEM, "schema: out of memory");
    const char *def = json_string_value(json_object_get(j, "default"));
    size_t i;
    json_t *sym;
    json_array_foreach(syms, i, sym) {
        if (!json_is_string(sym))
            return kinfer_error_set(p->err, KINFER_ERR_INVALID_ARG,
                                    "schema: enum '%s' symbol %zu is not a string", s->name, i);
        if (!(s->symbols[s->nsymbols++] = strdup(json_string_value(sym))))
            return kinfer_error_set(p->err, KINFER_ERR_NOMEM, "schema: out of memory");
        if (def && strcmp(def, json_string_value(sym)) == 0)
            s->enum_default = (int64_t)i;
    }
    s->min_bytes = 1;
    return KINFER_OK;
}

static kinfer_err parse_named(rs_parse *p, json_t *j, rs_type type, const char *ns, int depth,
                              rs_schema **out) {
    const char *name = json_string_value(json_object_get(j, "name"));
    if (!name || !*name)
        return kinfer_error_set(p->err, KINFER_ERR_INVALID_ARG,
                                "schema: a named type without a "
                                "name");
    const char *own_ns = ns;
    if (json_is_string(json_object_get(j, "namespace")))
        own_ns = json_string_value(json_object_get(j, "namespace"));
    char *full = fullname(name, own_ns);
    if (!full)
        return kinfer_error_set(p->err, KINFER_ERR_NOMEM, "schema: out of memory");
    if (lookup(p->t, full)) {
        kinfer_error_set(p->err, KINFER_ERR_INVALID_ARG, "schema: type '%s' defined twice", full);
        free(full);
        return KINFER_ERR_INVALID_ARG;
    }
    rs_schema *s = node_new(p, type);
    if (!s) {
        free(full);
        return KINFER_ERR_NOMEM;
    }
    s->name = full;
    kinfer_err rc = KINFER_OK;
    if (type == RS_RECORD) {
        rc = parse_record(p, j, s, depth);
    } else if (type == RS_ENUM) {
        rc = parse_enum(p, j, s);
    } else {
        json_t *size = json_object_get(j, "size");
        if (!json_is_integer(size) || json_integer_value(size) < 0 ||
            json_integer_value(size) > (1 << 20))
            return kinfer_error_set(p->err, KINFER_ERR_INVALID_ARG,
                                    "schema: fixed '%s' needs a size in 0..1048576", full);
        s->size = s->min_bytes = (size_t)json_integer_value(size);
    }
    s->complete = rc == KINFER_OK;
    *out = s;
    return rc;
}

static kinfer_err parse(rs_parse *p, json_t *j, const char *ns, int depth, rs_schema **out) {
    if (depth > RS_MAX_DEPTH)
        return kinfer_error_set(p->err, KINFER_ERR_UNSUPPORTED, "schema: nested deeper than %d",
                                RS_MAX_DEPTH);
    if (json_is_string(j))
        return parse_name(p, json_string_value(j), ns, out);
    if (json_is_array(j)) {
        rs_schema *s = node_new(p, RS_UNION);
        if (!s)
            return KINFER_ERR_NOMEM;
        size_t n = json_array_size(j);
        s->branches = calloc(n ? n : 1, sizeof *s->branches);
        if (!s->branches)
            return kinfer_error_set(p->err, KINFER_ERR_NOMEM, "schema: out of memory");
        size_t i;
        json_t *b;
        json_array_foreach(j, i, b) {
            kinfer_err rc = parse(p, b, ns, depth + 1, &s->branches[s->nbranches]);
            if (rc != KINFER_OK)
                return rc;
            if (s->branches[s->nbranches]->type == RS_UNION)
                return kinfer_error_set(p->err, KINFER_ERR_INVALID_ARG,
                                        "schema: a union directly inside a union");
            s->nbranches++;
        }
        if (n == 0)
            return kinfer_error_set(p->err, KINFER_ERR_INVALID_ARG, "schema: an empty union");
        s->min_bytes = 1;
        s->complete = true;
        *out = s;
        return KINFER_OK;
    }
    if (!json_is_object(j))
        return kinfer_error_set(p->err, KINFER_ERR_INVALID_ARG,
                                "schema: a schema must be a string, array or object");
    json_t *tv = json_object_get(j, "type");
    const char *type = json_string_value(tv);
    if (!tv)
        return kinfer_error_set(p->err, KINFER_ERR_INVALID_ARG,
                                "schema: a schema object without \"type\"");
    if (!type)
        return parse(p, tv, ns, depth + 1, out);
    if (!strcmp(type, "record") || !strcmp(type, "error"))
        return parse_named(p, j, RS_RECORD, ns, depth, out);
    if (!strcmp(type, "enum"))
        return parse_named(p, j, RS_ENUM, ns, depth, out);
    if (!strcmp(type, "fixed"))
        return parse_named(p, j, RS_FIXED, ns, depth, out);
    if (!strcmp(type, "array") || !strcmp(type, "map")) {
        bool arr = type[0] == 'a';
        json_t *sub = json_object_get(j, arr ? "items" : "values");
        if (!sub)
            return kinfer_error_set(p->err, KINFER_ERR_INVALID_ARG, "schema: %s without \"%s\"",
                                    type, arr ? "items" : "values");
        rs_schema *s = node_new(p, arr ? RS_ARRAY : RS_MAP);
        if (!s)
            return KINFER_ERR_NOMEM;
        s->min_bytes = 1;
        kinfer_err rc = parse(p, sub, ns, depth + 1, &s->items);
        s->complete = rc == KINFER_OK;
        *out = s;
        return rc;
    }
    return parse_name(p, type, ns, out); /* {"type": "long", ...} or a reference */
}

kinfer_err rs_tree_parse(const char *json, rs_tree *out, kinfer_error *err) {
    memset(out, 0, sizeof *out);
    json_error_t jerr;
    json_t *root = json_loads(json, JSON_DECODE_ANY, &jerr);
    if (!root)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "schema: not JSON: line %d column %d: %s", jerr.line, jerr.column,
                                jerr.text);
    rs_parse p = {.t = out, .err = err};
    kinfer_err rc = parse(&p, root, "", 0, &out->root);
    json_decref(root);
    if (rc != KINFER_OK)
        rs_tree_free(out);
    return rc;
}

void rs_tree_free(rs_tree *t) {
    for (size_t i = 0; i < t->nnodes; i++) {
        rs_schema *s = t->nodes[i];
        for (size_t f = 0; f < s->nfields; f++) {
            free(s->fields[f].name);
            if (s->fields[f].def)
                json_decref(s->fields[f].def);
        }
        free(s->fields);
        for (size_t k = 0; k < s->nsymbols; k++)
            free(s->symbols[k]);
        free(s->symbols);
        free(s->branches);
        free(s->name);
        free(s);
    }
    free(t->nodes);
    memset(t, 0, sizeof *t);
}

/* ---- defaults ------------------------------------------------------------- */

static kinfer_err bad_default(kinfer_error *err, const rs_schema *s, const char *path) {
    return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                            "%s: default value does not fit its type %s", path, rs_type_name(s));
}

static void write_le(codec_buf *b, uint64_t v, int n) {
    uint8_t le[8];
    for (int i = 0; i < n; i++)
        le[i] = (uint8_t)(v >> (8 * i));
    codec_write_raw(b, le, (size_t)n);
}

kinfer_err rs_encode_default(const rs_schema *s, json_t *def, codec_buf *out, const char *path,
                             kinfer_error *err) {
    switch (s->type) {
    case RS_NULL:
        return json_is_null(def) ? KINFER_OK : bad_default(err, s, path);
    case RS_BOOLEAN:
        if (!json_is_boolean(def))
            return bad_default(err, s, path);
        codec_write_raw(out, json_is_true(def) ? "\1" : "\0", 1);
        return KINFER_OK;
    case RS_INT:
    case RS_LONG:
        if (!json_is_integer(def) || (s->type == RS_INT && (json_integer_value(def) < INT32_MIN ||
                                                            json_integer_value(def) > INT32_MAX)))
            return bad_default(err, s, path);
        codec_write_long(out, (int64_t)json_integer_value(def));
        return KINFER_OK;
    case RS_FLOAT:
    case RS_DOUBLE: {
        if (!json_is_number(def))
            return bad_default(err, s, path);
        double d = json_number_value(def);
        if (s->type == RS_FLOAT) {
            float f = (float)d;
            uint32_t u;
            memcpy(&u, &f, 4);
            write_le(out, u, 4);
        } else {
            uint64_t u;
            memcpy(&u, &d, 8);
            write_le(out, u, 8);
        }
        return KINFER_OK;
    }
    case RS_STRING:
        if (!json_is_string(def))
            return bad_default(err, s, path);
        codec_write_bytes(out, json_string_value(def), json_string_length(def));
        return KINFER_OK;
    case RS_BYTES:
    case RS_FIXED: {
        /* JSON bytes defaults: code points 0..255, one byte each. */
        if (!json_is_string(def))
            return bad_default(err, s, path);
        const unsigned char *u = (const unsigned char *)json_string_value(def);
        size_t n = json_string_length(def);
        codec_buf tmp = {0};
        for (size_t i = 0; i < n; i++) {
            unsigned cp = u[i];
            if (u[i] >= 0x80) {
                if ((u[i] & 0xE0) != 0xC0 || i + 1 >= n ||
                    (cp = (u[i] & 0x1Fu) << 6 | (u[i + 1] & 0x3Fu)) > 0xFF) {
                    codec_buf_free(&tmp);
                    return bad_default(err, s, path);
                }
                i++;
            }
            uint8_t byte = (uint8_t)cp;
            codec_write_raw(&tmp, &byte, 1);
        }
        if (s->type == RS_FIXED && tmp.len != s->size) {
            codec_buf_free(&tmp);
            return bad_default(err, s, path);
        }
        if (s->type == RS_BYTES)
            codec_write_long(out, (int64_t)tmp.len);
        codec_write_raw(out, tmp.data, tmp.len);
        codec_buf_free(&tmp);
        return KINFER_OK;
    }
    case RS_ENUM:
        for (size_t i = 0; json_is_string(def) && i < s->nsymbols; i++)
            if (strcmp(s->symbols[i], json_string_value(def)) == 0) {
                codec_write_long(out, (int64_t)i);
                return KINFER_OK;
            }
        return bad_default(err, s, path);
    case RS_ARRAY: {
        if (!json_is_array(def))
            return bad_default(err, s, path);
        size_t i;
        json_t *v;
        if (json_array_size(def))
            codec_write_long(out, (int64_t)json_array_size(def));
        json_array_foreach(def, i, v) {
            kinfer_err rc = rs_encode_default(s->items, v, out, path, err);
            if (rc != KINFER_OK)
                return rc;
        }
        codec_write_long(out, 0);
        return KINFER_OK;
    }
    case RS_MAP: {
        if (!json_is_object(def))
            return bad_default(err, s, path);
        const char *k;
        json_t *v;
        if (json_object_size(def))
            codec_write_long(out, (int64_t)json_object_size(def));
        json_object_foreach(def, k, v) {
            codec_write_bytes(out, k, strlen(k));
            kinfer_err rc = rs_encode_default(s->items, v, out, path, err);
            if (rc != KINFER_OK)
                return rc;
        }
        codec_write_long(out, 0);
        return KINFER_OK;
    }
    case RS_UNION:
        /* The spec: the first branch's type. Later Avro versions allow any
         * branch; take the first that fits, so both kinds of file work. */
        for (size_t b = 0; b < s->nbranches; b++) {
            size_t mark = out->len;
            codec_write_long(out, (int64_t)b);
            if (rs_encode_default(s->branches[b], def, out, path, NULL) == KINFER_OK)
                return KINFER_OK;
            out->len = mark;
        }
        return bad_default(err, s, path);
    case RS_RECORD: {
        if (!json_is_object(def))
            return bad_default(err, s, path);
        for (size_t f = 0; f < s->nfields; f++) {
            json_t *v = json_object_get(def, s->fields[f].name);
            if (!v)
                v = s->fields[f].def;
            if (!v)
                return bad_default(err, s, path);
            kinfer_err rc = rs_encode_default(s->fields[f].type, v, out, path, err);
            if (rc != KINFER_OK)
                return rc;
        }
        return KINFER_OK;
    }
    }
    return bad_default(err, s, path);
}

/* ---- skipping a writer value ---------------------------------------------- */

static kinfer_err spend(codec_reader *r, size_t *budget, size_t n) {
    if (*budget < n)
        return kinfer_error_set(r->err, KINFER_ERR_DECODE,
                                "resolution: more items than a message of this size can hold "
                                "(at byte %zu)",
                                codec_reader_offset(r));
    *budget -= n;
    return KINFER_OK;
}

static kinfer_err skip_fixed(codec_reader *r, size_t n) {
    if (codec_reader_left(r) < n)
        return kinfer_error_set(r->err, KINFER_ERR_DECODE,
                                "truncated at byte %zu: %zu bytes needed, %zu remain",
                                codec_reader_offset(r), n, codec_reader_left(r));
    r->p += n;
    return KINFER_OK;
}

kinfer_err rs_skip(const rs_schema *s, codec_reader *r, size_t *budget, int depth) {
    int64_t v;
    kinfer_str str;
    kinfer_err rc;
    if (depth > RS_MAX_DEPTH)
        return kinfer_error_set(r->err, KINFER_ERR_DECODE, "resolution: nested too deep");
    switch (s->type) {
    case RS_NULL:
        return KINFER_OK;
    case RS_BOOLEAN:
        return skip_fixed(r, 1);
    case RS_INT:
    case RS_LONG:
        return codec_read_long(r, rs_type_name(s), &v);
    case RS_FLOAT:
        return skip_fixed(r, 4);
    case RS_DOUBLE:
        return skip_fixed(r, 8);
    case RS_BYTES:
    case RS_STRING:
        return codec_read_bytes(r, rs_type_name(s), &str);
    case RS_FIXED:
        return skip_fixed(r, s->size);
    case RS_ENUM:
        return codec_read_index(r, s->name, "enum symbol", (int64_t)s->nsymbols, &v);
    case RS_UNION:
        if ((rc = codec_read_index(r, "union", "union branch", (int64_t)s->nbranches, &v)) !=
            KINFER_OK)
            return rc;
        return rs_skip(s->branches[v], r, budget, depth + 1);
    case RS_RECORD:
        if ((rc = spend(r, budget, 1)) != KINFER_OK)
            return rc;
        for (size_t f = 0; f < s->nfields; f++)
            if ((rc = rs_skip(s->fields[f].type, r, budget, depth + 1)) != KINFER_OK)
                return rc;
        return KINFER_OK;
    case RS_ARRAY:
    case RS_MAP: {
        size_t min = s->items->min_bytes + (s->type == RS_MAP);
        for (;;) {
            size_t count;
            if ((rc = codec_read_block(r, rs_type_name(s), min, &count)) != KINFER_OK)
                return rc;
            if (count == 0)
                return KINFER_OK;
            if ((rc = spend(r, budget, count)) != KINFER_OK)
                return rc;
            for (size_t i = 0; i < count; i++) {
                if (s->type == RS_MAP && (rc = codec_read_bytes(r, "map key", &str)) != KINFER_OK)
                    return rc;
                if ((rc = rs_skip(s->items, r, budget, depth + 1)) != KINFER_OK)
                    return rc;
            }
        }
    }
    }
    return KINFER_OK;
}
