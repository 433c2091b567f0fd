#!/usr/bin/env bash
# scripts/check-static.sh — checks CI runs without building anything:
#  1. dependency direction (DESIGN.md §1): the engine includes no Kafka, Avro
#     or libconfig header; codec includes no Kafka/libconfig/engine header;
#  2. docker/: the compose file validates, every COPY source exists, the
#     Kubernetes and Prometheus YAML parse and name what they must;
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
kafka_avro_config='(librdkafka/)?rdkafka(_mock)?\.h|avro\.h|avro/[^>"]*|libconfig\.h'
hits=$(includes_matching "$kafka_avro_config" kernels scheduler common include)
if [ -n "$hits" ]; then
    while read -r h; do fail "engine must not include Kafka/Avro/libconfig: $h"; done <<<"$hits"
fi

# Engine headers: every header that lives in kernels/ or scheduler/.
engine_headers=$(sources kernels scheduler | grep -E '\.(h|cuh)$' | xargs -r -n1 basename | sort -u |
    sed 's/\./\\./g' | paste -sd'|' -) || true
codec_bad='(librdkafka/)?rdkafka(_mock)?\.h|libconfig\.h'
[ -n "$engine_headers" ] && codec_bad="$codec_bad|([^>\"]*/)?($engine_headers)"
hits=$(includes_matching "$codec_bad" codec)
if [ -n "$hits" ]; then
    while read -r h; do fail "codec must not include Kafka/libconfig/engine headers: $h"; done <<<"$hits"
fi

# Nothing below the worker reaches up into worker/ or (engine) codec/ headers.
upper_headers=$(sources worker codec | grep -E '\.h$' | xargs -r -n1 basename | sort -u |
    sed 's/\./\\./g' | paste -sd'|' -) || true
if [ -n "$upper_headers" ]; then
    hits=$(includes_matching "([^>\"]*/)?($upper_headers)" kernels scheduler common include)
    if [ -n "$hits" ]; then
        while read -r h; do fail "engine must not include codec/worker headers: $h"; done <<<"$hits"
    fi
fi
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

# The worker configs shipped in docker/ must pass the worker's own validation
# (with /models mapped to the repo's models/, which compose mounts there).
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
            sed -i "s#\"/models/#\"$PWD/models/#g" "$tmp/k8s-kinfer.conf"
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
