/* codec_decode_gen.c — the generation fields added after v1: a request's
 * prompt, chat messages, prompt token ids and GenerationOptions; a
 * response's Generation and Chunk records. A body that ends where v1 ended
 * (after parameters, after source) is a v1 message: the fields keep their
 * defaults. Same bounds rules as the rest of the decoder: every count is
 * checked against the bytes left before anything is allocated. */
#include "codec_decoder.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

kinfer_err codec_read_float(codec_reader *r, const char *field, float *out) {
    if (codec_reader_left(r) < 4)
        return kinfer_error_set(r->err, KINFER_ERR_DECODE, "%s: truncated float at byte %zu", field,
                                codec_reader_offset(r));
    uint32_t bits = (uint32_t)r->p[0] | (uint32_t)r->p[1] << 8 | (uint32_t)r->p[2] << 16 |
                    (uint32_t)r->p[3] << 24;
    memcpy(out, &bits, 4);
    r->p += 4;
    return KINFER_OK;
}

static kinfer_err grow(void **data, size_t *cap, size_t need, size_t elem, kinfer_error *err) {
    if (need <= *cap)
        return KINFER_OK;
    size_t ncap = *cap ? *cap : 16;
    while (ncap < need)
        ncap *= 2;
    void *p = realloc(*data, ncap * elem);
    if (!p)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "codec decoder: out of memory");
    *data = p;
    *cap = ncap;
    return KINFER_OK;
}

/* array<int> into dec->ints; *start, *n say where. */
static kinfer_err read_ints(kinfer_codec_decoder *dec, codec_reader *r, const char *field,
                            size_t *start, size_t *n) {
    *start = dec->nints;
    size_t count;
    for (;;) {
        kinfer_err rc = codec_read_block(r, field, 1, &count);
        if (rc != KINFER_OK)
            return rc;
        if (!count)
            break;
        if ((rc = grow((void **)&dec->ints, &dec->ints_cap, dec->nints + count, sizeof(int32_t),
                       r->err)) != KINFER_OK)
            return rc;
        for (size_t k = 0; k < count; k++)
            if ((rc = codec_read_int(r, field, &dec->ints[dec->nints++])) != KINFER_OK)
                return rc;
    }
    *n = dec->nints - *start;
    if (*n > dec->limits.max_numel)
        codec_soft(dec, KINFER_ERR_TOO_LARGE, "%s: %zu token ids, at most %llu allowed", field, *n,
                   (unsigned long long)dec->limits.max_numel);
    return KINFER_OK;
}

static kinfer_err read_opt_int(codec_reader *r, const char *field, bool *has, int32_t *v) {
    kinfer_err rc = codec_read_optional(r, field, has);
    if (rc == KINFER_OK && *has)
        rc = codec_read_int(r, field, v);
    return rc;
}

static kinfer_err read_opt_float(kinfer_codec_decoder *dec, codec_reader *r, const char *field,
                                 bool *has, float *v) {
    kinfer_err rc = codec_read_optional(r, field, has);
    if (rc == KINFER_OK && *has)
        rc = codec_read_float(r, field, v);
    if (rc == KINFER_OK && *has && !isfinite(*v))
        codec_soft(dec, KINFER_ERR_INVALID_REQUEST, "%s: not a finite number", field);
    return rc;
}

static kinfer_err read_bool(codec_reader *r, const char *field, bool *v) {
    if (!codec_reader_left(r))
        return kinfer_error_set(r->err, KINFER_ERR_DECODE, "%s: truncated boolean", field);
    if (r->p[0] > 1)
        return kinfer_error_set(r->err, KINFER_ERR_DECODE, "%s: boolean byte 0x%02x", field,
                                r->p[0]);
    *v = r->p[0] == 1;
    r->p++;
    return KINFER_OK;
}

/* array<string> stop strings into dec->stops. */
static kinfer_err read_stops(kinfer_codec_decoder *dec, codec_reader *r, size_t *n) {
    size_t count;
    for (;;) {
        kinfer_err rc = codec_read_block(r, "generation.stop", 1, &count);
        if (rc != KINFER_OK)
            return rc;
        if (!count)
            break;
        if ((rc = grow((void **)&dec->stops, &dec->stops_cap, dec->nstops + count,
                       sizeof(kinfer_str), r->err)) != KINFER_OK)
            return rc;
        for (size_t k = 0; k < count; k++) {
            kinfer_str *s = &dec->stops[dec->nstops];
            if ((rc = codec_read_bytes(r, "generation.stop", s)) != KINFER_OK)
                return rc;
            codec_check_text(dec, *s, dec->limits.max_string_bytes, "generation.stop[%zu]",
                             dec->nstops);
            dec->nstops++;
        }
    }
    *n = dec->nstops;
    if (dec->nstops + dec->nmsgs > dec->limits.max_strings)
        codec_soft(dec, KINFER_ERR_TOO_LARGE, "generation.stop: more than %u strings",
                   dec->limits.max_strings);
    return KINFER_OK;
}

static kinfer_err read_messages(kinfer_codec_decoder *dec, codec_reader *r) {
    size_t count;
    for (;;) {
        /* role and content: a length byte each at least */
        kinfer_err rc = codec_read_block(r, "messages", 2, &count);
        if (rc != KINFER_OK)
            return rc;
        if (!count)
            break;
        if ((rc = grow((void **)&dec->msgs, &dec->msgs_cap, dec->nmsgs + count,
                       sizeof(kinfer_codec_chat_message), r->err)) != KINFER_OK)
            return rc;
        for (size_t k = 0; k < count; k++) {
            kinfer_codec_chat_message *m = &dec->msgs[dec->nmsgs];
            if ((rc = codec_read_bytes(r, "role", &m->role)) != KINFER_OK ||
                (rc = codec_read_bytes(r, "content", &m->content)) != KINFER_OK)
                return codec_error_path(r->err, rc, "messages[%zu].", dec->nmsgs);
            codec_check_text(dec, m->role, dec->limits.max_name_bytes, "messages[%zu].role",
                             dec->nmsgs);
            codec_check_text(dec, m->content, dec->limits.max_text_bytes, "messages[%zu].content",
                             dec->nmsgs);
            dec->nmsgs++;
        }
    }
    if (dec->nmsgs > dec->limits.max_strings)
        codec_soft(dec, KINFER_ERR_TOO_LARGE, "messages: more than %u entries",
                   dec->limits.max_strings);
    return KINFER_OK;
}

static kinfer_err read_options(kinfer_codec_decoder *dec, codec_reader *r,
                               kinfer_codec_gen_options *g, size_t *stop_ids_start) {
    kinfer_err rc;
    size_t nstop_ids = 0;
    if ((rc = read_opt_int(r, "generation.max_tokens", &g->has_max_tokens, &g->max_tokens)) ||
        (rc = read_opt_float(dec, r, "generation.temperature", &g->has_temperature,
                             &g->temperature)) ||
        (rc = read_opt_float(dec, r, "generation.top_p", &g->has_top_p, &g->top_p)) ||
        (rc = read_opt_int(r, "generation.top_k", &g->has_top_k, &g->top_k)) ||
        (rc = read_opt_float(dec, r, "generation.min_p", &g->has_min_p, &g->min_p)))
        return rc;
    if ((rc = codec_read_optional(r, "generation.seed", &g->has_seed)) ||
        (g->has_seed && (rc = codec_read_long(r, "generation.seed", &g->seed))))
        return rc;
    if ((rc = read_stops(dec, r, &g->nstop)) ||
        (rc = read_ints(dec, r, "generation.stop_token_ids", stop_ids_start, &nstop_ids)) ||
        (rc = read_bool(r, "generation.stream", &g->stream)) ||
        (rc = read_opt_float(dec, r, "generation.presence_penalty", &g->has_presence_penalty,
                             &g->presence_penalty)) ||
        (rc = read_opt_float(dec, r, "generation.frequency_penalty", &g->has_frequency_penalty,
                             &g->frequency_penalty)) ||
        (rc = read_opt_float(dec, r, "generation.repetition_penalty", &g->has_repetition_penalty,
                             &g->repetition_penalty)) ||
        (rc = read_bool(r, "generation.logprobs", &g->logprobs)) ||
        (rc = codec_read_int(r, "generation.top_logprobs", &g->top_logprobs)) ||
        (rc = read_bool(r, "generation.ignore_eos", &g->ignore_eos)))
        return rc;
    g->nstop_token_ids = nstop_ids;
    return KINFER_OK;
}

kinfer_err codec_decode_request_gen(kinfer_codec_decoder *dec, codec_reader *r,
                                    kinfer_codec_request *out) {
    if (!codec_reader_left(r))
        return KINFER_OK; /* a v1 request */
    kinfer_err rc = codec_read_opt_string(r, "prompt", &out->has_prompt, &out->prompt);
    if (rc != KINFER_OK)
        return rc;
    codec_check_text(dec, out->prompt, dec->limits.max_text_bytes, "prompt");
    if ((rc = read_messages(dec, r)) != KINFER_OK)
        return rc;
    size_t ids_start, nids, stop_start = 0;
    if ((rc = read_ints(dec, r, "prompt_token_ids", &ids_start, &nids)) != KINFER_OK ||
        (rc = codec_read_optional(r, "generation", &out->has_generation)) != KINFER_OK)
        return rc;
    if (out->has_generation &&
        (rc = read_options(dec, r, &out->generation, &stop_start)) != KINFER_OK)
        return rc;
    /* Pointers last: the arrays may have moved while they grew. */
    out->messages = dec->nmsgs ? dec->msgs : NULL;
    out->nmessages = dec->nmsgs;
    out->prompt_token_ids = nids ? dec->ints + ids_start : NULL;
    out->nprompt_token_ids = nids;
    if (out->has_generation) {
        out->generation.stop = out->generation.nstop ? dec->stops : NULL;
        out->generation.stop_token_ids =
            out->generation.nstop_token_ids ? dec->ints + stop_start : NULL;
    }
    return KINFER_OK;
}

/* ---- response ----------------------------------------------------------- */

static kinfer_err read_token(codec_reader *r, const char *field, kinfer_codec_token_logprob *t) {
    kinfer_err rc;
    if ((rc = codec_read_int(r, field, &t->token_id)) ||
        (rc = codec_read_bytes(r, field, &t->token)) ||
        (rc = codec_read_float(r, field, &t->logprob)))
        return rc;
    return KINFER_OK;
}

/* array<TokenLogprob> into dec->lps (their top entries into dec->tops, in
 * order; pointers set by fix_logprobs). */
static kinfer_err read_logprobs(kinfer_codec_decoder *dec, codec_reader *r, const char *field,
                                size_t *start, size_t *n) {
    *start = dec->nlps;
    size_t count;
    for (;;) {
        kinfer_err rc = codec_read_block(r, field, 7, &count);
        if (rc != KINFER_OK)
            return rc;
        if (!count)
            break;
        if ((rc = grow((void **)&dec->lps, &dec->lps_cap, dec->nlps + count,
                       sizeof(kinfer_codec_logprob), r->err)) != KINFER_OK)
            return rc;
        for (size_t k = 0; k < count; k++) {
            kinfer_codec_logprob *lp = &dec->lps[dec->nlps++];
            memset(lp, 0, sizeof *lp);
            if ((rc = read_token(r, field, &lp->chosen)) != KINFER_OK)
                return rc;
            size_t tcount;
            for (;;) {
                if ((rc = codec_read_block(r, field, 6, &tcount)) != KINFER_OK)
                    return rc;
                if (!tcount)
                    break;
                if ((rc = grow((void **)&dec->tops, &dec->tops_cap, dec->ntops + tcount,
                               sizeof(kinfer_codec_token_logprob), r->err)) != KINFER_OK)
                    return rc;
                for (size_t j = 0; j < tcount; j++, lp->ntop++)
                    if ((rc = read_token(r, field, &dec->tops[dec->ntops++])) != KINFER_OK)
                        return rc;
            }
        }
    }
    *n = dec->nlps - *start;
    return KINFER_OK;
}

static void fix_logprobs(kinfer_codec_decoder *dec) {
    size_t off = 0;
    for (size_t i = 0; i < dec->nlps; i++) {
        dec->lps[i].top = dec->lps[i].ntop ? dec->tops + off : NULL;
        off += dec->lps[i].ntop;
    }
}

static kinfer_err read_generation(kinfer_codec_decoder *dec, codec_reader *r,
                                  kinfer_codec_generation *g, size_t *ids, size_t *lps) {
    kinfer_err rc;
    int64_t reason;
    int32_t total;
    if ((rc = codec_read_bytes(r, "generation.text", &g->text)) ||
        (rc = read_ints(dec, r, "generation.token_ids", &ids[0], &g->ntoken_ids)) ||
        (rc = codec_read_index(r, "generation.finish_reason", "enum", KINFER_CODEC_FINISH_REASONS,
                               &reason)) ||
        (rc = codec_read_int(r, "generation.usage.prompt_tokens", &g->prompt_tokens)) ||
        (rc = codec_read_int(r, "generation.usage.completion_tokens", &g->completion_tokens)) ||
        (rc = codec_read_int(r, "generation.usage.total_tokens", &total)) ||
        (rc = codec_read_long(r, "generation.timing.queue_us", &g->queue_us)) ||
        (rc = codec_read_long(r, "generation.timing.ttft_us", &g->ttft_us)) ||
        (rc = codec_read_long(r, "generation.timing.per_token_us", &g->per_token_us)) ||
        (rc = codec_read_long(r, "generation.timing.total_us", &g->total_us)) ||
        (rc = codec_read_long(r, "generation.seed", &g->seed)) ||
        (rc = codec_read_int(r, "generation.chunks", &g->chunks)) ||
        (rc = codec_read_int(r, "generation.preemptions", &g->preemptions)) ||
        (rc = read_logprobs(dec, r, "generation.logprobs", &lps[0], &g->nlogprobs)))
        return rc;
    g->finish_reason = (int)reason;
    codec_check_text(dec, g->text, dec->limits.max_text_bytes, "generation.text");
    return KINFER_OK;
}

kinfer_err codec_decode_response_gen(kinfer_codec_decoder *dec, codec_reader *r,
                                     kinfer_codec_response *out) {
    if (!codec_reader_left(r))
        return KINFER_OK; /* a v1 response */
    size_t ids[2] = {0, 0}, lps[2] = {0, 0};
    kinfer_err rc = codec_read_optional(r, "generation", &out->has_generation);
    if (rc == KINFER_OK && out->has_generation)
        rc = read_generation(dec, r, &out->generation, &ids[0], &lps[0]);
    if (rc == KINFER_OK)
        rc = codec_read_optional(r, "chunk", &out->has_chunk);
    if (rc == KINFER_OK && out->has_chunk) {
        kinfer_codec_chunk *c = &out->chunk;
        if ((rc = codec_read_int(r, "chunk.index", &c->index)) ||
            (rc = codec_read_bytes(r, "chunk.text", &c->text)) ||
            (rc = read_ints(dec, r, "chunk.token_ids", &ids[1], &c->ntoken_ids)) ||
            (rc = read_logprobs(dec, r, "chunk.logprobs", &lps[1], &c->nlogprobs)))
            return rc;
        codec_check_text(dec, c->text, dec->limits.max_text_bytes, "chunk.text");
    }
    if (rc != KINFER_OK)
        return rc;
    fix_logprobs(dec);
    kinfer_codec_generation *g = &out->generation;
    g->token_ids = g->ntoken_ids ? dec->ints + ids[0] : NULL;
    g->logprobs = g->nlogprobs ? dec->lps + lps[0] : NULL;
    out->chunk.token_ids = out->chunk.ntoken_ids ? dec->ints + ids[1] : NULL;
    out->chunk.logprobs = out->chunk.nlogprobs ? dec->lps + lps[1] : NULL;
    return KINFER_OK;
}
