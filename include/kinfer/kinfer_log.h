/* kinfer_log.h — one line per event, key=value, with a level.
 *
 * Lines look like:  ts=2026-11-28T00:12:35.123Z level=info event=worker.start group=kinfer
 * Thread-safe (one write(2) per line). The level threshold comes from
 * kinfer_log_set_level or the KINFER_LOG_LEVEL environment variable. */
#ifndef KINFER_LOG_H
#define KINFER_LOG_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kinfer_log_level {
    KINFER_LOG_DEBUG = 0,
    KINFER_LOG_INFO = 1,
    KINFER_LOG_WARN = 2,
    KINFER_LOG_ERROR = 3,
    KINFER_LOG_OFF = 4
} kinfer_log_level;

void kinfer_log_set_level(kinfer_log_level level);
/* Parses "debug|info|warn|error|off"; returns 0 on success, -1 when unknown. */
int kinfer_log_level_parse(const char *name, kinfer_log_level *out);
int kinfer_log_enabled(kinfer_log_level level);

/* event: dotted name such as "engine.model_loaded"; fmt: further key=value
 * pairs (may be NULL). Values with spaces should be quoted by the caller. */
void kinfer_log(kinfer_log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define KINFER_LOGD(event, ...) kinfer_log(KINFER_LOG_DEBUG, event, __VA_ARGS__)
#define KINFER_LOGI(event, ...) kinfer_log(KINFER_LOG_INFO, event, __VA_ARGS__)
#define KINFER_LOGW(event, ...) kinfer_log(KINFER_LOG_WARN, event, __VA_ARGS__)
#define KINFER_LOGE(event, ...) kinfer_log(KINFER_LOG_ERROR, event, __VA_ARGS__)

#ifdef __cplusplus
}
#endif
#endif
