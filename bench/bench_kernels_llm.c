/* bench_kernels_llm.c — CPU decode and prefill throughput of kind llm
 * through the public seam (kinfer_replica_step), for docs/BENCHMARKS.md and
 * the comparison with llama.cpp (bench/llamacpp_bench.py, same GGUF, same
 * threads). Not a test.
 *
 *   bench_kernels_llm MODEL [--threads T] [--prompt P] [--decode N] [--seqs S]...
 *
 * For each --seqs value (default 1 and 8): S sequences each prefilled with
 * a P-token prompt (one step per sequence; timed as prompt tokens/s), then
 * N decode steps that feed one token to every sequence (greedy), timed as
 * generated tokens/s over all sequences and per-step latency. Prints one
 * JSON line per S. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kinfer/kinfer_model.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int32_t argmax(const float *x, uint32_t n) {
    uint32_t b = 0;
    for (uint32_t i = 1; i < n; i++)
        if (x[i] > x[b])
            b = i;
    return (int32_t)b;
}

static int run(kinfer_model *model, const kinfer_gen_info *info, int threads, uint32_t prompt,
               uint32_t decode, uint32_t seqs) {
    kinfer_error err;
    uint32_t T = info->kv_block_tokens, per_seq = (prompt + decode + T - 1) / T;
    uint32_t max_rows = prompt > seqs ? prompt : seqs;
    kinfer_replica *r;
    if (kinfer_replica_new(model, "cpu", max_rows, &r, &err) != KINFER_OK ||
        kinfer_replica_kv_alloc(r, per_seq * seqs, &err) != KINFER_OK) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    uint32_t V = info->vocab_size;
    int32_t *toks = malloc(sizeof(int32_t) * seqs * (prompt + decode));
    uint32_t *blocks = malloc(sizeof(uint32_t) * seqs * per_seq);
    float *logits = malloc(sizeof(float) * seqs * V);
    kinfer_step_seq *ss = malloc(sizeof(*ss) * seqs);
    /* A deterministic "prompt": ids spread over the ordinary vocabulary. */
    for (uint32_t s = 0; s < seqs; s++) {
        for (uint32_t i = 0; i < prompt; i++)
            toks[s * (prompt + decode) + i] = (int32_t)(100 + (i * 7919 + s * 104729) % (V - 200));
        for (uint32_t b = 0; b < per_seq; b++)
            blocks[s * per_seq + b] = s * per_seq + b;
    }
    double t0 = now_s();
    for (uint32_t s = 0; s < seqs; s++) {
        kinfer_step_seq q = {toks + s * (prompt + decode), prompt,  0,
                             blocks + s * per_seq,         per_seq, logits + (size_t)s * V};
        if (kinfer_replica_step(r, &q, 1, &err) != KINFER_OK) {
            fprintf(stderr, "bench prefill: %s\n", err.msg);
            return 1;
        }
    }
    double t1 = now_s();
    double worst = 0;
    for (uint32_t i = 0; i < decode; i++) {
        for (uint32_t s = 0; s < seqs; s++) {
            int32_t *seq = toks + s * (prompt + decode);
            seq[prompt + i] = argmax(logits + (size_t)s * V, V);
            ss[s] = (kinfer_step_seq){seq + prompt + i,     1,       prompt + i,
                                      blocks + s * per_seq, per_seq, logits + (size_t)s * V};
        }
        double a = now_s();
        if (kinfer_replica_step(r, ss, seqs, &err) != KINFER_OK) {
            fprintf(stderr, "bench decode: %s\n", err.msg);
            return 1;
        }
        double dt = now_s() - a;
        worst = dt > worst ? dt : worst;
    }
    double t2 = now_s();
    printf("{\"impl\": \"kinfer\", \"model\": \"%s\", \"threads\": %d, \"seqs\": %u, "
           "\"prompt_tokens\": %u, \"decode_steps\": %u, \"prompt_tokens_per_s\": %.1f, "
           "\"decode_tokens_per_s\": %.1f, \"step_ms_mean\": %.2f, \"step_ms_max\": %.2f}\n",
           kinfer_model_describe(model), threads, seqs, prompt, decode,
           (double)prompt * seqs / (t1 - t0), (double)decode * seqs / (t2 - t1),
           (t2 - t1) * 1e3 / decode, worst * 1e3);
    fflush(stdout);
    free(toks);
    free(blocks);
    free(logits);
    free(ss);
    kinfer_replica_destroy(r);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL [--threads T] [--prompt P] [--decode N] [--seqs S]...\n",
                argv[0]);
        return 2;
    }
    int threads = 2;
    uint32_t prompt = 64, decode = 128, seqs[16], nseqs = 0;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--threads") == 0)
            threads = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--prompt") == 0)
            prompt = (uint32_t)atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--decode") == 0)
            decode = (uint32_t)atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--seqs") == 0 && nseqs < 16)
            seqs[nseqs++] = (uint32_t)atoi(argv[i + 1]);
    }
    if (nseqs == 0) {
        seqs[nseqs++] = 1;
        seqs[nseqs++] = 8;
    }
    if (prompt == 0 || decode == 0) {
        fprintf(stderr, "--prompt and --decode must be at least 1\n");
        return 2;
    }
    kinfer_model_options o = {
        .name = "bench", .kind = "llm", .path = argv[1], .cpu_threads = threads};
    kinfer_model *model;
    kinfer_error err;
    if (kinfer_model_load(&o, &model, &err) != KINFER_OK) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    kinfer_gen_info info;
    kinfer_model_gen_info(model, &info);
    int rc = 0;
    for (uint32_t k = 0; k < nseqs && rc == 0; k++)
        rc = run(model, &info, threads, prompt, decode, seqs[k]);
    kinfer_model_destroy(model);
    return rc;
}
