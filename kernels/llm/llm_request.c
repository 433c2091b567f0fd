/* llm_request.c — what kind llm accepts: a plain prompt (BOS when the
 * model asks for it, then the text as text: a control token spelled in it
 * stays text) or chat messages rendered by the model's chat template with
 * the generation prompt (the template's markup becomes control tokens, the
 * messages' text never does). Invalid UTF-8 and bytes the vocabulary
 * cannot encode are INVALID_REQUEST naming the offset; nothing is dropped
 * or replaced. Also check_request over STRING tensors (llm_model.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm_model.h"
#include "tokenizer/tokenizer_wordpiece.h" /* kinfer_utf8_valid */

/* A role is a short name ("system", "user", "assistant", "tool"...): the
 * template decides which it accepts (raise_exception), but a role is
 * message text spliced into the prompt, so it may not carry newlines or
 * markup that could fake the structure of a turn. */
#define ROLE_MAX 32

static bool role_ok(kinfer_str role) {
    if (role.len == 0 || role.len > ROLE_MAX || !role.ptr)
        return false;
    for (size_t i = 0; i < role.len; i++) {
        char c = role.ptr[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if (!(alpha || (i > 0 && ((c >= '0' && c <= '9') || c == '_' || c == '-'))))
            return false;
    }
    return true;
}

static kinfer_err check_utf8(kinfer_str s, const char *what, kinfer_error *err) {
    size_t bad;
    if (kinfer_utf8_valid(s.ptr, s.len, &bad))
        return KINFER_OK;
    return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST,
                            "%s is not valid UTF-8 (byte 0x%02X at offset %zu)", what,
                            (uint8_t)s.ptr[bad], bad);
}

static kinfer_err tokenize_chat(const llm_model *m, const kinfer_chat_message *messages, size_t n,
                                kinfer_bpe_ids *ids, kinfer_error *err) {
    if (!m->tmpl)
        return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST,
                                "the model has no chat template: send a plain prompt");
    for (size_t i = 0; i < n; i++) {
        const kinfer_chat_message *msg = &messages[i];
        if (!role_ok(msg->role))
            return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST,
                                    "message %zu: role '%.*s' is not a role name (a letter, then "
                                    "letters, digits, '_' or '-', at most %d bytes)",
                                    i, (int)(msg->role.len > 32 ? 32 : msg->role.len),
                                    msg->role.ptr ? msg->role.ptr : "", ROLE_MAX);
        size_t bad;
        if (!kinfer_utf8_valid(msg->content.ptr, msg->content.len, &bad))
            return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST,
                                    "message %zu: content is not valid UTF-8 (byte 0x%02X at "
                                    "offset %zu)",
                                    i, (uint8_t)msg->content.ptr[bad], bad);
    }
    kinfer_chat_vars vars = {messages, n, true, m->bos_text, m->eos_text};
    char *text;
    uint8_t *trusted;
    size_t len;
    kinfer_err rc = kinfer_chat_template_render(m->tmpl, &vars, &text, &trusted, &len, err);
    if (rc != KINFER_OK)
        return rc;
    /* Template output is the prompt as HF's apply_chat_template builds it:
     * no BOS beyond what the template writes. */
    kinfer_bpe_encode_opts o = {.parse_special = true, .trusted = trusted};
    rc = kinfer_bpe_encode(m->tok, text, len, &o, ids, err);
    if (rc != KINFER_OK)
        kinfer_error_prefix(err, "rendered chat prompt");
    free(text);
    free(trusted);
    return rc;
}

kinfer_err llm_tokenize(const llm_model *m, kinfer_str prompt, const kinfer_chat_message *messages,
                        size_t nmessages, int32_t **ids, size_t *nids, kinfer_error *err) {
    *ids = NULL;
    *nids = 0;
    kinfer_bpe_ids out = {0};
    kinfer_err rc;
    if (nmessages > 0) {
        if (prompt.len > 0)
            return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST,
                                    "give a prompt or chat messages, not both");
        rc = tokenize_chat(m, messages, nmessages, &out, err);
    } else {
        if (prompt.len == 0)
            return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST, "the prompt is empty");
        if ((rc = check_utf8(prompt, "the prompt", err)) != KINFER_OK)
            return rc;
        if (kinfer_bpe_add_bos(m->tok)) {
            out.ids = malloc(64 * sizeof(int32_t));
            if (!out.ids)
                return kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
            out.cap = 64;
            out.ids[out.n++] = kinfer_bpe_bos(m->tok);
        }
        rc = kinfer_bpe_encode(m->tok, prompt.ptr, prompt.len, NULL, &out, err);
        if (rc != KINFER_OK)
            kinfer_error_prefix(err, "prompt");
    }
    if (rc != KINFER_OK) {
        free(out.ids);
        return rc;
    }
    if (out.n == 0) {
        free(out.ids);
        return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST, "the prompt has no tokens");
    }
    *ids = out.ids;
    *nids = out.n;
    return KINFER_OK;
}

static const kinfer_tensor *find_input(const kinfer_tensor *inputs, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++)
        if (inputs[i].name.len == strlen(name) &&
            memcmp(inputs[i].name.ptr, name, inputs[i].name.len) == 0)
            return &inputs[i];
    return NULL;
}

static kinfer_err want_strings(const kinfer_tensor *t, const char *name, kinfer_error *err) {
    if (t->dtype != KINFER_DTYPE_STRING || t->ndim > 1)
        return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST,
                                "input '%s' must be STRING of shape [n] (got %s, %d dims)", name,
                                kinfer_dtype_name(t->dtype), t->ndim);
    return KINFER_OK;
}

kinfer_err llm_check_request(const llm_model *m, const kinfer_tensor *inputs, size_t ninputs,
                             const kinfer_param *params, size_t nparams, kinfer_request_cost *cost,
                             kinfer_error *err) {
    (void)params;
    (void)nparams;
    const kinfer_tensor *prompt = find_input(inputs, ninputs, "prompt");
    const kinfer_tensor *role = find_input(inputs, ninputs, "role");
    const kinfer_tensor *content = find_input(inputs, ninputs, "content");
    size_t known = (prompt != NULL) + (role != NULL) + (content != NULL);
    if (known != ninputs) {
        for (size_t i = 0; i < ninputs; i++)
            if (!find_input(inputs + i, 1, "prompt") && !find_input(inputs + i, 1, "role") &&
                !find_input(inputs + i, 1, "content"))
                return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST,
                                        "unknown input '%.*s' (kind llm takes 'prompt', or "
                                        "'role' and 'content' for chat messages)",
                                        (int)(inputs[i].name.len > 64 ? 64 : inputs[i].name.len),
                                        inputs[i].name.ptr);
        return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST, "an input appears twice");
    }
    int32_t *ids = NULL;
    size_t nids = 0;
    kinfer_err rc;
    if (prompt && !role && !content) {
        if ((rc = want_strings(prompt, "prompt", err)) != KINFER_OK)
            return rc;
        if (prompt->nstrings != 1)
            return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST,
                                    "input 'prompt' must hold one text (got %zu)",
                                    prompt->nstrings);
        rc = llm_tokenize(m, prompt->strings[0], NULL, 0, &ids, &nids, err);
    } else if (!prompt && role && content) {
        if ((rc = want_strings(role, "role", err)) != KINFER_OK ||
            (rc = want_strings(content, "content", err)) != KINFER_OK)
            return rc;
        if (role->nstrings == 0 || role->nstrings != content->nstrings)
            return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST,
                                    "inputs 'role' and 'content' must have the same length >= 1 "
                                    "(got %zu and %zu)",
                                    role->nstrings, content->nstrings);
        kinfer_chat_message *msgs = calloc(role->nstrings, sizeof(*msgs));
        if (!msgs)
            return kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < role->nstrings; i++)
            msgs[i] = (kinfer_chat_message){role->strings[i], content->strings[i]};
        rc = llm_tokenize(m, (kinfer_str){NULL, 0}, msgs, role->nstrings, &ids, &nids, err);
        free(msgs);
    } else {
        return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST,
                                ninputs == 0 ? "no input: kind llm takes 'prompt', or 'role' and "
                                               "'content' for chat messages"
                                             : "give 'prompt' alone, or 'role' with 'content'");
    }
    free(ids);
    if (rc != KINFER_OK)
        return rc;
    if (nids >= m->context_length)
        return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST,
                                "the prompt has %zu tokens; the context holds %u (room is needed "
                                "for at least one generated token)",
                                nids, m->context_length);
    cost->rows = 1;
    cost->tokens = (uint32_t)nids;
    cost->max_len = (uint32_t)nids;
    return KINFER_OK;
}
