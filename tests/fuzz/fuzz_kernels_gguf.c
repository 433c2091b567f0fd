/* fuzz_kernels_gguf.c — libFuzzer target for the GGUF reader: any byte
 * string must either open cleanly (and then every string, array and tensor
 * lies inside the input, tensors are aligned and never overlap) or fail
 * with an error; never crash, leak or read out of bounds. Not a benchmark.
 *
 *   cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DKINFER_FUZZ=ON
 *   cmake --build build-fuzz -j2 --target fuzz_kernels_gguf
 *   mkdir -p fuzz-out/gguf && build-fuzz/tests/fuzz/fuzz_kernels_gguf -max_len=8192 \
 *       -max_total_time=300 fuzz-out/gguf tests/fuzz/corpus/fuzz_kernels_gguf
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void inside(const uint8_t *base, size_t size, const void *p, size_t n) {
    const uint8_t *q = p;
    if (n && (q < base || q + n > base + size))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* A private exact-size copy: ASan then flags any read past `size`. */
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    if (size)
        memcpy(copy, data, size);
    kinfer_gguf *g = NULL;
    kinfer_error err;
    if (kinfer_gguf_open_memory(copy, size, "fuzz", &g, &err) == KINFER_OK) {
        volatile uint64_t sink = 0;
        for (size_t i = 0; i < kinfer_gguf_kv_count(g); i++) {
            const kinfer_gguf_kv *kv = kinfer_gguf_kv_at(g, i);
            if (kinfer_gguf_find(g, kv->key) != kv)
                abort();
            if (kv->type == KINFER_GGUF_STRING)
                inside(copy, size, kv->str.ptr, kv->str.len);
            if (kv->type != KINFER_GGUF_ARRAY)
                continue;
            if (kv->elem_type == KINFER_GGUF_STRING) {
                for (uint64_t j = 0; j < kv->count; j++)
                    inside(copy, size, kv->strs[j].ptr, kv->strs[j].len);
            } else if (kv->count) {
                sink += (uint64_t)kinfer_gguf_arr_int(kv, 0);
                sink += (uint64_t)kinfer_gguf_arr_float(kv, kv->count - 1);
            }
            uint32_t u;
            double f;
            kinfer_str s;
            (void)kinfer_gguf_get_u32(g, kv->key, true, &u, &err);
            (void)kinfer_gguf_get_f64(g, kv->key, true, &f, &err);
            (void)kinfer_gguf_get_str(g, kv->key, true, &s, &err);
        }
        uint32_t align = kinfer_gguf_alignment(g);
        for (size_t i = 0; i < kinfer_gguf_tensor_count(g); i++) {
            const kinfer_gguf_tensor *t = kinfer_gguf_tensor_at(g, i);
            if (kinfer_gguf_tensor_find(g, t->name) != t || !kinfer_gguf_type_name(t->type))
                abort();
            if (t->nbytes !=
                t->numel / kinfer_gguf_type_block(t->type) * kinfer_gguf_type_block_bytes(t->type))
                abort();
            inside(copy, size, t->data, t->nbytes);
            if (t->nbytes && ((const uint8_t *)t->data - copy) % align != 0)
                abort();
            if (t->nbytes)
                sink += ((const uint8_t *)t->data)[t->nbytes - 1];
        }
        (void)sink;
        kinfer_gguf_close(g);
    }
    free(copy);
    return 0;
}
