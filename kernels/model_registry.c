/* model_registry.c — the table of model kinds, and its public face
 * (kinfer_model_kind_count/_at/_lookup in kinfer_model.h). A kind is one
 * line below; its entry (kinfer_model_kind_ops) and everything else it
 * needs live in its own folder. */
#include "model_registry.h"

#include <stdio.h>
#include <string.h>

#include "bert/bert_model.h"
#include "llm/llm_model.h"
#include "mlp/mlp_model.h"

static const kinfer_model_kind_ops *const kinds[] = {
    &mlp_kind_ops,
    &bert_kind_ops,
    &llm_kind_ops,
};
#define NKINDS (sizeof(kinds) / sizeof(kinds[0]))

const kinfer_model_kind_ops *kinfer_model_kind_find(const char *kind) {
    if (!kind)
        return NULL;
    for (size_t i = 0; i < NKINDS; i++)
        if (strcmp(kinds[i]->info.name, kind) == 0)
            return kinds[i];
    return NULL;
}

void kinfer_model_kinds_format(char *buf, size_t buflen) {
    if (buflen == 0)
        return;
    buf[0] = '\0';
    size_t off = 0;
    for (size_t i = 0; i < NKINDS && off < buflen; i++) {
        int n = snprintf(buf + off, buflen - off, "%s%s", i ? ", " : "", kinds[i]->info.name);
        if (n < 0)
            break;
        off += (size_t)n;
    }
}

size_t kinfer_model_kind_count(void) {
    return NKINDS;
}

const kinfer_model_kind_info *kinfer_model_kind_at(size_t i) {
    return i < NKINDS ? &kinds[i]->info : NULL;
}

const kinfer_model_kind_info *kinfer_model_kind_lookup(const char *name) {
    const kinfer_model_kind_ops *k = kinfer_model_kind_find(name);
    return k ? &k->info : NULL;
}
