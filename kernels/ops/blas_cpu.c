/* blas_cpu.c — OpenBLAS thread policy and the X W^T GEMM for CPU backends.
 *
 * OpenBLAS has ONE thread count for the whole process
 * (openblas_set_num_threads is global, not per call or per handle). When
 * several models ask for different cpu_threads we cannot honour each, so
 * we take the largest count anyone asked for and never lower it: lowering
 * it for a small model would slow a big one that shares the pool, and the
 * pool only costs idle threads. This static is the one deliberate global in
 * kernels/, mirroring OpenBLAS's own. Replicas are created before executors
 * start, so the count does not change under a running GEMM. */
#include "blas_cpu.h"

#include <cblas.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "kinfer/kinfer_device.h"

static pthread_mutex_t threads_lock = PTHREAD_MUTEX_INITIALIZER;
static int threads_in_force; /* 0 = never set by us */

int kinfer_blas_cpu_request_threads(int threads) {
    if (threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (int)n : 1;
    }
    pthread_mutex_lock(&threads_lock);
    if (threads > threads_in_force) {
        openblas_set_num_threads(threads);
        threads_in_force = threads;
    }
    int now = threads_in_force;
    pthread_mutex_unlock(&threads_lock);
    return now;
}

void kinfer_blas_cpu_gemm_xwt(const float *x, const float *w, float *y, size_t m, size_t n,
                              size_t k) {
    /* Row-major Y[m,n] = X[m,k] * W[n,k]^T: W is stored [out, in] as
     * PyTorch's nn.Linear keeps it, so no transpose copy at load. */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)n, (int)k, 1.0f, x, (int)k, w,
                (int)k, 0.0f, y, (int)n);
}

const char *kinfer_cpu_blas_core(void) {
    const char *core = openblas_get_corename();
    return core ? core : "unknown";
}

const char *kinfer_cpu_blas_better_core(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    /* OpenBLAS's x86-64 kernels older than AVX2; a CPU it recognises gets
     * a newer one by itself. */
    static const char *const generic[] = {"Prescott",  "Core2",  "Penryn",     "Dunnington",
                                          "Nehalem",   "Atom",   "Katmai",     "Coppermine",
                                          "Northwood", "Banias", "Sandybridge"};
    const char *core = kinfer_cpu_blas_core();
    bool is_generic = false;
    for (size_t i = 0; i < sizeof(generic) / sizeof(generic[0]); i++)
        is_generic |= strcmp(core, generic[i]) == 0;
    if (!is_generic)
        return NULL;
    /* __builtin_cpu_supports also checks that the OS saves the AVX/AVX-512
     * registers (XCR0), so the forced kernels cannot fault. */
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512cd"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return "Haswell";
#endif
    return NULL;
}
