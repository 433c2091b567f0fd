/* test_config.c — valid configurations: defaults, scheduler inheritance,
 * relative model paths, librdkafka property order, enums, int64 values, and
 * that the printed effective config loads back to the same values.
 * Errors are in test_config_errors.c, docs and examples in test_config_docs.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "kinfer/kinfer_config.h"
#include "config_table.h"
#include "kinfer/kinfer_model.h"
#include "test_config_util.h"

static void load_ok(const char *text, kinfer_config *cfg) {
    kinfer_error err = {0};
    kinfer_err rc = tc_load(text, "ok.conf", cfg, &err);
    if (rc != KINFER_OK)
        fail_msg("unexpected error: %s", err.msg);
}

static void test_defaults(void **state) {
    (void)state;
    kinfer_config cfg;
    load_ok(TC_MODEL, &cfg);
    assert_string_equal(cfg.path, "ok.conf");
    assert_string_equal(cfg.base_dir, ".");
    assert_string_equal(cfg.kafka.brokers, "");
    assert_string_equal(cfg.kafka.group, "kinfer");
    assert_int_equal(cfg.kafka.topics.n, 1);
    assert_string_equal(cfg.kafka.topics.items[0], "inference.requests");
    assert_null(cfg.kafka.topic_pattern);
    assert_int_equal(cfg.kafka.properties.n, 0);
    assert_int_equal(cfg.kafka.consumer_properties.n, 0);
    assert_int_equal(cfg.kafka.producer_properties.n, 0);
    assert_string_equal(cfg.kafka.reply_topic_pattern, "{topic}.replies");
    assert_string_equal(cfg.kafka.dlq_topic_pattern, "{topic}.dlq");
    assert_int_equal(cfg.kafka.copy_headers.n, 2);
    assert_string_equal(cfg.kafka.copy_headers.items[0], "traceparent");
    assert_string_equal(cfg.kafka.copy_headers.items[1], "correlation-id");
    assert_null(cfg.kafka.group_instance_id);
    assert_int_equal(cfg.kafka.assignment_strategy, KINFER_CONFIG_ASSIGNMENT_COOPERATIVE_STICKY);
    assert_int_equal(cfg.kafka.max_message_bytes, 16 * 1024 * 1024);
    assert_int_equal(cfg.kafka.commit_interval_ms, 1000);
    assert_string_equal(cfg.kafka.transactional_id_prefix, "kinfer");
    assert_int_equal(cfg.delivery, KINFER_CONFIG_DELIVERY_AT_LEAST_ONCE);

    char host[128] = "";
    gethostname(host, sizeof(host));
    char expect_id[200];
    snprintf(expect_id, sizeof(expect_id), "%s-%ld", host, (long)getpid());
    assert_string_equal(cfg.worker.id, expect_id);
    assert_int_equal(cfg.worker.drain_timeout_ms, 10000);
    assert_int_equal(cfg.worker.cpu_threads, 0);
    assert_int_equal(cfg.worker.log_level, KINFER_LOG_INFO);
    assert_int_equal(cfg.worker.reply_framing, KINFER_CONFIG_FRAMING_SAME);
    assert_int_equal(cfg.worker.confluent_response_schema_id, 0);

    assert_int_equal(cfg.limits.max_tensors, 64);
    assert_int_equal(cfg.limits.max_dims, 8);
    assert_int_equal(cfg.limits.max_elements, 16777216);
    assert_int_equal(cfg.limits.max_strings, 65536);
    assert_int_equal(cfg.limits.max_params, 64);
    assert_string_equal(cfg.http.listen, "127.0.0.1:9464");

    assert_int_equal(cfg.scheduler.max_batch_size, 64);
    assert_int_equal(cfg.scheduler.queue_low_watermark, 512);

    assert_int_equal(cfg.nmodels, 1);
    const kinfer_model_config *m = &cfg.models[0];
    assert_string_equal(m->name, "m");
    assert_null(m->version);
    assert_string_equal(m->load.name, "m");
    assert_string_equal(m->load.kind, "mlp");
    assert_string_equal(m->load.path, tc_model);
    assert_null(m->load.activation);
    assert_null(m->load.output_activation);
    assert_int_equal(m->load.nan_policy, KINFER_NAN_REJECT);
    assert_string_equal(m->load.precision, "fp32");
    assert_int_equal(m->load.cpu_threads, 0);
    assert_int_equal(m->ndevices, 1);
    assert_string_equal(m->devices[0], "cpu");
    assert_null(m->devices[1]);
    assert_int_equal(m->replicas_per_device, 1);
    assert_int_equal(m->max_batch_size, 64);
    assert_int_equal(m->max_batch_tokens, 0);
    assert_int_equal(m->max_queue_delay_us, 2000);
    assert_int_equal(m->default_timeout_ms, 30000);
    assert_int_equal(m->max_queue, 1024);
    assert_int_equal(m->queue_low_watermark, 512);
    assert_int_equal(m->max_queue_hard, 0);
    kinfer_config_free(&cfg);
    assert_null(cfg.state);
    assert_null(cfg.models);
    kinfer_config_free(&cfg); /* twice is harmless */
}

static void test_scheduler_inheritance(void **state) {
    (void)state;
    kinfer_config cfg;
    load_ok(
        "models = (\n"
        "  { name = \"a\"; kind = \"mlp\"; path = \"$M\"; },\n"
        "  { name = \"b\"; kind = \"mlp\"; path = \"$M\"; max_batch_size = 4; max_queue = 10; },\n"
        "  { name = \"c\"; kind = \"mlp\"; path = \"$M\"; queue_low_watermark = 3; }\n"
        ");\n"
        "scheduler = { max_batch_size = 8; max_queue_delay_us = 100; max_queue = 100;\n"
        "              max_queue_hard = 400; replicas_per_device = 2; };\n"
        "worker = { cpu_threads = 3; };\n",
        &cfg);
    assert_int_equal(cfg.nmodels, 3);
    /* a: everything from the scheduler section (set after the models: order is free). */
    assert_int_equal(cfg.models[0].max_batch_size, 8);
    assert_int_equal(cfg.models[0].max_queue_delay_us, 100);
    assert_int_equal(cfg.models[0].replicas_per_device, 2);
    assert_int_equal(cfg.models[0].max_queue, 100);
    assert_int_equal(cfg.models[0].queue_low_watermark, 50);
    assert_int_equal(cfg.models[0].max_queue_hard, 400);
    assert_int_equal(cfg.models[0].default_timeout_ms, 30000); /* scheduler default */
    assert_int_equal(cfg.models[0].load.cpu_threads, 3);
    /* b: own values win; the low watermark follows its own max_queue. */
    assert_int_equal(cfg.models[1].max_batch_size, 4);
    assert_int_equal(cfg.models[1].max_queue, 10);
    assert_int_equal(cfg.models[1].queue_low_watermark, 5);
    assert_int_equal(cfg.models[1].max_queue_delay_us, 100);
    assert_int_equal(cfg.models[2].queue_low_watermark, 3);
    kinfer_config_free(&cfg);

    /* Integer spellings libconfig accepts: leading zeros are decimal, hex, sign. */
    load_ok(TC_MODEL
            "scheduler = { max_queue = 010; max_batch_size = +5; max_queue_hard = 0x20; };\n",
            &cfg);
    assert_int_equal(cfg.models[0].max_queue, 10);
    assert_int_equal(cfg.models[0].max_batch_size, 5);
    assert_int_equal(cfg.models[0].max_queue_hard, 32);
    kinfer_config_free(&cfg);

    /* An explicit scheduler low watermark is inherited as is. */
    load_ok(TC_MODEL "scheduler = { max_queue = 64; queue_low_watermark = 7; };\n", &cfg);
    assert_int_equal(cfg.models[0].queue_low_watermark, 7);
    kinfer_config_free(&cfg);
}

static void test_relative_paths(void **state) {
    (void)state;
    char sub[PATH_MAX + 16], file[PATH_MAX + 32], expect[PATH_MAX + 64];
    snprintf(sub, sizeof(sub), "%s/etc", tc_dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(file, sizeof(file), "%s/kinfer.conf", sub);
    assert_int_equal(
        tc_write(file, "models = (\n"
                       "  { name = \"rel\"; kind = \"mlp\"; path = \"../m.safetensors\"; },\n"
                       "  { name = \"abs\"; kind = \"mlp\"; path = \"$M\"; },\n"
                       "  { name = \"dir\"; kind = \"bert\"; path = \"../bert\"; }\n"
                       ");\n"),
        0);
    kinfer_config cfg;
    kinfer_error err = {0};
    assert_int_equal(kinfer_config_load(file, &cfg, &err), KINFER_OK);
    assert_string_equal(cfg.base_dir, sub);
    snprintf(expect, sizeof(expect), "%s/../m.safetensors", sub);
    assert_string_equal(cfg.models[0].load.path, expect);
    assert_string_equal(cfg.models[1].load.path, tc_model); /* absolute: untouched */
    snprintf(expect, sizeof(expect), "%s/../bert", sub);
    assert_string_equal(cfg.models[2].load.path, expect);
    assert_string_equal(cfg.models[2].load.kind, "bert");
    kinfer_config_free(&cfg);

    /* The same relative path from a config in another directory does not exist. */
    assert_int_equal(kinfer_config_load_string("models = ( { name = \"rel\"; kind = \"mlp\"; "
                                               "path = \"../m.safetensors\"; } );",
                                               "/nonexistent-dir/x.conf", &cfg, &err),
                     KINFER_ERR_CONFIG);
    assert_string_equal(err.msg, "/nonexistent-dir/x.conf:1: models.[0].path: \"../m.safetensors\" "
                                 "does not exist (looked for /nonexistent-dir/../m.safetensors: No "
                                 "such file or directory)");
    assert_null(cfg.state);
}

static void test_properties_pass_through_in_order(void **state) {
    (void)state;
    kinfer_config cfg;
    load_ok(TC_MODEL "kafka = {\n"
                     "  properties = [\"socket.timeout.ms=30000\", \"client.id=a=b\",\n"
                     "                \"security.protocol=PLAINTEXT\", \"client.rack=\"];\n"
                     "  consumer_properties = (\"session.timeout.ms=6000\", "
                     "\"fetch.wait.max.ms=10\");\n"
                     "  producer_properties = [\"linger.ms=0\", \"acks=all\"];\n"
                     "};\n",
            &cfg);
    const kinfer_config_kvlist *p = &cfg.kafka.properties;
    assert_int_equal(p->n, 4);
    assert_string_equal(p->items[0].key, "socket.timeout.ms");
    assert_string_equal(p->items[0].value, "30000");
    assert_string_equal(p->items[1].key, "client.id");
    assert_string_equal(p->items[1].value, "a=b"); /* split at the first '=' only */
    assert_string_equal(p->items[2].key, "security.protocol");
    assert_string_equal(p->items[3].key, "client.rack");
    assert_string_equal(p->items[3].value, "");
    assert_int_equal(cfg.kafka.consumer_properties.n, 2);
    assert_string_equal(cfg.kafka.consumer_properties.items[1].key, "fetch.wait.max.ms");
    assert_string_equal(cfg.kafka.consumer_properties.items[1].value, "10");
    assert_int_equal(cfg.kafka.producer_properties.n, 2);
    assert_string_equal(cfg.kafka.producer_properties.items[0].key, "linger.ms");
    assert_string_equal(cfg.kafka.producer_properties.items[1].value, "all");
    kinfer_config_free(&cfg);
}

/* The configuration knows no kind itself: its choices are the kind table's. */
static void test_kind_choices_come_from_the_kind_table(void **state) {
    (void)state;
    const char *const *kinds = kinfer_config_kind_choices();
    size_t n = 0;
    for (; kinds[n]; n++)
        assert_string_equal(kinds[n], kinfer_model_kind_at(n)->name);
    assert_int_equal(n, kinfer_model_kind_count());
    /* Each kind's precisions and activations are in the unions. */
    for (size_t i = 0; i < kinfer_model_kind_count(); i++) {
        const kinfer_model_kind_info *k = kinfer_model_kind_at(i);
        const char *const *lists[][2] = {
            {k->precisions, NULL},
            {k->activations, NULL},
            {k->output_activations, NULL},
        };
        const char *const *unions[] = {kinfer_config_precision_choices(),
                                       kinfer_config_activation_choices(),
                                       kinfer_config_output_activation_choices()};
        for (size_t l = 0; l < 3; l++)
            for (const char *const *v = lists[l][0]; v && *v; v++) {
                bool found = false;
                for (const char *const *u = unions[l]; *u; u++)
                    found = found || !strcmp(*u, *v);
                assert_true(found);
            }
    }
}

static void test_every_choice_and_int64(void **state) {
    (void)state;
    kinfer_config cfg;
    load_ok("kafka = { brokers = \"127.0.0.1:19092\"; group = \"g1\"; topic_pattern = "
            "\"^req\\\\..*\";\n"
            "  group_instance_id = \"w-0\"; assignment_strategy = \"eager\";\n"
            "  max_message_bytes = 1048576L; copy_headers = []; transactional_id_prefix = \"tx\";\n"
            "  reply_topic_pattern = \"answers\"; dlq_topic_pattern = \"{topic}-dead\"; };\n"
            "delivery = \"exactly-once\";\n"
            "worker = { id = \"pod-7\"; log_level = \"debug\"; reply_framing = \"confluent\";\n"
            "  confluent_response_schema_id = 42; };\n"
            "limits = { max_elements = 4294967296L; max_params = 0; };\n"
            "http = { listen = \"\"; };\n"
            "models = ( { name = \"enc\"; version = \"2024-01\"; kind = \"bert\"; path = \"$B\";\n"
            "  nan_policy = \"pass\";\n"
            "  precision = \"bf16\"; devices = [\"cuda:1\", \"cuda:0\", \"cpu\"];\n"
            "  max_batch_tokens = 8192; },\n"
            "  { name = \"score\"; kind = \"mlp\"; path = \"$M\";\n"
            "    activation = \"gelu\"; output_activation = \"softmax\"; } );\n",
            &cfg);
    assert_string_equal(cfg.kafka.brokers, "127.0.0.1:19092");
    assert_int_equal(cfg.kafka.topics.n, 0); /* the pattern replaces the default list */
    assert_string_equal(cfg.kafka.topic_pattern, "^req\\..*");
    assert_string_equal(cfg.kafka.group_instance_id, "w-0");
    assert_int_equal(cfg.kafka.assignment_strategy, KINFER_CONFIG_ASSIGNMENT_EAGER);
    assert_string_equal(kinfer_config_assignment_rdkafka(cfg.kafka.assignment_strategy),
                        "range,roundrobin");
    assert_string_equal(kinfer_config_assignment_name(cfg.kafka.assignment_strategy), "eager");
    assert_int_equal(cfg.kafka.max_message_bytes, 1048576);
    assert_int_equal(cfg.kafka.copy_headers.n, 0);
    assert_string_equal(cfg.kafka.transactional_id_prefix, "tx");
    assert_string_equal(cfg.kafka.reply_topic_pattern, "answers");
    assert_int_equal(cfg.delivery, KINFER_CONFIG_DELIVERY_EXACTLY_ONCE);
    assert_string_equal(kinfer_config_delivery_name(cfg.delivery), "exactly-once");
    assert_string_equal(cfg.worker.id, "pod-7");
    assert_int_equal(cfg.worker.log_level, KINFER_LOG_DEBUG);
    assert_int_equal(cfg.worker.reply_framing, KINFER_CONFIG_FRAMING_CONFLUENT);
    assert_string_equal(kinfer_config_framing_name(cfg.worker.reply_framing), "confluent");
    assert_int_equal(cfg.worker.confluent_response_schema_id, 42);
    assert_true(cfg.limits.max_elements == 4294967296ULL);
    assert_int_equal(cfg.limits.max_params, 0);
    assert_string_equal(cfg.http.listen, "");
    const kinfer_model_config *m = &cfg.models[0];
    assert_string_equal(m->version, "2024-01");
    assert_string_equal(m->load.kind, "bert");
    assert_string_equal(m->load.path, tc_bert);
    assert_null(m->load.activation);
    assert_string_equal(cfg.models[1].load.activation, "gelu");
    assert_string_equal(cfg.models[1].load.output_activation, "softmax");
    assert_int_equal(m->load.nan_policy, KINFER_NAN_PASS);
    assert_string_equal(m->load.precision, "bf16");
    assert_int_equal(m->ndevices, 3);
    assert_string_equal(m->devices[0], "cuda:1");
    assert_string_equal(m->devices[2], "cpu");
    assert_int_equal(m->max_batch_tokens, 8192);
    kinfer_config_free(&cfg);

    /* The group's value becomes the transactional prefix when none is set. */
    load_ok(TC_MODEL "kafka = { group = \"fleet-a\"; };\n", &cfg);
    assert_string_equal(cfg.kafka.transactional_id_prefix, "fleet-a");
    kinfer_config_free(&cfg);
}

/* Prints without the provenance comments ("  # default"). */
static char *print_values(const kinfer_config *cfg) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    kinfer_error err = {0};
    assert_int_equal(kinfer_config_print(cfg, f, &err), KINFER_OK);
    fclose(f);
    /* Drop the two header lines and the trailing "  # ..." notes. */
    char *out = calloc(1, len + 1), *o = out;
    int line = 0;
    for (char *p = buf; *p;) {
        char *eol = strchr(p, '\n');
        size_t n = eol ? (size_t)(eol - p) : strlen(p);
        char *note = memmem(p, n, ";  # ", 5);
        if (line++ >= 3) {
            size_t keep = note ? (size_t)(note - p) + 1 : n;
            memcpy(o, p, keep);
            o += keep;
            *o++ = '\n';
        }
        p += n + (eol ? 1 : 0);
    }
    free(buf);
    return out;
}

static void test_print_loads_back(void **state) {
    (void)state;
    const char *text =
        "kafka = { properties = [\"client.id=x\\\"y\"]; max_message_bytes = 1048576L;\n"
        "  topics = [\"a\", \"b.c\"]; };\n"
        "limits = { max_elements = 4294967296L; };\n"
        "worker = { id = \"w1\"; };\n"
        "models = ( { name = \"m\"; kind = \"mlp\"; path = \"$M\"; max_queue = 9; },\n"
        "  { name = \"n\"; kind = \"mlp\"; path = \"$M\"; devices = [\"cuda:0\"]; } );\n";
    kinfer_config a, b;
    load_ok(text, &a);
    char *printed = NULL;
    size_t plen = 0;
    FILE *f = open_memstream(&printed, &plen);
    kinfer_error err = {0};
    assert_int_equal(kinfer_config_print(&a, f, &err), KINFER_OK);
    fclose(f);
    assert_non_null(strstr(printed, "    group = \"kinfer\";  # default\n"));
    assert_non_null(strstr(printed, "        max_batch_size = 64;  # default (scheduler)\n"));
    assert_non_null(strstr(printed, "        max_queue = 9;\n"));
    assert_non_null(strstr(printed, "        queue_low_watermark = 4;  # computed\n"));
    assert_non_null(strstr(printed, "    max_elements = 4294967296L;\n"));
    assert_non_null(strstr(printed, "    # topic_pattern: unset\n"));
    /* The effective config is itself a config that loads to the same values. */
    if (kinfer_config_load_string(printed, "ok.conf", &b, &err) != KINFER_OK)
        fail_msg("printed config does not load: %s\n%s", err.msg, printed);
    char *pa = print_values(&a), *pb = print_values(&b);
    assert_string_equal(pa, pb);
    assert_string_equal(b.kafka.properties.items[0].value, "x\"y");
    free(pa);
    free(pb);
    free(printed);
    kinfer_config_free(&a);
    kinfer_config_free(&b);
}

static void test_edit_distance(void **state) {
    (void)state;
    assert_int_equal(kinfer_config_edit_distance("brokers", "brokers", 3), 0);
    assert_int_equal(kinfer_config_edit_distance("brokrs", "brokers", 3), 1);
    assert_int_equal(kinfer_config_edit_distance("mpl", "mlp", 3), 1); /* swap counts once */
    assert_int_equal(kinfer_config_edit_distance("max_bacth_size", "max_batch_size", 3), 1);
    assert_int_equal(kinfer_config_edit_distance("abc", "xyz", 2), 3); /* capped at cap + 1 */
    assert_int_equal(kinfer_config_edit_distance("", "abcd", 9), 4);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_scheduler_inheritance),
        cmocka_unit_test(test_relative_paths),
        cmocka_unit_test(test_properties_pass_through_in_order),
        cmocka_unit_test(test_kind_choices_come_from_the_kind_table),
        cmocka_unit_test(test_every_choice_and_int64),
        cmocka_unit_test(test_print_loads_back),
        cmocka_unit_test(test_edit_distance),
    };
    return cmocka_run_group_tests(tests, tc_setup, tc_teardown);
}
