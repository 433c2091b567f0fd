#!/usr/bin/env python3
"""ort_bench.py — the onnxruntime (CPU) side of bench/st_bench.py: exports
all-MiniLM-L6-v2 to ONNX on demand (cached in ~/.cache/kinfer/onnx/, never
committed), encodes with the HF tokenizer + ORT + mean pooling + L2
normalise in numpy, and checks the embeddings against the committed
sentence-transformers reference before anything is timed.

Not a project dependency: `pip install onnxruntime onnx` for benchmarks only.
Run alone for the parity check:
    python3 bench/ort_bench.py [--threads 2] [--variant fused|plain]
"""
import argparse
import hashlib
import json
import math
import os
import sys
import time

OPSET = 17
REF_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "minilm")


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def export_onnx(mdir, variant="fused", cache_dir=None):
    """Export the transformer (no pooling) with dynamic batch and sequence
    axes; the file name carries the weights' hash, the opset and the
    variant, so a new model or opset never reuses a stale export.

    plain: torch's default (SDPA) attention, left to ORT's in-session graph
    optimizations, which fuse LayerNorm/BiasGelu but not attention here.
    fused: eager attention (the pattern ORT's BERT fusions recognise), then
    onnxruntime.transformers.optimizer -> Attention, SkipLayerNormalization,
    EmbedLayerNormalization, BiasGelu: ORT's recommended path for BERT."""
    if variant not in ("plain", "fused"):
        raise ValueError(f"unknown ORT model variant {variant!r} (plain|fused)")
    cache_dir = cache_dir or os.path.join(os.path.expanduser("~"), ".cache", "kinfer", "onnx")
    os.makedirs(cache_dir, exist_ok=True)
    sha = _sha256(os.path.join(mdir, "model.safetensors"))[:16]
    base = f"all-MiniLM-L6-v2-{sha}-opset{OPSET}"
    path = os.path.join(cache_dir, f"{base}.onnx" if variant == "plain" else f"{base}-fused.onnx")
    if os.path.exists(path):
        return path
    attn = "sdpa" if variant == "plain" else "eager"

    import torch
    from transformers import AutoModel, AutoTokenizer

    class Encoder(torch.nn.Module):
        """Keyword call: BertModel.forward's positional order differs
        between transformers versions."""

        def __init__(self):
            super().__init__()
            self.bert = AutoModel.from_pretrained(mdir, attn_implementation=attn).eval()

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state

    model = Encoder().eval()
    tok = AutoTokenizer.from_pretrained(mdir)
    enc = tok(["an example to trace", "a second, longer example to trace the model"],
              padding=True, return_tensors="pt")
    names = ["input_ids", "attention_mask", "token_type_ids"]
    args = tuple(enc[n] for n in names)
    axes = {n: {0: "batch", 1: "seq"} for n in names}
    axes["last_hidden_state"] = {0: "batch", 1: "seq"}
    tmp = path + f".tmp{os.getpid()}"
    with torch.inference_mode():
        # dynamo=False: the TorchScript exporter needs no onnxscript and
        # takes dynamic_axes as is.
        torch.onnx.export(model, args, tmp, input_names=names,
                          output_names=["last_hidden_state"], dynamic_axes=axes,
                          opset_version=OPSET, do_constant_folding=True, dynamo=False)
    import onnx

    onnx.checker.check_model(tmp)
    if variant == "fused":
        from onnxruntime.transformers import optimizer

        cfg = model.bert.config
        opt = optimizer.optimize_model(tmp, model_type="bert", num_heads=cfg.num_attention_heads,
                                       hidden_size=cfg.hidden_size, opt_level=0)
        stats = opt.get_fused_operator_statistics()
        if not stats.get("Attention"):
            os.remove(tmp)
            raise RuntimeError(f"ORT's BERT optimizer fused no attention: {stats}")
        opt.save_model_to_file(tmp)
    os.replace(tmp, path)
    return path


class OrtEncoder:
    """Texts -> normalised embeddings, the same steps as sentence-transformers'
    encode (tokenize with padding to the batch's longest, truncate at
    max_seq_length, forward, masked mean, L2 normalise)."""

    def __init__(self, mdir, threads, variant="fused", onnx_path=None):
        import onnxruntime as ort
        from transformers import AutoTokenizer

        with open(os.path.join(mdir, "sentence_bert_config.json")) as f:
            self.max_len = json.load(f).get("max_seq_length", 256)
        self.tok = AutoTokenizer.from_pretrained(mdir)
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.variant = variant
        self.path = onnx_path or export_onnx(mdir, variant)
        self.sess = ort.InferenceSession(self.path, so, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.sess.get_inputs()]
        self.version = ort.__version__

    def encode(self, texts):
        import numpy as np

        enc = self.tok(texts, padding=True, truncation=True, max_length=self.max_len,
                       return_tensors="np")
        feed = {n: enc[n].astype(np.int64) for n in self.inputs}
        (h,) = self.sess.run(["last_hidden_state"], feed)
        m = enc["attention_mask"].astype(np.float32)[:, :, None]
        pooled = (h * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


def check_parity(enc, ref_dir=REF_DIR, count=None):
    """Worst cosine between ORT and the committed sentence-transformers
    embeddings over the parity corpus (all of it unless count is given)."""
    import numpy as np

    with open(os.path.join(ref_dir, "meta.json")) as f:
        meta = json.load(f)
    with open(os.path.join(ref_dir, "corpus.jsonl")) as f:
        texts = [json.loads(line)["text"] for line in f if line.strip()]
    ref = np.fromfile(os.path.join(ref_dir, "embeddings.f32"), dtype=np.float32)
    ref = ref.reshape(meta["n"], meta["dim"])
    n = len(texts) if count is None else min(count, len(texts))

    def cosines(lo, hi):
        got = enc.encode(texts[lo:hi])
        r = ref[lo:hi]
        return (got * r).sum(axis=1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(r, axis=1))

    # Padded batches of 16 (mixed lengths, some truncated), plus a few texts
    # alone: the export was traced once, so both shapes must hold.
    worst = min(float(cosines(i, min(n, i + 16)).min()) for i in range(0, n, 16))
    for i in (0, n // 2, n - 1):
        worst = min(worst, float(cosines(i, i + 1).min()))
    return worst, n


def percentile(sorted_vals, q):
    """Nearest-rank, as bench_kernels_bert.c."""
    k = max(1, min(len(sorted_vals), math.ceil(q * len(sorted_vals))))
    return sorted_vals[k - 1]


def bench_ort(enc, texts, batch, seconds):
    """Same loop as st_bench.bench_st: warm-up, then whole encodes (tokenize
    included) of consecutive windows for `seconds`."""
    i = 0

    def window():
        nonlocal i
        w = [texts[(i + k) % len(texts)] for k in range(batch)]
        i = (i + batch) % len(texts)
        return w

    enc.encode(window())  # warm-up
    lat, cpu = [], []
    t_start = time.perf_counter()
    while True:
        w = window()
        t0, c0 = time.perf_counter(), time.process_time()
        enc.encode(w)
        t1, c1 = time.perf_counter(), time.process_time()
        lat.append(t1 - t0)
        cpu.append(c1 - c0)
        if t1 - t_start >= seconds:
            break
    wall = t1 - t_start
    lat.sort()
    cpu.sort()
    return {
        "impl": "onnxruntime",
        "batch": batch,
        "sentences_per_s": len(lat) * batch / wall,
        "p50_ms": percentile(lat, 0.5) * 1e3,
        "p99_ms": percentile(lat, 0.99) * 1e3,
        "cpu_p50_ms": percentile(cpu, 0.5) * 1e3,
    }


def main():
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from st_bench import model_dir

    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--variant", default="fused", choices=("plain", "fused"))
    args = ap.parse_args()
    enc = OrtEncoder(model_dir(), args.threads, args.variant)
    worst, n = check_parity(enc)
    print(f"onnxruntime {enc.version}, {enc.path}: worst cosine {worst:.7f} over {n} texts")
    return 0 if worst >= 0.9999 else 1


if __name__ == "__main__":
    sys.exit(main())
