#!/usr/bin/env bash
# scripts/kafka.sh start|stop|restart|status|fetch|client-config|version — a real
# single-node Apache Kafka (KRaft, broker+controller in one JVM) for tests,
# from Maven Central jars, optionally secured (SASL/SCRAM, TLS).
# Not a production deployment: one node, replication 1, state under a cache dir,
# throwaway credentials and certificates.
#
#   KINFER_KAFKA_PORT        client port on 127.0.0.1 (default 19092)
#   KINFER_KAFKA_CONTROLLER_PORT  controller port (default client port + 1)
#   KINFER_KAFKA_PARTITIONS  num.partitions for auto-created topics (default 3)
#   KINFER_KAFKA_VERSION     Apache Kafka version: 3.9.1 (default), `current`
#                            (= the pinned 4.x below) or another 3.5+/4.x release
#   KINFER_KAFKA_SECURITY    plaintext (default) | sasl_plaintext | sasl_ssl
#   KINFER_KAFKA_JAVA        the java binary for the broker (default: java on PATH;
#                            Kafka 4.x brokers need Java 17+)
#   KINFER_KAFKA_STATE       state dir (default ~/.cache/kinfer/kafka-run-<port>)
#   KINFER_KAFKA_START_TIMEOUT  seconds to wait for the broker (default 60)
#
# `start` prints the bootstrap address as its last stdout line; it is a no-op
# when this port's broker already runs (and refuses when it runs another version
# or security mode than asked for). `stop` ends only the broker whose pid file
# it wrote, then deletes its data (and, for a secured broker, its credentials).
# `restart` keeps the data, version and security mode (chaos tests).
#
# Secured brokers: SCRAM-SHA-512 users `admin` (inter-broker) and `kinfer` (the
# client) are created when the store is formatted, with random passwords; for
# sasl_ssl a throwaway CA signs the broker certificate (SAN 127.0.0.1 and
# localhost, so clients keep hostname verification on). `start` prints, before
# the bootstrap line, `client-properties: FILE`: a file of librdkafka
# properties (security.protocol, sasl.*, ssl.ca.location, bootstrap.servers)
# that kcat reads with -F; `client-config` prints its path again.
# The controller listener stays PLAINTEXT on 127.0.0.1: only this JVM uses it.
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

# The two versions the project tests against (scripts/test.sh runs both):
# 3.9.1, the last 3.x (ZooKeeper-free KRaft, classic consumer groups), and the
# newest 4.x release on Maven Central when this was pinned (KIP-848 consumer
# group protocol GA, no ZooKeeper, Java 17+ for brokers).
default_version=3.9.1
current_version=4.4.0

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

# resolve_version V: the release V names (`default`, `current` or X.Y.Z).
resolve_version() {
    case "$1" in
    default) echo "$default_version" ;;
    current) echo "$current_version" ;;
    *)
        [[ "$1" =~ ^([34])\.([0-9]+)\.[0-9]+$ ]] ||
            die "KINFER_KAFKA_VERSION must be default, current or a 3.x/4.x release like 3.9.1, not '$1'"
        # SCRAM users at format time (--add-scram) need 3.5+.
        [ "${BASH_REMATCH[1]}" = 4 ] || [ "${BASH_REMATCH[2]}" -ge 5 ] ||
            die "KINFER_KAFKA_VERSION $1 is too old: 3.5 or later"
        echo "$1"
        ;;
    esac
}
want_version=""
[ -z "${KINFER_KAFKA_VERSION:-}" ] || want_version=$(resolve_version "$KINFER_KAFKA_VERSION")
want_security=${KINFER_KAFKA_SECURITY:-}
case "$want_security" in
'' | plaintext | sasl_plaintext | sasl_ssl) ;;
*) die "KINFER_KAFKA_SECURITY must be plaintext, sasl_plaintext or sasl_ssl, not '$want_security'" ;;
esac
java_bin=${KINFER_KAFKA_JAVA:-java}

cache=${XDG_CACHE_HOME:-$HOME/.cache}/kinfer
state=${KINFER_KAFKA_STATE:-$cache/kafka-run-$port}
addr=127.0.0.1:$port
pidfile=$state/kafka.pid
# What the broker of this state dir was formatted as ("version security").
recordfile=$state/broker.record
client_props=$state/client.properties
# Set by settle_mode: the version and security mode this command uses.
version="" security="" jars=""

# --- jars -------------------------------------------------------------------
jars_of() { echo "$cache/kafka-$1"; }

jar_count() {
    local j=("$1"/*.jar)
    echo "${#j[@]}"
}

# fetch V: Kafka V's broker jars into the cache (once).
fetch() {
    local v=$1 dir logging=log4j1 tmp
    dir=$(jars_of "$v")
    if [ -f "$dir/.complete" ]; then
        echo "kafka: $v jars cached in $dir ($(jar_count "$dir") jars)"
        return 0
    fi
    command -v mvn >/dev/null || die "mvn not found: run scripts/setup.sh"
    mkdir -p "$cache"
    # One fetch at a time (two checkouts may set up at once); fd 8 is closed
    # again before a broker starts.
    exec 8>"$cache/.fetch-$v.lock"
    flock -w 600 8 || die "timed out waiting for another Kafka fetch"
    if [ -f "$dir/.complete" ]; then
        exec 8>&-
        echo "kafka: $v jars cached in $dir ($(jar_count "$dir") jars)"
        return 0
    fi
    # 4.x logs through log4j 2 (pom.xml's log4j2 profile), 3.x through reload4j.
    case "$v" in 4.*) logging=log4j2 ;; esac
    tmp=$(mktemp -d "$cache/.fetch-XXXXXX")
    echo "kafka: fetching Apache Kafka $v from Maven Central ..."
    if ! mvn -q -B -f "$here/kafka/pom.xml" -Dkafka.version="$v" -Dkafka.logging="$logging" \
        dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" >"$tmp.log" 2>&1; then
        tail -n 30 "$tmp.log" >&2
        rm -rf "$tmp" "$tmp.log"
        die "could not fetch Kafka $v jars (see the maven output above)"
    fi
    rm -f "$tmp.log"
    [ -f "$tmp/kafka_2.13-$v.jar" ] || {
        rm -rf "$tmp"
        die "kafka_2.13-$v.jar missing after fetch"
    }
    touch "$tmp/.complete"
    rm -rf "$dir"
    mv "$tmp" "$dir"
    exec 8>&-
    echo "kafka: $v jars in $dir ($(jar_count "$dir") jars)"
}

# --- version and security of this state dir -----------------------------------
recorded() {
    [ -f "$recordfile" ] && cat "$recordfile"
}

# settle_mode RUNNING_OR_KEPT: pick version/security. A broker that runs (or
# whose data a restart keeps) has its own; asking for another one is an error,
# not a silent reuse of the wrong broker.
settle_mode() {
    local keep=$1 rec rv rs
    version=${want_version:-$default_version}
    security=${want_security:-plaintext}
    rec=""
    if [ "$keep" = 1 ]; then
        # A store from before brokers were recorded: 3.9.1, plaintext.
        rec=$(recorded) || { [ ! -f "$state/data/meta.properties" ] || rec="$default_version plaintext"; }
    fi
    if [ -n "$rec" ]; then
        read -r rv rs <<<"$rec"
        if [ -n "$want_version" ] && [ "$want_version" != "$rv" ]; then
            die "the broker of $state is Kafka $rv, not $want_version: stop it first"
        fi
        if [ -n "$want_security" ] && [ "$want_security" != "$rs" ]; then
            die "the broker of $state uses security $rs, not $want_security: stop it first"
        fi
        version=$rv security=$rs
    fi
    jars=$(jars_of "$version")
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
    # A metadata answer listing our broker: the broker is up and unfenced. A
    # secured broker is asked as the client user, which also proves the
    # client properties work (by probe.py: kcat's librdkafka 2.0.2 cannot log
    # in to Kafka 4.x with SCRAM).
    if [ -f "$client_props" ]; then
        python3 "$here/kafka/probe.py" "$client_props" 2>/dev/null
    else
        kcat -L -b "$addr" -m 2 2>/dev/null | grep -q ' 1 brokers:'
    fi
}

port_busy() {
    ss -Hltn "sport = :$1" 2>/dev/null | grep -q .
}

log_tail() {
    echo "---- last lines of $state/logs/server.log and $state/broker.out ----" >&2
    tail -n 40 "$state/logs/server.log" >&2 2>/dev/null || true
    tail -n 20 "$state/broker.out" >&2 2>/dev/null || true
}

# java_major: the feature release of $java_bin (17, 25, ...).
java_major() {
    "$java_bin" -XshowSettings:properties -version 2>&1 |
        sed -n 's/^ *java\.specification\.version = \([0-9]*\).*/\1/p' | head -n1
}

check_java() {
    local m
    command -v "$java_bin" >/dev/null || die "java not found ($java_bin): run scripts/setup.sh or set KINFER_KAFKA_JAVA"
    m=$(java_major)
    [ -n "$m" ] || die "could not tell the version of $java_bin"
    case "$version" in
    4.*) [ "$m" -ge 17 ] || die "Kafka $version brokers need Java 17 or later; $java_bin is Java $m (set KINFER_KAFKA_JAVA)" ;;
    *) [ "$m" -ge 11 ] || die "Kafka $version needs Java 11 or later; $java_bin is Java $m" ;;
    esac
}

# --- security material --------------------------------------------------------
# A random secret in base64url (no characters that JAAS or --add-scram quote).
secret() { head -c 18 /dev/urandom | base64 | tr '+/' '-_'; }

# make_secrets: passwords (and for sasl_ssl, the CA, the broker's key and
# certificate, its keystore and truststore) for a freshly formatted store.
make_secrets() {
    local sec=$state/secrets tls=$state/tls pw
    rm -rf "$sec" "$tls"
    mkdir -p "$sec"
    chmod 700 "$sec"
    secret >"$sec/admin.password"
    secret >"$sec/kinfer.password"
    secret >"$sec/store.password"
    chmod 600 "$sec"/*.password
    [ "$security" = sasl_ssl ] || return 0
    command -v openssl >/dev/null || die "openssl not found: run scripts/setup.sh"
    command -v keytool >/dev/null || die "keytool not found (a JDK): run scripts/setup.sh"
    mkdir -p "$tls"
    pw=$(cat "$sec/store.password")
    {
        # The CA: a self-signed P-256 key, valid a week (a test broker's life).
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 7 \
            -subj "/CN=kinfer test CA ($addr)" -keyout "$sec/ca.key" -out "$tls/ca.pem" \
            -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign &&
            openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
                -keyout "$sec/broker.key" -out "$sec/broker.csr" &&
            printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "basicConstraints=critical,CA:FALSE" \
                "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" >"$sec/broker.ext" &&
            openssl x509 -req -in "$sec/broker.csr" -CA "$tls/ca.pem" -CAkey "$sec/ca.key" -CAcreateserial \
                -days 7 -extfile "$sec/broker.ext" -out "$tls/broker.pem" &&
            openssl pkcs12 -export -name broker -in "$tls/broker.pem" -inkey "$sec/broker.key" \
                -certfile "$tls/ca.pem" -passout "pass:$pw" -out "$sec/broker.p12" &&
            keytool -importcert -noprompt -alias kinfer-test-ca -file "$tls/ca.pem" \
                -keystore "$sec/truststore.p12" -storetype PKCS12 -storepass "$pw"
    } >"$state/tls.out" 2>&1 || {
        cat "$state/tls.out" >&2
        die "making the test CA and broker certificate failed"
    }
    # The CA key has signed its one certificate; nobody needs it again.
    rm -f "$sec/ca.key" "$sec/broker.csr" "$sec/broker.ext" "$tls/ca.srl"
}

write_client_props() {
    local proto
    proto=$(tr '[:lower:]' '[:upper:]' <<<"$security")
    {
        echo "# librdkafka properties for the client user of the test broker on $addr"
        echo "# (written by scripts/kafka.sh; kcat -F reads this file as it is)."
        echo "bootstrap.servers=$addr"
        echo "security.protocol=$proto"
        echo "sasl.mechanism=SCRAM-SHA-512"
        echo "sasl.username=kinfer"
        echo "sasl.password=$(cat "$state/secrets/kinfer.password")"
        if [ "$security" = sasl_ssl ]; then
            echo "ssl.ca.location=$state/tls/ca.pem"
            # librdkafka's default since 2.0; said here so that no client turns it off.
            echo "ssl.endpoint.identification.algorithm=https"
        fi
    } >"$client_props.tmp"
    chmod 600 "$client_props.tmp"
    mv "$client_props.tmp" "$client_props"
}

# The server.properties lines for the client listener of $security.
listener_config() {
    local proto name sec=$state/secrets
    if [ "$security" = plaintext ]; then
        cat <<EOF
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
EOF
        return 0
    fi
    proto=$(tr '[:lower:]' '[:upper:]' <<<"$security")
    name=$security
    cat <<EOF
listeners=$proto://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=$proto://127.0.0.1:$port
inter.broker.listener.name=$proto
listener.security.protocol.map=CONTROLLER:PLAINTEXT,$proto:$proto
# SCRAM users (admin, kinfer) are in the metadata log: kafka-storage format --add-scram.
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.$name.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$(cat "$sec/admin.password")";
EOF
    [ "$security" = sasl_ssl ] || return 0
    cat <<EOF
ssl.keystore.type=PKCS12
ssl.keystore.location=$sec/broker.p12
ssl.keystore.password=$(cat "$sec/store.password")
ssl.key.password=$(cat "$sec/store.password")
ssl.truststore.type=PKCS12
ssl.truststore.location=$sec/truststore.p12
ssl.truststore.password=$(cat "$sec/store.password")
ssl.client.auth=none
ssl.endpoint.identification.algorithm=https
EOF
}

write_config() {
    mkdir -p "$state/logs"
    {
        cat <<EOF
# Written by scripts/kafka.sh for tests: single node, KRaft combined mode,
# Kafka $version, security $security.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
controller.listener.names=CONTROLLER
EOF
        listener_config
        cat <<EOF
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
# A SIGSTOPped test broker (the stall tests, up to 10 s) stays a stalled
# broker, not one its own controller fences after the default 9 s: with one
# node a fence leaves every partition leaderless (docs/RELIABILITY.md).
broker.session.timeout.ms=30000
# the consumer group protocol (KIP-848, kafka.group_protocol = "consumer"):
# session and heartbeat are broker settings there; the tests' 6 s session
# and 1 s heartbeat, as the fault harness gives its classic members (the
# broker defaults are 45 s / 5 s)
group.consumer.min.session.timeout.ms=500
group.consumer.session.timeout.ms=6000
group.consumer.min.heartbeat.interval.ms=500
group.consumer.heartbeat.interval.ms=1000
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
    } >"$state/server.properties.tmp"
    # It holds the inter-broker password and the keystore password.
    chmod 600 "$state/server.properties.tmp"
    mv "$state/server.properties.tmp" "$state/server.properties"
    case "$version" in
    4.*) write_log4j2 ;;
    *) write_log4j1 ;;
    esac
}

write_log4j1() {
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

# Kafka 4.x dropped log4j 1: the same set-up in log4j 2's properties syntax.
write_log4j2() {
    cat >"$state/log4j2.properties" <<EOF
status = warn
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = $state/logs/server.log
appender.file.filePattern = $state/logs/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 10MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 2
appender.stderr.type = Console
appender.stderr.name = stderr
appender.stderr.target = SYSTEM_ERR
appender.stderr.filter.threshold.type = ThresholdFilter
appender.stderr.filter.threshold.level = error
appender.stderr.layout.type = PatternLayout
appender.stderr.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
rootLogger.appenderRef.stderr.ref = stderr
logger.request.name = kafka.request.logger
logger.request.level = warn
logger.controller.name = org.apache.kafka.controller
logger.controller.level = info
logger.statechange.name = state.change.logger
logger.statechange.level = warn
EOF
}

java_opts() {
    local opts=(-Xms256m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true
        -Dkafka.logs.dir="$state/logs")
    case "$version" in
    4.*) opts+=(-Dlog4j2.configurationFile="file:$state/log4j2.properties") ;;
    *) opts+=(-Dlog4j.configuration="file:$state/log4j.properties") ;;
    esac
    printf '%s\n' "${opts[@]}"
}

format_store() {
    # A random 16-byte cluster id in Kafka's base64url (22 chars) form. A static
    # voter set (controller.quorum.voters) formats the same way in 3.x and 4.x.
    local id opts scram=()
    # Not one that starts with '-': the tool would read it as an option.
    id=-
    while [ "${id:0:1}" = - ]; do
        id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | cut -c1-22)
    done
    mapfile -t opts < <(java_opts)
    if [ "$security" != plaintext ]; then
        scram=(--add-scram "SCRAM-SHA-512=[name=admin,password=$(cat "$state/secrets/admin.password")]"
            --add-scram "SCRAM-SHA-512=[name=kinfer,password=$(cat "$state/secrets/kinfer.password")]")
    fi
    if ! "$java_bin" "${opts[@]}" -cp "$jars/*" kafka.tools.StorageTool format \
        -t "$id" -c "$state/server.properties" "${scram[@]}" >"$state/format.out" 2>&1; then
        cat "$state/format.out" >&2
        die "formatting the KRaft store in $state/data failed"
    fi
}

# launch KEEP: KEEP=1 reuses an existing data dir (restart), else starts empty.
launch() {
    local keep=$1 pid deadline t0 opts fresh=0
    t0=$(date +%s.%N)
    if port_busy "$port" || port_busy "$cport"; then
        die "port $port or $cport on 127.0.0.1 is already in use by a process this script did not start (state $state)"
    fi
    [ -f "$jars/.complete" ] || fetch "$version" >&2
    command -v kcat >/dev/null || die "kcat not found: run scripts/setup.sh"
    if [ "$security" != plaintext ]; then
        python3 -c 'import confluent_kafka' 2>/dev/null ||
            die "python3 with confluent-kafka is needed to probe a secured broker: run scripts/setup.sh"
    fi
    check_java
    if [ "$keep" != 1 ] || [ ! -f "$state/data/meta.properties" ]; then
        fresh=1
        rm -rf "$state/data" "$recordfile" "$client_props"
        [ "$security" = plaintext ] || make_secrets
    fi
    write_config
    if [ "$fresh" = 1 ]; then
        format_store
        [ "$security" = plaintext ] || write_client_props
    fi
    echo "$version $security" >"$recordfile"
    mapfile -t opts < <(java_opts)
    # setsid + closed stdio: the broker outlives this script and never holds a
    # caller's pipe open (test.sh reads our stdout through $(...)); fd 9 is
    # our lock, which the broker must not inherit.
    setsid "$java_bin" "${opts[@]}" -cp "$jars/*" kafka.Kafka "$state/server.properties" \
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
    echo "kafka: $version broker ($security) pid $pid up on $addr in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')s (state $state)" >&2
    report
}

# report: what a client needs, the bootstrap address last.
report() {
    [ ! -f "$client_props" ] || echo "client-properties: $client_props"
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
        # The credentials belong to the store they were formatted into.
        rm -rf "$state/data" "$recordfile" "$client_props" "$state/secrets" "$state/tls"
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
    # `fetch` gets KINFER_KAFKA_VERSION (default 3.9.1); `fetch all` both tested ones.
    if [ "${2:-}" = all ]; then
        fetch "$default_version"
        fetch "$current_version"
    else
        fetch "${want_version:-$default_version}"
    fi
    ;;
start)
    lock
    if our_pid >/dev/null; then
        settle_mode 1
        # Running: wait out a concurrent start-up, then report.
        deadline=$((SECONDS + start_timeout))
        while ! answers && [ "$SECONDS" -lt "$deadline" ]; do
            sleep 0.5
        done
        answers || {
            log_tail
            die "broker pid $(our_pid) runs but does not answer on $addr"
        }
        echo "kafka: already running on $addr (pid $(our_pid), Kafka $version, $security)" >&2
        report
    else
        settle_mode 0
        launch 0
    fi
    ;;
stop)
    lock
    stop_broker 0
    ;;
restart)
    lock
    settle_mode 1
    stop_broker 1
    launch 1
    ;;
status)
    mode=""
    if rec=$(recorded); then
        read -r rv rs <<<"$rec"
        mode=", Kafka $rv, $rs"
    fi
    if pid=$(our_pid) && answers; then
        echo "running $addr (pid $pid, state $state$mode)"
        [ ! -f "$client_props" ] || echo "client-properties: $client_props"
    elif pid=$(our_pid); then
        echo "unresponsive $addr (pid $pid runs but does not answer; state $state$mode)"
        exit 1
    else
        echo "stopped $addr"
        exit 1
    fi
    ;;
version)
    # The release KINFER_KAFKA_VERSION names (default 3.9.1).
    echo "${want_version:-$default_version}"
    ;;
client-config)
    [ -f "$client_props" ] || die "no client properties in $state (a plaintext broker needs none, or none was started)"
    echo "$client_props"
    ;;
*)
    echo "usage: scripts/kafka.sh start|stop|restart|status|fetch [all]|client-config|version" >&2
    echo "  port: KINFER_KAFKA_PORT (default 19092); see the top of this file" >&2
    exit 2
    ;;
esac
