/* sched_queue.c — the EDF binary heap and arrival list of sched_queue.h.
 * Each request knows its heap index, so one chosen out of EDF order (length
 * grouping) is removed in O(log n) like the top. */
#include "sched_queue.h"

#include <stdlib.h>

int sched_req_before(const sched_req *a, const sched_req *b) {
    if (a->bulk != b->bulk)
        return b->bulk;
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
    for (int l = 0; l < 2; l++) {
        q->lane_oldest[l] = q->lane_newest[l] = NULL;
        q->lane_len[l] = 0;
        q->lane_rows[l] = q->lane_tokens[l] = 0;
    }
}

void sched_queue_free(sched_queue *q) {
    free(q->heap);
    sched_queue_init(q);
}

static void heap_set(sched_req **h, size_t i, sched_req *r) {
    h[i] = r;
    r->heap_pos = i;
}

static void sift_up(sched_queue *q, size_t i) {
    sched_req *r = q->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!sched_req_before(r, q->heap[parent]))
            break;
        heap_set(q->heap, i, q->heap[parent]);
        i = parent;
    }
    heap_set(q->heap, i, r);
}

static void sift_down(sched_queue *q, size_t i) {
    sched_req *r = q->heap[i];
    for (;;) {
        size_t l = 2 * i + 1, rr = l + 1, best = l;
        if (l >= q->len)
            break;
        if (rr < q->len && sched_req_before(q->heap[rr], q->heap[l]))
            best = rr;
        if (!sched_req_before(q->heap[best], r))
            break;
        heap_set(q->heap, i, q->heap[best]);
        i = best;
    }
    heap_set(q->heap, i, r);
}

int sched_queue_reserve(sched_queue *q, size_t n) {
    if (n <= q->cap)
        return 0;
    size_t ncap = q->cap ? q->cap : 64;
    while (ncap < n)
        ncap *= 2;
    sched_req **nh = realloc(q->heap, ncap * sizeof(*nh));
    if (!nh)
        return -1;
    q->heap = nh;
    q->cap = ncap;
    return 0;
}

int sched_queue_push(sched_queue *q, sched_req *r) {
    if (q->len == q->cap && sched_queue_reserve(q, q->len + 1) != 0)
        return -1;
    size_t i = q->len++;
    heap_set(q->heap, i, r);
    sift_up(q, i);
    r->newer = NULL;
    r->older = q->newest;
    if (q->newest)
        q->newest->newer = r;
    else
        q->oldest = r;
    q->newest = r;
    q->rows += r->cost.rows;
    q->tokens += r->cost.tokens;
    int l = r->bulk;
    r->lane_newer = NULL;
    r->lane_older = q->lane_newest[l];
    if (q->lane_newest[l])
        q->lane_newest[l]->lane_newer = r;
    else
        q->lane_oldest[l] = r;
    q->lane_newest[l] = r;
    q->lane_len[l]++;
    q->lane_rows[l] += r->cost.rows;
    q->lane_tokens[l] += r->cost.tokens;
    return 0;
}

sched_req *sched_queue_lane_oldest(const sched_queue *q, bool bulk) {
    return q->lane_oldest[bulk];
}

sched_req *sched_queue_peek(const sched_queue *q) {
    return q->len ? q->heap[0] : NULL;
}

sched_req *sched_queue_oldest(const sched_queue *q) {
    return q->oldest;
}

void sched_queue_remove(sched_queue *q, sched_req *r) {
    size_t i = r->heap_pos;
    sched_req *last = q->heap[--q->len];
    if (i < q->len) {
        heap_set(q->heap, i, last);
        /* The moved one may belong above or below its new place. */
        if (i > 0 && sched_req_before(last, q->heap[(i - 1) / 2]))
            sift_up(q, i);
        else
            sift_down(q, i);
    }
    if (r->older)
        r->older->newer = r->newer;
    else
        q->oldest = r->newer;
    if (r->newer)
        r->newer->older = r->older;
    else
        q->newest = r->older;
    r->older = r->newer = NULL;
    q->rows -= r->cost.rows;
    q->tokens -= r->cost.tokens;
    int l = r->bulk;
    if (r->lane_older)
        r->lane_older->lane_newer = r->lane_newer;
    else
        q->lane_oldest[l] = r->lane_newer;
    if (r->lane_newer)
        r->lane_newer->lane_older = r->lane_older;
    else
        q->lane_newest[l] = r->lane_older;
    r->lane_older = r->lane_newer = NULL;
    q->lane_len[l]--;
    q->lane_rows[l] -= r->cost.rows;
    q->lane_tokens[l] -= r->cost.tokens;
}

sched_req *sched_queue_pop(sched_queue *q) {
    if (!q->len)
        return NULL;
    sched_req *top = q->heap[0];
    sched_queue_remove(q, top);
    return top;
}

/* The frontier of the walk is a small min-heap of cursors, ordered as
 * sched_req_before orders their requests. */
static int cur_before(const sched_queue_cursor *a, const sched_queue_cursor *b) {
    if (a->bulk != b->bulk)
        return b->bulk;
    if (a->deadline_us != b->deadline_us)
        return a->deadline_us < b->deadline_us;
    if (a->priority != b->priority)
        return a->priority > b->priority;
    return a->seq < b->seq;
}

static void cur_swap(sched_queue_cursor *f, size_t i, size_t j) {
    sched_queue_cursor t = f[i];
    f[i] = f[j];
    f[j] = t;
}

size_t sched_queue_window(const sched_queue *q, size_t k, sched_req **out, sched_queue_cursor *f) {
    size_t n = 0, flen = 0;
    if (q->len == 0 || k == 0)
        return 0;
    const sched_req *h = q->heap[0];
    f[flen++] = (sched_queue_cursor){h->deadline_us, h->seq, h->priority, h->bulk, 0};
    while (n < k && flen > 0) {
        size_t top = f[0].pos;
        out[n++] = q->heap[top];
        /* Replace the frontier's top by its last entry and sift it down. */
        f[0] = f[--flen];
        for (size_t i = 0;;) {
            size_t l = 2 * i + 1, r = l + 1, best = i;
            if (l < flen && cur_before(&f[l], &f[best]))
                best = l;
            if (r < flen && cur_before(&f[r], &f[best]))
                best = r;
            if (best == i)
                break;
            cur_swap(f, i, best);
            i = best;
        }
        /* Its heap children come next after it; at most n + 1 <= k + 1 wait. */
        for (size_t c = 2 * top + 1; c <= 2 * top + 2 && c < q->len; c++) {
            const sched_req *r = q->heap[c];
            size_t i = flen++;
            f[i] = (sched_queue_cursor){r->deadline_us, r->seq, r->priority, r->bulk, c};
            while (i > 0 && cur_before(&f[i], &f[(i - 1) / 2])) {
                cur_swap(f, i, (i - 1) / 2);
                i = (i - 1) / 2;
            }
        }
    }
    return n;
}
