/* bench_kernels_llm_decode.c — kind llm on real weights through the public
 * seam (kinfer_model.h): S sequences each prefill a P-token prompt (one
 * step for all), then decode N tokens greedily, all sequences in every
 * step, as the engine's continuous batching does. Prints prefill tokens/s
 * and decode tokens/s (aggregate over the sequences), median and best of
 * the steps. The device is cpu or cuda:N. Not a test; no sampling, no
 * engine: the replica's step alone.
 *
 *   bench_kernels_llm_decode GGUF [--device cpu] [--threads 2]
 *       [--seqs 1,8,32] [--prompt 64] [--tokens 64] [--precision fp32] [--cpu-time]
 * KINFER_QMM_ACT=q8|f32 picks the CPU matmul's activation mode. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kinfer/kinfer_clock.h"
#include "kinfer/kinfer_model.h"

#define MAXS 8

/* --cpu-time (cpu device, one thread): this thread's CPU time, so a machine
 * shared with other work measures what the step costs. */
static int g_cpu_time;
static int64_t now_us(void) {
    if (!g_cpu_time)
        return kinfer_mono_us();
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static size_t argmax(const float *x, size_t n) {
    size_t b = 0;
    for (size_t i = 1; i < n; i++)
        if (x[i] > x[b])
            b = i;
    return b;
}

static void die(const char *what, const kinfer_error *err) {
    fprintf(stderr, "%s: %s\n", what, err->msg);
    exit(1);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr,
                "usage: %s GGUF [--device cpu] [--threads 2] [--seqs 1,8,32] [--prompt 64] "
                "[--tokens 64] [--precision fp32]\n",
                argv[0]);
        return 2;
    }
    const char *path = argv[1], *device = "cpu", *precision = "fp32";
    int threads = 2, prompt = 64, tokens = 64;
    uint32_t seqs[MAXS] = {1, 8, 32};
    int nseqs = 3;
    for (int i = 2; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
        if (!strcmp(a, "--cpu-time")) {
            g_cpu_time = 1;
            i--;
        } else if (!strcmp(a, "--device"))
            device = v;
        else if (!strcmp(a, "--threads"))
            threads = atoi(v);
        else if (!strcmp(a, "--prompt"))
            prompt = atoi(v);
        else if (!strcmp(a, "--tokens"))
            tokens = atoi(v);
        else if (!strcmp(a, "--precision"))
            precision = v;
        else if (!strcmp(a, "--seqs")) {
            nseqs = 0;
            for (const char *p = v; *p && nseqs < MAXS;) {
                seqs[nseqs++] = (uint32_t)strtoul(p, (char **)&p, 10);
                if (*p == ',')
                    p++;
            }
        } else {
            fprintf(stderr, "unknown option %s\n", a);
            return 2;
        }
    }
    if (g_cpu_time && (threads != 1 || strcmp(device, "cpu") != 0)) {
        fprintf(stderr, "--cpu-time measures one thread: --device cpu --threads 1\n");
        return 2;
    }
    if (threads < 1 || prompt < 1 || tokens < 1 || nseqs < 1) {
        fprintf(stderr, "--threads, --prompt, --tokens and --seqs must be >= 1\n");
        return 2;
    }
    uint32_t max_s = 0;
    for (int i = 0; i < nseqs; i++) {
        if (seqs[i] < 1 || seqs[i] > 256) {
            fprintf(stderr, "--seqs: 1..256 each\n");
            return 2;
        }
        max_s = seqs[i] > max_s ? seqs[i] : max_s;
    }
    kinfer_model_options o = {.name = "bench",
                              .kind = "llm",
                              .path = path,
                              .precision = precision,
                              .cpu_threads = threads,
                              .context_length = (uint32_t)(prompt + tokens + 16)};
    kinfer_model *m = NULL;
    kinfer_error err;
    if (kinfer_model_load(&o, &m, &err) != KINFER_OK)
        die("load", &err);
    kinfer_gen_info info;
    if (!kinfer_model_gen_info(m, &info)) {
        fprintf(stderr, "%s is not a generative model\n", path);
        return 1;
    }
    const uint32_t T = info.kv_block_tokens;
    const uint32_t per_seq = (uint32_t)((prompt + tokens + T - 1) / T);
    const uint32_t max_rows = max_s * (uint32_t)prompt;
    kinfer_replica *r = NULL;
    if (kinfer_replica_new(m, device, max_rows, &r, &err) != KINFER_OK ||
        kinfer_replica_kv_alloc(r, per_seq * max_s, &err) != KINFER_OK)
        die(device, &err);
    printf("llm decode: %s on %s, %d threads, precision %s, prompt %d, %d tokens, act %s, %s\n",
           kinfer_model_describe(m), device, threads, precision, prompt, tokens,
           getenv("KINFER_QMM_ACT") ? getenv("KINFER_QMM_ACT") : "(replica default)",
           g_cpu_time ? "thread CPU time" : "wall clock");
    const size_t vocab = info.vocab_size;
    int32_t *ids = malloc((size_t)prompt * sizeof(int32_t));
    for (int i = 0; i < prompt; i++)
        ids[i] = (int32_t)(100 + (i * 7919) % 20000); /* plain tokens, no control ids */
    uint32_t *blocks = malloc((size_t)per_seq * max_s * sizeof(uint32_t));
    for (uint32_t b = 0; b < per_seq * max_s; b++)
        blocks[b] = b;
    float *logits = malloc(max_s * vocab * sizeof(float));
    kinfer_step_seq *st = malloc(max_s * sizeof(*st));
    int32_t *next = malloc(max_s * sizeof(int32_t));
    int64_t *t = malloc((size_t)tokens * sizeof(int64_t));
    for (int si = 0; si < nseqs; si++) {
        uint32_t S = seqs[si];
        for (int warm = 0; warm < 2; warm++) { /* a warm-up round, then the measured one */
            for (uint32_t s = 0; s < S; s++)
                st[s] = (kinfer_step_seq){ids,     (uint32_t)prompt,  0, blocks + s * per_seq,
                                          per_seq, logits + s * vocab};
            int64_t t0 = now_us();
            if (kinfer_replica_step(r, st, S, &err) != KINFER_OK)
                die("prefill", &err);
            int64_t prefill_us = now_us() - t0;
            for (int k = 0; k < tokens; k++) {
                for (uint32_t s = 0; s < S; s++) {
                    next[s] = (int32_t)argmax(logits + s * vocab, vocab);
                    st[s] = (kinfer_step_seq){
                        &next[s],          1, (uint32_t)(prompt + k), blocks + s * per_seq, per_seq,
                        logits + s * vocab};
                }
                int64_t a = now_us();
                if (kinfer_replica_step(r, st, S, &err) != KINFER_OK)
                    die("decode", &err);
                t[k] = now_us() - a;
            }
            if (!warm)
                continue;
            int64_t total = 0;
            for (int k = 0; k < tokens; k++)
                total += t[k];
            qsort(t, (size_t)tokens, sizeof(t[0]), cmp_i64);
            double mean = (double)total / tokens, med = (double)t[tokens / 2], best = (double)t[0];
            printf("seqs %3u  prefill %5d tok %8.1f ms %8.1f tok/s | decode step mean %7.2f ms "
                   "median %7.2f best %7.2f -> %8.1f tok/s (median %.1f, best %.1f)\n",
                   S, prompt * (int)S, prefill_us / 1e3, prompt * (double)S / (prefill_us * 1e-6),
                   mean / 1e3, med / 1e3, best / 1e3, S / (mean * 1e-6), S / (med * 1e-6),
                   S / (best * 1e-6));
            printf("RESULT op=llm_decode device=%s threads=%d seqs=%u prompt=%d prefill_tok_s=%.1f "
                   "decode_tok_s=%.1f decode_tok_s_median=%.1f decode_tok_s_best=%.1f\n",
                   device, threads, S, prompt, prompt * (double)S / (prefill_us * 1e-6),
                   S / (mean * 1e-6), S / (med * 1e-6), S / (best * 1e-6));
        }
    }
    free(ids);
    free(blocks);
    free(logits);
    free(st);
    free(next);
    free(t);
    kinfer_replica_destroy(r);
    kinfer_model_destroy(m);
    return 0;
}
