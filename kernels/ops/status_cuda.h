/* status_cuda.h — turns CUDA runtime and cuBLAS status codes into kinfer
 * errors (KINFER_ERR_DEVICE) naming the device, the call, the status and
 * file:line, so a failing GPU yields an error value and never an abort.
 * Host C only; the .cu launchers return cudaError_t for these to map. */
#ifndef KINFER_STATUS_CUDA_H
#define KINFER_STATUS_CUDA_H

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "kinfer/kinfer_error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* KINFER_OK when rc == cudaSuccess; else fills err with
 * "cuda:<device>: <call> failed: <name> (<text>) at <file>:<line>" and
 * returns KINFER_ERR_DEVICE. device < 0 omits the device prefix. */
kinfer_err kinfer_cuda_check(kinfer_error *err, int device, const char *call, cudaError_t rc,
                             const char *file, int line);
/* The same for a cuBLAS status. */
kinfer_err kinfer_cublas_check(kinfer_error *err, int device, const char *call,
                               cublasStatus_t status, const char *file, int line);

/* Evaluate `call`; on failure fill err and `goto label` (one cleanup path).
 * Needs a kinfer_err variable `rc` in scope, which gets the result. */
#define KINFER_CUDA_GOTO(err, device, call, label)                                                 \
    do {                                                                                           \
        rc = kinfer_cuda_check((err), (device), #call, (call), __FILE__, __LINE__);                \
        if (rc != KINFER_OK)                                                                       \
            goto label;                                                                            \
    } while (0)
#define KINFER_CUBLAS_GOTO(err, device, call, label)                                               \
    do {                                                                                           \
        rc = kinfer_cublas_check((err), (device), #call, (call), __FILE__, __LINE__);              \
        if (rc != KINFER_OK)                                                                       \
            goto label;                                                                            \
    } while (0)

#ifdef __cplusplus
}
#endif
#endif
