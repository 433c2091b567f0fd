/* batch_dupes.c — see batch_dupes.h. */
#include "batch_dupes.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ULL;
    return h;
}

static int grow(batch_dupes *d) {
    size_t ncap = d->cap ? d->cap * 2 : 1024;
    char **nids = calloc(ncap, sizeof(*nids));
    if (!nids)
        return -1;
    for (size_t i = 0; i < d->cap; i++) {
        if (!d->ids[i])
            continue;
        size_t k = fnv1a(d->ids[i]) & (ncap - 1);
        while (nids[k])
            k = (k + 1) & (ncap - 1);
        nids[k] = d->ids[i];
    }
    free(d->ids);
    d->ids = nids;
    d->cap = ncap;
    return 0;
}

/* 1 when id was seen before, 0 when added, -1 out of memory. */
static int seen(batch_dupes *d, const char *id) {
    if ((d->len + 1) * 2 > d->cap && grow(d) != 0)
        return -1;
    size_t k = fnv1a(id) & (d->cap - 1);
    while (d->ids[k]) {
        if (!strcmp(d->ids[k], id))
            return 1;
        k = (k + 1) & (d->cap - 1);
    }
    if (!(d->ids[k] = strdup(id)))
        return -1;
    d->len++;
    return 0;
}

static int add_dup(batch_dupes *d, uint64_t lineno, const char *id) {
    if (d->ndups == d->dups_cap) {
        size_t ncap = d->dups_cap ? d->dups_cap * 2 : 16;
        uint64_t *nl = realloc(d->dup_lines, ncap * sizeof(*nl));
        if (!nl)
            return -1;
        d->dup_lines = nl;
        char **ni = realloc(d->dup_ids, ncap * sizeof(*ni));
        if (!ni)
            return -1;
        d->dup_ids = ni;
        d->dups_cap = ncap;
    }
    if (!(d->dup_ids[d->ndups] = strdup(id)))
        return -1;
    d->dup_lines[d->ndups++] = lineno;
    return 0;
}

kinfer_err batch_dupes_scan(batch_dupes *d, const char *path, bool text_input, kinfer_error *err) {
    memset(d, 0, sizeof(*d));
    FILE *f = fopen(path, "r");
    if (!f)
        return kinfer_error_set(err, KINFER_ERR_IO, "open %s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    kinfer_err rc = KINFER_OK;
    while ((n = getline(&line, &cap, f)) > 0) {
        d->nlines++;
        if (text_input)
            continue;
        json_t *root = json_loadb(line, (size_t)n, 0, NULL);
        json_t *cid = root ? json_object_get(root, "custom_id") : NULL;
        if (cid && json_is_string(cid) && json_string_length(cid) > 0) {
            int s = seen(d, json_string_value(cid));
            if (s == 1 && add_dup(d, d->nlines, json_string_value(cid)) != 0)
                s = -1;
            if (s < 0) {
                rc = kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
                json_decref(root);
                break;
            }
        }
        if (root)
            json_decref(root);
    }
    free(line);
    fclose(f);
    return rc;
}

const char *batch_dupes_first(const batch_dupes *d, uint64_t lineno) {
    size_t lo = 0, hi = d->ndups;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (d->dup_lines[mid] < lineno)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < d->ndups && d->dup_lines[lo] == lineno ? d->dup_ids[lo] : NULL;
}

void batch_dupes_free(batch_dupes *d) {
    for (size_t i = 0; i < d->cap; i++)
        free(d->ids[i]);
    free(d->ids);
    for (size_t i = 0; i < d->ndups; i++)
        free(d->dup_ids[i]);
    free(d->dup_lines);
    free(d->dup_ids);
    memset(d, 0, sizeof(*d));
}
