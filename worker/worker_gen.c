/* worker_gen.c — generation requests and replies between the wire and the
 * engine, without Kafka (see worker_gen.h). */
#include "worker_gen.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The option names of GenerationOptions, for the unknown-option message. */
#define GEN_OPTION_NAMES                                                                           \
    "max_tokens, temperature, top_p, top_k, min_p, seed, stop, stop_token_ids, stream, "           \
    "presence_penalty, frequency_penalty, repetition_penalty, logprobs, top_logprobs, "            \
    "ignore_eos"

static bool is_generative(const kinfer_model_config *model) {
    return model && model->load.kind && strcmp(model->load.kind, "llm") == 0;
}

bool kinfer_worker_gen_wanted(const kinfer_model_config *model, const kinfer_codec_request *req) {
    return is_generative(model) || req->has_prompt || req->nmessages || req->nprompt_token_ids ||
           req->has_generation;
}

static kinfer_err bad(kinfer_error *err, const kinfer_model_config *model, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static kinfer_err bad(kinfer_error *err, const kinfer_model_config *model, const char *fmt, ...) {
    char what[KINFER_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return kinfer_error_set(err, KINFER_ERR_INVALID_REQUEST, "model '%s': %s", model->name, what);
}

kinfer_err kinfer_worker_gen_request(const kinfer_model_config *model,
                                     const kinfer_codec_request *req, kinfer_gen_request *gen,
                                     kinfer_chat_message **messages, kinfer_error *err) {
    memset(gen, 0, sizeof *gen);
    *messages = NULL;
    kinfer_gen_options *o = &gen->options;
    kinfer_gen_options_init(o);
    if (is_generative(model)) {
        if (req->ninputs)
            return bad(err, model,
                       "the model is generative: send a prompt, chat messages or "
                       "prompt_token_ids, not input tensors (%zu given)",
                       req->ninputs);
        if (req->nparams) {
            kinfer_str key = req->params[0].key;
            return bad(err, model,
                       "unknown option '%.*s' in parameters: a generative model reads no "
                       "parameters; its options are the fields of `generation` (" GEN_OPTION_NAMES
                       ")",
                       (int)(key.len > 64 ? 64 : key.len), key.ptr ? key.ptr : "");
        }
        o->max_tokens = model->default_max_tokens;
    }
    if (req->has_generation && model) {
        const kinfer_codec_gen_options *g = &req->generation;
        if (g->has_max_tokens && g->max_tokens < 1)
            return bad(err, model, "max_tokens must be at least 1 (got %d)", g->max_tokens);
        if (g->has_top_k && g->top_k < 0)
            return bad(err, model, "top_k must be at least 0 (got %d)", g->top_k);
        if (g->top_logprobs < 0)
            return bad(err, model, "top_logprobs must be in [0, %d] (got %d)",
                       KINFER_GEN_MAX_TOP_LOGPROBS, g->top_logprobs);
        if (g->has_max_tokens)
            o->max_tokens = (uint32_t)g->max_tokens;
        if (g->has_temperature)
            o->temperature = g->temperature;
        if (g->has_top_p)
            o->top_p = g->top_p;
        if (g->has_top_k)
            o->top_k = (uint32_t)g->top_k;
        if (g->has_min_p)
            o->min_p = g->min_p;
        if (g->has_presence_penalty)
            o->presence_penalty = g->presence_penalty;
        if (g->has_frequency_penalty)
            o->frequency_penalty = g->frequency_penalty;
        if (g->has_repetition_penalty)
            o->repetition_penalty = g->repetition_penalty;
        o->has_seed = g->has_seed;
        o->seed = (uint64_t)g->seed;
        o->stop = g->stop;
        o->nstop = g->nstop;
        o->stop_token_ids = g->stop_token_ids;
        o->nstop_token_ids = g->nstop_token_ids;
        o->ignore_eos = g->ignore_eos;
        o->logprobs = g->logprobs;
        o->top_logprobs = (uint32_t)g->top_logprobs;
        o->stream = g->stream;
    }
    if (req->has_prompt)
        gen->prompt = req->prompt;
    gen->prompt_ids = req->prompt_token_ids;
    gen->nprompt_ids = req->nprompt_token_ids;
    if (req->nmessages) {
        kinfer_chat_message *m = malloc(req->nmessages * sizeof *m);
        if (!m)
            return kinfer_error_set(err, KINFER_ERR_NOMEM, "worker: out of memory");
        for (size_t i = 0; i < req->nmessages; i++) {
            m[i].role = req->messages[i].role;
            m[i].content = req->messages[i].content;
        }
        *messages = m;
        gen->messages = m;
        gen->nmessages = req->nmessages;
    }
    return KINFER_OK;
}

static kinfer_codec_token_logprob token_of(const kinfer_gen_token_logprob *t) {
    kinfer_codec_token_logprob out = {t->id, t->logprob, t->bytes};
    return out;
}

kinfer_err kinfer_worker_gen_logprobs(const kinfer_gen_logprobs *lp, size_t n,
                                      kinfer_codec_logprob **out, kinfer_error *err) {
    *out = NULL;
    if (!lp || !n)
        return KINFER_OK;
    size_t ntop = 0;
    for (size_t i = 0; i < n; i++)
        ntop += lp[i].ntop;
    kinfer_codec_logprob *o = malloc(n * sizeof *o + ntop * sizeof(kinfer_codec_token_logprob));
    if (!o)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "reply: out of memory for logprobs");
    kinfer_codec_token_logprob *top = (kinfer_codec_token_logprob *)(o + n);
    for (size_t i = 0; i < n; i++) {
        o[i].chosen = token_of(&lp[i].chosen);
        o[i].top = lp[i].ntop ? top : NULL;
        o[i].ntop = lp[i].ntop;
        for (size_t k = 0; k < lp[i].ntop; k++)
            *top++ = token_of(&lp[i].top[k]);
    }
    *out = o;
    return KINFER_OK;
}

void kinfer_worker_gen_reply(kinfer_codec_response *resp, const kinfer_gen_result *gen,
                             const kinfer_codec_logprob *lps) {
    kinfer_codec_generation *g = &resp->generation;
    resp->has_generation = true;
    memset(g, 0, sizeof *g);
    g->text = gen->text;
    g->token_ids = gen->ids;
    g->ntoken_ids = gen->nids;
    g->finish_reason = (int)gen->finish_reason;
    g->prompt_tokens = (int32_t)gen->prompt_tokens;
    g->completion_tokens = (int32_t)gen->completion_tokens;
    g->queue_us = gen->queue_us;
    g->ttft_us = gen->ttft_us;
    g->per_token_us = gen->per_token_us;
    g->total_us = gen->total_us;
    g->seed = (int64_t)gen->seed;
    g->chunks = (int32_t)gen->chunks;
    g->preemptions = (int32_t)gen->preemptions;
    g->logprobs = lps;
    g->nlogprobs = lps ? gen->nids : 0;
}

void kinfer_worker_gen_chunk_reply(kinfer_codec_response *resp, const kinfer_gen_chunk *chunk,
                                   const kinfer_codec_logprob *lps) {
    resp->has_chunk = true;
    resp->chunk = (kinfer_codec_chunk){.index = (int32_t)chunk->index,
                                       .text = chunk->text,
                                       .token_ids = chunk->ids,
                                       .ntoken_ids = chunk->nids,
                                       .logprobs = lps,
                                       .nlogprobs = lps ? chunk->nids : 0};
}
