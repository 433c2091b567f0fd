/* chat_template_private.h — the chat template's syntax tree and the bump
 * arena both the parser (tree, lifetime of the template) and the renderer
 * (values, one render) allocate from. Not a public API. */
#ifndef KINFER_CHAT_TEMPLATE_PRIVATE_H
#define KINFER_CHAT_TEMPLATE_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chat_template.h"

typedef struct ct_arena_chunk ct_arena_chunk;
typedef struct ct_arena {
    ct_arena_chunk *head;
    bool failed;
} ct_arena;

/* Zeroed, 16-aligned; NULL (and failed set) when out of memory. */
void *ct_alloc(ct_arena *a, size_t n);
void ct_arena_free(ct_arena *a);

typedef enum ct_expr_kind {
    CT_E_STR,
    CT_E_INT,
    CT_E_BOOL,
    CT_E_NONE,
    CT_E_LIST,   /* items */
    CT_E_NAME,   /* name */
    CT_E_ATTR,   /* a.name */
    CT_E_INDEX,  /* a[b] */
    CT_E_SLICE,  /* a[b:c], b/c may be NULL */
    CT_E_METHOD, /* a.name(items) */
    CT_E_CALL,   /* name(items): raise_exception */
    CT_E_FILTER, /* a | name */
    CT_E_TEST,   /* a is [not] name; negate */
    CT_E_BIN,    /* a op b */
    CT_E_NOT,    /* not a */
    CT_E_NEG,    /* -a */
    CT_E_AND,
    CT_E_OR,
    CT_E_COND /* b if a else c (c may be NULL: undefined) */
} ct_expr_kind;

typedef enum ct_binop {
    CT_OP_ADD,
    CT_OP_SUB,
    CT_OP_MUL,
    CT_OP_MOD,
    CT_OP_CONCAT, /* ~ */
    CT_OP_EQ,
    CT_OP_NE,
    CT_OP_LT,
    CT_OP_GT,
    CT_OP_LE,
    CT_OP_GE,
    CT_OP_IN,
    CT_OP_NOT_IN
} ct_binop;

typedef struct ct_expr ct_expr;
struct ct_expr {
    ct_expr_kind kind;
    ct_binop op;
    bool negate;
    int64_t ival;
    const char *str; /* CT_E_STR value; names */
    size_t len;
    ct_expr *a, *b, *c;
    ct_expr **items;
    size_t nitems;
};

typedef enum ct_stmt_kind { CT_S_TEXT, CT_S_OUT, CT_S_IF, CT_S_FOR, CT_S_SET } ct_stmt_kind;

typedef struct ct_stmt ct_stmt;
/* A statement list. */
typedef struct ct_body {
    ct_stmt **stmts;
    size_t n;
} ct_body;

struct ct_stmt {
    ct_stmt_kind kind;
    const char *text; /* TEXT; FOR/SET variable name */
    size_t len;
    ct_expr *expr; /* OUT, FOR iterable, SET value */
    /* IF: conds[i] guards bodies[i]; an else body has cond NULL */
    ct_expr **conds;
    ct_body *bodies;
    size_t nbranches;
    ct_body body; /* FOR */
};

struct kinfer_chat_template {
    ct_arena arena;
    ct_body root;
};

#endif
