/* fuzz_codec_resolve.c — libFuzzer target for writer -> reader schema
 * resolution. Input starting with '{' or '[' is a writer schema (JSON):
 * building its resolution to InferenceRequest must fail cleanly or succeed.
 * Otherwise the first byte picks one of a few writer schemas (an older and
 * a newer client, one with promoted, reordered, enum and union changes) and
 * the rest is a body written with it: resolution and decode must end in a
 * value or an error, never read past the message or allocate beyond the
 * limits; every view of a decoded request is read.
 *
 * Build and run (clang; from the repository root):
 *   cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DKINFER_FUZZ=ON
 *   cmake --build build-fuzz -j2 --target fuzz_codec_resolve
 *   mkdir -p fuzz-out/resolve && build-fuzz/tests/fuzz/fuzz_codec_resolve -max_len=4096 \
 *       -max_total_time=300 fuzz-out/resolve tests/fuzz/corpus/fuzz_codec_resolve
 * Crashers go into tests/fuzz/corpus/fuzz_codec_resolve/ (replayed by ctest). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kinfer/kinfer_codec.h"

#define TENSOR                                                                                     \
    "{\"type\":\"array\",\"items\":{\"type\":\"record\",\"name\":\"Tensor\",\"fields\":["          \
    "{\"name\":\"strings\",\"type\":{\"type\":\"array\",\"items\":\"bytes\"},\"default\":[]},"     \
    "{\"name\":\"name\",\"type\":\"string\"},"                                                     \
    "{\"name\":\"dtype\",\"type\":{\"type\":\"enum\",\"name\":\"DType\",\"symbols\":[\"FP8\","     \
    "\"STRING\",\"FP32\",\"INT64\",\"UINT8\"]}},"                                                  \
    "{\"name\":\"shape\",\"type\":{\"type\":\"array\",\"items\":\"int\"}},"                        \
    "{\"name\":\"data\",\"type\":\"bytes\"}]}}"

static const char *const writers[] = {
    /* older: no model_version, priority, reply_to, parameters */
    "{\"type\":\"record\",\"name\":\"InferenceRequest\",\"namespace\":\"io.kinfer.v1\","
    "\"fields\":[{\"name\":\"id\",\"type\":\"string\"},{\"name\":\"model\",\"type\":\"string\"},"
    "{\"name\":\"inputs\",\"type\":" TENSOR "},"
    "{\"name\":\"deadline_ms\",\"type\":[\"null\",\"long\"]}]}",
    /* newer, reordered and promoted: id as bytes, priority as a union with
     * int, an added map of records and an added union */
    "{\"type\":\"record\",\"name\":\"InferenceRequest\",\"namespace\":\"other.ns\","
    "\"fields\":[{\"name\":\"extra\",\"type\":{\"type\":\"map\",\"values\":{\"type\":\"record\","
    "\"name\":\"E\",\"fields\":[{\"name\":\"a\",\"type\":[\"null\",\"double\",\"string\"]}]}}},"
    "{\"name\":\"inputs\",\"type\":" TENSOR "},{\"name\":\"model\",\"type\":\"bytes\"},"
    "{\"name\":\"id\",\"type\":\"bytes\"},{\"name\":\"reply_to\",\"type\":[\"string\",\"null\"]},"
    "{\"name\":\"parameters\",\"type\":{\"type\":\"map\",\"values\":\"string\"}},"
    "{\"name\":\"f\",\"type\":{\"type\":\"fixed\",\"name\":\"F\",\"size\":3}},"
    "{\"name\":\"priority\",\"type\":\"int\"}]}",
};
#define NWRITERS (sizeof writers / sizeof writers[0])

static kinfer_codec_decoder *dec;
static kinfer_codec_resolution *res[NWRITERS];

static void setup(void) {
    if (dec)
        return;
    kinfer_codec_limits lim;
    kinfer_codec_limits_default(&lim);
    lim.max_tensors = 16;
    lim.max_strings = 256;
    lim.max_message_bytes = 1 << 16;
    kinfer_error err;
    if (kinfer_codec_decoder_new(&lim, NULL, &dec, &err) != KINFER_OK)
        abort();
    for (size_t i = 0; i < NWRITERS; i++)
        if (kinfer_codec_resolution_new(writers[i],
                                        kinfer_codec_schema_json(KINFER_CODEC_SCHEMA_REQUEST),
                                        &res[i], &err) != KINFER_OK)
            abort();
}

static unsigned touch(kinfer_str s) {
    unsigned h = 0;
    for (size_t i = 0; i < s.len; i++)
        h = h * 31 + (unsigned char)s.ptr[i];
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    setup();
    kinfer_error err;
    if (size && (data[0] == '{' || data[0] == '[')) {
        char *json = malloc(size + 1);
        if (!json)
            return 0;
        memcpy(json, data, size);
        json[size] = '\0';
        kinfer_codec_resolution *r = NULL;
        if (kinfer_codec_resolution_new(json, kinfer_codec_schema_json(KINFER_CODEC_SCHEMA_REQUEST),
                                        &r, &err) == KINFER_OK)
            kinfer_codec_resolution_destroy(r);
        free(json);
        return 0;
    }
    if (size == 0)
        return 0;
    const kinfer_codec_resolution *w = res[data[0] % NWRITERS];
    uint8_t *copy = malloc(size - 1 ? size - 1 : 1); /* exact size: ASan sees overreads */
    if (!copy)
        return 0;
    memcpy(copy, data + 1, size - 1);
    kinfer_codec_request req;
    volatile unsigned h = 0;
    if (kinfer_codec_request_decode_as(dec, copy, size - 1, w, &req, &err) == KINFER_OK) {
        h += touch(req.id) + touch(req.model) + touch(req.reply_to);
        for (size_t i = 0; i < req.ninputs; i++) {
            h += touch(req.inputs[i].name);
            for (size_t k = 0; req.inputs[i].strings && k < req.inputs[i].nstrings; k++)
                h += touch(req.inputs[i].strings[k]);
            if (req.inputs[i].nbytes)
                h += touch((kinfer_str){(const char *)req.inputs[i].data, req.inputs[i].nbytes});
        }
        for (size_t i = 0; i < req.nparams; i++)
            h += touch(req.params[i].key) + touch(req.params[i].value);
    }
    free(kinfer_codec_decoder_take_body(dec));
    free(copy);
    (void)h;
    return 0;
}
