#!/usr/bin/env python3
"""python_llm_worker.py — the peer of `kinfer worker` for generation over
Kafka: the worker a user would write with confluent-kafka + llama-cpp-python,
one request at a time, on the same GGUF and wire contract (fastavro and
schemas/*.avsc). Used by bench/llm_e2e_bench.py; not run in CI.

    /tmp/llmwire-venv/bin/python bench/python_llm_worker.py -b 127.0.0.1:19200 \\
        -t llm.requests -g pyworker [--gguf FILE] [--threads 2]

Loop: poll a request, render its chat messages with the model's built-in
template (or take the prompt), clear the KV cache, evaluate the prompt,
decode greedily (argmax in numpy on llama.cpp's logits) up to max_tokens or
an end-of-generation token (unless ignore_eos), produce one final reply
(no chunks), commit the offset. Prints "ready" once subscribed.

llama.cpp is driven through scripts/llamacpp_util.py (its low-level API):
the high-level `Llama` class cannot turn off ggml's AMX extra buffers, which
die with SIGILL in this VM (see that file). The work per token is the same
llama_decode a `Llama.create_chat_completion` call makes.
"""
import argparse
import io
import json
import os
import signal
import sys
import time

import fastavro
import numpy as np
from confluent_kafka import Consumer, Producer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "scripts"))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))

REQ = fastavro.parse_schema(json.load(open(os.path.join(ROOT, "schemas", "inference_request.avsc"))))
RESP = fastavro.parse_schema(json.load(open(os.path.join(ROOT, "schemas", "inference_response.avsc"))))


def generate(lc, req, n_ctx):
    g = req.get("generation") or {}
    if req.get("messages"):
        text = lc.apply_builtin_template(req["messages"], True)
        ids = lc.tokenize(text.encode(), parse_special=True)
    else:
        ids = lc.tokenize((req.get("prompt") or "").encode(), add_special=True)
    max_tokens = g.get("max_tokens") or (n_ctx - len(ids))
    t0 = time.perf_counter()
    lc.clear()
    logits = lc.eval(ids, 0)
    out, ttft = [], 0.0
    for step in range(max_tokens):
        tok = int(np.argmax(logits))
        if not out:
            ttft = time.perf_counter() - t0
        out.append(tok)
        if lc.is_eog(tok) and not g.get("ignore_eos"):
            break
        if step + 1 < max_tokens:
            logits = lc.eval([tok], len(ids) + step)
    finish = "stop" if out and lc.is_eog(out[-1]) and not g.get("ignore_eos") else "length"
    text = lc.detokenize([t for t in out if not lc.is_eog(t)]).decode("utf-8", "replace")
    total = time.perf_counter() - t0
    return ids, out, text, finish, ttft, total


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-b", "--bootstrap", required=True)
    ap.add_argument("-t", "--topic", required=True)
    ap.add_argument("-g", "--group", default="python-llm-worker")
    ap.add_argument("--gguf")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ctx", type=int, default=2048)
    a = ap.parse_args(argv)
    import llamacpp_util as U

    if a.gguf is None:
        from smollm2_path import gguf_path

        a.gguf = gguf_path()
    lc = U.LlamaCpp(a.gguf, n_ctx=a.ctx, n_threads=a.threads, n_batch=512)
    consumer = Consumer({"bootstrap.servers": a.bootstrap, "group.id": a.group,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    producer = Producer({"bootstrap.servers": a.bootstrap, "linger.ms": 0, "enable.idempotence": True})
    consumer.subscribe([a.topic])
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    print("ready", flush=True)
    try:
        while not stop:
            m = consumer.poll(0.2)
            producer.poll(0)
            if m is None or m.error():
                continue
            req = fastavro.schemaless_reader(io.BytesIO(m.value()), REQ)
            t_start = time.perf_counter()
            ids, out, text, finish, ttft, total = generate(lc, req, a.ctx)
            reply = {"id": req["id"], "model": req["model"], "model_version": None, "status": "OK",
                     "error": None, "outputs": [],
                     "timing": {"queue_us": 0, "compute_us": int(total * 1e6), "batch_size": 1,
                                "worker": "python-llm-worker", "device": "cpu"},
                     "source": {"topic": m.topic(), "partition": m.partition(), "offset": m.offset()},
                     "generation": {"text": text, "token_ids": out, "finish_reason": finish,
                                    "usage": {"prompt_tokens": len(ids), "completion_tokens": len(out),
                                              "total_tokens": len(ids) + len(out)},
                                    "timing": {"queue_us": 0, "ttft_us": int(ttft * 1e6),
                                               "per_token_us": int((total - ttft) / max(1, len(out) - 1) * 1e6),
                                               "total_us": int((time.perf_counter() - t_start) * 1e6)},
                                    "seed": 0, "chunks": 0, "preemptions": 0, "logprobs": []},
                     "chunk": None}
            buf = io.BytesIO()
            fastavro.schemaless_writer(buf, RESP, reply)
            producer.produce(req.get("reply_to") or a.topic + ".replies", key=m.key() or req["id"].encode(),
                             value=buf.getvalue())
            producer.poll(0)
            consumer.commit(message=m, asynchronous=True)
    finally:
        producer.flush(10)
        consumer.close()
        lc.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
