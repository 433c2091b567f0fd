/* fuzz_codec_canonical.c — libFuzzer target for the Avro Parsing Canonical
 * Form code: any bytes as schema JSON must give a canonical form or an
 * error, never a crash or leak; and canonicalising a canonical form must
 * give it back unchanged (the form is a fixed point). Not a benchmark.
 *
 *   cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DKINFER_FUZZ=ON
 *   cmake --build build-fuzz -j2 --target fuzz_codec_canonical
 *   mkdir -p fuzz-out/canonical && build-fuzz/tests/fuzz/fuzz_codec_canonical \
 *       -max_len=2048 -max_total_time=300 fuzz-out/canonical tests/fuzz/corpus/fuzz_codec_canonical
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kinfer/kinfer_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    char *form = NULL, *again = NULL;
    kinfer_error err;
    if (kinfer_codec_canonical_form(text, &form, &err) == KINFER_OK) {
        if (kinfer_codec_canonical_form(form, &again, &err) != KINFER_OK ||
            strcmp(form, again) != 0)
            __builtin_trap();
        (void)kinfer_codec_crc64_avro(form, strlen(form));
    }
    free(again);
    free(form);
    free(text);
    return 0;
}
