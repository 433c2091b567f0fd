/* kinfer_clock.h — time sources. Monotonic for intervals, wall clock for
 * deadlines (which arrive as Unix epoch milliseconds). Components that must
 * be tested with a fake clock take a kinfer_clock; the real one is
 * kinfer_clock_system(). */
#ifndef KINFER_CLOCK_H
#define KINFER_CLOCK_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Monotonic microseconds (CLOCK_MONOTONIC). */
int64_t kinfer_mono_us(void);
/* Wall-clock Unix epoch milliseconds (CLOCK_REALTIME). */
int64_t kinfer_wall_ms(void);
/* Wall-clock Unix epoch microseconds (CLOCK_REALTIME). */
int64_t kinfer_wall_us(void);

/* An injectable clock: now_us returns wall-clock Unix epoch microseconds
 * (so deadlines compare directly). */
typedef struct kinfer_clock {
    int64_t (*now_us)(void *ctx);
    void *ctx;
} kinfer_clock;

/* The real wall clock. */
kinfer_clock kinfer_clock_system(void);

#ifdef __cplusplus
}
#endif
#endif
