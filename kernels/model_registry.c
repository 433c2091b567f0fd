/* model_registry.c — the table of model kinds. Adding a kind = one extern
 * and one entry below; the kind's own files hold everything else. */
#include "model_registry.h"

#include <stdio.h>
#include <string.h>

#include "bert_model.h"
#include "mlp_model.h"

/* Kinds implemented elsewhere add their extern here, e.g.
 * extern const kinfer_model_kind_ops bert_kind_ops; */

static const kinfer_model_kind_ops *const kinds[] = {
    &mlp_kind_ops,
    &bert_kind_ops,
};

const kinfer_model_kind_ops *kinfer_model_kind_find(const char *kind) {
    if (!kind)
        return NULL;
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (strcmp(kinds[i]->kind, kind) == 0)
            return kinds[i];
    return NULL;
}

void kinfer_model_kinds_format(char *buf, size_t buflen) {
    if (buflen == 0)
        return;
    buf[0] = '\0';
    size_t off = 0;
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]) && off < buflen; i++) {
        int n = snprintf(buf + off, buflen - off, "%s%s", i ? ", " : "", kinds[i]->kind);
        if (n < 0)
            break;
        off += (size_t)n;
    }
}
