/* tokenizer_load.c — building a kinfer_tokenizer from a Hugging Face model
 * directory: tokenizer.json (preferred: it is what the fast tokenizer runs)
 * or vocab.txt + tokenizer_config.json. Refuses, naming them, models,
 * normalizers and pre-tokenizers that are not BERT WordPiece. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_private.h"

#define WORD_CHARS_LIMIT 512 /* must match WORD_MAX in tokenizer_wordpiece.c */

kinfer_tokenizer_options kinfer_tokenizer_options_default(void) {
    return (kinfer_tokenizer_options){.clean_text = true,
                                      .handle_chinese_chars = true,
                                      .lowercase = true,
                                      .strip_accents = -1,
                                      .max_input_chars_per_word = 100};
}

void kinfer_tokenizer_destroy(kinfer_tokenizer *tok) {
    if (!tok)
        return;
    tok_vocab_free(&tok->vocab);
    for (size_t i = 0; i < tok->nadded; i++)
        free(tok->added[i].content);
    free(tok);
}

static kinfer_err tok_alloc(const kinfer_tokenizer_options *opts, kinfer_tokenizer **out,
                            kinfer_error *err) {
    kinfer_tokenizer *tok = calloc(1, sizeof(*tok));
    if (!tok)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "tokenizer: out of memory");
    tok_vocab_init(&tok->vocab);
    tok->opts = *opts;
    memcpy(tok->prefix, "##", 3);
    tok->prefix_len = 2;
    *out = tok;
    return KINFER_OK;
}

static kinfer_err check_opts(kinfer_tokenizer *tok, const char *path, kinfer_error *err) {
    if (tok->opts.max_input_chars_per_word == 0 ||
        tok->opts.max_input_chars_per_word > WORD_CHARS_LIMIT)
        return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                "%s: max_input_chars_per_word %u not supported (1..%d)", path,
                                tok->opts.max_input_chars_per_word, WORD_CHARS_LIMIT);
    tok->strip = tok->opts.strip_accents < 0 ? tok->opts.lowercase : tok->opts.strip_accents > 0;
    return KINFER_OK;
}

/* Reads vocab.txt: one token per line, trailing "\n" (and "\r") removed. */
static kinfer_err read_vocab_txt(kinfer_tokenizer *tok, const char *path, kinfer_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return kinfer_error_set(err, KINFER_ERR_IO, "%s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int32_t id = 0;
    kinfer_err rc = KINFER_OK;
    while ((n = getline(&line, &cap, f)) >= 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            n--;
        size_t bad;
        if (!kinfer_utf8_valid(line, (size_t)n, &bad)) {
            rc = kinfer_error_set(err, KINFER_ERR_MODEL_LOAD, "%s: line %d is not valid UTF-8",
                                  path, id + 1);
            break;
        }
        if ((rc = tok_vocab_put(&tok->vocab, line, (size_t)n, id, err)) != KINFER_OK) {
            kinfer_error_prefix(err, "%s", path);
            break;
        }
        id++;
    }
    free(line);
    fclose(f);
    if (rc == KINFER_OK && id == 0)
        rc = kinfer_error_set(err, KINFER_ERR_MODEL_LOAD, "%s: empty vocabulary", path);
    return rc;
}

/* The special tokens the slow->fast conversion registers as added tokens. */
static kinfer_err add_default_specials(kinfer_tokenizer *tok, kinfer_error *err) {
    static const char *const names[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        int32_t id = tok_vocab_get2(&tok->vocab, "", 0, names[i], strlen(names[i]));
        if (id >= 0 && tok_added_push(tok, names[i], strlen(names[i]), id, err) != KINFER_OK)
            return err ? err->code : KINFER_ERR_MODEL_LOAD;
    }
    return KINFER_OK;
}

kinfer_err kinfer_tokenizer_load_vocab(const char *vocab_path, const kinfer_tokenizer_options *opts,
                                       kinfer_tokenizer **out, kinfer_error *err) {
    kinfer_tokenizer_options def = kinfer_tokenizer_options_default();
    kinfer_tokenizer *tok;
    if (tok_alloc(opts ? opts : &def, &tok, err) != KINFER_OK)
        return KINFER_ERR_NOMEM;
    kinfer_err rc;
    if ((rc = check_opts(tok, vocab_path, err)) != KINFER_OK ||
        (rc = read_vocab_txt(tok, vocab_path, err)) != KINFER_OK ||
        (rc = add_default_specials(tok, err)) != KINFER_OK ||
        (rc = tok_resolve_specials(tok, "[UNK]", "[CLS]", "[SEP]", "[PAD]", err)) != KINFER_OK) {
        if (rc == KINFER_ERR_MODEL_LOAD && err)
            kinfer_error_prefix(err, "%s", vocab_path);
        kinfer_tokenizer_destroy(tok);
        return rc;
    }
    *out = tok;
    return KINFER_OK;
}

/* A JSON boolean, or null meaning "unset" (-1); anything else is an error. */
static int json_tristate(json_t *obj, const char *key, int dflt) {
    json_t *v = json_object_get(obj, key);
    if (!v)
        return dflt;
    if (json_is_null(v))
        return -1;
    if (json_is_boolean(v))
        return json_is_true(v) ? 1 : 0;
    return -2;
}

static kinfer_err bad_json(kinfer_error *err, const char *path, const char *what) {
    return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD, "%s: %s", path, what);
}

/* tokenizer.json "normalizer": BertNormalizer only. */
static kinfer_err parse_normalizer(json_t *root, const char *path, kinfer_tokenizer_options *o,
                                   kinfer_error *err) {
    json_t *n = json_object_get(root, "normalizer");
    const char *type = json_string_value(json_object_get(n, "type"));
    if (!n || json_is_null(n) || !type || strcmp(type, "BertNormalizer") != 0)
        return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                "%s: normalizer %s is not supported (only BertNormalizer)", path,
                                type ? type : "(none)");
    int clean = json_tristate(n, "clean_text", 1),
        cjk = json_tristate(n, "handle_chinese_chars", 1);
    int lower = json_tristate(n, "lowercase", 1), strip = json_tristate(n, "strip_accents", -1);
    if (clean < 0 || cjk < 0 || lower < 0 || strip < -1)
        return bad_json(err, path, "BertNormalizer options must be booleans");
    o->clean_text = clean;
    o->handle_chinese_chars = cjk;
    o->lowercase = lower;
    o->strip_accents = strip;
    json_t *pre = json_object_get(root, "pre_tokenizer");
    const char *pt = json_string_value(json_object_get(pre, "type"));
    if (!pt || strcmp(pt, "BertPreTokenizer") != 0)
        return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                "%s: pre_tokenizer %s is not supported (only BertPreTokenizer)",
                                path, pt ? pt : "(none)");
    return KINFER_OK;
}

/* tokenizer.json "model": WordPiece with its vocab object. */
static kinfer_err parse_model(json_t *root, const char *path, kinfer_tokenizer *tok,
                              const char **unk, kinfer_error *err) {
    json_t *m = json_object_get(root, "model");
    const char *type = json_string_value(json_object_get(m, "type"));
    if (!type || strcmp(type, "WordPiece") != 0)
        return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                "%s: tokenizer model %s is not supported (only WordPiece)", path,
                                type ? type : "(none)");
    json_t *mx = json_object_get(m, "max_input_chars_per_word");
    if (json_is_integer(mx)) {
        json_int_t v = json_integer_value(mx);
        tok->opts.max_input_chars_per_word = v < 0 || v > 1000000 ? 0 : (uint32_t)v;
    }
    const char *pfx = json_string_value(json_object_get(m, "continuing_subword_prefix"));
    if (pfx) {
        if (strlen(pfx) >= sizeof(tok->prefix))
            return bad_json(err, path, "continuing_subword_prefix too long");
        strcpy(tok->prefix, pfx);
        tok->prefix_len = strlen(pfx);
    }
    const char *u = json_string_value(json_object_get(m, "unk_token"));
    *unk = u ? u : "[UNK]";
    json_t *vocab = json_object_get(m, "vocab");
    if (!json_is_object(vocab) || json_object_size(vocab) == 0)
        return bad_json(err, path, "model.vocab must be a non-empty object");
    const char *key;
    json_t *val;
    json_object_foreach(vocab, key, val) {
        if (!json_is_integer(val))
            return bad_json(err, path, "model.vocab values must be integers");
        json_int_t id = json_integer_value(val);
        size_t bad;
        if (!kinfer_utf8_valid(key, strlen(key), &bad))
            return bad_json(err, path, "model.vocab key is not valid UTF-8");
        if (tok_vocab_put(&tok->vocab, key, strlen(key),
                          id < 0 || id > INT32_MAX ? -1 : (int32_t)id, err) != KINFER_OK)
            return kinfer_error_prefix(err, "%s", path);
    }
    return KINFER_OK;
}

/* tokenizer.json "added_tokens": matched verbatim in raw text. Only the
 * plain form (normalized=false, no lstrip/rstrip/single_word) is handled. */
static kinfer_err parse_added(json_t *root, const char *path, kinfer_tokenizer *tok,
                              kinfer_error *err) {
    json_t *arr = json_object_get(root, "added_tokens");
    if (!arr || json_is_null(arr))
        return KINFER_OK;
    if (!json_is_array(arr))
        return bad_json(err, path, "added_tokens must be an array");
    size_t i;
    json_t *a;
    json_array_foreach(arr, i, a) {
        const char *content = json_string_value(json_object_get(a, "content"));
        json_t *idv = json_object_get(a, "id");
        if (!content || !json_is_integer(idv))
            return bad_json(err, path, "added_tokens entries need content and id");
        static const char *const flags[] = {"normalized", "lstrip", "rstrip", "single_word"};
        for (size_t f = 0; f < 4; f++) {
            if (json_is_true(json_object_get(a, flags[f])))
                return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                        "%s: added token %s with %s=true is not supported", path,
                                        content, flags[f]);
        }
        json_int_t id = json_integer_value(idv);
        if (id < 0 || id > INT32_MAX)
            return bad_json(err, path, "added token id out of range");
        if (tok_added_push(tok, content, strlen(content), (int32_t)id, err) != KINFER_OK)
            return kinfer_error_prefix(err, "%s", path);
    }
    return KINFER_OK;
}

/* The post-processor must be the BERT single-sequence template; anything
 * else (RoBERTa's, a custom one) would change the ids. */
static kinfer_err check_post(json_t *root, const char *path, kinfer_error *err) {
    json_t *p = json_object_get(root, "post_processor");
    const char *type = json_string_value(json_object_get(p, "type"));
    if (type && (strcmp(type, "TemplateProcessing") == 0 || strcmp(type, "BertProcessing") == 0))
        return KINFER_OK;
    return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                            "%s: post_processor %s is not supported (only the BERT [CLS] x [SEP] "
                            "template)",
                            path, type ? type : "(none)");
}

static kinfer_err load_tokenizer_json(const char *path, kinfer_tokenizer **out, kinfer_error *err) {
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root)
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD, "%s:%d: %s", path, jerr.line,
                                jerr.text);
    kinfer_tokenizer_options o = kinfer_tokenizer_options_default();
    kinfer_tokenizer *tok = NULL;
    const char *unk = "[UNK]";
    kinfer_err rc;
    if ((rc = parse_normalizer(root, path, &o, err)) != KINFER_OK ||
        (rc = check_post(root, path, err)) != KINFER_OK ||
        (rc = tok_alloc(&o, &tok, err)) != KINFER_OK ||
        (rc = parse_model(root, path, tok, &unk, err)) != KINFER_OK ||
        (rc = check_opts(tok, path, err)) != KINFER_OK ||
        (rc = parse_added(root, path, tok, err)) != KINFER_OK ||
        (rc = tok_resolve_specials(tok, unk, "[CLS]", "[SEP]", "[PAD]", err)) != KINFER_OK) {
        kinfer_tokenizer_destroy(tok);
        json_decref(root);
        return rc;
    }
    json_decref(root);
    *out = tok;
    return KINFER_OK;
}

/* tokenizer_config.json keys of the slow BertTokenizer. */
static kinfer_err read_tokenizer_config(const char *path, kinfer_tokenizer_options *o,
                                        kinfer_error *err) {
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root)
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD, "%s:%d: %s", path, jerr.line,
                                jerr.text);
    int lower = json_tristate(root, "do_lower_case", 1);
    int strip = json_tristate(root, "strip_accents", -1);
    int cjk = json_tristate(root, "tokenize_chinese_chars", 1);
    int basic = json_tristate(root, "do_basic_tokenize", 1);
    json_decref(root);
    if (lower < 0 || strip < -1 || cjk < 0 || basic < 0)
        return bad_json(err, path,
                        "do_lower_case, strip_accents, tokenize_chinese_chars and "
                        "do_basic_tokenize must be booleans");
    if (!basic)
        return kinfer_error_set(err, KINFER_ERR_UNSUPPORTED,
                                "%s: do_basic_tokenize=false is not supported", path);
    o->lowercase = lower;
    o->strip_accents = strip;
    o->handle_chinese_chars = cjk;
    return KINFER_OK;
}

static bool file_exists(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f)
        fclose(f);
    return f != NULL;
}

kinfer_err kinfer_tokenizer_load_dir(const char *dir, kinfer_tokenizer **out, kinfer_error *err) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
    if (file_exists(path))
        return load_tokenizer_json(path, out, err);
    kinfer_tokenizer_options o = kinfer_tokenizer_options_default();
    snprintf(path, sizeof(path), "%s/tokenizer_config.json", dir);
    if (file_exists(path) && read_tokenizer_config(path, &o, err) != KINFER_OK)
        return err ? err->code : KINFER_ERR_MODEL_LOAD;
    snprintf(path, sizeof(path), "%s/vocab.txt", dir);
    if (!file_exists(path))
        return kinfer_error_set(err, KINFER_ERR_MODEL_LOAD,
                                "%s: neither tokenizer.json nor vocab.txt found", dir);
    return kinfer_tokenizer_load_vocab(path, &o, out, err);
}
