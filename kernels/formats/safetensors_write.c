/* safetensors_write.c — writes small safetensors files for tests, benches
 * and tools. Produces what the reference writer does (compact JSON header
 * padded with spaces to 8 bytes, data in the order given). Not used on the
 * serving path. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"

static kinfer_err build_header(const kinfer_st_write_tensor *tensors, size_t ntensors,
                               const char *const *meta_keys, const char *const *meta_values,
                               size_t nmeta, char **out, size_t *data_len, kinfer_error *err) {
    json_t *root = json_object();
    if (!root)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
    kinfer_err rc = KINFER_OK;
    if (nmeta) {
        json_t *meta = json_object();
        json_object_set_new(root, "__metadata__", meta);
        for (size_t i = 0; i < nmeta && meta; i++)
            json_object_set_new(meta, meta_keys[i], json_string(meta_values[i]));
    }
    uint64_t off = 0;
    for (size_t i = 0; i < ntensors; i++) {
        const kinfer_st_write_tensor *t = &tensors[i];
        const char *dt = kinfer_st_dtype_name(t->dtype);
        if (!dt || t->ndim < 0 || t->ndim > KINFER_MAX_DIMS) {
            rc = kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                  "safetensors write: tensor '%s': bad dtype or ndim", t->name);
            goto out;
        }
        uint64_t numel = 1;
        json_t *shape = json_array();
        for (int d = 0; d < t->ndim; d++) {
            numel *= (uint64_t)t->shape[d];
            json_array_append_new(shape, json_integer(t->shape[d]));
        }
        uint64_t nbytes = numel * kinfer_dtype_size(t->dtype);
        json_t *entry = json_pack("{s:s, s:o, s:[I, I]}", "dtype", dt, "shape", shape,
                                  "data_offsets", (json_int_t)off, (json_int_t)(off + nbytes));
        if (!entry || json_object_set_new(root, t->name, entry) != 0) {
            rc = kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
            goto out;
        }
        off += nbytes;
    }
    char *text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!text) {
        rc = kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
        goto out;
    }
    *out = text;
    *data_len = (size_t)off;
out:
    json_decref(root);
    return rc;
}

kinfer_err kinfer_safetensors_write(const char *path, const kinfer_st_write_tensor *tensors,
                                    size_t ntensors, const char *const *meta_keys,
                                    const char *const *meta_values, size_t nmeta,
                                    kinfer_error *err) {
    char *header = NULL;
    size_t data_len = 0;
    kinfer_err rc =
        build_header(tensors, ntensors, meta_keys, meta_values, nmeta, &header, &data_len, err);
    if (rc != KINFER_OK)
        return rc;
    size_t hlen = strlen(header);
    size_t padded = (hlen + 7) / 8 * 8;
    FILE *f = fopen(path, "wb");
    if (!f) {
        free(header);
        return kinfer_error_set(err, KINFER_ERR_IO, "%s: cannot create", path);
    }
    uint8_t prefix[8];
    for (int i = 0; i < 8; i++)
        prefix[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    int ok = fwrite(prefix, 1, 8, f) == 8 && fwrite(header, 1, hlen, f) == hlen;
    for (size_t i = hlen; i < padded && ok; i++)
        ok = fputc(' ', f) != EOF;
    for (size_t i = 0; i < ntensors && ok; i++) {
        uint64_t numel = 1;
        for (int d = 0; d < tensors[i].ndim; d++)
            numel *= (uint64_t)tensors[i].shape[d];
        size_t nbytes = (size_t)numel * kinfer_dtype_size(tensors[i].dtype);
        ok = nbytes == 0 || fwrite(tensors[i].data, 1, nbytes, f) == nbytes;
    }
    free(header);
    if (fclose(f) != 0 || !ok)
        return kinfer_error_set(err, KINFER_ERR_IO, "%s: write failed", path);
    (void)data_len;
    return KINFER_OK;
}
