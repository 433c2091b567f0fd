#!/usr/bin/env bash
# scripts/registry.sh start|stop|status|fetch — a real Schema Registry for
# tests: Apicurio Registry from Maven Central, whose Confluent-compatible API
# (what kinfer's kafka.schema_registry_url and confluent-kafka's
# SchemaRegistryClient speak) is at /apis/ccompat/v7. In-memory storage: a
# stop forgets every schema. Not a production deployment.
#
#   KINFER_REGISTRY_PORT     HTTP port on 127.0.0.1 (default 18081)
#   KINFER_REGISTRY_VERSION  Apicurio Registry release (default 3.3.3, needs
#                            Java 21+; 3.0.9 runs on Java 17)
#   KINFER_REGISTRY_JAVA     the java binary (default: the newest Java 21+
#                            under /usr/lib/jvm or /opt, else java on PATH)
#   KINFER_REGISTRY_STATE    state dir (default ~/.cache/kinfer/registry-run-<port>)
#   KINFER_REGISTRY_START_TIMEOUT  seconds to wait for it (default 120)
#
# `start` prints the Confluent API's base URL as its last stdout line (and the
# start-up time on stderr); a no-op when this port's registry already runs.
# `stop` ends only the registry whose pid file it wrote. The distribution
# (io.apicurio:apicurio-registry-app:<v>:tar.gz:all) is fetched once by
# Maven with strict checksum checks and unpacked under ~/.cache/kinfer.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
die() {
    echo "registry.sh: $*" >&2
    exit 1
}
number() {
    case "$2" in '' | *[!0-9]* | 0*) die "$1 must be a positive number, not '$2'" ;; esac
}

port=${KINFER_REGISTRY_PORT:-18081}
number KINFER_REGISTRY_PORT "$port"
[ "$port" -le 65535 ] || die "KINFER_REGISTRY_PORT must be at most 65535 ($port)"
version=${KINFER_REGISTRY_VERSION:-3.3.3}
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+(\.Final)?$ ]] ||
    die "KINFER_REGISTRY_VERSION must be a release like 3.3.3, not '$version'"
start_timeout=${KINFER_REGISTRY_START_TIMEOUT:-120}
number KINFER_REGISTRY_START_TIMEOUT "$start_timeout"

cache=${XDG_CACHE_HOME:-$HOME/.cache}/kinfer
dist=$cache/apicurio-registry-$version
state=${KINFER_REGISTRY_STATE:-$cache/registry-run-$port}
pidfile=$state/registry.pid
url=http://127.0.0.1:$port/apis/ccompat/v7

# --- the distribution -----------------------------------------------------------
fetch() {
    if [ -f "$dist/.complete" ]; then
        echo "registry: Apicurio Registry $version cached in $dist"
        return 0
    fi
    command -v mvn >/dev/null || die "mvn not found: run scripts/setup.sh"
    mkdir -p "$cache"
    exec 8>"$cache/.fetch-registry-$version.lock"
    flock -w 600 8 || die "timed out waiting for another registry fetch"
    if [ -f "$dist/.complete" ]; then
        exec 8>&-
        echo "registry: Apicurio Registry $version cached in $dist"
        return 0
    fi
    local tmp
    tmp=$(mktemp -d "$cache/.fetch-XXXXXX")
    echo "registry: fetching Apicurio Registry $version from Maven Central ..."
    # -C: fail on a checksum mismatch (Maven's default only warns).
    if ! mvn -q -B -C dependency:copy \
        -Dartifact="io.apicurio:apicurio-registry-app:$version:tar.gz:all" \
        -DoutputDirectory="$tmp/dl" >"$tmp.log" 2>&1; then
        tail -n 30 "$tmp.log" >&2
        rm -rf "$tmp" "$tmp.log"
        die "could not fetch io.apicurio:apicurio-registry-app:$version (see the maven output above)"
    fi
    rm -f "$tmp.log"
    tar -xzf "$tmp/dl/apicurio-registry-app-$version-all.tar.gz" -C "$tmp" ||
        die "could not unpack apicurio-registry-app-$version-all.tar.gz"
    rm -rf "$tmp/dl"
    [ -f "$tmp/quarkus-run.jar" ] || {
        rm -rf "$tmp"
        die "quarkus-run.jar missing after unpacking"
    }
    touch "$tmp/.complete"
    rm -rf "$dist"
    mv "$tmp" "$dist"
    exec 8>&-
    echo "registry: Apicurio Registry $version in $dist"
}

# java_major BIN: the major version BIN reports (0 when it does not run).
java_major() {
    "$1" -version 2>&1 | awk -F'"' '/version/ {split($2, v, "."); print (v[1] == 1 ? v[2] : v[1]); exit}' || echo 0
}

# find_java: KINFER_REGISTRY_JAVA, else the newest JDK/JRE that is new enough.
find_java() {
    local need=21 best="" best_v=0 j v
    case "$version" in 2.* | 3.0.*) need=17 ;; esac
    if [ -n "${KINFER_REGISTRY_JAVA:-}" ]; then
        v=$(java_major "$KINFER_REGISTRY_JAVA")
        [ "${v:-0}" -ge "$need" ] ||
            die "KINFER_REGISTRY_JAVA=$KINFER_REGISTRY_JAVA is Java ${v:-?}; Apicurio Registry $version needs $need+"
        echo "$KINFER_REGISTRY_JAVA"
        return
    fi
    for j in /usr/lib/jvm/*/bin/java /opt/*/bin/java /opt/*/*/bin/java "$(command -v java || true)"; do
        [ -x "$j" ] || continue
        v=$(java_major "$j")
        if [ "${v:-0}" -gt "$best_v" ]; then
            best=$j best_v=$v
        fi
    done
    [ "$best_v" -ge "$need" ] ||
        die "Apicurio Registry $version needs Java $need+; newest found is ${best_v} (${best:-none}); set KINFER_REGISTRY_JAVA"
    echo "$best"
}

# --- the process ------------------------------------------------------------------
our_pid() {
    local pid
    [ -f "$pidfile" ] || return 1
    pid=$(cat "$pidfile")
    kill -0 "$pid" 2>/dev/null || return 1
    echo "$pid"
}

answers() {
    curl -fsS -o /dev/null --max-time 2 "$url/subjects" 2>/dev/null
}

lock() {
    mkdir -p "$state"
    exec 9>"$state/.lock"
    flock -w 180 9 || die "timed out waiting for the lock on $state"
}

start() {
    local java pid t0 deadline
    if our_pid >/dev/null && answers; then
        echo "registry: already running on port $port (pid $(cat "$pidfile"))" >&2
        echo "$url"
        return 0
    fi
    fetch >&2
    java=$(find_java)
    if curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$port/" 2>/dev/null; then
        die "port $port is already in use by something else"
    fi
    t0=$(date +%s.%N)
    # setsid + closed stdio: it outlives this script and never holds a
    # caller's pipe open; fd 8/9 are locks it must not inherit.
    # java itself is $! (setsid execs it): the pid file names the JVM, and
    # no shell stays behind holding the lock.
    cd "$dist"
    setsid "$java" -Xms64m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
        -Dquarkus.http.port="$port" -Dquarkus.http.host=127.0.0.1 \
        -Dquarkus.management.enabled=false -Dquarkus.log.level=WARN \
        -jar quarkus-run.jar </dev/null >"$state/registry.out" 2>&1 8>&- 9>&- &
    pid=$!
    cd - >/dev/null
    echo "$pid" >"$pidfile"
    deadline=$((SECONDS + start_timeout))
    while ! answers; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 30 "$state/registry.out" >&2 || true
            rm -f "$pidfile"
            die "registry (pid $pid) exited during start-up"
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            tail -n 30 "$state/registry.out" >&2 || true
            stop
            die "registry did not answer on $url within ${start_timeout}s"
        fi
        sleep 0.5
    done
    echo "registry: Apicurio Registry $version pid $pid up on port $port in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')s ($java)" >&2
    echo "$url"
}

stop() {
    local pid i
    if pid=$(our_pid); then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 40; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.25
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "registry: pid $pid ignored SIGTERM for 10s; sending SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
        echo "registry: stopped pid $pid on port $port"
    else
        echo "registry: none of ours running on port $port"
    fi
    rm -f "$pidfile"
}

case "${1:-}" in
fetch) fetch ;;
start)
    lock
    start
    ;;
stop)
    lock
    stop
    ;;
status)
    if pid=$(our_pid) && answers; then
        echo "registry: running on port $port (pid $pid): $url"
    else
        echo "registry: not running on port $port"
        exit 1
    fi
    ;;
*)
    echo "usage: $0 start|stop|status|fetch  (KINFER_REGISTRY_PORT, default 18081)" >&2
    exit 2
    ;;
esac
