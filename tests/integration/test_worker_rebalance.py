"""Rebalance edge cases on the real broker, against librdkafka 2.0.2's known
cooperative-protocol bugs: a worker stopped before its first assignment must
close cleanly (and quickly), in both assignment strategies and both delivery
modes; a group of three settles (no endless cooperative rebalance loop) and
static membership brings a restarted worker back without moving partitions.
"""

import re
import signal
import time
import uuid

import pytest

from worker_helpers import Worker, write_config


def _cfg(tmp_path, bootstrap, topic, group, name, assignment="cooperative-sticky",
         delivery="at-least-once", instance=None):
    static = f'group_instance_id = "{instance}";' if instance else ""
    return write_config(tmp_path / f"{name}.conf", bootstrap, topic, group,
                        extra_kafka=f'assignment_strategy = "{assignment}"; {static}',
                        extra_worker=f'id = "{name}";', extra_top=f'delivery = "{delivery}";')


@pytest.mark.parametrize("assignment", ["cooperative-sticky", "eager"])
@pytest.mark.parametrize("delivery", ["at-least-once", "exactly-once"])
def test_stop_before_first_assignment(tmp_path, bootstrap, make_topic, kinfer_bin, assignment,
                                      delivery):
    topic = make_topic(partitions=3)
    group = "kinfer-test-" + uuid.uuid4().hex[:8]
    name = "early-" + uuid.uuid4().hex[:6]
    w = Worker(kinfer_bin, _cfg(tmp_path, bootstrap, topic, group, name, assignment, delivery),
               tmp_path / "w.log")
    deadline = time.monotonic() + 30
    while "event=worker.start" not in w.text():
        assert time.monotonic() < deadline and w.proc.poll() is None, w.text()
        time.sleep(0.01)
    t0 = time.monotonic()
    assert w.stop(signal.SIGTERM, timeout=20) == 0, w.text()
    assert time.monotonic() - t0 < 15, w.text()


def _assigned_partitions(text):
    """Partitions currently held according to the log's last `total=`."""
    totals = re.findall(r"event=worker\.(?:assigned|revoked) .*?total=(\d+)", text)
    return int(totals[-1]) if totals else 0


def test_group_of_three_settles_and_static_restart_keeps_partitions(tmp_path, bootstrap,
                                                                    make_topic, kinfer_bin):
    topic = make_topic(partitions=12)
    group = "kinfer-test-" + uuid.uuid4().hex[:8]
    tag = uuid.uuid4().hex[:6]
    names = [f"s{i}-{tag}" for i in range(3)]
    ws = [Worker(kinfer_bin, _cfg(tmp_path, bootstrap, topic, group, n, instance=n),
                 tmp_path / f"{n}.log") for n in names]
    try:
        for w in ws:
            w.wait_assigned()
        deadline = time.monotonic() + 30
        while sum(_assigned_partitions(w.text()) for w in ws) != 12:
            assert time.monotonic() < deadline, "\n".join(w.text()[-1500:] for w in ws)
            time.sleep(0.2)
        time.sleep(3)  # a rebalance loop would keep logging assignments
        events = [len(re.findall(r"event=worker\.(assigned|revoked)", w.text())) for w in ws]
        time.sleep(3)
        assert events == [len(re.findall(r"event=worker\.(assigned|revoked)", w.text()))
                          for w in ws], "the group keeps rebalancing"
        before = [_assigned_partitions(w.text()) for w in ws]
        assert all(b == 4 for b in before), before
        # Static membership: kill -9 and restart within the session timeout:
        # the same member id comes back, nobody else is revoked anything.
        others = [w.text().count("event=worker.revoked") for w in ws[1:]]
        ws[0].stop(signal.SIGKILL)
        ws[0] = Worker(kinfer_bin, tmp_path / f"{names[0]}.conf", tmp_path / f"{names[0]}-2.log")
        ws[0].wait_assigned()
        assert _assigned_partitions(ws[0].text()) == 4, ws[0].text()
        assert [w.text().count("event=worker.revoked") for w in ws[1:]] == others
    finally:
        for w in ws:
            w.stop(signal.SIGKILL)
