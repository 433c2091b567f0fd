/* model_registry.h — the table of model kinds: kind name -> load, check and
 * replica functions. kinfer_model.c dispatches every seam call through it.
 * A new kind adds one entry in model_registry.c and its own files; nothing
 * else changes. Not public API. */
#ifndef KINFER_MODEL_REGISTRY_H
#define KINFER_MODEL_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "kinfer_device.h"
#include "kinfer_model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kinfer_model_kind_ops {
    const char *kind; /* "mlp", "bert": what the config's `kind` says */
    /* Loads and validates; *impl is the kind's own model struct. Errors
     * name the file (MODEL_LOAD, IO, UNSUPPORTED, CONFIG for bad options). */
    kinfer_err (*load)(const kinfer_model_options *opts, void **impl, kinfer_error *err);
    void (*destroy)(void *impl);
    /* One line for logs, e.g. "mlp 8-16-1 relu/sigmoid fp32". */
    void (*describe)(const void *impl, char *buf, size_t buflen);
    /* See kinfer_model_check_request. Thread-safe, read-only on impl. */
    kinfer_err (*check_request)(const void *impl, const kinfer_tensor *inputs, size_t ninputs,
                                const kinfer_param *params, size_t nparams,
                                kinfer_request_cost *cost, kinfer_error *err);
    /* Places the model on a device the caller already parsed and (for
     * CUDA) found present in this build. Picks the backend; a kind with no
     * backend for device->type fails with KINFER_ERR_DEVICE. */
    kinfer_err (*replica_new)(const void *impl, const kinfer_device *device, uint32_t max_rows,
                              kinfer_replica_impl **out, kinfer_error *err);
} kinfer_model_kind_ops;

/* The kind named `kind`, or NULL. */
const kinfer_model_kind_ops *kinfer_model_kind_find(const char *kind);

/* Writes "mlp, bert"-style text of the supported kinds (NUL-terminated). */
void kinfer_model_kinds_format(char *buf, size_t buflen);

#ifdef __cplusplus
}
#endif
#endif
