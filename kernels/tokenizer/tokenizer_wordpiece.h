/* tokenizer_wordpiece.h — the BERT WordPiece tokenizer in C, matching the
 * Hugging Face fast tokenizer (BertNormalizer + BertPreTokenizer + WordPiece
 * + [CLS]/[SEP] template) token for token. Not a general tokenizer: BPE,
 * Unigram and sentence pairs are refused or absent. */
#ifndef KINFER_TOKENIZER_WORDPIECE_H
#define KINFER_TOKENIZER_WORDPIECE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kinfer/kinfer_error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kinfer_tokenizer kinfer_tokenizer;

/* Normalizer switches; the defaults (kinfer_tokenizer_options_default) are
 * those of bert-base-uncased. strip_accents < 0 means "follow lowercase", as
 * in Hugging Face when the option is null. */
typedef struct kinfer_tokenizer_options {
    bool clean_text;
    bool handle_chinese_chars;
    bool lowercase;
    int strip_accents;                 /* -1 = same as lowercase, 0 = no, 1 = yes */
    uint32_t max_input_chars_per_word; /* longer words become [UNK]; 100 in BERT */
} kinfer_tokenizer_options;

kinfer_tokenizer_options kinfer_tokenizer_options_default(void);

/* Loads the tokenizer of a Hugging Face model directory: tokenizer.json
 * when present (vocab, normalizer options, special tokens), else vocab.txt
 * with tokenizer_config.json (do_lower_case, strip_accents,
 * tokenize_chinese_chars). Anything but WordPiece/BertNormalizer/
 * BertPreTokenizer is refused with KINFER_ERR_UNSUPPORTED naming it. */
kinfer_err kinfer_tokenizer_load_dir(const char *dir, kinfer_tokenizer **out, kinfer_error *err);

/* Loads only a vocab.txt (one token per line, id = line number) with the
 * given options; special tokens are [PAD] [UNK] [CLS] [SEP] [MASK]. */
kinfer_err kinfer_tokenizer_load_vocab(const char *vocab_path, const kinfer_tokenizer_options *opts,
                                       kinfer_tokenizer **out, kinfer_error *err);

void kinfer_tokenizer_destroy(kinfer_tokenizer *tok);

/* Number of entries in the vocabulary (largest id + 1). */
uint32_t kinfer_tokenizer_vocab_size(const kinfer_tokenizer *tok);
/* Id of a token, or -1 when it is not in the vocabulary. */
int32_t kinfer_tokenizer_token_id(const kinfer_tokenizer *tok, const char *token, size_t len);
int32_t kinfer_tokenizer_pad_id(const kinfer_tokenizer *tok);

/* Encodes one text as [CLS] pieces [SEP] into ids (capacity max_len >= 2).
 * When the pieces do not fit: truncate keeps the first max_len - 2 (as
 * sentence-transformers does), otherwise the call fails with
 * KINFER_ERR_INVALID_REQUEST giving both lengths. *n_out receives the
 * number of ids written; *n_full (optional) the untruncated length
 * including [CLS]/[SEP]. Invalid UTF-8 is KINFER_ERR_INVALID_REQUEST naming
 * the byte offset. Thread-safe: the tokenizer is read-only after loading. */
kinfer_err kinfer_tokenizer_encode(const kinfer_tokenizer *tok, const char *text, size_t len,
                                   uint32_t max_len, bool truncate, int32_t *ids, uint32_t *n_out,
                                   uint32_t *n_full, kinfer_error *err);

/* Checks that text is well-formed UTF-8 (no overlongs, surrogates or code
 * points above U+10FFFF). On failure *bad_offset is the first bad byte. */
bool kinfer_utf8_valid(const char *text, size_t len, size_t *bad_offset);

#ifdef __cplusplus
}
#endif
#endif
