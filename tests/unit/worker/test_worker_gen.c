/* test_worker_gen.c — worker_gen.c: which requests are generations, the
 * wire-level checks on them (tensors or parameters to a generative model,
 * max_tokens below 1, negative top_k / top_logprobs), option mapping with
 * the model's default_max_tokens, and the logprobs conversion. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "worker_gen.h"

static const kinfer_model_config llm = {
    .name = "chat", .load = {.kind = "llm"}, .default_max_tokens = 33};
static const kinfer_model_config mlp = {.name = "dense", .load = {.kind = "mlp"}};

static void expect_invalid(const kinfer_model_config *m, const kinfer_codec_request *q,
                           const char *want) {
    kinfer_gen_request g;
    kinfer_chat_message *msgs;
    kinfer_error err;
    assert_int_equal(kinfer_worker_gen_request(m, q, &g, &msgs, &err), KINFER_ERR_INVALID_REQUEST);
    if (!strstr(err.msg, want))
        fail_msg("got \"%s\", want \"%s\"", err.msg, want);
    assert_null(msgs);
}

static void test_wanted(void **state) {
    (void)state;
    kinfer_codec_request q = {0};
    assert_true(kinfer_worker_gen_wanted(&llm, &q));
    assert_false(kinfer_worker_gen_wanted(&mlp, &q));
    assert_false(kinfer_worker_gen_wanted(NULL, &q));
    q.has_prompt = true; /* a prompt to an mlp: the engine refuses it by name */
    assert_true(kinfer_worker_gen_wanted(&mlp, &q));
    assert_true(kinfer_worker_gen_wanted(NULL, &q));
}

static void test_refusals(void **state) {
    (void)state;
    kinfer_tensor t = {.name = {"x", 1}, .dtype = KINFER_DTYPE_FP32};
    kinfer_codec_request q = {.inputs = &t, .ninputs = 1, .has_prompt = true, .prompt = {"hi", 2}};
    expect_invalid(&llm, &q,
                   "model 'chat': the model is generative: send a prompt, chat "
                   "messages or prompt_token_ids, not input tensors (1 given)");
    kinfer_param p = {{"max_new_tokens", 14}, {"5", 1}};
    q = (kinfer_codec_request){.params = &p, .nparams = 1, .has_prompt = true, .prompt = {"hi", 2}};
    expect_invalid(&llm, &q, "unknown option 'max_new_tokens' in parameters");
    q = (kinfer_codec_request){.has_prompt = true, .prompt = {"hi", 2}, .has_generation = true};
    q.generation.has_max_tokens = true;
    q.generation.max_tokens = 0;
    expect_invalid(&llm, &q, "max_tokens must be at least 1 (got 0)");
    q.generation.max_tokens = -4;
    expect_invalid(&llm, &q, "max_tokens must be at least 1 (got -4)");
    q.generation.max_tokens = 4;
    q.generation.has_top_k = true;
    q.generation.top_k = -1;
    expect_invalid(&llm, &q, "top_k must be at least 0 (got -1)");
    q.generation.top_k = 0;
    q.generation.top_logprobs = -2;
    expect_invalid(&llm, &q, "top_logprobs must be in [0, 20] (got -2)");
}

static void test_mapping(void **state) {
    (void)state;
    kinfer_codec_chat_message cm[2] = {{{"system", 6}, {"s", 1}}, {{"user", 4}, {"u", 1}}};
    kinfer_str stop[1] = {{"\n", 1}};
    kinfer_codec_request q = {.messages = cm, .nmessages = 2};
    kinfer_gen_request g;
    kinfer_chat_message *msgs;
    kinfer_error err;
    /* no options: the model's default max_tokens, the OpenAI defaults */
    assert_int_equal(kinfer_worker_gen_request(&llm, &q, &g, &msgs, &err), KINFER_OK);
    assert_int_equal(g.options.max_tokens, 33);
    assert_true(g.options.temperature == 1.0f && g.options.top_p == 1.0f);
    assert_int_equal(g.nmessages, 2);
    assert_true(g.messages == msgs && msgs[1].role.len == 4 &&
                msgs[1].content.ptr == cm[1].content.ptr);
    free(msgs);
    q.has_generation = true;
    q.generation = (kinfer_codec_gen_options){.has_max_tokens = true,
                                              .max_tokens = 5,
                                              .has_temperature = true,
                                              .temperature = 0.0f,
                                              .has_seed = true,
                                              .seed = -1,
                                              .stop = stop,
                                              .nstop = 1,
                                              .stream = true,
                                              .logprobs = true,
                                              .top_logprobs = 3};
    assert_int_equal(kinfer_worker_gen_request(&llm, &q, &g, &msgs, &err), KINFER_OK);
    assert_int_equal(g.options.max_tokens, 5);
    assert_true(g.options.temperature == 0.0f && g.options.has_seed &&
                g.options.seed == UINT64_MAX);
    assert_true(g.options.nstop == 1 && g.options.stop == stop && g.options.stream);
    assert_true(g.options.logprobs && g.options.top_logprobs == 3);
    free(msgs);
}

static void test_logprobs(void **state) {
    (void)state;
    kinfer_gen_token_logprob top[3] = {
        {1, -0.1f, {"a", 1}}, {2, -2.0f, {"b", 1}}, {3, -3.0f, {"c", 1}}};
    kinfer_gen_logprobs lp[2] = {{{1, -0.1f, {"a", 1}}, top, 2},
                                 {{3, -3.0f, {"c", 1}}, top + 2, 1}};
    kinfer_codec_logprob *out;
    kinfer_error err;
    assert_int_equal(kinfer_worker_gen_logprobs(NULL, 2, &out, &err), KINFER_OK);
    assert_null(out);
    assert_int_equal(kinfer_worker_gen_logprobs(lp, 2, &out, &err), KINFER_OK);
    assert_true(out[0].chosen.token_id == 1 && out[0].ntop == 2 && out[0].top[1].token_id == 2);
    assert_true(out[1].chosen.logprob == -3.0f && out[1].ntop == 1 && out[1].top[0].token_id == 3);
    free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wanted),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_mapping),
        cmocka_unit_test(test_logprobs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
