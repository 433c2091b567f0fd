"""Cross-implementation tests of kinfer's codec against fastavro (no Kafka).

Requests are written by fastavro from schemas/*.avsc and decoded by the C
codec (through tests/tools/kinfer_codec_tool); responses are encoded by the C
codec and read back by fastavro; canonical forms and CRC-64-AVRO fingerprints
are compared with fastavro's. The tool is found via $KINFER_CODEC_TOOL or
build/tests/tools/kinfer_codec_tool.
"""
import io
import json
import os
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form

# Independent of the Kafka client and broker: run once (scripts/test.sh, present only).
pytestmark = pytest.mark.standalone

ROOT = Path(__file__).resolve().parents[2]
TOOL = os.environ.get("KINFER_CODEC_TOOL", str(ROOT / "build/tests/tools/kinfer_codec_tool"))
REQ_SCHEMA = parse_schema(json.loads((ROOT / "schemas/inference_request.avsc").read_text()))
RESP_SCHEMA = parse_schema(json.loads((ROOT / "schemas/inference_response.avsc").read_text()))

# A missing tool is a broken build, not a reason to skip: fail the collection.
if not os.path.exists(TOOL):
    pytest.fail(f"codec tool not built: {TOOL} (build first, or set KINFER_CODEC_TOOL)", pytrace=False)


def tool(*args, data=b""):
    return subprocess.run([TOOL, *args], input=data, capture_output=True, timeout=30)


def fp_int(schema):
    """fastavro gives CRC-64-AVRO as the hex of its 8 little-endian bytes."""
    return int.from_bytes(bytes.fromhex(fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO")), "little")


def frame(body, framing, schema, schema_id=0):
    if framing == "bare":
        return body
    if framing == "single-object":
        return b"\xc3\x01" + struct.pack("<Q", fp_int(schema)) + body
    return b"\x00" + struct.pack(">I", schema_id) + body


def write(schema, record):
    buf = io.BytesIO()
    schemaless_writer(buf, schema, record)
    return buf.getvalue()


def decode_request(msg, *extra):
    out = tool("decode-request", *extra, data=msg)
    assert out.returncode in (0, 1), out.stderr
    return json.loads(out.stdout)


NP = {"FP32": "<f4", "FP16": "<f2", "FP64": "<f8", "INT64": "<i8", "INT32": "<i4",
      "INT16": "<i2", "INT8": "i1", "UINT8": "u1", "BOOL": "?"}


def tensor(name, dtype, shape, rng):
    if dtype == "STRING":
        n = int(np.prod(shape)) if shape else 1
        return {"name": name, "dtype": dtype, "shape": shape, "data": b"",
                "strings": [f"héllo {i} ✓" for i in range(n)]}
    if dtype == "BF16":
        data = rng.integers(0, 1 << 16, size=shape, dtype=np.uint16).astype("<u2").tobytes()
    elif dtype == "BOOL":
        data = rng.integers(0, 2, size=shape).astype("?").tobytes()
    else:
        data = (rng.standard_normal(size=shape) * 100).astype(NP[dtype]).tobytes()
    return {"name": name, "dtype": dtype, "shape": shape, "data": data, "strings": []}


DTYPES = ["FP32", "FP16", "BF16", "FP64", "INT64", "INT32", "INT16", "INT8", "UINT8", "BOOL", "STRING"]
SHAPES = [[], [0], [3], [2, 3], [1, 2, 1, 3], [2, 0, 4]]


def check_tensor(got, want):
    assert got["name"] == want["name"]
    assert got["dtype"] == want["dtype"]
    assert got["shape"] == want["shape"]
    assert bytes.fromhex(got["data_hex"]) == want["data"]
    assert got["strings"] == want["strings"]


@pytest.mark.parametrize("framing", ["bare", "single-object", "confluent"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_request_from_fastavro(dtype, framing):
    rng = np.random.default_rng(DTYPES.index(dtype))
    inputs = [tensor(f"t{i}", dtype, s, rng) for i, s in enumerate(SHAPES)]
    rec = {"id": f"req-{dtype}-{framing}", "model": "m", "model_version": "v2", "inputs": inputs,
           "deadline_ms": 1764288000123, "priority": -7, "reply_to": "replies.x",
           "parameters": {"normalize": "true", "truncate": "ünï"}}
    msg = frame(write(REQ_SCHEMA, rec), framing, REQ_SCHEMA, schema_id=4242)
    got = decode_request(msg)
    assert got["ok"], got
    assert got["frame"]["framing"] == framing
    if framing == "confluent":
        assert got["frame"]["schema_id"] == 4242
    for k in ("id", "model", "model_version", "deadline_ms", "priority", "reply_to", "parameters"):
        assert got[k] == rec[k], k
    assert len(got["inputs"]) == len(inputs)
    for g, w in zip(got["inputs"], inputs):
        check_tensor(g, w)


def test_request_defaults_and_nulls():
    rec = {"id": "x", "model": "m", "inputs": []}
    got = decode_request(write(REQ_SCHEMA, rec))
    assert got["ok"], got
    assert got["model_version"] is None and got["deadline_ms"] is None
    assert got["reply_to"] is None and got["priority"] == 0 and got["parameters"] == {}
    assert got["inputs"] == []


def test_request_multi_block_arrays():
    """fastavro writes one block per array; Java writers may split and use
    negative counts with byte sizes. Hand-build such a message."""
    def zz(v):
        v = (v << 1) ^ (v >> 63)
        out = b""
        while v >= 0x80:
            out += bytes([(v & 0x7F) | 0x80])
            v >>= 7
        return out + bytes([v])

    def s(b):
        return zz(len(b)) + b

    t = s(b"x") + zz(5) + zz(-1) + zz(1) + zz(2) + zz(1) + zz(3) + zz(0) + s(b"\x01" * 24) + zz(0)
    body = s(b"id1") + s(b"m") + zz(0) + zz(-1) + zz(len(t)) + t + zz(0) + zz(0) + zz(0) + zz(0)
    body += zz(1) + s(b"k1") + s(b"v1") + zz(-1) + zz(4) + s(b"k2") + s(b"v2") + zz(0)
    got = decode_request(body)
    assert got["ok"], got
    assert got["inputs"][0]["shape"] == [2, 3]
    assert got["parameters"] == {"k1": "v1", "k2": "v2"}


@pytest.mark.parametrize("framing", ["bare", "single-object", "confluent:77"])
def test_response_to_fastavro(framing):
    rng = np.random.default_rng(7)
    outputs = [tensor(f"o{i}", d, [2, 3], rng) for i, d in enumerate(DTYPES)]
    outputs.append(tensor("scalar", "FP32", [], rng))
    outputs.append(tensor("empty", "INT64", [0, 5], rng))
    rec = {"id": "r1", "model": "fraud", "model_version": None, "status": "DEADLINE_EXCEEDED",
           "error": "late by 3 ms", "outputs": outputs,
           "timing": {"queue_us": 123456789012, "compute_us": -1, "batch_size": 32,
                      "worker": "w-1", "device": "cuda:0"},
           "source": {"topic": "inference.requests", "partition": 11, "offset": 1 << 40}}
    js = dict(rec, status=3, outputs=[dict(o, data_hex=o["data"].hex(), data=None) for o in outputs])
    for o in js["outputs"]:
        del o["data"]
    out = tool("encode-response", framing, data=json.dumps(js).encode())
    assert out.returncode == 0, out.stderr
    msg = out.stdout
    if framing == "bare":
        body = msg
    elif framing == "single-object":
        assert msg[:2] == b"\xc3\x01"
        assert struct.unpack("<Q", msg[2:10])[0] == fp_int(RESP_SCHEMA)
        body = msg[10:]
    else:
        assert msg[:5] == b"\x00" + struct.pack(">I", 77)
        body = msg[5:]
    bio = io.BytesIO(body)
    got = schemaless_reader(bio, RESP_SCHEMA)
    assert bio.tell() == len(body), "fastavro left bytes unread"
    assert got == dict(rec, generation=None, chunk=None)
    # and the C response decoder reads it back too
    back = json.loads(tool("decode-response", data=msg).stdout)
    assert back["ok"] and back["status"] == 3 and back["error"] == "late by 3 ms"


def test_response_from_fastavro_decodes_in_c():
    rec = {"id": "r2", "model": "m", "model_version": "1", "status": "OK", "error": None,
           "outputs": [{"name": "y", "dtype": "FP32", "shape": [1, 2], "data": b"\0" * 8, "strings": []}],
           "timing": {"queue_us": 1, "compute_us": 2, "batch_size": 3, "worker": "w", "device": "cpu"},
           "source": {"topic": "t", "partition": 0, "offset": 9}}
    got = json.loads(tool("decode-response", data=write(RESP_SCHEMA, rec)).stdout)
    assert got["ok"], got
    assert got["model_version"] == "1" and got["status"] == 0 and got["error"] is None
    assert got["timing"] == rec["timing"] and got["source"] == rec["source"]
    check_tensor(got["outputs"][0], rec["outputs"][0])


def test_request_encoded_in_c_reads_in_fastavro():
    js = {"id": "q1", "model": "m", "model_version": None,
          "inputs": [{"name": "x", "dtype": "INT32", "shape": [2], "data_hex": "0100000002000000", "strings": []},
                     {"name": "s", "dtype": "STRING", "shape": [1], "data_hex": "", "strings": ["zß"]}],
          "deadline_ms": 5, "priority": 3, "reply_to": None, "parameters": {"a": "b"}}
    out = tool("encode-request", "single-object", data=json.dumps(js).encode())
    assert out.returncode == 0, out.stderr
    assert struct.unpack("<Q", out.stdout[2:10])[0] == fp_int(REQ_SCHEMA)
    got = schemaless_reader(io.BytesIO(out.stdout[10:]), REQ_SCHEMA)
    assert got["inputs"][0]["data"] == bytes.fromhex("0100000002000000")
    assert got["inputs"][1]["strings"] == ["zß"]
    assert got["deadline_ms"] == 5 and got["priority"] == 3 and got["parameters"] == {"a": "b"}


@pytest.mark.parametrize("which,schema", [("request", REQ_SCHEMA), ("response", RESP_SCHEMA)])
def test_canonical_form_and_fingerprint_match_fastavro(which, schema):
    assert tool("canonical", which).stdout.decode().strip() == to_parsing_canonical_form(schema)
    assert int(tool("fingerprint", which).stdout) == fp_int(schema)


@pytest.mark.parametrize("schema", [
    '"int"', '{"type":"string"}', '["null",{"type":"long","logicalType":"timestamp-millis"}]',
    '{"type":"record","name":"R","namespace":"a.b","doc":"d","fields":[{"name":"f","type":{"type":"enum","name":"E","symbols":["X","Y"]},"default":"X"},{"name":"g","type":"E"},{"name":"h","type":{"type":"fixed","name":"c.F","size":16}},{"name":"i","type":{"type":"map","values":"c.F"}}]}',
])
def test_canonical_form_of_other_schemas(schema):
    want = to_parsing_canonical_form(parse_schema(json.loads(schema)))
    assert tool("canonical", "-", data=schema.encode()).stdout.decode().strip() == want


def test_wrong_fingerprint_and_confluent_ids():
    body = write(REQ_SCHEMA, {"id": "x", "model": "m", "inputs": []})
    bad = b"\xc3\x01" + struct.pack("<Q", fp_int(RESP_SCHEMA)) + body
    got = decode_request(bad)
    assert not got["ok"] and got["code"] == "UNSUPPORTED" and "fingerprint" in got["error"]
    msg = frame(body, "confluent", REQ_SCHEMA, schema_id=9)
    assert decode_request(msg, "--ids", "3,9")["ok"]
    got = decode_request(msg, "--ids", "3,4")
    assert not got["ok"] and got["code"] == "UNSUPPORTED" and "schema id 9" in got["error"]


def test_invalid_request_from_fastavro_gets_readable_error():
    rec = {"id": "bad", "model": "m", "reply_to": "r",
           "inputs": [{"name": "ok", "dtype": "FP32", "shape": [1], "data": b"\0" * 4, "strings": []},
                      {"name": "x", "dtype": "FP32", "shape": [-3, 2], "data": b"", "strings": []}]}
    got = decode_request(write(REQ_SCHEMA, rec))
    assert got == {"ok": False, "code": "INVALID_REQUEST",
                   "error": "inputs[1].shape[0]: negative dimension -3"}


def _utf8_cases():
    """Byte strings for the repair rule: every 1- and 2-byte string whose
    first byte is not ASCII, each ill-formed class at the start, middle and
    end, and random mixes weighted towards multi-byte leads and truncation."""
    cases = [bytes([a]) for a in range(0x80, 0x100)]
    cases += [bytes([a, b]) for a in range(0x80, 0x100) for b in (0x00, 0x41, 0x80, 0x9f, 0xa0, 0xbf, 0xc0, 0xff)]
    classes = [b"\xc0\x80", b"\xc1\xbf", b"\xe0\x80\x80", b"\xe0\x9f\xbf", b"\xed\xa0\x80", b"\xed\xbf\xbf",
               b"\xf0\x80\x80\x80", b"\xf0\x8f\xbf\xbf", b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80", b"\xff",
               b"\xe2\x82", b"\xf0\x9f\x98", b"\xf0\x9f", b"\x80\x80", "é€😀".encode()]
    for c in classes:
        cases += [c, b"ab" + c, c + b"cd", b"x" + c + "ß".encode() + c]
    rng = np.random.default_rng(15)
    pool = np.array([0x41, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc2, 0xdf, 0xe0, 0xe1, 0xed, 0xef, 0xf0,
                     0xf1, 0xf4, 0xf5, 0xff], dtype=np.uint8)
    for _ in range(3000):
        cases.append(bytes(rng.choice(pool, size=int(rng.integers(1, 12)))))
    return cases


def test_utf8_repair_matches_python_replace():
    """kinfer_codec_utf8_repair is the rule README states: each maximal invalid
    subsequence becomes U+FFFD, exactly as Python's decode(errors="replace")."""
    cases = _utf8_cases()
    out = tool("utf8-repair", data="".join(c.hex() + "\n" for c in cases).encode())
    assert out.returncode == 0, out.stderr
    lines = out.stdout.decode().splitlines()
    assert len(lines) == len(cases)
    for c, line in zip(cases, lines):
        valid, _, hexed = line.partition(" ")
        try:
            c.decode("utf-8")
            want_valid = "1"
        except UnicodeDecodeError:
            want_valid = "0"
        assert valid == want_valid, c.hex()
        assert bytes.fromhex(hexed) == c.decode("utf-8", "replace").encode("utf-8"), c.hex()



# ---- schema resolution: fastavro's reader (writer -> reader) is the oracle ----

def _client_schema(drop=(), add=(), change=None):
    cur = json.loads((ROOT / "schemas/inference_request.avsc").read_text())
    fields = [dict(f) for f in cur["fields"] if f["name"] not in drop] + list(add)
    if change:
        fields = [change(f) for f in fields]
    return dict(cur, fields=fields)


def _promoted_reordered():
    """id written as bytes (bytes -> string), Tensor.shape as array<int>
    (int -> long), every field of both records in reverse order."""
    w = _client_schema(change=lambda f: dict(f, type="bytes") if f["name"] == "id" else f)
    for f in w["fields"]:
        if f["name"] == "inputs":
            items = dict(f["type"]["items"])
            items["fields"] = list(reversed([
                dict(g, type={"type": "array", "items": "int"}) if g["name"] == "shape" else g
                for g in items["fields"]]))
            f["type"] = dict(f["type"], items=items)
    return dict(w, fields=list(reversed(w["fields"])))


RESOLUTION_CASES = {
    # an older client: fields the current schema has defaults for are missing
    "older": _client_schema(drop=("model_version", "priority", "reply_to", "parameters",
                                  "prompt", "messages", "prompt_token_ids", "generation")),
    # a newer client: fields added (with defaults), one of them a record
    "newer": _client_schema(add=(
        {"name": "trace", "type": "string", "default": ""},
        {"name": "origin", "type": {"type": "record", "name": "Origin", "fields": [
            {"name": "host", "type": "string"},
            {"name": "n", "type": {"type": "array", "items": "long"}}]},
         "default": {"host": "", "n": []}})),
    "promoted-reordered": _promoted_reordered(),
}


@pytest.mark.parametrize("case", sorted(RESOLUTION_CASES))
def test_resolution_matches_fastavro(case, tmp_path):
    writer = RESOLUTION_CASES[case]
    wpath = tmp_path / "writer.avsc"
    wpath.write_text(json.dumps(writer))
    wparsed = parse_schema(writer)
    rng = np.random.default_rng(5)
    inputs = [tensor("x", "FP32", [2, 3], rng), tensor("s", "STRING", [2], rng)]
    rec = {"id": b"res-1" if case == "promoted-reordered" else "res-1", "model": "m",
           "model_version": "v2", "inputs": inputs, "deadline_ms": 77, "priority": -3,
           "reply_to": "r", "parameters": {"k": "v"}, "trace": "t-9",
           "origin": {"host": "h", "n": [1, 2]}, "prompt": None, "messages": [],
           "prompt_token_ids": [], "generation": None}
    rec = {f["name"]: rec[f["name"]] for f in writer["fields"]}
    body = write(wparsed, rec)
    want = schemaless_reader(io.BytesIO(body), wparsed, REQ_SCHEMA)
    msg = b"\xc3\x01" + struct.pack("<Q", fp_int(wparsed)) + body
    unknown = decode_request(msg)
    assert not unknown["ok"] and "released versions" in unknown["error"], unknown
    got = decode_request(msg, "--writer", str(wpath))
    assert got["ok"], got
    for k in ("id", "model", "model_version", "deadline_ms", "priority", "reply_to", "parameters"):
        assert got[k] == want[k], (k, got[k], want[k])
    assert len(got["inputs"]) == len(want["inputs"])
    for g, w in zip(got["inputs"], want["inputs"]):
        check_tensor(g, w)


def test_unresolvable_writer_is_refused(tmp_path):
    writer = _client_schema(add=({"name": "x", "type": "int"},),
                            change=lambda f: dict(f, type="string") if f["name"] == "priority" else f)
    wpath = tmp_path / "writer.avsc"
    wpath.write_text(json.dumps(writer))
    got = decode_request(b"\x02x", "--writer", str(wpath))
    assert not got["ok"] and got["code"] == "UNSUPPORTED", got
    assert "priority: writer type string cannot be read as int" in got["error"], got


RELEASED = sorted((ROOT / "schemas").glob("*/inference_request.avsc"))


@pytest.mark.parametrize("path", RELEASED or [None],
                         ids=[str(p.relative_to(ROOT / "schemas")) for p in RELEASED] or ["none"])
def test_released_request_versions_decode_by_fingerprint(path):
    """Each released version under schemas/<version>/ is built in: a request
    written with it, single-object framed, decodes with no --writer, to what
    fastavro's own resolution to the current schema gives."""
    if path is None:
        pytest.skip("no released request version in schemas/<version>/ yet")
    old = parse_schema(json.loads(path.read_text()))
    names = {f["name"] for f in json.loads(path.read_text())["fields"]}
    rng = np.random.default_rng(11)
    full = {"id": "rel-1", "model": "m", "model_version": None,
            "inputs": [tensor("x", "FP32", [3], rng)], "deadline_ms": 5, "priority": 2,
            "reply_to": None, "parameters": {"a": "b"}}
    rec = {k: v for k, v in full.items() if k in names}
    body = write(old, rec)
    want = schemaless_reader(io.BytesIO(body), old, REQ_SCHEMA)
    got = decode_request(b"\xc3\x01" + struct.pack("<Q", fp_int(old)) + body)
    assert got["ok"], got
    for k in ("id", "model", "model_version", "deadline_ms", "priority", "reply_to", "parameters"):
        assert got[k] == want[k], (k, got[k], want[k])
