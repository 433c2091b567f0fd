"""A flood of hostile requests on the real broker (issue 15): valid requests
encoded by fastavro from the .avsc files, then bit flips, truncations,
blown-up lengths, garbage and invalid UTF-8 in each string field, interleaved
with untouched ones, in all three framings, with invalid-UTF-8 header bytes.
Every reply and every dead letter must decode with fastavro (Avro strings are
UTF-8, so one echoed bad byte makes a reply unreadable), and every source
offset must be answered exactly once: by a reply's `source` or a dead
letter's kinfer-source-* headers. Headers keep their bytes."""

import copy
import io
import json
import random
import struct
import time
import uuid

import fastavro
import numpy as np
from confluent_kafka import Consumer

from test_worker_pipeline import worker_env  # noqa: F401  (fixture)
from worker_helpers import MODEL_NAME, NumpyMLP, fp_int, framing_of, headers_dict, produce_all, producer

N = 5000
PARTITIONS = 3
# Placeholders for the string fields, replaced by invalid UTF-8 of the same
# length after fastavro has encoded the record (so every length stays right).
MARK = {f: f"<{f[:4]}#>".ljust(8, "_") for f in
        ("id", "model", "version", "name", "string", "reply_to", "key", "value")}
BAD_UTF8 = [b"\xff", b"\x80", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\xf4\x90\x80\x80", b"\xf0\x9f\x98"]


def _predictor_schema(request_avsc):
    """The request schema with every string as bytes and the parameters map as
    an array of {k, v} records (the same binary encoding), so that fastavro can
    read what kinfer's decoder reads even where the text is not UTF-8: the test
    uses it to know where the worker will route a mutated request."""
    def walk(t):
        if t == "string":
            return "bytes"
        if isinstance(t, list):
            return [walk(x) for x in t]
        if isinstance(t, dict):
            t = dict(t)
            if t.get("type") == "map":
                return {"type": "array", "items": {"type": "record", "name": "KV", "fields": [
                    {"name": "k", "type": "bytes"}, {"name": "v", "type": walk(t["values"])}]}}
            if t.get("type") == "record":
                t["fields"] = [dict(f, type=walk(f["type"])) for f in t["fields"]]
            elif t.get("type") == "array":
                t["items"] = walk(t["items"])
            return t
        return t
    s = walk(copy.deepcopy(request_avsc))
    for f in s["fields"]:
        if f["name"] == "parameters":
            f["default"] = []
    return fastavro.parse_schema(s)


def _topic_valid(name):
    return (0 < len(name) <= 249 and name not in (b".", b"..") and
            all(chr(c).isascii() and (chr(c).isalnum() or chr(c) in "._-") for c in name))


def _routes_elsewhere(msg, pred, fp):
    """True when the worker would reply to a topic named in the (mutated)
    message's reply_to: such a reply leaves the topics this test reads."""
    f = framing_of(msg)
    if f == "single-object":
        if len(msg) < 10 or struct.unpack("<Q", msg[2:10])[0] != fp:
            return False
        body = msg[10:]
    elif f == "confluent":
        body = msg[5:]
    else:
        body = msg
    try:
        rec = fastavro.schemaless_reader(io.BytesIO(body), pred)
    except Exception:  # noqa: BLE001  (undecodable: a dead letter)
        return False
    rt = rec.get("reply_to")
    return rt is not None and _topic_valid(rt)


def _base_records(width, rng):
    x = rng.normal(size=width).astype("<f4").tobytes()
    t = lambda name, dtype, shape, data=b"", strings=(): {  # noqa: E731
        "name": name, "dtype": dtype, "shape": shape, "data": data, "strings": list(strings)}
    common = {"model_version": None, "deadline_ms": None, "priority": 0, "reply_to": None,
              "parameters": {}}
    return [
        dict(common, id=MARK["id"], model=MODEL_NAME, inputs=[t(MARK["name"], "FP32", [width], x)]),
        dict(common, id=MARK["id"], model=MODEL_NAME, inputs=[t("input", "FP32", [2, width], x * 2)],
             parameters={MARK["key"]: MARK["value"]}),
        dict(common, id=MARK["id"], model=MARK["model"], model_version=MARK["version"],
             inputs=[t("text", "STRING", [2], strings=["hello", MARK["string"]])]),
        dict(common, id=MARK["id"], model=MODEL_NAME, reply_to=MARK["reply_to"],
             inputs=[t("input", "FP32", [width], x)], deadline_ms=int(time.time() * 1000) + 600000),
    ]


def _encode(schema, rec, framing, fp):
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, rec)
    body = buf.getvalue()
    if framing == "single-object":
        return b"\xc3\x01" + struct.pack("<Q", fp) + body
    if framing == "confluent":
        return b"\x00" + struct.pack(">I", 11) + body
    return body


def _fill(msg, keep=None, bad=None):
    """Replaces every placeholder with valid text, except `keep` -> bad bytes."""
    for f, m in MARK.items():
        m = m.encode()
        if f == keep:
            rep = (bad + b"_" * len(m))[:len(m)] if len(bad) < len(m) else bad[:len(m)]
        elif f == "id":
            rep = None
        elif f == "reply_to":
            rep = b"rt bad!!"  # valid UTF-8, not a topic name: a dead letter
        else:
            rep = f"{f}-ok".ljust(len(m), "_")[:len(m)].encode()
        if rep is not None:
            msg = msg.replace(m, rep)
    return msg


def _make_flood(schemas, request_avsc, seed=15):
    rnd = random.Random(seed)
    rng = np.random.default_rng(seed)
    width = NumpyMLP().width
    req = schemas["request"]
    pred = _predictor_schema(request_avsc)
    fp = fp_int(req)
    bases = _base_records(width, rng)
    classes = (["none"] * 6 + ["bitflip"] * 4 + ["truncate"] * 2 + ["blowup"] * 2 + ["garbage"] * 2 +
               [f"utf8:{f}" for f in MARK])
    out = []
    while len(out) < N:
        i = len(out)
        cls = rnd.choice(classes)
        rec = rnd.choice(bases[:3] if cls == "none" else bases)
        if cls == "utf8:reply_to":
            rec = bases[3]
        elif cls in ("utf8:model", "utf8:version", "utf8:string"):
            rec = bases[2]
        elif cls in ("utf8:key", "utf8:value"):
            rec = bases[1]
        elif cls == "utf8:name":
            rec = bases[0]
        framing = rnd.choice(["bare", "single-object", "confluent"])
        raw = _encode(req, rec, framing, fp)
        rid = f"f{i}".ljust(len(MARK["id"]), "_").encode()[:len(MARK["id"])]
        bad = rnd.choice(BAD_UTF8)
        if cls == "utf8:id":
            rid = (rid[:2] + bad + rid[2:])[:len(rid)]
        raw = raw.replace(MARK["id"].encode(), rid)
        if cls == "utf8:id":
            msg = _fill(raw)
        elif cls.startswith("utf8:"):
            msg = _fill(raw, cls[5:], bad)
        else:
            msg = bytearray(_fill(raw))
            hdr = {"single-object": 10, "confluent": 5}.get(framing, 0)
            if cls == "bitflip":
                for _ in range(rnd.randint(1, 4)):
                    pos = rnd.randrange(len(msg))
                    msg[pos] ^= 1 << rnd.randrange(8)
            elif cls == "truncate":
                del msg[rnd.randrange(len(msg)):]
            elif cls == "blowup":
                # A length or count varint made huge, negative or one past the end.
                pos = hdr + rnd.choice([0, 1 + len(rid)])
                huge = rnd.choice([b"\xfe\xff\xff\xff\x0f", b"\x01", b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
                                   bytes([min(0x7e, 2 * (len(msg) - pos))])])
                msg[pos:pos + 1] = huge
            elif cls == "garbage":
                msg = bytearray(rnd.randbytes(rnd.randint(0, 200)))
                if rnd.random() < 0.3:
                    msg[:0] = rnd.choice([b"\x00", b"\xc3\x01", b"\x00\x00\x00\x00\x0b"])
            msg = bytes(msg)
            if cls != "none" and _routes_elsewhere(msg, pred, fp):
                continue  # draw again: a reply there would leave the topics read here
        tp = b"tp-" + rnd.choice(BAD_UTF8) + str(i).encode()
        out.append((cls, msg, [("traceparent", tp), ("other", b"\xff")]))
    return out


def test_flood_of_hostile_requests(worker_env, bootstrap, schemas, repo_root):  # noqa: F811
    request_avsc = json.loads((repo_root / "schemas" / "inference_request.avsc").read_text())
    flood = _make_flood(schemas, request_avsc)
    w = worker_env["start"]()
    items = [(str(i).encode(), msg, hdrs, i % PARTITIONS) for i, (_, msg, hdrs) in enumerate(flood)]
    t0 = time.monotonic()
    produce_all(producer(bootstrap), worker_env["topic"], items)
    # Offsets the broker gave each message: per partition, in production order.
    sent = {}
    per_part = [0] * PARTITIONS
    for i in range(N):
        p = i % PARTITIONS
        sent[(p, per_part[p])] = flood[i]
        per_part[p] += 1

    replies, dlqs = [], []
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "kinfer-test-" + uuid.uuid4().hex,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([worker_env["replies"], worker_env["dlq"]])
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and len(replies) + len(dlqs) < N:
            for m in c.consume(500, 0.5):
                if not m.error():
                    (dlqs if m.topic() == worker_env["dlq"] else replies).append(m)
        # Anything beyond N (a duplicate) arrives close behind: look once more.
        for m in c.consume(500, 2.0):
            if not m.error():
                (dlqs if m.topic() == worker_env["dlq"] else replies).append(m)
    finally:
        c.close()
    elapsed = time.monotonic() - t0

    seen = {}
    by_class = {}
    undecodable = []
    for m in replies:
        f = framing_of(m.value())
        body = m.value()[10:] if f == "single-object" else m.value()[5:] if f == "confluent" else m.value()
        bio = io.BytesIO(body)
        try:
            resp = fastavro.schemaless_reader(bio, schemas["response"])
        except Exception as e:  # noqa: BLE001
            undecodable.append((m.value()[:80], repr(e)))
            continue
        assert bio.tell() == len(body), "fastavro left bytes unread"
        src = resp["source"]
        assert src["topic"] == worker_env["topic"]
        key = (src["partition"], src["offset"])
        seen[key] = seen.get(key, 0) + 1
        cls, msg, hdrs = sent[key]
        by_class.setdefault(cls, {"reply": 0, "dlq": 0})["reply"] += 1
        h = headers_dict(m)
        assert h["traceparent"] == dict(hdrs)["traceparent"]  # bytes kept as they were
        assert "other" not in h
        assert h["kinfer-correlation-id"] == resp["id"].encode()
        if cls == "none":
            assert resp["status"] != "INTERNAL_ERROR", resp
        if cls.startswith("utf8:"):
            assert resp["status"] == "INVALID_REQUEST" and "UTF-8" in resp["error"], resp
    assert not undecodable, f"{len(undecodable)} replies fastavro cannot read: {undecodable[:3]}"
    for m in dlqs:
        h = headers_dict(m)
        assert h["kinfer-source-topic"].decode() == worker_env["topic"]
        key = (int(h["kinfer-source-partition"]), int(h["kinfer-source-offset"]))
        seen[key] = seen.get(key, 0) + 1
        cls, msg, hdrs = sent[key]
        by_class.setdefault(cls, {"reply": 0, "dlq": 0})["dlq"] += 1
        assert (m.value() or b"") == msg and h["traceparent"] == dict(hdrs)["traceparent"]
        assert h["kinfer-error"]
        for k, v in h.items():  # kinfer's own headers are text; the request's keep their bytes
            if k.startswith("kinfer-"):
                v.decode("utf-8")
        if cls == "utf8:id":
            assert b"cannot be echoed" in h["kinfer-error"], h["kinfer-error"]
    dups = {k: v for k, v in seen.items() if v > 1}
    missing = set(sent) - set(seen)
    print(f"\nflood: {N} requests, {len(replies)} replies, {len(dlqs)} dead letters, "
          f"{elapsed:.1f} s; by class: {json.dumps(by_class, sort_keys=True)}")
    assert not dups, f"{len(dups)} offsets answered more than once"
    assert not missing, f"{len(missing)} offsets never answered:\n{w.text()[-2000:]}"
    assert len(replies) + len(dlqs) == N
    # Every class was exercised, and the ones with a known fate met it.
    for cls in ["none", "bitflip", "truncate", "blowup", "garbage"] + [f"utf8:{f}" for f in MARK]:
        assert cls in by_class, cls
    assert by_class["none"]["dlq"] == 0
    assert by_class["utf8:id"]["reply"] == 0 and by_class["utf8:reply_to"]["reply"] == 0
    for f in ("model", "version", "name", "string", "key", "value"):
        assert by_class[f"utf8:{f}"]["dlq"] == 0, f
    assert w.proc.poll() is None, w.text()[-3000:]
