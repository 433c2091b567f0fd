/* mlp_model.h — model kind `mlp`: dense layers y = act(x W^T + b) loaded
 * from safetensors (`layers.{i}.weight` [out, in], `layers.{i}.bias` [out]).
 * Weights are FP32 in host memory (mmapped when aligned F32, converted
 * from F16/BF16 at load); backends upload or use them as they are. Also the
 * batch helpers every mlp backend shares. Not a backend: no GEMM here. */
#ifndef KINFER_MLP_MODEL_H
#define KINFER_MLP_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "kinfer/kinfer_model.h"
#include "ops/kinfer_hd.h"
#include "formats/safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest layer width accepted (in or out): a sanity bound on file input. */
#define MLP_MAX_WIDTH (1u << 24)
/* Most layers accepted. */
#define MLP_MAX_LAYERS 1024

typedef enum mlp_output_act {
    MLP_OUT_NONE = 0,
    MLP_OUT_SIGMOID,
    MLP_OUT_SOFTMAX, /* over each output row, max-subtracted */
    MLP_OUT_COUNT
} mlp_output_act;

typedef struct mlp_layer {
    uint32_t in, out;
    const float *weight; /* [out, in] row-major FP32, host; read-only */
    const float *bias;   /* [out] FP32, host; read-only */
} mlp_layer;

typedef struct mlp_model {
    char *path;
    uint32_t nlayers; /* >= 1 */
    mlp_layer *layers;
    uint32_t in_width;                /* layers[0].in */
    uint32_t out_width;               /* layers[nlayers-1].out */
    uint32_t max_width;               /* max over in_width and every layer's out */
    kinfer_activation activation;     /* after every layer but the last */
    mlp_output_act output_activation; /* after the last layer */
    kinfer_nan_policy nan_policy;
    char precision[8];        /* "fp32" | "fp16" | "bf16" | "int8" (kinfer_device.h) */
    int cpu_threads;          /* from options; 0 = online cores */
    kinfer_dtype file_dtype;  /* dtype of the weights in the file (first layer) */
    kinfer_safetensors *file; /* kept open: F32 weights may point into it */
    float *owned;             /* converted/copied weights; NULL when all mmapped */
} mlp_model;

/* Loads an mlp from opts->path. Errors name the file and tensor. */
kinfer_err mlp_model_load(const kinfer_model_options *opts, mlp_model **out, kinfer_error *err);
void mlp_model_destroy(mlp_model *model);
/* "mlp 8-16-1 relu/sigmoid" (+ " fp16" when precision is not fp32). */
void mlp_model_describe(const mlp_model *model, char *buf, size_t buflen);

const char *mlp_activation_name(kinfer_activation act);
const char *mlp_output_act_name(mlp_output_act act);
/* Parse "relu|gelu|tanh|sigmoid|none" / "none|sigmoid|softmax"; 0 = ok. */
int mlp_activation_parse(const char *text, kinfer_activation *out);
int mlp_output_act_parse(const char *text, mlp_output_act *out);

/* The request contract (mlp_request.c). Inputs: exactly one tensor, any
 * name, FP32, shape [in] or [n, in] with n >= 1. NaN/Inf per nan_policy.
 * Parameters are ignored. cost.rows = n (1 for rank 1). Output: one tensor
 * "output", FP32, [out] or [n, out] matching the input's rank. */
kinfer_err mlp_check_request(const mlp_model *model, const kinfer_tensor *inputs, size_t ninputs,
                             const kinfer_param *params, size_t nparams, kinfer_request_cost *cost,
                             kinfer_error *err);

/* Batch helpers shared by backends (mlp_request.c). prepare re-checks each
 * item's shape cheaply (not the NaN scan: check_request did that) and that
 * its rows equal cost.rows; an item that fails gets status
 * INVALID_REQUEST and is skipped by pack/set_outputs. *rows = total rows of
 * the good items (<= max_rows, else INVALID_ARG for the whole batch). */
kinfer_err mlp_batch_prepare(const mlp_model *model, kinfer_batch_item *items, size_t nitems,
                             uint32_t max_rows, uint32_t *rows, kinfer_error *err);
/* Copies the good items' input rows, in item order, into x [rows, in_width]. */
void mlp_batch_pack(const mlp_model *model, const kinfer_batch_item *items, size_t nitems,
                    float *x);
/* Points each good item's outputs[0] at its rows of y [rows, out_width]. */
void mlp_batch_set_outputs(const mlp_model *model, kinfer_batch_item *items, size_t nitems,
                           const float *y);

/* --- backends ------------------------------------------------------------ */

/* mlp on the CPU (mlp_cpu.c): OpenBLAS sgemm + bias_act_cpu.c. The model
 * must outlive the replica. max_rows >= 1. Errors: NOMEM, INVALID_ARG
 * (sizes overflow). */
kinfer_err mlp_cpu_replica_new(const mlp_model *model, uint32_t max_rows, kinfer_replica_impl **out,
                               kinfer_error *err);

#ifdef KINFER_HAVE_CUDA
/* mlp on CUDA device (mlp_cuda.c) `device_index` (already checked < device count):
 * uploads the FP32 host weights of `model` (converting to `precision`:
 * "fp32", "fp16" or "bf16", already validated by the loader), allocates
 * device and pinned host buffers for max_rows rows, creates its stream and
 * cuBLAS handle per staging slot (two: submit/collect, max_in_flight 2).
 * It uses mlp_batch_prepare / mlp_batch_pack / mlp_batch_set_outputs
 * (mlp_model.h) so CPU and CUDA agree on item handling. The model must outlive the replica. Errors:
 * KINFER_ERR_DEVICE (naming the CUDA call, file and line), KINFER_ERR_NOMEM. */
kinfer_err mlp_cuda_replica_new(const mlp_model *model, int device_index, uint32_t max_rows,
                                const char *precision, kinfer_replica_impl **out,
                                kinfer_error *err);
#endif

/* The kind table entry (model_registry.c lists it). */
struct kinfer_model_kind_ops;
extern const struct kinfer_model_kind_ops mlp_kind_ops;

#ifdef __cplusplus
}
#endif
#endif
