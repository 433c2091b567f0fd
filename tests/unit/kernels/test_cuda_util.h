/* test_cuda_util.h — shared bits of the CUDA parity tests: the loud skip
 * when no GPU (or no CUDA backend) is there, and device buffers with
 * sentinel guard zones on both sides to catch writes past the ends.
 * Header-only; test code, not production code. */
#ifndef TEST_CUDA_UTIL_H
#define TEST_CUDA_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kinfer/kinfer_device.h"

/* ctest SKIP_RETURN_CODE (tests/gpu/CMakeLists.txt sets it for test_cuda_*). */
#define TC_SKIP 77

/* Returns 0 when a CUDA device is usable; else prints the loud skip line
 * and returns TC_SKIP for main to return. */
static inline int tc_require_gpu(const char *test) {
    if (!kinfer_cuda_built()) {
        fprintf(stderr,
                "\n*** %s: SKIPPED: no CUDA device (this build has no CUDA backend; "
                "configure with -DKINFER_CUDA=ON) ***\n\n",
                test);
        return TC_SKIP;
    }
    if (kinfer_cuda_device_count() <= 0) {
        fprintf(stderr,
                "\n*** %s: SKIPPED: no CUDA device (the CUDA runtime reports none; "
                "run tests/gpu/run.sh on a GPU machine) ***\n\n",
                test);
        return TC_SKIP;
    }
    return 0;
}

#ifdef KINFER_HAVE_CUDA
#include <cuda_runtime_api.h>

#if defined(__SANITIZE_ADDRESS__)
/* Under ASan on a real GPU, cudart maps memory into ASan's shadow gap
 * unless told not to protect it (read by ASan before main). */
const char *__asan_default_options(void);
const char *__asan_default_options(void) {
    return "protect_shadow_gap=0";
}
#endif

/* Guard zone per side, in bytes; filled with a byte no kernel writes. */
#define TC_GUARD 256
#define TC_GUARD_BYTE 0xA5

typedef struct tc_buf {
    unsigned char *base; /* device: guard | payload | guard */
    size_t bytes;        /* payload bytes */
} tc_buf;

static inline void *tc_ptr(const tc_buf *b) {
    return b->base + TC_GUARD;
}

/* Allocates bytes + guards, fills guards with the sentinel and the payload
 * from host (or with a poison pattern 0xFF.. when host is NULL, so an
 * unwritten output shows up as NaN). Returns 0 on success. */
static inline int tc_alloc(tc_buf *b, const void *host, size_t bytes) {
    b->bytes = bytes;
    if (cudaMalloc((void **)&b->base, bytes + 2 * TC_GUARD) != cudaSuccess)
        return -1;
    if (cudaMemset(b->base, TC_GUARD_BYTE, bytes + 2 * TC_GUARD) != cudaSuccess)
        return -1;
    if (host && bytes)
        return cudaMemcpy(tc_ptr(b), host, bytes, cudaMemcpyHostToDevice) == cudaSuccess ? 0 : -1;
    return cudaMemset(tc_ptr(b), 0xFF, bytes) == cudaSuccess ? 0 : -1;
}

/* Copies the payload to host and checks both guards; returns 0 when intact. */
static inline int tc_fetch(const tc_buf *b, void *host) {
    size_t total = b->bytes + 2 * TC_GUARD;
    unsigned char *all = malloc(total);
    if (!all)
        return -1;
    int rc = cudaMemcpy(all, b->base, total, cudaMemcpyDeviceToHost) == cudaSuccess ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < TC_GUARD; i++)
        if (all[i] != TC_GUARD_BYTE || all[TC_GUARD + b->bytes + i] != TC_GUARD_BYTE) {
            fprintf(stderr, "sentinel guard overwritten %s the buffer (offset %zu)\n",
                    all[i] != TC_GUARD_BYTE ? "before" : "after", i);
            rc = -2;
        }
    if (rc == 0 && host && b->bytes)
        memcpy(host, all + TC_GUARD, b->bytes);
    free(all);
    return rc;
}

static inline void tc_free(tc_buf *b) {
    cudaFree(b->base);
    b->base = NULL;
}
#endif

#endif
