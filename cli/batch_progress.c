/* batch_progress.c — see batch_progress.h. The rate counts lines finished
 * by this run only (a resumed job's earlier lines would inflate it). */
#include "batch_progress.h"

#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#define BAR_WIDTH 28

void batch_progress_init(batch_progress *p, FILE *out, batch_progress_mode mode, uint64_t total,
                         uint64_t start_done, int64_t now_us) {
    memset(p, 0, sizeof(*p));
    p->out = out;
    p->mode = mode;
    if (mode == BATCH_PROGRESS_AUTO)
        p->mode = isatty(fileno(out)) ? BATCH_PROGRESS_BAR : BATCH_PROGRESS_LINES;
    p->total = total;
    p->start_done = start_done;
    p->t0_us = p->last_us = now_us;
}

static void eta_text(char *buf, size_t cap, double seconds) {
    long long s = (long long)(seconds + 0.5);
    if (s >= 3600)
        snprintf(buf, cap, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
    else
        snprintf(buf, cap, "%lld:%02lld", s / 60, s % 60);
}

void batch_progress_format(char *buf, size_t cap, uint64_t total, uint64_t done, uint64_t failed,
                           uint64_t in_flight, double rate, bool rate_known) {
    char eta[32] = "?";
    uint64_t left = total > done ? total - done : 0;
    if (left == 0)
        snprintf(eta, sizeof eta, "0:00");
    else if (rate_known && rate > 0)
        eta_text(eta, sizeof eta, (double)left / rate);
    snprintf(buf, cap,
             "%" PRIu64 "/%" PRIu64 " done, %" PRIu64 " failed, %" PRIu64 " in flight, %.1f "
             "lines/s, ETA %s",
             done, total, failed, in_flight, rate_known ? rate : 0.0, eta);
}

void batch_progress_update(batch_progress *p, uint64_t done, uint64_t failed, uint64_t in_flight,
                           int64_t now_us, bool force) {
    if (p->mode == BATCH_PROGRESS_NONE)
        return;
    int64_t every = p->mode == BATCH_PROGRESS_BAR ? 200000 : 5000000;
    if (!force && now_us - p->last_us < every)
        return;
    p->last_us = now_us;
    double secs = (double)(now_us - p->t0_us) / 1e6;
    uint64_t mine = done > p->start_done ? done - p->start_done : 0;
    bool known = secs > 0.5 && mine > 0;
    char text[256];
    batch_progress_format(text, sizeof text, p->total, done, failed, in_flight,
                          known ? (double)mine / secs : 0, known);
    if (p->mode == BATCH_PROGRESS_LINES) {
        fprintf(p->out, "kinfer batch: %s\n", text);
    } else {
        char bar[BAR_WIDTH + 1];
        size_t fill = p->total ? (size_t)((double)done / (double)p->total * BAR_WIDTH) : 0;
        for (size_t i = 0; i < BAR_WIDTH; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[BAR_WIDTH] = '\0';
        fprintf(p->out, "\r[%s] %s\033[K", bar, text);
        p->drawn = true;
    }
    fflush(p->out);
}

void batch_progress_end(batch_progress *p) {
    if (p->drawn)
        fputc('\n', p->out);
    p->drawn = false;
}
