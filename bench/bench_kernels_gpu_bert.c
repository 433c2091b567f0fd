/* bench_kernels_gpu_bert.c — throughput and latency of kind `bert` on a
 * device (cuda:N, or cpu for comparison) through the public model/replica
 * seam, for bench/st_gpu_bench.py, which runs it beside sentence-transformers
 * FP16 on the same GPU with the same texts and joins the numbers.
 *
 *   bench_kernels_gpu_bert MODEL_DIR TEXTS.jsonl [--device cuda:0]
 *       [--precision fp32|fp16|bf16] [--batch B] [--seconds S]
 *
 * TEXTS.jsonl: one {"text": ...} per line. Runs batches of B texts (one
 * request of B texts, cycling through the file) for about S seconds after
 * two warm-up batches, timed host to host as a worker pays it: request
 * check (tokenizing), packing, H2D, the forward, D2H and the wait. Prints
 * one JSON line: sentences/s, batch latency p50/p99 (ms), padded tokens per
 * text. Without the device: a SKIPPED line and exit 0. Not a test. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_bert_common.h"
#include "kinfer/kinfer_device.h"
#include "kinfer/kinfer_model.h"

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr,
                "usage: %s MODEL_DIR TEXTS.jsonl [--device cuda:0] [--precision fp32|fp16|bf16] "
                "[--batch B] [--seconds S]\n",
                argv[0]);
        return 2;
    }
    const char *device = "cuda:0", *precision = "fp32";
    int batch = 32;
    double seconds = 3.0;
    for (int i = 3; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--batch") == 0)
            batch = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--seconds") == 0)
            seconds = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--device") == 0)
            device = argv[i + 1];
        else if (strcmp(argv[i], "--precision") == 0)
            precision = argv[i + 1];
        else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (batch < 1 || batch > 4096 || !(seconds > 0)) {
        fprintf(stderr, "--batch must be 1..4096 and --seconds > 0\n");
        return 2;
    }
    kinfer_device dev;
    kinfer_error err;
    if (kinfer_device_parse(device, &dev, &err) != KINFER_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 2;
    }
    if (dev.type == KINFER_DEVICE_CUDA && kinfer_cuda_device_count() <= dev.index) {
        printf("*** bench_kernels_gpu_bert: SKIPPED: no CUDA device %s (%d visible%s) ***\n",
               device, kinfer_cuda_device_count(),
               kinfer_cuda_built() ? "" : "; this build has no CUDA backend");
        return 0;
    }
    kinfer_model_options o = {
        .name = "bench", .kind = "bert", .path = argv[1], .precision = precision};
    /* two warm-up batches: first-use costs (cuBLAS kernels, caches) */
    bench_bert_result res;
    if (bench_bert_measure(argv[2], &o, device, batch, 2, seconds, 1 << 18, &res) != 0)
        return 1;
    printf("{\"impl\": \"kinfer\", \"device\": \"%s\", \"precision\": \"%s\", \"batch\": %d, "
           "\"batches\": %zu, \"sentences_per_s\": %.1f, \"p50_ms\": %.3f, \"p99_ms\": %.3f, "
           "\"padded_tokens_per_text\": %.1f}\n",
           device, precision, batch, res.batches, res.sentences_per_s, res.p50_ms, res.p99_ms,
           res.padded_tokens_per_text);
    return 0;
}
