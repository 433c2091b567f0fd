/* test_metrics.c — the worker's Prometheus text: counters by model and
 * status, cumulative histogram buckets, gauges, label escaping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

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
    kinfer_worker_metrics_set_in_flight(m, 17, 1700);
    kinfer_worker_metrics_set_partitions(m, 6, 2);
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
    assert_non_null(strstr(text, "kinfer_in_flight_requests 17\n"));
    assert_non_null(strstr(text, "kinfer_paused_partitions 2\n"));
    assert_non_null(strstr(text, "# TYPE kinfer_compute_seconds histogram\n"));
    free(text);
    kinfer_worker_metrics_destroy(m);
}

static void test_ready_flag(void **state) {
    (void)state;
    kinfer_worker_metrics *m;
    assert_int_equal(kinfer_worker_metrics_new(NULL, 0, &m, NULL), KINFER_OK);
    assert_int_equal(kinfer_worker_metrics_ready(m), 0);
    kinfer_worker_metrics_set_ready(m, 1);
    assert_int_equal(kinfer_worker_metrics_ready(m), 1);
    kinfer_worker_metrics_destroy(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counters_histograms_and_gauges),
        cmocka_unit_test(test_ready_flag),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
