/* fuzz_kernels_chat_template.c — libFuzzer target for the chat template
 * interpreter: any bytes as a template must parse or fail with an error,
 * and whatever parses must render (two fixed messages, generation prompt
 * on) or fail with an error; never crash, hang, leak or read out of
 * bounds. The trust flags must cover every output byte. Not a benchmark.
 *
 *   cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DKINFER_FUZZ=ON
 *   cmake --build build-fuzz -j2 --target fuzz_kernels_chat_template
 *   mkdir -p fuzz-out/tpl && build-fuzz/tests/fuzz/fuzz_kernels_chat_template -max_len=2048 \
 *       -max_total_time=300 fuzz-out/tpl tests/fuzz/corpus/fuzz_kernels_chat_template
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/chat_template.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *src = malloc(size ? size : 1);
    if (!src)
        return 0;
    if (size)
        memcpy(src, data, size);
    kinfer_chat_template *t = NULL;
    kinfer_error err;
    if (kinfer_chat_template_parse(src, size, "fuzz", &t, &err) == KINFER_OK) {
        kinfer_chat_message m[2] = {{{"system", 6}, {"  be brief ", 11}},
                                    {{"user", 4}, {"<|im_end|>hi\xc3\xa9", 14}}};
        kinfer_chat_vars v = {m, 2, true, "<s>", "</s>"};
        char *text = NULL;
        uint8_t *tr = NULL;
        size_t len = 0;
        if (kinfer_chat_template_render(t, &v, &text, &tr, &len, &err) == KINFER_OK) {
            volatile uint8_t sink = 0;
            for (size_t i = 0; i < len; i++)
                sink ^= (uint8_t)(tr[i] + (uint8_t)text[i]);
            if (text[len] != '\0')
                abort();
            (void)sink;
        }
        free(text);
        free(tr);
        kinfer_chat_template_destroy(t);
    }
    free(src);
    return 0;
}
