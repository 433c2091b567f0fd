/* qmatmul_cuda.c — kinfer_qmatmul_cuda (qmatmul_cuda.h): the argument
 * checks of the CPU twin, then the fused decode kernel for small M or, for
 * prefill, W dequantized in chunks of rows into the context's scratch and
 * one cuBLAS GEMM per chunk (FP32 SGEMM, or FP16 x FP16 with FP32
 * accumulation). The kernels are in qmatmul.cu. */
#include <stdlib.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "ops/convert_cuda.h"
#include "ops/qmatmul_cuda.h"
#include "ops/status_cuda.h"

/* cuBLAS workspace given up front, so no GEMM allocates (as mlp_cuda.c). */
#define QMM_CUDA_WORKSPACE ((size_t)32 << 20)

struct kinfer_qmm_cuda {
    int device;
    cublasHandle_t blas;
    void *workspace;
    size_t max_rows, max_n, max_k;
    kinfer_qmm_cuda_prec prec;
    void *w_buf; /* [max_n, max_k] FP32 or FP16: a chunk of W dequantized */
    void *x_buf; /* [max_rows, max_k] FP16 (F16 precision only) */
};

kinfer_err kinfer_qmm_cuda_new(size_t max_rows, size_t max_n, size_t max_k,
                               kinfer_qmm_cuda_prec prec, kinfer_qmm_cuda **out,
                               kinfer_error *err) {
    *out = NULL;
    if (max_rows == 0 || max_n == 0 || max_k == 0)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "qmatmul cuda: max_rows, max_n and max_k must be >= 1");
    if (prec != KINFER_QMM_CUDA_F32 && prec != KINFER_QMM_CUDA_F16)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "qmatmul cuda: invalid precision %d",
                                (int)prec);
    size_t elem = prec == KINFER_QMM_CUDA_F16 ? 2 : 4;
    if (max_k > ((size_t)1 << 30) || max_n > (SIZE_MAX / elem) / max_k ||
        max_rows > (SIZE_MAX / 2) / max_k)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "qmatmul cuda: scratch too large");
    kinfer_qmm_cuda *q = calloc(1, sizeof(*q));
    if (!q)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
    q->max_rows = max_rows;
    q->max_n = max_n;
    q->max_k = max_k;
    q->prec = prec;
    kinfer_err rc = KINFER_OK;
    KINFER_CUDA_GOTO(err, -1, cudaGetDevice(&q->device), fail);
    KINFER_CUBLAS_GOTO(err, q->device, cublasCreate(&q->blas), fail);
    KINFER_CUDA_GOTO(err, q->device, cudaMalloc(&q->workspace, QMM_CUDA_WORKSPACE), fail);
    KINFER_CUBLAS_GOTO(err, q->device,
                       cublasSetWorkspace(q->blas, q->workspace, QMM_CUDA_WORKSPACE), fail);
    /* FP32 stays FP32: no TF32 behind the caller's back */
    KINFER_CUBLAS_GOTO(err, q->device, cublasSetMathMode(q->blas, CUBLAS_DEFAULT_MATH), fail);
    KINFER_CUDA_GOTO(err, q->device, cudaMalloc(&q->w_buf, max_n * max_k * elem), fail);
    if (prec == KINFER_QMM_CUDA_F16)
        KINFER_CUDA_GOTO(err, q->device, cudaMalloc(&q->x_buf, max_rows * max_k * 2), fail);
    *out = q;
    return KINFER_OK;
fail:
    kinfer_qmm_cuda_destroy(q);
    return rc;
}

void kinfer_qmm_cuda_destroy(kinfer_qmm_cuda *q) {
    if (!q)
        return;
    if (q->blas)
        cublasDestroy(q->blas);
    cudaFree(q->workspace);
    cudaFree(q->w_buf);
    cudaFree(q->x_buf);
    free(q);
}

kinfer_err kinfer_qmatmul_cuda(kinfer_qmm_cuda *qmm, const float *x, size_t M, size_t K,
                               const void *w, kinfer_qtype wtype, size_t N, float *y,
                               bool accumulate, cudaStream_t stream, kinfer_error *err) {
    size_t w_ld = 0;
    kinfer_error row_err;
    if (kinfer_qtype_row_bytes(wtype, K, &w_ld, &row_err) != KINFER_OK)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "qmatmul cuda: %s", row_err.msg);
    if (!qmm)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "qmatmul cuda: no context");
    if (M > qmm->max_rows || K > qmm->max_k)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "qmatmul cuda: %zu x %zu exceeds the context's %zu x %zu", M, K,
                                qmm->max_rows, qmm->max_k);
    if (M == 0 || N == 0)
        return KINFER_OK;
    if (!x || !w || !y)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "qmatmul cuda: NULL operand");
    if (N > ((size_t)1 << 30))
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "qmatmul cuda: N %zu too large", N);
    kinfer_err rc = KINFER_OK;
    int dev = qmm->device;
    if (K == 0) { /* an empty sum: zeros, or y as it is */
        if (!accumulate)
            KINFER_CUDA_GOTO(err, dev, cudaMemsetAsync(y, 0, M * N * sizeof(float), stream), out);
        return KINFER_OK;
    }
    if (M <= KINFER_QGEMV_CUDA_MAX_ROWS) {
        KINFER_CUDA_GOTO(err, dev, kinfer_qgemv_cuda(x, M, K, w, wtype, N, y, accumulate, stream),
                         out);
        return KINFER_OK;
    }
    bool f16 = qmm->prec == KINFER_QMM_CUDA_F16;
    KINFER_CUBLAS_GOTO(err, dev, cublasSetStream(qmm->blas, stream), out);
    if (f16)
        KINFER_CUDA_GOTO(err, dev,
                         kinfer_convert_f32_cuda(x, qmm->x_buf, KINFER_DTYPE_FP16, M * K, stream),
                         out);
    const float one = 1.0f, zero = 0.0f;
    /* Row-major Y[M,N] = X W^T is column-major Y^T (N x M, ld N) =
     * W (K x N column-major, transposed) times X^T (K x M, ld K). */
    for (size_t n0 = 0; n0 < N; n0 += qmm->max_n) {
        size_t nc = N - n0 < qmm->max_n ? N - n0 : qmm->max_n;
        KINFER_CUDA_GOTO(err, dev,
                         kinfer_dequantize_cuda((const unsigned char *)w + n0 * w_ld, wtype, nc, K,
                                                qmm->w_buf, f16, stream),
                         out);
        const float *beta = accumulate ? &one : &zero;
        if (f16)
            KINFER_CUBLAS_GOTO(
                err, dev,
                cublasGemmEx(qmm->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)nc, (int)M, (int)K, &one,
                             qmm->w_buf, CUDA_R_16F, (int)K, qmm->x_buf, CUDA_R_16F, (int)K, beta,
                             y + n0, CUDA_R_32F, (int)N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                out);
        else
            KINFER_CUBLAS_GOTO(err, dev,
                               cublasSgemm(qmm->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)nc, (int)M,
                                           (int)K, &one, (const float *)qmm->w_buf, (int)K, x,
                                           (int)K, beta, y + n0, (int)N),
                               out);
    }
out:
    return rc;
}
