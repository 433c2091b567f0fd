/* bpe_json.c — the byte-level BPE tokenizer from a Hugging Face
 * tokenizer.json: model BPE (vocab, merges as "a b" strings or [a, b]
 * pairs, ignore_merges), added_tokens (special ones become control tokens,
 * the others user-defined), no normalizer, a ByteLevel pre-tokenizer with
 * its regex (alone or after Digits(individual_digits)), a ByteLevel
 * decoder, and a post-processor that is ByteLevel, absent, or a template
 * that puts one special token (BOS) before the text. Everything else is
 * refused, naming the JSON path and value, so that a file this code would
 * tokenize differently from Hugging Face never loads. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpe_private.h"

static const char *type_of(const json_t *obj) {
    const json_t *t = json_object_get(obj, "type");
    return json_is_string(t) ? json_string_value(t) : NULL;
}

/* True when obj[key] is absent, null, false or equal to `want`. */
static bool flag_is(const json_t *obj, const char *key, bool want) {
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return !want;
    return json_is_boolean(v) && json_boolean_value(v) == want;
}

static bool empty_or_null(const json_t *v) {
    return !v || json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0);
}

static kinfer_err check_bytelevel(const json_t *bl, const char *path, const char *where,
                                  kinfer_error *err) {
    if (!flag_is(bl, "use_regex", true))
        return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                "%s: %s ByteLevel with use_regex = false is not supported (only "
                                "the GPT-2 regex split)",
                                path, where);
    if (!flag_is(bl, "add_prefix_space", false))
        return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                "%s: %s ByteLevel with add_prefix_space = true is not supported",
                                path, where);
    return KINFER_OK;
}

static kinfer_err parse_pre(kinfer_bpe *bpe, const json_t *pre, const char *path,
                            kinfer_error *err) {
    const char *t = type_of(pre);
    if (t && strcmp(t, "ByteLevel") == 0) {
        bpe->pre = BPE_PRE_GPT2;
        return check_bytelevel(pre, path, "pre_tokenizer", err);
    }
    if (t && strcmp(t, "Sequence") == 0) {
        const json_t *list = json_object_get(pre, "pretokenizers");
        if (json_is_array(list) && json_array_size(list) == 2) {
            const json_t *a = json_array_get(list, 0), *b = json_array_get(list, 1);
            const char *ta = type_of(a), *tb = type_of(b);
            if (ta && tb && strcmp(ta, "Digits") == 0 && strcmp(tb, "ByteLevel") == 0) {
                if (!flag_is(a, "individual_digits", true))
                    return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                            "%s: pre_tokenizer Digits with individual_digits = "
                                            "false is not supported",
                                            path);
                bpe->pre = BPE_PRE_DIGITS_GPT2;
                return check_bytelevel(b, path, "pre_tokenizer", err);
            }
            return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                    "%s: pre_tokenizer Sequence [%s, %s] is not supported "
                                    "(supported: ByteLevel, Sequence [Digits, ByteLevel])",
                                    path, ta ? ta : "?", tb ? tb : "?");
        }
        return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                "%s: pre_tokenizer Sequence of %zu is not supported (supported: "
                                "ByteLevel, Sequence [Digits, ByteLevel])",
                                path, json_is_array(list) ? json_array_size(list) : 0);
    }
    return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                            "%s: pre_tokenizer %s is not supported (supported: ByteLevel, "
                            "Sequence [Digits, ByteLevel])",
                            path, t ? t : "null");
}

/* TemplateProcessing: single must be [$A] or [<special>, $A]; *bos is the
 * special's id (or -1). */
static kinfer_err parse_post(const kinfer_bpe *bpe, const json_t *post, const char *path,
                             int32_t *bos, kinfer_error *err) {
    *bos = -1;
    if (!post || json_is_null(post))
        return KINFER_OK;
    const char *t = type_of(post);
    if (t && strcmp(t, "ByteLevel") == 0)
        return KINFER_OK; /* offsets only */
    if (!t || strcmp(t, "TemplateProcessing") != 0)
        return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                "%s: post_processor %s is not supported (supported: ByteLevel, "
                                "TemplateProcessing adding one token before the text)",
                                path, t ? t : "?");
    const json_t *single = json_object_get(post, "single");
    size_t n = json_is_array(single) ? json_array_size(single) : 0;
    const json_t *last = n ? json_array_get(single, n - 1) : NULL;
    const json_t *seq = last ? json_object_get(last, "Sequence") : NULL;
    const json_t *seq_id = seq ? json_object_get(seq, "id") : NULL;
    bool ok =
        (n == 1 || n == 2) && json_is_string(seq_id) && strcmp(json_string_value(seq_id), "A") == 0;
    if (ok && n == 2) {
        const json_t *sp = json_object_get(json_array_get(single, 0), "SpecialToken");
        const json_t *id = sp ? json_object_get(sp, "id") : NULL;
        ok = json_is_string(id);
        if (ok) {
            *bos =
                tok_vocab_get2(&bpe->vocab, "", 0, json_string_value(id), json_string_length(id));
            ok = *bos >= 0;
        }
    }
    if (!ok)
        return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                "%s: post_processor TemplateProcessing 'single' is not [$A] or "
                                "[<token>, $A] (not supported)",
                                path);
    return KINFER_OK;
}

static kinfer_err parse_model(kinfer_bpe *bpe, const json_t *model, const char *path,
                              kinfer_error *err) {
    const char *t = type_of(model);
    if (!t || strcmp(t, "BPE") != 0)
        return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                "%s: model type %s is not supported (supported: BPE)", path,
                                t ? t : "?");
    const json_t *dropout = json_object_get(model, "dropout");
    if (dropout && !json_is_null(dropout))
        return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                "%s: model.dropout is not supported (must be null)", path);
    if (!flag_is(model, "byte_fallback", false))
        return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                "%s: model.byte_fallback = true is not supported", path);
    if (!empty_or_null(json_object_get(model, "continuing_subword_prefix")) ||
        !empty_or_null(json_object_get(model, "end_of_word_suffix")))
        return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                "%s: model.continuing_subword_prefix / end_of_word_suffix are "
                                "not supported",
                                path);
    bpe->ignore_merges = flag_is(model, "ignore_merges", true);
    const json_t *vocab = json_object_get(model, "vocab");
    if (!json_is_object(vocab) || json_object_size(vocab) == 0)
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD,
                                "%s: model.vocab is missing or not an object", path);
    const char *key;
    const json_t *val;
    json_object_foreach((json_t *)vocab, key, val) {
        json_int_t id = json_is_integer(val) ? json_integer_value(val) : -1;
        if (id < 0 || id >= (1 << 24))
            return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD,
                                    "%s: model.vocab['%.64s'] is not an id in [0, 2^24)", path,
                                    key);
        if (tok_vocab_put(&bpe->vocab, key, strlen(key), (int32_t)id, err) != KINFER_OK)
            return kinfer_error_prefix(err, "%s: model.vocab", path);
    }
    return KINFER_OK;
}

static kinfer_err parse_added(kinfer_bpe *bpe, const json_t *added, const char *path,
                              kinfer_error *err) {
    if (!added || json_is_null(added))
        return KINFER_OK;
    if (!json_is_array(added))
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD, "%s: added_tokens is not an array",
                                path);
    size_t i;
    const json_t *a;
    json_array_foreach(added, i, a) {
        const json_t *id = json_object_get(a, "id"), *content = json_object_get(a, "content");
        if (!json_is_integer(id) || !json_is_string(content) || json_integer_value(id) < 0 ||
            json_integer_value(id) >= (1 << 24))
            return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD,
                                    "%s: added_tokens[%zu] needs an integer id and a content", path,
                                    i);
        const char *text = json_string_value(content);
        size_t len = json_string_length(content);
        for (const char *opt = "single_word"; opt; opt = strcmp(opt, "single_word") == 0 ? "lstrip"
                                                         : strcmp(opt, "lstrip") == 0    ? "rstrip"
                                                                                         : NULL)
            if (!flag_is(a, opt, false))
                return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                        "%s: added token '%.64s' uses %s, not supported", path,
                                        text, opt);
        int32_t want = (int32_t)json_integer_value(id);
        int32_t have = tok_vocab_get2(&bpe->vocab, "", 0, text, len);
        if (have != want) {
            if ((uint32_t)want < bpe->vocab.size && bpe->vocab.tok_offsets[want] != UINT32_MAX)
                return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD,
                                        "%s: added token '%.64s' has id %d, which the vocabulary "
                                        "gives to another token",
                                        path, text, want);
            if (tok_vocab_put(&bpe->vocab, text, len, want, err) != KINFER_OK)
                return kinfer_error_prefix(err, "%s: added_tokens", path);
        }
        if (bpe_sync_types(bpe, err) != KINFER_OK)
            return KINFER_ERR_NOMEM;
        bpe->types[want] =
            flag_is(a, "special", true) ? KINFER_BPE_CONTROL : KINFER_BPE_USER_DEFINED;
    }
    return KINFER_OK;
}

/* merges: "a b" strings (tokenizers < 0.20) or [a, b] pairs. */
static kinfer_err parse_merges(const json_t *merges, const char *path, bpe_merge_text **out,
                               size_t *n, kinfer_error *err) {
    *out = NULL;
    *n = 0;
    if (!json_is_array(merges))
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD, "%s: model.merges is not an array",
                                path);
    size_t count = json_array_size(merges);
    bpe_merge_text *m = malloc((count ? count : 1) * sizeof(*m));
    if (!m)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "tokenizer: out of memory");
    for (size_t i = 0; i < count; i++) {
        const json_t *e = json_array_get(merges, i);
        bool ok = false;
        if (json_is_string(e)) {
            const char *s = json_string_value(e);
            size_t len = json_string_length(e);
            const char *sp = memchr(s, ' ', len);
            ok = sp && sp != s && sp + 1 != s + len &&
                 !memchr(sp + 1, ' ', (size_t)(s + len - sp - 1));
            if (ok)
                m[i] = (bpe_merge_text){s, sp + 1, (size_t)(sp - s), (size_t)(s + len - sp - 1)};
        } else if (json_is_array(e) && json_array_size(e) == 2) {
            const json_t *l = json_array_get(e, 0), *r = json_array_get(e, 1);
            ok = json_is_string(l) && json_is_string(r);
            if (ok)
                m[i] = (bpe_merge_text){json_string_value(l), json_string_value(r),
                                        json_string_length(l), json_string_length(r)};
        }
        if (!ok) {
            free(m);
            return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD,
                                    "%s: model.merges[%zu] is not \"left right\" or [left, right]",
                                    path, i);
        }
    }
    *out = m;
    *n = count;
    return KINFER_OK;
}

static kinfer_err json_load(kinfer_bpe *bpe, const json_t *root, const char *path,
                            kinfer_error *err) {
    const json_t *norm = json_object_get(root, "normalizer");
    if (norm && !json_is_null(norm))
        return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                "%s: normalizer %s is not supported (byte-level BPE here has "
                                "none)",
                                path, type_of(norm) ? type_of(norm) : "?");
    const json_t *dec = json_object_get(root, "decoder");
    if (!dec || !type_of(dec) || strcmp(type_of(dec), "ByteLevel") != 0)
        return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                "%s: decoder %s is not supported (supported: ByteLevel)", path,
                                dec && type_of(dec) ? type_of(dec) : "null");
    kinfer_err rc = parse_pre(bpe, json_object_get(root, "pre_tokenizer"), path, err);
    if (rc == KINFER_OK)
        rc = parse_model(bpe, json_object_get(root, "model"), path, err);
    if (rc == KINFER_OK)
        rc = bpe_sync_types(bpe, err);
    if (rc != KINFER_OK)
        return rc;
    for (uint32_t i = 0; i < bpe->vocab.size; i++)
        bpe->types[i] = bpe->vocab.tok_offsets[i] == UINT32_MAX ? 0 : KINFER_BPE_NORMAL;
    if ((rc = parse_added(bpe, json_object_get(root, "added_tokens"), path, err)) != KINFER_OK)
        return rc;
    bpe_merge_text *m;
    size_t nm;
    const json_t *model = json_object_get(root, "model");
    if ((rc = parse_merges(json_object_get(model, "merges"), path, &m, &nm, err)) != KINFER_OK)
        return rc;
    rc = bpe_build(bpe, m, nm, path, err);
    free(m);
    if (rc != KINFER_OK)
        return rc;
    int32_t bos;
    if ((rc = parse_post(bpe, json_object_get(root, "post_processor"), path, &bos, err)) !=
        KINFER_OK)
        return rc;
    return kinfer_bpe_set_specials(bpe, bos, -1, bos >= 0, err);
}

kinfer_err kinfer_bpe_from_json(const char *path, kinfer_bpe **out, kinfer_error *err) {
    *out = NULL;
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD, "%s: %s (line %d)", path, jerr.text,
                                jerr.line);
    kinfer_bpe *bpe = NULL;
    kinfer_err rc = json_is_object(root) ? bpe_alloc(&bpe, err)
                                         : kinfer_error_set(err, KINFER_ERR_MODEL_LOAD,
                                                            "%s: not a JSON object", path);
    if (rc == KINFER_OK)
        rc = json_load(bpe, root, path, err);
    json_decref(root);
    if (rc != KINFER_OK) {
        kinfer_bpe_destroy(bpe);
        return rc;
    }
    *out = bpe;
    return KINFER_OK;
}
