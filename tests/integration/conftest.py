"""Shared fixtures for kinfer's integration tests against a real Kafka broker.

The broker is the one `scripts/kafka.sh start` runs (scripts/test.sh starts it);
these fixtures never start one themselves, and fail loudly, never skip, when
it is missing. Clients here are independent of kinfer: confluent-kafka, fastavro.
"""

import json
import logging
import os
import re
import subprocess
import time
import uuid
from pathlib import Path

import fastavro
import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PORT = 19092


def default_bootstrap():
    """KINFER_BOOTSTRAP, else 127.0.0.1:$KINFER_KAFKA_PORT (default 19092)."""
    explicit = os.environ.get("KINFER_BOOTSTRAP")
    if explicit:
        return explicit
    return f"127.0.0.1:{os.environ.get('KINFER_KAFKA_PORT', DEFAULT_PORT)}"


def bootstrap_port(bootstrap):
    """The port of the first bootstrap address (what scripts/kafka.sh keys on)."""
    first = bootstrap.split(",")[0]
    return int(first.rsplit(":", 1)[1])


def create_topics(admin, names, partitions=3, config=None, timeout=30.0):
    """Create topics and wait until every partition has a leader.

    Raises on any failure except "already exists". Returns the names.
    """
    if isinstance(names, str):
        names = [names]
    new = [
        NewTopic(n, num_partitions=partitions, replication_factor=1, config=dict(config or {}))
        for n in names
    ]
    futures = admin.create_topics(new, operation_timeout=timeout, request_timeout=timeout)
    for name, fut in futures.items():
        try:
            fut.result(timeout=timeout)
        except KafkaException as e:
            if e.args[0].name() != "TOPIC_ALREADY_EXISTS":
                raise
    wait_for_topics(admin, names, partitions, timeout)
    return list(names)


def wait_for_topics(admin, names, partitions, timeout=30.0):
    """Poll metadata until each topic shows `partitions` partitions with leaders."""
    deadline = time.monotonic() + timeout
    while True:
        md = admin.list_topics(timeout=10)
        ready = all(
            n in md.topics
            and md.topics[n].error is None
            and len(md.topics[n].partitions) == partitions
            and all(p.leader >= 0 for p in md.topics[n].partitions.values())
            for n in names
        )
        if ready:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics {names} not ready with {partitions} partitions in {timeout}s")
        time.sleep(0.1)


def delete_topics(admin, names, timeout=30.0):
    """Delete topics; a topic that is already gone is fine."""
    if not names:
        return
    futures = admin.delete_topics(list(names), operation_timeout=timeout, request_timeout=timeout)
    for fut in futures.values():
        try:
            fut.result(timeout=timeout)
        except KafkaException as e:
            if e.args[0].name() != "UNKNOWN_TOPIC_OR_PART":
                raise


def topic_name(hint="t"):
    """A fresh, legal topic name: kinfer-test-<hint>-<8 hex>."""
    hint = re.sub(r"[^a-zA-Z0-9._-]+", "-", hint).strip("-")[:60] or "t"
    return f"kinfer-test-{hint}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def repo_root():
    return REPO_ROOT


@pytest.fixture(scope="session")
def bootstrap():
    """Bootstrap address of a broker that answers; fails (not skips) otherwise."""
    addr = default_bootstrap()
    # librdkafka's own log goes through Python logging, so a missing broker
    # gives one clear failure instead of a screen of connect errors.
    probe = AdminClient({"bootstrap.servers": addr}, logger=logging.getLogger("kinfer.test.probe"))
    md, err = None, None
    try:
        md = probe.list_topics(timeout=10)
    except KafkaException as e:
        err = e
    if md is None:
        pytest.fail(
            f"no Kafka broker answers on {addr} ({err}).\n"
            f"Start one with: KINFER_KAFKA_PORT={bootstrap_port(addr)} scripts/kafka.sh start\n"
            f"(or set KINFER_BOOTSTRAP to a broker you run). scripts/test.sh does this for you.",
            pytrace=False,
        )
    if not md.brokers:
        pytest.fail(f"broker on {addr} answered with no brokers in its metadata", pytrace=False)
    return addr


@pytest.fixture(scope="session")
def admin(bootstrap):
    return AdminClient({"bootstrap.servers": bootstrap})


@pytest.fixture(scope="session")
def kinfer_bin():
    """Path of the kinfer binary: $KINFER_BIN, else build/kinfer."""
    path = Path(os.environ.get("KINFER_BIN") or REPO_ROOT / "build" / "kinfer")
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(
            f"kinfer binary not found at {path}: build it with `make build` "
            f"(or set KINFER_BIN to the binary to test)",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def schemas():
    """fastavro-parsed schemas from schemas/*.avsc.

    Keys: "request" and "response" (the wire contract), plus every file's stem
    (e.g. "inference_request").
    """
    out = {}
    files = sorted((REPO_ROOT / "schemas").glob("*.avsc"))
    if not files:
        pytest.fail(f"no .avsc files in {REPO_ROOT / 'schemas'}", pytrace=False)
    for f in files:
        with open(f) as fh:
            out[f.stem] = fastavro.parse_schema(json.load(fh))
    for key, stem in (("request", "inference_request"), ("response", "inference_response")):
        if stem not in out:
            pytest.fail(f"schemas/{stem}.avsc is missing", pytrace=False)
        out[key] = out[stem]
    return out


@pytest.fixture
def make_topic(admin, request):
    """Factory: make_topic(partitions=3, config=None, hint=None) -> fresh topic name.

    Every topic it creates is deleted at teardown.
    """
    made = []

    def _make(partitions=3, config=None, hint=None):
        name = topic_name(hint or request.node.name)
        create_topics(admin, [name], partitions=partitions, config=config)
        made.append(name)
        return name

    yield _make
    delete_topics(admin, made)


@pytest.fixture
def unique_topic(make_topic):
    """A fresh 3-partition topic, deleted at teardown."""
    return make_topic(partitions=3)


@pytest.fixture(scope="session")
def kafka_ctl(bootstrap):
    """kafka_ctl("status"|"restart"|...) runs scripts/kafka.sh for this broker's port.

    Returns the CompletedProcess (text, captured); never raises on exit status.
    """
    env = dict(os.environ, KINFER_KAFKA_PORT=str(bootstrap_port(bootstrap)))

    def _run(*args, timeout=180, extra_env=None):
        return subprocess.run(
            [str(REPO_ROOT / "scripts" / "kafka.sh"), *args],
            env=dict(env, **(extra_env or {})),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    return _run
