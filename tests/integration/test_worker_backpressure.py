"""Backpressure on the real broker: partitions assigned to a worker while its
model is congested start paused, only partitions the worker paused are ever
resumed, and they resume only once the congestion has cleared; every request
is answered exactly once.

The worker serves a deliberately heavy MLP (generated here) with a tiny
queue, so a backlog keeps the model congested; the topic then gains
partitions, which the worker's subscription picks up while congested. The
proof is read from the worker's own pause/resume log events (which name the
partitions and the congestion mask the decision saw) and its /metrics.
"""

import re
import socket
import time
import urllib.request
import uuid

import numpy as np
from confluent_kafka.admin import NewPartitions

from conftest import wait_for_topics
from worker_helpers import Worker, consume_ids, decode, encode, produce_all, producer, request

MODEL = "heavy-mlp"
DIMS = (512, 4096, 4096, 512)  # about 40 MFLOP per request
BACKLOG = 4000  # on the first two partitions, before the worker starts
LATE = 100  # on each pair of partitions added while the model is congested
TOPUP = 3000  # on the first two partitions at each round: the backlog must outlast the rounds
ROUNDS = 4  # partition additions at most, until one lands while congested


def make_heavy_mlp(path, dims=DIMS, seed=11):
    """layers.{i}.weight [out, in] + bias, as scripts/make_test_models.py writes them."""
    from safetensors.numpy import save_file
    rng = np.random.default_rng(seed)
    t = {}
    for i in range(len(dims) - 1):
        b = 1.0 / np.sqrt(dims[i])
        t[f"layers.{i}.weight"] = rng.uniform(-b, b, (dims[i + 1], dims[i])).astype(np.float32)
        t[f"layers.{i}.bias"] = rng.uniform(-b, b, (dims[i + 1],)).astype(np.float32)
    save_file(t, str(path), metadata={"activation": "relu", "output_activation": "none"})
    return path


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _metrics(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return dict(l.rsplit(" ", 1) for l in text.splitlines() if l and not l.startswith("#"))


def _paused(metrics):
    """Paused partitions over every reason (kinfer_paused_partitions{reason=...})."""
    return sum(float(v) for k, v in metrics.items() if k.startswith("kinfer_paused_partitions{"))


EVENT = re.compile(r"event=worker\.(pause|resume|assigned|revoked)\b(.*)")


def _events(text):
    """[(kind, fields-dict, parts-set)] in log order."""
    out = []
    for line in text.splitlines():
        m = EVENT.search(line)
        if not m:
            continue
        fields = dict(re.findall(r"(\w+)=(\S+)", m.group(2)))
        parts = set()
        if "parts" in fields:
            assert not fields["parts"].endswith("..."), f"partition list truncated: {line}"
            parts = {(t, int(p)) for t, p in re.findall(r"([^,\[]+)\[(\d+)\]", fields["parts"])}
        out.append((m.group(1), fields, parts))
    return out


def _wait_for(pred, what, worker, timeout):
    deadline = time.monotonic() + timeout
    while not pred():
        if worker.proc.poll() is not None:
            raise AssertionError(f"worker exited {worker.proc.returncode}:\n{worker.text()[-3000:]}")
        assert time.monotonic() < deadline, f"{what} not seen in {timeout}s:\n{worker.text()[-3000:]}"
        time.sleep(0.05)


def test_partitions_assigned_while_congested_start_paused(tmp_path, bootstrap, make_topic, admin,
                                                          kinfer_bin, schemas):
    topic = make_topic(partitions=2, hint="bp")  # short: the logs list its partitions
    replies = make_topic(partitions=3, hint="replies")
    group = "kinfer-test-bp-" + uuid.uuid4().hex[:8]
    model_path = make_heavy_mlp(tmp_path / "heavy.safetensors")
    port = _free_port()
    cfg = tmp_path / "w.conf"
    cfg.write_text(f"""
kafka = {{
    brokers = "{bootstrap}";
    group = "{group}";
    topics = ["{topic}"];
    commit_interval_ms = 200;
    assignment_strategy = "cooperative-sticky";
    consumer_properties = ["session.timeout.ms=6000", "topic.metadata.refresh.interval.ms=500",
                           "fetch.wait.max.ms=10"];
}};
worker = {{ log_level = "info"; drain_timeout_ms = 10000; cpu_threads = 1; }};
http = {{ listen = "127.0.0.1:{port}"; }};
models = (
    {{ name = "{MODEL}"; kind = "mlp"; path = "{model_path}"; devices = ["cpu"];
       max_batch_size = 8; max_queue_delay_us = 500; max_queue = 1024; queue_low_watermark = 0; }}
);
""")
    req = schemas["request"]
    p = producer(bootstrap)
    x = lambda i: np.full(DIMS[0], (i % 5) * 0.1, np.float32)  # noqa: E731
    produce_all(p, topic, [(None, encode(req, request(f"b{i}", x(i), model=MODEL,
                                                       reply_to=replies)), [], i % 2)
                           for i in range(BACKLOG)])
    # In-flight limit far above the model's queue: only the model's
    # congestion pauses partitions in this test.
    w = Worker(kinfer_bin, cfg, tmp_path / "w.log", ["--max-in-flight", "100000"])
    try:
        w.wait_assigned()
        congested_pause = lambda: any(  # noqa: E731
            k == "pause" and f.get("congested", "0") not in ("0", "0x0")
            for k, f, _ in _events(w.text()))
        _wait_for(congested_pause, "a pause for congestion", w, 30)

        # The topic gains two partitions while the backlog keeps the model
        # congested; the subscription picks them up at its next metadata
        # refresh and the group hands them to this worker. The model is
        # congested most, not all, of the time: a congestion lasts while the
        # 1024-deep queue drains to empty (seconds), the refill after a
        # resume takes up to about 0.5 s (librdkafka 2.0.2 restarts the fetch
        # of a resumed partition on a 1 s cadence). Each pair is added just
        # after a fresh pause, and another pair (ROUNDS at most) until an
        # assignment lands while the model is congested.
        new, late = set(), []
        for r in range(ROUNDS):
            nparts = 4 + 2 * r
            pauses = sum(k == "pause" for k, _, _ in _events(w.text()))
            # The backlog drains in seconds (faster on newer librdkafka and
            # Kafka, which pick up new partitions sooner too): top it up so
            # the model is congested again whatever the earlier rounds took.
            if r:
                ids = [f"t{r}_{i}" for i in range(TOPUP)]
                late += ids
                produce_all(p, topic, [(None, encode(req, request(id_, x(i), model=MODEL,
                                                                 reply_to=replies)), [], i % 2)
                                       for i, id_ in enumerate(ids)])
            _wait_for(lambda: sum(k == "pause" for k, _, _ in _events(w.text())) > pauses,
                      "a fresh pause", w, 30)
            admin.create_partitions([NewPartitions(topic, nparts)])[topic].result(timeout=30)
            wait_for_topics(admin, [topic], nparts)
            ids = [f"n{r}_{i}" for i in range(LATE)]
            late += ids
            produce_all(producer(bootstrap), topic, [
                (None, encode(req, request(id_, x(i), model=MODEL, reply_to=replies)), [],
                 nparts - 2 + i % 2) for i, id_ in enumerate(ids)])
            pair = {(topic, nparts - 2), (topic, nparts - 1)}
            new |= pair
            # (log lines already seen may be cut mid-line; _events is re-read whole)
            _wait_for(lambda: any(k == "assigned" and f.get("total") == str(nparts)
                                  for k, f, _ in _events(w.text())),
                      f"the assignment of partitions {sorted(pair)}", w, 30)
            started_paused = lambda: {  # noqa: E731
                p for k, f, ps in _events(w.text()) if k == "pause" and f.get("assigned") == "1"
                for p in ps}
            if pair <= started_paused():
                break
        rounds = r + 1

        want = [f"b{i}" for i in range(BACKLOG)] + late
        msgs = consume_ids(bootstrap, replies, schemas["response"], want, timeout=120)
        ids = [decode(schemas["response"], m.value())[0]["id"] for m in msgs]
        assert set(ids) == set(want), f"lost {len(set(want) - set(ids))}"
        assert len(ids) == len(want), f"duplicates {len(ids) - len(set(ids))}"
        statuses = {decode(schemas["response"], m.value())[0]["status"] for m in msgs}
        assert statuses == {"OK"}, statuses

        # All answered: the model is no longer congested and nothing stays paused.
        _wait_for(lambda: _paused(_metrics(port)) == 0, "paused_partitions == 0", w, 20)
        metrics = _metrics(port)
        assert float(metrics["kinfer_assigned_partitions"]) == 2 + 2 * rounds
        # Every pause of this test was for the congested model, and /metrics
        # counted each partition the log says was paused, under that reason.
        events = _events(w.text())
        logged = sum(int(f["partitions"]) for k, f, _ in events if k == "pause")
        assert {f.get("reason") for k, f, _ in events if k == "pause"} == {"congested_model"}
        assert float(metrics['kinfer_partition_pauses_total{reason="congested_model"}']) == logged
        assert float(metrics['kinfer_partition_pauses_total{reason="in_flight_limit"}']) == 0
    finally:
        assert w.stop() == 0, w.text()[-3000:]

    log = w.text()[-4000:]
    # Replay the worker's pause/resume decisions in log order (all logged by
    # its one poll thread): a partition is paused only while unpaused and
    # resumed only while paused by it, and a resume never happens while the
    # decision saw a congested model (or the in-flight limit).
    paused = set()
    decisions = {}  # new partition -> its pause/resume decisions, in order
    for kind, f, parts in events:
        if kind == "revoked":
            raise AssertionError(f"unexpected revoke: {f}\n{log}")
        if kind == "pause":
            assert not (parts & paused), f"paused twice: {parts & paused}\n{log}"
            assert f["congested"] not in ("0", "0x0") or f["over_limit"] == "1", f
            paused |= parts
        if kind == "resume":
            assert parts <= paused, f"resumed partitions it never paused: {parts - paused}\n{log}"
            assert f["congested"] in ("0", "0x0") and f["over_limit"] == "0", \
                f"resumed while congested: {f}\n{log}"
            paused -= parts
        for p in parts & new:
            decisions.setdefault(p, []).append((kind, f))
    assert not paused, f"left paused at the end: {paused}"
    # At least one pair was assigned while the model was congested: its first
    # decision is the pause taken at assignment, and (all its requests were
    # answered above) a resume followed, after the congestion had cleared
    # (checked by the replay).
    hit = [p for p in new if decisions.get(p) and decisions[p][0][1].get("assigned") == "1"]
    assert len(hit) >= 2, f"no partition assigned while congested in {rounds} rounds:\n{log}"
    for p in hit:
        assert any(k == "resume" for k, _ in decisions[p][1:]), f"{p} never resumed\n{log}"
