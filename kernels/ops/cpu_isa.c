/* cpu_isa.c — run-time choice of the SIMD path (cpu_isa.h): cpuid through
 * GCC/clang's __builtin_cpu_supports, which also checks that the OS saves
 * the wide registers. */
#include "ops/cpu_isa.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>

/* F16C straight from cpuid (leaf 1, ECX bit 29): clang before 16 does not
 * know "f16c" in __builtin_cpu_supports (the fuzz build is clang). */
static bool has_f16c(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
}
#endif

static const char *const isa_names[] = {"auto", "portable", "avx2", "avx512"};
_Static_assert(sizeof(isa_names) / sizeof(isa_names[0]) == KINFER_CPU_ISA_COUNT,
               "isa_names[] names every kinfer_cpu_isa");

const char *kinfer_cpu_isa_name(kinfer_cpu_isa isa) {
    return (unsigned)isa < KINFER_CPU_ISA_COUNT ? isa_names[isa] : "?";
}

bool kinfer_cpu_isa_supported(kinfer_cpu_isa isa) {
    switch (isa) {
    case KINFER_CPU_ISA_AUTO:
    case KINFER_CPU_ISA_PORTABLE:
        return true;
#if defined(__x86_64__) && defined(__GNUC__)
    case KINFER_CPU_ISA_AVX2:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c();
    case KINFER_CPU_ISA_AVX512:
        return kinfer_cpu_isa_supported(KINFER_CPU_ISA_AVX2) && __builtin_cpu_supports("avx512f") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512vnni");
#endif
    default:
        return false;
    }
}

kinfer_cpu_isa kinfer_cpu_isa_best(void) {
    kinfer_cpu_isa best = KINFER_CPU_ISA_PORTABLE;
    if (kinfer_cpu_isa_supported(KINFER_CPU_ISA_AVX512))
        best = KINFER_CPU_ISA_AVX512;
    else if (kinfer_cpu_isa_supported(KINFER_CPU_ISA_AVX2))
        best = KINFER_CPU_ISA_AVX2;
    const char *env = getenv("KINFER_CPU_ISA");
    if (env)
        for (int i = KINFER_CPU_ISA_PORTABLE; i < (int)best; i++)
            if (strcmp(env, isa_names[i]) == 0)
                return (kinfer_cpu_isa)i;
    return best;
}
