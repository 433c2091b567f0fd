#!/usr/bin/env bash
# scripts/test.sh — everything `make test` (and so CI, via .ci/run) runs:
# setup, plain build, format and static checks, unit tests, ASan+UBSan build
# and unit tests, then the integration suite in two configurations:
#   present  build/kinfer on the system librdkafka (Debian 12: 2.0.2) against
#            Kafka 3.9.1 on KINFER_KAFKA_PORT;
#   current  build-current/kinfer (CUDA off, no benches or unit tests) on the
#            librdkafka scripts/setup-librdkafka.sh builds, against the pinned
#            Kafka 4.x (scripts/kafka.sh `current`) on KINFER_KAFKA_CURRENT_PORT;
#            tests marked `standalone` (no Kafka, no librdkafka) are left to present.
# setup and build failing stop the run; every later stage runs even when an
# earlier one failed (a format slip must not hide a test failure), and any
# failure makes the exit status non-zero. The brokers it starts are always stopped.
#
#   CMAKE_FLAGS              extra cmake flags for all builds
#   KINFER_CUDA              CUDA backend of the plain build (default ON: every .cu file must
#                            compile and link in CI; setup installs the toolkit). The
#                            ASan build keeps AUTO.
#   JOBS                     build/ctest parallelism (default 2)
#   KINFER_TEST_SKIP_ASAN=1  skip the ASan+UBSan stage (local speed; CI runs it)
#   KINFER_TEST_CONFIGS      integration configurations to run (default "present current")
#   KINFER_KAFKA_PORT        present broker's port (default 19092)
#   KINFER_KAFKA_CURRENT_PORT  current broker's port (default KINFER_KAFKA_PORT + 2)
#   KINFER_REGISTRY_PORT     the Schema Registry's port (scripts/registry.sh, default
#                            18081), started for the present configuration only
#   KINFER_PYTEST_TIMEOUT    seconds for the whole integration suite, per configuration
#                            (default 2400)
#   KINFER_PYTEST_ARGS       extra pytest arguments, e.g. "-k secured" (local runs; CI runs all)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
jobs=${JOBS:-2}
read -r -a cmake_flags <<<"${CMAKE_FLAGS:-}"
export KINFER_KAFKA_PORT=${KINFER_KAFKA_PORT:-19092}
current_port=${KINFER_KAFKA_CURRENT_PORT:-$((KINFER_KAFKA_PORT + 2))}
read -r -a configs <<<"${KINFER_TEST_CONFIGS:-present current}"
read -r -a pytest_args <<<"${KINFER_PYTEST_ARGS:-}"
for c in "${configs[@]}"; do
    case "$c" in present | current) ;; *)
        echo "test.sh: KINFER_TEST_CONFIGS: unknown configuration '$c' (present, current)" >&2
        exit 2
        ;;
    esac
done
logs=$root/build/test-logs
t_all=$(date +%s.%N)

stage_lines=()
failed_stages=()
config_lines=()
# Ports of the brokers this run started (the EXIT trap stops exactly those).
kafka_started=()
# The Schema Registry this run started for the present configuration's
# registry test (scripts/registry.sh; KINFER_REGISTRY_PORT, default 18081).
registry_started=""
passed=0 failed=0 skipped=0

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }

# stage NAME FUNCTION: run FUNCTION in a subshell with errexit on (its first
# failing command fails the stage), record ok/FAILED and seconds; the status
# is left in stage_rc. Never call it inside if/&&/||: bash would then ignore
# errexit in FUNCTION too.
stage_rc=0
current="" current_t0=""
stage() {
    local name=$1 fn=$2 t0 rc
    t0=$(now)
    current=$name current_t0=$t0
    echo
    echo "==== [$name] $(date -u +%H:%M:%S) ===="
    set +e
    (
        set -e
        "$fn"
    )
    rc=$?
    set -e
    current=""
    if [ "$rc" -eq 0 ]; then
        stage_lines+=("$(printf '  %-14s ok      %7ss' "$name" "$(elapsed "$t0")")")
    else
        stage_lines+=("$(printf '  %-14s FAILED  %7ss  (exit %d)' "$name" "$(elapsed "$t0")" "$rc")")
        failed_stages+=("$name")
    fi
    stage_rc=$rc
    stage_s=$(elapsed "$t0")
}
stage_s=0

# count_ctest LOG: add ctest's "N% tests passed, F tests failed out of T".
count_ctest() {
    local line total fail skip
    line=$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$1" 2>/dev/null | tail -n1) || return 0
    fail=$(sed -E 's/.* ([0-9]+) tests? failed out of.*/\1/' <<<"$line")
    total=$(sed -E 's/.*out of ([0-9]+).*/\1/' <<<"$line")
    skip=$(grep -cE '^[[:space:]]*[0-9]+ - .*\(Skipped\)' "$1" || true)
    passed=$((passed + total - fail - skip))
    failed=$((failed + fail))
    skipped=$((skipped + skip))
}

# count_pytest LOG: add pytest's closing "N passed, N failed, N skipped, N error".
count_pytest() {
    local line n
    line=$(grep -E '^=+ .*(passed|failed|error|skipped|no tests ran).* in [0-9.]+s' "$1" 2>/dev/null | tail -n1) ||
        return 0
    n=$(grep -oE '[0-9]+ passed' <<<"$line" | cut -d' ' -f1) && passed=$((passed + n))
    n=$(grep -oE '[0-9]+ failed' <<<"$line" | cut -d' ' -f1) && failed=$((failed + n))
    n=$(grep -oE '[0-9]+ errors?' <<<"$line" | cut -d' ' -f1) && failed=$((failed + n))
    n=$(grep -oE '[0-9]+ skipped' <<<"$line" | cut -d' ' -f1) && skipped=$((skipped + n))
    return 0
}

finish() {
    local rc=$? line port
    set +e
    for port in "${kafka_started[@]}"; do
        KINFER_KAFKA_PORT=$port "$root/scripts/kafka.sh" stop >/dev/null 2>&1 ||
            echo "test.sh: stopping the Kafka broker on port $port failed" >&2
    done
    if [ -n "$registry_started" ]; then
        "$root/scripts/registry.sh" stop >/dev/null 2>&1 ||
            echo "test.sh: stopping the schema registry failed" >&2
    fi
    echo
    echo "==== summary ===="
    for line in "${stage_lines[@]}"; do echo "$line"; done
    if [ -n "$current" ]; then
        printf '  %-14s INTERRUPTED %3ss  (exit %d)\n' "$current" "$(elapsed "$current_t0")" "$rc"
        failed_stages+=("$current")
    fi
    printf '  %-14s         %7ss\n' total "$(elapsed "$t_all")"
    for line in "${config_lines[@]}"; do echo "$line"; done
    if [ ${#failed_stages[@]} -gt 0 ]; then
        echo "test.sh: FAILED stages: ${failed_stages[*]} (logs in $logs)"
        # A failed stage with no failed test in it (build, format, static,
        # kafka, a crash) still counts as one failure in the closing line.
        failed=$((failed + ${#failed_stages[@]} - failed_test_stages))
        [ "$rc" -ne 0 ] || rc=1
    elif [ "$rc" -ne 0 ]; then
        echo "test.sh: interrupted (exit $rc)"
        failed=$((failed + 1))
    fi
    echo "tests: $passed passed, $failed failed, $skipped skipped"
    exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT TERM
failed_test_stages=0

mkdir -p "$logs"
rm -f "$logs"/*.log

do_setup() { "$root/scripts/setup.sh"; }
do_build() {
    cmake -S . -B build -DKINFER_WERROR=ON -DKINFER_CUDA="${KINFER_CUDA:-ON}" "${cmake_flags[@]}" >/dev/null
    cmake --build build -j"$jobs"
}
do_format() { "$root/scripts/format.sh" check; }
do_static() { "$root/scripts/check-static.sh"; }
do_unit() {
    cd build
    ctest --output-on-failure --no-tests=error --timeout 900 -j"$jobs" 2>&1 | tee "$logs/ctest.log"
}
do_asan() {
    cmake -S . -B build-asan -DKINFER_WERROR=ON -DKINFER_SANITIZE=address,undefined \
        -DKINFER_BENCH=OFF "${cmake_flags[@]}" >/dev/null
    cmake --build build-asan -j"$jobs"
    cd build-asan
    ctest --output-on-failure --no-tests=error --timeout 900 -j"$jobs" 2>&1 | tee "$logs/ctest-asan.log"
}
do_kafka() {
    "$root/scripts/kafka.sh" start | tee "$kafka_log"
}
do_registry() {
    "$root/scripts/registry.sh" start | tee "$registry_log"
}
do_pytest() {
    # Exit 5 (no tests collected) fails like any other non-zero status: there
    # are always integration tests. Tests marked `standalone` (codec, reference
    # forward, deployment files: no Kafka, no librdkafka) run in the present
    # configuration only; the current one would repeat them to the bit.
    local select=()
    [ "$pytest_config" = present ] || select=(-m "not standalone")
    timeout --signal=TERM --kill-after=30 "${KINFER_PYTEST_TIMEOUT:-2400}" \
        python3 -m pytest --durations=25 "${select[@]}" "${pytest_args[@]}" 2>&1 | tee "$pytest_log"
}

# A test stage that failed because tests failed is already counted by its log.
tests_stage() {
    local name=$1 fn=$2 counter=$3 log=$4 before=$failed
    stage "$name" "$fn"
    "$counter" "$log"
    if [ "$stage_rc" -ne 0 ] && [ "$failed" -gt "$before" ]; then
        failed_test_stages=$((failed_test_stages + 1))
    fi
}

stage setup do_setup
[ "$stage_rc" -eq 0 ] || exit 1
stage build do_build
[ "$stage_rc" -eq 0 ] || exit 1
stage format do_format
stage static do_static
tests_stage unit do_unit count_ctest "$logs/ctest.log"
if [ "${KINFER_TEST_SKIP_ASAN:-0}" = 1 ]; then
    echo
    echo "==== [asan] skipped (KINFER_TEST_SKIP_ASAN=1) ===="
    stage_lines+=("$(printf '  %-14s skipped (KINFER_TEST_SKIP_ASAN=1)' asan)")
else
    tests_stage asan do_asan count_ctest "$logs/ctest-asan.log"
fi

# integration CONFIG BUILD_RC BUILD_SECONDS PORT KINFER_BIN: a broker (reused when one
# runs there already, and then left running), then the whole integration
# suite against it with that binary. The broker is started from this shell
# (not a stage subshell) so that the EXIT trap knows whether to stop it.
integration() {
    local config=$1 build_rc=$2 build_s=$3 port=$4 bin=$5 sfx="" t0 ok=ok secs before=$failed
    local version=default
    [ "$config" = present ] || sfx=-$config version=current
    t0=$(now)
    if [ "$build_rc" -eq 0 ]; then
        export KINFER_KAFKA_PORT=$port KINFER_KAFKA_VERSION=$version
        if "$root/scripts/kafka.sh" status >/dev/null 2>&1; then
            echo "test.sh: reusing the broker already running on port $port (left running)"
        else
            kafka_started+=("$port")
        fi
        kafka_log=$logs/kafka-start$sfx.log
        stage "kafka$sfx" do_kafka
        [ "$stage_rc" -eq 0 ] || ok=FAILED
        # The registry test (tests/integration/test_schema_registry.py)
        # does not depend on the Kafka version: present configuration only;
        # elsewhere it skips, saying why. A registry that fails to start
        # fails its stage; the suite still runs (those tests then skip).
        local kafka_rc=$stage_rc
        if [ "$kafka_rc" -eq 0 ] && [ "$config" = present ]; then
            if ! "$root/scripts/registry.sh" status >/dev/null 2>&1; then
                registry_started=1
            fi
            registry_log=$logs/registry-start.log
            stage registry do_registry
            if [ "$stage_rc" -eq 0 ]; then
                KINFER_REGISTRY_URL=$(tail -n1 "$registry_log")
                export KINFER_REGISTRY_URL
            else
                ok=FAILED
            fi
        fi
        if [ "$kafka_rc" -eq 0 ]; then
            KINFER_BOOTSTRAP=$(tail -n1 "$kafka_log")
            export KINFER_BOOTSTRAP KINFER_BIN=$bin
            pytest_log=$logs/pytest$sfx.log
            pytest_config=$config
            tests_stage "pytest$sfx" do_pytest count_pytest "$pytest_log"
            [ "$stage_rc" -eq 0 ] || ok=FAILED
        fi
        unset KINFER_BOOTSTRAP KINFER_BIN KINFER_KAFKA_VERSION KINFER_REGISTRY_URL
        export KINFER_KAFKA_PORT=$root_port
    else
        ok=FAILED
    fi
    secs=$(awk -v a="$build_s" -v b="$(elapsed "$t0")" 'BEGIN{printf "%.1f", a+b}')
    # present: its broker + suite (build/ is shared with the unit stages);
    # current: build-current + broker + suite.
    config_lines+=("$(printf '  config %-8s %-6s %7ss  (%s; %d failed)' "$config" "$ok" "$secs" \
        "$(config_label "$config")" $((failed - before)))")
}

# What a configuration is, for the summary.
config_label() {
    local rdk
    if [ "$1" = present ]; then
        rdk=$(pkg-config --modversion rdkafka 2>/dev/null || echo '?')
        echo "librdkafka $rdk (system), Kafka $(KINFER_KAFKA_VERSION=default kafka_version)"
    else
        rdk=$(PKG_CONFIG_PATH=$rdkafka_dir/lib/pkgconfig pkg-config --modversion rdkafka 2>/dev/null || echo '?')
        echo "librdkafka $rdk ($rdkafka_dir), Kafka $(KINFER_KAFKA_VERSION=current kafka_version)"
    fi
}
kafka_version() { "$root/scripts/kafka.sh" version 2>/dev/null || echo '?'; }

root_port=$KINFER_KAFKA_PORT
rdkafka_dir=$("$root/scripts/setup-librdkafka.sh" --prefix)
do_build_current() {
    # Only what the integration suite needs: the kinfer binary and the
    # librdkafka bug probe (test_rdkafka_bugs.py) beside it.
    cmake -S . -B build-current -DKINFER_WERROR=ON -DKINFER_CUDA=OFF -DKINFER_BENCH=OFF \
        -DKINFER_TESTS=OFF -DKINFER_RDKAFKA="$rdkafka_dir" "${cmake_flags[@]}" >/dev/null
    cmake --build build-current -j"$jobs" --target kinfer kinfer_rdkafka_probe
}

for c in "${configs[@]}"; do
    if [ "$c" = present ]; then
        # build/ was built (and its failure stopped the run) above.
        integration present 0 0 "$KINFER_KAFKA_PORT" "$root/build/kinfer"
    else
        stage build-current do_build_current
        integration current "$stage_rc" "$stage_s" "$current_port" "$root/build-current/kinfer"
    fi
done
