/* tokenizer_vocab.c — the WordPiece vocabulary: token strings in one arena
 * and an open-addressing hash table (FNV-1a, linear probing) from string to
 * id. Lookups hash "prefix + piece" without building the string, which is
 * what the greedy longest-match loop needs. Not a general hash map. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_private.h"

static uint32_t fnv_step(uint32_t h, const char *s, size_t len) {
    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)s[i];
        h *= 16777619u;
    }
    return h;
}

static uint32_t fnv2(const char *p, size_t plen, const char *s, size_t len) {
    return fnv_step(fnv_step(2166136261u, p, plen), s, len);
}

void tok_vocab_init(tok_vocab *v) {
    memset(v, 0, sizeof(*v));
}

void tok_vocab_free(tok_vocab *v) {
    free(v->arena);
    free(v->tok_offsets);
    free(v->tok_lens);
    free(v->slots);
    memset(v, 0, sizeof(*v));
}

static bool slot_matches(const tok_vocab *v, int32_t id, const char *p, size_t plen, const char *s,
                         size_t len) {
    if (v->tok_lens[id] != plen + len)
        return false;
    const char *t = v->arena + v->tok_offsets[id];
    return memcmp(t, p, plen) == 0 && memcmp(t + plen, s, len) == 0;
}

int32_t tok_vocab_get2(const tok_vocab *v, const char *prefix, size_t plen, const char *s,
                       size_t len) {
    if (v->nslots == 0)
        return -1;
    uint32_t mask = v->nslots - 1;
    for (uint32_t i = fnv2(prefix, plen, s, len) & mask;; i = (i + 1) & mask) {
        int32_t id = v->slots[i];
        if (id < 0)
            return -1;
        if (slot_matches(v, id, prefix, plen, s, len))
            return id;
    }
}

/* Rebuilds the table at twice the size; ids keep their strings. */
static kinfer_err grow_slots(tok_vocab *v, kinfer_error *err) {
    uint32_t n = v->nslots ? v->nslots * 2 : 1024;
    int32_t *slots = malloc((size_t)n * sizeof(*slots));
    if (!slots)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "vocabulary table: out of memory");
    memset(slots, 0xff, (size_t)n * sizeof(*slots));
    for (uint32_t i = 0; i < v->nslots; i++) {
        int32_t id = v->slots[i];
        if (id < 0)
            continue;
        const char *t = v->arena + v->tok_offsets[id];
        uint32_t j = fnv2("", 0, t, v->tok_lens[id]) & (n - 1);
        while (slots[j] >= 0)
            j = (j + 1) & (n - 1);
        slots[j] = id;
    }
    free(v->slots);
    v->slots = slots;
    v->nslots = n;
    return KINFER_OK;
}

static kinfer_err ensure_id(tok_vocab *v, int32_t id, kinfer_error *err) {
    if ((uint32_t)id < v->size)
        return KINFER_OK;
    uint32_t n = (uint32_t)id + 1;
    uint32_t *offs = realloc(v->tok_offsets, (size_t)n * sizeof(*offs));
    if (offs)
        v->tok_offsets = offs;
    uint32_t *lens = offs ? realloc(v->tok_lens, (size_t)n * sizeof(*lens)) : NULL;
    if (!offs || !lens)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "vocabulary: out of memory");
    v->tok_lens = lens;
    for (uint32_t i = v->size; i < n; i++) {
        v->tok_offsets[i] = UINT32_MAX;
        v->tok_lens[i] = 0;
    }
    v->size = n;
    return KINFER_OK;
}

kinfer_err tok_vocab_put(tok_vocab *v, const char *s, size_t len, int32_t id, kinfer_error *err) {
    if (id < 0 || id >= (1 << 24))
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD, "vocabulary id %d out of range", id);
    if (len > 1024)
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD,
                                "vocabulary token of %zu bytes (id %d) is too long", len, id);
    if ((v->count + 1) * 2 > v->nslots && grow_slots(v, err) != KINFER_OK)
        return KINFER_ERR_NOMEM;
    if (ensure_id(v, id, err) != KINFER_OK)
        return KINFER_ERR_NOMEM;
    if (v->arena_len + len > v->arena_cap) {
        size_t cap = v->arena_cap ? v->arena_cap * 2 : 65536;
        while (cap < v->arena_len + len)
            cap *= 2;
        char *a = realloc(v->arena, cap);
        if (!a)
            return kinfer_error_set(err, KINFER_ERR_NOMEM, "vocabulary: out of memory");
        v->arena = a;
        v->arena_cap = cap;
    }
    if (v->tok_offsets[id] != UINT32_MAX)
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD, "vocabulary id %d appears twice", id);
    memcpy(v->arena + v->arena_len, s, len);
    v->tok_offsets[id] = (uint32_t)v->arena_len;
    v->tok_lens[id] = (uint32_t)len;
    v->arena_len += len;

    /* A repeated string re-maps to the later id, as Python's dict does when
     * Hugging Face reads vocab.txt. */
    uint32_t mask = v->nslots - 1;
    for (uint32_t i = fnv2("", 0, s, len) & mask;; i = (i + 1) & mask) {
        int32_t cur = v->slots[i];
        if (cur < 0) {
            v->slots[i] = id;
            v->count++;
            return KINFER_OK;
        }
        if (slot_matches(v, cur, "", 0, s, len)) {
            v->slots[i] = id;
            return KINFER_OK;
        }
    }
}
