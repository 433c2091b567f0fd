/* send_gen.c — `kinfer send --prompt / --chat` and the generation options
 * (send_gen.h). */
#include "send_gen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli_parse.h"

enum {
    OPT_PROMPT = 0x100,
    OPT_CHAT,
    OPT_MAX_TOKENS,
    OPT_TEMPERATURE,
    OPT_TOP_P,
    OPT_TOP_K,
    OPT_MIN_P,
    OPT_SEED,
    OPT_STOP,
    OPT_NO_STREAM,
    OPT_PRESENCE,
    OPT_FREQUENCY,
    OPT_REPETITION,
    OPT_LOGPROBS,
    OPT_TOP_LOGPROBS,
    OPT_IGNORE_EOS,
    OPT_END
};

const struct option kinfer_send_gen_options[] = {
    {"prompt", required_argument, 0, OPT_PROMPT},
    {"chat", required_argument, 0, OPT_CHAT},
    {"max-tokens", required_argument, 0, OPT_MAX_TOKENS},
    {"temperature", required_argument, 0, OPT_TEMPERATURE},
    {"top-p", required_argument, 0, OPT_TOP_P},
    {"top-k", required_argument, 0, OPT_TOP_K},
    {"min-p", required_argument, 0, OPT_MIN_P},
    {"seed", required_argument, 0, OPT_SEED},
    {"stop", required_argument, 0, OPT_STOP},
    {"no-stream", no_argument, 0, OPT_NO_STREAM},
    {"presence-penalty", required_argument, 0, OPT_PRESENCE},
    {"frequency-penalty", required_argument, 0, OPT_FREQUENCY},
    {"repetition-penalty", required_argument, 0, OPT_REPETITION},
    {"logprobs", no_argument, 0, OPT_LOGPROBS},
    {"top-logprobs", required_argument, 0, OPT_TOP_LOGPROBS},
    {"ignore-eos", no_argument, 0, OPT_IGNORE_EOS},
    {0, 0, 0, 0},
};

void kinfer_send_gen_usage(FILE *out) {
    fprintf(out,
            "  --prompt TEXT          a prompt for a generative model (kind llm): the answer\n"
            "                         streams to stdout as it is generated, then the finish\n"
            "                         reason and token usage\n"
            "  --chat ROLE:CONTENT    a chat message (repeatable, in order: --chat 'system:Be\n"
            "                         brief' --chat 'user:Hi'), rendered with the model's chat\n"
            "                         template; or one --chat '[{\"role\":..,\"content\":..},..]'\n"
            "\n"
            "generation options (OpenAI names; unset = the model's defaults):\n"
            "  --max-tokens N  --temperature F  --top-p F  --top-k N  --min-p F  --seed N\n"
            "  --stop S (repeatable)  --presence-penalty F  --frequency-penalty F\n"
            "  --repetition-penalty F  --logprobs  --top-logprobs N  --ignore-eos\n"
            "  --no-stream            only the final reply (no chunk replies)\n");
}

bool kinfer_send_gen_is_option(int c) {
    return c >= OPT_PROMPT && c < OPT_END;
}

bool kinfer_send_gen_wanted(const kinfer_send_gen *g) {
    return g->prompt || g->nchat;
}

static int float_opt(const char *name, const char *arg, double lo, double hi, bool *has, float *v) {
    char *end;
    double d = strtod(arg, &end);
    if (end == arg || *end || !(d >= lo && d <= hi)) {
        fprintf(stderr, "kinfer send: --%s: expected a number between %g and %g, got '%s'\n", name,
                lo, hi, arg);
        return 2;
    }
    *has = true;
    *v = (float)d;
    return 0;
}

static int int_opt(const char *name, const char *arg, long long lo, long long hi, bool *has,
                   int32_t *v) {
    long long x;
    if (kinfer_cli_opt_int("send", name, arg, lo, hi, &x))
        return 2;
    if (has)
        *has = true;
    *v = (int32_t)x;
    return 0;
}

int kinfer_send_gen_option(kinfer_send_gen *g, int c, const char *arg) {
    kinfer_codec_gen_options *o = &g->options;
    if (c != OPT_PROMPT && c != OPT_CHAT)
        g->any_option = true;
    switch (c) {
    case OPT_PROMPT:
        g->prompt = arg;
        return 0;
    case OPT_CHAT:
        if (g->nchat == KINFER_SEND_MAX_CHAT) {
            fprintf(stderr, "kinfer send: at most %d --chat\n", KINFER_SEND_MAX_CHAT);
            return 2;
        }
        g->chat[g->nchat++] = arg;
        return 0;
    case OPT_MAX_TOKENS:
        return int_opt("max-tokens", arg, 1, INT32_MAX, &o->has_max_tokens, &o->max_tokens);
    case OPT_TEMPERATURE:
        return float_opt("temperature", arg, 0, 2, &o->has_temperature, &o->temperature);
    case OPT_TOP_P:
        return float_opt("top-p", arg, 0, 1, &o->has_top_p, &o->top_p);
    case OPT_TOP_K:
        return int_opt("top-k", arg, 0, INT32_MAX, &o->has_top_k, &o->top_k);
    case OPT_MIN_P:
        return float_opt("min-p", arg, 0, 1, &o->has_min_p, &o->min_p);
    case OPT_SEED: {
        long long x;
        if (kinfer_cli_opt_int("send", "seed", arg, INT64_MIN, INT64_MAX, &x))
            return 2;
        o->has_seed = true;
        o->seed = x;
        return 0;
    }
    case OPT_STOP:
        if (o->nstop == KINFER_SEND_MAX_STOP || !*arg) {
            fprintf(stderr, "kinfer send: --stop wants a non-empty string (at most %d)\n",
                    KINFER_SEND_MAX_STOP);
            return 2;
        }
        g->stop[o->nstop++] = (kinfer_str){arg, strlen(arg)};
        o->stop = g->stop;
        return 0;
    case OPT_NO_STREAM:
        g->no_stream = true;
        return 0;
    case OPT_PRESENCE:
        return float_opt("presence-penalty", arg, -2, 2, &o->has_presence_penalty,
                         &o->presence_penalty);
    case OPT_FREQUENCY:
        return float_opt("frequency-penalty", arg, -2, 2, &o->has_frequency_penalty,
                         &o->frequency_penalty);
    case OPT_REPETITION:
        return float_opt("repetition-penalty", arg, 0, 10, &o->has_repetition_penalty,
                         &o->repetition_penalty);
    case OPT_LOGPROBS:
        o->logprobs = true;
        return 0;
    case OPT_TOP_LOGPROBS:
        o->logprobs = true;
        return int_opt("top-logprobs", arg, 0, 20, NULL, &o->top_logprobs);
    case OPT_IGNORE_EOS:
        o->ignore_eos = true;
        return 0;
    }
    return 2;
}

static int chat_json(kinfer_send_gen *g, const char *text) {
    json_error_t jerr;
    json_t *arr = json_loads(text, 0, &jerr);
    if (!json_is_array(arr)) {
        fprintf(stderr, "kinfer send: --chat: not a JSON array of {\"role\",\"content\"}: %s\n",
                arr ? "not an array" : jerr.text);
        json_decref(arr);
        return 2;
    }
    g->json = arr;
    size_t i;
    json_t *m;
    json_array_foreach(arr, i, m) {
        json_t *role = json_object_get(m, "role"), *content = json_object_get(m, "content");
        if (!json_is_string(role) || !json_is_string(content) || i >= KINFER_SEND_MAX_CHAT) {
            fprintf(stderr,
                    "kinfer send: --chat: message %zu needs string \"role\" and \"content\" "
                    "(at most %d messages)\n",
                    i, KINFER_SEND_MAX_CHAT);
            return 2;
        }
        g->messages[g->nmessages++] =
            (kinfer_codec_chat_message){{json_string_value(role), json_string_length(role)},
                                        {json_string_value(content), json_string_length(content)}};
    }
    return 0;
}

int kinfer_send_gen_fill(kinfer_send_gen *g, kinfer_codec_request *req) {
    if (g->prompt && g->nchat) {
        fprintf(stderr, "kinfer send: give --prompt or --chat, not both\n");
        return 2;
    }
    if (g->prompt) {
        if (!kinfer_codec_utf8_valid(g->prompt, strlen(g->prompt), NULL)) {
            fprintf(stderr, "kinfer send: --prompt is not valid UTF-8 (Avro strings are)\n");
            return 2;
        }
        req->has_prompt = true;
        req->prompt = (kinfer_str){g->prompt, strlen(g->prompt)};
    }
    if (g->nchat == 1 && g->chat[0][0] == '[') {
        if (chat_json(g, g->chat[0]))
            return 2;
    } else {
        for (int i = 0; i < g->nchat; i++) {
            const char *colon = strchr(g->chat[i], ':');
            if (!colon || colon == g->chat[i]) {
                fprintf(stderr,
                        "kinfer send: --chat #%d wants ROLE:CONTENT (e.g. 'user:Hello'), got "
                        "'%s'\n",
                        i + 1, g->chat[i]);
                return 2;
            }
            g->messages[g->nmessages++] = (kinfer_codec_chat_message){
                {g->chat[i], (size_t)(colon - g->chat[i])}, {colon + 1, strlen(colon + 1)}};
        }
    }
    for (size_t i = 0; i < g->nmessages; i++)
        if (!kinfer_codec_utf8_valid(g->messages[i].content.ptr, g->messages[i].content.len,
                                     NULL) ||
            !kinfer_codec_utf8_valid(g->messages[i].role.ptr, g->messages[i].role.len, NULL)) {
            fprintf(stderr, "kinfer send: --chat message %zu is not valid UTF-8\n", i + 1);
            return 2;
        }
    req->messages = g->nmessages ? g->messages : NULL;
    req->nmessages = g->nmessages;
    req->has_generation = true;
    req->generation = g->options;
    req->generation.stream = !g->no_stream;
    return 0;
}

void kinfer_send_gen_free(kinfer_send_gen *g) {
    json_decref(g->json);
    g->json = NULL;
}
