/* sched_policy.c — the dispatch rules of DESIGN.md §4 as arithmetic on
 * times; see sched_policy.h. Saturating adds keep "no deadline" (INT64_MAX)
 * from overflowing into the past. */
#include "sched_policy.h"

static int64_t sat_sub(int64_t a, int64_t b) {
    if (a == INT64_MAX)
        return INT64_MAX;
    if (b > 0 && a < INT64_MIN + b)
        return INT64_MIN;
    return a - b;
}

static int64_t sat_add(int64_t a, int64_t b) {
    if (b > 0 && a > INT64_MAX - b)
        return INT64_MAX;
    return a + b;
}

sched_trigger sched_policy_decide(const sched_policy_input *in, int64_t now, int64_t *wake_us) {
    *wake_us = INT64_MAX;
    if (in->queued == 0)
        return SCHED_WAIT;
    *wake_us = now;
    if (in->draining)
        return SCHED_DISPATCH_DRAIN;
    if (in->queued_rows >= in->max_batch_size)
        return SCHED_DISPATCH_FULL;
    if (in->max_batch_tokens > 0 && in->queued_tokens >= in->max_batch_tokens)
        return SCHED_DISPATCH_FULL;
    int64_t delay = in->max_queue_delay_us > 0 ? in->max_queue_delay_us : 0;
    int64_t delay_at = sat_add(in->oldest_arrival_us, delay);
    if (now >= delay_at)
        return SCHED_DISPATCH_DELAY;
    int64_t lead =
        sat_add(in->estimate_us > 0 ? in->estimate_us : 0, in->margin_us > 0 ? in->margin_us : 0);
    int64_t deadline_at = sat_sub(in->earliest_deadline_us, lead);
    if (now >= deadline_at)
        return SCHED_DISPATCH_DEADLINE;
    *wake_us = delay_at < deadline_at ? delay_at : deadline_at;
    return SCHED_WAIT;
}

const char *sched_trigger_name(sched_trigger t) {
    switch (t) {
    case SCHED_WAIT:
        return "wait";
    case SCHED_DISPATCH_FULL:
        return "full";
    case SCHED_DISPATCH_DELAY:
        return "delay";
    case SCHED_DISPATCH_DEADLINE:
        return "deadline";
    case SCHED_DISPATCH_DRAIN:
        return "drain";
    }
    return "?";
}
