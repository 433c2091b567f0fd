"""`kinfer gateway` checked with the official `openai` Python package
(PyPI openai, pinned in requirements-test.txt) against a real worker serving
all-MiniLM-L6-v2 on the real broker.

embeddings.create (float and the client's default base64) against the
committed sentence-transformers references; 401 for a missing or wrong key
in the OpenAI error shape; bad input (unknown model, empty input, malformed
JSON, unknown URL, an unsupported batch endpoint, an oversized file) as
OpenAI errors; chat.completions.create and completions.create against SmolLM2; files.create + batches.create + polling batches.retrieve to
completed + downloading the output and error files; list and cancel; a
second gateway instance answering for a batch the first one made; kill -9 of
the gateway, or of the worker, mid-batch and a restart, after which every
line is in the output exactly once.
"""

import json
import re
import signal
import subprocess
import time

import httpx2
import numpy as np
import openai
import pytest

from test_batch import minilm_worker, sentence  # noqa: F401 (fixture)
from test_worker_bert import corpus

KEY = "sk-kinfer-test-key"


class Gateway:
    def __init__(self, kinfer_bin, bootstrap, topic, replies, state, files, log, *extra):
        self.log_path = log
        self.log = open(log, "w")
        self.p = subprocess.Popen(
            [str(kinfer_bin), "gateway", "-b", bootstrap, "-t", topic, "--reply-topic", replies,
             "--state-topic", state, "--files-dir", str(files), "--listen", "127.0.0.1:0",
             "--api-key", KEY, "--timeout", "60s", *extra],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        self.port = None
        while time.time() < deadline and self.port is None:
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", log.read_text())
            if m:
                self.port = int(m.group(1))
            elif self.p.poll() is not None:
                break
            time.sleep(0.1)
        assert self.port, log.read_text()
        self.base = f"http://127.0.0.1:{self.port}/v1"

    def client(self, key=KEY):
        return openai.OpenAI(api_key=key, base_url=self.base, max_retries=0, timeout=60)

    def stop(self, sig=signal.SIGTERM):
        if self.p.poll() is None:
            self.p.send_signal(sig)
            self.p.wait(timeout=60)
        self.log.close()
        return self.p.returncode


@pytest.fixture
def gateway_env(minilm_worker, bootstrap, make_topic, kinfer_bin, tmp_path):  # noqa: F811
    topic, replies, w = minilm_worker
    state = make_topic(partitions=1, config={"cleanup.policy": "compact"}, hint="gw-state")
    files = tmp_path / "files"
    files.mkdir()
    made = []

    def start(*extra, name="gw"):
        g = Gateway(kinfer_bin, bootstrap, topic, replies, state, files, tmp_path / f"{name}.log",
                    *extra)
        made.append(g)
        return g

    yield start, w
    for g in made:
        g.stop(signal.SIGKILL if g.p.poll() is None else signal.SIGTERM)


def test_embeddings_create_matches_sentence_transformers(gateway_env):
    start, _ = gateway_env
    c = start().client()
    texts, ref = corpus()
    picks = [0, 3, 7, 11]
    r = c.embeddings.create(model="minilm", input=[texts[i] for i in picks])  # base64 default
    assert r.object == "list" and r.model == "minilm" and len(r.data) == len(picks)
    for d, i in zip(r.data, picks):
        v = np.asarray(d.embedding, dtype=np.float32)
        assert d.index == picks.index(i) and v.shape == (384,)
        cos = float(v @ ref[i] / (np.linalg.norm(v) * np.linalg.norm(ref[i])))
        assert cos >= 0.9999, cos
    f = c.embeddings.create(model="minilm", input=texts[0], encoding_format="float")
    assert np.abs(np.asarray(f.data[0].embedding, dtype=np.float32) - ref[0]).max() <= 1e-4


def test_missing_or_wrong_key_is_401_in_the_openai_shape(gateway_env):
    start, _ = gateway_env
    g = start()
    with pytest.raises(openai.AuthenticationError) as e:
        g.client(key="sk-wrong").embeddings.create(model="minilm", input="x")
    assert e.value.status_code == 401
    assert e.value.body["code"] == "invalid_api_key" and e.value.body["message"]
    r = httpx2.get(f"{g.base}/batches")  # no Authorization header at all
    assert r.status_code == 401
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["type"] == "authentication_error"


def test_bad_input_gets_openai_errors(gateway_env):
    start, _ = gateway_env
    g = start()
    c = g.client()
    with pytest.raises(openai.NotFoundError) as e:
        c.embeddings.create(model="no-such-model", input="x")
    assert e.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as e:
        c.embeddings.create(model="minilm", input=[])
    assert "empty" in e.value.body["message"]
    with pytest.raises(openai.BadRequestError) as e:
        c.batches.create(input_file_id="file-00", endpoint="/v1/images/generations",
                         completion_window="24h")
    assert e.value.body["code"] == "invalid_value"
    with pytest.raises(openai.NotFoundError):
        c.batches.retrieve("batch_doesnotexist")
    with pytest.raises(openai.NotFoundError):
        c.files.retrieve("file-0123")
    h = {"Authorization": f"Bearer {KEY}"}
    r = httpx2.post(f"{g.base}/embeddings", content=b'{"model": "minilm", "input": ', headers=h)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    r = httpx2.post(f"{g.base}/images/generations", json={}, headers=h)
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_url"
    r = httpx2.post(f"{g.base}/files", files={"file": ("a.jsonl", b"{}\n")},
                    data={"purpose": "fine-tune"}, headers=h)
    assert r.status_code == 400 and "purpose" in r.json()["error"]["message"]
    small = start("--max-file-bytes", "100", name="gw-small")
    with pytest.raises(openai.APIStatusError) as e:
        small.client().files.create(file=("big.jsonl", b"x" * 1000), purpose="batch")
    assert e.value.status_code == 413 and e.value.body["code"] == "file_too_large"
    # An unauthenticated upload is refused before its bytes are read.
    r = httpx2.post(f"{small.base}/files", files={"file": ("a.jsonl", b"y" * 5000)},
                    data={"purpose": "batch"})
    assert r.status_code == 401


def batch_input(n, bad=True):
    lines = [json.dumps({"custom_id": f"q{i}", "method": "POST", "url": "/v1/embeddings",
                         "body": {"model": "minilm", "input": sentence(i)}}) for i in range(n)]
    if bad:
        lines.insert(3, '{"custom_id": "broken", ')
        lines.insert(5, json.dumps({"custom_id": "nomodel", "method": "POST",
                                    "url": "/v1/embeddings",
                                    "body": {"model": "absent", "input": "x"}}))
    return ("\n".join(lines) + "\n").encode()


def wait_status(c, bid, want, timeout=180):
    deadline = time.time() + timeout
    seen = []
    while time.time() < deadline:
        b = c.batches.retrieve(bid)
        if not seen or seen[-1] != b.status:
            seen.append(b.status)
        if b.status in want:
            return b, seen
        time.sleep(0.3)
    raise AssertionError(f"batch {bid} never reached {want}: {seen}")


def test_files_and_batches_to_completed_output(gateway_env, tmp_path):
    start, _ = gateway_env
    g = start()
    c = g.client()
    f = c.files.create(file=("in.jsonl", batch_input(20)), purpose="batch")
    assert f.purpose == "batch" and f.bytes > 0 and f.id.startswith("file-")
    assert c.files.retrieve(f.id).filename == "in.jsonl"
    assert c.files.content(f.id).read() == batch_input(20)
    b = c.batches.create(input_file_id=f.id, endpoint="/v1/embeddings", completion_window="24h",
                         metadata={"job": "nightly"})
    assert b.status == "validating" and b.input_file_id == f.id
    assert b.metadata == {"job": "nightly"}
    done, seen = wait_status(c, b.id, {"completed", "failed"})
    assert done.status == "completed", (seen, g.log_path.read_text()[-2000:])
    assert seen[-1] == "completed" and set(seen) <= {"validating", "in_progress", "finalizing",
                                                      "completed"}
    assert done.request_counts.total == 22
    assert done.request_counts.completed == 20 and done.request_counts.failed == 2
    assert done.completed_at and done.in_progress_at and done.output_file_id
    out = [json.loads(x) for x in c.files.content(done.output_file_id).text.splitlines()]
    assert sorted(x["custom_id"] for x in out) == sorted(f"q{i}" for i in range(20))
    for x in out:
        assert x["response"]["status_code"] == 200
        assert len(x["response"]["body"]["data"][0]["embedding"]) == 384
    errs = [json.loads(x) for x in c.files.content(done.error_file_id).text.splitlines()]
    assert sorted(e["error"]["code"] for e in errs) == ["invalid_json", "model_not_found"]
    # A second instance answers for the batch from the state topic.
    g2 = start(name="gw2")
    again = g2.client().batches.retrieve(b.id)
    assert again.status == "completed" and again.output_file_id == done.output_file_id
    ids = [x.id for x in g2.client().batches.list(limit=10).data]
    assert b.id in ids
    with pytest.raises(openai.ConflictError):
        c.batches.cancel(b.id)
    listed = [x.id for x in c.files.list(purpose="batch")]
    assert f.id in listed and done.output_file_id not in listed  # that one is batch_output
    assert c.files.delete(f.id).deleted
    with pytest.raises(openai.NotFoundError):
        c.files.retrieve(f.id)


def test_cancel_a_running_batch(gateway_env):
    start, _ = gateway_env
    c = start("--batch-in-flight", "1").client()
    f = c.files.create(file=("big.jsonl", batch_input(400, bad=False)), purpose="batch")
    b = c.batches.create(input_file_id=f.id, endpoint="/v1/embeddings", completion_window="24h")
    wait_status(c, b.id, {"in_progress"}, timeout=60)
    assert c.batches.cancel(b.id).status in ("cancelling", "cancelled")
    done, seen = wait_status(c, b.id, {"cancelled"}, timeout=120)
    assert done.cancelled_at and done.request_counts.completed < 400
    out = c.files.content(done.output_file_id).text.splitlines()
    assert len(out) == done.request_counts.completed


def test_kill_minus_9_of_the_gateway_mid_batch_loses_and_repeats_nothing(gateway_env):
    start, _ = gateway_env
    g = start("--batch-in-flight", "2")
    c = g.client()
    n = 300
    f = c.files.create(file=("k.jsonl", batch_input(n, bad=False)), purpose="batch")
    b = c.batches.create(input_file_id=f.id, endpoint="/v1/embeddings", completion_window="24h")
    deadline = time.time() + 120
    while time.time() < deadline:
        cur = c.batches.retrieve(b.id)
        if cur.request_counts and cur.request_counts.completed >= 30:
            break
        time.sleep(0.2)
    assert cur.request_counts.completed < n, "finished before the kill: nothing tested"
    g.stop(signal.SIGKILL)
    g2 = start("--batch-in-flight", "8", name="gw-restarted")
    done, seen = wait_status(g2.client(), b.id, {"completed"}, timeout=240)
    out = [json.loads(x) for x in g2.client().files.content(done.output_file_id).text.splitlines()]
    ids = [x["custom_id"] for x in out]
    assert len(ids) == n and sorted(ids) == sorted(f"q{i}" for i in range(n))
    assert done.request_counts.completed == n and done.request_counts.failed == 0
    runs = {x["response"]["request_id"].split(".")[1] for x in out}
    assert runs == {"1", "2"}  # lines from before the kill were kept, not redone


def test_kill_minus_9_of_the_worker_mid_batch_loses_and_repeats_nothing(gateway_env):
    start, m = gateway_env
    c = start("--batch-in-flight", "1").client()
    n = 300
    f = c.files.create(file=("w.jsonl", batch_input(n, bad=False)), purpose="batch")
    b = c.batches.create(input_file_id=f.id, endpoint="/v1/embeddings", completion_window="24h")
    deadline = time.time() + 120
    while time.time() < deadline:
        cur = c.batches.retrieve(b.id)
        if cur.request_counts and cur.request_counts.completed >= 10:
            break
        time.sleep(0.1)
    m.kill()
    assert c.batches.retrieve(b.id).request_counts.completed < n, "finished before the kill"
    m.start()  # its replacement takes the partitions and redoes what was not committed
    done, seen = wait_status(c, b.id, {"completed"}, timeout=240)
    out = [json.loads(x) for x in c.files.content(done.output_file_id).text.splitlines()]
    assert sorted(x["custom_id"] for x in out) == sorted(f"q{i}" for i in range(n))
    assert done.request_counts.completed == n and done.request_counts.failed == 0
    assert done.error_file_id is None


def test_chat_and_completions_against_smollm2(bootstrap, make_topic, kinfer_bin, tmp_path):
    """chat.completions.create and completions.create (non-streaming) through
    the gateway to a worker serving SmolLM2 (kind llm): greedy text equal to
    the same request asked twice, usage counted; a chat batch completes
    (stream=True: test_gateway_stream.py)."""
    from llm_helpers import LLM, llm_config
    from worker_helpers import Worker

    topic = make_topic(partitions=1, hint="gw-llm")
    replies = make_topic(partitions=1, hint="gw-llm-replies")
    state = make_topic(partitions=1, config={"cleanup.policy": "compact"}, hint="gw-llm-state")
    cfg = llm_config(tmp_path / "llm.conf", bootstrap, topic, f"kinfer-gwllm-{time.time_ns()}",
                     extra_kafka=f'reply_topic_pattern = "{replies}";')
    w = Worker(kinfer_bin, cfg, tmp_path / "llm.log")
    files = tmp_path / "files"
    files.mkdir()
    g = None
    try:
        w.wait_assigned(timeout=120)
        g = Gateway(kinfer_bin, bootstrap, topic, replies, state, files, tmp_path / "gw.log")
        c = g.client()
        msgs = [{"role": "user", "content": "Say hello."}]
        a = c.chat.completions.create(model=LLM, messages=msgs, max_tokens=8, temperature=0)
        b = c.chat.completions.create(model=LLM, messages=msgs, max_tokens=8, temperature=0)
        assert a.object == "chat.completion" and a.choices[0].message.role == "assistant"
        assert a.choices[0].message.content and a.choices[0].message.content == \
            b.choices[0].message.content
        assert a.choices[0].finish_reason in ("stop", "length")
        assert a.usage.prompt_tokens > 0 and 0 < a.usage.completion_tokens <= 8
        assert a.usage.total_tokens == a.usage.prompt_tokens + a.usage.completion_tokens
        t = c.completions.create(model=LLM, prompt="Once upon a time", max_tokens=6,
                                 temperature=0)
        assert t.object == "text_completion" and t.choices[0].text
        with pytest.raises(openai.BadRequestError) as e:  # no messages
            c.chat.completions.create(model=LLM, messages=[])
        assert "messages" in e.value.body["message"]
        # A chat batch through the same gateway.
        body = {"model": LLM, "messages": msgs, "max_tokens": 8, "temperature": 0}
        data = "".join(json.dumps({"custom_id": f"k{i}", "method": "POST",
                                   "url": "/v1/chat/completions", "body": body}) + "\n"
                       for i in range(3)).encode()
        f = c.files.create(file=("chat.jsonl", data), purpose="batch")
        bt = c.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions",
                              completion_window="24h")
        done, _ = wait_status(c, bt.id, {"completed", "failed"}, timeout=180)
        assert done.status == "completed" and done.request_counts.completed == 3
        out = [json.loads(x) for x in c.files.content(done.output_file_id).text.splitlines()]
        assert {x["response"]["body"]["choices"][0]["message"]["content"] for x in out} == \
            {a.choices[0].message.content}
    finally:
        if g:
            g.stop()
        assert w.stop() == 0, w.text()[-3000:]
