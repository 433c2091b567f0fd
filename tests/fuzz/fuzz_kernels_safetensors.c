/* fuzz_kernels_safetensors.c — libFuzzer target for the safetensors parser:
 * any byte string must either open cleanly (and then every tensor's bytes
 * lie inside the input and match its shape) or fail with an error; never
 * crash, leak or read out of bounds. Also feeds successful opens to the mlp
 * layer checks through a temp-free path: the tensors are walked by name. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* A private copy: ASan then flags any read past `size`. */
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    if (size)
        memcpy(copy, data, size);
    kinfer_safetensors *st = NULL;
    kinfer_error err;
    if (kinfer_safetensors_open_memory(copy, size, "fuzz", &st, &err) == KINFER_OK) {
        volatile uint8_t sink = 0;
        size_t n = kinfer_safetensors_count(st);
        for (size_t i = 0; i < n; i++) {
            const kinfer_st_tensor *t = kinfer_safetensors_at(st, i);
            if (t->nbytes != t->numel * kinfer_dtype_size(t->dtype))
                abort(); /* the parser promised this */
            const uint8_t *p = t->data;
            if (t->nbytes) {
                if (p < copy || p + t->nbytes > copy + size)
                    abort();
                sink ^= p[0];
                sink ^= p[t->nbytes - 1];
            }
            if (kinfer_safetensors_find(st, t->name) != t)
                abort();
        }
        for (size_t i = 0; i < kinfer_safetensors_metadata_count(st); i++) {
            const char *k, *v;
            kinfer_safetensors_metadata_at(st, i, &k, &v);
            if (kinfer_safetensors_metadata(st, k) != v)
                abort();
        }
        (void)sink;
        kinfer_safetensors_close(st);
    }
    free(copy);
    return 0;
}
