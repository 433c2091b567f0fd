"""A real Prometheus scrapes two kinfer workers.

Two workers of one group serve a 4-partition topic on the real broker, each
with /metrics on a port of its own. Debian's `prometheus` (2.42; run here as
a plain process with its own config, data dir and port) scrapes both every
second and loads the example alerts (docker/prometheus-alerts.yml). Checked
through its HTTP API: the series of both instances are there, the
partitions' lag series add up to the assignment, the request counters and
the deadline slack histogram count what was sent, lag drains to zero, every
alert rule evaluates without error. `promtool check metrics` accepts each
worker's exposition, and every query of the Grafana dashboard
(docker/grafana/dashboards/kinfer.json) names metrics the worker exports and
evaluates on this Prometheus.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
import uuid

import numpy as np
import pytest

from conftest import REPO_ROOT
from worker_helpers import MODEL_NAME, MODEL_PATH, NumpyMLP, Worker, consume_ids, encode, \
    produce_all, producer, request

pytestmark = [pytest.mark.kafka, pytest.mark.worker, pytest.mark.slow]

DASHBOARD = REPO_ROOT / "docker" / "grafana" / "dashboards" / "kinfer.json"
ALERTS = REPO_ROOT / "docker" / "prometheus-alerts.yml"
SETUP = "scripts/setup.sh installs Debian's prometheus package (prometheus, promtool)"
N = 120


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def _wait(pred, what, timeout, on_fail=lambda: ""):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"{what} within {timeout}s (last: {last!r})\n{on_fail()}")


def _tool(name):
    path = shutil.which(name)
    if not path:
        pytest.fail(f"{name} not found: {SETUP}", pytrace=False)
    return path


class Prometheus:
    """`prometheus` with its own config, data dir and port; stopped at teardown."""

    def __init__(self, binary, tmp_path, targets):
        self.port = int(os.environ.get("KINFER_PROMETHEUS_PORT") or _free_port())
        cfg = tmp_path / "prometheus.yml"
        cfg.write_text(f"""
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - {ALERTS}
scrape_configs:
  - job_name: kinfer
    static_configs:
      - targets: {json.dumps(targets)}
""")
        self.log = open(tmp_path / "prometheus.log", "wb")
        self.proc = subprocess.Popen(
            [binary, f"--config.file={cfg}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.log_path = tmp_path / "prometheus.log"
        _wait(self._up, "prometheus answering /-/ready", 60, self.text)

    def _up(self):
        assert self.proc.poll() is None, f"prometheus exited {self.proc.returncode}:\n{self.text()}"
        try:
            return "Ready" in _get(f"http://127.0.0.1:{self.port}/-/ready")
        except OSError:
            return False

    def text(self):
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def api(self, path, **params):
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        body = json.loads(_get(url, timeout=10))
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr):
        return self.api("query", query=expr)["result"]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def _worker_config(path, bootstrap, topic, group, port):
    path.write_text(f"""
kafka = {{
    brokers = "{bootstrap}";
    group = "{group}";
    topics = ["{topic}"];
    commit_interval_ms = 200;
    consumer_properties = ["session.timeout.ms=6000"];
}};
worker = {{ log_level = "info"; drain_timeout_ms = 10000; cpu_threads = 1; }};
http = {{ listen = "127.0.0.1:{port}"; }};
models = (
    {{ name = "{MODEL_NAME}"; kind = "mlp"; path = "{MODEL_PATH}"; devices = ["cpu"];
       max_batch_size = 16; max_queue_delay_us = 500; }}
);
""")
    return path


def _metrics(port):
    return _get(f"http://127.0.0.1:{port}/metrics")


def _families(exposition):
    """Metric family names of an exposition (its # TYPE lines) and their types."""
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", exposition, re.M))


def _assigned(port):
    try:
        text = _metrics(port)
    except OSError:  # the HTTP server starts once the models are loaded
        return 0
    m = re.search(r"^kinfer_assigned_partitions (\d+)$", text, re.M)
    return int(m.group(1)) if m else 0


@pytest.fixture
def two_workers(tmp_path, bootstrap, make_topic, kinfer_bin):
    topic = make_topic(partitions=4, hint="prom")
    replies = make_topic(partitions=2, hint="prom-replies")
    group = "kinfer-test-prom-" + uuid.uuid4().hex[:8]
    workers = []
    for i in range(2):
        port = _free_port()
        cfg = _worker_config(tmp_path / f"w{i}.conf", bootstrap, topic, group, port)
        w = Worker(kinfer_bin, cfg, tmp_path / f"w{i}.log")
        w.port = port
        workers.append(w)
    logs = lambda: "\n".join(w.text()[-2000:] for w in workers)  # noqa: E731
    # Both members hold partitions, all four assigned: the rebalance is over.
    _wait(lambda: [_assigned(w.port) for w in workers] if
          all(_assigned(w.port) for w in workers) and sum(_assigned(w.port) for w in workers) == 4
          else None, "both workers assigned, 4 partitions in all", 90, logs)
    yield topic, replies, workers
    for w in workers:
        assert w.stop(timeout=60) == 0, w.text()[-3000:]


def test_prometheus_scrapes_two_workers(two_workers, bootstrap, schemas, tmp_path):
    prometheus_bin, promtool = _tool("prometheus"), _tool("promtool")
    topic, replies, workers = two_workers
    mlp = NumpyMLP()
    rng = np.random.default_rng(3)
    deadline_ms = int(time.time() * 1000) + 120000  # far: every batch starts with > 60 s left
    ids = [f"prom-{i}" for i in range(N)]
    produce_all(producer(bootstrap), topic, [
        (rid.encode(), encode(schemas["request"], request(
            rid, rng.normal(size=mlp.width).astype(np.float32), reply_to=replies,
            deadline_ms=deadline_ms)), [], i % 4) for i, rid in enumerate(ids)])
    got = consume_ids(bootstrap, replies, schemas["response"], ids, timeout=90)
    assert len(got) == N

    # The exposition itself: promtool's parser and lint accept it.
    for w in workers:
        text = _metrics(w.port)
        r = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 0 and not r.stdout.strip(), r.stdout + r.stderr
    exported = _families(_metrics(workers[0].port))

    targets = [f"127.0.0.1:{w.port}" for w in workers]
    prom = Prometheus(prometheus_bin, tmp_path, targets)
    try:
        sel = f'job="kinfer",topic="{topic}"'
        # Both instances scraped.
        _wait(lambda: sorted(s["metric"]["instance"] for s in prom.query('up{job="kinfer"} == 1'))
              == sorted(targets), "both targets up", 60, prom.text)
        info = prom.query("kinfer_info")
        assert sorted(s["metric"]["instance"] for s in info) == sorted(targets), info
        # Lag: one series per partition, each on exactly one instance, and
        # the worker's own count of assigned partitions agrees; drained to 0.
        def lag_series():
            series = prom.query(f"kinfer_consumer_lag{{{sel}}}")
            parts = sorted(int(s["metric"]["partition"]) for s in series)
            done = parts == [0, 1, 2, 3] and all(float(s["value"][1]) == 0 for s in series)
            return series if done else None
        series = _wait(lag_series, "lag series of partitions 0-3, all 0", 60, prom.text)
        by_instance = {}
        for s in series:
            by_instance.setdefault(s["metric"]["instance"], []).append(s["metric"]["partition"])
        assert sorted(by_instance) == sorted(targets), by_instance
        for inst, parts in by_instance.items():
            (assigned,) = prom.query(f'kinfer_assigned_partitions{{instance="{inst}"}}')
            assert int(float(assigned["value"][1])) == len(parts), (inst, parts, assigned)

        # Counters across both instances add up to what was sent.
        def total(expr):
            result = prom.query(expr)
            return int(float(result[0]["value"][1])) if result else None
        _wait(lambda: total(f'sum(kinfer_requests_total{{model="{MODEL_NAME}",status="OK"}})') == N,
              f"{N} OK replies counted over both instances", 30, prom.text)
        per = prom.query(f'sum by (instance) (kinfer_requests_total{{model="{MODEL_NAME}"}})')
        assert len(per) == 2 and all(float(s["value"][1]) > 0 for s in per), per
        # Deadline slack: every request had one, and none started with less
        # than 60 s left of its 120 s.
        assert total(f'sum(kinfer_deadline_slack_seconds_count{{model="{MODEL_NAME}"}})') == N
        assert total(f'sum(kinfer_deadline_slack_seconds_bucket{{model="{MODEL_NAME}",le="60"}})') == 0
        assert total(f'sum(kinfer_deadline_late_total{{model="{MODEL_NAME}"}})') == 0
        # Per-model gauges and pause reasons from both instances.
        for name in ("kinfer_model_queue_depth", "kinfer_paused_partitions", "kinfer_ready"):
            insts = {s["metric"]["instance"] for s in prom.query(name)}
            assert insts == set(targets), (name, insts)

        # Every alert rule loaded and evaluated without error.
        def rules_evaluated():
            groups = prom.api("rules")["groups"]
            rules = [r for g in groups for r in g["rules"]]
            ok = rules and all(r.get("health") == "ok" for r in rules)
            return rules if ok else None
        rules = _wait(rules_evaluated, "alert rules evaluated", 30, prom.text)
        assert {r["name"] for r in rules} >= {"KinferConsumerLagHigh", "KinferWorkerNotReady",
                                              "KinferDeadlineMisses"}, rules
        assert not [r for r in rules if r.get("lastError")], rules

        # The dashboard: every query names exported metrics and evaluates.
        dash = json.loads(DASHBOARD.read_text())
        exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
        assert len(exprs) >= 20, len(exprs)
        for expr in exprs:
            names = set(re.findall(r"\bkinfer_[a-z0-9_]+", expr))
            assert names, expr
            for name in names:
                family = re.sub(r"_(bucket|sum|count)$", "", name)
                assert name in exported or (family in exported and exported[family] == "histogram"), \
                    f"dashboard query names {name}, which the worker does not export: {expr}"
            concrete = (expr.replace("$__rate_interval", "1m").replace("$instance", ".*")
                        .replace("$model", ".*"))
            prom.api("query", query=concrete)  # parses and evaluates (status success)
    finally:
        prom.stop()
