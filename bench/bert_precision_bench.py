#!/usr/bin/env python3
"""bert_precision_bench.py — kinfer `bert` (CPU) in fp32, bf16 and int8 against
each other on all-MiniLM-L6-v2, same texts as bench/st_bench.py (short ~16
tokens, long ~124), batch 1 and 32, 1 thread, every side interleaved per
cell and the side that goes first rotating per run. For machines without
sentence-transformers/torch (st_bench.py needs them): the peer is kinfer's
own FP32. --before BINARY adds an older build's int8 as one more side (e.g.
the build before a change to the int8 layers). Prints the load average and
a Markdown table (medians over --runs; ratios by CPU time per batch).

    OPENBLAS_CORETYPE=SkylakeX python3 bench/bert_precision_bench.py \\
        --bench build/bench/bench_kernels_bert [--before OLD_BINARY] [--runs 3] [--seconds 3]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from st_bench import make_texts, model_dir  # noqa: E402

METRICS = ("sentences_per_s", "p50_ms", "p99_ms", "cpu_p50_ms")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", default="build/bench/bench_kernels_bert")
    ap.add_argument("--before", help="an older bench_kernels_bert, run as 'int8 (before)'")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", default="3")
    args = ap.parse_args()
    sides = [("fp32", args.bench, "fp32"), ("bf16", args.bench, "bf16")]
    if args.before:
        sides.append(("int8 (before)", args.before, "int8"))
    sides.append(("int8", args.bench, "int8"))
    names = [s[0] for s in sides]
    mdir = model_dir()
    res, loads = {}, [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        sets = []
        for label, n_words in (("short", 12), ("long", 110)):
            path = os.path.join(tmp, f"{label}.jsonl")
            with open(path, "w") as f:
                for t in make_texts(n_words, 512, seed=len(label)):
                    f.write(json.dumps({"text": t}) + "\n")
            sets.append((label, path))
        for run in range(args.runs):
            order = sides[run % len(sides):] + sides[:run % len(sides)]
            for label, path in sets:
                for batch in (1, 32):
                    for name, binary, prec in order:
                        out = subprocess.run(
                            [binary, mdir, path, "--batch", str(batch), "--seconds",
                             args.seconds, "--threads", "1", "--precision", prec],
                            check=True, capture_output=True, text=True)
                        res.setdefault((label, batch, name), []).append(
                            json.loads(out.stdout.strip().splitlines()[-1]))
                    print(f"run {run + 1} {label} batch {batch}: " + "; ".join(
                        "%s %.1f/s" % (n, res[(label, batch, n)][-1]["sentences_per_s"])
                        for n in names), file=sys.stderr)
            loads.append(os.getloadavg()[0])
    first = res[(sets[0][0], 1, names[0])][0]
    print(f"load average per run: {', '.join('%.1f' % x for x in loads)}; OpenBLAS core "
          f"{first.get('openblas_core')}, dense ISA {first.get('dense_isa')}")
    refs = [n for n in ("fp32", "bf16", "int8 (before)") if n in names]
    print("| texts | tokens/text | batch | side | sent/s | p50 / p99 ms | CPU ms/batch | "
          + " | ".join(f"vs {r} (CPU)" for r in refs) + " | per-run sent/s |")
    print("|---|---:|---:|---|---:|---:|---:|" + "---:|" * len(refs) + "---|")
    for label, _ in sets:
        for batch in (1, 32):
            med = {n: {m: statistics.median(r[m] for r in res[(label, batch, n)])
                       for m in METRICS} for n in names}
            for n in names:
                m = med[n]
                tok = res[(label, batch, n)][0]["padded_tokens_per_text"]
                ratios = " | ".join("%.2f×" % (med[r]["cpu_p50_ms"] / m["cpu_p50_ms"])
                                    for r in refs)
                runs = ", ".join("%.1f" % r["sentences_per_s"] for r in res[(label, batch, n)])
                print(f"| {label} | {tok:.0f} | {batch} | kinfer {n} | "
                      f"{m['sentences_per_s']:.1f} | {m['p50_ms']:.2f} / {m['p99_ms']:.2f} | "
                      f"{m['cpu_p50_ms']:.2f} | {ratios} | {runs} |")


if __name__ == "__main__":
    main()
