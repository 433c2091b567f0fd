/* test_tokenizer_minilm.c — the C WordPiece tokenizer against the Hugging
 * Face fast tokenizer on the committed corpus (tests/data/minilm), with the
 * real all-MiniLM-L6-v2 tokenizer files of the pip package, loaded both from
 * tokenizer.json and from vocab.txt + tokenizer_config.json. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bert_test_fixture.h"
#include "tokenizer/tokenizer_wordpiece.h"

static char g_dir[4096];
static minilm_ref g_ref;

static int setup(void **state) {
    (void)state;
    if (!minilm_dir(g_dir, sizeof(g_dir)))
        return -1;
    if (!minilm_ref_load(&g_ref)) {
        fprintf(stderr, "cannot read tests/data/minilm (run scripts/make_bert_reference.py)\n");
        return -1;
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    minilm_ref_free(&g_ref);
    return 0;
}

static void check_corpus(const kinfer_tokenizer *tok, const char *how) {
    int32_t *ids = malloc(g_ref.max_seq_length * sizeof(int32_t));
    size_t mismatches = 0;
    for (size_t i = 0; i < g_ref.n; i++) {
        uint32_t n = 0, nfull = 0;
        kinfer_error err;
        kinfer_err rc = kinfer_tokenizer_encode(tok, g_ref.texts[i], g_ref.lens[i],
                                                g_ref.max_seq_length, true, ids, &n, &nfull, &err);
        assert_int_equal(rc, KINFER_OK);
        bool same = n == g_ref.nids[i] && memcmp(ids, g_ref.ids[i], n * sizeof(int32_t)) == 0;
        if (!same) {
            mismatches++;
            fprintf(stderr, "[%s] corpus line %zu: %u ids, reference %zu\n  got:", how, i + 1, n,
                    g_ref.nids[i]);
            for (uint32_t k = 0; k < n && k < 24; k++)
                fprintf(stderr, " %d", ids[k]);
            fprintf(stderr, "\n  ref:");
            for (size_t k = 0; k < g_ref.nids[i] && k < 24; k++)
                fprintf(stderr, " %d", g_ref.ids[i][k]);
            fprintf(stderr, "\n");
        }
    }
    free(ids);
    assert_int_equal(mismatches, 0);
}

static void test_minilm_ids_tokenizer_json(void **state) {
    (void)state;
    kinfer_tokenizer *tok = NULL;
    kinfer_error err;
    assert_int_equal(kinfer_tokenizer_load_dir(g_dir, &tok, &err), KINFER_OK);
    assert_int_equal(kinfer_tokenizer_vocab_size(tok), 30522);
    check_corpus(tok, "tokenizer.json");
    kinfer_tokenizer_destroy(tok);
}

static void test_minilm_ids_vocab_txt(void **state) {
    (void)state;
    char path[4200];
    snprintf(path, sizeof(path), "%s/vocab.txt", g_dir);
    kinfer_tokenizer_options o = kinfer_tokenizer_options_default(); /* do_lower_case: true */
    kinfer_tokenizer *tok = NULL;
    kinfer_error err;
    assert_int_equal(kinfer_tokenizer_load_vocab(path, &o, &tok, &err), KINFER_OK);
    check_corpus(tok, "vocab.txt");
    kinfer_tokenizer_destroy(tok);
}

/* The corpus holds texts longer than 256 tokens: without truncation they are
 * refused with both lengths in the message; with it they end in [SEP]. */
static void test_minilm_truncate_flag(void **state) {
    (void)state;
    kinfer_tokenizer *tok = NULL;
    kinfer_error err;
    assert_int_equal(kinfer_tokenizer_load_dir(g_dir, &tok, &err), KINFER_OK);
    int32_t ids[256];
    size_t refused = 0;
    for (size_t i = 0; i < g_ref.n; i++) {
        uint32_t n = 0, nfull = 0;
        kinfer_err rc = kinfer_tokenizer_encode(tok, g_ref.texts[i], g_ref.lens[i], 256, false, ids,
                                                &n, &nfull, &err);
        if (rc != KINFER_OK) {
            assert_int_equal(rc, KINFER_ERR_INVALID_REQUEST);
            assert_non_null(strstr(err.msg, "truncate=false"));
            assert_int_equal(g_ref.nids[i], 256);
            assert_true(nfull > 256);
            refused++;
        } else {
            assert_int_equal(n, g_ref.nids[i]);
            assert_int_equal(nfull, n);
        }
    }
    assert_true(refused >= 3);
    kinfer_tokenizer_destroy(tok);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minilm_ids_tokenizer_json),
        cmocka_unit_test(test_minilm_ids_vocab_txt),
        cmocka_unit_test(test_minilm_truncate_flag),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
