/* kinfer_model.c — the model/replica seam of kinfer_model.h: generic
 * checks, then dispatch through the kind table (model_registry.c) and the
 * backend ops (backend.h). Holds no kind- or device-specific logic beyond
 * "is this CUDA device present in this build and machine". */
#include "kinfer_model.h"

#include <stdbool.h>
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

/* A submitted, not yet collected batch. */
typedef struct replica_flight {
    kinfer_batch_item *items;
    size_t nitems;
    bool backend; /* the backend holds it (its submit ran); else collect runs execute */
} replica_flight;

struct kinfer_replica {
    kinfer_model *model;
    kinfer_device device;
    uint32_t max_rows;
    kinfer_replica_impl *impl;
    uint32_t max_in_flight;
    replica_flight flight[KINFER_REPLICA_MAX_IN_FLIGHT]; /* ring, oldest at head */
    uint32_t head, nflight;
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
    const kinfer_replica_ops *ops = r->impl->ops;
    r->max_in_flight = 1;
    if (ops->submit && ops->collect && ops->max_in_flight > 1)
        r->max_in_flight = ops->max_in_flight < KINFER_REPLICA_MAX_IN_FLIGHT
                               ? ops->max_in_flight
                               : KINFER_REPLICA_MAX_IN_FLIGHT;
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

uint32_t kinfer_replica_max_in_flight(const kinfer_replica *replica) {
    return replica->max_in_flight;
}

uint32_t kinfer_replica_in_flight(const kinfer_replica *replica) {
    return replica->nflight;
}

kinfer_err kinfer_replica_submit(kinfer_replica *replica, kinfer_batch_item *items, size_t nitems,
                                 kinfer_error *err) {
    if (nitems > 0 && !items)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "model '%s' on %s: submit of %zu items without an array",
                                replica->model->name, replica->device.name, nitems);
    if (replica->nflight >= replica->max_in_flight)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "model '%s' on %s: %u batch%s already in flight (at most %u); "
                                "collect first",
                                replica->model->name, replica->device.name, replica->nflight,
                                replica->nflight == 1 ? "" : "es", replica->max_in_flight);
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
    const kinfer_replica_ops *ops = replica->impl->ops;
    /* An empty batch never reaches the backend; it is collected as done. */
    bool backend = ops->submit && nitems > 0;
    if (backend) {
        kinfer_err rc = ops->submit(replica->impl, items, nitems, err);
        if (rc != KINFER_OK)
            return kinfer_error_prefix(err, "model '%s' on %s", replica->model->name,
                                       replica->device.name);
    }
    uint32_t tail = (replica->head + replica->nflight) % KINFER_REPLICA_MAX_IN_FLIGHT;
    replica->flight[tail] = (replica_flight){items, nitems, backend};
    replica->nflight++;
    return KINFER_OK;
}

kinfer_err kinfer_replica_collect(kinfer_replica *replica, kinfer_batch_item **items,
                                  kinfer_error *err) {
    if (items)
        *items = NULL;
    if (replica->nflight == 0)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "model '%s' on %s: collect with no batch in flight",
                                replica->model->name, replica->device.name);
    replica_flight f = replica->flight[replica->head];
    replica->head = (replica->head + 1) % KINFER_REPLICA_MAX_IN_FLIGHT;
    replica->nflight--;
    if (items)
        *items = f.items;
    if (f.nitems == 0)
        return KINFER_OK;
    const kinfer_replica_ops *ops = replica->impl->ops;
    kinfer_err rc = f.backend ? ops->collect(replica->impl, err)
                              : ops->execute(replica->impl, f.items, f.nitems, err);
    if (rc != KINFER_OK)
        return kinfer_error_prefix(err, "model '%s' on %s", replica->model->name,
                                   replica->device.name);
    return KINFER_OK;
}

kinfer_err kinfer_replica_execute(kinfer_replica *replica, kinfer_batch_item *items, size_t nitems,
                                  kinfer_error *err) {
    if (replica->nflight > 0)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "model '%s' on %s: execute with %u batch%s in flight; collect "
                                "them first",
                                replica->model->name, replica->device.name, replica->nflight,
                                replica->nflight == 1 ? "" : "es");
    kinfer_err rc = kinfer_replica_submit(replica, items, nitems, err);
    if (rc != KINFER_OK)
        return rc;
    return kinfer_replica_collect(replica, NULL, err);
}
