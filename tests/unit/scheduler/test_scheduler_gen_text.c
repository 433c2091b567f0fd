/* test_scheduler_gen_text.c — a generation's text (gen_text.c): UTF-8
 * decoding at every cut point, the U+FFFD replacements Python's
 * decode(errors="replace") makes (the expected bytes below were produced
 * by CPython 3), stop-string search across boundaries and the hold-back a
 * stream needs; and the KV block allocator (gen_kv.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gen_kv.h"
#include "gen_text.h"

static void add(gen_text *t, const char *s, size_t n) {
    assert_int_equal(gen_text_add(t, s, n), 0);
}

/* Fed one byte at a time or in any two pieces, valid text comes out the
 * same, and what is there at each moment is whole characters only. */
static void test_every_cut_point(void **state) {
    (void)state;
    static const char s[] = "a\xc3\xa9\xe6\x97\xa5\xf0\x9f\x8e\x89 z\xd0\x96";
    size_t n = sizeof(s) - 1;
    for (size_t cut = 0; cut <= n; cut++) {
        gen_text t;
        gen_text_init(&t);
        add(&t, s, cut);
        size_t bad;
        assert_true(gen_utf8_valid(t.buf ? t.buf : "", t.len, &bad));
        assert_memory_equal(t.buf ? t.buf : "", s, t.len); /* a prefix */
        assert_true(t.len <= cut && cut - t.len < 4);
        add(&t, s + cut, n - cut);
        assert_int_equal(t.len, n);
        assert_memory_equal(t.buf, s, n);
        assert_int_equal(t.buf[n], '\0');
        assert_int_equal(gen_text_flush(&t), 0);
        assert_int_equal(t.len, n);
        gen_text_free(&t);
    }
    gen_text t;
    gen_text_init(&t);
    for (size_t i = 0; i < n; i++) {
        add(&t, s + i, 1);
        size_t bad;
        assert_true(gen_utf8_valid(t.buf ? t.buf : "", t.len, &bad));
    }
    assert_memory_equal(t.buf, s, n);
    gen_text_free(&t);
}

static void test_invalid_bytes_as_python(void **state) {
    (void)state;
    static const struct {
        const char *in;
        size_t n;
        const char *want;
    } cases[] = {
        {"\xff", 1, "\xef\xbf\xbd"},
        {"\xc3", 1, "\xef\xbf\xbd"},
        {"\xe6\x97x", 3, "\xef\xbf\xbdx"},
        {"\xed\xa0\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"\xf0\x9f\x8e"
         "a",
         4,
         "\xef\xbf\xbd"
         "a"},
        {"\xc0\xaf", 2, "\xef\xbf\xbd\xef\xbf\xbd"},
        {"\xf4\x90\x80\x80", 4, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"\xe0\x80\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"a\x80"
         "b",
         3,
         "a\xef\xbf\xbd"
         "b"},
        {"\xe0\xa0", 2, "\xef\xbf\xbd"},
        {"\xf1\x80\x80\xc3\xa9", 5, "\xef\xbf\xbd\xc3\xa9"},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        /* whole, then byte by byte: the same */
        for (int bytewise = 0; bytewise < 2; bytewise++) {
            gen_text t;
            gen_text_init(&t);
            if (bytewise)
                for (size_t i = 0; i < cases[c].n; i++)
                    add(&t, cases[c].in + i, 1);
            else
                add(&t, cases[c].in, cases[c].n);
            gen_text_flush(&t);
            if (t.len != strlen(cases[c].want) || memcmp(t.buf, cases[c].want, t.len) != 0)
                fail_msg("case %zu (bytewise %d): wrong replacement", c, bytewise);
            gen_text_free(&t);
        }
    }
}

static void test_utf8_valid(void **state) {
    (void)state;
    size_t bad = 99;
    assert_true(gen_utf8_valid("", 0, &bad));
    assert_true(gen_utf8_valid("a\xc3\xa9\xf4\x8f\xbf\xbf", 7, &bad));
    assert_false(gen_utf8_valid("ab\xc3", 3, &bad));
    assert_int_equal(bad, 2);
    assert_false(gen_utf8_valid("\xed\xa0\x80", 3, &bad)); /* a surrogate */
    assert_int_equal(bad, 0);
    assert_false(gen_utf8_valid("x\xe0\x9f\xbf", 4, &bad)); /* overlong */
    assert_int_equal(bad, 1);
    assert_false(gen_utf8_valid("\xf4\x90\x80\x80", 4, &bad)); /* above U+10FFFF */
}

static void test_stop_find(void **state) {
    (void)state;
    kinfer_str stops[3] = {{"world", 5}, {"lo", 2}, {"o w", 3}};
    const char *t = "hello world";
    int32_t which = -1;
    /* earliest start wins: "lo" at 3 */
    assert_int_equal(gen_stop_find(t, 11, 0, 0, stops, 3, &which), 3);
    assert_int_equal(which, 1);
    /* only matches ending after tail = 5 ("hello" searched): "o w" at 4 */
    assert_int_equal(gen_stop_find(t, 11, 0, 5, stops, 3, &which), 4);
    assert_int_equal(which, 2);
    /* nothing before `from` */
    assert_int_equal(gen_stop_find(t, 11, 5, 5, stops, 1, &which), 6);
    assert_int_equal(which, 0);
    assert_int_equal(gen_stop_find(t, 10, 5, 5, stops, 1, &which), SIZE_MAX);
    /* ties at one start: the lower index */
    kinfer_str tie[2] = {{"ab", 2}, {"a", 1}};
    assert_int_equal(gen_stop_find("xab", 3, 0, 0, tie, 2, &which), 1);
    assert_int_equal(which, 0);
}

static void test_holdback(void **state) {
    (void)state;
    kinfer_str stops[2] = {{"world", 5}, {"\xc3\xa9t\xc3\xa9", 6}};
    assert_int_equal(gen_stop_holdback("hello wor", 9, 0, stops, 2), 3);
    assert_int_equal(gen_stop_holdback("hello w", 7, 0, stops, 2), 1);
    assert_int_equal(gen_stop_holdback("hello", 5, 0, stops, 2), 0);
    /* never more than what is not yet released */
    assert_int_equal(gen_stop_holdback("hello wor", 9, 7, stops, 2), 0);
    assert_int_equal(gen_stop_holdback("hello w", 7, 6, stops, 2), 1);
    /* a whole stop string is a match, not a hold: at most len - 1 */
    assert_int_equal(gen_stop_holdback("world", 5, 0, stops, 1), 0);
    assert_int_equal(gen_stop_holdback("un \xc3\xa9t", 6, 0, stops, 2), 3);
}

static void test_kv_allocator(void **state) {
    (void)state;
    gen_kv kv;
    assert_int_equal(gen_kv_init(&kv, 8), 0);
    uint32_t a[8], b[8], na = 0, nb = 0;
    assert_true(gen_kv_take(&kv, 1, 3, a, &na));
    assert_int_equal(na, 3);
    assert_int_equal(a[0], 0);                    /* block 0 first */
    assert_false(gen_kv_take(&kv, 2, 6, b, &nb)); /* all or nothing */
    assert_int_equal(nb, 0);
    assert_int_equal(gen_kv_nfree(&kv), 5);
    assert_true(gen_kv_take(&kv, 2, 5, b, &nb));
    assert_int_equal(gen_kv_nfree(&kv), 0);
    for (uint32_t i = 0; i < 3; i++)
        for (uint32_t j = 0; j < 5; j++)
            assert_int_not_equal(a[i], b[j]);
    assert_false(gen_kv_release(&kv, 2, a, 3)); /* not its blocks */
    assert_int_equal(gen_kv_nfree(&kv), 0);
    assert_true(gen_kv_release(&kv, 1, a, 3));
    assert_int_equal(gen_kv_nfree(&kv), 3);
    assert_false(gen_kv_release(&kv, 1, a, 3)); /* twice */
    uint32_t c[8], nc = 0;
    assert_true(gen_kv_take(&kv, 3, 1, c, &nc));
    assert_int_equal(c[0], a[2]); /* the last freed first */
    assert_int_equal(kv.owner[c[0]], 3);
    assert_int_equal(gen_kv_blocks_for(0, 4), 0);
    assert_int_equal(gen_kv_blocks_for(4, 4), 1);
    assert_int_equal(gen_kv_blocks_for(5, 4), 2);
    gen_kv_free(&kv);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_cut_point), cmocka_unit_test(test_invalid_bytes_as_python),
        cmocka_unit_test(test_utf8_valid),      cmocka_unit_test(test_stop_find),
        cmocka_unit_test(test_holdback),        cmocka_unit_test(test_kv_allocator),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
