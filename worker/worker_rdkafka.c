/* worker_rdkafka.c — which known librdkafka consumer-group bugs the library
 * loaded at run time has, so that each work-around runs only where it is
 * needed (rd_kafka_version(), not the headers kinfer was built with: a
 * distribution may update the shared library underneath). The evidence
 * per bug is in docs/RELIABILITY.md and tests/integration/
 * test_rdkafka_bugs.py. */
#include "kinfer/kinfer_log.h"
#include "worker_internal.h"

/* rd_kafka_version() is 0xMMmmrrxx (major, minor, revision, pre-release). */
#define RDK_VERSION(ma, mi, re) (((ma) << 24) | ((mi) << 16) | ((re) << 8))

void kinfer_worker_rdkafka_bugs(kinfer_worker *w) {
    int v = rd_kafka_version() & ~0xff;
    /* #4059, fixed in 2.8.0 (#4908): a commit answered ILLEGAL_GENERATION
     * during a cooperative rejoin marks the whole assignment lost. */
    w->rdk_commit_loses_assignment = v < RDK_VERSION(2, 8, 0);
    /* An assignment that arrives while rd_kafka_consumer_close runs can
     * leave the revoke's incremental_unassign blocked forever. 2.4.0 fixed
     * one such case (#4527/#4528), but 2.14.2 still hangs the same way
     * (gdb: on_revoke -> rd_kafka_incremental_unassign inside close) in
     * 10 of 19 runs of test_worker_backpressure_stop.py without the
     * work-around: no version is known to be free of it. */
    w->rdk_close_hangs_on_assign = true;
    KINFER_LOGI("worker.rdkafka",
                "version=%s hold_commits_while_rejoining=%d "
                "unsubscribe_before_close=%d",
                rd_kafka_version_str(), (int)w->rdk_commit_loses_assignment,
                (int)w->rdk_close_hangs_on_assign);
}
