#!/usr/bin/env bash
# scripts/run.sh BUILD CONFIG — what `make run` runs: the worker from BUILD on
# CONFIG (with no kafka.brokers in CONFIG it serves on an embedded in-process
# Kafka cluster). Where the worker is not built yet, validates CONFIG instead.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-build}
config=${2:-examples/kinfer.conf}
# Paths relative to the caller's directory, else to the repository root.
case "$build" in /*) ;; *) [ -e "$build" ] || build=$root/$build ;; esac
case "$config" in /*) ;; *) [ -e "$config" ] || config=$root/$config ;; esac
bin=$build/kinfer

[ -x "$bin" ] || { echo "run: no kinfer binary at $bin; run 'make build' first" >&2; exit 1; }
[ -f "$config" ] || { echo "run: config file $config not found" >&2; exit 1; }

if "$bin" worker --help >/dev/null 2>&1; then
    echo "run: $bin worker -c $config  (Ctrl-C stops it gracefully)" >&2
    exec "$bin" worker -c "$config"
fi
echo "run: 'kinfer worker' is not built in this checkout yet; checking the config instead" >&2
exec "$bin" check-config "$config"
