/* test_bpe.c — the byte-level BPE tokenizer: merge order on small crafted
 * vocabularies (rank order, leftmost ties, overlapping pairs, the GPT-2
 * split rules and digits), the SmolLM2 vocabulary from its GGUF (specials,
 * round trips of random UTF-8 and of raw bytes, control tokens only from
 * trusted text, refused inputs), and one test per refused or malformed
 * tokenizer.json / GGUF tokenizer. Agreement with the reference tokenizers
 * on the committed corpus is test_bpe_corpus.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "formats/gguf.h"
#include "llm_test_util.h"
#include "tokenizer/bpe.h"

/* --- helpers ------------------------------------------------------------------ */

static kinfer_bpe *g_smol;
static kinfer_gguf *g_smol_file;

static int setup_smol(void **state) {
    (void)state;
    char path[4096];
    if (!lt_smollm2_gguf(path, sizeof(path)))
        return -1;
    kinfer_error err;
    if (kinfer_gguf_open(path, &g_smol_file, &err) != KINFER_OK ||
        kinfer_bpe_from_gguf(g_smol_file, &g_smol, &err) != KINFER_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    return 0;
}

static int teardown_smol(void **state) {
    (void)state;
    kinfer_bpe_destroy(g_smol);
    kinfer_gguf_close(g_smol_file);
    return 0;
}

/* Encodes and returns the ids (n in *n); fails the test on error. */
static int32_t *enc(const kinfer_bpe *b, const char *text, size_t len,
                    const kinfer_bpe_encode_opts *o, size_t *n) {
    kinfer_bpe_ids ids = {0};
    kinfer_error err;
    kinfer_err rc = kinfer_bpe_encode(b, text, len, o, &ids, &err);
    if (rc != KINFER_OK)
        fail_msg("encode failed: %s", err.msg);
    *n = ids.n;
    return ids.ids;
}

static char *dec(const kinfer_bpe *b, const int32_t *ids, size_t n, size_t *len) {
    char *t;
    kinfer_error err;
    assert_int_equal(kinfer_bpe_decode(b, ids, n, false, &t, len, &err), KINFER_OK);
    return t;
}

/* The byte-level spelling of a byte string (for writing tiny vocabs). */
static void spell(const char *raw, char *out) {
    /* GPT-2's mapping for the bytes the tiny vocabs use: printable ASCII
     * stands for itself, ' ' is U+0120 (C4 A0), '\n' is U+010A (C4 8A). */
    size_t o = 0;
    for (const char *p = raw; *p; p++) {
        if (*p == ' ') {
            out[o++] = (char)0xC4, out[o++] = (char)0xA0;
        } else if (*p == '\n') {
            out[o++] = (char)0xC4, out[o++] = (char)0x8A;
        } else {
            out[o++] = *p;
        }
    }
    out[o] = '\0';
}

/* A GGUF tokenizer with every byte token, then `extra` tokens (raw text,
 * spelled here) and merges ("left right", raw text with '_' for space). */
static kinfer_bpe *tiny(const char *pre, const char *const *extra, size_t nextra,
                        const char *const *merges, size_t nmerges) {
    kinfer_gguf_writer *w;
    kinfer_error err;
    assert_int_equal(kinfer_gguf_writer_new(&w, &err), KINFER_OK);
    kinfer_gguf_writer_str(w, "tokenizer.ggml.model", "gpt2", 4, &err);
    kinfer_gguf_writer_str(w, "tokenizer.ggml.pre", pre, strlen(pre), &err);
    size_t ntok = 256 + nextra + 1;
    kinfer_str *toks = calloc(ntok, sizeof(*toks));
    int32_t *types = calloc(ntok, sizeof(*types));
    char(*buf)[64] = calloc(ntok, 64);
    /* byte tokens in byte order: GPT-2's mapping, encoded as UTF-8 */
    uint32_t nonprint = 0;
    for (int b = 0; b < 256; b++) {
        bool pr = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        uint32_t cp = pr ? (uint32_t)b : 256 + nonprint++;
        int n = 0;
        if (cp < 0x80) {
            buf[b][n++] = (char)cp;
        } else {
            buf[b][n++] = (char)(0xC0 | (cp >> 6));
            buf[b][n++] = (char)(0x80 | (cp & 0x3F));
        }
        toks[b] = (kinfer_str){buf[b], (size_t)n};
        types[b] = 1;
    }
    for (size_t i = 0; i < nextra; i++) {
        spell(extra[i], buf[256 + i]);
        toks[256 + i] = (kinfer_str){buf[256 + i], strlen(buf[256 + i])};
        types[256 + i] = 1;
    }
    snprintf(buf[ntok - 1], 64, "<|ctl|>");
    toks[ntok - 1] = (kinfer_str){buf[ntok - 1], 7};
    types[ntok - 1] = 3;
    kinfer_gguf_writer_str_array(w, "tokenizer.ggml.tokens", toks, ntok, &err);
    kinfer_gguf_writer_array(w, "tokenizer.ggml.token_type", KINFER_GGUF_INT32, types, ntok, &err);
    char(*mb)[80] = calloc(nmerges ? nmerges : 1, 80);
    kinfer_str *ms = calloc(nmerges ? nmerges : 1, sizeof(*ms));
    for (size_t i = 0; i < nmerges; i++) {
        char raw[40];
        snprintf(raw, sizeof(raw), "%s", merges[i]);
        char *sp = strchr(raw, ' ');
        *sp = '\0';
        for (char *p = raw; *p; p++)
            if (*p == '_')
                *p = ' ';
        for (char *p = sp + 1; *p; p++)
            if (*p == '_')
                *p = ' ';
        char l[40], r[40];
        spell(raw, l);
        spell(sp + 1, r);
        snprintf(mb[i], 80, "%s %s", l, r);
        ms[i] = (kinfer_str){mb[i], strlen(mb[i])};
    }
    kinfer_gguf_writer_str_array(w, "tokenizer.ggml.merges", ms, nmerges, &err);
    kinfer_gguf_writer_uint(w, "tokenizer.ggml.eos_token_id", KINFER_GGUF_UINT32, ntok - 1, &err);
    uint8_t *img;
    size_t len;
    assert_int_equal(kinfer_gguf_writer_image(w, 32, &img, &len, &err), KINFER_OK);
    kinfer_gguf_writer_destroy(w);
    kinfer_gguf *g;
    assert_int_equal(kinfer_gguf_open_memory(img, len, "tiny.gguf", &g, &err), KINFER_OK);
    kinfer_bpe *b = NULL;
    kinfer_err rc = kinfer_bpe_from_gguf(g, &b, &err);
    if (rc != KINFER_OK)
        fail_msg("tiny tokenizer: %s", err.msg);
    kinfer_gguf_close(g); /* the tokenizer copies what it keeps */
    free(img);
    free(toks);
    free(types);
    free(buf);
    free(mb);
    free(ms);
    return b;
}

/* Ids as the pieces' vocabulary strings joined by '|', '_' for space. */
static void pieces(const kinfer_bpe *b, const char *text, char *out, size_t cap) {
    size_t n;
    int32_t *ids = enc(b, text, strlen(text), NULL, &n);
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        char bytes[64];
        size_t l = kinfer_bpe_token_bytes(b, ids[i], true, bytes, sizeof(bytes));
        if (i)
            o += (size_t)snprintf(out + o, cap - o, "|");
        for (size_t k = 0; k < l && o + 1 < cap; k++)
            out[o++] = bytes[k] == ' ' ? '_' : bytes[k];
        out[o] = '\0';
    }
    free(ids);
}

#define EXPECT_PIECES(b, text, want)                                                               \
    do {                                                                                           \
        char got_[512];                                                                            \
        pieces(b, text, got_, sizeof(got_));                                                       \
        if (strcmp(got_, want) != 0)                                                               \
            fail_msg("'%s' -> '%s', want '%s'", text, got_, want);                                 \
    } while (0)

/* --- merge order and split rules ------------------------------------------------ */

static void test_merge_order(void **state) {
    (void)state;
    const char *extra[] = {"aa", "aaa", "aaaa", "ab", "bc", "abc", "he", "ll", "llo", "hello"};
    const char *merges[] = {"a a",  "b c", "a b", "aa a", "aa aa",
                            "a bc", "l l", "h e", "ll o", "he llo"};
    kinfer_bpe *b = tiny("gpt2", extra, 10, merges, 10);
    EXPECT_PIECES(b, "aaa", "aaa");      /* a a -> aa a -> aaa */
    EXPECT_PIECES(b, "aaaa", "aaaa");    /* (aa)(aa), then aa+aa */
    EXPECT_PIECES(b, "aaaaa", "aa|aaa"); /* after aa aa a, "aa a" (3) beats "aa aa" (4) */
    EXPECT_PIECES(b, "abc", "abc");      /* b c first (rank 1), then a bc */
    EXPECT_PIECES(b, "hello", "hello");
    EXPECT_PIECES(b, "xyz", "x|y|z");
    kinfer_bpe_destroy(b);
    /* equal ranks: leftmost first */
    const char *e2[] = {"aa"}, *m2[] = {"a a"};
    b = tiny("gpt2", e2, 1, m2, 1);
    EXPECT_PIECES(b, "aaa", "aa|a");
    EXPECT_PIECES(b, "aaaaa", "aa|aa|a");
    kinfer_bpe_destroy(b);
    /* rank order decides between overlapping pairs */
    const char *e3[] = {"ab", "bc"}, *m3[] = {"b c", "a b"}, *m4[] = {"a b", "b c"};
    b = tiny("gpt2", e3, 2, m3, 2);
    EXPECT_PIECES(b, "abc", "a|bc");
    kinfer_bpe_destroy(b);
    b = tiny("gpt2", e3, 2, m4, 2);
    EXPECT_PIECES(b, "abc", "ab|c");
    kinfer_bpe_destroy(b);
}

static void test_gpt2_split(void **state) {
    (void)state;
    const char *extra[] = {" a", "  ", "   ", " 1", "12", "'s", " !", "!!"};
    const char *merges[] = {"_ a", "_ _", "__ _", "_ 1", "1 2", "' s", "_ !", "! !"};
    kinfer_bpe *b = tiny("gpt2", extra, 8, merges, 8);
    EXPECT_PIECES(b, "   a", "__|_a");    /* \s+(?!\S) leaves the last space to " a" */
    EXPECT_PIECES(b, "a   ", "a|___");    /* trailing run stays whole */
    EXPECT_PIECES(b, "\n\na", "\n|\n|a"); /* single whitespace before a letter */
    EXPECT_PIECES(b, " 12", "_1|2");      /* " ?\p{N}+" then merges inside */
    EXPECT_PIECES(b, "x's", "x|'s");      /* contraction */
    EXPECT_PIECES(b, "x'S", "x|'|S");     /* contractions are case sensitive */
    EXPECT_PIECES(b, " !!a", "_!|!|a");   /* " ?[^\s\p{L}\p{N}]+" then merges */
    kinfer_bpe_destroy(b);
    /* the smollm rules: every digit alone first */
    b = tiny("smollm", extra, 8, merges, 8);
    EXPECT_PIECES(b, " 12", "_|1|2");
    EXPECT_PIECES(b, "a 1", "a|_|1");
    EXPECT_PIECES(b, "   a", "__|_a");
    kinfer_bpe_destroy(b);
}

/* --- the SmolLM2 vocabulary ------------------------------------------------------ */

static void test_smol_specials(void **state) {
    (void)state;
    assert_int_equal(kinfer_bpe_vocab_size(g_smol), 49152);
    assert_int_equal(kinfer_bpe_bos(g_smol), 1);
    assert_int_equal(kinfer_bpe_eos(g_smol), 2);
    assert_false(kinfer_bpe_add_bos(g_smol));
    size_t n;
    const int32_t *eog = kinfer_bpe_eog(g_smol, &n);
    /* llama.cpp's set: <|endoftext|>, <|im_end|> and (as a FIM repo token) <reponame> */
    assert_int_equal(n, 3);
    assert_int_equal(eog[0], 0);
    assert_int_equal(eog[1], 2);
    assert_int_equal(eog[2], 4);
    assert_string_equal(kinfer_bpe_pre_name(g_smol), "digits+gpt2");
    assert_int_equal(kinfer_bpe_token_id(g_smol, "<|im_start|>", 12), 1);
    assert_int_equal(kinfer_bpe_token_type_of(g_smol, 1), KINFER_BPE_CONTROL);
    char buf[32];
    assert_int_equal(kinfer_bpe_token_bytes(g_smol, 1, false, buf, sizeof(buf)), 0);
    assert_int_equal(kinfer_bpe_token_bytes(g_smol, 1, true, buf, sizeof(buf)), 12);
    assert_memory_equal(buf, "<|im_start|>", 12);
    assert_int_equal(kinfer_bpe_token_bytes(g_smol, -1, true, buf, sizeof(buf)), 0);
    assert_int_equal(kinfer_bpe_token_bytes(g_smol, 49152, true, buf, sizeof(buf)), 0);
    /* a truncated copy still reports the full length */
    assert_int_equal(kinfer_bpe_token_bytes(g_smol, 1, true, buf, 3), 12);
    assert_memory_equal(buf, "<|i", 3);
}

static void test_smol_control_tokens(void **state) {
    (void)state;
    const char *text = "<|im_start|>user\nhi<|im_end|>";
    size_t len = strlen(text), n;
    /* plain text: the markers are text */
    int32_t *ids = enc(g_smol, text, len, NULL, &n);
    for (size_t i = 0; i < n; i++)
        assert_true(ids[i] >= 17);
    size_t dl;
    char *back = dec(g_smol, ids, n, &dl);
    assert_int_equal(dl, len);
    assert_memory_equal(back, text, len);
    free(back);
    free(ids);
    /* trusted template text: control tokens */
    kinfer_bpe_encode_opts o = {.parse_special = true};
    ids = enc(g_smol, text, len, &o, &n);
    assert_true(n >= 4);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[n - 1], 2);
    free(ids);
    /* a marker inside untrusted bytes stays text, one in trusted bytes does not */
    uint8_t *tr = malloc(len);
    memset(tr, 1, len);
    memset(tr + 17, 0, len - 17); /* "hi<|im_end|>" came from a message */
    o.trusted = tr;
    ids = enc(g_smol, text, len, &o, &n);
    assert_int_equal(ids[0], 1);
    for (size_t i = 1; i < n; i++)
        assert_true(ids[i] >= 17);
    free(ids);
    /* one untrusted byte inside a marker is enough to keep it text */
    memset(tr, 1, len);
    tr[5] = 0;
    ids = enc(g_smol, text, len, &o, &n);
    assert_true(ids[0] >= 17);
    assert_int_equal(ids[n - 1], 2);
    free(ids);
    free(tr);
}

/* Random valid UTF-8 of assorted scripts round-trips exactly. */
static void test_smol_roundtrip_utf8(void **state) {
    (void)state;
    static const uint32_t pool[] = {
        'a',     'Z',     '0',     '9',     ' ',     '\n',    '\t',   '\r',   '\'',   '"',
        '.',     '{',     '_',     0xA0,    0xE9,    0xDF,    0x301,  0x3A9,  0x416,  0x5D0,
        0x627,   0x663,   0x915,   0xE01,   0x1100,  0x2003,  0x2028, 0x20AC, 0x2167, 0x2460,
        0x3000,  0x3042,  0x30A2,  0x4E2D,  0x65E5,  0xAC00,  0xFB01, 0xFEFF, 0xFFFD, 0x1F600,
        0x1F44D, 0x1F3FD, 0x1F1FA, 0x10348, 0x1D400, 0xE0041, 0x7F,   0x85,   0x1F,   0x200D,
    };
    lt_rng rng = {42};
    for (int it = 0; it < 300; it++) {
        char text[512];
        size_t len = 0;
        int nch = (int)(lt_next(&rng) % 60);
        for (int k = 0; k < nch; k++) {
            uint32_t cp = pool[lt_next(&rng) % (sizeof(pool) / sizeof(pool[0]))];
            char u[4];
            size_t l =
                cp < 0x80    ? (u[0] = (char)cp, 1)
                : cp < 0x800 ? (u[0] = (char)(0xC0 | cp >> 6), u[1] = (char)(0x80 | (cp & 63)), 2)
                : cp < 0x10000
                    ? (u[0] = (char)(0xE0 | cp >> 12), u[1] = (char)(0x80 | (cp >> 6 & 63)),
                       u[2] = (char)(0x80 | (cp & 63)), 3)
                    : (u[0] = (char)(0xF0 | cp >> 18), u[1] = (char)(0x80 | (cp >> 12 & 63)),
                       u[2] = (char)(0x80 | (cp >> 6 & 63)), u[3] = (char)(0x80 | (cp & 63)), 4);
            memcpy(text + len, u, l);
            len += l;
        }
        size_t n, dl;
        int32_t *ids = enc(g_smol, text, len, NULL, &n);
        char *back = dec(g_smol, ids, n, &dl);
        if (dl != len || memcmp(back, text, len) != 0)
            fail_msg("round trip %d differs", it);
        free(back);
        free(ids);
    }
}

/* With allow_invalid_utf8, any bytes the vocabulary has tokens for
 * round-trip, invalid sequences included. */
static void test_smol_roundtrip_bytes(void **state) {
    (void)state;
    /* the 21 bytes SmolLM2's vocabulary has no token for */
    static const uint8_t missing[] = {0x04, 0x06, 0x13, 0x14, 0x16, 0x1D, 0xC0,
                                      0xC1, 0xF1, 0xF2, 0xF5, 0xF6, 0xF7, 0xF8,
                                      0xF9, 0xFA, 0xFB, 0xFC, 0xFD, 0xFE, 0xFF};
    lt_rng rng = {7};
    kinfer_bpe_encode_opts o = {.allow_invalid_utf8 = true};
    for (int it = 0; it < 300; it++) {
        uint8_t text[128];
        size_t len = lt_next(&rng) % sizeof(text);
        for (size_t i = 0; i < len; i++) {
            uint8_t b;
            bool bad;
            do {
                b = (uint8_t)lt_next(&rng);
                bad = memchr(missing, b, sizeof(missing)) != NULL;
            } while (bad);
            text[i] = b;
        }
        size_t n, dl;
        int32_t *ids = enc(g_smol, (const char *)text, len, &o, &n);
        char *back = dec(g_smol, ids, n, &dl);
        if (dl != len || memcmp(back, text, len) != 0)
            fail_msg("byte round trip %d differs", it);
        free(back);
        free(ids);
    }
    /* every byte the vocabulary lacks is refused, naming offset and value */
    for (size_t k = 0; k < sizeof(missing); k++) {
        uint8_t text[4] = {'a', 'b', missing[k], 'c'};
        kinfer_bpe_ids ids = {0};
        kinfer_error err;
        assert_int_equal(kinfer_bpe_encode(g_smol, (const char *)text, 4, &o, &ids, &err),
                         KINFER_ERR_INVALID_REQUEST);
        char want[64];
        snprintf(want, sizeof(want), "byte 0x%02X at offset 2", missing[k]);
        assert_non_null(strstr(err.msg, want));
        assert_int_equal(ids.n, 0);
        free(ids.ids);
    }
}

static void test_smol_invalid_utf8(void **state) {
    (void)state;
    static const struct {
        const char *s;
        size_t len, off;
    } bad[] = {
        {"ok\xff", 3, 2},       {"\xc3", 1, 0},          {"ab\xc3(", 4, 2},
        {"\xed\xa0\x80", 3, 0}, {"x\xe0\x80\x80", 4, 1}, {"\xf4\x90\x80\x80", 4, 0},
        {"a\x80", 2, 1},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        kinfer_bpe_ids ids = {0};
        kinfer_error err;
        assert_int_equal(kinfer_bpe_encode(g_smol, bad[i].s, bad[i].len, NULL, &ids, &err),
                         KINFER_ERR_INVALID_REQUEST);
        char want[48];
        snprintf(want, sizeof(want), "offset %zu", bad[i].off);
        if (!strstr(err.msg, "not valid UTF-8") || !strstr(err.msg, want))
            fail_msg("case %zu: %s", i, err.msg);
        free(ids.ids);
    }
    /* the id buffer keeps what it had before a failed call */
    kinfer_bpe_ids ids = {0};
    kinfer_error err;
    assert_int_equal(kinfer_bpe_encode(g_smol, "hello", 5, NULL, &ids, &err), KINFER_OK);
    size_t before = ids.n;
    assert_int_equal(kinfer_bpe_encode(g_smol, "hi\xff", 3, NULL, &ids, &err),
                     KINFER_ERR_INVALID_REQUEST);
    assert_int_equal(ids.n, before);
    /* empty text gives no ids */
    assert_int_equal(kinfer_bpe_encode(g_smol, "", 0, NULL, &ids, &err), KINFER_OK);
    assert_int_equal(ids.n, before);
    free(ids.ids);
}

/* A long word and a long whitespace run stay fast and exact. */
static void test_smol_long_input(void **state) {
    (void)state;
    size_t len = 200000;
    char *text = malloc(len);
    for (size_t i = 0; i < len; i++)
        text[i] = i % 1000 < 600 ? 'a' + (char)(i % 7) : ' ';
    size_t n, dl;
    int32_t *ids = enc(g_smol, text, len, NULL, &n);
    assert_true(n > 0 && n < len);
    char *back = dec(g_smol, ids, n, &dl);
    assert_int_equal(dl, len);
    assert_memory_equal(back, text, len);
    free(back);
    free(ids);
    free(text);
}

/* --- refused GGUF tokenizers ------------------------------------------------------- */

static kinfer_err gguf_tok(void (*edit)(kinfer_gguf_writer *), char *msg) {
    kinfer_gguf_writer *w;
    kinfer_error err;
    assert_int_equal(kinfer_gguf_writer_new(&w, &err), KINFER_OK);
    edit(w);
    uint8_t *img;
    size_t len;
    assert_int_equal(kinfer_gguf_writer_image(w, 32, &img, &len, &err), KINFER_OK);
    kinfer_gguf_writer_destroy(w);
    kinfer_gguf *g;
    assert_int_equal(kinfer_gguf_open_memory(img, len, "bad.gguf", &g, &err), KINFER_OK);
    kinfer_bpe *b = NULL;
    kinfer_err rc = kinfer_bpe_from_gguf(g, &b, &err);
    if (rc == KINFER_OK)
        kinfer_bpe_destroy(b);
    else
        snprintf(msg, KINFER_ERROR_MSG_MAX, "%s", err.msg);
    assert_true(rc != KINFER_OK || b != NULL);
    kinfer_gguf_close(g);
    free(img);
    return rc;
}

static const kinfer_str k_toks[] = {{"a", 1}, {"b", 1}, {"ab", 2}};

static void base(kinfer_gguf_writer *w, const char *model, const char *pre) {
    kinfer_error err;
    kinfer_gguf_writer_str(w, "tokenizer.ggml.model", model, strlen(model), &err);
    if (pre)
        kinfer_gguf_writer_str(w, "tokenizer.ggml.pre", pre, strlen(pre), &err);
    kinfer_gguf_writer_str_array(w, "tokenizer.ggml.tokens", k_toks, 3, &err);
}
static void e_ok(kinfer_gguf_writer *w) {
    base(w, "gpt2", "smollm");
    kinfer_error err;
    kinfer_str m[] = {{"a b", 3}};
    kinfer_gguf_writer_str_array(w, "tokenizer.ggml.merges", m, 1, &err);
}
static void e_llama(kinfer_gguf_writer *w) {
    base(w, "llama", NULL);
}
static void e_pre(kinfer_gguf_writer *w) {
    base(w, "gpt2", "llama-bpe");
}
static void e_no_merges(kinfer_gguf_writer *w) {
    base(w, "gpt2", NULL);
}
static void e_bad_merge(kinfer_gguf_writer *w) {
    base(w, "gpt2", NULL);
    kinfer_error err;
    kinfer_str m[] = {{"a b", 3}, {"ab", 2}};
    kinfer_gguf_writer_str_array(w, "tokenizer.ggml.merges", m, 2, &err);
}
static void e_merge_oov(kinfer_gguf_writer *w) {
    base(w, "gpt2", NULL);
    kinfer_error err;
    kinfer_str m[] = {{"b a", 3}};
    kinfer_gguf_writer_str_array(w, "tokenizer.ggml.merges", m, 1, &err);
}
static void e_types_len(kinfer_gguf_writer *w) {
    e_ok(w);
    kinfer_error err;
    int32_t t[2] = {1, 1};
    kinfer_gguf_writer_array(w, "tokenizer.ggml.token_type", KINFER_GGUF_INT32, t, 2, &err);
}
static void e_type_byte(kinfer_gguf_writer *w) {
    e_ok(w);
    kinfer_error err;
    int32_t t[3] = {1, 6, 1};
    kinfer_gguf_writer_array(w, "tokenizer.ggml.token_type", KINFER_GGUF_INT32, t, 3, &err);
}
static void e_type_range(kinfer_gguf_writer *w) {
    e_ok(w);
    kinfer_error err;
    int32_t t[3] = {1, 9, 1};
    kinfer_gguf_writer_array(w, "tokenizer.ggml.token_type", KINFER_GGUF_INT32, t, 3, &err);
}
static void e_bos_range(kinfer_gguf_writer *w) {
    e_ok(w);
    kinfer_error err;
    kinfer_gguf_writer_uint(w, "tokenizer.ggml.bos_token_id", KINFER_GGUF_UINT32, 3, &err);
}
static void e_add_bos_none(kinfer_gguf_writer *w) {
    e_ok(w);
    kinfer_error err;
    kinfer_gguf_writer_bool(w, "tokenizer.ggml.add_bos_token", true, &err);
}
static void e_space_prefix(kinfer_gguf_writer *w) {
    e_ok(w);
    kinfer_error err;
    kinfer_gguf_writer_bool(w, "tokenizer.ggml.add_space_prefix", true, &err);
}
static void e_add_eos(kinfer_gguf_writer *w) {
    e_ok(w);
    kinfer_error err;
    kinfer_gguf_writer_bool(w, "tokenizer.ggml.add_eos_token", true, &err);
}
static void e_tokens_type(kinfer_gguf_writer *w) {
    kinfer_error err;
    kinfer_gguf_writer_str(w, "tokenizer.ggml.model", "gpt2", 4, &err);
    int32_t t[1] = {1};
    kinfer_gguf_writer_array(w, "tokenizer.ggml.tokens", KINFER_GGUF_INT32, t, 1, &err);
}

static void test_gguf_refused(void **state) {
    (void)state;
    static const struct {
        void (*edit)(kinfer_gguf_writer *);
        kinfer_err code;
        const char *want;
    } cases[] = {
        {e_llama, KINFER_ERR_UNSUPPORTED, "tokenizer.ggml.model 'llama' is not supported"},
        {e_pre, KINFER_ERR_UNSUPPORTED, "tokenizer.ggml.pre 'llama-bpe' is not supported"},
        {e_no_merges, KINFER_ERR_MODEL_LOAD, "'tokenizer.ggml.merges' is missing"},
        {e_bad_merge, KINFER_ERR_MODEL_LOAD, "tokenizer.ggml.merges[1] 'ab' is not 'left right'"},
        {e_merge_oov, KINFER_ERR_MODEL_LOAD, "merge 0 'b a': the merged token is not in"},
        {e_types_len, KINFER_ERR_MODEL_LOAD, "token_type has 2 entries, tokens 3"},
        {e_type_byte, KINFER_ERR_UNSUPPORTED, "token 1 has type BYTE"},
        {e_type_range, KINFER_ERR_MODEL_LOAD, "token_type[1] is 9"},
        {e_bos_range, KINFER_ERR_MODEL_LOAD, "bos_token_id is 3, outside the 3-token"},
        {e_add_bos_none, KINFER_ERR_MODEL_LOAD, "add_bos_token is set but there is no"},
        {e_space_prefix, KINFER_ERR_UNSUPPORTED, "add_space_prefix = true is not supported"},
        {e_add_eos, KINFER_ERR_UNSUPPORTED, "add_eos_token = true is not supported"},
        {e_tokens_type, KINFER_ERR_MODEL_LOAD, "'tokenizer.ggml.tokens' is an array of INT32"},
    };
    char msg[KINFER_ERROR_MSG_MAX];
    assert_int_equal(gguf_tok(e_ok, msg), KINFER_OK);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        kinfer_err rc = gguf_tok(cases[i].edit, msg);
        if (rc != cases[i].code || !strstr(msg, cases[i].want) || !strstr(msg, "bad.gguf"))
            fail_msg("case %zu: rc %d '%s' (want %d '%s')", i, rc, msg, cases[i].code,
                     cases[i].want);
    }
}

/* --- tokenizer.json ------------------------------------------------------------------ */

static const char *k_json_ok =
    "{\"version\":\"1.0\",\"added_tokens\":[{\"id\":3,\"content\":\"<|x|>\",\"single_word\":false,"
    "\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":true},{\"id\":4,"
    "\"content\":"
    "\"@@\",\"special\":false}],\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"Sequence\","
    "\"pretokenizers\":[{\"type\":\"Digits\",\"individual_digits\":true},{\"type\":\"ByteLevel\","
    "\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":true}]},\"post_processor\":%s,"
    "\"decoder\":{\"type\":\"ByteLevel\",\"add_prefix_space\":true},\"model\":{\"type\":\"BPE\","
    "\"dropout\":null,\"unk_token\":null,\"continuing_subword_prefix\":\"\",\"end_of_word_suffix\":"
    "\"\",\"fuse_unk\":false,\"byte_fallback\":false,\"ignore_merges\":%s,\"vocab\":{\"a\":0,\"b\":"
    "1,"
    "\"ab\":2,\"<|x|>\":3},\"merges\":%s}}";

static kinfer_err json_tok(const char *post, const char *ignore, const char *merges,
                           const char *replace_from, const char *replace_to, kinfer_bpe **out,
                           char *msg) {
    char text[4096], edited[4096];
    snprintf(text, sizeof(text), k_json_ok, post, ignore, merges);
    const char *src = text;
    if (replace_from) {
        char *at = strstr(text, replace_from);
        assert_non_null(at);
        snprintf(edited, sizeof(edited), "%.*s%s%s", (int)(at - text), text, replace_to,
                 at + strlen(replace_from));
        src = edited;
    }
    char *dir = lt_tempdir();
    assert_non_null(dir);
    char path[600];
    snprintf(path, sizeof(path), "%s/tokenizer.json", dir ? dir : ".");
    FILE *f = fopen(path, "wb");
    fputs(src, f);
    fclose(f);
    kinfer_error err;
    *out = NULL;
    kinfer_err rc = kinfer_bpe_from_json(path, out, &err);
    if (rc != KINFER_OK) {
        snprintf(msg, KINFER_ERROR_MSG_MAX, "%s", err.msg);
        assert_non_null(strstr(err.msg, "tokenizer.json"));
    }
    lt_rmdir(dir);
    return rc;
}

static void test_json_ok(void **state) {
    (void)state;
    kinfer_bpe *b;
    char msg[KINFER_ERROR_MSG_MAX];
    /* merges both as strings and as pairs */
    const char *forms[] = {"[\"a b\"]", "[[\"a\",\"b\"]]"};
    for (int k = 0; k < 2; k++) {
        assert_int_equal(json_tok("null", "false", forms[k], NULL, NULL, &b, msg), KINFER_OK);
        EXPECT_PIECES(b, "abab", "ab|ab");
        assert_int_equal(kinfer_bpe_token_type_of(b, 3), KINFER_BPE_CONTROL);
        assert_int_equal(kinfer_bpe_token_type_of(b, 4), KINFER_BPE_USER_DEFINED);
        assert_false(kinfer_bpe_add_bos(b));
        /* a user-defined token is matched in plain text; a control one is not */
        size_t n;
        int32_t *ids = enc(b, "a@@b", 4, NULL, &n);
        assert_int_equal(n, 3);
        assert_int_equal(ids[1], 4);
        free(ids);
        kinfer_bpe_ids none = {0};
        kinfer_error err;
        assert_int_equal(kinfer_bpe_encode(b, "<|x|>", 5, NULL, &none, &err),
                         KINFER_ERR_INVALID_REQUEST); /* as text: '<' has no token here */
        assert_non_null(strstr(err.msg, "has no token"));
        free(none.ids);
        kinfer_bpe_encode_opts o = {.parse_special = true};
        ids = enc(b, "a<|x|>", 6, &o, &n);
        assert_int_equal(n, 2);
        assert_int_equal(ids[1], 3);
        free(ids);
        kinfer_bpe_destroy(b);
    }
    /* TemplateProcessing with a token before $A: BOS */
    assert_int_equal(json_tok("{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{"
                              "\"id\":\"<|x|>\",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\","
                              "\"type_id\":0}}]}",
                              "false", "[\"a b\"]", NULL, NULL, &b, msg),
                     KINFER_OK);
    assert_true(kinfer_bpe_add_bos(b));
    assert_int_equal(kinfer_bpe_bos(b), 3);
    kinfer_bpe_destroy(b);
    /* ignore_merges: a word that is a token is taken whole, whatever the merges */
    assert_int_equal(json_tok("null", "true", "[]", NULL, NULL, &b, msg), KINFER_OK);
    EXPECT_PIECES(b, "ab", "ab");
    kinfer_bpe_destroy(b);
    assert_int_equal(json_tok("null", "false", "[]", NULL, NULL, &b, msg), KINFER_OK);
    EXPECT_PIECES(b, "ab", "a|b");
    kinfer_bpe_destroy(b);
}

static void test_json_refused(void **state) {
    (void)state;
    static const struct {
        const char *from, *to;
        kinfer_err code;
        const char *want;
    } cases[] = {
        {"\"normalizer\":null", "\"normalizer\":{\"type\":\"NFC\"}", KINFER_ERR_UNSUPPORTED,
         "normalizer NFC is not supported"},
        {"\"type\":\"BPE\"", "\"type\":\"WordPiece\"", KINFER_ERR_UNSUPPORTED,
         "model type WordPiece is not supported"},
        {"\"dropout\":null", "\"dropout\":0.1", KINFER_ERR_UNSUPPORTED, "model.dropout"},
        {"\"byte_fallback\":false", "\"byte_fallback\":true", KINFER_ERR_UNSUPPORTED,
         "byte_fallback = true"},
        {"\"continuing_subword_prefix\":\"\"", "\"continuing_subword_prefix\":\"##\"",
         KINFER_ERR_UNSUPPORTED, "continuing_subword_prefix"},
        {"{\"type\":\"Digits\",\"individual_digits\":true}",
         "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"x\"}}", KINFER_ERR_UNSUPPORTED,
         "pre_tokenizer Sequence [Split, ByteLevel] is not supported"},
        {"\"individual_digits\":true", "\"individual_digits\":false", KINFER_ERR_UNSUPPORTED,
         "individual_digits = false"},
        {"\"add_prefix_space\":false,\"trim", "\"add_prefix_space\":true,\"trim",
         KINFER_ERR_UNSUPPORTED, "add_prefix_space = true is not supported"},
        {"\"use_regex\":true", "\"use_regex\":false", KINFER_ERR_UNSUPPORTED,
         "use_regex = false is not supported"},
        {"\"decoder\":{\"type\":\"ByteLevel\"", "\"decoder\":{\"type\":\"Metaspace\"",
         KINFER_ERR_UNSUPPORTED, "decoder Metaspace is not supported"},
        {"\"lstrip\":false", "\"lstrip\":true", KINFER_ERR_UNSUPPORTED,
         "added token '<|x|>' uses lstrip"},
        {"\"ab\":2,", "", KINFER_ERR_MODEL_LOAD, "merge 0 'a b': the merged token"},
        {"\"b\":1", "\"b\":-1", KINFER_ERR_MODEL_LOAD, "model.vocab['b'] is not an id"},
        {"{\"id\":4,\"content\":\"@@\"", "{\"id\":0,\"content\":\"@@\"", KINFER_ERR_MODEL_LOAD,
         "added token '@@' has id 0, which the vocabulary gives to another token"},
        {"\"merges\":[\"a b\"]", "\"merges\":[\"ab\"]", KINFER_ERR_MODEL_LOAD,
         "model.merges[0] is not"},
        {"\"version\":\"1.0\",", "\"version\":\"1.0\",,", KINFER_ERR_MODEL_LOAD, "line 1"},
    };
    char msg[KINFER_ERROR_MSG_MAX];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        kinfer_bpe *b;
        kinfer_err rc = json_tok("null", "false", "[\"a b\"]", cases[i].from, cases[i].to, &b, msg);
        if (rc == KINFER_OK)
            kinfer_bpe_destroy(b);
        if (rc != cases[i].code || !strstr(msg, cases[i].want))
            fail_msg("case %zu: rc %d '%s' (want %d '%s')", i, rc, rc ? msg : "", cases[i].code,
                     cases[i].want);
    }
    kinfer_bpe *b;
    assert_int_equal(
        json_tok("{\"type\":\"RobertaProcessing\"}", "false", "[\"a b\"]", NULL, NULL, &b, msg),
        KINFER_ERR_UNSUPPORTED);
    assert_non_null(strstr(msg, "post_processor RobertaProcessing is not supported"));
    assert_int_equal(json_tok("{\"type\":\"TemplateProcessing\",\"single\":[{\"Sequence\":{\"id\":"
                              "\"A\"}},{\"SpecialToken\":{\"id\":\"<|x|>\"}}]}",
                              "false", "[\"a b\"]", NULL, NULL, &b, msg),
                     KINFER_ERR_UNSUPPORTED);
    assert_non_null(strstr(msg, "TemplateProcessing 'single'"));
    kinfer_error err;
    assert_int_equal(kinfer_bpe_from_json("/nonexistent/tokenizer.json", &b, &err),
                     KINFER_ERR_MODEL_LOAD);
    assert_non_null(strstr(err.msg, "/nonexistent/tokenizer.json"));
}

int main(void) {
    const struct CMUnitTest tiny_tests[] = {
        cmocka_unit_test(test_merge_order),  cmocka_unit_test(test_gpt2_split),
        cmocka_unit_test(test_gguf_refused), cmocka_unit_test(test_json_ok),
        cmocka_unit_test(test_json_refused),
    };
    const struct CMUnitTest smol_tests[] = {
        cmocka_unit_test(test_smol_specials),       cmocka_unit_test(test_smol_control_tokens),
        cmocka_unit_test(test_smol_roundtrip_utf8), cmocka_unit_test(test_smol_roundtrip_bytes),
        cmocka_unit_test(test_smol_invalid_utf8),   cmocka_unit_test(test_smol_long_input),
    };
    int rc = cmocka_run_group_tests_name("bpe_tiny", tiny_tests, NULL, NULL);
    rc += cmocka_run_group_tests_name("bpe_smollm2", smol_tests, setup_smol, teardown_smol);
    return rc;
}
