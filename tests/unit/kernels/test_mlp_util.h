/* test_mlp_util.h — helpers for the kernels unit tests: a temp directory,
 * a deterministic RNG, writing random mlp safetensors files, and a naive
 * double-precision reference forward pass. Header-only (static) so each
 * test binary stays one .c file. Not for production code. */
#ifndef TEST_MLP_UTIL_H
#define TEST_MLP_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ops/convert.h"
#include "mlp/mlp_model.h"
#include "formats/safetensors.h"

/* Creates a fresh temp dir (under $TMPDIR or /tmp); caller frees the path. */
static inline char *tu_tempdir(void) {
    const char *base = getenv("TMPDIR");
    char tmpl[512];
    snprintf(tmpl, sizeof(tmpl), "%s/kinfer-kernels-XXXXXX", base && *base ? base : "/tmp");
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
}

static inline void tu_rmdir(char *dir) {
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    free(dir);
}

typedef struct tu_rng {
    uint64_t s;
} tu_rng;

static inline uint64_t tu_next(tu_rng *r) {
    /* splitmix64: good enough and identical everywhere */
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [-1, 1). */
static inline float tu_uniform(tu_rng *r) {
    return (float)((double)(tu_next(r) >> 11) * (1.0 / 9007199254740992.0) * 2.0 - 1.0);
}

/* A random mlp: dims[0] = in, dims[1..nlayers] = outs. Weights ~ U(-1,1) /
 * sqrt(in) so activations stay O(1) through the layers. Values are stored
 * already rounded to `dtype` (FP32/FP16/BF16) so the reference sees exactly
 * what the file holds. */
typedef struct tu_mlp {
    int nlayers;
    uint32_t dims[16];
    float *w[16]; /* [out, in] */
    float *b[16]; /* [out] */
} tu_mlp;

static inline float tu_round(float v, kinfer_dtype dtype) {
    if (dtype == KINFER_DTYPE_FP16)
        return kinfer_fp16_to_fp32(kinfer_fp32_to_fp16(v));
    if (dtype == KINFER_DTYPE_BF16)
        return kinfer_bf16_to_fp32(kinfer_fp32_to_bf16(v));
    return v;
}

static inline void tu_mlp_random(tu_mlp *m, const uint32_t *dims, int nlayers, uint64_t seed,
                                 kinfer_dtype dtype) {
    tu_rng r = {seed};
    memset(m, 0, sizeof(*m));
    m->nlayers = nlayers;
    memcpy(m->dims, dims, (size_t)(nlayers + 1) * sizeof(uint32_t));
    for (int l = 0; l < nlayers; l++) {
        uint32_t in = dims[l], out = dims[l + 1];
        float scale = 1.5f / sqrtf((float)in);
        m->w[l] = malloc((size_t)in * out * sizeof(float));
        m->b[l] = malloc((size_t)out * sizeof(float));
        for (size_t i = 0; i < (size_t)in * out; i++)
            m->w[l][i] = tu_round(tu_uniform(&r) * scale, dtype);
        for (uint32_t i = 0; i < out; i++)
            m->b[l][i] = tu_round(tu_uniform(&r) * 0.5f, dtype);
    }
}

static inline void tu_mlp_free(tu_mlp *m) {
    for (int l = 0; l < m->nlayers; l++) {
        free(m->w[l]);
        free(m->b[l]);
    }
}

/* Converts n floats to the file's dtype bytes (caller frees). */
static inline void *tu_encode(const float *v, size_t n, kinfer_dtype dtype) {
    if (dtype == KINFER_DTYPE_FP32) {
        void *p = malloc(n * 4 + 1);
        memcpy(p, v, n * 4);
        return p;
    }
    uint16_t *p = malloc(n * 2 + 1);
    for (size_t i = 0; i < n; i++)
        p[i] = dtype == KINFER_DTYPE_FP16 ? kinfer_fp32_to_fp16(v[i]) : kinfer_fp32_to_bf16(v[i]);
    return p;
}

/* Writes m to path with the given weight dtype and metadata (act/out_act may
 * be NULL: not written). Returns KINFER_OK or the writer's error. */
static inline kinfer_err tu_mlp_write(const tu_mlp *m, const char *path, kinfer_dtype dtype,
                                      const char *act, const char *out_act) {
    kinfer_st_write_tensor t[32];
    char names[32][32];
    void *bufs[32];
    int n = 0;
    for (int l = 0; l < m->nlayers; l++) {
        uint32_t in = m->dims[l], out = m->dims[l + 1];
        snprintf(names[n], sizeof(names[n]), "layers.%d.weight", l);
        bufs[n] = tu_encode(m->w[l], (size_t)in * out, dtype);
        t[n] = (kinfer_st_write_tensor){names[n], dtype, 2, {out, in}, bufs[n]};
        n++;
        snprintf(names[n], sizeof(names[n]), "layers.%d.bias", l);
        bufs[n] = tu_encode(m->b[l], out, dtype);
        t[n] = (kinfer_st_write_tensor){names[n], dtype, 1, {out}, bufs[n]};
        n++;
    }
    const char *keys[2], *vals[2];
    size_t nmeta = 0;
    if (act) {
        keys[nmeta] = "activation";
        vals[nmeta++] = act;
    }
    if (out_act) {
        keys[nmeta] = "output_activation";
        vals[nmeta++] = out_act;
    }
    kinfer_error err;
    kinfer_err rc = kinfer_safetensors_write(path, t, (size_t)n, keys, vals, nmeta, &err);
    for (int i = 0; i < n; i++)
        free(bufs[i]);
    if (rc != KINFER_OK)
        fprintf(stderr, "write %s: %s\n", path, err.msg);
    return rc;
}

static inline double tu_act(const char *act, double x) {
    if (!act || strcmp(act, "relu") == 0)
        return x > 0 ? x : 0;
    if (strcmp(act, "gelu") == 0)
        return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
    if (strcmp(act, "tanh") == 0)
        return tanh(x);
    if (strcmp(act, "sigmoid") == 0)
        return 1.0 / (1.0 + exp(-x));
    return x;
}

/* Naive reference: y [rows, out] in double, plus mag [rows, out]: for each
 * output, the sum of |terms| that formed its last pre-activation (the scale
 * a float summation error is relative to). */
static inline void tu_reference(const tu_mlp *m, const float *x, size_t rows, const char *act,
                                const char *out_act, double *y, double *mag) {
    uint32_t maxw = 0;
    for (int l = 0; l <= m->nlayers; l++)
        maxw = m->dims[l] > maxw ? m->dims[l] : maxw;
    double *a = malloc((size_t)maxw * sizeof(double));
    double *b = malloc((size_t)maxw * sizeof(double));
    double *g = malloc((size_t)maxw * sizeof(double));
    for (size_t r = 0; r < rows; r++) {
        for (uint32_t i = 0; i < m->dims[0]; i++)
            a[i] = x[r * m->dims[0] + i];
        for (int l = 0; l < m->nlayers; l++) {
            uint32_t in = m->dims[l], out = m->dims[l + 1];
            int last = l + 1 == m->nlayers;
            for (uint32_t o = 0; o < out; o++) {
                double s = m->b[l][o], sa = fabs(s);
                for (uint32_t i = 0; i < in; i++) {
                    double t = (double)m->w[l][(size_t)o * in + i] * a[i];
                    s += t;
                    sa += fabs(t);
                }
                g[o] = sa;
                if (!last)
                    b[o] = tu_act(act, s);
                else if (out_act && strcmp(out_act, "sigmoid") == 0)
                    b[o] = 1.0 / (1.0 + exp(-s));
                else
                    b[o] = s;
            }
            if (last && out_act && strcmp(out_act, "softmax") == 0) {
                double mx = b[0], sum = 0;
                for (uint32_t o = 1; o < out; o++)
                    mx = b[o] > mx ? b[o] : mx;
                for (uint32_t o = 0; o < out; o++)
                    sum += (b[o] = exp(b[o] - mx));
                for (uint32_t o = 0; o < out; o++)
                    b[o] /= sum;
            }
            memcpy(a, b, out * sizeof(double));
        }
        uint32_t outw = m->dims[m->nlayers];
        memcpy(y + r * outw, a, outw * sizeof(double));
        memcpy(mag + r * outw, g, outw * sizeof(double));
    }
    free(a);
    free(b);
    free(g);
}

/* The stated tolerance: |got - ref| <= 1e-6 + 1e-5 * max(|ref|, mag), i.e.
 * relative 1e-5 of the larger of the value and the magnitude of the terms
 * summed into it (float summation error scales with the latter), plus an
 * absolute 1e-6 floor. Returns the index of the first violation or -1. */
static inline long tu_compare(const float *got, const double *ref, const double *mag, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double scale = fabs(ref[i]) > mag[i] ? fabs(ref[i]) : mag[i];
        double tol = 1e-6 + 1e-5 * scale;
        if (!(fabs((double)got[i] - ref[i]) <= tol)) {
            fprintf(stderr, "mismatch at %zu: got %.9g want %.9g (tol %.3g)\n", i, got[i], ref[i],
                    tol);
            return (long)i;
        }
    }
    return -1;
}

#endif
