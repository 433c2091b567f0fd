/* codec_schema.c — the embedded kinfer schemas, Avro Parsing Canonical Form
 * and the CRC-64-AVRO (Rabin) fingerprint, implemented from the Avro spec
 * because avro-c 1.11 has neither. The fingerprint is what single-object
 * framing carries. Not a schema validator: it canonicalises what it is given. */
#include "kinfer/kinfer_codec.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec_avro.h"

/* Generated at configure time from the schemas/ .avsc files (codec/CMakeLists.txt). */
extern const char codec_embedded_request_avsc[];
extern const char codec_embedded_response_avsc[];
extern const char codec_embedded_request_v1_avsc[];
extern const char codec_embedded_response_v1_avsc[];

/* ---- CRC-64-AVRO ---------------------------------------------------------- */

#define CRC64_AVRO_EMPTY 0xc15d213aa4d7a795ull

uint64_t kinfer_codec_crc64_avro(const void *data, size_t len) {
    uint64_t table[256];
    for (int i = 0; i < 256; i++) {
        uint64_t fp = (uint64_t)i;
        for (int j = 0; j < 8; j++)
            fp = (fp >> 1) ^ (CRC64_AVRO_EMPTY & (0 - (fp & 1)));
        table[i] = fp;
    }
    const uint8_t *p = data;
    uint64_t fp = CRC64_AVRO_EMPTY;
    for (size_t i = 0; i < len; i++)
        fp = (fp >> 8) ^ table[(fp ^ p[i]) & 0xff];
    return fp;
}

/* ---- Parsing Canonical Form ----------------------------------------------- */

typedef struct pcf_ctx {
    codec_buf out;
    char **names; /* full names defined so far: a second use is a reference */
    size_t nnames;
    kinfer_error *err;
    int depth;
} pcf_ctx;

static const char *const pcf_primitives[] = {"null",  "boolean", "int",   "long",
                                             "float", "double",  "bytes", "string"};

static bool pcf_is_primitive(const char *s) {
    for (size_t i = 0; i < sizeof(pcf_primitives) / sizeof(pcf_primitives[0]); i++)
        if (strcmp(s, pcf_primitives[i]) == 0)
            return true;
    return false;
}

static void pcf_lit(pcf_ctx *c, const char *s) {
    codec_write_raw(&c->out, s, strlen(s));
}

/* STRINGS: a JSON string with UTF-8 kept as is; only what JSON requires is
 * escaped (Avro names cannot contain any of it anyway). */
static void pcf_str(pcf_ctx *c, const char *s) {
    pcf_lit(c, "\"");
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        char esc[8];
        if (ch == '"' || ch == '\\') {
            snprintf(esc, sizeof(esc), "\\%c", ch);
            pcf_lit(c, esc);
        } else if (ch < 0x20) {
            snprintf(esc, sizeof(esc), "\\u%04x", ch);
            pcf_lit(c, esc);
        } else {
            codec_write_raw(&c->out, s, 1);
        }
    }
    pcf_lit(c, "\"");
}

static bool pcf_known(const pcf_ctx *c, const char *full) {
    for (size_t i = 0; i < c->nnames; i++)
        if (strcmp(c->names[i], full) == 0)
            return true;
    return false;
}

/* FULLNAMES: a dotted name is already full; otherwise it takes the namespace. */
static char *pcf_fullname(const char *name, const char *ns) {
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

static kinfer_err pcf_emit(pcf_ctx *c, json_t *s, const char *ns);

static kinfer_err pcf_reference(pcf_ctx *c, const char *name, const char *ns) {
    char *full = pcf_fullname(name, ns);
    if (!full)
        return kinfer_error_set(c->err, KINFER_ERR_NOMEM, "canonical form: out of memory");
    if (!pcf_known(c, full)) {
        kinfer_error_set(c->err, KINFER_ERR_INVALID_ARG, "canonical form: unknown type '%s'", full);
        free(full);
        return KINFER_ERR_INVALID_ARG;
    }
    pcf_str(c, full);
    free(full);
    return KINFER_OK;
}

static kinfer_err pcf_named(pcf_ctx *c, json_t *s, const char *type, const char *ns) {
    const char *name = json_string_value(json_object_get(s, "name"));
    if (!name || !*name)
        return kinfer_error_set(c->err, KINFER_ERR_INVALID_ARG, "canonical form: %s without a name",
                                type);
    json_t *nsv = json_object_get(s, "namespace");
    const char *own_ns = ns;
    if (json_is_string(nsv))
        own_ns = json_string_value(nsv);
    char *full = pcf_fullname(name, own_ns);
    if (!full)
        return kinfer_error_set(c->err, KINFER_ERR_NOMEM, "canonical form: out of memory");
    if (pcf_known(c, full)) {
        /* A named type is written out once; later uses are references. */
        pcf_str(c, full);
        free(full);
        return KINFER_OK;
    }
    char **names = realloc(c->names, (c->nnames + 1) * sizeof(*names));
    if (!names) {
        free(full);
        return kinfer_error_set(c->err, KINFER_ERR_NOMEM, "canonical form: out of memory");
    }
    c->names = names;
    c->names[c->nnames++] = full;
    /* Enclosed names resolve against the namespace of this full name. */
    char inner_ns[512] = "";
    const char *dot = strrchr(full, '.');
    if (dot && (size_t)(dot - full) < sizeof(inner_ns))
        snprintf(inner_ns, sizeof(inner_ns), "%.*s", (int)(dot - full), full);

    /* STRIP + ORDER: name, type, fields, symbols, items, values, size. */
    pcf_lit(c, "{\"name\":");
    pcf_str(c, full);
    pcf_lit(c, ",\"type\":");
    pcf_str(c, type);
    if (strcmp(type, "record") == 0 || strcmp(type, "error") == 0) {
        json_t *fields = json_object_get(s, "fields");
        if (!json_is_array(fields))
            return kinfer_error_set(c->err, KINFER_ERR_INVALID_ARG,
                                    "canonical form: record '%s' has no fields array", full);
        pcf_lit(c, ",\"fields\":[");
        size_t i;
        json_t *f;
        json_array_foreach(fields, i, f) {
            const char *fname = json_string_value(json_object_get(f, "name"));
            json_t *ftype = json_object_get(f, "type");
            if (!fname || !ftype)
                return kinfer_error_set(c->err, KINFER_ERR_INVALID_ARG,
                                        "canonical form: record '%s' field %zu needs name and "
                                        "type",
                                        full, i);
            pcf_lit(c, i ? ",{\"name\":" : "{\"name\":");
            pcf_str(c, fname);
            pcf_lit(c, ",\"type\":");
            kinfer_err rc = pcf_emit(c, ftype, inner_ns);
            if (rc != KINFER_OK)
                return rc;
            pcf_lit(c, "}");
        }
        pcf_lit(c, "]}");
    } else if (strcmp(type, "enum") == 0) {
        json_t *syms = json_object_get(s, "symbols");
        if (!json_is_array(syms))
            return kinfer_error_set(c->err, KINFER_ERR_INVALID_ARG,
                                    "canonical form: enum '%s' has no symbols array", full);
        pcf_lit(c, ",\"symbols\":[");
        size_t i;
        json_t *sym;
        json_array_foreach(syms, i, sym) {
            if (!json_is_string(sym))
                return kinfer_error_set(c->err, KINFER_ERR_INVALID_ARG,
                                        "canonical form: enum '%s' symbol %zu is not a string",
                                        full, i);
            if (i)
                pcf_lit(c, ",");
            pcf_str(c, json_string_value(sym));
        }
        pcf_lit(c, "]}");
    } else { /* fixed */
        json_t *size = json_object_get(s, "size");
        if (!json_is_integer(size) || json_integer_value(size) < 0)
            return kinfer_error_set(c->err, KINFER_ERR_INVALID_ARG,
                                    "canonical form: fixed '%s' needs a non-negative size", full);
        /* INTEGERS: printed without leading zeros. */
        char num[32];
        snprintf(num, sizeof(num), ",\"size\":%lld}", (long long)json_integer_value(size));
        pcf_lit(c, num);
    }
    return KINFER_OK;
}

static kinfer_err pcf_emit(pcf_ctx *c, json_t *s, const char *ns) {
    if (++c->depth > 64) {
        c->depth--;
        return kinfer_error_set(c->err, KINFER_ERR_INVALID_ARG,
                                "canonical form: schema nested deeper than 64");
    }
    kinfer_err rc = KINFER_OK;
    if (json_is_string(s)) {
        const char *name = json_string_value(s);
        if (pcf_is_primitive(name))
            pcf_str(c, name);
        else
            rc = pcf_reference(c, name, ns);
    } else if (json_is_array(s)) { /* a union */
        pcf_lit(c, "[");
        size_t i;
        json_t *b;
        json_array_foreach(s, i, b) {
            if (i)
                pcf_lit(c, ",");
            if ((rc = pcf_emit(c, b, ns)) != KINFER_OK)
                break;
        }
        pcf_lit(c, "]");
    } else if (json_is_object(s)) {
        json_t *tv = json_object_get(s, "type");
        const char *type = json_string_value(tv);
        if (!tv) {
            rc = kinfer_error_set(c->err, KINFER_ERR_INVALID_ARG,
                                  "canonical form: schema object without \"type\"");
        } else if (!type) {
            rc = pcf_emit(c, tv, ns);
        } else if (pcf_is_primitive(type)) {
            pcf_str(c, type); /* PRIMITIVES: {"type":"int"} -> "int" */
        } else if (strcmp(type, "record") == 0 || strcmp(type, "error") == 0 ||
                   strcmp(type, "enum") == 0 || strcmp(type, "fixed") == 0) {
            rc = pcf_named(c, s, type, ns);
        } else if (strcmp(type, "array") == 0 || strcmp(type, "map") == 0) {
            bool arr = type[0] == 'a';
            json_t *sub = json_object_get(s, arr ? "items" : "values");
            if (!sub) {
                rc = kinfer_error_set(c->err, KINFER_ERR_INVALID_ARG,
                                      "canonical form: %s without \"%s\"", type,
                                      arr ? "items" : "values");
            } else {
                pcf_lit(c,
                        arr ? "{\"type\":\"array\",\"items\":" : "{\"type\":\"map\",\"values\":");
                if ((rc = pcf_emit(c, sub, ns)) == KINFER_OK)
                    pcf_lit(c, "}");
            }
        } else {
            rc = pcf_reference(c, type, ns);
        }
    } else {
        rc = kinfer_error_set(c->err, KINFER_ERR_INVALID_ARG,
                              "canonical form: a schema must be a string, array or object");
    }
    c->depth--;
    return rc;
}

kinfer_err kinfer_codec_canonical_form(const char *schema_json, char **out, kinfer_error *err) {
    json_error_t jerr;
    json_t *root = json_loads(schema_json, JSON_DECODE_ANY, &jerr);
    if (!root)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "canonical form: schema is not JSON: line %d column %d: %s",
                                jerr.line, jerr.column, jerr.text);
    pcf_ctx c = {.err = err};
    kinfer_err rc = pcf_emit(&c, root, "");
    json_decref(root);
    for (size_t i = 0; i < c.nnames; i++)
        free(c.names[i]);
    free(c.names);
    if (rc == KINFER_OK) {
        codec_write_raw(&c.out, "", 1); /* NUL */
        if (c.out.oom)
            rc = kinfer_error_set(err, KINFER_ERR_NOMEM, "canonical form: out of memory");
    }
    if (rc != KINFER_OK) {
        codec_buf_free(&c.out);
        return rc;
    }
    *out = (char *)c.out.data;
    return KINFER_OK;
}

/* ---- the two kinfer schemas, computed once -------------------------------- */

static pthread_once_t schema_once = PTHREAD_ONCE_INIT;
/* [0..1]: the current request and response schemas; [2..3]: v1's. */
static char *schema_canonical[4];
static uint64_t schema_fp[4];

static void schema_init(void) {
    const char *src[4] = {codec_embedded_request_avsc, codec_embedded_response_avsc,
                          codec_embedded_request_v1_avsc, codec_embedded_response_v1_avsc};
    for (int i = 0; i < 4; i++) {
        if (kinfer_codec_canonical_form(src[i], &schema_canonical[i], NULL) == KINFER_OK)
            schema_fp[i] =
                kinfer_codec_crc64_avro(schema_canonical[i], strlen(schema_canonical[i]));
    }
}

const char *kinfer_codec_schema_json(kinfer_codec_schema schema) {
    return schema == KINFER_CODEC_SCHEMA_RESPONSE ? codec_embedded_response_avsc
                                                  : codec_embedded_request_avsc;
}

const char *kinfer_codec_schema_canonical(kinfer_codec_schema schema) {
    pthread_once(&schema_once, schema_init);
    return schema_canonical[schema == KINFER_CODEC_SCHEMA_RESPONSE];
}

uint64_t kinfer_codec_schema_fingerprint(kinfer_codec_schema schema) {
    pthread_once(&schema_once, schema_init);
    return schema_fp[schema == KINFER_CODEC_SCHEMA_RESPONSE];
}

uint64_t kinfer_codec_schema_fingerprint_v1(kinfer_codec_schema schema) {
    pthread_once(&schema_once, schema_init);
    return schema_fp[2 + (schema == KINFER_CODEC_SCHEMA_RESPONSE)];
}

const char *kinfer_codec_schema_json_v1(kinfer_codec_schema schema) {
    return schema == KINFER_CODEC_SCHEMA_RESPONSE ? codec_embedded_response_v1_avsc
                                                  : codec_embedded_request_v1_avsc;
}
