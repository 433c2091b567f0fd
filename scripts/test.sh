#!/usr/bin/env bash
# scripts/test.sh — everything `make test` (and so CI, via .ci/run) runs:
# setup, plain build, format and static checks, unit tests, ASan+UBSan build
# and unit tests, a real Kafka broker, the integration suite.
# setup and build failing stop the run; every later stage runs even when an
# earlier one failed (a format slip must not hide a test failure), and any
# failure makes the exit status non-zero. The broker it starts is always stopped.
#
#   CMAKE_FLAGS              extra cmake flags for both builds
#   KINFER_CUDA              CUDA backend of the plain build (default ON: every .cu file must
#                            compile and link in CI; setup installs the toolkit). The
#                            ASan build keeps AUTO.
#   JOBS                     build/ctest parallelism (default 2)
#   KINFER_TEST_SKIP_ASAN=1  skip the ASan+UBSan stage (local speed; CI runs it)
#   KINFER_KAFKA_PORT        broker port (default 19092)
#   KINFER_PYTEST_TIMEOUT    seconds for the whole integration suite (default 2400)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
jobs=${JOBS:-2}
read -r -a cmake_flags <<<"${CMAKE_FLAGS:-}"
export KINFER_KAFKA_PORT=${KINFER_KAFKA_PORT:-19092}
logs=$root/build/test-logs
t_all=$(date +%s.%N)

stage_lines=()
failed_stages=()
kafka_started=0
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
        stage_lines+=("$(printf '  %-8s ok      %7ss' "$name" "$(elapsed "$t0")")")
    else
        stage_lines+=("$(printf '  %-8s FAILED  %7ss  (exit %d)' "$name" "$(elapsed "$t0")" "$rc")")
        failed_stages+=("$name")
    fi
    stage_rc=$rc
}

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
    local rc=$? line
    set +e
    if [ "$kafka_started" = 1 ]; then
        "$root/scripts/kafka.sh" stop >/dev/null 2>&1 || echo "test.sh: stopping Kafka failed" >&2
    fi
    echo
    echo "==== summary ===="
    for line in "${stage_lines[@]}"; do echo "$line"; done
    if [ -n "$current" ]; then
        printf '  %-8s INTERRUPTED %3ss  (exit %d)\n' "$current" "$(elapsed "$current_t0")" "$rc"
        failed_stages+=("$current")
    fi
    printf '  %-8s         %7ss\n' total "$(elapsed "$t_all")"
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
    "$root/scripts/kafka.sh" start | tee "$logs/kafka-start.log"
}
do_pytest() {
    # Exit 5 (no tests collected) fails like any other non-zero status: there
    # are always integration tests.
    timeout --signal=TERM --kill-after=30 "${KINFER_PYTEST_TIMEOUT:-2400}" \
        python3 -m pytest 2>&1 | tee "$logs/pytest.log"
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
    stage_lines+=("$(printf '  %-8s skipped (KINFER_TEST_SKIP_ASAN=1)' asan)")
else
    tests_stage asan do_asan count_ctest "$logs/ctest-asan.log"
fi

# The broker is started from this shell (not a stage subshell) so that the
# EXIT trap knows whether to stop it: a broker someone left running is reused
# and left running.
if "$root/scripts/kafka.sh" status >/dev/null 2>&1; then
    echo "test.sh: reusing the broker already running on port $KINFER_KAFKA_PORT (left running)"
else
    kafka_started=1
fi
stage kafka do_kafka
if [ "$stage_rc" -eq 0 ]; then
    KINFER_BOOTSTRAP=$(tail -n1 "$logs/kafka-start.log")
    export KINFER_BOOTSTRAP
    tests_stage pytest do_pytest count_pytest "$logs/pytest.log"
fi
