/* test_metrics.c — the worker's Prometheus text: counters by model and
 * status, cumulative histogram buckets, gauges, label escaping, deadline
 * slack, pause reasons, per-model queue gauges, consumer lag and the kind
 * llm's series; and what worker_lag.c reads from librdkafka's statistics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "worker_lag.h"
#include "worker_metrics.h"

static void test_counters_histograms_and_gauges(void **state) {
    (void)state;
    const char *models[] = {"fraud", "we\"ird"};
    kinfer_worker_metrics *m;
    kinfer_error err;
    assert_int_equal(kinfer_worker_metrics_new(models, 2, &m, &err), KINFER_OK);
    for (int i = 0; i < 3; i++)
        kinfer_worker_metrics_reply(m, 0, 0);
    kinfer_worker_metrics_reply(m, 0, 3);
    kinfer_worker_metrics_reply(m, -1, 2); /* unknown model */
    kinfer_worker_metrics_reply(m, 0, 99); /* out of range -> INTERNAL_ERROR */
    kinfer_worker_metrics_batch(m, 0, 3, 120, 40);
    kinfer_worker_metrics_batch(m, 0, 64, 4000, 900);
    kinfer_worker_metrics_dlq(m);
    kinfer_worker_metrics_delivery_failed(m);
    kinfer_worker_metrics_registry(m, true);
    kinfer_worker_metrics_registry(m, true);
    kinfer_worker_metrics_registry(m, false);
    kinfer_worker_metrics_set_registry_waiting(m, 3);
    kinfer_worker_metrics_set_in_flight(m, 17, 1700);
    kinfer_worker_metrics_set_partitions(m, 6, 2, KINFER_WORKER_PAUSE_CONGESTED_MODEL);
    kinfer_worker_metrics_completion(m, 3);
    kinfer_worker_metrics_completion(m, 0);
    kinfer_worker_metrics_completion(m, 3);
    kinfer_worker_metrics_callback(m, 40);
    kinfer_worker_metrics_callback(m, 1500);
    kinfer_worker_metrics_callback(m, 700);
    kinfer_worker_metrics_queue_full(m);
    kinfer_worker_metrics_set_handoff(m, 5, 2048, 9);
    kinfer_worker_metrics_set_in_flight_limit(m, 256);
    assert_int_equal(kinfer_worker_metrics_callback_max_us(m), 1500);
    assert_int_equal(kinfer_worker_metrics_replies(m, 0, 0), 3);
    assert_int_equal(kinfer_worker_metrics_replies(m, 0, 5), 1);
    assert_int_equal(kinfer_worker_metrics_dlq_count(m), 1);

    char *text;
    size_t len;
    assert_int_equal(kinfer_worker_metrics_render(m, "w-1", &text, &len, &err), KINFER_OK);
    assert_int_equal(strlen(text), len);
    assert_non_null(strstr(text, "kinfer_info{worker=\"w-1\"} 1\n"));
    assert_non_null(strstr(text, "kinfer_requests_total{model=\"fraud\",status=\"OK\"} 3\n"));
    assert_non_null(
        strstr(text, "kinfer_requests_total{model=\"fraud\",status=\"DEADLINE_EXCEEDED\"} 1\n"));
    assert_non_null(
        strstr(text, "kinfer_requests_total{model=\"fraud\",status=\"INTERNAL_ERROR\"} 1\n"));
    assert_non_null(
        strstr(text, "kinfer_requests_total{model=\"_unknown\",status=\"MODEL_NOT_FOUND\"} 1\n"));
    /* Unknown-model series with zero are left out; known models show zeros. */
    assert_null(strstr(text, "model=\"_unknown\",status=\"OK\""));
    assert_non_null(strstr(text, "kinfer_requests_total{model=\"fraud\",status=\"OVERLOADED\"} 0"));
    /* Escaped label value. */
    assert_non_null(strstr(text, "model=\"we\\\"ird\""));
    /* Cumulative buckets: batch 3 -> le=4; batch 64 -> le=64. */
    assert_non_null(strstr(text, "kinfer_batch_size_bucket{model=\"fraud\",le=\"2\"} 0\n"));
    assert_non_null(strstr(text, "kinfer_batch_size_bucket{model=\"fraud\",le=\"4\"} 1\n"));
    assert_non_null(strstr(text, "kinfer_batch_size_bucket{model=\"fraud\",le=\"64\"} 2\n"));
    assert_non_null(strstr(text, "kinfer_batch_size_bucket{model=\"fraud\",le=\"+Inf\"} 2\n"));
    assert_non_null(strstr(text, "kinfer_batch_size_count{model=\"fraud\"} 2\n"));
    assert_non_null(
        strstr(text, "kinfer_queue_seconds_bucket{model=\"fraud\",le=\"0.00025\"} 1\n"));
    assert_non_null(strstr(text, "kinfer_queue_seconds_sum{model=\"fraud\"} 0.00412\n"));
    assert_non_null(strstr(text, "kinfer_dead_letters_total 1\n"));
    assert_non_null(strstr(text, "kinfer_delivery_failures_total 1\n"));
    assert_non_null(strstr(text, "kinfer_schema_registry_requests_total 2\n"));
    assert_non_null(strstr(text, "kinfer_schema_registry_failures_total 1\n"));
    assert_non_null(strstr(text, "kinfer_schema_registry_waiting_requests 3\n"));
    assert_non_null(strstr(text, "kinfer_in_flight_requests 17\n"));
    assert_non_null(strstr(text, "kinfer_paused_partitions{reason=\"congested_model\"} 2\n"));
    assert_non_null(strstr(text, "kinfer_paused_partitions{reason=\"in_flight_limit\"} 0\n"));
    assert_non_null(strstr(text, "# TYPE kinfer_compute_seconds histogram\n"));
    /* The produce path and the engine threads' side of it. */
    assert_non_null(
        strstr(text, "kinfer_engine_completions_total{status=\"DEADLINE_EXCEEDED\"} 2\n"));
    assert_non_null(strstr(text, "kinfer_engine_completions_total{status=\"OK\"} 1\n"));
    assert_non_null(strstr(text, "kinfer_engine_callback_max_seconds 0.0015\n"));
    assert_non_null(strstr(text, "kinfer_engine_callback_seconds_count 3\n"));
    assert_non_null(strstr(text, "kinfer_engine_callback_seconds_bucket{le=\"5e-05\"} 1\n"));
    assert_non_null(strstr(text, "kinfer_produce_queue_full_total 1\n"));
    assert_non_null(strstr(text, "kinfer_produce_waiting_records 5\n"));
    assert_non_null(strstr(text, "kinfer_produce_waiting_bytes 2048\n"));
    assert_non_null(strstr(text, "kinfer_produce_waiting_peak_records 9\n"));
    assert_non_null(strstr(text, "kinfer_in_flight_limit_requests 256\n"));
    free(text);
    kinfer_worker_metrics_destroy(m);
}

static void test_health_gauges(void **state) {
    (void)state;
    kinfer_worker_metrics *m;
    char *text;
    size_t len;
    assert_int_equal(kinfer_worker_metrics_new(NULL, 0, &m, NULL), KINFER_OK);
    assert_int_equal(kinfer_worker_metrics_ready(m), 0);
    /* No verdict yet: no series (rather than a made-up reason). */
    assert_int_equal(kinfer_worker_metrics_render(m, "w", &text, &len, NULL), KINFER_OK);
    assert_null(strstr(text, "kinfer_ready"));
    free(text);
    kinfer_worker_metrics_set_health(m, 0, "brokers_down", 1, "ok");
    assert_int_equal(kinfer_worker_metrics_render(m, "w", &text, &len, NULL), KINFER_OK);
    assert_non_null(
        strstr(text, "# TYPE kinfer_ready gauge\nkinfer_ready{reason=\"brokers_down\"} 0\n"));
    assert_non_null(strstr(text, "kinfer_live{reason=\"ok\"} 1\n"));
    free(text);
    kinfer_worker_metrics_set_health(m, 1, "ok", 0, "poll_stalled");
    assert_int_equal(kinfer_worker_metrics_ready(m), 1);
    assert_int_equal(kinfer_worker_metrics_render(m, "w", &text, &len, NULL), KINFER_OK);
    assert_non_null(strstr(text, "kinfer_ready{reason=\"ok\"} 1\n"));
    assert_non_null(strstr(text, "kinfer_live{reason=\"poll_stalled\"} 0\n"));
    free(text);
    kinfer_worker_metrics_destroy(m);
}

static char *render(kinfer_worker_metrics *m) {
    char *text;
    size_t len;
    kinfer_error err;
    assert_int_equal(kinfer_worker_metrics_render(m, "w", &text, &len, &err), KINFER_OK);
    return text;
}

static void test_deadline_slack_and_late(void **state) {
    (void)state;
    const char *models[] = {"m"};
    kinfer_worker_metrics *m;
    assert_int_equal(kinfer_worker_metrics_new(models, 1, &m, NULL), KINFER_OK);
    kinfer_worker_metrics_deadline(m, 0, -2000, 100);  /* started 2 ms late: le=0, late */
    kinfer_worker_metrics_deadline(m, 0, 800, 900);    /* started in time, finished late */
    kinfer_worker_metrics_deadline(m, 0, 40000, 1000); /* 40 ms to spare: le=0.05 */
    kinfer_worker_metrics_deadline(m, 0, 0, 0);        /* exactly at it: le=0, not late */
    char *text = render(m);
    assert_non_null(strstr(text, "# TYPE kinfer_deadline_slack_seconds histogram\n"));
    assert_non_null(strstr(text, "kinfer_deadline_slack_seconds_bucket{model=\"m\",le=\"0\"} 2\n"));
    assert_non_null(
        strstr(text, "kinfer_deadline_slack_seconds_bucket{model=\"m\",le=\"0.001\"} 3\n"));
    assert_non_null(
        strstr(text, "kinfer_deadline_slack_seconds_bucket{model=\"m\",le=\"0.025\"} 3\n"));
    assert_non_null(
        strstr(text, "kinfer_deadline_slack_seconds_bucket{model=\"m\",le=\"0.05\"} 4\n"));
    assert_non_null(
        strstr(text, "kinfer_deadline_slack_seconds_bucket{model=\"m\",le=\"+Inf\"} 4\n"));
    assert_non_null(strstr(text, "kinfer_deadline_slack_seconds_sum{model=\"m\"} 0.0388\n"));
    assert_non_null(strstr(text, "kinfer_deadline_late_total{model=\"m\"} 2\n"));
    free(text);
    kinfer_worker_metrics_destroy(m);
}

static void test_pause_reasons_and_model_gauges(void **state) {
    (void)state;
    const char *models[] = {"a", "b"};
    kinfer_worker_metrics *m;
    assert_int_equal(kinfer_worker_metrics_new(models, 2, &m, NULL), KINFER_OK);
    kinfer_worker_metrics_set_partitions(m, 4, 4, KINFER_WORKER_PAUSE_PRODUCE_BACKLOG);
    kinfer_worker_metrics_paused(m, KINFER_WORKER_PAUSE_CONGESTED_MODEL, 2);
    kinfer_worker_metrics_paused(m, KINFER_WORKER_PAUSE_PRODUCE_BACKLOG, 4);
    kinfer_worker_metrics_paused(m, KINFER_WORKER_PAUSE_PRODUCE_BACKLOG, 1);
    kinfer_worker_model_gauges g = {.queued = 7,
                                    .queued_rows = 21,
                                    .in_flight = 9,
                                    .replicas = 2,
                                    .replicas_busy = 1,
                                    .congested = true};
    kinfer_worker_metrics_set_model(m, 1, &g);
    kinfer_worker_metrics_set_model(m, 5, &g); /* no such model: ignored */
    char *text = render(m);
    assert_non_null(strstr(text, "kinfer_paused_partitions{reason=\"produce_backlog\"} 4\n"));
    assert_non_null(strstr(text, "kinfer_paused_partitions{reason=\"congested_model\"} 0\n"));
    assert_non_null(strstr(text, "kinfer_partition_pauses_total{reason=\"congested_model\"} 2\n"));
    assert_non_null(strstr(text, "kinfer_partition_pauses_total{reason=\"produce_backlog\"} 5\n"));
    assert_non_null(strstr(text, "kinfer_partition_pauses_total{reason=\"in_flight_limit\"} 0\n"));
    assert_non_null(strstr(text, "kinfer_model_queue_depth{model=\"a\"} 0\n"));
    assert_non_null(strstr(text, "kinfer_model_queue_depth{model=\"b\"} 7\n"));
    assert_non_null(strstr(text, "kinfer_model_queue_rows{model=\"b\"} 21\n"));
    assert_non_null(strstr(text, "kinfer_model_in_flight_requests{model=\"b\"} 9\n"));
    assert_non_null(strstr(text, "kinfer_model_replicas_busy{model=\"b\"} 1\n"));
    assert_non_null(strstr(text, "kinfer_model_congested{model=\"b\"} 1\n"));
    assert_non_null(strstr(text, "kinfer_model_congested{model=\"a\"} 0\n"));
    assert_string_equal(kinfer_worker_pause_reason_name(KINFER_WORKER_PAUSE_IN_FLIGHT_LIMIT),
                        "in_flight_limit");
    free(text);
    kinfer_worker_metrics_destroy(m);
}

static void test_consumer_lag_table(void **state) {
    (void)state;
    kinfer_worker_metrics *m;
    assert_int_equal(kinfer_worker_metrics_new(NULL, 0, &m, NULL), KINFER_OK);
    char *text = render(m);
    /* The family is always there; no partition assigned, no sample. */
    assert_non_null(strstr(text, "# TYPE kinfer_consumer_lag gauge\n"));
    assert_null(strstr(text, "kinfer_consumer_lag{"));
    free(text);
    kinfer_worker_lag lags[] = {{"req.a", 0, 12}, {"re\"q", 3, 0}};
    assert_int_equal(kinfer_worker_metrics_set_lags(m, lags, 2, NULL), KINFER_OK);
    text = render(m);
    assert_non_null(strstr(text, "kinfer_consumer_lag{topic=\"req.a\",partition=\"0\"} 12\n"));
    assert_non_null(strstr(text, "kinfer_consumer_lag{topic=\"re\\\"q\",partition=\"3\"} 0\n"));
    free(text);
    /* Replaced wholesale: a revoked partition's series goes away. */
    assert_int_equal(kinfer_worker_metrics_set_lags(m, lags + 1, 1, NULL), KINFER_OK);
    text = render(m);
    assert_null(strstr(text, "topic=\"req.a\""));
    free(text);
    kinfer_worker_metrics_destroy(m);
}

static void test_llm_series_only_for_generative_models(void **state) {
    (void)state;
    const char *models[] = {"enc", "chat"};
    kinfer_worker_metrics *m;
    assert_int_equal(kinfer_worker_metrics_new(models, 2, &m, NULL), KINFER_OK);
    kinfer_worker_metrics_set_generative(m, 1);
    kinfer_worker_gen_gauges g = {.running = 3, .kv_blocks_used = 40, .kv_blocks_total = 128};
    kinfer_worker_metrics_set_gen(m, 1, &g);
    kinfer_worker_metrics_gen(m, 1, 120000, 20000, 30, 64, 1);
    kinfer_worker_metrics_gen(m, 1, 0, 0, 5, 0, 0); /* no token: no ttft observation */
    char *text = render(m);
    assert_non_null(strstr(text, "# TYPE kinfer_llm_time_to_first_token_seconds histogram\n"));
    assert_non_null(strstr(text, "kinfer_llm_kv_cache_used_blocks{model=\"chat\"} 40\n"));
    assert_non_null(strstr(text, "kinfer_llm_kv_cache_blocks{model=\"chat\"} 128\n"));
    assert_non_null(strstr(text, "kinfer_llm_running_sequences{model=\"chat\"} 3\n"));
    assert_non_null(strstr(text, "kinfer_llm_generated_tokens_total{model=\"chat\"} 64\n"));
    assert_non_null(strstr(text, "kinfer_llm_prompt_tokens_total{model=\"chat\"} 35\n"));
    assert_non_null(strstr(text, "kinfer_llm_generations_total{model=\"chat\"} 2\n"));
    assert_non_null(strstr(text, "kinfer_llm_preemptions_total{model=\"chat\"} 1\n"));
    assert_non_null(strstr(
        text, "kinfer_llm_time_to_first_token_seconds_bucket{model=\"chat\",le=\"0.1\"} 0\n"));
    assert_non_null(strstr(
        text, "kinfer_llm_time_to_first_token_seconds_bucket{model=\"chat\",le=\"0.25\"} 1\n"));
    assert_non_null(
        strstr(text, "kinfer_llm_time_to_first_token_seconds_count{model=\"chat\"} 1\n"));
    assert_non_null(
        strstr(text, "kinfer_llm_time_per_output_token_seconds_sum{model=\"chat\"} 0.02\n"));
    /* The encoder has none of them. */
    assert_null(strstr(text, "kinfer_llm_running_sequences{model=\"enc\"}"));
    assert_null(strstr(text, "kinfer_llm_time_to_first_token_seconds_count{model=\"enc\"}"));
    free(text);
    kinfer_worker_metrics_destroy(m);
}

/* What librdkafka 2.0.2's statistics look like for a consumer (trimmed):
 * partition -1 is its internal unassigned partition; desired=false is a
 * partition it knows but the application does not consume. */
static const char stats_json[] =
    "{\"name\":\"kinfer-w-consumer#consumer-2\",\"type\":\"consumer\",\"topics\":{"
    "\"req\":{\"topic\":\"req\",\"partitions\":{"
    "\"0\":{\"partition\":0,\"desired\":true,\"fetch_state\":\"active\",\"lo_offset\":0,"
    "\"hi_offset\":120,\"ls_offset\":110,\"committed_offset\":100,\"consumer_lag\":20},"
    "\"1\":{\"partition\":1,\"desired\":true,\"fetch_state\":\"active\",\"lo_offset\":5,"
    "\"hi_offset\":40,\"ls_offset\":40,\"committed_offset\":-1001,\"consumer_lag\":-1},"
    "\"2\":{\"partition\":2,\"desired\":false,\"fetch_state\":\"none\",\"lo_offset\":-1,"
    "\"hi_offset\":-1,\"ls_offset\":-1,\"committed_offset\":-1001,\"consumer_lag\":-1},"
    "\"-1\":{\"partition\":-1,\"desired\":false,\"hi_offset\":-1001}}}},"
    "\"cgrp\":{\"state\":\"up\",\"join_state\":\"steady\"}}";

typedef struct seen {
    kinfer_worker_stats_part parts[8];
    int n;
} seen;

static void collect(const kinfer_worker_stats_part *p, void *ctx) {
    seen *s = ctx;
    s->parts[s->n++] = *p;
}

static void test_lag_from_statistics(void **state) {
    (void)state;
    seen s = {.n = 0};
    kinfer_error err;
    assert_int_equal(kinfer_worker_stats_parts(stats_json, strlen(stats_json), collect, &s, &err),
                     KINFER_OK);
    assert_int_equal(s.n, 2); /* only the assigned (desired) partitions */
    kinfer_worker_stats_part *p0 = s.parts[0].partition == 0 ? &s.parts[0] : &s.parts[1];
    kinfer_worker_stats_part *p1 = p0 == &s.parts[0] ? &s.parts[1] : &s.parts[0];
    assert_string_equal(p0->topic, "req");
    assert_int_equal(p0->hi_offset, 120);
    assert_int_equal(p0->committed_offset, 100);
    assert_int_equal(p1->committed_offset, -1); /* -1001: invalid */
    /* librdkafka's consumer_lag: hi - committed. */
    assert_int_equal(kinfer_worker_lag_of(p0, false, -1), 20);
    /* read_committed ends at the last stable offset. */
    assert_int_equal(kinfer_worker_lag_of(p0, true, -1), 10);
    /* The worker's own, newer commit point wins (exactly-once commits it
     * in the transaction, which librdkafka's committed_offset misses). */
    assert_int_equal(kinfer_worker_lag_of(p0, false, 115), 5);
    assert_int_equal(kinfer_worker_lag_of(p0, false, 130), 0); /* never below 0 */
    /* Nothing committed yet: from the log start (auto.offset.reset earliest). */
    assert_int_equal(kinfer_worker_lag_of(p1, false, -1), 35);
    kinfer_worker_stats_part unknown = {
        .hi_offset = -1, .ls_offset = -1, .lo_offset = -1, .committed_offset = 3};
    assert_int_equal(kinfer_worker_lag_of(&unknown, false, -1), -1);
    assert_int_equal(kinfer_worker_stats_parts("{not json", 9, collect, &s, &err),
                     KINFER_ERR_INVALID_ARG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counters_histograms_and_gauges),
        cmocka_unit_test(test_health_gauges),
        cmocka_unit_test(test_deadline_slack_and_late),
        cmocka_unit_test(test_pause_reasons_and_model_gauges),
        cmocka_unit_test(test_consumer_lag_table),
        cmocka_unit_test(test_llm_series_only_for_generative_models),
        cmocka_unit_test(test_lag_from_statistics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
