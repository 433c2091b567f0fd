/* blas_guard.c — "no slow BLAS by accident" for `kinfer worker`: before
 * anything else runs, check whether OpenBLAS fell back to its generic
 * kernels on a CPU with AVX2/AVX-512 (kinfer_cpu_blas_better_core) and, if
 * so, re-execute the same binary with OPENBLAS_CORETYPE set to the kernel
 * family this CPU supports. OpenBLAS reads that variable only when it
 * loads, so re-executing is the one fix that works from inside; it is safe
 * here because the process has done nothing yet (no files, sockets or
 * threads of ours; OpenBLAS's own threads end with the exec). When the fix
 * does not take, the worker refuses to start unless the operator says
 * KINFER_ALLOW_GENERIC_BLAS=1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "kinfer/kinfer_device.h"
#include "kinfer/kinfer_log.h"

/* Set on the re-executed process: the core it replaced (loop guard). */
#define REEXEC_ENV "KINFER_BLAS_REEXEC"
#define ALLOW_ENV "KINFER_ALLOW_GENERIC_BLAS"

int kinfer_blas_guard(char **argv) {
    const char *better = kinfer_cpu_blas_better_core();
    const char *core = kinfer_cpu_blas_core();
    const char *was = getenv(REEXEC_ENV);
    if (!better) {
        if (was) {
            KINFER_LOGI("cpu.openblas_core_fixed",
                        "from=%s to=%s how=\"re-executed with OPENBLAS_CORETYPE=%s\"", was, core,
                        core);
            unsetenv(REEXEC_ENV); /* not for the worker's own children */
        }
        return 0;
    }
    const char *allow = getenv(ALLOW_ENV);
    if (allow && strcmp(allow, "1") == 0) {
        KINFER_LOGW("cpu.openblas_generic_kept",
                    "core=%s better=%s reason=\"%s=1\" effect=\"CPU GEMMs on OpenBLAS at about a "
                    "third of their speed\"",
                    core, better, ALLOW_ENV);
        return 0;
    }
    if (!was) {
        char from[64];
        snprintf(from, sizeof(from), "%s", core);
        if (setenv("OPENBLAS_CORETYPE", better, 1) == 0 && setenv(REEXEC_ENV, from, 1) == 0) {
            execv("/proc/self/exe", argv);
            /* Only returns on failure: fall through to the refusal. */
        }
        perror("kinfer: re-executing with OPENBLAS_CORETYPE");
    }
    fprintf(stderr,
            "kinfer worker: OpenBLAS runs its generic '%s' kernels on a CPU that has %s "
            "(about a third of the speed) and setting OPENBLAS_CORETYPE=%s did not change "
            "that. Refusing to start: set %s=1 to run anyway, or OPENBLAS_CORETYPE to a "
            "kernel family your OpenBLAS has.\n",
            core, strcmp(better, "SkylakeX") == 0 ? "AVX-512" : "AVX2", better, ALLOW_ENV);
    return 1;
}
