/* fuzz_cli_batch.c — any bytes as a `kinfer batch` input line (JSONL and
 * plain text): parsing never crashes, and a line that parses becomes an
 * output line (embeddings or generation), and any other an error line, valid JSON
 * with the input line number as their id. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "batch_input.h"
#include "batch_output.h"

static void check_line(char *s, uint64_t lineno) {
    if (!s)
        abort(); /* out of memory only */
    if (batch_output_lineno(s, strlen(s)) != lineno)
        abort();
    json_t *o = json_loads(s, 0, NULL);
    if (!o)
        abort();
    json_decref(o);
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    batch_line l;
    const char *line = (const char *)data;
    int rc = batch_line_parse_jsonl(line, size, size % 2 ? "dflt" : NULL, &l);
    if (rc == 0) {
        float v[4] = {0.5f, -1.0f, 3.0f, 0.0f};
        if (l.url == BATCH_URL_EMBEDDINGS) {
            if (l.ntexts == 0)
                abort();
            check_line(batch_output_embeddings("job", 7, l.custom_id, "job.1.7.1", l.model, v, 1, 4,
                                               l.base64),
                       7);
        } else {
            if (!l.prompt && l.nmessages == 0)
                abort();
            check_line(batch_output_generation("job", 7, l.custom_id, "job.1.7.1", l.model,
                                               l.url == BATCH_URL_CHAT_COMPLETIONS, "hi", 2, "stop",
                                               3, 1),
                       7);
        }
    } else if (rc == -1) {
        if (!l.error_code[0] || !l.error_message[0])
            abort();
        check_line(batch_output_error("job", 9, l.has_custom_id ? l.custom_id : NULL, NULL,
                                      size % 3 ? 0 : 400, l.error_code, l.error_message),
                   9);
    }
    batch_line_free(&l);
    rc = batch_line_parse_text(line, size, 3, "m", &l);
    if (rc == -1)
        check_line(
            batch_output_error("job", 3, l.custom_id, NULL, 0, l.error_code, l.error_message), 3);
    batch_line_free(&l);
    return 0;
}
