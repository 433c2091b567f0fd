/* batch_state.c — the journal, the resume scan and the checkpoints of
 * batch_state.h. */
#include "batch_state.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "batch_output.h"

#define JOURNAL_MAGIC "kinfer-batch-journal 1"

static char *cat(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 1;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s%s", a, b);
    return s;
}

static kinfer_err sys_fail(kinfer_error *err, const char *what, const char *path) {
    return kinfer_error_set(err, KINFER_ERR_IO, "%s %s: %s", what, path, strerror(errno));
}

static int mark(batch_state *st, uint64_t lineno) {
    if (lineno >= st->done_cap) {
        uint64_t ncap = st->done_cap ? st->done_cap : 4096;
        while (ncap <= lineno)
            ncap *= 2;
        uint8_t *nd = realloc(st->done, ncap);
        if (!nd)
            return -1;
        memset(nd + st->done_cap, 0, ncap - st->done_cap);
        st->done = nd;
        st->done_cap = ncap;
    }
    st->done[lineno] = 1;
    return 0;
}

bool batch_state_is_done(const batch_state *st, uint64_t lineno) {
    return lineno < st->done_cap && st->done[lineno];
}

static kinfer_err journal_append(batch_state *st, const char *line, kinfer_error *err) {
    size_t n = strlen(line);
    if (write(st->journal_fd, line, n) != (ssize_t)n || write(st->journal_fd, "\n", 1) != 1 ||
        fdatasync(st->journal_fd) != 0)
        return sys_fail(err, "write", st->journal_path);
    return KINFER_OK;
}

/* The journal's records (the last commit wins). */
typedef struct journal {
    char job[BATCH_JOB_MAX + 1];
    char input[4096];
    long long input_bytes;
    uint64_t out, err;
    uint32_t runs;
    bool finished, ok;
} journal;

static kinfer_err journal_read(const char *path, journal *j, kinfer_error *err) {
    memset(j, 0, sizeof(*j));
    FILE *f = fopen(path, "r");
    if (!f)
        return sys_fail(err, "open", path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int lineno = 0;
    while ((n = getline(&line, &cap, f)) > 0) {
        lineno++;
        if (line[n - 1] != '\n')
            break; /* torn last record */
        line[n - 1] = '\0';
        unsigned long long a, b;
        if (lineno == 1) {
            if (strcmp(line, JOURNAL_MAGIC))
                break;
            j->ok = true;
        } else if (!strncmp(line, "job ", 4))
            snprintf(j->job, sizeof j->job, "%s", line + 4);
        else if (!strncmp(line, "input ", 6)) {
            int off = 0;
            if (sscanf(line + 6, "%lld %n", &j->input_bytes, &off) == 1)
                snprintf(j->input, sizeof j->input, "%s", line + 6 + off);
        } else if (!strncmp(line, "run ", 4))
            j->runs++;
        else if (sscanf(line, "commit %llu %llu", &a, &b) == 2) {
            j->out = a;
            j->err = b;
        } else if (!strcmp(line, "finished"))
            j->finished = true;
    }
    free(line);
    fclose(f);
    if (!j->ok || !j->job[0])
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "%s is not a kinfer batch journal (or its header is torn)", path);
    return KINFER_OK;
}

static long long file_size(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 ? (long long)sb.st_size : -1;
}

/* Truncates path to size and reads the line numbers of its lines. */
static kinfer_err scan(batch_state *st, const char *path, uint64_t size, bool ok,
                       kinfer_error *err) {
    long long have = file_size(path);
    if (have < 0)
        return sys_fail(err, "stat", path);
    if ((uint64_t)have < size)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "%s has %lld bytes, fewer than the %" PRIu64
                                " its journal committed: it was changed outside kinfer batch",
                                path, have, size);
    if (truncate(path, (off_t)size) != 0)
        return sys_fail(err, "truncate", path);
    FILE *f = fopen(path, "r");
    if (!f)
        return sys_fail(err, "open", path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    kinfer_err rc = KINFER_OK;
    while ((n = getline(&line, &cap, f)) > 0) {
        uint64_t ln = batch_output_lineno(line, (size_t)n);
        if (ln == 0) {
            rc = kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                  "%s holds a line that kinfer batch did not write", path);
            break;
        }
        if (!batch_state_is_done(st, ln)) {
            if (ok)
                st->ndone_ok++;
            else
                st->ndone_failed++;
        }
        if (mark(st, ln) != 0) {
            rc = kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
            break;
        }
    }
    free(line);
    fclose(f);
    return rc;
}

static kinfer_err open_append(const char *path, bool create, FILE **out, kinfer_error *err) {
    int fd = open(path, O_WRONLY | O_APPEND | (create ? O_CREAT | O_TRUNC : 0) | O_CLOEXEC, 0644);
    if (fd < 0)
        return sys_fail(err, "open", path);
    *out = fdopen(fd, "a");
    if (!*out) {
        close(fd);
        return sys_fail(err, "open", path);
    }
    return KINFER_OK;
}

/* An exclusive lock on the journal for the run's lifetime: a second run of
 * the same job (another shell, another gateway) is refused instead of
 * writing the same files. */
static kinfer_err lock_journal(batch_state *st, kinfer_error *err) {
    if (flock(st->journal_fd, LOCK_EX | LOCK_NB) == 0)
        return KINFER_OK;
    if (errno == EWOULDBLOCK)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "%s is in use: this job is running in another process",
                                st->journal_path);
    return sys_fail(err, "lock", st->journal_path);
}

static kinfer_err resume(batch_state *st, const char *job, const char *input_path,
                         long long input_bytes, kinfer_error *err) {
    st->journal_fd = open(st->journal_path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (st->journal_fd < 0)
        return sys_fail(err, "open", st->journal_path);
    kinfer_err rc = lock_journal(st, err);
    if (rc != KINFER_OK)
        return rc;
    journal j;
    rc = journal_read(st->journal_path, &j, err);
    if (rc != KINFER_OK)
        return rc;
    if (job && strcmp(job, j.job))
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "%s belongs to job '%s', not '%s' (choose another output or "
                                "the same --job)",
                                st->out_path, j.job, job);
    if (j.input_bytes != input_bytes || strcmp(j.input, input_path))
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "job '%s' read %s (%lld bytes), not %s (%lld bytes): resume it "
                                "with the same input",
                                j.job, j.input, j.input_bytes, input_path, input_bytes);
    snprintf(st->job, sizeof st->job, "%s", j.job);
    if ((rc = scan(st, st->out_path, j.out, true, err)) != KINFER_OK ||
        (rc = scan(st, st->err_path, j.err, false, err)) != KINFER_OK)
        return rc;
    st->out_bytes = j.out;
    st->err_bytes = j.err;
    st->run = j.runs + 1;
    st->resumed = true;
    st->finished = j.finished;
    if ((rc = open_append(st->out_path, false, &st->out, err)) != KINFER_OK ||
        (rc = open_append(st->err_path, false, &st->err, err)) != KINFER_OK)
        return rc;
    return KINFER_OK;
}

static bool valid_job(const char *job) {
    size_t n = strlen(job);
    if (n == 0 || n > BATCH_JOB_MAX)
        return false;
    for (const char *p = job; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_' || *p == '.'))
            return false;
    return true;
}

kinfer_err batch_state_open(batch_state *st, const char *job, const char *input_path,
                            const char *out_path, const char *err_path, kinfer_error *err) {
    memset(st, 0, sizeof(*st));
    st->journal_fd = -1;
    if (job && !valid_job(job))
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "--job '%s': 1 to %d of A-Z a-z 0-9 - _ .", job, BATCH_JOB_MAX);
    st->out_path = strdup(out_path);
    st->err_path = strdup(err_path);
    st->journal_path = cat(out_path, ".journal");
    if (!st->out_path || !st->err_path || !st->journal_path)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
    long long input_bytes = file_size(input_path);
    if (input_bytes < 0)
        return sys_fail(err, "stat", input_path);
    /* The journal names the input by its absolute path, so a resume from
     * another directory still matches. */
    char abs_input[PATH_MAX];
    if (!realpath(input_path, abs_input))
        return sys_fail(err, "resolve", input_path);
    input_path = abs_input;
    if (file_size(st->journal_path) >= 0)
        return resume(st, job, input_path, input_bytes, err);
    if (file_size(out_path) > 0 || file_size(err_path) > 0)
        return kinfer_error_set(err, KINFER_ERR_INVALID_ARG,
                                "%s or %s exists without %s: not a kinfer batch job's output "
                                "(remove it or choose another -o)",
                                out_path, err_path, st->journal_path);
    if (job)
        snprintf(st->job, sizeof st->job, "%s", job);
    else
        snprintf(st->job, sizeof st->job, "job-%lld-%d", (long long)time(NULL), (int)getpid());
    kinfer_err rc;
    if ((rc = open_append(out_path, true, &st->out, err)) != KINFER_OK ||
        (rc = open_append(err_path, true, &st->err, err)) != KINFER_OK)
        return rc;
    st->journal_fd =
        open(st->journal_path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644);
    if (st->journal_fd < 0)
        return sys_fail(err, "create", st->journal_path);
    if ((rc = lock_journal(st, err)) != KINFER_OK)
        return rc;
    st->run = 1;
    char hdr[4400];
    snprintf(hdr, sizeof hdr, JOURNAL_MAGIC "\njob %s\ninput %lld %s\ncommit 0 0", st->job,
             input_bytes, input_path);
    return journal_append(st, hdr, err);
}

kinfer_err batch_state_append(batch_state *st, uint64_t lineno, bool ok, const char *line,
                              kinfer_error *err) {
    FILE *f = ok ? st->out : st->err;
    size_t n = strlen(line);
    if (fwrite(line, 1, n, f) != n || fputc('\n', f) == EOF)
        return sys_fail(err, "write", ok ? st->out_path : st->err_path);
    if (ok) {
        st->out_bytes += n + 1;
        st->ndone_ok++;
    } else {
        st->err_bytes += n + 1;
        st->ndone_failed++;
    }
    if (mark(st, lineno) != 0)
        return kinfer_error_set(err, KINFER_ERR_NOMEM, "out of memory");
    return KINFER_OK;
}

kinfer_err batch_state_commit(batch_state *st, kinfer_error *err) {
    if (fflush(st->out) != 0 || fdatasync(fileno(st->out)) != 0)
        return sys_fail(err, "write", st->out_path);
    if (fflush(st->err) != 0 || fdatasync(fileno(st->err)) != 0)
        return sys_fail(err, "write", st->err_path);
    char rec[80];
    snprintf(rec, sizeof rec, "commit %" PRIu64 " %" PRIu64, st->out_bytes, st->err_bytes);
    return journal_append(st, rec, err);
}

kinfer_err batch_state_finish(batch_state *st, kinfer_error *err) {
    kinfer_err rc = batch_state_commit(st, err);
    if (rc == KINFER_OK && !st->finished)
        rc = journal_append(st, "finished", err);
    if (rc == KINFER_OK)
        st->finished = true;
    return rc;
}

kinfer_err batch_state_start_run(batch_state *st, kinfer_error *err) {
    char rec[40];
    snprintf(rec, sizeof rec, "run %u", st->run);
    return journal_append(st, rec, err);
}

void batch_state_close(batch_state *st) {
    if (st->out)
        fclose(st->out);
    if (st->err)
        fclose(st->err);
    if (st->journal_fd >= 0)
        close(st->journal_fd);
    free(st->out_path);
    free(st->err_path);
    free(st->journal_path);
    free(st->done);
    memset(st, 0, sizeof(*st));
    st->journal_fd = -1;
}
