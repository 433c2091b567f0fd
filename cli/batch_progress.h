/* batch_progress.h — `kinfer batch` progress on stderr: a bar redrawn in
 * place on a terminal (done / failed / rate / ETA), a plain line every few
 * seconds otherwise, and nothing with mode NONE. */
#ifndef KINFER_BATCH_PROGRESS_H
#define KINFER_BATCH_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef enum batch_progress_mode {
    BATCH_PROGRESS_AUTO = 0, /* BAR on a terminal, else LINES */
    BATCH_PROGRESS_BAR,
    BATCH_PROGRESS_LINES,
    BATCH_PROGRESS_NONE,
} batch_progress_mode;

typedef struct batch_progress {
    FILE *out;
    batch_progress_mode mode;
    uint64_t total;      /* lines in the input */
    uint64_t start_done; /* lines already done when this run began */
    int64_t t0_us, last_us;
    bool drawn;
} batch_progress;

void batch_progress_init(batch_progress *p, FILE *out, batch_progress_mode mode, uint64_t total,
                         uint64_t start_done, int64_t now_us);
/* Redraws when due (bar: every 200 ms; lines: every 5 s) or when force. */
void batch_progress_update(batch_progress *p, uint64_t done, uint64_t failed, uint64_t in_flight,
                           int64_t now_us, bool force);
/* Ends the bar's line. */
void batch_progress_end(batch_progress *p);

/* Formats the status text (without a bar) into buf: for tests and lines. */
void batch_progress_format(char *buf, size_t cap, uint64_t total, uint64_t done, uint64_t failed,
                           uint64_t in_flight, double rate, bool rate_known);

#endif
