/* config_ctx.c — what loading (config_load.c) and the cross-key rules
 * (config_rules.c, config_kinds.c) share about the file being loaded:
 * errors that name file, line and key, and the storage the config owns
 * (freed by kinfer_config_free). Not the property walk itself. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_table.h"

kinfer_err kinfer_config_fail(kinfer_config_load_ctx *c, int line, const char *key, const char *fmt,
                              ...) {
    char what[KINFER_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    if (line > 0)
        return kinfer_error_set(c->err, KINFER_ERR_CONFIG, "%s:%d: %s: %s", c->file, line, key,
                                what);
    return kinfer_error_set(c->err, KINFER_ERR_CONFIG, "%s: %s: %s", c->file, key, what);
}

kinfer_err kinfer_config_nomem(kinfer_config_load_ctx *c) {
    return kinfer_error_set(c->err, KINFER_ERR_NOMEM, "%s: out of memory", c->file);
}

void *kinfer_config_own(kinfer_config_load_ctx *c, void *p) {
    struct kinfer_config_state *st = c->st;
    if (!p)
        return NULL;
    if (st->nallocs == st->capallocs) {
        size_t cap = st->capallocs ? st->capallocs * 2 : 64;
        void **grown = realloc(st->allocs, cap * sizeof(*grown));
        if (!grown) {
            free(p);
            return NULL;
        }
        st->allocs = grown;
        st->capallocs = cap;
    }
    st->allocs[st->nallocs++] = p;
    return p;
}

char *kinfer_config_own_strdup(kinfer_config_load_ctx *c, const char *s) {
    return kinfer_config_own(c, strdup(s));
}

void *kinfer_config_own_calloc(kinfer_config_load_ctx *c, size_t n, size_t size) {
    return kinfer_config_own(c, calloc(n ? n : 1, size));
}
