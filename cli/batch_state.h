/* batch_state.h — what makes `kinfer batch` resumable: the output and errors
 * files themselves plus a small journal beside them (<output>.journal).
 *
 * Lines are appended to the two files as replies come; at each checkpoint
 * both are fsync'd and then one record "commit <out bytes> <err bytes>"
 * is appended to the journal and fsync'd. The committed prefix of each file
 * is therefore durable and whole. A run that finds the journal (same job
 * id) truncates both files to the last committed sizes — whatever came
 * after may be a torn line or a line whose commit never happened — and
 * reads the ids of the lines left (batch_output_lineno) to know which input
 * lines are done. Those are never sent again and never written twice; the
 * rest (never sent, in flight at the interruption, or written after the
 * last commit) are sent again. No Kafka state is needed to resume, so a job
 * resumes on any machine that has the three files.
 *
 * Journal lines: "kinfer-batch-journal 1", "job <id>", "input <path>",
 * "run <n>" per start, "commit <out> <err>" per checkpoint, "finished" at
 * the end; a torn last line is ignored. */
#ifndef KINFER_BATCH_STATE_H
#define KINFER_BATCH_STATE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "kinfer/kinfer_error.h"

#define BATCH_JOB_MAX 128

typedef struct batch_state {
    char job[BATCH_JOB_MAX + 1];
    char *out_path, *err_path, *journal_path;
    FILE *out, *err; /* appending */
    int journal_fd;
    uint64_t out_bytes, err_bytes; /* written so far (committed or not) */
    uint32_t run;                  /* 1 on the first start */
    bool resumed, finished;
    /* done[lineno] for the lines in the committed files, by input line. */
    uint8_t *done;
    uint64_t done_cap;
    uint64_t ndone_ok, ndone_failed; /* lines in the output / errors file */
} batch_state;

/* Opens or resumes the job writing to out_path (and err_path). job may be
 * NULL to take the journal's (a new job then gets one from the time and
 * pid). An output without a journal, a journal of another job, or files
 * shorter than their committed size are KINFER_ERR_INVALID_ARG naming the
 * file. */
kinfer_err batch_state_open(batch_state *st, const char *job, const char *input_path,
                            const char *out_path, const char *err_path, kinfer_error *err);

/* Journals this start ("run <n>"); once, after open. */
kinfer_err batch_state_start_run(batch_state *st, kinfer_error *err);

/* Whether input line lineno (1-based) is done. */
bool batch_state_is_done(const batch_state *st, uint64_t lineno);

/* Appends one line (newline added) to the output (ok) or errors file and
 * marks lineno done. */
kinfer_err batch_state_append(batch_state *st, uint64_t lineno, bool ok, const char *line,
                              kinfer_error *err);

/* fsyncs both files, then journals their sizes. */
kinfer_err batch_state_commit(batch_state *st, kinfer_error *err);

/* Commits and journals "finished". */
kinfer_err batch_state_finish(batch_state *st, kinfer_error *err);

void batch_state_close(batch_state *st);

#endif
