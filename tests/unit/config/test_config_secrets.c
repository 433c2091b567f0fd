/* test_config_secrets.c — secrets outside the config: `${env:NAME}` and
 * `${file:PATH}` in librdkafka property values expand at load (file, line
 * and key named when the variable or file is missing), and no secret is
 * ever printed: check-config shows the reference or [redacted], and no
 * error message quotes a secret value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_config_util.h"

#define SECRET "s3cr3t-Hunter2"

static char *printed(const kinfer_config *cfg) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    kinfer_error err;
    assert_int_equal(kinfer_config_print(cfg, f, &err), KINFER_OK);
    fclose(f);
    return text;
}

/* Loads text with origin tc_dir/kinfer.conf (relative ${file:} paths are
 * against tc_dir); returns the error message on failure. */
static kinfer_err load(const char *text, kinfer_config *cfg, kinfer_error *err) {
    char origin[PATH_MAX + 32];
    snprintf(origin, sizeof origin, "%s/kinfer.conf", tc_dir);
    return tc_load(text, origin, cfg, err);
}

static void write_file(const char *name, const char *bytes, size_t n) {
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", tc_dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, n, f), n);
    fclose(f);
}

static void test_env_and_file_references_expand(void **state) {
    (void)state;
    setenv("KINFER_TEST_USER", "kinfer", 1);
    setenv("KINFER_TEST_PASSWORD", SECRET, 1);
    char pwfile[PATH_MAX + 32];
    snprintf(pwfile, sizeof pwfile, "%s/kafka.password", tc_dir);
    assert_int_equal(tc_write(pwfile, SECRET "\n"), 0);
    write_file("crlf.password", "pw-crlf\r\n", 9);
    char abs[PATH_MAX + 64];
    snprintf(abs, sizeof abs, "%s/kafka.password", tc_dir);
    char text[4 * PATH_MAX];
    snprintf(text, sizeof text,
             TC_MODEL
             "kafka = {\n"
             "  properties = [\"sasl.username=${env:KINFER_TEST_USER}\",\n"
             "                \"sasl.password=${env:KINFER_TEST_PASSWORD}\"];\n"
             "  consumer_properties = [\"ssl.key.password=${file:kafka.password}\",\n"
             "                         \"client.id=id-$${not-a-ref}-$5\"];\n"
             "  producer_properties = [\"ssl.keystore.password=${file:%s}\",\n"
             "                         \"sasl.oauthbearer.config=${file:crlf.password}\"];\n"
             "};\n",
             abs);
    kinfer_config cfg;
    kinfer_error err;
    if (load(text, &cfg, &err) != KINFER_OK)
        fail_msg("%s", err.msg);
    const kinfer_config_kv *p = cfg.kafka.properties.items;
    assert_string_equal(p[0].value, "kinfer");
    assert_string_equal(p[0].raw, "${env:KINFER_TEST_USER}");
    assert_true(p[0].secret); /* from a reference: not shown either */
    assert_string_equal(p[1].value, SECRET);
    const kinfer_config_kv *c = cfg.kafka.consumer_properties.items;
    assert_string_equal(c[0].value, SECRET); /* relative to the config's directory, \n dropped */
    assert_string_equal(c[1].value, "id-${not-a-ref}-$5"); /* $${ is a literal ${ */
    const kinfer_config_kv *q = cfg.kafka.producer_properties.items;
    assert_string_equal(q[0].value, SECRET); /* absolute path */
    assert_string_equal(q[1].value, "pw-crlf");

    /* check-config: references as written, never the values. */
    char *out = printed(&cfg);
    assert_null(strstr(out, SECRET));
    assert_null(strstr(out, "pw-crlf"));
    assert_non_null(strstr(out, "\"sasl.password=${env:KINFER_TEST_PASSWORD}\""));
    assert_non_null(strstr(out, "\"sasl.username=${env:KINFER_TEST_USER}\""));
    assert_non_null(strstr(out, "\"ssl.key.password=${file:kafka.password}\""));
    free(out);
    kinfer_config_free(&cfg);
    unsetenv("KINFER_TEST_USER");
    unsetenv("KINFER_TEST_PASSWORD");
}

static void test_literal_secrets_are_redacted(void **state) {
    (void)state;
    setenv("KINFER_TEST_PART", "tail", 1);
    kinfer_config cfg;
    kinfer_error err;
    if (load(TC_MODEL "kafka = { properties = [\"sasl.username=alice\",\n"
                      "  \"sasl.password=" SECRET "\", \"ssl.key.pem=-----BEGIN " SECRET "\",\n"
                      "  \"sasl.oauthbearer.config=principal=" SECRET "\",\n"
                      "  \"ssl.key.password=abc${env:KINFER_TEST_PART}\"]; };\n",
             &cfg, &err) != KINFER_OK)
        fail_msg("%s", err.msg);
    assert_false(cfg.kafka.properties.items[0].secret);
    assert_true(cfg.kafka.properties.items[1].secret);
    assert_null(cfg.kafka.properties.items[1].raw);
    assert_string_equal(cfg.kafka.properties.items[4].value, "abctail");
    char *out = printed(&cfg);
    assert_null(strstr(out, SECRET));
    assert_non_null(strstr(out, "\"sasl.username=alice\""));
    assert_non_null(strstr(out, "\"sasl.password=[redacted]\""));
    assert_non_null(strstr(out, "\"ssl.key.pem=[redacted]\""));
    assert_non_null(strstr(out, "\"sasl.oauthbearer.config=[redacted]\""));
    /* Partly literal: showing the reference would show part of the secret. */
    assert_non_null(strstr(out, "\"ssl.key.password=[redacted]\""));
    assert_null(strstr(out, "abc"));
    free(out);
    kinfer_config_free(&cfg);
    unsetenv("KINFER_TEST_PART");
}

/* The load fails; the message names the file, a line, the key, the
 * property and what is missing, and never the secret. */
static void expect_error(const char *props, const char *want1, const char *want2) {
    char text[4096];
    snprintf(text, sizeof text, TC_MODEL "kafka = {\n  properties = [%s];\n};\n", props);
    kinfer_config cfg;
    kinfer_error err;
    assert_int_equal(load(text, &cfg, &err), KINFER_ERR_CONFIG);
    if (!strstr(err.msg, want1) || (want2 && !strstr(err.msg, want2)))
        fail_msg("message \"%s\" lacks \"%s\" / \"%s\"", err.msg, want1, want2 ? want2 : "");
    assert_non_null(strstr(err.msg, "kinfer.conf:3: kafka.properties.[")); /* file:line: key */
    assert_null(strstr(err.msg, SECRET));
}

static void test_missing_variables_and_files_are_load_errors(void **state) {
    (void)state;
    unsetenv("KINFER_TEST_UNSET");
    setenv("KINFER_TEST_EMPTY", "", 1);
    expect_error("\"sasl.password=${env:KINFER_TEST_UNSET}\"",
                 "kafka.properties.[0]: sasl.password: ${env:KINFER_TEST_UNSET}: environment "
                 "variable KINFER_TEST_UNSET is not set",
                 NULL);
    expect_error("\"client.id=x\", \"sasl.password=${env:KINFER_TEST_EMPTY}\"",
                 "kafka.properties.[1]: sasl.password:", "KINFER_TEST_EMPTY is empty");
    expect_error("\"sasl.password=${file:no/such/file}\"",
                 "sasl.password: ${file:no/such/file}: cannot read ", "No such file or directory");
    write_file("empty.secret", "\n", 1);
    expect_error("\"sasl.password=${file:empty.secret}\"", "empty.secret is empty", NULL);
    write_file("nul.secret", "ab\0cd", 5);
    expect_error("\"sasl.password=${file:nul.secret}\"", "contains a NUL byte", NULL);
    expect_error("\"sasl.password=${vault:kafka/pw}\"", "unknown reference \"${vault:\"",
                 "${env:NAME} or ${file:PATH}");
    expect_error("\"sasl.password=${env:KINFER_TEST_EMPTY\"", "unterminated reference", NULL);
    expect_error("\"sasl.password=${env:1BAD}\"", "not a variable name", NULL);
    unsetenv("KINFER_TEST_EMPTY");
}

static void test_messages_never_quote_secret_values(void **state) {
    (void)state;
    /* A malformed property name: the message quotes the name, not the value. */
    expect_error("\"sasl password=" SECRET "\"", "got \"sasl password=...\"", NULL);
    expect_error("\"ssl.key.password\"", "expected \"key=value\"", NULL);
}

static void test_expand_refs_directly(void **state) {
    (void)state;
    char *out = (char *)1;
    kinfer_error err;
    assert_int_equal(kinfer_config_expand_refs("plain $value {x}", NULL, &out, &err), KINFER_OK);
    assert_null(out); /* nothing to expand: use the value as written */
    setenv("KINFER_TEST_A", "1", 1);
    setenv("KINFER_TEST_B", "two", 1);
    assert_int_equal(
        kinfer_config_expand_refs("${env:KINFER_TEST_A}:${env:KINFER_TEST_B}$", NULL, &out, &err),
        KINFER_OK);
    assert_string_equal(out, "1:two$");
    free(out);
    assert_int_equal(kinfer_config_expand_refs("$${env:KINFER_TEST_A}", NULL, &out, &err),
                     KINFER_OK);
    assert_string_equal(out, "${env:KINFER_TEST_A}");
    free(out);
    assert_true(kinfer_config_secret_key("sasl.password"));
    assert_true(kinfer_config_secret_key("ssl.keystore.password"));
    assert_true(kinfer_config_secret_key("sasl.oauthbearer.client.secret"));
    assert_false(kinfer_config_secret_key("sasl.username"));
    assert_false(kinfer_config_secret_key("ssl.ca.location"));
    unsetenv("KINFER_TEST_A");
    unsetenv("KINFER_TEST_B");
}

/* kafka.schema_registry_*: the password is a secret like sasl.password
 * (expanded, never printed), credentials never in the URL, user and
 * password together. */
static void test_schema_registry_keys(void **state) {
    (void)state;
    setenv("KINFER_TEST_REG_PW", SECRET, 1);
    kinfer_config cfg;
    kinfer_error err;
    assert_int_equal(load(TC_MODEL
                          "kafka = {\n"
                          "  schema_registry_url = \"http://127.0.0.1:8081/apis/ccompat/v7\";\n"
                          "  schema_registry_user = \"svc\";\n"
                          "  schema_registry_password = \"${env:KINFER_TEST_REG_PW}\";\n"
                          "};\n",
                          &cfg, &err),
                     KINFER_OK);
    assert_string_equal(cfg.kafka.schema_registry_password, SECRET);
    assert_int_equal(cfg.kafka.schema_registry_timeout_ms, 5000);
    char *text = printed(&cfg);
    assert_null(strstr(text, SECRET));
    assert_non_null(strstr(text, "schema_registry_password = \"[redacted]\""));
    free(text);
    kinfer_config_free(&cfg);

    const struct {
        const char *body, *want;
    } bad[] = {
        {"schema_registry_url = \"ftp://x\";", "expected an http:// or https:// URL"},
        {"schema_registry_url = \"http://u:" SECRET "@h:8081\";",
         "credentials do not go in the URL"},
        {"schema_registry_url = \"http://h\"; schema_registry_user = \"u\";",
         "kafka.schema_registry_password: kafka.schema_registry_user and "
         "kafka.schema_registry_password go together"},
        {"schema_registry_user = \"u\"; schema_registry_password = \"p\";",
         "kafka.schema_registry_url: required when kafka.schema_registry_user is set"},
        {"schema_registry_url = \"http://h\"; schema_registry_user = \"u\"; "
         "schema_registry_password = \"${env:KINFER_TEST_REG_UNSET}\";",
         "kafka.schema_registry_password: value: ${env:KINFER_TEST_REG_UNSET}: environment "
         "variable KINFER_TEST_REG_UNSET is not set"},
        {"schema_registry_timeout_ms = 10;", "must be between 100 and 60000"},
    };
    unsetenv("KINFER_TEST_REG_UNSET");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char t[1024];
        snprintf(t, sizeof t, TC_MODEL "kafka = {\n  %s\n};\n", bad[i].body);
        assert_int_equal(load(t, &cfg, &err), KINFER_ERR_CONFIG);
        if (!strstr(err.msg, bad[i].want))
            fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, err.msg, bad[i].want);
        assert_null(strstr(err.msg, SECRET));
    }
    unsetenv("KINFER_TEST_REG_PW");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_env_and_file_references_expand),
        cmocka_unit_test(test_literal_secrets_are_redacted),
        cmocka_unit_test(test_missing_variables_and_files_are_load_errors),
        cmocka_unit_test(test_messages_never_quote_secret_values),
        cmocka_unit_test(test_expand_refs_directly),
        cmocka_unit_test(test_schema_registry_keys),
    };
    return cmocka_run_group_tests(tests, tc_setup, tc_teardown);
}
