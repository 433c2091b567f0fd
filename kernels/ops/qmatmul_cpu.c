/* qmatmul_cpu.c — kinfer_qmatmul_cpu (qmatmul.h): argument checks, the
 * per-replica context (path, mode, scratch for prepared activations) and
 * the split of N over the pool. The arithmetic is in qmatmul_portable.c
 * and the SIMD files. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ops/qmatmul_internal.h"

struct kinfer_qmm {
    kinfer_threads *threads; /* borrowed; NULL = inline */
    size_t max_rows, max_k, max_nb;
    kinfer_cpu_isa isa;
    kinfer_qmm_act act;
    qmm_rows_fn rows;
    qmm_prep_fn prep;
    int8_t *xq; /* [max_rows][max_k], rows 64-byte aligned */
    size_t xq_ld;
    float *xd, *xs;         /* [max_rows][max_nb] */
    unsigned char *scratch; /* per worker: qmm_scratch_bytes(max_k) each */
    size_t scratch_bytes;
};

static const char *const act_names[] = {"q8", "f32"};
_Static_assert(sizeof(act_names) / sizeof(act_names[0]) == KINFER_QMM_ACT_COUNT,
               "act_names[] names every kinfer_qmm_act");

const char *kinfer_qmm_act_name(kinfer_qmm_act act) {
    return (unsigned)act < KINFER_QMM_ACT_COUNT ? act_names[act] : "?";
}

kinfer_err kinfer_qmm_new(kinfer_threads *threads, size_t max_rows, size_t max_k,
                          const kinfer_qmm_opts *opts, kinfer_qmm **out, kinfer_error *err) {
    *out = NULL;
    kinfer_qmm_opts o = opts ? *opts : (kinfer_qmm_opts){0};
    if (max_rows == 0 || max_k == 0)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "qmatmul: max_rows and max_k must be >= 1 (got %zu, %zu)", max_rows,
                                max_k);
    if ((unsigned)o.act >= KINFER_QMM_ACT_COUNT)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "qmatmul: invalid activation mode %d",
                                (int)o.act);
    if ((unsigned)o.isa >= KINFER_CPU_ISA_COUNT || !kinfer_cpu_isa_supported(o.isa))
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "qmatmul: this CPU cannot run the %s path",
                                kinfer_cpu_isa_name(o.isa));
    if (max_k > (SIZE_MAX / 4) / max_rows)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "qmatmul: %zu x %zu too large",
                                max_rows, max_k);
    kinfer_qmm *q = calloc(1, sizeof(*q));
    if (!q)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
    q->threads = threads;
    q->max_rows = max_rows;
    q->max_k = max_k;
    q->max_nb = (max_k + KINFER_QK - 1) / KINFER_QK;
    q->isa = o.isa == KINFER_CPU_ISA_AUTO ? kinfer_cpu_isa_best() : o.isa;
    q->act = o.act;
    const char *env = getenv("KINFER_QMM_ACT"); /* to measure both modes on a real model */
    if (env)
        for (int a = 0; a < KINFER_QMM_ACT_COUNT; a++)
            if (strcmp(env, act_names[a]) == 0)
                q->act = (kinfer_qmm_act)a;
    q->xq_ld = (max_k + 63) & ~(size_t)63;
    q->xq = aligned_alloc(64, max_rows * q->xq_ld);
    q->xd = malloc(max_rows * q->max_nb * sizeof(float));
    q->xs = malloc(max_rows * q->max_nb * sizeof(float));
    int workers = threads ? kinfer_threads_count(threads) : 1;
    q->scratch_bytes = (qmm_scratch_bytes(max_k) + 63) & ~(size_t)63;
    q->scratch = aligned_alloc(64, (size_t)workers * q->scratch_bytes);
    if (!q->xq || !q->xd || !q->xs || !q->scratch) {
        kinfer_qmm_destroy(q);
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory (qmatmul scratch)");
    }
    switch (q->isa) {
#ifdef KINFER_QMM_X86
    case KINFER_CPU_ISA_AVX512:
        q->rows = qmm_avx512_rows;
        q->prep = qmm_avx512_prep;
        break;
    case KINFER_CPU_ISA_AVX2:
        q->rows = qmm_avx2_rows;
        q->prep = qmm_avx2_prep;
        break;
#endif
    default:
        q->rows = qmm_portable_rows;
        q->prep = qmm_portable_prep;
        break;
    }
    *out = q;
    return KINFER_OK;
}

void kinfer_qmm_destroy(kinfer_qmm *qmm) {
    if (!qmm)
        return;
    free(qmm->xq);
    free(qmm->xd);
    free(qmm->xs);
    free(qmm->scratch);
    free(qmm);
}

kinfer_cpu_isa kinfer_qmm_isa(const kinfer_qmm *qmm) {
    return qmm->isa;
}

kinfer_qmm_act kinfer_qmm_act_mode(const kinfer_qmm *qmm) {
    return qmm->act;
}

typedef struct run_ctx {
    const kinfer_qmm *qmm;
    const qmm_call *call;
    size_t chunk; /* N rows per task */
} run_ctx;

static void rows_task(void *p, size_t task, int worker) {
    const run_ctx *r = p;
    size_t n0 = task * r->chunk, n1 = n0 + r->chunk;
    r->qmm->rows(r->call, n0, n1 < r->call->N ? n1 : r->call->N,
                 r->qmm->scratch + (size_t)worker * r->qmm->scratch_bytes);
}

static void prep_task(void *p, size_t m, int worker) {
    (void)worker;
    const run_ctx *r = p;
    const kinfer_qmm *q = r->qmm;
    size_t nb = r->call->nb; /* rows packed at the call's nb (<= max_nb) */
    q->prep(r->call, m, q->xq + m * q->xq_ld, q->xd + m * nb, q->xs + m * nb);
}

/* Below this many multiply-adds a call runs on the caller alone: waking
 * the pool costs more than it saves. */
#define QMM_INLINE_MACS (64u * 1024u)

kinfer_err kinfer_qmatmul_cpu(kinfer_qmm *qmm, const float *x, size_t M, size_t K, const void *w,
                              kinfer_qtype wtype, size_t N, float *y, bool accumulate,
                              kinfer_error *err) {
    size_t w_ld = 0;
    kinfer_error row_err;
    if (kinfer_qtype_row_bytes(wtype, K, &w_ld, &row_err) != KINFER_OK)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "qmatmul: %s", row_err.msg);
    if (M > qmm->max_rows || K > qmm->max_k)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "qmatmul: %zu x %zu exceeds the context's %zu x %zu", M, K,
                                qmm->max_rows, qmm->max_k);
    if (M == 0 || N == 0)
        return KINFER_OK;
    if (!x || !w || !y)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "qmatmul: NULL operand");
    if (K == 0) {
        if (!accumulate)
            memset(y, 0, M * N * sizeof(float));
        return KINFER_OK;
    }
    bool block = kinfer_qtype_is_block(wtype);
    qmm_call c = {
        .M = M,
        .K = K,
        .N = N,
        .nb = block ? K / KINFER_QK : 0,
        .x = x,
        .xq = qmm->xq,
        .xq_ld = qmm->xq_ld,
        .xd = qmm->xd,
        .xs = qmm->xs,
        .w = w,
        .w_ld = w_ld,
        .wtype = wtype,
        .act = qmm->act,
        .y = y,
        .accumulate = accumulate,
    };
    run_ctx r = {.qmm = qmm, .call = &c, .chunk = N};
    int nthreads = qmm->threads ? kinfer_threads_count(qmm->threads) : 1;
    bool pool = nthreads > 1 && (double)M * (double)N * (double)K >= QMM_INLINE_MACS;
    if (block && (qmm->act == KINFER_QMM_ACT_Q8 || wtype == KINFER_QTYPE_Q4_1)) {
        if (pool && M >= 8)
            kinfer_threads_run(qmm->threads, prep_task, &r, M);
        else
            for (size_t m = 0; m < M; m++)
                prep_task(&r, m, 0);
    }
    if (!pool) {
        qmm->rows(&c, 0, N, qmm->scratch);
        return KINFER_OK;
    }
    /* About four tasks per worker for balance, in multiples of 16 rows (the
     * kernels' widest row tile). */
    size_t target = (size_t)nthreads * 4;
    size_t chunk = (N + target - 1) / target;
    chunk = (chunk + 15) & ~(size_t)15;
    r.chunk = chunk;
    kinfer_threads_run(qmm->threads, rows_task, &r, (N + chunk - 1) / chunk);
    return KINFER_OK;
}
