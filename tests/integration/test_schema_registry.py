"""A real Schema Registry (Apicurio Registry, run by scripts/registry.sh) with
real clients: confluent-kafka's AvroSerializer writes requests with an OLDER
client schema (fields missing) and a NEWER one (a field added with a
default), each registered under the request topic's subject; a real worker
with kafka.schema_registry_url fetches each writer schema by id (once),
resolves it to the current schema and replies; the replies are read with
confluent-kafka's AvroDeserializer, through the id the worker registered
under the reply topic's subject. Failures go to the DLQ with the reason and
never stall the poll loop: an unknown id, a registry that does not answer
(the bounded wait; basic auth from ${env:}, never logged) and one that is
down.

The first two need KINFER_REGISTRY_URL (the Confluent API base, e.g.
http://127.0.0.1:18081/apis/ccompat/v7); scripts/test.sh starts the
registry and sets it in the present configuration, and they skip, saying
so, where it is unset."""

import base64
import json
import os
import socket
import struct
import threading
import uuid

import numpy as np
import pytest

from test_worker_pipeline import worker_env  # noqa: F401  (fixture)
from worker_helpers import (
    NumpyMLP, consume, encode, headers_dict, output_array, produce_all, producer, request)

REGISTRY_URL = os.environ.get("KINFER_REGISTRY_URL", "")

pytestmark = [pytest.mark.kafka, pytest.mark.worker]
# The tests that talk to a real registry; the hanging/down one needs none.
needs_registry = pytest.mark.skipif(
    not REGISTRY_URL,
    reason="KINFER_REGISTRY_URL is not set: no Schema Registry to test against. Start one "
           "with `KINFER_REGISTRY_PORT=18081 scripts/registry.sh start` and export the URL "
           "it prints (scripts/test.sh does both in the present configuration)")


def client_schemas(repo_root):
    """(older, newer) InferenceRequest schemas as client code would have them:
    older lacks model_version, priority, reply_to, parameters and the
    generation fields (all with defaults in the current schema); newer adds a
    `trace` string with a default."""
    cur = json.loads((repo_root / "schemas" / "inference_request.avsc").read_text())
    older = dict(cur, fields=[f for f in cur["fields"] if f["name"] not in
                              ("model_version", "priority", "reply_to", "parameters",
                               "prompt", "messages", "prompt_token_ids", "generation")])
    newer = dict(cur, fields=cur["fields"] + [{"name": "trace", "type": "string", "default": ""}])
    return older, newer


def sr_client():
    from confluent_kafka.schema_registry import SchemaRegistryClient
    # A bounded HTTP timeout: without one a registry that holds a connection
    # open hangs the suite instead of failing the test.
    return SchemaRegistryClient({"url": REGISTRY_URL, "timeout": 20})


# The topic name strategy, as kinfer's worker uses. confluent-kafka 2.16's
# default (ASSOCIATED) asks the registry for topic associations on every
# (de)serialize, an API Apicurio does not serve; one such call once hung.
def topic_strategy():
    from confluent_kafka.schema_registry import topic_subject_name_strategy
    return {"subject.name.strategy": topic_subject_name_strategy}


@needs_registry
def test_older_and_newer_clients_through_the_registry(worker_env, bootstrap, repo_root):  # noqa: F811
    from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    topic, replies = worker_env["topic"], worker_env["replies"]
    w = worker_env["start"](extra_kafka=f'schema_registry_url = "{REGISTRY_URL}";')
    older, newer = client_schemas(repo_root)
    client = sr_client()
    ctx = SerializationContext(topic, MessageField.VALUE)
    mlp = NumpyMLP()
    rng = np.random.default_rng(13)
    sent, items = {}, []
    for kind, schema in (("old", older), ("new", newer)):
        ser = AvroSerializer(client, json.dumps(schema), conf={"auto.register.schemas": True, **topic_strategy()})
        for i in range(2):
            x = rng.normal(size=(1, mlp.width)).astype(np.float32)
            rec = request(f"{kind}-{i}", x)
            rec = {f["name"]: rec.get(f["name"], f.get("default"))
                   for f in schema["fields"] if f["name"] != "trace"}
            if kind == "new":
                rec["trace"] = f"trace-{i}"
            sent[rec["id"]] = x
            items.append((rec["id"].encode(), ser(rec, ctx), None, None))
    ids = {struct.unpack(">I", v[1:5])[0] for _, v, _, _ in items}
    assert len(ids) == 2, "the two client schemas must have two registry ids"
    produce_all(producer(bootstrap), topic, items)

    got = consume(bootstrap, replies, len(sent), timeout=40)
    assert len(got) == len(sent), w.text()[-4000:]
    # The reply schema, as the worker registered it under the reply subject.
    reply_id = client.get_latest_version(f"{replies}-value").schema_id
    deser = AvroDeserializer(client, conf=topic_strategy())
    rctx = SerializationContext(replies, MessageField.VALUE)
    for m in got:
        assert m.value()[:1] == b"\x00", "a Confluent request gets a Confluent reply"
        assert struct.unpack(">I", m.value()[1:5])[0] == reply_id
        resp = deser(m.value(), rctx)
        assert resp["status"] == "OK", resp
        np.testing.assert_allclose(output_array(resp), mlp.forward(sent[resp["id"]]),
                                   rtol=1e-5, atol=1e-5)
    log = w.text()
    for i in ids:  # fetched once per id, although two requests used each
        assert log.count(f"event=registry.schema id={i} ") == 1, log[-4000:]
    assert log.count(f"subject={replies}-value") == 1, log[-4000:]


@needs_registry
def test_unknown_schema_id_is_dead_lettered(worker_env, bootstrap, schemas):  # noqa: F811
    w = worker_env["start"](extra_kafka=f'schema_registry_url = "{REGISTRY_URL}";')
    width = NumpyMLP().width
    bad = encode(schemas["request"], request("ghost", np.zeros(width, dtype=np.float32)),
                 framing="confluent", schema_id=987654321)
    good = encode(schemas["request"], request("plain", np.zeros(width, dtype=np.float32)))
    produce_all(producer(bootstrap), worker_env["topic"],
                [(b"ghost", bad, None, 0), (b"plain", good, None, 0)])
    dlq = consume(bootstrap, worker_env["dlq"], 1, timeout=30)
    assert len(dlq) == 1, w.text()[-3000:]
    assert dlq[0].value() == bad
    reason = headers_dict(dlq[0])["kinfer-error"].decode()
    assert "schema id 987654321 is not known to the schema registry" in reason, reason
    assert "HTTP 404" in reason
    assert len(consume(bootstrap, worker_env["replies"], 1, timeout=20)) == 1  # bare still works


class SilentServer:
    """Accepts connections and never answers: a registry that hangs."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.requests = []  # the first bytes of each request
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            c.settimeout(2)
            try:
                self.requests.append(c.recv(65536))
            except OSError:
                pass

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


def test_registry_hanging_then_down(worker_env, bootstrap, schemas):  # noqa: F811
    """A registry that does not answer: each request waits at most
    kafka.schema_registry_timeout_ms, then goes to the DLQ with the reason,
    and meanwhile the poll loop serves other requests; one that is down
    (connection refused): the DLQ at once. The worker stays up."""
    srv = SilentServer()
    url = f"http://127.0.0.1:{srv.port}/apis/ccompat/v7"
    secret = "pw-" + uuid.uuid4().hex
    os.environ["KINFER_TEST_REGISTRY_PASSWORD"] = secret
    try:
        w = worker_env["start"](
            extra_kafka=f'schema_registry_url = "{url}"; schema_registry_timeout_ms = 1500; '
                        'schema_registry_user = "svc"; '
                        'schema_registry_password = "${env:KINFER_TEST_REGISTRY_PASSWORD}";')
    finally:
        del os.environ["KINFER_TEST_REGISTRY_PASSWORD"]
    req, width = schemas["request"], NumpyMLP().width
    x = np.zeros(width, dtype=np.float32)
    p = producer(bootstrap)
    try:
        hung = encode(req, request("hung", x), framing="confluent", schema_id=1001)
        produce_all(p, worker_env["topic"],
                    [(b"hung", hung, None, 0)] +
                    [(f"b{i}".encode(), encode(req, request(f"bare-{i}", x)), None, 0)
                     for i in range(3)])
        # The bare requests behind it are answered while the registry hangs.
        replies = consume(bootstrap, worker_env["replies"], 3, timeout=30)
        assert len(replies) == 3, w.text()[-3000:]
        dlq = consume(bootstrap, worker_env["dlq"], 1, timeout=30)
        assert len(dlq) == 1, w.text()[-3000:]
        reason = headers_dict(dlq[0])["kinfer-error"].decode()
        assert f"schema registry http://127.0.0.1:{srv.port}/apis/ccompat/v7 unreachable" in reason
        assert "GET /schemas/ids/1001" in reason and "imeout" in reason, reason
        # The request itself: the Confluent API path, basic auth from ${env:}.
        auth = "Basic " + base64.b64encode(f"svc:{secret}".encode()).decode()
        assert any(r.startswith(b"GET /apis/ccompat/v7/schemas/ids/1001 ") and
                   f"Authorization: {auth}".encode() in r for r in srv.requests), srv.requests
    finally:
        srv.close()
    # Down: connection refused, a new id.
    down = encode(req, request("down", x), framing="confluent", schema_id=1002)
    produce_all(p, worker_env["topic"], [(b"down", down, None, 0)])
    dlq = consume(bootstrap, worker_env["dlq"], 2, timeout=30)
    assert len(dlq) == 2, w.text()[-3000:]
    reason = headers_dict([m for m in dlq if m.key() == b"down"][0])["kinfer-error"].decode()
    assert "GET /schemas/ids/1002" in reason and "unreachable" in reason, reason
    assert w.proc.poll() is None, "the worker must stay up"
    assert secret not in w.text(), "the registry password must never be logged"
