/* sched_queue.c — the EDF binary heap and arrival list of sched_queue.h.
 * Only the top is ever removed (batches and expiry both take the earliest
 * deadline first), so the heap needs no position index. */
#include "sched_queue.h"

#include <stdlib.h>

int sched_req_before(const sched_req *a, const sched_req *b) {
    if (a->deadline_us != b->deadline_us)
        return a->deadline_us < b->deadline_us;
    if (a->priority != b->priority)
        return a->priority > b->priority;
    return a->seq < b->seq;
}

void sched_queue_init(sched_queue *q) {
    q->heap = NULL;
    q->len = q->cap = 0;
    q->oldest = q->newest = NULL;
    q->rows = q->tokens = 0;
}

void sched_queue_free(sched_queue *q) {
    free(q->heap);
    sched_queue_init(q);
}

static void heap_swap(sched_req **h, size_t i, size_t j) {
    sched_req *t = h[i];
    h[i] = h[j];
    h[j] = t;
}

int sched_queue_push(sched_queue *q, sched_req *r) {
    if (q->len == q->cap) {
        size_t ncap = q->cap ? q->cap * 2 : 64;
        sched_req **nh = realloc(q->heap, ncap * sizeof(*nh));
        if (!nh)
            return -1;
        q->heap = nh;
        q->cap = ncap;
    }
    size_t i = q->len++;
    q->heap[i] = r;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!sched_req_before(q->heap[i], q->heap[parent]))
            break;
        heap_swap(q->heap, i, parent);
        i = parent;
    }
    r->newer = NULL;
    r->older = q->newest;
    if (q->newest)
        q->newest->newer = r;
    else
        q->oldest = r;
    q->newest = r;
    q->rows += r->cost.rows;
    q->tokens += r->cost.tokens;
    return 0;
}

sched_req *sched_queue_peek(const sched_queue *q) {
    return q->len ? q->heap[0] : NULL;
}

sched_req *sched_queue_oldest(const sched_queue *q) {
    return q->oldest;
}

sched_req *sched_queue_pop(sched_queue *q) {
    if (!q->len)
        return NULL;
    sched_req *top = q->heap[0];
    q->heap[0] = q->heap[--q->len];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, best = i;
        if (l < q->len && sched_req_before(q->heap[l], q->heap[best]))
            best = l;
        if (r < q->len && sched_req_before(q->heap[r], q->heap[best]))
            best = r;
        if (best == i)
            break;
        heap_swap(q->heap, i, best);
        i = best;
    }
    if (top->older)
        top->older->newer = top->newer;
    else
        q->oldest = top->newer;
    if (top->newer)
        top->newer->older = top->older;
    else
        q->newest = top->older;
    top->older = top->newer = NULL;
    q->rows -= top->cost.rows;
    q->tokens -= top->cost.tokens;
    return top;
}
