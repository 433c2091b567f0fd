"""A worker stopped (SIGTERM) while the group hands it new partitions and
its input is paused by backpressure must still stop by itself.

Regression test: with librdkafka 2.0.2 the worker deadlocked in
rd_kafka_consumer_close. The incremental assign of the new partitions was
served inside close, and the revoke that close then ran blocked forever in
rd_kafka_incremental_unassign (stack: on_revoke -> librdkafka cnd_wait); a
second SIGTERM was needed to exit. Fixed in worker_loop.c: the worker
unsubscribes and lets its poll loop serve the assign and the revoke before it
closes (unsubscribe_and_release).
"""

import signal
import time
import uuid

import numpy as np
import pytest
from confluent_kafka.admin import NewPartitions

from test_worker_backpressure import DIMS, MODEL, make_heavy_mlp
from worker_helpers import Worker, encode, produce_all, producer, request


def test_stop_while_new_partitions_arrive_under_backpressure(tmp_path, bootstrap, make_topic,
                                                             admin, kinfer_bin, schemas):
    topic = make_topic(partitions=2, hint="bp-stop")
    group = "kinfer-test-bp-stop-" + uuid.uuid4().hex[:8]
    model_path = make_heavy_mlp(tmp_path / "heavy.safetensors")
    cfg = tmp_path / "w.conf"
    cfg.write_text(f"""
kafka = {{ brokers = "{bootstrap}"; group = "{group}"; topics = ["{topic}"];
    commit_interval_ms = 200;
    consumer_properties = ["session.timeout.ms=6000", "topic.metadata.refresh.interval.ms=500"]; }};
worker = {{ log_level = "info"; drain_timeout_ms = 10000; cpu_threads = 1; }};
http = {{ listen = ""; }};
models = ( {{ name = "{MODEL}"; kind = "mlp"; path = "{model_path}"; devices = ["cpu"];
              max_batch_size = 8; max_queue = 64; }} );
""")
    produce_all(producer(bootstrap), topic, [
        (None, encode(schemas["request"], request(f"s{i}", np.zeros(DIMS[0], np.float32),
                                                  model=MODEL, reply_to=topic + ".r")), [], i % 2)
        for i in range(500)])
    w = Worker(kinfer_bin, cfg, tmp_path / "w.log")
    try:
        w.wait_assigned()
        deadline = time.monotonic() + 20
        while "event=worker.pause" not in w.text():
            assert time.monotonic() < deadline, w.text()[-2000:]
            time.sleep(0.01)
        admin.create_partitions([NewPartitions(topic, 4)])[topic].result(timeout=30)
        # Stop the moment the worker sees the new partitions: the assignment
        # then arrives while it drains and closes.
        deadline = time.monotonic() + 20
        while "partition count changed" not in w.text():
            assert time.monotonic() < deadline, w.text()[-2000:]
            time.sleep(0.001)
        w.proc.send_signal(signal.SIGTERM)
        try:
            rc = w.proc.wait(15)
        except Exception:
            raise AssertionError(f"worker did not stop in 15 s:\n{w.text()[-2000:]}")
        assert rc == 0, w.text()[-2000:]
    finally:
        if w.proc.poll() is None:
            w.proc.kill()
            w.proc.wait()
