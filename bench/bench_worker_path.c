/* bench_worker_path.c — CPU cost of the worker's own per-request work,
 * without Kafka I/O and without the model: what kinfer adds on top of
 * librdkafka and the engine for one 1 KiB request. Per iteration:
 *   track the offset; decode + validate the request (zero copy); find the
 *   reply address (header lookup, pattern expansion); copy the decoder's
 *   arrays into the in-flight record; build and encode the reply (a
 *   [1, 256] FP32 output); build the reply headers; mark the offset done
 *   (under the partition lock) and free the record.
 * The pieces it leaves out are measured elsewhere: librdkafka's consume and
 * produce by bench_worker_rawpipe (pipeline_bench.sh), the engine by
 * bench_scheduler_*, the codec alone by bench_codec_*.
 *
 *   bench_worker_path [ITERATIONS]      (default 500000; median of 5 runs) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kinfer/kinfer_clock.h"
#include "kinfer/kinfer_codec.h"
#include "worker_offsets.h"
#include "kinfer/kinfer_route.h"

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    long iters = argc > 1 ? atol(argv[1]) : 500000;
    kinfer_error err;
    float in[256], out[256];
    for (int i = 0; i < 256; i++)
        in[i] = out[i] = (float)i * 0.01f;
    kinfer_tensor t = {.name = {"input", 5},
                       .dtype = KINFER_DTYPE_FP32,
                       .ndim = 2,
                       .shape = {1, 256},
                       .data = in,
                       .nbytes = sizeof in};
    kinfer_codec_request req = {
        .id = {"bench-request-000001", 20}, .model = {"identity", 8}, .inputs = &t, .ninputs = 1};
    kinfer_codec_encoder *enc, *renc;
    kinfer_codec_decoder *dec;
    if (kinfer_codec_encoder_new(&enc, &err) || kinfer_codec_encoder_new(&renc, &err) ||
        kinfer_codec_decoder_new(NULL, NULL, &dec, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    const uint8_t *wire;
    size_t wire_len;
    kinfer_codec_frame bare = {0};
    if (kinfer_codec_request_encode(enc, &req, &bare, &wire, &wire_len, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    uint8_t *msgbuf = malloc(wire_len);
    memcpy(msgbuf, wire, wire_len);
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(4);
    rd_kafka_header_add(hdrs, "traceparent", -1, "00-0af7651916cd43dd8448eb211c80319c-01", -1);
    rd_kafka_header_add(hdrs, "content-type", -1, "avro", -1);
    const char *copy[] = {"traceparent", "correlation-id"};
    kinfer_worker_parts *parts;
    kinfer_worker_parts_new(&parts, &err);

    double runs[5];
    int64_t offset = 0;
    for (int r = 0; r < 5; r++) {
        int64_t t0 = kinfer_mono_us();
        for (long i = 0; i < iters; i++) {
            kinfer_worker_part *part = kinfer_worker_parts_get(parts, "requests", (int32_t)(i % 3));
            kinfer_worker_offset_ref ref;
            kinfer_worker_part_track(part, offset++, &ref, &err);
            kinfer_codec_request got;
            if (kinfer_codec_request_decode(dec, msgbuf, wire_len, &got, &err)) {
                fprintf(stderr, "%s\n", err.msg);
                return 1;
            }
            char reply_topic[KINFER_WORKER_TOPIC_MAX + 1];
            kinfer_str field = {NULL, 0};
            kinfer_worker_reply_topic(field, kinfer_worker_header_last(hdrs, KINFER_HDR_REPLY_TO),
                                      "requests", "{topic}.replies", reply_topic,
                                      sizeof reply_topic, &err);
            /* The in-flight record: one block with copies of the arrays. */
            kinfer_tensor *rec = malloc(sizeof(kinfer_tensor) * got.ninputs + 256);
            memcpy(rec, got.inputs, sizeof(kinfer_tensor) * got.ninputs);
            kinfer_tensor o = {.name = {"output", 6},
                               .dtype = KINFER_DTYPE_FP32,
                               .ndim = 2,
                               .shape = {1, 256},
                               .data = out,
                               .nbytes = sizeof out};
            kinfer_codec_response resp = {.id = got.id,
                                          .model = got.model,
                                          .outputs = &o,
                                          .noutputs = 1,
                                          .timing = {10, 20, 1, {"w", 1}, {"cpu", 3}},
                                          .source = {{"requests", 8}, 0, offset}};
            const uint8_t *rbuf;
            size_t rlen;
            if (kinfer_codec_response_encode(renc, &resp, &bare, &rbuf, &rlen, &err)) {
                fprintf(stderr, "%s\n", err.msg);
                return 1;
            }
            rd_kafka_headers_t *rh;
            kinfer_worker_reply_headers(hdrs, copy, 2, got.id, &rh, &err);
            rd_kafka_headers_destroy(rh);
            kinfer_worker_offset_done(&ref);
            free(rec);
        }
        runs[r] = (double)(kinfer_mono_us() - t0) * 1000.0 / (double)iters;
    }
    qsort(runs, 5, sizeof runs[0], cmp_d);
    printf("{\"request_bytes\":%zu,\"iterations\":%ld,\"ns_per_request_median\":%.0f,"
           "\"min\":%.0f,\"max\":%.0f}\n",
           wire_len, iters, runs[2], runs[0], runs[4]);
    rd_kafka_headers_destroy(hdrs);
    kinfer_worker_parts_destroy(parts);
    kinfer_codec_encoder_destroy(enc);
    kinfer_codec_encoder_destroy(renc);
    kinfer_codec_decoder_destroy(dec);
    free(msgbuf);
    return 0;
}
