/* kinfer_model.c — the model/replica seam of kinfer_model.h: generic
 * checks, then dispatch through the kind table (model_registry.c) and the
 * backend ops (backend.h). Holds no kind- or device-specific logic beyond
 * "is this CUDA device present in this build and machine". */
#include "kinfer_model.h"

#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "kinfer_device.h"
#include "model_registry.h"

struct kinfer_model {
    const kinfer_model_kind_ops *ops;
    void *impl;
    char *name;
    char describe[256];
};

struct kinfer_replica {
    kinfer_model *model;
    kinfer_device device;
    uint32_t max_rows;
    kinfer_replica_impl *impl;
};

kinfer_err kinfer_model_load(const kinfer_model_options *opts, kinfer_model **out,
                             kinfer_error *err) {
    *out = NULL;
    if (!opts || !opts->path)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "model load: no path given");
    const char *name = opts->name ? opts->name : opts->path;
    const char *kind = opts->kind ? opts->kind : "mlp";
    const kinfer_model_kind_ops *ops = kinfer_model_kind_find(kind);
    if (!ops) {
        char list[128];
        kinfer_model_kinds_format(list, sizeof(list));
        return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                "model '%s': unknown kind '%s' (supported: %s)", name, kind, list);
    }
    kinfer_model *m = calloc(1, sizeof(*m));
    if (!m)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "model '%s': out of memory", name);
    m->ops = ops;
    m->name = strdup(name);
    if (!m->name) {
        free(m);
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "model '%s': out of memory", name);
    }
    kinfer_err rc = ops->load(opts, &m->impl, err);
    if (rc != KINFER_OK) {
        free(m->name);
        free(m);
        return kinfer_error_prefix(err, "model '%s'", name);
    }
    ops->describe(m->impl, m->describe, sizeof(m->describe));
    *out = m;
    return KINFER_OK;
}

void kinfer_model_destroy(kinfer_model *model) {
    if (!model)
        return;
    model->ops->destroy(model->impl);
    free(model->name);
    free(model);
}

const char *kinfer_model_kind(const kinfer_model *model) {
    return model->ops->kind;
}

const char *kinfer_model_describe(const kinfer_model *model) {
    return model->describe;
}

kinfer_err kinfer_model_check_request(const kinfer_model *model, const kinfer_tensor *inputs,
                                      size_t ninputs, const kinfer_param *params, size_t nparams,
                                      kinfer_request_cost *cost, kinfer_error *err) {
    memset(cost, 0, sizeof(*cost));
    return model->ops->check_request(model->impl, inputs, ninputs, params, nparams, cost, err);
}

kinfer_err kinfer_replica_new(kinfer_model *model, const char *device, uint32_t max_rows,
                              kinfer_replica **out, kinfer_error *err) {
    *out = NULL;
    kinfer_device dev;
    if (kinfer_device_parse(device, &dev, err) != KINFER_OK)
        return kinfer_error_prefix(err, "model '%s'", model->name);
    if (max_rows == 0)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "model '%s' on %s: max_rows must be at least 1", model->name,
                                dev.name);
    if (dev.type == KINFER_DEVICE_CUDA) {
        if (!kinfer_cuda_built())
            return kinfer_error_set(err, KINFER_ERR_DEVICE,
                                    "device %s: this build has no CUDA backend (rebuild with "
                                    "-DKINFER_CUDA=ON)",
                                    dev.name);
        int count = kinfer_cuda_device_count();
        if (dev.index >= count)
            return kinfer_error_set(err, KINFER_ERR_DEVICE,
                                    "device %s: not present (%d CUDA device%s visible)", dev.name,
                                    count, count == 1 ? "" : "s");
    }
    kinfer_replica *r = calloc(1, sizeof(*r));
    if (!r)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "model '%s' on %s: out of memory",
                                model->name, dev.name);
    r->model = model;
    r->device = dev;
    r->max_rows = max_rows;
    kinfer_err rc = model->ops->replica_new(model->impl, &dev, max_rows, &r->impl, err);
    if (rc != KINFER_OK) {
        free(r);
        return kinfer_error_prefix(err, "model '%s' on %s", model->name, dev.name);
    }
    *out = r;
    return KINFER_OK;
}

void kinfer_replica_destroy(kinfer_replica *replica) {
    if (!replica)
        return;
    replica->impl->ops->destroy(replica->impl);
    free(replica);
}

const char *kinfer_replica_device(const kinfer_replica *replica) {
    return replica->device.name;
}

kinfer_err kinfer_replica_execute(kinfer_replica *replica, kinfer_batch_item *items, size_t nitems,
                                  kinfer_error *err) {
    uint64_t rows = 0;
    for (size_t i = 0; i < nitems; i++) {
        items[i].status = KINFER_OK;
        items[i].error[0] = '\0';
        items[i].noutputs = 0;
        rows += items[i].cost.rows;
    }
    if (rows > replica->max_rows)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "model '%s' on %s: batch of %llu rows exceeds max_rows %u",
                                replica->model->name, replica->device.name,
                                (unsigned long long)rows, replica->max_rows);
    if (nitems == 0)
        return KINFER_OK;
    kinfer_err rc = replica->impl->ops->execute(replica->impl, items, nitems, err);
    if (rc != KINFER_OK)
        return kinfer_error_prefix(err, "model '%s' on %s", replica->model->name,
                                   replica->device.name);
    return KINFER_OK;
}
