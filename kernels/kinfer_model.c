/* kinfer_model.c — the model/replica seam of kinfer_model.h: generic
 * checks, then dispatch through the kind table (model_registry.c) and the
 * backend ops (backend.h). Holds no kind- or device-specific logic beyond
 * "is this CUDA device present in this build and machine". */
#include "kinfer/kinfer_model.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "kinfer/kinfer_device.h"
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
    return model->ops->info.name;
}

const char *kinfer_model_describe(const kinfer_model *model) {
    return model->describe;
}

void kinfer_model_info_get(const kinfer_model *model, kinfer_model_info *info) {
    memset(info, 0, sizeof *info);
    if (model->ops->io)
        model->ops->io(model->impl, info);
    info->kind = model->ops->info.name;
    info->description = model->describe;
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
    if (replica->model->ops->gen)
        return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                "model '%s' on %s: kind %s is generative: it runs per step "
                                "(kinfer_replica_step), not per batch",
                                replica->model->name, replica->device.name,
                                replica->model->ops->info.name);
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

/* ---- generative models ------------------------------------------------------ */

bool kinfer_model_gen_info(const kinfer_model *model, kinfer_gen_info *info) {
    if (!model->ops->gen)
        return false;
    model->ops->gen->info(model->impl, info);
    return true;
}

static kinfer_err not_generative(const kinfer_model *model, kinfer_error *err) {
    return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED, "model '%s': kind %s is not generative",
                            model->name, model->ops->info.name);
}

kinfer_err kinfer_model_gen_tokenize(const kinfer_model *model, kinfer_str prompt,
                                     const kinfer_chat_message *messages, size_t nmessages,
                                     int32_t **ids, size_t *nids, kinfer_error *err) {
    *ids = NULL;
    *nids = 0;
    if (!model->ops->gen)
        return not_generative(model, err);
    if ((prompt.len && !prompt.ptr) || (nmessages && !messages))
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "model '%s': tokenize with a NULL prompt or messages", model->name);
    return model->ops->gen->tokenize(model->impl, prompt, messages, nmessages, ids, nids, err);
}

size_t kinfer_model_gen_token_bytes(const kinfer_model *model, int32_t id, bool special, char *out,
                                    size_t cap) {
    if (!model->ops->gen)
        return 0;
    return model->ops->gen->token_bytes(model->impl, id, special, out, cap);
}

kinfer_err kinfer_replica_kv_alloc(kinfer_replica *replica, uint32_t nblocks, kinfer_error *err) {
    const kinfer_replica_ops *ops = replica->impl->ops;
    if (!replica->model->ops->gen || !ops->kv_alloc)
        return not_generative(replica->model, err);
    if (nblocks == 0)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "model '%s' on %s: a KV pool needs at least one block",
                                replica->model->name, replica->device.name);
    kinfer_err rc = ops->kv_alloc(replica->impl, nblocks, err);
    if (rc != KINFER_OK)
        return kinfer_error_prefix(err, "model '%s' on %s", replica->model->name,
                                   replica->device.name);
    return KINFER_OK;
}

/* The shape checks every backend trusts (backend.h). */
static kinfer_err check_step(const kinfer_replica *replica, const kinfer_step_seq *seqs, size_t n,
                             kinfer_error *err) {
    kinfer_gen_info info;
    kinfer_model_gen_info(replica->model, &info);
    if (n == 0 || !seqs)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "a step needs at least one sequence");
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        const kinfer_step_seq *s = &seqs[i];
        if (s->ntokens == 0 || !s->tokens || !s->blocks)
            return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "step sequence %zu: %s", i,
                                    s->ntokens == 0 ? "no tokens fed"
                                    : !s->tokens    ? "tokens is NULL"
                                                    : "blocks is NULL");
        uint64_t end = (uint64_t)s->pos + s->ntokens;
        if (end > info.context_length)
            return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                    "step sequence %zu: positions up to %llu exceed the context "
                                    "length %u",
                                    i, (unsigned long long)end, info.context_length);
        uint64_t need = (end + info.kv_block_tokens - 1) / info.kv_block_tokens;
        if (s->nblocks < need)
            return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                    "step sequence %zu: %u blocks cannot hold positions [0, %llu) "
                                    "(%llu needed at %u tokens per block)",
                                    i, s->nblocks, (unsigned long long)end,
                                    (unsigned long long)need, info.kv_block_tokens);
        for (uint32_t t = 0; t < s->ntokens; t++)
            if (s->tokens[t] < 0 || (uint32_t)s->tokens[t] >= info.vocab_size)
                return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                        "step sequence %zu: token %u (id %d) is outside the "
                                        "vocabulary [0, %u)",
                                        i, t, s->tokens[t], info.vocab_size);
        total += s->ntokens;
    }
    if (total > replica->max_rows)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "a step of %llu tokens exceeds max_rows %u",
                                (unsigned long long)total, replica->max_rows);
    return KINFER_OK;
}

kinfer_err kinfer_replica_step(kinfer_replica *replica, kinfer_step_seq *seqs, size_t n,
                               kinfer_error *err) {
    const kinfer_replica_ops *ops = replica->impl->ops;
    if (!replica->model->ops->gen || !ops->step)
        return not_generative(replica->model, err);
    kinfer_err rc = check_step(replica, seqs, n, err);
    if (rc == KINFER_OK)
        rc = ops->step(replica->impl, seqs, n, err);
    if (rc != KINFER_OK)
        return kinfer_error_prefix(err, "model '%s' on %s", replica->model->name,
                                   replica->device.name);
    return KINFER_OK;
}
