/* send_gen.h — `kinfer send`'s generation side (send_gen.c): the
 * --prompt / --chat inputs and the generation options (OpenAI names as
 * flags: --max-tokens, --temperature, ...) parsed into the request's
 * generation fields. Not Kafka, not the reply (send_print.c). */
#ifndef KINFER_SEND_GEN_H
#define KINFER_SEND_GEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <getopt.h>

#include "kinfer/kinfer_codec.h"

#define KINFER_SEND_MAX_CHAT 64
#define KINFER_SEND_MAX_STOP 16

typedef struct kinfer_send_gen {
    const char *prompt;
    const char *chat[KINFER_SEND_MAX_CHAT]; /* --chat values as given */
    int nchat;
    bool no_stream;
    bool any_option; /* a generation option was given */
    kinfer_codec_gen_options options;
    kinfer_str stop[KINFER_SEND_MAX_STOP];
    /* Parsed chat messages (kinfer_send_gen_fill); the JSON form's strings
     * live in json until kinfer_send_gen_free. */
    kinfer_codec_chat_message messages[KINFER_SEND_MAX_CHAT];
    size_t nmessages;
    void *json;
} kinfer_send_gen;

/* The long options this module handles (values 0x100..), for the
 * command's option table; terminated by a zero entry. */
extern const struct option kinfer_send_gen_options[];

/* Whether c is one of ours. */
bool kinfer_send_gen_is_option(int c);
/* Handles option c with arg: 0 ok, 2 usage error (printed). */
int kinfer_send_gen_option(kinfer_send_gen *g, int c, const char *arg);
/* Whether the request is a generation (--prompt or --chat). */
bool kinfer_send_gen_wanted(const kinfer_send_gen *g);
/* Checks and parses (--chat role:content pairs, or one --chat with a JSON
 * array of {"role":..,"content":..}) and fills req's generation fields
 * (stream on unless --no-stream). 0 ok, 2 usage error (printed). */
int kinfer_send_gen_fill(kinfer_send_gen *g, kinfer_codec_request *req);
void kinfer_send_gen_free(kinfer_send_gen *g);

/* The usage lines for the options. */
void kinfer_send_gen_usage(FILE *out);

#endif
