/* paged_kv_cpu.c — the KV block layout, the per-step table check and the
 * K/V write (paged_kv.h); the C twin of paged_kv_write in
 * paged_attention.cu. */
#include <stdint.h>
#include <string.h>

#include "ops/convert.h"
#include "ops/paged_kv.h"

size_t kinfer_kv_elem_bytes(kinfer_kv_dtype dtype) {
    return dtype == KINFER_KV_F32 ? 4 : dtype == KINFER_KV_F16 ? 2 : 0;
}

kinfer_err kinfer_kv_layout_check(const kinfer_kv_layout *l, kinfer_error *err) {
    if (l->n_layer == 0 || l->n_kv_head == 0 || l->head_dim == 0 || l->block_tokens == 0)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "kv layout: n_layer, n_kv_head, head_dim and block_tokens must "
                                "be >= 1 (got %u, %u, %u, %u)",
                                l->n_layer, l->n_kv_head, l->head_dim, l->block_tokens);
    if (l->block_tokens > KINFER_KV_MAX_BLOCK_TOKENS)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "kv layout: block_tokens %u above the maximum %d", l->block_tokens,
                                KINFER_KV_MAX_BLOCK_TOKENS);
    if (l->head_dim > KINFER_KV_MAX_HEAD_DIM)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "kv layout: head_dim %u above the maximum %d", l->head_dim,
                                KINFER_KV_MAX_HEAD_DIM);
    if (kinfer_kv_elem_bytes(l->dtype) == 0)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "kv layout: invalid dtype %d",
                                (int)l->dtype);
    /* every factor < 2^32: the product in double is exact enough to bound */
    double bytes = 2.0 * l->n_layer * l->n_kv_head * l->block_tokens * (double)l->head_dim *
                   (double)kinfer_kv_elem_bytes(l->dtype);
    if (bytes > (double)(SIZE_MAX / 2))
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "kv layout: block of %.0f bytes",
                                bytes);
    return KINFER_OK;
}

size_t kinfer_kv_block_bytes(const kinfer_kv_layout *l) {
    if (kinfer_kv_layout_check(l, NULL) != KINFER_OK)
        return 0;
    return (size_t)2 * l->n_layer * l->n_kv_head * l->block_tokens * l->head_dim *
           kinfer_kv_elem_bytes(l->dtype);
}

kinfer_kv_view kinfer_kv_layer_view(const kinfer_kv_layout *l, void *pool, uint32_t nblocks,
                                    uint32_t layer) {
    size_t elem = kinfer_kv_elem_bytes(l->dtype);
    size_t half = (size_t)l->n_kv_head * l->block_tokens * l->head_dim * elem; /* K or V */
    kinfer_kv_view v = {
        .base = (unsigned char *)pool + (size_t)layer * 2 * half,
        .block_bytes = kinfer_kv_block_bytes(l),
        .v_off = half,
        .nblocks = nblocks,
        .n_kv_head = l->n_kv_head,
        .head_dim = l->head_dim,
        .block_tokens = l->block_tokens,
        .dtype = l->dtype,
    };
    return v;
}

kinfer_err kinfer_kv_seqs_check(const kinfer_kv_view *kv, const kinfer_kv_seq *seqs, size_t nseqs,
                                const uint32_t *blocks, size_t ntable, size_t rows,
                                kinfer_error *err) {
    if (nseqs == 0)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "kv: a step needs a sequence");
    size_t row = 0;
    for (size_t s = 0; s < nseqs; s++) {
        const kinfer_kv_seq *q = &seqs[s];
        if (q->row != row)
            return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                    "kv: sequence %zu starts at row %u, expected %zu (rows are "
                                    "packed in sequence order)",
                                    s, q->row, row);
        if (q->ntokens == 0)
            return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "kv: sequence %zu feeds no token",
                                    s);
        uint64_t end = (uint64_t)q->pos + q->ntokens;
        if (end > ((uint64_t)1 << 31))
            return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                    "kv: sequence %zu reaches position %llu (limit 2^31)", s,
                                    (unsigned long long)end);
        uint64_t need = (end + kv->block_tokens - 1) / kv->block_tokens;
        if (q->nblocks < need)
            return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                    "kv: sequence %zu has %u blocks for positions [0, %llu): "
                                    "needs %llu",
                                    s, q->nblocks, (unsigned long long)end,
                                    (unsigned long long)need);
        if ((uint64_t)q->block0 + q->nblocks > ntable)
            return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                    "kv: sequence %zu's block table [%u, %llu) passes the "
                                    "table's %zu entries",
                                    s, q->block0, (unsigned long long)q->block0 + q->nblocks,
                                    ntable);
        for (uint32_t b = 0; b < need; b++)
            if (blocks[q->block0 + b] >= kv->nblocks)
                return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                        "kv: sequence %zu: block %u is %u, the pool has %u", s, b,
                                        blocks[q->block0 + b], kv->nblocks);
        row += q->ntokens;
    }
    if (row != rows)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "kv: the sequences feed %zu rows, the step has %zu", row, rows);
    return KINFER_OK;
}

void kinfer_kv_write_cpu(const kinfer_kv_view *kv, const float *k, const float *v, size_t ld,
                         const kinfer_kv_seq *seqs, size_t nseqs, const uint32_t *blocks) {
    const size_t hd = kv->head_dim, T = kv->block_tokens, elem = kinfer_kv_elem_bytes(kv->dtype);
    for (size_t s = 0; s < nseqs; s++) {
        const kinfer_kv_seq *q = &seqs[s];
        for (uint32_t i = 0; i < q->ntokens; i++) {
            size_t p = (size_t)q->pos + i, row = (size_t)q->row + i;
            unsigned char *blk = kv->base + (size_t)blocks[q->block0 + p / T] * kv->block_bytes;
            for (size_t h = 0; h < kv->n_kv_head; h++) {
                size_t off = ((h * T) + p % T) * hd * elem;
                const float *ks = k + row * ld + h * hd, *vs = v + row * ld + h * hd;
                if (kv->dtype == KINFER_KV_F32) {
                    memcpy(blk + off, ks, hd * sizeof(float));
                    memcpy(blk + kv->v_off + off, vs, hd * sizeof(float));
                } else {
                    uint16_t *kd = (uint16_t *)(void *)(blk + off);
                    uint16_t *vd = (uint16_t *)(void *)(blk + kv->v_off + off);
                    for (size_t d = 0; d < hd; d++) {
                        kd[d] = kinfer_fp32_to_fp16(ks[d]);
                        vd[d] = kinfer_fp32_to_fp16(vs[d]);
                    }
                }
            }
        }
    }
}
