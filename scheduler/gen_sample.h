/* gen_sample.h — choosing a generation's next token from host logits:
 * penalties, greedy, temperature, top-k, top-p, min-p, seeded draws, and
 * the log-probabilities OpenAI reports. Model-agnostic; no engine, no
 * locks. One gen_sampler (scratch of vocab size) per executor thread; a
 * draw never depends on the scratch's history, on other sequences or on
 * the batch, only on (logits, context, seed, draw index). */
#ifndef GEN_SAMPLE_H
#define GEN_SAMPLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kinfer/kinfer_engine.h"

typedef struct gen_sample_params {
    float temperature;                                             /* 0 = greedy */
    uint32_t top_k;                                                /* 0 = off */
    float top_p;                                                   /* 1 = off */
    float min_p;                                                   /* 0 = off */
    float repetition_penalty, presence_penalty, frequency_penalty; /* 1, 0, 0 = off */
    bool logprobs;
    uint32_t top_logprobs; /* <= KINFER_GEN_MAX_TOP_LOGPROBS */
} gen_sample_params;

typedef struct gen_token_lp {
    int32_t id;
    float logprob;
} gen_token_lp;

typedef struct gen_sample_out {
    int32_t id;
    float logprob; /* raw log-softmax of the chosen token (when params.logprobs) */
    uint32_t ntop;
    gen_token_lp top[KINFER_GEN_MAX_TOP_LOGPROBS];
} gen_sample_out;

/* An unnormalised probability and its token. */
typedef struct gen_cand {
    float p;
    int32_t id;
} gen_cand;

typedef struct gen_sampler {
    uint32_t vocab;
    gen_cand *cand;   /* vocab */
    uint32_t *count;  /* vocab: occurrences in the output; zero between calls */
    uint8_t *seen;    /* vocab: in the context; zero between calls */
    int32_t *touched; /* vocab: ids seen in this call */
    float *orig;      /* vocab: their raw logits, for the chosen token's logprob */
    double *bsum;     /* vocab / 64 + 1: probability mass per block of 64 ids */
} gen_sampler;

/* Scratch for a vocabulary of `vocab` tokens. 0 or -1 (no memory). */
int gen_sampler_init(gen_sampler *s, uint32_t vocab);
void gen_sampler_free(gen_sampler *s);

/* The SplitMix64 output for (seed, index): a uniform double in [0, 1). */
double gen_rng_uniform(uint64_t seed, uint64_t index);
/* SplitMix64's mixing function (also used to pick seeds). */
uint64_t gen_rng_mix(uint64_t x);

/* Chooses the next token. logits: vocab floats, modified (penalties,
 * scaling). ctx: prompt (nprompt ids) followed by the output so far
 * (nctx - nprompt ids). draw = the output's length: draw `draw` of `seed`.
 * NaN logits count as -inf; when every logit is -inf the answer is id 0.
 * Allocates nothing. */
void gen_sample(gen_sampler *s, const gen_sample_params *p, float *logits, const int32_t *ctx,
                uint32_t nprompt, uint32_t nctx, uint64_t seed, uint64_t draw, gen_sample_out *out);

#endif
