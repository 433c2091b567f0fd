/* codec_utf8.c — strict UTF-8 for Avro strings (which the spec says are
 * UTF-8): validation for the decoder and encoder, and the one repair rule
 * for text a reply echoes (invalid sequences become U+FFFD, over-long text
 * is cut at a character boundary). Not a transcoder or a normaliser. */
#include "codec_avro.h"
#include "kinfer/kinfer_codec.h"

/* The well-formed sequences of Unicode §3.9 Table 3-7. Returns the length
 * (1..4) of the character at s, or 0 with *sub = the length (>= 1) of the
 * maximal subpart of an ill-formed sequence starting there: the longest
 * prefix of a well-formed sequence, or 1 when s[0] starts none. Overlongs,
 * surrogates and code points past U+10FFFF are ill-formed by the table's
 * second-byte ranges, so they need no decoding. */
static size_t utf8_char(const uint8_t *s, size_t left, size_t *sub) {
    uint8_t c = s[0];
    if (c < 0x80)
        return 1;
    size_t n;
    uint8_t lo = 0x80, hi = 0xbf; /* the allowed range of the second byte */
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0)
            lo = 0xa0; /* overlong below U+0800 */
        else if (c == 0xed)
            hi = 0x9f; /* surrogates U+D800..DFFF */
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0)
            lo = 0x90; /* overlong below U+10000 */
        else if (c == 0xf4)
            hi = 0x8f; /* past U+10FFFF */
    } else {
        *sub = 1; /* a continuation byte, C0/C1 or F5..FF: starts nothing */
        return 0;
    }
    for (size_t k = 1; k < n; k++) {
        if (k >= left || s[k] < lo || s[k] > hi) {
            *sub = k;
            return 0;
        }
        lo = 0x80;
        hi = 0xbf;
    }
    return n;
}

/* Bytes from i on that are plain ASCII, 8 at a time. */
static size_t ascii_run(const uint8_t *s, size_t i, size_t len) {
    while (i + 8 <= len) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        if (w & 0x8080808080808080ull)
            break;
        i += 8;
    }
    while (i < len && s[i] < 0x80)
        i++;
    return i;
}

bool codec_utf8_valid(const char *str, size_t len, size_t *bad) {
    const uint8_t *s = (const uint8_t *)str;
    size_t i = 0;
    while ((i = ascii_run(s, i, len)) < len) {
        size_t sub, n = utf8_char(s + i, len - i, &sub);
        if (!n) {
            if (bad)
                *bad = i;
            return false;
        }
        i += n;
    }
    return true;
}

bool kinfer_codec_utf8_valid(const char *s, size_t len, size_t *bad) {
    return codec_utf8_valid(s, len, bad);
}

size_t kinfer_codec_utf8_repair(const char *str, size_t len, char *out, size_t cap) {
    static const char fffd[3] = {(char)0xef, (char)0xbf, (char)0xbd};
    const uint8_t *s = (const uint8_t *)str;
    size_t i = 0, o = 0;
    while (i < len) {
        size_t end = ascii_run(s, i, len);
        if (end > i) {
            size_t n = end - i;
            if (n > cap - o)
                n = cap - o; /* ASCII: any byte is a boundary */
            memcpy(out + o, s + i, n);
            o += n;
            if (o == cap)
                return o;
            i = end;
            continue;
        }
        size_t sub, n = utf8_char(s + i, len - i, &sub);
        const char *src = n ? (const char *)s + i : fffd;
        size_t w = n ? n : sizeof fffd;
        if (w > cap - o)
            return o; /* the whole character or nothing */
        memcpy(out + o, src, w);
        o += w;
        i += n ? n : sub;
    }
    return o;
}

size_t kinfer_codec_utf8_prefix(const char *str, size_t len, size_t max) {
    if (len <= max)
        return len;
    /* Back off continuation bytes (10xxxxxx) to the start of the character
     * that max would split; a valid string has at most 3 in a row. */
    const uint8_t *s = (const uint8_t *)str;
    size_t n = max;
    while (n > 0 && (s[n] & 0xc0) == 0x80)
        n--;
    return n;
}
