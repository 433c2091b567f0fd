/* dense_cpu.c — dense_cpu.h on oneDNN's matmul primitive (the Debian
 * build, OpenMP runtime), or on OpenBLAS where the build has no oneDNN.
 *
 * Batch sizes: oneDNN's fast (brgemm/AMX) matmul wants M fixed when the
 * primitive is made (a run-time M falls back to an unpacked GEMM), so a
 * batch of m rows runs as chunks of CHUNK rows plus one remainder rounded
 * up to ROUND rows; every layer shape gets its CHUNK/ROUND primitives when
 * the layer is packed (none is made in run). The rounded-up rows are
 * zeros in scratch and their outputs are dropped.
 *
 * Threads: primitives execute on the calling thread's OpenMP team, sized
 * by omp_set_num_threads in that thread before each run; the scratchpad is
 * ours (user mode), because oneDNN's shared one requires that a primitive
 * runs on the thread that made it, and replicas are made on one thread
 * and run on their executor's. */
#include "dense_cpu.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dense_quant_cpu.h"

#include <cblas.h>
#ifdef KINFER_HAVE_ONEDNN
#include <dnnl.h>
/* libgomp runs oneDNN's parallel regions; declared here rather than
 * through <omp.h>, which clang builds may lack. */
void omp_set_num_threads(int n);
#endif

#define CHUNK 256
#define ROUND 8
#define NBUCKETS (CHUNK / ROUND)
#define INT8_MAX_K 65536

/* y = x W^T + b on OpenBLAS, W as given (FP32 where oneDNN has no packed
 * kernel, and builds without oneDNN). */
static void blas_dense(const float *x, const float *w, const float *b, size_t m, size_t n, size_t k,
                       float *y) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)n, (int)k, 1.0f, x, (int)k, w,
                (int)k, 0.0f, y, (int)n);
    if (b)
        for (size_t r = 0; r < m; r++)
            for (size_t j = 0; j < n; j++)
                y[r * n + j] += b[j];
}

#ifdef KINFER_HAVE_ONEDNN
static void *alloc64(size_t bytes) {
    void *p = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (p)
        memset(p, 0, (bytes + 63) / 64 * 64);
    return p;
}

/* One (rows, n, k) matmul of a shape: the primitive and the memory
 * objects whose data handles are set per call. */
typedef struct bucket {
    dnnl_primitive_t prim;
    dnnl_memory_t src, dst, scratch;
} bucket;

typedef struct shape {
    kinfer_dtype prec;
    size_t n, k;
    /* FP32 where oneDNN's matmul is not its packed (brgemm) kernel, i.e.
     * CPUs without AVX-512: its fallback repacks per call and is slower
     * than OpenBLAS there, so OpenBLAS runs these layers. */
    bool blas;
    dnnl_memory_desc_t wmd; /* the packed weight layout the kernels want */
    bucket b[NBUCKETS];
    struct shape *next;
} shape;

struct kinfer_dense_ctx {
    size_t max_rows, nbuckets;
    int threads;
    dnnl_engine_t eng;
    dnnl_stream_t stream;
    shape *shapes;
    void *a; /* [CHUNK or fewer, max k]: converted/padded x */
    void *c; /* [CHUNK or fewer, max n]: padded y or int32 sums */
    size_t a_bytes, c_bytes;
    void *scratchpad; /* oneDNN's, the largest any primitive asked for */
    size_t scratch_bytes;
    float *xscale; /* [CHUNK]: INT8 row scales */
    int32_t *xzp;  /* [CHUNK]: INT8 row zero points */
};

struct kinfer_dense {
    kinfer_dense_ctx *ctx;
    shape *sh;
    const float *w_plain, *b_plain; /* the caller's, for shapes on OpenBLAS */
    dnnl_memory_t w;                /* packed weights, owned by oneDNN */
    dnnl_memory_t bias;             /* FP32/BF16: [1, n] over `b` */
    float *b;                       /* [n] copy of the bias, or NULL */
    float *wscale;                  /* INT8: [n] */
    int32_t *wsum;                  /* INT8: [n] */
};

static kinfer_err dnnl_fail(kinfer_error *err, const char *what, dnnl_status_t st) {
    return kinfer_error_set(err, st == dnnl_out_of_memory ? KINFER_ERR_NOMEM : KINFER_ERR_DEVICE,
                            "oneDNN: %s failed (status %d)", what, (int)st);
}
#define DNNL_TRY(call, what)                                                                       \
    do {                                                                                           \
        dnnl_status_t st_ = (call);                                                                \
        if (st_ != dnnl_success)                                                                   \
            return dnnl_fail(err, what, st_);                                                      \
    } while (0)

static const char *isa_name(dnnl_cpu_isa_t isa) {
    switch ((int)isa) {
    case dnnl_cpu_isa_sse41:
        return "sse41";
    case dnnl_cpu_isa_avx:
        return "avx";
    case dnnl_cpu_isa_avx2:
        return "avx2";
    case dnnl_cpu_isa_avx2_vnni:
        return "avx2_vnni";
    case dnnl_cpu_isa_avx512_core:
        return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni:
        return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16:
        return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx:
        return "avx512_core_amx";
    default:
        return "other";
    }
}

/* The ISA values are bit sets: each level includes the ones below it. */
static bool isa_has(dnnl_cpu_isa_t isa, dnnl_cpu_isa_t level) {
    return ((unsigned)isa & (unsigned)level) == (unsigned)level;
}

const char *kinfer_dense_isa(void) {
    return isa_name(dnnl_get_effective_cpu_isa());
}

kinfer_dtype kinfer_dense_resolve(kinfer_dtype want, char *why, size_t whylen) {
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    const char *reason = NULL;
    kinfer_dtype got = want;
    switch (want) {
    case KINFER_DTYPE_FP32:
        break;
    case KINFER_DTYPE_BF16:
        if (!isa_has(isa, dnnl_cpu_isa_avx512_core_bf16))
            reason = "this CPU lacks avx512_bf16 and amx_bf16";
        break;
    case KINFER_DTYPE_INT8:
        if (!isa_has(isa, dnnl_cpu_isa_avx512_core_vnni) && !isa_has(isa, dnnl_cpu_isa_avx2_vnni))
            reason = "this CPU lacks avx512_vnni, avx_vnni and amx_int8";
        break;
    case KINFER_DTYPE_FP16:
        reason = "fp16 is a GPU precision";
        break;
    default:
        reason = "not a CPU precision";
        break;
    }
    if (reason) {
        got = KINFER_DTYPE_FP32;
        if (why && whylen)
            snprintf(why, whylen, "%s (oneDNN uses %s here)", reason, isa_name(isa));
    }
    return got;
}

static dnnl_data_type_t src_type(kinfer_dtype p) {
    return p == KINFER_DTYPE_BF16 ? dnnl_bf16 : p == KINFER_DTYPE_INT8 ? dnnl_u8 : dnnl_f32;
}
static dnnl_data_type_t wei_type(kinfer_dtype p) {
    return p == KINFER_DTYPE_BF16 ? dnnl_bf16 : p == KINFER_DTYPE_INT8 ? dnnl_s8 : dnnl_f32;
}
static size_t src_size(kinfer_dtype p) {
    return p == KINFER_DTYPE_BF16 ? 2 : p == KINFER_DTYPE_INT8 ? 1 : 4;
}

kinfer_err kinfer_dense_ctx_new(size_t max_rows, int threads, kinfer_dense_ctx **out,
                                kinfer_error *err) {
    *out = NULL;
    if (max_rows == 0 || max_rows > INT32_MAX)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "dense: max_rows %zu", max_rows);
    kinfer_dense_ctx *c = calloc(1, sizeof(*c));
    if (!c)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
    c->max_rows = max_rows;
    size_t rows = max_rows < CHUNK ? max_rows : CHUNK;
    c->nbuckets = (rows + ROUND - 1) / ROUND;
    c->threads = threads < 1 ? 1 : threads;
    c->xscale = alloc64(CHUNK * sizeof(float));
    c->xzp = alloc64(CHUNK * sizeof(int32_t));
    dnnl_status_t st = dnnl_engine_create(&c->eng, dnnl_cpu, 0);
    if (st == dnnl_success)
        st = dnnl_stream_create(&c->stream, c->eng, dnnl_stream_default_flags);
    if (st != dnnl_success || !c->xscale || !c->xzp) {
        kinfer_dense_ctx_free(c);
        return st != dnnl_success ? dnnl_fail(err, "engine/stream create", st)
                                  : kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
    }
    *out = c;
    return KINFER_OK;
}

void kinfer_dense_ctx_free(kinfer_dense_ctx *c) {
    if (!c)
        return;
    for (shape *s = c->shapes, *next; s; s = next) {
        next = s->next;
        for (size_t i = 0; i < NBUCKETS; i++) {
            if (s->b[i].prim)
                dnnl_primitive_destroy(s->b[i].prim);
            if (s->b[i].src)
                dnnl_memory_destroy(s->b[i].src);
            if (s->b[i].dst)
                dnnl_memory_destroy(s->b[i].dst);
            if (s->b[i].scratch)
                dnnl_memory_destroy(s->b[i].scratch);
        }
        free(s);
    }
    if (c->stream)
        dnnl_stream_destroy(c->stream);
    if (c->eng)
        dnnl_engine_destroy(c->eng);
    free(c->a);
    free(c->c);
    free(c->scratchpad);
    free(c->xscale);
    free(c->xzp);
    free(c);
}

/* Grows one of the context's buffers to `bytes` (setup time only). */
static kinfer_err grow(void **buf, size_t *have, size_t bytes, kinfer_error *err) {
    if (bytes <= *have)
        return KINFER_OK;
    void *p = alloc64(bytes);
    if (!p)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory (%zu bytes)", bytes);
    free(*buf);
    *buf = p;
    *have = bytes;
    return KINFER_OK;
}

/* The matmul of `rows` x k by k x n in precision `prec`; weights in wmd
 * (NULL: let the kernel choose, for the first bucket). */
static kinfer_err make_pd(kinfer_dense_ctx *c, kinfer_dtype prec, size_t rows, size_t n, size_t k,
                          const dnnl_memory_desc_t *wmd, dnnl_primitive_desc_t *pd,
                          kinfer_error *err) {
    dnnl_memory_desc_t s, w, b, d;
    dnnl_dims_t sd = {(dnnl_dim_t)rows, (dnnl_dim_t)k}, wd = {(dnnl_dim_t)k, (dnnl_dim_t)n},
                bd = {1, (dnnl_dim_t)n}, dd = {(dnnl_dim_t)rows, (dnnl_dim_t)n};
    bool int8 = prec == KINFER_DTYPE_INT8;
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&s, 2, sd, src_type(prec), dnnl_ab), "src desc");
    if (wmd)
        w = *wmd;
    else
        DNNL_TRY(dnnl_memory_desc_init_by_tag(&w, 2, wd, wei_type(prec), dnnl_format_tag_any),
                 "weights desc");
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&b, 2, bd, dnnl_f32, dnnl_ab), "bias desc");
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&d, 2, dd, int8 ? dnnl_s32 : dnnl_f32, dnnl_ab),
             "dst desc");
    dnnl_matmul_desc_t md;
    /* INT8 adds its bias in the epilogue, after the scales. */
    DNNL_TRY(dnnl_matmul_desc_init(&md, &s, &w, int8 ? NULL : &b, &d), "matmul desc");
    dnnl_primitive_attr_t attr;
    DNNL_TRY(dnnl_primitive_attr_create(&attr), "attr create");
    dnnl_status_t st = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    if (st == dnnl_success)
        st = dnnl_primitive_desc_create(pd, &md, attr, c->eng, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success)
        return kinfer_error_set(err,
                                st == dnnl_out_of_memory ? KINFER_ERR_NOMEM : KINFER_ERR_DEVICE,
                                "oneDNN: no %s matmul for %zu x %zu x %zu (status %d)",
                                kinfer_dtype_name(prec), rows, n, k, (int)st);
    return KINFER_OK;
}

static kinfer_err bucket_init(kinfer_dense_ctx *c, shape *sh, size_t i, kinfer_error *err) {
    size_t rows = (i + 1) * ROUND;
    dnnl_primitive_desc_t pd;
    kinfer_err rc = make_pd(c, sh->prec, rows, sh->n, sh->k, &sh->wmd, &pd, err);
    if (rc != KINFER_OK)
        return rc;
    bucket *b = &sh->b[i];
    dnnl_status_t st = dnnl_primitive_create(&b->prim, pd);
    const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    const dnnl_memory_desc_t *dmd = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    const dnnl_memory_desc_t *pmd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    if (st == dnnl_success)
        st = dnnl_memory_create(&b->src, smd, c->eng, DNNL_MEMORY_NONE);
    if (st == dnnl_success)
        st = dnnl_memory_create(&b->dst, dmd, c->eng, DNNL_MEMORY_NONE);
    size_t pad = pmd ? dnnl_memory_desc_get_size(pmd) : 0;
    if (st == dnnl_success && pad > 0)
        st = dnnl_memory_create(&b->scratch, pmd, c->eng, DNNL_MEMORY_NONE);
    dnnl_primitive_desc_destroy(pd);
    if (st != dnnl_success)
        return dnnl_fail(err, "primitive create", st);
    return grow(&c->scratchpad, &c->scratch_bytes, pad, err);
}

/* The context's shape for (prec, n, k), made with its primitives on first
 * use. */
static kinfer_err shape_get(kinfer_dense_ctx *c, kinfer_dtype prec, size_t n, size_t k, shape **out,
                            kinfer_error *err) {
    for (shape *s = c->shapes; s; s = s->next)
        if (s->prec == prec && s->n == n && s->k == k) {
            *out = s;
            return KINFER_OK;
        }
    shape *s = calloc(1, sizeof(*s));
    if (!s)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
    s->prec = prec;
    s->n = n;
    s->k = k;
    s->next = c->shapes;
    c->shapes = s; /* owned by the context from here, also on error */
    /* The weight layout does not depend on M for these kernels; take the
     * one chosen at CHUNK rows (the throughput case) for every bucket. */
    dnnl_primitive_desc_t pd;
    kinfer_err rc = make_pd(c, prec, CHUNK, n, k, NULL, &pd, err);
    if (rc != KINFER_OK)
        return rc;
    s->wmd = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    const char *impl = "";
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    s->blas = prec == KINFER_DTYPE_FP32 && strncmp(impl ? impl : "", "brg", 3) != 0;
    dnnl_primitive_desc_destroy(pd);
    if (s->blas) {
        *out = s;
        return KINFER_OK;
    }
    for (size_t i = 0; i < c->nbuckets && rc == KINFER_OK; i++)
        rc = bucket_init(c, s, i, err);
    if (rc != KINFER_OK)
        return rc;
    size_t rows = c->nbuckets * ROUND;
    rc = grow(&c->a, &c->a_bytes, rows * k * src_size(prec), err);
    if (rc == KINFER_OK)
        rc = grow(&c->c, &c->c_bytes, rows * n * 4, err);
    if (rc == KINFER_OK)
        *out = s;
    return rc;
}

/* Reorders plain W (k x n viewed over [n, k] row-major, tag ba) of the
 * layer's type into the packed layout. */
static kinfer_err pack(kinfer_dense_ctx *c, kinfer_dense *d, const void *plain, kinfer_error *err) {
    kinfer_dtype prec = d->sh->prec;
    dnnl_memory_desc_t umd;
    dnnl_dims_t wd = {(dnnl_dim_t)d->sh->k, (dnnl_dim_t)d->sh->n};
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&umd, 2, wd, wei_type(prec), dnnl_ba), "weights desc");
    dnnl_memory_t user;
    DNNL_TRY(dnnl_memory_create(&user, &umd, c->eng, (void *)plain), "memory create");
    dnnl_status_t st = dnnl_memory_create(&d->w, &d->sh->wmd, c->eng, DNNL_MEMORY_ALLOCATE);
    dnnl_primitive_desc_t rpd = NULL;
    dnnl_primitive_t r = NULL;
    if (st == dnnl_success)
        st = dnnl_reorder_primitive_desc_create(&rpd, &umd, c->eng, &d->sh->wmd, c->eng, NULL);
    if (st == dnnl_success)
        st = dnnl_primitive_create(&r, rpd);
    if (st == dnnl_success) {
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, user}, {DNNL_ARG_TO, d->w}};
        st = dnnl_primitive_execute(r, c->stream, 2, args);
    }
    if (st == dnnl_success)
        st = dnnl_stream_wait(c->stream);
    if (r)
        dnnl_primitive_destroy(r);
    if (rpd)
        dnnl_primitive_desc_destroy(rpd);
    dnnl_memory_destroy(user);
    if (st != dnnl_success)
        return dnnl_fail(err, "weights reorder", st);
    return KINFER_OK;
}

kinfer_err kinfer_dense_new(kinfer_dense_ctx *c, kinfer_dtype prec, const float *w,
                            const float *bias, size_t n, size_t k, kinfer_dense **out,
                            kinfer_error *err) {
    *out = NULL;
    if (n == 0 || k == 0 || n > INT32_MAX || k > INT32_MAX)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "dense: %zu x %zu weights", n, k);
    if (prec != KINFER_DTYPE_FP32 && prec != KINFER_DTYPE_BF16 && prec != KINFER_DTYPE_INT8)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "dense: precision %s on the CPU",
                                kinfer_dtype_name(prec));
    if (prec == KINFER_DTYPE_INT8 && k > INT8_MAX_K)
        return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                "int8 layers take at most %d inputs (this one has %zu): use "
                                "bf16 or fp32",
                                INT8_MAX_K, k);
    kinfer_dense *d = calloc(1, sizeof(*d));
    if (!d)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
    d->ctx = c;
    d->w_plain = w;
    d->b_plain = bias;
    kinfer_err rc = shape_get(c, prec, n, k, &d->sh, err);
    if (rc == KINFER_OK && d->sh->blas) {
        *out = d;
        return KINFER_OK;
    }
    if (rc == KINFER_OK && bias) {
        d->b = alloc64(n * sizeof(float));
        if (!d->b)
            rc = kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
        else
            memcpy(d->b, bias, n * sizeof(float));
    }
    if (rc == KINFER_OK && prec != KINFER_DTYPE_INT8) {
        /* A zero bias when there is none: one primitive per shape serves
         * layers with and without. */
        if (!d->b && !(d->b = alloc64(n * sizeof(float))))
            rc = kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
        dnnl_memory_desc_t bmd;
        dnnl_dims_t bd = {1, (dnnl_dim_t)n};
        if (rc == KINFER_OK &&
            (dnnl_memory_desc_init_by_tag(&bmd, 2, bd, dnnl_f32, dnnl_ab) != dnnl_success ||
             dnnl_memory_create(&d->bias, &bmd, c->eng, d->b) != dnnl_success))
            rc = kinfer_error_set(err, KINFER_ERR_DEVICE, "oneDNN: bias memory failed");
    }
    if (rc == KINFER_OK) {
        if (prec == KINFER_DTYPE_FP32) {
            rc = pack(c, d, w, err);
        } else if (prec == KINFER_DTYPE_BF16) {
            uint16_t *h = alloc64(n * k * sizeof(uint16_t));
            if (!h)
                rc = kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
            else {
                kinfer_rows_to_bf16(w, k, h, k, n, k);
                rc = pack(c, d, h, err);
            }
            free(h);
        } else {
            int8_t *q = alloc64(n * k);
            d->wscale = alloc64(n * sizeof(float));
            d->wsum = alloc64(n * sizeof(int32_t));
            if (!q || !d->wscale || !d->wsum)
                rc = kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
            else {
                kinfer_quant_weights_s8(w, n, k, q, d->wscale, d->wsum);
                rc = pack(c, d, q, err);
            }
            free(q);
        }
    }
    if (rc != KINFER_OK) {
        kinfer_dense_free(d);
        return rc;
    }
    *out = d;
    return KINFER_OK;
}

void kinfer_dense_free(kinfer_dense *d) {
    if (!d)
        return;
    if (d->w)
        dnnl_memory_destroy(d->w);
    if (d->bias)
        dnnl_memory_destroy(d->bias);
    free(d->b);
    free(d->wscale);
    free(d->wsum);
    free(d);
}

/* One chunk of rows <= CHUNK rows at x, y. */
static kinfer_err run_chunk(kinfer_dense_ctx *c, const kinfer_dense *d, const float *x, size_t rows,
                            float *y, kinfer_error *err) {
    const shape *sh = d->sh;
    size_t n = sh->n, k = sh->k, bi = (rows + ROUND - 1) / ROUND - 1, padded = (bi + 1) * ROUND;
    const bucket *b = &sh->b[bi];
    kinfer_dtype prec = sh->prec;
    size_t es = src_size(prec);
    const void *src = x;
    void *dst = y;
    switch (prec) {
    case KINFER_DTYPE_FP32:
        if (padded != rows) {
            memcpy(c->a, x, rows * k * sizeof(float));
            src = c->a;
        }
        break;
    case KINFER_DTYPE_BF16:
        kinfer_rows_to_bf16(x, k, c->a, k, rows, k);
        src = c->a;
        break;
    default:
        kinfer_quant_rows_u8(x, k, c->a, k, rows, k, c->xscale, c->xzp);
        src = c->a;
        break;
    }
    if (src == c->a && padded != rows) /* rounded-up rows: zeros, not last call's */
        memset((char *)c->a + rows * k * es, 0, (padded - rows) * k * es);
    if (prec == KINFER_DTYPE_INT8 || padded != rows)
        dst = c->c;
    DNNL_TRY(dnnl_memory_set_data_handle(b->src, (void *)src), "set src");
    DNNL_TRY(dnnl_memory_set_data_handle(b->dst, dst), "set dst");
    dnnl_exec_arg_t args[5] = {
        {DNNL_ARG_SRC, b->src}, {DNNL_ARG_WEIGHTS, d->w}, {DNNL_ARG_DST, b->dst}};
    int nargs = 3;
    if (d->bias)
        args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, d->bias};
    if (b->scratch) {
        DNNL_TRY(dnnl_memory_set_data_handle(b->scratch, c->scratchpad), "set scratchpad");
        args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, b->scratch};
    }
    DNNL_TRY(dnnl_primitive_execute(b->prim, c->stream, nargs, args), "matmul");
    if (prec == KINFER_DTYPE_INT8)
        kinfer_dequant_rows(c->c, n, y, n, rows, n, c->xscale, c->xzp, d->wscale, d->wsum, d->b);
    else if (dst != y)
        memcpy(y, c->c, rows * n * sizeof(float));
    return KINFER_OK;
}

kinfer_err kinfer_dense_run(kinfer_dense_ctx *c, const kinfer_dense *d, const float *x, size_t m,
                            float *y, kinfer_error *err) {
    if (m == 0)
        return KINFER_OK;
    if (m > c->max_rows)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "dense: %zu rows, at most %zu", m,
                                c->max_rows);
    if (d->sh->blas) {
        blas_dense(x, d->w_plain, d->b_plain, m, d->sh->n, d->sh->k, y);
        return KINFER_OK;
    }
    omp_set_num_threads(c->threads);
    for (size_t r0 = 0; r0 < m; r0 += CHUNK) {
        size_t rows = m - r0 < CHUNK ? m - r0 : CHUNK;
        kinfer_err rc = run_chunk(c, d, x + r0 * d->sh->k, rows, y + r0 * d->sh->n, err);
        if (rc != KINFER_OK)
            return rc;
    }
    DNNL_TRY(dnnl_stream_wait(c->stream), "stream wait");
    return KINFER_OK;
}

#else /* no oneDNN: FP32 on OpenBLAS, W as given */

struct kinfer_dense_ctx {
    size_t max_rows;
};

struct kinfer_dense {
    const float *w, *b; /* the caller's, used in place */
    size_t n, k;
};

const char *kinfer_dense_isa(void) {
    return "openblas";
}

kinfer_dtype kinfer_dense_resolve(kinfer_dtype want, char *why, size_t whylen) {
    if (want != KINFER_DTYPE_FP32 && why && whylen)
        snprintf(why, whylen, "%s",
                 want == KINFER_DTYPE_FP16
                     ? "fp16 is a GPU precision"
                     : "this build has no oneDNN (built with -DKINFER_ONEDNN=OFF)");
    return KINFER_DTYPE_FP32;
}

kinfer_err kinfer_dense_ctx_new(size_t max_rows, int threads, kinfer_dense_ctx **out,
                                kinfer_error *err) {
    (void)threads; /* OpenBLAS's count is process-wide: blas_cpu.c */
    *out = NULL;
    kinfer_dense_ctx *c = calloc(1, sizeof(*c));
    if (!c)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
    c->max_rows = max_rows;
    *out = c;
    return KINFER_OK;
}

void kinfer_dense_ctx_free(kinfer_dense_ctx *c) {
    free(c);
}

kinfer_err kinfer_dense_new(kinfer_dense_ctx *c, kinfer_dtype prec, const float *w,
                            const float *bias, size_t n, size_t k, kinfer_dense **out,
                            kinfer_error *err) {
    (void)c;
    *out = NULL;
    if (prec != KINFER_DTYPE_FP32)
        return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                "dense: %s needs oneDNN (this build has none)",
                                kinfer_dtype_name(prec));
    if (n == 0 || k == 0 || n > INT32_MAX || k > INT32_MAX)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "dense: %zu x %zu weights", n, k);
    kinfer_dense *d = calloc(1, sizeof(*d));
    if (!d)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
    *d = (kinfer_dense){w, bias, n, k};
    *out = d;
    return KINFER_OK;
}

void kinfer_dense_free(kinfer_dense *d) {
    free(d);
}

kinfer_err kinfer_dense_run(kinfer_dense_ctx *c, const kinfer_dense *d, const float *x, size_t m,
                            float *y, kinfer_error *err) {
    if (m > c->max_rows)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "dense: %zu rows, at most %zu", m,
                                c->max_rows);
    if (m > 0)
        blas_dense(x, d->w, d->b, m, d->n, d->k, y);
    return KINFER_OK;
}

#endif
