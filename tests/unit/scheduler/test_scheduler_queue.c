/* test_scheduler_queue.c — the scheduler's pure parts: the EDF heap against
 * a sort, the latency estimator, and the dispatch policy as a function of
 * (queue summary, now). No engine, no threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sched_latency.h"
#include "sched_policy.h"
#include "sched_queue.h"

static int cmp_req(const void *a, const void *b) {
    const sched_req *x = *(sched_req *const *)a, *y = *(sched_req *const *)b;
    return sched_req_before(x, y) ? -1 : sched_req_before(y, x) ? 1 : 0;
}

static void test_queue_pops_in_edf_priority_arrival_order(void **state) {
    (void)state;
    enum { N = 2000 };
    sched_req *reqs = calloc(N, sizeof(*reqs));
    sched_req **sorted = calloc(N, sizeof(*sorted));
    sched_queue q;
    sched_queue_init(&q);
    srand(7);
    for (int i = 0; i < N; i++) {
        sched_req *r = &reqs[i];
        /* few distinct deadlines and priorities, so ties are common */
        r->deadline_us = (rand() % 4 == 0) ? SCHED_NO_DEADLINE : 1000 + (rand() % 8) * 100;
        r->priority = rand() % 3 - 1;
        r->seq = (uint64_t)i;
        r->arrival_us = i;
        r->cost.rows = 1 + (uint32_t)(rand() % 4);
        sorted[i] = r;
        assert_int_equal(sched_queue_push(&q, r), 0);
        /* interleave pops with pushes */
        if (i % 7 == 6) {
            sched_req *p = sched_queue_pop(&q);
            p->seq = UINT64_MAX; /* mark popped */
        }
    }
    /* What is left pops in the order a sort gives. */
    size_t left = 0;
    uint64_t rows = 0;
    for (int i = 0; i < N; i++)
        if (sorted[i]->seq != UINT64_MAX) {
            sorted[left++] = sorted[i];
            rows += sorted[i]->cost.rows;
        }
    assert_int_equal(q.len, left);
    assert_int_equal(q.rows, rows);
    qsort(sorted, left, sizeof(*sorted), cmp_req);
    /* the oldest is the lowest seq still queued */
    uint64_t min_seq = UINT64_MAX;
    for (size_t i = 0; i < left; i++)
        if (sorted[i]->seq < min_seq)
            min_seq = sorted[i]->seq;
    assert_int_equal(sched_queue_oldest(&q)->seq, min_seq);
    for (size_t i = 0; i < left; i++)
        assert_ptr_equal(sched_queue_pop(&q), sorted[i]);
    assert_null(sched_queue_pop(&q));
    assert_null(sched_queue_oldest(&q));
    assert_int_equal(q.rows, 0);
    sched_queue_free(&q);
    free(sorted);
    free(reqs);
}

static void test_queue_ties(void **state) {
    (void)state;
    sched_req a = {.deadline_us = 100, .priority = 0, .seq = 0};
    sched_req b = {.deadline_us = 100, .priority = 5, .seq = 1};
    sched_req c = {.deadline_us = 100, .priority = 5, .seq = 2};
    sched_req d = {.deadline_us = 50, .priority = -9, .seq = 3};
    sched_req e = {.deadline_us = SCHED_NO_DEADLINE, .priority = 99, .seq = 4};
    sched_queue q;
    sched_queue_init(&q);
    sched_req *in[] = {&e, &c, &a, &b, &d};
    for (int i = 0; i < 5; i++)
        sched_queue_push(&q, in[i]);
    assert_ptr_equal(sched_queue_oldest(&q), &e); /* pushed first */
    /* deadline first, then priority (higher first), then arrival */
    assert_ptr_equal(sched_queue_pop(&q), &d);
    assert_ptr_equal(sched_queue_pop(&q), &b);
    assert_ptr_equal(sched_queue_pop(&q), &c);
    assert_ptr_equal(sched_queue_pop(&q), &a);
    assert_ptr_equal(sched_queue_pop(&q), &e); /* no deadline: last despite priority */
    sched_queue_free(&q);
}

/* The window lists the next k in EDF order without removing them; any
 * listed request can then be removed out of order, and what is left still
 * pops in EDF order with the arrival list and totals intact. */
static void test_queue_window_and_remove(void **state) {
    (void)state;
    enum { N = 1500, K = 40 };
    sched_req *reqs = calloc(N, sizeof(*reqs));
    sched_req **sorted = calloc(N, sizeof(*sorted));
    sched_req *win[K];
    sched_queue_cursor scratch[K + 1];
    sched_queue q;
    sched_queue_init(&q);
    srand(5);
    assert_int_equal(sched_queue_window(&q, K, win, scratch), 0);
    for (int i = 0; i < N; i++) {
        sched_req *r = &reqs[i];
        r->deadline_us = (rand() % 5 == 0) ? SCHED_NO_DEADLINE : 1000 + (rand() % 50) * 10;
        r->priority = rand() % 3;
        r->seq = (uint64_t)i;
        r->cost.rows = 1;
        r->cost.tokens = 1 + (uint32_t)(rand() % 9);
        assert_int_equal(sched_queue_push(&q, r), 0);
    }
    size_t left = N;
    uint64_t tokens = q.tokens;
    for (int round = 0; round < 60; round++) {
        /* the window equals the first K of a sort of what is queued */
        size_t n = 0;
        for (int i = 0; i < N; i++)
            if (reqs[i].arrival_us == 0)
                sorted[n++] = &reqs[i];
        assert_int_equal(n, left);
        qsort(sorted, n, sizeof(*sorted), cmp_req);
        size_t w = sched_queue_window(&q, K, win, scratch);
        assert_int_equal(w, n < K ? n : K);
        for (size_t i = 0; i < w; i++)
            assert_ptr_equal(win[i], sorted[i]);
        /* remove three listed ones out of order (never the top alone) */
        for (int k = 0; k < 3 && w > 0; k++) {
            sched_req *r = win[(size_t)(rand() % (int)w)];
            if (r->arrival_us)
                continue;
            sched_queue_remove(&q, r);
            r->arrival_us = 1; /* mark removed */
            tokens -= r->cost.tokens;
            left--;
        }
        assert_int_equal(q.len, left);
        assert_int_equal(q.rows, left);
        assert_int_equal(q.tokens, tokens);
    }
    /* the arrival list holds exactly the rest, oldest first */
    size_t count = 0;
    uint64_t last = 0;
    for (sched_req *r = sched_queue_oldest(&q); r; r = r->newer, count++) {
        assert_true(count == 0 || r->seq > last);
        assert_int_equal(r->arrival_us, 0);
        last = r->seq;
    }
    assert_int_equal(count, left);
    size_t n = 0;
    for (int i = 0; i < N; i++)
        if (reqs[i].arrival_us == 0)
            sorted[n++] = &reqs[i];
    qsort(sorted, n, sizeof(*sorted), cmp_req);
    for (size_t i = 0; i < n; i++)
        assert_ptr_equal(sched_queue_pop(&q), sorted[i]);
    assert_null(sched_queue_pop(&q));
    assert_int_equal(q.tokens, 0);
    sched_queue_free(&q);
    free(sorted);
    free(reqs);
}

static void test_latency_prior_then_measured(void **state) {
    (void)state;
    sched_latency lat;
    sched_latency_init(&lat, 7000);
    assert_int_equal(sched_latency_estimate(&lat, 1), 7000);
    assert_int_equal(sched_latency_estimate(&lat, 300), 7000);
    /* Steady 100 us at 1 row and 900 us at 64 rows: the deviation decays. */
    for (int i = 0; i < 200; i++) {
        sched_latency_record(&lat, 1, 100);
        sched_latency_record(&lat, 64, 900);
    }
    assert_int_equal(sched_latency_samples(&lat), 400);
    int64_t e1 = sched_latency_estimate(&lat, 1);
    int64_t e64 = sched_latency_estimate(&lat, 64);
    assert_in_range(e1, 100, 102);
    assert_in_range(e64, 900, 902);
    /* Between the points: linear interpolation on rows. */
    int64_t e32 = sched_latency_estimate(&lat, 32);
    int64_t want = 100 + (int64_t)((31.0 / 63.0) * 800);
    assert_in_range(e32, want - 2, want + 3);
    /* Above the last point: the line through the two largest points. */
    int64_t e128 = sched_latency_estimate(&lat, 128);
    int64_t want128 = 900 + (int64_t)(800.0 / 63.0 * 64);
    assert_in_range(e128, want128 - 2, want128 + 3);
    /* ...but never flatter than a quarter of the origin line: a noisy
     * large point cannot make bigger batches look free. */
    sched_latency flat;
    sched_latency_init(&flat, 1);
    for (int i = 0; i < 200; i++) {
        sched_latency_record(&flat, 1, 1000);
        sched_latency_record(&flat, 64, 1000);
    }
    int64_t f128 = sched_latency_estimate(&flat, 128);
    assert_in_range(f128, 1245, 1255); /* 1000 + (1000 / 64 / 4) * 64 */
}

static void test_latency_first_sample_is_conservative(void **state) {
    (void)state;
    sched_latency lat;
    sched_latency_init(&lat, 5000);
    sched_latency_record(&lat, 8, 1000);
    /* mean 1000 + 2 * (1000 / 2) */
    assert_int_equal(sched_latency_estimate(&lat, 8), 2000);
    /* below the only point: the point's value (compute time grows with rows) */
    assert_int_equal(sched_latency_estimate(&lat, 1), 2000);
    /* above the only point: scaled through the origin */
    assert_int_equal(sched_latency_estimate(&lat, 16), 4000);
    /* a jump raises the deviation, and with it the estimate */
    for (int i = 0; i < 50; i++)
        sched_latency_record(&lat, 8, 1000);
    int64_t steady = sched_latency_estimate(&lat, 8);
    sched_latency_record(&lat, 8, 5000);
    assert_true(sched_latency_estimate(&lat, 8) > steady + 1000);
    /* nonsense samples are ignored */
    sched_latency_record(&lat, 0, 10);
    sched_latency_record(&lat, 4, -1);
    assert_int_equal(sched_latency_samples(&lat), 52);
}

static sched_policy_input base_input(void) {
    sched_policy_input in = {
        .queued = 1,
        .queued_rows = 1,
        .oldest_arrival_us = 1000,
        .earliest_deadline_us = INT64_MAX,
        .max_batch_size = 8,
        .max_queue_delay_us = 2000,
        .estimate_us = 300,
        .margin_us = 100,
    };
    return in;
}

static void test_policy_triggers(void **state) {
    (void)state;
    int64_t wake;
    sched_policy_input in = base_input();
    /* nothing queued: wait forever */
    in.queued = 0;
    in.queued_rows = 0;
    assert_int_equal(sched_policy_decide(&in, 1000, &wake), SCHED_WAIT);
    assert_true(wake == INT64_MAX);
    /* delay: waits until oldest + delay, then dispatches */
    in = base_input();
    assert_int_equal(sched_policy_decide(&in, 1000, &wake), SCHED_WAIT);
    assert_int_equal(wake, 3000);
    assert_int_equal(sched_policy_decide(&in, 2999, &wake), SCHED_WAIT);
    assert_int_equal(sched_policy_decide(&in, 3000, &wake), SCHED_DISPATCH_DELAY);
    /* full by rows */
    in.queued_rows = 8;
    assert_int_equal(sched_policy_decide(&in, 1000, &wake), SCHED_DISPATCH_FULL);
    assert_int_equal(wake, 1000);
    /* full by tokens */
    in = base_input();
    in.max_batch_tokens = 64;
    in.queued_tokens = 64;
    assert_int_equal(sched_policy_decide(&in, 1000, &wake), SCHED_DISPATCH_FULL);
    in.queued_tokens = 63;
    assert_int_equal(sched_policy_decide(&in, 1000, &wake), SCHED_WAIT);
    /* deadline: estimate 300 + margin 100 before a deadline at 2500 = 2100 */
    in = base_input();
    in.earliest_deadline_us = 2500;
    assert_int_equal(sched_policy_decide(&in, 1000, &wake), SCHED_WAIT);
    assert_int_equal(wake, 2100);
    assert_int_equal(sched_policy_decide(&in, 2099, &wake), SCHED_WAIT);
    assert_int_equal(sched_policy_decide(&in, 2100, &wake), SCHED_DISPATCH_DEADLINE);
    /* a larger estimate moves the trigger earlier */
    in.estimate_us = 1000;
    assert_int_equal(sched_policy_decide(&in, 1400, &wake), SCHED_DISPATCH_DEADLINE);
    /* draining dispatches at once */
    in = base_input();
    in.draining = true;
    assert_int_equal(sched_policy_decide(&in, 1000, &wake), SCHED_DISPATCH_DRAIN);
    /* zero delay: dispatch as soon as anything waits */
    in = base_input();
    in.max_queue_delay_us = 0;
    assert_int_equal(sched_policy_decide(&in, 1000, &wake), SCHED_DISPATCH_DELAY);
    /* no overflow with huge values */
    in = base_input();
    in.max_queue_delay_us = INT64_MAX;
    in.earliest_deadline_us = INT64_MAX;
    in.estimate_us = INT64_MAX;
    assert_int_equal(sched_policy_decide(&in, 1000, &wake), SCHED_WAIT);
    assert_true(wake == INT64_MAX);
    assert_string_equal(sched_trigger_name(SCHED_DISPATCH_DEADLINE), "deadline");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queue_pops_in_edf_priority_arrival_order),
        cmocka_unit_test(test_queue_ties),
        cmocka_unit_test(test_queue_window_and_remove),
        cmocka_unit_test(test_latency_prior_then_measured),
        cmocka_unit_test(test_latency_first_sample_is_conservative),
        cmocka_unit_test(test_policy_triggers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
