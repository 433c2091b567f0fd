"""Cancelling a generation over Kafka (README "The wire contract": cancel
records) on the real broker, against a real SmolLM2 worker; clients are
fastavro + confluent-kafka and the official `openai` package.

- A long streamed generation (max_tokens 400, ignore_eos), then a cancel
  record (header kinfer-cancel, the request's key, a request with its id):
  its one final reply says finish_reason cancelled with fewer than 400
  tokens, and its chunks still concatenate to that text. A cancel for an id
  not in flight gets no reply and the worker answers the next request. The
  cancel records themselves get no reply, and once the worker stops its
  committed offset covers them (nothing is redelivered). In both delivery
  modes (exactly-once: cancel records go through the partition's release
  order without a produce).
- Through `kinfer gateway`: a stream=True chat completion closed by the
  client after two chunks is cancelled on the worker (the final reply on
  the reply topic says cancelled; the worker logs the cancel).
"""

import socket
import time
import urllib.request
import uuid

import pytest

from llm_helpers import LLM, check_stream, gen_request, llm_config, produce, read_replies
from test_gateway_openai import Gateway
from worker_helpers import Worker, committed, consume, encode, end_offsets, produce_all, producer

pytestmark = [pytest.mark.kafka, pytest.mark.worker, pytest.mark.slow]

CANCEL = ("kinfer-cancel", b"1")


def _cancel_record(schema, rid, replies):
    """(key, value, headers, partition) of a cancel record for request rid."""
    r = gen_request(rid, replies, prompt="-")
    return (rid.encode(), encode(schema, r), [CANCEL], None)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _metric(url, name):
    body = urllib.request.urlopen(url, timeout=10).read().decode()
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


@pytest.mark.parametrize("mode", ["at-least-once", "exactly-once"])
def test_cancel_record_ends_a_generation(mode, tmp_path, bootstrap, make_topic, kinfer_bin,
                                         schemas):
    topic, replies = make_topic(partitions=1, hint="cancel"), make_topic(partitions=1,
                                                                          hint="cancel-rep")
    eos = mode == "exactly-once"
    group = "g-" + uuid.uuid4().hex[:8]
    port = _free_port()
    cfg = llm_config(tmp_path / "w.conf", bootstrap, topic, group,
                     extra_top='delivery = "exactly-once";' if eos else "",
                     extra_kafka='producer_properties = ["transaction.timeout.ms=10000"];'
                     if eos else "",
                     extra_worker=f'id = "cancel-{uuid.uuid4().hex[:6]}";',
                     http_listen=f"127.0.0.1:{port}")
    conf = {"isolation.level": "read_committed"} if eos else None
    w = Worker(kinfer_bin, cfg, tmp_path / "w.log")
    stopped = False
    try:
        w.wait_assigned(60)
        tag = uuid.uuid4().hex[:6]
        rid, nobody, after = f"long-{tag}", f"nobody-{tag}", f"after-{tag}"
        p = producer(bootstrap)
        produce(p, topic, schemas["request"],
                [gen_request(rid, replies, prompt="Count: 1, 2, 3,", max_tokens=400,
                             ignore_eos=True, stream=True, temperature=0.0)])
        # In flight: its first chunk is out.
        got = read_replies(bootstrap, replies, schemas["response"], [rid], timeout=60, conf=conf,
                           until=lambda r: len(r.chunks[rid]) >= 1 or rid in r.finals)
        assert got.chunks[rid] and rid not in got.finals, w.text()[-3000:]
        produce_all(p, topic, [_cancel_record(schemas["request"], rid, replies),
                               _cancel_record(schemas["request"], nobody, replies),
                               # bad input: a cancel record no reader can decode
                               (rid.encode(), b"\x00\xffnot avro", [("kinfer-cancel", b"1")],
                                None)])
        produce(p, topic, schemas["request"],
                [gen_request(after, replies, prompt="Hi", max_tokens=2, temperature=0.0)])
        got = read_replies(bootstrap, replies, schemas["response"], [rid, after], timeout=60,
                           settle=1.5, conf=conf)
        (final,) = got.finals[rid]  # one: the cancel record got no reply of its own
        gen = final["generation"]
        assert final["status"] == "OK", final["error"]
        assert gen["finish_reason"] == "cancelled", gen
        assert 1 <= gen["usage"]["completion_tokens"] < 400
        check_stream(got.chunks[rid], final)
        assert nobody not in got.finals and not got.chunks[nobody]
        (done,) = got.finals[after]
        assert done["status"] == "OK" and done["generation"]["finish_reason"] == "length"
        assert "event=worker.cancel " in w.text()
        # The undecodable cancel record is dead-lettered with its reason.
        (dead,) = consume(bootstrap, topic + ".dlq", 1, timeout=30, conf=conf)
        hdrs = dict(dead.headers() or [])
        assert dead.value() == b"\x00\xffnot avro" and hdrs.get("kinfer-error"), hdrs
        assert _metric(f"http://127.0.0.1:{port}/metrics", "kinfer_generations_cancelled_total") == 1
    finally:
        rc = w.stop()
        stopped = True
        assert rc == 0, w.text()[-3000:]
    assert stopped
    # Every record, the two cancel records included, is committed: nothing
    # would be redelivered to the next owner.
    assert committed(bootstrap, group, topic, 1) == end_offsets(bootstrap, topic, 1) == {0: 5}


@pytest.fixture
def gw_env(bootstrap, make_topic, kinfer_bin, tmp_path):
    topic = make_topic(partitions=1, hint="gwc-llm")
    replies = make_topic(partitions=1, hint="gwc-llm-replies")
    state = make_topic(partitions=1, config={"cleanup.policy": "compact"}, hint="gwc-state")
    files = tmp_path / "files"
    files.mkdir()
    cfg = llm_config(tmp_path / "w.conf", bootstrap, topic, f"kinfer-gwc-{time.time_ns()}",
                     extra_kafka=f'reply_topic_pattern = "{replies}";')
    w = Worker(kinfer_bin, cfg, tmp_path / "w.log")
    w.wait_assigned(timeout=120)
    g = Gateway(kinfer_bin, bootstrap, topic, replies, state, files, tmp_path / "gw.log")
    yield g, w, replies
    g.stop()
    assert w.stop() == 0, w.text()[-3000:]


def test_gateway_client_disconnect_cancels(gw_env, bootstrap, schemas):
    g, w, replies = gw_env
    c = g.client()
    stream = c.chat.completions.create(
        model=LLM, stream=True, max_tokens=400, temperature=0,
        messages=[{"role": "user", "content": "Count from 1 to 500, separated by commas."}])
    n = 0
    for ch in stream:
        if ch.choices and ch.choices[0].delta.content:
            n += 1
            if n == 2:
                break
    stream.close()
    assert n == 2

    def cancelled(r):
        return any(f["generation"] and f["generation"]["finish_reason"] == "cancelled"
                   for fs in r.finals.values() for f in fs)

    got = read_replies(bootstrap, replies, schemas["response"], [], timeout=60, until=cancelled)
    (final,) = [f for fs in got.finals.values() for f in fs]
    assert final["status"] == "OK", final["error"]
    assert final["generation"]["finish_reason"] == "cancelled", final["generation"]
    assert final["generation"]["usage"]["completion_tokens"] < 400
    assert "event=worker.cancel " in w.text(), w.text()[-3000:]
