/* test_batch_files.c — the file side of `kinfer batch` without Kafka: each
 * class of bad input line, the output line format (ids, base64, errors),
 * duplicate custom_ids, and the journal: a resume truncates a torn or
 * uncommitted tail, knows the committed lines, refuses another job's or a
 * foreign output. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "batch_dupes.h"
#include "batch_input.h"
#include "batch_output.h"
#include "batch_progress.h"
#include "batch_state.h"

static void expect_bad(const char *line, const char *code, const char *in_message) {
    batch_line l;
    assert_int_equal(batch_line_parse_jsonl(line, strlen(line), NULL, &l), -1);
    assert_string_equal(l.error_code, code);
    if (!strstr(l.error_message, in_message))
        fail_msg("'%s': message '%s' lacks '%s'", line, l.error_message, in_message);
    batch_line_free(&l);
}

static void test_bad_lines(void **state) {
    (void)state;
    expect_bad("{\"custom_id\": \"a\"", "invalid_json", "not valid JSON");
    expect_bad("[1, 2]", "invalid_json", "JSON object");
    expect_bad("{\"custom_id\":\"a\",\"custom_id\":\"b\"}", "invalid_json", "duplicate");
    expect_bad("{\"url\":\"/v1/embeddings\",\"body\":{}}", "missing_custom_id", "missing");
    expect_bad("{\"custom_id\":\"\"}", "missing_custom_id", "non-empty");
    expect_bad("{\"custom_id\":\"a\",\"method\":\"GET\",\"url\":\"/v1/embeddings\"}",
               "invalid_method", "POST");
    expect_bad("{\"custom_id\":\"a\",\"url\":\"/v1/images\",\"body\":{}}", "invalid_url",
               "/v1/images");
    expect_bad("{\"custom_id\":\"a\",\"url\":\"/v1/embeddings\"}", "invalid_body", "object");
    expect_bad("{\"custom_id\":\"a\",\"url\":\"/v1/embeddings\",\"body\":{\"input\":\"x\"}}",
               "invalid_body", "body.model");
    expect_bad("{\"custom_id\":\"a\",\"url\":\"/v1/embeddings\",\"body\":{\"model\":\"m\"}}",
               "invalid_body", "body.input is required");
    expect_bad("{\"custom_id\":\"a\",\"url\":\"/v1/embeddings\",\"body\":{\"model\":\"m\","
               "\"input\":[]}}",
               "invalid_body", "empty array");
    expect_bad("{\"custom_id\":\"a\",\"url\":\"/v1/embeddings\",\"body\":{\"model\":\"m\","
               "\"input\":[1,2]}}",
               "invalid_body", "token arrays");
    expect_bad("{\"custom_id\":\"a\",\"url\":\"/v1/embeddings\",\"body\":{\"model\":\"m\","
               "\"input\":\"x\",\"encoding_format\":\"hex\"}}",
               "invalid_body", "encoding_format");
    expect_bad("{\"custom_id\":\"a\",\"url\":\"/v1/chat/completions\",\"body\":{\"model\":\"m\","
               "\"messages\":[]}}",
               "invalid_body", "messages");
    expect_bad("{\"custom_id\":\"a\",\"url\":\"/v1/completions\",\"body\":{\"model\":\"m\"}}",
               "invalid_body", "prompt");
    expect_bad("{\"custom_id\":\"a\",\"url\":\"/v1/completions\",\"body\":{\"model\":\"m\","
               "\"prompt\":\"x\",\"stream\":true}}",
               "invalid_body", "stream");
    expect_bad("{\"custom_id\":\"a\",\"url\":\"/v1/completions\",\"body\":{\"model\":\"m\","
               "\"prompt\":\"x\",\"temperature\":9}}",
               "invalid_body", "temperature");
}

static void test_good_lines(void **state) {
    (void)state;
    batch_line l;
    const char *a = "{\"custom_id\":\"x1\",\"method\":\"POST\",\"url\":\"/v1/embeddings\","
                    "\"body\":{\"model\":\"minilm\",\"input\":[\"a\",\"b c\"],"
                    "\"encoding_format\":\"base64\"}}";
    assert_int_equal(batch_line_parse_jsonl(a, strlen(a), NULL, &l), 0);
    assert_string_equal(l.custom_id, "x1");
    assert_string_equal(l.model, "minilm");
    assert_int_equal(l.ntexts, 2);
    assert_string_equal(l.texts[1], "b c");
    assert_true(l.base64);
    batch_line_free(&l);
    const char *b = "{\"custom_id\":\"x2\",\"url\":\"/v1/embeddings\",\"body\":{\"input\":\"t\"}}";
    assert_int_equal(batch_line_parse_jsonl(b, strlen(b), "dflt", &l), 0);
    assert_string_equal(l.model, "dflt");
    batch_line_free(&l);
    assert_int_equal(batch_line_parse_text("hello", 5, 7, "m", &l), 0);
    assert_string_equal(l.custom_id, "line-7");
    assert_string_equal(l.texts[0], "hello");
    batch_line_free(&l);
    assert_int_equal(batch_line_parse_text("\xff", 1, 3, "m", &l), -1);
    assert_non_null(strstr(l.error_message, "UTF-8"));
    batch_line_free(&l);
    assert_int_equal(batch_line_parse_text("", 0, 3, "m", &l), -1);
    batch_line_free(&l);
}

static void test_output_lines(void **state) {
    (void)state;
    float v[6] = {1.0f, -0.5f, 0.25f, 0.1f, 2.0f, 3.0f};
    char *s = batch_output_embeddings("job_x", 42, "c-1", "rid", "minilm", v, 2, 3, false);
    assert_non_null(s);
    assert_int_equal(batch_output_lineno(s, strlen(s)), 42);
    json_t *o = json_loads(s, 0, NULL);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "id")), "batch_req_job_x_42");
    json_t *resp = json_object_get(o, "response");
    assert_int_equal(json_integer_value(json_object_get(resp, "status_code")), 200);
    json_t *data = json_object_get(json_object_get(resp, "body"), "data");
    assert_int_equal(json_array_size(data), 2);
    json_t *e1 = json_object_get(json_array_get(data, 1), "embedding");
    /* 9 significant digits read back to the same float32 */
    assert_true((float)json_real_value(json_array_get(e1, 0)) == 0.1f);
    assert_true(json_is_null(json_object_get(o, "error")));
    json_decref(o);
    free(s);
    /* base64 of the little-endian bytes of 1.0f = 00 00 80 3f */
    s = batch_output_embeddings("j", 1, "c", "r", "m", v, 1, 1, true);
    assert_non_null(strstr(s, "\"embedding\":\"AACAPw==\""));
    free(s);
    s = batch_output_error("j", 9, NULL, NULL, 0, "invalid_json", "line 9: bad");
    o = json_loads(s, 0, NULL);
    assert_true(json_is_null(json_object_get(o, "custom_id")));
    assert_true(json_is_null(json_object_get(o, "response")));
    assert_string_equal(json_string_value(json_object_get(json_object_get(o, "error"), "code")),
                        "invalid_json");
    json_decref(o);
    free(s);
    s = batch_output_error("j", 10, "c", "rid", 404, "model_not_found", "no model");
    o = json_loads(s, 0, NULL);
    json_t *err = json_object_get(json_object_get(json_object_get(o, "response"), "body"), "error");
    assert_string_equal(json_string_value(json_object_get(err, "code")), "model_not_found");
    assert_string_equal(json_string_value(json_object_get(err, "message")), "no model");
    json_decref(o);
    free(s);
    assert_int_equal(batch_output_lineno("{\"id\":\"other\"}", 14), 0);
    assert_int_equal(batch_output_lineno("{\"id\":\"batch_req_j_x\"}", 22), 0);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_dupes(void **state) {
    (void)state;
    char path[] = "/tmp/kinfer-test-dupes-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    write_text(path, "{\"custom_id\":\"a\"}\n{\"custom_id\":\"b\"}\nnot json\n"
                     "{\"custom_id\":\"a\"}\n{\"custom_id\":\"b\"}\n{\"custom_id\":\"c\"}\n");
    batch_dupes d;
    kinfer_error err;
    assert_int_equal(batch_dupes_scan(&d, path, false, &err), KINFER_OK);
    assert_int_equal(d.nlines, 6);
    assert_null(batch_dupes_first(&d, 1));
    assert_null(batch_dupes_first(&d, 3));
    assert_string_equal(batch_dupes_first(&d, 4), "a");
    assert_string_equal(batch_dupes_first(&d, 5), "b");
    assert_null(batch_dupes_first(&d, 6));
    batch_dupes_free(&d);
    unlink(path);
}

static long long size_of(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 ? (long long)sb.st_size : -1;
}

static void test_journal_resume(void **state) {
    (void)state;
    char dir[] = "/tmp/kinfer-test-journal-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char in[256], out[256], errs[256], jr[300];
    snprintf(in, sizeof in, "%s/in.jsonl", dir);
    snprintf(out, sizeof out, "%s/out.jsonl", dir);
    snprintf(errs, sizeof errs, "%s/out.errors.jsonl", dir);
    snprintf(jr, sizeof jr, "%s.journal", out);
    write_text(in, "one\ntwo\nthree\nfour\n");
    batch_state st;
    kinfer_error err;
    assert_int_equal(batch_state_open(&st, "jobA", in, out, errs, &err), KINFER_OK);
    assert_false(st.resumed);
    assert_int_equal(batch_state_start_run(&st, &err), KINFER_OK);
    float v = 1.0f;
    char *l1 = batch_output_embeddings("jobA", 2, "c2", "r", "m", &v, 1, 1, false);
    char *l2 = batch_output_error("jobA", 3, "c3", NULL, 0, "invalid_json", "bad");
    char *l3 = batch_output_embeddings("jobA", 1, "c1", "r", "m", &v, 1, 1, false);
    assert_int_equal(batch_state_append(&st, 2, true, l1, &err), KINFER_OK);
    assert_int_equal(batch_state_append(&st, 3, false, l2, &err), KINFER_OK);
    assert_int_equal(batch_state_commit(&st, &err), KINFER_OK);
    long long committed = size_of(out);
    /* Appended after the last commit, then a torn line: both must go. */
    assert_int_equal(batch_state_append(&st, 1, true, l3, &err), KINFER_OK);
    fflush(st.out);
    FILE *f = fopen(out, "a");
    fputs("{\"id\":\"batch_req_jobA_4\",\"cust", f);
    fclose(f);
    /* a torn journal record too */
    f = fopen(jr, "a");
    fputs("commit 99", f);
    fclose(f);
    batch_state_close(&st); /* as if killed: no finish */

    assert_int_equal(batch_state_open(&st, NULL, in, out, errs, &err), KINFER_OK);
    assert_true(st.resumed);
    assert_string_equal(st.job, "jobA");
    assert_int_equal(st.run, 2);
    assert_int_equal(size_of(out), committed);
    assert_true(batch_state_is_done(&st, 2));
    assert_true(batch_state_is_done(&st, 3));
    assert_false(batch_state_is_done(&st, 1));
    assert_false(batch_state_is_done(&st, 4));
    assert_int_equal(st.ndone_ok, 1);
    assert_int_equal(st.ndone_failed, 1);
    batch_state_close(&st);

    /* Another job's output is refused, naming both jobs. */
    assert_int_equal(batch_state_open(&st, "jobB", in, out, errs, &err), KINFER_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "jobA"));
    batch_state_close(&st);
    /* The input changed under the job: refused. */
    write_text(in, "one\ntwo\n");
    assert_int_equal(batch_state_open(&st, "jobA", in, out, errs, &err), KINFER_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "same input"));
    batch_state_close(&st);
    /* An output without a journal is not ours. */
    unlink(jr);
    assert_int_equal(batch_state_open(&st, "jobA", in, out, errs, &err), KINFER_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "without"));
    batch_state_close(&st);
    free(l1);
    free(l2);
    free(l3);
    unlink(in);
    unlink(out);
    unlink(errs);
    rmdir(dir);
}

static void test_progress_text(void **state) {
    (void)state;
    char buf[256];
    batch_progress_format(buf, sizeof buf, 1000, 250, 3, 16, 50.0, true);
    assert_string_equal(buf, "250/1000 done, 3 failed, 16 in flight, 50.0 lines/s, ETA 0:15");
    batch_progress_format(buf, sizeof buf, 10, 0, 0, 0, 0, false);
    assert_non_null(strstr(buf, "ETA ?"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_lines),      cmocka_unit_test(test_good_lines),
        cmocka_unit_test(test_output_lines),   cmocka_unit_test(test_dupes),
        cmocka_unit_test(test_journal_resume), cmocka_unit_test(test_progress_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
