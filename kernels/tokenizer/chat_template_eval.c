/* chat_template_eval.c — rendering a parsed chat template: values with
 * Jinja's (Python's) semantics for the supported subset (truthiness,
 * and/or returning operands, undefined that prints as nothing, getitem
 * falling back to undefined), loop scopes, and a per-byte trust flag on
 * every string so the output says which bytes came from the template. One
 * arena per render holds every value. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "chat_template_private.h"
#include "tokenizer_private.h"

typedef enum vkind { V_UNDEF, V_NONE, V_BOOL, V_INT, V_STR, V_LIST, V_DICT } vkind;

typedef struct val val;
struct val {
    vkind k;
    int64_t i; /* BOOL, INT */
    /* STR: bytes; tr = per-byte trust, or NULL with every byte = tr_all */
    const char *s;
    const uint8_t *tr;
    uint8_t tr_all;
    size_t len;
    /* LIST items / DICT values, with keys[n] for DICT */
    val *items;
    val *keys;
    size_t n;
};

typedef struct frame_var {
    const char *name;
    size_t nlen;
    val v;
} frame_var;

typedef struct frame {
    struct frame *up;
    frame_var vars[16];
    size_t n;
} frame;

typedef struct render {
    ct_arena arena;
    kinfer_error *err;
    char *out;
    uint8_t *out_tr;
    size_t len, cap;
    int depth;
} render;

static const val k_undef = {.k = V_UNDEF};

static kinfer_err fail(render *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static kinfer_err fail(render *r, const char *fmt, ...) {
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return kinfer_error_set(r->err, KINFER_ERR_INVALID_REQUEST, "chat template: %s", msg);
}

static kinfer_err nomem(render *r) {
    return kinfer_error_set(r->err, KINFER_ERR_NOMEM, "chat template: out of memory");
}

static const char *kind_name(vkind k) {
    static const char *const names[] = {"undefined", "none", "boolean", "integer",
                                        "string",    "list", "dict"};
    return names[k];
}

static val str_val(const char *s, size_t len, uint8_t trust) {
    return (val){.k = V_STR, .s = s, .len = len, .tr_all = trust};
}

static uint8_t trust_at(const val *v, size_t i) {
    return v->tr ? v->tr[i] : v->tr_all;
}

/* A string from parts of strings (each [b, b+n) of a source), keeping trust. */
typedef struct str_part {
    const val *src;
    size_t b, n;
} str_part;

static kinfer_err join(render *r, const str_part *parts, size_t np, val *out) {
    size_t len = 0;
    bool uniform = true;
    uint8_t t0 = 1;
    bool first = true;
    for (size_t k = 0; k < np; k++) {
        len += parts[k].n;
        for (size_t i = 0; i < parts[k].n && uniform; i++) {
            uint8_t t = trust_at(parts[k].src, parts[k].b + i);
            if (first)
                t0 = t, first = false;
            else if (t != t0)
                uniform = false;
        }
    }
    char *s = ct_alloc(&r->arena, len + 1);
    uint8_t *tr = uniform ? NULL : ct_alloc(&r->arena, len ? len : 1);
    if (!s || (!uniform && !tr))
        return nomem(r);
    size_t pos = 0;
    for (size_t k = 0; k < np; k++) {
        memcpy(s + pos, parts[k].src->s + parts[k].b, parts[k].n);
        for (size_t i = 0; tr && i < parts[k].n; i++)
            tr[pos + i] = trust_at(parts[k].src, parts[k].b + i);
        pos += parts[k].n;
    }
    *out = (val){.k = V_STR, .s = s, .len = len, .tr = tr, .tr_all = uniform ? t0 : 0};
    return KINFER_OK;
}

/* Python's str() of a scalar; lists and dicts are not printable here. */
static kinfer_err to_str(render *r, const val *v, val *out) {
    char buf[32];
    const char *s = NULL;
    switch (v->k) {
    case V_STR:
        *out = *v;
        return KINFER_OK;
    case V_UNDEF:
        s = "";
        break;
    case V_NONE:
        s = "None";
        break;
    case V_BOOL:
        s = v->i ? "True" : "False";
        break;
    case V_INT:
        snprintf(buf, sizeof(buf), "%lld", (long long)v->i);
        s = buf;
        break;
    default:
        return fail(r, "cannot turn a %s into text", kind_name(v->k));
    }
    size_t n = strlen(s);
    char *copy = ct_alloc(&r->arena, n + 1);
    if (!copy)
        return nomem(r);
    memcpy(copy, s, n);
    *out = str_val(copy, n, 1);
    return KINFER_OK;
}

static bool truthy(const val *v) {
    switch (v->k) {
    case V_BOOL:
    case V_INT:
        return v->i != 0;
    case V_STR:
        return v->len > 0;
    case V_LIST:
    case V_DICT:
        return v->n > 0;
    default:
        return false;
    }
}

static bool str_eq(const val *a, const char *s, size_t n) {
    return a->k == V_STR && a->len == n && memcmp(a->s, s, n) == 0;
}

static bool equal(const val *a, const val *b) {
    bool an = a->k == V_INT || a->k == V_BOOL, bn = b->k == V_INT || b->k == V_BOOL;
    if (an && bn)
        return a->i == b->i;
    if (a->k != b->k)
        return false;
    switch (a->k) {
    case V_STR:
        return str_eq(a, b->s, b->len);
    case V_LIST:
    case V_DICT:
        if (a->n != b->n)
            return false;
        for (size_t i = 0; i < a->n; i++)
            if (!equal(&a->items[i], &b->items[i]) ||
                (a->k == V_DICT && !equal(&a->keys[i], &b->keys[i])))
                return false;
        return true;
    default:
        return true; /* none == none, undefined == undefined */
    }
}

/* Code points of a UTF-8 string (invalid bytes count one each). */
static size_t cp_count(const val *v) {
    size_t n = 0;
    for (size_t i = 0; i < v->len; n++) {
        uint32_t cp;
        size_t k = tok_utf8_decode((const uint8_t *)v->s + i, v->len - i, &cp);
        i += k ? k : 1;
    }
    return n;
}

/* Byte offset of code point index ci (clamped to the end). */
static size_t cp_offset(const val *v, size_t ci) {
    size_t i = 0;
    for (size_t n = 0; n < ci && i < v->len; n++) {
        uint32_t cp;
        size_t k = tok_utf8_decode((const uint8_t *)v->s + i, v->len - i, &cp);
        i += k ? k : 1;
    }
    return i;
}

/* Python's str.isspace for one code point. */
static bool py_space(uint32_t cp) {
    return tok_is_whitespace(cp) || (cp >= 0x1C && cp <= 0x1F);
}

static kinfer_err strip(render *r, const val *v, bool left, bool right, val *out) {
    size_t b = 0, e = v->len;
    while (left && b < e) {
        uint32_t cp;
        size_t k = tok_utf8_decode((const uint8_t *)v->s + b, e - b, &cp);
        if (!k || !py_space(cp))
            break;
        b += k;
    }
    while (right && e > b) {
        size_t s = e - 1;
        while (s > b && ((uint8_t)v->s[s] & 0xC0) == 0x80)
            s--;
        uint32_t cp;
        size_t k = tok_utf8_decode((const uint8_t *)v->s + s, e - s, &cp);
        if (k != e - s || !py_space(cp))
            break;
        e = s;
    }
    str_part part = {v, b, e - b};
    return join(r, &part, 1, out);
}

static kinfer_err change_case(render *r, const val *v, bool upper, val *out) {
    char *s = ct_alloc(&r->arena, v->len * 2 + 4);
    if (!s)
        return nomem(r);
    size_t n = 0;
    bool any_untrusted = false;
    for (size_t i = 0; i < v->len;) {
        any_untrusted |= !trust_at(v, i);
        uint32_t cp;
        size_t k = tok_utf8_decode((const uint8_t *)v->s + i, v->len - i, &cp);
        if (!k) {
            s[n++] = v->s[i++];
            continue;
        }
        uint32_t m = (uint32_t)(upper ? utf8proc_toupper((utf8proc_int32_t)cp)
                                      : utf8proc_tolower((utf8proc_int32_t)cp));
        n += tok_utf8_encode(m, s + n); /* case pairs never grow beyond 2x here */
        i += k;
    }
    /* a changed string is as trusted as its least trusted byte */
    *out = str_val(s, n, any_untrusted ? 0 : 1);
    return KINFER_OK;
}

/* --- variables ------------------------------------------------------------------ */

static const val *lookup(const frame *f, const char *name, size_t nlen) {
    for (; f; f = f->up)
        for (size_t i = f->n; i-- > 0;)
            if (f->vars[i].nlen == nlen && memcmp(f->vars[i].name, name, nlen) == 0)
                return &f->vars[i].v;
    return NULL;
}

static kinfer_err assign(render *r, frame *f, const char *name, size_t nlen, const val *v) {
    for (size_t i = 0; i < f->n; i++)
        if (f->vars[i].nlen == nlen && memcmp(f->vars[i].name, name, nlen) == 0) {
            f->vars[i].v = *v;
            return KINFER_OK;
        }
    if (f->n == sizeof(f->vars) / sizeof(f->vars[0]))
        return fail(r, "more than 16 variables in one scope");
    f->vars[f->n++] = (frame_var){name, nlen, *v};
    return KINFER_OK;
}

static const val *dict_get(const val *d, const char *key, size_t klen) {
    for (size_t i = 0; i < d->n; i++)
        if (str_eq(&d->keys[i], key, klen))
            return &d->items[i];
    return NULL;
}

/* --- expressions ------------------------------------------------------------------ */

static kinfer_err eval(render *r, const ct_expr *e, frame *f, val *out);

static kinfer_err get_item(render *r, const val *obj, const val *idx, val *out) {
    if (obj->k == V_UNDEF)
        return fail(r, "subscript of an undefined value");
    if (obj->k == V_LIST && (idx->k == V_INT || idx->k == V_BOOL)) {
        int64_t i = idx->i < 0 ? idx->i + (int64_t)obj->n : idx->i;
        *out = i >= 0 && (uint64_t)i < obj->n ? obj->items[i] : k_undef;
        return KINFER_OK;
    }
    if (obj->k == V_DICT && idx->k == V_STR) {
        const val *v = dict_get(obj, idx->s, idx->len);
        *out = v ? *v : k_undef;
        return KINFER_OK;
    }
    if (obj->k == V_STR && idx->k == V_INT) {
        int64_t n = (int64_t)cp_count(obj);
        int64_t i = idx->i < 0 ? idx->i + n : idx->i;
        if (i < 0 || i >= n) {
            *out = k_undef;
            return KINFER_OK;
        }
        size_t b = cp_offset(obj, (size_t)i), e = cp_offset(obj, (size_t)i + 1);
        str_part part = {obj, b, e - b};
        return join(r, &part, 1, out);
    }
    if (obj->k == V_NONE)
        return fail(r, "subscript of none");
    *out = k_undef;
    return KINFER_OK;
}

/* Python slice bounds over n items. */
static void slice_bounds(const val *a, const val *b, int64_t n, int64_t *lo, int64_t *hi) {
    *lo = a ? a->i : 0;
    *hi = b ? b->i : n;
    if (*lo < 0)
        *lo += n;
    if (*hi < 0)
        *hi += n;
    *lo = *lo < 0 ? 0 : *lo > n ? n : *lo;
    *hi = *hi < *lo ? *lo : *hi > n ? n : *hi;
}

static kinfer_err eval_slice(render *r, const ct_expr *e, frame *f, val *out) {
    val obj, lo_v, hi_v;
    kinfer_err rc = eval(r, e->a, f, &obj);
    if (rc == KINFER_OK && e->b)
        rc = eval(r, e->b, f, &lo_v);
    if (rc == KINFER_OK && e->c)
        rc = eval(r, e->c, f, &hi_v);
    if (rc != KINFER_OK)
        return rc;
    if ((e->b && lo_v.k != V_INT) || (e->c && hi_v.k != V_INT))
        return fail(r, "slice bounds must be integers");
    int64_t lo, hi;
    if (obj.k == V_LIST) {
        slice_bounds(e->b ? &lo_v : NULL, e->c ? &hi_v : NULL, (int64_t)obj.n, &lo, &hi);
        *out = (val){.k = V_LIST, .items = obj.items + lo, .n = (size_t)(hi - lo)};
        return KINFER_OK;
    }
    if (obj.k == V_STR) {
        slice_bounds(e->b ? &lo_v : NULL, e->c ? &hi_v : NULL, (int64_t)cp_count(&obj), &lo, &hi);
        size_t b = cp_offset(&obj, (size_t)lo), en = cp_offset(&obj, (size_t)hi);
        str_part part = {&obj, b, en - b};
        return join(r, &part, 1, out);
    }
    return fail(r, "cannot slice a %s", kind_name(obj.k));
}

static bool name_is(const ct_expr *e, const char *s) {
    return e->len == strlen(s) && memcmp(e->str, s, e->len) == 0;
}

static kinfer_err eval_filter(render *r, const ct_expr *e, const val *v, val *out) {
    if (name_is(e, "trim")) {
        if (v->k != V_STR)
            return fail(r, "trim of a %s", kind_name(v->k));
        return strip(r, v, true, true, out);
    }
    if (name_is(e, "length") || name_is(e, "count")) {
        if (v->k == V_STR)
            *out = (val){.k = V_INT, .i = (int64_t)cp_count(v)};
        else if (v->k == V_LIST || v->k == V_DICT)
            *out = (val){.k = V_INT, .i = (int64_t)v->n};
        else
            return fail(r, "length of a %s", kind_name(v->k));
        return KINFER_OK;
    }
    if (name_is(e, "upper") || name_is(e, "lower")) {
        if (v->k != V_STR)
            return fail(r, "%.*s of a %s", (int)e->len, e->str, kind_name(v->k));
        return change_case(r, v, e->str[0] == 'u', out);
    }
    if (name_is(e, "string"))
        return to_str(r, v, out);
    /* first / last */
    bool first = name_is(e, "first");
    if (v->k == V_LIST) {
        *out = v->n ? v->items[first ? 0 : v->n - 1] : k_undef;
        return KINFER_OK;
    }
    if (v->k == V_STR) {
        val idx = {.k = V_INT, .i = first ? 0 : -1};
        return get_item(r, v, &idx, out);
    }
    return fail(r, "%.*s of a %s", (int)e->len, e->str, kind_name(v->k));
}

static kinfer_err eval_test(const ct_expr *e, const val *v, val *out) {
    bool t;
    if (name_is(e, "defined"))
        t = v->k != V_UNDEF;
    else if (name_is(e, "undefined"))
        t = v->k == V_UNDEF;
    else if (name_is(e, "none"))
        t = v->k == V_NONE;
    else if (name_is(e, "string"))
        t = v->k == V_STR;
    else if (name_is(e, "number"))
        t = v->k == V_INT || v->k == V_BOOL; /* Python: bool is a Number */
    else if (name_is(e, "boolean"))
        t = v->k == V_BOOL;
    else if (name_is(e, "true"))
        t = v->k == V_BOOL && v->i;
    else /* false */
        t = v->k == V_BOOL && !v->i;
    *out = (val){.k = V_BOOL, .i = t != e->negate};
    return KINFER_OK;
}

static kinfer_err eval_method(render *r, const ct_expr *e, frame *f, val *out) {
    val obj;
    kinfer_err rc = eval(r, e->a, f, &obj);
    if (rc != KINFER_OK)
        return rc;
    if (obj.k != V_STR)
        return fail(r, "method %.*s of a %s", (int)e->len, e->str, kind_name(obj.k));
    bool affix = name_is(e, "startswith") || name_is(e, "endswith");
    if (e->nitems != (affix ? 1u : 0u))
        return fail(r, "method %.*s: wrong number of arguments", (int)e->len, e->str);
    if (affix) {
        val arg;
        if ((rc = eval(r, e->items[0], f, &arg)) != KINFER_OK)
            return rc;
        if (arg.k != V_STR)
            return fail(r, "%.*s needs a string", (int)e->len, e->str);
        bool hit = arg.len <= obj.len &&
                   memcmp(obj.s + (e->str[0] == 's' ? 0 : obj.len - arg.len), arg.s, arg.len) == 0;
        *out = (val){.k = V_BOOL, .i = hit};
        return KINFER_OK;
    }
    if (name_is(e, "strip"))
        return strip(r, &obj, true, true, out);
    if (name_is(e, "lstrip"))
        return strip(r, &obj, true, false, out);
    if (name_is(e, "rstrip"))
        return strip(r, &obj, false, true, out);
    return change_case(r, &obj, name_is(e, "upper"), out);
}

static bool as_int(const val *v, int64_t *i) {
    if (v->k != V_INT && v->k != V_BOOL)
        return false;
    *i = v->i;
    return true;
}

static kinfer_err eval_bin(render *r, const ct_expr *e, frame *f, val *out) {
    val a, b;
    kinfer_err rc = eval(r, e->a, f, &a);
    if (rc == KINFER_OK)
        rc = eval(r, e->b, f, &b);
    if (rc != KINFER_OK)
        return rc;
    int64_t x, y;
    bool ints = as_int(&a, &x) && as_int(&b, &y);
    switch (e->op) {
    case CT_OP_ADD:
        if (ints) {
            if (__builtin_add_overflow(x, y, &out->i))
                return fail(r, "integer overflow");
            out->k = V_INT;
            return KINFER_OK;
        }
        if (a.k == V_STR && b.k == V_STR) {
            str_part parts[2] = {{&a, 0, a.len}, {&b, 0, b.len}};
            return join(r, parts, 2, out);
        }
        if (a.k == V_LIST && b.k == V_LIST) {
            val *items = ct_alloc(&r->arena, (a.n + b.n + 1) * sizeof(val));
            if (!items)
                return nomem(r);
            memcpy(items, a.items, a.n * sizeof(val));
            memcpy(items + a.n, b.items, b.n * sizeof(val));
            *out = (val){.k = V_LIST, .items = items, .n = a.n + b.n};
            return KINFER_OK;
        }
        return fail(r, "cannot add a %s and a %s", kind_name(a.k), kind_name(b.k));
    case CT_OP_SUB:
    case CT_OP_MUL:
    case CT_OP_MOD:
        if (!ints)
            return fail(r, "arithmetic on a %s and a %s", kind_name(a.k), kind_name(b.k));
        out->k = V_INT;
        if (e->op == CT_OP_MOD) {
            if (y == 0)
                return fail(r, "modulo by zero");
            int64_t m = x % y; /* Python: the sign of the divisor */
            out->i = (m != 0 && ((m < 0) != (y < 0))) ? m + y : m;
            return KINFER_OK;
        }
        if (e->op == CT_OP_SUB ? __builtin_sub_overflow(x, y, &out->i)
                               : __builtin_mul_overflow(x, y, &out->i))
            return fail(r, "integer overflow");
        return KINFER_OK;
    case CT_OP_CONCAT: {
        val sa, sb;
        if ((rc = to_str(r, &a, &sa)) != KINFER_OK || (rc = to_str(r, &b, &sb)) != KINFER_OK)
            return rc;
        str_part parts[2] = {{&sa, 0, sa.len}, {&sb, 0, sb.len}};
        return join(r, parts, 2, out);
    }
    case CT_OP_EQ:
    case CT_OP_NE:
        *out = (val){.k = V_BOOL, .i = equal(&a, &b) == (e->op == CT_OP_EQ)};
        return KINFER_OK;
    case CT_OP_LT:
    case CT_OP_GT:
    case CT_OP_LE:
    case CT_OP_GE: {
        int c;
        if (ints) {
            c = x < y ? -1 : x > y;
        } else if (a.k == V_STR && b.k == V_STR) {
            size_t n = a.len < b.len ? a.len : b.len;
            c = memcmp(a.s, b.s, n);
            if (c == 0)
                c = a.len < b.len ? -1 : a.len > b.len;
        } else {
            return fail(r, "cannot compare a %s and a %s", kind_name(a.k), kind_name(b.k));
        }
        bool t = e->op == CT_OP_LT   ? c < 0
                 : e->op == CT_OP_GT ? c > 0
                 : e->op == CT_OP_LE ? c <= 0
                                     : c >= 0;
        *out = (val){.k = V_BOOL, .i = t};
        return KINFER_OK;
    }
    default: { /* in, not in */
        bool hit = false;
        if (b.k == V_STR && a.k == V_STR) {
            for (size_t i = 0; !hit && i + a.len <= b.len; i++)
                hit = memcmp(b.s + i, a.s, a.len) == 0;
        } else if (b.k == V_LIST) {
            for (size_t i = 0; !hit && i < b.n; i++)
                hit = equal(&a, &b.items[i]);
        } else if (b.k == V_DICT) {
            for (size_t i = 0; !hit && i < b.n; i++)
                hit = equal(&a, &b.keys[i]);
        } else {
            return fail(r, "'in' a %s", kind_name(b.k));
        }
        *out = (val){.k = V_BOOL, .i = hit == (e->op == CT_OP_IN)};
        return KINFER_OK;
    }
    }
}

static kinfer_err eval(render *r, const ct_expr *e, frame *f, val *out) {
    if (++r->depth > 200) {
        r->depth--;
        return fail(r, "expression nested too deeply");
    }
    kinfer_err rc = KINFER_OK;
    val a;
    switch (e->kind) {
    case CT_E_STR:
        *out = str_val(e->str, e->len, 1);
        break;
    case CT_E_INT:
        *out = (val){.k = V_INT, .i = e->ival};
        break;
    case CT_E_BOOL:
        *out = (val){.k = V_BOOL, .i = e->ival};
        break;
    case CT_E_NONE:
        *out = (val){.k = V_NONE};
        break;
    case CT_E_LIST: {
        val *items = ct_alloc(&r->arena, (e->nitems + 1) * sizeof(val));
        if (!items) {
            rc = nomem(r);
            break;
        }
        for (size_t i = 0; i < e->nitems && rc == KINFER_OK; i++)
            rc = eval(r, e->items[i], f, &items[i]);
        *out = (val){.k = V_LIST, .items = items, .n = e->nitems};
        break;
    }
    case CT_E_NAME: {
        const val *v = lookup(f, e->str, e->len);
        *out = v ? *v : k_undef;
        break;
    }
    case CT_E_ATTR:
        if ((rc = eval(r, e->a, f, &a)) != KINFER_OK)
            break;
        if (a.k == V_UNDEF) {
            rc = fail(r, "attribute '%.*s' of an undefined value", (int)e->len, e->str);
            break;
        }
        {
            const val *v = a.k == V_DICT ? dict_get(&a, e->str, e->len) : NULL;
            *out = v ? *v : k_undef;
        }
        break;
    case CT_E_INDEX: {
        val idx;
        if ((rc = eval(r, e->a, f, &a)) == KINFER_OK && (rc = eval(r, e->b, f, &idx)) == KINFER_OK)
            rc = get_item(r, &a, &idx, out);
        break;
    }
    case CT_E_SLICE:
        rc = eval_slice(r, e, f, out);
        break;
    case CT_E_METHOD:
        rc = eval_method(r, e, f, out);
        break;
    case CT_E_CALL: /* raise_exception */
        if ((rc = eval(r, e->items[0], f, &a)) == KINFER_OK) {
            val s;
            if ((rc = to_str(r, &a, &s)) == KINFER_OK)
                rc = kinfer_error_set(r->err, KINFER_ERR_INVALID_REQUEST,
                                      "the chat template refused the messages: %.*s",
                                      (int)(s.len > 300 ? 300 : s.len), s.s);
        }
        break;
    case CT_E_FILTER:
        if ((rc = eval(r, e->a, f, &a)) == KINFER_OK)
            rc = eval_filter(r, e, &a, out);
        break;
    case CT_E_TEST:
        if ((rc = eval(r, e->a, f, &a)) == KINFER_OK)
            rc = eval_test(e, &a, out);
        break;
    case CT_E_BIN:
        rc = eval_bin(r, e, f, out);
        break;
    case CT_E_NOT:
        if ((rc = eval(r, e->a, f, &a)) == KINFER_OK)
            *out = (val){.k = V_BOOL, .i = !truthy(&a)};
        break;
    case CT_E_NEG:
        if ((rc = eval(r, e->a, f, &a)) == KINFER_OK) {
            if (a.k != V_INT && a.k != V_BOOL)
                rc = fail(r, "negation of a %s", kind_name(a.k));
            else
                *out = (val){.k = V_INT, .i = -a.i};
        }
        break;
    case CT_E_AND:
    case CT_E_OR:
        /* Python: the deciding operand itself, not a boolean */
        if ((rc = eval(r, e->a, f, &a)) == KINFER_OK) {
            if (truthy(&a) == (e->kind == CT_E_OR))
                *out = a;
            else
                rc = eval(r, e->b, f, out);
        }
        break;
    case CT_E_COND:
        if ((rc = eval(r, e->a, f, &a)) == KINFER_OK) {
            if (truthy(&a))
                rc = eval(r, e->b, f, out);
            else if (e->c)
                rc = eval(r, e->c, f, out);
            else
                *out = k_undef;
        }
        break;
    }
    if (rc == KINFER_OK && r->arena.failed)
        rc = nomem(r);
    r->depth--;
    return rc;
}

/* --- statements ----------------------------------------------------------------- */

static kinfer_err emit(render *r, const val *s) {
    if (r->len + s->len + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 1024;
        while (cap < r->len + s->len + 1)
            cap *= 2;
        char *o = realloc(r->out, cap);
        if (o)
            r->out = o;
        uint8_t *t = o ? realloc(r->out_tr, cap) : NULL;
        if (!t)
            return nomem(r);
        r->out_tr = t;
        r->cap = cap;
    }
    memcpy(r->out + r->len, s->s, s->len);
    for (size_t i = 0; i < s->len; i++)
        r->out_tr[r->len + i] = trust_at(s, i);
    r->len += s->len;
    return KINFER_OK;
}

static kinfer_err exec_body(render *r, const ct_body *b, frame *f);

static kinfer_err exec_for(render *r, const ct_stmt *s, frame *f) {
    val it;
    kinfer_err rc = eval(r, s->expr, f, &it);
    if (rc != KINFER_OK)
        return rc;
    if (it.k == V_UNDEF)
        return KINFER_OK; /* Jinja: an undefined iterable is empty */
    if (it.k != V_LIST && it.k != V_DICT)
        return fail(r, "cannot loop over a %s", kind_name(it.k));
    static const char *const loop_keys[] = {"index",  "index0",   "first",    "last",
                                            "length", "revindex", "revindex0"};
    val *keys = ct_alloc(&r->arena, 7 * sizeof(val));
    if (!keys)
        return nomem(r);
    for (size_t k = 0; k < 7; k++)
        keys[k] = str_val(loop_keys[k], strlen(loop_keys[k]), 1);
    size_t n = it.n;
    for (size_t i = 0; i < n && rc == KINFER_OK; i++) {
        frame inner = {.up = f};
        val *lv = ct_alloc(&r->arena, 7 * sizeof(val));
        if (!lv)
            return nomem(r);
        int64_t idx = (int64_t)i, len = (int64_t)n;
        lv[0] = (val){.k = V_INT, .i = idx + 1};
        lv[1] = (val){.k = V_INT, .i = idx};
        lv[2] = (val){.k = V_BOOL, .i = i == 0};
        lv[3] = (val){.k = V_BOOL, .i = i + 1 == n};
        lv[4] = (val){.k = V_INT, .i = len};
        lv[5] = (val){.k = V_INT, .i = len - idx};
        lv[6] = (val){.k = V_INT, .i = len - idx - 1};
        val loop = {.k = V_DICT, .keys = keys, .items = lv, .n = 7};
        val item = it.k == V_LIST ? it.items[i] : it.keys[i];
        if ((rc = assign(r, &inner, "loop", 4, &loop)) == KINFER_OK &&
            (rc = assign(r, &inner, s->text, s->len, &item)) == KINFER_OK)
            rc = exec_body(r, &s->body, &inner);
    }
    return rc;
}

static kinfer_err exec_body(render *r, const ct_body *b, frame *f) {
    kinfer_err rc = KINFER_OK;
    for (size_t i = 0; i < b->n && rc == KINFER_OK; i++) {
        const ct_stmt *s = b->stmts[i];
        val v, sv;
        switch (s->kind) {
        case CT_S_TEXT:
            v = str_val(s->text, s->len, 1);
            rc = emit(r, &v);
            break;
        case CT_S_OUT:
            if ((rc = eval(r, s->expr, f, &v)) == KINFER_OK &&
                (rc = to_str(r, &v, &sv)) == KINFER_OK)
                rc = emit(r, &sv);
            break;
        case CT_S_IF:
            for (size_t k = 0; k < s->nbranches && rc == KINFER_OK; k++) {
                bool take = true;
                if (s->conds[k]) {
                    if ((rc = eval(r, s->conds[k], f, &v)) != KINFER_OK)
                        break;
                    take = truthy(&v);
                }
                if (take) {
                    rc = exec_body(r, &s->bodies[k], f);
                    break;
                }
            }
            break;
        case CT_S_FOR:
            if (++r->depth > 64) {
                rc = fail(r, "loops nested too deeply");
            } else {
                rc = exec_for(r, s, f);
            }
            r->depth--;
            break;
        case CT_S_SET:
            if ((rc = eval(r, s->expr, f, &v)) == KINFER_OK)
                rc = assign(r, f, s->text, s->len, &v);
            break;
        }
    }
    return rc;
}

kinfer_err kinfer_chat_template_render(const kinfer_chat_template *t, const kinfer_chat_vars *vars,
                                       char **text, uint8_t **trusted, size_t *len,
                                       kinfer_error *err) {
    *text = NULL;
    *trusted = NULL;
    *len = 0;
    render r = {.err = err};
    frame root = {0};
    kinfer_err rc = KINFER_OK;
    val *msgs = ct_alloc(&r.arena, (vars->nmessages + 1) * sizeof(val));
    val *mkeys = ct_alloc(&r.arena, 2 * sizeof(val));
    if (!msgs || !mkeys)
        rc = nomem(&r);
    if (rc == KINFER_OK) {
        mkeys[0] = str_val("role", 4, 1);
        mkeys[1] = str_val("content", 7, 1);
        for (size_t i = 0; i < vars->nmessages && rc == KINFER_OK; i++) {
            val *fields = ct_alloc(&r.arena, 2 * sizeof(val));
            if (!fields) {
                rc = nomem(&r);
                break;
            }
            const kinfer_chat_message *m = &vars->messages[i];
            fields[0] = str_val(m->role.ptr ? m->role.ptr : "", m->role.len, 0);
            fields[1] = str_val(m->content.ptr ? m->content.ptr : "", m->content.len, 0);
            msgs[i] = (val){.k = V_DICT, .keys = mkeys, .items = fields, .n = 2};
        }
    }
    val mv = {.k = V_LIST, .items = msgs, .n = vars->nmessages};
    val agp = {.k = V_BOOL, .i = vars->add_generation_prompt};
    if (rc == KINFER_OK)
        rc = assign(&r, &root, "messages", 8, &mv);
    if (rc == KINFER_OK)
        rc = assign(&r, &root, "add_generation_prompt", 21, &agp);
    if (rc == KINFER_OK && vars->bos_token) {
        val b = str_val(vars->bos_token, strlen(vars->bos_token), 1);
        rc = assign(&r, &root, "bos_token", 9, &b);
    }
    if (rc == KINFER_OK && vars->eos_token) {
        val e = str_val(vars->eos_token, strlen(vars->eos_token), 1);
        rc = assign(&r, &root, "eos_token", 9, &e);
    }
    if (rc == KINFER_OK)
        rc = exec_body(&r, &t->root, &root);
    val nul = str_val("", 0, 1);
    if (rc == KINFER_OK)
        rc = emit(&r, &nul); /* makes sure the buffers exist */
    ct_arena_free(&r.arena);
    if (rc != KINFER_OK) {
        free(r.out);
        free(r.out_tr);
        return rc;
    }
    r.out[r.len] = '\0';
    *text = r.out;
    *trusted = r.out_tr;
    *len = r.len;
    return KINFER_OK;
}
