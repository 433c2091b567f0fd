/* gen_text.h — a generation's text as its tokens' bytes arrive: incremental
 * UTF-8 decoding (complete characters only; invalid bytes become U+FFFD),
 * stop-string matching across token and chunk boundaries, and how much of
 * the text a stream may release (never a partial character, never what may
 * still become a stop string). Pure data structure: no engine, no locks. */
#ifndef GEN_TEXT_H
#define GEN_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kinfer/kinfer_tensor.h"

typedef struct gen_text {
    char *buf;       /* valid UTF-8, NUL-terminated once anything was added */
    size_t len, cap; /* bytes of buf, allocated size */
    /* An incomplete UTF-8 sequence waiting for its next bytes. */
    unsigned char pend[4];
    uint8_t npend, need; /* bytes held, bytes the lead byte announces */
    size_t released;     /* bytes of buf a stream has sent */
} gen_text;

void gen_text_init(gen_text *t);
void gen_text_free(gen_text *t);

/* Decodes n more bytes (any bytes). Complete characters are appended to
 * buf; an invalid byte or a broken sequence becomes one U+FFFD per maximal
 * ill-formed subpart (the Unicode recommendation; what Python's
 * decode(errors="replace") does). Returns 0, or -1 when memory ran out
 * (buf then holds what fitted). */
int gen_text_add(gen_text *t, const char *bytes, size_t n);

/* End of the generation: a sequence still incomplete becomes U+FFFD. */
int gen_text_flush(gen_text *t);

/* The earliest occurrence of any of the stop strings in buf[from, len),
 * considering only occurrences that end after `tail` (the bytes before
 * tail were searched already). Returns its start and sets *which, or
 * SIZE_MAX. Ties at one start go to the lower index. */
size_t gen_stop_find(const char *buf, size_t len, size_t from, size_t tail, const kinfer_str *stops,
                     size_t nstops, int32_t *which);

/* Length of the longest suffix of buf[from, len) that is a proper prefix
 * of a stop string: text a stream must hold back for now. */
size_t gen_stop_holdback(const char *buf, size_t len, size_t from, const kinfer_str *stops,
                         size_t nstops);

/* Whether s[0, n) is well-formed UTF-8; *bad = the offset of the first
 * bad byte when not. */
bool gen_utf8_valid(const char *s, size_t n, size_t *bad);

#endif
