/* bpe.h — the byte-level BPE tokenizer (GPT-2 style) of Llama-family
 * decoders, in C, loaded from GGUF metadata (tokenizer.ggml.*) or a Hugging
 * Face tokenizer.json, matching llama.cpp's tokenizer (and the Hugging Face
 * fast tokenizer where the two agree) id for id: pre-tokenizer split rules
 * (the GPT-2 regex, optionally every digit on its own first), the GPT-2
 * byte-to-character mapping, merges by rank, added/control tokens.
 * Files this family does not use (other models, normalizers, split
 * patterns, options) are refused at load, naming what is not supported.
 * Not a chat template: see chat_template.h. Read-only after loading, so
 * every call is thread-safe. */
#ifndef KINFER_BPE_H
#define KINFER_BPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "formats/gguf.h"
#include "kinfer/kinfer_error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kinfer_bpe kinfer_bpe;

/* Token kinds, numbered as GGUF's tokenizer.ggml.token_type. */
typedef enum kinfer_bpe_token_type {
    KINFER_BPE_NORMAL = 1,       /* byte-level encoded text, produced by merges */
    KINFER_BPE_UNKNOWN = 2,      /* never produced */
    KINFER_BPE_CONTROL = 3,      /* special (BOS, <|im_start|>...): only from trusted text */
    KINFER_BPE_USER_DEFINED = 4, /* added token: matched verbatim in any text */
    KINFER_BPE_UNUSED = 5        /* never produced */
} kinfer_bpe_token_type;

/* Loads from GGUF metadata: tokenizer.ggml.model "gpt2", tokens,
 * token_type, merges, pre, bos/eos/eot/unknown/padding ids, add_bos_token.
 * Errors name the file and key: MODEL_LOAD (bad values), UNSUPPORTED
 * (another tokenizer model or pre-tokenizer, add_space_prefix...). */
kinfer_err kinfer_bpe_from_gguf(const kinfer_gguf *g, kinfer_bpe **out, kinfer_error *err);

/* Loads a Hugging Face tokenizer.json of model type BPE with a ByteLevel
 * pre-tokenizer (alone or after Digits(individual_digits)) and decoder.
 * BOS/EOS come from the caller (tokenizer_config.json, see
 * kinfer_bpe_set_specials). Errors name the file and the JSON path. */
kinfer_err kinfer_bpe_from_json(const char *path, kinfer_bpe **out, kinfer_error *err);

void kinfer_bpe_destroy(kinfer_bpe *bpe);

/* Special ids (-1 = none) and whether a prompt starts with BOS. The GGUF
 * loader sets them from metadata; HF loaders call this. eos must be a
 * token of the vocabulary (else INVALID_ARG). */
kinfer_err kinfer_bpe_set_specials(kinfer_bpe *bpe, int32_t bos, int32_t eos, bool add_bos,
                                   kinfer_error *err);
int32_t kinfer_bpe_bos(const kinfer_bpe *bpe);
int32_t kinfer_bpe_eos(const kinfer_bpe *bpe);
bool kinfer_bpe_add_bos(const kinfer_bpe *bpe);
/* End-of-generation ids, ascending, no duplicates: EOS (and EOT / EOM
 * from GGUF metadata); for GGUF vocabularies also every token llama.cpp
 * treats as one by its text (<|im_end|>, <|endoftext|>, <|eot_id|>, ...,
 * and the fill-in-the-middle pad/repo/separator tokens). HF directories
 * add generation_config.json's ids instead (kinfer_bpe_add_eog). */
const int32_t *kinfer_bpe_eog(const kinfer_bpe *bpe, size_t *n);
/* Adds one more end-of-generation id (generation_config.json's list). */
kinfer_err kinfer_bpe_add_eog(kinfer_bpe *bpe, int32_t id, kinfer_error *err);

/* Largest id + 1. */
uint32_t kinfer_bpe_vocab_size(const kinfer_bpe *bpe);
/* The id of a token by its vocabulary string (byte-level form for normal
 * tokens, "<|im_start|>" for control ones), or -1. */
int32_t kinfer_bpe_token_id(const kinfer_bpe *bpe, const char *s, size_t len);
kinfer_bpe_token_type kinfer_bpe_token_type_of(const kinfer_bpe *bpe, int32_t id);
/* The vocabulary string of id (not NUL-terminated) or NULL. */
const char *kinfer_bpe_token_text(const kinfer_bpe *bpe, int32_t id, size_t *len);
/* "gpt2" or "smollm"-style name of the split rules, for describe(). */
const char *kinfer_bpe_pre_name(const kinfer_bpe *bpe);

/* A growable id buffer the encoder appends to; free ids with free(). */
typedef struct kinfer_bpe_ids {
    int32_t *ids;
    size_t n, cap;
} kinfer_bpe_ids;

/* Bytes of text that have no token: the vocabulary of SmolLM2 lacks some
 * byte tokens (0x04, 0xF1, ...), and the references (llama.cpp, Hugging
 * Face) drop such bytes silently. kinfer refuses them instead. */
typedef struct kinfer_bpe_encode_opts {
    /* Match control tokens in the text (trusted template output). Bytes
     * whose trusted[i] is false (message content) never start or end a
     * control token; trusted == NULL means all trusted. Without
     * parse_special only user-defined tokens are matched verbatim. */
    bool parse_special;
    const uint8_t *trusted;
    /* Invalid UTF-8: false = KINFER_ERR_INVALID_REQUEST naming the byte
     * offset; true = each bad byte is its own "character" (neither letter,
     * number nor space) and is encoded by its byte token, so any bytes
     * round-trip where the vocabulary has the byte tokens. */
    bool allow_invalid_utf8;
} kinfer_bpe_encode_opts;

/* Encodes text[0..len) and appends the ids to *out (no BOS: the caller
 * decides). Errors: INVALID_REQUEST (invalid UTF-8 and not allowed, with
 * the byte offset; a byte the vocabulary cannot encode, with its offset and
 * value), NOMEM. On error *out keeps what it had before the call. */
kinfer_err kinfer_bpe_encode(const kinfer_bpe *bpe, const char *text, size_t len,
                             const kinfer_bpe_encode_opts *opts, kinfer_bpe_ids *out,
                             kinfer_error *err);

/* The bytes token id stands for: normal tokens decode the byte-level
 * mapping (possibly part of a UTF-8 sequence); user-defined tokens give
 * their text; control, unknown and unused tokens give their text only
 * with `special`, else nothing. Writes at most cap bytes, returns the full
 * length; 0 for an id outside the vocabulary. */
size_t kinfer_bpe_token_bytes(const kinfer_bpe *bpe, int32_t id, bool special, char *out,
                              size_t cap);

/* Appends the decoded bytes of ids to a malloc'd buffer (*text, *len;
 * NUL-terminated). Errors: NOMEM. */
kinfer_err kinfer_bpe_decode(const kinfer_bpe *bpe, const int32_t *ids, size_t n, bool special,
                             char **text, size_t *len, kinfer_error *err);

#ifdef __cplusplus
}
#endif
#endif
