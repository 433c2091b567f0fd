/* device.c — parses device names ("cpu", "cuda:N") for the whole program and
 * reports the CUDA device count (0 in builds without the CUDA backend).
 * Presence checks and backend choice live in kinfer_model.c. */
#include "kinfer/kinfer_device.h"

#include <stdio.h>
#include <string.h>

#include "ops/dense_cpu.h"
#ifdef KINFER_HAVE_CUDA
#include "backend.h"
#endif

static kinfer_err bad_device(const char *text, kinfer_error *err) {
    return kinfer_error_set(err, KINFER_ERR_DEVICE,
                            "device '%.64s': unknown device (expected \"cpu\" or \"cuda:N\" with N "
                            "in 0..%d)",
                            text, KINFER_DEVICE_MAX_INDEX);
}

kinfer_err kinfer_device_parse(const char *text, kinfer_device *out, kinfer_error *err) {
    if (!text)
        return kinfer_error_set(err, KINFER_ERR_DEVICE, "device: no device name given");
    if (strcmp(text, "cpu") == 0) {
        out->type = KINFER_DEVICE_CPU;
        out->index = 0;
        snprintf(out->name, sizeof(out->name), "cpu");
        return KINFER_OK;
    }
    if (strncmp(text, "cuda:", 5) != 0)
        return bad_device(text, err);
    const char *d = text + 5;
    size_t len = strlen(d);
    /* Digits only: no sign, spaces or hex; "007" is refused so that one
     * device has one name (metrics and logs key on it). */
    if (len == 0 || len > 3 || (len > 1 && d[0] == '0'))
        return bad_device(text, err);
    int index = 0;
    for (size_t i = 0; i < len; i++) {
        if (d[i] < '0' || d[i] > '9')
            return bad_device(text, err);
        index = index * 10 + (d[i] - '0');
    }
    if (index > KINFER_DEVICE_MAX_INDEX)
        return bad_device(text, err);
    out->type = KINFER_DEVICE_CUDA;
    out->index = index;
    snprintf(out->name, sizeof(out->name), "cuda:%d", index);
    return KINFER_OK;
}

bool kinfer_cuda_built(void) {
#ifdef KINFER_HAVE_CUDA
    return true;
#else
    return false;
#endif
}

int kinfer_cuda_device_count(void) {
#ifdef KINFER_HAVE_CUDA
    int n = kinfer_cuda_backend_device_count();
    return n > 0 ? n : 0;
#else
    return 0;
#endif
}

bool kinfer_precision_parse(const char *precision, kinfer_dtype *out) {
    if (!precision || strcmp(precision, "fp32") == 0)
        *out = KINFER_DTYPE_FP32;
    else if (strcmp(precision, "fp16") == 0)
        *out = KINFER_DTYPE_FP16;
    else if (strcmp(precision, "bf16") == 0)
        *out = KINFER_DTYPE_BF16;
    else if (strcmp(precision, "int8") == 0)
        *out = KINFER_DTYPE_INT8;
    else
        return false;
    return true;
}

const char *kinfer_cpu_dense_isa(void) {
    return kinfer_dense_isa();
}
