"""Does the linked librdkafka still have the consumer-group bugs the worker
works around? (docs/RELIABILITY.md, "librdkafka 2.0.2 bugs met")

Each test runs tests/rdkafka/kinfer_rdkafka_probe (built beside the kinfer
binary under test, linked with the same librdkafka) against the real broker;
the probe drives librdkafka directly, without kinfer's work-arounds, and
prints one JSON line. The expectation is chosen by the linked version, which
`kinfer version` reports, and each test says by its name which version
fixed the bug: the present configuration (Debian's 2.0.2) shows the bug, the
current one (2.14.2) does not, for the bugs the probe reproduces (#4059,
#4312); for the two it does not (#4527, #4783) it guards that the simple
path stays fine, and docs/RELIABILITY.md has the worker-level evidence.
"""

import json
import signal
import subprocess
import uuid

import pytest

from worker_helpers import linked_rdkafka_version, produce_all, producer


@pytest.fixture(scope="module")
def probe(kinfer_bin):
    path = kinfer_bin.parent / "kinfer_rdkafka_probe"
    if not path.is_file():
        pytest.fail(f"{path} not built (cmake --build <dir> --target kinfer_rdkafka_probe)",
                    pytrace=False)
    return path


@pytest.fixture(scope="module")
def rdkafka(kinfer_bin):
    return linked_rdkafka_version(kinfer_bin)


def _run(probe, *args, timeout=120):
    p = subprocess.run([str(probe), *args], capture_output=True, text=True, timeout=timeout)
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    return p, (json.loads(lines[-1]) if lines else None)


def _group():
    return "kinfer-test-probe-" + uuid.uuid4().hex[:8]


def test_commit_during_rebalance_loses_assignment_before_2_8(probe, rdkafka, bootstrap,
                                                             make_topic):
    """#4059, fixed in 2.8.0 (#4908): commits sent while the group waits for
    a killed member's session end fail with ILLEGAL_GENERATION; before 2.8
    librdkafka then marks the committer's whole assignment lost."""
    p, r = _run(probe, "commit-during-rebalance", bootstrap, _group(), make_topic(partitions=6))
    assert p.returncode == 0 and r, p.stdout + p.stderr
    assert r["rdkafka"] == "%d.%d.%d" % rdkafka
    assert r["c_assigned"], r
    # The race itself happens on every version: commits during the join fail.
    assert r["commit_illegal_generation"] > 0, r
    if rdkafka < (2, 8, 0):
        assert r["lost"] >= 1, f"expected the #4059 lost assignment on {rdkafka}: {r}"
    else:
        assert r["lost"] == 0 and r["revokes"] == 0, r


def test_close_before_first_assignment_aborts_before_2_3(probe, rdkafka, bootstrap, make_topic):
    """#4312, fixed in 2.3.0 (#4381): five cooperative-sticky consumers that
    close during their first join abort the process in
    rd_kafka_sticky_assignor_state_destroy."""
    p, r = _run(probe, "close-before-assign", bootstrap, _group(), make_topic(partitions=2), "3")
    if rdkafka < (2, 3, 0):
        assert p.returncode == -signal.SIGABRT, (p.returncode, p.stdout + p.stderr)
        assert "Assertion `assignor_state' failed" in p.stderr, p.stderr
    else:
        assert p.returncode == 0 and r, (p.returncode, p.stdout + p.stderr)
        assert r["closed"] == 15, r


def test_close_while_an_assignment_arrives_probe_returns(probe, rdkafka, bootstrap, make_topic):
    """#4527, fixed in 2.4.0 (#4528): an assignment received while close runs
    could leave close stuck. The probe grows a topic holding data, stops
    polling for 0-1000 ms once the consumer sees the new partition count and
    closes (ten attempts; partitions paused, the revoked ones committed
    synchronously, no resume while closing, as the worker does). Its close
    returns on both versions; the worker's own scenario still hangs on
    2.0.2 and on 2.14.2 without its work-around (KINFER_TEST_CLOSE_DIRECTLY,
    docs/RELIABILITY.md), so the work-around stays on every version and
    test_worker_backpressure_stop.py holds it. Before 2.4 a hang here is the
    known bug (xfail)."""
    topics = [make_topic(partitions=2) for _ in range(10)]
    p = producer(bootstrap)
    for t in topics:
        produce_all(p, t, [(None, b"x" * 100, [], n % 2) for n in range(200)])
    topics = ",".join(topics)
    p, r = _run(probe, "close-during-assign", bootstrap, _group(), topics, timeout=300)
    assert r, p.stdout + p.stderr
    assert r["setup_failed"] == 0 and r["attempts"] == 10, r
    if rdkafka < (2, 4, 0) and r["hangs"]:
        pytest.xfail(f"#4527 on {rdkafka}: {r}")
    assert r["hangs"] == 0, r


def test_cooperative_sticky_group_on_two_topics_settles(probe, rdkafka, bootstrap, make_topic):
    """#4783, fixed in 2.6.1 (#4800): the cooperative-sticky assignor could
    loop forever for some orders of members subscribed to different topics
    under one client.id. Twelve such members (six per topic) joining one by
    one must settle with every partition held and an idle process; this
    order did not trigger the loop on 2.0.2 either, so it guards both."""
    t1, t2 = make_topic(partitions=6), make_topic(partitions=6)
    p, r = _run(probe, "assignor-loop", bootstrap, _group(), t1, t2, "6")
    assert p.returncode == 0 and r, p.stdout + p.stderr
    assert r["settled"] and r["held"] == 12 == r["partitions"], r
    assert r["idle_cpu_cores"] < 0.5, r
