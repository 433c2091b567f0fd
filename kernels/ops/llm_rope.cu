/* llm_rope.cu — rotary position embedding on CUDA: the per-step (cos, sin)
 * table (angle, cos and sin in double, rounded once, as the twin
 * kinfer_rope_table_cpu) and the in-place rotation of each head's first
 * n_rot dims in either pairing (kinfer_rope_cpu). One thread per pair. */
#include <cuda_runtime.h>
#include <stdint.h>

#include "llm_ops_cuda.h"

namespace {

constexpr unsigned kThreads = 256;
constexpr size_t kMaxBlocks = 65535u * 8u;

unsigned blocks_for(size_t work) {
    size_t b = (work + kThreads - 1) / kThreads;
    return (unsigned)(b > kMaxBlocks ? kMaxBlocks : b);
}

__global__ void table_kernel(const uint32_t *__restrict__ pos, size_t rows,
                             const float *__restrict__ inv_freq, unsigned half,
                             float *__restrict__ cs) {
    const size_t total = rows * half;
    for (size_t g = (size_t)blockIdx.x * blockDim.x + threadIdx.x; g < total;
         g += (size_t)gridDim.x * blockDim.x) {
        size_t r = g / half;
        unsigned i = (unsigned)(g % half);
        double a = (double)pos[r] * (double)inv_freq[i];
        double s, c;
        sincos(a, &s, &c);
        cs[2 * g] = (float)c;
        cs[2 * g + 1] = (float)s;
    }
}

__global__ void rope_kernel(float *x, size_t ld, size_t rows, unsigned nheads, unsigned head_dim,
                            unsigned half, const float *__restrict__ cs, bool neox) {
    const size_t total = rows * nheads * half;
    for (size_t g = (size_t)blockIdx.x * blockDim.x + threadIdx.x; g < total;
         g += (size_t)gridDim.x * blockDim.x) {
        unsigned i = (unsigned)(g % half);
        size_t rh = g / half;
        unsigned h = (unsigned)(rh % nheads);
        size_t r = rh / nheads;
        float *v = x + r * ld + (size_t)h * head_dim;
        float *a = neox ? v + i : v + 2 * i, *b = neox ? a + half : a + 1;
        float co = cs[(r * half + i) * 2], si = cs[(r * half + i) * 2 + 1];
        float a0 = *a, b0 = *b;
        /* as the twin: separate products, no fused multiply-add */
        *a = __fsub_rn(__fmul_rn(a0, co), __fmul_rn(b0, si));
        *b = __fadd_rn(__fmul_rn(a0, si), __fmul_rn(b0, co));
    }
}

} // namespace

extern "C" cudaError_t kinfer_rope_table_cuda(const uint32_t *pos, size_t rows,
                                              const float *inv_freq, size_t n_rot, float *cs,
                                              cudaStream_t stream) {
    if (rows == 0)
        return cudaSuccess;
    if (!pos || !inv_freq || !cs || n_rot < 2 || n_rot % 2 != 0 || n_rot > 4096)
        return cudaErrorInvalidValue;
    unsigned half = (unsigned)(n_rot / 2);
    table_kernel<<<blocks_for(rows * half), kThreads, 0, stream>>>(pos, rows, inv_freq, half, cs);
    return cudaGetLastError();
}

extern "C" cudaError_t kinfer_rope_cuda(float *x, size_t ld, size_t rows, size_t nheads,
                                        size_t head_dim, size_t n_rot, const float *cs,
                                        kinfer_rope_mode mode, cudaStream_t stream) {
    if (rows == 0 || nheads == 0)
        return cudaSuccess;
    if (!x || !cs || n_rot < 2 || n_rot % 2 != 0 || n_rot > head_dim || head_dim > 4096 ||
        nheads > 4096 || ld < nheads * head_dim ||
        (mode != KINFER_ROPE_NORM && mode != KINFER_ROPE_NEOX))
        return cudaErrorInvalidValue;
    unsigned half = (unsigned)(n_rot / 2);
    rope_kernel<<<blocks_for(rows * nheads * half), kThreads, 0, stream>>>(
        x, ld, rows, (unsigned)nheads, (unsigned)head_dim, half, cs, mode == KINFER_ROPE_NEOX);
    return cudaGetLastError();
}
