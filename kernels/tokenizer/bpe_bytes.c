/* bpe_bytes.c — GPT-2's byte-to-character mapping of byte-level BPE: the
 * printable bytes ('!'..'~', 0xA1..0xAC, 0xAE..0xFF) stand for themselves,
 * the other 68 take code points 256, 257, ... in byte order (so ' ' is 'Ġ'
 * U+0120 and '\n' is 'Ċ' U+010A). Token strings in the vocabulary are
 * written in these characters. */
#include "bpe_private.h"

static bool printable(uint32_t b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

uint32_t bpe_byte_to_char(uint8_t b) {
    if (printable(b))
        return b;
    /* Rank of b among the non-printable bytes. */
    uint32_t n = 0;
    for (uint32_t x = 0; x < b; x++)
        n += !printable(x);
    return 256 + n;
}

int bpe_char_to_byte(uint32_t cp) {
    if (cp < 256)
        return printable(cp) ? (int)cp : -1;
    if (cp >= 256 + 68)
        return -1;
    uint32_t n = cp - 256;
    for (uint32_t x = 0; x < 256; x++)
        if (!printable(x) && n-- == 0)
            return (int)x;
    return -1;
}
