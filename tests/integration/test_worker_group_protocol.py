"""kafka.group_protocol = "consumer" (KIP-848: the broker computes the
assignment) with real workers on the real broker: two workers share the
partitions, one is killed (-9), the other takes everything over, and every
request gets its reply. Needs librdkafka 2.10+ and a broker with the
protocol (Kafka 4.x): on the present configuration (librdkafka 2.0.2) the
key is refused at load, which is what the first test checks there.
"""

import re
import signal
import subprocess
import time
import uuid

import numpy as np
import pytest

from worker_helpers import (
    Worker, consume_ids, decode, encode, linked_rdkafka_version, produce_all, producer, request,
    write_config)

PARTITIONS = 6


@pytest.fixture(scope="module")
def rdkafka(kinfer_bin):
    return linked_rdkafka_version(kinfer_bin)


def _cfg(tmp_path, bootstrap, topic, group, name, extra=""):
    return write_config(tmp_path / f"{name}.conf", bootstrap, topic, group,
                        extra_kafka=f'group_protocol = "consumer"; {extra}',
                        extra_worker=f'id = "{name}";', session_timeout=False)


def _held(text):
    """Partitions held according to the log's last `total=`."""
    totals = re.findall(r"event=worker\.(?:assigned|revoked) .*?total=(\d+)", text)
    return int(totals[-1]) if totals else 0


def _wait(cond, what, timeout, logs):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"{what} within {timeout}s:\n" + "\n".join(
            l[-2500:] for l in logs())
        time.sleep(0.1)


def test_group_protocol_consumer_needs_librdkafka_2_10(tmp_path, bootstrap, kinfer_bin, rdkafka):
    cfg = _cfg(tmp_path, bootstrap, "t", "g", "check")
    p = subprocess.run([str(kinfer_bin), "check-config", str(cfg)], capture_output=True,
                       text=True, timeout=60)
    if rdkafka < (2, 10, 0):
        assert p.returncode != 0, p.stdout
        assert ('kafka.group_protocol: "consumer" (KIP-848) needs librdkafka 2.10 or newer; '
                "this kinfer runs on librdkafka %d.%d.%d" % rdkafka) in p.stderr, p.stderr
    else:
        assert p.returncode == 0, p.stderr


def test_consumer_protocol_join_share_kill9_nothing_lost(tmp_path, bootstrap, make_topic,
                                                         kinfer_bin, schemas, rdkafka):
    if rdkafka < (2, 10, 0):
        pytest.skip(f"librdkafka {rdkafka} has no consumer group protocol (refused at load, "
                    "test_group_protocol_consumer_needs_librdkafka_2_10)")
    topic = make_topic(partitions=PARTITIONS)
    replies = make_topic(partitions=3, hint="replies")
    group = "kinfer-test-kip848-" + uuid.uuid4().hex[:8]
    tag = uuid.uuid4().hex[:6]
    cfgs = [_cfg(tmp_path, bootstrap, topic, group, f"k{i}-{tag}") for i in range(2)]
    p = producer(bootstrap)

    def send(ids):
        produce_all(p, topic, [
            (None, encode(schemas["request"], request(i, np.full(8, 0.25, np.float32),
                                                      reply_to=replies)), [], n % PARTITIONS)
            for n, i in enumerate(ids)])

    a = Worker(kinfer_bin, cfgs[0], tmp_path / "a.log")
    ws = [a]
    try:
        a.wait_assigned()
        _wait(lambda: _held(a.text()) == PARTITIONS, "A holds every partition", 30,
              lambda: [w.text() for w in ws])
        send([f"one-{n}" for n in range(200)])
        b = Worker(kinfer_bin, cfgs[1], tmp_path / "b.log")
        ws.append(b)
        b.wait_assigned()
        # The broker moves partitions to B; A gives up only those.
        _wait(lambda: _held(b.text()) > 0 and _held(a.text()) + _held(b.text()) == PARTITIONS,
              "A and B share the partitions", 60, lambda: [w.text() for w in ws])
        send([f"two-{n}" for n in range(300)])
        b.stop(signal.SIGKILL)
        # B's session (the broker's group.consumer.session.timeout.ms) ends:
        # A gets B's partitions back.
        _wait(lambda: _held(a.text()) == PARTITIONS, "A takes over B's partitions", 60,
              lambda: [w.text() for w in ws])
        send([f"three-{n}" for n in range(200)])
        want = ([f"one-{n}" for n in range(200)] + [f"two-{n}" for n in range(300)] +
                [f"three-{n}" for n in range(200)])
        msgs = consume_ids(bootstrap, replies, schemas["response"], want, timeout=90)
        got = {}
        for m in msgs:
            r = decode(schemas["response"], m.value())[0]
            got.setdefault(r["id"], []).append(r)
        missing = [i for i in want if i not in got]
        assert not missing, f"{len(missing)} requests without a reply: {missing[:10]}"
        assert all(any(r["status"] == "OK" for r in got[i]) for i in want)
        # The consumer protocol never takes A's own partitions away to hand
        # them back: no lost assignment, no revoke of everything.
        assert "lost=1" not in a.text(), a.text()[-3000:]
    finally:
        for w in ws:
            w.stop(signal.SIGKILL)


def test_consumer_protocol_static_member_killed_is_refused_until_its_session_ends(
        tmp_path, bootstrap, make_topic, kinfer_bin, rdkafka):
    """Static membership (kafka.group_instance_id) under the consumer
    protocol: the broker refuses a second member with the same instance id
    (UNRELEASED_INSTANCE_ID, fatal for the newcomer, where the classic
    protocol fences the old one). A worker killed -9 and restarted at once is
    therefore refused and exits 1; once the dead member's session (6 s,
    scripts/kafka.sh) is over, the same id joins again. A worker stopped
    with SIGTERM leaves properly and is taken back at once."""
    if rdkafka < (2, 10, 0):
        pytest.skip(f"librdkafka {rdkafka} has no consumer group protocol")
    topic = make_topic(partitions=PARTITIONS)
    group = "kinfer-test-kip848s-" + uuid.uuid4().hex[:8]
    name = "static-" + uuid.uuid4().hex[:6]
    cfg = _cfg(tmp_path, bootstrap, topic, group, name, extra=f'group_instance_id = "{name}";')
    w = Worker(kinfer_bin, cfg, tmp_path / "w1.log")
    ws = [w]
    try:
        w.wait_assigned()
        w.stop(signal.SIGKILL)
        killed = time.monotonic()
        again = Worker(kinfer_bin, cfg, tmp_path / "w2.log")
        ws.append(again)
        assert again.proc.wait(30) == 1, again.text()[-2000:]
        assert "The instance ID is still used by another member" in again.text(), again.text()
        time.sleep(max(0.0, killed + 8 - time.monotonic()))  # past the 6 s session
        third = Worker(kinfer_bin, cfg, tmp_path / "w3.log")
        ws.append(third)
        third.wait_assigned(timeout=30)
        _wait(lambda: _held(third.text()) == PARTITIONS, "the restarted member holds all", 30,
              lambda: [x.text() for x in ws])
        assert third.stop(signal.SIGTERM) == 0, third.text()[-2000:]
        fourth = Worker(kinfer_bin, cfg, tmp_path / "w4.log")
        ws.append(fourth)
        fourth.wait_assigned(timeout=10)
        assert "still used by another member" not in fourth.text(), fourth.text()
    finally:
        for x in ws:
            x.stop(signal.SIGKILL)
