#!/usr/bin/env bash
# scripts/kafka.sh start|stop|restart|status|fetch — a real single-node Apache
# Kafka (KRaft, broker+controller in one JVM) for tests, from Maven Central jars.
# Not a production deployment: one node, replication 1, state under a cache dir.
#
#   KINFER_KAFKA_PORT        client port on 127.0.0.1 (default 19092)
#   KINFER_KAFKA_CONTROLLER_PORT  controller port (default client port + 1)
#   KINFER_KAFKA_PARTITIONS  num.partitions for auto-created topics (default 3)
#   KINFER_KAFKA_VERSION     Apache Kafka version (default 3.9.1)
#   KINFER_KAFKA_STATE       state dir (default ~/.cache/kinfer/kafka-run-<port>)
#   KINFER_KAFKA_START_TIMEOUT  seconds to wait for the broker (default 60)
#
# `start` prints the bootstrap address as its last stdout line; it is a no-op
# when this port's broker already runs. `stop` ends only the broker whose pid
# file it wrote, then deletes its data. `restart` keeps the data (chaos tests).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
die() {
    echo "kafka.sh: $*" >&2
    exit 1
}
# number NAME VALUE: VALUE must be a plain positive decimal.
number() {
    case "$2" in '' | *[!0-9]* | 0*) die "$1 must be a positive number, not '$2'" ;; esac
}

version=${KINFER_KAFKA_VERSION:-3.9.1}
port=${KINFER_KAFKA_PORT:-19092}
number KINFER_KAFKA_PORT "$port"
cport=${KINFER_KAFKA_CONTROLLER_PORT:-$((port + 1))}
number KINFER_KAFKA_CONTROLLER_PORT "$cport"
partitions=${KINFER_KAFKA_PARTITIONS:-3}
number KINFER_KAFKA_PARTITIONS "$partitions"
start_timeout=${KINFER_KAFKA_START_TIMEOUT:-60}
number KINFER_KAFKA_START_TIMEOUT "$start_timeout"
[ "$port" -le 65535 ] && [ "$cport" -le 65535 ] || die "ports must be at most 65535 ($port, $cport)"
[ "$port" != "$cport" ] || die "controller port must differ from client port ($port)"
cache=${XDG_CACHE_HOME:-$HOME/.cache}/kinfer
jars=$cache/kafka-$version
state=${KINFER_KAFKA_STATE:-$cache/kafka-run-$port}
addr=127.0.0.1:$port
pidfile=$state/kafka.pid

# --- jars -------------------------------------------------------------------
jar_count() {
    local j=("$jars"/*.jar)
    echo "${#j[@]}"
}

fetch() {
    if [ -f "$jars/.complete" ]; then
        echo "kafka: $version jars cached in $jars ($(jar_count) jars)"
        return 0
    fi
    command -v mvn >/dev/null || die "mvn not found: run scripts/setup.sh"
    mkdir -p "$cache"
    # One fetch at a time (two checkouts may set up at once); fd 8 is closed
    # again before a broker starts.
    exec 8>"$cache/.fetch-$version.lock"
    flock -w 600 8 || die "timed out waiting for another Kafka fetch"
    if [ -f "$jars/.complete" ]; then
        exec 8>&-
        echo "kafka: $version jars cached in $jars ($(jar_count) jars)"
        return 0
    fi
    local tmp
    tmp=$(mktemp -d "$cache/.fetch-XXXXXX")
    echo "kafka: fetching Apache Kafka $version from Maven Central ..."
    if ! mvn -q -B -f "$here/kafka/pom.xml" -Dkafka.version="$version" \
        dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" >"$tmp.log" 2>&1; then
        tail -n 30 "$tmp.log" >&2
        rm -rf "$tmp" "$tmp.log"
        die "could not fetch Kafka $version jars (see the maven output above)"
    fi
    rm -f "$tmp.log"
    [ -f "$tmp/kafka_2.13-$version.jar" ] || {
        rm -rf "$tmp"
        die "kafka_2.13-$version.jar missing after fetch"
    }
    touch "$tmp/.complete"
    rm -rf "$jars"
    mv "$tmp" "$jars"
    exec 8>&-
    echo "kafka: $version jars in $jars ($(jar_count) jars)"
}

# --- process helpers --------------------------------------------------------
# The pid is ours only if that process is still a kafka.Kafka on our config:
# a stale pid file must never make us signal someone else's process.
our_pid() {
    [ -f "$pidfile" ] || return 1
    local pid
    pid=$(cat "$pidfile" 2>/dev/null) || return 1
    case "$pid" in '' | *[!0-9]*) return 1 ;; esac
    [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "kafka.Kafka $state/server.properties" || return 1
    echo "$pid"
}

answers() {
    # A metadata answer listing our broker: the broker is up and unfenced.
    kcat -L -b "$addr" -m 2 2>/dev/null | grep -q ' 1 brokers:'
}

port_busy() {
    ss -Hltn "sport = :$1" 2>/dev/null | grep -q .
}

log_tail() {
    echo "---- last lines of $state/logs/server.log and $state/broker.out ----" >&2
    tail -n 40 "$state/logs/server.log" >&2 2>/dev/null || true
    tail -n 20 "$state/broker.out" >&2 2>/dev/null || true
}

write_config() {
    mkdir -p "$state/logs"
    cat >"$state/server.properties" <<EOF
# Written by scripts/kafka.sh for tests: single node, KRaft combined mode.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$state/data
num.partitions=$partitions
auto.create.topics.enable=true
delete.topic.enable=true
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=8
group.initial.rebalance.delay.ms=0
# let tests use short consumer session timeouts (kill -9 tests)
group.min.session.timeout.ms=500
# small, fast segments; tests keep little data
log.segment.bytes=16777216
log.retention.hours=2
log.retention.check.interval.ms=60000
log.segment.delete.delay.ms=1000
log.cleaner.dedupe.buffer.size=8388608
# a 2-core machine
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
EOF
    cat >"$state/log4j.properties" <<EOF
log4j.rootLogger=INFO, file, stderr
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File=$state/logs/server.log
log4j.appender.file.MaxFileSize=10MB
log4j.appender.file.MaxBackupIndex=2
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.Threshold=ERROR
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.org.apache.kafka.controller=INFO
log4j.logger.state.change.logger=WARN
EOF
}

java_opts=(-Xms256m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true
    -Dlog4j.configuration="file:$state/log4j.properties" -Dkafka.logs.dir="$state/logs")

format_store() {
    # A random 16-byte cluster id in Kafka's base64url (22 chars) form.
    local id
    id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | cut -c1-22)
    if ! java "${java_opts[@]}" -cp "$jars/*" kafka.tools.StorageTool format \
        -t "$id" -c "$state/server.properties" >"$state/format.out" 2>&1; then
        cat "$state/format.out" >&2
        die "formatting the KRaft store in $state/data failed"
    fi
}

# launch KEEP: KEEP=1 reuses an existing data dir (restart), else starts empty.
launch() {
    local keep=$1 pid deadline t0
    t0=$(date +%s.%N)
    if port_busy "$port" || port_busy "$cport"; then
        die "port $port or $cport on 127.0.0.1 is already in use by a process this script did not start (state $state)"
    fi
    [ -f "$jars/.complete" ] || fetch >&2
    command -v kcat >/dev/null || die "kcat not found: run scripts/setup.sh"
    if [ "$keep" != 1 ]; then
        rm -rf "$state/data"
    fi
    write_config
    if [ ! -f "$state/data/meta.properties" ]; then
        rm -rf "$state/data"
        format_store
    fi
    # setsid + closed stdio: the broker outlives this script and never holds a
    # caller's pipe open (test.sh reads our stdout through $(...)); fd 9 is
    # our lock, which the broker must not inherit.
    setsid java "${java_opts[@]}" -cp "$jars/*" kafka.Kafka "$state/server.properties" \
        </dev/null >"$state/broker.out" 2>&1 8>&- 9>&- &
    pid=$!
    echo "$pid" >"$pidfile"
    deadline=$((SECONDS + start_timeout))
    while ! answers; do
        if ! kill -0 "$pid" 2>/dev/null; then
            log_tail
            rm -f "$pidfile"
            die "broker (pid $pid) exited during start-up"
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            log_tail
            stop_broker 1 >/dev/null
            die "broker did not answer on $addr within ${start_timeout}s"
        fi
        sleep 0.5
    done
    echo "kafka: $version broker pid $pid up on $addr in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')s (state $state)" >&2
    echo "$addr"
}

# stop_broker KEEP: SIGTERM, wait, SIGKILL; KEEP=1 keeps the data dir.
stop_broker() {
    local keep=$1 pid i
    if pid=$(our_pid); then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 60; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "kafka: broker pid $pid ignored SIGTERM for 30s; sending SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
            for ((i = 0; i < 20; i++)); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.25
            done
        fi
        echo "kafka: stopped broker pid $pid on $addr"
    else
        echo "kafka: no broker of ours running on $addr"
    fi
    rm -f "$pidfile"
    if [ "$keep" != 1 ]; then
        rm -rf "$state/data"
    fi
}

# One command at a time per state dir: two concurrent `start`s must not both
# launch (the second waits, then finds the first broker running).
lock() {
    mkdir -p "$state"
    exec 9>"$state/.lock"
    flock -w 180 9 || die "timed out waiting for the lock on $state"
}

cmd=${1:-}
case "$cmd" in
fetch)
    fetch
    ;;
start)
    lock
    if our_pid >/dev/null; then
        # Running: wait out a concurrent start-up, then report.
        deadline=$((SECONDS + start_timeout))
        while ! answers && [ "$SECONDS" -lt "$deadline" ]; do
            sleep 0.5
        done
        answers || {
            log_tail
            die "broker pid $(our_pid) runs but does not answer on $addr"
        }
        echo "kafka: already running on $addr (pid $(our_pid))" >&2
        echo "$addr"
    else
        launch 0
    fi
    ;;
stop)
    lock
    stop_broker 0
    ;;
restart)
    lock
    stop_broker 1
    launch 1
    ;;
status)
    if pid=$(our_pid) && answers; then
        echo "running $addr (pid $pid, state $state)"
    elif pid=$(our_pid); then
        echo "unresponsive $addr (pid $pid runs but does not answer; state $state)"
        exit 1
    else
        echo "stopped $addr"
        exit 1
    fi
    ;;
*)
    echo "usage: scripts/kafka.sh start|stop|restart|status|fetch" >&2
    echo "  port: KINFER_KAFKA_PORT (default 19092); see the top of this file" >&2
    exit 2
    ;;
esac
