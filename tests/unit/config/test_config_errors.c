/* test_config_errors.c — every class of bad configuration gets its exact
 * "<file>:<line>: <key>: <problem>" message, KINFER_ERR_CONFIG, and leaves
 * the config zeroed. One table row per class; $M is an existing model file,
 * $B an existing directory (see test_config_util.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <librdkafka/rdkafka.h>

#include "kinfer/kinfer_config.h"
#include "test_config_util.h"

typedef struct bad_case {
    const char *what;
    const char *text;
    const char *expect; /* $M / $B are expanded here too */
} bad_case;

#define M1 "models = ( { name = \"m\"; kind = \"mlp\"; path = \"$M\"; } );\n"

static const bad_case cases[] = {
    /* libconfig's own errors, with its line */
    {"syntax error", M1 "kafka = {\n  brokers = ;\n};\n", "bad.conf:3: syntax error"},
    {"duplicate key", M1 "kafka = { group = \"a\";\n group = \"b\"; };\n",
     "bad.conf:3: duplicate setting name"},
    {"mixed array", M1 "kafka = { topics = [\"a\",\n 5]; };\n",
     "bad.conf:3: mismatched element type in array"},
    {"@include", M1 "  @include \"/etc/passwd\"\n",
     "bad.conf:2: @include: not supported: the whole configuration is one file"},

    /* unknown keys, with suggestions */
    {"typo in a section", M1 "kafka = {\n  brokrs = \"x:1\";\n};\n",
     "bad.conf:3: kafka.brokrs: unknown key; did you mean \"brokers\"?"},
    {"typo in a model",
     "models = ( { name = \"m\"; kind = \"mlp\"; path = \"$M\";\n"
     "  max_bacth_size = 8; } );\n",
     "bad.conf:2: models.[0].max_bacth_size: unknown key; did you mean \"max_batch_size\"?"},
    {"typo in scheduler", M1 "scheduler = { max_queue_dealy_us = 5; };\n",
     "bad.conf:2: scheduler.max_queue_dealy_us: unknown key; did you mean "
     "\"max_queue_delay_us\"?"},
    {"typo of a section", M1 "wroker = { id = \"a\"; };\n",
     "bad.conf:2: wroker: unknown key; did you mean \"worker\"?"},
    {"right key, wrong place", M1 "brokers = \"x:1\";\n",
     "bad.conf:2: brokers: unknown key; it belongs in kafka.brokers"},
    {"model key in scheduler", M1 "scheduler = { devices = [\"cpu\"]; };\n",
     "bad.conf:2: scheduler.devices: unknown key; it can only be set per model, in models.[i]"},
    {"scheduler key at top level", M1 "max_batch_size = 8;\n",
     "bad.conf:2: max_batch_size: unknown key; it belongs in scheduler or in models.[i]"},
    {"unknown key, no suggestion", M1 "colour = 1;\n", "bad.conf:2: colour: unknown key"},

    /* wrong types */
    {"string for integer",
     "models = ( { name = \"m\"; kind = \"mlp\"; path = \"$M\";\n"
     "  max_batch_size = \"8\"; } );\n",
     "bad.conf:2: models.[0].max_batch_size: expected integer, got string"},
    {"float for integer", M1 "worker = { drain_timeout_ms = 1.5; };\n",
     "bad.conf:2: worker.drain_timeout_ms: expected integer, got float"},
    {"integer for string", M1 "kafka = { group = 5; };\n",
     "bad.conf:2: kafka.group: expected string, got integer"},
    {"bool for choice", M1 "delivery = true;\n",
     "bad.conf:2: delivery: expected string, got boolean"},
    {"string for list", M1 "kafka = { topics = \"a\"; };\n",
     "bad.conf:2: kafka.topics: expected array of strings, got string"},
    {"group for properties", M1 "kafka = { properties = { linger = 5; }; };\n",
     "bad.conf:2: kafka.properties: expected array of \"key=value\" strings, got group"},
    {"non-string list element", M1 "kafka = { copy_headers = (\"a\",\n 5); };\n",
     "bad.conf:3: kafka.copy_headers.[1]: expected string, got integer"},
    {"section not a group", M1 "kafka = \"x\";\n",
     "bad.conf:2: kafka: expected group { ... }, got string"},
    {"models not a list", "models = { name = \"m\"; };\n",
     "bad.conf:1: models: expected a list of groups ( { ... }, { ... } ), got group"},
    {"model not a group", "models = ( 5 );\n",
     "bad.conf:1: models.[0]: expected group { name = ...; ... }, got integer"},

    /* ranges */
    {"out of range (low)",
     "models = ( { name = \"m\"; kind = \"mlp\"; path = \"$M\";\n"
     "  max_batch_size = 0; } );\n",
     "bad.conf:2: models.[0].max_batch_size: must be between 1 and 65536 (got 0)"},
    {"out of range (high)", M1 "limits = { max_dims = 9; };\n",
     "bad.conf:2: limits.max_dims: must be between 1 and 8 (got 9)"},
    {"negative", M1 "worker = { cpu_threads = -1; };\n",
     "bad.conf:2: worker.cpu_threads: must be between 0 and 1024 (got -1)"},
    {"int64 out of range", M1 "kafka = { max_message_bytes = 2147483648L; };\n",
     "bad.conf:2: kafka.max_message_bytes: must be between 1024 and 1073741824 (got 2147483648)"},
    {"32-bit wrap without L", M1 "kafka = { max_message_bytes = 3000000000; };\n",
     "bad.conf:2: kafka.max_message_bytes: integer does not fit in 32 bits; write it with an L "
     "suffix (e.g. 3000000000L)"},
    {"too many devices",
     "models = ( { name = \"m\"; kind = \"mlp\"; path = \"$M\";\n"
     "  devices = [\"cuda:0\", \"cuda:1\", \"cuda:2\", \"cuda:3\", \"cuda:4\",\n"
     "    \"cuda:5\", \"cuda:6\", \"cuda:7\", \"cpu\"]; } );\n",
     "bad.conf:2: models.[0].devices: must have between 1 and 8 entries (got 9)"},
    {"no devices", "models = ( { name = \"m\"; kind = \"mlp\"; path = \"$M\"; devices = []; } );\n",
     "bad.conf:1: models.[0].devices: must have between 1 and 8 entries (got 0)"},

    /* choices */
    {"bad enum, suggestion", "models = ( { name = \"m\"; kind = \"mpl\"; path = \"$M\"; } );\n",
     "bad.conf:1: models.[0].kind: must be one of mlp, bert, llm (got \"mpl\"; did you mean "
     "\"mlp\"?)"},
    {"bad enum", M1 "delivery = \"always\";\n",
     "bad.conf:2: delivery: must be one of at-least-once, exactly-once (got \"always\")"},
    {"bad activation",
     "models = ( { name = \"m\"; kind = \"mlp\"; path = \"$M\";\n"
     "  output_activation = \"relu\"; } );\n",
     "bad.conf:2: models.[0].output_activation: must be one of none, sigmoid, softmax (got "
     "\"relu\")"},
    {"bad log level", M1 "worker = { log_level = \"verbose\"; };\n",
     "bad.conf:2: worker.log_level: must be one of debug, info, warn, error (got \"verbose\")"},

    /* models */
    {"no models", "kafka = { group = \"g\"; };\n",
     "bad.conf: models: at least one model is required (models = ( { name = ...; kind = ...; "
     "path = ...; } );)"},
    {"empty models", "\nmodels = ();\n", "bad.conf:2: models: at least one model is required"},
    {"missing required key", "models = (\n  { name = \"m\"; kind = \"mlp\"; } );\n",
     "bad.conf:2: models.[0].path: required but not set"},
    {"duplicate model name",
     "models = ( { name = \"m\"; kind = \"mlp\"; path = \"$M\"; },\n"
     "  { name = \"m\"; kind = \"mlp\"; path = \"$M\"; } );\n",
     "bad.conf:2: models.[1].name: model \"m\" is already defined by models.[0]"},
    {"bad model name", "models = ( { name = \"my model\"; kind = \"mlp\"; path = \"$M\"; } );\n",
     "bad.conf:1: models.[0].name: only letters, digits, '.', '_' and '-' are allowed (found ' ') "
     "(got \"my model\")"},
    {"missing model file",
     "models = ( { name = \"m\"; kind = \"mlp\";\n"
     "  path = \"$M.missing\"; } );\n",
     "bad.conf:2: models.[0].path: \"$M.missing\" does not exist (looked for $M.missing: No such "
     "file or directory)"},
    {"mlp path is a directory", "models = ( { name = \"m\"; kind = \"mlp\"; path = \"$B\"; } );\n",
     "bad.conf:1: models.[0].path: kind \"mlp\" needs a model file, and $B is not a regular file"},
    {"bert path is a file", "models = ( { name = \"m\"; kind = \"bert\"; path = \"$M\"; } );\n",
     "bad.conf:1: models.[0].path: kind \"bert\" needs a model directory, and $M is not one"},
    {"bad device",
     "models = ( { name = \"m\"; kind = \"mlp\"; path = \"$M\";\n"
     "  devices = [\"gpu0\"]; } );\n",
     "bad.conf:2: models.[0].devices.[0]: a device is \"cpu\" or \"cuda:N\" with N from 0 to 255 "
     "(got \"gpu0\")"},
    /* The same parser and range as the engine's (kinfer_device_parse). */
    {"device past the parser's range",
     "models = ( { name = \"m\"; kind = \"mlp\"; path = \"$M\";\n"
     "  devices = [\"cuda:256\"]; } );\n",
     "bad.conf:2: models.[0].devices.[0]: a device is \"cpu\" or \"cuda:N\" with N from 0 to 255 "
     "(got \"cuda:256\")"},
    {"device with a leading zero",
     "models = ( { name = \"m\"; kind = \"mlp\"; path = \"$M\";\n"
     "  devices = [\"cuda:01\"]; } );\n",
     "bad.conf:2: models.[0].devices.[0]: a device is \"cpu\" or \"cuda:N\" with N from 0 to 255 "
     "(got \"cuda:01\")"},
    /* What the kind table says each kind takes. */
    {"activation on a kind without activations",
     "models = ( { name = \"m\"; kind = \"bert\"; path = \"$B\";\n"
     "  activation = \"relu\"; } );\n",
     "bad.conf:2: models.[0].activation: does not apply to kind \"bert\" (only to mlp)"},
    {"llm key on a kind that is not generative",
     "models = ( { name = \"m\"; kind = \"mlp\"; path = \"$M\";\n"
     "  kv_block_tokens = 32; } );\n",
     "bad.conf:2: models.[0].kv_block_tokens: does not apply to kind \"mlp\" (only to llm)"},
    {"kv cache budget out of range",
     "models = ( { name = \"m\"; kind = \"mlp\"; path = \"$M\";\n"
     "  kv_cache_bytes = -1; } );\n",
     "bad.conf:2: models.[0].kv_cache_bytes: must be between 0 and 1099511627776 (got -1)"},
    {"default max_tokens out of range",
     "models = ( { name = \"m\"; kind = \"mlp\"; path = \"$M\";\n"
     "  default_max_tokens = 2000000; } );\n",
     "bad.conf:2: models.[0].default_max_tokens: must be between 0 and 1048576 (got 2000000)"},
    {"output activation on a kind without activations",
     "models = ( { name = \"m\"; kind = \"bert\"; path = \"$B\"; output_activation = \"none\"; } "
     ");\n",
     "bad.conf:1: models.[0].output_activation: does not apply to kind \"bert\" (only to mlp)"},

    {"duplicate device",
     "models = ( { name = \"m\"; kind = \"mlp\"; path = \"$M\";\n"
     "  devices = [\"cuda:0\", \"cuda:0\"]; } );\n",
     "bad.conf:2: models.[0].devices.[1]: device \"cuda:0\" is listed twice"},
    {"low watermark not below max_queue",
     "models = ( { name = \"m\"; kind = \"mlp\"; path = \"$M\";\n"
     "  max_queue = 10;\n  queue_low_watermark = 10; } );\n",
     "bad.conf:3: models.[0].queue_low_watermark: must be below max_queue (10) (got 10)"},
    {"hard limit below max_queue",
     "models = ( { name = \"m\"; kind = \"mlp\"; path = \"$M\";\n"
     "  max_queue = 10; max_queue_hard = 5; } );\n",
     "bad.conf:2: models.[0].max_queue_hard: must be 0 or at least max_queue (10) (got 5)"},
    {"inherited limits clash",
     "models = ( { name = \"m\"; kind = \"mlp\"; path = \"$M\";\n"
     "  max_queue = 100; } );\n"
     "scheduler = { max_queue = 20; max_queue_hard = 50; };\n",
     "bad.conf:2: models.[0].max_queue_hard: must be 0 or at least max_queue (100) (got 50)"},
    {"scheduler limits clash", M1 "scheduler = { max_queue = 8;\n queue_low_watermark = 9; };\n",
     "bad.conf:3: scheduler.queue_low_watermark: must be below max_queue (8) (got 9)"},

    /* kafka */
    {"topics and topic_pattern", M1 "kafka = { topics = [\"a\"];\n  topic_pattern = \"^a.*\"; };\n",
     "bad.conf:3: kafka.topic_pattern: set either kafka.topics or kafka.topic_pattern, not both "
     "(the other is at line 2)"},
    {"pattern without ^", M1 "kafka = { topic_pattern = \"req.*\"; };\n",
     "bad.conf:2: kafka.topic_pattern: a topic pattern must start with '^' (librdkafka takes "
     "anything else as a literal topic name) (got \"req.*\")"},
    {"no topics", M1 "kafka = { topics = []; };\n",
     "bad.conf:2: kafka.topics: needs at least one topic (or set kafka.topic_pattern)"},
    {"bad topic name", M1 "kafka = { topics = [\"in/requests\"]; };\n",
     "bad.conf:2: kafka.topics.[0]: a topic name has only letters, digits, '.', '_' and '-' (found "
     "'/') (got \"in/requests\")"},
    {"bad reply template", M1 "kafka = { reply_topic_pattern = \"{topic}.{partition}\"; };\n",
     "bad.conf:2: kafka.reply_topic_pattern: the only placeholder is {topic} (got "
     "\"{topic}.{partition}\")"},
    {"reply topic consumed", M1 "kafka = { topics = [\"req\", \"req.replies\"]; };\n",
     "bad.conf:2: kafka.reply_topic_pattern: for request topic \"req\" this is \"req.replies\", "
     "which is itself consumed (the worker would answer its own output)"},
    {"dlq equals replies", M1 "kafka = { dlq_topic_pattern = \"{topic}.replies\"; };\n",
     "bad.conf:2: kafka.dlq_topic_pattern: must differ from kafka.reply_topic_pattern "
     "(\"{topic}.replies\")"},
    {"property not key=value", M1 "kafka = { properties = [\"linger.ms\"]; };\n",
     "bad.conf:2: kafka.properties.[0]: expected \"key=value\" (a librdkafka property) (got "
     "\"linger.ms\")"},
    {"property owned by kinfer", M1 "kafka = { consumer_properties = [\"group.id=x\"]; };\n",
     "bad.conf:2: kafka.consumer_properties.[0]: \"group.id\" is set by kinfer; use kafka.group "
     "(got \"group.id=x\")"},
    {"group.protocol owned by kinfer",
     M1 "kafka = { properties = [\"group.protocol=consumer\"]; };\n",
     "bad.conf:2: kafka.properties.[0]: \"group.protocol\" is set by kinfer; use "
     "kafka.group_protocol (got \"group.protocol=consumer\")"},
    {"unknown group protocol", M1 "kafka = { group_protocol = \"kip848\"; };\n",
     "bad.conf:2: kafka.group_protocol: must be one of classic, consumer (got \"kip848\")"},
    {"assignment strategy with the consumer protocol",
     M1 "kafka = { group_protocol = \"consumer\";\n assignment_strategy = \"eager\"; };\n",
     "bad.conf:3: kafka.assignment_strategy: is a classic-protocol setting; with "
     "kafka.group_protocol = \"consumer\" (line 2) the broker assigns partitions (choose its "
     "assignor with group.remote.assignor in kafka.consumer_properties)"},
    {"session timeout with the consumer protocol",
     M1 "kafka = { group_protocol = \"consumer\";\n consumer_properties = "
        "[\"session.timeout.ms=6000\"]; };\n",
     "bad.conf:3: kafka.consumer_properties: session.timeout.ms is not a client setting with "
     "kafka.group_protocol = \"consumer\" (line 2): the broker's "
     "group.consumer.session.timeout.ms applies (drop it here)"},
    {"auto commit refused", M1 "kafka = { properties = [\"enable.auto.commit=true\"]; };\n",
     "bad.conf:2: kafka.properties.[0]: \"enable.auto.commit\" is set by kinfer; use delivery "
     "(kinfer commits offsets itself) (got \"enable.auto.commit=true\")"},
    {"unknown librdkafka property",
     M1 "kafka = { producer_properties = [\n \"linger.msec=5\"]; };\n",
     "bad.conf:3: kafka.producer_properties.[0]: librdkafka has no property \"linger.msec\""},
    {"bad librdkafka value", M1 "kafka = { properties = [\"socket.timeout.ms=soon\"]; };\n",
     "bad.conf:2: kafka.properties.[0]: librdkafka refuses \"socket.timeout.ms=soon\": Invalid "
     "value for configuration property \"socket.timeout.ms\""},
    {"property twice", M1 "kafka = { properties = [\"linger.ms=1\", \"linger.ms=2\"]; };\n",
     "bad.conf:2: kafka.properties.[1]: \"linger.ms\" is already set by kafka.properties.[0]"},
    {"control character in brokers", M1 "kafka = { brokers = \"a:1\\tb:2\"; };\n",
     "bad.conf:2: kafka.brokers: only printable ASCII is allowed (found byte 0x09) (got "
     "\"a:1\\x09b:2\")"},
    {"empty group", M1 "kafka = { group = \"\"; };\n",
     "bad.conf:2: kafka.group: must not be empty (got \"\")"},

    /* worker, http */
    {"confluent framing without schema id", M1 "worker = {\n  reply_framing = \"confluent\"; };\n",
     "bad.conf:3: worker.confluent_response_schema_id: required (non-zero) when "
     "worker.reply_framing is \"confluent\" and no kafka.schema_registry_url is set"},
    {"bad listen", M1 "http = { listen = \"9464\"; };\n",
     "bad.conf:2: http.listen: expected \"host:port\" or \"\" to disable (got \"9464\")"},
    {"bad listen port", M1 "http = { listen = \"0.0.0.0:99999\"; };\n",
     "bad.conf:2: http.listen: the port must be a number from 1 to 65535 (got \"0.0.0.0:99999\")"},
    {"bad worker id", M1 "worker = { id = \"a b\"; };\n",
     "bad.conf:2: worker.id: only letters, digits, '.', '_' and '-' are allowed (found ' ') (got "
     "\"a b\")"},
};

static void test_each_error_class(void **state) {
    (void)state;
    int failures = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        kinfer_config cfg;
        memset(&cfg, 0xab, sizeof(cfg)); /* the loader must zero it */
        kinfer_error err = {0};
        kinfer_err rc = tc_load(cases[i].text, "bad.conf", &cfg, &err);
        char *expect = tc_expand(cases[i].expect);
        if (rc != KINFER_ERR_CONFIG || strcmp(err.msg, expect) != 0) {
            print_error("case \"%s\": rc=%d\n  got:    %s\n  wanted: %s\n", cases[i].what, rc,
                        err.msg, expect);
            failures++;
        }
        free(expect);
        assert_null(cfg.state);
        assert_null(cfg.models);
        assert_int_equal(cfg.nmodels, 0);
        kinfer_config_free(&cfg);
    }
    assert_int_equal(failures, 0);
}

/* kafka.group_protocol = "consumer" needs librdkafka 2.10+: refused with the
 * version it runs on below that, accepted from there. */
static void test_group_protocol_needs_librdkafka_2_10(void **state) {
    (void)state;
    kinfer_config cfg;
    kinfer_error err = {0};
    kinfer_err rc =
        tc_load(M1 "kafka = { group_protocol = \"consumer\"; };\n", "gp.conf", &cfg, &err);
    if ((rd_kafka_version() & ~0xff) < 0x020a0000) {
        char expect[512];
        snprintf(expect, sizeof expect,
                 "gp.conf:2: kafka.group_protocol: \"consumer\" (KIP-848) needs librdkafka 2.10 or "
                 "newer; this kinfer runs on librdkafka %s (build against a newer one, "
                 "docs/KAFKA-VERSIONS.md, or use \"classic\")",
                 rd_kafka_version_str());
        assert_int_equal(rc, KINFER_ERR_CONFIG);
        assert_string_equal(err.msg, expect);
    } else {
        assert_int_equal(rc, KINFER_OK);
        assert_int_equal(cfg.kafka.group_protocol, KINFER_CONFIG_GROUP_PROTOCOL_CONSUMER);
    }
    kinfer_config_free(&cfg);
}

static void test_file_errors(void **state) {
    (void)state;
    kinfer_config cfg;
    kinfer_error err = {0};
    assert_int_equal(kinfer_config_load("/nonexistent/kinfer.conf", &cfg, &err), KINFER_ERR_IO);
    assert_string_equal(err.msg,
                        "/nonexistent/kinfer.conf: cannot open: No such file or directory");
    assert_null(cfg.state);
    assert_int_equal(kinfer_config_load(tc_bert, &cfg, &err), KINFER_ERR_IO);
    assert_non_null(strstr(err.msg, "not a regular file"));

    /* Errors from a file name the file as given. */
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/bad.conf", tc_dir);
    assert_int_equal(tc_write(path, "# a comment\n" M1 "kafka = { group = 5; };\n"), 0);
    assert_int_equal(kinfer_config_load(path, &cfg, &err), KINFER_ERR_CONFIG);
    char expect[PATH_MAX + 128];
    snprintf(expect, sizeof(expect), "%s:3: kafka.group: expected string, got integer", path);
    assert_string_equal(err.msg, expect);

    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite("a = 1;\0b = 2;\n", 1, 14, f);
    fclose(f);
    assert_int_equal(kinfer_config_load(path, &cfg, &err), KINFER_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "NUL byte"));

    assert_int_equal(kinfer_config_load(NULL, &cfg, &err), KINFER_ERR_INVALID_ARG);
    assert_int_equal(kinfer_config_load_string(NULL, "x", &cfg, &err), KINFER_ERR_INVALID_ARG);
    assert_int_equal(kinfer_config_print(&cfg, stdout, &err), KINFER_ERR_INVALID_ARG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_error_class),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_group_protocol_needs_librdkafka_2_10),
    };
    return cmocka_run_group_tests(tests, tc_setup, tc_teardown);
}
