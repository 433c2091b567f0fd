/* bench_codec_decode.c — codec hot-path cost: decode+validate of a ~1 KiB
 * request (one FP32 tensor [1,256]) and encode of a small reply (output
 * [1,16] FP32), in ns per message, median of several runs. Not a test:
 * nothing is asserted; results go to docs/benchmarks/codec.md.
 *
 *   build/bench/bench_codec_decode [runs] [iterations] [--dump DIR]
 * --dump writes the benchmarked messages (request.bin, response.bin) so other
 * implementations (e.g. fastavro) can be timed on the same bytes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kinfer/kinfer_codec.h"

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void dump(const char *dir, const char *name, const uint8_t *p, size_t n) {
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n)
        fprintf(stderr, "bench_codec_decode: cannot write %s\n", path);
    if (f)
        fclose(f);
}

int main(int argc, char **argv) {
    int runs = 7;
    long iters = 200000;
    const char *dump_dir = NULL;
    int pos = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--dump") == 0 && i + 1 < argc)
            dump_dir = argv[++i];
        else if (pos++ == 0)
            runs = atoi(argv[i]);
        else
            iters = atol(argv[i]);
    }
    if (runs < 1 || runs > 100 || iters < 1) {
        fprintf(stderr, "usage: bench_codec_decode [runs 1..100] [iterations] [--dump DIR]\n");
        return 2;
    }

    kinfer_error err;
    kinfer_codec_encoder *enc, *req_enc;
    kinfer_codec_decoder *dec;
    if (kinfer_codec_encoder_new(&enc, &err) || kinfer_codec_encoder_new(&req_enc, &err) ||
        kinfer_codec_decoder_new(NULL, NULL, &dec, &err)) {
        fprintf(stderr, "bench_codec_decode: %s\n", err.msg);
        return 1;
    }

    /* The request: id, model, deadline, reply_to, one FP32 [1,256] tensor. */
    static float x[256];
    for (int i = 0; i < 256; i++)
        x[i] = (float)i / 256.0f;
    kinfer_tensor in = {.name = {"features", 8},
                        .dtype = KINFER_DTYPE_FP32,
                        .ndim = 2,
                        .shape = {1, 256},
                        .data = x,
                        .nbytes = sizeof(x)};
    kinfer_codec_request req = {.id = {"req-0000000001", 14},
                                .model = {"fraud-mlp", 9},
                                .inputs = &in,
                                .ninputs = 1,
                                .has_deadline = true,
                                .deadline_ms = 1764288000123,
                                .has_reply_to = true,
                                .reply_to = {"inference.replies", 17}};
    const uint8_t *req_msg;
    size_t req_len;
    if (kinfer_codec_request_encode(req_enc, &req, NULL, &req_msg, &req_len, &err) != KINFER_OK) {
        fprintf(stderr, "bench_codec_decode: %s\n", err.msg);
        return 1;
    }

    /* The reply: output [1,16] FP32, timing and source filled. */
    static float y[16];
    kinfer_tensor out_t = {.name = {"scores", 6},
                           .dtype = KINFER_DTYPE_FP32,
                           .ndim = 2,
                           .shape = {1, 16},
                           .data = y,
                           .nbytes = sizeof(y)};
    kinfer_codec_response resp = {
        .id = {"req-0000000001", 14},
        .model = {"fraud-mlp", 9},
        .status = 0,
        .outputs = &out_t,
        .noutputs = 1,
        .timing = {.queue_us = 812,
                   .compute_us = 95,
                   .batch_size = 64,
                   .worker = {"kinfer-0", 8},
                   .device = {"cuda:0", 6}},
        .source = {.topic = {"inference.requests", 18}, .partition = 3, .offset = 123456789}};
    kinfer_codec_frame so = {.framing = KINFER_CODEC_FRAMING_SINGLE_OBJECT};
    const uint8_t *resp_msg;
    size_t resp_len;
    if (kinfer_codec_response_encode(enc, &resp, &so, &resp_msg, &resp_len, &err) != KINFER_OK) {
        fprintf(stderr, "bench_codec_decode: %s\n", err.msg);
        return 1;
    }
    if (dump_dir) {
        dump(dump_dir, "request.bin", req_msg, req_len);
        dump(dump_dir, "response.bin", resp_msg, resp_len);
    }

    double dec_ns[100], enc_ns[100];
    volatile size_t sink = 0;
    for (int r = 0; r < runs; r++) {
        kinfer_codec_request q;
        double t0 = now_ns();
        for (long i = 0; i < iters; i++) {
            if (kinfer_codec_request_decode(dec, req_msg, req_len, &q, &err) != KINFER_OK) {
                fprintf(stderr, "bench_codec_decode: decode: %s\n", err.msg);
                return 1;
            }
            sink += q.inputs[0].nbytes;
        }
        double t1 = now_ns();
        for (long i = 0; i < iters; i++) {
            const uint8_t *m;
            size_t l;
            if (kinfer_codec_response_encode(enc, &resp, &so, &m, &l, &err) != KINFER_OK) {
                fprintf(stderr, "bench_codec_decode: encode: %s\n", err.msg);
                return 1;
            }
            sink += l;
        }
        double t2 = now_ns();
        dec_ns[r] = (t1 - t0) / (double)iters;
        enc_ns[r] = (t2 - t1) / (double)iters;
    }
    printf("codec request: %zu bytes (bare, FP32 [1,256]); reply: %zu bytes (single-object, FP32 "
           "[1,16])\n",
           req_len, resp_len);
    printf("runs=%d iterations=%ld\n", runs, iters);
    double dmed = median(dec_ns, runs), emed = median(enc_ns, runs); /* sorts: [0] = min */
    printf("decode+validate request: median %.1f ns/msg (min %.1f, max %.1f)\n", dmed, dec_ns[0],
           dec_ns[runs - 1]);
    printf("encode reply:            median %.1f ns/msg (min %.1f, max %.1f)\n", emed, enc_ns[0],
           enc_ns[runs - 1]);
    (void)sink;
    kinfer_codec_decoder_destroy(dec);
    kinfer_codec_encoder_destroy(enc);
    kinfer_codec_encoder_destroy(req_enc);
    return 0;
}
