/* bert_model.c — model kind `bert`: loading a Hugging Face directory
 * (config, tokenizer, weights), describing it, and the kind table entry
 * that model_registry.c lists. The request contract is in bert_request.c,
 * the forward pass in bert_cpu.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "bert_cuda.h"
#include "bert_model.h"
#include "ops/blas_cpu.h"
#include "kinfer/kinfer_log.h"
#include "kinfer/kinfer_device.h"

void bert_model_destroy(bert_model *m) {
    if (!m)
        return;
    bert_weights_free(m);
    kinfer_tokenizer_destroy(m->tok);
    for (uint32_t i = 0; m->labels && i < m->num_labels; i++)
        free(m->labels[i]);
    free(m->labels);
    free(m->label_strs);
    free(m->dir);
    free(m);
}

kinfer_err bert_model_load(const kinfer_model_options *opts, bert_model **out, kinfer_error *err) {
    *out = NULL;
    bert_model *m = calloc(1, sizeof(*m));
    if (!m || !(m->dir = strdup(opts->path))) {
        free(m);
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "%s: out of memory", opts->path);
    }
    size_t dl = strlen(m->dir);
    while (dl > 1 && m->dir[dl - 1] == '/')
        m->dir[--dl] = '\0';
    m->cpu_threads = opts->cpu_threads;
    kinfer_err rc = bert_config_load(m, err);
    if (rc == KINFER_OK)
        rc = kinfer_tokenizer_load_dir(m->dir, &m->tok, err);
    if (rc == KINFER_OK && kinfer_tokenizer_vocab_size(m->tok) > m->vocab)
        rc = kinfer_error_set(err, KINFER_ERR_MODEL_LOAD,
                              "%s: tokenizer has %u tokens but vocab_size is %u", m->dir,
                              kinfer_tokenizer_vocab_size(m->tok), m->vocab);
    if (rc == KINFER_OK)
        rc = bert_weights_load(m, err);
    if (rc != KINFER_OK) {
        bert_model_destroy(m);
        return rc;
    }
    *out = m;
    return KINFER_OK;
}

void bert_model_describe(const bert_model *m, char *buf, size_t buflen) {
    char pool[48] = "";
    static const char *const names[] = {"cls", "max", "mean", "mean_sqrt_len"};
    for (unsigned b = 0; b < 4; b++) {
        if (m->pooling & (1u << b)) {
            size_t l = strlen(pool);
            snprintf(pool + l, sizeof(pool) - l, "%s%s", l ? "+" : "", names[b]);
        }
    }
    snprintf(buf, buflen, "bert L%u H%u A%u I%u seq%u pool=%s%s%s%s %s%s%s", m->layers, m->hidden,
             m->heads, m->intermediate, m->max_seq_len, pool, m->normalize ? " normalize" : "",
             m->classifier ? " classifier labels=" : "",
             m->classifier ? (m->num_labels ? m->labels[0] : "") : "",
             kinfer_dtype_name(m->file_dtype),
             m->precision[0] && strcmp(m->precision, "fp32") != 0 ? " precision=" : "",
             m->precision[0] && strcmp(m->precision, "fp32") != 0 ? m->precision : "");
}

/* --- kind table entry ------------------------------------------------------ */

static kinfer_err kind_load(const kinfer_model_options *opts, void **impl, kinfer_error *err) {
    if (opts->activation || opts->output_activation)
        return kinfer_error_set(err, KINFER_ERR_CONFIG,
                                "activation overrides do not apply to kind bert");
    kinfer_dtype precision_dtype;
    if (!kinfer_precision_parse(opts->precision, &precision_dtype))
        return kinfer_error_set(err, KINFER_ERR_CONFIG, "precision \"%s\" (fp32, fp16, bf16, int8)",
                                opts->precision);
    bert_model *m;
    kinfer_err rc = bert_model_load(opts, &m, err);
    if (rc == KINFER_OK) {
        snprintf(m->precision, sizeof(m->precision), "%s",
                 opts->precision ? opts->precision : "fp32");
        *impl = m;
    }
    return rc;
}

static void kind_destroy(void *impl) {
    bert_model_destroy(impl);
}

static void kind_describe(const void *impl, char *buf, size_t buflen) {
    bert_model_describe(impl, buf, buflen);
}

static kinfer_err kind_check(const void *impl, const kinfer_tensor *inputs, size_t ninputs,
                             const kinfer_param *params, size_t nparams, kinfer_request_cost *cost,
                             kinfer_error *err) {
    return bert_check_request(impl, inputs, ninputs, params, nparams, cost, err);
}

static kinfer_err kind_replica_new(const void *impl, const kinfer_device *device, uint32_t max_rows,
                                   kinfer_replica_impl **out, kinfer_error *err) {
    const bert_model *m = impl;
    if (device->type == KINFER_DEVICE_CUDA) {
#ifdef KINFER_HAVE_CUDA
        /* kinfer_replica_new has checked that the device is present. */
        if (strcmp(m->precision, "int8") == 0)
            return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                    "device %s: precision int8 runs on the cpu backend only "
                                    "(GPUs take fp32, fp16 or bf16)",
                                    device->name);
        return bert_cuda_replica_new(m, device->index, max_rows, m->precision, out, err);
#else
        return kinfer_error_set(err, KINFER_ERR_DEVICE,
                                "device %s: this build has no CUDA backend (rebuild with "
                                "-DKINFER_CUDA=ON)",
                                device->name);
#endif
    }
    if (device->type != KINFER_DEVICE_CPU)
        return kinfer_error_set(err, KINFER_ERR_DEVICE, "kind bert has no %s backend",
                                device->name);
    kinfer_blas_cpu_request_threads(m->cpu_threads);
#if defined(__x86_64__) && defined(__GNUC__)
    /* OpenBLAS's DYNAMIC_ARCH falls back to its SSE3 kernels on CPUs it does
     * not recognise (some VMs), at a third of the speed; only the
     * environment can fix it, before the process starts. */
    const char *core = openblas_get_corename();
    if (core && strcmp(core, "Prescott") == 0 && __builtin_cpu_supports("avx2"))
        KINFER_LOGW("bert.openblas_slow_core",
                    "core=%s hint=\"set OPENBLAS_CORETYPE=Haswell (or SkylakeX with AVX-512) in "
                    "the environment: the CPU has AVX2\"",
                    core);
#endif
    return bert_cpu_replica_new(m, max_rows, out, err);
}

static void kind_io(const void *impl, kinfer_model_info *info) {
    const bert_model *m = impl;
    info->input_dtype = KINFER_DTYPE_STRING; /* texts; pre-tokenized INT64 ids too */
    info->input_width = 0;
    info->output_width = m->out_dim; /* `embedding`; classifiers add `logits` */
}

static const char *const bert_precisions[] = {"fp32", "fp16", "bf16", "int8", NULL};

const kinfer_model_kind_ops bert_kind_ops = {
    .info =
        {
            .name = "bert",
            .summary = "a BERT-family encoder from a Hugging Face model directory (config.json, "
                       "model.safetensors, vocab.txt or tokenizer.json)",
            .path = KINFER_MODEL_PATH_DIR,
            .precisions = bert_precisions,
        },
    .load = kind_load,
    .destroy = kind_destroy,
    .describe = kind_describe,
    .io = kind_io,
    .check_request = kind_check,
    .replica_new = kind_replica_new,
};
