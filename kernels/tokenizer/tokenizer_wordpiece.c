/* tokenizer_wordpiece.c — encoding one text: added tokens matched in the
 * raw bytes, then the BERT normalizer (clean, CJK isolation, NFD accent
 * strip, lowercase) and pre-tokenizer (whitespace, punctuation) streamed
 * code point by code point into words, each split by greedy longest-match
 * WordPiece. No allocation per call; loading lives in tokenizer_load.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_private.h"

/* Longest word kept for WordPiece; max_input_chars_per_word may not exceed
 * it (checked at load). Longer words only need counting: they become [UNK]. */
#define WORD_MAX 512

typedef struct enc_state {
    const kinfer_tokenizer *tok;
    int32_t *out; /* piece ids go to out[0..cap) */
    uint32_t cap;
    uint32_t n;   /* pieces produced, may exceed cap */
    bool stop_ok; /* stop as soon as n > cap (truncating) */
    uint32_t word[WORD_MAX];
    uint32_t wlen; /* characters in the word, may exceed WORD_MAX */
} enc_state;

static void emit(enc_state *st, int32_t id) {
    if (st->n < st->cap)
        st->out[st->n] = id;
    st->n++;
}

static bool full(const enc_state *st) {
    return st->stop_ok && st->n > st->cap;
}

/* WordPiece on the buffered word: greedy longest match from the left, the
 * continuation prefix on every piece after the first; any unmatched rest
 * makes the whole word [UNK]. */
static void flush_word(enc_state *st) {
    const kinfer_tokenizer *tok = st->tok;
    uint32_t nch = st->wlen;
    st->wlen = 0;
    if (nch == 0)
        return;
    if (nch > tok->opts.max_input_chars_per_word) {
        emit(st, tok->unk_id);
        return;
    }
    char bytes[WORD_MAX * 4];
    uint32_t off[WORD_MAX + 1];
    size_t blen = 0;
    for (uint32_t i = 0; i < nch; i++) {
        off[i] = (uint32_t)blen;
        blen += tok_utf8_encode(st->word[i], bytes + blen);
    }
    off[nch] = (uint32_t)blen;

    int32_t pieces[WORD_MAX];
    uint32_t npieces = 0;
    uint32_t start = 0;
    while (start < nch) {
        int32_t id = -1;
        uint32_t end = nch;
        const char *pfx = start > 0 ? tok->prefix : "";
        size_t plen = start > 0 ? tok->prefix_len : 0;
        for (; end > start; end--) {
            id = tok_vocab_get2(&tok->vocab, pfx, plen, bytes + off[start], off[end] - off[start]);
            if (id >= 0)
                break;
        }
        if (id < 0) {
            emit(st, tok->unk_id);
            return;
        }
        pieces[npieces++] = id;
        start = end;
    }
    for (uint32_t i = 0; i < npieces; i++)
        emit(st, pieces[i]);
}

static void append(enc_state *st, uint32_t c) {
    if (st->wlen < WORD_MAX)
        st->word[st->wlen] = c;
    st->wlen++;
}

/* A normalized character reaches the pre-tokenizer: punctuation is a word
 * of its own. (Whitespace never gets here: clean_text mapped it to ' ' and
 * the caller splits on it.) */
static void pretok_char(enc_state *st, uint32_t c) {
    if (tok_is_punct(c)) {
        flush_word(st);
        append(st, c);
        flush_word(st);
    } else {
        append(st, c);
    }
}

static void lower_then_pretok(enc_state *st, uint32_t c) {
    if (!st->tok->opts.lowercase) {
        pretok_char(st, c);
        return;
    }
    uint32_t low[3];
    int n = tok_lower(c, low);
    for (int i = 0; i < n; i++)
        pretok_char(st, low[i]);
}

static void normalize_char(enc_state *st, uint32_t cp) {
    if (!st->tok->strip) {
        lower_then_pretok(st, cp);
        return;
    }
    uint32_t d[4];
    int n = tok_nfd(cp, d);
    for (int i = 0; i < n; i++) {
        if (!tok_is_mark_nonspacing(d[i]))
            lower_then_pretok(st, d[i]);
    }
}

/* Runs the normalizer and pre-tokenizer over valid UTF-8 s[0..len). */
static void encode_segment(enc_state *st, const uint8_t *s, size_t len) {
    const kinfer_tokenizer *tok = st->tok;
    size_t i = 0;
    while (i < len && !full(st)) {
        uint32_t cp;
        size_t n = tok_utf8_decode(s + i, len - i, &cp);
        i += n ? n : 1; /* validated by the caller; never loop forever */
        if (tok->opts.clean_text) {
            if (cp == 0 || cp == 0xFFFD || tok_is_control(cp))
                continue;
        }
        if (tok_is_whitespace(cp)) {
            flush_word(st);
            continue;
        }
        if (tok->opts.handle_chinese_chars && tok_is_chinese(cp)) {
            flush_word(st);
            normalize_char(st, cp);
            flush_word(st);
            continue;
        }
        normalize_char(st, cp);
    }
    flush_word(st);
}

/* Leftmost-longest added token starting at s[0..len), or NULL. */
static const tok_added *match_added(const kinfer_tokenizer *tok, const uint8_t *s, size_t len) {
    if (!(tok->added_first[s[0] >> 3] & (1u << (s[0] & 7))))
        return NULL;
    const tok_added *best = NULL;
    for (size_t k = 0; k < tok->nadded; k++) {
        const tok_added *a = &tok->added[k];
        if (a->len <= len && (!best || a->len > best->len) && memcmp(s, a->content, a->len) == 0)
            best = a;
    }
    return best;
}

kinfer_err kinfer_tokenizer_encode(const kinfer_tokenizer *tok, const char *text, size_t len,
                                   uint32_t max_len, bool truncate, int32_t *ids, uint32_t *n_out,
                                   uint32_t *n_full, kinfer_error *err) {
    if (!tok || !ids || !n_out || max_len < 2 || (!text && len > 0))
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "tokenizer: bad arguments");
    size_t bad;
    if (!kinfer_utf8_valid(text, len, &bad))
        return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST,
                                "text is not valid UTF-8 at byte offset %zu (byte 0x%02x)", bad,
                                (unsigned)(uint8_t)text[bad]);
    enc_state state;
    enc_state *st = &state;
    st->tok = tok;
    st->out = ids + 1;
    st->cap = max_len - 2;
    st->n = 0;
    st->stop_ok = truncate;
    st->wlen = 0;

    const uint8_t *s = (const uint8_t *)text;
    size_t seg = 0;
    for (size_t i = 0; i < len && !full(st);) {
        const tok_added *a = match_added(tok, s + i, len - i);
        if (!a) {
            i++;
            continue;
        }
        encode_segment(st, s + seg, i - seg);
        emit(st, a->id);
        i += a->len;
        seg = i;
    }
    if (!full(st) && seg < len)
        encode_segment(st, s + seg, len - seg);

    uint32_t pieces = st->n;
    if (n_full)
        *n_full = pieces + 2;
    if (pieces > max_len - 2) {
        if (!truncate)
            return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST,
                                    "text has %u tokens, more than the model's %u, and "
                                    "truncate=false",
                                    pieces + 2, max_len);
        pieces = max_len - 2;
    }
    ids[0] = tok->cls_id;
    ids[pieces + 1] = tok->sep_id;
    *n_out = pieces + 2;
    return KINFER_OK;
}

kinfer_err tok_added_push(kinfer_tokenizer *tok, const char *s, size_t len, int32_t id,
                          kinfer_error *err) {
    if (len == 0)
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD, "empty added token (id %d)", id);
    if (tok->nadded >= TOK_MAX_ADDED)
        return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                "more than %d added tokens are not supported", TOK_MAX_ADDED);
    size_t bad;
    if (!kinfer_utf8_valid(s, len, &bad))
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD, "added token id %d is not UTF-8", id);
    char *c = malloc(len);
    if (!c)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "tokenizer: out of memory");
    memcpy(c, s, len);
    tok->added[tok->nadded++] = (tok_added){.content = c, .len = len, .id = id};
    uint8_t b = (uint8_t)s[0];
    tok->added_first[b >> 3] |= (uint8_t)(1u << (b & 7));
    return KINFER_OK;
}

static kinfer_err resolve(const kinfer_tokenizer *tok, const char *name, int32_t *out,
                          kinfer_error *err) {
    int32_t id = tok_vocab_get2(&tok->vocab, "", 0, name, strlen(name));
    for (size_t k = 0; id < 0 && k < tok->nadded; k++) {
        if (tok->added[k].len == strlen(name) &&
            memcmp(tok->added[k].content, name, tok->added[k].len) == 0)
            id = tok->added[k].id;
    }
    if (id < 0)
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD,
                                "special token %s is not in the vocabulary", name);
    *out = id;
    return KINFER_OK;
}

kinfer_err tok_resolve_specials(kinfer_tokenizer *tok, const char *unk, const char *cls,
                                const char *sep, const char *pad, kinfer_error *err) {
    if (resolve(tok, unk, &tok->unk_id, err) != KINFER_OK ||
        resolve(tok, cls, &tok->cls_id, err) != KINFER_OK ||
        resolve(tok, sep, &tok->sep_id, err) != KINFER_OK)
        return KINFER_ERR_MODEL_LOAD;
    /* [PAD] is only needed by callers that pad; 0 is BERT's convention. */
    if (resolve(tok, pad, &tok->pad_id, NULL) != KINFER_OK)
        tok->pad_id = 0;
    return KINFER_OK;
}

uint32_t kinfer_tokenizer_vocab_size(const kinfer_tokenizer *tok) {
    return tok->vocab.size;
}

int32_t kinfer_tokenizer_token_id(const kinfer_tokenizer *tok, const char *token, size_t len) {
    return tok_vocab_get2(&tok->vocab, "", 0, token, len);
}

int32_t kinfer_tokenizer_pad_id(const kinfer_tokenizer *tok) {
    return tok->pad_id;
}
