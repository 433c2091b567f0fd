/* bert_request.c — the request contract of kind `bert` (see bert_model.h):
 * checking inputs and parameters, computing the cost in tokens, and per
 * batch re-reading the items into one unpadded token stream. Shared by every
 * bert backend so that they agree on item handling. No compute here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bert_model.h"

typedef struct bert_inputs {
    const kinfer_tensor *text; /* STRING [n], or NULL */
    const kinfer_tensor *ids, *mask, *types;
    uint32_t n, seq;
    bool normalize, truncate;
} bert_inputs;

static bool str_eq(kinfer_str s, const char *lit) {
    size_t l = strlen(lit);
    return s.len == l && memcmp(s.ptr, lit, l) == 0;
}

static kinfer_err parse_bool(const kinfer_param *p, bool *out, kinfer_error *err) {
    if (str_eq(p->value, "true") || str_eq(p->value, "1")) {
        *out = true;
    } else if (str_eq(p->value, "false") || str_eq(p->value, "0")) {
        *out = false;
    } else {
        return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST,
                                "parameter %.*s=%.*s: expected true or false", (int)p->key.len,
                                p->key.ptr, (int)(p->value.len > 32 ? 32 : p->value.len),
                                p->value.ptr);
    }
    return KINFER_OK;
}

static int64_t rd_i64(const kinfer_tensor *t, size_t i) {
    int64_t v;
    memcpy(&v, (const char *)t->data + i * 8, 8); /* wire data may be unaligned */
    return v;
}

static kinfer_err check_int_tensor(const kinfer_tensor *t, const char *name, uint32_t n,
                                   uint32_t seq, kinfer_error *err) {
    if (t->dtype != KINFER_DTYPE_INT64 || t->ndim != 2 || t->shape[0] != n || t->shape[1] != seq)
        return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST,
                                "input %s must be INT64 [%u, %u] like input_ids", name, n, seq);
    return kinfer_tensor_check(t, (uint64_t)n * seq, err);
}

/* Finds the inputs and parameters; checks shapes and dtypes, not values. */
static kinfer_err parse_inputs(const bert_model *m, const kinfer_tensor *inputs, size_t ninputs,
                               const kinfer_param *params, size_t nparams, bert_inputs *in,
                               kinfer_error *err) {
    memset(in, 0, sizeof(*in));
    in->normalize = m->normalize;
    in->truncate = true;
    for (size_t i = 0; i < nparams; i++) {
        kinfer_err rc = KINFER_OK;
        if (str_eq(params[i].key, "normalize"))
            rc = parse_bool(&params[i], &in->normalize, err);
        else if (str_eq(params[i].key, "truncate"))
            rc = parse_bool(&params[i], &in->truncate, err);
        if (rc != KINFER_OK)
            return rc;
    }
    if (ninputs == 1 && inputs[0].dtype == KINFER_DTYPE_STRING) {
        const kinfer_tensor *t = &inputs[0];
        if (t->ndim != 1 || t->shape[0] < 1 || t->shape[0] > UINT32_MAX)
            return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST,
                                    "input %.*s must be STRING [n] with n >= 1 texts",
                                    (int)t->name.len, t->name.ptr);
        kinfer_err rc = kinfer_tensor_check(t, UINT32_MAX, err);
        if (rc != KINFER_OK)
            return rc;
        in->text = t;
        in->n = (uint32_t)t->shape[0];
        return KINFER_OK;
    }
    for (size_t i = 0; i < ninputs; i++) {
        const kinfer_tensor *t = &inputs[i];
        const kinfer_tensor **slot = str_eq(t->name, "input_ids")        ? &in->ids
                                     : str_eq(t->name, "attention_mask") ? &in->mask
                                     : str_eq(t->name, "token_type_ids") ? &in->types
                                                                         : NULL;
        if (!slot)
            return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST,
                                    "unexpected input %.*s: send one STRING tensor of texts, or "
                                    "INT64 input_ids [+ attention_mask, token_type_ids]",
                                    (int)(t->name.len > 64 ? 64 : t->name.len), t->name.ptr);
        if (*slot)
            return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST, "input %.*s given twice",
                                    (int)t->name.len, t->name.ptr);
        *slot = t;
    }
    if (!in->ids)
        return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST,
                                "no input: send one STRING tensor of texts, or INT64 input_ids");
    const kinfer_tensor *t = in->ids;
    if (t->dtype != KINFER_DTYPE_INT64 || t->ndim != 2 || t->shape[0] < 1 || t->shape[1] < 1 ||
        t->shape[0] > UINT32_MAX || t->shape[1] > m->max_positions)
        return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST,
                                "input_ids must be INT64 [n, seq] with n >= 1 and 1 <= seq <= %u",
                                m->max_positions);
    in->n = (uint32_t)t->shape[0];
    in->seq = (uint32_t)t->shape[1];
    kinfer_err rc = kinfer_tensor_check(t, (uint64_t)in->n * in->seq, err);
    if (rc == KINFER_OK && in->mask)
        rc = check_int_tensor(in->mask, "attention_mask", in->n, in->seq, err);
    if (rc == KINFER_OK && in->types)
        rc = check_int_tensor(in->types, "token_type_ids", in->n, in->seq, err);
    return rc;
}

/* Values of the pre-tokenized inputs; *max_len = most kept tokens in a row. */
static kinfer_err check_ids(const bert_model *m, const bert_inputs *in, uint32_t *max_len,
                            kinfer_error *err) {
    *max_len = 0;
    for (uint32_t r = 0; r < in->n; r++) {
        uint32_t kept = 0;
        for (uint32_t c = 0; c < in->seq; c++) {
            size_t i = (size_t)r * in->seq + c;
            int64_t id = rd_i64(in->ids, i);
            if (id < 0 || id >= m->vocab)
                return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST,
                                        "input_ids[%u, %u] = %lld outside the vocabulary [0, %u)",
                                        r, c, (long long)id, m->vocab);
            int64_t mk = in->mask ? rd_i64(in->mask, i) : 1;
            if (mk != 0 && mk != 1)
                return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST,
                                        "attention_mask[%u, %u] = %lld: must be 0 or 1", r, c,
                                        (long long)mk);
            if (c == 0 && mk == 0 && (m->pooling & BERT_POOL_CLS || m->classifier))
                return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST,
                                        "attention_mask[%u, 0] is 0 but this model reads the "
                                        "first token",
                                        r);
            int64_t ty = in->types ? rd_i64(in->types, i) : 0;
            if (ty < 0 || ty >= m->type_vocab)
                return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST,
                                        "token_type_ids[%u, %u] = %lld outside [0, %u)", r, c,
                                        (long long)ty, m->type_vocab);
            kept += (uint32_t)mk;
        }
        if (kept == 0)
            return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST,
                                    "attention_mask row %u has no token", r);
        if (kept > *max_len)
            *max_len = kept;
    }
    return KINFER_OK;
}

static kinfer_err check_texts(const bert_model *m, const bert_inputs *in, int32_t *scratch,
                              uint32_t *max_len, kinfer_error *err) {
    *max_len = 0;
    for (uint32_t i = 0; i < in->n; i++) {
        uint32_t n = 0;
        kinfer_str s = in->text->strings[i];
        kinfer_err rc = kinfer_tokenizer_encode(m->tok, s.ptr, s.len, m->max_seq_len, in->truncate,
                                                scratch, &n, NULL, err);
        if (rc != KINFER_OK)
            return kinfer_error_prefix(err, "text %u", i);
        if (n > *max_len)
            *max_len = n;
    }
    return KINFER_OK;
}

kinfer_err bert_check_request(const bert_model *m, const kinfer_tensor *inputs, size_t ninputs,
                              const kinfer_param *params, size_t nparams, kinfer_request_cost *cost,
                              kinfer_error *err) {
    bert_inputs in;
    kinfer_err rc = parse_inputs(m, inputs, ninputs, params, nparams, &in, err);
    if (rc != KINFER_OK)
        return rc;
    uint32_t max_len = 0;
    if (in.text) {
        int32_t *scratch = malloc(m->max_seq_len * sizeof(int32_t));
        if (!scratch)
            return kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
        rc = check_texts(m, &in, scratch, &max_len, err);
        free(scratch);
    } else {
        rc = check_ids(m, &in, &max_len, err);
    }
    if (rc != KINFER_OK)
        return rc;
    uint64_t tokens = (uint64_t)in.n * max_len;
    if (tokens > UINT32_MAX)
        return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST,
                                "request of %llu tokens is too big", (unsigned long long)tokens);
    cost->rows = in.n;
    cost->max_len = max_len;
    cost->tokens = (uint32_t)tokens;
    return KINFER_OK;
}

/* --- batch packing --------------------------------------------------------- */

void bert_packed_free(bert_packed *p) {
    free(p->ids);
    free(p->pos);
    free(p->types);
    free(p->seq_start);
    free(p->seq_item);
    free(p->item_normalize);
    free(p->item_first);
    free(p->scratch);
    memset(p, 0, sizeof(*p));
}

static bool grow(void **ptr, size_t elem, size_t *cap, size_t need) {
    if (need <= *cap)
        return true;
    size_t n = *cap ? *cap : 256;
    while (n < need)
        n *= 2;
    void *q = realloc(*ptr, n * elem);
    if (!q)
        return false;
    *ptr = q;
    *cap = n;
    return true;
}

static bool ensure_tokens(bert_packed *p, size_t need) {
    size_t c1 = p->cap_tokens, c2 = p->cap_tokens, c3 = p->cap_tokens;
    bool ok = grow((void **)&p->ids, sizeof(int32_t), &c1, need) &&
              grow((void **)&p->pos, sizeof(int32_t), &c2, need) &&
              grow((void **)&p->types, sizeof(int32_t), &c3, need);
    if (ok)
        p->cap_tokens = c1;
    return ok;
}

static bool ensure_seqs(bert_packed *p, size_t need) {
    size_t c1 = p->cap_seqs, c2 = p->cap_seqs;
    bool ok = grow((void **)&p->seq_start, sizeof(uint32_t), &c1, need + 1) &&
              grow((void **)&p->seq_item, sizeof(uint32_t), &c2, need + 1);
    if (ok)
        p->cap_seqs = c1;
    return ok;
}

static void fail_item(kinfer_batch_item *it, const kinfer_error *e) {
    it->status = KINFER_ERR_INVALID_REQUEST;
    size_t n = strnlen(e->msg, sizeof(it->error) - 1);
    memcpy(it->error, e->msg, n); /* messages longer than the item's field are cut */
    it->error[n] = '\0';
}

/* Appends one sequence of n tokens; the caller fills ids/types. */
static void open_seq(bert_packed *p, uint32_t item, uint32_t n) {
    p->seq_item[p->nseqs] = item;
    p->seq_start[p->nseqs] = p->ntokens;
    p->nseqs++;
    p->ntokens += n;
    p->seq_start[p->nseqs] = p->ntokens;
    if (n > p->max_len)
        p->max_len = n;
}

static kinfer_err pack_texts(const bert_model *m, const bert_inputs *in, uint32_t item,
                             bert_packed *p, kinfer_error *err) {
    for (uint32_t i = 0; i < in->n; i++) {
        uint32_t n = 0;
        kinfer_str s = in->text->strings[i];
        kinfer_err rc = kinfer_tokenizer_encode(m->tok, s.ptr, s.len, m->max_seq_len, in->truncate,
                                                p->scratch, &n, NULL, err);
        if (rc != KINFER_OK)
            return kinfer_error_prefix(err, "text %u", i);
        if (!ensure_tokens(p, (size_t)p->ntokens + n))
            return kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
        uint32_t base = p->ntokens;
        open_seq(p, item, n);
        for (uint32_t k = 0; k < n; k++) {
            p->ids[base + k] = p->scratch[k];
            p->pos[base + k] = (int32_t)k;
            p->types[base + k] = 0;
        }
    }
    return KINFER_OK;
}

/* Tokens whose mask is 0 are left out: as keys they would be masked, and
 * their own outputs are never pooled, so the result is the padded one. */
static kinfer_err pack_ids(const bert_inputs *in, uint32_t item, bert_packed *p,
                           kinfer_error *err) {
    if (!ensure_tokens(p, (size_t)p->ntokens + (size_t)in->n * in->seq))
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
    for (uint32_t r = 0; r < in->n; r++) {
        uint32_t base = p->ntokens, kept = 0;
        for (uint32_t c = 0; c < in->seq; c++) {
            size_t i = (size_t)r * in->seq + c;
            if (in->mask && rd_i64(in->mask, i) == 0)
                continue;
            p->ids[base + kept] = (int32_t)rd_i64(in->ids, i);
            p->types[base + kept] = in->types ? (int32_t)rd_i64(in->types, i) : 0;
            p->pos[base + kept] = (int32_t)c;
            kept++;
        }
        open_seq(p, item, kept);
    }
    return KINFER_OK;
}

kinfer_err bert_batch_pack(const bert_model *m, kinfer_batch_item *items, size_t nitems,
                           bert_packed *p, kinfer_error *err) {
    p->ntokens = p->nseqs = p->max_len = 0;
    size_t c1 = p->cap_items, c2 = p->cap_items;
    if (!grow((void **)&p->item_normalize, sizeof(bool), &c1, nitems) ||
        !grow((void **)&p->item_first, sizeof(uint32_t), &c2, nitems))
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
    p->cap_items = c1;
    if (!p->scratch && !(p->scratch = malloc(m->max_seq_len * sizeof(int32_t))))
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < nitems; i++) {
        kinfer_batch_item *it = &items[i];
        p->item_first[i] = p->nseqs;
        if (it->status != KINFER_OK)
            continue;
        bert_inputs in;
        kinfer_error e;
        kinfer_err rc = parse_inputs(m, it->inputs, it->ninputs, it->params, it->nparams, &in, &e);
        uint32_t max_len;
        if (rc == KINFER_OK && !in.text)
            rc = check_ids(m, &in, &max_len, &e);
        if (rc == KINFER_OK && in.n != it->cost.rows)
            rc = kinfer_error_set(&e, KINFER_ERR_INVALID_REQUEST,
                                  "request has %u rows but was costed at %u", in.n, it->cost.rows);
        if (rc == KINFER_OK && !ensure_seqs(p, (size_t)p->nseqs + in.n))
            return kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
        uint32_t t0 = p->ntokens, s0 = p->nseqs;
        if (rc == KINFER_OK)
            rc = in.text ? pack_texts(m, &in, (uint32_t)i, p, &e)
                         : pack_ids(&in, (uint32_t)i, p, &e);
        if (rc == KINFER_ERR_NOMEM)
            return kinfer_error_set(err, rc, "%s", e.msg);
        if (rc != KINFER_OK) {
            p->ntokens = t0; /* drop what this item appended */
            p->nseqs = s0;
            fail_item(it, &e);
            continue;
        }
        p->item_normalize[i] = in.normalize;
    }
    return KINFER_OK;
}

void bert_batch_set_outputs(const bert_model *m, kinfer_batch_item *items, size_t nitems,
                            const bert_packed *p, const float *pooled, const float *logits,
                            const kinfer_str *labels) {
    for (size_t i = 0; i < nitems; i++) {
        kinfer_batch_item *it = &items[i];
        if (it->status != KINFER_OK)
            continue;
        uint32_t s0 = p->item_first[i], n = it->cost.rows;
        kinfer_tensor *o = &it->outputs[0];
        memset(o, 0, sizeof(*o) * (m->classifier ? 3 : 1));
        o->name = (kinfer_str){"embedding", 9};
        o->dtype = KINFER_DTYPE_FP32;
        o->ndim = 2;
        o->shape[0] = n;
        o->shape[1] = m->out_dim;
        o->data = pooled + (size_t)s0 * m->out_dim;
        o->nbytes = (size_t)n * m->out_dim * sizeof(float);
        it->noutputs = 1;
        if (!m->classifier)
            continue;
        o = &it->outputs[1];
        o->name = (kinfer_str){"logits", 6};
        o->dtype = KINFER_DTYPE_FP32;
        o->ndim = 2;
        o->shape[0] = n;
        o->shape[1] = m->num_labels;
        o->data = logits + (size_t)s0 * m->num_labels;
        o->nbytes = (size_t)n * m->num_labels * sizeof(float);
        o = &it->outputs[2];
        o->name = (kinfer_str){"label", 5};
        o->dtype = KINFER_DTYPE_STRING;
        o->ndim = 1;
        o->shape[0] = n;
        o->strings = labels + s0;
        o->nstrings = n;
        it->noutputs = 3;
    }
}
