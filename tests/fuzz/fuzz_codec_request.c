/* fuzz_codec_request.c — libFuzzer target for the codec's decoders and
 * framing: any bytes go to the request and the response decoder; whatever
 * decodes is re-encoded with the same framing and must decode to the same
 * values (and re-encode to the same bytes). Not a benchmark.
 *
 * Build and run (clang; from the repository root):
 *   cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DKINFER_FUZZ=ON
 *   cmake --build build-fuzz -j2 --target fuzz_codec_request
 *   mkdir -p fuzz-out/codec && build-fuzz/tests/fuzz/fuzz_codec_request -max_len=4096 \
 *       -max_total_time=300 fuzz-out/codec tests/fuzz/corpus/fuzz_codec_request
 * Crashers go into tests/fuzz/corpus/fuzz_codec_request/ (replayed by ctest). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kinfer/kinfer_codec.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

static kinfer_codec_decoder *dec, *dec2;
static kinfer_codec_encoder *enc, *enc2;

static void setup(void) {
    if (dec)
        return;
    kinfer_codec_limits lim;
    kinfer_codec_limits_default(&lim);
    lim.max_tensors = 16;
    lim.max_strings = 256;
    kinfer_error err;
    if (kinfer_codec_decoder_new(&lim, NULL, &dec, &err) != KINFER_OK ||
        kinfer_codec_decoder_new(&lim, NULL, &dec2, &err) != KINFER_OK ||
        kinfer_codec_encoder_new(&enc, &err) != KINFER_OK ||
        kinfer_codec_encoder_new(&enc2, &err) != KINFER_OK)
        abort();
}

static bool str_same(kinfer_str a, kinfer_str b) {
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/* Reads every byte a view covers, so ASan sees any view past the message. */
static unsigned touch(kinfer_str s) {
    unsigned h = 0;
    for (size_t i = 0; i < s.len; i++)
        h = h * 31 + (unsigned char)s.ptr[i];
    return h;
}

static void tensors_same(const kinfer_tensor *a, const kinfer_tensor *b, size_t n) {
    for (size_t i = 0; i < n; i++) {
        CHECK(str_same(a[i].name, b[i].name));
        CHECK(a[i].dtype == b[i].dtype && a[i].ndim == b[i].ndim);
        CHECK(memcmp(a[i].shape, b[i].shape, sizeof(int64_t) * (size_t)a[i].ndim) == 0);
        CHECK(a[i].nbytes == b[i].nbytes);
        CHECK(a[i].nbytes == 0 || memcmp(a[i].data, b[i].data, a[i].nbytes) == 0);
        CHECK(a[i].nstrings == b[i].nstrings);
        for (size_t k = 0; k < a[i].nstrings; k++)
            CHECK(str_same(a[i].strings[k], b[i].strings[k]));
    }
}

static void request_roundtrip(const kinfer_codec_request *q) {
    const uint8_t *m1, *m2;
    size_t l1, l2;
    kinfer_error err;
    CHECK(kinfer_codec_request_encode(enc, q, &q->frame, &m1, &l1, &err) == KINFER_OK);
    kinfer_codec_request r;
    CHECK(kinfer_codec_request_decode(dec2, m1, l1, &r, &err) == KINFER_OK);
    CHECK(r.frame.framing == q->frame.framing && r.frame.schema_id == q->frame.schema_id);
    CHECK(str_same(r.id, q->id) && str_same(r.model, q->model));
    CHECK(r.has_model_version == q->has_model_version &&
          str_same(r.model_version, q->model_version));
    CHECK(r.has_deadline == q->has_deadline &&
          (!r.has_deadline || r.deadline_ms == q->deadline_ms));
    CHECK(r.priority == q->priority);
    CHECK(r.has_reply_to == q->has_reply_to && str_same(r.reply_to, q->reply_to));
    CHECK(r.ninputs == q->ninputs && r.nparams == q->nparams);
    tensors_same(r.inputs, q->inputs, r.ninputs);
    for (size_t i = 0; i < r.nparams; i++)
        CHECK(str_same(r.params[i].key, q->params[i].key) &&
              str_same(r.params[i].value, q->params[i].value));
    /* our encoding is canonical: encoding the decoded copy gives the same bytes */
    CHECK(kinfer_codec_request_encode(enc2, &r, &r.frame, &m2, &l2, &err) == KINFER_OK);
    CHECK(l1 == l2 && memcmp(m1, m2, l1) == 0);
}

static void response_roundtrip(const kinfer_codec_response *p) {
    const uint8_t *m1;
    size_t l1;
    kinfer_error err;
    kinfer_err rc = kinfer_codec_response_encode(enc, p, &p->frame, &m1, &l1, &err);
    /* a bare reply with an empty id is refused by design (0x00 = Confluent) */
    if (p->id.len == 0 && p->frame.framing == KINFER_CODEC_FRAMING_BARE) {
        CHECK(rc == KINFER_ERR_INVALID_ARG);
        return;
    }
    CHECK(rc == KINFER_OK);
    kinfer_codec_response r;
    CHECK(kinfer_codec_response_decode(dec2, m1, l1, &r, &err) == KINFER_OK);
    CHECK(str_same(r.id, p->id) && str_same(r.model, p->model) && r.status == p->status);
    CHECK(r.has_error == p->has_error && str_same(r.error, p->error));
    CHECK(r.timing.queue_us == p->timing.queue_us && r.timing.compute_us == p->timing.compute_us);
    CHECK(r.timing.batch_size == p->timing.batch_size);
    CHECK(str_same(r.timing.worker, p->timing.worker) &&
          str_same(r.timing.device, p->timing.device));
    CHECK(str_same(r.source.topic, p->source.topic) && r.source.offset == p->source.offset &&
          r.source.partition == p->source.partition);
    CHECK(r.noutputs == p->noutputs);
    tensors_same(r.outputs, p->outputs, r.noutputs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    setup();
    volatile unsigned sink = 0;
    kinfer_error err;
    kinfer_codec_request q;
    kinfer_err rc = kinfer_codec_request_decode(dec, data, size, &q, &err);
    CHECK(rc == KINFER_OK || err.msg[0] != '\0');
    if (rc == KINFER_OK) {
        request_roundtrip(&q);
    } else if (rc == KINFER_ERR_INVALID_REQUEST || rc == KINFER_ERR_TOO_LARGE) {
        /* the fields promised for an error reply must be valid views */
        sink += touch(q.id) + touch(q.model) + touch(q.reply_to) + touch(q.model_version);
        for (size_t i = 0; i < q.ninputs; i++)
            for (size_t k = 0; k < q.inputs[i].nstrings; k++)
                sink += touch(q.inputs[i].strings[k]);
    }
    kinfer_codec_response p;
    if (kinfer_codec_response_decode(dec, data, size, &p, &err) == KINFER_OK)
        response_roundtrip(&p);
    (void)sink;
    return 0;
}
