/* gen_kv.h — the paged KV cache's block allocator for one replica's pool:
 * a stack of free block indexes and an owner per block, so that a block is
 * never handed to two live sequences and an audit can prove it. Owned by
 * the replica's executor thread; no lock. Knows nothing of sequences
 * beyond an owner tag. */
#ifndef GEN_KV_H
#define GEN_KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GEN_KV_FREE UINT64_MAX /* owner of a free block */

typedef struct gen_kv {
    uint32_t nblocks;
    uint32_t *free_stack; /* nfree entries */
    uint32_t nfree;
    uint64_t *owner; /* nblocks: a tag (the sequence's number) or GEN_KV_FREE */
} gen_kv;

/* A pool of nblocks blocks, all free. 0 or -1 (no memory). */
int gen_kv_init(gen_kv *kv, uint32_t nblocks);
void gen_kv_free(gen_kv *kv);

static inline uint32_t gen_kv_nfree(const gen_kv *kv) {
    return kv->nfree;
}

/* Blocks of T tokens that n positions take. */
static inline uint32_t gen_kv_blocks_for(uint64_t positions, uint32_t block_tokens) {
    return (uint32_t)((positions + block_tokens - 1) / block_tokens);
}

/* Takes n free blocks for `owner` and appends them to table[*ntable...).
 * All or nothing: false (nothing taken) when fewer than n are free. */
bool gen_kv_take(gen_kv *kv, uint64_t owner, uint32_t n, uint32_t *table, uint32_t *ntable);

/* Gives back the n blocks of a table (all must belong to owner). Returns
 * false, and frees nothing, when one of them does not: a bookkeeping bug
 * that the caller reports. */
bool gen_kv_release(gen_kv *kv, uint64_t owner, const uint32_t *table, uint32_t n);

#endif
