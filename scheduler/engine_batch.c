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
 * Bulk lane: the queue orders every online request before every bulk one
 * (sched_queue.h), so the steps above take online requests first and bulk
 * ones fill what is left. While the online lane is active (an online
 * request queued, or one arrived within bulk_idle_us), bulk requests join a
 * batch that holds online ones only while they add at most a tenth to its
 * estimate, and a batch of bulk requests alone stays within bulk_slice_us
 * (its head is taken whatever it costs), so an online arrival waits behind
 * at most about one slice. An idle online lane leaves bulk batches as full
 * as online ones. Gap batches (sched_batch_form_gap) run bulk requests, in
 * arrival order, while queued online requests wait for company: they end
 * before the online batch is due.
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

/* The batch being formed: all of it, its online part, and the bulk cap. */
typedef struct batch_form {
    batch_acc all, online;
    bool capped; /* the online lane is active: bulk requests are capped */
    int64_t slice_us;
} batch_form;

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
    return sched_prospective_units_of(m, m->queue.rows, m->queue.tokens);
}

uint32_t sched_prospective_units_of(const sched_model *m, uint64_t qrows, uint64_t qtokens) {
    uint64_t rows = qrows < m->max_batch_size ? qrows : m->max_batch_size;
    if (qtokens == 0)
        return (uint32_t)rows;
    double tok = (double)qtokens;
    if (qrows > m->max_batch_size)
        tok = tok * m->max_batch_size / (double)qrows;
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

static void acc_add(batch_acc *a, const sched_req *r) {
    a->n++;
    a->rows += r->cost.rows;
    a->sum_tokens += r->cost.tokens;
    if (r->cost.max_len > a->max_len)
        a->max_len = r->cost.max_len;
}

static void take(batch_form *b, sched_replica *rep, sched_req *r) {
    rep->reqs[b->all.n] = r;
    acc_add(&b->all, r);
    if (!r->bulk)
        acc_add(&b->online, r);
}

/* Bulk lane (header): whether r may join a batch whose padded tokens with
 * it are padded_after. Online requests and the first request always may;
 * bulk ones add at most a tenth to an online batch's estimate, and keep a
 * batch of bulk requests alone within the slice. */
static bool bulk_fits(const sched_model *m, const batch_form *b, const sched_req *r,
                      uint64_t padded_after) {
    if (!r->bulk || !b->capped || b->all.n == 0)
        return true;
    bool text = r->cost.tokens > 0;
    uint64_t units = text ? padded_after : b->all.rows + r->cost.rows;
    int64_t est = sched_latency_estimate(&m->latency, clamp32(units));
    if (b->online.n == 0)
        return est <= b->slice_us;
    uint64_t online = text ? padded_tokens(b->online.rows, b->online.max_len, b->online.sum_tokens)
                           : b->online.rows;
    int64_t online_est = sched_latency_estimate(&m->latency, clamp32(online));
    return est <= sat_add(online_est, online_est / 10);
}

bool sched_batch_form_gap(sched_model *m, sched_replica *rep, int64_t now, int64_t budget_us) {
    sched_queue *q = &m->queue;
    batch_form b = {.capped = false, .slice_us = 0};
    batch_acc *a = &b.all;
    uint64_t tok_cap = m->max_batch_tokens > 0 ? m->max_batch_tokens : UINT64_MAX;
    for (sched_req *r = sched_queue_lane_oldest(q, true); r;) {
        sched_req *next = r->lane_newer;
        uint64_t after;
        if (!fits(a, r, m->max_batch_size, tok_cap, &after))
            break;
        uint64_t units = r->cost.tokens > 0 ? after : a->rows + r->cost.rows;
        if (sched_latency_estimate(&m->latency, clamp32(units)) > budget_us)
            break;
        sched_queue_remove(q, r);
        take(&b, rep, r);
        r = next;
    }
    if (a->n == 0)
        return false;
    bool text = rep->reqs[0]->cost.tokens > 0;
    rep->nreqs = a->n;
    rep->rows = (uint32_t)a->rows;
    rep->units =
        text ? clamp32(padded_tokens(a->rows, a->max_len, a->sum_tokens)) : (uint32_t)a->rows;
    rep->busy = true;
    rep->assigned_at = now;
    m->batches++;
    m->rows += a->rows;
    return true;
}

/* Whether the online lane counts as active at `now` (header). */
static bool online_active(const sched_model *m, int64_t now) {
    const sched_req *head = sched_queue_peek(&m->queue);
    if (head && !head->bulk)
        return true;
    return m->last_online_us != INT64_MIN && now - m->last_online_us < m->bulk_idle_us;
}

static int cand_cmp(const void *pa, const void *pb) {
    const sched_group_cand *a = pa, *b = pb;
    if (a->dist != b->dist)
        return a->dist < b->dist ? -1 : 1;
    return a->rank < b->rank ? -1 : a->rank > b->rank;
}

/* Step 2 of the header: adds the window's requests of similar length. */
static void group_lengths(sched_model *m, sched_replica *rep, batch_form *b, uint64_t row_cap,
                          uint64_t tok_cap) {
    batch_acc *a = &b->all;
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
        if (!fits(a, r, row_cap, tok_cap, &after) || !bulk_fits(m, b, r, after))
            continue;
        /* Joins when the batch stays at least 3/4 requests' own tokens, or
         * when at least 3/4 of what it adds is its own (which lets a batch
         * that an urgent request left below 3/4 still take good company). */
        uint64_t own = a->sum_tokens + r->cost.tokens;
        if (own * 4 < after * 3 && req_padded(r) * 4 < (after - before) * 3)
            continue;
        sched_queue_remove(q, r);
        take(b, rep, r);
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
    batch_form b = {.capped = online_active(m, now), .slice_us = m->bulk_slice_us};
    batch_acc *a = &b.all;
    bool blocked = false;
    for (;;) {
        sched_req *r = sched_queue_peek(q);
        if (!r)
            break;
        if (a->n > 0 && group &&
            (r->deadline_us == SCHED_NO_DEADLINE || r->deadline_us > urgent_by))
            break; /* not urgent: step 2 */
        uint64_t after = 0;
        if (a->n > 0 && (!fits(a, r, row_cap, tok_cap, &after) || !bulk_fits(m, &b, r, after))) {
            /* (The head is taken unchecked: submit and the deadline cap's
             * search both guarantee that it fits alone.) */
            blocked = true;
            break;
        }
        sched_queue_pop(q);
        take(&b, rep, r);
    }
    if (group && !blocked && q->len > 0)
        group_lengths(m, rep, &b, row_cap, tok_cap);
    rep->nreqs = a->n;
    rep->rows = (uint32_t)a->rows;
    rep->units =
        text ? clamp32(padded_tokens(a->rows, a->max_len, a->sum_tokens)) : (uint32_t)a->rows;
    rep->busy = true;
    rep->assigned_at = now;
    m->batches++;
    m->rows += a->rows;
}
