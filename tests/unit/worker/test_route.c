/* test_route.c — reply routing precedence, topic name rules, pattern
 * expansion, reply key, and the headers of replies and dead letters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "kinfer/kinfer_route.h"

static kinfer_str S(const char *s) {
    kinfer_str k = {s, s ? strlen(s) : 0};
    return k;
}

static const kinfer_str NONE = {NULL, 0};

static void test_topic_names(void **state) {
    (void)state;
    const char *why = NULL;
    assert_true(kinfer_worker_topic_valid("a.b_c-D9", 8, &why));
    assert_false(kinfer_worker_topic_valid("", 0, &why));
    assert_non_null(strstr(why, "empty"));
    assert_false(kinfer_worker_topic_valid(".", 1, &why));
    assert_false(kinfer_worker_topic_valid("..", 2, &why));
    assert_true(kinfer_worker_topic_valid("...", 3, &why));
    assert_false(kinfer_worker_topic_valid("a b", 3, &why));
    assert_non_null(strstr(why, "character"));
    assert_false(kinfer_worker_topic_valid("a/b", 3, &why));
    assert_false(kinfer_worker_topic_valid("a\0b", 3, &why)); /* embedded NUL */
    char longname[251];
    memset(longname, 'x', 250);
    longname[250] = 0;
    assert_true(kinfer_worker_topic_valid(longname, 249, &why));
    assert_false(kinfer_worker_topic_valid(longname, 250, &why));
    assert_non_null(strstr(why, "249"));
}

static void test_pattern_expand(void **state) {
    (void)state;
    char out[300];
    kinfer_error err;
    assert_int_equal(kinfer_worker_pattern_expand("{topic}.replies", "req", out, sizeof out, &err),
                     KINFER_OK);
    assert_string_equal(out, "req.replies");
    assert_int_equal(kinfer_worker_pattern_expand("x-{topic}-{topic}", "t", out, sizeof out, &err),
                     KINFER_OK);
    assert_string_equal(out, "x-t-t");
    assert_int_equal(kinfer_worker_pattern_expand("fixed", "t", out, sizeof out, &err), KINFER_OK);
    assert_string_equal(out, "fixed");
    assert_int_equal(kinfer_worker_pattern_expand("{topic", "t", out, sizeof out, &err),
                     KINFER_ERR_INVALID_REQUEST); /* '{' is not a topic character */
    assert_int_equal(kinfer_worker_pattern_expand("", "t", out, sizeof out, &err),
                     KINFER_ERR_INVALID_REQUEST);
    char big[249];
    memset(big, 'a', 248);
    big[248] = 0;
    assert_int_equal(kinfer_worker_pattern_expand("{topic}.x", big, out, sizeof out, &err),
                     KINFER_ERR_INVALID_REQUEST);
    assert_non_null(strstr(err.msg, "249"));
    char tiny[8];
    assert_int_equal(
        kinfer_worker_pattern_expand("{topic}.replies", "req", tiny, sizeof tiny, &err),
        KINFER_ERR_INVALID_REQUEST);
    assert_string_equal(tiny, "");
    assert_non_null(strstr(err.msg, "too long"));
}

static void test_reply_topic_precedence(void **state) {
    (void)state;
    char out[256];
    kinfer_error err;
    const char *pat = "{topic}.replies";
    /* field > header > pattern */
    assert_int_equal(
        kinfer_worker_reply_topic(S("by-field"), S("by-header"), "req", pat, out, sizeof out, &err),
        KINFER_OK);
    assert_string_equal(out, "by-field");
    assert_int_equal(
        kinfer_worker_reply_topic(NONE, S("by-header"), "req", pat, out, sizeof out, &err),
        KINFER_OK);
    assert_string_equal(out, "by-header");
    assert_int_equal(kinfer_worker_reply_topic(NONE, NONE, "req", pat, out, sizeof out, &err),
                     KINFER_OK);
    assert_string_equal(out, "req.replies");
    /* Empty strings count as absent. */
    assert_int_equal(kinfer_worker_reply_topic(S(""), S(""), "req", pat, out, sizeof out, &err),
                     KINFER_OK);
    assert_string_equal(out, "req.replies");
    /* A bad explicit address is an error, not a silent fall-through. */
    assert_int_equal(
        kinfer_worker_reply_topic(S("bad topic"), S("ok"), "req", pat, out, sizeof out, &err),
        KINFER_ERR_INVALID_REQUEST);
    assert_non_null(strstr(err.msg, "reply_to 'bad topic'"));
    assert_int_equal(kinfer_worker_reply_topic(NONE, S("a/b"), "req", pat, out, sizeof out, &err),
                     KINFER_ERR_INVALID_REQUEST);
    assert_non_null(strstr(err.msg, "kinfer-reply-to"));
    /* No pattern and nothing explicit: no reply address. */
    assert_int_equal(kinfer_worker_reply_topic(NONE, NONE, "req", "", out, sizeof out, &err),
                     KINFER_ERR_INVALID_REQUEST);
    assert_non_null(strstr(err.msg, "no reply address"));
    /* Not NUL-terminated field views work. */
    kinfer_str view = {"replies-xyz", 7};
    assert_int_equal(kinfer_worker_reply_topic(view, NONE, "req", pat, out, sizeof out, &err),
                     KINFER_OK);
    assert_string_equal(out, "replies");
}

static void test_reply_key(void **state) {
    (void)state;
    kinfer_str id = S("req-1");
    kinfer_str k = kinfer_worker_reply_key("key", 3, id);
    assert_int_equal(k.len, 3);
    assert_memory_equal(k.ptr, "key", 3);
    k = kinfer_worker_reply_key(NULL, 0, id);
    assert_ptr_equal(k.ptr, id.ptr);
    k = kinfer_worker_reply_key("", 0, id); /* empty key: id */
    assert_ptr_equal(k.ptr, id.ptr);
}

static void test_reply_headers_copy_listed(void **state) {
    (void)state;
    rd_kafka_headers_t *req = rd_kafka_headers_new(8);
    rd_kafka_header_add(req, "traceparent", -1, "00-abc", -1);
    rd_kafka_header_add(req, "secret", -1, "no", -1);
    rd_kafka_header_add(req, "correlation-id", -1, "c1", -1);
    rd_kafka_header_add(req, "traceparent", -1, "00-def", -1);
    rd_kafka_header_add(req, "correlation-id", -1, NULL, 0);
    const char *copy[] = {"traceparent", "correlation-id"};
    rd_kafka_headers_t *out = NULL;
    kinfer_error err;
    assert_int_equal(kinfer_worker_reply_headers(req, copy, 2, S("id-7"), &out, &err), KINFER_OK);
    assert_int_equal(rd_kafka_header_cnt(out), 5);
    const void *v;
    size_t len;
    assert_int_equal(rd_kafka_header_get(out, 0, "traceparent", &v, &len), 0);
    assert_memory_equal(v, "00-abc", 6);
    assert_int_equal(rd_kafka_header_get(out, 1, "traceparent", &v, &len), 0);
    assert_memory_equal(v, "00-def", 6);
    assert_int_equal(rd_kafka_header_get(out, 1, "correlation-id", &v, &len), 0);
    assert_null(v); /* a NULL header value stays NULL */
    assert_int_not_equal(rd_kafka_header_get_last(out, "secret", &v, &len), 0);
    kinfer_str cid = kinfer_worker_header_last(out, KINFER_HDR_CORRELATION_ID);
    assert_int_equal(cid.len, 4);
    assert_memory_equal(cid.ptr, "id-7", 4);
    rd_kafka_headers_destroy(out);

    /* No request headers at all, or nothing to copy. */
    assert_int_equal(kinfer_worker_reply_headers(NULL, copy, 2, S("x"), &out, &err), KINFER_OK);
    assert_int_equal(rd_kafka_header_cnt(out), 1);
    rd_kafka_headers_destroy(out);
    assert_int_equal(kinfer_worker_reply_headers(req, NULL, 0, S("x"), &out, &err), KINFER_OK);
    assert_int_equal(rd_kafka_header_cnt(out), 1);
    rd_kafka_headers_destroy(out);
    rd_kafka_headers_destroy(req);
}

static void test_header_last(void **state) {
    (void)state;
    rd_kafka_headers_t *h = rd_kafka_headers_new(2);
    rd_kafka_header_add(h, KINFER_HDR_REPLY_TO, -1, "one", -1);
    rd_kafka_header_add(h, KINFER_HDR_REPLY_TO, -1, "two", -1);
    kinfer_str s = kinfer_worker_header_last(h, KINFER_HDR_REPLY_TO);
    assert_int_equal(s.len, 3);
    assert_memory_equal(s.ptr, "two", 3);
    s = kinfer_worker_header_last(h, "missing");
    assert_null(s.ptr);
    s = kinfer_worker_header_last(NULL, KINFER_HDR_REPLY_TO);
    assert_null(s.ptr);
    rd_kafka_headers_destroy(h);
}

static void test_dlq_headers(void **state) {
    (void)state;
    rd_kafka_headers_t *req = rd_kafka_headers_new(4);
    rd_kafka_header_add(req, "traceparent", -1, "t", -1);
    rd_kafka_header_add(req, KINFER_HDR_ERROR, -1, "old reason", -1);
    rd_kafka_header_add(req, KINFER_HDR_SOURCE_OFFSET, -1, "1", -1);
    rd_kafka_headers_t *out = NULL;
    kinfer_error err;
    assert_int_equal(
        kinfer_worker_dlq_headers(req, "decode: truncated", "reqs", 3, 1234567890123LL, &out, &err),
        KINFER_OK);
    assert_int_equal(rd_kafka_header_cnt(out), 5);
    const void *v;
    size_t len;
    assert_int_equal(rd_kafka_header_get_last(out, "traceparent", &v, &len), 0);
    kinfer_str e = kinfer_worker_header_last(out, KINFER_HDR_ERROR);
    assert_int_equal(e.len, strlen("decode: truncated"));
    assert_memory_equal(e.ptr, "decode: truncated", e.len);
    assert_int_equal(rd_kafka_header_get(out, 1, KINFER_HDR_ERROR, &v, &len),
                     RD_KAFKA_RESP_ERR__NOENT); /* the stale one is gone */
    kinfer_str t = kinfer_worker_header_last(out, KINFER_HDR_SOURCE_TOPIC);
    assert_memory_equal(t.ptr, "reqs", 4);
    kinfer_str p = kinfer_worker_header_last(out, KINFER_HDR_SOURCE_PARTITION);
    assert_int_equal(p.len, 1);
    assert_memory_equal(p.ptr, "3", 1);
    kinfer_str o = kinfer_worker_header_last(out, KINFER_HDR_SOURCE_OFFSET);
    assert_int_equal(o.len, 13);
    assert_memory_equal(o.ptr, "1234567890123", 13);
    rd_kafka_headers_destroy(out);
    /* The request's own list is untouched. */
    assert_int_equal(rd_kafka_header_cnt(req), 3);
    assert_int_equal(kinfer_worker_dlq_headers(NULL, "r", "x", 0, 0, &out, &err), KINFER_OK);
    assert_int_equal(rd_kafka_header_cnt(out), 4);
    rd_kafka_headers_destroy(out);
    /* A reason quoting invalid request bytes is repaired; the request's
     * own header bytes are not. */
    rd_kafka_header_add(req, "raw", -1, "\xff\xfe", 2);
    assert_int_equal(
        kinfer_worker_dlq_headers(req, "reply_to 'a\xc3(' is unusable", "x", 0, 0, &out, &err),
        KINFER_OK);
    e = kinfer_worker_header_last(out, KINFER_HDR_ERROR);
    static const char want[] = "reply_to 'a\xef\xbf\xbd(' is unusable";
    assert_int_equal(e.len, sizeof want - 1);
    assert_memory_equal(e.ptr, want, e.len);
    kinfer_str raw = kinfer_worker_header_last(out, "raw");
    assert_int_equal(raw.len, 2);
    assert_memory_equal(raw.ptr, "\xff\xfe", 2);
    rd_kafka_headers_destroy(out);
    rd_kafka_headers_destroy(req);
}

/* The too-large fallback: the reason says what was dropped, once. */
static void test_dlq_value_dropped(void **state) {
    (void)state;
    rd_kafka_headers_t *out = NULL;
    kinfer_error err;
    assert_int_equal(kinfer_worker_dlq_headers(NULL, "message of 5000 bytes exceeds x", "reqs", 1,
                                               7, &out, &err),
                     KINFER_OK);
    assert_int_equal(kinfer_worker_dlq_value_dropped(out, 5000, &err), KINFER_OK);
    const char *want = "message of 5000 bytes exceeds x; value of 5000 bytes dropped: too large to "
                       "forward";
    kinfer_str e = kinfer_worker_header_last(out, KINFER_HDR_ERROR);
    assert_int_equal(e.len, strlen(want));
    assert_memory_equal(e.ptr, want, e.len);
    const void *v;
    size_t len;
    assert_int_equal(rd_kafka_header_get(out, 1, KINFER_HDR_ERROR, &v, &len),
                     RD_KAFKA_RESP_ERR__NOENT); /* one reason, not two */
    assert_int_equal(rd_kafka_header_cnt(out), 4);
    rd_kafka_headers_destroy(out);
    /* Without a reason header it still says what happened. */
    out = rd_kafka_headers_new(1);
    assert_int_equal(kinfer_worker_dlq_value_dropped(out, 9, &err), KINFER_OK);
    e = kinfer_worker_header_last(out, KINFER_HDR_ERROR);
    assert_memory_equal(e.ptr, "value of 9 bytes", 16);
    rd_kafka_headers_destroy(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topic_names),
        cmocka_unit_test(test_pattern_expand),
        cmocka_unit_test(test_reply_topic_precedence),
        cmocka_unit_test(test_reply_key),
        cmocka_unit_test(test_reply_headers_copy_listed),
        cmocka_unit_test(test_header_last),
        cmocka_unit_test(test_dlq_headers),
        cmocka_unit_test(test_dlq_value_dropped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
