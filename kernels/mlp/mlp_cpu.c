/* mlp_cpu.c — the CPU backend of kind `mlp`: per batch, pack every item's
 * rows into one matrix, then per layer one dense layer (ops/dense_cpu.h:
 * weights packed once per replica in the replica's precision, bias fused)
 * plus the C activation epilogue, ping-ponging between two preallocated
 * buffers. Nothing is allocated per batch. */
#include <stdlib.h>
#include <unistd.h>

#include "backend.h"
#include "kinfer/kinfer_device.h"
#include "kinfer/kinfer_log.h"
#include "mlp_model.h"
#include "ops/bias_act.h"
#include "ops/blas_cpu.h"
#include "ops/dense_cpu.h"

typedef struct mlp_cpu_replica {
    kinfer_replica_impl base;
    const mlp_model *model;
    uint32_t max_rows;
    float *x;      /* [max_rows, in_width]: the packed batch */
    float *act[2]; /* [max_rows, max_width] each: layer outputs, alternating */
    kinfer_dense_ctx *dense;
    kinfer_dense **dl; /* [nlayers] */
} mlp_cpu_replica;

static kinfer_err cpu_execute(kinfer_replica_impl *impl, kinfer_batch_item *items, size_t nitems,
                              kinfer_error *err) {
    mlp_cpu_replica *r = (mlp_cpu_replica *)impl;
    const mlp_model *m = r->model;
    uint32_t rows;
    kinfer_err rc = mlp_batch_prepare(m, items, nitems, r->max_rows, &rows, err);
    if (rc != KINFER_OK || rows == 0)
        return rc;
    mlp_batch_pack(m, items, nitems, r->x);
    const float *in = r->x;
    for (uint32_t l = 0; l < m->nlayers; l++) {
        const mlp_layer *layer = &m->layers[l];
        float *out = r->act[l & 1];
        int last = l + 1 == m->nlayers;
        if ((rc = kinfer_dense_run(r->dense, r->dl[l], in, rows, out, err)) != KINFER_OK)
            return rc;
        kinfer_activation act = m->activation;
        if (last)
            act = m->output_activation == MLP_OUT_SIGMOID ? KINFER_ACT_SIGMOID : KINFER_ACT_NONE;
        if (act != KINFER_ACT_NONE)
            kinfer_bias_act_cpu(out, NULL, rows, layer->out, act);
        if (last && m->output_activation == MLP_OUT_SOFTMAX)
            kinfer_softmax_rows_cpu(out, rows, layer->out);
        in = out;
    }
    mlp_batch_set_outputs(m, items, nitems, in);
    return KINFER_OK;
}

static void cpu_destroy(kinfer_replica_impl *impl) {
    mlp_cpu_replica *r = (mlp_cpu_replica *)impl;
    for (uint32_t l = 0; r->dl && l < r->model->nlayers; l++)
        kinfer_dense_free(r->dl[l]);
    free(r->dl);
    kinfer_dense_ctx_free(r->dense);
    free(r->x);
    free(r->act[0]);
    free(r->act[1]);
    free(r);
}

static const kinfer_replica_ops mlp_cpu_ops = {
    .backend = "cpu",
    .execute = cpu_execute,
    .destroy = cpu_destroy,
};

/* Every layer in the precision this CPU runs of the one the model asks
 * for (FP32 with a warning when it lacks the instructions). */
static kinfer_err pack_layers(mlp_cpu_replica *r, int threads, kinfer_error *err) {
    const mlp_model *m = r->model;
    kinfer_dtype want = KINFER_DTYPE_FP32, got;
    char why[160] = "";
    if (!kinfer_precision_parse(m->precision, &want))
        return kinfer_error_set(err, KINFER_ERR_CONFIG, "precision '%s'", m->precision);
    got = kinfer_dense_resolve(want, why, sizeof(why));
    if (got != want)
        KINFER_LOGW("mlp.precision_fallback", "model=%s requested=%s running=fp32 reason=\"%s\"",
                    m->path, m->precision, why);
    kinfer_err rc = kinfer_dense_ctx_new(r->max_rows, threads, &r->dense, err);
    if (rc != KINFER_OK)
        return rc;
    if (!(r->dl = calloc(m->nlayers, sizeof(*r->dl))))
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
    for (uint32_t l = 0; l < m->nlayers && rc == KINFER_OK; l++)
        rc = kinfer_dense_new(r->dense, got, m->layers[l].weight, m->layers[l].bias,
                              m->layers[l].out, m->layers[l].in, &r->dl[l], err);
    return rc;
}

kinfer_err mlp_cpu_replica_new(const mlp_model *model, uint32_t max_rows, kinfer_replica_impl **out,
                               kinfer_error *err) {
    *out = NULL;
    /* sgemm takes int dims; widths are <= MLP_MAX_WIDTH already. */
    if (max_rows == 0 || max_rows > (uint32_t)INT32_MAX)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "max_rows %u out of range", max_rows);
    size_t act_n = (size_t)max_rows * model->max_width;
    size_t x_n = (size_t)max_rows * model->in_width;
    mlp_cpu_replica *r = calloc(1, sizeof(*r));
    if (!r)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
    r->base.ops = &mlp_cpu_ops;
    r->model = model;
    r->max_rows = max_rows;
    /* 64-byte alignment suits AVX-512 loads in the epilogue and BLAS. */
    r->x = aligned_alloc(64, (x_n * sizeof(float) + 63) / 64 * 64);
    r->act[0] = aligned_alloc(64, (act_n * sizeof(float) + 63) / 64 * 64);
    r->act[1] = aligned_alloc(64, (act_n * sizeof(float) + 63) / 64 * 64);
    if (!r->x || !r->act[0] || !r->act[1]) {
        cpu_destroy(&r->base);
        return kinfer_error_set(err, KINFER_ERR_NOMEM,
                                "out of memory for %u rows x %u wide activation buffers", max_rows,
                                model->max_width);
    }
    kinfer_blas_cpu_request_threads(model->cpu_threads);
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int threads = model->cpu_threads > 0 ? model->cpu_threads : (online > 0 ? (int)online : 1);
    kinfer_err rc = pack_layers(r, threads, err);
    if (rc != KINFER_OK) {
        cpu_destroy(&r->base);
        return rc;
    }
    *out = &r->base;
    return KINFER_OK;
}
