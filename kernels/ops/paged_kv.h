/* paged_kv.h — the paged KV cache of the llm kind: the byte layout of one
 * block (all layers, K and V), writing the K/V of a step's fed tokens into
 * their blocks, and causal grouped-query attention of the fed tokens over
 * their own sequence's blocks. The C implementations (paged_kv_cpu.c,
 * paged_attention_cpu.c) are the oracles of the CUDA twins
 * (paged_attention.cu, paged_kv_cuda.h: same argument order + a stream).
 *
 * Positions and blocks follow the seam (kinfer_model.h): position p of a
 * sequence lives in block blocks[p / T], slot p % T. A token at position p
 * attends to positions [0, p] of its sequence.
 *
 * KV dtype: a layout parameter. The CPU replica uses F32 (exact; F16
 * works too, converted in plain C), the CUDA replica F16 (F32 works
 * too). */
#ifndef KINFER_PAGED_KV_H
#define KINFER_PAGED_KV_H

#include <stddef.h>
#include <stdint.h>

#include "kinfer/kinfer_error.h"
#include "ops/cpu_threads.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kinfer_kv_dtype {
    KINFER_KV_F32 = 0,
    KINFER_KV_F16, /* IEEE binary16, round to nearest even on write */
    KINFER_KV_DTYPE_COUNT
} kinfer_kv_dtype;

/* Most tokens per block: the attention keeps one block's scores on the
 * stack / in shared memory. */
#define KINFER_KV_MAX_BLOCK_TOKENS 256
/* Most head dimensions the attention accepts (both backends). */
#define KINFER_KV_MAX_HEAD_DIM 256

typedef struct kinfer_kv_layout {
    uint32_t n_layer;
    uint32_t n_kv_head;
    uint32_t head_dim;
    uint32_t block_tokens; /* T, 1..KINFER_KV_MAX_BLOCK_TOKENS */
    kinfer_kv_dtype dtype;
} kinfer_kv_layout;

/* Block b of a pool starts at pool + b * kinfer_kv_block_bytes(layout).
 * Inside a block, layer l starts at l * 2 * n_kv_head * T * head_dim
 * elements: its K as [n_kv_head][T][head_dim], then its V, same shape.
 * So element d of kv head h at slot t is
 *   K: block + ((l * 2 + 0) * n_kv_head * T + h * T + t) * head_dim + d
 *   V: block + ((l * 2 + 1) * n_kv_head * T + h * T + t) * head_dim + d
 * (in elements of the dtype). Blocks are self-contained, so one can be
 * copied out and back (swap) as a single run of bytes. */
size_t kinfer_kv_elem_bytes(kinfer_kv_dtype dtype); /* 4, 2; 0 when invalid */
/* n_layer * 2 * n_kv_head * T * head_dim * elem bytes (the seam's
 * kv_block_bytes); 0 when the layout is invalid. */
size_t kinfer_kv_block_bytes(const kinfer_kv_layout *layout);
/* INVALID_ARG naming the field: any count 0, block_tokens or head_dim
 * above the maximum, an invalid dtype, a block over SIZE_MAX / 2 bytes. */
kinfer_err kinfer_kv_layout_check(const kinfer_kv_layout *layout, kinfer_error *err);

/* One layer of a pool: what the write and attention ops read. Plain
 * values, no ownership (base points into the pool). */
typedef struct kinfer_kv_view {
    unsigned char
        *base; /* the pool + this layer's K offset: block b's K at base + b * block_bytes */
    size_t block_bytes; /* kinfer_kv_block_bytes */
    size_t v_off;       /* bytes from a block's K to its V in this layer */
    uint32_t nblocks;   /* blocks in the pool: every block index must be below */
    uint32_t n_kv_head, head_dim, block_tokens;
    kinfer_kv_dtype dtype;
} kinfer_kv_view;

/* The view of layer `layer` of a pool of nblocks blocks at `pool` (host or
 * device memory alike: only arithmetic). layout checked by the caller;
 * layer < n_layer. */
kinfer_kv_view kinfer_kv_layer_view(const kinfer_kv_layout *layout, void *pool, uint32_t nblocks,
                                    uint32_t layer);

/* One sequence of a step. The fed tokens of all sequences are the rows of
 * the step's q/k/v/out arrays, packed in sequence order: seqs[0].row == 0,
 * seqs[s + 1].row == seqs[s].row + seqs[s].ntokens. */
typedef struct kinfer_kv_seq {
    uint32_t row;     /* first row of its fed tokens */
    uint32_t ntokens; /* >= 1 */
    uint32_t pos;     /* position of its first fed token; K/V of [0, pos) already written */
    uint32_t block0;  /* its block table is blocks[block0, block0 + nblocks) of the flat table */
    uint32_t nblocks; /* >= ceil((pos + ntokens) / T) */
} kinfer_kv_seq;

/* Checks what the write and attention ops trust, once per step:
 * nseqs >= 1, the packing above with the rows adding up to `rows`, each
 * table inside blocks[0, ntable) and covering [0, pos + ntokens), every
 * block index < kv->nblocks, positions below 2^31. INVALID_ARG naming the
 * sequence and the problem. Host memory only. */
kinfer_err kinfer_kv_seqs_check(const kinfer_kv_view *kv, const kinfer_kv_seq *seqs, size_t nseqs,
                                const uint32_t *blocks, size_t ntable, size_t rows,
                                kinfer_error *err);

/* Writes the K and V of every fed token into its slot: token i of sequence
 * s (row seqs[s].row + i) goes to position seqs[s].pos + i. k, v: rows of
 * ld floats, each holding n_kv_head * head_dim values (kv head h at
 * h * head_dim), e.g. the K and V columns of a fused QKV buffer. F16 views
 * round to nearest even (+-Inf and NaN kept). Call before the layer's
 * attention: a token attends to itself. Trusts kinfer_kv_seqs_check. */
void kinfer_kv_write_cpu(const kinfer_kv_view *kv, const float *k, const float *v, size_t ld,
                         const kinfer_kv_seq *seqs, size_t nseqs, const uint32_t *blocks);

/* Causal GQA attention: for fed token i of sequence s at position
 * p = pos + i, query head h (0 <= h < n_head) uses kv head
 * h / (n_head / n_kv_head) and
 *   out[row, h * hd : (h+1) * hd] = sum_{j <= p} softmax_j(scale * q . K_j) V_j
 * over the sequence's positions j in [0, p]. q and out: rows of ldq / ldo
 * floats holding n_head * head_dim values; out may be q itself (same ld):
 * each head's query is read before its output is written.
 * n_head a multiple of n_kv_head (checked by the caller with the layout).
 * Softmax in FP32 with the running max (online, one block of scores at a
 * time; equal to the two-pass form up to rounding); NaN in q or K gives NaN
 * outputs for that head. The work (sequence, token, kv head) is spread over
 * threads (NULL: inline). Trusts kinfer_kv_seqs_check. */
void kinfer_paged_attention_cpu(kinfer_threads *threads, const kinfer_kv_view *kv, const float *q,
                                size_t ldq, float *out, size_t ldo, size_t n_head,
                                const kinfer_kv_seq *seqs, size_t nseqs, const uint32_t *blocks,
                                float scale);

#ifdef __cplusplus
}
#endif
#endif
