/* test_config_util.h — shared by the test_config*.c unit tests: a scratch
 * directory with a fake model file and a fake model directory (the config
 * only checks they exist), and a loader that substitutes their paths. */
#ifndef TEST_CONFIG_UTIL_H
#define TEST_CONFIG_UTIL_H

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kinfer/kinfer_config.h"

/* $M in a config text becomes the model file, $B the model directory. */
static char tc_dir[PATH_MAX];
static char tc_model[PATH_MAX + 32];
static char tc_bert[PATH_MAX + 32];

static int tc_setup(void **state) {
    (void)state;
    snprintf(tc_dir, sizeof(tc_dir), "/tmp/kinfer_test_config_XXXXXX");
    if (!mkdtemp(tc_dir))
        return -1;
    snprintf(tc_model, sizeof(tc_model), "%s/m.safetensors", tc_dir);
    snprintf(tc_bert, sizeof(tc_bert), "%s/bert", tc_dir);
    FILE *f = fopen(tc_model, "w");
    if (!f)
        return -1;
    fputs("not really a model; the config only checks it exists\n", f);
    fclose(f);
    return mkdir(tc_bert, 0700);
}

static int tc_teardown(void **state) {
    (void)state;
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tc_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Copies text with $M and $B replaced; the caller frees. */
static char *tc_expand(const char *text) {
    size_t cap = strlen(text) * 2 + 4 * PATH_MAX + 1, n = 0;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    for (const char *p = text; *p; p++) {
        const char *sub = NULL;
        if (p[0] == '$' && p[1] == 'M')
            sub = tc_model;
        else if (p[0] == '$' && p[1] == 'B')
            sub = tc_bert;
        if (sub) {
            size_t len = strlen(sub);
            if (n + len + 1 >= cap)
                break;
            memcpy(out + n, sub, len);
            n += len;
            p++;
        } else if (n + 1 < cap) {
            out[n++] = *p;
        }
    }
    out[n] = '\0';
    return out;
}

static kinfer_err tc_load(const char *text, const char *origin, kinfer_config *cfg,
                          kinfer_error *err) {
    char *expanded = tc_expand(text);
    if (!expanded)
        return KINFER_ERR_NOMEM;
    kinfer_err rc = kinfer_config_load_string(expanded, origin, cfg, err);
    free(expanded);
    return rc;
}

/* Writes text (expanded) to path. */
static int tc_write(const char *path, const char *text) {
    char *expanded = tc_expand(text);
    FILE *f = fopen(path, "w");
    if (!f || !expanded) {
        free(expanded);
        if (f)
            fclose(f);
        return -1;
    }
    fputs(expanded, f);
    free(expanded);
    return fclose(f);
}

#define TC_MODEL "models = ( { name = \"m\"; kind = \"mlp\"; path = \"$M\"; } );\n"

#endif
