/* test_gguf.c — the GGUF reader: valid files (our writer's, every value
 * type, arrays, alignment, mmap) and the real SmolLM2 file written by
 * llama.cpp's converter, and one test per class of hostile file, each
 * checking the error code and that the message names the problem (and the
 * key or tensor). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "formats/gguf.h"
#include "llm_test_util.h"

/* --- a raw byte builder for hostile images --------------------------------- */

typedef struct bb {
    uint8_t p[4096];
    size_t n;
} bb;

static void put(bb *b, uint64_t v, size_t n) {
    for (size_t i = 0; i < n; i++)
        b->p[b->n++] = (uint8_t)(v >> (8 * i));
}
static void put_str(bb *b, const char *s) {
    size_t l = strlen(s);
    put(b, l, 8);
    memcpy(b->p + b->n, s, l);
    b->n += l;
}
static void header(bb *b, uint32_t version, uint64_t ntensors, uint64_t nkv) {
    b->n = 0;
    put(b, KINFER_GGUF_MAGIC, 4);
    put(b, version, 4);
    put(b, ntensors, 8);
    put(b, nkv, 8);
}
/* A tensor info: name, dims, type, relative offset. */
static void tinfo(bb *b, const char *name, uint32_t ndim, const uint64_t *ne, uint32_t type,
                  uint64_t off) {
    put_str(b, name);
    put(b, ndim, 4);
    for (uint32_t d = 0; d < ndim; d++)
        put(b, ne[d], 8);
    put(b, type, 4);
    put(b, off, 8);
}
static void pad_to(bb *b, size_t align, size_t extra) {
    while (b->n % align)
        b->p[b->n++] = 0;
    for (size_t i = 0; i < extra; i++)
        b->p[b->n++] = (uint8_t)i;
}

static kinfer_err open_bytes(const uint8_t *p, size_t n, char *msg) {
    /* A private exact-size copy, so ASan sees any read past the end. */
    uint8_t *copy = malloc(n ? n : 1);
    memcpy(copy, p, n);
    kinfer_gguf *g = NULL;
    kinfer_error err;
    kinfer_error_clear(&err);
    kinfer_err rc = kinfer_gguf_open_memory(copy, n, "hostile.gguf", &g, &err);
    if (rc == KINFER_OK) {
        assert_non_null(g);
        kinfer_gguf_close(g);
        msg[0] = '\0';
    } else {
        assert_null(g);
        assert_int_equal(err.code, rc);
        snprintf(msg, KINFER_ERROR_MSG_MAX, "%s", err.msg);
    }
    free(copy);
    return rc;
}

static void expect_bad_code(const bb *b, kinfer_err code, const char *want1, const char *want2) {
    char msg[KINFER_ERROR_MSG_MAX];
    kinfer_err rc = open_bytes(b->p, b->n, msg);
    if (rc != code || !strstr(msg, "hostile.gguf") || (want1 && !strstr(msg, want1)) ||
        (want2 && !strstr(msg, want2)))
        fail_msg("rc %d msg '%s' (want %d, '%s' '%s')", rc, msg, code, want1 ? want1 : "",
                 want2 ? want2 : "");
}
static void expect_bad(const bb *b, const char *want1, const char *want2) {
    expect_bad_code(b, KINFER_ERR_MODEL_LOAD, want1, want2);
}

/* --- valid files ------------------------------------------------------------- */

static void test_all_value_types(void **state) {
    (void)state;
    kinfer_gguf_writer *w;
    kinfer_error err;
    assert_int_equal(kinfer_gguf_writer_new(&w, &err), KINFER_OK);
    kinfer_gguf_writer_uint(w, "u8", KINFER_GGUF_UINT8, 250, &err);
    kinfer_gguf_writer_int(w, "i8", KINFER_GGUF_INT8, -5, &err);
    kinfer_gguf_writer_uint(w, "u16", KINFER_GGUF_UINT16, 65000, &err);
    kinfer_gguf_writer_int(w, "i16", KINFER_GGUF_INT16, -30000, &err);
    kinfer_gguf_writer_uint(w, "u32", KINFER_GGUF_UINT32, 4000000000u, &err);
    kinfer_gguf_writer_int(w, "i32", KINFER_GGUF_INT32, -2000000000, &err);
    kinfer_gguf_writer_float(w, "f32", KINFER_GGUF_FLOAT32, 1e-5, &err);
    kinfer_gguf_writer_bool(w, "b", true, &err);
    kinfer_gguf_writer_str(w, "s", "h\0llo", 5, &err);
    kinfer_gguf_writer_uint(w, "u64", KINFER_GGUF_UINT64, UINT64_MAX, &err);
    kinfer_gguf_writer_int(w, "i64", KINFER_GGUF_INT64, INT64_MIN, &err);
    kinfer_gguf_writer_float(w, "f64", KINFER_GGUF_FLOAT64, -2.5e300, &err);
    int16_t a16[3] = {-1, 2, -32768};
    kinfer_gguf_writer_array(w, "a.i16", KINFER_GGUF_INT16, a16, 3, &err);
    float af[2] = {0.5f, -1.25f};
    kinfer_gguf_writer_array(w, "a.f32", KINFER_GGUF_FLOAT32, af, 2, &err);
    uint8_t ab[2] = {1, 0};
    kinfer_gguf_writer_array(w, "a.bool", KINFER_GGUF_BOOL, ab, 2, &err);
    kinfer_str strs[3] = {{"a", 1}, {"", 0}, {"\xc4\xa0t", 3}};
    kinfer_gguf_writer_str_array(w, "a.str", strs, 3, &err);
    kinfer_gguf_writer_array(w, "a.empty", KINFER_GGUF_UINT64, NULL, 0, &err);
    uint8_t *img;
    size_t len;
    assert_int_equal(kinfer_gguf_writer_image(w, 32, &img, &len, &err), KINFER_OK);
    kinfer_gguf_writer_destroy(w);
    kinfer_gguf *g;
    assert_int_equal(kinfer_gguf_open_memory(img, len, "mem", &g, &err), KINFER_OK);
    assert_int_equal(kinfer_gguf_version(g), 3);
    assert_int_equal(kinfer_gguf_alignment(g), 32);
    assert_int_equal(kinfer_gguf_kv_count(g), 17);
    assert_string_equal(kinfer_gguf_kv_at(g, 0)->key, "u8"); /* file order kept */
    uint64_t u = 0;
    uint32_t u32 = 7;
    double f = 0;
    bool b = false;
    kinfer_str s;
    assert_int_equal(kinfer_gguf_get_u64(g, "u8", true, UINT64_MAX, &u, &err), KINFER_OK);
    assert_int_equal(u, 250);
    assert_int_equal(kinfer_gguf_find(g, "i8")->v.i, -5);
    assert_int_equal(kinfer_gguf_find(g, "i16")->v.i, -30000);
    assert_int_equal(kinfer_gguf_find(g, "i32")->v.i, -2000000000);
    assert_int_equal(kinfer_gguf_find(g, "i64")->v.i, INT64_MIN);
    assert_int_equal(kinfer_gguf_get_u32(g, "u32", true, &u32, &err), KINFER_OK);
    assert_int_equal(u32, 4000000000u);
    assert_int_equal(kinfer_gguf_get_u64(g, "u64", true, UINT64_MAX, &u, &err), KINFER_OK);
    assert_true(u == UINT64_MAX);
    assert_int_equal(kinfer_gguf_get_f64(g, "f32", true, &f, &err), KINFER_OK);
    assert_true(f == (double)1e-5f);
    assert_int_equal(kinfer_gguf_get_f64(g, "f64", true, &f, &err), KINFER_OK);
    assert_true(f == -2.5e300);
    assert_int_equal(kinfer_gguf_get_bool(g, "b", true, &b, &err), KINFER_OK);
    assert_true(b);
    assert_int_equal(kinfer_gguf_get_str(g, "s", true, &s, &err), KINFER_OK);
    assert_int_equal(s.len, 5);
    assert_memory_equal(s.ptr, "h\0llo", 5);
    const kinfer_gguf_kv *kv;
    assert_int_equal(kinfer_gguf_get_array(g, "a.i16", true, KINFER_GGUF_INT64, &kv, &err),
                     KINFER_OK);
    assert_int_equal(kv->count, 3);
    assert_int_equal(kinfer_gguf_arr_int(kv, 0), -1);
    assert_int_equal(kinfer_gguf_arr_int(kv, 2), -32768);
    assert_int_equal(kinfer_gguf_get_array(g, "a.f32", true, KINFER_GGUF_FLOAT32, &kv, &err),
                     KINFER_OK);
    assert_true(kinfer_gguf_arr_float(kv, 1) == -1.25);
    assert_int_equal(kinfer_gguf_get_array(g, "a.bool", true, KINFER_GGUF_BOOL, &kv, &err),
                     KINFER_OK);
    assert_int_equal(kinfer_gguf_arr_int(kv, 0), 1);
    assert_int_equal(kinfer_gguf_get_array(g, "a.str", true, KINFER_GGUF_STRING, &kv, &err),
                     KINFER_OK);
    assert_int_equal(kv->count, 3);
    assert_int_equal(kv->strs[1].len, 0);
    assert_memory_equal(kv->strs[2].ptr, "\xc4\xa0t", 3);
    assert_int_equal(kinfer_gguf_get_array(g, "a.empty", true, KINFER_GGUF_INT64, &kv, &err),
                     KINFER_OK);
    assert_int_equal(kv->count, 0);
    /* absent and optional: value untouched; absent and required: named */
    u32 = 99;
    assert_int_equal(kinfer_gguf_get_u32(g, "nope", false, &u32, &err), KINFER_OK);
    assert_int_equal(u32, 99);
    assert_int_equal(kinfer_gguf_get_u32(g, "nope", true, &u32, &err), KINFER_ERR_MODEL_LOAD);
    assert_non_null(strstr(err.msg, "'nope' is missing"));
    /* wrong types and ranges are named */
    assert_int_equal(kinfer_gguf_get_u32(g, "s", true, &u32, &err), KINFER_ERR_MODEL_LOAD);
    assert_non_null(strstr(err.msg, "'s' is STRING, expected an integer"));
    assert_int_equal(kinfer_gguf_get_u32(g, "u64", true, &u32, &err), KINFER_ERR_MODEL_LOAD);
    assert_non_null(strstr(err.msg, "at most 4294967295"));
    assert_int_equal(kinfer_gguf_get_u32(g, "i8", true, &u32, &err), KINFER_ERR_MODEL_LOAD);
    assert_non_null(strstr(err.msg, "'i8' is -5"));
    assert_int_equal(kinfer_gguf_get_bool(g, "u8", true, &b, &err), KINFER_ERR_MODEL_LOAD);
    assert_int_equal(kinfer_gguf_get_str(g, "a.str", true, &s, &err), KINFER_ERR_MODEL_LOAD);
    assert_non_null(strstr(err.msg, "is ARRAY, expected STRING"));
    assert_int_equal(kinfer_gguf_get_array(g, "a.f32", true, KINFER_GGUF_STRING, &kv, &err),
                     KINFER_ERR_MODEL_LOAD);
    assert_non_null(strstr(err.msg, "array of FLOAT32, expected an array of STRING"));
    assert_int_equal(kinfer_gguf_tensor_count(g), 0);
    kinfer_gguf_close(g);
    free(img);
}

static void test_tensors_and_alignment(void **state) {
    (void)state;
    uint32_t aligns[] = {1, 32, 64, 4096};
    for (size_t ai = 0; ai < sizeof(aligns) / sizeof(aligns[0]); ai++) {
        kinfer_gguf_writer *w;
        kinfer_error err;
        assert_int_equal(kinfer_gguf_writer_new(&w, &err), KINFER_OK);
        kinfer_gguf_writer_str(w, "general.architecture", "llama", 5, &err);
        float f[6] = {1, 2, 3, 4, 5, 6};
        uint64_t ne2[2] = {3, 2}, ne1[1] = {64}, ne4[4] = {32, 1, 2, 1};
        assert_int_equal(kinfer_gguf_writer_tensor(w, "a", KINFER_GGUF_F32, 2, ne2, f, &err),
                         KINFER_OK);
        uint8_t q[20 * 2] = {0};
        q[0] = 0x11;
        assert_int_equal(kinfer_gguf_writer_tensor(w, "q", KINFER_GGUF_Q4_1, 1, ne1, q, &err),
                         KINFER_OK);
        uint8_t q8[34 * 2];
        memset(q8, 7, sizeof(q8));
        assert_int_equal(
            kinfer_gguf_writer_tensor(w, "blk.0.x", KINFER_GGUF_Q8_0, 4, ne4, q8, &err), KINFER_OK);
        uint8_t *img;
        size_t len;
        assert_int_equal(kinfer_gguf_writer_image(w, aligns[ai], &img, &len, &err), KINFER_OK);
        kinfer_gguf_writer_destroy(w);
        /* an aligned copy, as mmap would give */
        uint8_t *al = aligned_alloc(4096, (len + 4095) / 4096 * 4096);
        memcpy(al, img, len);
        kinfer_gguf *g;
        assert_int_equal(kinfer_gguf_open_memory(al, len, "mem", &g, &err), KINFER_OK);
        assert_int_equal(kinfer_gguf_alignment(g), aligns[ai]);
        assert_int_equal(kinfer_gguf_tensor_count(g), 3);
        const kinfer_gguf_tensor *a = kinfer_gguf_tensor_find(g, "a");
        assert_non_null(a);
        assert_int_equal(a->type, KINFER_GGUF_F32);
        assert_int_equal(a->ndim, 2);
        assert_int_equal(a->ne[0], 3);
        assert_int_equal(a->ne[1], 2);
        assert_int_equal(a->ne[2], 1);
        assert_int_equal(a->numel, 6);
        assert_int_equal(a->nbytes, 24);
        assert_memory_equal(a->data, f, 24);
        assert_int_equal(a->offset % aligns[ai], 0);
        const kinfer_gguf_tensor *t = kinfer_gguf_tensor_find(g, "q");
        assert_int_equal(t->nbytes, 40);
        assert_int_equal(((const uint8_t *)t->data)[0], 0x11);
        t = kinfer_gguf_tensor_find(g, "blk.0.x");
        assert_int_equal(t->ndim, 4);
        assert_int_equal(t->numel, 64);
        assert_int_equal(t->nbytes, 68);
        assert_int_equal((uintptr_t)t->data % aligns[ai], 0);
        assert_ptr_equal(kinfer_gguf_tensor_at(g, 2), t); /* index order */
        assert_null(kinfer_gguf_tensor_find(g, "nope"));
        assert_null(kinfer_gguf_tensor_at(g, 3));
        kinfer_gguf_close(g);
        free(al);
        free(img);
    }
}

static void test_mmap_file(void **state) {
    (void)state;
    char *dir = lt_tempdir();
    char path[600];
    snprintf(path, sizeof(path), "%s/t.gguf", dir);
    kinfer_gguf_writer *w;
    kinfer_error err;
    assert_int_equal(kinfer_gguf_writer_new(&w, &err), KINFER_OK);
    uint16_t h[32];
    for (int i = 0; i < 32; i++)
        h[i] = (uint16_t)(0x3c00 + i);
    uint64_t ne[1] = {32};
    kinfer_gguf_writer_tensor(w, "h", KINFER_GGUF_F16, 1, ne, h, &err);
    assert_int_equal(kinfer_gguf_writer_save(w, path, &err), KINFER_OK);
    kinfer_gguf_writer_destroy(w);
    kinfer_gguf *g;
    assert_int_equal(kinfer_gguf_open(path, &g, &err), KINFER_OK);
    assert_string_equal(kinfer_gguf_label(g), path);
    assert_memory_equal(kinfer_gguf_tensor_find(g, "h")->data, h, sizeof(h));
    kinfer_gguf_close(g);
    assert_int_equal(kinfer_gguf_open("/nonexistent/x.gguf", &g, &err), KINFER_ERR_IO);
    assert_non_null(strstr(err.msg, "/nonexistent/x.gguf"));
    assert_int_equal(kinfer_gguf_open(dir, &g, &err), KINFER_ERR_IO);
    FILE *f = fopen(path, "wb");
    fputs("GGUF", f);
    fclose(f);
    assert_int_equal(kinfer_gguf_open(path, &g, &err), KINFER_ERR_MODEL_LOAD);
    assert_non_null(strstr(err.msg, "shorter than a GGUF header"));
    lt_rmdir(dir);
}

/* The real file: what the Python gguf package reads from it. */
static void test_smollm2_file(void **state) {
    (void)state;
    char path[4096];
    assert_true(lt_smollm2_gguf(path, sizeof(path)));
    kinfer_gguf *g;
    kinfer_error err;
    assert_int_equal(kinfer_gguf_open(path, &g, &err), KINFER_OK);
    assert_int_equal(kinfer_gguf_version(g), 3);
    assert_int_equal(kinfer_gguf_kv_count(g), 33);
    assert_int_equal(kinfer_gguf_tensor_count(g), 272);
    kinfer_str s;
    assert_int_equal(kinfer_gguf_get_str(g, "general.architecture", true, &s, &err), KINFER_OK);
    assert_int_equal(s.len, 5);
    assert_memory_equal(s.ptr, "llama", 5);
    uint32_t u = 0;
    assert_int_equal(kinfer_gguf_get_u32(g, "llama.block_count", true, &u, &err), KINFER_OK);
    assert_int_equal(u, 30);
    double theta = 0;
    assert_int_equal(kinfer_gguf_get_f64(g, "llama.rope.freq_base", true, &theta, &err), KINFER_OK);
    assert_true(theta == 100000.0);
    const kinfer_gguf_kv *kv;
    assert_int_equal(
        kinfer_gguf_get_array(g, "tokenizer.ggml.tokens", true, KINFER_GGUF_STRING, &kv, &err),
        KINFER_OK);
    assert_int_equal(kv->count, 49152);
    assert_int_equal(kv->strs[1].len, 12);
    assert_memory_equal(kv->strs[1].ptr, "<|im_start|>", 12);
    assert_int_equal(
        kinfer_gguf_get_array(g, "tokenizer.ggml.merges", true, KINFER_GGUF_STRING, &kv, &err),
        KINFER_OK);
    assert_int_equal(kv->count, 48900);
    assert_int_equal(
        kinfer_gguf_get_array(g, "tokenizer.ggml.token_type", true, KINFER_GGUF_INT64, &kv, &err),
        KINFER_OK);
    assert_int_equal(kinfer_gguf_arr_int(kv, 0), 3);
    const kinfer_gguf_tensor *t = kinfer_gguf_tensor_find(g, "token_embd.weight");
    assert_non_null(t);
    assert_int_equal(t->type, KINFER_GGUF_Q8_0);
    assert_int_equal(t->ne[0], 576);
    assert_int_equal(t->ne[1], 49152);
    assert_int_equal(t->nbytes, 576 / 32 * 34 * 49152);
    t = kinfer_gguf_tensor_find(g, "blk.0.attn_k.weight");
    assert_int_equal(t->type, KINFER_GGUF_Q4_1);
    assert_int_equal(t->ne[0], 576);
    assert_int_equal(t->ne[1], 192);
    /* offsets relative to the data section, as gguf-py reports them */
    assert_int_equal(t->offset - kinfer_gguf_tensor_find(g, "token_embd.weight")->offset,
                     33530176 - 1785664);
    size_t counts[KINFER_GGUF_TYPE_LIMIT] = {0};
    for (size_t i = 0; i < kinfer_gguf_tensor_count(g); i++)
        counts[kinfer_gguf_tensor_at(g, i)->type]++;
    assert_int_equal(counts[KINFER_GGUF_Q4_1], 210);
    assert_int_equal(counts[KINFER_GGUF_F32], 61);
    assert_int_equal(counts[KINFER_GGUF_Q8_0], 1);
    kinfer_gguf_close(g);
}

/* Files written by the Python gguf package (the fuzz seeds): an
 * independent writer's padding and alignment. */
static void test_gguf_py_files(void **state) {
    (void)state;
    char path[1024];
    kinfer_gguf *g;
    kinfer_error err;
    snprintf(path, sizeof(path), "%s/tests/fuzz/corpus/fuzz_kernels_gguf/align64.gguf",
             KINFER_SOURCE_DIR);
    assert_int_equal(kinfer_gguf_open(path, &g, &err), KINFER_OK);
    assert_int_equal(kinfer_gguf_alignment(g), 64);
    const kinfer_gguf_tensor *b = kinfer_gguf_tensor_find(g, "b");
    assert_int_equal(b->offset, 320); /* what gguf-py's reader reports */
    assert_int_equal(b->type, KINFER_GGUF_F16);
    assert_int_equal(b->ne[0], 32);
    assert_int_equal(b->ne[1], 2);
    assert_int_equal(((const uint16_t *)b->data)[63], 0x3c00);
    kinfer_gguf_close(g);
    snprintf(path, sizeof(path), "%s/tests/fuzz/corpus/fuzz_kernels_gguf/q4_1_q8_0.gguf",
             KINFER_SOURCE_DIR);
    assert_int_equal(kinfer_gguf_open(path, &g, &err), KINFER_OK);
    const kinfer_gguf_tensor *q = kinfer_gguf_tensor_find(g, "blk.0.ffn_up.weight");
    assert_int_equal(q->type, KINFER_GGUF_Q4_1);
    assert_int_equal(q->nbytes, 40);
    assert_int_equal(((const uint8_t *)q->data)[39], 39);
    assert_int_equal(kinfer_gguf_tensor_find(g, "q5k")->type, KINFER_GGUF_Q5_K);
    kinfer_gguf_close(g);
}

static void test_type_table(void **state) {
    (void)state;
    assert_string_equal(kinfer_gguf_type_name(KINFER_GGUF_Q4_1), "Q4_1");
    assert_int_equal(kinfer_gguf_type_block(KINFER_GGUF_Q4_1), 32);
    assert_int_equal(kinfer_gguf_type_block_bytes(KINFER_GGUF_Q4_1), 20);
    assert_int_equal(kinfer_gguf_type_block_bytes(KINFER_GGUF_Q5_K), 176);
    assert_int_equal(kinfer_gguf_type_block_bytes(KINFER_GGUF_BF16), 2);
    assert_null(kinfer_gguf_type_name(4)); /* retired Q4_2 */
    assert_null(kinfer_gguf_type_name(1000));
    assert_string_equal(kinfer_gguf_vtype_name(KINFER_GGUF_ARRAY), "ARRAY");
    assert_string_equal(kinfer_gguf_vtype_name(99), "?");
}

/* --- hostile files ------------------------------------------------------------ */

static void test_bad_header(void **state) {
    (void)state;
    bb b;
    b.n = 0;
    expect_bad(&b, "not a GGUF file", NULL);
    header(&b, 3, 0, 0);
    b.p[0] = 'X';
    expect_bad(&b, "not a GGUF file", NULL);
    header(&b, 3, 0, 0);
    b.n = 6;
    expect_bad(&b, "truncated at byte 4", "version");
    header(&b, 1, 0, 0);
    expect_bad_code(&b, KINFER_ERR_UNSUPPORTED, "version 1", NULL);
    header(&b, 0x03000000, 0, 0);
    expect_bad_code(&b, KINFER_ERR_UNSUPPORTED, "big-endian", NULL);
    header(&b, 4, 0, 0);
    expect_bad(&b, "version 4", NULL);
    header(&b, 3, 0, 0);
    b.n = 20;
    expect_bad(&b, "metadata count", NULL);
    header(&b, 3, 0, 1000000);
    expect_bad(&b, "metadata count 1000000 cannot fit", NULL);
    header(&b, 3, UINT64_MAX, 0);
    expect_bad(&b, "tensor count", "cannot fit");
    header(&b, 2, 0, 0); /* version 2 is fine */
    char msg[KINFER_ERROR_MSG_MAX];
    assert_int_equal(open_bytes(b.p, b.n, msg), KINFER_OK);
}

static void test_bad_keys(void **state) {
    (void)state;
    bb b;
    header(&b, 3, 0, 1);
    put_str(&b, "");
    put(&b, KINFER_GGUF_UINT8, 4);
    put(&b, 1, 1);
    expect_bad(&b, "metadata key 0 is empty", NULL);
    header(&b, 3, 0, 1);
    put(&b, 3, 8);
    memcpy(b.p + b.n, "a\0b", 3);
    b.n += 3;
    put(&b, KINFER_GGUF_UINT8, 4);
    put(&b, 1, 1);
    expect_bad(&b, "NUL byte", NULL);
    header(&b, 3, 0, 2);
    for (int i = 0; i < 2; i++) {
        put_str(&b, "dup.key");
        put(&b, KINFER_GGUF_UINT8, 4);
        put(&b, 1, 1);
    }
    expect_bad(&b, "'dup.key' appears twice", NULL);
    header(&b, 3, 0, 1);
    put(&b, 1u << 20, 8); /* key length past the end */
    put(&b, 0, 8);
    expect_bad(&b, "length 1048576 exceeds", "key of metadata entry 0");
}

static void test_bad_values(void **state) {
    (void)state;
    bb b;
    header(&b, 3, 0, 1);
    put_str(&b, "k");
    put(&b, 13, 4);
    put(&b, 0, 8);
    expect_bad(&b, "'k': unknown value type 13", NULL);
    header(&b, 3, 0, 1);
    put_str(&b, "k");
    put(&b, KINFER_GGUF_BOOL, 4);
    put(&b, 2, 1);
    expect_bad(&b, "'k': BOOL value is 2", NULL);
    header(&b, 3, 0, 1);
    put_str(&b, "k");
    put(&b, KINFER_GGUF_UINT64, 4);
    put(&b, 1, 4); /* 4 of 8 bytes */
    expect_bad(&b, "'k'", "truncated");
    header(&b, 3, 0, 1);
    put_str(&b, "k");
    put(&b, KINFER_GGUF_STRING, 4);
    put(&b, 100, 8);
    put(&b, 0, 8);
    expect_bad(&b, "'k'", "length 100 exceeds");
    /* arrays */
    header(&b, 3, 0, 1);
    put_str(&b, "arr");
    put(&b, KINFER_GGUF_ARRAY, 4);
    put(&b, KINFER_GGUF_ARRAY, 4);
    put(&b, 1, 8);
    expect_bad(&b, "'arr': nested arrays are not supported", NULL);
    header(&b, 3, 0, 1);
    put_str(&b, "arr");
    put(&b, KINFER_GGUF_ARRAY, 4);
    put(&b, 77, 4);
    put(&b, 1, 8);
    expect_bad(&b, "'arr': unknown array element type 77", NULL);
    header(&b, 3, 0, 1);
    put_str(&b, "arr");
    put(&b, KINFER_GGUF_ARRAY, 4);
    put(&b, KINFER_GGUF_UINT32, 4);
    put(&b, UINT64_MAX / 2, 8);
    expect_bad(&b, "'arr': array of", "UINT32 needs");
    header(&b, 3, 0, 1);
    put_str(&b, "arr");
    put(&b, KINFER_GGUF_ARRAY, 4);
    put(&b, KINFER_GGUF_STRING, 4);
    put(&b, 1000000000000ull, 8);
    expect_bad(&b, "'arr': array of 1000000000000 strings cannot fit", NULL);
    header(&b, 3, 0, 1);
    put_str(&b, "arr");
    put(&b, KINFER_GGUF_ARRAY, 4);
    put(&b, KINFER_GGUF_STRING, 4);
    put(&b, 2, 8);
    put_str(&b, "ok");
    put(&b, 50, 8); /* second string runs past the end */
    put(&b, 0, 8);
    expect_bad(&b, "'arr'", "string element 1");
    header(&b, 3, 0, 1);
    put_str(&b, "arr");
    put(&b, KINFER_GGUF_ARRAY, 4);
    put(&b, KINFER_GGUF_BOOL, 4);
    put(&b, 2, 8);
    put(&b, 1, 1);
    put(&b, 9, 1);
    expect_bad(&b, "'arr': BOOL element 1 is 9", NULL);
}

static void test_bad_alignment(void **state) {
    (void)state;
    bb b;
    header(&b, 3, 0, 1);
    put_str(&b, "general.alignment");
    put(&b, KINFER_GGUF_UINT64, 4);
    put(&b, 32, 8);
    expect_bad(&b, "'general.alignment' is UINT64, expected UINT32", NULL);
    uint32_t bad[] = {0, 3, 48};
    for (size_t i = 0; i < 3; i++) {
        header(&b, 3, 0, 1);
        put_str(&b, "general.alignment");
        put(&b, KINFER_GGUF_UINT32, 4);
        put(&b, bad[i], 4);
        expect_bad(&b, "general.alignment", "power of two");
    }
}

static void test_bad_tensors(void **state) {
    (void)state;
    bb b;
    uint64_t ne[4] = {32, 2, 1, 1};
    /* names */
    header(&b, 3, 1, 0);
    tinfo(&b, "", 1, ne, KINFER_GGUF_F32, 0);
    expect_bad(&b, "tensor 0's name is empty", NULL);
    header(&b, 3, 1, 0);
    char longname[80];
    memset(longname, 'x', 65);
    longname[65] = '\0';
    tinfo(&b, longname, 1, ne, KINFER_GGUF_F32, 0);
    expect_bad(&b, "65 bytes, at most 64", NULL);
    header(&b, 3, 2, 0);
    tinfo(&b, "w", 1, ne, KINFER_GGUF_F32, 0);
    tinfo(&b, "w", 1, ne, KINFER_GGUF_F32, 128);
    pad_to(&b, 32, 256);
    expect_bad(&b, "tensor 'w' appears twice", NULL);
    /* dims */
    header(&b, 3, 1, 0);
    tinfo(&b, "w", 0, ne, KINFER_GGUF_F32, 0);
    expect_bad(&b, "'w': 0 dimensions", NULL);
    header(&b, 3, 1, 0);
    uint64_t ne5[5] = {1, 1, 1, 1, 1};
    tinfo(&b, "w", 5, ne5, KINFER_GGUF_F32, 0);
    expect_bad(&b, "'w': 5 dimensions", NULL);
    header(&b, 3, 1, 0);
    uint64_t big[2] = {1ull << 40, 1ull << 40};
    tinfo(&b, "w", 2, big, KINFER_GGUF_F32, 0);
    expect_bad(&b, "'w': dimensions overflow", NULL);
    header(&b, 3, 1, 0);
    uint64_t neg[1] = {UINT64_MAX};
    tinfo(&b, "w", 1, neg, KINFER_GGUF_F32, 0);
    expect_bad(&b, "'w': dimensions overflow", NULL);
    /* types */
    header(&b, 3, 1, 0);
    tinfo(&b, "w", 1, ne, 4, 0);
    expect_bad(&b, "'w': unknown tensor type id 4", NULL);
    header(&b, 3, 1, 0);
    tinfo(&b, "w", 1, ne, 9999, 0);
    expect_bad(&b, "'w': unknown tensor type id 9999", NULL);
    header(&b, 3, 1, 0);
    uint64_t ne33[1] = {33};
    tinfo(&b, "w", 1, ne33, KINFER_GGUF_Q4_1, 0);
    expect_bad(&b, "'w': row length 33 is not a multiple of the Q4_1 block size 32", NULL);
    /* offsets and bounds */
    header(&b, 3, 1, 0);
    tinfo(&b, "w", 2, ne, KINFER_GGUF_F32, 4);
    pad_to(&b, 32, 300);
    expect_bad(&b, "'w': data offset 4 is not a multiple of the alignment 32", NULL);
    header(&b, 3, 1, 0);
    tinfo(&b, "w", 2, ne, KINFER_GGUF_F32, 0);
    pad_to(&b, 32, 255); /* needs 256 */
    expect_bad(&b, "'w': F32 data [0, +256) runs past the 255-byte data section", NULL);
    header(&b, 3, 1, 0);
    tinfo(&b, "w", 2, ne, KINFER_GGUF_F32, UINT64_MAX - 31);
    pad_to(&b, 32, 256);
    expect_bad(&b, "'w'", "runs past");
    header(&b, 3, 2, 0);
    tinfo(&b, "a", 2, ne, KINFER_GGUF_F32, 0);
    tinfo(&b, "b", 1, ne, KINFER_GGUF_Q8_0, 224);
    pad_to(&b, 32, 512);
    expect_bad(&b, "tensor 'b': data at 224 overlaps tensor 'a'", NULL);
    header(&b, 3, 1, 0);
    put_str(&b, "wwwwwwwwwwwwwww");
    put(&b, 2, 4);
    put(&b, 32, 8); /* second dim missing */
    expect_bad(&b, "tensor 'wwwwwwwwwwwwwww'", "truncated");
    header(&b, 3, 2, 0);
    tinfo(&b, "a", 2, ne, KINFER_GGUF_F32, 0);
    put(&b, 5, 8); /* tensor 1's name: 5 bytes, of which 2 are there */
    put(&b, 0, 2);
    expect_bad(&b, "the name of tensor 1", "length 5 exceeds the 2 bytes left");
    /* the data section must start inside the file when there are tensors */
    header(&b, 3, 1, 0);
    uint64_t zero[1] = {0};
    tinfo(&b, "e", 1, zero, KINFER_GGUF_F32, 0);
    expect_bad(&b, "data section would start at", NULL);
    /* an empty tensor inside a file is fine */
    pad_to(&b, 32, 0);
    char msg[KINFER_ERROR_MSG_MAX];
    assert_int_equal(open_bytes(b.p, b.n, msg), KINFER_OK);
    /* gaps (padding) between tensors are fine, in any index order */
    header(&b, 3, 2, 0);
    tinfo(&b, "b", 1, ne, KINFER_GGUF_F32, 256);
    tinfo(&b, "a", 2, ne, KINFER_GGUF_F32, 0);
    pad_to(&b, 32, 512);
    assert_int_equal(open_bytes(b.p, b.n, msg), KINFER_OK);
}

/* Every prefix of a valid file fails cleanly (no crash, no leak). */
static void test_every_truncation(void **state) {
    (void)state;
    kinfer_gguf_writer *w;
    kinfer_error err;
    assert_int_equal(kinfer_gguf_writer_new(&w, &err), KINFER_OK);
    kinfer_gguf_writer_str(w, "general.architecture", "llama", 5, &err);
    kinfer_str strs[2] = {{"x", 1}, {"yz", 2}};
    kinfer_gguf_writer_str_array(w, "t", strs, 2, &err);
    int32_t ai[2] = {1, 2};
    kinfer_gguf_writer_array(w, "i", KINFER_GGUF_INT32, ai, 2, &err);
    float f[32] = {0};
    uint64_t ne[1] = {32};
    kinfer_gguf_writer_tensor(w, "w", KINFER_GGUF_F32, 1, ne, f, &err);
    uint8_t *img;
    size_t len;
    assert_int_equal(kinfer_gguf_writer_image(w, 32, &img, &len, &err), KINFER_OK);
    kinfer_gguf_writer_destroy(w);
    char msg[KINFER_ERROR_MSG_MAX];
    assert_int_equal(open_bytes(img, len, msg), KINFER_OK);
    for (size_t n = 0; n < len; n++)
        assert_int_not_equal(open_bytes(img, n, msg), KINFER_OK);
    free(img);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_value_types), cmocka_unit_test(test_tensors_and_alignment),
        cmocka_unit_test(test_mmap_file),       cmocka_unit_test(test_smollm2_file),
        cmocka_unit_test(test_gguf_py_files),   cmocka_unit_test(test_type_table),
        cmocka_unit_test(test_bad_header),      cmocka_unit_test(test_bad_keys),
        cmocka_unit_test(test_bad_values),      cmocka_unit_test(test_bad_alignment),
        cmocka_unit_test(test_bad_tensors),     cmocka_unit_test(test_every_truncation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
