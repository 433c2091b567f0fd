/* engine_batch.c — which queued requests make up a model's next batch, under
 * the engine lock. When a batch is due is sched_policy.c's question; which
 * replica gets it is engine_dispatch.c's.
 *
 * Tensor models (requests report cost.tokens == 0): the EDF prefix that fits
 * max_batch_size rows, or fewer rows when the head's deadline needs a
 * smaller batch. It stops at the first request that does not fit, so that
 * no later deadline overtakes it.
 *
 * Text models (cost.tokens > 0) are measured in padded tokens: a batch costs
 * (sum of rows) x (longest max_len), and that must stay within
 * max_batch_tokens (when > 0) as well as max_batch_size rows; the head's
 * deadline may lower the token cap the same way as the row cap above. A
 * request whose own padded tokens exceed max_batch_tokens is refused at
 * submit with INVALID_REQUEST (engine_core.c), so every queued request fits
 * a batch alone and none waits forever. A text batch is formed in two steps:
 *  1. Urgent prefix, in EDF order: the head (earliest deadline, then
 *     priority, then arrival) always; then every next request whose deadline
 *     would be missed if it waited for the next batch, i.e. deadline - margin
 *     before now + 2 x the estimate for the batch forming now (this batch,
 *     then one more). If one of those does not fit, the batch ends there
 *     and nothing later joins it.
 *  2. Length grouping among the next W requests in EDF order (W =
 *     max_batch_size + max(max_batch_size, 64), at most 4096, found by a
 *     best-first walk of the heap, never a scan of the queue): candidates go
 *     by |max_len - the batch's max_len|, ties in EDF order; one joins when
 *     it fits and the batch stays at least 3/4 the requests' own tokens
 *     (sum of rows x max_len per request over the batch's padded tokens), or
 *     at least 3/4 of what it adds is its own. The first rule fills batches
 *     (a strict per-request rule alone doubled the number of batches on
 *     uniformly spread lengths); the second lets a batch that urgent
 *     requests left below 3/4 still take good company. The rest stay queued
 *     with their EDF place, so each becomes urgent or the head in time:
 *     grouping only passes over requests that the latency estimate says
 *     can wait one more batch (an estimate, so not a guarantee).
 * Cost per batch: O(W log W) for the window and its sort, O(log n) per
 * request taken. The latency estimate of a text model is learnt and asked in
 * padded tokens of the batch (rows for tensor models). */
#include <stdlib.h>

#include "engine_internal.h"

/* What a batch holds so far. */
typedef struct batch_acc {
    uint64_t rows, sum_tokens;
    uint32_t max_len;
    size_t n;
} batch_acc;

static uint32_t clamp32(uint64_t v) {
    return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

static int64_t sat_add(int64_t a, int64_t b) {
    if (b > 0 && a > INT64_MAX - b)
        return INT64_MAX;
    return a + b;
}

/* Padded tokens of a batch: rows times the longest sequence when the
 * requests report max_len; otherwise the sum of their own tokens. */
static uint64_t padded_tokens(uint64_t rows, uint32_t max_len, uint64_t sum_tokens) {
    return max_len ? rows * max_len : sum_tokens;
}

static uint64_t req_padded(const sched_req *r) {
    return padded_tokens(r->cost.rows, r->cost.max_len, r->cost.tokens);
}

static uint32_t req_units(const sched_req *r) {
    return r->cost.tokens > 0 ? clamp32(req_padded(r)) : r->cost.rows;
}

size_t sched_group_window(uint32_t max_batch_size) {
    size_t more =
        max_batch_size > SCHED_GROUP_LOOKAHEAD_MIN ? max_batch_size : SCHED_GROUP_LOOKAHEAD_MIN;
    size_t w = (size_t)max_batch_size + more;
    return w < SCHED_GROUP_WINDOW_MAX ? w : SCHED_GROUP_WINDOW_MAX;
}

/* Rows capped at the batch size; for a text model the queue's padded tokens
 * scaled to that share of rows and capped at max_batch_tokens (a request's
 * own padding is the best O(1) guess at a grouped batch's). */
uint32_t sched_prospective_units(const sched_model *m) {
    const sched_queue *q = &m->queue;
    uint64_t rows = q->rows < m->max_batch_size ? q->rows : m->max_batch_size;
    if (q->tokens == 0)
        return (uint32_t)rows;
    double tok = (double)q->tokens;
    if (q->rows > m->max_batch_size)
        tok = tok * m->max_batch_size / (double)q->rows;
    if (m->max_batch_tokens > 0 && tok > m->max_batch_tokens)
        tok = m->max_batch_tokens;
    return tok >= UINT32_MAX ? UINT32_MAX : (uint32_t)tok;
}

/* When a full batch would finish after the head's deadline but a smaller
 * one would not, the largest such size (binary search; the estimate grows
 * with size). Otherwise no limit: a head that cannot make it even alone
 * gains nothing from a smaller batch, and keeping batches full then keeps
 * throughput up under overload. */
uint32_t sched_batch_unit_limit(const sched_model *m, int64_t now, int64_t margin) {
    const sched_req *head = sched_queue_peek(&m->queue);
    if (!head || head->deadline_us == SCHED_NO_DEADLINE)
        return UINT32_MAX;
    uint32_t full = sched_prospective_units(m);
    int64_t slack = head->deadline_us - now - margin;
    uint32_t lo = req_units(head), hi = full;
    if (lo >= hi || sched_latency_estimate(&m->latency, hi) <= slack ||
        sched_latency_estimate(&m->latency, lo) > slack)
        return UINT32_MAX;
    while (hi - lo > 1) { /* est(lo) fits, est(hi) does not */
        uint32_t mid = lo + (hi - lo) / 2;
        if (sched_latency_estimate(&m->latency, mid) <= slack)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/* Whether r fits the batch under both caps; *padded_after is the batch's
 * padded tokens with it. */
static bool fits(const batch_acc *a, const sched_req *r, uint64_t row_cap, uint64_t tok_cap,
                 uint64_t *padded_after) {
    uint64_t nrows = a->rows + r->cost.rows;
    uint32_t nlen = r->cost.max_len > a->max_len ? r->cost.max_len : a->max_len;
    uint64_t p = padded_tokens(nrows, nlen, a->sum_tokens + r->cost.tokens);
    *padded_after = p;
    return nrows <= row_cap && p <= tok_cap;
}

static void take(batch_acc *a, sched_replica *rep, sched_req *r) {
    rep->reqs[a->n++] = r;
    a->rows += r->cost.rows;
    a->sum_tokens += r->cost.tokens;
    if (r->cost.max_len > a->max_len)
        a->max_len = r->cost.max_len;
}

static int cand_cmp(const void *pa, const void *pb) {
    const sched_group_cand *a = pa, *b = pb;
    if (a->dist != b->dist)
        return a->dist < b->dist ? -1 : 1;
    return a->rank < b->rank ? -1 : a->rank > b->rank;
}

/* Step 2 of the header: adds the window's requests of similar length. */
static void group_lengths(sched_model *m, sched_replica *rep, batch_acc *a, uint64_t row_cap,
                          uint64_t tok_cap) {
    sched_queue *q = &m->queue;
    size_t w = sched_queue_window(q, m->group_window, m->group_reqs, m->group_frontier);
    sched_group_cand *c = m->group_cands;
    for (size_t i = 0; i < w; i++) {
        uint32_t len = m->group_reqs[i]->cost.max_len;
        c[i].r = m->group_reqs[i];
        c[i].dist = len > a->max_len ? len - a->max_len : a->max_len - len;
        c[i].rank = (uint32_t)i;
    }
    qsort(c, w, sizeof(*c), cand_cmp);
    for (size_t i = 0; i < w && a->n < m->max_batch_size && a->rows < row_cap; i++) {
        sched_req *r = c[i].r;
        uint64_t before = padded_tokens(a->rows, a->max_len, a->sum_tokens), after;
        if (!fits(a, r, row_cap, tok_cap, &after))
            continue;
        /* Joins when the batch stays at least 3/4 requests' own tokens, or
         * when at least 3/4 of what it adds is its own (which lets a batch
         * that an urgent request left below 3/4 still take good company). */
        uint64_t own = a->sum_tokens + r->cost.tokens;
        if (own * 4 < after * 3 && req_padded(r) * 4 < (after - before) * 3)
            continue;
        sched_queue_remove(q, r);
        take(a, rep, r);
    }
}

void sched_batch_form(sched_model *m, sched_replica *rep, int64_t now, int64_t margin) {
    sched_queue *q = &m->queue;
    const sched_req *head = sched_queue_peek(q);
    bool text = head && head->cost.tokens > 0;
    bool group = text && !rep->engine->opts.no_length_grouping;
    uint32_t limit = sched_batch_unit_limit(m, now, margin);
    uint64_t row_cap = m->max_batch_size;
    uint64_t tok_cap = m->max_batch_tokens > 0 ? m->max_batch_tokens : UINT64_MAX;
    if (limit != UINT32_MAX) {
        if (text && limit < tok_cap)
            tok_cap = limit;
        else if (!text && limit < row_cap)
            row_cap = limit;
    }
    /* Text: a request is urgent when waiting for one more batch would miss
     * its deadline. Tensor models take the plain EDF prefix (all urgent). */
    int64_t urgent_by = INT64_MAX;
    if (group) {
        uint32_t units = sched_prospective_units(m);
        int64_t est = sched_latency_estimate(&m->latency, units < limit ? units : limit);
        est = est > 0 ? est : 0;
        urgent_by = sat_add(sat_add(sat_add(now, margin > 0 ? margin : 0), est), est);
    }
    batch_acc a = {0, 0, 0, 0};
    bool blocked = false;
    for (;;) {
        sched_req *r = sched_queue_peek(q);
        if (!r)
            break;
        if (a.n > 0 && group && (r->deadline_us == SCHED_NO_DEADLINE || r->deadline_us > urgent_by))
            break; /* not urgent: step 2 */
        uint64_t after;
        if (a.n > 0 && !fits(&a, r, row_cap, tok_cap, &after)) {
            /* (The head is taken unchecked: submit and the deadline cap's
             * search both guarantee that it fits alone.) */
            blocked = true;
            break;
        }
        sched_queue_pop(q);
        take(&a, rep, r);
    }
    if (group && !blocked && q->len > 0)
        group_lengths(m, rep, &a, row_cap, tok_cap);
    rep->nreqs = a.n;
    rep->rows = (uint32_t)a.rows;
    rep->units = text ? clamp32(padded_tokens(a.rows, a.max_len, a.sum_tokens)) : (uint32_t)a.rows;
    rep->busy = true;
    rep->assigned_at = now;
    m->batches++;
    m->rows += a.rows;
}
