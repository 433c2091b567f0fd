/* test_mlp_load.c — model kind `mlp` loading: every class of bad file
 * (missing layer, extra tensor, shape chain, bias length, dtype, bad
 * activation metadata/options), F16/BF16 converters (exhaustive), the kind
 * registry, device parsing and the seam's errors for absent devices. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kinfer/kinfer_device.h"
#include "kinfer/kinfer_model.h"
#include "model_registry.h"
#include "test_mlp_util.h"

static char *dir;

static int setup(void **state) {
    (void)state;
    dir = tu_tempdir();
    return dir ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    tu_rmdir(dir);
    return 0;
}

static kinfer_model_options opts_for(const char *path) {
    kinfer_model_options o;
    memset(&o, 0, sizeof(o));
    o.name = "m";
    o.kind = "mlp";
    o.path = path;
    o.cpu_threads = 1;
    return o;
}

/* Writes tensors t to dir/<file> and loads it; returns the load code and
 * the message. */
static kinfer_err load_tensors(const char *file, const kinfer_st_write_tensor *t, size_t n,
                               const char *act, const char *out_act, kinfer_model_options *o,
                               char *msg) {
    char path[600];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    const char *keys[2], *vals[2];
    size_t nmeta = 0;
    if (act)
        keys[nmeta] = "activation", vals[nmeta++] = act;
    if (out_act)
        keys[nmeta] = "output_activation", vals[nmeta++] = out_act;
    kinfer_error err;
    assert_int_equal(kinfer_safetensors_write(path, t, n, keys, vals, nmeta, &err), KINFER_OK);
    kinfer_model_options def = opts_for(path);
    if (o)
        o->path = path;
    kinfer_model *m = NULL;
    kinfer_err rc = kinfer_model_load(o ? o : &def, &m, &err);
    msg[0] = '\0';
    if (rc == KINFER_OK) {
        assert_non_null(m);
        kinfer_model_destroy(m);
    } else {
        assert_null(m);
        snprintf(msg, KINFER_ERROR_MSG_MAX, "%s", err.msg);
    }
    return rc;
}

static float zeros[4096];

#define W(name, o, i)                                                                              \
    { name, KINFER_DTYPE_FP32, 2, {o, i}, zeros }
#define B(name, o)                                                                                 \
    { name, KINFER_DTYPE_FP32, 1, {o}, zeros }

static void expect_load_error(const char *file, const kinfer_st_write_tensor *t, size_t n,
                              kinfer_err code, const char *want1, const char *want2) {
    char msg[KINFER_ERROR_MSG_MAX];
    kinfer_err rc = load_tensors(file, t, n, NULL, NULL, NULL, msg);
    if (rc != code || !strstr(msg, file) || !strstr(msg, "model 'm'") ||
        (want1 && !strstr(msg, want1)) || (want2 && !strstr(msg, want2)))
        fail_msg("%s: rc %d msg '%s'", file, rc, msg);
}

static void test_load_ok_two_layers(void **state) {
    (void)state;
    kinfer_st_write_tensor t[] = {W("layers.0.weight", 5, 3), B("layers.0.bias", 5),
                                  W("layers.1.weight", 2, 5), B("layers.1.bias", 2)};
    char msg[KINFER_ERROR_MSG_MAX];
    assert_int_equal(load_tensors("ok.st", t, 4, NULL, NULL, NULL, msg), KINFER_OK);
    char path[600];
    snprintf(path, sizeof(path), "%s/ok.st", dir);
    kinfer_model_options o = opts_for(path);
    kinfer_model *m;
    kinfer_error err;
    assert_int_equal(kinfer_model_load(&o, &m, &err), KINFER_OK);
    assert_string_equal(kinfer_model_kind(m), "mlp");
    assert_string_equal(kinfer_model_describe(m), "mlp 3-5-2 relu/none");
    kinfer_model_info info;
    kinfer_model_info_get(m, &info);
    assert_string_equal(info.kind, "mlp");
    assert_string_equal(info.description, "mlp 3-5-2 relu/none");
    assert_int_equal(info.input_dtype, KINFER_DTYPE_FP32);
    assert_int_equal(info.input_width, 3);
    assert_int_equal(info.output_width, 2);
    kinfer_model_destroy(m);
    o.precision = "bf16";
    o.activation = "tanh";
    o.output_activation = "softmax";
    assert_int_equal(kinfer_model_load(&o, &m, &err), KINFER_OK);
    assert_string_equal(kinfer_model_describe(m), "mlp 3-5-2 tanh/softmax precision=bf16");
    kinfer_model_destroy(m);
}

static void test_missing_layer(void **state) {
    (void)state;
    kinfer_st_write_tensor gap[] = {W("layers.0.weight", 5, 3), B("layers.0.bias", 5),
                                    W("layers.2.weight", 2, 5), B("layers.2.bias", 2)};
    expect_load_error("gap.st", gap, 4, KINFER_ERR_MODEL_LOAD, "layers.2.weight",
                      "no 'layers.1.weight'");
    kinfer_st_write_tensor none[] = {W("layers.1.weight", 2, 5), B("layers.1.bias", 2)};
    expect_load_error("none.st", none, 2, KINFER_ERR_MODEL_LOAD, "no tensor 'layers.0.weight'",
                      NULL);
    expect_load_error("empty.st", NULL, 0, KINFER_ERR_MODEL_LOAD, "no tensor 'layers.0.weight'",
                      NULL);
    kinfer_st_write_tensor nobias[] = {W("layers.0.weight", 5, 3), B("layers.0.bias", 5),
                                       W("layers.1.weight", 2, 5)};
    expect_load_error("nobias.st", nobias, 3, KINFER_ERR_MODEL_LOAD,
                      "missing tensor 'layers.1.bias'", NULL);
    /* a bias without its weight beyond the last layer */
    kinfer_st_write_tensor stray[] = {W("layers.0.weight", 5, 3), B("layers.0.bias", 5),
                                      B("layers.1.bias", 2)};
    expect_load_error("stray.st", stray, 3, KINFER_ERR_MODEL_LOAD, "layers.1.bias",
                      "no 'layers.1.weight'");
}

static void test_extra_tensor(void **state) {
    (void)state;
    kinfer_st_write_tensor t[] = {W("layers.0.weight", 5, 3), B("layers.0.bias", 5), B("scale", 5)};
    expect_load_error("extra.st", t, 3, KINFER_ERR_MODEL_LOAD, "unexpected tensor 'scale'", NULL);
    kinfer_st_write_tensor t2[] = {W("layers.0.weight", 5, 3), B("layers.0.bias", 5),
                                   B("layers.00.bias", 5)};
    expect_load_error("extra2.st", t2, 3, KINFER_ERR_MODEL_LOAD,
                      "unexpected tensor 'layers.00.bias'", NULL);
    kinfer_st_write_tensor t3[] = {W("layers.0.weight", 5, 3), B("layers.0.bias", 5),
                                   B("layers.0.gamma", 5)};
    expect_load_error("extra3.st", t3, 3, KINFER_ERR_MODEL_LOAD, "layers.0.gamma", NULL);
}

static void test_shape_chain_mismatch(void **state) {
    (void)state;
    kinfer_st_write_tensor t[] = {W("layers.0.weight", 5, 3), B("layers.0.bias", 5),
                                  W("layers.1.weight", 2, 4), B("layers.1.bias", 2)};
    expect_load_error("chain.st", t, 4, KINFER_ERR_MODEL_LOAD, "'layers.1.weight'",
                      "takes 4 inputs but layer 0 outputs 5 (shape chain mismatch)");
}

static void test_bias_and_weight_shapes(void **state) {
    (void)state;
    kinfer_st_write_tensor t[] = {W("layers.0.weight", 5, 3), B("layers.0.bias", 4)};
    expect_load_error("bias.st", t, 2, KINFER_ERR_MODEL_LOAD, "'layers.0.bias': shape [4]",
                      "expected [5]");
    kinfer_st_write_tensor t2[] = {W("layers.0.weight", 5, 3),
                                   {"layers.0.bias", KINFER_DTYPE_FP32, 2, {1, 5}, zeros}};
    expect_load_error("bias2.st", t2, 2, KINFER_ERR_MODEL_LOAD, "'layers.0.bias': shape [1, 5]",
                      NULL);
    kinfer_st_write_tensor t3[] = {{"layers.0.weight", KINFER_DTYPE_FP32, 1, {15}, zeros},
                                   B("layers.0.bias", 5)};
    expect_load_error("w1d.st", t3, 2, KINFER_ERR_MODEL_LOAD, "'layers.0.weight': shape [15]",
                      "expected [out, in]");
    kinfer_st_write_tensor t4[] = {W("layers.0.weight", 0, 3), B("layers.0.bias", 0)};
    expect_load_error("w0.st", t4, 2, KINFER_ERR_MODEL_LOAD, "shape [0, 3]", NULL);
}

static void test_weight_dtype(void **state) {
    (void)state;
    kinfer_st_write_tensor t[] = {{"layers.0.weight", KINFER_DTYPE_INT32, 2, {5, 3}, zeros},
                                  B("layers.0.bias", 5)};
    expect_load_error("i32.st", t, 2, KINFER_ERR_MODEL_LOAD, "'layers.0.weight': dtype I32",
                      "(F32, F16, BF16)");
}

static void test_bad_format_is_named(void **state) {
    (void)state;
    char path[600];
    snprintf(path, sizeof(path), "%s/garbage.st", dir);
    FILE *f = fopen(path, "wb");
    fwrite("\x05\0\0\0\0\0\0\0{nope", 1, 13, f);
    fclose(f);
    kinfer_model_options o = opts_for(path);
    kinfer_model *m;
    kinfer_error err;
    assert_int_equal(kinfer_model_load(&o, &m, &err), KINFER_ERR_MODEL_LOAD);
    assert_non_null(strstr(err.msg, "garbage.st"));
    assert_non_null(strstr(err.msg, "not valid JSON"));
    snprintf(path, sizeof(path), "%s/absent.st", dir);
    o.path = path;
    assert_int_equal(kinfer_model_load(&o, &m, &err), KINFER_ERR_IO);
    assert_non_null(strstr(err.msg, "absent.st"));
}

static void test_activation_metadata_and_options(void **state) {
    (void)state;
    kinfer_st_write_tensor t[] = {W("layers.0.weight", 5, 3), B("layers.0.bias", 5),
                                  W("layers.1.weight", 2, 5), B("layers.1.bias", 2)};
    char msg[KINFER_ERROR_MSG_MAX];
    assert_int_equal(load_tensors("act.st", t, 4, "swish", NULL, NULL, msg), KINFER_ERR_MODEL_LOAD);
    assert_non_null(strstr(msg, "__metadata__ 'activation' is 'swish'"));
    assert_int_equal(load_tensors("act.st", t, 4, NULL, "relu", NULL, msg), KINFER_ERR_MODEL_LOAD);
    assert_non_null(strstr(msg, "'output_activation' is 'relu', expected none, sigmoid"));
    /* an override replaces a bad metadata value without reading it */
    kinfer_model_options o = opts_for(NULL);
    o.activation = "gelu";
    assert_int_equal(load_tensors("act.st", t, 4, "swish", NULL, &o, msg), KINFER_OK);
    /* a bad override is a config error */
    o.activation = "Relu";
    assert_int_equal(load_tensors("act.st", t, 4, NULL, NULL, &o, msg), KINFER_ERR_CONFIG);
    assert_non_null(strstr(msg, "option 'activation' is 'Relu'"));
    o.activation = NULL;
    o.output_activation = "tanh";
    assert_int_equal(load_tensors("act.st", t, 4, NULL, NULL, &o, msg), KINFER_ERR_CONFIG);
    o.output_activation = NULL;
    o.precision = "fp8";
    assert_int_equal(load_tensors("act.st", t, 4, NULL, NULL, &o, msg), KINFER_ERR_CONFIG);
    assert_non_null(strstr(msg, "precision 'fp8'"));
    o.precision = NULL;
    o.nan_policy = (kinfer_nan_policy)7;
    assert_int_equal(load_tensors("act.st", t, 4, NULL, NULL, &o, msg), KINFER_ERR_CONFIG);
}

static void test_metadata_activations_used(void **state) {
    (void)state;
    kinfer_st_write_tensor t[] = {W("layers.0.weight", 5, 3), B("layers.0.bias", 5)};
    char path[600];
    snprintf(path, sizeof(path), "%s/meta.st", dir);
    const char *keys[] = {"activation", "output_activation"}, *vals[] = {"sigmoid", "softmax"};
    kinfer_error err;
    assert_int_equal(kinfer_safetensors_write(path, t, 2, keys, vals, 2, &err), KINFER_OK);
    kinfer_model_options o = opts_for(path);
    kinfer_model *m;
    assert_int_equal(kinfer_model_load(&o, &m, &err), KINFER_OK);
    assert_string_equal(kinfer_model_describe(m), "mlp 3-5 sigmoid/softmax");
    kinfer_model_destroy(m);
}

static void test_unknown_kind(void **state) {
    (void)state;
    kinfer_model_options o = opts_for("x.st");
    o.kind = "gpt";
    kinfer_model *m;
    kinfer_error err;
    assert_int_equal(kinfer_model_load(&o, &m, &err), KINFER_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "unknown kind 'gpt'"));
    assert_non_null(strstr(err.msg, "supported: mlp"));
    assert_non_null(kinfer_model_kind_find("mlp"));
    assert_null(kinfer_model_kind_find("MLP"));
    assert_null(kinfer_model_kind_find(NULL));
}

/* The public face of the kind table: what the configuration asks. */
static void test_kind_table_info(void **state) {
    (void)state;
    assert_true(kinfer_model_kind_count() >= 2);
    assert_null(kinfer_model_kind_at(kinfer_model_kind_count()));
    for (size_t i = 0; i < kinfer_model_kind_count(); i++) {
        const kinfer_model_kind_info *k = kinfer_model_kind_at(i);
        assert_non_null(k->name);
        assert_ptr_equal(kinfer_model_kind_lookup(k->name), k);
        /* Every precision a kind offers is one the loaders parse. */
        for (size_t j = 0; k->precisions && k->precisions[j]; j++) {
            kinfer_dtype dt;
            assert_true(kinfer_precision_parse(k->precisions[j], &dt));
        }
    }
    assert_null(kinfer_model_kind_lookup("gpt"));
    assert_null(kinfer_model_kind_lookup(NULL));
    const kinfer_model_kind_info *mlp = kinfer_model_kind_lookup("mlp");
    assert_int_equal(mlp->path, KINFER_MODEL_PATH_FILE);
    assert_string_equal(mlp->precisions[0], "fp32");
    size_t n = 0;
    for (; mlp->activations[n]; n++) {
        kinfer_activation a;
        assert_int_equal(mlp_activation_parse(mlp->activations[n], &a), 0);
    }
    assert_int_equal(n, KINFER_ACT_COUNT);
    for (n = 0; mlp->output_activations[n]; n++) {
        mlp_output_act a;
        assert_int_equal(mlp_output_act_parse(mlp->output_activations[n], &a), 0);
    }
    assert_int_equal(n, MLP_OUT_COUNT);
    const kinfer_model_kind_info *bert = kinfer_model_kind_lookup("bert");
    assert_int_equal(bert->path, KINFER_MODEL_PATH_DIR);
    assert_null(bert->activations);
    assert_null(bert->options);
}

static void test_device_parse(void **state) {
    (void)state;
    kinfer_device d;
    kinfer_error err;
    assert_int_equal(kinfer_device_parse("cpu", &d, &err), KINFER_OK);
    assert_int_equal(d.type, KINFER_DEVICE_CPU);
    assert_string_equal(d.name, "cpu");
    assert_int_equal(kinfer_device_parse("cuda:0", &d, &err), KINFER_OK);
    assert_int_equal(d.type, KINFER_DEVICE_CUDA);
    assert_int_equal(d.index, 0);
    assert_int_equal(kinfer_device_parse("cuda:255", &d, &err), KINFER_OK);
    assert_int_equal(d.index, 255);
    assert_string_equal(d.name, "cuda:255");
    const char *bad[] = {
        "",         "CPU",     "gpu",     "cuda",    "cuda:",     "cuda:-1", "cuda:01",
        "cuda:256", "cuda:1x", "cuda: 1", "cuda:+1", "cuda:9999", "cpu:0",   " cpu"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (kinfer_device_parse(bad[i], &d, &err) != KINFER_ERR_DEVICE)
            fail_msg("'%s' accepted", bad[i]);
        assert_non_null(strstr(err.msg, "expected \"cpu\" or \"cuda:N\""));
    }
    assert_int_equal(kinfer_device_parse(NULL, &d, &err), KINFER_ERR_DEVICE);
}

static void test_replica_devices(void **state) {
    (void)state;
    char path[600];
    snprintf(path, sizeof(path), "%s/models_example.st", dir);
    char src[1024];
    snprintf(src, sizeof(src), "%s/models/example_mlp.safetensors", KINFER_SOURCE_DIR);
    kinfer_model_options o = opts_for(src);
    kinfer_model *m;
    kinfer_error err;
    assert_int_equal(kinfer_model_load(&o, &m, &err), KINFER_OK);
    kinfer_replica *r;
    assert_int_equal(kinfer_replica_new(m, "tpu:0", 4, &r, &err), KINFER_ERR_DEVICE);
    assert_non_null(strstr(err.msg, "'tpu:0'"));
    assert_int_equal(kinfer_replica_new(m, "cpu", 0, &r, &err), KINFER_ERR_INVALID_ARG);
    if (!kinfer_cuda_built()) {
        assert_int_equal(kinfer_cuda_device_count(), 0);
        assert_int_equal(kinfer_replica_new(m, "cuda:0", 4, &r, &err), KINFER_ERR_DEVICE);
        assert_string_equal(err.msg, "device cuda:0: this build has no CUDA backend (rebuild with "
                                     "-DKINFER_CUDA=ON)");
    } else {
        int n = kinfer_cuda_device_count();
        char dev[16];
        snprintf(dev, sizeof(dev), "cuda:%d", n);
        assert_int_equal(kinfer_replica_new(m, dev, 4, &r, &err), KINFER_ERR_DEVICE);
        assert_non_null(strstr(err.msg, "not present"));
    }
    assert_int_equal(kinfer_replica_new(m, "cpu", 4, &r, &err), KINFER_OK);
    assert_string_equal(kinfer_replica_device(r), "cpu");
    kinfer_replica_destroy(r);
    kinfer_model_destroy(m);
}

/* --- fp16 / bf16 converters ---------------------------------------------- */

static void test_fp16_known_values(void **state) {
    (void)state;
    assert_true(kinfer_fp16_to_fp32(0x3c00) == 1.0f);
    assert_true(kinfer_fp16_to_fp32(0xc000) == -2.0f);
    assert_true(kinfer_fp16_to_fp32(0x7bff) == 65504.0f);
    assert_true(kinfer_fp16_to_fp32(0x0400) == ldexpf(1.0f, -14));    /* smallest normal */
    assert_true(kinfer_fp16_to_fp32(0x0001) == ldexpf(1.0f, -24));    /* smallest subnormal */
    assert_true(kinfer_fp16_to_fp32(0x03ff) == ldexpf(1023.0f, -24)); /* largest subnormal */
    assert_true(kinfer_fp16_to_fp32(0x8001) == -ldexpf(1.0f, -24));
    assert_true(kinfer_fp16_to_fp32(0x0000) == 0.0f && !signbit(kinfer_fp16_to_fp32(0x0000)));
    assert_true(kinfer_fp16_to_fp32(0x8000) == 0.0f && signbit(kinfer_fp16_to_fp32(0x8000)));
    assert_true(isinf(kinfer_fp16_to_fp32(0x7c00)) && kinfer_fp16_to_fp32(0x7c00) > 0);
    assert_true(isinf(kinfer_fp16_to_fp32(0xfc00)) && kinfer_fp16_to_fp32(0xfc00) < 0);
    assert_true(isnan(kinfer_fp16_to_fp32(0x7e00)));
    assert_true(isnan(kinfer_fp16_to_fp32(0x7c01))); /* signalling-NaN payload stays NaN */
    assert_true(isnan(kinfer_fp16_to_fp32(0xfe00)));
}

static void test_fp16_exhaustive(void **state) {
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
        double want;
        if (exp == 31)
            want = man ? NAN : INFINITY;
        else if (exp == 0)
            want = ldexp((double)man, -24);
        else
            want = ldexp(1024.0 + man, (int)exp - 25);
        if (h & 0x8000)
            want = -want;
        float got = kinfer_fp16_to_fp32((uint16_t)h);
        if (isnan(want)) {
            assert_true(isnan(got));
            assert_true(isnan(kinfer_fp16_to_fp32(kinfer_fp32_to_fp16(got))));
            continue;
        }
        if ((double)got != want || !signbit(got) != !signbit(want))
            fail_msg("fp16 0x%04x -> %.9g, want %.9g", h, got, want);
        /* every fp16 value survives the round trip bit-exactly */
        assert_int_equal(kinfer_fp32_to_fp16(got), h);
    }
}

static void test_fp32_to_fp16_rounding(void **state) {
    (void)state;
    /* 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to even (1). */
    assert_int_equal(kinfer_fp32_to_fp16(1.0f + ldexpf(1, -11)), 0x3c00);
    /* 1 + 3*2^-11 is halfway between 1+2^-10 (odd) and 1+2^-9: up. */
    assert_int_equal(kinfer_fp32_to_fp16(1.0f + 3 * ldexpf(1, -11)), 0x3c02);
    assert_int_equal(kinfer_fp32_to_fp16(65520.0f), 0x7c00); /* rounds to inf */
    assert_int_equal(kinfer_fp32_to_fp16(65519.0f), 0x7bff);
    assert_int_equal(kinfer_fp32_to_fp16(1e9f), 0x7c00);
    assert_int_equal(kinfer_fp32_to_fp16(ldexpf(1, -25)), 0x0000); /* tie to even 0 */
    assert_int_equal(kinfer_fp32_to_fp16(ldexpf(1.5f, -25)), 0x0001);
    assert_int_equal(kinfer_fp32_to_fp16(ldexpf(1, -30)), 0x0000);
    assert_int_equal(kinfer_fp32_to_fp16(-ldexpf(1, -30)), 0x8000);
    /* largest subnormal rounding up into the smallest normal */
    assert_int_equal(kinfer_fp32_to_fp16(ldexpf(1023.75f, -24)), 0x0400);
}

static void test_bf16(void **state) {
    (void)state;
    assert_true(kinfer_bf16_to_fp32(0x3f80) == 1.0f);
    assert_true(kinfer_bf16_to_fp32(0xc040) == -3.0f);
    assert_true(kinfer_bf16_to_fp32(0x0001) == ldexpf(1, -133)); /* subnormal */
    assert_true(isinf(kinfer_bf16_to_fp32(0x7f80)));
    assert_true(isinf(kinfer_bf16_to_fp32(0xff80)) && kinfer_bf16_to_fp32(0xff80) < 0);
    assert_true(isnan(kinfer_bf16_to_fp32(0x7fc0)));
    assert_true(isnan(kinfer_bf16_to_fp32(0x7f81)));
    assert_true(signbit(kinfer_bf16_to_fp32(0x8000)));
    for (uint32_t b = 0; b < 65536; b++) {
        float f = kinfer_bf16_to_fp32((uint16_t)b);
        if (isnan(f))
            assert_true(isnan(kinfer_bf16_to_fp32(kinfer_fp32_to_bf16(f))));
        else
            assert_int_equal(kinfer_fp32_to_bf16(f), b);
    }
    float tie_even, tie_odd;
    uint32_t bits = 0x3f808000u; /* halfway between 0x3f80 and 0x3f81 */
    memcpy(&tie_even, &bits, 4);
    bits = 0x3f818000u; /* halfway between 0x3f81 and 0x3f82 */
    memcpy(&tie_odd, &bits, 4);
    assert_int_equal(kinfer_fp32_to_bf16(tie_even), 0x3f80);
    assert_int_equal(kinfer_fp32_to_bf16(tie_odd), 0x3f82);
    assert_int_equal(kinfer_fp32_to_bf16(3.4e38f), 0x7f80); /* rounds to inf */
}

static void test_bulk_converters_unaligned(void **state) {
    (void)state;
    uint8_t raw[9] = {0xAA, 0x00, 0x3c, 0x00, 0xc0, 0x01, 0x00, 0x00, 0x7c};
    float out[4];
    kinfer_fp16_to_fp32_n(raw + 1, out, 4);
    assert_true(out[0] == 1.0f && out[1] == -2.0f && out[2] == ldexpf(1, -24) && isinf(out[3]));
    uint8_t rawb[5] = {0x55, 0x80, 0x3f, 0x40, 0xc0};
    kinfer_bf16_to_fp32_n(rawb + 1, out, 2);
    assert_true(out[0] == 1.0f && out[1] == -3.0f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_ok_two_layers),
        cmocka_unit_test(test_missing_layer),
        cmocka_unit_test(test_extra_tensor),
        cmocka_unit_test(test_shape_chain_mismatch),
        cmocka_unit_test(test_bias_and_weight_shapes),
        cmocka_unit_test(test_weight_dtype),
        cmocka_unit_test(test_bad_format_is_named),
        cmocka_unit_test(test_activation_metadata_and_options),
        cmocka_unit_test(test_metadata_activations_used),
        cmocka_unit_test(test_unknown_kind),
        cmocka_unit_test(test_kind_table_info),
        cmocka_unit_test(test_device_parse),
        cmocka_unit_test(test_replica_devices),
        cmocka_unit_test(test_fp16_known_values),
        cmocka_unit_test(test_fp16_exhaustive),
        cmocka_unit_test(test_fp32_to_fp16_rounding),
        cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_bulk_converters_unaligned),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
