#!/usr/bin/env bash
# bench/pipeline_bench.sh — kinfer's pipeline through a real broker against a
# raw consume->produce pass-through (bench_worker_rawpipe), in the same run,
# alternating, ROUNDS times; prints medians as a markdown table.
#
#   KINFER_KAFKA_PORT=19092 bench/pipeline_bench.sh [BUILD_DIR]
#
# Load: `kinfer bench` at full speed (window CONCURRENCY) with COUNT requests
# of 1 KiB (one FP32 [1, 256] tensor) against an identity-sized MLP (one
# 256x256 layer, no activation), worker with cpu_threads = 1. Worker CPU
# per request outside compute = (process CPU delta - sum of batch compute
# times reported in the replies) / replies. Needs a broker (scripts/kafka.sh).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
bs=127.0.0.1:${KINFER_KAFKA_PORT:-19092}
count=${COUNT:-50000}
rounds=${ROUNDS:-3}
conc=${CONCURRENCY:-2000}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
kinfer=$build/kinfer
rawpipe=$build/bench/bench_worker_rawpipe
clk=$(getconf CLK_TCK)

python3 - "$tmp/identity256.safetensors" <<'EOF'
import sys, numpy as np
from safetensors.numpy import save_file
save_file({"layers.0.weight": np.eye(256, dtype=np.float32),
           "layers.0.bias": np.zeros(256, dtype=np.float32)}, sys.argv[1],
          metadata={"activation": "none", "output_activation": "none"})
EOF

mk_topics() {
    python3 - "$bs" "$@" <<'EOF'
import sys
from confluent_kafka.admin import AdminClient, NewTopic
a = AdminClient({"bootstrap.servers": sys.argv[1]})
fs = a.create_topics([NewTopic(t, 3, 1) for t in sys.argv[2:]])
for f in fs.values():
    f.result(30)
EOF
}
rm_topics() {
    python3 - "$bs" "$@" <<'EOF' || true
import sys
from confluent_kafka.admin import AdminClient
a = AdminClient({"bootstrap.servers": sys.argv[1]})
for f in a.delete_topics(sys.argv[2:]).values():
    f.result(30)
EOF
}
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# CPU ticks of the worker's Kafka-side threads: the poll loop (tid = pid),
# the producer thread (kinfer-produce: produce + delivery reports; kinfer-dr
# in builds before the one produce path) and librdkafka's threads (rdk:*).
# Everything else named "kinfer" is the engine (batching, compute, reply
# encode + hand-off).
kafka_ticks() {
    local pid=$1 sum=0 t name
    for t in /proc/"$pid"/task/*; do
        name=$(cat "$t/comm")
        if [[ ${t##*/} == "$pid" || $name == kinfer-produce || $name == kinfer-dr || $name == rdk:* ]]; then
            sum=$((sum + $(awk '{print $14 + $15}' "$t/stat")))
        fi
    done
    echo $sum
}
hwm() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }

results=$tmp/results.jsonl
for r in $(seq "$rounds"); do
    raw=kb-raw-$r-$$
    kin=kb-kinfer-$r-$$
    mk_topics "$raw" "$raw.replies" "$kin" "$kin.replies"

    "$rawpipe" "$bs" "$raw" "$raw.replies" "kb-raw-$r-$$" >"$tmp/raw.out" 2>"$tmp/raw.err" &
    rp=$!
    sleep 3
    t0=$(ticks $rp)
    idle_rss=$(awk '/VmRSS/ {print $2}' "/proc/$rp/status")
    "$kinfer" bench -b "$bs" -t "$raw" -m identity --bytes 1024 --count "$count" \
        --concurrency "$conc" --raw --json --quiet >"$tmp/raw.json"
    t1=$(ticks $rp)
    rss=$(hwm $rp)
    kill -TERM $rp
    wait $rp || true
    python3 - "$tmp/raw.json" "$t0" "$t1" "$clk" "$rss" raw "$idle_rss" >>"$results" <<'EOF'
import json, sys
b = json.load(open(sys.argv[1])); t0, t1, clk, rss = map(int, sys.argv[2:6])
idle = int(sys.argv[7])
cpu_us = (t1 - t0) / clk * 1e6
print(json.dumps({"kind": sys.argv[6], "rps": b["throughput_rps"], "p50": b["latency_ms"]["p50"],
                  "p99": b["latency_ms"]["p99"], "lost": b["lost"], "dups": b["duplicates"],
                  "cpu_us_per_req": cpu_us / max(b["replies"], 1),
                  "cpu_us_outside_compute": cpu_us / max(b["replies"], 1),
                  "engine_cpu_us_per_req": 0, "batch_compute_wall_us_per_req": 0,
                  "rss_kb": rss, "rss_growth_kb": rss - idle}))
EOF

    cat >"$tmp/w.conf" <<EOF
kafka = { brokers = "$bs"; group = "kb-kinfer-$r-$$"; topics = ["$kin"]; };
worker = { cpu_threads = 1; log_level = "warn"; };
http = { listen = ""; };
models = ( { name = "identity"; kind = "mlp"; path = "$tmp/identity256.safetensors";
             devices = ["cpu"]; max_batch_size = 64; max_queue_delay_us = 500;
             max_queue = 4096; } );
EOF
    "$kinfer" worker -c "$tmp/w.conf" 2>"$tmp/w.err" &
    wp=$!
    sleep 3 # model load and group join, outside the measurement
    t0=$(ticks $wp)
    k0=$(kafka_ticks $wp)
    idle_rss=$(awk '/VmRSS/ {print $2}' "/proc/$wp/status")
    "$kinfer" bench -b "$bs" -t "$kin" -m identity --bytes 1024 --count "$count" \
        --concurrency "$conc" --json --quiet >"$tmp/kin.json"
    t1=$(ticks $wp)
    k1=$(kafka_ticks $wp)
    rss=$(hwm $wp)
    kill -TERM $wp
    wait $wp || true
    python3 - "$tmp/kin.json" "$t0" "$t1" "$clk" "$rss" kinfer "$k0" "$k1" "$idle_rss" \
        >>"$results" <<'EOF'
import json, sys
b = json.load(open(sys.argv[1])); t0, t1, clk, rss = map(int, sys.argv[2:6])
k0, k1, idle = map(int, sys.argv[7:10])
n = max(b["replies"], 1)
cpu_us = (t1 - t0) / clk * 1e6
kafka_us = (k1 - k0) / clk * 1e6
print(json.dumps({"kind": sys.argv[6], "rps": b["throughput_rps"], "p50": b["latency_ms"]["p50"],
                  "p99": b["latency_ms"]["p99"], "lost": b["lost"], "dups": b["duplicates"],
                  "cpu_us_per_req": cpu_us / n, "cpu_us_outside_compute": kafka_us / n,
                  "engine_cpu_us_per_req": (cpu_us - kafka_us) / n,
                  "batch_compute_wall_us_per_req": b["batch_compute_ms"] * 1000 / n,
                  "rss_kb": rss, "rss_growth_kb": rss - idle, "ok": b["status"]["OK"]}))
EOF
    rm_topics "$raw" "$raw.replies" "$kin" "$kin.replies"
    tail -n 2 "$results" >&2
done

python3 - "$results" "$count" "$conc" <<'EOF'
import json, statistics as st, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(kind, key):
    return st.median(r[key] for r in rows if r["kind"] == kind)
print(f"rounds: {len(rows)//2}, {sys.argv[2]} requests of 1 KiB each, window {sys.argv[3]}\n")
print("| | raw pipe | kinfer |\n|---|---|---|")
for key, label, fmt in [("rps", "throughput (replies/s)", "{:.0f}"), ("p50", "latency p50 (ms)", "{:.1f}"),
                        ("p99", "latency p99 (ms)", "{:.1f}"),
                        ("cpu_us_per_req", "process CPU per request (µs)", "{:.1f}"),
                        ("cpu_us_outside_compute", "CPU per request, Kafka side: poll loop + delivery thread + librdkafka (µs)", "{:.1f}"),
                        ("engine_cpu_us_per_req", "CPU per request, engine threads: batching + compute + reply encode/produce (µs)", "{:.1f}"),
                        ("batch_compute_wall_us_per_req", "batch compute wall time per request, from the replies (µs)", "{:.1f}"),
                        ("rss_kb", "peak RSS (MiB)", "{:.0f}"), ("rss_growth_kb", "RSS growth under load (MiB)", "{:.1f}"),
                        ("lost", "lost", "{:.0f}"),
                        ("dups", "duplicates", "{:.0f}")]:
    a, b = med("raw", key), med("kinfer", key)
    if key in ("rss_kb", "rss_growth_kb"):
        a, b = a / 1024, b / 1024
    print(f"| {label} | {fmt.format(a)} | {fmt.format(b)} |")
print(f"\nthroughput ratio kinfer / raw pipe (median of per-round ratios): "
      f"{st.median(k['rps'] / r['rps'] for r, k in zip([x for x in rows if x['kind']=='raw'], [x for x in rows if x['kind']=='kinfer'])):.2f}")
EOF
