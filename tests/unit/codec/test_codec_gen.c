/* test_codec_gen.c — the generation fields: request (prompt, messages,
 * prompt token ids, options) and response (Generation, Chunk, logprobs)
 * round trips through the C encoder and decoder, their limits, and the
 * decoder's reuse across a generation message and a v1 one. */
#include "codec_test_util.h"

static kinfer_codec_encoder *enc;
static kinfer_codec_decoder *dec;

static int setup(void **state) {
    (void)state;
    kinfer_error err;
    if (kinfer_codec_encoder_new(&enc, &err) != KINFER_OK)
        return -1;
    kinfer_codec_limits lim;
    kinfer_codec_limits_default(&lim);
    lim.max_strings = 4;
    lim.max_text_bytes = 64;
    return kinfer_codec_decoder_new(&lim, NULL, &dec, &err) == KINFER_OK ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    kinfer_codec_encoder_destroy(enc);
    kinfer_codec_decoder_destroy(dec);
    return 0;
}

static void test_request_round_trip(void **state) {
    (void)state;
    kinfer_codec_chat_message msgs[2] = {{{"system", 6}, {"Be brief.", 9}},
                                         {{"user", 4}, {"h\xc3\xa9llo", 6}}};
    kinfer_str stop[2] = {{"\n\n", 2}, {"END", 3}};
    int32_t stop_ids[3] = {2, 0, 49151};
    int32_t ids[2] = {1, 300000};
    kinfer_codec_request q = {
        .id = {"g", 1},
        .model = {"llm", 3},
        .messages = msgs,
        .nmessages = 2,
        .prompt_token_ids = ids,
        .nprompt_token_ids = 2,
        .has_generation = true,
        .generation = {.has_max_tokens = true,
                       .max_tokens = 7,
                       .has_temperature = true,
                       .temperature = 0.25f,
                       .has_top_k = true,
                       .top_k = 3,
                       .has_seed = true,
                       .seed = -5,
                       .stop = stop,
                       .nstop = 2,
                       .stop_token_ids = stop_ids,
                       .nstop_token_ids = 3,
                       .stream = true,
                       .has_repetition_penalty = true,
                       .repetition_penalty = 1.5f,
                       .logprobs = true,
                       .top_logprobs = 2},
    };
    const uint8_t *msg;
    size_t len;
    kinfer_error err;
    assert_int_equal(kinfer_codec_request_encode(enc, &q, NULL, &msg, &len, &err), KINFER_OK);
    kinfer_codec_request out;
    assert_int_equal(kinfer_codec_request_decode(dec, msg, len, &out, &err), KINFER_OK);
    assert_false(out.has_prompt);
    assert_int_equal(out.nmessages, 2);
    assert_true(str_eq(out.messages[1].role, "user") &&
                str_eq(out.messages[1].content, "h\xc3\xa9llo"));
    assert_int_equal(out.nprompt_token_ids, 2);
    assert_int_equal(out.prompt_token_ids[1], 300000);
    const kinfer_codec_gen_options *g = &out.generation;
    assert_true(out.has_generation && g->has_max_tokens && g->max_tokens == 7);
    assert_true(g->has_temperature && g->temperature == 0.25f);
    assert_false(g->has_top_p || g->has_min_p || g->has_presence_penalty);
    assert_true(g->has_top_k && g->top_k == 3 && g->has_seed && g->seed == -5);
    assert_int_equal(g->nstop, 2);
    assert_true(str_eq(g->stop[0], "\n\n") && str_eq(g->stop[1], "END"));
    assert_int_equal(g->nstop_token_ids, 3);
    assert_int_equal(g->stop_token_ids[2], 49151);
    assert_true(g->stream && g->logprobs && g->top_logprobs == 2 && !g->ignore_eos);
    assert_true(g->has_repetition_penalty && g->repetition_penalty == 1.5f);

    /* The same decoder then reads a request without any generation field. */
    kinfer_codec_request plain = {
        .id = {"p", 1}, .model = {"m", 1}, .has_prompt = true, .prompt = {"Hi", 2}};
    assert_int_equal(kinfer_codec_request_encode(enc, &plain, NULL, &msg, &len, &err), KINFER_OK);
    assert_int_equal(kinfer_codec_request_decode(dec, msg, len, &out, &err), KINFER_OK);
    assert_true(out.has_prompt && str_eq(out.prompt, "Hi"));
    assert_int_equal(out.nmessages, 0);
    assert_int_equal(out.nprompt_token_ids, 0);
    assert_false(out.has_generation);
}

static void test_request_limits(void **state) {
    (void)state;
    char big[65];
    memset(big, 'a', sizeof big);
    kinfer_codec_request q = {.id = {"g", 1},
                              .model = {"m", 1},
                              .has_prompt = true,
                              .prompt = {big, sizeof big},
                              .has_reply_to = true,
                              .reply_to = {"r", 1}};
    const uint8_t *msg;
    size_t len;
    kinfer_error err;
    kinfer_codec_request out;
    assert_int_equal(kinfer_codec_request_encode(enc, &q, NULL, &msg, &len, &err), KINFER_OK);
    expect_error(kinfer_codec_request_decode(dec, msg, len, &out, &err), &err, KINFER_ERR_TOO_LARGE,
                 "prompt: 65 bytes, at most 64 allowed");
    assert_true(out.has_reply_to && str_eq(out.reply_to, "r")); /* still answerable */

    kinfer_codec_chat_message msgs[5];
    for (int i = 0; i < 5; i++)
        msgs[i] = (kinfer_codec_chat_message){{"user", 4}, {"x", 1}};
    q.has_prompt = false;
    q.messages = msgs;
    q.nmessages = 5;
    assert_int_equal(kinfer_codec_request_encode(enc, &q, NULL, &msg, &len, &err), KINFER_OK);
    expect_error(kinfer_codec_request_decode(dec, msg, len, &out, &err), &err, KINFER_ERR_TOO_LARGE,
                 "messages: more than 4 entries");

    /* invalid UTF-8 is refused by the encoder, naming the field */
    q.nmessages = 0;
    q.has_prompt = true;
    q.prompt = (kinfer_str){"\xff", 1};
    expect_error(kinfer_codec_request_encode(enc, &q, NULL, &msg, &len, &err), &err,
                 KINFER_ERR_INVALID_ARG, "prompt: invalid UTF-8 at byte 0");
}

static void test_response_round_trip(void **state) {
    (void)state;
    int32_t ids[3] = {5, 6, 2};
    kinfer_codec_token_logprob top[2] = {{5, -0.5f, {"a", 1}}, {9, -1.5f, {"\xc3", 1}}};
    kinfer_codec_logprob lps[3] = {{{5, -0.5f, {"a", 1}}, top, 2},
                                   {{6, -0.25f, {"b", 1}}, NULL, 0},
                                   {{2, -3.0f, {"</s>", 4}}, top + 1, 1}};
    kinfer_codec_response r = {.id = {"g", 1},
                               .model = {"llm", 3},
                               .timing = {1, 2, 0, {"w", 1}, {"cpu", 3}},
                               .source = {{"t", 1}, 0, 4},
                               .has_generation = true,
                               .generation = {.text = {"ab", 2},
                                              .token_ids = ids,
                                              .ntoken_ids = 3,
                                              .finish_reason = 2,
                                              .prompt_tokens = 10,
                                              .completion_tokens = 3,
                                              .queue_us = 11,
                                              .ttft_us = 12,
                                              .per_token_us = 13,
                                              .total_us = 14,
                                              .seed = 99,
                                              .chunks = 2,
                                              .preemptions = 1,
                                              .logprobs = lps,
                                              .nlogprobs = 3}};
    const uint8_t *msg;
    size_t len;
    kinfer_error err;
    assert_int_equal(kinfer_codec_response_encode(enc, &r, NULL, &msg, &len, &err), KINFER_OK);
    kinfer_codec_response out;
    assert_int_equal(kinfer_codec_response_decode(dec, msg, len, &out, &err), KINFER_OK);
    const kinfer_codec_generation *g = &out.generation;
    assert_true(out.has_generation && !out.has_chunk);
    assert_true(str_eq(g->text, "ab") && g->ntoken_ids == 3 && g->token_ids[2] == 2);
    assert_true(g->finish_reason == 2 && g->prompt_tokens == 10 && g->completion_tokens == 3);
    assert_true(g->queue_us == 11 && g->ttft_us == 12 && g->per_token_us == 13 &&
                g->total_us == 14);
    assert_true(g->seed == 99 && g->chunks == 2 && g->preemptions == 1);
    assert_int_equal(g->nlogprobs, 3);
    assert_int_equal(g->logprobs[0].ntop, 2);
    assert_true(g->logprobs[0].top[1].token_id == 9 && str_eq(g->logprobs[0].top[1].token, "\xc3"));
    assert_int_equal(g->logprobs[1].ntop, 0);
    assert_true(g->logprobs[2].ntop == 1 && g->logprobs[2].top[0].logprob == -1.5f);
    assert_true(str_eq(g->logprobs[2].chosen.token, "</s>"));

    /* a chunk reply */
    r.has_generation = false;
    r.has_chunk = true;
    r.chunk = (kinfer_codec_chunk){7, {"b", 1}, ids + 1, 1, lps + 1, 1};
    assert_int_equal(kinfer_codec_response_encode(enc, &r, NULL, &msg, &len, &err), KINFER_OK);
    assert_int_equal(kinfer_codec_response_decode(dec, msg, len, &out, &err), KINFER_OK);
    assert_true(out.has_chunk && !out.has_generation);
    assert_true(out.chunk.index == 7 && str_eq(out.chunk.text, "b"));
    assert_true(out.chunk.ntoken_ids == 1 && out.chunk.token_ids[0] == 6);
    assert_true(out.chunk.nlogprobs == 1 && out.chunk.logprobs[0].chosen.token_id == 6);

    /* a finish reason outside the enum is refused by the encoder */
    r.has_chunk = false;
    r.has_generation = true;
    r.generation.finish_reason = 5;
    expect_error(kinfer_codec_response_encode(enc, &r, NULL, &msg, &len, &err), &err,
                 KINFER_ERR_INVALID_ARG, "generation.finish_reason: 5 is not 0..4");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_round_trip),
        cmocka_unit_test(test_request_limits),
        cmocka_unit_test(test_response_round_trip),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
