/* mlp_model.c — loads model kind `mlp` from safetensors: finds layers
 * 0..L-1, checks the shape chain, takes F32 weights from the mapping when
 * aligned and converts F16/BF16 (or copies unaligned F32) into one owned
 * arena; activations come from __metadata__ unless the options override.
 * Also the kind-table glue. Request checks live in mlp_request.c. */
#include "mlp_model.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "ops/convert.h"
#include "kinfer/kinfer_device.h"
#include "model_registry.h"

static const char *const act_names[KINFER_ACT_COUNT] = {
    [KINFER_ACT_NONE] = "none", [KINFER_ACT_RELU] = "relu",       [KINFER_ACT_GELU] = "gelu",
    [KINFER_ACT_TANH] = "tanh", [KINFER_ACT_SIGMOID] = "sigmoid",
};
static const char *const out_act_names[MLP_OUT_COUNT] = {
    [MLP_OUT_NONE] = "none",
    [MLP_OUT_SIGMOID] = "sigmoid",
    [MLP_OUT_SOFTMAX] = "softmax",
};
_Static_assert(sizeof(act_names) / sizeof(act_names[0]) == KINFER_ACT_COUNT,
               "activation names must cover every activation");
_Static_assert(sizeof(out_act_names) / sizeof(out_act_names[0]) == MLP_OUT_COUNT,
               "output activation names must cover every output activation");

const char *mlp_activation_name(kinfer_activation act) {
    return (unsigned)act < KINFER_ACT_COUNT ? act_names[act] : "?";
}

const char *mlp_output_act_name(mlp_output_act act) {
    return (unsigned)act < MLP_OUT_COUNT ? out_act_names[act] : "?";
}

int mlp_activation_parse(const char *text, kinfer_activation *out) {
    for (int i = 0; i < KINFER_ACT_COUNT; i++) {
        if (strcmp(text, act_names[i]) == 0) {
            *out = (kinfer_activation)i;
            return 0;
        }
    }
    return -1;
}

int mlp_output_act_parse(const char *text, mlp_output_act *out) {
    for (int i = 0; i < MLP_OUT_COUNT; i++) {
        if (strcmp(text, out_act_names[i]) == 0) {
            *out = (mlp_output_act)i;
            return 0;
        }
    }
    return -1;
}

/* Parses exactly "layers.<i>.weight" / "layers.<i>.bias" (decimal i without
 * leading zeros). Returns 0 and fills idx/is_bias on a match. */
static int parse_layer_name(const char *name, uint32_t *idx, int *is_bias) {
    if (strncmp(name, "layers.", 7) != 0)
        return -1;
    const char *p = name + 7;
    if (*p < '0' || *p > '9' || (p[0] == '0' && p[1] >= '0' && p[1] <= '9'))
        return -1;
    uint64_t v = 0;
    while (*p >= '0' && *p <= '9') {
        v = v * 10 + (uint64_t)(*p++ - '0');
        if (v > MLP_MAX_LAYERS * 10ull)
            return -1;
    }
    if (strcmp(p, ".weight") == 0)
        *is_bias = 0;
    else if (strcmp(p, ".bias") == 0)
        *is_bias = 1;
    else
        return -1;
    *idx = (uint32_t)v;
    return 0;
}

static kinfer_err load_error(kinfer_error *err, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static kinfer_err load_error(kinfer_error *err, const char *path, const char *fmt, ...) {
    char msg[KINFER_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD, "%s: %s", path, msg);
}

static kinfer_err check_weight_dtype(const kinfer_st_tensor *t, const char *path,
                                     kinfer_error *err) {
    if (t->dtype == KINFER_DTYPE_FP32 || t->dtype == KINFER_DTYPE_FP16 ||
        t->dtype == KINFER_DTYPE_BF16)
        return KINFER_OK;
    return load_error(err, path,
                      "tensor '%s': dtype %s not supported for mlp weights (F32, F16, "
                      "BF16)",
                      t->name, kinfer_st_dtype_name(t->dtype));
}

/* F32 data usable in place: a float load from it must be aligned. */
static int usable_in_place(const kinfer_st_tensor *t) {
    return t->dtype == KINFER_DTYPE_FP32 && ((uintptr_t)t->data % sizeof(float)) == 0;
}

static size_t floats_to_own(const kinfer_st_tensor *t) {
    return usable_in_place(t) ? 0 : (size_t)t->numel;
}

/* Returns the FP32 view of t: the mapping itself, or a conversion into
 * *arena (which advances). */
static const float *materialise(const kinfer_st_tensor *t, float **arena) {
    if (usable_in_place(t))
        return t->data;
    float *dst = *arena;
    size_t n = (size_t)t->numel;
    if (t->dtype == KINFER_DTYPE_FP16)
        kinfer_fp16_to_fp32_n(t->data, dst, n);
    else if (t->dtype == KINFER_DTYPE_BF16)
        kinfer_bf16_to_fp32_n(t->data, dst, n);
    else if (n)
        memcpy(dst, t->data, n * sizeof(float)); /* unaligned F32 */
    *arena += n;
    return dst;
}

/* Validates names and shapes; fills m->layers' dims and m->nlayers. */
static kinfer_err check_layers(mlp_model *m, const kinfer_safetensors *st, kinfer_error *err) {
    const char *path = m->path;
    char name[64];
    uint32_t L = 0;
    for (;;) {
        snprintf(name, sizeof(name), "layers.%u.weight", L);
        if (!kinfer_safetensors_find(st, name) || L == MLP_MAX_LAYERS)
            break;
        L++;
    }
    snprintf(name, sizeof(name), "layers.%u.weight", L);
    if (L == MLP_MAX_LAYERS && kinfer_safetensors_find(st, name))
        return load_error(err, path, "more than %u layers", MLP_MAX_LAYERS);
    if (L == 0)
        return load_error(err, path,
                          "no tensor 'layers.0.weight' (an mlp file holds layers.{i}.weight "
                          "[out, in] and layers.{i}.bias [out], i = 0..L-1)");
    size_t n = kinfer_safetensors_count(st);
    for (size_t i = 0; i < n; i++) {
        const kinfer_st_tensor *t = kinfer_safetensors_at(st, i);
        uint32_t idx;
        int is_bias;
        if (parse_layer_name(t->name, &idx, &is_bias) != 0)
            return load_error(err, path,
                              "unexpected tensor '%.96s' (an mlp file holds only "
                              "layers.{i}.weight and layers.{i}.bias)",
                              t->name);
        if (idx >= L)
            return load_error(err, path,
                              "tensor '%s' but no 'layers.%u.weight': layers must be numbered "
                              "0..L-1 without gaps",
                              t->name, L);
    }
    m->layers = calloc(L, sizeof(*m->layers));
    if (!m->layers)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "%s: out of memory", path);
    m->nlayers = L;
    for (uint32_t l = 0; l < L; l++) {
        snprintf(name, sizeof(name), "layers.%u.weight", l);
        const kinfer_st_tensor *w = kinfer_safetensors_find(st, name);
        snprintf(name, sizeof(name), "layers.%u.bias", l);
        const kinfer_st_tensor *b = kinfer_safetensors_find(st, name);
        char shp[160];
        kinfer_shape_format(w->shape, w->ndim, shp, sizeof(shp));
        if (w->ndim != 2 || w->shape[0] < 1 || w->shape[1] < 1 || w->shape[0] > MLP_MAX_WIDTH ||
            w->shape[1] > MLP_MAX_WIDTH)
            return load_error(err, path,
                              "tensor '%s': shape %s, expected [out, in] with 1 <= out, in <= %u",
                              w->name, shp, MLP_MAX_WIDTH);
        if (!b)
            return load_error(err, path, "missing tensor 'layers.%u.bias' (shape [%lld])", l,
                              (long long)w->shape[0]);
        if (b->ndim != 1 || b->shape[0] != w->shape[0]) {
            char bshp[160];
            kinfer_shape_format(b->shape, b->ndim, bshp, sizeof(bshp));
            return load_error(err, path, "tensor '%s': shape %s, expected [%lld] to match '%s' %s",
                              b->name, bshp, (long long)w->shape[0], w->name, shp);
        }
        if (l > 0 && (uint32_t)w->shape[1] != m->layers[l - 1].out)
            return load_error(err, path,
                              "tensor '%s': shape %s takes %lld inputs but layer %u outputs %u "
                              "(shape chain mismatch)",
                              w->name, shp, (long long)w->shape[1], l - 1, m->layers[l - 1].out);
        if (check_weight_dtype(w, path, err) != KINFER_OK ||
            check_weight_dtype(b, path, err) != KINFER_OK)
            return KINFER_ERR_MODEL_LOAD;
        m->layers[l].out = (uint32_t)w->shape[0];
        m->layers[l].in = (uint32_t)w->shape[1];
    }
    return KINFER_OK;
}

static kinfer_err materialise_layers(mlp_model *m, const kinfer_safetensors *st,
                                     kinfer_error *err) {
    char name[64];
    const kinfer_st_tensor *tw[2];
    size_t own = 0;
    for (uint32_t l = 0; l < m->nlayers; l++) {
        snprintf(name, sizeof(name), "layers.%u.weight", l);
        own += floats_to_own(kinfer_safetensors_find(st, name));
        snprintf(name, sizeof(name), "layers.%u.bias", l);
        own += floats_to_own(kinfer_safetensors_find(st, name));
    }
    if (own) {
        m->owned = malloc(own * sizeof(float));
        if (!m->owned)
            return kinfer_error_set(err, KINFER_ERR_NOMEM,
                                    "%s: out of memory converting %zu weights", m->path, own);
    }
    float *arena = m->owned;
    for (uint32_t l = 0; l < m->nlayers; l++) {
        snprintf(name, sizeof(name), "layers.%u.weight", l);
        tw[0] = kinfer_safetensors_find(st, name);
        snprintf(name, sizeof(name), "layers.%u.bias", l);
        tw[1] = kinfer_safetensors_find(st, name);
        m->layers[l].weight = materialise(tw[0], &arena);
        m->layers[l].bias = materialise(tw[1], &arena);
    }
    m->file_dtype = kinfer_safetensors_find(st, "layers.0.weight")->dtype;
    return KINFER_OK;
}

/* Options first (a config mistake), then the file's metadata. */
static kinfer_err resolve_activations(mlp_model *m, const kinfer_model_options *opts,
                                      const kinfer_safetensors *st, kinfer_error *err) {
    const char *act = opts->activation;
    const char *out_act = opts->output_activation;
    const char *from_act = "option 'activation'", *from_out = "option 'output_activation'";
    if (!act) {
        act = kinfer_safetensors_metadata(st, "activation");
        from_act = "__metadata__ 'activation'";
    }
    if (!out_act) {
        out_act = kinfer_safetensors_metadata(st, "output_activation");
        from_out = "__metadata__ 'output_activation'";
    }
    kinfer_err code = opts->activation ? KINFER_ERR_CONFIG : KINFER_ERR_MODEL_LOAD;
    if (act && mlp_activation_parse(act, &m->activation) != 0)
        return kinfer_error_set(err, code,
                                "%s: %s is '%.64s', expected relu, gelu, tanh, sigmoid or none",
                                m->path, from_act, act);
    code = opts->output_activation ? KINFER_ERR_CONFIG : KINFER_ERR_MODEL_LOAD;
    if (out_act && mlp_output_act_parse(out_act, &m->output_activation) != 0)
        return kinfer_error_set(err, code, "%s: %s is '%.64s', expected none, sigmoid or softmax",
                                m->path, from_out, out_act);
    return KINFER_OK;
}

kinfer_err mlp_model_load(const kinfer_model_options *opts, mlp_model **out, kinfer_error *err) {
    *out = NULL;
    const char *precision = opts->precision ? opts->precision : "fp32";
    kinfer_dtype precision_dtype;
    if (!kinfer_precision_parse(precision, &precision_dtype))
        return kinfer_error_set(err, KINFER_ERR_CONFIG,
                                "%s: precision '%.32s', expected fp32, fp16, bf16 or int8",
                                opts->path, precision);
    if (opts->nan_policy != KINFER_NAN_REJECT && opts->nan_policy != KINFER_NAN_PASS)
        return kinfer_error_set(err, KINFER_ERR_CONFIG, "%s: invalid nan_policy %d", opts->path,
                                (int)opts->nan_policy);
    mlp_model *m = calloc(1, sizeof(*m));
    if (!m)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "%s: out of memory", opts->path);
    m->path = strdup(opts->path);
    if (!m->path) {
        free(m);
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "%s: out of memory", opts->path);
    }
    snprintf(m->precision, sizeof(m->precision), "%s", precision);
    m->nan_policy = opts->nan_policy;
    m->cpu_threads = opts->cpu_threads;
    m->activation = KINFER_ACT_RELU;
    m->output_activation = MLP_OUT_NONE;
    kinfer_err rc = kinfer_safetensors_open(opts->path, &m->file, err);
    if (rc == KINFER_OK)
        rc = resolve_activations(m, opts, m->file, err);
    if (rc == KINFER_OK)
        rc = check_layers(m, m->file, err);
    if (rc == KINFER_OK)
        rc = materialise_layers(m, m->file, err);
    if (rc != KINFER_OK) {
        mlp_model_destroy(m);
        return rc;
    }
    m->in_width = m->layers[0].in;
    m->out_width = m->layers[m->nlayers - 1].out;
    m->max_width = m->in_width;
    for (uint32_t l = 0; l < m->nlayers; l++)
        if (m->layers[l].out > m->max_width)
            m->max_width = m->layers[l].out;
    *out = m;
    return KINFER_OK;
}

void mlp_model_destroy(mlp_model *model) {
    if (!model)
        return;
    kinfer_safetensors_close(model->file);
    free(model->owned);
    free(model->layers);
    free(model->path);
    free(model);
}

void mlp_model_describe(const mlp_model *m, char *buf, size_t buflen) {
    if (buflen == 0)
        return;
    size_t off = 0;
    /* Appends while there is room; snprintf truncates the last piece. */
#define APPEND(...)                                                                                \
    do {                                                                                           \
        if (off < buflen) {                                                                        \
            int n_ = snprintf(buf + off, buflen - off, __VA_ARGS__);                               \
            off += n_ > 0 ? (size_t)n_ : 0;                                                        \
        }                                                                                          \
    } while (0)
    APPEND("mlp %u", m->in_width);
    for (uint32_t l = 0; l < m->nlayers; l++)
        APPEND("-%u", m->layers[l].out);
    APPEND(" %s/%s", mlp_activation_name(m->activation), mlp_output_act_name(m->output_activation));
    if (m->file_dtype != KINFER_DTYPE_FP32)
        APPEND(" weights=%s", kinfer_st_dtype_name(m->file_dtype));
    if (strcmp(m->precision, "fp32") != 0)
        APPEND(" precision=%s", m->precision);
#undef APPEND
}

/* --- kind table glue -------------------------------------------------- */

static kinfer_err kind_load(const kinfer_model_options *opts, void **impl, kinfer_error *err) {
    mlp_model *m;
    kinfer_err rc = mlp_model_load(opts, &m, err);
    *impl = m;
    return rc;
}

static void kind_destroy(void *impl) {
    mlp_model_destroy(impl);
}

static void kind_describe(const void *impl, char *buf, size_t buflen) {
    mlp_model_describe(impl, buf, buflen);
}

static kinfer_err kind_check_request(const void *impl, const kinfer_tensor *inputs, size_t ninputs,
                                     const kinfer_param *params, size_t nparams,
                                     kinfer_request_cost *cost, kinfer_error *err) {
    return mlp_check_request(impl, inputs, ninputs, params, nparams, cost, err);
}

static kinfer_err kind_replica_new(const void *impl, const kinfer_device *device, uint32_t max_rows,
                                   kinfer_replica_impl **out, kinfer_error *err) {
    const mlp_model *m = impl;
    switch (device->type) {
    case KINFER_DEVICE_CPU:
        return mlp_cpu_replica_new(m, max_rows, out, err);
    case KINFER_DEVICE_CUDA:
#ifdef KINFER_HAVE_CUDA
        if (strcmp(m->precision, "int8") == 0)
            return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                    "device %s: precision int8 runs on the cpu backend only "
                                    "(GPUs take fp32, fp16 or bf16)",
                                    device->name);
        return mlp_cuda_replica_new(m, device->index, max_rows, m->precision, out, err);
#else
        break;
#endif
    }
    return kinfer_error_set(err, KINFER_ERR_DEVICE, "device %s: no mlp backend in this build",
                            device->name);
}

static void kind_io(const void *impl, kinfer_model_info *info) {
    const mlp_model *m = impl;
    info->input_dtype = KINFER_DTYPE_FP32;
    info->input_width = m->in_width;
    info->output_width = m->out_width;
}

/* What the configuration may set for kind mlp (kinfer_model_kind_info).
 * The activation lists are in the order the docs show them; every entry
 * parses with mlp_activation_parse / mlp_output_act_parse (test_mlp_load). */
static const char *const mlp_precisions[] = {"fp32", "fp16", "bf16", "int8", NULL};
static const char *const mlp_activations[] = {"relu", "gelu", "tanh", "sigmoid", "none", NULL};
static const char *const mlp_output_activations[] = {"none", "sigmoid", "softmax", NULL};
static const char *const mlp_options[] = {"activation", "output_activation", NULL};
_Static_assert(sizeof(mlp_activations) / sizeof(mlp_activations[0]) == KINFER_ACT_COUNT + 1,
               "every activation is offered to the config");
_Static_assert(sizeof(mlp_output_activations) / sizeof(mlp_output_activations[0]) ==
                   MLP_OUT_COUNT + 1,
               "every output activation is offered to the config");

const kinfer_model_kind_ops mlp_kind_ops = {
    .info =
        {
            .name = "mlp",
            .summary = "dense layers with activations, weights in one safetensors file",
            .path = KINFER_MODEL_PATH_FILE,
            .precisions = mlp_precisions,
            .activations = mlp_activations,
            .output_activations = mlp_output_activations,
            .options = mlp_options,
        },
    .load = kind_load,
    .destroy = kind_destroy,
    .describe = kind_describe,
    .io = kind_io,
    .check_request = kind_check_request,
    .replica_new = kind_replica_new,
};
