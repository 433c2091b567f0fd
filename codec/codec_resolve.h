/* codec_resolve.h — module-local: Avro schemas parsed for resolution
 * (codec_resolve_schema.c) and the writer -> reader program built from two
 * of them (codec_resolve.c). Not public API; the public face is
 * kinfer_codec_resolution in kinfer_codec.h.
 *
 * Why not avro-c's resolved writer: it reads through avro-c's binary
 * decoder, which allocates whatever length a message declares (see
 * codec_avro.h), and avro-c 1.11.1 lacks rules kinfer's evolution needs: a
 * reader field missing from the writer is refused even with a default,
 * string <-> bytes is refused, and enum symbols are mapped by index, not
 * name (tests/unit/codec/test_codec_resolve_avroc.c shows each). Here every
 * writer byte goes through codec_reader's bounds checks and the output is
 * capped; avro-c stays the oracle for the rules it does implement. */
#ifndef KINFER_CODEC_RESOLVE_H
#define KINFER_CODEC_RESOLVE_H

#include <jansson.h>

#include "codec_avro.h"
#include "kinfer/kinfer_codec.h"

/* Records with more fields are refused (the per-record span table lives on
 * the stack while a record is rewritten). */
#define RS_MAX_FIELDS 128
/* Schemas nested deeper are refused (and recursive types always are). */
#define RS_MAX_DEPTH 32

typedef enum rs_type {
    RS_NULL,
    RS_BOOLEAN,
    RS_INT,
    RS_LONG,
    RS_FLOAT,
    RS_DOUBLE,
    RS_BYTES,
    RS_STRING,
    RS_RECORD,
    RS_ENUM,
    RS_ARRAY,
    RS_MAP,
    RS_UNION,
    RS_FIXED,
} rs_type;

typedef struct rs_schema rs_schema;

typedef struct rs_field {
    char *name;
    rs_schema *type;
    json_t *def; /* the field's default (a reference held), NULL = none */
} rs_field;

struct rs_schema {
    rs_type type;
    char *name;       /* named types: the full name */
    rs_field *fields; /* record */
    size_t nfields;
    char **symbols; /* enum */
    size_t nsymbols;
    int64_t enum_default; /* enum: index of its "default" symbol, -1 = none */
    rs_schema *items;     /* array items, map values */
    rs_schema **branches; /* union */
    size_t nbranches;
    size_t size;      /* fixed */
    size_t min_bytes; /* fewest bytes a value of this schema takes on the wire */
    bool complete;    /* parse finished (a reference to an incomplete one is recursion) */
};

/* Every node of one parsed schema; freed together. */
typedef struct rs_tree {
    rs_schema *root;
    rs_schema **nodes;
    size_t nnodes;
} rs_tree;

kinfer_err rs_tree_parse(const char *json, rs_tree *out, kinfer_error *err);
void rs_tree_free(rs_tree *t);

/* Name of a type for messages: the full name of a named type, else the
 * primitive or "array"/"map"/"union". */
const char *rs_type_name(const rs_schema *s);

/* Encodes the JSON default value def as Avro binary of schema s (a union's
 * default is of its first branch, or of the first branch it fits). */
kinfer_err rs_encode_default(const rs_schema *s, json_t *def, codec_buf *out, const char *path,
                             kinfer_error *err);

/* Skips one value of writer schema s in r (bounds-checked). *budget counts
 * items visited (array/map entries, record fields); DECODE when spent. */
kinfer_err rs_skip(const rs_schema *s, codec_reader *r, size_t *budget, int depth);

/* Rewrites one writer-schema body as reader-schema Avro binary, appended to
 * out (which the caller owns and may reuse). More than max_out bytes of
 * output is KINFER_ERR_TOO_LARGE; malformed writer bytes are DECODE. */
kinfer_err codec_resolve_into(const kinfer_codec_resolution *res, const uint8_t *body, size_t len,
                              size_t max_out, codec_buf *out, kinfer_error *err);

/* The fingerprint of the reader schema res was built for. */
uint64_t codec_resolution_reader_fingerprint(const kinfer_codec_resolution *res);
#endif
