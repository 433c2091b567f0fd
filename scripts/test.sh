#!/usr/bin/env bash
# scripts/test.sh — everything `make test` (and so CI, via .ci/run) runs:
# setup, plain build, format and static checks, unit tests, ASan+UBSan build
# and unit tests, a real Kafka broker, the integration suite. Stops at the
# first failing stage; always stops the broker it started.
#
#   CMAKE_FLAGS              extra cmake flags for both builds (KINFER_CUDA stays AUTO)
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

stage_names=()
stage_times=()
current=""
kafka_started=0
passed=0 failed=0 skipped=0

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }

begin() {
    current=$1
    stage_t0=$(now)
    echo
    echo "==== [$current] $(date -u +%H:%M:%S) ===="
}
end() {
    stage_names+=("$current")
    stage_times+=("$(elapsed "$stage_t0")")
    current=""
}

# count_ctest LOG: add ctest's "N% tests passed, F tests failed out of T".
count_ctest() {
    local line total fail skip
    line=$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$1" | tail -n1) || return 0
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
    line=$(grep -E '^=+ .*(passed|failed|error|skipped|no tests ran).* in [0-9.]+s' "$1" | tail -n1) || return 0
    n=$(grep -oE '[0-9]+ passed' <<<"$line" | cut -d' ' -f1) && passed=$((passed + n))
    n=$(grep -oE '[0-9]+ failed' <<<"$line" | cut -d' ' -f1) && failed=$((failed + n))
    n=$(grep -oE '[0-9]+ errors?' <<<"$line" | cut -d' ' -f1) && failed=$((failed + n))
    n=$(grep -oE '[0-9]+ skipped' <<<"$line" | cut -d' ' -f1) && skipped=$((skipped + n))
    return 0
}

finish() {
    local rc=$?
    set +e
    if [ "$kafka_started" = 1 ]; then
        "$root/scripts/kafka.sh" stop >/dev/null 2>&1 || echo "test.sh: stopping Kafka failed" >&2
    fi
    # A failing test stage stopped before counting: count its log now.
    case "$current" in
    unit) count_ctest "$logs/ctest.log" ;;
    asan) count_ctest "$logs/ctest-asan.log" ;;
    pytest) count_pytest "$logs/pytest.log" ;;
    esac
    echo
    echo "==== summary ===="
    local i
    for i in "${!stage_names[@]}"; do
        printf '  %-12s ok      %7ss\n' "${stage_names[$i]}" "${stage_times[$i]}"
    done
    if [ -n "$current" ]; then
        printf '  %-12s FAILED  %7ss\n' "$current" "$(elapsed "$stage_t0")"
        [ "$failed" -gt 0 ] || failed=1
    fi
    printf '  %-12s         %7ss\n' total "$(elapsed "$t_all")"
    if [ "$rc" -eq 0 ] && [ "$failed" -ne 0 ]; then rc=1; fi
    if [ "$rc" -ne 0 ]; then
        echo "test.sh: FAILED in stage '${current:-?}' (exit $rc); logs in $logs"
    fi
    echo "tests: $passed passed, $failed failed, $skipped skipped"
    exit "$rc"
}
mkdir -p "$logs"
rm -f "$logs"/*.log
trap finish EXIT
trap 'exit 130' INT TERM

begin setup
"$root/scripts/setup.sh"
end

begin build
cmake -S . -B build -DKINFER_WERROR=ON "${cmake_flags[@]}" >/dev/null
cmake --build build -j"$jobs"
end

begin format
"$root/scripts/format.sh" check
end

begin static
"$root/scripts/check-static.sh"
end

begin unit
(cd build && ctest --output-on-failure --no-tests=error --timeout 900 -j"$jobs") 2>&1 | tee "$logs/ctest.log"
count_ctest "$logs/ctest.log"
end

if [ "${KINFER_TEST_SKIP_ASAN:-0}" = 1 ]; then
    echo
    echo "==== [asan] skipped (KINFER_TEST_SKIP_ASAN=1) ===="
else
    begin asan
    cmake -S . -B build-asan -DKINFER_WERROR=ON -DKINFER_SANITIZE=address,undefined \
        -DKINFER_BENCH=OFF "${cmake_flags[@]}" >/dev/null
    cmake --build build-asan -j"$jobs"
    (cd build-asan && ctest --output-on-failure --no-tests=error --timeout 900 -j"$jobs") 2>&1 |
        tee "$logs/ctest-asan.log"
    count_ctest "$logs/ctest-asan.log"
    end
fi

begin kafka
if "$root/scripts/kafka.sh" status >/dev/null 2>&1; then
    echo "test.sh: reusing the broker already running on port $KINFER_KAFKA_PORT (left running)"
else
    kafka_started=1
fi
bootstrap=$("$root/scripts/kafka.sh" start | tail -n1)
export KINFER_BOOTSTRAP=$bootstrap
echo "test.sh: Kafka at $bootstrap"
end

begin pytest
# Exit 5 (no tests collected) fails like any other non-zero status: there are
# always integration tests.
timeout --signal=TERM --kill-after=30 "${KINFER_PYTEST_TIMEOUT:-2400}" \
    python3 -m pytest 2>&1 | tee "$logs/pytest.log"
count_pytest "$logs/pytest.log"
end
