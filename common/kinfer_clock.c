/* kinfer_clock.c — monotonic and wall clocks. */
#include "kinfer/kinfer_clock.h"

#include <time.h>

int64_t kinfer_mono_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t kinfer_wall_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t kinfer_wall_ms(void) {
    return kinfer_wall_us() / 1000;
}

static int64_t system_now_us(void *ctx) {
    (void)ctx;
    return kinfer_wall_us();
}

kinfer_clock kinfer_clock_system(void) {
    kinfer_clock c = {system_now_us, 0};
    return c;
}
