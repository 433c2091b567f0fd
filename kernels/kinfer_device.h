/* kinfer_device.h — device names ("cpu", "cuda:N") parsed in one place, and
 * how many CUDA devices this build can see. The engine uses these to pick
 * and fall back between devices; kinfer_replica_new uses them to dispatch.
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
 * backend or the driver reports none/an error. Cheap after the first call
 * is up to the CUDA backend. Thread-safe. */
int kinfer_cuda_device_count(void);

/* True when this build links a CUDA backend (KINFER_HAVE_CUDA). */
bool kinfer_cuda_built(void);

/* Parses a model's GPU `precision`: NULL or "fp32" -> FP32, "fp16" -> FP16,
 * "bf16" -> BF16. Returns false for anything else. The one place that knows
 * the spellings, used by every model kind and backend. */
bool kinfer_precision_parse(const char *precision, kinfer_dtype *out);

#ifdef __cplusplus
}
#endif
#endif
