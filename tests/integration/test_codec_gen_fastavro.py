"""The generation wire contract against fastavro (no Kafka): requests with a
prompt, chat messages and GenerationOptions written by fastavro and decoded by
the C codec; Generation and Chunk replies encoded by the C codec and read by
fastavro; and Avro schema evolution from the released v1 schemas
(schemas/v1/): a v1-written request is read by the current codec and by
fastavro with the current schema as reader, and a current reply is read by a
v1 reader (Avro schema resolution skips the fields it does not know).
"""
import io
import json
import struct

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer

from test_codec_fastavro import REQ_SCHEMA, RESP_SCHEMA, ROOT, decode_request, fp_int, frame, tool, write

V1_REQ = parse_schema(json.loads((ROOT / "schemas/v1/inference_request.avsc").read_text()))
V1_RESP = parse_schema(json.loads((ROOT / "schemas/v1/inference_response.avsc").read_text()))

OPTIONS = {"max_tokens": 64, "temperature": 0.5, "top_p": 0.875, "top_k": 40, "min_p": 0.0625,
           "seed": 1 << 40, "stop": ["\n\n", "Fin ✓"], "stop_token_ids": [2, 49152], "stream": True,
           "presence_penalty": -1.5, "frequency_penalty": 0.25, "repetition_penalty": 1.125,
           "logprobs": True, "top_logprobs": 5, "ignore_eos": False}


def gen_request(**kw):
    rec = {"id": "g1", "model": "smollm2", "inputs": [], "priority": 2, "deadline_ms": 1764288000123}
    rec.update(kw)
    return rec


@pytest.mark.parametrize("framing", ["bare", "single-object", "confluent"])
def test_generation_request_from_fastavro(framing):
    rec = gen_request(messages=[{"role": "system", "content": "Be brief."},
                                {"role": "user", "content": "Héllo 😀"}],
                      generation=OPTIONS)
    got = decode_request(frame(write(REQ_SCHEMA, rec), framing, REQ_SCHEMA, 5))
    assert got["ok"], got
    assert got["messages"] == rec["messages"]
    assert got["prompt"] is None and got["prompt_token_ids"] == []
    # every option value above is exact in float32
    assert got["generation"] == OPTIONS


def test_prompt_and_token_ids_and_null_options():
    rec = gen_request(prompt="Once upon a time", prompt_token_ids=[1, 2, 300000])
    got = decode_request(write(REQ_SCHEMA, rec))
    assert got["ok"], got
    assert got["prompt"] == "Once upon a time" and got["prompt_token_ids"] == [1, 2, 300000]
    assert got["generation"] is None and got["messages"] == []
    rec = gen_request(prompt="x", generation={})  # every option null / default
    got = decode_request(write(REQ_SCHEMA, rec))
    assert got["generation"] == {"max_tokens": None, "temperature": None, "top_p": None,
                                 "top_k": None, "min_p": None, "seed": None, "stop": [],
                                 "stop_token_ids": [], "stream": False, "presence_penalty": None,
                                 "frequency_penalty": None, "repetition_penalty": None,
                                 "logprobs": False, "top_logprobs": 0, "ignore_eos": False}


def test_invalid_utf8_prompt_is_invalid_request():
    # fastavro will not write invalid UTF-8; patch the bytes of a valid one.
    body = write(REQ_SCHEMA, gen_request(prompt="abcd"))
    body = body.replace(b"abcd", b"ab\xff\xfe")
    got = decode_request(body)
    assert got == {"ok": False, "code": "INVALID_REQUEST", "error": "prompt: invalid UTF-8 at byte 2"}


def test_nan_option_is_invalid_request():
    got = decode_request(write(REQ_SCHEMA, gen_request(prompt="x", generation={"temperature": float("nan")})))
    assert not got["ok"] and got["code"] == "INVALID_REQUEST"
    assert got["error"] == "generation.temperature: not a finite number"


@pytest.mark.parametrize("framing", ["bare", "single-object", "confluent"])
def test_v1_request_reads_with_defaults(framing):
    """A client still on the v1 schema: its messages decode, the generation
    fields take their defaults (single-object carries v1's fingerprint)."""
    rec = {"id": "old", "model": "m", "inputs": [], "parameters": {"a": "b"}, "priority": 1}
    got = decode_request(frame(write(V1_REQ, rec), framing, V1_REQ, 3))
    assert got["ok"], got
    assert got["parameters"] == {"a": "b"} and got["priority"] == 1
    assert got["prompt"] is None and got["messages"] == [] and got["generation"] is None
    # and fastavro's own resolution (writer v1, reader current) agrees
    res = schemaless_reader(io.BytesIO(write(V1_REQ, rec)), V1_REQ, REQ_SCHEMA)
    assert res["prompt"] is None and res["messages"] == [] and res["generation"] is None


def test_v1_fingerprint_differs_and_other_schemas_still_refused():
    assert fp_int(V1_REQ) != fp_int(REQ_SCHEMA)
    body = write(V1_REQ, {"id": "x", "model": "m", "inputs": []})
    bad = b"\xc3\x01" + struct.pack("<Q", fp_int(V1_RESP)) + body
    got = decode_request(bad)
    assert not got["ok"] and got["code"] == "UNSUPPORTED"


def base_reply(**kw):
    rec = {"id": "g1", "model": "smollm2", "model_version": None, "status": 0, "error": None,
           "outputs": [], "timing": {"queue_us": 10, "compute_us": 20, "batch_size": 0, "worker": "w",
                                     "device": "cpu"},
           "source": {"topic": "t", "partition": 1, "offset": 7}}
    rec.update(kw)
    return rec


LOGPROBS = [{"token_id": 42, "token_hex": "c3", "logprob": -0.5,
             "top_logprobs": [{"token_id": 42, "token_hex": "c3", "logprob": -0.5},
                              {"token_id": 7, "token_hex": "2077", "logprob": -2.25}]},
            {"token_id": 2, "token_hex": "", "logprob": -0.125, "top_logprobs": []}]
GENERATION = {"text": "Hé 😀", "token_ids": [42, 2], "finish_reason": "deadline",
              "usage": {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14},
              "timing": {"queue_us": 5, "ttft_us": 1500, "per_token_us": 800, "total_us": 9000},
              "seed": -3, "chunks": 2, "preemptions": 1, "logprobs": LOGPROBS}


def fastavro_logprobs(lps):
    return [{"token_id": e["token_id"], "token": bytes.fromhex(e["token_hex"]), "logprob": e["logprob"],
             "top_logprobs": [{"token_id": t["token_id"], "token": bytes.fromhex(t["token_hex"]),
                               "logprob": t["logprob"]} for t in e["top_logprobs"]]} for e in lps]


def encode_reply(js, framing="bare"):
    out = tool("encode-response", framing, data=json.dumps(js).encode())
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.parametrize("kind", ["final", "chunk", "plain"])
def test_generation_reply_reads_in_fastavro_and_v1(kind):
    if kind == "final":
        js = base_reply(generation=GENERATION)
    elif kind == "chunk":
        js = base_reply(chunk={"index": 3, "text": "é 😀", "token_ids": [9, 10], "logprobs": LOGPROBS})
    else:
        js = base_reply()
    body = encode_reply(js)
    bio = io.BytesIO(body)
    got = schemaless_reader(bio, RESP_SCHEMA)
    assert bio.tell() == len(body)
    if kind == "final":
        want = dict(GENERATION, logprobs=fastavro_logprobs(LOGPROBS))
        assert got["generation"] == want and got["chunk"] is None
    elif kind == "chunk":
        assert got["generation"] is None
        assert got["chunk"] == {"index": 3, "text": "é 😀", "token_ids": [9, 10],
                                "logprobs": fastavro_logprobs(LOGPROBS)}
    else:
        assert got["generation"] is None and got["chunk"] is None
    # A v1 reader (resolving against the current writer schema) sees a v1 reply.
    old = schemaless_reader(io.BytesIO(body), RESP_SCHEMA, V1_RESP)
    assert old["id"] == "g1" and old["status"] == "OK" and "generation" not in old
    # The C decoder reads it back the same.
    back = json.loads(tool("decode-response", data=body).stdout)
    assert back["ok"], back
    if kind == "final":
        assert back["generation"] == GENERATION
    elif kind == "chunk":
        assert back["chunk"]["index"] == 3 and back["chunk"]["logprobs"] == LOGPROBS


def test_fastavro_generation_reply_decodes_in_c():
    rec = base_reply(status="OK", generation=dict(GENERATION, logprobs=fastavro_logprobs(LOGPROBS)), chunk=None)
    back = json.loads(tool("decode-response", data=write(RESP_SCHEMA, rec)).stdout)
    assert back["ok"], back
    assert back["generation"] == GENERATION


def test_v1_reply_decodes_in_c():
    rec = base_reply(status="OK")
    back = json.loads(tool("decode-response", data=write(V1_RESP, rec)).stdout)
    assert back["ok"] and back["generation"] is None and back["chunk"] is None


def test_generation_request_encoded_in_c_reads_in_fastavro():
    js = {"id": "q", "model": "m", "inputs": [], "priority": 0, "parameters": {},
          "prompt": None, "messages": [{"role": "user", "content": "hi ✓"}], "prompt_token_ids": [5],
          "generation": OPTIONS}
    out = tool("encode-request", "single-object", data=json.dumps(js).encode())
    assert out.returncode == 0, out.stderr
    assert struct.unpack("<Q", out.stdout[2:10])[0] == fp_int(REQ_SCHEMA)
    got = schemaless_reader(io.BytesIO(out.stdout[10:]), REQ_SCHEMA)
    assert got["messages"] == js["messages"] and got["prompt_token_ids"] == [5]
    assert got["generation"] == OPTIONS


def test_truncated_generation_fields_are_decode_errors():
    body = write(REQ_SCHEMA, gen_request(prompt="x", generation=OPTIONS))
    # every cut inside the new fields is malformed (never a crash, never OK)
    v1_len = len(write(V1_REQ, {k: v for k, v in gen_request().items()}))
    for cut in range(v1_len + 1, len(body)):
        got = decode_request(body[:cut])
        assert not got["ok"] and got["code"] == "DECODE", (cut, got)

