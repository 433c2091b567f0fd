"""Several workers on one host (one per GPU is the normal deployment): each
needs its own http.listen, worker.id and group.instance.id. A listen
address already taken fails the start with the address, the OS reason and
the config key; two workers with their own settings share the group and
each serves its own /metrics. Clients: confluent-kafka + fastavro."""

import socket
import subprocess
import urllib.request
import uuid

import numpy as np

from worker_helpers import (MODEL_NAME, MODEL_PATH, NumpyMLP, Worker, consume_ids, decode,
                            encode, produce_all, producer, request)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(path, bootstrap, topic, group, worker_id, listen):
    path.write_text(f"""
kafka = {{ brokers = "{bootstrap}"; group = "{group}"; topics = ["{topic}"];
          group_instance_id = "{worker_id}"; commit_interval_ms = 200;
          consumer_properties = ["session.timeout.ms=6000"]; }};
worker = {{ id = "{worker_id}"; log_level = "info"; cpu_threads = 1; }};
http = {{ listen = "{listen}"; }};
models = ( {{ name = "{MODEL_NAME}"; kind = "mlp"; path = "{MODEL_PATH}"; devices = ["cpu"]; }} );
""")
    return path


def get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.status, r.read().decode()


def test_listen_address_taken_names_address_reason_and_key(tmp_path, bootstrap, make_topic,
                                                          kinfer_bin):
    topic = make_topic(partitions=1)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        addr = f"127.0.0.1:{taken.getsockname()[1]}"
        cfg = config(tmp_path / "w.conf", bootstrap, topic, "g-" + uuid.uuid4().hex[:6], "w-1",
                     addr)
        r = subprocess.run([str(kinfer_bin), "worker", "-c", str(cfg)], capture_output=True,
                           text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 1, r.stderr
    assert (f"http.listen '{addr}': cannot listen: Address already in use (another process, "
            "e.g. a second worker on this host, listens there: give each worker its own "
            "http.listen") in r.stderr, r.stderr


def test_two_workers_on_one_host_with_their_own_listen_and_ids(tmp_path, bootstrap, make_topic,
                                                              kinfer_bin, schemas):
    topic, replies = make_topic(partitions=4), make_topic(partitions=4, hint="replies")
    group = "kinfer-test-" + uuid.uuid4().hex[:8]
    ports = [free_port(), free_port()]
    workers = [Worker(kinfer_bin,
                      config(tmp_path / f"w{i}.conf", bootstrap, topic, group, f"gpu{i}",
                             f"127.0.0.1:{ports[i]}"), tmp_path / f"w{i}.log")
               for i in range(2)]
    try:
        for w in workers:
            w.wait_assigned()
        width = NumpyMLP().width
        ids = [f"h{i}" for i in range(400)]
        produce_all(producer(bootstrap), topic,
                    [(None, encode(schemas["request"],
                                   request(i, np.full(width, 0.5, np.float32), reply_to=replies)),
                      [], n % 4) for n, i in enumerate(ids)])
        got = [decode(schemas["response"], m.value())[0]
               for m in consume_ids(bootstrap, replies, schemas["response"], ids, timeout=60)]
        assert {r["id"] for r in got} == set(ids), [w.text()[-1500:] for w in workers]
        # The group split the partitions between them: both answered.
        assert {r["timing"]["worker"] for r in got} == {"gpu0", "gpu1"}
        # Each serves its own endpoint, as itself.
        for i, port in enumerate(ports):
            assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200
            status, text = get(f"http://127.0.0.1:{port}/metrics")
            assert status == 200 and f'kinfer_info{{worker="gpu{i}"}} 1' in text
    finally:
        for w in workers:
            assert w.stop() == 0, w.text()[-3000:]
