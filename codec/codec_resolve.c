/* codec_resolve.c — writer -> reader schema resolution: a program built once
 * from the two parsed schemas (which writer field feeds which reader field,
 * the encoded defaults, enum maps, union branches, promotions), then run
 * over each message to rewrite its body as reader-schema binary for the
 * ordinary decoder. Every writer byte is read through codec_reader's bounds
 * checks; items visited and bytes written are capped. Not the schema
 * parsing (codec_resolve_schema.c) nor the decoder's use of it
 * (codec_decoder.c). */
#include "codec_resolve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum rs_op {
    OP_PRIM,   /* a primitive, with promotion */
    OP_RECORD, /* fields by name, defaults, skips */
    OP_ENUM,   /* symbol index map */
    OP_ARRAY,
    OP_MAP,
    OP_WUNION, /* writer union: per writer branch */
    OP_RUNION, /* reader union, writer not: a fixed reader branch */
    OP_FIXED,
    OP_FAIL, /* a writer union branch the reader cannot take */
} rs_op;

typedef struct rs_node rs_node;

typedef struct rs_rfield {
    int wfield; /* the writer field feeding it, -1 = its default */
    size_t def_off, def_len;
} rs_rfield;

struct rs_node {
    rs_op op;
    const rs_schema *w, *r;
    rs_node **wf;                    /* OP_RECORD: per writer field its node, NULL = skipped */
    rs_rfield *rf;                   /* OP_RECORD: per reader field */
    bool in_order;                   /* OP_RECORD: writer fields feed reader fields in order */
    int64_t *enum_map;               /* OP_ENUM: per writer symbol the reader index, -1 = none */
    rs_node *items;                  /* OP_ARRAY, OP_MAP */
    rs_node **wb;                    /* OP_WUNION: per writer branch */
    int64_t rbranch;                 /* OP_RUNION */
    rs_node *inner;                  /* OP_RUNION */
    char fail[KINFER_ERROR_MSG_MAX]; /* OP_FAIL */
};

struct kinfer_codec_resolution {
    rs_tree w, r;
    rs_node *root; /* NULL = identity */
    rs_node **nodes;
    size_t nnodes;
    codec_buf defaults; /* every reader default, encoded */
    uint64_t writer_fp, reader_fp;
};

typedef struct rs_build {
    kinfer_codec_resolution *res;
    kinfer_error *err;
} rs_build;

static rs_node *node_new(rs_build *b, rs_op op, const rs_schema *w, const rs_schema *r) {
    kinfer_codec_resolution *res = b->res;
    rs_node **nodes = realloc(res->nodes, (res->nnodes + 1) * sizeof *nodes);
    rs_node *n = calloc(1, sizeof *n);
    if (nodes)
        res->nodes = nodes;
    if (!nodes || !n) {
        free(n);
        kinfer_error_set(b->err, KINFER_ERR_NOMEM, "resolution: out of memory");
        return NULL;
    }
    res->nodes[res->nnodes++] = n;
    n->op = op;
    n->w = w;
    n->r = r;
    return n;
}

static const char *unqualified(const char *name) {
    const char *dot = strrchr(name, '.');
    return dot ? dot + 1 : name;
}

static bool same_name(const rs_schema *w, const rs_schema *r) {
    return strcmp(unqualified(w->name), unqualified(r->name)) == 0;
}

static bool promotes(rs_type w, rs_type r) {
    switch (w) {
    case RS_INT:
        return r == RS_LONG || r == RS_FLOAT || r == RS_DOUBLE;
    case RS_LONG:
        return r == RS_FLOAT || r == RS_DOUBLE;
    case RS_FLOAT:
        return r == RS_DOUBLE;
    case RS_STRING:
        return r == RS_BYTES;
    case RS_BYTES:
        return r == RS_STRING;
    default:
        return false;
    }
}

static bool is_primitive(rs_type t) {
    return t <= RS_STRING;
}

/* The spec's "match" for picking a reader union branch: same type (and
 * name, for named types), or a primitive promotion when exact is false. */
static bool matches(const rs_schema *w, const rs_schema *r, bool exact) {
    if (w->type == r->type)
        return !(w->type == RS_RECORD || w->type == RS_ENUM || w->type == RS_FIXED) ||
               same_name(w, r);
    return !exact && promotes(w->type, r->type);
}

static kinfer_err mismatch(rs_build *b, const rs_schema *w, const rs_schema *r, const char *path) {
    return kinfer_error_set(b->err, KINFER_ERR_UNSUPPORTED,
                            "%s: writer type %s cannot be read as %s", *path ? path : "(root)",
                            rs_type_name(w), rs_type_name(r));
}

static kinfer_err build(rs_build *b, const rs_schema *w, const rs_schema *r, const char *path,
                        int depth, rs_node **out);

static kinfer_err build_record(rs_build *b, const rs_schema *w, const rs_schema *r,
                               const char *path, int depth, rs_node *n) {
    n->wf = calloc(w->nfields ? w->nfields : 1, sizeof *n->wf);
    n->rf = calloc(r->nfields ? r->nfields : 1, sizeof *n->rf);
    if (!n->wf || !n->rf)
        return kinfer_error_set(b->err, KINFER_ERR_NOMEM, "resolution: out of memory");
    n->in_order = true;
    int last = -1;
    for (size_t i = 0; i < r->nfields; i++) {
        const rs_field *rf = &r->fields[i];
        char sub[256];
        snprintf(sub, sizeof sub, "%s%s%s", path, *path ? "." : "", rf->name);
        int found = -1;
        for (size_t j = 0; j < w->nfields && found < 0; j++)
            if (strcmp(w->fields[j].name, rf->name) == 0)
                found = (int)j;
        n->rf[i].wfield = found;
        if (found >= 0) {
            kinfer_err rc =
                build(b, w->fields[found].type, rf->type, sub, depth + 1, &n->wf[found]);
            if (rc != KINFER_OK)
                return rc;
            if (found < last)
                n->in_order = false;
            last = found;
            continue;
        }
        if (!rf->def)
            return kinfer_error_set(b->err, KINFER_ERR_UNSUPPORTED,
                                    "%s: reader field missing from the writer schema and without "
                                    "a default",
                                    sub);
        codec_buf *d = &b->res->defaults;
        n->rf[i].def_off = d->len;
        kinfer_err rc = rs_encode_default(rf->type, rf->def, d, sub, b->err);
        if (rc != KINFER_OK)
            return rc;
        if (d->oom)
            return kinfer_error_set(b->err, KINFER_ERR_NOMEM, "resolution: out of memory");
        n->rf[i].def_len = d->len - n->rf[i].def_off;
    }
    return KINFER_OK;
}

static kinfer_err build_enum(rs_build *b, const rs_schema *w, const rs_schema *r, rs_node *n) {
    n->enum_map = calloc(w->nsymbols, sizeof *n->enum_map);
    if (!n->enum_map)
        return kinfer_error_set(b->err, KINFER_ERR_NOMEM, "resolution: out of memory");
    for (size_t i = 0; i < w->nsymbols; i++) {
        n->enum_map[i] = r->enum_default;
        for (size_t k = 0; k < r->nsymbols; k++)
            if (strcmp(w->symbols[i], r->symbols[k]) == 0)
                n->enum_map[i] = (int64_t)k;
    }
    return KINFER_OK;
}

static kinfer_err build(rs_build *b, const rs_schema *w, const rs_schema *r, const char *path,
                        int depth, rs_node **out) {
    if (depth > RS_MAX_DEPTH)
        return kinfer_error_set(b->err, KINFER_ERR_UNSUPPORTED, "%s: nested deeper than %d", path,
                                RS_MAX_DEPTH);
    rs_node *n;
    if (w->type == RS_UNION) {
        /* Each writer branch on its own; one the reader cannot take fails
         * only the messages that use it, unless no branch resolves. */
        if (!(n = node_new(b, OP_WUNION, w, r)))
            return KINFER_ERR_NOMEM;
        n->wb = calloc(w->nbranches, sizeof *n->wb);
        if (!n->wb)
            return kinfer_error_set(b->err, KINFER_ERR_NOMEM, "resolution: out of memory");
        size_t ok = 0;
        kinfer_error first = {0};
        for (size_t i = 0; i < w->nbranches; i++) {
            kinfer_error e = {0};
            rs_build sub = {.res = b->res, .err = &e};
            kinfer_err rc = build(&sub, w->branches[i], r, path, depth + 1, &n->wb[i]);
            if (rc == KINFER_OK) {
                ok++;
                continue;
            }
            if (rc == KINFER_ERR_NOMEM)
                return kinfer_error_set(b->err, rc, "resolution: out of memory");
            if (!first.code)
                first = e;
            if (!(n->wb[i] = node_new(b, OP_FAIL, w->branches[i], r)))
                return KINFER_ERR_NOMEM;
            snprintf(n->wb[i]->fail, sizeof n->wb[i]->fail, "%s", e.msg);
        }
        if (ok == 0) {
            if (b->err)
                *b->err = first;
            return first.code;
        }
        *out = n;
        return KINFER_OK;
    }
    if (r->type == RS_UNION) {
        for (int pass = 0; pass < 2; pass++)
            for (size_t i = 0; i < r->nbranches; i++) {
                if (!matches(w, r->branches[i], pass == 0))
                    continue;
                if (!(n = node_new(b, OP_RUNION, w, r)))
                    return KINFER_ERR_NOMEM;
                n->rbranch = (int64_t)i;
                kinfer_err rc = build(b, w, r->branches[i], path, depth + 1, &n->inner);
                if (rc != KINFER_OK)
                    return rc;
                *out = n;
                return KINFER_OK;
            }
        return mismatch(b, w, r, path);
    }
    if (!matches(w, r, false))
        return mismatch(b, w, r, path);
    kinfer_err rc = KINFER_OK;
    if (is_primitive(w->type)) {
        n = node_new(b, OP_PRIM, w, r);
    } else if (w->type == RS_RECORD) {
        if ((n = node_new(b, OP_RECORD, w, r)))
            rc = build_record(b, w, r, path, depth, n);
    } else if (w->type == RS_ENUM) {
        if ((n = node_new(b, OP_ENUM, w, r)))
            rc = build_enum(b, w, r, n);
    } else if (w->type == RS_FIXED) {
        if (w->size != r->size)
            return kinfer_error_set(b->err, KINFER_ERR_UNSUPPORTED,
                                    "%s: fixed %s has %zu bytes in the writer, %zu in the reader",
                                    path, r->name, w->size, r->size);
        n = node_new(b, OP_FIXED, w, r);
    } else {
        char sub[256];
        snprintf(sub, sizeof sub, "%s[]", path);
        if ((n = node_new(b, w->type == RS_ARRAY ? OP_ARRAY : OP_MAP, w, r)))
            rc = build(b, w->items, r->items, sub, depth + 1, &n->items);
    }
    if (!n)
        return KINFER_ERR_NOMEM;
    *out = n;
    return rc;
}

/* ---- running it over a message -------------------------------------------- */

typedef struct rs_run {
    codec_buf *out;
    size_t max_out;
    size_t budget;
    const kinfer_codec_resolution *res;
    kinfer_error *err;
} rs_run;

static kinfer_err need(codec_reader *r, size_t n) {
    if (codec_reader_left(r) < n)
        return kinfer_error_set(r->err, KINFER_ERR_DECODE,
                                "truncated at byte %zu: %zu bytes needed, %zu remain",
                                codec_reader_offset(r), n, codec_reader_left(r));
    return KINFER_OK;
}

static void write_le(codec_buf *b, uint64_t v, int n) {
    uint8_t le[8];
    for (int i = 0; i < n; i++)
        le[i] = (uint8_t)(v >> (8 * i));
    codec_write_raw(b, le, (size_t)n);
}

static uint64_t read_le(codec_reader *r, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | r->p[i];
    r->p += n;
    return v;
}

static void write_real(codec_buf *b, rs_type t, double d) {
    if (t == RS_FLOAT) {
        float f = (float)d;
        uint32_t u;
        memcpy(&u, &f, 4);
        write_le(b, u, 4);
    } else {
        uint64_t u;
        memcpy(&u, &d, 8);
        write_le(b, u, 8);
    }
}

static kinfer_err run_prim(rs_run *x, const rs_node *n, codec_reader *r) {
    rs_type wt = n->w->type, rt = n->r->type;
    kinfer_err rc = KINFER_OK;
    switch (wt) {
    case RS_NULL:
        return KINFER_OK;
    case RS_BOOLEAN:
        if ((rc = need(r, 1)) != KINFER_OK)
            return rc;
        if (r->p[0] > 1)
            return kinfer_error_set(r->err, KINFER_ERR_DECODE, "bad boolean 0x%02X at byte %zu",
                                    r->p[0], codec_reader_offset(r));
        codec_write_raw(x->out, r->p++, 1);
        return KINFER_OK;
    case RS_INT:
    case RS_LONG: {
        int64_t v;
        int32_t v32;
        if (wt == RS_INT) {
            rc = codec_read_int(r, "int", &v32);
            v = v32;
        } else {
            rc = codec_read_long(r, "long", &v);
        }
        if (rc != KINFER_OK)
            return rc;
        if (rt == RS_INT || rt == RS_LONG)
            codec_write_long(x->out, v);
        else
            write_real(x->out, rt, (double)v);
        return KINFER_OK;
    }
    case RS_FLOAT: {
        if ((rc = need(r, 4)) != KINFER_OK)
            return rc;
        uint32_t u = (uint32_t)read_le(r, 4);
        float f;
        memcpy(&f, &u, 4);
        write_real(x->out, rt, f);
        return KINFER_OK;
    }
    case RS_DOUBLE:
        if ((rc = need(r, 8)) != KINFER_OK)
            return rc;
        write_le(x->out, read_le(r, 8), 8);
        return KINFER_OK;
    case RS_BYTES:
    case RS_STRING: {
        kinfer_str s;
        if ((rc = codec_read_bytes(r, rs_type_name(n->w), &s)) != KINFER_OK)
            return rc;
        codec_write_str(x->out, s); /* the decoder checks UTF-8 of what it reads as string */
        return KINFER_OK;
    }
    default:
        return KINFER_OK;
    }
}

static kinfer_err spend(rs_run *x, codec_reader *r, size_t n) {
    if (x->budget < n)
        return kinfer_error_set(r->err, KINFER_ERR_DECODE,
                                "more items than a message of this size can hold (at byte %zu)",
                                codec_reader_offset(r));
    x->budget -= n;
    if (x->out->len > x->max_out)
        return kinfer_error_set(r->err, KINFER_ERR_TOO_LARGE,
                                "the message rewritten for the reader schema exceeds %zu bytes",
                                x->max_out);
    return KINFER_OK;
}

static kinfer_err run(rs_run *x, const rs_node *n, codec_reader *r, int depth);

static kinfer_err run_field(rs_run *x, const rs_node *n, int j, codec_reader *r, int depth) {
    kinfer_err rc = run(x, n->wf[j], r, depth + 1);
    if (rc != KINFER_OK)
        codec_error_path(r->err, rc, "%s.", n->w->fields[j].name);
    return rc;
}

static kinfer_err skip_field(rs_run *x, const rs_node *n, int j, codec_reader *r, int depth) {
    kinfer_err rc = rs_skip(n->w->fields[j].type, r, &x->budget, depth + 1);
    if (rc != KINFER_OK)
        codec_error_path(r->err, rc, "%s (skipped).", n->w->fields[j].name);
    return rc;
}

static kinfer_err run_record(rs_run *x, const rs_node *n, codec_reader *r, int depth) {
    const rs_schema *w = n->w, *rd = n->r;
    kinfer_err rc = spend(x, r, 1);
    if (rc != KINFER_OK)
        return rc;
    const uint8_t *defs = x->res->defaults.data;
    if (n->in_order) {
        /* One pass: skip the removed writer fields between the ones used. */
        int cur = 0;
        for (size_t i = 0; i < rd->nfields; i++) {
            int j = n->rf[i].wfield;
            if (j < 0) {
                codec_write_raw(x->out, defs + n->rf[i].def_off, n->rf[i].def_len);
                continue;
            }
            for (; cur < j; cur++)
                if ((rc = skip_field(x, n, cur, r, depth)) != KINFER_OK)
                    return rc;
            if ((rc = run_field(x, n, j, r, depth)) != KINFER_OK)
                return rc;
            cur = j + 1;
        }
        for (; cur < (int)w->nfields; cur++)
            if ((rc = skip_field(x, n, cur, r, depth)) != KINFER_OK)
                return rc;
        return KINFER_OK;
    }
    /* Reordered: find each writer field's bytes first, then take them in
     * the reader's order. */
    const uint8_t *start[RS_MAX_FIELDS], *end[RS_MAX_FIELDS];
    for (size_t j = 0; j < w->nfields; j++) {
        start[j] = r->p;
        if ((rc = skip_field(x, n, (int)j, r, depth)) != KINFER_OK)
            return rc;
        end[j] = r->p;
    }
    for (size_t i = 0; i < rd->nfields; i++) {
        int j = n->rf[i].wfield;
        if (j < 0) {
            codec_write_raw(x->out, defs + n->rf[i].def_off, n->rf[i].def_len);
            continue;
        }
        codec_reader sub = {.base = r->base, .p = start[j], .end = end[j], .err = r->err};
        if ((rc = run_field(x, n, j, &sub, depth)) != KINFER_OK)
            return rc;
    }
    return KINFER_OK;
}

static kinfer_err run_list(rs_run *x, const rs_node *n, codec_reader *r, int depth) {
    bool map = n->op == OP_MAP;
    size_t min = n->w->items->min_bytes + map;
    kinfer_err rc;
    for (;;) {
        size_t count;
        if ((rc = codec_read_block(r, map ? "map" : "array", min, &count)) != KINFER_OK)
            return rc;
        if ((rc = spend(x, r, count)) != KINFER_OK)
            return rc;
        codec_write_long(x->out, (int64_t)count);
        if (count == 0)
            return KINFER_OK;
        for (size_t i = 0; i < count; i++) {
            kinfer_str key;
            if (map) {
                if ((rc = codec_read_bytes(r, "map key", &key)) != KINFER_OK)
                    return rc;
                codec_write_str(x->out, key);
            }
            if ((rc = run(x, n->items, r, depth + 1)) != KINFER_OK)
                return codec_error_path(r->err, rc, "[%zu]", i);
            if ((rc = spend(x, r, 0)) != KINFER_OK)
                return rc;
        }
    }
}

static kinfer_err run(rs_run *x, const rs_node *n, codec_reader *r, int depth) {
    kinfer_err rc;
    int64_t v;
    switch (n->op) {
    case OP_PRIM:
        return run_prim(x, n, r);
    case OP_RECORD:
        return run_record(x, n, r, depth);
    case OP_ENUM:
        if ((rc = codec_read_index(r, n->w->name, "enum symbol", (int64_t)n->w->nsymbols, &v)) !=
            KINFER_OK)
            return rc;
        if (n->enum_map[v] < 0)
            return kinfer_error_set(r->err, KINFER_ERR_DECODE,
                                    "writer symbol '%s' is not in the reader's enum %s (which "
                                    "has no default)",
                                    n->w->symbols[v], n->r->name);
        codec_write_long(x->out, n->enum_map[v]);
        return KINFER_OK;
    case OP_ARRAY:
    case OP_MAP:
        return run_list(x, n, r, depth);
    case OP_WUNION:
        if ((rc = codec_read_index(r, "union", "union branch", (int64_t)n->w->nbranches, &v)) !=
            KINFER_OK)
            return rc;
        return run(x, n->wb[v], r, depth + 1);
    case OP_RUNION:
        codec_write_long(x->out, n->rbranch);
        return run(x, n->inner, r, depth + 1);
    case OP_FIXED:
        if ((rc = need(r, n->w->size)) != KINFER_OK)
            return rc;
        codec_write_raw(x->out, r->p, n->w->size);
        r->p += n->w->size;
        return KINFER_OK;
    case OP_FAIL:
        return kinfer_error_set(r->err, KINFER_ERR_DECODE, "%s", n->fail);
    }
    return KINFER_OK;
}

kinfer_err codec_resolve_into(const kinfer_codec_resolution *res, const uint8_t *body, size_t len,
                              size_t max_out, codec_buf *out, kinfer_error *err) {
    codec_reader r = {.base = body, .p = body, .end = body + len, .err = err};
    if (!res->root) {
        if (len > max_out)
            return kinfer_error_set(err, KINFER_ERR_TOO_LARGE,
                                    "message: %zu bytes, at most %zu allowed", len, max_out);
        codec_write_raw(out, body, len);
        return out->oom ? kinfer_error_set(err, KINFER_ERR_NOMEM, "resolution: out of memory")
                        : KINFER_OK;
    }
    /* Each item visited takes a wire byte except zero-size ones (null,
     * empty records): 8 per byte is far above any real message. */
    rs_run x = {.out = out, .max_out = max_out, .budget = 8 * len + 64, .res = res, .err = err};
    kinfer_err rc = run(&x, res->root, &r, 0);
    if (rc == KINFER_OK && r.p != r.end)
        rc = kinfer_error_set(err, KINFER_ERR_DECODE,
                              "trailing bytes: %zu after the writer's record ends at byte %zu",
                              codec_reader_left(&r), codec_reader_offset(&r));
    if (rc == KINFER_OK && out->len > max_out)
        rc = kinfer_error_set(err, KINFER_ERR_TOO_LARGE,
                              "the message rewritten for the reader schema exceeds %zu bytes",
                              max_out);
    if (rc == KINFER_OK && out->oom)
        rc = kinfer_error_set(err, KINFER_ERR_NOMEM, "resolution: out of memory");
    if (rc != KINFER_OK && rc != KINFER_ERR_NOMEM)
        codec_error_path(err, rc, "%s", "writer schema resolution: ");
    return rc;
}

/* ---- public face ---------------------------------------------------------- */

static kinfer_err fingerprint(const char *json, uint64_t *fp, kinfer_error *err) {
    char *canon = NULL;
    kinfer_err rc = kinfer_codec_canonical_form(json, &canon, err);
    if (rc == KINFER_OK)
        *fp = kinfer_codec_crc64_avro(canon, strlen(canon));
    free(canon);
    return rc;
}

kinfer_err kinfer_codec_resolution_new(const char *writer_json, const char *reader_json,
                                       kinfer_codec_resolution **out, kinfer_error *err) {
    *out = NULL;
    kinfer_codec_resolution *res = calloc(1, sizeof *res);
    if (!res)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "resolution: out of memory");
    kinfer_err rc = rs_tree_parse(writer_json, &res->w, err);
    if (rc != KINFER_OK)
        codec_error_path(err, rc, "%s", "writer ");
    if (rc == KINFER_OK && (rc = rs_tree_parse(reader_json, &res->r, err)) != KINFER_OK)
        codec_error_path(err, rc, "%s", "reader ");
    if (rc == KINFER_OK && (rc = fingerprint(writer_json, &res->writer_fp, err)) == KINFER_OK)
        rc = fingerprint(reader_json, &res->reader_fp, err);
    if (rc == KINFER_OK && res->writer_fp != res->reader_fp) {
        rs_build b = {.res = res, .err = err};
        rc = build(&b, res->w.root, res->r.root, "", 0, &res->root);
        if (rc != KINFER_OK && rc != KINFER_ERR_NOMEM)
            codec_error_path(err, rc,
                             "writer schema does not resolve to %s: ", rs_type_name(res->r.root));
    }
    if (rc != KINFER_OK) {
        kinfer_codec_resolution_destroy(res);
        return rc;
    }
    *out = res;
    return KINFER_OK;
}

void kinfer_codec_resolution_destroy(kinfer_codec_resolution *res) {
    if (!res)
        return;
    for (size_t i = 0; i < res->nnodes; i++) {
        rs_node *n = res->nodes[i];
        free(n->wf);
        free(n->rf);
        free(n->enum_map);
        free(n->wb);
        free(n);
    }
    free(res->nodes);
    codec_buf_free(&res->defaults);
    rs_tree_free(&res->w);
    rs_tree_free(&res->r);
    free(res);
}

bool kinfer_codec_resolution_identity(const kinfer_codec_resolution *res) {
    return res->root == NULL;
}

uint64_t kinfer_codec_resolution_writer_fingerprint(const kinfer_codec_resolution *res) {
    return res->writer_fp;
}

uint64_t codec_resolution_reader_fingerprint(const kinfer_codec_resolution *res) {
    return res->reader_fp;
}

kinfer_err kinfer_codec_resolve(const kinfer_codec_resolution *res, const uint8_t *body, size_t len,
                                size_t max_out, uint8_t **out, size_t *out_len, kinfer_error *err) {
    *out = NULL;
    *out_len = 0;
    codec_buf b = {0};
    kinfer_err rc = codec_resolve_into(res, body, len, max_out, &b, err);
    if (rc != KINFER_OK) {
        codec_buf_free(&b);
        return rc;
    }
    *out = b.data ? b.data : malloc(1);
    *out_len = b.len;
    return *out ? KINFER_OK : kinfer_error_set(err, KINFER_ERR_NOMEM, "resolution: out of memory");
}
