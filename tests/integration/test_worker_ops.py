"""Operations: `kinfer bench` end to end through the real broker, the
/metrics, /healthz and /readyz endpoint, and a second worker joining and
leaving the group under load with nothing lost."""

import json
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import numpy as np

from worker_helpers import (
    MODEL_NAME, NumpyMLP, Worker, committed, consume, consume_ids, decode, encode, end_offsets, produce_all,
    producer, request, write_config)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_bench_and_metrics_endpoint(tmp_path, bootstrap, make_topic, kinfer_bin):
    topic = make_topic(partitions=3)
    make_topic(partitions=3, hint="replies")  # unused; bench uses <topic>.replies below
    replies = topic + ".replies"
    from conftest import create_topics, delete_topics
    from confluent_kafka.admin import AdminClient
    admin = AdminClient({"bootstrap.servers": bootstrap})
    create_topics(admin, [replies], partitions=3)
    port = _free_port()
    cfg = write_config(tmp_path / "w.conf", bootstrap, topic, "kinfer-test-" + uuid.uuid4().hex)
    cfg.write_text(cfg.read_text().replace('listen = "";', f'listen = "127.0.0.1:{port}";'))
    w = Worker(kinfer_bin, cfg, tmp_path / "w.log")
    try:
        w.wait_assigned()
        assert _get(f"http://127.0.0.1:{port}/healthz")[0] == 200
        assert _get(f"http://127.0.0.1:{port}/readyz") == (200, "ok\n")
        assert _get(f"http://127.0.0.1:{port}/nope")[0] == 404
        width = NumpyMLP().width
        r = subprocess.run([str(kinfer_bin), "bench", "-b", bootstrap, "-t", topic, "-m",
                            MODEL_NAME, "--shape", f"1,{width}", "--count", "3000",
                            "--concurrency", "300", "--warmup", "50", "--json", "--quiet"],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr + w.text()[-2000:]
        res = json.loads(r.stdout)
        assert res["sent"] == 3000 and res["replies"] == 3000
        assert res["lost"] == 0 and res["duplicates"] == 0
        assert res["status"]["OK"] == 3000
        assert res["throughput_rps"] > 0
        assert 0 < res["latency_ms"]["p50"] <= res["latency_ms"]["p99"] <= res["latency_ms"]["max"]
        # An unknown model: every reply is an error, and bench says so (exit 0: none lost).
        r = subprocess.run([str(kinfer_bin), "bench", "-b", bootstrap, "-t", topic, "-m",
                            "no-such-model", "--count", "50", "--warmup", "0", "--json",
                            "--quiet"], capture_output=True, text=True, timeout=60)
        assert json.loads(r.stdout)["status"]["MODEL_NOT_FOUND"] == 50

        code, text = _get(f"http://127.0.0.1:{port}/metrics")
        assert code == 200
        lines = dict(l.rsplit(" ", 1) for l in text.splitlines() if l and not l.startswith("#"))
        ok = float(lines[f'kinfer_requests_total{{model="{MODEL_NAME}",status="OK"}}'])
        assert ok >= 3050  # bench + its warm-up
        assert float(lines['kinfer_requests_total{model="_unknown",status="MODEL_NOT_FOUND"}']) == 50
        assert float(lines[f'kinfer_batch_size_count{{model="{MODEL_NAME}"}}']) == ok
        assert float(lines["kinfer_assigned_partitions"]) == 3
        assert float(lines["kinfer_in_flight_requests"]) == 0
        assert "kinfer_queue_seconds_bucket" in text and "kinfer_compute_seconds_sum" in text
    finally:
        assert w.stop() == 0
        delete_topics(admin, [replies])


def test_second_worker_joins_and_leaves_under_load(tmp_path, bootstrap, make_topic, kinfer_bin,
                                                   schemas):
    topic = make_topic(partitions=6)
    replies = make_topic(partitions=3, hint="replies")
    group = "kinfer-test-" + uuid.uuid4().hex[:8]
    cfg = write_config(tmp_path / "w.conf", bootstrap, topic, group)
    width = NumpyMLP().width
    req = schemas["request"]
    n = 4000
    w1 = Worker(kinfer_bin, cfg, tmp_path / "w1.log", ["--max-in-flight", "128"])
    w1.wait_assigned()
    p = producer(bootstrap)
    produce_all(p, topic, [(None, encode(req, request(f"j{i}", np.full(width, i % 7, np.float32),
                                                       reply_to=replies)), [], i % 6)
                           for i in range(n // 2)])
    w2 = Worker(kinfer_bin, cfg, tmp_path / "w2.log", ["--max-in-flight", "128"])
    w2.wait_assigned()
    produce_all(p, topic, [(None, encode(req, request(f"j{i}", np.full(width, i % 7, np.float32),
                                                       reply_to=replies)), [], i % 6)
                           for i in range(n // 2, n)])
    time.sleep(1)
    assert w1.stop(signal.SIGTERM) == 0, w1.text()[-3000:]  # leaves: w2 takes everything
    ids = lambda msgs: {decode(schemas["response"], m.value())[0]["id"] for m in msgs}  # noqa
    msgs = consume_ids(bootstrap, replies, schemas["response"], [f"j{i}" for i in range(n)],
                       timeout=90)
    got = ids(msgs)
    assert got == {f"j{i}" for i in range(n)}, f"lost {n - len(got)}"
    assert "event=worker.revoked" in w1.text() and "event=worker.assigned" in w2.text()
    ends = end_offsets(bootstrap, topic, 6)
    deadline = time.monotonic() + 20
    while committed(bootstrap, group, topic, 6) != ends:
        assert time.monotonic() < deadline, w2.text()[-3000:]
        time.sleep(0.3)
    assert w2.stop() == 0


def test_topic_pattern_subscription_serves_every_match(tmp_path, bootstrap, admin, kinfer_bin,
                                                       schemas):
    from conftest import create_topics, delete_topics
    tag = uuid.uuid4().hex[:8]
    reqs = [f"kinfer-test-pat-{tag}-a", f"kinfer-test-pat-{tag}-b"]
    replies = f"kinfer-test-patreplies-{tag}"
    create_topics(admin, reqs + [replies], partitions=2)
    try:
        cfg = write_config(tmp_path / "w.conf", bootstrap, None, "kinfer-test-" + tag,
                           topic_pattern=f"^kinfer-test-pat-{tag}-.*")
        w = Worker(kinfer_bin, cfg, tmp_path / "w.log")
        try:
            w.wait_assigned()
            x = np.zeros(NumpyMLP().width, dtype=np.float32)
            p = producer(bootstrap)
            for t in reqs:
                produce_all(p, t, [(None, encode(schemas["request"],
                                                 request(f"{t}-{i}", x, reply_to=replies)), [],
                                    None) for i in range(5)])
            msgs = consume_ids(bootstrap, replies, schemas["response"],
                               [f"{t}-{i}" for t in reqs for i in range(5)], timeout=60)
            srcs = {decode(schemas["response"], m.value())[0]["source"]["topic"] for m in msgs}
            assert srcs == set(reqs), w.text()[-2000:]
        finally:
            assert w.stop() == 0
    finally:
        delete_topics(admin, reqs + [replies])
