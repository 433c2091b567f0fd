/* bench_kernels_bert.c — throughput and latency of kind `bert` on the CPU
 * through the public model/replica seam, for bench/st_bench.py (which
 * compares it with sentence-transformers on the same texts in the same run).
 *
 *   bench_kernels_bert MODEL_DIR TEXTS.jsonl [--batch B] [--seconds S] [--threads T]
 *                      [--precision fp32|bf16|int8]
 *
 * TEXTS.jsonl: one {"text": ...} per line. Runs batches of B texts (one
 * request of B texts per batch, cycling through the file) for about S
 * seconds after one warm-up batch, then prints one JSON line: sentences/s,
 * batch latency p50/p99 (ms), process CPU time per batch (median), mean
 * tokens per text, the precision asked for and the one the CPU runs, and
 * which kernels ran (OpenBLAS's core, oneDNN's ISA). Not a test. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_bert_common.h"
#include "kinfer/kinfer_device.h"
#include "kinfer/kinfer_model.h"
#include "ops/dense_cpu.h"

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL_DIR TEXTS.jsonl [--batch B] [--seconds S] [--threads T]\n",
                argv[0]);
        return 2;
    }
    int batch = 32, threads = 0;
    double seconds = 5.0;
    const char *precision = "fp32";
    for (int i = 3; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--batch") == 0)
            batch = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--seconds") == 0)
            seconds = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--threads") == 0)
            threads = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--precision") == 0)
            precision = argv[i + 1];
    }
    kinfer_dtype want, runs;
    if (!kinfer_precision_parse(precision, &want)) {
        fprintf(stderr, "--precision: fp32, bf16 or int8\n");
        return 2;
    }
    runs = kinfer_dense_resolve(want, NULL, 0);
    if (batch < 1 || batch > 4096) {
        fprintf(stderr, "--batch must be 1..4096\n");
        return 2;
    }
    kinfer_model_options o = {.name = "bench",
                              .kind = "bert",
                              .path = argv[1],
                              .precision = precision,
                              .cpu_threads = threads};
    /* Latency includes the request check (tokenizing) as a worker pays it. */
    bench_bert_result res;
    if (bench_bert_measure(argv[2], &o, "cpu", batch, 1, seconds, 1 << 16, &res) != 0)
        return 1;
    printf("{\"impl\": \"kinfer\", \"batch\": %d, \"threads\": %d, \"batches\": %zu, "
           "\"sentences_per_s\": %.1f, \"p50_ms\": %.2f, \"p99_ms\": %.2f, "
           "\"cpu_p50_ms\": %.2f, \"padded_tokens_per_text\": %.1f, \"precision\": \"%s\", "
           "\"precision_run\": \"%s\", \"openblas_core\": \"%s\", \"dense_isa\": \"%s\"}\n",
           batch, threads, res.batches, res.sentences_per_s, res.p50_ms, res.p99_ms, res.cpu_p50_ms,
           res.padded_tokens_per_text, precision, kinfer_dtype_name(runs), kinfer_cpu_blas_core(),
           kinfer_dense_isa());
    return 0;
}
