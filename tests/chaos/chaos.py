"""chaos.py — fault harness for kinfer workers on a real broker.

Drives real processes: N `kinfer worker -c <generated config>` in one group
on a 12-partition request topic, a steady-rate load producer and a reply
reader (read_committed in exactly-once mode), and injects one kind of fault
per scenario. Per-request accounting by id: sent, replies OK, lost (no
reply), duplicates (replies beyond the first), max latency, time to recover
(from the fault until every request sent before it has a reply).

Independent of kinfer's C code: requests are written with fastavro,
replies read back with fastavro. Used by tests/integration/test_chaos_*.py
(short form) and tests/chaos/run.py (short and long form, tables).
"""

import collections
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from confluent_kafka import Consumer, Producer, TopicPartition

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests" / "integration"))

from conftest import create_topics, delete_topics  # noqa: E402
from worker_helpers import decode, encode, request  # noqa: E402

# The harness's own clients reconnect through broker restarts on purpose;
# their connection errors are noise, not results.
QUIET = logging.getLogger("kinfer.chaos.rdkafka")
QUIET.addHandler(logging.NullHandler())
QUIET.propagate = False

EXAMPLE_MODEL = REPO_ROOT / "models" / "example_mlp.safetensors"
PARTITIONS = 12
MODES = ("at-least-once", "exactly-once")
SCENARIOS = ("steady", "add-worker", "remove-worker", "kill-worker", "broker-restart",
             "slow-model")


# ---- a model slower than the arrival rate ------------------------------------------


HEAVY_DIMS = (512, 4096, 4096, 512)


def make_heavy_mlp(path, dims=HEAVY_DIMS, seed=7):
    """A wide MLP (about 2*sum(in*out) FLOP per request) written like
    scripts/make_test_models.py does: layers.{i}.weight [out, in] + bias."""
    from safetensors.numpy import save_file
    rng = np.random.default_rng(seed)
    t = {}
    for i in range(len(dims) - 1):
        b = 1.0 / np.sqrt(dims[i])
        t[f"layers.{i}.weight"] = rng.uniform(-b, b, (dims[i + 1], dims[i])).astype(np.float32)
        t[f"layers.{i}.bias"] = rng.uniform(-b, b, (dims[i + 1],)).astype(np.float32)
    save_file(t, str(path), metadata={"activation": "relu", "output_activation": "none"})
    return path


# ---- worker processes ------------------------------------------------------------


def write_config(path, *, bootstrap, topic, group, worker_id, mode, model_path, model_name,
                 max_batch_size=16, assignment="cooperative-sticky", commit_interval_ms=100,
                 instance_id=None, session_timeout_ms=6000, drain_timeout_ms=10000,
                 group_protocol="classic"):
    static = f'group_instance_id = "{instance_id}";' if instance_id else ""
    if group_protocol == "consumer":
        # KIP-848: the broker assigns, and its group.consumer.session.timeout.ms
        # / heartbeat settings apply (scripts/kafka.sh: the same 6 s / 1 s).
        membership = 'group_protocol = "consumer";'
    else:
        membership = (f'assignment_strategy = "{assignment}";\n'
                 f'    consumer_properties = ["session.timeout.ms={session_timeout_ms}", '
                 f'"heartbeat.interval.ms=1000"];')
    path.write_text(f"""
kafka = {{
    brokers = "{bootstrap}";
    group = "{group}";
    topics = ["{topic}"];
    commit_interval_ms = {commit_interval_ms};
    {membership}
    {static}
    producer_properties = ["transaction.timeout.ms=10000"];
}};
delivery = "{mode}";
worker = {{ id = "{worker_id}"; log_level = "{os.environ.get("KINFER_CHAOS_LOG_LEVEL", "info")}"; drain_timeout_ms = {drain_timeout_ms};
           cpu_threads = 1; }};
http = {{ listen = ""; }};
models = (
    {{ name = "{model_name}"; kind = "mlp"; path = "{model_path}"; devices = ["cpu"];
       max_batch_size = {max_batch_size}; max_queue_delay_us = 500; }}
);
""")
    return path


class WorkerProc:
    """One worker slot: a stable worker.id, restarted as new processes."""

    def __init__(self, kinfer_bin, config, logdir, name, max_in_flight):
        self.kinfer_bin, self.config, self.logdir, self.name = kinfer_bin, config, logdir, name
        self.max_in_flight = max_in_flight
        self.proc = None
        self.log_path = None
        self.incarnation = 0
        self.exit_codes = []
        self.stopped = False  # ended by the harness (signal), not on its own

    def start(self):
        self.stopped = False
        self.incarnation += 1
        self.log_path = self.logdir / f"{self.name}-{self.incarnation}.log"
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [str(self.kinfer_bin), "worker", "-c", str(self.config), "--max-in-flight",
             str(self.max_in_flight)], stdout=self.log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)
        return self

    def text(self):
        return Path(self.log_path).read_text(errors="replace") if self.log_path else ""

    def all_text(self):
        """The logs of every incarnation of this slot, oldest first."""
        return "".join((self.logdir / f"{self.name}-{k}.log").read_text(errors="replace")
                       for k in range(1, self.incarnation + 1))

    def lost_assignments(self):
        """Revokes the worker logged as lost (lost=1): the group moved on
        without it, so what it answered but had not committed is redelivered."""
        return sum(1 for line in self.all_text().splitlines()
                   if "event=worker.revoked" in line and " lost=1 " in line)

    def wait_assigned(self, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "event=worker.assigned" in self.text():
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.proc.returncode}:\n{self.text()[-3000:]}")
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} not assigned in {timeout}s:\n{self.text()[-3000:]}")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig, timeout=60.0):
        if not self.alive():
            return None
        self.stopped = True
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.exit_codes.append(rc)
        self.log.close()
        return rc

    def rss_kb(self):
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except (OSError, AttributeError):
            pass
        return 0


# ---- load and replies --------------------------------------------------------------


class Load(threading.Thread):
    """Sends `count` requests at `rate`/s, round-robin over the partitions."""

    def __init__(self, bootstrap, topic, schema, replies, run_id, count, rate, model_name, width):
        super().__init__(daemon=True)
        self.p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5,
                           "enable.idempotence": True, "message.timeout.ms": 300000},
                          logger=QUIET)
        self.topic, self.schema, self.replies, self.run_id = topic, schema, replies, run_id
        self.count, self.rate, self.model_name = count, rate, model_name
        self.x = np.full(width, 0.25, np.float32)
        # Written by this thread, read by the scenario's thread while the
        # load runs: every read goes through snapshot() (a plain copy can
        # see the dict change size mid-iteration).
        self.lock = threading.Lock()
        self.sent_at = {}
        self.failed = []
        self.done_at = None

    def snapshot(self):
        with self.lock:
            return dict(self.sent_at)

    def run(self):
        t0 = time.monotonic()
        for n in range(self.count):
            due = t0 + n / self.rate
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            rid = f"{self.run_id}-{n}"
            v = encode(self.schema, request(rid, self.x, model=self.model_name,
                                            reply_to=self.replies))
            while True:
                try:
                    self.p.produce(self.topic, value=v, partition=n % PARTITIONS,
                                   on_delivery=self._dr)
                    break
                except BufferError:
                    self.p.poll(0.01)
            with self.lock:
                self.sent_at[rid] = time.monotonic()
            self.p.poll(0)
        self.p.flush(300)
        self.done_at = time.monotonic()

    def _dr(self, err, msg):
        if err:
            self.failed.append(err)


class Replies(threading.Thread):
    """Reads the reply topic from the start; first arrival time and count per id."""

    def __init__(self, bootstrap, topic, schema, run_id, read_committed):
        super().__init__(daemon=True)
        conf = {"bootstrap.servers": bootstrap, "group.id": "kinfer-chaos-" + uuid.uuid4().hex,
                "auto.offset.reset": "earliest", "enable.auto.commit": False}
        if read_committed:
            conf["isolation.level"] = "read_committed"
        self.c = Consumer(conf, logger=QUIET)
        self.c.subscribe([topic])
        self.schema, self.prefix = schema, run_id + "-"
        self.lock = threading.Lock()  # as Load's: reads go through answered()
        self.first_at = {}
        self.count = collections.Counter()
        self.status = collections.Counter()
        self.reply_times = []  # when this reader got each reply (monotonic)
        # When the worker produced each reply (the message's CreateTime, on
        # the monotonic clock): rates and gaps without this reader's batching.
        self.produced = []
        self._wall_to_mono = time.time() - time.monotonic()
        self.stop_flag = False

    def run(self):
        while not self.stop_flag:
            for m in self.c.consume(500, 0.2):
                if m.error():
                    continue
                now = time.monotonic()
                r = decode(self.schema, m.value())[0]
                rid = r["id"]
                if not rid.startswith(self.prefix):
                    continue
                ts_type, ts_ms = m.timestamp()
                with self.lock:
                    self.count[rid] += 1
                    if rid not in self.first_at:
                        self.first_at[rid] = now
                        self.status[r["status"]] += 1
                    self.reply_times.append(now)
                    if ts_ms > 0:
                        self.produced.append(ts_ms / 1000.0 - self._wall_to_mono)
        self.c.close()

    def answered(self):
        with self.lock:
            return set(self.first_at)


# ---- one scenario ------------------------------------------------------------------


@dataclass
class Result:
    scenario: str
    mode: str
    sent: int = 0
    ok: int = 0
    lost: int = 0
    duplicates: int = 0
    max_latency_ms: float = 0.0
    recover_s: float = 0.0
    faults: int = 0
    window: int = 0  # the at-least-once duplicate bound this run was held to
    lost_assignments: int = 0  # revokes logged with lost=1, all workers
    lost_window: int = 0  # the duplicate bound those lost assignments allow
    notes: dict = field(default_factory=dict)

    def row(self):
        return (f"| {self.scenario} | {self.mode} | {self.sent} | {self.ok} | {self.lost} | "
                f"{self.duplicates} | {self.max_latency_ms:.0f} | {self.recover_s:.1f} | "
                f"{self.faults} | {_fmt_notes(self.notes)} |")


def _fmt_notes(notes):
    return ", ".join(f"{k}={v}" for k, v in notes.items())


TABLE_HEAD = ("| scenario | mode | sent | replies OK | lost | duplicates | max latency ms | "
              "recover s | faults | notes |\n|---|---|---|---|---|---|---|---|---|---|")


class Chaos:
    """Everything one scenario run needs; cleans up its topics and processes."""

    def __init__(self, *, bootstrap, kinfer_bin, kafka_ctl, schemas, admin, workdir, scenario,
                 mode, count, rate, kills=2, workers=3, max_in_flight=256,
                 assignment="cooperative-sticky", static=False, group_protocol="classic",
                 log=print):
        self.b, self.kinfer_bin, self.kafka_ctl = bootstrap, kinfer_bin, kafka_ctl
        self.schemas, self.admin, self.workdir = schemas, admin, Path(workdir)
        self.scenario, self.mode, self.count, self.rate = scenario, mode, count, rate
        self.kills, self.nworkers, self.max_in_flight = kills, workers, max_in_flight
        self.assignment, self.log, self.static = assignment, log, static
        self.group_protocol = group_protocol
        self.run_id = f"{scenario}-{uuid.uuid4().hex[:6]}"
        self.topic = f"kinfer-chaos-{self.run_id}"
        self.replies = self.topic + ".replies"
        self.group = "kinfer-chaos-" + self.run_id
        self.workers = []
        self.faults = []  # monotonic times of injected faults
        self.restarts = []  # (worker, exit code) of workers that exited on their own
        self.rss = {}

    # -- setup / teardown
    def __enter__(self):
        self.workdir.mkdir(parents=True, exist_ok=True)
        create_topics(self.admin, [self.topic], partitions=PARTITIONS)
        create_topics(self.admin, [self.replies], partitions=6)
        if self.scenario == "slow-model":
            self.model_path = make_heavy_mlp(self.workdir / "heavy.safetensors")
            self.model_name, self.width, self.batch = "heavy-mlp", HEAVY_DIMS[0], 1
        else:
            self.model_path, self.model_name, self.width, self.batch = (
                EXAMPLE_MODEL, "example-mlp", 8, 16)
        for i in range(self.nworkers):
            name = f"w{i + 1}"
            cfg = write_config(self.workdir / f"{name}.conf", bootstrap=self.b, topic=self.topic,
                               group=self.group, worker_id=f"{self.run_id}-{name}", mode=self.mode,
                               model_path=self.model_path, model_name=self.model_name,
                               max_batch_size=self.batch, assignment=self.assignment,
                               instance_id=f"{self.run_id}-{name}" if self.static else None,
                               group_protocol=self.group_protocol)
            self.workers.append(WorkerProc(self.kinfer_bin, cfg, self.workdir, name,
                                           self.max_in_flight))
        # every key present before the sampler starts: only values change
        self.rss = {w.name: 0 for w in self.workers}
        return self

    def __exit__(self, *exc):
        for w in self.workers:
            if w.alive():
                w.signal(signal.SIGKILL)
        try:
            delete_topics(self.admin, [self.topic, self.replies])
        except Exception as e:  # a broker restart may leave the admin client behind
            self.log(f"chaos: topic cleanup: {e}")

    # -- helpers
    def _sample_rss(self, stop):
        while not stop.is_set():
            for w in self.workers:
                if w.alive():
                    self.rss[w.name] = max(self.rss[w.name], w.rss_kb())
            stop.wait(0.25)

    def _supervise(self, stop, delay=1.0, max_per_worker=3):
        """What a deployment's supervisor does (Kubernetes restarts the pod):
        a worker that exits on its own — a fatal Kafka error ends it with
        exit 1 by design (README) — is started again with the same
        worker.id after `delay`, which also fences and aborts the
        transaction it left open. Counted in the result's notes."""
        while not stop.is_set():
            for w in self.workers:
                if w.proc is None or w.stopped or w.proc.poll() is None:
                    continue
                if sum(n == w.name for n, _ in self.restarts) >= max_per_worker:
                    continue
                self.restarts.append((w.name, w.proc.returncode))
                w.exit_codes.append(w.proc.returncode)
                w.log.close()
                stop.wait(delay)
                if not stop.is_set():
                    w.start()
            stop.wait(0.2)

    def _at_fraction(self, load, frac):
        """Waits until `frac` of the load has been sent."""
        while len(load.snapshot()) < frac * self.count and load.is_alive():
            time.sleep(0.02)

    def _recovered(self, load, replies, t0, extra=0.0, timeout=120.0):
        """Waits until every request sent before t0 has a reply (then `extra` s)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = replies.answered()
            if all(i in got for i, t in load.snapshot().items() if t <= t0):
                break
            time.sleep(0.1)
        time.sleep(extra)

    def _committed_lag(self):
        c = Consumer({"bootstrap.servers": self.b, "group.id": self.group})
        try:
            tps = [TopicPartition(self.topic, p) for p in range(PARTITIONS)]
            com = {t.partition: t.offset for t in c.committed(tps, timeout=10)}
            lag = 0
            for p in range(PARTITIONS):
                hi = c.get_watermark_offsets(TopicPartition(self.topic, p), timeout=10)[1]
                lag += hi - max(com.get(p, 0), 0)
            return lag
        finally:
            c.close()

    def _lost_diagnosis(self):
        """Where lost replies are held, for the notes of a run that lost
        some: per reply partition, high watermark minus the last stable
        offset (> 0 after every worker's transaction settled: a hanging
        transaction holds read_committed readers), and per request partition
        the uncommitted lag (> 0: the partition's owner is not answering)."""
        out = {}
        for level in ("read_uncommitted", "read_committed"):
            c = Consumer({"bootstrap.servers": self.b, "group.id": "kinfer-chaos-diag",
                          "isolation.level": level}, logger=QUIET)
            try:
                out[level] = [c.get_watermark_offsets(TopicPartition(self.replies, p),
                                                      timeout=10, cached=False)[1]
                              for p in range(6)]
            finally:
                c.close()
        lso_gap = [hw - lso for hw, lso in zip(out["read_uncommitted"], out["read_committed"])]
        c = Consumer({"bootstrap.servers": self.b, "group.id": self.group}, logger=QUIET)
        try:
            tps = [TopicPartition(self.topic, p) for p in range(PARTITIONS)]
            com = {t.partition: t.offset for t in c.committed(tps, timeout=10)}
            lag = [c.get_watermark_offsets(TopicPartition(self.topic, p), timeout=10)[1] -
                   max(com.get(p, 0), 0) for p in range(PARTITIONS)]
        finally:
            c.close()
        return {"reply_hw_minus_lso": "/".join(map(str, lso_gap)),
                "request_lag": "/".join(map(str, lag))}

    # -- the run
    def run(self, settle_timeout=120.0):
        sc = self.scenario
        initial = self.nworkers - 1 if sc == "add-worker" else self.nworkers
        for w in self.workers[:initial]:
            w.start()
        for w in self.workers[:initial]:
            w.wait_assigned()
        time.sleep(2.0)  # let the group settle before measuring
        replies = Replies(self.b, self.replies, self.schemas["response"], self.run_id,
                          read_committed=self.mode == "exactly-once")
        replies.start()
        load = Load(self.b, self.topic, self.schemas["request"], self.replies, self.run_id,
                    self.count, self.rate, self.model_name, self.width)
        stop_rss = threading.Event()
        rss_thread = threading.Thread(target=self._sample_rss, args=(stop_rss,), daemon=True)
        rss_thread.start()
        stop_supervisor = threading.Event()
        supervisor = threading.Thread(target=self._supervise, args=(stop_supervisor,),
                                      daemon=True)
        supervisor.start()
        base_rss = {w.name: w.rss_kb() for w in self.workers if w.alive()}
        t_start = time.monotonic()
        load.start()
        notes = {}
        if sc == "add-worker":
            self._at_fraction(load, 0.33)
            self.faults.append(time.monotonic())
            self.workers[-1].start()
        elif sc == "remove-worker":
            self._at_fraction(load, 0.33)
            self.faults.append(time.monotonic())
            rc = self.workers[-1].signal(signal.SIGTERM)
            notes["exit"] = rc
        elif sc == "kill-worker":
            # Repeated kills, each once the group has recovered from the
            # previous one (a kill in the middle of a rebalance is another
            # scenario: see docs/RELIABILITY.md).
            time.sleep(1.5)
            for k in range(self.kills):
                if k:
                    self._recovered(load, replies, self.faults[-1], extra=1.0)
                if not load.is_alive():
                    notes["kills_skipped"] = self.kills - k
                    break
                victim = self.workers[k % self.nworkers]
                self.faults.append(time.monotonic())
                victim.signal(signal.SIGKILL)
                time.sleep(1.0)  # a supervisor's restart delay
                victim.start()  # same worker.id: fences the dead one's transaction
        elif sc == "broker-restart":
            self._at_fraction(load, 0.33)
            self.faults.append(time.monotonic())
            r = self.kafka_ctl("restart")
            notes["restart_s"] = round(time.monotonic() - self.faults[-1], 1)
            # Recovery counts from the broker being back: every request
            # sent while it was down needs its reply.
            self.faults[-1] = time.monotonic()
            if r.returncode != 0:
                raise RuntimeError(f"kafka.sh restart failed: {r.stdout}{r.stderr}")
        elif sc == "slow-model":
            self.faults.append(t_start)
            self._at_fraction(load, 0.3)
            notes["rss_mb_30pct"] = round(sum(w.rss_kb() for w in self.workers if w.alive()) / 1024)
        load.join()
        if load.failed:
            raise RuntimeError(f"load producer failed: {load.failed[:3]}")
        if sc == "slow-model":
            notes["lag_at_load_end"] = self._committed_lag()
        # Wait for every reply (or the timeout), then a little more for
        # late duplicates.
        ids = set(load.snapshot())
        deadline = time.monotonic() + settle_timeout
        while time.monotonic() < deadline and not ids <= replies.answered():
            time.sleep(0.2)
        time.sleep(1.5)
        stop_supervisor.set()
        supervisor.join(5)
        replies.stop_flag = True
        replies.join(10)
        if replies.is_alive():
            raise RuntimeError("the reply reader did not stop within 10 s")
        stop_rss.set()
        rss_thread.join(2)

        res = Result(sc, self.mode)
        res.sent = len(ids)
        answered = ids & set(replies.first_at)
        res.ok = replies.status.get("OK", 0)
        res.lost = res.sent - len(answered)
        res.duplicates = sum(c - 1 for c in replies.count.values())
        lat = [replies.first_at[i] - load.sent_at[i] for i in answered]
        res.max_latency_ms = 1000 * max(lat) if lat else 0.0
        res.faults = len(self.faults)
        rec = 0.0
        for t0 in self.faults:
            before = [i for i in answered if load.sent_at[i] <= t0]
            if sc == "slow-model":
                before, t0 = answered, load.done_at
            if before:
                rec = max(rec, max(replies.first_at[i] for i in before) - t0)
        res.recover_s = max(rec, 0.0)
        if self.faults and sc != "slow-model":
            # The rebalance pause: the longest stretch with no reply at all
            # in the 20 s after the (first) fault.
            t0 = self.faults[0]
            ts = sorted(t for t in replies.produced if t0 - 1.0 <= t <= t0 + 30.0)
            gaps = [b - a for a, b in zip(ts, ts[1:])]
            res.notes["max_gap_ms"] = round(1000 * max(gaps)) if gaps else None
        if sc == "slow-model":
            res.notes["rss_mb_start"] = round(sum(base_rss.values()) / 1024)
            res.notes["rss_mb_peak"] = round(sum(self.rss.values()) / 1024)
        res.notes.update(notes)
        if self.restarts:
            res.notes["restarted"] = " ".join(f"{n}(exit {rc})" for n, rc in self.restarts)
        res.notes["elapsed_s"] = round(time.monotonic() - t_start, 1)
        if res.lost:
            missing = sorted(ids - answered)[:5]
            res.notes["missing"] = " ".join(missing)
            try:
                res.notes.update(self._lost_diagnosis())
            except Exception as e:  # a diagnosis, never the verdict
                res.notes["diagnosis_error"] = str(e)[:80]
        # At-least-once's duplicate bound: per kill, what the victim had
        # consumed but not committed — its in-flight window plus one commit
        # interval of replies (and the commit round trip).
        # A lost assignment (librdkafka below 2.8 loses it when a commit
        # races a rejoin: docs/RELIABILITY.md, bug 1) redelivers the same.
        res.lost_assignments = sum(w.lost_assignments() for w in self.workers)
        if res.lost_assignments:
            res.notes["lost_assignments"] = res.lost_assignments
        per_fault = self.max_in_flight + int(self.rate * 0.5)
        res.window = self.kills * per_fault
        res.lost_window = res.lost_assignments * per_fault
        return res

    def logs_tail(self, n=2500):
        return "\n".join(f"--- {w.name} ---\n{w.text()[-n:]}" for w in self.workers)
