"""kinfer against secured brokers: SASL_SSL and SASL_PLAINTEXT, SCRAM-SHA-512.

Each broker is one that `scripts/kafka.sh start` runs with KINFER_KAFKA_SECURITY
on a free port pair of its own (state in a temporary dir), in the Kafka version
of the run (KINFER_KAFKA_VERSION; scripts/test.sh sets it per configuration).
The worker gets the client user's credentials through `kafka.properties`,
`kinfer send` and `kinfer bench` through -X. Requests and replies are checked
with confluent-kafka and fastavro on the same credentials, outputs with numpy.

Wrong credentials (a wrong password, an untrusted CA): `kinfer send` and
`kinfer bench` exit 3 at once with one message naming the properties to
check; the worker logs one error line and, having never reached the cluster,
stops with a start-up error (exit 1) after health.startup_auth_timeout_ms.
Secrets: the worker and the clients read the password from ${env:...} and
${file:...} references; no log and no check-config output shows it.
"""

import json
import os
import re
import socket
import subprocess
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from confluent_kafka.admin import AdminClient

from conftest import REPO_ROOT, create_topics, topic_name
from worker_helpers import (
    MODEL_NAME, NumpyMLP, Worker, consume, decode, encode, linked_rdkafka_version, output_array,
    produce_all, producer, request, write_config)

pytestmark = [pytest.mark.kafka, pytest.mark.worker, pytest.mark.slow]

KAFKA_SH = REPO_ROOT / "scripts" / "kafka.sh"
AUTH_FAILED = "invalid credentials with SASL mechanism SCRAM-SHA-512"
CA_FAILED = "certificate verify failed"


def _free_port_pair():
    """A port p with p+1 also free (client and controller port), from the kernel's range."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port >= 65535:
            continue
        with socket.socket() as s2:
            try:
                s2.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair")


def read_properties(path):
    props = {}
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            props[key] = value
    return props


class SecuredBroker:
    def __init__(self, security, bootstrap, props_path, state, kafka_version):
        self.security = security
        self.bootstrap = bootstrap
        self.props_path = props_path
        self.state = state
        self.kafka_version = kafka_version
        # Everything but bootstrap.servers: the clients' security settings.
        self.client = {k: v for k, v in read_properties(props_path).items() if k != "bootstrap.servers"}

    def conf(self, **override):
        """librdkafka properties for a Python client, with overrides (e.g. a wrong password)."""
        return {"bootstrap.servers": self.bootstrap, **self.client, **override}

    def x_args(self, **override):
        """The client properties as kinfer send/bench -X K=V arguments."""
        args = []
        for k, v in {**self.client, **override}.items():
            args += ["-X", f"{k}={v}"]
        return args

    def kafka_properties(self, **override):
        """The client properties as a worker config's kafka.properties list."""
        items = ", ".join(json.dumps(f"{k}={v}") for k, v in {**self.client, **override}.items())
        return f"properties = [{items}];"


def _kafka_sh(env, *args, timeout=240):
    return subprocess.run([str(KAFKA_SH), *args], env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module", params=["sasl_ssl", "sasl_plaintext"])
def secured(request, tmp_path_factory, kinfer_bin):
    security = request.param
    port = _free_port_pair()
    state = tmp_path_factory.mktemp(f"kafka-{security}")
    env = {k: v for k, v in os.environ.items() if k != "KINFER_KAFKA_CONTROLLER_PORT"}
    env.update(KINFER_KAFKA_PORT=str(port), KINFER_KAFKA_STATE=str(state),
               KINFER_KAFKA_SECURITY=security)
    version = _kafka_sh(env, "version").stdout.strip()
    rdkafka = linked_rdkafka_version(kinfer_bin)
    if int(version.split(".")[0]) >= 4 and rdkafka < (2, 6, 1):
        # librdkafka sent the client nonce twice in SCRAM's final message
        # (#4895, fixed in 2.6.1); Kafka 4.x rejects that as invalid credentials.
        pytest.skip(f"{kinfer_bin} runs on librdkafka {'.'.join(map(str, rdkafka))}: its SCRAM "
                    f"login fails against Kafka {version} (needs 2.6.1+, librdkafka #4895)")
    started = _kafka_sh(env, "start")
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        lines = started.stdout.strip().splitlines()
        assert lines[-1] == f"127.0.0.1:{port}", started.stdout
        (props_line,) = [ln for ln in lines if ln.startswith("client-properties: ")]
        props_path = props_line.split(": ", 1)[1]
        broker = SecuredBroker(security, lines[-1], props_path, state, version)
        # The file says what it must, in librdkafka's spelling.
        assert broker.client["security.protocol"] == security.upper()
        assert broker.client["sasl.mechanism"] == "SCRAM-SHA-512"
        assert broker.client["sasl.username"] == "kinfer" and broker.client["sasl.password"]
        if security == "sasl_ssl":
            assert Path(broker.client["ssl.ca.location"]).is_file()
            assert broker.client["ssl.endpoint.identification.algorithm"] == "https"
        yield broker
    finally:
        stopped = _kafka_sh(env, "stop")
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr


@pytest.fixture
def topics(secured, request):
    """A fresh 3-partition request topic and its .replies topic on the secured broker."""
    admin = AdminClient(secured.conf())
    topic = topic_name(request.node.name)
    create_topics(admin, [topic, topic + ".replies"], partitions=3)
    return topic, topic + ".replies"


@pytest.fixture
def start_worker(secured, kinfer_bin, tmp_path):
    """_start(topic, **override): a worker on the secured broker; with overrides
    (bad credentials) it is not waited for and may exit non-zero."""
    workers = []

    def _start(topic, extra_top="", args=(), env=None, expect_ok=None, **override):
        i = len(workers)
        cfg = write_config(tmp_path / f"w{i}.conf", secured.bootstrap, topic,
                           "kinfer-test-" + uuid.uuid4().hex[:8],
                           extra_kafka=secured.kafka_properties(**override), extra_top=extra_top)
        good = not override if expect_ok is None else expect_ok
        w = Worker(kinfer_bin, cfg, tmp_path / f"w{i}.log", args, env=env)
        w.config = cfg
        workers.append((w, good))
        if good:
            w.wait_assigned(timeout=60)
        return w

    yield _start
    codes = [(w.stop(timeout=60), good) for w, good in workers]
    # A clean stop exits 0 (under ASan a leak would make it non-zero).
    assert all(code == 0 for code, good in codes if good), [w.text()[-3000:] for w, _ in workers]


@pytest.fixture
def other_ca(tmp_path):
    """A second throwaway CA, one that never signed the broker's certificate."""
    key, pem = tmp_path / "other-ca.key", tmp_path / "other-ca.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-days", "1", "-subj", "/CN=kinfer untrusted test CA",
                    "-keyout", str(key), "-out", str(pem)], check=True, capture_output=True)
    return str(pem)


def _x(values):
    return np.asarray(values, dtype=np.float32)


# ---- the right credentials --------------------------------------------------------------


def test_worker_replies_over_the_secured_broker(secured, topics, start_worker, schemas):
    topic, replies = topics
    mlp = NumpyMLP()
    rng = np.random.default_rng(11)
    start_worker(topic)
    sent = {}
    items = []
    for i in range(30):
        x = rng.normal(size=(1 + i % 3, mlp.width)).astype(np.float32)
        rid = f"sec-{i}"
        sent[rid] = x
        items.append((rid.encode(), encode(schemas["request"], request(rid, x)), None, None))
    produce_all(producer(secured.bootstrap, secured.client), topic, items)

    msgs = consume(secured.bootstrap, replies, len(sent), timeout=60, conf=secured.client)
    got = {}
    for m in msgs:
        resp, _ = decode(schemas["response"], m.value())
        assert resp["status"] == "OK", resp["error"]
        got[resp["id"]] = output_array(resp)
    assert set(got) == set(sent)
    for rid, x in sent.items():
        np.testing.assert_allclose(got[rid], mlp.forward(x), rtol=1e-4, atol=1e-5)


def test_send_over_the_secured_broker(secured, topics, start_worker, kinfer_bin, schemas):
    topic, replies = topics
    start_worker(topic)
    x = _x(np.linspace(-1, 1, NumpyMLP().width))
    rid = "sec-send-" + uuid.uuid4().hex[:6]
    r = subprocess.run([str(kinfer_bin), "send", "-b", secured.bootstrap, "-t", topic, "-m", MODEL_NAME,
                        "--input", ",".join(f"{v:.9g}" for v in x), "--id", rid, "--json",
                        *secured.x_args()], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    printed = json.loads(r.stdout)
    assert printed["id"] == rid and printed["status"] == "OK"

    # The request on the wire, as fastavro reads it with the contract's schema.
    (req_msg,) = consume(secured.bootstrap, topic, 1, timeout=30, conf=secured.client)
    req, _ = decode(schemas["request"], req_msg.value())
    assert req["id"] == rid and req["model"] == MODEL_NAME
    (tensor,) = req["inputs"]
    np.testing.assert_array_equal(np.frombuffer(tensor["data"], dtype="<f4"), x)
    # The reply, the same way; its output is the model's.
    (reply_msg,) = consume(secured.bootstrap, replies, 1, timeout=30, conf=secured.client)
    resp, _ = decode(schemas["response"], reply_msg.value())
    assert resp["id"] == rid and resp["status"] == "OK", resp["error"]
    want = NumpyMLP().forward(x)
    np.testing.assert_allclose(output_array(resp), want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(printed["outputs"][0]["data"], want.ravel(), rtol=1e-4, atol=1e-5)


def test_bench_over_the_secured_broker(secured, topics, start_worker, kinfer_bin, schemas):
    topic, replies = topics
    start_worker(topic)
    count, warmup = 200, 20
    r = subprocess.run([str(kinfer_bin), "bench", "-b", secured.bootstrap, "-t", topic, "-m", MODEL_NAME,
                        "--shape", f"1,{NumpyMLP().width}", "--count", str(count), "--warmup", str(warmup),
                        "--quiet", "--json", *secured.x_args()], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["sent"] == count and summary["replies"] == count, summary
    assert summary["lost"] == 0 and summary["duplicates"] == 0, summary
    assert summary["status"]["OK"] == count, summary

    # Every reply on the topic (warm-up included) decodes and is OK.
    msgs = consume(secured.bootstrap, replies, count + warmup, timeout=60, conf=secured.client)
    assert len(msgs) == count + warmup
    statuses = {decode(schemas["response"], m.value())[0]["status"] for m in msgs}
    assert statuses == {"OK"}


# ---- wrong credentials: one clear error naming the property, at once -----------------------

# (case, the property override, the property the message names, the text librdkafka logs for it)
BAD = {
    "wrong-password": ({"sasl.password": "not-the-password"}, "sasl.password", AUTH_FAILED),
    "untrusted-ca": (None, "ssl.ca.location", CA_FAILED),  # ssl.ca.location = other_ca (sasl_ssl only)
}


def _bad_override(secured, case, other_ca):
    if case == "untrusted-ca":
        if secured.security != "sasl_ssl":
            pytest.skip("no TLS on a sasl_plaintext broker")
        return {"ssl.ca.location": other_ca}, "ssl.ca.location", CA_FAILED
    return BAD[case]


def _one_clear_error(stderr, command, prop, cause):
    """The command said it once, naming the property and librdkafka's reason,
    and never quoted the wrong password."""
    lines = [ln for ln in stderr.splitlines() if ln.startswith(f"kinfer {command}: ")]
    assert len(lines) == 1, stderr
    assert prop in lines[0] and cause in lines[0], stderr
    assert "not-the-password" not in stderr
    # librdkafka's own lines about the same failure are left out: the one
    # message says it all.
    assert cause not in stderr.replace(lines[0], ""), stderr


@pytest.mark.parametrize("case", list(BAD))
def test_send_with_bad_credentials_fails_at_once_naming_the_property(secured, topics, kinfer_bin,
                                                                      other_ca, case):
    topic, _ = topics
    override, prop, cause = _bad_override(secured, case, other_ca)
    # --timeout 300s and a 60 s limit here: a client that retried until its
    # own timeout (as before) fails this test instead of passing slowly.
    r = subprocess.run([str(kinfer_bin), "send", "-b", secured.bootstrap, "-t", topic, "-m", MODEL_NAME,
                        "--input", ",".join(["0"] * NumpyMLP().width), "--timeout", "300s",
                        *secured.x_args(**override)], capture_output=True, text=True, timeout=60)
    # 3 = "no reply in time or a Kafka error" (kinfer send --help).
    assert r.returncode == 3, r.stdout + r.stderr
    _one_clear_error(r.stderr, "send", prop, cause)


@pytest.mark.parametrize("case", list(BAD))
def test_bench_with_bad_credentials_fails_at_once_naming_the_property(secured, topics, kinfer_bin,
                                                                       other_ca, case):
    topic, _ = topics
    override, prop, cause = _bad_override(secured, case, other_ca)
    r = subprocess.run([str(kinfer_bin), "bench", "-b", secured.bootstrap, "-t", topic, "-m", MODEL_NAME,
                        "--shape", f"1,{NumpyMLP().width}", "--count", "10", "--quiet",
                        *secured.x_args(**override)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 3, r.stdout + r.stderr
    _one_clear_error(r.stderr, "bench", prop, cause)


@pytest.mark.parametrize("case", list(BAD))
def test_worker_with_bad_credentials_stops_with_a_start_up_error(secured, topics, start_worker,
                                                                 other_ca, case):
    topic, _ = topics
    override, prop, cause = _bad_override(secured, case, other_ca)
    w = start_worker(topic, extra_top="health = { startup_auth_timeout_ms = 3000; };", **override)
    code = w.proc.wait(timeout=60)  # a worker retrying forever fails here
    text = w.text()
    assert code == 1, text[-3000:]
    # One error line while it waited (librdkafka retries every reconnect),
    # then the start-up error: the hint, where the config sets the property,
    # librdkafka's reason.
    assert text.count("level=error event=kafka.auth_failed") == 1, text[-4000:]
    assert "event=worker.startup_failed reason=auth_failed after_ms=3000" in text, text[-3000:]
    (final,) = [ln for ln in text.splitlines() if ln.startswith("kinfer worker: ")]
    assert final.startswith("kinfer worker: start-up failed after 3000 ms: "), final
    assert f"in {w.config}: " in final and f"{prop} line " in final and cause in final, final
    assert "event=worker.assigned" not in text
    assert "not-the-password" not in text


# ---- secrets outside the config ---------------------------------------------------------------


def test_secrets_from_env_and_file_are_used_and_never_shown(secured, topics, start_worker, kinfer_bin,
                                                            tmp_path, schemas):
    topic, replies = topics
    password = secured.client["sasl.password"]
    pwfile = tmp_path / "kafka.password"
    pwfile.write_text(password + "\n")  # as `echo` and secret volumes write it
    pwfile.chmod(0o600)
    refs = {"sasl.username": "${env:KINFER_TEST_KAFKA_USER}",
            "sasl.password": "${file:" + str(pwfile) + "}",
            # librdkafka's own debug output about the connection and its
            # configuration: the password must not be in there either.
            "debug": "security,broker,conf"}
    env = {"KINFER_TEST_KAFKA_USER": secured.client["sasl.username"]}
    w = start_worker(topic, args=["--log-level", "debug"], env=env, expect_ok=True, **refs)

    # kinfer send with the password from its environment.
    x = np.linspace(-1, 1, NumpyMLP().width).astype(np.float32)
    args = secured.x_args(**{"sasl.password": "${env:KINFER_TEST_KAFKA_PASSWORD}"})
    r = subprocess.run([str(kinfer_bin), "send", "-b", secured.bootstrap, "-t", topic, "-m", MODEL_NAME,
                        "--input", ",".join(f"{v:.9g}" for v in x), "--json", *args],
                       capture_output=True, text=True, timeout=60,
                       env={**os.environ, "KINFER_TEST_KAFKA_PASSWORD": password})
    assert r.returncode == 0, r.stdout + r.stderr
    reply = json.loads(r.stdout)
    assert reply["status"] == "OK"
    np.testing.assert_allclose(reply["outputs"][0]["data"], NumpyMLP().forward(x).ravel(),
                               rtol=1e-4, atol=1e-5)
    assert password not in r.stdout + r.stderr

    # check-config shows the references, not what they expand to.
    cc = subprocess.run([str(kinfer_bin), "check-config", str(w.config)], capture_output=True,
                        text=True, timeout=30, env={**os.environ, **env})
    assert cc.returncode == 0, cc.stderr
    assert password not in cc.stdout + cc.stderr
    assert '"sasl.password=${file:' + str(pwfile) + '}"' in cc.stdout, cc.stdout
    assert '"sasl.username=${env:KINFER_TEST_KAFKA_USER}"' in cc.stdout, cc.stdout

    assert w.stop(timeout=60) == 0
    text = w.text()
    assert "level=debug" in text and "event=rdkafka.log" in text  # librdkafka did talk
    assert password not in text

    # A reference that cannot be resolved is a start-up error naming file, line and key.
    cc = subprocess.run([str(kinfer_bin), "check-config", str(w.config)], capture_output=True,
                        text=True, timeout=30,
                        env={k: v for k, v in os.environ.items() if k != "KINFER_TEST_KAFKA_USER"})
    assert cc.returncode != 0
    assert re.search(rf"^{re.escape(str(w.config))}:\d+: kafka\.properties\.\[\d+\]: sasl\.username: "
                     r"\$\{env:KINFER_TEST_KAFKA_USER\}: environment variable KINFER_TEST_KAFKA_USER "
                     r"is not set", cc.stderr, re.M), cc.stderr
