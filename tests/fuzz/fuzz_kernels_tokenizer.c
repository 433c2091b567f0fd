/* fuzz_kernels_tokenizer.c — libFuzzer target for the WordPiece tokenizer.
 * Input: byte 0 = max_len (2..257), byte 1 bit 0 = truncate, rest = text.
 * Checks, beyond "no crash": valid UTF-8 always encodes when truncating,
 * invalid UTF-8 is always INVALID_REQUEST, and the ids are well formed.
 * The vocabulary is a small synthetic one written once to /tmp. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tokenizer/tokenizer_wordpiece.h"

static kinfer_tokenizer *g_tok;

static kinfer_tokenizer *tokenizer(void) {
    if (g_tok)
        return g_tok;
    char path[64];
    snprintf(path, sizeof(path), "/tmp/kinfer_fuzz_vocab_%d.txt", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f)
        abort();
    fputs("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n", f);
    for (char c = 'a'; c <= 'z'; c++)
        fprintf(f, "%c\n##%c\n%c%c\n##%c%c\n", c, c, c, c, c, c);
    fputs("the\n##ing\n!\n,\n.\n中\n文\né\n##é\nü\n😀\n", f);
    fclose(f);
    kinfer_tokenizer_options o = kinfer_tokenizer_options_default();
    kinfer_error err;
    if (kinfer_tokenizer_load_vocab(path, &o, &g_tok, &err) != KINFER_OK)
        abort();
    unlink(path);
    return g_tok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2)
        return 0;
    kinfer_tokenizer *tok = tokenizer();
    uint32_t max_len = 2u + data[0];
    bool truncate = data[1] & 1;
    const char *text = (const char *)data + 2;
    size_t len = size - 2;
    int32_t ids[260];
    uint32_t n = 0, full = 0;
    kinfer_error err;
    kinfer_err rc =
        kinfer_tokenizer_encode(tok, text, len, max_len, truncate, ids, &n, &full, &err);
    bool valid = kinfer_utf8_valid(text, len, NULL);
    if (!valid) {
        if (rc != KINFER_ERR_INVALID_REQUEST)
            abort();
        return 0;
    }
    if (rc == KINFER_ERR_INVALID_REQUEST && !truncate)
        return 0; /* too long, refused */
    if (rc != KINFER_OK || n < 2 || n > max_len)
        abort();
    if (ids[0] != 2 || ids[n - 1] != 3)
        abort();
    for (uint32_t i = 0; i < n; i++) {
        if (ids[i] < 0 || (uint32_t)ids[i] >= kinfer_tokenizer_vocab_size(tok))
            abort();
    }
    if (!truncate && full != n)
        abort();
    return 0;
}
