/* llm_embed.cu — the embedding gather on CUDA: row ids[r] of a (quantized)
 * table dequantized into out, one thread per element, the twin's exact
 * arithmetic (kinfer_embed_rows_cpu). An id outside the vocabulary (the
 * caller checks them on the host) reads nothing and gives NaN. */
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

#include "llm_ops_cuda.h"
#include "quant_cuda.cuh"

namespace {

constexpr unsigned kThreads = 256;
constexpr size_t kMaxBlocks = 65535u * 8u;

template <kinfer_qtype T>
__global__ void embed_kernel(const unsigned char *__restrict__ table, size_t row_bytes,
                             size_t vocab, size_t n, const int32_t *__restrict__ ids, size_t rows,
                             float *__restrict__ out) {
    const size_t total = rows * n;
    for (size_t g = (size_t)blockIdx.x * blockDim.x + threadIdx.x; g < total;
         g += (size_t)gridDim.x * blockDim.x) {
        size_t r = g / n, k = g % n;
        int32_t id = ids[r];
        out[g] = id >= 0 && (size_t)id < vocab
                     ? quant_cuda::weight(table + (size_t)id * row_bytes, T, k)
                     : __int_as_float(0x7fc00000); /* NaN */
    }
}

} // namespace

extern "C" cudaError_t kinfer_embed_rows_cuda(const void *table, kinfer_qtype t, size_t vocab,
                                              size_t n_embd, const int32_t *ids, size_t rows,
                                              float *out, cudaStream_t stream) {
    if ((unsigned)t >= KINFER_QTYPE_COUNT || (kinfer_qtype_is_block(t) && n_embd % KINFER_QK != 0))
        return cudaErrorInvalidValue;
    if (rows == 0 || n_embd == 0)
        return cudaSuccess;
    if (!table || !ids || !out)
        return cudaErrorInvalidValue;
    size_t rb = n_embd / kinfer_qtype_block_elems(t) * kinfer_qtype_block_bytes(t);
    size_t blocks = (rows * n_embd + kThreads - 1) / kThreads;
    if (blocks > kMaxBlocks)
        blocks = kMaxBlocks;
    const unsigned char *tb = (const unsigned char *)table;
    unsigned g = (unsigned)blocks;
    switch (t) {
    case KINFER_QTYPE_F32:
        embed_kernel<KINFER_QTYPE_F32>
            <<<g, kThreads, 0, stream>>>(tb, rb, vocab, n_embd, ids, rows, out);
        break;
    case KINFER_QTYPE_F16:
        embed_kernel<KINFER_QTYPE_F16>
            <<<g, kThreads, 0, stream>>>(tb, rb, vocab, n_embd, ids, rows, out);
        break;
    case KINFER_QTYPE_BF16:
        embed_kernel<KINFER_QTYPE_BF16>
            <<<g, kThreads, 0, stream>>>(tb, rb, vocab, n_embd, ids, rows, out);
        break;
    case KINFER_QTYPE_Q8_0:
        embed_kernel<KINFER_QTYPE_Q8_0>
            <<<g, kThreads, 0, stream>>>(tb, rb, vocab, n_embd, ids, rows, out);
        break;
    case KINFER_QTYPE_Q4_0:
        embed_kernel<KINFER_QTYPE_Q4_0>
            <<<g, kThreads, 0, stream>>>(tb, rb, vocab, n_embd, ids, rows, out);
        break;
    default:
        embed_kernel<KINFER_QTYPE_Q4_1>
            <<<g, kThreads, 0, stream>>>(tb, rb, vocab, n_embd, ids, rows, out);
        break;
    }
    return cudaGetLastError();
}
