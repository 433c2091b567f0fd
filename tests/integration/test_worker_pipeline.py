"""kinfer worker against the real broker: replies checked against numpy,
framing, routing, headers, keys, error replies, and committed offsets."""

import uuid

import numpy as np
import pytest

from worker_helpers import (
    MODEL_NAME, NumpyMLP, Worker, committed, consume, consume_ids, decode, encode, end_offsets, headers_dict,
    output_array, produce_all, producer, request, write_config)


@pytest.fixture
def worker_env(tmp_path, bootstrap, make_topic, kinfer_bin):
    """A request topic (3 partitions), its .replies/.dlq topics and a started worker factory."""
    topic = make_topic(partitions=3)
    make_topic_name = {"replies": topic + ".replies", "dlq": topic + ".dlq"}
    from conftest import create_topics, delete_topics
    from confluent_kafka.admin import AdminClient
    admin = AdminClient({"bootstrap.servers": bootstrap})
    create_topics(admin, list(make_topic_name.values()), partitions=3)
    group = "kinfer-test-" + uuid.uuid4().hex[:8]
    workers = []

    def start(extra_kafka="", extra_worker="", extra_top="", model_extra="", args=()):
        cfg = write_config(tmp_path / f"w{len(workers)}.conf", bootstrap, topic, group,
                           extra_kafka, extra_worker, extra_top, model_extra)
        w = Worker(kinfer_bin, cfg, tmp_path / f"w{len(workers)}.log", args)
        workers.append(w)
        w.wait_assigned()
        return w

    env = {"topic": topic, "group": group, "start": start, **make_topic_name}
    yield env
    codes = [w.stop(timeout=60) for w in workers]
    delete_topics(admin, list(make_topic_name.values()))
    # A clean stop exits 0 (under ASan a leak would make it non-zero).
    assert codes == [0] * len(codes), [w.text()[-3000:] for w in workers]


def test_replies_match_numpy_in_both_framings(worker_env, bootstrap, schemas):
    mlp = NumpyMLP()
    rng = np.random.default_rng(7)
    w = worker_env["start"]()
    n = 120
    sent = {}
    items = []
    for i in range(n):
        rows = 1 + i % 3
        x = rng.normal(size=(rows, mlp.width)).astype(np.float32)
        if i % 5 == 0:
            x = x[0]  # rank-1 input: [in] -> [out]
        framing = "single-object" if i % 2 else "bare"
        rid = f"r{i}"
        key = f"k{i}".encode() if i % 4 else None
        sent[rid] = (x, framing, key)
        items.append((key, encode(schemas["request"], request(rid, x), framing),
                      [("traceparent", f"tp-{i}".encode()), ("secret", b"x")], None))
    produce_all(producer(bootstrap), worker_env["topic"], items)

    msgs = consume(bootstrap, worker_env["replies"], n, timeout=60)
    assert len(msgs) == n, w.text()[-3000:]
    seen = set()
    for m in msgs:
        resp, framing = decode(schemas["response"], m.value())
        rid = resp["id"]
        assert rid not in seen
        seen.add(rid)
        x, sent_framing, key = sent[rid]
        assert resp["status"] == "OK", resp["error"]
        assert framing == sent_framing
        got = output_array(resp)
        want = mlp.forward(x)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
        # Key = request key, else id; correlation id; listed headers only.
        assert m.key() == (key if key else rid.encode())
        h = headers_dict(m)
        assert h["kinfer-correlation-id"] == rid.encode()
        assert h["traceparent"] == f"tp-{rid[1:]}".encode()
        assert "secret" not in h
        t = resp["timing"]
        assert t["batch_size"] >= 1 and t["device"] == "cpu" and t["worker"]
        assert t["queue_us"] >= 0 and t["compute_us"] >= 0
        src = resp["source"]
        assert src["topic"] == worker_env["topic"] and 0 <= src["partition"] < 3
        assert resp["model"] == MODEL_NAME
    assert seen == set(sent)


def test_reply_routing_field_header_default(worker_env, bootstrap, schemas, make_topic):
    by_field = make_topic(partitions=1, hint="by-field")
    by_header = make_topic(partitions=1, hint="by-header")
    worker_env["start"]()
    x = np.zeros(NumpyMLP().width, dtype=np.float32)
    req = schemas["request"]
    items = [
        (b"a", encode(req, request("via-field", x, reply_to=by_field)),
         [("kinfer-reply-to", by_header.encode())], None),  # field beats header
        (b"b", encode(req, request("via-header", x)), [("kinfer-reply-to", by_header.encode())],
         None),
        (b"c", encode(req, request("via-default", x)), [], None),
    ]
    produce_all(producer(bootstrap), worker_env["topic"], items)
    for topic, rid in ((by_field, "via-field"), (by_header, "via-header"),
                       (worker_env["replies"], "via-default")):
        msgs = consume(bootstrap, topic, 1, timeout=30)
        assert [decode(schemas["response"], m.value())[0]["id"] for m in msgs] == [rid]


def test_error_replies_with_status(worker_env, bootstrap, schemas):
    import time
    worker_env["start"]()
    width = NumpyMLP().width
    req = schemas["request"]
    ok = np.zeros(width, dtype=np.float32)
    past = int(time.time() * 1000) - 60_000
    cases = {
        "unknown-model": (request("unknown-model", ok, model="no-such-model"), "MODEL_NOT_FOUND"),
        "bad-shape": (request("bad-shape", np.zeros(width + 3, dtype=np.float32)),
                      "INVALID_REQUEST"),
        "expired": (request("expired", ok, deadline_ms=past), "DEADLINE_EXCEEDED"),
        "bad-data": (dict(request("bad-data", ok),
                          inputs=[{"name": "input", "dtype": "FP32", "shape": [width],
                                   "data": b"\0" * 5, "strings": []}]), "INVALID_REQUEST"),
        "nan": (request("nan", np.full(width, np.nan, dtype=np.float32)), "INVALID_REQUEST"),
    }
    produce_all(producer(bootstrap), worker_env["topic"],
                [(k.encode(), encode(req, r), [], None) for k, (r, _) in cases.items()])
    msgs = consume(bootstrap, worker_env["replies"], len(cases), timeout=30)
    got = {}
    for m in msgs:
        resp, _ = decode(schemas["response"], m.value())
        got[resp["id"]] = resp
    assert set(got) == set(cases)
    for rid, (_, status) in cases.items():
        assert got[rid]["status"] == status, (rid, got[rid])
        assert got[rid]["error"], rid
        assert got[rid]["outputs"] == []
    assert "no-such-model" in got["unknown-model"]["error"]


def test_committed_offsets_reach_the_end(worker_env, bootstrap, schemas):
    import time
    w = worker_env["start"]()
    x = np.ones(NumpyMLP().width, dtype=np.float32)
    n = 60
    produce_all(producer(bootstrap), worker_env["topic"],
                [(None, encode(schemas["request"], request(f"c{i}", x)), [], i % 3)
                 for i in range(n)])
    assert len(consume(bootstrap, worker_env["replies"], n, timeout=60)) == n
    ends = end_offsets(bootstrap, worker_env["topic"], 3)
    deadline = time.monotonic() + 15
    while True:
        got = committed(bootstrap, worker_env["group"], worker_env["topic"], 3)
        if got == ends or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert got == ends, (got, ends, w.text()[-2000:])
    assert ends == {0: 20, 1: 20, 2: 20}


def test_overloaded_replies_when_the_hard_queue_cap_is_hit(worker_env, bootstrap, schemas):
    worker_env["start"](model_extra="max_queue = 4; queue_low_watermark = 2; max_queue_hard = 8;")
    x = np.zeros(NumpyMLP().width, dtype=np.float32)
    n = 400
    produce_all(producer(bootstrap), worker_env["topic"],
                [(None, encode(schemas["request"], request(f"o{i}", x)), [], i % 3)
                 for i in range(n)])
    msgs = consume(bootstrap, worker_env["replies"], n, timeout=60)
    by_status = {}
    for m in msgs:
        resp, _ = decode(schemas["response"], m.value())
        by_status.setdefault(resp["status"], set()).add(resp["id"])
        if resp["status"] == "OVERLOADED":
            assert resp["error"]
    assert set().union(*by_status.values()) == {f"o{i}" for i in range(n)}
    assert by_status.get("OVERLOADED"), by_status.keys()
    assert by_status.get("OK")


def test_congested_model_pauses_its_partitions_and_everything_is_answered(worker_env, bootstrap,
                                                                           schemas):
    # A slow-to-batch model with a tiny queue: the engine reports congestion,
    # the worker pauses the partitions feeding it and resumes when it drains.
    w = worker_env["start"](model_extra="max_queue = 8; queue_low_watermark = 2;",
                            args=["--max-in-flight", "100000"])
    x = np.zeros(NumpyMLP().width, dtype=np.float32)
    n = 1500
    produce_all(producer(bootstrap), worker_env["topic"],
                [(None, encode(schemas["request"], request(f"g{i}", x)), [], i % 3)
                 for i in range(n)])
    msgs = consume_ids(bootstrap, worker_env["replies"], schemas["response"],
                       [f"g{i}" for i in range(n)], timeout=60)
    statuses = {decode(schemas["response"], m.value())[0]["status"] for m in msgs}
    assert statuses == {"OK"}
    log = w.text()
    assert "event=worker.pause" in log and "congested=0x1" in log, log[-2000:]
    assert "event=worker.resume" in log
