"""Exactly-once mode (delivery = "exactly-once") on the real broker: replies
and offsets commit in one transaction, a read_committed reader sees exactly
one reply per request through a kill -9 and a zombie worker, dead letters go
through the transaction too, and offsets are committed at the watermark.

Clients here are confluent-kafka + fastavro only (independent of kinfer's C)."""

import collections
import signal
import time
import uuid

import numpy as np
from confluent_kafka import Consumer

from worker_helpers import (NumpyMLP, Worker, committed, decode, encode, end_offsets, produce_all,
                            producer, request, write_config)

EOS = 'delivery = "exactly-once";'


def eos_config(path, bootstrap, topic, group, worker_id, extra_kafka=""):
    return write_config(path, bootstrap, topic, group,
                        extra_kafka='producer_properties = ["transaction.timeout.ms=10000"];' +
                        extra_kafka,
                        extra_worker=f'id = "{worker_id}";', extra_top=EOS)


def read_committed(bootstrap, topic, schema, want_ids, timeout=90.0, settle=2.0):
    """Counter id -> replies seen by a read_committed reader; reads until every
    wanted id is there, then `settle` seconds more to catch late duplicates."""
    want = set(want_ids)
    counts = collections.Counter()
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "kinfer-test-" + uuid.uuid4().hex,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "isolation.level": "read_committed"})
    c.subscribe([topic])
    deadline = time.monotonic() + timeout
    done_at = None
    try:
        while time.monotonic() < deadline:
            if done_at is None and want <= set(counts):
                done_at = time.monotonic()
            if done_at is not None and time.monotonic() - done_at > settle:
                break
            m = c.poll(0.2)
            if m is None or m.error():
                continue
            counts[decode(schema, m.value())[0]["id"]] += 1
    finally:
        c.close()
    return counts


def _send(bootstrap, topic, schema, ids, replies, parts):
    width = NumpyMLP().width
    produce_all(producer(bootstrap), topic,
                [(None, encode(schema, request(i, np.full(width, n % 5, np.float32),
                                               reply_to=replies)), [], n % parts)
                 for n, i in enumerate(ids)])


def _wait_committed(bootstrap, group, topic, parts, w, timeout=30):
    ends = end_offsets(bootstrap, topic, parts)
    deadline = time.monotonic() + timeout
    while committed(bootstrap, group, topic, parts) != ends:
        assert time.monotonic() < deadline, (committed(bootstrap, group, topic, parts), ends,
                                             w.text()[-3000:])
        time.sleep(0.3)


def test_eos_one_reply_per_request_and_offsets_at_end(tmp_path, bootstrap, make_topic, kinfer_bin,
                                                      schemas):
    topic, replies = make_topic(partitions=3), make_topic(partitions=3, hint="replies")
    group = "kinfer-test-" + uuid.uuid4().hex[:8]
    w = Worker(kinfer_bin, eos_config(tmp_path / "w.conf", bootstrap, topic, group, "eos-a"),
               tmp_path / "w.log")
    try:
        w.wait_assigned()
        ids = [f"e{i}" for i in range(1500)]
        _send(bootstrap, topic, schemas["request"], ids, replies, 3)
        counts = read_committed(bootstrap, replies, schemas["response"], ids)
        assert set(counts) == set(ids), f"lost {len(set(ids) - set(counts))}\n{w.text()[-2000:]}"
        assert max(counts.values()) == 1
        _wait_committed(bootstrap, group, topic, 3, w)
        assert "event=txn.ready" in w.text()
    finally:
        assert w.stop() == 0, w.text()[-3000:]


def test_eos_dead_letter_commits_in_the_transaction(tmp_path, bootstrap, make_topic, kinfer_bin,
                                                    schemas):
    topic = make_topic(partitions=1)
    dlq = make_topic(partitions=1, hint="dlq")
    group = "kinfer-test-" + uuid.uuid4().hex[:8]
    cfg = eos_config(tmp_path / "w.conf", bootstrap, topic, group, "eos-d",
                     extra_kafka=f'dlq_topic_pattern = "{dlq}";')
    w = Worker(kinfer_bin, cfg, tmp_path / "w.log")
    try:
        w.wait_assigned()
        produce_all(producer(bootstrap), topic, [(b"k", b"\xff\xfe not avro", [], 0)])
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": "kinfer-test-" + uuid.uuid4().hex,
                      "auto.offset.reset": "earliest", "isolation.level": "read_committed"})
        c.subscribe([dlq])
        got = []
        deadline = time.monotonic() + 30
        while not got and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is not None and not m.error():
                got.append(m)
        c.close()
        assert len(got) == 1 and got[0].value() == b"\xff\xfe not avro", w.text()[-2000:]
        _wait_committed(bootstrap, group, topic, 1, w)
    finally:
        assert w.stop() == 0


def test_eos_kill9_and_restart_no_duplicates(tmp_path, bootstrap, make_topic, kinfer_bin, schemas):
    topic, replies = make_topic(partitions=3), make_topic(partitions=3, hint="replies")
    group = "kinfer-test-" + uuid.uuid4().hex[:8]
    cfg = eos_config(tmp_path / "w.conf", bootstrap, topic, group, "eos-k")
    w = Worker(kinfer_bin, cfg, tmp_path / "w1.log")
    w.wait_assigned()
    ids = [f"k{i}" for i in range(3000)]
    _send(bootstrap, topic, schemas["request"], ids[:1500], replies, 3)
    time.sleep(0.5)  # mid-stream: some transactions committed, one open
    w.stop(signal.SIGKILL)
    _send(bootstrap, topic, schemas["request"], ids[1500:], replies, 3)
    w2 = Worker(kinfer_bin, cfg, tmp_path / "w2.log")  # same worker.id: fences the dead one's txn
    try:
        w2.wait_assigned()
        counts = read_committed(bootstrap, replies, schemas["response"], ids)
        assert set(counts) == set(ids), f"lost {len(set(ids) - set(counts))}\n{w2.text()[-2000:]}"
        dups = {k: v for k, v in counts.items() if v > 1}
        assert not dups, f"{len(dups)} duplicates, e.g. {list(dups.items())[:5]}"
    finally:
        assert w2.stop() == 0, w2.text()[-3000:]


def test_eos_zombie_with_same_worker_id_is_fenced(tmp_path, bootstrap, make_topic, kinfer_bin,
                                                  schemas):
    topic, replies = make_topic(partitions=4), make_topic(partitions=3, hint="replies")
    group = "kinfer-test-" + uuid.uuid4().hex[:8]
    cfg = eos_config(tmp_path / "w.conf", bootstrap, topic, group, "eos-z")
    old = Worker(kinfer_bin, cfg, tmp_path / "old.log")
    old.wait_assigned()
    ids = [f"z{i}" for i in range(2000)]
    _send(bootstrap, topic, schemas["request"], ids[:1000], replies, 4)
    new = Worker(kinfer_bin, cfg, tmp_path / "new.log")
    try:
        new.wait_assigned()
        _send(bootstrap, topic, schemas["request"], ids[1000:], replies, 4)
        # The older producer is fenced at its next transactional call: it
        # must stop with an error, not keep answering.
        deadline = time.monotonic() + 60
        while old.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert old.proc.returncode not in (None, 0), old.text()[-3000:]
        assert "fatal" in old.text().lower()
        # The fatal error is named in one line (README, "Operations").
        assert "event=kafka.fatal" in old.text() and "code=_FENCED" in old.text(), old.text()[-3000:]
        counts = read_committed(bootstrap, replies, schemas["response"], ids)
        assert set(counts) == set(ids), f"lost {len(set(ids) - set(counts))}\n{new.text()[-2000:]}"
        assert max(counts.values()) == 1, [k for k, v in counts.items() if v > 1][:5]
    finally:
        old.stop(signal.SIGKILL)
        assert new.stop() == 0, new.text()[-3000:]
