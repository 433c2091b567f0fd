/* bpe_vocab.c — the BPE tokenizer's tables, built once at load: the merge
 * hash (token pair -> rank and merged token), the token of each byte, the
 * decoded bytes of every normal token, the verbatim-matched specials and
 * the end-of-generation ids; plus the GGUF loader (tokenizer.ggml.*). The
 * tokenizer.json loader is bpe_json.c; encoding is bpe_encode.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpe_private.h"

kinfer_err bpe_alloc(kinfer_bpe **out, kinfer_error *err) {
    *out = NULL;
    kinfer_bpe *b = calloc(1, sizeof(*b));
    if (!b)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "tokenizer: out of memory");
    tok_vocab_init(&b->vocab);
    b->bos = b->eos = b->eot = b->eom = -1;
    *out = b;
    return KINFER_OK;
}

void kinfer_bpe_destroy(kinfer_bpe *bpe) {
    if (!bpe)
        return;
    tok_vocab_free(&bpe->vocab);
    free(bpe->types);
    free(bpe->dec_off);
    free(bpe->dec_len);
    free(bpe->dec);
    free(bpe->merges);
    free(bpe->specials);
    free(bpe->eog);
    free(bpe);
}

kinfer_err bpe_sync_types(kinfer_bpe *bpe, kinfer_error *err) {
    uint8_t *t = realloc(bpe->types, bpe->vocab.size ? bpe->vocab.size : 1);
    if (!t)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "tokenizer: out of memory");
    bpe->types = t;
    return KINFER_OK;
}

static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

const bpe_merge_slot *bpe_merge_find(const kinfer_bpe *bpe, int32_t left, int32_t right) {
    if (!bpe->merges)
        return NULL;
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    for (uint32_t i = (uint32_t)mix64(key) & bpe->merge_mask;; i = (i + 1) & bpe->merge_mask) {
        const bpe_merge_slot *s = &bpe->merges[i];
        if (s->key == key)
            return s;
        if (s->key == UINT64_MAX)
            return NULL;
    }
}

static kinfer_err build_merges(kinfer_bpe *bpe, const bpe_merge_text *m, size_t n,
                               const char *label, kinfer_error *err) {
    if (n > (1u << 24))
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD, "%s: %zu merges, at most %u supported",
                                label, n, 1u << 24);
    uint32_t slots = 1024;
    while (slots < n * 2)
        slots *= 2;
    bpe->merges = malloc((size_t)slots * sizeof(*bpe->merges));
    if (!bpe->merges)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "tokenizer: out of memory");
    for (uint32_t i = 0; i < slots; i++)
        bpe->merges[i].key = UINT64_MAX;
    bpe->merge_mask = slots - 1;
    char joined[2048];
    for (size_t r = 0; r < n; r++) {
        int32_t l = tok_vocab_get2(&bpe->vocab, "", 0, m[r].left, m[r].llen);
        int32_t rt = tok_vocab_get2(&bpe->vocab, "", 0, m[r].right, m[r].rlen);
        int32_t mg = -1;
        if (m[r].llen + m[r].rlen < sizeof(joined)) {
            memcpy(joined, m[r].left, m[r].llen);
            memcpy(joined + m[r].llen, m[r].right, m[r].rlen);
            mg = tok_vocab_get2(&bpe->vocab, "", 0, joined, m[r].llen + m[r].rlen);
        }
        if (l < 0 || rt < 0 || mg < 0)
            return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD,
                                    "%s: merge %zu '%.*s %.*s': %s is not in the vocabulary", label,
                                    r, (int)(m[r].llen > 64 ? 64 : m[r].llen), m[r].left,
                                    (int)(m[r].rlen > 64 ? 64 : m[r].rlen), m[r].right,
                                    l < 0    ? "the left part"
                                    : rt < 0 ? "the right part"
                                             : "the merged token");
        uint64_t key = (uint64_t)(uint32_t)l << 32 | (uint32_t)rt;
        uint32_t i = (uint32_t)mix64(key) & bpe->merge_mask;
        while (bpe->merges[i].key != UINT64_MAX && bpe->merges[i].key != key)
            i = (i + 1) & bpe->merge_mask;
        if (bpe->merges[i].key == key)
            continue; /* a repeated pair keeps its first (lowest) rank */
        bpe->merges[i] = (bpe_merge_slot){key, (uint32_t)r, mg};
        bpe->nmerges++;
    }
    return KINFER_OK;
}

/* Decoded bytes of every normal token: each character maps back to its
 * byte; a character outside the mapping stands for its own UTF-8 (as the
 * Hugging Face ByteLevel decoder does). */
static kinfer_err build_decode(kinfer_bpe *bpe, kinfer_error *err) {
    uint32_t n = bpe->vocab.size;
    bpe->dec_off = calloc(n ? n : 1, sizeof(uint32_t));
    bpe->dec_len = calloc(n ? n : 1, sizeof(uint32_t));
    bpe->dec = malloc(bpe->vocab.arena_len ? bpe->vocab.arena_len : 1);
    if (!bpe->dec_off || !bpe->dec_len || !bpe->dec)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "tokenizer: out of memory");
    size_t pos = 0;
    for (uint32_t id = 0; id < n; id++) {
        if (bpe->vocab.tok_offsets[id] == UINT32_MAX || bpe->types[id] != KINFER_BPE_NORMAL)
            continue;
        const uint8_t *s = (const uint8_t *)bpe->vocab.arena + bpe->vocab.tok_offsets[id];
        size_t len = bpe->vocab.tok_lens[id];
        bpe->dec_off[id] = (uint32_t)pos;
        for (size_t i = 0; i < len;) {
            uint32_t cp;
            size_t k = tok_utf8_decode(s + i, len - i, &cp);
            int byte = k ? bpe_char_to_byte(cp) : -1;
            if (byte >= 0) {
                bpe->dec[pos++] = (char)byte;
                i += k;
            } else {
                /* decoded output is never longer than the token text */
                size_t take = k ? k : 1;
                memcpy(bpe->dec + pos, s + i, take);
                pos += take;
                i += take;
            }
        }
        bpe->dec_len[id] = (uint32_t)(pos - bpe->dec_off[id]);
    }
    return KINFER_OK;
}

static int cmp_special(const void *a, const void *b) {
    const bpe_special *x = a, *y = b;
    if (x->len != y->len)
        return x->len > y->len ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static kinfer_err build_specials(kinfer_bpe *bpe, kinfer_error *err) {
    size_t n = 0;
    for (uint32_t id = 0; id < bpe->vocab.size; id++)
        if (bpe->types[id] == KINFER_BPE_CONTROL || bpe->types[id] == KINFER_BPE_USER_DEFINED)
            n++;
    bpe->specials = calloc(n ? n : 1, sizeof(*bpe->specials));
    if (!bpe->specials)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "tokenizer: out of memory");
    for (uint32_t id = 0; id < bpe->vocab.size; id++) {
        uint8_t t = bpe->types[id];
        if (t != KINFER_BPE_CONTROL && t != KINFER_BPE_USER_DEFINED)
            continue;
        uint32_t len = bpe->vocab.tok_lens[id];
        if (len == 0 || bpe->vocab.tok_offsets[id] == UINT32_MAX)
            continue; /* an empty token can never be matched */
        const char *s = bpe->vocab.arena + bpe->vocab.tok_offsets[id];
        bpe->specials[bpe->nspecials++] =
            (bpe_special){s, len, (int32_t)id, t == KINFER_BPE_CONTROL};
        uint8_t first = (uint8_t)s[0];
        bpe->special_first[first >> 3] |= (uint8_t)(1u << (first & 7));
    }
    qsort(bpe->specials, bpe->nspecials, sizeof(*bpe->specials), cmp_special);
    return KINFER_OK;
}

static bool has_eog(const kinfer_bpe *bpe, int32_t id) {
    for (size_t i = 0; i < bpe->neog; i++)
        if (bpe->eog[i] == id)
            return true;
    return false;
}

kinfer_err kinfer_bpe_add_eog(kinfer_bpe *bpe, int32_t id, kinfer_error *err) {
    if (id < 0 || (uint32_t)id >= bpe->vocab.size)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "end-of-generation id %d outside the vocabulary (%u)", id,
                                bpe->vocab.size);
    if (has_eog(bpe, id))
        return KINFER_OK;
    int32_t *e = realloc(bpe->eog, (bpe->neog + 1) * sizeof(*e));
    if (!e)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "tokenizer: out of memory");
    bpe->eog = e;
    size_t i = bpe->neog++;
    while (i > 0 && e[i - 1] > id) {
        e[i] = e[i - 1];
        i--;
    }
    e[i] = id;
    return KINFER_OK;
}

/* llama.cpp's texts of tokens that end a generation (llama-vocab.cpp, as
 * of llama-cpp-python 0.3.36): end-of-turn markers, and the fill-in-the-
 * middle pad / repo / file-separator tokens, which it also treats as the
 * end of a generation (so <reponame> ends one for SmolLM2). Applied to
 * GGUF vocabularies only: an HF directory stops at its EOS ids. */
static const char *const k_eog_texts[] = {
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "<|end_of_text|>",
    "<end_of_utterance>",
    /* FIM pad */ "<|fim_pad|>",
    "<fim-pad>",
    "<PAD>",
    /* FIM repo */ "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<reponame>",
    /* FIM separator */ "<|file_sep|>",
};

static kinfer_err rebuild_eog(kinfer_bpe *bpe, kinfer_error *err) {
    free(bpe->eog);
    bpe->eog = NULL;
    bpe->neog = 0;
    int32_t ids[] = {bpe->eos, bpe->eot, bpe->eom};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
        if (ids[i] >= 0 && kinfer_bpe_add_eog(bpe, ids[i], err) != KINFER_OK)
            return err ? err->code : KINFER_ERR_NOMEM;
    for (size_t i = 0; bpe->eog_by_text && i < sizeof(k_eog_texts) / sizeof(k_eog_texts[0]); i++) {
        int32_t id = tok_vocab_get2(&bpe->vocab, "", 0, k_eog_texts[i], strlen(k_eog_texts[i]));
        if (id >= 0 && kinfer_bpe_add_eog(bpe, id, err) != KINFER_OK)
            return err ? err->code : KINFER_ERR_NOMEM;
    }
    return KINFER_OK;
}

kinfer_err bpe_build(kinfer_bpe *bpe, const bpe_merge_text *merges, size_t nmerges,
                     const char *label, kinfer_error *err) {
    if (bpe->vocab.size == 0)
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD, "%s: the vocabulary is empty", label);
    for (int b = 0; b < 256; b++) {
        char utf8[4];
        size_t n = tok_utf8_encode(bpe_byte_to_char((uint8_t)b), utf8);
        int32_t id = tok_vocab_get2(&bpe->vocab, "", 0, utf8, n);
        bpe->byte_tok[b] = id >= 0 && bpe->types[id] == KINFER_BPE_NORMAL ? id : -1;
    }
    kinfer_err rc = build_merges(bpe, merges, nmerges, label, err);
    if (rc == KINFER_OK)
        rc = build_decode(bpe, err);
    if (rc == KINFER_OK)
        rc = build_specials(bpe, err);
    if (rc == KINFER_OK)
        rc = rebuild_eog(bpe, err);
    return rc;
}

kinfer_err kinfer_bpe_set_specials(kinfer_bpe *bpe, int32_t bos, int32_t eos, bool add_bos,
                                   kinfer_error *err) {
    uint32_t n = bpe->vocab.size;
    if ((bos >= 0 && (uint32_t)bos >= n) || (eos >= 0 && (uint32_t)eos >= n) || bos < -1 ||
        eos < -1)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "bos %d / eos %d outside the vocabulary (%u tokens)", bos, eos, n);
    if (add_bos && bos < 0)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "add_bos without a bos token");
    bpe->bos = bos;
    bpe->eos = eos;
    bpe->add_bos = add_bos;
    return rebuild_eog(bpe, err);
}

/* --- the GGUF loader ---------------------------------------------------------- */

/* Pre-tokenizer names llama.cpp gives these exact split rules. */
static const struct {
    const char *name;
    bpe_pre pre;
} k_gguf_pre[] = {
    {"gpt2", BPE_PRE_GPT2},
    {"mpt", BPE_PRE_GPT2},
    {"olmo", BPE_PRE_GPT2},
    {"jais", BPE_PRE_GPT2},
    {"smollm", BPE_PRE_DIGITS_GPT2},
    {"starcoder", BPE_PRE_DIGITS_GPT2},
    {"refact", BPE_PRE_DIGITS_GPT2},
    {"command-r", BPE_PRE_DIGITS_GPT2},
    {"codeshell", BPE_PRE_DIGITS_GPT2},
    {"exaone", BPE_PRE_DIGITS_GPT2},
    {"minerva-7b", BPE_PRE_DIGITS_GPT2},
};

static kinfer_err gguf_pre(const kinfer_gguf *g, kinfer_bpe *bpe, kinfer_error *err) {
    kinfer_str pre = {"gpt2", 4}; /* llama.cpp's default for a gpt2 vocabulary */
    kinfer_err rc = kinfer_gguf_get_str(g, "tokenizer.ggml.pre", false, &pre, err);
    if (rc != KINFER_OK)
        return rc;
    for (size_t i = 0; i < sizeof(k_gguf_pre) / sizeof(k_gguf_pre[0]); i++) {
        if (strlen(k_gguf_pre[i].name) == pre.len &&
            memcmp(k_gguf_pre[i].name, pre.ptr, pre.len) == 0) {
            bpe->pre = k_gguf_pre[i].pre;
            return KINFER_OK;
        }
    }
    char list[256] = "";
    for (size_t i = 0, off = 0; i < sizeof(k_gguf_pre) / sizeof(k_gguf_pre[0]); i++)
        off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s", i ? ", " : "",
                                k_gguf_pre[i].name);
    return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                            "%s: tokenizer.ggml.pre '%.*s' is not supported (supported: %s)",
                            kinfer_gguf_label(g), (int)(pre.len > 64 ? 64 : pre.len), pre.ptr,
                            list);
}

static kinfer_err gguf_id(const kinfer_gguf *g, const kinfer_bpe *bpe, const char *key,
                          int32_t *out, kinfer_error *err) {
    uint64_t v = UINT64_MAX;
    kinfer_err rc = kinfer_gguf_get_u64(g, key, false, UINT32_MAX, &v, err);
    if (rc != KINFER_OK)
        return rc;
    if (v == UINT64_MAX)
        return KINFER_OK;
    if (v >= bpe->vocab.size)
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD,
                                "%s: %s is %llu, outside the %u-token vocabulary",
                                kinfer_gguf_label(g), key, (unsigned long long)v, bpe->vocab.size);
    *out = (int32_t)v;
    return KINFER_OK;
}

static kinfer_err gguf_load(const kinfer_gguf *g, kinfer_bpe *bpe, kinfer_error *err) {
    const char *label = kinfer_gguf_label(g);
    kinfer_str model;
    kinfer_err rc = kinfer_gguf_get_str(g, "tokenizer.ggml.model", true, &model, err);
    if (rc != KINFER_OK)
        return rc;
    if (model.len != 4 || memcmp(model.ptr, "gpt2", 4) != 0)
        return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                "%s: tokenizer.ggml.model '%.*s' is not supported (supported: "
                                "gpt2, byte-level BPE)",
                                label, (int)(model.len > 64 ? 64 : model.len), model.ptr);
    if ((rc = gguf_pre(g, bpe, err)) != KINFER_OK)
        return rc;
    bool flag = false;
    if ((rc = kinfer_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", false, &flag, err)) !=
        KINFER_OK)
        return rc;
    if (flag)
        return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                "%s: tokenizer.ggml.add_space_prefix = true is not supported",
                                label);
    flag = false;
    if ((rc = kinfer_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", false, &flag, err)) !=
        KINFER_OK)
        return rc;
    if (flag)
        return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                "%s: tokenizer.ggml.add_eos_token = true is not supported", label);
    const kinfer_gguf_kv *tokens, *types, *merges;
    if ((rc = kinfer_gguf_get_array(g, "tokenizer.ggml.tokens", true, KINFER_GGUF_STRING, &tokens,
                                    err)) != KINFER_OK ||
        (rc = kinfer_gguf_get_array(g, "tokenizer.ggml.token_type", false, KINFER_GGUF_INT64,
                                    &types, err)) != KINFER_OK ||
        (rc = kinfer_gguf_get_array(g, "tokenizer.ggml.merges", true, KINFER_GGUF_STRING, &merges,
                                    err)) != KINFER_OK)
        return rc;
    if (tokens->count == 0 || tokens->count > (1u << 24))
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD,
                                "%s: tokenizer.ggml.tokens has %llu entries (1 to %u supported)",
                                label, (unsigned long long)tokens->count, 1u << 24);
    if (types && types->count != tokens->count)
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD,
                                "%s: tokenizer.ggml.token_type has %llu entries, tokens %llu",
                                label, (unsigned long long)types->count,
                                (unsigned long long)tokens->count);
    for (uint64_t i = 0; i < tokens->count; i++) {
        if ((rc = tok_vocab_put(&bpe->vocab, tokens->strs[i].ptr, tokens->strs[i].len, (int32_t)i,
                                err)) != KINFER_OK)
            return kinfer_error_prefix(err, "%s: tokenizer.ggml.tokens[%llu]", label,
                                       (unsigned long long)i);
    }
    if ((rc = bpe_sync_types(bpe, err)) != KINFER_OK)
        return rc;
    for (uint64_t i = 0; i < tokens->count; i++) {
        int64_t t = types ? kinfer_gguf_arr_int(types, i) : KINFER_BPE_NORMAL;
        if (t == 6)
            return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                    "%s: token %llu has type BYTE (SentencePiece byte fallback), "
                                    "not supported by byte-level BPE",
                                    label, (unsigned long long)i);
        if (t < KINFER_BPE_NORMAL || t > KINFER_BPE_UNUSED)
            return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD,
                                    "%s: tokenizer.ggml.token_type[%llu] is %lld (1 to 6 known)",
                                    label, (unsigned long long)i, (long long)t);
        bpe->types[i] = (uint8_t)t;
    }
    bpe_merge_text *mt = malloc((merges->count ? (size_t)merges->count : 1) * sizeof(*mt));
    if (!mt)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "tokenizer: out of memory");
    for (uint64_t i = 0; i < merges->count; i++) {
        kinfer_str s = merges->strs[i];
        const char *sp = memchr(s.ptr, ' ', s.len);
        if (!sp || sp == s.ptr || sp + 1 == s.ptr + s.len ||
            memchr(sp + 1, ' ', (size_t)(s.ptr + s.len - sp - 1))) {
            free(mt);
            return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD,
                                    "%s: tokenizer.ggml.merges[%llu] '%.*s' is not 'left right'",
                                    label, (unsigned long long)i, (int)(s.len > 64 ? 64 : s.len),
                                    s.ptr);
        }
        mt[i] =
            (bpe_merge_text){s.ptr, sp + 1, (size_t)(sp - s.ptr), (size_t)(s.ptr + s.len - sp - 1)};
    }
    bpe->eog_by_text = true; /* llama.cpp's rules for GGUF vocabularies */
    rc = bpe_build(bpe, mt, (size_t)merges->count, label, err);
    free(mt);
    if (rc != KINFER_OK)
        return rc;
    int32_t bos = -1, eos = -1;
    bool add_bos = false;
    if ((rc = gguf_id(g, bpe, "tokenizer.ggml.bos_token_id", &bos, err)) != KINFER_OK ||
        (rc = gguf_id(g, bpe, "tokenizer.ggml.eos_token_id", &eos, err)) != KINFER_OK ||
        (rc = gguf_id(g, bpe, "tokenizer.ggml.eot_token_id", &bpe->eot, err)) != KINFER_OK ||
        (rc = gguf_id(g, bpe, "tokenizer.ggml.eom_token_id", &bpe->eom, err)) != KINFER_OK ||
        (rc = kinfer_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", false, &add_bos, err)) !=
            KINFER_OK)
        return rc;
    if (add_bos && bos < 0)
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD,
                                "%s: tokenizer.ggml.add_bos_token is set but there is no "
                                "tokenizer.ggml.bos_token_id",
                                label);
    return kinfer_bpe_set_specials(bpe, bos, eos, add_bos, err);
}

kinfer_err kinfer_bpe_from_gguf(const kinfer_gguf *g, kinfer_bpe **out, kinfer_error *err) {
    *out = NULL;
    kinfer_bpe *bpe = NULL;
    kinfer_err rc = bpe_alloc(&bpe, err);
    if (rc != KINFER_OK)
        return rc;
    rc = gguf_load(g, bpe, err);
    if (rc != KINFER_OK) {
        kinfer_bpe_destroy(bpe);
        return rc;
    }
    *out = bpe;
    return KINFER_OK;
}
