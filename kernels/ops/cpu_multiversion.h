/* cpu_multiversion.h — KINFER_CPU_MULTIVERSION: compile an element-wise
 * CPU loop for several ISAs and pick one at load time. Shared by the CPU
 * twins in ops/ that GCC vectorises. */
#ifndef KINFER_CPU_MULTIVERSION_H
#define KINFER_CPU_MULTIVERSION_H

/* The element-wise loops are compiled for several ISAs and picked at load
 * time (GCC/clang function multi-versioning): the project builds for the
 * x86-64 baseline, which would leave them at SSE2. */
/* Sanitizer runtimes are not up when ifunc resolvers run: no clones there. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define KINFER_NO_MULTIVERSION 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) ||                         \
    __has_feature(memory_sanitizer)
#define KINFER_NO_MULTIVERSION 1
#endif
#endif
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) &&                             \
    !defined(KINFER_NO_MULTIVERSION)
/* GCC's -O2 cost model leaves these loops scalar; O3 for them alone. */
#define KINFER_CPU_MULTIVERSION                                                                    \
    __attribute__((target_clones("avx512f", "avx2", "default"), optimize("O3")))
#else
/* Not under clang: clang 14 emits target_clones resolvers for these
 * non-static functions under mangled names only, so callers in other
 * files fail to link. */
#define KINFER_CPU_MULTIVERSION
#endif

#endif
