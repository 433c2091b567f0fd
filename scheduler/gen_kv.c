/* gen_kv.c — the block allocator of gen_kv.h. Freed blocks go on top of
 * the stack and are handed out first (warm in cache on a CPU replica). */
#include "gen_kv.h"

#include <stdlib.h>
#include <string.h>

int gen_kv_init(gen_kv *kv, uint32_t nblocks) {
    memset(kv, 0, sizeof(*kv));
    kv->free_stack = malloc((size_t)(nblocks ? nblocks : 1) * sizeof(*kv->free_stack));
    kv->owner = malloc((size_t)(nblocks ? nblocks : 1) * sizeof(*kv->owner));
    if (!kv->free_stack || !kv->owner) {
        gen_kv_free(kv);
        return -1;
    }
    kv->nblocks = nblocks;
    /* Block 0 on top: handed out first. */
    for (uint32_t i = 0; i < nblocks; i++) {
        kv->free_stack[i] = nblocks - 1 - i;
        kv->owner[i] = GEN_KV_FREE;
    }
    kv->nfree = nblocks;
    return 0;
}

void gen_kv_free(gen_kv *kv) {
    free(kv->free_stack);
    free(kv->owner);
    memset(kv, 0, sizeof(*kv));
}

bool gen_kv_take(gen_kv *kv, uint64_t owner, uint32_t n, uint32_t *table, uint32_t *ntable) {
    if (n > kv->nfree)
        return false;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t b = kv->free_stack[--kv->nfree];
        kv->owner[b] = owner;
        table[(*ntable)++] = b;
    }
    return true;
}

bool gen_kv_release(gen_kv *kv, uint64_t owner, const uint32_t *table, uint32_t n) {
    for (uint32_t i = 0; i < n; i++)
        if (table[i] >= kv->nblocks || kv->owner[table[i]] != owner)
            return false;
    for (uint32_t i = 0; i < n; i++) {
        if (kv->owner[table[i]] == GEN_KV_FREE)
            continue; /* listed twice: freed once */
        kv->owner[table[i]] = GEN_KV_FREE;
        kv->free_stack[kv->nfree++] = table[i];
    }
    return true;
}
