/* send_print.h — how `kinfer send` shows a reply: readable text (compact for
 * what people send first: an embedding is its dims, norm and first values,
 * a classifier its labels, a generation its text, finish reason and usage)
 * or one JSON object; and a generation's chunk replies, their text written
 * as it arrives. Not the request side, not Kafka. */
#ifndef KINFER_SEND_PRINT_H
#define KINFER_SEND_PRINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kinfer/kinfer_codec.h"

/* A generation's chunks seen so far: each index is printed once (a worker
 * that restarts a generation re-sends it from chunk 0). */
typedef struct kinfer_send_stream {
    uint32_t next;  /* the next chunk index to print */
    size_t printed; /* text bytes printed */
} kinfer_send_stream;

/* What the request asked, for labelling the rows of a reply. */
typedef struct kinfer_send_request_info {
    const char *const *texts; /* --text values, NULL when none */
    size_t ntexts;
    const kinfer_send_stream *stream; /* the chunks printed before the final reply */
} kinfer_send_request_info;

/* A chunk reply: its text to stdout at once (flushed), or one JSON line;
 * a chunk index already printed is skipped. */
void kinfer_send_print_chunk(const kinfer_codec_response *r, kinfer_send_stream *s, bool as_json);

/* Writes the reply to stdout: readable, or one compact JSON line. */
void kinfer_send_print_reply(const kinfer_codec_response *r, const kinfer_send_request_info *req,
                             double rtt_ms, bool as_json);

/* Rows wider than this print compactly: dims, L2 norm, the first values. */
#define KINFER_SEND_COMPACT_WIDTH 16
/* How many values of a compact row are shown. */
#define KINFER_SEND_COMPACT_VALUES 8

#endif
