/* bpe_private.h — internals shared by the bpe_*.c files: the tokenizer
 * struct, the merge table, the pre-tokenizer's character classes and the
 * loaders' common build step. Not a public API. */
#ifndef KINFER_BPE_PRIVATE_H
#define KINFER_BPE_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bpe.h"
#include "tokenizer_private.h"

/* Split rules before BPE. */
typedef enum bpe_pre {
    BPE_PRE_GPT2 = 0,   /* the GPT-2 regex */
    BPE_PRE_DIGITS_GPT2 /* every \p{N} character alone, then the GPT-2 regex on the rest */
} bpe_pre;

/* One merge: (left, right) -> merged, applied lowest rank first. */
typedef struct bpe_merge_slot {
    uint64_t key; /* left << 32 | right; UINT64_MAX = empty */
    uint32_t rank;
    int32_t merged;
} bpe_merge_slot;

/* A token matched verbatim before pre-tokenization (control or
 * user-defined), longest first. */
typedef struct bpe_special {
    const char *text; /* in the vocab arena */
    uint32_t len;
    int32_t id;
    bool control; /* only with parse_special, only in trusted bytes */
} bpe_special;

struct kinfer_bpe {
    tok_vocab vocab;             /* string -> id, id -> string */
    uint8_t *types;              /* [vocab.size] kinfer_bpe_token_type; 0 for holes */
    uint32_t *dec_off, *dec_len; /* [vocab.size] decoded bytes of normal tokens in dec */
    char *dec;
    bpe_merge_slot *merges;
    uint32_t merge_mask; /* slots - 1 (power of two) */
    uint32_t nmerges;
    int32_t byte_tok[256]; /* the token of each single byte, -1 when the vocab lacks it */
    bpe_special *specials;
    size_t nspecials;
    uint8_t special_first[32]; /* bitmap of first bytes */
    bpe_pre pre;
    bool ignore_merges; /* HF: a word that is a token is taken whole */
    int32_t bos, eos, eot, eom;
    bool add_bos;
    bool eog_by_text; /* add llama.cpp's end-of-generation texts (GGUF) */
    int32_t *eog;
    size_t neog;
};

/* What a loader hands to bpe_build: the vocabulary is already in
 * bpe->vocab with types set; merges as (left, right) text pairs. */
typedef struct bpe_merge_text {
    const char *left, *right;
    size_t llen, rlen;
} bpe_merge_text;

/* --- bpe_vocab.c --- */
kinfer_err bpe_alloc(kinfer_bpe **out, kinfer_error *err);
/* Grows types[] to the vocab size (new entries 0) after tok_vocab_put. */
kinfer_err bpe_sync_types(kinfer_bpe *bpe, kinfer_error *err);
/* Merge table, byte tokens, decode table, specials, EOG. `label` names
 * the file in messages. */
kinfer_err bpe_build(kinfer_bpe *bpe, const bpe_merge_text *merges, size_t nmerges,
                     const char *label, kinfer_error *err);
/* The merge of (left, right), or NULL. */
const bpe_merge_slot *bpe_merge_find(const kinfer_bpe *bpe, int32_t left, int32_t right);

/* --- bpe_bytes.c: the GPT-2 byte <-> character mapping --- */
/* The code point byte b is written as in byte-level token strings. */
uint32_t bpe_byte_to_char(uint8_t b);
/* The byte of code point cp, or -1 when cp is not in the mapping. */
int bpe_char_to_byte(uint32_t cp);

/* --- bpe_pretok.c --- */
/* Character classes of the pre-tokenizer regexes. */
enum { BPE_CLS_OTHER = 0, BPE_CLS_LETTER = 1, BPE_CLS_NUMBER = 2, BPE_CLS_SPACE = 3 };

/* A text decoded into characters: cp[i] starts at byte off[i]; off[n] is
 * the text's length. Invalid bytes (when allowed) are characters of class
 * OTHER with cp = BPE_CP_INVALID. */
#define BPE_CP_INVALID 0xFFFFFFFFu
typedef struct bpe_chars {
    uint32_t *cp;
    uint32_t *off;
    uint8_t *cls;
    size_t n;
} bpe_chars;

/* Decodes text; INVALID_REQUEST naming the offset of invalid UTF-8 unless
 * allow_invalid. */
kinfer_err bpe_chars_decode(const char *text, size_t len, bool allow_invalid, bpe_chars *out,
                            kinfer_error *err);
void bpe_chars_free(bpe_chars *c);
uint8_t bpe_char_class(uint32_t cp);

/* Calls piece(ctx, begin, end) for each pre-token (character indices) of
 * characters [a, b), in order; stops at the first non-OK return. */
typedef kinfer_err (*bpe_piece_fn)(void *ctx, size_t begin, size_t end);
kinfer_err bpe_pretokenize(bpe_pre pre, const bpe_chars *c, size_t a, size_t b, bpe_piece_fn piece,
                           void *ctx);

#endif
