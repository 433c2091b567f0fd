/* kinfer_device.h — device names ("cpu", "cuda:N") parsed in one place, and
 * how many CUDA devices this build can see. kinfer_replica_new parses with
 * it, checks presence and dispatches; the configuration validates a
 * model's `devices` with the same parser (config_check.c). The engine
 * falls back to the next listed device on the KINFER_ERR_DEVICE that
 * kinfer_replica_new returns; it does not call these itself.
 * Not a device manager: nothing here allocates or initialises a device. */
#ifndef KINFER_DEVICE_H
#define KINFER_DEVICE_H

#include <stdbool.h>

#include "kinfer/kinfer_error.h"
#include "kinfer/kinfer_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kinfer_device_type {
    KINFER_DEVICE_CPU = 0,
    KINFER_DEVICE_CUDA = 1
} kinfer_device_type;

/* Highest CUDA ordinal accepted by the parser (a syntax bound, not what is
 * present; kinfer_replica_new checks presence). */
#define KINFER_DEVICE_MAX_INDEX 255

typedef struct kinfer_device {
    kinfer_device_type type;
    int index;     /* CUDA ordinal; 0 for cpu */
    char name[24]; /* canonical text: "cpu", "cuda:3" */
} kinfer_device;

/* Parses "cpu" or "cuda:N" (N decimal, 0..KINFER_DEVICE_MAX_INDEX, no sign,
 * no spaces, no leading zeros except "0"). Anything else is
 * KINFER_ERR_DEVICE with a message naming the text and the accepted forms.
 * Pure syntax: does not look at the hardware. */
kinfer_err kinfer_device_parse(const char *text, kinfer_device *out, kinfer_error *err);

/* CUDA devices visible to this process; 0 when the build has no CUDA
 * backend or the driver reports none/an error. The CUDA backend asks the
 * runtime once and caches the answer (device_cuda.c). Thread-safe. */
int kinfer_cuda_device_count(void);

/* True when this build links a CUDA backend (KINFER_HAVE_CUDA). */
bool kinfer_cuda_built(void);

/* The kernel family OpenBLAS picked when it loaded (openblas_get_corename:
 * "SkylakeX", "Haswell", "Prescott", ...). For logs and benchmarks. */
const char *kinfer_cpu_blas_core(void);

/* When OpenBLAS runs generic (SSE3-era) kernels on a CPU that has AVX2 or
 * AVX-512 (Debian's DYNAMIC_ARCH build does not recognise some virtual
 * CPUs and falls back to "Prescott", a third of the speed): the
 * OPENBLAS_CORETYPE that fixes it, chosen from what this CPU and OS
 * support ("SkylakeX" or "Haswell"). NULL when the kernels in use are
 * fine. OpenBLAS reads OPENBLAS_CORETYPE only when it loads, so the fix
 * is for the next process (cli/blas_guard.c re-executes the worker). */
const char *kinfer_cpu_blas_better_core(void);

/* The instruction set the CPU dense layers run on (oneDNN's: e.g.
 * "avx512_core_amx", "avx512_core", "avx2"; "openblas" in builds without
 * oneDNN). For logs and benchmarks. */
const char *kinfer_cpu_dense_isa(void);

/* Parses a model's `precision`: NULL or "fp32" -> FP32, "fp16" -> FP16,
 * "bf16" -> BF16, "int8" -> INT8. Returns false for anything else. The one
 * place that knows the spellings, used by every model kind and backend;
 * which of them a kind offers is its kind-table entry's
 * (kinfer_model_kind_info.precisions). Which backend runs which: GPUs
 * fp32/fp16/bf16; the CPU fp32/bf16/int8 where it has the instructions,
 * else fp32 (kernels/ops/dense_cpu.h). */
bool kinfer_precision_parse(const char *precision, kinfer_dtype *out);

#ifdef __cplusplus
}
#endif
#endif
