"""Helpers for the worker's real-broker tests (test_worker_*.py, test_send_*.py).

Independent of kinfer's C code: requests are written by fastavro from the
.avsc files, replies read back by fastavro, and model outputs recomputed
with numpy from the same safetensors file the worker serves.
"""

import atexit
import io
import json
import os
import signal
import re
import struct
import subprocess
import time
import uuid
from pathlib import Path

import fastavro
import numpy as np
from confluent_kafka import Consumer, Producer, TopicPartition
from fastavro.schema import fingerprint, to_parsing_canonical_form
from safetensors.numpy import load_file

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL_PATH = REPO_ROOT / "models" / "example_mlp.safetensors"
MODEL_NAME = "example-mlp"


# ---- the model, in numpy ------------------------------------------------------


def _metadata(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n)).get("__metadata__", {}) or {}


class NumpyMLP:
    """layers.{i}.weight [out, in], layers.{i}.bias [out]; activations from __metadata__."""

    def __init__(self, path=MODEL_PATH):
        t = load_file(str(path))
        meta = _metadata(path)
        self.layers = []
        i = 0
        while f"layers.{i}.weight" in t:
            self.layers.append((t[f"layers.{i}.weight"].astype(np.float64),
                                t[f"layers.{i}.bias"].astype(np.float64)))
            i += 1
        self.act = meta.get("activation", "relu")
        self.out_act = meta.get("output_activation", "none")
        self.width = self.layers[0][0].shape[1]
        self.out_width = self.layers[-1][0].shape[0]

    @staticmethod
    def _apply(name, x):
        if name == "relu":
            return np.maximum(x, 0)
        if name == "tanh":
            return np.tanh(x)
        if name == "sigmoid":
            return 1 / (1 + np.exp(-x))
        if name == "gelu":
            from math import erf
            return 0.5 * x * (1 + np.vectorize(erf)(x / np.sqrt(2)))
        if name == "softmax":
            e = np.exp(x - x.max(axis=-1, keepdims=True))
            return e / e.sum(axis=-1, keepdims=True)
        return x

    def forward(self, x):
        x = np.asarray(x, dtype=np.float64)
        for i, (w, b) in enumerate(self.layers):
            x = x @ w.T + b
            x = self._apply(self.act if i < len(self.layers) - 1 else self.out_act, x)
        return x


# ---- wire format ---------------------------------------------------------------


def fp_int(schema):
    return int.from_bytes(
        bytes.fromhex(fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO")), "little")


def encode(schema, record, framing="bare", schema_id=0):
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, record)
    body = buf.getvalue()
    if framing == "bare":
        return body
    if framing == "single-object":
        return b"\xc3\x01" + struct.pack("<Q", fp_int(schema)) + body
    if framing == "confluent":
        return b"\x00" + struct.pack(">I", schema_id) + body
    raise ValueError(framing)


def framing_of(msg):
    if msg[:2] == b"\xc3\x01":
        return "single-object"
    if msg[:1] == b"\x00" and len(msg) >= 5:
        return "confluent"
    return "bare"


def decode(schema, msg):
    """(record, framing) of a framed message."""
    f = framing_of(msg)
    body = msg[10:] if f == "single-object" else msg[5:] if f == "confluent" else msg
    return fastavro.schemaless_reader(io.BytesIO(body), schema), f


def fp32_tensor(values, name="input"):
    a = np.asarray(values, dtype="<f4")
    return {"name": name, "dtype": "FP32", "shape": list(a.shape), "data": a.tobytes(),
            "strings": []}


def request(id_, x, model=MODEL_NAME, **extra):
    r = {"id": id_, "model": model, "model_version": None, "inputs": [fp32_tensor(x)],
         "deadline_ms": None, "priority": 0, "reply_to": None, "parameters": {}}
    r.update(extra)
    return r


def output_array(resp):
    (t,) = [o for o in resp["outputs"] if o["name"] == "output"]
    assert t["dtype"] == "FP32"
    return np.frombuffer(t["data"], dtype="<f4").reshape(t["shape"])


# ---- Kafka clients ---------------------------------------------------------------


def producer(bootstrap, conf=None):
    """conf: extra librdkafka properties (e.g. a secured broker's client properties)."""
    return Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True,
                     **(conf or {})})


def produce_all(p, topic, items):
    """items: iterable of (key, value, headers, partition-or-None). Raises on any failure."""
    errors = []

    def dr(err, msg):
        if err:
            errors.append(err)

    for key, value, headers, part in items:
        kw = {"key": key, "value": value, "headers": headers or None, "on_delivery": dr}
        if part is not None:
            kw["partition"] = part
        while True:
            try:
                p.produce(topic, **kw)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    assert p.flush(30) == 0
    assert not errors, errors


def consume_ids(bootstrap, topic, schema, want_ids, timeout=60.0, conf=None):
    """Reads replies until every id in want_ids has been seen; returns all messages."""
    want = set(want_ids)
    seen = set()
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "kinfer-test-" + uuid.uuid4().hex,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False, **(conf or {})})
    c.subscribe([topic])
    out = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not want <= seen:
            m = c.poll(0.2)
            if m is None or m.error():
                continue
            out.append(m)
            seen.add(decode(schema, m.value())[0]["id"])
    finally:
        c.close()
    return out


def consume(bootstrap, topic, want, timeout=60.0, stop=None, conf=None):
    """Reads topic from the beginning until `want` messages (or stop(msgs) is true)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "kinfer-test-" + uuid.uuid4().hex,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False, **(conf or {})})
    c.subscribe([topic])
    out = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if len(out) >= want and (stop is None or stop(out)):
                break
            if stop is not None and stop(out):
                break
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                continue
            out.append(m)
    finally:
        c.close()
    return out


def headers_dict(msg):
    return {k: v for k, v in (msg.headers() or [])}


def committed(bootstrap, group, topic, partitions):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "enable.auto.commit": False})
    try:
        got = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return {tp.partition: tp.offset for tp in got}
    finally:
        c.close()


def end_offsets(bootstrap, topic, partitions):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "kinfer-test-wm"})
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in range(partitions)}
    finally:
        c.close()


# ---- the librdkafka a kinfer binary runs on ------------------------------------------


def linked_rdkafka_version(binary):
    """(major, minor, patch) of the librdkafka `binary` runs on: `kinfer version`
    prints the version of the library actually loaded ("kinfer 0.1.0 (librdkafka
    2.14.2)")."""
    out = subprocess.run([str(binary), "version"], capture_output=True, text=True,
                         check=True).stdout
    m = re.search(r"\(librdkafka (\d+)\.(\d+)\.(\d+)", out)
    if not m:
        raise AssertionError(f"{binary} version does not name its librdkafka: {out!r}")
    return tuple(int(x) for x in m.groups())


# ---- the worker process ------------------------------------------------------------


def write_config(path, bootstrap, topic, group, extra_kafka="", extra_worker="",
                 extra_top="", model_extra="", topic_pattern=None, session_timeout=True):
    """session_timeout=False leaves out the consumer's session.timeout.ms (a
    classic-protocol setting: kafka.group_protocol = "consumer" refuses it)."""
    subscription = (f'topic_pattern = "{topic_pattern}";' if topic_pattern
                    else f'topics = ["{topic}"];')
    session = 'consumer_properties = ["session.timeout.ms=6000"];' if session_timeout else ""
    path.write_text(f"""
kafka = {{
    brokers = "{bootstrap}";
    group = "{group}";
    {subscription}
    commit_interval_ms = 200;
    {session}
    {extra_kafka}
}};
worker = {{ log_level = "info"; drain_timeout_ms = 10000; cpu_threads = 1; {extra_worker} }};
http = {{ listen = ""; }};
{extra_top}
models = (
    {{ name = "{MODEL_NAME}"; kind = "mlp"; path = "{MODEL_PATH}"; devices = ["cpu"];
       max_batch_size = 16; max_queue_delay_us = 500; {model_extra} }}
);
""")
    return path


_STARTED = []


@atexit.register
def _kill_leftovers():
    """A test that fails half-way must not leave workers running."""
    for proc in _STARTED:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class Worker:
    """A `kinfer worker -c CONFIG` subprocess; its stderr goes to a log file."""

    def __init__(self, kinfer_bin, config, log_path, args=(), env=None):
        """env: variables added to the worker's environment (e.g. for ${env:...})."""
        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen([str(kinfer_bin), "worker", "-c", str(config), *args],
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL,
                                     env={**os.environ, **env} if env else None)
        _STARTED.append(self.proc)

    def wait_assigned(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "event=worker.assigned" in self.text():
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited {self.proc.returncode}:\n{self.text()}")
            time.sleep(0.1)
        raise AssertionError(f"worker not assigned in {timeout}s:\n{self.text()}")

    def text(self):
        if not self.log.closed:
            self.log.flush()
        return Path(self.log_path).read_text(errors="replace")

    def stop(self, sig=signal.SIGTERM, timeout=30.0):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"worker did not stop in {timeout}s:\n{self.text()}")
        self.log.close()
        return self.proc.returncode
