"""`kinfer worker --embedded-kafka` driven by `kinfer send`, plus `kinfer send`
against the real broker: exit codes, readable and JSON output, inputs from
the command line, JSON and .npy files, routing by header."""

import json
import re
import signal
import subprocess
import time
import uuid

import numpy as np
import pytest

from worker_helpers import MODEL_NAME, MODEL_PATH, NumpyMLP, Worker, write_config


def _send(kinfer_bin, *args, timeout=60):
    return subprocess.run([str(kinfer_bin), "send", *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture
def embedded(tmp_path, kinfer_bin, repo_root):
    # The example config as shipped, minus its fixed HTTP port (tests run in parallel).
    text = (repo_root / "examples" / "kinfer.conf").read_text()
    text = re.sub(r'listen\s*=\s*"[^"]*"', 'listen = ""', text)
    text = text.replace("../models/", str(repo_root / "models") + "/")
    cfg = tmp_path / "kinfer.conf"
    cfg.write_text(text)
    out = open(tmp_path / "embedded.out", "wb")
    proc = subprocess.Popen([str(kinfer_bin), "worker", "--embedded-kafka", "-c", str(cfg)],
                            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    text = ""
    while time.monotonic() < deadline:
        text = (tmp_path / "embedded.out").read_text(errors="replace")
        if "event=worker.assigned" in text:
            break
        assert proc.poll() is None, text
        time.sleep(0.1)
    else:
        raise AssertionError(text)
    m = re.search(r"bootstrap\s+(\S+)", text)
    cmd = re.search(r"^\s+(\S+kinfer send .*)$", text, re.M)
    assert m and cmd, text
    yield {"bootstrap": m.group(1), "command": cmd.group(1), "proc": proc,
           "log": tmp_path / "embedded.out"}
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    out.close()


def test_embedded_worker_answers_kinfer_send(embedded, kinfer_bin, tmp_path):
    mlp = NumpyMLP()
    # The banner's ready-to-paste command works as printed.
    args = embedded["command"].split()[2:]
    r = _send(kinfer_bin, *args)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "status=OK" in r.stdout and "output  output FP32" in r.stdout
    x = np.array([float(v) for v in args[args.index("--input") + 1].split(",")])
    want = mlp.forward(x)
    got = float(re.search(r"^  \[([-0-9.e]+)\]$", r.stdout, re.M).group(1))
    assert abs(got - want[0]) < 1e-4

    # JSON output, a JSON input file with two rows, reply routed by header.
    rows = np.random.default_rng(1).normal(size=(2, mlp.width))
    f = tmp_path / "in.json"
    f.write_text(json.dumps(rows.tolist()))
    r = _send(kinfer_bin, "-b", embedded["bootstrap"], "-t", "inference.requests", "-m",
              MODEL_NAME, "--input-file", str(f), "--json", "--reply-via", "header",
              "--framing", "single-object")
    assert r.returncode == 0, r.stderr
    reply = json.loads(r.stdout)
    assert reply["status"] == "OK" and reply["outputs"][0]["shape"] == [2, mlp.out_width]
    np.testing.assert_allclose(np.array(reply["outputs"][0]["data"]).reshape(2, -1),
                               mlp.forward(rows), rtol=1e-4, atol=1e-5)

    # An error status exits 1 and says why.
    r = _send(kinfer_bin, "-b", embedded["bootstrap"], "-t", "inference.requests", "-m",
              "no-such-model", "--input", "1,2,3")
    assert r.returncode == 1
    assert "MODEL_NOT_FOUND" in r.stdout

    # SIGINT: graceful stop, exit 0.
    embedded["proc"].send_signal(signal.SIGINT)
    assert embedded["proc"].wait(30) == 0
    assert "event=worker.stopped" in embedded["log"].read_text()


def test_send_usage_errors_and_timeout(kinfer_bin, bootstrap, make_topic):
    r = _send(kinfer_bin, "-t", "x", "-m", "y", "--input", "1")
    assert r.returncode == 2 and "required" in r.stderr
    r = _send(kinfer_bin, "-b", bootstrap, "-t", "x", "-m", "y", "--input", "1,zz")
    assert r.returncode == 2 and "not a number" in r.stderr
    r = _send(kinfer_bin, "-b", bootstrap, "-t", "x", "-m", "y", "--input", "1,2,3",
              "--shape", "2,2")
    assert r.returncode == 2 and "do not fill" in r.stderr
    # Nobody serves this topic: no reply, exit 3.
    topic = make_topic(partitions=1)
    make_topic_replies = make_topic(partitions=1, hint="noreply")
    r = _send(kinfer_bin, "-b", bootstrap, "-t", topic, "-m", "y", "--input", "1",
              "--reply-topic", make_topic_replies, "--timeout", "1500")
    assert r.returncode == 3 and "no reply" in r.stderr


def test_send_npy_against_real_broker_worker(kinfer_bin, bootstrap, make_topic, tmp_path):
    topic = make_topic(partitions=2)
    replies = make_topic(partitions=2, hint="replies")
    cfg = write_config(tmp_path / "w.conf", bootstrap, topic, "kinfer-test-" + uuid.uuid4().hex)
    w = Worker(kinfer_bin, cfg, tmp_path / "w.log")
    try:
        w.wait_assigned()
        mlp = NumpyMLP()
        x = np.random.default_rng(5).normal(size=(3, mlp.width))  # float64: converted to FP32
        np.save(tmp_path / "x.npy", x)
        r = _send(kinfer_bin, "-b", bootstrap, "-t", topic, "-m", MODEL_NAME, "--input-file",
                  str(tmp_path / "x.npy"), "--reply-topic", replies, "--json",
                  "--deadline-ms", "30000", "--header", "traceparent=abc")
        assert r.returncode == 0, r.stderr + w.text()[-2000:]
        reply = json.loads(r.stdout)
        np.testing.assert_allclose(np.array(reply["outputs"][0]["data"]).reshape(3, -1),
                                   mlp.forward(x.astype(np.float32)), rtol=1e-4, atol=1e-5)
        assert reply["source"]["topic"] == topic
        # A deadline already past by the time it is read: DEADLINE_EXCEEDED, exit 1.
        r = _send(kinfer_bin, "-b", bootstrap, "-t", topic, "-m", MODEL_NAME, "--input",
                  ",".join(["0.5"] * mlp.width), "--reply-topic", replies,
                  "--deadline-ms", "-1000")
        assert r.returncode == 1 and "DEADLINE_EXCEEDED" in r.stdout, r.stdout + r.stderr
    finally:
        assert w.stop() == 0
