/* mlp_request.c — the request contract of kind `mlp` (one FP32 input
 * [n, in] or [in], NaN policy, cost) and the batch helpers every mlp
 * backend uses to validate, pack and unpack a batch, so CPU and CUDA treat
 * items identically. No compute here. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "mlp_model.h"

static const char output_name[] = "output";

/* Shape/dtype/size checks without the NaN scan. Fills *rows. */
static kinfer_err check_shape(const mlp_model *m, const kinfer_tensor *inputs, size_t ninputs,
                              uint32_t *rows, kinfer_error *err) {
    if (ninputs != 1)
        return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST,
                                "expected exactly 1 input tensor (FP32 [n, %u] or [%u]), got %zu",
                                m->in_width, m->in_width, ninputs);
    const kinfer_tensor *t = &inputs[0];
    int nlen = (int)(t->name.len > 64 ? 64 : t->name.len);
    const char *nptr = t->name.ptr ? t->name.ptr : "";
    int ndim_ok = t->ndim == 1 || t->ndim == 2;
    if (t->dtype != KINFER_DTYPE_FP32 || !ndim_ok ||
        t->shape[t->ndim - 1] != (int64_t)m->in_width || (t->ndim == 2 && t->shape[0] < 1)) {
        char shp[160];
        int nd = t->ndim < 0 ? 0 : t->ndim > KINFER_MAX_DIMS ? KINFER_MAX_DIMS : t->ndim;
        kinfer_shape_format(t->shape, nd, shp, sizeof(shp));
        return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST,
                                "input '%.*s': expected FP32 [n, %u] (n >= 1) or [%u], got %s %s",
                                nlen, nptr, m->in_width, m->in_width, kinfer_dtype_name(t->dtype),
                                shp);
    }
    int64_t n = t->ndim == 2 ? t->shape[0] : 1;
    if (n > (int64_t)UINT32_MAX)
        return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST,
                                "input '%.*s': %lld rows, at most %u", nlen, nptr, (long long)n,
                                UINT32_MAX);
    uint64_t want = (uint64_t)n * m->in_width * sizeof(float);
    if (t->nbytes != want || (want && !t->data))
        return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST,
                                "input '%.*s': FP32 shape needs %llu data bytes, got %zu", nlen,
                                nptr, (unsigned long long)want, t->nbytes);
    *rows = (uint32_t)n;
    return KINFER_OK;
}

kinfer_err mlp_check_request(const mlp_model *m, const kinfer_tensor *inputs, size_t ninputs,
                             const kinfer_param *params, size_t nparams, kinfer_request_cost *cost,
                             kinfer_error *err) {
    (void)params; /* mlp takes no parameters; unknown ones are ignored */
    (void)nparams;
    uint32_t rows;
    kinfer_err rc = check_shape(m, inputs, ninputs, &rows, err);
    if (rc != KINFER_OK)
        return rc;
    if (m->nan_policy == KINFER_NAN_REJECT) {
        const kinfer_tensor *t = &inputs[0];
        const unsigned char *p = t->data;
        size_t n = t->nbytes / sizeof(float);
        for (size_t i = 0; i < n; i++) {
            float v;
            memcpy(&v, p + i * sizeof(float), sizeof(v)); /* wire data may be unaligned */
            if (!isfinite(v))
                return kinfer_error_set(
                    err, KINFER_ERR_INVALID_REQUEST,
                    "input '%.*s': element %zu (row %zu, column %zu) is %s; this model rejects "
                    "NaN/Inf inputs",
                    (int)(t->name.len > 64 ? 64 : t->name.len), t->name.ptr ? t->name.ptr : "", i,
                    i / m->in_width, i % m->in_width,
                    isnan(v) ? "NaN"
                    : v > 0  ? "+Inf"
                             : "-Inf");
        }
    }
    cost->rows = rows;
    cost->tokens = 0;
    cost->max_len = 0;
    return KINFER_OK;
}

kinfer_err mlp_batch_prepare(const mlp_model *m, kinfer_batch_item *items, size_t nitems,
                             uint32_t max_rows, uint32_t *rows, kinfer_error *err) {
    uint64_t total = 0;
    for (size_t i = 0; i < nitems; i++) {
        kinfer_batch_item *it = &items[i];
        kinfer_error ierr;
        uint32_t r = 0;
        if (check_shape(m, it->inputs, it->ninputs, &r, &ierr) != KINFER_OK) {
            it->status = ierr.code;
            snprintf(it->error, sizeof(it->error), "%.255s", ierr.msg);
            continue;
        }
        if (r != it->cost.rows) {
            it->status = KINFER_ERR_INVALID_REQUEST;
            snprintf(it->error, sizeof(it->error), "input has %u rows but cost.rows is %u", r,
                     it->cost.rows);
            continue;
        }
        total += r;
    }
    if (total > max_rows)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "batch of %llu rows exceeds %u",
                                (unsigned long long)total, max_rows);
    *rows = (uint32_t)total;
    return KINFER_OK;
}

void mlp_batch_pack(const mlp_model *m, const kinfer_batch_item *items, size_t nitems, float *x) {
    size_t off = 0;
    for (size_t i = 0; i < nitems; i++) {
        if (items[i].status != KINFER_OK)
            continue;
        memcpy(x + off * m->in_width, items[i].inputs[0].data, items[i].inputs[0].nbytes);
        off += items[i].cost.rows;
    }
}

void mlp_batch_set_outputs(const mlp_model *m, kinfer_batch_item *items, size_t nitems,
                           const float *y) {
    size_t off = 0;
    for (size_t i = 0; i < nitems; i++) {
        kinfer_batch_item *it = &items[i];
        if (it->status != KINFER_OK)
            continue;
        kinfer_tensor *o = &it->outputs[0];
        memset(o, 0, sizeof(*o));
        o->name.ptr = output_name;
        o->name.len = sizeof(output_name) - 1;
        o->dtype = KINFER_DTYPE_FP32;
        o->ndim = it->inputs[0].ndim;
        if (o->ndim == 2) {
            o->shape[0] = it->cost.rows;
            o->shape[1] = m->out_width;
        } else {
            o->shape[0] = m->out_width;
        }
        o->data = y + off * m->out_width;
        o->nbytes = (size_t)it->cost.rows * m->out_width * sizeof(float);
        it->noutputs = 1;
        off += it->cost.rows;
    }
}
