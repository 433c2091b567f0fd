"""`"stream": true` through `kinfer gateway`, checked with the official
`openai` Python package (and, for the wire format, a plain HTTP client)
against real workers serving SmolLM2 (kind llm) on the real broker.

- chat.completions.create(stream=True) and completions.create(stream=True):
  the deltas, joined, are exactly the greedy text the same request gets
  without streaming; the text comes in several chunks; the first chat chunk
  carries the assistant role, the last the finish reason; with
  stream_options include_usage a last chunk has empty choices and usage
  equal to the non-streamed usage.
- The wire: 200, text/event-stream, `data: {json}` events, `data: [DONE]` last.
- Refusals before any token keep their HTTP status and the OpenAI error
  shape (unknown model -> 404, bad options -> 400, stream_options without
  stream -> 400).
- SIGTERM of the gateway while it streams: it exits 0, the stream is cut.
- kill -9 of the worker while it streams: the group hands the request to a
  second worker, which runs it again from the start; the client's stream
  still ends with exactly the greedy text (the repeated chunks are left out).
"""

import json
import signal
import time

import httpx2
import openai
import pytest

from llm_helpers import LLM, llm_config
from test_gateway_openai import KEY, Gateway
from worker_helpers import Worker

MSGS = [{"role": "user", "content": "Write a short poem about the sea."}]


def _stream_chat(c, **kw):
    """(joined content, chunks, arrival times from the call) of a streamed
    chat completion."""
    chunks, times, t0 = [], [], time.monotonic()
    for ch in c.chat.completions.create(model=LLM, messages=MSGS, stream=True, **kw):
        chunks.append(ch)
        times.append(time.monotonic() - t0)
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    return text, chunks, times


@pytest.fixture
def llm_env(bootstrap, make_topic, kinfer_bin, tmp_path):
    topic = make_topic(partitions=1, hint="gws-llm")
    replies = make_topic(partitions=1, hint="gws-llm-replies")
    state = make_topic(partitions=1, config={"cleanup.policy": "compact"}, hint="gws-state")
    group = f"kinfer-gws-{time.time_ns()}"
    files = tmp_path / "files"
    files.mkdir()
    made = []

    def worker(name):
        cfg = llm_config(tmp_path / f"{name}.conf", bootstrap, topic, group,
                         extra_kafka=f'reply_topic_pattern = "{replies}";')
        w = Worker(kinfer_bin, cfg, tmp_path / f"{name}.log")
        made.append(w)
        return w

    w = worker("w1")
    w.wait_assigned(timeout=120)
    g = Gateway(kinfer_bin, bootstrap, topic, replies, state, files, tmp_path / "gw.log")
    yield g, w, worker
    g.stop()
    for x in made:
        if x.proc.poll() is None:
            assert x.stop() == 0, x.text()[-3000:]


def test_streamed_text_equals_the_non_streamed_text(llm_env):
    g, _, _ = llm_env
    c = g.client()
    want = c.chat.completions.create(model=LLM, messages=MSGS, max_tokens=24, temperature=0)
    text, chunks, times = _stream_chat(c, max_tokens=24, temperature=0,
                                       stream_options={"include_usage": True})
    assert text == want.choices[0].message.content and text
    content = [ch for ch in chunks if ch.choices and ch.choices[0].delta.content]
    assert len(content) >= 2, f"the text came in {len(content)} chunk(s): not streamed"
    assert all(ch.object == "chat.completion.chunk" and ch.model == LLM for ch in chunks)
    assert len({ch.id for ch in chunks}) == 1 and chunks[0].id.startswith("chatcmpl-")
    assert chunks[0].choices[0].delta.role == "assistant"
    finish = [ch for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    assert len(finish) == 1 and finish[0].choices[0].finish_reason == \
        want.choices[0].finish_reason
    assert not chunks[-1].choices, "with include_usage the last chunk has no choices"
    assert chunks[-1].usage.prompt_tokens == want.usage.prompt_tokens
    assert chunks[-1].usage.completion_tokens == want.usage.completion_tokens
    assert chunks[-1].usage.total_tokens == want.usage.total_tokens
    assert all(ch.usage is None for ch in chunks[:-1])
    print(f"{len(content)} content chunks, the first after {times[0]:.3f}s, "
          f"the last after {times[-1]:.3f}s")

    # Without stream_options: no usage chunk, the finish chunk is the last.
    text2, chunks2, _ = _stream_chat(c, max_tokens=24, temperature=0)
    assert text2 == text and chunks2[-1].choices[0].finish_reason
    assert all(getattr(ch, "usage", None) is None for ch in chunks2)

    # completions.create(stream=True)
    want_t = c.completions.create(model=LLM, prompt="The sea is", max_tokens=12, temperature=0)
    parts = list(c.completions.create(model=LLM, prompt="The sea is", max_tokens=12,
                                      temperature=0, stream=True))
    assert "".join(p.choices[0].text for p in parts) == want_t.choices[0].text
    assert all(p.object == "text_completion" for p in parts)
    assert parts[-1].choices[0].finish_reason == want_t.choices[0].finish_reason


def test_the_wire_is_server_sent_events(llm_env):
    g, _, _ = llm_env
    body = {"model": LLM, "messages": MSGS, "max_tokens": 8, "temperature": 0, "stream": True}
    with httpx2.stream("POST", g.base + "/chat/completions", json=body, timeout=60,
                       headers={"Authorization": f"Bearer {KEY}"}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        raw = "".join(r.iter_text())
    events = [e for e in raw.split("\n\n") if e.strip()]
    data = [e[len("data: "):] for e in events if e.startswith("data: ")]
    assert all(e.startswith("data: ") or e.startswith(":") for e in events), raw[:500]
    assert data[-1] == "[DONE]" and data.count("[DONE]") == 1
    for d in data[:-1]:
        assert json.loads(d)["object"] == "chat.completion.chunk"


def test_refusals_before_any_token_keep_their_status(llm_env):
    g, _, _ = llm_env
    c = g.client()
    with pytest.raises(openai.NotFoundError) as e:
        list(c.chat.completions.create(model="no-such-model", messages=MSGS, stream=True))
    assert e.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as e:
        list(c.chat.completions.create(model=LLM, messages=MSGS, stream=True, temperature=7))
    assert "temperature" in e.value.body["message"]
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model=LLM, messages=MSGS,
                                  stream_options={"include_usage": True})
    assert "stream_options" in e.value.body["message"]
    for bad, word in (({"stream": "yes"}, "stream must be a boolean"),
                      ({"stream": True, "stream_options": "usage"}, "stream_options"),
                      ({"stream": True, "stream_options": {"include_usage": 1}}, "include_usage")):
        r = httpx2.post(g.base + "/chat/completions", timeout=30,
                        headers={"Authorization": f"Bearer {KEY}"},
                        json={"model": LLM, "messages": MSGS, **bad})
        assert r.status_code == 400, (bad, r.text)
        assert word in r.json()["error"]["message"], (bad, r.text)
        assert r.json()["error"]["type"] == "invalid_request_error", r.text
    with pytest.raises(openai.AuthenticationError):
        list(g.client(key="sk-wrong").chat.completions.create(model=LLM, messages=MSGS,
                                                              stream=True))


def test_kill_minus_9_of_the_worker_mid_stream_still_ends_with_the_whole_text(llm_env):
    g, w1, worker = llm_env
    c = g.client()
    want = c.chat.completions.create(model=LLM, messages=MSGS, max_tokens=64, temperature=0)
    w2 = worker("w2")
    # w2 joins the group; with one partition it stays idle until w1 goes.
    time.sleep(2)
    it = iter(c.chat.completions.create(model=LLM, messages=MSGS, max_tokens=64, temperature=0,
                                        stream=True))
    first = [next(it), next(it)]  # the stream has begun on w1
    w1.proc.send_signal(signal.SIGKILL)
    w1.proc.wait(timeout=30)
    rest = list(it)
    chunks = first + rest
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == want.choices[0].message.content, (text, want.choices[0].message.content)
    assert sum(1 for ch in chunks if ch.choices and ch.choices[0].finish_reason) == 1
    assert "worker.assigned" in w2.text(), "the second worker never took the partition"
    g.log.flush()
    assert "seen again (the generation was restarted)" in g.log_path.read_text(), \
        "the stream ended before the kill: nothing was redelivered"


def test_sigterm_of_the_gateway_mid_stream_ends_it_and_exits_0(llm_env):
    g, _, _ = llm_env
    c = g.client()
    it = iter(c.chat.completions.create(model=LLM, messages=MSGS, max_tokens=64, temperature=0,
                                        stream=True))
    next(it)
    assert g.stop(signal.SIGTERM) == 0, g.log_path.read_text()[-2000:]
    try:  # the connection is cut (unless the generation was already done)
        for _ in it:
            pass
    except (openai.APIError, httpx2.HTTPError):
        pass
