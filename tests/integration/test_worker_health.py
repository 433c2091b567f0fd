"""Health endpoints on the real broker (issue 17): /readyz is 503 with a
one-line reason before the first join, when the cluster has been unreachable
longer than health.broker_grace_ms (broker stopped, broker SIGSTOPped, no
broker at the address, wrong SASL password) and while draining, and 200 again
once the cluster answers, with nothing lost; /healthz stays 200 while the
worker merely waits for a broker and turns 503 when the poll loop is wedged
(the KINFER_TEST_WEDGE_FILE hook). The kinfer_ready / kinfer_live gauges
mirror both. No timed assertions: each wait is for a state, with a generous
limit."""

import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest

from conftest import create_topics, delete_topics
from worker_helpers import (NumpyMLP, Worker, committed, consume_ids, decode, encode, end_offsets, produce_all,
                            producer, request)

GRACE_MS = 3000
PROBE_MS = 500
MODEL = Path(__file__).resolve().parents[2] / "models" / "example_mlp.safetensors"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path):
    """(status, body) of GET http://127.0.0.1:port/path; (None, why) when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, ConnectionError, socket.timeout) as e:
        return None, str(e)


def wait_http(port, path, want_status, want_text="", timeout=60.0, worker=None, also=None):
    """Polls until path answers want_status with want_text in its body; returns the body.
    also(): checked at every poll (e.g. liveness must hold meanwhile)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = get(port, path)
        if also:
            also()
        if last[0] == want_status and want_text in last[1]:
            return last[1]
        if worker is not None and worker.proc.poll() is not None:
            raise AssertionError(f"worker exited {worker.proc.returncode}:\n{worker.text()[-3000:]}")
        time.sleep(0.1)
    raise AssertionError(f"{path}: wanted {want_status} '{want_text}', last {last}\n"
                         + (worker.text()[-3000:] if worker else ""))


def gauges(port):
    code, text = get(port, "/metrics")
    assert code == 200, text
    return {m.group(1): (m.group(2), float(m.group(3)))
            for m in re.finditer(r'^(kinfer_ready|kinfer_live)\{reason="([a-z_]+)"\} (\S+)$', text, re.M)}


def config(path, brokers, topic, group, port, extra_kafka="", consumer_props=(), extra_health=""):
    props = ", ".join(f'"{p}"' for p in ("session.timeout.ms=6000", *consumer_props))
    path.write_text(f"""
kafka = {{
    brokers = "{brokers}";
    group = "{group}";
    topics = ["{topic}"];
    commit_interval_ms = 200;
    consumer_properties = [{props}];
    {extra_kafka}
}};
worker = {{ log_level = "info"; drain_timeout_ms = 10000; cpu_threads = 1; }};
http = {{ listen = "127.0.0.1:{port}"; }};
health = {{ broker_grace_ms = {GRACE_MS}; probe_interval_ms = {PROBE_MS}; {extra_health} }};
models = (
    {{ name = "example-mlp"; kind = "mlp"; path = "{MODEL}"; devices = ["cpu"]; max_batch_size = 16; }}
);
""")
    return path


@pytest.fixture
def env(tmp_path, bootstrap, admin, kinfer_bin):
    """A request topic name (not created: tests choose when), its replies topic, a worker factory."""
    tag = uuid.uuid4().hex[:8]
    topic, replies = f"kinfer-test-health-{tag}", f"kinfer-test-health-{tag}.replies"
    workers = []

    def start(brokers=None, env_extra=None, **kw):
        port = _free_port()
        cfg = config(tmp_path / f"w{len(workers)}.conf", brokers or bootstrap, topic,
                     "kinfer-test-" + tag, port, **kw)
        old = {k: os.environ.get(k) for k in (env_extra or {})}
        os.environ.update(env_extra or {})
        try:
            w = Worker(kinfer_bin, cfg, tmp_path / f"w{len(workers)}.log")
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        w.port = port
        workers.append(w)
        wait_http(port, "/healthz", 200, "ok", worker=w)
        return w

    e = {"topic": topic, "replies": replies, "start": start, "group": "kinfer-test-" + tag}
    yield e
    for w in workers:
        if w.proc.poll() is None:
            w.stop(timeout=60)
    delete_topics(admin, [topic, replies])


def live_ok(w):
    def check():
        code, body = get(w.port, "/healthz")
        assert code == 200, f"/healthz {code} {body} while the worker only waits\n{w.text()[-2000:]}"
    return check


def send_and_check(bootstrap, topic, replies, schemas, ids, partitions=3):
    x = np.zeros(NumpyMLP().width, dtype=np.float32)
    produce_all(producer(bootstrap), topic,
                [(None, encode(schemas["request"], request(i, x, reply_to=replies)), [], n % partitions)
                 for n, i in enumerate(ids)])
    msgs = consume_ids(bootstrap, replies, schemas["response"], ids, timeout=90)
    got = {decode(schemas["response"], m.value())[0]["id"] for m in msgs}
    assert set(ids) <= got, f"lost {len(set(ids) - got)} of {len(ids)}"


def test_ready_only_after_the_first_join(env, admin, bootstrap, schemas):
    """Before the request topic exists the consumer cannot join: 503 with the
    reason, live all along; once it exists: 200, gauges mirror; SIGTERM exits 0."""
    w = env["start"]()
    body = wait_http(w.port, "/readyz", 503, "not ready: not yet joined the consumer group", worker=w)
    assert body.count("\n") == 1 and body.endswith("\n")
    assert gauges(w.port) == {"kinfer_ready": ("not_joined", 0.0), "kinfer_live": ("ok", 1.0)}
    create_topics(admin, [env["topic"], env["replies"]], partitions=3)
    assert wait_http(w.port, "/readyz", 200, "ok", worker=w, also=live_ok(w)) == "ok\n"
    assert gauges(w.port) == {"kinfer_ready": ("ok", 1.0), "kinfer_live": ("ok", 1.0)}
    send_and_check(bootstrap, env["topic"], env["replies"], schemas, [f"r{i}" for i in range(30)])
    assert w.stop() == 0
    log = w.text()
    assert "event=worker.not_ready reason=not_joined" in log and "event=worker.ready" in log


def test_member_without_partitions_is_ready(env, admin):
    """Two workers, one partition: the idle member has joined its group (with
    an empty assignment) and is as ready as the busy one."""
    create_topics(admin, [env["topic"], env["replies"]], partitions=1)
    a, b = env["start"](), env["start"]()
    for w in (a, b):
        wait_http(w.port, "/readyz", 200, "ok", worker=w)
    assert a.stop() == 0 and b.stop() == 0


def test_unreachable_address_is_never_ready(env):
    """No broker listens there: never ready, the reason names the refusal once
    the grace is over; the worker stays live (a restart would not help)."""
    dead = f"127.0.0.1:{_free_port()}"
    w = env["start"](brokers=dead)
    body = wait_http(w.port, "/readyz", 503, "not ready: all brokers down for", worker=w, also=live_ok(w))
    assert "Connection refused" in body, body
    secs = int(re.search(r"down for (\d+) s", body).group(1))
    assert secs * 1000 >= GRACE_MS - 1000
    assert gauges(w.port)["kinfer_ready"] == ("brokers_down", 0.0)
    # Still never ready a while later, still live.
    end = time.monotonic() + 3
    while time.monotonic() < end:
        assert get(w.port, "/readyz")[0] == 503
        live_ok(w)()
        time.sleep(0.2)
    assert w.stop() == 0


def _broker_pid(kafka_ctl):
    st = kafka_ctl("status")
    if st.returncode != 0 and os.environ.get("KINFER_BOOTSTRAP") and "stopped" in st.stdout:
        pytest.fail("these tests stop and restart the broker: run it with scripts/kafka.sh", pytrace=False)
    assert st.returncode == 0, st.stdout + st.stderr
    return int(re.search(r"\(pid (\d+),", st.stdout).group(1))


def _wait_gone(pid, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    raise AssertionError(f"broker pid {pid} still running")


@pytest.mark.chaos
def test_broker_stopped_then_back(env, admin, bootstrap, schemas, kafka_ctl):
    """The broker goes away (its process ends, data kept) longer than the grace:
    not ready with the reason, live meanwhile; ready again after it returns,
    and every request before and after is answered."""
    create_topics(admin, [env["topic"], env["replies"]], partitions=3)
    w = env["start"]()
    wait_http(w.port, "/readyz", 200, "ok", worker=w)
    send_and_check(bootstrap, env["topic"], env["replies"], schemas, [f"a{i}" for i in range(50)])
    pid = _broker_pid(kafka_ctl)
    os.kill(pid, signal.SIGTERM)  # what `kafka.sh stop` does, without deleting the data
    _wait_gone(pid)
    try:
        body = wait_http(w.port, "/readyz", 503, "not ready: all brokers down for", worker=w,
                         also=live_ok(w))
        assert "(last error: " in body
    finally:
        r = kafka_ctl("restart")  # start again on the same data
        assert r.returncode == 0, r.stdout + r.stderr
    wait_http(w.port, "/readyz", 200, "ok", timeout=90, worker=w, also=live_ok(w))
    send_and_check(bootstrap, env["topic"], env["replies"], schemas, [f"b{i}" for i in range(50)])
    deadline = time.monotonic() + 30
    while committed(bootstrap, env["group"], env["topic"], 3) != end_offsets(bootstrap, env["topic"], 3):
        assert time.monotonic() < deadline, w.text()[-3000:]
        time.sleep(0.3)
    assert w.stop() == 0
    assert "event=worker.not_ready reason=brokers_down" in w.text()


@pytest.mark.chaos
def test_broker_sigstopped_then_continued(env, admin, bootstrap, schemas, kafka_ctl):
    """A frozen broker keeps its TCP connections open and answers nothing: the
    metadata probe still calls it down after the grace; SIGCONT brings ready
    back and nothing is lost. A SIGTERM while it is frozen shows draining."""
    create_topics(admin, [env["topic"], env["replies"]], partitions=3)
    w = env["start"]()
    wait_http(w.port, "/readyz", 200, "ok", worker=w)
    send_and_check(bootstrap, env["topic"], env["replies"], schemas, [f"a{i}" for i in range(50)])
    pid = _broker_pid(kafka_ctl)
    os.kill(pid, signal.SIGSTOP)
    try:
        body = wait_http(w.port, "/readyz", 503, "not ready: all brokers down for", worker=w,
                         also=live_ok(w))
        assert "(last error: " in body
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_http(w.port, "/readyz", 200, "ok", timeout=90, worker=w, also=live_ok(w))
    send_and_check(bootstrap, env["topic"], env["replies"], schemas, [f"b{i}" for i in range(50)])
    # Draining: frozen broker, SIGTERM; the final synchronous commit waits for it.
    os.kill(pid, signal.SIGSTOP)
    try:
        w.proc.send_signal(signal.SIGTERM)
        body = wait_http(w.port, "/readyz", 503, "not ready: draining", timeout=30, worker=w)
        assert gauges(w.port)["kinfer_ready"] == ("draining", 0.0)
    finally:
        os.kill(pid, signal.SIGCONT)
    w.proc.wait(120)  # no second signal: that would mean "exit at once"
    assert w.stop() == 0, w.text()[-3000:]


def test_wedged_poll_loop_is_not_live(env, admin, tmp_path):
    """The test hook stops the poll loop while its file exists: /healthz turns
    503 past max.poll.interval.ms and names the poll loop; 200 again after."""
    create_topics(admin, [env["topic"], env["replies"]], partitions=3)
    wedge = tmp_path / "wedge"
    w = env["start"](env_extra={"KINFER_TEST_WEDGE_FILE": str(wedge)},
                     consumer_props=("max.poll.interval.ms=6000",))
    wait_http(w.port, "/readyz", 200, "ok", worker=w)
    assert get(w.port, "/healthz") == (200, "ok\n")
    wedge.write_text("")
    body = wait_http(w.port, "/healthz", 503, "not live: the poll loop has not polled for", worker=w)
    assert "bound: max.poll.interval.ms = 6000" in body
    assert gauges(w.port)["kinfer_live"] == ("poll_stalled", 0.0)
    wedge.unlink()
    wait_http(w.port, "/healthz", 200, "ok", worker=w)
    assert w.stop() == 0
    assert "event=worker.not_live reason=poll_stalled" in w.text()


# ---- a secured broker: wrong credentials are never ready ----------------------------

KAFKA_SH = Path(os.environ.get("KINFER_KAFKA_SH") or
                Path(__file__).resolve().parents[2] / "scripts" / "kafka.sh")


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


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory):
    """A SASL_PLAINTEXT (SCRAM-SHA-512) broker from scripts/kafka.sh on a port
    pair of its own: (bootstrap, client properties without bootstrap.servers)."""
    if "KINFER_KAFKA_SECURITY" not in KAFKA_SH.read_text():
        pytest.skip(f"{KAFKA_SH} has no KINFER_KAFKA_SECURITY mode yet (scripts/kafka.sh "
                    "gains it on branch kafkainfra)")
    # KINFER_SASL_KAFKA_PORT: a port (and the next) to use, else a free pair.
    port = int(os.environ.get("KINFER_SASL_KAFKA_PORT") or _free_port_pair())
    env = {k: v for k, v in os.environ.items() if k != "KINFER_KAFKA_CONTROLLER_PORT"}
    env.update(KINFER_KAFKA_PORT=str(port), KINFER_KAFKA_SECURITY="sasl_plaintext",
               KINFER_KAFKA_STATE=str(tmp_path_factory.mktemp("kafka-sasl")))
    run = lambda *a: subprocess.run([str(KAFKA_SH), *a], env=env, capture_output=True,  # noqa: E731
                                    text=True, timeout=240, stdin=subprocess.DEVNULL)
    started = run("start")
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        lines = started.stdout.strip().splitlines()
        (props_line,) = [ln for ln in lines if ln.startswith("client-properties: ")]
        props = {}
        for ln in Path(props_line.split(": ", 1)[1]).read_text().splitlines():
            if ln.strip() and not ln.startswith("#"):
                k, _, v = ln.partition("=")
                props[k.strip()] = v.strip()
        props.pop("bootstrap.servers", None)
        yield lines[-1], props
    finally:
        stopped = run("stop")
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr


def _properties(props):
    return "properties = [" + ", ".join(f'"{k}={v}"' for k, v in props.items()) + "];"


def test_wrong_sasl_password_is_never_ready(sasl_broker, env):
    """Authentication fails at every try: never ready, the reason says so,
    names the properties to check and quotes the broker's refusal; live all
    along. (health.startup_auth_timeout_ms = 0: the worker does not stop with
    a start-up error, test_secured_kafka.py covers that.) With the right
    password the same worker config is ready (so it is the password that is
    wrong)."""
    bootstrap, props = sasl_broker
    from confluent_kafka.admin import AdminClient
    create_topics(AdminClient({"bootstrap.servers": bootstrap, **props}), [env["topic"]], partitions=3)
    w = env["start"](brokers=bootstrap,
                     extra_kafka=_properties(dict(props, **{"sasl.password": "not-the-password"})),
                     extra_health="startup_auth_timeout_ms = 0;")
    body = wait_http(w.port, "/readyz", 503,
                     "not ready: authentication or TLS with the cluster failing for", worker=w,
                     also=live_ok(w))
    assert "_AUTHENTICATION" in body and "Authentication failed" in body, body
    assert "check sasl.username and sasl.password" in body, body
    assert gauges(w.port)["kinfer_ready"] == ("auth_failed", 0.0)
    end = time.monotonic() + 3
    while time.monotonic() < end:
        assert get(w.port, "/readyz")[0] == 503
        live_ok(w)()
        time.sleep(0.2)
    assert w.stop() == 0
    good = env["start"](brokers=bootstrap, extra_kafka=_properties(props))
    wait_http(good.port, "/readyz", 200, "ok", timeout=60, worker=good)
    assert good.stop() == 0
