/* chat_template.h — chat templates (the Jinja text in GGUF's
 * tokenizer.chat_template or tokenizer_config.json's chat_template) in C:
 * a small interpreter for the Jinja subset that Llama-family templates use,
 * with Hugging Face's environment settings (trim_blocks, lstrip_blocks).
 * A template using anything outside the subset is refused at parse time
 * with KINFER_ERR_UNSUPPORTED naming the feature ("chat template uses Jinja
 * filter 'tojson', not supported"), never rendered differently from Jinja.
 *
 * Supported: text, {{ }}, {# #}, {% if/elif/else/endif %}, {% for x in e
 * %}...{% endfor %} with loop.index/index0/first/last/length/revindex/
 * revindex0, {% set x = e %} (scoped as Jinja scopes it), whitespace
 * control (-), string/integer/boolean/none/list literals, names,
 * attributes, subscripts and slices, + - * % ~, comparisons, in / not in,
 * and/or/not, inline if/else, filters trim/length/count/upper/lower/
 * string/first/last, tests defined/undefined/none/string/number/boolean,
 * the string methods strip/lstrip/rstrip/upper/lower/startswith/endswith,
 * and raise_exception(msg).
 *
 * The render keeps, for every output byte, whether it came from the
 * template (string literals, bos/eos text: trusted) or from a message
 * (untrusted), so the tokenizer makes control tokens only from the former:
 * a user who types "<|im_start|>" gets text, not a turn marker. */
#ifndef KINFER_CHAT_TEMPLATE_H
#define KINFER_CHAT_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kinfer/kinfer_error.h"
#include "kinfer/kinfer_model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kinfer_chat_template kinfer_chat_template;

/* Parses src[0..len) (copied: the buffer may go after the call). Errors name `label` (e.g. the
 * file): UNSUPPORTED for features outside the subset, MODEL_LOAD for syntax errors (with the line).
 */
kinfer_err kinfer_chat_template_parse(const char *src, size_t len, const char *label,
                                      kinfer_chat_template **out, kinfer_error *err);
void kinfer_chat_template_destroy(kinfer_chat_template *t);

/* What a template sees: messages (list of {role, content}),
 * add_generation_prompt, bos_token, eos_token (NULL = undefined). */
typedef struct kinfer_chat_vars {
    const kinfer_chat_message *messages;
    size_t nmessages;
    bool add_generation_prompt;
    const char *bos_token, *eos_token;
} kinfer_chat_vars;

/* Renders into *text (malloc'd, NUL-terminated, *len bytes) and *trusted
 * (malloc'd, *len flags: 1 = template text). Errors: INVALID_REQUEST for a
 * raise_exception of the template (its message) or a value error the
 * messages cause (e.g. a missing field), NOMEM. Thread-safe: the template
 * is read-only. */
kinfer_err kinfer_chat_template_render(const kinfer_chat_template *t, const kinfer_chat_vars *vars,
                                       char **text, uint8_t **trusted, size_t *len,
                                       kinfer_error *err);

#ifdef __cplusplus
}
#endif
#endif
