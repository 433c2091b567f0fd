/* tokenizer_private.h — internals shared by the tokenizer_*.c files: the
 * vocabulary hash table, the added (special) tokens matched in raw text and
 * the per-code-point classes of the BERT normalizer. Not a public API. */
#ifndef KINFER_TOKENIZER_PRIVATE_H
#define KINFER_TOKENIZER_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer_wordpiece.h"

/* Token strings live in one arena; the open-addressing table maps a string
 * to its id. Ids may have holes (tokenizer.json), so id -> string is kept
 * only for diagnostics via tok_offsets (UINT32_MAX = hole). */
typedef struct tok_vocab {
    char *arena;
    size_t arena_len, arena_cap;
    uint32_t *tok_offsets; /* [size]: arena offset of id's string */
    uint32_t *tok_lens;    /* [size] */
    uint32_t size;         /* largest id + 1 */
    uint32_t count;        /* distinct tokens */
    int32_t *slots;        /* [nslots] ids, -1 = empty */
    uint32_t nslots;       /* power of two */
} tok_vocab;

/* A token matched verbatim in the raw text before normalization (the
 * Hugging Face "added tokens" with normalized=false: [CLS], [SEP], ...). */
typedef struct tok_added {
    char *content;
    size_t len;
    int32_t id;
} tok_added;

#define TOK_MAX_ADDED 64

struct kinfer_tokenizer {
    tok_vocab vocab;
    kinfer_tokenizer_options opts;
    bool strip; /* resolved strip_accents */
    int32_t unk_id, cls_id, sep_id, pad_id;
    char prefix[16]; /* continuing-subword prefix, "##" */
    size_t prefix_len;
    tok_added added[TOK_MAX_ADDED];
    size_t nadded;
    uint8_t added_first[32]; /* bitmap of the first bytes of added tokens */
};

/* --- tokenizer_vocab.c --- */
void tok_vocab_init(tok_vocab *v);
void tok_vocab_free(tok_vocab *v);
/* Inserts or re-maps (last wins) a token. */
kinfer_err tok_vocab_put(tok_vocab *v, const char *s, size_t len, int32_t id, kinfer_error *err);
/* Looks up prefix+s (prefix may be empty). Returns -1 when absent. */
int32_t tok_vocab_get2(const tok_vocab *v, const char *prefix, size_t plen, const char *s,
                       size_t len);

/* --- tokenizer_unicode.c --- */
/* Classes of the BERT normalizer and pre-tokenizer, as the Hugging Face
 * Rust implementation defines them. */
bool tok_is_control(uint32_t cp);    /* removed by clean_text */
bool tok_is_whitespace(uint32_t cp); /* becomes ' ' */
bool tok_is_chinese(uint32_t cp);    /* isolated as its own word */
bool tok_is_punct(uint32_t cp);      /* isolated by the pre-tokenizer */
bool tok_is_mark_nonspacing(uint32_t cp);
/* Canonical decomposition (NFD) of one code point into out[4]; returns the
 * count (1 when it does not decompose). */
int tok_nfd(uint32_t cp, uint32_t out[4]);
/* Full lowercase mapping into out[3]; returns the count. */
int tok_lower(uint32_t cp, uint32_t out[3]);
/* Strict UTF-8 decode of one code point at s[0..len). Returns its byte
 * length, or 0 when the bytes there are not valid UTF-8. */
size_t tok_utf8_decode(const uint8_t *s, size_t len, uint32_t *cp);
/* Encodes cp (valid scalar) into out[4]; returns byte length. */
size_t tok_utf8_encode(uint32_t cp, char out[4]);

/* --- tokenizer_unicode_table.c (generated) --- */
bool tok_table_control(uint32_t cp);
bool tok_table_mark_nonspacing(uint32_t cp);
bool tok_table_punct(uint32_t cp);
bool tok_table_whitespace(uint32_t cp);

/* --- tokenizer_wordpiece.c --- */
/* Appends to tok->added (token matched in raw text); sets the bitmap. */
kinfer_err tok_added_push(kinfer_tokenizer *tok, const char *s, size_t len, int32_t id,
                          kinfer_error *err);
/* Resolves unk/cls/sep/pad ids by name; fails naming a missing one. */
kinfer_err tok_resolve_specials(kinfer_tokenizer *tok, const char *unk, const char *cls,
                                const char *sep, const char *pad, kinfer_error *err);

#endif
