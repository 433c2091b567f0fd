/* cpu_isa.h — which SIMD path a CPU op runs, chosen at run time from what
 * the CPU reports (cpuid through __builtin_cpu_supports), never from the
 * build machine: the project builds for the x86-64 baseline and CI
 * machines differ. Tests force each path to compare it with the portable
 * one. */
#ifndef KINFER_CPU_ISA_H
#define KINFER_CPU_ISA_H

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kinfer_cpu_isa {
    KINFER_CPU_ISA_AUTO = 0, /* the best path this CPU runs */
    KINFER_CPU_ISA_PORTABLE, /* plain C, any CPU */
    KINFER_CPU_ISA_AVX2,     /* AVX2 + FMA + F16C (Haswell, Zen 1 and later) */
    KINFER_CPU_ISA_AVX512,   /* AVX-512 F/BW/VL/VNNI (Ice Lake, Sapphire Rapids, Zen 4) */
    KINFER_CPU_ISA_COUNT
} kinfer_cpu_isa;

/* "auto", "portable", "avx2", "avx512". */
const char *kinfer_cpu_isa_name(kinfer_cpu_isa isa);
/* True when this CPU (and this build: the SIMD paths need GCC or clang on
 * x86-64) can run isa; AUTO and PORTABLE are always true. */
bool kinfer_cpu_isa_supported(kinfer_cpu_isa isa);
/* The best supported path (never AUTO). The environment variable
 * KINFER_CPU_ISA=portable|avx2|avx512 lowers it (to reproduce a smaller
 * machine); a value above what the CPU runs is ignored. */
kinfer_cpu_isa kinfer_cpu_isa_best(void);

#ifdef __cplusplus
}
#endif
#endif
