"""Bad input on the real broker: each class goes to the dead-letter topic with
its original key, value and headers plus the kinfer-* reason headers, and the
offset still advances. Also: SIGTERM under load, restart, none lost."""

import signal
import struct
import time
import uuid

import numpy as np
import pytest

from test_worker_pipeline import worker_env  # noqa: F401  (fixture)
from worker_helpers import (
    NumpyMLP, Worker, committed, consume, consume_ids, decode, encode, end_offsets, headers_dict, produce_all,
    producer, request, write_config)


def test_each_bad_input_class_is_dead_lettered(worker_env, bootstrap, schemas):  # noqa: F811
    w = worker_env["start"](extra_kafka="max_message_bytes = 2048;")
    req = schemas["request"]
    width = NumpyMLP().width
    good = encode(req, request("fine", np.zeros(width, dtype=np.float32)))
    wrong_fp = b"\xc3\x01" + struct.pack("<Q", 0x1234567890ABCDEF) + good
    cases = {
        b"garbage": (b"\xff\xfe\xfd not avro at all", "undecodable"),
        b"truncated": (good[: len(good) // 2], "undecodable"),
        b"wrong-fingerprint": (wrong_fp, "fingerprint"),
        b"empty": (b"", "undecodable"),
        b"too-large": (encode(req, request("big", np.zeros(1000, dtype=np.float32))),
                       "exceeds kafka.max_message_bytes = 2048"),
        b"bad-reply-to": (encode(req, request("bad-rt", np.zeros(width, dtype=np.float32),
                                              reply_to="no spaces allowed")), "reply_to"),
        b"bad-reply-header": (good, "kinfer-reply-to"),
    }
    items = []
    for key, (value, _) in cases.items():
        hdrs = [("traceparent", b"tp-" + key)]
        if key == b"bad-reply-header":
            hdrs.append(("kinfer-reply-to", b"a/b"))
        items.append((key, value, hdrs, 0))
    produce_all(producer(bootstrap), worker_env["topic"], items)

    dlq = consume(bootstrap, worker_env["dlq"], len(cases), timeout=30)
    assert len(dlq) == len(cases), w.text()[-3000:]
    # The originals, to compare offsets and bytes against.
    originals = {m.offset(): m for m in consume(bootstrap, worker_env["topic"], len(cases))}
    for m in dlq:
        value, reason = cases[m.key()]
        assert (m.value() or b"") == value, m.key()
        h = headers_dict(m)
        assert reason in h["kinfer-error"].decode(), (m.key(), h["kinfer-error"])
        assert h["kinfer-source-topic"].decode() == worker_env["topic"]
        assert h["kinfer-source-partition"] == b"0"
        off = int(h["kinfer-source-offset"])
        assert originals[off].key() == m.key()
        assert h["traceparent"] == b"tp-" + m.key()
    # Nothing answered on the reply topic, and the offsets moved past all of it.
    assert consume(bootstrap, worker_env["replies"], 1, timeout=3) == []
    ends = end_offsets(bootstrap, worker_env["topic"], 3)
    deadline = time.monotonic() + 15
    while committed(bootstrap, worker_env["group"], worker_env["topic"], 3).get(0) != ends[0]:
        assert time.monotonic() < deadline, w.text()[-2000:]
        time.sleep(0.3)
    # The worker is still alive and answering.
    assert w.proc.poll() is None


def test_sigterm_mid_load_then_restart_loses_nothing(tmp_path, bootstrap, make_topic,
                                                     kinfer_bin, schemas):
    topic = make_topic(partitions=3)
    replies = make_topic(partitions=3, hint="replies")
    group = "kinfer-test-" + uuid.uuid4().hex[:8]
    n = 3000
    width = NumpyMLP().width
    rng = np.random.default_rng(3)
    req = schemas["request"]
    produce_all(producer(bootstrap), topic,
                [(None, encode(req, request(f"s{i}", rng.normal(size=width).astype(np.float32),
                                            reply_to=replies)), [], i % 3) for i in range(n)])
    # A small in-flight window so that the stop really lands mid-load.
    cfg = write_config(tmp_path / "w.conf", bootstrap, topic, group)
    w1 = Worker(kinfer_bin, cfg, tmp_path / "w1.log", ["--max-in-flight", "64"])
    w1.wait_assigned()
    seen = consume(bootstrap, replies, 200, timeout=30, stop=lambda out: len(out) >= 200)
    assert len(seen) >= 200
    t0 = time.monotonic()
    rc = w1.stop(signal.SIGTERM, timeout=30)
    assert rc == 0, w1.text()[-3000:]
    assert time.monotonic() - t0 < 15
    log1 = w1.text()
    assert "event=worker.drained" in log1 and "event=worker.stopped" in log1
    first = committed(bootstrap, group, topic, 3)
    assert sum(max(v, 0) for v in first.values()) < n, "stop came too late to be mid-load"

    w2 = Worker(kinfer_bin, cfg, tmp_path / "w2.log")
    w2.wait_assigned()
    ids = lambda msgs: [decode(schemas["response"], m.value())[0]["id"] for m in msgs]  # noqa
    msgs = consume_ids(bootstrap, replies, schemas["response"], [f"s{i}" for i in range(n)],
                       timeout=90)
    got = ids(msgs)
    assert set(got) == {f"s{i}" for i in range(n)}, f"lost {n - len(set(got))}"
    dups = len(got) - len(set(got))
    # Every reply the first worker acknowledged was committed, so at most
    # the unacknowledged window may repeat.
    assert dups <= 64 + 3 * 16, dups
    ends = end_offsets(bootstrap, topic, 3)
    deadline = time.monotonic() + 15
    while committed(bootstrap, group, topic, 3) != ends:
        assert time.monotonic() < deadline, w2.text()[-2000:]
        time.sleep(0.3)
    assert w2.stop() == 0


def test_failed_reply_delivery_holds_the_commit_point(worker_env, bootstrap, schemas,  # noqa: F811
                                                      make_topic):
    """A reply the broker refuses (larger than its topic's max.message.bytes) is
    logged loudly and counted, and the partition's committed offset stays at
    that request, even after later requests on the partition are answered."""
    tiny = make_topic(partitions=1, config={"max.message.bytes": "64"}, hint="tiny")
    w = worker_env["start"]()
    req = schemas["request"]
    x = np.zeros(NumpyMLP().width, dtype=np.float32)
    produce_all(producer(bootstrap), worker_env["topic"],
                [(b"a", encode(req, request("before", x)), [], 0),
                 (b"b", encode(req, request("refused", x, reply_to=tiny)), [], 0),
                 (b"c", encode(req, request("after", x)), [], 0)])
    got = {decode(schemas["response"], m.value())[0]["id"]
           for m in consume(bootstrap, worker_env["replies"], 2, timeout=30)}
    assert got == {"before", "after"}
    deadline = time.monotonic() + 30
    while "event=worker.delivery_failed" not in w.text():
        assert time.monotonic() < deadline, w.text()[-3000:]
        time.sleep(0.2)
    assert "offset=1 " in w.text().split("event=worker.delivery_failed", 1)[1].splitlines()[0]
    time.sleep(1.5)  # several commit intervals
    assert committed(bootstrap, worker_env["group"], worker_env["topic"], 3)[0] == 1
