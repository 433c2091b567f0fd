/* bpe_pretok.c — the pre-tokenizer of byte-level BPE: text into
 * characters with their class, then the GPT-2 split regex
 *     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * as a hand-written scanner (leftmost alternative first, greedy runs, the
 * look-ahead leaving the last space of a run to the next word), optionally
 * after isolating every \p{N} character (llama.cpp's "smollm" rules, the
 * Hugging Face Digits(individual_digits) pre-tokenizer). Letter and number
 * classes are Unicode general categories (utf8proc), whitespace is the
 * White_Space property, as in the regex engines of both references. */
#include <stdlib.h>
#include <utf8proc.h>

#include "bpe_private.h"

uint8_t bpe_char_class(uint32_t cp) {
    if (cp == BPE_CP_INVALID)
        return BPE_CLS_OTHER;
    if (tok_is_whitespace(cp))
        return BPE_CLS_SPACE;
    switch (utf8proc_category((utf8proc_int32_t)cp)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
        return BPE_CLS_LETTER;
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
        return BPE_CLS_NUMBER;
    default:
        return BPE_CLS_OTHER;
    }
}

void bpe_chars_free(bpe_chars *c) {
    free(c->cp);
    free(c->off);
    free(c->cls);
    c->cp = c->off = NULL;
    c->cls = NULL;
    c->n = 0;
}

kinfer_err bpe_chars_decode(const char *text, size_t len, bool allow_invalid, bpe_chars *out,
                            kinfer_error *err) {
    out->n = 0;
    out->cp = malloc((len ? len : 1) * sizeof(uint32_t));
    out->off = malloc((len + 1) * sizeof(uint32_t));
    out->cls = malloc(len ? len : 1);
    if (!out->cp || !out->off || !out->cls || len > UINT32_MAX) {
        bpe_chars_free(out);
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "tokenizer: out of memory");
    }
    const uint8_t *s = (const uint8_t *)text;
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        size_t n = tok_utf8_decode(s + i, len - i, &cp);
        if (n == 0) {
            if (!allow_invalid) {
                bpe_chars_free(out);
                return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST,
                                        "text is not valid UTF-8 (byte 0x%02X at offset %zu)", s[i],
                                        i);
            }
            cp = BPE_CP_INVALID;
            n = 1;
        }
        out->cp[out->n] = cp;
        out->off[out->n] = (uint32_t)i;
        out->cls[out->n] = bpe_char_class(cp);
        out->n++;
        i += n;
    }
    out->off[out->n] = (uint32_t)len;
    return KINFER_OK;
}

/* Length of a contraction ('s 't 'm 'd 're 've 'll) at i, or 0. Case
 * sensitive, as in the GPT-2 pattern. */
static size_t contraction(const bpe_chars *c, size_t i, size_t b) {
    if (c->cp[i] != '\'' || i + 1 >= b)
        return 0;
    uint32_t x = c->cp[i + 1];
    if (x == 's' || x == 't' || x == 'm' || x == 'd')
        return 2;
    if (i + 2 < b) {
        uint32_t y = c->cp[i + 2];
        if ((x == 'r' && y == 'e') || (x == 'v' && y == 'e') || (x == 'l' && y == 'l'))
            return 3;
    }
    return 0;
}

/* The GPT-2 regex over characters [a, b): the look-ahead of \s+(?!\S)
 * sees only up to b, as each pre-split piece is matched on its own. */
static kinfer_err gpt2_split(const bpe_chars *c, size_t a, size_t b, bpe_piece_fn piece,
                             void *ctx) {
    size_t i = a;
    while (i < b) {
        size_t end;
        size_t k = contraction(c, i, b);
        if (k) {
            end = i + k;
        } else if (c->cp[i] == ' ' && i + 1 < b && c->cls[i + 1] != BPE_CLS_SPACE) {
            /* " ?X+" with the optional space: X is the next character's class */
            uint8_t want = c->cls[i + 1];
            end = i + 1;
            while (end < b && c->cls[end] == want)
                end++;
        } else if (c->cls[i] != BPE_CLS_SPACE) {
            uint8_t want = c->cls[i];
            end = i;
            while (end < b && c->cls[end] == want)
                end++;
        } else {
            size_t run = i;
            while (run < b && c->cls[run] == BPE_CLS_SPACE)
                run++;
            /* \s+(?!\S): the whole run at the end of the piece; before a
             * non-space, all but its last character (which then starts the
             * next match), or \s+ when the run is one character. */
            if (run == b || run - i == 1)
                end = run;
            else
                end = run - 1;
        }
        kinfer_err rc = piece(ctx, i, end);
        if (rc != KINFER_OK)
            return rc;
        i = end;
    }
    return KINFER_OK;
}

kinfer_err bpe_pretokenize(bpe_pre pre, const bpe_chars *c, size_t a, size_t b, bpe_piece_fn piece,
                           void *ctx) {
    if (pre == BPE_PRE_GPT2)
        return gpt2_split(c, a, b, piece, ctx);
    size_t start = a;
    for (size_t i = a; i < b; i++) {
        if (c->cls[i] != BPE_CLS_NUMBER)
            continue;
        kinfer_err rc = gpt2_split(c, start, i, piece, ctx);
        if (rc == KINFER_OK)
            rc = piece(ctx, i, i + 1);
        if (rc != KINFER_OK)
            return rc;
        start = i + 1;
    }
    return gpt2_split(c, start, b, piece, ctx);
}
