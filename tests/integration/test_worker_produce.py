"""The produce path (worker/worker_produce.c) on the real broker.

- A dead letter larger than the producer may send keeps its key and
  headers, loses its value, and says so in kinfer-error: the one fallback,
  the same in both delivery modes.
- A stalled broker (SIGSTOP for several seconds under load, then SIGCONT):
  engine threads never wait for Kafka. While the broker is frozen they keep
  computing and serving expiries up to the in-flight window, finished
  records wait in the bounded hand-off (librdkafka's own queue is kept tiny
  here so that it fills), input is paused, memory stays flat; once the
  broker is back every request has exactly one reply (at-least-once: none
  beyond the window), the expiry replies among them, offsets reach the end,
  and the worker recovers by itself. The proof is read from the worker's
  /metrics (engine completions and the longest completion callback) and
  from the replies.

Clients: confluent-kafka + fastavro; the heavy model is written with numpy.
"""

import atexit
import collections
import os
import re
import signal
import socket
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest
from confluent_kafka import Consumer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "chaos"))
from chaos import HEAVY_DIMS, make_heavy_mlp  # noqa: E402
from worker_helpers import (MODEL_NAME, MODEL_PATH, Worker, committed, decode, encode,  # noqa: E402
                            end_offsets, headers_dict, produce_all, producer, request)

MODES = ("at-least-once", "exactly-once")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(path, *, bootstrap, topic, group, mode, worker_id, model_name, model_path,
           http_port=None, extra_kafka="", producer_props=(), model_extra=""):
    props = ", ".join(f'"{p}"' for p in ("transaction.timeout.ms=60000", *producer_props))
    listen = f"127.0.0.1:{http_port}" if http_port else ""
    path.write_text(f"""
kafka = {{
    brokers = "{bootstrap}";
    group = "{group}";
    topics = ["{topic}"];
    commit_interval_ms = 200;
    consumer_properties = ["session.timeout.ms=45000", "heartbeat.interval.ms=3000"];
    producer_properties = [{props}];
    {extra_kafka}
}};
delivery = "{mode}";
worker = {{ id = "{worker_id}"; log_level = "info"; drain_timeout_ms = 10000; cpu_threads = 1; }};
http = {{ listen = "{listen}"; }};
models = (
    {{ name = "{model_name}"; kind = "mlp"; path = "{model_path}"; devices = ["cpu"];
       {model_extra} }}
);
""")
    return path


def read_replies(bootstrap, topic, schema, want_ids, read_committed, timeout=120.0, settle=2.0):
    """id -> [status, ...] until every wanted id is seen, then `settle` s more."""
    want = set(want_ids)
    got = collections.defaultdict(list)
    conf = {"bootstrap.servers": bootstrap, "group.id": "kinfer-test-" + uuid.uuid4().hex,
            "auto.offset.reset": "earliest", "enable.auto.commit": False}
    if read_committed:
        conf["isolation.level"] = "read_committed"
    c = Consumer(conf)
    c.subscribe([topic])
    deadline, done_at = time.monotonic() + timeout, None
    try:
        while time.monotonic() < deadline:
            if done_at is None and want <= set(got):
                done_at = time.monotonic()
            if done_at is not None and time.monotonic() - done_at > settle:
                break
            for m in c.consume(500, 0.2):
                if not m.error():
                    r = decode(schema, m.value())[0]
                    got[r["id"]].append(r["status"])
    finally:
        c.close()
    return got


# ---- the too-large fallback ----------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_dead_letter_too_large_to_forward_keeps_key_and_says_why(mode, tmp_path, bootstrap,
                                                                  make_topic, kinfer_bin):
    topic, dlq = make_topic(partitions=1), make_topic(partitions=1, hint="dlq")
    group = "kinfer-test-" + uuid.uuid4().hex[:8]
    # The request is over kafka.max_message_bytes (a dead letter) and over
    # the producer's message.max.bytes (cannot be forwarded whole).
    cfg = config(tmp_path / "w.conf", bootstrap=bootstrap, topic=topic, group=group, mode=mode,
                 worker_id=f"big-{uuid.uuid4().hex[:6]}", model_name=MODEL_NAME,
                 model_path=MODEL_PATH, producer_props=("message.max.bytes=1000",),
                 extra_kafka=f'max_message_bytes = 1024; dlq_topic_pattern = "{dlq}";')
    w = Worker(kinfer_bin, cfg, tmp_path / "w.log")
    try:
        w.wait_assigned()
        big = os.urandom(5000)
        produce_all(producer(bootstrap), topic, [(b"the-key", big, [("traceparent", b"tp-1")], 0)])
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": "kinfer-test-" + uuid.uuid4().hex,
                      "auto.offset.reset": "earliest", "isolation.level": "read_committed"})
        c.subscribe([dlq])
        got, deadline = [], time.monotonic() + 30
        while not got and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is not None and not m.error():
                got.append(m)
        c.close()
        assert len(got) == 1, w.text()[-3000:]
        m = got[0]
        assert m.key() == b"the-key"
        assert not m.value()
        h = headers_dict(m)
        assert h["kinfer-error"].decode() == (
            "message of 5000 bytes exceeds kafka.max_message_bytes = 1024; "
            "value of 5000 bytes dropped: too large to forward"), h
        assert h["traceparent"] == b"tp-1"
        assert h["kinfer-source-topic"].decode() == topic
        assert h["kinfer-source-offset"] == b"0"
        assert "event=worker.dead_letter_truncated" in w.text()
        # Its offset finished like any dead letter's.
        deadline = time.monotonic() + 30
        while committed(bootstrap, group, topic, 1).get(0) != 1:
            assert time.monotonic() < deadline, w.text()[-3000:]
            time.sleep(0.3)
    finally:
        assert w.stop() == 0, w.text()[-3000:]


# ---- the broker stall ------------------------------------------------------------------

STALL_S = 10.0
COUNT = 4000  # requests, all consumed before the stall
WINDOW = 2 * COUNT  # the in-flight window: above COUNT, so a pause comes from the blocked producer
DEADLINE_S = 6.0  # one absolute deadline for every request, this long after sending starts
PARTITIONS = 4
PRODUCER_QUEUE = 64  # librdkafka's queue.buffering.max.messages: it fills during the stall

_FROZEN = []


@atexit.register
def _thaw():
    """Never leave the broker stopped, whatever happened to the test."""
    for pid in _FROZEN:
        try:
            os.kill(pid, signal.SIGCONT)
        except OSError:
            pass


def broker_pid(kafka_ctl):
    r = kafka_ctl("status")
    m = re.search(r"\(pid (\d+),", r.stdout)
    assert r.returncode == 0 and m, f"kafka.sh status: {r.stdout}{r.stderr}"
    pid = int(m.group(1))
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    assert b"kafka.Kafka" in cmdline, cmdline  # never signal anything else
    return pid


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode()


def metric(text, name, **labels):
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    series = f"{name}{{{want}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    raise AssertionError(f"no series {series} in /metrics")


def completions(text, status=None):
    statuses = [status] if status else ["OK", "INVALID_REQUEST", "MODEL_NOT_FOUND",
                                        "DEADLINE_EXCEEDED", "OVERLOADED", "INTERNAL_ERROR"]
    return sum(metric(text, "kinfer_engine_completions_total", status=s) for s in statuses)


def delivered(text, model):
    return sum(metric(text, "kinfer_requests_total", model=model, status=s)
               for s in ("OK", "DEADLINE_EXCEEDED"))


def rss_mb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@pytest.mark.parametrize("mode", MODES)
def test_broker_stall_engine_keeps_serving_and_worker_recovers(mode, tmp_path, bootstrap,
                                                                make_topic, kinfer_bin, kafka_ctl,
                                                                schemas):
    topic = make_topic(partitions=PARTITIONS)
    replies = make_topic(partitions=PARTITIONS, hint="replies")
    group = "kinfer-test-" + uuid.uuid4().hex[:8]
    # A model slow enough (one request per batch over ~84 MB of weights)
    # that the engine is still busy when the broker freezes, and that some
    # requests are still queued at their deadline, during the stall.
    model = make_heavy_mlp(tmp_path / "heavy.safetensors")
    port = free_port()
    cfg = config(tmp_path / "w.conf", bootstrap=bootstrap, topic=topic, group=group, mode=mode,
                 worker_id=f"stall-{uuid.uuid4().hex[:6]}", model_name="heavy-mlp",
                 model_path=model, http_port=port,
                 producer_props=(f"queue.buffering.max.messages={PRODUCER_QUEUE}",),
                 model_extra="max_batch_size = 1; max_queue_delay_us = 500; max_queue = 8192;")
    w = Worker(kinfer_bin, cfg, tmp_path / "w.log", args=("--max-in-flight", str(WINDOW)))
    pid = broker_pid(kafka_ctl)
    rss = []
    stop_sampling = threading.Event()

    def sample():
        while not stop_sampling.is_set() and w.proc.poll() is None:
            rss.append(rss_mb(w.proc.pid))
            stop_sampling.wait(0.2)

    try:
        w.wait_assigned()
        x = np.full(HEAVY_DIMS[0], 0.25, np.float32)
        t_send = time.time()
        deadline_ms = int((t_send + DEADLINE_S) * 1000)
        ids = [f"s{i}" for i in range(COUNT)]
        produce_all(producer(bootstrap), topic,
                    [(None, encode(schemas["request"],
                                   request(i, x, model="heavy-mlp", reply_to=replies,
                                           deadline_ms=deadline_ms)), [], n % PARTITIONS)
                     for n, i in enumerate(ids)])
        # Every request consumed (the window holds them all), then freeze.
        until = time.monotonic() + 60
        while metric(scrape(port), "kinfer_consumed_total") < COUNT:
            assert time.monotonic() < until and w.proc.poll() is None, w.text()[-3000:]
            time.sleep(0.05)
        rss_base = rss_mb(w.proc.pid)
        threading.Thread(target=sample, daemon=True).start()
        m1 = scrape(port)
        _FROZEN.append(pid)
        os.kill(pid, signal.SIGSTOP)
        t_stop = time.time()
        try:
            assert t_stop < t_send + DEADLINE_S - 1, (
                f"setup too slow: the stall began {t_stop - t_send:.1f}s after sending, the "
                f"deadline is at {DEADLINE_S}s")
            time.sleep(STALL_S - 0.5)
            m2 = scrape(port)  # the worker's own HTTP thread answers; the broker is still frozen
        finally:
            os.kill(pid, signal.SIGCONT)
            _FROZEN.remove(pid)
        t_cont = time.time()

        got = read_replies(bootstrap, replies, schemas["response"], ids,
                           read_committed=mode == "exactly-once")
        t_all = time.time()
        ends = end_offsets(bootstrap, topic, PARTITIONS)
        until = time.monotonic() + 60
        while committed(bootstrap, group, topic, PARTITIONS) != ends:
            assert time.monotonic() < until, w.text()[-3000:]
            time.sleep(0.3)
        m3 = scrape(port)
        stop_sampling.set()
        assert w.proc.poll() is None, w.text()[-3000:]  # recovered by itself

        lost = [i for i in ids if i not in got]
        dupes = sum(len(v) - 1 for v in got.values())
        statuses = collections.Counter(v[0] for v in got.values())
        numbers = {
            "mode": mode, "stall_s": STALL_S,
            "computed_in_stall": int(completions(m2, "OK") - completions(m1, "OK")),
            "expired_in_stall": int(completions(m2, "DEADLINE_EXCEEDED")
                                    - completions(m1, "DEADLINE_EXCEEDED")),
            "delivered_in_stall": int(delivered(m2, "heavy-mlp") - delivered(m1, "heavy-mlp")),
            "max_callback_ms": round(1000 * metric(m3, "kinfer_engine_callback_max_seconds"), 2),
            "waiting_at_stall_end": int(metric(m2, "kinfer_produce_waiting_records")),
            "waiting_peak": int(metric(m3, "kinfer_produce_waiting_peak_records")),
            "queue_full": int(metric(m3, "kinfer_produce_queue_full_total")),
            "rss_base_mb": round(rss_base), "rss_peak_mb": round(max(rss or [rss_base])),
            "replies_ok": statuses.get("OK", 0),
            "replies_expired": statuses.get("DEADLINE_EXCEEDED", 0),
            "lost": len(lost), "duplicates": dupes,
            "all_replies_s_after_cont": round(t_all - t_cont, 1),
        }
        print("\nbroker stall: " + " ".join(f"{k}={v}" for k, v in numbers.items()))
        ctx = f"{numbers}\n{w.text()[-3000:]}"

        # Nothing lost; duplicates within the contract.
        assert not lost, f"lost {lost[:5]}... {ctx}"
        if mode == "exactly-once":
            assert dupes == 0, ctx
        else:
            assert dupes <= COUNT, ctx
        assert set(statuses) <= {"OK", "DEADLINE_EXCEEDED"}, ctx
        # The engine kept computing and expiring while the broker was frozen,
        # and the expiry replies came out once it was back.
        assert numbers["computed_in_stall"] > 0, ctx
        assert numbers["expired_in_stall"] > 0, ctx
        assert numbers["replies_expired"] > 0, ctx
        # No engine thread waited for the broker (the old path slept in the
        # callback until librdkafka had room: about the whole stall).
        assert numbers["max_callback_ms"] < 1000 * STALL_S / 4, ctx
        # Records waited in the hand-off, never more than the window.
        assert numbers["queue_full"] > 0 and numbers["waiting_at_stall_end"] > 0, ctx
        assert numbers["waiting_peak"] <= min(COUNT, WINDOW + 32), ctx
        assert metric(m3, "kinfer_produce_waiting_records") == 0, ctx
        # Memory stayed flat: requests and replies of the window are ~4 KB each.
        assert numbers["rss_peak_mb"] - numbers["rss_base_mb"] < 100, ctx
        if mode == "at-least-once":
            # Input was paused because the producer was blocked.
            assert re.search(r"event=worker\.pause .*produce_blocked=1", w.text()), ctx
    finally:
        stop_sampling.set()
        rc = w.stop()
    assert rc == 0, w.text()[-3000:]
