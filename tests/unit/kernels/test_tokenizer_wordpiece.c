/* test_tokenizer_wordpiece.c — the WordPiece tokenizer on a small synthetic
 * vocabulary: greedy longest match, ## continuation, [UNK], the word-length
 * limit, normalizer switches, truncation, every class of invalid UTF-8 and
 * every refused tokenizer file. Needs no model package. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tokenizer/tokenizer_private.h"
#include "tokenizer/tokenizer_wordpiece.h"

/* ids: [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4 then the words below. */
static const char *const k_vocab[] = {
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un",   "##aff", "##able", "aff", "able", "##a",
    "hello", "world", ",",     "!",     "cafe",   "café", "中",    "x",      "##x", "Hello"};
enum {
    PAD,
    UNK,
    CLS,
    SEP,
    MASK,
    UN,
    H_AFF,
    H_ABLE,
    AFF,
    ABLE,
    H_A,
    HELLO,
    WORLD,
    COMMA,
    BANG,
    CAFE,
    CAFE_ACC,
    ZHONG,
    X,
    H_X,
    HELLO_CASED
};

static char g_vocab_path[512];
static char g_dir[128];

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state) {
    (void)state;
    snprintf(g_dir, sizeof(g_dir), "/tmp/kinfer_tok_test_%d", (int)getpid());
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "mkdir -p %s", g_dir);
    if (system(cmd) != 0)
        return -1;
    snprintf(g_vocab_path, sizeof(g_vocab_path), "%s/vocab.txt", g_dir);
    FILE *f = fopen(g_vocab_path, "wb");
    for (size_t i = 0; i < sizeof(k_vocab) / sizeof(k_vocab[0]); i++)
        fprintf(f, "%s\n", k_vocab[i]);
    fclose(f);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static kinfer_tokenizer *load(bool lower, int strip) {
    kinfer_tokenizer_options o = kinfer_tokenizer_options_default();
    o.lowercase = lower;
    o.strip_accents = strip;
    kinfer_tokenizer *tok = NULL;
    kinfer_error err;
    assert_int_equal(kinfer_tokenizer_load_vocab(g_vocab_path, &o, &tok, &err), KINFER_OK);
    return tok;
}

static void expect(const kinfer_tokenizer *tok, const char *text, const int32_t *want, size_t n) {
    int32_t ids[64];
    uint32_t got = 0;
    kinfer_error err;
    assert_int_equal(
        kinfer_tokenizer_encode(tok, text, strlen(text), 64, true, ids, &got, NULL, &err),
        KINFER_OK);
    assert_int_equal(got, n);
    assert_memory_equal(ids, want, n * sizeof(int32_t));
}

#define EXPECT(tok, text, ...)                                                                     \
    do {                                                                                           \
        const int32_t want_[] = {__VA_ARGS__};                                                     \
        expect(tok, text, want_, sizeof(want_) / sizeof(want_[0]));                                \
    } while (0)

static void test_greedy_longest_match(void **state) {
    (void)state;
    kinfer_tokenizer *tok = load(true, -1);
    EXPECT(tok, "unaffable", CLS, UN, H_AFF, H_ABLE, SEP);
    EXPECT(tok, "affable", CLS, AFF, H_ABLE, SEP);
    EXPECT(tok, "xxx", CLS, X, H_X, H_X, SEP);
    /* "unaffablez": no piece for "z" -> the whole word is [UNK] */
    EXPECT(tok, "unaffablez hello", CLS, UNK, HELLO, SEP);
    EXPECT(tok, "", CLS, SEP);
    EXPECT(tok, " \t\n ", CLS, SEP);
    kinfer_tokenizer_destroy(tok);
}

static void test_punct_whitespace_cjk(void **state) {
    (void)state;
    kinfer_tokenizer *tok = load(true, -1);
    EXPECT(tok, "Hello,world!", CLS, HELLO, COMMA, WORLD, BANG, SEP);
    EXPECT(tok, "hello\u3000world", CLS, HELLO, WORLD, SEP); /* ideographic space */
    EXPECT(tok, "x中x", CLS, X, ZHONG, X, SEP);              /* CJK split out */
    EXPECT(tok, "hel\x01lo", CLS, HELLO, SEP);               /* control removed */
    EXPECT(tok, "hel\u200blo", CLS, HELLO, SEP);             /* Cf removed */
    EXPECT(tok, "[SEP]hello[MASK]", CLS, SEP, HELLO, MASK, SEP);
    kinfer_tokenizer_destroy(tok);
}

static void test_case_and_accents(void **state) {
    (void)state;
    kinfer_tokenizer *lower = load(true, -1); /* strip follows lowercase */
    EXPECT(lower, "CAFÉ", CLS, CAFE, SEP);
    EXPECT(lower, "Cafe\u0301", CLS, CAFE, SEP);
    kinfer_tokenizer_destroy(lower);
    kinfer_tokenizer *keep = load(true, 0); /* lowercase, keep accents */
    EXPECT(keep, "CAFÉ", CLS, CAFE_ACC, SEP);
    kinfer_tokenizer_destroy(keep);
    kinfer_tokenizer *cased = load(false, -1);
    EXPECT(cased, "Hello hello", CLS, HELLO_CASED, HELLO, SEP);
    EXPECT(cased, "café", CLS, CAFE_ACC, SEP);
    kinfer_tokenizer_destroy(cased);
}

static void test_word_length_limit(void **state) {
    (void)state;
    kinfer_tokenizer *tok = load(true, -1);
    char word[160];
    memset(word, 'x', 100);
    word[100] = '\0';
    int32_t ids[128];
    uint32_t n = 0;
    kinfer_error err;
    assert_int_equal(kinfer_tokenizer_encode(tok, word, 100, 128, true, ids, &n, NULL, &err),
                     KINFER_OK);
    assert_int_equal(n, 102); /* x + 99 x ##x */
    memset(word, 'x', 101);
    EXPECT(tok, "", CLS, SEP);
    assert_int_equal(kinfer_tokenizer_encode(tok, word, 101, 128, true, ids, &n, NULL, &err),
                     KINFER_OK);
    assert_int_equal(n, 3);
    assert_int_equal(ids[1], UNK);
    kinfer_tokenizer_destroy(tok);
}

static void test_truncation(void **state) {
    (void)state;
    kinfer_tokenizer *tok = load(true, -1);
    const char *text = "hello world hello world hello";
    int32_t ids[8];
    uint32_t n = 0, full = 0;
    kinfer_error err;
    assert_int_equal(
        kinfer_tokenizer_encode(tok, text, strlen(text), 4, true, ids, &n, &full, &err), KINFER_OK);
    assert_int_equal(n, 4);
    const int32_t want[] = {CLS, HELLO, WORLD, SEP};
    assert_memory_equal(ids, want, sizeof(want));
    assert_true(full > 4);
    assert_int_equal(
        kinfer_tokenizer_encode(tok, text, strlen(text), 4, false, ids, &n, &full, &err),
        KINFER_ERR_INVALID_REQUEST);
    assert_non_null(strstr(err.msg, "7 tokens"));
    assert_int_equal(
        kinfer_tokenizer_encode(tok, text, strlen(text), 7, false, ids, &n, &full, &err),
        KINFER_OK);
    assert_int_equal(n, 7);
    assert_int_equal(
        kinfer_tokenizer_encode(tok, text, strlen(text), 1, true, ids, &n, &full, &err),
        KINFER_ERR_INVALID_ARG);
    kinfer_tokenizer_destroy(tok);
}

/* Each class of malformed UTF-8 is INVALID_REQUEST naming the first bad byte. */
static void test_invalid_utf8(void **state) {
    (void)state;
    static const struct {
        const char *what;
        const char *bytes;
        size_t len;
        size_t offset;
    } cases[] = {
        {"lone continuation", "ab\x80", 3, 2},
        {"overlong 2-byte", "a\xC0\x80", 3, 1},
        {"overlong C1", "\xC1\xBF", 2, 0},
        {"overlong 3-byte", "xy\xE0\x80\x80", 5, 2},
        {"overlong 4-byte", "\xF0\x80\x80\x80", 4, 0},
        {"surrogate", "hi \xED\xA0\x80", 6, 3},
        {"above U+10FFFF", "\xF4\x90\x80\x80", 4, 0},
        {"lead F5", "ok\xF5\x80\x80\x80", 6, 2},
        {"lead FF", "\xFF", 1, 0},
        {"truncated at end", "abc\xE2\x82", 5, 3},
        {"truncated mid-text", "a\xE2\x82z", 4, 1},
        {"missing continuation 4-byte", "\xF0\x9F\x98 ", 4, 0},
    };
    kinfer_tokenizer *tok = load(true, -1);
    int32_t ids[16];
    uint32_t n;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        kinfer_error err;
        kinfer_err rc = kinfer_tokenizer_encode(tok, cases[i].bytes, cases[i].len, 16, true, ids,
                                                &n, NULL, &err);
        if (rc != KINFER_ERR_INVALID_REQUEST)
            fail_msg("%s: got %d", cases[i].what, rc);
        char want[64];
        snprintf(want, sizeof(want), "byte offset %zu ", cases[i].offset);
        if (!strstr(err.msg, want))
            fail_msg("%s: message '%s' lacks '%s'", cases[i].what, err.msg, want);
        size_t bad = 999;
        assert_false(kinfer_utf8_valid(cases[i].bytes, cases[i].len, &bad));
        assert_int_equal(bad, cases[i].offset);
    }
    /* Valid edge cases pass: U+10FFFF, U+E000 after the surrogates, NUL. */
    assert_true(kinfer_utf8_valid("\xF4\x8F\xBF\xBF\xEE\x80\x80\x00", 8, NULL));
    kinfer_tokenizer_destroy(tok);
}

/* The hand-written White_Space list equals what the generated table probed
 * from the reference, on every code point that is not a control. */
static void test_whitespace_table(void **state) {
    (void)state;
    for (uint32_t cp = 1; cp <= 0x10FFFF; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF)
            continue;
        if (tok_is_control(cp))
            continue;
        if (tok_is_whitespace(cp) != tok_table_whitespace(cp))
            fail_msg("U+%04X: whitespace list and table disagree", cp);
    }
}

static void expect_load_error(const char *json, kinfer_err code, const char *needle) {
    char path[512];
    snprintf(path, sizeof(path), "%s/tokenizer.json", g_dir);
    write_file(path, json);
    kinfer_tokenizer *tok = NULL;
    kinfer_error err;
    kinfer_err rc = kinfer_tokenizer_load_dir(g_dir, &tok, &err);
    unlink(path);
    if (rc != code || !strstr(err.msg, needle))
        fail_msg("want %d '%s', got %d '%s'", code, needle, rc, rc ? err.msg : "");
    assert_null(tok);
}

static void test_refused_tokenizers(void **state) {
    (void)state;
    expect_load_error("{\"normalizer\": {\"type\": \"NFKC\"}}", KINFER_ERR_UNSUPPORTED, "NFKC");
    expect_load_error("{\"normalizer\": {\"type\": \"BertNormalizer\"}, \"pre_tokenizer\": "
                      "{\"type\": \"ByteLevel\"}}",
                      KINFER_ERR_UNSUPPORTED, "ByteLevel");
    expect_load_error("{\"normalizer\": {\"type\": \"BertNormalizer\"}, \"pre_tokenizer\": "
                      "{\"type\": \"BertPreTokenizer\"}, \"post_processor\": {\"type\": "
                      "\"TemplateProcessing\"}, \"model\": {\"type\": \"BPE\"}}",
                      KINFER_ERR_UNSUPPORTED, "BPE");
    expect_load_error("{\"normalizer\": {\"type\": \"BertNormalizer\"}, \"pre_tokenizer\": "
                      "{\"type\": \"BertPreTokenizer\"}, \"post_processor\": {\"type\": "
                      "\"RobertaProcessing\"}}",
                      KINFER_ERR_UNSUPPORTED, "RobertaProcessing");
    expect_load_error("{\"normalizer\": {\"type\": \"BertNormalizer\"}, \"pre_tokenizer\": "
                      "{\"type\": \"BertPreTokenizer\"}, \"post_processor\": {\"type\": "
                      "\"TemplateProcessing\"}, \"model\": {\"type\": \"WordPiece\", \"vocab\": "
                      "{\"[CLS]\": 0, \"[SEP]\": 1}}}",
                      KINFER_ERR_MODEL_LOAD, "[UNK]");
    expect_load_error("{\"normalizer\": {\"type\": \"BertNormalizer\"}, \"pre_tokenizer\": "
                      "{\"type\": \"BertPreTokenizer\"}, \"post_processor\": {\"type\": "
                      "\"TemplateProcessing\"}, \"model\": {\"type\": \"WordPiece\", \"vocab\": "
                      "{\"[UNK]\": 0, \"[CLS]\": 1, \"[SEP]\": 2}}, \"added_tokens\": [{\"id\": 3, "
                      "\"content\": \"<x>\", \"lstrip\": true}]}",
                      KINFER_ERR_UNSUPPORTED, "lstrip");
    expect_load_error("{\"normalizer\": {\"type\": \"BertNormalizer\", \"lowercase\": \"yes\"}, "
                      "\"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"}}",
                      KINFER_ERR_MODEL_LOAD, "booleans");
    expect_load_error("{not json", KINFER_ERR_MODEL_LOAD, "tokenizer.json");

    /* No tokenizer files at all. */
    kinfer_tokenizer *tok = NULL;
    kinfer_error err;
    assert_int_equal(kinfer_tokenizer_load_dir("/nonexistent/kinfer", &tok, &err),
                     KINFER_ERR_MODEL_LOAD);
    assert_non_null(strstr(err.msg, "vocab.txt"));
    /* A vocab.txt without [UNK]. */
    char path[512];
    snprintf(path, sizeof(path), "%s/novocab.txt", g_dir);
    write_file(path, "[CLS]\n[SEP]\nhello\n");
    assert_int_equal(kinfer_tokenizer_load_vocab(path, NULL, &tok, &err), KINFER_ERR_MODEL_LOAD);
    assert_non_null(strstr(err.msg, "[UNK]"));
    write_file(path, "[UNK]\n[CLS]\n[SEP]\n\xC3\x28\n");
    assert_int_equal(kinfer_tokenizer_load_vocab(path, NULL, &tok, &err), KINFER_ERR_MODEL_LOAD);
    assert_non_null(strstr(err.msg, "line 4"));
    /* do_basic_tokenize=false in tokenizer_config.json. */
    snprintf(path, sizeof(path), "%s/tokenizer_config.json", g_dir);
    write_file(path, "{\"do_basic_tokenize\": false}");
    assert_int_equal(kinfer_tokenizer_load_dir(g_dir, &tok, &err), KINFER_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "do_basic_tokenize"));
    /* do_lower_case=false is honoured from tokenizer_config.json. */
    write_file(path, "{\"do_lower_case\": false}");
    assert_int_equal(kinfer_tokenizer_load_dir(g_dir, &tok, &err), KINFER_OK);
    EXPECT(tok, "Hello", CLS, HELLO_CASED, SEP);
    kinfer_tokenizer_destroy(tok);
    unlink(path);
}

static void test_vocab_lookup(void **state) {
    (void)state;
    kinfer_tokenizer *tok = load(true, -1);
    assert_int_equal(kinfer_tokenizer_vocab_size(tok), sizeof(k_vocab) / sizeof(k_vocab[0]));
    assert_int_equal(kinfer_tokenizer_token_id(tok, "##able", 6), H_ABLE);
    assert_int_equal(kinfer_tokenizer_token_id(tok, "nope", 4), -1);
    assert_int_equal(kinfer_tokenizer_pad_id(tok), PAD);
    kinfer_tokenizer_destroy(tok);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_longest_match), cmocka_unit_test(test_punct_whitespace_cjk),
        cmocka_unit_test(test_case_and_accents),     cmocka_unit_test(test_word_length_limit),
        cmocka_unit_test(test_truncation),           cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_whitespace_table),     cmocka_unit_test(test_refused_tokenizers),
        cmocka_unit_test(test_vocab_lookup),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
