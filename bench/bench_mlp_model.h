/* bench_mlp_model.h — the engine benches' MLP 256-512-512-16 (relu) with
 * random weights, written to a safetensors file (header-only: each bench_*.c
 * is its own executable). Not a test. */
#ifndef BENCH_MLP_MODEL_H
#define BENCH_MLP_MODEL_H

#include <stdio.h>
#include <stdlib.h>

#include "formats/safetensors.h"

#define IN 256
#define H1 512
#define H2 512
#define OUTW 16

static float bench_mlp_frand(unsigned *seed) {
    return (float)rand_r(seed) / (float)RAND_MAX * 2.0f - 1.0f;
}

/* Writes the model to path; 0 on success, else -1 with a message. */
static int bench_mlp_write(const char *path) {
    unsigned seed = 1;
    size_t sizes[6] = {(size_t)H1 * IN, H1, (size_t)H2 * H1, H2, (size_t)OUTW * H2, OUTW};
    float *buf[6];
    for (int i = 0; i < 6; i++) {
        buf[i] = malloc(sizes[i] * sizeof(float));
        if (!buf[i]) {
            for (int k = 0; k < i; k++)
                free(buf[k]);
            fprintf(stderr, "out of memory\n");
            return -1;
        }
        float scale = (i % 2 == 0) ? 1.0f / 16.0f : 0.01f; /* ~1/sqrt(fan-in) */
        for (size_t k = 0; k < sizes[i]; k++)
            buf[i][k] = bench_mlp_frand(&seed) * scale;
    }
    kinfer_st_write_tensor t[6] = {
        {"layers.0.weight", KINFER_DTYPE_FP32, 2, {H1, IN}, buf[0]},
        {"layers.0.bias", KINFER_DTYPE_FP32, 1, {H1}, buf[1]},
        {"layers.1.weight", KINFER_DTYPE_FP32, 2, {H2, H1}, buf[2]},
        {"layers.1.bias", KINFER_DTYPE_FP32, 1, {H2}, buf[3]},
        {"layers.2.weight", KINFER_DTYPE_FP32, 2, {OUTW, H2}, buf[4]},
        {"layers.2.bias", KINFER_DTYPE_FP32, 1, {OUTW}, buf[5]},
    };
    const char *keys[] = {"activation", "output_activation"};
    const char *vals[] = {"relu", "none"};
    kinfer_error err;
    kinfer_err rc = kinfer_safetensors_write(path, t, 6, keys, vals, 2, &err);
    for (int i = 0; i < 6; i++)
        free(buf[i]);
    if (rc != KINFER_OK)
        fprintf(stderr, "write %s: %s\n", path, err.msg);
    return rc == KINFER_OK ? 0 : -1;
}

#endif
