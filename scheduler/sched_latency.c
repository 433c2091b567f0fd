/* sched_latency.c — the estimator of sched_latency.h, in whatever unit the
 * caller sizes batches (rows, or padded tokens for text models).
 * Each bucket keeps a point (smoothed size, smoothed time); an estimate
 * interpolates linearly between the measured points around the asked size,
 * uses the smallest point below the first one (compute time only grows
 * with size, so this over-estimates, which is the safe side for deadlines);
 * above the last one it extends the line through the two largest points,
 * or, with a single point, scales it through the origin (an over-estimate
 * when time = fixed + per-unit cost). */
#include "sched_latency.h"

#include <math.h>
#include <string.h>

/* Smoothing as in RFC 6298: mean gains 1/8 of the error, deviation 1/4. */
#define LAT_ALPHA 0.125
#define LAT_BETA 0.25

void sched_latency_init(sched_latency *lat, int64_t prior_us) {
    memset(lat, 0, sizeof(*lat));
    lat->prior_us = prior_us;
}

static int bucket_of(uint32_t units) {
    int k = 0;
    while (k + 1 < SCHED_LATENCY_BUCKETS && (units >> (k + 1)) != 0)
        k++;
    return k;
}

void sched_latency_record(sched_latency *lat, uint32_t units, int64_t us) {
    if (units == 0 || us < 0)
        return;
    sched_latency_bucket *b = &lat->bucket[bucket_of(units)];
    double x = (double)us;
    if (b->samples == 0) {
        b->units = units;
        b->mean_us = x;
        b->dev_us = x / 2;
    } else {
        b->units += LAT_ALPHA * ((double)units - b->units);
        b->dev_us += LAT_BETA * (fabs(x - b->mean_us) - b->dev_us);
        b->mean_us += LAT_ALPHA * (x - b->mean_us);
    }
    b->samples++;
}

static double point_us(const sched_latency_bucket *b) {
    return b->mean_us + 2 * b->dev_us;
}

int64_t sched_latency_estimate(const sched_latency *lat, uint32_t units) {
    const sched_latency_bucket *below = NULL, *below2 = NULL, *above = NULL;
    for (int k = 0; k < SCHED_LATENCY_BUCKETS; k++) {
        const sched_latency_bucket *b = &lat->bucket[k];
        if (!b->samples)
            continue;
        if (b->units <= units) {
            below2 = below;
            below = b; /* the last one at or below */
        } else if (!above)
            above = b; /* the first one above */
    }
    double est;
    if (!below && !above)
        return lat->prior_us;
    if (!below)
        est = point_us(above);
    else if (!above && below2 && below->units > below2->units) {
        /* Past the largest point: continue the line through the two largest
         * points (compute is close to fixed + per-unit cost). Scaling one
         * small, noisy point through the origin instead was observed to
         * predict 385 ms for 64 rows from a 2-row spike, which disabled
         * batching for deadline traffic after a quiet period. The slope is
         * never taken below the origin line's through the largest point
         * divided by 4, nor negative. */
        double slope = (point_us(below) - point_us(below2)) / (below->units - below2->units);
        double floor_slope = point_us(below) / below->units / 4;
        if (slope < floor_slope)
            slope = floor_slope;
        est = point_us(below) + slope * ((double)units - below->units);
    } else if (!above)
        est = point_us(below) * ((double)units / below->units);
    else {
        double t = ((double)units - below->units) / (above->units - below->units);
        est = point_us(below) + t * (point_us(above) - point_us(below));
    }
    return (int64_t)ceil(est);
}

uint64_t sched_latency_samples(const sched_latency *lat) {
    uint64_t n = 0;
    for (int k = 0; k < SCHED_LATENCY_BUCKETS; k++)
        n += lat->bucket[k].samples;
    return n;
}
