/* kinfer_log.c — key=value event lines on stderr. */
#include "kinfer/kinfer_log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int log_threshold = -1; /* -1: not yet read from the environment */

int kinfer_log_level_parse(const char *name, kinfer_log_level *out) {
    static const char *names[] = {"debug", "info", "warn", "error", "off"};
    for (int i = 0; i < 5; i++) {
        if (strcmp(name, names[i]) == 0) {
            *out = (kinfer_log_level)i;
            return 0;
        }
    }
    return -1;
}

void kinfer_log_set_level(kinfer_log_level level) {
    atomic_store(&log_threshold, (int)level);
}

int kinfer_log_enabled(kinfer_log_level level) {
    int t = atomic_load(&log_threshold);
    if (t < 0) {
        kinfer_log_level parsed = KINFER_LOG_INFO;
        const char *env = getenv("KINFER_LOG_LEVEL");
        if (env)
            kinfer_log_level_parse(env, &parsed);
        t = (int)parsed;
        atomic_store(&log_threshold, t);
    }
    return (int)level >= t;
}

void kinfer_log(kinfer_log_level level, const char *event, const char *fmt, ...) {
    static const char *level_names[] = {"debug", "info", "warn", "error", "off"};
    if (!kinfer_log_enabled(level))
        return;
    char line[2048];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n =
        snprintf(line, sizeof(line), "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s event=%s",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 ts.tv_nsec / 1000000, level_names[level], event);
    if (n < 0)
        return;
    size_t off = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
    if (fmt && *fmt && off < sizeof(line) - 2) {
        line[off++] = ' ';
        va_list ap;
        va_start(ap, fmt);
        int m = vsnprintf(line + off, sizeof(line) - off - 1, fmt, ap);
        va_end(ap);
        if (m > 0)
            off += (size_t)m < sizeof(line) - off - 1 ? (size_t)m : sizeof(line) - off - 2;
    }
    line[off++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, off);
    (void)w;
}
