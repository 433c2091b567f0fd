#!/usr/bin/env python3
"""make_llm_hf_dir.py — turn a llama GGUF into a Hugging Face Llama directory,
without torch: only numpy, gguf, safetensors and the standard library.

    python3 scripts/make_llm_hf_dir.py GGUF OUTDIR [--dtype f32|bf16|f16]

Writes OUTDIR/
  config.json             LlamaForCausalLM; every hyperparameter from the GGUF
  model.safetensors       dequantized weights, HF tensor names, Wq/Wk rows
                          un-permuted to the HF (rotate_half) RoPE layout
  tokenizer.json          HF tokenizers file (byte-level BPE), see below
  tokenizer_config.json   special tokens, add_bos/add_eos, chat_template
  generation_config.json  bos/eos/pad ids

--dtype f32 (default) is exact: every dequantized Q4_1/Q8_0 value of
SmolLM2-135M is representable in fp32 (checked: 0 of 134,515,008 values
round). bf16 and f16 round the weights (round to nearest even).

tokenizer.json: what transformers' GGUF tokenizer conversion builds (a
GPT2Tokenizer backend: ByteLevel BPE, the GGUF's control tokens as special
added tokens), reproduced here from the metadata in pure Python, EXCEPT the
pre-tokenizer for `tokenizer.ggml.pre` = "smollm": transformers (5.24.0) does
not know that name and falls back to the plain GPT-2 ByteLevel regex, which
keeps digit runs together; llama.cpp (and the original SmolLM2 tokenizer.json)
split digits one by one first. We write Sequence[Digits(individual_digits),
ByteLevel], so the directory tokenizes like llama.cpp; --transformers-pretok
writes transformers' version instead (for reproducing it byte for byte).
"""
import argparse
import json
import os
import struct
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "reference"))

import llama_ref  # noqa: E402  (dequantize, hf_from_gguf_qk)


def f32_decimal(x):
    """Shortest decimal that reads back as the same float32 (1e-05, not 9.99999974e-06)."""
    return float(np.format_float_positional(np.float32(x), unique=True, trim="-"))


def read_gguf(path):
    import gguf

    r = gguf.GGUFReader(path)
    meta = {}
    for k, f in r.fields.items():
        if k.startswith("GGUF."):
            continue
        meta[k] = f.contents()
    return r, meta


# ---------------------------------------------------------------------------
# config / generation_config / tokenizer_config
# ---------------------------------------------------------------------------
def make_config(meta, tied, dtype_name):
    a = meta["general.architecture"]
    if a != "llama":
        raise SystemExit(f"make_llm_hf_dir: architecture {a!r} is not llama")
    g = lambda k, d=None: meta.get(f"{a}.{k}", d)
    n_head = int(g("attention.head_count"))
    d = int(g("embedding_length"))
    if int(g("rope.dimension_count", d // n_head)) != d // n_head:
        raise SystemExit("make_llm_hf_dir: partial rotary dims are not supported")
    if g("rope.scaling.type") not in (None, "none"):
        raise SystemExit("make_llm_hf_dir: rope scaling is not supported")
    cfg = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "mlp_bias": False,
        "hidden_act": "silu",
        "hidden_size": d,
        "intermediate_size": int(g("feed_forward_length")),
        "num_hidden_layers": int(g("block_count")),
        "num_attention_heads": n_head,
        "num_key_value_heads": int(g("attention.head_count_kv", n_head)),
        "head_dim": d // n_head,
        "max_position_embeddings": int(g("context_length")),
        "rms_norm_eps": f32_decimal(g("attention.layer_norm_rms_epsilon")),
        "rope_theta": f32_decimal(g("rope.freq_base", 10000.0)),
        "rope_scaling": None,
        "tie_word_embeddings": bool(tied),
        "vocab_size": int(g("vocab_size", len(meta["tokenizer.ggml.tokens"]))),
        "bos_token_id": _opt_int(meta.get("tokenizer.ggml.bos_token_id")),
        "eos_token_id": _opt_int(meta.get("tokenizer.ggml.eos_token_id")),
        "pad_token_id": _opt_int(meta.get("tokenizer.ggml.padding_token_id")),
        "initializer_range": 0.02,
        "pretraining_tp": 1,
        "use_cache": True,
        "torch_dtype": {"f32": "float32", "bf16": "bfloat16", "f16": "float16"}[dtype_name],
    }
    return cfg


def _opt_int(v):
    return None if v is None else int(v)


def make_generation_config(meta):
    gc = {"_from_model_config": True}
    for hf, key in (("bos_token_id", "bos_token_id"), ("eos_token_id", "eos_token_id"), ("pad_token_id", "padding_token_id")):
        v = meta.get(f"tokenizer.ggml.{key}")
        if v is not None:
            gc[hf] = int(v)
    return gc


# ---------------------------------------------------------------------------
# tokenizer.json (byte-level BPE), as transformers' GGUF conversion builds it
# ---------------------------------------------------------------------------
def bytes_to_unicode():
    """GPT-2's byte -> printable character table (the same as tokenizers' ByteLevel)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


BYTE_LEVEL = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}


def control_tokens(meta):
    """(id, text) of the tokens the GGUF marks CONTROL (token_type 3)."""
    toks = meta["tokenizer.ggml.tokens"]
    types = meta.get("tokenizer.ggml.token_type") or [1] * len(toks)
    alphabet = set(bytes_to_unicode().values())
    # transformers skips a CONTROL token spelled outside the byte alphabet (a mislabel)
    return [(i, t) for i, (t, ty) in enumerate(zip(toks, types)) if ty == 3 and set(t) <= alphabet]


def make_tokenizer_json(meta, transformers_pretok=False):
    """The tokenizers JSON object; key order and layout as tokenizers' save()."""
    if meta.get("tokenizer.ggml.model") != "gpt2":
        raise SystemExit(f"make_llm_hf_dir: tokenizer model {meta.get('tokenizer.ggml.model')!r} is not gpt2 (byte-level BPE)")
    pre = meta.get("tokenizer.ggml.pre")
    if pre not in ("smollm", "gpt2", "default", None) and not transformers_pretok:
        raise SystemExit(f"make_llm_hf_dir: pre-tokenizer {pre!r} not supported (smollm, gpt2)")
    spell = bytes_to_unicode()
    alphabet = set(spell.values())
    vocab = {}
    for i, t in enumerate(meta["tokenizer.ggml.tokens"]):
        if not set(t) <= alphabet:  # as transformers' byte_level_tokenizer: re-spell in the byte alphabet
            t = "".join(spell[b] for b in t.encode("utf-8"))
        vocab[t] = i
    merges = [m.split(" ") for m in meta["tokenizer.ggml.merges"]]
    bl = dict(BYTE_LEVEL, add_prefix_space=bool(meta.get("tokenizer.ggml.add_space_prefix", False)))
    if pre == "smollm" and not transformers_pretok:
        # llama.cpp's smollm pre-tokenizer: every \p{N} character alone, then the GPT-2 regex
        pre_tok = {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True}, bl]}
    else:
        pre_tok = bl
    added = [
        {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
        for i, t in control_tokens(meta)
    ]
    tok = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": pre_tok,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {},
        },
        "decoder": dict(BYTE_LEVEL, add_prefix_space=True),
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": "",
            "end_of_word_suffix": "",
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": vocab,
            "merges": merges,
        },
    }
    return tok, [t for _, t in control_tokens(meta)]


def make_tokenizer_config(meta, added):
    toks = meta["tokenizer.ggml.tokens"]
    name = lambda key: toks[int(meta[key])] if key in meta else None
    cfg = {
        "add_bos_token": bool(meta.get("tokenizer.ggml.add_bos_token", False)),
        "add_eos_token": bool(meta.get("tokenizer.ggml.add_eos_token", False)),
        "add_prefix_space": bool(meta.get("tokenizer.ggml.add_space_prefix", False)),
        "bos_token": name("tokenizer.ggml.bos_token_id"),
        "eos_token": name("tokenizer.ggml.eos_token_id"),
        "unk_token": name("tokenizer.ggml.unknown_token_id"),
        "pad_token": name("tokenizer.ggml.padding_token_id"),
        "additional_special_tokens": added,
        "clean_up_tokenization_spaces": False,
        "model_max_length": int(meta.get(f"{meta['general.architecture']}.context_length", 2048)),
        "tokenizer_class": "GPT2Tokenizer",
    }
    if "tokenizer.chat_template" in meta:
        cfg["chat_template"] = meta["tokenizer.chat_template"]
    return cfg


# ---------------------------------------------------------------------------
# safetensors
# ---------------------------------------------------------------------------
HF_NAMES = {
    "attn_norm": "input_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_norm": "post_attention_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}


def hf_tensors(reader, meta):
    """Yield (hf_name, fp32 array) for every tensor of the GGUF."""
    n_head = int(meta["llama.attention.head_count"])
    n_head_kv = int(meta.get("llama.attention.head_count_kv", n_head))
    for t in reader.tensors:
        shape = [int(s) for s in t.shape]
        v = llama_ref.dequantize(t.data, t.tensor_type.name, int(np.prod(shape)))
        v = v.reshape(list(reversed(shape))) if len(shape) > 1 else v
        name = t.name
        if name == "token_embd.weight":
            hf = "model.embed_tokens.weight"
        elif name == "output_norm.weight":
            hf = "model.norm.weight"
        elif name == "output.weight":
            hf = "lm_head.weight"
        elif name.startswith("blk."):
            _, i, kind, _ = name.split(".")
            if kind not in HF_NAMES:
                raise SystemExit(f"make_llm_hf_dir: unknown tensor {name}")
            hf = f"model.layers.{i}.{HF_NAMES[kind]}.weight"
            if kind == "attn_q":
                v = llama_ref.hf_from_gguf_qk(v, n_head)
            elif kind == "attn_k":
                v = llama_ref.hf_from_gguf_qk(v, n_head_kv)
        else:
            raise SystemExit(f"make_llm_hf_dir: unknown tensor {name}")
        yield hf, v


def to_dtype_bytes(v, dtype_name):
    """(safetensors dtype, little-endian bytes) of fp64 array v."""
    if dtype_name == "f32":
        return "F32", np.ascontiguousarray(v, "<f4").tobytes()
    if dtype_name == "f16":
        return "F16", np.ascontiguousarray(v, "<f2").tobytes()
    # bf16: round the fp32 value to nearest even in the upper 16 bits
    u = np.ascontiguousarray(v, "<f4").view("<u4").astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return "BF16", u.astype("<u2").tobytes()


def write_safetensors(path, items, dtype_name):
    """items: iterable of (name, array). The format: u64 header length, JSON
    header (name -> dtype, shape, data_offsets), then the tensors' bytes."""
    header, blobs, off = {}, [], 0
    for name, v in items:
        dt, b = to_dtype_bytes(v, dtype_name)
        header[name] = {"dtype": dt, "shape": list(v.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header = dict(sorted(header.items()))  # offsets keep the data in written order
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("gguf")
    ap.add_argument("outdir")
    ap.add_argument("--dtype", choices=("f32", "bf16", "f16"), default="f32")
    ap.add_argument("--transformers-pretok", action="store_true",
                    help="write transformers' (digit-merging) pre-tokenizer instead of llama.cpp's smollm one")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    reader, meta = read_gguf(a.gguf)
    t1 = time.perf_counter()
    os.makedirs(a.outdir, exist_ok=True)
    names = {t.name for t in reader.tensors}
    tied = "output.weight" not in names
    items = list(hf_tensors(reader, meta))
    t2 = time.perf_counter()
    write_safetensors(os.path.join(a.outdir, "model.safetensors"), items, a.dtype)
    t3 = time.perf_counter()
    tok, added = make_tokenizer_json(meta, a.transformers_pretok)
    files = {
        "config.json": make_config(meta, tied, a.dtype),
        "generation_config.json": make_generation_config(meta),
        "tokenizer_config.json": make_tokenizer_config(meta, added),
    }
    for fn, obj in files.items():
        with open(os.path.join(a.outdir, fn), "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, ensure_ascii=False)
            f.write("\n")
    with open(os.path.join(a.outdir, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tok, f, indent=2, ensure_ascii=False)
    t4 = time.perf_counter()
    print(f"make_llm_hf_dir: {len(items)} tensors ({a.dtype}) -> {a.outdir}: read {t1 - t0:.1f}s, "
          f"dequantize {t2 - t1:.1f}s, write {t3 - t2:.1f}s, tokenizer+configs {t4 - t3:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
