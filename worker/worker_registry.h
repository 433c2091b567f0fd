/* worker_registry.h — module-local: the worker's Schema Registry client
 * (kafka.schema_registry_url). The poll thread asks; one background thread
 * fetches; answers are cached for the worker's life (failures for a few
 * seconds), so each writer schema id is fetched once and the poll loop
 * never waits on HTTP. Not the parking of the messages that wait
 * (worker_park.c). */
#ifndef KINFER_WORKER_REGISTRY_H
#define KINFER_WORKER_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kinfer/kinfer_codec.h"
#include "kinfer/kinfer_config.h"
#include "kinfer/kinfer_error.h"

typedef struct kinfer_worker_registry kinfer_worker_registry;

typedef enum kinfer_worker_reg_state {
    KINFER_WORKER_REG_READY = 0,
    KINFER_WORKER_REG_PENDING, /* asked; a fetch is queued or running */
    KINFER_WORKER_REG_FAILED,  /* why says what; asked again after a few seconds */
} kinfer_worker_reg_state;

struct kinfer_worker_metrics;

/* Starts the registry thread. k->schema_registry_url must be set; metrics
 * (may be NULL) counts each request's outcome. */
kinfer_err kinfer_worker_registry_new(const kinfer_config_kafka *k,
                                      struct kinfer_worker_metrics *metrics,
                                      kinfer_worker_registry **out, kinfer_error *err);
/* Stops the thread (a running request ends within its timeout). */
void kinfer_worker_registry_destroy(kinfer_worker_registry *reg);

/* The writer schema with registry id `id`, resolved to the current
 * InferenceRequest: READY with *res (valid until destroy), PENDING, or
 * FAILED with the reason in why. Poll thread. */
kinfer_worker_reg_state kinfer_worker_registry_schema(kinfer_worker_registry *reg, uint32_t id,
                                                      const kinfer_codec_resolution **res,
                                                      char *why, size_t cap);

/* The id of the current InferenceResponse registered under the subject
 * "<topic>-value" (TopicNameStrategy): READY with *id, PENDING or FAILED.
 * Poll thread. */
kinfer_worker_reg_state kinfer_worker_registry_reply_id(kinfer_worker_registry *reg,
                                                        const char *topic, uint32_t *id, char *why,
                                                        size_t cap);

/* Changes whenever a fetch finishes: parked messages are worth a retry. */
uint64_t kinfer_worker_registry_generation(kinfer_worker_registry *reg);

/* ---- HTTP (worker_registry_http.c), the registry thread only ---- */

typedef struct kinfer_worker_registry_conn {
    void *curl;       /* CURL * */
    const char *base; /* URL without a trailing '/' */
    const char *user, *password;
    int64_t timeout_ms;
} kinfer_worker_registry_conn;

kinfer_err kinfer_worker_registry_http_init(kinfer_error *err);
/* GET /schemas/ids/{id}: *schema is the malloc'd Avro schema text. */
kinfer_err kinfer_worker_registry_http_schema(const kinfer_worker_registry_conn *c, uint32_t id,
                                              char **schema, char *why, size_t cap);
/* POST /subjects/{subject}/versions: the id under which schema_json is kept. */
kinfer_err kinfer_worker_registry_http_register(const kinfer_worker_registry_conn *c,
                                                const char *subject, const char *schema_json,
                                                uint32_t *id, char *why, size_t cap);

#endif
