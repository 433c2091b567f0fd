/* gen_sample.c — the sampler of gen_sample.h. Probabilities are computed
 * in float, sums in double; candidates are ordered by probability, then
 * by id, so that every choice (ties included) is deterministic. The cost
 * is a few passes over the vocabulary per token: greedy is a max and a
 * search for its first id; sampling adds one expf per id (block sums let
 * a plain draw find its block without a second full pass). Top-k and top-p
 * never sort: top-k is a quickselect; top-p first drops the tokens that
 * provably cannot be in the nucleus, then a quickselect that carries mass
 * finds the nucleus' boundary. The draw walks the kept tokens in the
 * (deterministic) order these leave them in. */
#include "gen_sample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define RNG_GOLDEN 0x9E3779B97F4A7C15ull

uint64_t gen_rng_mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double gen_rng_uniform(uint64_t seed, uint64_t index) {
    /* Output `index` of SplitMix64 started at `seed`. */
    uint64_t z = gen_rng_mix(seed + (index + 1) * RNG_GOLDEN);
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

int gen_sampler_init(gen_sampler *s, uint32_t vocab) {
    memset(s, 0, sizeof(*s));
    s->vocab = vocab;
    s->cand = malloc((size_t)vocab * sizeof(*s->cand));
    s->count = calloc(vocab, sizeof(*s->count));
    s->seen = calloc(vocab, 1);
    s->touched = malloc((size_t)vocab * sizeof(*s->touched));
    s->orig = malloc((size_t)vocab * sizeof(*s->orig));
    s->bsum = malloc(((size_t)vocab / 64 + 1) * sizeof(*s->bsum));
    if (vocab == 0 || !s->cand || !s->count || !s->seen || !s->touched || !s->orig || !s->bsum) {
        gen_sampler_free(s);
        return -1;
    }
    return 0;
}

void gen_sampler_free(gen_sampler *s) {
    free(s->cand);
    free(s->count);
    free(s->seen);
    free(s->touched);
    free(s->orig);
    free(s->bsum);
    memset(s, 0, sizeof(*s));
}

/* a comes before b: more likely, then lower id. */
static inline bool cand_before(const gen_cand *a, const gen_cand *b) {
    return a->p > b->p || (a->p == b->p && a->id < b->id);
}

static inline void cand_swap(gen_cand *c, size_t i, size_t j) {
    gen_cand t = c[i];
    c[i] = c[j];
    c[j] = t;
}

/* Reorders c[0, n) so that its k best (cand_before) come first, in any
 * order. Quickselect with a median-of-three pivot. */
static void select_best(gen_cand *c, size_t n, size_t k) {
    if (k >= n)
        return;
    size_t lo = 0, hi = n - 1;
    while (hi > lo) {
        size_t mid = lo + (hi - lo) / 2;
        if (cand_before(&c[mid], &c[lo]))
            cand_swap(c, mid, lo);
        if (cand_before(&c[hi], &c[lo]))
            cand_swap(c, hi, lo);
        if (cand_before(&c[hi], &c[mid]))
            cand_swap(c, hi, mid);
        /* c[mid] is the median: move it to hi - 1 ... or simply to hi. */
        cand_swap(c, mid, hi);
        gen_cand pivot = c[hi];
        size_t store = lo;
        for (size_t i = lo; i < hi; i++)
            if (cand_before(&c[i], &pivot))
                cand_swap(c, i, store++);
        cand_swap(c, store, hi);
        /* c[lo, store) before the pivot, c[store] the pivot, the rest after. */
        if (store == k || store + 1 == k)
            return;
        if (store > k)
            hi = store - 1;
        else
            lo = store + 1;
    }
}

/* Penalties of gen_sample.h, in place; records the raw logits it changes
 * in s->orig (by position in s->touched). Returns how many were touched. */
static size_t apply_penalties(gen_sampler *s, const gen_sample_params *p, float *logits,
                              const int32_t *ctx, uint32_t nprompt, uint32_t nctx) {
    size_t nt = 0;
    uint32_t v = s->vocab;
    for (uint32_t i = 0; i < nctx; i++) {
        int32_t id = ctx[i];
        if (id < 0 || (uint32_t)id >= v)
            continue;
        if (!s->seen[id]) {
            s->seen[id] = 1;
            s->touched[nt] = id;
            s->orig[nt] = logits[id];
            nt++;
        }
        if (i >= nprompt)
            s->count[id]++;
    }
    bool rep = p->repetition_penalty != 1.0f;
    for (size_t k = 0; k < nt; k++) {
        int32_t id = s->touched[k];
        float l = logits[id];
        if (rep)
            l = l > 0 ? l / p->repetition_penalty : l * p->repetition_penalty;
        uint32_t c = s->count[id];
        if (c > 0)
            l -= p->presence_penalty + p->frequency_penalty * (float)c;
        logits[id] = l;
    }
    return nt;
}

static void reset_penalties(gen_sampler *s, size_t nt) {
    for (size_t k = 0; k < nt; k++) {
        s->seen[s->touched[k]] = 0;
        s->count[s->touched[k]] = 0;
    }
}

/* Inserts (id, l) into the n-best list top[0, *ntop) (most likely first,
 * ties to the lower id), which holds at most cap. */
static void top_insert(gen_token_lp *top, uint32_t *ntop, uint32_t cap, int32_t id, float l) {
    uint32_t n = *ntop;
    if (n == cap && !(l > top[n - 1].logprob))
        return; /* equal to the last: the earlier (lower) id stays */
    uint32_t i = n < cap ? n : cap - 1;
    while (i > 0 && l > top[i - 1].logprob) {
        top[i] = top[i - 1];
        i--;
    }
    top[i].id = id;
    top[i].logprob = l;
    if (n < cap)
        *ntop = n + 1;
}

/* Max of l[0, n), NaN ignored; -inf when none. GCC/clang vectors of 4
 * floats (SSE2 on x86-64, NEON on arm64: the baseline, no flags), two of
 * them, so the reduction runs 8 wide. */
typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));

static inline v4f vmax(v4f a, v4f b) {
    v4i gt = a > b; /* all ones where a is larger; NaN compares false */
    return (v4f)(((v4i)a & gt) | ((v4i)b & ~gt));
}

static float max_of(const float *l, uint32_t n) {
    v4f m0 = {-INFINITY, -INFINITY, -INFINITY, -INFINITY}, m1 = m0;
    uint32_t i = 0;
    for (; i + 8 <= n; i += 8) {
        v4f x0, x1;
        memcpy(&x0, l + i, sizeof(x0));
        memcpy(&x1, l + i + 4, sizeof(x1));
        m0 = vmax(x0, m0);
        m1 = vmax(x1, m1);
    }
    m0 = vmax(m1, m0);
    float r = -INFINITY;
    for (int k = 0; k < 4; k++)
        r = m0[k] > r ? m0[k] : r;
    for (; i < n; i++)
        r = l[i] > r ? l[i] : r;
    return r;
}

/* First id whose logit is m (0 when none is: m = -inf and all NaN). */
static int32_t first_of(const float *l, uint32_t n, float m) {
    uint32_t i = 0;
    v4f mv = {m, m, m, m};
    for (; i + 8 <= n; i += 8) {
        v4f x0, x1;
        memcpy(&x0, l + i, sizeof(x0));
        memcpy(&x1, l + i + 4, sizeof(x1));
        v4i eq = (x0 == mv) | (x1 == mv);
        if (eq[0] | eq[1] | eq[2] | eq[3])
            break;
    }
    for (; i < n; i++)
        if (l[i] == m)
            return (int32_t)i;
    return 0;
}

/* e^x in 4 lanes for x <= 0, 0 for x below -87 and for NaN. 2^(x log2 e)
 * split as 2^n x 2^f with n the nearest integer, |f| <= 1/2, 2^f by its
 * Taylor series to degree 6 (relative error under 2e-7), 2^n built in the
 * exponent bits. Vectorised by hand because libm's expf is one call per
 * token and this runs over the whole vocabulary per sampled token. */
static inline v4f vexp_neg(v4f x) {
    const v4f lo = {-126.0f, -126.0f, -126.0f, -126.0f};
    v4f y = vmax(x * 1.44269504088896341f, lo);     /* NaN -> -126 */
    v4i n = __builtin_convertvector(y - 0.5f, v4i); /* y <= 0: rounds to nearest */
    v4f f = (y - __builtin_convertvector(n, v4f)) * 0.69314718055994531f;
    v4f q =
        1.0f +
        f * (1.0f +
             f * (0.5f + f * (1.0f / 6 + f * (1.0f / 24 + f * (1.0f / 120 + f * (1.0f / 720))))));
    v4i bits = (n + 127) << 23;
    v4f r = q * (v4f)bits;
    v4i live = x >= -87.0f; /* false for NaN */
    return (v4f)((v4i)r & live);
}

/* Sum of e^(l[i] - m) over l[0, n) (NaN counts 0). */
static double sum_exp(const float *l, uint32_t n, float m) {
    double sum = 0;
    uint32_t i = 0;
    while (i + 8 <= n) {
        v4f a0 = {0, 0, 0, 0}, a1 = a0;
        uint32_t end = i + 1024 < n ? i + 1024 : n; /* short float sums */
        for (; i + 8 <= end; i += 8) {
            v4f x0, x1;
            memcpy(&x0, l + i, sizeof(x0));
            memcpy(&x1, l + i + 4, sizeof(x1));
            a0 += vexp_neg(x0 - m);
            a1 += vexp_neg(x1 - m);
        }
        a0 += a1;
        sum += (double)a0[0] + a0[1] + a0[2] + a0[3];
    }
    for (; i < n; i++)
        if (l[i] == l[i])
            sum += expf(l[i] - m);
    return sum;
}

/* Moves to the front of c[0, n) the nucleus: the shortest prefix, in
 * cand_before order, whose mass reaches `want` (at least one), and
 * returns its length; its members end up in no particular (but
 * deterministic) order. A quickselect that carries the mass of the parts
 * it keeps: O(n) expected, no sort. */
static size_t nucleus(gen_cand *c, size_t n, double want) {
    size_t lo = 0, hi = n; /* the boundary is in [lo, hi); [0, lo) is in */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2, last = hi - 1;
        if (cand_before(&c[mid], &c[lo]))
            cand_swap(c, mid, lo);
        if (cand_before(&c[last], &c[lo]))
            cand_swap(c, last, lo);
        if (cand_before(&c[last], &c[mid]))
            cand_swap(c, last, mid);
        cand_swap(c, mid, last);
        gen_cand pivot = c[last];
        size_t st = lo;
        double before = 0;
        for (size_t i = lo; i < last; i++)
            if (cand_before(&c[i], &pivot)) {
                before += c[i].p;
                cand_swap(c, i, st++);
            }
        cand_swap(c, st, last);
        if (before >= want && st > lo) {
            hi = st; /* the pivot and all after it are out */
        } else if (before + pivot.p >= want) {
            return st + 1;
        } else {
            want -= before + pivot.p;
            lo = st + 1;
        }
    }
    return lo < n ? lo + 1 : n;
}

/* Draws by u from c[0, n) in order (mass c[i].p, total z). */
static int32_t draw_from(const gen_cand *c, size_t n, double z, double u) {
    double target = u * z, acc = 0;
    for (size_t i = 0; i < n; i++) {
        acc += c[i].p;
        if (acc > target && c[i].p > 0)
            return c[i].id;
    }
    for (size_t i = n; i > 0; i--) /* rounding: the last one with mass */
        if (c[i - 1].p > 0)
            return c[i - 1].id;
    return c[0].id;
}

#define BLOCK 64 /* probabilities summed per block, to find a draw fast */

/* Probabilities e^((l - m) / t) of ids [i0, end) (0 below minp, and for
 * NaN) into out[0, end - i0) when out is not NULL; returns their sum. The
 * same arithmetic whoever calls (blocks start at multiples of BLOCK, a
 * multiple of 4), so a block summed once and expanded again for a draw
 * gives the same numbers. */
static double block_probs(const float *l, uint32_t i0, uint32_t end, float m, float inv_t,
                          float minp, float *out) {
    v4f mv = {m, m, m, m}, tv = {inv_t, inv_t, inv_t, inv_t}, mp = {minp, minp, minp, minp};
    v4f acc = {0, 0, 0, 0};
    double tail = 0;
    uint32_t i = i0;
    for (; i + 4 <= end; i += 4) {
        v4f x;
        memcpy(&x, l + i, sizeof(x));
        v4f e = vexp_neg((x - mv) * tv); /* the best is 1 */
        e = (v4f)((v4i)e & (e >= mp));
        if (out)
            memcpy(out + (i - i0), &e, sizeof(e));
        acc += e;
    }
    for (; i < end; i++) {
        float x = l[i];
        float e = x == x ? expf((x - m) * inv_t) : 0.0f;
        e = e >= minp ? e : 0.0f;
        if (out)
            out[i - i0] = e;
        tail += e;
    }
    return (double)acc[0] + acc[1] + acc[2] + acc[3] + tail;
}

void gen_sample(gen_sampler *s, const gen_sample_params *p, float *logits, const int32_t *ctx,
                uint32_t nprompt, uint32_t nctx, uint64_t seed, uint64_t draw,
                gen_sample_out *out) {
    uint32_t v = s->vocab;
    out->id = 0;
    out->logprob = 0;
    out->ntop = 0;
    /* The raw distribution: its best (NaN counts as -inf) and, for
     * logprobs, its log-sum-exp and n best. */
    float rmax = max_of(logits, v);
    int32_t rbest = first_of(logits, v, rmax);
    double lse = 0;
    if (p->logprobs) {
        double sum = 0;
        uint32_t cap = p->top_logprobs;
        if (rmax > -INFINITY)
            sum = sum_exp(logits, v, rmax);
        if (cap > 0)
            for (uint32_t i = 0; i < v; i++) {
                float x = logits[i];
                if (x == x && (out->ntop < cap || x > out->top[cap - 1].logprob))
                    top_insert(out->top, &out->ntop, cap, (int32_t)i, x);
            }
        lse = rmax > -INFINITY ? (double)rmax + log(sum) : 0;
        for (uint32_t k = 0; k < out->ntop; k++)
            out->top[k].logprob = (float)((double)out->top[k].logprob - lse);
    }
    size_t nt = 0;
    bool penal = p->repetition_penalty != 1.0f || p->presence_penalty != 0.0f ||
                 p->frequency_penalty != 0.0f;
    float m = rmax;
    int32_t best = rbest;
    if (penal) {
        nt = apply_penalties(s, p, logits, ctx, nprompt, nctx);
        /* Untouched logits are unchanged and at most rmax; the raw best,
         * if untouched, is the lowest id reaching it. */
        bool best_touched = s->seen[rbest] != 0;
        if (best_touched) {
            m = max_of(logits, v);
            best = first_of(logits, v, m);
        } else {
            for (size_t k = 0; k < nt; k++) {
                int32_t id = s->touched[k];
                if (logits[id] > m || (logits[id] == m && id < best)) {
                    m = logits[id];
                    best = id;
                }
            }
        }
    }
    int32_t chosen = best;
    if (p->temperature > 0 && p->top_k != 1 && m > -INFINITY) {
        float inv_t = 1.0f / p->temperature;
        gen_cand *c = s->cand;
        double u = gen_rng_uniform(seed, draw);
        double z = 0;
        uint32_t nb = (v + BLOCK - 1) / BLOCK;
        float minp = p->min_p;
        bool sorted = p->top_k > 0 || p->top_p < 1.0f;
        /* Top-p alone: a token with p below (1 - top_p) z / v cannot be in
         * the nucleus (all such tokens together weigh less than 1 - top_p
         * of z), and z >= 1, so nothing under (1 - top_p) / v is kept. */
        float t0 = p->top_k == 0 && p->top_p < 1.0f ? (1.0f - p->top_p) / (float)v * 0.999f : 0;
        size_t ncand = 0;
        float e[BLOCK];
        for (uint32_t b = 0; b < nb; b++) {
            uint32_t i0 = b * BLOCK, end = i0 + BLOCK < v ? i0 + BLOCK : v;
            s->bsum[b] =
                block_probs(logits, i0, end, m, inv_t, sorted ? 0 : minp, sorted ? e : NULL);
            z += s->bsum[b];
            if (sorted)
                for (uint32_t i = i0; i < end; i++)
                    if (e[i - i0] > 0 && e[i - i0] >= t0)
                        c[ncand++] = (gen_cand){e[i - i0], (int32_t)i};
        }
        if (!sorted) {
            /* The block the draw lands in, then the id inside it. */
            double target = u * z, acc = 0;
            uint32_t b = 0;
            for (; b + 1 < nb && acc + s->bsum[b] <= target; b++)
                acc += s->bsum[b];
            uint32_t i0 = b * BLOCK, end = i0 + BLOCK < v ? i0 + BLOCK : v;
            block_probs(logits, i0, end, m, inv_t, minp, e);
            chosen = -1;
            for (uint32_t i = i0; i < end && chosen < 0; i++) {
                acc += e[i - i0];
                if (acc > target && e[i - i0] > 0)
                    chosen = (int32_t)i;
            }
            for (uint32_t i = end; i > i0 && chosen < 0; i--) /* rounding */
                if (e[i - 1 - i0] > 0)
                    chosen = (int32_t)(i - 1);
            if (chosen < 0)
                chosen = best;
        } else {
            size_t n = ncand, keep;
            double zc = 0;
            if (p->top_k > 0 && p->top_k < n) {
                n = p->top_k;
                select_best(c, ncand, n);
                z = 0;
                for (size_t i = 0; i < n; i++)
                    z += c[i].p;
            } else if (p->top_k == 0) {
                float t = (float)((1.0 - (double)p->top_p) * z / v * 0.999);
                n = 0;
                for (size_t i = 0; i < ncand; i++)
                    if (c[i].p >= t)
                        c[n++] = c[i];
            } else {
                /* top_k >= the candidates: z over them (what is 0 adds 0) */
            }
            /* c[0, n) holds the candidates; z is the mass top-p is taken of */
            keep = p->top_p < 1.0f ? nucleus(c, n, (double)p->top_p * z) : n;
            if (minp > 0) { /* >= min_p x the best, whose p is 1 */
                size_t k = 0;
                for (size_t i = 0; i < keep; i++)
                    if (c[i].p >= minp)
                        c[k++] = c[i];
                keep = k;
            }
            for (size_t i = 0; i < keep; i++)
                zc += c[i].p;
            chosen = draw_from(c, keep, zc, u);
        }
    }
    out->id = chosen;
    if (p->logprobs) {
        float raw = logits[chosen];
        for (size_t k = 0; k < nt; k++)
            if (s->touched[k] == chosen)
                raw = s->orig[k];
        out->logprob = rmax > -INFINITY ? (float)((double)raw - lse) : 0;
    }
    if (penal)
        reset_penalties(s, nt);
}
