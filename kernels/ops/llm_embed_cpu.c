/* llm_embed_cpu.c — the embedding gather (llm_ops.h), the C twin of
 * llm_embed.cu: each token's row of the (quantized) table, dequantized. */
#include "ops/llm_ops.h"

kinfer_err kinfer_embed_rows_cpu(const void *table, kinfer_qtype t, size_t vocab, size_t n_embd,
                                 const int32_t *ids, size_t rows, float *out, kinfer_error *err) {
    size_t row_bytes = 0;
    kinfer_error e;
    if (kinfer_qtype_row_bytes(t, n_embd, &row_bytes, &e) != KINFER_OK)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "embedding: %s", e.msg);
    for (size_t r = 0; r < rows; r++)
        if (ids[r] < 0 || (size_t)ids[r] >= vocab)
            return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                    "embedding: token id %d (row %zu) outside the vocabulary "
                                    "of %zu",
                                    (int)ids[r], r, vocab);
    for (size_t r = 0; r < rows; r++)
        kinfer_dequantize_row_cpu((const unsigned char *)table + (size_t)ids[r] * row_bytes, t,
                                  out + r * n_embd, n_embd);
    return KINFER_OK;
}
