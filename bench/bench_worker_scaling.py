#!/usr/bin/env python3
"""bench_worker_scaling.py — kinfer throughput with 1, 2 and 3 workers in one
group on a CPU-bound model, and the rebalance pause (longest time with no
reply at all after a worker joins or leaves) for cooperative-sticky vs
eager assignment. Results go to docs/benchmarks/scaling.md.

  KINFER_KAFKA_PORT=19092 scripts/kafka.sh start
  python3 bench/bench_worker_scaling.py [--requests 6000] [--bin build/kinfer]

Throughput: N workers start and settle in the group, then the whole load is
produced at once to the 12-partition topic (the producer is far faster than
the workers), and the rate is taken from the replies' CreateTime between the
10 % and the 90 % reply, so neither start-up nor the load generator is what
is measured. Each worker gets cpu_threads = 1.
"""
import argparse
import os
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "chaos"))
import chaos  # noqa: E402
import run as chaos_run  # noqa: E402
from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient  # noqa: E402

# CPU-bound: about 2*(512*2048 + 2048*2048 + 2048*512) = 12.6 MFLOP a request
# (with a lighter model one worker idles on fetch round trips, not compute).
DIMS = (512, 2048, 2048, 512)


def _cpu_seconds(pid):
    """utime + stime of a process, in seconds (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def throughput(a, admin, schemas, workdir, nworkers, model):
    run_id = f"scale{nworkers}-{uuid.uuid4().hex[:6]}"
    topic, replies = f"kinfer-bench-{run_id}", f"kinfer-bench-{run_id}.replies"
    chaos.create_topics(admin, [topic], partitions=chaos.PARTITIONS)
    chaos.create_topics(admin, [replies], partitions=6)
    rep = chaos.Replies(a.bootstrap, replies, schemas["response"], run_id, read_committed=False)
    rep.start()
    group = "kinfer-bench-" + run_id
    workers = []
    for i in range(nworkers):
        cfg = chaos.write_config(workdir / f"{run_id}-w{i}.conf", bootstrap=a.bootstrap,
                                 topic=topic, group=group, worker_id=f"{run_id}-w{i}",
                                 mode="at-least-once", model_path=model, model_name="cpu-mlp",
                                 max_batch_size=32, commit_interval_ms=500)
        workers.append(chaos.WorkerProc(a.bin, cfg, workdir, f"{run_id}-w{i}", 1024).start())
    for w in workers:
        w.wait_assigned()
    time.sleep(3.0)  # the group settles before the load arrives
    # The whole load at once (the producer is >10x faster than the workers).
    p = Producer({"bootstrap.servers": a.bootstrap, "linger.ms": 20}, logger=chaos.QUIET)
    x = np.full(DIMS[0], 0.5, np.float32)
    for n in range(a.requests):
        v = chaos.encode(schemas["request"], chaos.request(f"{run_id}-{n}", x, model="cpu-mlp",
                                                           reply_to=replies))
        while True:
            try:
                p.produce(topic, value=v, partition=n % chaos.PARTITIONS)
                break
            except BufferError:
                p.poll(0.05)
    p.flush(60)
    deadline = time.monotonic() + 600
    while len(rep.first_at) < a.requests and time.monotonic() < deadline:
        time.sleep(0.1)
    rep.stop_flag = True
    rep.join(10)
    cpu_s = sum(_cpu_seconds(w.proc.pid) for w in workers)
    for w in workers:
        w.signal(signal.SIGTERM)
    chaos.delete_topics(admin, [topic, replies])
    ts = sorted(rep.produced)  # the workers' produce times of the replies
    # Steady state: from the 10% reply to the 90% one (start-up and the
    # group's first rebalances fall outside), by the replies' CreateTime.
    lo, hi = ts[len(ts) // 10], ts[(len(ts) * 9) // 10]
    return (len(ts) * 0.8) / (hi - lo), len(rep.first_at), cpu_s / (ts[-1] - ts[0])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", default=os.environ.get("KINFER_BOOTSTRAP") or
                    f"127.0.0.1:{os.environ.get('KINFER_KAFKA_PORT', 19092)}")
    ap.add_argument("--bin", default=os.environ.get("KINFER_BIN") or
                    str(chaos.REPO_ROOT / "build" / "kinfer"))
    ap.add_argument("--requests", type=int, default=6000)
    ap.add_argument("--skip-pause", action="store_true")
    a = ap.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="kinfer-scaling-"))
    admin = AdminClient({"bootstrap.servers": a.bootstrap})
    schemas = chaos_run.schemas()
    model = chaos.make_heavy_mlp(workdir / "cpu_mlp.safetensors", dims=DIMS)
    print(f"cpus online: {os.cpu_count()}; model {DIMS}, max_batch_size 32, cpu_threads 1/worker")
    print("| workers | requests | throughput req/s | vs 1 worker | worker CPU (cores) |\n"
          "|---|---|---|---|---|")
    base = None
    for n in (1, 2, 3):
        rps, got, cores = throughput(a, admin, schemas, workdir, n, model)
        base = base or rps
        print(f"| {n} | {got} | {rps:.0f} | {rps / base:.2f}x | {cores:.2f} |", flush=True)
    if a.skip_pause:
        return 0
    print("\n| assignment | event | max gap with no reply (ms) | duplicates | lost |\n|---|---|---|---|---|")
    for assignment in ("cooperative-sticky", "eager"):
        for sc in ("add-worker", "remove-worker"):
            with chaos.Chaos(bootstrap=a.bootstrap, kinfer_bin=a.bin,
                             kafka_ctl=chaos_run.make_kafka_ctl(a.bootstrap), schemas=schemas,
                             admin=admin, workdir=workdir / f"{assignment}-{sc}", scenario=sc,
                             mode="at-least-once", count=3000, rate=300,
                             assignment=assignment) as c:
                r = c.run()
                print(f"| {assignment} | {sc} | {r.notes.get('max_gap_ms')} | {r.duplicates} | "
                      f"{r.lost} |", flush=True)
    print(f"logs: {workdir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
