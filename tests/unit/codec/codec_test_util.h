/* codec_test_util.h — helpers shared by the codec unit tests: a byte builder
 * for hand-made (often broken) Avro, a valid sample request, and an error
 * assertion that checks code AND message text. Test code only. */
#ifndef KINFER_CODEC_TEST_UTIL_H
#define KINFER_CODEC_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kinfer/kinfer_codec.h"

/* ---- byte builder --------------------------------------------------------- */

typedef struct tb {
    uint8_t b[4096];
    size_t n;
} tb;

static inline void tb_raw(tb *t, const void *p, size_t n) {
    assert_true(t->n + n <= sizeof(t->b));
    memcpy(t->b + t->n, p, n);
    t->n += n;
}

static inline void tb_byte(tb *t, uint8_t v) {
    tb_raw(t, &v, 1);
}

static inline void tb_long(tb *t, int64_t v) {
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    while (z >= 0x80) {
        tb_byte(t, (uint8_t)(z | 0x80));
        z >>= 7;
    }
    tb_byte(t, (uint8_t)z);
}

static inline void tb_str(tb *t, const char *s) {
    tb_long(t, (int64_t)strlen(s));
    tb_raw(t, s, strlen(s));
}

/* Request fields after inputs, all defaults: deadline null, priority 0,
 * reply_to null, parameters {} (v1 ends here), then prompt null, messages [],
 * prompt_token_ids [], generation null. */
static inline void tb_request_tail(tb *t) {
    for (int i = 0; i < 8; i++)
        tb_long(t, 0);
}

/* Request head: id, model, model_version null. */
static inline void tb_request_head(tb *t, const char *id) {
    tb_str(t, id);
    tb_str(t, "m");
    tb_long(t, 0);
}

/* ---- assertions ----------------------------------------------------------- */

#define expect_error(rc, err, want_code, want_substr)                                              \
    do {                                                                                           \
        kinfer_err rc_ = (rc);                                                                     \
        if (rc_ != (want_code) || strstr((err)->msg, (want_substr)) == NULL)                       \
            fail_msg("got %s \"%s\", want %s containing \"%s\"", kinfer_err2name(rc_), (err)->msg, \
                     kinfer_err2name(want_code), (want_substr));                                   \
    } while (0)

static inline bool str_eq(kinfer_str s, const char *z) {
    return s.len == strlen(z) && (s.len == 0 || memcmp(s.ptr, z, s.len) == 0);
}

/* ---- a valid sample request ----------------------------------------------- */

typedef struct sample {
    float x[256];
    kinfer_str words[3];
    kinfer_tensor inputs[3];
    kinfer_param params[2];
    kinfer_codec_request req;
} sample;

/* inputs: x FP32 [1,256], w STRING [3], e INT64 [0]; two parameters. */
static inline void sample_init(sample *s) {
    memset(s, 0, sizeof(*s));
    for (int i = 0; i < 256; i++)
        s->x[i] = (float)i * 0.5f - 3.0f;
    s->words[0] = (kinfer_str){"alpha", 5};
    s->words[1] = (kinfer_str){"", 0};
    s->words[2] = (kinfer_str){"\xc3\xa9t\xc3\xa9", 5};
    s->inputs[0] = (kinfer_tensor){.name = {"x", 1},
                                   .dtype = KINFER_DTYPE_FP32,
                                   .ndim = 2,
                                   .shape = {1, 256},
                                   .data = s->x,
                                   .nbytes = sizeof(s->x)};
    s->inputs[1] = (kinfer_tensor){.name = {"w", 1},
                                   .dtype = KINFER_DTYPE_STRING,
                                   .ndim = 1,
                                   .shape = {3},
                                   .strings = s->words,
                                   .nstrings = 3};
    s->inputs[2] =
        (kinfer_tensor){.name = {"e", 1}, .dtype = KINFER_DTYPE_INT64, .ndim = 1, .shape = {0}};
    s->params[0] = (kinfer_param){{"normalize", 9}, {"true", 4}};
    s->params[1] = (kinfer_param){{"k", 1}, {"", 0}};
    s->req = (kinfer_codec_request){.id = {"req-1", 5},
                                    .model = {"fraud", 5},
                                    .has_model_version = true,
                                    .model_version = {"3", 1},
                                    .inputs = s->inputs,
                                    .ninputs = 3,
                                    .has_deadline = true,
                                    .deadline_ms = 1764288000123,
                                    .priority = -2,
                                    .has_reply_to = true,
                                    .reply_to = {"replies", 7},
                                    .params = s->params,
                                    .nparams = 2};
}

#endif
