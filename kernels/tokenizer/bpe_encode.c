/* bpe_encode.c — text to ids and back with byte-level BPE: verbatim tokens
 * first (control tokens only where the caller trusts the text), then the
 * pre-tokenizer, then per word the merges by rank (lowest first; equal
 * ranks leftmost first, as both references do) over the word's byte
 * tokens, using a heap so long words stay O(n log n). Also the accessors. */
#include <stdlib.h>
#include <string.h>

#include "bpe_private.h"

uint32_t kinfer_bpe_vocab_size(const kinfer_bpe *bpe) {
    return bpe->vocab.size;
}

int32_t kinfer_bpe_token_id(const kinfer_bpe *bpe, const char *s, size_t len) {
    return tok_vocab_get2(&bpe->vocab, "", 0, s, len);
}

kinfer_bpe_token_type kinfer_bpe_token_type_of(const kinfer_bpe *bpe, int32_t id) {
    if (id < 0 || (uint32_t)id >= bpe->vocab.size)
        return 0;
    return (kinfer_bpe_token_type)bpe->types[id];
}

const char *kinfer_bpe_token_text(const kinfer_bpe *bpe, int32_t id, size_t *len) {
    if (id < 0 || (uint32_t)id >= bpe->vocab.size || bpe->vocab.tok_offsets[id] == UINT32_MAX)
        return NULL;
    *len = bpe->vocab.tok_lens[id];
    return bpe->vocab.arena + bpe->vocab.tok_offsets[id];
}

const char *kinfer_bpe_pre_name(const kinfer_bpe *bpe) {
    return bpe->pre == BPE_PRE_GPT2 ? "gpt2" : "digits+gpt2";
}

int32_t kinfer_bpe_bos(const kinfer_bpe *bpe) {
    return bpe->bos;
}

int32_t kinfer_bpe_eos(const kinfer_bpe *bpe) {
    return bpe->eos;
}

bool kinfer_bpe_add_bos(const kinfer_bpe *bpe) {
    return bpe->add_bos;
}

const int32_t *kinfer_bpe_eog(const kinfer_bpe *bpe, size_t *n) {
    *n = bpe->neog;
    return bpe->eog;
}

size_t kinfer_bpe_token_bytes(const kinfer_bpe *bpe, int32_t id, bool special, char *out,
                              size_t cap) {
    if (id < 0 || (uint32_t)id >= bpe->vocab.size || bpe->vocab.tok_offsets[id] == UINT32_MAX)
        return 0;
    const char *src;
    size_t len;
    uint8_t t = bpe->types[id];
    if (t == KINFER_BPE_NORMAL) {
        src = bpe->dec + bpe->dec_off[id];
        len = bpe->dec_len[id];
    } else if (t == KINFER_BPE_USER_DEFINED || special) {
        src = bpe->vocab.arena + bpe->vocab.tok_offsets[id];
        len = bpe->vocab.tok_lens[id];
    } else {
        return 0;
    }
    if (out && cap)
        memcpy(out, src, len < cap ? len : cap);
    return len;
}

kinfer_err kinfer_bpe_decode(const kinfer_bpe *bpe, const int32_t *ids, size_t n, bool special,
                             char **text, size_t *len, kinfer_error *err) {
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += kinfer_bpe_token_bytes(bpe, ids[i], special, NULL, 0);
    char *buf = malloc(total + 1);
    if (!buf)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "tokenizer: out of memory");
    size_t pos = 0;
    for (size_t i = 0; i < n; i++)
        pos += kinfer_bpe_token_bytes(bpe, ids[i], special, buf + pos, total - pos);
    buf[pos] = '\0';
    *text = buf;
    *len = pos;
    return KINFER_OK;
}

/* --- encoding ------------------------------------------------------------------ */

typedef struct heap_item {
    uint32_t rank;
    uint32_t pos; /* index of the left symbol */
    int32_t left, right;
} heap_item;

typedef struct enc_ctx {
    const kinfer_bpe *bpe;
    const char *text;
    const bpe_chars *chars;
    kinfer_bpe_ids *out;
    kinfer_error *err;
    /* per-word scratch, grown to the longest word */
    int32_t *sym;
    int32_t *next, *prev;
    heap_item *heap;
    size_t cap, heap_cap;
    char *bl; /* the word in byte-level characters (ignore_merges) */
    size_t bl_cap;
} enc_ctx;

static kinfer_err push_id(enc_ctx *c, int32_t id) {
    kinfer_bpe_ids *o = c->out;
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 64;
        int32_t *p = realloc(o->ids, cap * sizeof(*p));
        if (!p)
            return kinfer_error_set(c->err, KINFER_ERR_NOMEM, "tokenizer: out of memory");
        o->ids = p;
        o->cap = cap;
    }
    o->ids[o->n++] = id;
    return KINFER_OK;
}

static bool heap_less(const heap_item *a, const heap_item *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void heap_push(enc_ctx *c, size_t *n, heap_item it) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_less(&it, &c->heap[p]))
            break;
        c->heap[i] = c->heap[p];
        i = p;
    }
    c->heap[i] = it;
}

static heap_item heap_pop(enc_ctx *c, size_t *n) {
    heap_item top = c->heap[0], last = c->heap[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const heap_item *best = &last;
        if (l < *n && heap_less(&c->heap[l], best))
            m = l, best = &c->heap[l];
        if (r < *n && heap_less(&c->heap[r], best))
            m = r;
        if (m == i)
            break;
        c->heap[i] = c->heap[m];
        i = m;
    }
    if (*n)
        c->heap[i] = last;
    return top;
}

static kinfer_err grow_scratch(enc_ctx *c, size_t n) {
    if (n <= c->cap)
        return KINFER_OK;
    size_t cap = c->cap ? c->cap : 64;
    while (cap < n)
        cap *= 2;
    int32_t *sym = realloc(c->sym, cap * sizeof(int32_t));
    if (sym)
        c->sym = sym;
    int32_t *next = sym ? realloc(c->next, cap * sizeof(int32_t)) : NULL;
    if (next)
        c->next = next;
    int32_t *prev = next ? realloc(c->prev, cap * sizeof(int32_t)) : NULL;
    if (prev)
        c->prev = prev;
    /* every merge pushes at most two pairs: n - 1 initial + 2 per merge */
    heap_item *heap = prev ? realloc(c->heap, 3 * cap * sizeof(heap_item)) : NULL;
    if (!heap)
        return kinfer_error_set(c->err, KINFER_ERR_NOMEM, "tokenizer: out of memory");
    c->heap = heap;
    c->cap = cap;
    return KINFER_OK;
}

static void push_pair(enc_ctx *c, size_t *hn, int32_t pos) {
    int32_t r = c->next[pos];
    if (r < 0)
        return;
    const bpe_merge_slot *m = bpe_merge_find(c->bpe, c->sym[pos], c->sym[r]);
    if (m)
        heap_push(c, hn, (heap_item){m->rank, (uint32_t)pos, c->sym[pos], c->sym[r]});
}

/* ignore_merges: the whole word, in byte-level characters, if it is a token. */
static int32_t whole_word(enc_ctx *c, const uint8_t *w, size_t n) {
    if (n * 2 > c->bl_cap) {
        char *p = realloc(c->bl, n * 2);
        if (!p)
            return -1;
        c->bl = p;
        c->bl_cap = n * 2;
    }
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += tok_utf8_encode(bpe_byte_to_char(w[i]), c->bl + len);
    int32_t id = tok_vocab_get2(&c->bpe->vocab, "", 0, c->bl, len);
    return id >= 0 && c->bpe->types[id] == KINFER_BPE_NORMAL ? id : -1;
}

/* One pre-token: characters [b, e) of the text. */
static kinfer_err encode_word(void *ctx, size_t b, size_t e) {
    enc_ctx *c = ctx;
    const uint8_t *w = (const uint8_t *)c->text + c->chars->off[b];
    size_t n = c->chars->off[e] - c->chars->off[b];
    if (n == 0)
        return KINFER_OK;
    for (size_t i = 0; i < n; i++)
        if (c->bpe->byte_tok[w[i]] < 0)
            return kinfer_error_set(c->err, KINFER_ERR_INVALID_REQUEST,
                                    "byte 0x%02X at offset %zu has no token in this model's "
                                    "vocabulary",
                                    w[i], (size_t)(w - (const uint8_t *)c->text) + i);
    if (c->bpe->ignore_merges) {
        int32_t id = whole_word(c, w, n);
        if (id >= 0)
            return push_id(c, id);
    }
    if (grow_scratch(c, n) != KINFER_OK)
        return KINFER_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        c->sym[i] = c->bpe->byte_tok[w[i]];
        c->next[i] = i + 1 < n ? (int32_t)(i + 1) : -1;
        c->prev[i] = (int32_t)i - 1;
    }
    size_t hn = 0;
    for (size_t i = 0; i + 1 < n; i++)
        push_pair(c, &hn, (int32_t)i);
    while (hn) {
        heap_item it = heap_pop(c, &hn);
        int32_t l = (int32_t)it.pos, r = c->next[l];
        if (c->sym[l] != it.left || r < 0 || c->sym[r] != it.right)
            continue; /* stale: one side merged since */
        c->sym[l] = bpe_merge_find(c->bpe, it.left, it.right)->merged;
        c->sym[r] = -1;
        c->next[l] = c->next[r];
        if (c->next[r] >= 0)
            c->prev[c->next[r]] = l;
        if (c->prev[l] >= 0)
            push_pair(c, &hn, c->prev[l]);
        push_pair(c, &hn, l);
    }
    for (int32_t i = 0; i >= 0; i = c->next[i]) {
        kinfer_err rc = push_id(c, c->sym[i]);
        if (rc != KINFER_OK)
            return rc;
    }
    return KINFER_OK;
}

/* The longest verbatim token starting at byte p, or NULL. */
static const bpe_special *match_special(const kinfer_bpe *bpe, const char *text, size_t len,
                                        size_t p, const kinfer_bpe_encode_opts *o) {
    uint8_t first = (uint8_t)text[p];
    if (!(bpe->special_first[first >> 3] & (1u << (first & 7))))
        return NULL;
    for (size_t i = 0; i < bpe->nspecials; i++) {
        const bpe_special *s = &bpe->specials[i];
        if (s->len > len - p || memcmp(text + p, s->text, s->len) != 0)
            continue;
        if (s->control) {
            if (!o->parse_special)
                continue;
            bool trusted = true;
            for (size_t k = 0; o->trusted && k < s->len && trusted; k++)
                trusted = o->trusted[p + k] != 0;
            if (!trusted)
                continue;
        }
        return s; /* sorted longest first */
    }
    return NULL;
}

kinfer_err kinfer_bpe_encode(const kinfer_bpe *bpe, const char *text, size_t len,
                             const kinfer_bpe_encode_opts *opts, kinfer_bpe_ids *out,
                             kinfer_error *err) {
    static const kinfer_bpe_encode_opts defaults = {0};
    const kinfer_bpe_encode_opts *o = opts ? opts : &defaults;
    size_t n_before = out->n;
    bpe_chars chars;
    kinfer_err rc = bpe_chars_decode(text, len, o->allow_invalid_utf8, &chars, err);
    if (rc != KINFER_OK)
        return rc;
    enc_ctx c = {.bpe = bpe, .text = text, .chars = &chars, .out = out, .err = err};
    size_t frag = 0; /* first character of the current fragment */
    for (size_t i = 0; i < chars.n && rc == KINFER_OK;) {
        const bpe_special *s =
            bpe->nspecials ? match_special(bpe, text, len, chars.off[i], o) : NULL;
        if (!s) {
            i++;
            continue;
        }
        rc = bpe_pretokenize(bpe->pre, &chars, frag, i, encode_word, &c);
        if (rc == KINFER_OK)
            rc = push_id(&c, s->id);
        size_t end = chars.off[i] + s->len;
        while (i < chars.n && chars.off[i] < end)
            i++;
        frag = i;
    }
    if (rc == KINFER_OK)
        rc = bpe_pretokenize(bpe->pre, &chars, frag, chars.n, encode_word, &c);
    free(c.sym);
    free(c.next);
    free(c.prev);
    free(c.heap);
    free(c.bl);
    bpe_chars_free(&chars);
    if (rc != KINFER_OK)
        out->n = n_before;
    return rc;
}
