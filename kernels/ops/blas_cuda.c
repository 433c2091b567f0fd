/* blas_cuda.c — cuBLAS handle set-up and the y = x w^T GEMM of every CUDA
 * replica (see blas_cuda.h); the twin of blas_cpu.c. */
#include "ops/blas_cuda.h"

#include "ops/status_cuda.h"

size_t kinfer_blas_cuda_type_size(kinfer_dtype t) {
    return t == KINFER_DTYPE_FP32 ? 4 : 2;
}

static cudaDataType_t cuda_type(kinfer_dtype t) {
    switch (t) {
    case KINFER_DTYPE_FP16:
        return CUDA_R_16F;
    case KINFER_DTYPE_BF16:
        return CUDA_R_16BF;
    default:
        return CUDA_R_32F;
    }
}

kinfer_err kinfer_blas_cuda_handle_new(int device, cudaStream_t stream, void *workspace,
                                       size_t workspace_bytes, cublasHandle_t *out,
                                       kinfer_error *err) {
    kinfer_err rc = KINFER_OK;
    cublasHandle_t h = NULL;
    *out = NULL;
    KINFER_CUBLAS_GOTO(err, device, cublasCreate(&h), fail);
    KINFER_CUBLAS_GOTO(err, device, cublasSetStream(h, stream), fail);
    KINFER_CUBLAS_GOTO(err, device, cublasSetMathMode(h, CUBLAS_DEFAULT_MATH), fail);
    /* After cublasSetStream: setting a stream resets the workspace. */
    KINFER_CUBLAS_GOTO(err, device, cublasSetWorkspace(h, workspace, workspace_bytes), fail);
    *out = h;
    return KINFER_OK;
fail:
    if (h)
        (void)cublasDestroy(h);
    return rc;
}

/* Row-major Y[m, n] = X[m, k] * W^T with W [n, k] row-major. Column-major,
 * that is Y^T[n, m] = W^T^T[n, k] * X^T[k, m]: A = W (ld k, transposed),
 * B = X (ld k), C = Y (ld n). */
kinfer_err kinfer_blas_cuda_gemm_xwt(cublasHandle_t blas, int device, kinfer_dtype t, const void *x,
                                     const void *w, float *y, size_t m, size_t n, size_t k,
                                     kinfer_error *err) {
    kinfer_err rc = KINFER_OK;
    const float one = 1.0f, zero = 0.0f;
    cudaDataType_t ct = cuda_type(t);
    KINFER_CUBLAS_GOTO(err, device,
                       cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)n, (int)m, (int)k, &one, w,
                                    ct, (int)k, x, ct, (int)k, &zero, y, CUDA_R_32F, (int)n,
                                    CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                       done);
done:
    return rc;
}
