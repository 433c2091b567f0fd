/* engine_model_ops.c — the default model ops (the real kinfer_model_* and
 * kinfer_replica_* of kernels/) and kinfer_engine_new. Kept apart from
 * engine_core.c so that tests which inject a fake model through
 * kinfer_engine_new_with_ops link without the compute side. */
#include "engine_internal.h"

static kinfer_err ops_load(void *ctx, const kinfer_model_options *opts, void **model,
                           kinfer_error *err) {
    (void)ctx;
    kinfer_model *m = NULL;
    kinfer_err rc = kinfer_model_load(opts, &m, err);
    *model = m;
    return rc;
}

static void ops_destroy(void *ctx, void *model) {
    (void)ctx;
    kinfer_model_destroy(model);
}

static const char *ops_describe(void *ctx, const void *model) {
    (void)ctx;
    return kinfer_model_describe(model);
}

static kinfer_err ops_check_request(void *ctx, const void *model, const kinfer_tensor *inputs,
                                    size_t ninputs, const kinfer_param *params, size_t nparams,
                                    kinfer_request_cost *cost, kinfer_error *err) {
    (void)ctx;
    return kinfer_model_check_request(model, inputs, ninputs, params, nparams, cost, err);
}

static kinfer_err ops_replica_new(void *ctx, void *model, const char *device, uint32_t max_rows,
                                  void **replica, kinfer_error *err) {
    (void)ctx;
    kinfer_replica *r = NULL;
    kinfer_err rc = kinfer_replica_new(model, device, max_rows, &r, err);
    *replica = r;
    return rc;
}

static void ops_replica_destroy(void *ctx, void *replica) {
    (void)ctx;
    kinfer_replica_destroy(replica);
}

static kinfer_err ops_replica_execute(void *ctx, void *replica, kinfer_batch_item *items,
                                      size_t nitems, kinfer_error *err) {
    (void)ctx;
    return kinfer_replica_execute(replica, items, nitems, err);
}

static kinfer_err ops_replica_submit(void *ctx, void *replica, kinfer_batch_item *items,
                                     size_t nitems, kinfer_error *err) {
    (void)ctx;
    return kinfer_replica_submit(replica, items, nitems, err);
}

static kinfer_err ops_replica_collect(void *ctx, void *replica, kinfer_error *err) {
    (void)ctx;
    return kinfer_replica_collect(replica, NULL, err);
}

static uint32_t ops_replica_max_in_flight(void *ctx, const void *replica) {
    (void)ctx;
    return kinfer_replica_max_in_flight(replica);
}

static bool ops_gen_info(void *ctx, const void *model, kinfer_gen_info *info) {
    (void)ctx;
    return kinfer_model_gen_info(model, info);
}

static kinfer_err ops_gen_tokenize(void *ctx, const void *model, kinfer_str prompt,
                                   const kinfer_chat_message *messages, size_t nmessages,
                                   int32_t **ids, size_t *nids, kinfer_error *err) {
    (void)ctx;
    return kinfer_model_gen_tokenize(model, prompt, messages, nmessages, ids, nids, err);
}

static size_t ops_gen_token_bytes(void *ctx, const void *model, int32_t id, bool special, char *out,
                                  size_t cap) {
    (void)ctx;
    return kinfer_model_gen_token_bytes(model, id, special, out, cap);
}

static kinfer_err ops_replica_kv_alloc(void *ctx, void *replica, uint32_t nblocks,
                                       kinfer_error *err) {
    (void)ctx;
    return kinfer_replica_kv_alloc(replica, nblocks, err);
}

static kinfer_err ops_replica_step(void *ctx, void *replica, kinfer_step_seq *seqs, size_t n,
                                   kinfer_error *err) {
    (void)ctx;
    return kinfer_replica_step(replica, seqs, n, err);
}

static const sched_model_ops default_ops = {
    .load = ops_load,
    .destroy = ops_destroy,
    .describe = ops_describe,
    .check_request = ops_check_request,
    .replica_new = ops_replica_new,
    .replica_destroy = ops_replica_destroy,
    .replica_execute = ops_replica_execute,
    .replica_submit = ops_replica_submit,
    .replica_collect = ops_replica_collect,
    .replica_max_in_flight = ops_replica_max_in_flight,
    .gen_info = ops_gen_info,
    .gen_tokenize = ops_gen_tokenize,
    .gen_token_bytes = ops_gen_token_bytes,
    .replica_kv_alloc = ops_replica_kv_alloc,
    .replica_step = ops_replica_step,
};

kinfer_err kinfer_engine_new(const kinfer_engine_config *cfg, kinfer_engine **out,
                             kinfer_error *err) {
    return kinfer_engine_new_with_ops(cfg, &default_ops, NULL, NULL, out, err);
}
