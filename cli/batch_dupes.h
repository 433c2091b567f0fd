/* batch_dupes.h — the pre-pass of `kinfer batch` over its input: counts the
 * lines (for progress and ETA) and finds every JSONL line whose custom_id an
 * earlier line already has (the later ones become duplicate_custom_id error
 * lines; the first is served). Deterministic over the same input, so a
 * resumed run makes the same decisions. */
#ifndef KINFER_BATCH_DUPES_H
#define KINFER_BATCH_DUPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kinfer/kinfer_error.h"

typedef struct batch_dupes {
    uint64_t nlines;
    /* custom_id -> first line: open addressing on a 64-bit hash */
    char **ids;
    size_t cap, len;
    /* duplicate lines, ascending, with their custom_id */
    uint64_t *dup_lines;
    char **dup_ids;
    size_t ndups, dups_cap;
} batch_dupes;

kinfer_err batch_dupes_scan(batch_dupes *d, const char *path, bool text_input, kinfer_error *err);
/* The custom_id when line lineno repeats an earlier line's, else NULL. */
const char *batch_dupes_first(const batch_dupes *d, uint64_t lineno);
void batch_dupes_free(batch_dupes *d);

#endif
