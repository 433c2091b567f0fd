"""The broker from scripts/kafka.sh is a real Apache Kafka: two independent
clients (kcat/librdkafka CLI and confluent-kafka) agree on what it stores,
groups, offsets and transactions work, and the script's commands behave.
Not a test of kinfer itself."""

import os
import socket
import struct
import subprocess
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from conftest import bootstrap_port, delete_topics, topic_name, wait_for_topics

pytestmark = pytest.mark.kafka


def kcat(*args, input=None, timeout=60):
    """Run kcat; returns stdout bytes, raises with stderr on failure."""
    proc = subprocess.run(
        ["kcat", *args], input=input, capture_output=True, timeout=timeout
    )
    if proc.returncode != 0:
        raise AssertionError(f"kcat {' '.join(args)} failed ({proc.returncode}): {proc.stderr.decode()}")
    return proc.stdout


def consume_all(bootstrap, topic, count, timeout=30.0, **conf):
    """Read `count` messages from the start of `topic` with confluent-kafka."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"kinfer-test-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            **conf,
        }
    )
    c.subscribe([topic])
    got = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < count and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                raise KafkaException(m.error())
            got.append(m)
    finally:
        c.close()
    return got


def parse_framed(out):
    """Parse kcat output made with -f '%p|%o|%k|%h|%R%s' (value length-prefixed)."""
    msgs, i = [], 0
    while i < len(out):
        fields = []
        for _ in range(4):
            j = out.index(b"|", i)
            fields.append(out[i:j])
            i = j + 1
        (n,) = struct.unpack(">I", out[i : i + 4])
        i += 4
        value = out[i : i + n]
        i += n
        msgs.append((int(fields[0]), int(fields[1]), fields[2], fields[3], value))
    return msgs


def test_kcat_produces_and_consumes_identical_messages_with_headers(bootstrap, unique_topic):
    n = 200
    run = uuid.uuid4().hex
    lines = [(f"key-{i % 17}", f"value {i} of {run} \u00e9\u00fc\u4e2d") for i in range(n)]
    data = "".join(f"{k}\t{v}\n" for k, v in lines).encode()
    kcat("-P", "-b", bootstrap, "-t", unique_topic, "-K", "\t", "-H", "origin=kcat", "-H", f"run={run}", input=data)

    out = kcat("-C", "-b", bootstrap, "-t", unique_topic, "-o", "beginning", "-e", "-q", "-c", str(n),
               "-f", "%p|%o|%k|%h|%R%s")
    got = parse_framed(out)
    assert len(got) == n
    assert sorted((k.decode(), v.decode()) for _, _, k, _, v in got) == sorted(lines)
    assert {h for _, _, _, h, _ in got} == {f"origin=kcat,run={run}".encode()}
    # Offsets per partition are 0..n-1 with no gap; more than one partition used.
    by_part = {}
    for p, o, _, _, _ in got:
        by_part.setdefault(p, []).append(o)
    assert len(by_part) > 1
    for offs in by_part.values():
        assert sorted(offs) == list(range(len(offs)))

    # An independent client sees exactly the same records and headers.
    msgs = consume_all(bootstrap, unique_topic, n)
    assert sorted((m.key().decode(), m.value().decode()) for m in msgs) == sorted(lines)
    for m in msgs:
        assert m.headers() == [("origin", b"kcat"), ("run", run.encode())]


def test_binary_values_survive_confluent_to_kcat(bootstrap, unique_topic):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    sent = {}
    sizes = [1, 2, 255, 256, 4095, 65536, 262144] + list(range(3, 40))
    for i, size in enumerate(sizes):
        value = os.urandom(size)
        if i == 0:
            value = b"\x00"
        key = f"k{i}".encode()
        sent[key] = value
        p.produce(unique_topic, key=key, value=value, headers=[("i", str(i).encode()), ("bin", b"\x00\xff")])
    assert p.flush(30) == 0

    out = kcat("-C", "-b", bootstrap, "-t", unique_topic, "-o", "beginning", "-e", "-q", "-c", str(len(sent)),
               "-f", "%p|%o|%k|%h|%R%s")
    got = parse_framed(out)
    assert {k: v for _, _, k, _, v in got} == sent
    assert len(got) == len(sent)


def test_auto_created_topic_gets_the_script_partition_count(bootstrap, admin):
    name = topic_name("auto")
    try:
        p = Producer({"bootstrap.servers": bootstrap})
        p.produce(name, value=b"x")
        assert p.flush(30) == 0
        want = int(os.environ.get("KINFER_KAFKA_PARTITIONS", "3"))
        wait_for_topics(admin, [name], want, timeout=30)
    finally:
        delete_topics(admin, [name])


def test_consumer_group_commits_offsets(bootstrap, unique_topic):
    p = Producer({"bootstrap.servers": bootstrap})
    for i in range(30):
        p.produce(unique_topic, key=str(i).encode(), value=b"v")
    assert p.flush(30) == 0
    group = f"kinfer-test-group-{uuid.uuid4().hex[:8]}"
    conf = {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
            "enable.auto.commit": False}
    c = Consumer(conf)
    c.subscribe([unique_topic])
    seen = 0
    deadline = time.monotonic() + 30
    while seen < 30 and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            seen += 1
    assert seen == 30
    c.commit(asynchronous=False)
    c.close()

    c2 = Consumer(conf)
    committed = c2.committed([TopicPartition(unique_topic, i) for i in range(3)], timeout=10)
    c2.close()
    assert sum(tp.offset for tp in committed) == 30


def test_transactions_hide_aborted_records(bootstrap, unique_topic):
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"kinfer-test-{uuid.uuid4().hex}"})
    p.init_transactions(30)
    p.begin_transaction()
    for i in range(5):
        p.produce(unique_topic, key=b"c", value=f"committed-{i}".encode())
    p.commit_transaction(30)
    p.begin_transaction()
    for i in range(5):
        p.produce(unique_topic, key=b"a", value=f"aborted-{i}".encode())
    p.abort_transaction(30)
    p.begin_transaction()
    p.produce(unique_topic, key=b"c", value=b"committed-last")
    p.commit_transaction(30)

    msgs = consume_all(bootstrap, unique_topic, 6, timeout=20, **{"isolation.level": "read_committed"})
    assert [m.value().decode() for m in msgs] == [f"committed-{i}" for i in range(5)] + ["committed-last"]


def _script_broker_pid(kafka_ctl):
    st = kafka_ctl("status")
    if st.returncode != 0 and os.environ.get("KINFER_BOOTSTRAP"):
        pytest.skip("the broker at KINFER_BOOTSTRAP was not started by scripts/kafka.sh")
    assert st.returncode == 0, st.stdout + st.stderr
    return st.stdout


def test_status_says_running(kafka_ctl, bootstrap):
    out = _script_broker_pid(kafka_ctl)
    assert out.startswith(f"running 127.0.0.1:{bootstrap_port(bootstrap)} (pid ")


def test_start_twice_keeps_the_same_broker(kafka_ctl, bootstrap):
    before = _script_broker_pid(kafka_ctl)
    r = kafka_ctl("start")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == f"127.0.0.1:{bootstrap_port(bootstrap)}"
    assert "already running" in r.stderr
    assert kafka_ctl("status").stdout == before


def _free_port_pair():
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with socket.socket() as s2:
            try:
                s2.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair")


def test_script_rejects_bad_input(kafka_ctl, bootstrap, tmp_path):
    r = kafka_ctl("frobnicate")
    assert r.returncode == 2 and "usage:" in r.stderr

    for bad in ("12x", "", "-5", "0"):
        r = kafka_ctl("status", extra_env={"KINFER_KAFKA_PORT": bad} if bad else {"KINFER_KAFKA_PARTITIONS": "x"})
        assert r.returncode == 1 and "must be a positive number" in r.stderr, (bad, r.stderr)

    r = kafka_ctl("status", extra_env={"KINFER_KAFKA_PORT": "70000"})
    assert r.returncode == 1 and "at most 65535" in r.stderr

    r = kafka_ctl("status", extra_env={"KINFER_KAFKA_PORT": "19100", "KINFER_KAFKA_CONTROLLER_PORT": "19100"})
    assert r.returncode == 1 and "must differ" in r.stderr

    free = _free_port_pair()
    r = kafka_ctl("status", extra_env={"KINFER_KAFKA_PORT": str(free), "KINFER_KAFKA_STATE": str(tmp_path / "s")})
    assert r.returncode == 1 and r.stdout.startswith(f"stopped 127.0.0.1:{free}")

    # Start on a port someone else holds (our broker, but another state dir):
    # a clear refusal, and no second JVM left behind.
    r = kafka_ctl("start", extra_env={"KINFER_KAFKA_STATE": str(tmp_path / "busy")})
    assert r.returncode == 1 and "already in use" in r.stderr
    assert not (tmp_path / "busy" / "kafka.pid").exists()


@pytest.mark.chaos
@pytest.mark.slow
def test_restart_keeps_data_and_changes_pid(kafka_ctl, bootstrap, unique_topic):
    before = _script_broker_pid(kafka_ctl)
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for i in range(20):
        p.produce(unique_topic, key=str(i).encode(), value=f"before-restart-{i}".encode())
    assert p.flush(30) == 0

    r = kafka_ctl("restart")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().splitlines()[-1] == f"127.0.0.1:{bootstrap_port(bootstrap)}"
    after = kafka_ctl("status").stdout
    assert after.startswith("running ") and after != before  # a new broker process

    msgs = consume_all(bootstrap, unique_topic, 20)
    assert sorted(m.value().decode() for m in msgs) == sorted(f"before-restart-{i}" for i in range(20))
