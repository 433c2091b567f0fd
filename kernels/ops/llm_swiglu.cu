/* llm_swiglu.cu — SwiGLU on CUDA: out = silu(gate) * up with kinfer_hd.h's
 * kinfer_silu, the formula of the twin (llm_swiglu_cpu.c). One thread per
 * element, so out may be gate only when ld == n or for one row (llm_ops_cuda.h). */
#include <cuda_runtime.h>

#include "kinfer_hd.h"
#include "llm_ops_cuda.h"

namespace {

constexpr unsigned kThreads = 256;
constexpr size_t kMaxBlocks = 65535u * 8u;

__global__ void swiglu_kernel(const float *gate, const float *up, size_t ld, float *out,
                              size_t rows, size_t n) {
    const size_t total = rows * n;
    for (size_t g = (size_t)blockIdx.x * blockDim.x + threadIdx.x; g < total;
         g += (size_t)gridDim.x * blockDim.x) {
        size_t r = g / n, c = g % n;
        float gv = gate[r * ld + c], uv = up[r * ld + c];
        out[g] = __fmul_rn(kinfer_silu(gv), uv);
    }
}

} // namespace

extern "C" cudaError_t kinfer_swiglu_cuda(const float *gate, const float *up, size_t ld, float *out,
                                          size_t rows, size_t n, cudaStream_t stream) {
    if (rows == 0 || n == 0)
        return cudaSuccess;
    if (!gate || !up || !out || ld < n)
        return cudaErrorInvalidValue;
    size_t blocks = (rows * n + kThreads - 1) / kThreads;
    if (blocks > kMaxBlocks)
        blocks = kMaxBlocks;
    swiglu_kernel<<<(unsigned)blocks, kThreads, 0, stream>>>(gate, up, ld, out, rows, n);
    return cudaGetLastError();
}
