#!/usr/bin/env python3
"""st_gpu_bench.py — kinfer `bert` on a GPU (FP32 and FP16) against
sentence-transformers FP16 on the same GPU, all-MiniLM-L6-v2, same texts,
in one run; tests/gpu/run.sh calls it on the lent GPU machine. Short texts
are ~16 tokens, long ones ~128; batches 1 and 32 by default. Prints one
line per point and a Markdown table for docs/benchmarks/gpu.md.

    python3 bench/st_gpu_bench.py --bench build-gpu/bench/bench_kernels_gpu_bert \\
        --model DIR [--device cuda:0] [--seconds 1.5] [--batches 1,32]

Both sides time a whole encode of one batch, host to host: tokenizing,
the forward, pooling, normalising, and the result back in host memory.
The torch side is sentence-transformers when it imports, else the same
computation (mean pooling over the mask, L2 normalisation) with plain
transformers; the table says which. Texts are made of words of the
committed corpus that are whole vocabulary entries, so every token has its
row in the carried model (tests/gpu/minilm_pack.py).
"""
import argparse
import json
import math
import os
import random
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "..", "tests", "data", "minilm", "corpus.jsonl")


def corpus_words(mdir):
    with open(os.path.join(mdir, "vocab.txt"), encoding="utf-8") as f:
        vocab = {w.rstrip("\n") for w in f}
    words = set()
    with open(CORPUS, encoding="utf-8") as f:
        for line in f:
            for w in re.findall(r"[a-z]+", json.loads(line)["text"].lower()):
                if w in vocab and len(w) > 1:
                    words.add(w)
    return sorted(words)


def make_texts(words, n_words, count, seed):
    rng = random.Random(seed)
    return [" ".join(rng.choice(words) for _ in range(n_words)) + "." for _ in range(count)]


def percentile(sorted_vals, q):
    """Nearest-rank, as the C bench."""
    k = max(1, min(len(sorted_vals), math.ceil(q * len(sorted_vals))))
    return sorted_vals[k - 1]


def torch_encoder(mdir, device):
    """(name, encode(texts) -> numpy [n, 384]) in FP16 on the GPU."""
    import torch

    try:
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(mdir, device=device)
        model.half()
        model.eval()

        def encode(texts):
            return model.encode(texts, batch_size=len(texts), convert_to_numpy=True)

        import sentence_transformers

        return f"sentence-transformers {sentence_transformers.__version__} FP16", encode
    except Exception as e:  # noqa: BLE001 - any import/load failure: fall back
        print(f"sentence-transformers unavailable ({e!r}); using transformers", file=sys.stderr)
    import transformers
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(mdir)
    model = AutoModel.from_pretrained(mdir, torch_dtype=torch.float16).to(device).eval()

    def encode(texts):
        with torch.inference_mode():
            b = tok(texts, padding=True, truncation=True, max_length=256,
                    return_tensors="pt").to(device)
            out = model(**b).last_hidden_state
            mask = b["attention_mask"].unsqueeze(-1).to(out.dtype)
            emb = (out * mask).sum(1).float() / mask.sum(1).float()
            return torch.nn.functional.normalize(emb, dim=-1).cpu().numpy()

    return f"transformers {transformers.__version__} FP16 (mean pool + normalize)", encode


def bench_torch(encode, texts, batch, seconds):
    import torch

    i = 0

    def window():
        nonlocal i
        w = [texts[(i + k) % len(texts)] for k in range(batch)]
        i = (i + batch) % len(texts)
        return w

    with torch.inference_mode():
        encode(window())  # warm-up
        encode(window())
        lat = []
        t_start = time.perf_counter()
        while True:
            w = window()
            t0 = time.perf_counter()
            encode(w)  # returns numpy: the GPU work is finished
            t1 = time.perf_counter()
            lat.append(t1 - t0)
            if t1 - t_start >= seconds:
                break
    lat.sort()
    return {"sentences_per_s": len(lat) * batch / (t1 - t_start),
            "p50_ms": percentile(lat, 0.5) * 1e3, "p99_ms": percentile(lat, 0.99) * 1e3}


def bench_kinfer(binary, mdir, path, device, precision, batch, seconds):
    out = subprocess.run(
        [binary, mdir, path, "--device", device, "--precision", precision, "--batch", str(batch),
         "--seconds", str(seconds)],
        check=True, capture_output=True, text=True, timeout=120,
    )
    last = out.stdout.strip().splitlines()[-1]
    if "SKIPPED" in last:
        sys.exit(last)
    return json.loads(last)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", default="build-gpu/bench/bench_kernels_gpu_bert")
    ap.add_argument("--model", required=True)
    ap.add_argument("--device", default="cuda:0")
    ap.add_argument("--seconds", type=float, default=1.5)
    ap.add_argument("--batches", default="1,32")
    args = ap.parse_args()

    import torch

    tdev = args.device if args.device.startswith("cuda") else "cpu"
    words = corpus_words(args.model)
    impl, encode = torch_encoder(args.model, tdev)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        # 13 words + "." + [CLS] + [SEP] = 16 tokens; 125 + 3 = 128.
        for label, n_words in (("short", 13), ("long", 125)):
            texts = make_texts(words, n_words, 512, seed=len(label))
            path = os.path.join(tmp, f"{label}.jsonl")
            with open(path, "w") as f:
                for t in texts:
                    f.write(json.dumps({"text": t}) + "\n")
            for batch in [int(b) for b in args.batches.split(",")]:
                k32 = bench_kinfer(args.bench, args.model, path, args.device, "fp32", batch,
                                   args.seconds)
                k16 = bench_kinfer(args.bench, args.model, path, args.device, "fp16", batch,
                                   args.seconds)
                t16 = bench_torch(encode, texts, batch, args.seconds)
                ntok = k32["padded_tokens_per_text"]
                rows.append((label, ntok, batch, k32, k16, t16))
                print(f"RESULT bert={label} tokens={ntok:.0f} batch={batch} "
                      f"kinfer_fp32={k32['sentences_per_s']:.1f} kinfer_fp16="
                      f"{k16['sentences_per_s']:.1f} torch_fp16={t16['sentences_per_s']:.1f} "
                      f"p99_kinfer_fp16={k16['p99_ms']:.3f} p99_torch_fp16={t16['p99_ms']:.3f}",
                      flush=True)

    print(f"Machine: {gpu}; torch {torch.__version__}; torch side: {impl}; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
    print("| texts | tokens/text | batch | kinfer FP32 sent/s (p99 ms) | kinfer FP16 sent/s "
          "(p99 ms) | torch FP16 sent/s (p99 ms) | kinfer FP16 / torch FP16 |")
    print("|---|---|---|---|---|---|---|")
    for label, ntok, batch, k32, k16, t16 in rows:
        print(f"| {label} | {ntok:.0f} | {batch} | {k32['sentences_per_s']:.0f} "
              f"({k32['p99_ms']:.2f}) | {k16['sentences_per_s']:.0f} ({k16['p99_ms']:.2f}) | "
              f"{t16['sentences_per_s']:.0f} ({t16['p99_ms']:.2f}) | "
              f"{k16['sentences_per_s'] / t16['sentences_per_s']:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
