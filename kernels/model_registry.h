/* model_registry.h — the table of model kinds: kind name -> what the kind
 * accepts (kinfer_model_kind_info, public in kinfer_model.h: the
 * configuration reads it) and its load, check, describe and replica
 * functions (kinfer_model.c dispatches every seam call through them).
 * Each kind defines its entry in its own folder; adding a kind is that
 * folder, one line in model_registry.c and nothing else in C (CMake globs
 * the sources). Not public API. */
#ifndef KINFER_MODEL_REGISTRY_H
#define KINFER_MODEL_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "kinfer/kinfer_device.h"
#include "kinfer/kinfer_model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The generative half of the seam (kinfer_model.h, "Generative models"):
 * set by generative kinds (llm), NULL for the rest. Thread-safe,
 * read-only on impl. */
typedef struct kinfer_model_gen_ops {
    /* Fills *info (pointers valid for the model's lifetime). */
    void (*info)(const void *impl, kinfer_gen_info *info);
    /* See kinfer_model_gen_tokenize. */
    kinfer_err (*tokenize)(const void *impl, kinfer_str prompt, const kinfer_chat_message *messages,
                           size_t nmessages, int32_t **ids, size_t *nids, kinfer_error *err);
    /* See kinfer_model_gen_token_bytes. */
    size_t (*token_bytes)(const void *impl, int32_t id, bool special, char *out, size_t cap);
} kinfer_model_gen_ops;

typedef struct kinfer_model_kind_ops {
    /* Name ("mlp", "bert": what the config's `kind` says) and what the
     * configuration may ask about the kind. */
    kinfer_model_kind_info info;
    /* Loads and validates; *impl is the kind's own model struct. Errors
     * name the file (MODEL_LOAD, IO, UNSUPPORTED, CONFIG for bad options). */
    kinfer_err (*load)(const kinfer_model_options *opts, void **impl, kinfer_error *err);
    void (*destroy)(void *impl);
    /* One line for logs, e.g. "mlp 8-16-1 relu/sigmoid". */
    void (*describe)(const void *impl, char *buf, size_t buflen);
    /* Input/output facts of kinfer_model_info (kind and description are
     * filled by the caller; the rest starts zeroed). NULL = nothing known. */
    void (*io)(const void *impl, kinfer_model_info *info);
    /* See kinfer_model_check_request. Thread-safe, read-only on impl. */
    kinfer_err (*check_request)(const void *impl, const kinfer_tensor *inputs, size_t ninputs,
                                const kinfer_param *params, size_t nparams,
                                kinfer_request_cost *cost, kinfer_error *err);
    /* Places the model on a device the caller already parsed and (for
     * CUDA) found present in this build. Picks the backend; a kind with no
     * backend for device->type fails with KINFER_ERR_DEVICE. */
    kinfer_err (*replica_new)(const void *impl, const kinfer_device *device, uint32_t max_rows,
                              kinfer_replica_impl **out, kinfer_error *err);
    /* Generative kinds only (their replicas then set kv_alloc and step in
     * kinfer_replica_ops); NULL otherwise. */
    const kinfer_model_gen_ops *gen;
} kinfer_model_kind_ops;

/* The kind named `kind`, or NULL. */
const kinfer_model_kind_ops *kinfer_model_kind_find(const char *kind);

/* Writes "mlp, bert"-style text of the supported kinds (NUL-terminated). */
void kinfer_model_kinds_format(char *buf, size_t buflen);

#ifdef __cplusplus
}
#endif
#endif
