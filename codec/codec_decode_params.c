/* codec_decode_params.c — the request's parameters map<string> into the
 * decoder's reused kinfer_param array. Duplicate keys are rejected (Avro
 * readers disagree on which one wins). */
#include "codec_decoder.h"

#include <stdio.h>
#include <stdlib.h>

kinfer_err codec_decode_params(kinfer_codec_decoder *dec, codec_reader *r, const kinfer_param **out,
                               size_t *nout) {
    size_t count, n = 0, stored = 0;
    for (;;) {
        /* An entry is a key and a value, each at least one byte. */
        kinfer_err rc = codec_read_block(r, "parameters", 2, &count);
        if (rc != KINFER_OK)
            return rc;
        if (count == 0)
            break;
        size_t want = stored + count;
        if (want > dec->limits.max_params)
            want = dec->limits.max_params;
        if (want > dec->params_cap) {
            size_t cap = dec->params_cap ? dec->params_cap : 8;
            while (cap < want)
                cap *= 2;
            kinfer_param *p = realloc(dec->params, cap * sizeof(*p));
            if (!p)
                return kinfer_error_set(r->err, KINFER_ERR_NOMEM, "codec decoder: out of memory");
            dec->params = p;
            dec->params_cap = cap;
        }
        for (size_t k = 0; k < count; k++, n++) {
            kinfer_param prm;
            if ((rc = codec_read_bytes(r, "key", &prm.key)) != KINFER_OK ||
                (rc = codec_read_bytes(r, "value", &prm.value)) != KINFER_OK)
                return codec_error_path(r->err, rc, "parameters[%zu].", n);
            codec_check_text(dec, prm.key, dec->limits.max_name_bytes, "parameters[%zu].key", n);
            codec_check_text(dec, prm.value, dec->limits.max_string_bytes, "parameters[%zu].value",
                             n);
            if (n >= dec->limits.max_params) {
                if (n == dec->limits.max_params)
                    codec_soft(dec, KINFER_ERR_TOO_LARGE, "parameters: more than %u entries",
                               dec->limits.max_params);
                continue;
            }
            for (size_t j = 0; j < stored && !dec->has_soft; j++) {
                if (dec->params[j].key.len == prm.key.len &&
                    (prm.key.len == 0 ||
                     memcmp(dec->params[j].key.ptr, prm.key.ptr, prm.key.len) == 0))
                    codec_soft(dec, KINFER_ERR_INVALID_REQUEST,
                               "parameters[%zu].key: duplicate key '%.*s'", n,
                               (int)(prm.key.len > 64 ? 64 : prm.key.len),
                               prm.key.ptr ? prm.key.ptr : "");
            }
            dec->params[stored++] = prm;
        }
    }
    *out = stored ? dec->params : NULL;
    *nout = stored;
    return KINFER_OK;
}
