/* codec_avro_write.c — the growable output buffer behind the encoders. The
 * write primitives themselves are inline in codec_avro.h. */
#include "codec_avro.h"

#include <stdlib.h>

bool codec_buf_grow(codec_buf *b, size_t need) {
    if (b->oom)
        return false;
    if (need > SIZE_MAX / 2 - b->len) {
        b->oom = true;
        return false;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < need)
        cap *= 2;
    uint8_t *p = realloc(b->data, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->data = p;
    b->cap = cap;
    return true;
}

void codec_buf_free(codec_buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->oom = false;
}
