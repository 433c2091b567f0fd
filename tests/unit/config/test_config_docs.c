/* test_config_docs.c — the generated reference docs/CONFIGURATION.md is up
 * to date with the property table, the table is self-consistent and the
 * shipped examples load. (`kinfer check-config`'s exits: tests/unit/cli.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kinfer/kinfer_config.h"
#include "config_table.h"

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n + 4096 > cap) {
            cap = cap ? cap * 2 : 65536;
            char *grown = realloc(buf, cap);
            if (!grown) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = grown;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

static void test_reference_is_up_to_date(void **state) {
    (void)state;
    char *generated = NULL;
    size_t glen = 0;
    FILE *f = open_memstream(&generated, &glen);
    kinfer_error err = {0};
    assert_int_equal(kinfer_config_print_reference(f, &err), KINFER_OK);
    fclose(f);
    size_t dlen = 0;
    char *doc = read_all(KINFER_SOURCE_DIR "/docs/CONFIGURATION.md", &dlen);
    if (!doc || dlen != glen || memcmp(doc, generated, glen) != 0)
        fail_msg("docs/CONFIGURATION.md is stale; regenerate it with\n"
                 "  build/kinfer check-config --reference > docs/CONFIGURATION.md");
    free(doc);
    free(generated);
}

static void test_table_is_consistent(void **state) {
    (void)state;
    for (size_t i = 0; i < kinfer_config_nprops; i++) {
        const kinfer_config_prop *p = &kinfer_config_props[i];
        if (!p->description || !p->description[0] || strchr(p->description, '|'))
            fail_msg("%s: description missing or breaks the markdown table", p->name);
        bool choice = p->type == KINFER_CONFIG_TYPE_ENUM || p->type == KINFER_CONFIG_TYPE_CHOICE;
        if (choice != (kinfer_config_choices(p) != NULL))
            fail_msg("%s: choices go with choice types only", p->name);
        if (p->type == KINFER_CONFIG_TYPE_ENUM && p->size != sizeof(int))
            fail_msg("%s: ENUM members must be int-sized", p->name);
        if (p->type == KINFER_CONFIG_TYPE_INT && p->size != 4 && p->size != 8)
            fail_msg("%s: INT members are 4 or 8 bytes", p->name);
        if (p->type == KINFER_CONFIG_TYPE_INT && p->size == 4 && p->max > INT32_MAX)
            fail_msg("%s: range exceeds its 4-byte member", p->name);
        if (p->min > p->max)
            fail_msg("%s: min > max", p->name);
        /* Exactly one way to get a value when the file is silent. */
        int ways = !!p->def + !!(p->flags & KINFER_CONFIG_F_REQUIRED) +
                   !!(p->flags & KINFER_CONFIG_F_OPTIONAL) +
                   !!(p->flags & KINFER_CONFIG_F_COMPUTED);
        if (ways != 1)
            fail_msg("%s: needs exactly one of def, REQUIRED, OPTIONAL, COMPUTED", p->name);
        if ((p->flags & (KINFER_CONFIG_F_OPTIONAL | KINFER_CONFIG_F_COMPUTED)) && !p->def_doc)
            fail_msg("%s: OPTIONAL and COMPUTED need def_doc", p->name);
        if ((p->flags & KINFER_CONFIG_F_SCHED) && p->scope != KINFER_CONFIG_SCOPE_MODEL)
            fail_msg("%s: SCHED properties are model properties", p->name);
        for (size_t j = 0; j < i; j++)
            if (kinfer_config_props[j].scope == p->scope &&
                !strcmp(kinfer_config_props[j].name, p->name))
                fail_msg("%s: listed twice", p->name);
        if (p->scope == KINFER_CONFIG_SCOPE_ROOT && strchr(p->name, '.')) {
            bool known = false;
            for (size_t s = 0; s < kinfer_config_nsections; s++) {
                size_t n = strlen(kinfer_config_sections[s].name);
                known |=
                    n && !strncmp(p->name, kinfer_config_sections[s].name, n) && p->name[n] == '.';
            }
            if (!known)
                fail_msg("%s: its section is not in kinfer_config_sections", p->name);
        }
    }
}

static void test_examples_load(void **state) {
    (void)state;
    const char *examples[] = {KINFER_SOURCE_DIR "/examples/kinfer.conf",
                              KINFER_SOURCE_DIR "/examples/kinfer-kafka.conf"};
    for (size_t i = 0; i < 2; i++) {
        kinfer_config cfg;
        kinfer_error err = {0};
        if (kinfer_config_load(examples[i], &cfg, &err) != KINFER_OK)
            fail_msg("%s", err.msg);
        assert_int_equal(cfg.nmodels, 1);
        assert_string_equal(cfg.models[0].name, "example-mlp");
        assert_string_equal(cfg.models[0].load.kind, "mlp");
        assert_non_null(
            strstr(cfg.models[0].load.path, "/examples/../models/example_mlp.safetensors"));
        if (i == 0)
            assert_string_equal(cfg.kafka.brokers, ""); /* embedded mode */
        else
            assert_string_equal(cfg.kafka.brokers, "127.0.0.1:19092");
        kinfer_config_free(&cfg);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_is_up_to_date),
        cmocka_unit_test(test_table_is_consistent),
        cmocka_unit_test(test_examples_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
