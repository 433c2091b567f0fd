/* test_offsets.c — the per-partition watermark and the partition table:
 * out-of-order completion, gaps, duplicates, failures, reset on rebalance,
 * ring growth, and a randomized check against a naive model. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "worker_offsets.h"

static void test_empty_has_no_commit_point(void **state) {
    (void)state;
    kinfer_worker_watermark wm;
    kinfer_worker_watermark_init(&wm);
    assert_int_equal(kinfer_worker_watermark_commit_offset(&wm), -1);
    kinfer_worker_watermark_free(&wm);
}

static void test_in_order_completion(void **state) {
    (void)state;
    kinfer_worker_watermark wm;
    kinfer_worker_watermark_init(&wm);
    uint64_t seq[5];
    for (int i = 0; i < 5; i++)
        assert_int_equal(kinfer_worker_watermark_add(&wm, 100 + i, &seq[i], NULL), KINFER_OK);
    assert_int_equal(kinfer_worker_watermark_commit_offset(&wm), 100);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(kinfer_worker_watermark_complete(&wm, seq[i]), KINFER_WORKER_COMPLETE_OK);
        assert_int_equal(kinfer_worker_watermark_commit_offset(&wm), 101 + i);
    }
    assert_int_equal(wm.npending, 0);
    kinfer_worker_watermark_free(&wm);
}

static void test_out_of_order_holds_at_lowest_unfinished(void **state) {
    (void)state;
    kinfer_worker_watermark wm;
    kinfer_worker_watermark_init(&wm);
    uint64_t s[4];
    for (int i = 0; i < 4; i++)
        kinfer_worker_watermark_add(&wm, 10 + i, &s[i], NULL);
    kinfer_worker_watermark_complete(&wm, s[3]);
    kinfer_worker_watermark_complete(&wm, s[1]);
    assert_int_equal(kinfer_worker_watermark_commit_offset(&wm), 10);
    kinfer_worker_watermark_complete(&wm, s[0]);
    assert_int_equal(kinfer_worker_watermark_commit_offset(&wm), 12);
    kinfer_worker_watermark_complete(&wm, s[2]);
    assert_int_equal(kinfer_worker_watermark_commit_offset(&wm), 14);
    kinfer_worker_watermark_free(&wm);
}

static void test_gaps_in_offsets(void **state) {
    (void)state;
    /* Compaction and transaction markers leave holes: the commit point jumps
     * to the next consumed offset, never to a hole's offset. */
    kinfer_worker_watermark wm;
    kinfer_worker_watermark_init(&wm);
    uint64_t a, b, c;
    kinfer_worker_watermark_add(&wm, 5, &a, NULL);
    kinfer_worker_watermark_add(&wm, 9, &b, NULL);
    kinfer_worker_watermark_add(&wm, 20, &c, NULL);
    kinfer_worker_watermark_complete(&wm, a);
    assert_int_equal(kinfer_worker_watermark_commit_offset(&wm), 9);
    kinfer_worker_watermark_complete(&wm, c);
    assert_int_equal(kinfer_worker_watermark_commit_offset(&wm), 9);
    kinfer_worker_watermark_complete(&wm, b);
    assert_int_equal(kinfer_worker_watermark_commit_offset(&wm), 21);
    kinfer_worker_watermark_free(&wm);
}

static void test_duplicate_offsets_and_completions(void **state) {
    (void)state;
    kinfer_worker_watermark wm;
    kinfer_worker_watermark_init(&wm);
    kinfer_error err;
    uint64_t a, b, junk;
    kinfer_worker_watermark_add(&wm, 7, &a, NULL);
    kinfer_worker_watermark_add(&wm, 8, &b, NULL);
    /* The same offset again, or a lower one: refused, state unchanged. */
    assert_int_equal(kinfer_worker_watermark_add(&wm, 8, &junk, &err), KINFER_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "not above"));
    assert_int_equal(kinfer_worker_watermark_add(&wm, 3, &junk, NULL), KINFER_ERR_INVALID_ARG);
    assert_int_equal(kinfer_worker_watermark_add(&wm, -1, &junk, NULL), KINFER_ERR_INVALID_ARG);
    assert_int_equal(wm.npending, 2);
    /* Completing twice counts once, before and after the head passes it. */
    assert_int_equal(kinfer_worker_watermark_complete(&wm, b), KINFER_WORKER_COMPLETE_OK);
    assert_int_equal(kinfer_worker_watermark_complete(&wm, b), KINFER_WORKER_COMPLETE_DUPLICATE);
    assert_int_equal(kinfer_worker_watermark_complete(&wm, a), KINFER_WORKER_COMPLETE_OK);
    assert_int_equal(kinfer_worker_watermark_complete(&wm, a), KINFER_WORKER_COMPLETE_DUPLICATE);
    assert_int_equal(kinfer_worker_watermark_complete(&wm, b), KINFER_WORKER_COMPLETE_DUPLICATE);
    assert_int_equal(kinfer_worker_watermark_complete(&wm, 99), KINFER_WORKER_COMPLETE_UNKNOWN);
    assert_int_equal(kinfer_worker_watermark_commit_offset(&wm), 9);
    assert_int_equal(wm.npending, 0);
    kinfer_worker_watermark_free(&wm);
}

static void test_failed_delivery_blocks_commit(void **state) {
    (void)state;
    kinfer_worker_watermark wm;
    kinfer_worker_watermark_init(&wm);
    uint64_t s[3];
    for (int i = 0; i < 3; i++)
        kinfer_worker_watermark_add(&wm, i, &s[i], NULL);
    kinfer_worker_watermark_complete(&wm, s[0]);
    assert_int_equal(kinfer_worker_watermark_fail(&wm, s[1]), KINFER_WORKER_COMPLETE_OK);
    kinfer_worker_watermark_complete(&wm, s[2]);
    assert_int_equal(kinfer_worker_watermark_commit_offset(&wm), 1);
    assert_int_equal(wm.nfailed, 1);
    assert_int_equal(wm.npending, 0);
    /* A failure cannot be turned into a success later. */
    assert_int_equal(kinfer_worker_watermark_complete(&wm, s[1]), KINFER_WORKER_COMPLETE_DUPLICATE);
    assert_int_equal(kinfer_worker_watermark_commit_offset(&wm), 1);
    /* Only a reset (rebalance) clears it. */
    kinfer_worker_watermark_reset(&wm);
    assert_int_equal(kinfer_worker_watermark_commit_offset(&wm), -1);
    assert_int_equal(wm.nfailed, 0);
    kinfer_worker_watermark_free(&wm);
}

static void test_reset_then_reassigned_from_lower_offset(void **state) {
    (void)state;
    kinfer_worker_watermark wm;
    kinfer_worker_watermark_init(&wm);
    uint64_t s;
    kinfer_worker_watermark_add(&wm, 500, &s, NULL);
    kinfer_worker_watermark_reset(&wm);
    /* After a rebalance the partition may restart from an older committed offset. */
    assert_int_equal(kinfer_worker_watermark_add(&wm, 400, &s, NULL), KINFER_OK);
    assert_int_equal(kinfer_worker_watermark_commit_offset(&wm), 400);
    kinfer_worker_watermark_complete(&wm, s);
    assert_int_equal(kinfer_worker_watermark_commit_offset(&wm), 401);
    kinfer_worker_watermark_free(&wm);
}

static void test_ring_grows_while_head_blocked(void **state) {
    (void)state;
    kinfer_worker_watermark wm;
    kinfer_worker_watermark_init(&wm);
    enum { N = 10000 };
    uint64_t *s = malloc(N * sizeof *s);
    assert_non_null(s);
    for (int i = 0; i < N; i++) {
        assert_int_equal(kinfer_worker_watermark_add(&wm, 2 * i, &s[i], NULL), KINFER_OK);
        if (i > 0 && i % 3 == 0) /* complete some, never the first: ring must grow */
            kinfer_worker_watermark_complete(&wm, s[i]);
    }
    assert_true(wm.capacity >= N);
    assert_int_equal(kinfer_worker_watermark_commit_offset(&wm), 0);
    for (int i = 0; i < N; i++)
        if (!(i > 0 && i % 3 == 0))
            kinfer_worker_watermark_complete(&wm, s[i]);
    assert_int_equal(kinfer_worker_watermark_commit_offset(&wm), 2 * (N - 1) + 1);
    free(s);
    kinfer_worker_watermark_free(&wm);
}

/* Naive model: the commit point is the smallest offset not done. */
static void test_random_against_model(void **state) {
    (void)state;
    srand(1234);
    for (int round = 0; round < 50; round++) {
        kinfer_worker_watermark wm;
        kinfer_worker_watermark_init(&wm);
        enum { N = 400 };
        int64_t offs[N];
        uint64_t seqs[N];
        int done[N];
        int n = 0;
        int64_t next = rand() % 1000;
        for (int step = 0; step < 3 * N; step++) {
            if (n < N && (rand() % 2 || n == 0)) {
                next += 1 + (rand() % 4 == 0 ? rand() % 5 : 0);
                offs[n] = next;
                done[n] = 0;
                assert_int_equal(kinfer_worker_watermark_add(&wm, next, &seqs[n], NULL), KINFER_OK);
                n++;
            } else {
                int k = rand() % n;
                kinfer_worker_complete_result r = kinfer_worker_watermark_complete(&wm, seqs[k]);
                assert_int_equal(r, done[k] ? KINFER_WORKER_COMPLETE_DUPLICATE
                                            : KINFER_WORKER_COMPLETE_OK);
                done[k] = 1;
            }
            int64_t expect = offs[n - 1] + 1;
            for (int i = 0; i < n; i++)
                if (!done[i]) {
                    expect = offs[i];
                    break;
                }
            assert_int_equal(kinfer_worker_watermark_commit_offset(&wm), expect);
        }
        kinfer_worker_watermark_free(&wm);
    }
}

static void test_table_refs_and_generations(void **state) {
    (void)state;
    kinfer_worker_parts *parts;
    assert_int_equal(kinfer_worker_parts_new(&parts, NULL), KINFER_OK);
    kinfer_worker_part *p0 = kinfer_worker_parts_get(parts, "req", 0);
    kinfer_worker_part *p1 = kinfer_worker_parts_get(parts, "req", 1);
    kinfer_worker_part *q0 = kinfer_worker_parts_get(parts, "other", 0);
    assert_non_null(p0);
    assert_ptr_not_equal(p0, p1);
    assert_ptr_not_equal(p0, q0);
    assert_ptr_equal(kinfer_worker_parts_get(parts, "req", 0), p0);
    assert_ptr_equal(kinfer_worker_parts_find(parts, "other", 0), q0);
    assert_null(kinfer_worker_parts_find(parts, "other", 1));

    kinfer_worker_offset_ref r1, r2, dup;
    assert_int_equal(kinfer_worker_part_track(p0, 40, &r1, NULL), KINFER_OK);
    assert_int_equal(kinfer_worker_part_track(p0, 41, &r2, NULL), KINFER_OK);
    assert_int_equal(kinfer_worker_part_track(p0, 41, &dup, NULL), KINFER_OK);
    assert_null(dup.part); /* untracked duplicate */
    assert_false(kinfer_worker_offset_done(&dup));
    assert_int_equal(kinfer_worker_part_pending(p0), 2);
    assert_true(kinfer_worker_offset_done(&r2));
    assert_int_equal(kinfer_worker_part_commit_offset(p0), 40);

    /* Revoke: the partition is reset; the late completion of r1 is stale. */
    kinfer_worker_part_reset(p0);
    assert_false(kinfer_worker_offset_done(&r1));
    assert_int_equal(kinfer_worker_part_commit_offset(p0), -1);
    kinfer_worker_offset_ref r3;
    assert_int_equal(kinfer_worker_part_track(p0, 40, &r3, NULL), KINFER_OK);
    assert_true(kinfer_worker_offset_failed(&r3));
    assert_false(kinfer_worker_offset_done(&r3));
    assert_int_equal(kinfer_worker_part_commit_offset(p0), 40);
    kinfer_worker_parts_destroy(parts);
}

static void count_fn(kinfer_worker_part *part, void *ctx) {
    (void)part;
    (*(int *)ctx)++;
}

static void test_table_grows_and_keeps_pointers(void **state) {
    (void)state;
    kinfer_worker_parts *parts;
    assert_int_equal(kinfer_worker_parts_new(&parts, NULL), KINFER_OK);
    kinfer_worker_part *ptrs[500];
    char topic[32];
    for (int i = 0; i < 500; i++) {
        snprintf(topic, sizeof topic, "t%d", i % 7);
        ptrs[i] = kinfer_worker_parts_get(parts, topic, i);
        assert_non_null(ptrs[i]);
    }
    for (int i = 0; i < 500; i++) {
        snprintf(topic, sizeof topic, "t%d", i % 7);
        assert_ptr_equal(kinfer_worker_parts_find(parts, topic, i), ptrs[i]);
    }
    int n = 0;
    kinfer_worker_parts_foreach(parts, count_fn, &n);
    assert_int_equal(n, 500);
    kinfer_worker_parts_destroy(parts);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_has_no_commit_point),
        cmocka_unit_test(test_in_order_completion),
        cmocka_unit_test(test_out_of_order_holds_at_lowest_unfinished),
        cmocka_unit_test(test_gaps_in_offsets),
        cmocka_unit_test(test_duplicate_offsets_and_completions),
        cmocka_unit_test(test_failed_delivery_blocks_commit),
        cmocka_unit_test(test_reset_then_reassigned_from_lower_offset),
        cmocka_unit_test(test_ring_grows_while_head_blocked),
        cmocka_unit_test(test_random_against_model),
        cmocka_unit_test(test_table_refs_and_generations),
        cmocka_unit_test(test_table_grows_and_keeps_pointers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
