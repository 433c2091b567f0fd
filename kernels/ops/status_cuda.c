/* status_cuda.c — CUDA/cuBLAS status -> kinfer_error (see status_cuda.h).
 * Formatting only: no retries, no logging, no device reset. */
#include <string.h>

#include "status_cuda.h"

/* __FILE__ is an absolute path under CMake; the last two components
 * ("kernels/mlp/mlp_cuda.c") are what a reader needs. */
static const char *short_path(const char *file) {
    const char *last = strrchr(file, '/');
    if (!last)
        return file;
    const char *p = last;
    while (p > file && p[-1] != '/')
        p--;
    return p; /* at most "dir/name": the whole text when it is no longer */
}

kinfer_err kinfer_cuda_check(kinfer_error *err, int device, const char *call, cudaError_t rc,
                             const char *file, int line) {
    if (rc == cudaSuccess)
        return KINFER_OK;
    const char *name = cudaGetErrorName(rc);
    const char *text = cudaGetErrorString(rc);
    if (device >= 0)
        return kinfer_error_set(err, KINFER_ERR_DEVICE, "cuda:%d: %s failed: %s (%s) at %s:%d",
                                device, call, name ? name : "?", text ? text : "?",
                                short_path(file), line);
    return kinfer_error_set(err, KINFER_ERR_DEVICE, "cuda: %s failed: %s (%s) at %s:%d", call,
                            name ? name : "?", text ? text : "?", short_path(file), line);
}

kinfer_err kinfer_cublas_check(kinfer_error *err, int device, const char *call,
                               cublasStatus_t status, const char *file, int line) {
    if (status == CUBLAS_STATUS_SUCCESS)
        return KINFER_OK;
    const char *name = cublasGetStatusName(status);
    const char *text = cublasGetStatusString(status);
    return kinfer_error_set(err, KINFER_ERR_DEVICE, "cuda:%d: %s failed: %s (%s) at %s:%d", device,
                            call, name ? name : "?", text ? text : "?", short_path(file), line);
}
