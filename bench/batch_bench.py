#!/usr/bin/env python3
"""batch_bench.py — `kinfer batch` end to end (file -> Kafka -> worker ->
Kafka -> file) on N texts, the bulk lane (priority -1) against the same job
at online priority (0), interleaved, median of --runs; with no online
traffic the bulk job should run as fast as the online one (the lanes aim:
>= 90 %). Needs a broker and a worker serving MODEL on TOPIC (the command
line printed below says which); prints a Markdown row for
docs/BENCHMARKS.md with the machine, date and load.

    python3 bench/batch_bench.py --kinfer build/kinfer -b 127.0.0.1:9092 \\
        -t inference.requests -m minilm [--n 2000] [--runs 3] [--window 64]
"""
import argparse
import os
import platform
import statistics
import subprocess
import tempfile
import time

WORDS = ("kafka stream batch worker model token vector cosine embedding offset partition "
         "replica broker deadline lane log commit fetch produce consume").split()


def text(i):
    return " ".join(WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(6 + i % 11)) + f" {i}"


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def run(a, inp, prio, tag):
    out = os.path.join(a.dir, f"out-{tag}.jsonl")
    cmd = [a.kinfer, "batch", "-b", a.brokers, "-t", a.topic, "-i", inp, "-o", out,
           "--text-input", "-m", a.model, "--max-in-flight", str(a.window), "--priority", str(prio),
           "--progress", "none", "--job", tag]
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True)
    dt = time.monotonic() - t0
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)}: exit {r.returncode}\n{r.stderr}")
    n = sum(1 for _ in open(out))
    if n != a.n:
        raise SystemExit(f"{tag}: {n} output lines, want {a.n}\n{r.stderr}")
    return a.n / dt


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--kinfer", default="build/kinfer")
    p.add_argument("-b", "--brokers", required=True)
    p.add_argument("-t", "--topic", required=True)
    p.add_argument("-m", "--model", default="minilm")
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--window", type=int, default=64)
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="kinfer-batch-bench-") as d:
        a.dir = d
        inp = os.path.join(d, "texts.txt")
        with open(inp, "w") as f:
            for i in range(a.n):
                f.write(text(i) + "\n")
        load0 = os.getloadavg()
        bulk, online = [], []
        for k in range(a.runs):
            online.append(run(a, inp, 0, f"online{k}"))
            bulk.append(run(a, inp, -1, f"bulk{k}"))
            print(f"run {k + 1}: online {online[-1]:.1f} lines/s, bulk {bulk[-1]:.1f} lines/s",
                  flush=True)
        load1 = os.getloadavg()
    mb, mo = statistics.median(bulk), statistics.median(online)
    print(f"# {cpu_model()}, {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
          f", load {load0[0]:.1f} -> {load1[0]:.1f}")
    print(f"| kinfer batch, {a.n} texts, window {a.window} | bulk (priority -1) {mb:.1f} lines/s "
          f"| online (priority 0) {mo:.1f} lines/s | {mb / mo:.3f} | >= 0.9 |")
    print("runs bulk:", " ".join(f"{x:.1f}" for x in bulk), "online:",
          " ".join(f"{x:.1f}" for x in online))


if __name__ == "__main__":
    main()
