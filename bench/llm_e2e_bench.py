#!/usr/bin/env python3
"""llm_e2e_bench.py — generation end to end over a real Kafka broker:
`kinfer worker` (kind llm) against bench/python_llm_worker.py (confluent-kafka
+ llama-cpp-python, one request at a time), same GGUF (SmolLM2-135M-Instruct
Q4_1), same requests, same thread count, sides interleaved run by run.
Not run in CI (needs llama-cpp-python: requirements-reference.txt).
Leave OMP_WAIT_POLICY unset on a quiet machine: PASSIVE slows the Python
worker's llama.cpp ~3x (bench/llamacpp_bench.py explains); kinfer is not
affected either way.

    KINFER_KAFKA_PORT=19200 scripts/kafka.sh start
    /tmp/llmwire-venv/bin/python bench/llm_e2e_bench.py \\
        -b 127.0.0.1:19200 --kinfer build/kinfer --runs 3 [--json]

The client (confluent-kafka + fastavro) keeps C requests in flight (a closed
loop: a new one is produced when a final reply arrives) for each C in
--concurrency, N = max(--min-requests, 2C) requests per level, each a chat
message with a distinct subject, greedy, --max-tokens tokens with
ignore_eos (so both sides generate exactly the same number of tokens).
Per side and level: aggregate generated tokens/s = completion tokens /
(first produce -> last final reply), latency (produce -> final reply)
p50/p99, and time to first token p50/p99 as the client sees it: kinfer's
requests stream (produce -> first chunk reply); the Python worker does not
stream, so its first token reaches the client with the final reply. Each
figure is the median over --runs runs; the ratio is kinfer / Python.
"""
import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import time
import uuid

import fastavro
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
REQ = fastavro.parse_schema(json.load(open(os.path.join(ROOT, "schemas", "inference_request.avsc"))))
RESP = fastavro.parse_schema(json.load(open(os.path.join(ROOT, "schemas", "inference_response.avsc"))))
SUBJECTS = ["rivers", "clocks", "owls", "bridges", "lanterns", "glaciers", "violins", "harbours",
            "deserts", "comets", "orchards", "lighthouses", "volcanoes", "libraries", "ferries", "kites"]


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "?"


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def make_topics(bootstrap):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    names = [f"llmbench-{uuid.uuid4().hex[:8]}", f"llmbench-rep-{uuid.uuid4().hex[:8]}"]
    for f in admin.create_topics([NewTopic(n, num_partitions=1, replication_factor=1) for n in names]).values():
        f.result(30)
    time.sleep(1)
    return names


def request(i, reply_to, max_tokens, stream):
    subject = SUBJECTS[i % len(SUBJECTS)]
    return {"id": f"b{i}-{uuid.uuid4().hex[:6]}", "model": "smollm2", "inputs": [], "reply_to": reply_to,
            "messages": [{"role": "user", "content": f"Write a short story about {subject} (#{i})."}],
            "generation": {"max_tokens": max_tokens, "temperature": 0.0, "ignore_eos": True,
                           "stream": stream}}


def drive(bootstrap, topic, replies, n, conc, max_tokens, stream, timeout=600):
    """Closed loop of conc in flight; returns (wall_s, tokens, latencies, ttfts)."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "llmbench-" + uuid.uuid4().hex,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([replies])  # replies of earlier levels are skipped by id
    sent, first, done = {}, {}, {}
    tokens = 0
    nxt = 0
    t_start = time.perf_counter()

    def send():
        nonlocal nxt
        r = request(nxt, replies, max_tokens, stream)
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, REQ, r)
        sent[r["id"]] = time.perf_counter()
        p.produce(topic, key=r["id"].encode(), value=buf.getvalue())
        p.poll(0)
        nxt += 1

    for _ in range(min(conc, n)):
        send()
    p.flush(10)
    deadline = time.monotonic() + timeout
    while len(done) < n and time.monotonic() < deadline:
        m = c.poll(0.05)
        if m is None or m.error():
            continue
        now = time.perf_counter()
        rec = fastavro.schemaless_reader(io.BytesIO(m.value()), RESP)
        rid = rec["id"]
        if rid not in sent or rid in done:
            continue
        first.setdefault(rid, now)
        if rec.get("chunk") is not None:
            continue
        assert rec["status"] == "OK", rec["error"]
        done[rid] = now
        tokens += rec["generation"]["usage"]["completion_tokens"]
        if nxt < n:
            send()
            p.flush(10)
    wall = max(done.values()) - t_start
    c.close()
    if len(done) < n:
        raise SystemExit(f"llm_e2e_bench: only {len(done)} of {n} replies in {timeout}s")
    lat = [done[i] - sent[i] for i in done]
    ttft = [first[i] - sent[i] for i in done]
    return wall, tokens, lat, ttft


class Side:
    def __init__(self, name, cmd, ready, log, env=None):
        self.name, self.log = name, open(log, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env={**os.environ, **(env or {})})
        self.log_path = log
        t0 = time.monotonic()
        while ready not in open(log, errors="replace").read():
            if self.proc.poll() is not None or time.monotonic() - t0 > 120:
                raise SystemExit(f"{name} did not start:\n{open(log, errors='replace').read()[-3000:]}")
            time.sleep(0.2)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def kinfer_side(a, topic, tmp):
    conf = os.path.join(tmp, "kinfer.conf")
    with open(conf, "w") as f:
        f.write(f"""kafka = {{ brokers = "{a.bootstrap}"; group = "llmbench-{uuid.uuid4().hex[:6]}";
  topics = ["{topic}"]; commit_interval_ms = 200; }};
worker = {{ log_level = "info"; cpu_threads = {a.threads}; }};
http = {{ listen = ""; }};
models = ( {{ name = "smollm2"; kind = "llm"; path = "{a.gguf}"; max_batch_size = 32;
  max_batch_tokens = 512; default_timeout_ms = 0; }} );
""")
    return Side("kinfer", [a.kinfer, "worker", "-c", conf], "event=worker.assigned",
                os.path.join(tmp, "kinfer.log"))


def python_side(a, topic, tmp):
    return Side("python", [sys.executable, os.path.join(HERE, "python_llm_worker.py"), "-b", a.bootstrap,
                           "-t", topic, "-g", "llmbench-py-" + uuid.uuid4().hex[:6], "--gguf", a.gguf,
                           "--threads", str(a.threads)], "ready", os.path.join(tmp, "python.log"))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-b", "--bootstrap", required=True)
    ap.add_argument("--kinfer", default=os.path.join(ROOT, "build", "kinfer"))
    ap.add_argument("--gguf")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--concurrency", default="1,8,32")
    ap.add_argument("--python-concurrency", default="1,8",
                    help="levels for the Python worker (it serves one at a time: more only queue)")
    ap.add_argument("--min-requests", type=int, default=4)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    if a.gguf is None:
        from smollm2_path import gguf_path

        a.gguf = gguf_path()
    conc = [int(x) for x in a.concurrency.split(",")]
    pyconc = [int(x) for x in a.python_concurrency.split(",")]
    tmp = f"/tmp/llmwire-bench-{os.getpid()}"
    os.makedirs(tmp, exist_ok=True)
    res = {"cpu": cpu_model(), "nproc": os.cpu_count(), "threads": a.threads, "max_tokens": a.max_tokens,
           "runs": a.runs, "gguf": os.path.basename(a.gguf), "loadavg_start": loadavg(),
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "samples": []}
    for run in range(a.runs):
        for side_name, levels, make, stream in (("kinfer", conc, kinfer_side, True),
                                                ("python", pyconc, python_side, False)):
            topic, replies = make_topics(a.bootstrap)
            side = make(a, topic, tmp)
            try:
                drive(a.bootstrap, topic, replies, 1, 1, 4, stream)  # warm-up
                for c in levels:
                    n = max(a.min_requests, 2 * c)
                    wall, tokens, lat, ttft = drive(a.bootstrap, topic, replies, n, c, a.max_tokens, stream)
                    s = {"run": run, "side": side_name, "concurrency": c, "requests": n, "tokens": tokens,
                         "wall_s": wall, "tok_s": tokens / wall, "lat_p50_ms": 1e3 * pct(lat, 0.5),
                         "lat_p99_ms": 1e3 * pct(lat, 0.99), "ttft_p50_ms": 1e3 * pct(ttft, 0.5),
                         "ttft_p99_ms": 1e3 * pct(ttft, 0.99), "loadavg": loadavg()}
                    res["samples"].append(s)
                    print("llm_e2e_bench:", json.dumps(s), file=sys.stderr, flush=True)
            finally:
                side.stop()
    res["loadavg_end"] = loadavg()
    summary = {}
    for s in res["samples"]:
        summary.setdefault((s["side"], s["concurrency"]), []).append(s)
    res["medians"] = []
    for (side, c), ss in sorted(summary.items()):
        res["medians"].append({"side": side, "concurrency": c,
                               **{k: statistics.median(x[k] for x in ss)
                                  for k in ("tok_s", "lat_p50_ms", "lat_p99_ms", "ttft_p50_ms", "ttft_p99_ms")}})
    if a.json:
        print(json.dumps(res, indent=1))
    else:
        py1 = next(m["tok_s"] for m in res["medians"] if m["side"] == "python" and m["concurrency"] == pyconc[0])
        print(f"{res['cpu']}, {res['nproc']} CPUs, {a.threads} threads, {a.max_tokens} tokens/request, "
              f"median of {a.runs}, load {res['loadavg_start']} -> {res['loadavg_end']}")
        for m in res["medians"]:
            print(f"{m['side']:7s} C={m['concurrency']:3d}  {m['tok_s']:7.1f} tok/s ({m['tok_s'] / py1:5.2f}x python C=1)"
                  f"  latency p50 {m['lat_p50_ms']:7.0f} p99 {m['lat_p99_ms']:7.0f} ms"
                  f"  ttft p50 {m['ttft_p50_ms']:6.0f} p99 {m['ttft_p99_ms']:6.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
