/* chat_template.c — parsing a chat template: the Jinja lexer (tags,
 * whitespace control, Hugging Face's trim_blocks + lstrip_blocks, the
 * dropped final newline) and a recursive-descent parser into the tree of
 * chat_template_private.h. Every construct outside the subset of
 * chat_template.h is refused here, by name. Rendering is
 * chat_template_eval.c. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_template_private.h"

/* --- arena -------------------------------------------------------------------- */

struct ct_arena_chunk {
    ct_arena_chunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

void *ct_alloc(ct_arena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    ct_arena_chunk *c = a->head;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > 16384 ? n : 16384;
        c = malloc(sizeof(*c) + cap);
        if (!c) {
            a->failed = true;
            return NULL;
        }
        c->next = a->head;
        c->used = 0;
        c->cap = cap;
        a->head = c;
    }
    void *p = c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

void ct_arena_free(ct_arena *a) {
    for (ct_arena_chunk *c = a->head, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    a->head = NULL;
}

/* --- lexer: the template into text and tag pieces --------------------------------- */

typedef enum piece_kind { P_TEXT, P_EXPR, P_STMT, P_COMMENT } piece_kind;

typedef struct piece {
    piece_kind kind;
    size_t b, e;      /* text, or the tag's inner source */
    bool minus_open;  /* {%- : strip whitespace before */
    bool minus_close; /* -%} : strip whitespace after */
    bool plus_open;   /* {%+ : no lstrip_blocks */
    int line;         /* of the tag's start */
} piece;

typedef struct parser {
    const char *src;
    size_t len;
    const char *label;
    kinfer_error *err;
    kinfer_chat_template *t;
    piece *pieces;
    size_t npieces, cap;
    size_t at; /* next piece */
    /* expression lexer over the current tag */
    size_t pos, end;
    int line;
} parser;

static int line_of(const parser *p, size_t off) {
    int line = 1;
    for (size_t i = 0; i < off && i < p->len; i++)
        line += p->src[i] == '\n';
    return line;
}

static kinfer_err syntax(parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static kinfer_err syntax(parser *p, const char *fmt, ...) {
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return kinfer_error_set(p->err, KINFER_ERR_MODEL_LOAD, "%s: chat template line %d: %s",
                            p->label, p->line, msg);
}

static kinfer_err unsupported(parser *p, const char *what, const char *name, size_t nlen) {
    return kinfer_error_set(p->err, KINFER_ERR_UNSUPPORTED,
                            "%s: chat template uses Jinja %s%s%.*s%s (line %d), not supported",
                            p->label, what, name ? " '" : "", (int)(nlen > 48 ? 48 : nlen),
                            name ? name : "", name ? "'" : "", p->line);
}

static kinfer_err nomem(parser *p) {
    return kinfer_error_set(p->err, KINFER_ERR_NOMEM, "chat template: out of memory");
}

static kinfer_err add_piece(parser *p, piece pc) {
    if (p->npieces == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 32;
        piece *np = realloc(p->pieces, cap * sizeof(*np));
        if (!np)
            return nomem(p);
        p->pieces = np;
        p->cap = cap;
    }
    p->pieces[p->npieces++] = pc;
    return KINFER_OK;
}

/* The end of a tag opened at `from` (after "{x"): the offset of its
 * closing "x}", skipping string literals. */
static bool find_close(const parser *p, size_t from, char x, size_t *close) {
    char quote = 0;
    for (size_t i = from; i + 1 < p->len; i++) {
        char ch = p->src[i];
        if (quote) {
            if (ch == '\\')
                i++;
            else if (ch == quote)
                quote = 0;
        } else if ((ch == '\'' || ch == '"') && x != '#') {
            quote = ch;
        } else if (ch == x && p->src[i + 1] == '}') {
            *close = i;
            return true;
        }
    }
    return false;
}

static kinfer_err lex(parser *p) {
    size_t i = 0, text_start = 0;
    size_t len = p->len;
    /* Jinja drops one final newline (keep_trailing_newline = False). */
    if (len && p->src[len - 1] == '\n')
        len--;
    p->len = len;
    while (i + 1 < len) {
        char c1 = p->src[i + 1];
        if (p->src[i] != '{' || (c1 != '{' && c1 != '%' && c1 != '#')) {
            i++;
            continue;
        }
        if (i > text_start && add_piece(p, (piece){.kind = P_TEXT, .b = text_start, .e = i}))
            return KINFER_ERR_NOMEM;
        piece pc = {.kind = c1 == '{'   ? P_EXPR
                            : c1 == '%' ? P_STMT
                                        : P_COMMENT,
                    .line = line_of(p, i)};
        char closer = c1 == '{' ? '}' : c1;
        size_t b = i + 2;
        if (b < len && p->src[b] == '-')
            pc.minus_open = true, b++;
        else if (b < len && p->src[b] == '+')
            pc.plus_open = true, b++;
        size_t close;
        p->line = pc.line;
        if (!find_close(p, b, closer, &close))
            return syntax(p, "tag '{%c' is never closed", c1);
        size_t e = close;
        if (e > b && p->src[e - 1] == '-')
            pc.minus_close = true, e--;
        else if (e > b && p->src[e - 1] == '+' && closer != '}')
            e--;
        pc.b = b;
        pc.e = e < b ? b : e;
        if (add_piece(p, pc))
            return KINFER_ERR_NOMEM;
        i = text_start = close + 2;
    }
    if (len > text_start && add_piece(p, (piece){.kind = P_TEXT, .b = text_start, .e = len}))
        return KINFER_ERR_NOMEM;
    /* Whitespace control on the text pieces, from their neighbours. */
    for (size_t k = 0; k < p->npieces; k++) {
        piece *t = &p->pieces[k];
        if (t->kind != P_TEXT)
            continue;
        const piece *prev = k ? &p->pieces[k - 1] : NULL;
        const piece *next = k + 1 < p->npieces ? &p->pieces[k + 1] : NULL;
        if (prev && prev->minus_close) {
            while (t->b < t->e && strchr(" \t\r\n\v\f", p->src[t->b]))
                t->b++;
        } else if (prev && prev->kind != P_EXPR && t->b < t->e && p->src[t->b] == '\n') {
            t->b++; /* trim_blocks */
        }
        if (next && next->minus_open) {
            while (t->e > t->b && strchr(" \t\r\n\v\f", p->src[t->e - 1]))
                t->e--;
        } else if (next && next->kind != P_EXPR && !next->plus_open) {
            /* lstrip_blocks: spaces and tabs between a line start and the tag */
            size_t e = t->e;
            while (e > t->b && (p->src[e - 1] == ' ' || p->src[e - 1] == '\t'))
                e--;
            bool line_start = e == 0 || p->src[e - 1] == '\n';
            if (line_start && e >= t->b)
                t->e = e;
        }
    }
    return KINFER_OK;
}

/* --- expression lexer ------------------------------------------------------------ */

typedef enum tok_kind { T_END, T_NAME, T_INT, T_STR, T_OP } tok_kind;

typedef struct tok {
    tok_kind kind;
    const char *s;
    size_t len;
    int64_t ival;
} tok;

static bool is_name_start(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

/* Peeks the next token without consuming it (sets *after to its end). */
static kinfer_err peek(parser *p, tok *t, size_t *after) {
    size_t i = p->pos;
    while (i < p->end && strchr(" \t\r\n", p->src[i]))
        i++;
    memset(t, 0, sizeof(*t));
    t->s = p->src + i;
    if (i >= p->end) {
        *after = i;
        return KINFER_OK;
    }
    char c = p->src[i];
    if (is_name_start(c)) {
        size_t j = i;
        while (j < p->end && (is_name_start(p->src[j]) || is_digit(p->src[j])))
            j++;
        t->kind = T_NAME;
        t->len = j - i;
        *after = j;
        return KINFER_OK;
    }
    if (is_digit(c)) {
        size_t j = i;
        int64_t v = 0;
        while (j < p->end && is_digit(p->src[j])) {
            int d = p->src[j] - '0';
            if (v > (INT64_MAX - d) / 10)
                return syntax(p, "integer literal too large");
            v = v * 10 + d;
            j++;
        }
        if (j < p->end && (p->src[j] == '.' || p->src[j] == 'e' || p->src[j] == 'E') &&
            j + 1 < p->end && (is_digit(p->src[j + 1]) || p->src[j] != '.'))
            return unsupported(p, "float literal", NULL, 0);
        t->kind = T_INT;
        t->ival = v;
        t->len = j - i;
        *after = j;
        return KINFER_OK;
    }
    if (c == '\'' || c == '"') {
        size_t j = i + 1;
        while (j < p->end && p->src[j] != c)
            j += p->src[j] == '\\' ? 2 : 1;
        if (j >= p->end)
            return syntax(p, "unterminated string literal");
        t->kind = T_STR;
        t->s = p->src + i + 1;
        t->len = j - i - 1;
        *after = j + 1;
        return KINFER_OK;
    }
    static const char *const ops[] = {"==", "!=", "<=", ">=", "//", "**", "(", ")", "[",
                                      "]",  "{",  "}",  ".",  ",",  ":",  "|", "+", "-",
                                      "*",  "/",  "%",  "~",  "<",  ">",  "="};
    for (size_t k = 0; k < sizeof(ops) / sizeof(ops[0]); k++) {
        size_t l = strlen(ops[k]);
        if (i + l <= p->end && memcmp(p->src + i, ops[k], l) == 0) {
            t->kind = T_OP;
            t->len = l;
            *after = i + l;
            return KINFER_OK;
        }
    }
    return syntax(p, "unexpected character '%c'", c);
}

/* "%.*s" arguments naming a token in messages. */
#define TOK_SHOW(t)                                                                                \
    (t)->kind == T_END ? 10 : (int)((t)->len > 32 ? 32 : (t)->len),                                \
        (t)->kind == T_END ? "end of tag" : (t)->s

static kinfer_err next(parser *p, tok *t) {
    size_t after;
    kinfer_err rc = peek(p, t, &after);
    if (rc == KINFER_OK)
        p->pos = after;
    return rc;
}

static bool tok_is(const tok *t, tok_kind k, const char *s) {
    return t->kind == k && t->len == strlen(s) && memcmp(t->s, s, t->len) == 0;
}

/* Consumes the next token when it is (k, s). */
static bool accept(parser *p, tok_kind k, const char *s) {
    tok t;
    size_t after;
    if (peek(p, &t, &after) != KINFER_OK || !tok_is(&t, k, s))
        return false;
    p->pos = after;
    return true;
}

static kinfer_err expect(parser *p, tok_kind k, const char *s) {
    tok t;
    kinfer_err rc = next(p, &t);
    if (rc != KINFER_OK)
        return rc;
    if (!tok_is(&t, k, s))
        return syntax(p, "expected '%s', found '%.*s'", s, TOK_SHOW(&t));
    return KINFER_OK;
}

/* --- expression parser ------------------------------------------------------------ */

static ct_expr *new_expr(parser *p, ct_expr_kind kind) {
    ct_expr *e = ct_alloc(&p->t->arena, sizeof(*e));
    if (e)
        e->kind = kind;
    return e;
}

/* Decodes a string literal's escapes into the arena. */
static kinfer_err str_literal(parser *p, const tok *t, ct_expr **out) {
    char *s = ct_alloc(&p->t->arena, t->len + 1);
    ct_expr *e = new_expr(p, CT_E_STR);
    if (!s || !e)
        return nomem(p);
    size_t n = 0;
    for (size_t i = 0; i < t->len; i++) {
        char c = t->s[i];
        if (c != '\\' || i + 1 >= t->len) {
            s[n++] = c;
            continue;
        }
        char x = t->s[++i];
        switch (x) {
        case 'n':
            s[n++] = '\n';
            break;
        case 't':
            s[n++] = '\t';
            break;
        case 'r':
            s[n++] = '\r';
            break;
        case '\\':
        case '\'':
        case '"':
            s[n++] = x;
            break;
        default:
            return unsupported(p, "string escape", t->s + i - 1, 2);
        }
    }
    e->str = s;
    e->len = n;
    *out = e;
    return KINFER_OK;
}

static kinfer_err parse_expr(parser *p, ct_expr **out);

/* Comma-separated expressions up to `close` (already past the opener). */
static kinfer_err parse_list(parser *p, const char *close, ct_expr ***items, size_t *n) {
    ct_expr *buf[64];
    size_t k = 0;
    if (!accept(p, T_OP, close)) {
        for (;;) {
            if (k == 64)
                return syntax(p, "more than 64 items");
            kinfer_err rc = parse_expr(p, &buf[k++]);
            if (rc != KINFER_OK)
                return rc;
            if (accept(p, T_OP, close))
                break;
            if ((rc = expect(p, T_OP, ",")) != KINFER_OK)
                return rc;
        }
    }
    *items = ct_alloc(&p->t->arena, (k ? k : 1) * sizeof(ct_expr *));
    if (!*items)
        return nomem(p);
    memcpy(*items, buf, k * sizeof(ct_expr *));
    *n = k;
    return KINFER_OK;
}

static bool name_in(const tok *t, const char *const *names) {
    for (; *names; names++)
        if (tok_is(t, T_NAME, *names))
            return true;
    return false;
}

static const char *const k_filters[] = {"trim",   "length", "count", "upper", "lower",
                                        "string", "first",  "last",  NULL};
static const char *const k_tests[] = {"defined", "undefined", "none", "string", "number",
                                      "boolean", "false",     "true", NULL};
static const char *const k_methods[] = {"strip", "lstrip",     "rstrip",   "upper",
                                        "lower", "startswith", "endswith", NULL};

static kinfer_err parse_primary(parser *p, ct_expr **out) {
    tok t;
    kinfer_err rc = next(p, &t);
    if (rc != KINFER_OK)
        return rc;
    ct_expr *e = NULL;
    *out = NULL;
    if (t.kind == T_STR) {
        if ((rc = str_literal(p, &t, &e)) != KINFER_OK)
            return rc;
        /* adjacent literals concatenate, as in Python */
        tok n2;
        size_t after;
        while (peek(p, &n2, &after) == KINFER_OK && n2.kind == T_STR) {
            p->pos = after;
            ct_expr *e2;
            if ((rc = str_literal(p, &n2, &e2)) != KINFER_OK)
                return rc;
            char *s = ct_alloc(&p->t->arena, e->len + e2->len + 1);
            if (!s)
                return nomem(p);
            memcpy(s, e->str, e->len);
            memcpy(s + e->len, e2->str, e2->len);
            e->str = s;
            e->len += e2->len;
        }
    } else if (t.kind == T_INT) {
        if (!(e = new_expr(p, CT_E_INT)))
            return nomem(p);
        e->ival = t.ival;
    } else if (t.kind == T_NAME) {
        if (tok_is(&t, T_NAME, "true") || tok_is(&t, T_NAME, "True") ||
            tok_is(&t, T_NAME, "false") || tok_is(&t, T_NAME, "False")) {
            if (!(e = new_expr(p, CT_E_BOOL)))
                return nomem(p);
            e->ival = t.s[0] == 't' || t.s[0] == 'T';
        } else if (tok_is(&t, T_NAME, "none") || tok_is(&t, T_NAME, "None")) {
            if (!(e = new_expr(p, CT_E_NONE)))
                return nomem(p);
        } else if (accept(p, T_OP, "(")) {
            if (!tok_is(&t, T_NAME, "raise_exception"))
                return unsupported(p, "function", t.s, t.len);
            if (!(e = new_expr(p, CT_E_CALL)))
                return nomem(p);
            if ((rc = parse_list(p, ")", &e->items, &e->nitems)) != KINFER_OK)
                return rc;
            if (e->nitems != 1)
                return syntax(p, "raise_exception takes one argument");
        } else {
            if (!(e = new_expr(p, CT_E_NAME)))
                return nomem(p);
        }
        if (e->kind == CT_E_NAME || e->kind == CT_E_CALL) {
            e->str = t.s;
            e->len = t.len;
        }
    } else if (tok_is(&t, T_OP, "(")) {
        if ((rc = parse_expr(p, &e)) != KINFER_OK)
            return rc;
        if (accept(p, T_OP, ","))
            return unsupported(p, "tuple", NULL, 0);
        if ((rc = expect(p, T_OP, ")")) != KINFER_OK)
            return rc;
    } else if (tok_is(&t, T_OP, "[")) {
        if (!(e = new_expr(p, CT_E_LIST)))
            return nomem(p);
        if ((rc = parse_list(p, "]", &e->items, &e->nitems)) != KINFER_OK)
            return rc;
    } else if (tok_is(&t, T_OP, "{")) {
        return unsupported(p, "dict literal", NULL, 0);
    } else {
        return syntax(p, "unexpected '%.*s'", TOK_SHOW(&t));
    }
    *out = e;
    return KINFER_OK;
}

/* Attributes, subscripts, slices, method calls, filters and tests. */
static kinfer_err parse_postfix(parser *p, ct_expr **out) {
    ct_expr *e = NULL;
    kinfer_err rc = parse_primary(p, &e);
    if (rc != KINFER_OK)
        return rc;
    for (;;) {
        tok t;
        if (accept(p, T_OP, ".")) {
            if ((rc = next(p, &t)) != KINFER_OK)
                return rc;
            if (t.kind != T_NAME)
                return syntax(p, "expected a name after '.'");
            ct_expr *x = new_expr(p, CT_E_ATTR);
            if (!x)
                return nomem(p);
            x->a = e;
            x->str = t.s;
            x->len = t.len;
            if (accept(p, T_OP, "(")) {
                if (!name_in(&t, k_methods))
                    return unsupported(p, "method", t.s, t.len);
                x->kind = CT_E_METHOD;
                if ((rc = parse_list(p, ")", &x->items, &x->nitems)) != KINFER_OK)
                    return rc;
            }
            e = x;
        } else if (accept(p, T_OP, "[")) {
            ct_expr *x = new_expr(p, CT_E_INDEX);
            if (!x)
                return nomem(p);
            x->a = e;
            if (!accept(p, T_OP, ":")) {
                if ((rc = parse_expr(p, &x->b)) != KINFER_OK)
                    return rc;
                if (accept(p, T_OP, ":"))
                    x->kind = CT_E_SLICE;
            } else {
                x->kind = CT_E_SLICE;
            }
            if (x->kind == CT_E_SLICE) {
                tok n2;
                size_t after;
                if ((rc = peek(p, &n2, &after)) != KINFER_OK)
                    return rc;
                if (tok_is(&n2, T_OP, ":"))
                    return unsupported(p, "slice step", NULL, 0);
                if (!tok_is(&n2, T_OP, "]") && (rc = parse_expr(p, &x->c)) != KINFER_OK)
                    return rc;
                if (accept(p, T_OP, ":"))
                    return unsupported(p, "slice step", NULL, 0);
            }
            if ((rc = expect(p, T_OP, "]")) != KINFER_OK)
                return rc;
            e = x;
        } else if (accept(p, T_OP, "|")) {
            if ((rc = next(p, &t)) != KINFER_OK)
                return rc;
            if (t.kind != T_NAME)
                return syntax(p, "expected a filter name after '|'");
            if (!name_in(&t, k_filters))
                return unsupported(p, "filter", t.s, t.len);
            if (accept(p, T_OP, "("))
                return unsupported(p, "filter arguments for", t.s, t.len);
            ct_expr *x = new_expr(p, CT_E_FILTER);
            if (!x)
                return nomem(p);
            x->a = e;
            x->str = t.s;
            x->len = t.len;
            e = x;
        } else if (accept(p, T_NAME, "is")) {
            ct_expr *x = new_expr(p, CT_E_TEST);
            if (!x)
                return nomem(p);
            x->negate = accept(p, T_NAME, "not");
            if ((rc = next(p, &t)) != KINFER_OK)
                return rc;
            if (t.kind != T_NAME)
                return syntax(p, "expected a test name after 'is'");
            if (!name_in(&t, k_tests))
                return unsupported(p, "test", t.s, t.len);
            x->a = e;
            x->str = t.s;
            x->len = t.len;
            e = x;
        } else {
            break;
        }
    }
    *out = e;
    return KINFER_OK;
}

static kinfer_err parse_unary(parser *p, ct_expr **out) {
    if (accept(p, T_OP, "-")) {
        ct_expr *e = new_expr(p, CT_E_NEG);
        if (!e)
            return nomem(p);
        *out = e;
        return parse_unary(p, &e->a);
    }
    if (accept(p, T_OP, "+"))
        return parse_unary(p, out);
    return parse_postfix(p, out);
}

static kinfer_err bin(parser *p, ct_binop op, ct_expr *a, ct_expr **out) {
    ct_expr *e = new_expr(p, CT_E_BIN);
    if (!e)
        return nomem(p);
    e->op = op;
    e->a = a;
    *out = e;
    return KINFER_OK;
}

static kinfer_err parse_mul(parser *p, ct_expr **out) {
    kinfer_err rc = parse_unary(p, out);
    while (rc == KINFER_OK) {
        tok t;
        size_t after;
        if ((rc = peek(p, &t, &after)) != KINFER_OK)
            return rc;
        if (tok_is(&t, T_OP, "/") || tok_is(&t, T_OP, "//") || tok_is(&t, T_OP, "**"))
            return unsupported(p, "operator", t.s, t.len);
        ct_binop op;
        if (tok_is(&t, T_OP, "*"))
            op = CT_OP_MUL;
        else if (tok_is(&t, T_OP, "%"))
            op = CT_OP_MOD;
        else
            break;
        p->pos = after;
        if ((rc = bin(p, op, *out, out)) == KINFER_OK)
            rc = parse_unary(p, &(*out)->b);
    }
    return rc;
}

static kinfer_err parse_concat(parser *p, ct_expr **out) {
    kinfer_err rc = parse_mul(p, out);
    while (rc == KINFER_OK && accept(p, T_OP, "~"))
        if ((rc = bin(p, CT_OP_CONCAT, *out, out)) == KINFER_OK)
            rc = parse_mul(p, &(*out)->b);
    return rc;
}

static kinfer_err parse_add(parser *p, ct_expr **out) {
    kinfer_err rc = parse_concat(p, out);
    while (rc == KINFER_OK) {
        ct_binop op;
        if (accept(p, T_OP, "+"))
            op = CT_OP_ADD;
        else if (accept(p, T_OP, "-"))
            op = CT_OP_SUB;
        else
            break;
        if ((rc = bin(p, op, *out, out)) == KINFER_OK)
            rc = parse_concat(p, &(*out)->b);
    }
    return rc;
}

static kinfer_err parse_compare(parser *p, ct_expr **out) {
    kinfer_err rc = parse_add(p, out);
    while (rc == KINFER_OK) {
        static const struct {
            const char *s;
            ct_binop op;
        } cmp[] = {{"==", CT_OP_EQ}, {"!=", CT_OP_NE}, {"<=", CT_OP_LE},
                   {">=", CT_OP_GE}, {"<", CT_OP_LT},  {">", CT_OP_GT}};
        bool found = false;
        ct_binop op = CT_OP_EQ;
        for (size_t k = 0; k < sizeof(cmp) / sizeof(cmp[0]) && !found; k++)
            if (accept(p, T_OP, cmp[k].s))
                found = true, op = cmp[k].op;
        if (!found && accept(p, T_NAME, "in"))
            found = true, op = CT_OP_IN;
        if (!found) {
            /* "not in" (but a bare "not" here belongs to nobody: syntax error later) */
            size_t save = p->pos;
            if (accept(p, T_NAME, "not")) {
                if (accept(p, T_NAME, "in"))
                    found = true, op = CT_OP_NOT_IN;
                else
                    p->pos = save;
            }
        }
        if (!found)
            break;
        if ((rc = bin(p, op, *out, out)) == KINFER_OK)
            rc = parse_add(p, &(*out)->b);
    }
    return rc;
}

static kinfer_err parse_not(parser *p, ct_expr **out) {
    if (accept(p, T_NAME, "not")) {
        ct_expr *e = new_expr(p, CT_E_NOT);
        if (!e)
            return nomem(p);
        *out = e;
        return parse_not(p, &e->a);
    }
    return parse_compare(p, out);
}

static kinfer_err parse_and(parser *p, ct_expr **out) {
    kinfer_err rc = parse_not(p, out);
    while (rc == KINFER_OK && accept(p, T_NAME, "and")) {
        ct_expr *e = new_expr(p, CT_E_AND);
        if (!e)
            return nomem(p);
        e->a = *out;
        *out = e;
        rc = parse_not(p, &e->b);
    }
    return rc;
}

static kinfer_err parse_or(parser *p, ct_expr **out) {
    kinfer_err rc = parse_and(p, out);
    while (rc == KINFER_OK && accept(p, T_NAME, "or")) {
        ct_expr *e = new_expr(p, CT_E_OR);
        if (!e)
            return nomem(p);
        e->a = *out;
        *out = e;
        rc = parse_and(p, &e->b);
    }
    return rc;
}

/* Inline if: "a if cond else b" (else optional). */
static kinfer_err parse_expr(parser *p, ct_expr **out) {
    kinfer_err rc = parse_or(p, out);
    if (rc != KINFER_OK || !accept(p, T_NAME, "if"))
        return rc;
    ct_expr *e = new_expr(p, CT_E_COND);
    if (!e)
        return nomem(p);
    e->b = *out;
    *out = e;
    if ((rc = parse_or(p, &e->a)) != KINFER_OK)
        return rc;
    if (accept(p, T_NAME, "else"))
        return parse_expr(p, &e->c);
    return KINFER_OK;
}

static kinfer_err expect_end_of_tag(parser *p) {
    tok t;
    kinfer_err rc = next(p, &t);
    if (rc != KINFER_OK)
        return rc;
    if (t.kind != T_END)
        return syntax(p, "unexpected '%.*s' at the end of a tag", (int)(t.len > 32 ? 32 : t.len),
                      t.s);
    return KINFER_OK;
}

/* --- statements ------------------------------------------------------------------- */

static kinfer_err body_push(parser *p, ct_body *body, ct_stmt *s, size_t *cap) {
    if (body->n == *cap) {
        size_t nc = *cap ? *cap * 2 : 8;
        ct_stmt **ns = ct_alloc(&p->t->arena, nc * sizeof(*ns));
        if (!ns)
            return nomem(p);
        if (body->n)
            memcpy(ns, body->stmts, body->n * sizeof(*ns));
        body->stmts = ns;
        *cap = nc;
    }
    body->stmts[body->n++] = s;
    return KINFER_OK;
}

static const char *const k_unsupported_tags[] = {
    "macro", "call", "filter", "include",  "import", "from",       "extends",    "block",
    "raw",   "with", "break",  "continue", "do",     "generation", "autoescape", NULL};

/* Parses statements until a tag whose keyword is in `ends` (returned in
 * *end_kw, the tag consumed up to its keyword) or, with ends NULL, the end
 * of the template. */
static kinfer_err parse_body(parser *p, const char *const *ends, ct_body *body, tok *end_kw) {
    size_t cap = 0;
    body->stmts = NULL;
    body->n = 0;
    while (p->at < p->npieces) {
        const piece *pc = &p->pieces[p->at++];
        p->line = pc->line;
        p->pos = pc->b;
        p->end = pc->e;
        kinfer_err rc;
        if (pc->kind == P_COMMENT)
            continue;
        if (pc->kind == P_TEXT) {
            if (pc->e == pc->b)
                continue;
            ct_stmt *s = ct_alloc(&p->t->arena, sizeof(*s));
            if (!s)
                return nomem(p);
            s->kind = CT_S_TEXT;
            s->text = p->src + pc->b;
            s->len = pc->e - pc->b;
            if ((rc = body_push(p, body, s, &cap)) != KINFER_OK)
                return rc;
            continue;
        }
        if (pc->kind == P_EXPR) {
            ct_stmt *s = ct_alloc(&p->t->arena, sizeof(*s));
            if (!s)
                return nomem(p);
            s->kind = CT_S_OUT;
            if ((rc = parse_expr(p, &s->expr)) != KINFER_OK ||
                (rc = expect_end_of_tag(p)) != KINFER_OK ||
                (rc = body_push(p, body, s, &cap)) != KINFER_OK)
                return rc;
            continue;
        }
        tok kw;
        if ((rc = next(p, &kw)) != KINFER_OK)
            return rc;
        if (kw.kind != T_NAME)
            return syntax(p, "expected a tag name");
        if (ends && name_in(&kw, ends)) {
            *end_kw = kw;
            return KINFER_OK;
        }
        if (name_in(&kw, k_unsupported_tags))
            return unsupported(p, "tag", kw.s, kw.len);
        ct_stmt *s = ct_alloc(&p->t->arena, sizeof(*s));
        if (!s)
            return nomem(p);
        if (tok_is(&kw, T_NAME, "if")) {
            s->kind = CT_S_IF;
            ct_expr *conds[64];
            ct_body bodies[64];
            size_t nb = 0;
            ct_expr *cond;
            if ((rc = parse_expr(p, &cond)) != KINFER_OK || (rc = expect_end_of_tag(p)))
                return rc;
            static const char *const if_ends[] = {"elif", "else", "endif", NULL};
            for (;;) {
                if (nb == 64)
                    return syntax(p, "more than 64 elif branches");
                tok e;
                conds[nb] = cond;
                if ((rc = parse_body(p, if_ends, &bodies[nb++], &e)) != KINFER_OK)
                    return rc;
                if (p->at > p->npieces || !e.s)
                    return syntax(p, "{%% if %%} without {%% endif %%}");
                if (tok_is(&e, T_NAME, "endif")) {
                    if ((rc = expect_end_of_tag(p)) != KINFER_OK)
                        return rc;
                    break;
                }
                if (cond == NULL)
                    return syntax(p, "{%% %.*s %%} after {%% else %%}", (int)e.len, e.s);
                if (tok_is(&e, T_NAME, "elif")) {
                    if ((rc = parse_expr(p, &cond)) != KINFER_OK || (rc = expect_end_of_tag(p)))
                        return rc;
                } else {
                    cond = NULL;
                    if ((rc = expect_end_of_tag(p)) != KINFER_OK)
                        return rc;
                }
            }
            s->conds = ct_alloc(&p->t->arena, nb * sizeof(*s->conds));
            s->bodies = ct_alloc(&p->t->arena, nb * sizeof(*s->bodies));
            if (!s->conds || !s->bodies)
                return nomem(p);
            memcpy(s->conds, conds, nb * sizeof(*conds));
            memcpy(s->bodies, bodies, nb * sizeof(*bodies));
            s->nbranches = nb;
        } else if (tok_is(&kw, T_NAME, "for")) {
            s->kind = CT_S_FOR;
            tok var;
            if ((rc = next(p, &var)) != KINFER_OK)
                return rc;
            if (var.kind != T_NAME)
                return syntax(p, "expected a loop variable");
            if (accept(p, T_OP, ","))
                return unsupported(p, "tuple unpacking in for", NULL, 0);
            s->text = var.s;
            s->len = var.len;
            if ((rc = expect(p, T_NAME, "in")) != KINFER_OK ||
                (rc = parse_or(p, &s->expr)) != KINFER_OK)
                return rc;
            if (accept(p, T_NAME, "if"))
                return unsupported(p, "loop filter (for ... if)", NULL, 0);
            if (accept(p, T_NAME, "recursive"))
                return unsupported(p, "recursive loop", NULL, 0);
            if ((rc = expect_end_of_tag(p)) != KINFER_OK)
                return rc;
            static const char *const for_ends[] = {"endfor", "else", NULL};
            tok e = {0};
            if ((rc = parse_body(p, for_ends, &s->body, &e)) != KINFER_OK)
                return rc;
            if (!e.s)
                return syntax(p, "{%% for %%} without {%% endfor %%}");
            if (tok_is(&e, T_NAME, "else"))
                return unsupported(p, "for-loop else", NULL, 0);
            if ((rc = expect_end_of_tag(p)) != KINFER_OK)
                return rc;
        } else if (tok_is(&kw, T_NAME, "set")) {
            s->kind = CT_S_SET;
            tok var;
            if ((rc = next(p, &var)) != KINFER_OK)
                return rc;
            if (var.kind != T_NAME)
                return syntax(p, "expected a variable name after set");
            if (accept(p, T_OP, "."))
                return unsupported(p, "attribute assignment (namespace)", NULL, 0);
            if (accept(p, T_OP, ","))
                return unsupported(p, "tuple unpacking in set", NULL, 0);
            s->text = var.s;
            s->len = var.len;
            if (!accept(p, T_OP, "="))
                return unsupported(p, "block set", NULL, 0);
            if ((rc = parse_expr(p, &s->expr)) != KINFER_OK ||
                (rc = expect_end_of_tag(p)) != KINFER_OK)
                return rc;
        } else {
            if (name_in(&kw, (const char *const[]){"elif", "else", "endif", "endfor", NULL}))
                return syntax(p, "unexpected {%% %.*s %%}", (int)kw.len, kw.s);
            return unsupported(p, "tag", kw.s, kw.len);
        }
        if ((rc = body_push(p, body, s, &cap)) != KINFER_OK)
            return rc;
    }
    if (ends) {
        end_kw->s = NULL; /* ran out: the caller reports the missing end tag */
        end_kw->len = 0;
    }
    return KINFER_OK;
}

kinfer_err kinfer_chat_template_parse(const char *src, size_t len, const char *label,
                                      kinfer_chat_template **out, kinfer_error *err) {
    *out = NULL;
    kinfer_chat_template *t = calloc(1, sizeof(*t));
    if (!t)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "chat template: out of memory");
    /* The tree points into the source (names, text): keep a copy, so the
     * caller's buffer may go once parse returns. */
    char *copy = ct_alloc(&t->arena, len + 1);
    if (!copy) {
        kinfer_chat_template_destroy(t);
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "chat template: out of memory");
    }
    if (len)
        memcpy(copy, src, len);
    parser p = {.src = copy,
                .len = len,
                .label = label ? label : "chat template",
                .err = err,
                .t = t,
                .line = 1};
    kinfer_err rc = lex(&p);
    if (rc == KINFER_OK)
        rc = parse_body(&p, NULL, &t->root, NULL);
    if (rc == KINFER_OK && t->arena.failed)
        rc = nomem(&p);
    free(p.pieces);
    if (rc != KINFER_OK) {
        kinfer_chat_template_destroy(t);
        return rc;
    }
    *out = t;
    return KINFER_OK;
}

void kinfer_chat_template_destroy(kinfer_chat_template *t) {
    if (!t)
        return;
    ct_arena_free(&t->arena);
    free(t);
}
