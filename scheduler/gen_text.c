/* gen_text.c — incremental UTF-8 decoding and stop-string matching of
 * gen_text.h. The decoder follows the well-formed byte sequences of the
 * Unicode standard (table 3-7): the second byte's range depends on the
 * lead byte (E0: A0..BF, ED: 80..9F, F0: 90..BF, F4: 80..8F), which rules
 * out overlong forms, surrogates and code points above U+10FFFF. */
#include "gen_text.h"

#include <stdlib.h>
#include <string.h>

static const char REPLACEMENT[3] = {(char)0xEF, (char)0xBF, (char)0xBD};

void gen_text_init(gen_text *t) {
    memset(t, 0, sizeof(*t));
}

void gen_text_free(gen_text *t) {
    free(t->buf);
    gen_text_init(t);
}

static int put(gen_text *t, const void *p, size_t n) {
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 64;
        while (cap < t->len + n + 1)
            cap *= 2;
        char *b = realloc(t->buf, cap);
        if (!b)
            return -1;
        t->buf = b;
        t->cap = cap;
    }
    memcpy(t->buf + t->len, p, n);
    t->len += n;
    t->buf[t->len] = '\0';
    return 0;
}

/* Bytes a sequence with lead byte c has (0: c cannot start one). */
static uint8_t seq_len(unsigned char c) {
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        return 2;
    if (c >= 0xE0 && c <= 0xEF)
        return 3;
    if (c >= 0xF0 && c <= 0xF4)
        return 4;
    return 0;
}

/* Whether c may follow `lead` as the second byte of its sequence. */
static bool second_ok(unsigned char lead, unsigned char c) {
    switch (lead) {
    case 0xE0:
        return c >= 0xA0 && c <= 0xBF;
    case 0xED:
        return c >= 0x80 && c <= 0x9F;
    case 0xF0:
        return c >= 0x90 && c <= 0xBF;
    case 0xF4:
        return c >= 0x80 && c <= 0x8F;
    default:
        return c >= 0x80 && c <= 0xBF;
    }
}

int gen_text_add(gen_text *t, const char *bytes, size_t n) {
    const unsigned char *b = (const unsigned char *)bytes;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = b[i];
        if (t->npend > 0) {
            bool ok = t->npend == 1 ? second_ok(t->pend[0], c) : (c >= 0x80 && c <= 0xBF);
            if (ok) {
                t->pend[t->npend++] = c;
                if (t->npend == t->need) {
                    if (put(t, t->pend, t->npend) != 0)
                        return -1;
                    t->npend = 0;
                }
                continue;
            }
            /* The sequence so far is one ill-formed subpart; c starts over. */
            t->npend = 0;
            if (put(t, REPLACEMENT, 3) != 0)
                return -1;
        }
        uint8_t need = seq_len(c);
        if (need == 1) {
            if (put(t, &c, 1) != 0)
                return -1;
        } else if (need == 0) {
            if (put(t, REPLACEMENT, 3) != 0)
                return -1;
        } else {
            t->pend[0] = c;
            t->npend = 1;
            t->need = need;
        }
    }
    return 0;
}

int gen_text_flush(gen_text *t) {
    if (t->npend == 0)
        return 0;
    t->npend = 0;
    return put(t, REPLACEMENT, 3);
}

size_t gen_stop_find(const char *buf, size_t len, size_t from, size_t tail, const kinfer_str *stops,
                     size_t nstops, int32_t *which) {
    size_t best = SIZE_MAX;
    for (size_t k = 0; k < nstops; k++) {
        size_t sl = stops[k].len;
        if (sl == 0 || sl > len - from)
            continue;
        /* Occurrences ending after tail start at tail - sl + 1 or later. */
        size_t start = tail >= sl ? tail - sl + 1 : 0;
        if (start < from)
            start = from;
        for (size_t p = start; p + sl <= len && p < best; p++) {
            if (buf[p] == stops[k].ptr[0] && memcmp(buf + p, stops[k].ptr, sl) == 0) {
                best = p;
                *which = (int32_t)k;
                break;
            }
        }
    }
    return best;
}

size_t gen_stop_holdback(const char *buf, size_t len, size_t from, const kinfer_str *stops,
                         size_t nstops) {
    size_t hold = 0;
    size_t avail = len - from;
    for (size_t k = 0; k < nstops; k++) {
        size_t sl = stops[k].len;
        size_t most = sl > 0 ? sl - 1 : 0;
        if (most > avail)
            most = avail;
        for (size_t m = most; m > hold; m--)
            if (memcmp(buf + len - m, stops[k].ptr, m) == 0) {
                hold = m;
                break;
            }
    }
    return hold;
}

bool gen_utf8_valid(const char *s, size_t n, size_t *bad) {
    const unsigned char *b = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        uint8_t need = seq_len(b[i]);
        if (need == 0 || i + need > n || (need > 1 && !second_ok(b[i], b[i + 1]))) {
            *bad = i;
            return false;
        }
        for (uint8_t k = 2; k < need; k++)
            if (b[i + k] < 0x80 || b[i + k] > 0xBF) {
                *bad = i;
                return false;
            }
        i += need;
    }
    return true;
}
