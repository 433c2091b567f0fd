/* sched_test_util.h — the set-up and teardown the manual-mode scheduler
 * tests share (header-only: each test_*.c here is its own executable): an
 * engine over the fake model on a fake clock, its defaults, and the
 * teardown checks that the engine destroyed all it made and completed each
 * request at most once. Each test file adjusts the defaults it needs; the
 * policies under test stay in the test files. */
#ifndef SCHED_TEST_UTIL_H
#define SCHED_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "sched_fake_model.h"

#define T0 1700000000000000LL /* an epoch µs start for the fake clock */

typedef struct env {
    fake_clock clock;
    fake_model_ctx fake;
    fake_sink sink;
    fake_req *reqs;
    size_t nreqs;
    kinfer_model_config mc;
    kinfer_engine_config cfg;
    sched_engine_options opts;
    const sched_model_ops *ops;
    kinfer_engine *engine;
    kinfer_error err;
} env;

/* Teardown checks shared with the threaded tests: everything the engine
 * created it destroyed, no request completed twice, and the pipelined ops
 * were never misused or left with batches in flight (both stay 0 with the
 * plain ops). Then frees the fake's and the sink's resources. */
static inline void sched_fake_check_fini(fake_model_ctx *fake, fake_sink *sink) {
    assert_int_equal(fake->replicas_live, 0);
    assert_int_equal(fake->models_live, 0);
    assert_int_equal(sink->duplicates, 0);
    assert_int_equal(fake->misuse, 0);
    assert_int_equal(fake->in_flight_now, 0);
    fake_model_fini(fake);
    pthread_mutex_destroy(&sink->mu);
}

/* Defaults: model `name` (no version) on one cpu replica with the plain
 * fake ops, batch 8, delay 1 s (so only the trigger under test fires),
 * manual mode, prior 5000 us, margin 100 us, fake compute 1000 us on the
 * fake clock starting at T0; no per-row or per-token cost and no
 * congestion callback unless the test sets them. */
static inline env *env_alloc_n(const char *name, size_t nreqs) {
    env *e = calloc(1, sizeof(*e));
    if (!e || !(e->reqs = calloc(nreqs, sizeof(*e->reqs))))
        fail_msg("out of memory");
    e->nreqs = nreqs;
    fake_model_init(&e->fake);
    kinfer_clock clock = fake_clock_make(&e->clock, T0);
    e->fake.clock = &e->clock;
    e->fake.exec_base_us = 1000;
    fake_sink_init(&e->sink, e->reqs, nreqs, clock);
    e->mc.name = name;
    e->mc.load.kind = "fake";
    e->mc.load.path = "fake.safetensors";
    e->mc.devices[0] = "cpu";
    e->mc.ndevices = 1;
    e->mc.replicas_per_device = 1;
    e->mc.max_batch_size = 8;
    e->mc.max_queue_delay_us = 1000000;
    e->cfg.models = &e->mc;
    e->cfg.nmodels = 1;
    e->cfg.clock = clock;
    e->cfg.on_complete = fake_on_complete;
    e->cfg.callback_ctx = &e->sink;
    e->opts.manual = true;
    e->opts.deadline_margin_us = 100;
    e->opts.latency_prior_us = 5000;
    e->ops = &fake_ops;
    return e;
}

static inline void env_start(env *e) {
    kinfer_err rc =
        kinfer_engine_new_with_ops(&e->cfg, e->ops, &e->fake, &e->opts, &e->engine, &e->err);
    if (rc != KINFER_OK)
        fail_msg("engine_new: %s", e->err.msg);
}

static inline void env_free(env *e) {
    kinfer_engine_destroy(e->engine);
    sched_fake_check_fini(&e->fake, &e->sink);
    free(e->reqs);
    free(e);
}

/* Request `id` of model `model`: `rows` rows from fake_req_fill. */
static inline kinfer_err env_submit_rows(env *e, const char *model, size_t id, uint32_t rows,
                                         int64_t deadline, int32_t prio) {
    fake_req_fill(&e->reqs[id], id, rows);
    kinfer_engine_request q = fake_request(model, &e->reqs[id], id, deadline, prio);
    return kinfer_engine_submit(e->engine, &q, &e->err);
}

/* One scheduler step: decide, then run what was dispatched. Returns the
 * number of batches run. */
static inline size_t env_step(env *e) {
    sched_engine_poll(e->engine);
    return sched_engine_run(e->engine);
}

static inline int64_t now(env *e) {
    return atomic_load(&e->clock.now);
}

#endif
