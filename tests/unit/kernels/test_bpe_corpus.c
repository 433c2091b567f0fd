/* test_bpe_corpus.c — the BPE tokenizer on the committed hard corpus
 * (tests/data/llm/tokenizer_corpus.json: code, CJK, emoji, combining marks,
 * RTL, whitespace runs, digits, contractions, special-token literals,
 * control characters, invalid UTF-8; ids from llama.cpp 0.3.36 on the
 * SmolLM2 GGUF). Plain text must give llama.cpp's ids (parse_special=false)
 * and round-trip exactly; trusted text with control-token parsing must give
 * its parse_special=true ids; invalid UTF-8 is refused naming the first bad
 * byte (llama.cpp replaces it with U+FFFD), and in byte mode it round-trips
 * where the vocabulary has the bytes' tokens. Also the chat cases
 * (chat_template_cases.json) through the template and the tokenizer. */
#include <jansson.h>
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
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer_wordpiece.h"

static kinfer_gguf *g_file;
static kinfer_bpe *g_bpe;
static json_t *g_corpus, *g_chat;

static json_t *load_data(const char *name) {
    char path[1024];
    const char *dir = getenv("KINFER_LLM_DATA");
    if (dir && *dir)
        snprintf(path, sizeof(path), "%s/%s", dir, name);
    else
        snprintf(path, sizeof(path), "%s/tests/data/llm/%s", KINFER_SOURCE_DIR, name);
    json_error_t je;
    json_t *j = json_load_file(path, JSON_ALLOW_NUL, &je);
    if (!j)
        fprintf(stderr, "%s: %s\n", path, je.text);
    return j;
}

static int setup(void **state) {
    (void)state;
    char path[4096];
    kinfer_error err;
    if (!lt_smollm2_gguf(path, sizeof(path)))
        return -1;
    if (kinfer_gguf_open(path, &g_file, &err) != KINFER_OK ||
        kinfer_bpe_from_gguf(g_file, &g_bpe, &err) != KINFER_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    g_corpus = load_data("tokenizer_corpus.json");
    g_chat = load_data("chat_template_cases.json");
    return g_corpus && g_chat ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    json_decref(g_corpus);
    json_decref(g_chat);
    kinfer_bpe_destroy(g_bpe);
    kinfer_gguf_close(g_file);
    return 0;
}

static bool ids_equal(const kinfer_bpe_ids *got, const json_t *want) {
    if (got->n != json_array_size(want))
        return false;
    for (size_t i = 0; i < got->n; i++)
        if (got->ids[i] != json_integer_value(json_array_get(want, i)))
            return false;
    return true;
}

static void show(const char *name, const kinfer_bpe_ids *got, const json_t *want) {
    char *w = json_dumps(want, JSON_COMPACT);
    fprintf(stderr, "%s: want %s\n  got [", name, w);
    for (size_t i = 0; i < got->n; i++)
        fprintf(stderr, "%s%d", i ? "," : "", got->ids[i]);
    fprintf(stderr, "]\n");
    free(w);
}

static size_t hex_bytes(const char *hex, uint8_t *out, size_t cap) {
    size_t n = strlen(hex) / 2;
    for (size_t i = 0; i < n && i < cap; i++) {
        unsigned v = 0;
        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
    return n < cap ? n : cap;
}

static void test_corpus(void **state) {
    (void)state;
    const json_t *cases = json_object_get(g_corpus, "cases");
    size_t i, texts = 0, plain_ok = 0, special_ok = 0, invalid = 0, bytes_rt = 0;
    const json_t *c;
    json_array_foreach(cases, i, c) {
        const char *name = json_string_value(json_object_get(c, "name"));
        const json_t *text = json_object_get(c, "text");
        kinfer_error err;
        if (text) {
            texts++;
            const char *s = json_string_value(text);
            size_t len = json_string_length(text);
            kinfer_bpe_ids ids = {0};
            if (kinfer_bpe_encode(g_bpe, s, len, NULL, &ids, &err) != KINFER_OK)
                fail_msg("%s: %s", name, err.msg);
            if (!ids_equal(&ids, json_object_get(c, "ids"))) {
                show(name, &ids, json_object_get(c, "ids"));
                fail_msg("%s: plain ids differ from llama.cpp", name);
            }
            plain_ok++;
            char *back;
            size_t blen;
            assert_int_equal(kinfer_bpe_decode(g_bpe, ids.ids, ids.n, false, &back, &blen, &err),
                             KINFER_OK);
            if (blen != len || memcmp(back, s, len) != 0)
                fail_msg("%s: no exact round trip", name);
            free(back);
            /* trusted text: control tokens parsed, as llama.cpp's parse_special */
            const json_t *want_sp = json_object_get(c, "ids_parse_special");
            if (!want_sp)
                want_sp = json_object_get(c, "ids");
            kinfer_bpe_ids sp = {0};
            kinfer_bpe_encode_opts o = {.parse_special = true};
            assert_int_equal(kinfer_bpe_encode(g_bpe, s, len, &o, &sp, &err), KINFER_OK);
            if (!ids_equal(&sp, want_sp)) {
                show(name, &sp, want_sp);
                fail_msg("%s: parse_special ids differ from llama.cpp", name);
            }
            special_ok++;
            free(ids.ids);
            free(sp.ids);
        } else {
            invalid++;
            uint8_t raw[256];
            size_t n =
                hex_bytes(json_string_value(json_object_get(c, "bytes_hex")), raw, sizeof(raw));
            size_t bad = SIZE_MAX;
            assert_false(kinfer_utf8_valid((const char *)raw, n, &bad));
            kinfer_bpe_ids ids = {0};
            assert_int_equal(kinfer_bpe_encode(g_bpe, (const char *)raw, n, NULL, &ids, &err),
                             KINFER_ERR_INVALID_REQUEST);
            char want[48];
            snprintf(want, sizeof(want), "at offset %zu", bad);
            if (!strstr(err.msg, want))
                fail_msg("%s: '%s' lacks '%s'", name, err.msg, want);
            /* byte mode: exact bytes back, or a refusal naming a byte
             * this vocabulary has no token for */
            kinfer_bpe_encode_opts o = {.allow_invalid_utf8 = true};
            kinfer_err rc = kinfer_bpe_encode(g_bpe, (const char *)raw, n, &o, &ids, &err);
            if (rc == KINFER_OK) {
                char *back;
                size_t blen;
                assert_int_equal(
                    kinfer_bpe_decode(g_bpe, ids.ids, ids.n, false, &back, &blen, &err), KINFER_OK);
                assert_int_equal(blen, n);
                assert_memory_equal(back, raw, n);
                free(back);
                bytes_rt++;
            } else {
                assert_int_equal(rc, KINFER_ERR_INVALID_REQUEST);
                assert_non_null(strstr(err.msg, "has no token"));
            }
            free(ids.ids);
        }
    }
    fprintf(stderr,
            "tokenizer corpus: %zu/%zu texts = llama.cpp ids (plain), %zu/%zu with "
            "parse_special, exact round trips; %zu invalid UTF-8 refused (%zu round-trip in "
            "byte mode)\n",
            plain_ok, texts, special_ok, texts, invalid, bytes_rt);
    assert_true(texts >= 200 && invalid >= 10);
}

/* The chat cases: template render (with the case's add_generation_prompt)
 * equal to Jinja2's, ids equal to llama.cpp's tokenization of it, except
 * that control-token text typed in a message stays text. */
static void test_chat(void **state) {
    (void)state;
    kinfer_str src;
    kinfer_error err;
    assert_int_equal(kinfer_gguf_get_str(g_file, "tokenizer.chat_template", true, &src, &err),
                     KINFER_OK);
    kinfer_chat_template *t;
    assert_int_equal(kinfer_chat_template_parse(src.ptr, src.len, "gguf", &t, &err), KINFER_OK);
    const json_t *cases = json_object_get(g_chat, "cases");
    size_t i, n_equal = 0, n_typed = 0;
    const json_t *c;
    json_array_foreach(cases, i, c) {
        const char *name = json_string_value(json_object_get(c, "name"));
        const json_t *ms = json_object_get(c, "messages");
        size_t nm = json_array_size(ms);
        kinfer_chat_message *m = calloc(nm + 1, sizeof(*m));
        bool typed = false;
        for (size_t k = 0; k < nm; k++) {
            const json_t *r = json_object_get(json_array_get(ms, k), "role");
            const json_t *ct = json_object_get(json_array_get(ms, k), "content");
            m[k].role = (kinfer_str){json_string_value(r), json_string_length(r)};
            m[k].content = (kinfer_str){json_string_value(ct), json_string_length(ct)};
            typed |= strstr(json_string_value(ct), "<|im_") != NULL;
        }
        kinfer_chat_vars v = {m, nm, json_is_true(json_object_get(c, "add_generation_prompt")),
                              NULL, NULL};
        char *text;
        uint8_t *tr;
        size_t len;
        assert_int_equal(kinfer_chat_template_render(t, &v, &text, &tr, &len, &err), KINFER_OK);
        const json_t *want = json_object_get(c, "rendered");
        if (len != json_string_length(want) || memcmp(text, json_string_value(want), len) != 0)
            fail_msg("%s: render differs from Jinja2", name);
        kinfer_bpe_ids ids = {0}, all = {0};
        kinfer_bpe_encode_opts o = {.parse_special = true, .trusted = tr};
        assert_int_equal(kinfer_bpe_encode(g_bpe, text, len, &o, &ids, &err), KINFER_OK);
        o.trusted = NULL; /* what llama.cpp does: the whole render is trusted */
        assert_int_equal(kinfer_bpe_encode(g_bpe, text, len, &o, &all, &err), KINFER_OK);
        if (!ids_equal(&all, json_object_get(c, "ids"))) {
            show(name, &all, json_object_get(c, "ids"));
            fail_msg("%s: ids differ from llama.cpp", name);
        }
        if (typed) {
            assert_false(ids_equal(&ids, json_object_get(c, "ids")));
            n_typed++;
        } else {
            assert_true(ids_equal(&ids, json_object_get(c, "ids")));
            n_equal++;
        }
        free(ids.ids);
        free(all.ids);
        free(text);
        free(tr);
        free(m);
    }
    fprintf(stderr, "chat cases: %zu equal to llama.cpp, %zu with typed markers kept as text\n",
            n_equal, n_typed);
    assert_true(n_equal >= 10 && n_typed >= 1);
    kinfer_chat_template_destroy(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_corpus),
        cmocka_unit_test(test_chat),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
