/* test_handoff.c — the produce hand-off: FIFO order, a refused record keeps
 * its place, the counters and peak the metrics show, the wake pipe, and
 * order per producer under concurrent pushes. */
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "worker_handoff.h"

static bool readable(kinfer_worker_handoff *h) {
    struct pollfd pfd = {.fd = kinfer_worker_handoff_fd(h), .events = POLLIN};
    return poll(&pfd, 1, 0) == 1;
}

static void test_fifo_counters_and_wake(void **state) {
    (void)state;
    kinfer_worker_handoff h;
    kinfer_error err;
    assert_int_equal(kinfer_worker_handoff_init(&h, &err), KINFER_OK);
    assert_null(kinfer_worker_handoff_pop(&h));
    assert_false(readable(&h));
    kinfer_worker_handoff_node n[3] = {{NULL, 10}, {NULL, 20}, {NULL, 30}};
    for (int i = 0; i < 3; i++)
        kinfer_worker_handoff_push(&h, &n[i]);
    assert_true(readable(&h)); /* the push into the empty queue woke the reader */
    kinfer_worker_handoff_clear_wake(&h);
    assert_false(readable(&h));
    size_t bytes;
    assert_int_equal(kinfer_worker_handoff_len(&h, &bytes), 3);
    assert_int_equal(bytes, 60);
    assert_ptr_equal(kinfer_worker_handoff_pop(&h), &n[0]);
    /* Refused for now: back at the front, ahead of the rest. */
    kinfer_worker_handoff_push_front(&h, &n[0]);
    assert_ptr_equal(kinfer_worker_handoff_pop(&h), &n[0]);
    assert_ptr_equal(kinfer_worker_handoff_pop(&h), &n[1]);
    assert_ptr_equal(kinfer_worker_handoff_pop(&h), &n[2]);
    assert_null(kinfer_worker_handoff_pop(&h));
    assert_int_equal(kinfer_worker_handoff_len(&h, &bytes), 0);
    assert_int_equal(bytes, 0);
    assert_int_equal(kinfer_worker_handoff_peak(&h), 3);
    /* A push_front into an empty queue leaves a consistent tail. */
    kinfer_worker_handoff_push_front(&h, &n[1]);
    kinfer_worker_handoff_push(&h, &n[2]);
    assert_ptr_equal(kinfer_worker_handoff_pop(&h), &n[1]);
    assert_ptr_equal(kinfer_worker_handoff_pop(&h), &n[2]);
    kinfer_worker_handoff_wake(&h);
    assert_true(readable(&h));
    kinfer_worker_handoff_destroy(&h);
}

#define PUSHERS 4
#define EACH 5000

typedef struct pusher {
    kinfer_worker_handoff *h;
    kinfer_worker_handoff_node nodes[EACH];
} pusher;

static void *push_all(void *arg) {
    pusher *p = arg;
    for (int i = 0; i < EACH; i++) {
        p->nodes[i].bytes = 1;
        kinfer_worker_handoff_push(p->h, &p->nodes[i]);
    }
    return NULL;
}

/* Each pusher's records come out in its own order (exactly-once relies on
 * it: a partition's releases are pushed in order by one thread at a time). */
static void test_concurrent_pushes_keep_each_order(void **state) {
    (void)state;
    static pusher ps[PUSHERS];
    kinfer_worker_handoff h;
    assert_int_equal(kinfer_worker_handoff_init(&h, NULL), KINFER_OK);
    pthread_t t[PUSHERS];
    for (int i = 0; i < PUSHERS; i++) {
        ps[i].h = &h;
        pthread_create(&t[i], NULL, push_all, &ps[i]);
    }
    int next[PUSHERS] = {0};
    size_t got = 0;
    while (got < PUSHERS * EACH) {
        kinfer_worker_handoff_node *n = kinfer_worker_handoff_pop(&h);
        if (!n)
            continue;
        int who = -1;
        for (int i = 0; i < PUSHERS; i++)
            if (n >= ps[i].nodes && n < ps[i].nodes + EACH)
                who = i;
        assert_true(who >= 0);
        assert_ptr_equal(n, &ps[who].nodes[next[who]]);
        next[who]++;
        got++;
    }
    for (int i = 0; i < PUSHERS; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(kinfer_worker_handoff_len(&h, NULL), 0);
    assert_true(kinfer_worker_handoff_peak(&h) >= 1);
    kinfer_worker_handoff_destroy(&h);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_counters_and_wake),
        cmocka_unit_test(test_concurrent_pushes_keep_each_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
