/* codec_encode_gen.c — writes the generation fields added after v1 (see
 * codec_decode_gen.c): the request's prompt, messages, prompt token ids and
 * GenerationOptions; the response's Generation and Chunk. Strings are
 * checked as everywhere in the encoder: invalid UTF-8 is refused. */
#include "codec_encode_gen.h"

#include <stdio.h>

static void write_float(codec_buf *b, float v) {
    uint32_t bits;
    memcpy(&bits, &v, 4);
    uint8_t le[4] = {(uint8_t)bits, (uint8_t)(bits >> 8), (uint8_t)(bits >> 16),
                     (uint8_t)(bits >> 24)};
    codec_write_raw(b, le, 4);
}

static kinfer_err text(codec_buf *b, kinfer_str s, const char *field, kinfer_error *err) {
    size_t bad;
    if (!codec_utf8_valid(s.ptr, s.len, &bad))
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "%s: invalid UTF-8 at byte %zu (Avro strings are UTF-8)", field,
                                bad);
    codec_write_str(b, s);
    return KINFER_OK;
}

static void ints(codec_buf *b, const int32_t *v, size_t n) {
    if (n) {
        codec_write_long(b, (int64_t)n);
        for (size_t i = 0; i < n; i++)
            codec_write_long(b, v[i]);
    }
    codec_write_long(b, 0);
}

static void opt_int(codec_buf *b, bool has, int32_t v) {
    codec_write_long(b, has ? 1 : 0);
    if (has)
        codec_write_long(b, v);
}

static void opt_float(codec_buf *b, bool has, float v) {
    codec_write_long(b, has ? 1 : 0);
    if (has)
        write_float(b, v);
}

static void boolean(codec_buf *b, bool v) {
    uint8_t c = v ? 1 : 0;
    codec_write_raw(b, &c, 1);
}

kinfer_err codec_encode_request_gen(codec_buf *b, const kinfer_codec_request *req,
                                    kinfer_error *err) {
    codec_write_long(b, req->has_prompt ? 1 : 0);
    kinfer_err rc;
    if (req->has_prompt && (rc = text(b, req->prompt, "prompt", err)) != KINFER_OK)
        return rc;
    if (req->nmessages) {
        codec_write_long(b, (int64_t)req->nmessages);
        for (size_t i = 0; i < req->nmessages; i++)
            if ((rc = text(b, req->messages[i].role, "messages.role", err)) != KINFER_OK ||
                (rc = text(b, req->messages[i].content, "messages.content", err)) != KINFER_OK)
                return rc;
    }
    codec_write_long(b, 0);
    ints(b, req->prompt_token_ids, req->nprompt_token_ids);
    codec_write_long(b, req->has_generation ? 1 : 0);
    if (!req->has_generation)
        return KINFER_OK;
    const kinfer_codec_gen_options *g = &req->generation;
    opt_int(b, g->has_max_tokens, g->max_tokens);
    opt_float(b, g->has_temperature, g->temperature);
    opt_float(b, g->has_top_p, g->top_p);
    opt_int(b, g->has_top_k, g->top_k);
    opt_float(b, g->has_min_p, g->min_p);
    codec_write_long(b, g->has_seed ? 1 : 0);
    if (g->has_seed)
        codec_write_long(b, g->seed);
    if (g->nstop) {
        codec_write_long(b, (int64_t)g->nstop);
        for (size_t i = 0; i < g->nstop; i++)
            if ((rc = text(b, g->stop[i], "generation.stop", err)) != KINFER_OK)
                return rc;
    }
    codec_write_long(b, 0);
    ints(b, g->stop_token_ids, g->nstop_token_ids);
    boolean(b, g->stream);
    opt_float(b, g->has_presence_penalty, g->presence_penalty);
    opt_float(b, g->has_frequency_penalty, g->frequency_penalty);
    opt_float(b, g->has_repetition_penalty, g->repetition_penalty);
    boolean(b, g->logprobs);
    codec_write_long(b, g->top_logprobs);
    boolean(b, g->ignore_eos);
    return KINFER_OK;
}

static void token(codec_buf *b, const kinfer_codec_token_logprob *t) {
    codec_write_long(b, t->token_id);
    codec_write_str(b, t->token);
    write_float(b, t->logprob);
}

static void logprobs(codec_buf *b, const kinfer_codec_logprob *lp, size_t n) {
    if (n) {
        codec_write_long(b, (int64_t)n);
        for (size_t i = 0; i < n; i++) {
            token(b, &lp[i].chosen);
            if (lp[i].ntop) {
                codec_write_long(b, (int64_t)lp[i].ntop);
                for (size_t k = 0; k < lp[i].ntop; k++)
                    token(b, &lp[i].top[k]);
            }
            codec_write_long(b, 0);
        }
    }
    codec_write_long(b, 0);
}

kinfer_err codec_encode_response_gen(codec_buf *b, const kinfer_codec_response *resp,
                                     kinfer_error *err) {
    kinfer_err rc;
    codec_write_long(b, resp->has_generation ? 1 : 0);
    if (resp->has_generation) {
        const kinfer_codec_generation *g = &resp->generation;
        if (g->finish_reason < 0 || g->finish_reason >= KINFER_CODEC_FINISH_REASONS)
            return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                    "generation.finish_reason: %d is not 0..%d", g->finish_reason,
                                    KINFER_CODEC_FINISH_REASONS - 1);
        if ((g->ntoken_ids && !g->token_ids) || (g->nlogprobs && !g->logprobs))
            return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "generation: NULL array");
        if ((rc = text(b, g->text, "generation.text", err)) != KINFER_OK)
            return rc;
        ints(b, g->token_ids, g->ntoken_ids);
        codec_write_long(b, g->finish_reason);
        codec_write_long(b, g->prompt_tokens);
        codec_write_long(b, g->completion_tokens);
        codec_write_long(b, (int64_t)g->prompt_tokens + g->completion_tokens);
        codec_write_long(b, g->queue_us);
        codec_write_long(b, g->ttft_us);
        codec_write_long(b, g->per_token_us);
        codec_write_long(b, g->total_us);
        codec_write_long(b, g->seed);
        codec_write_long(b, g->chunks);
        codec_write_long(b, g->preemptions);
        logprobs(b, g->logprobs, g->nlogprobs);
    }
    codec_write_long(b, resp->has_chunk ? 1 : 0);
    if (resp->has_chunk) {
        const kinfer_codec_chunk *c = &resp->chunk;
        if ((c->ntoken_ids && !c->token_ids) || (c->nlogprobs && !c->logprobs))
            return kinfer_error_set(err, KINFER_ERR_INVALID_ARG, "chunk: NULL array");
        codec_write_long(b, c->index);
        if ((rc = text(b, c->text, "chunk.text", err)) != KINFER_OK)
            return rc;
        ints(b, c->token_ids, c->ntoken_ids);
        logprobs(b, c->logprobs, c->nlogprobs);
    }
    return KINFER_OK;
}
