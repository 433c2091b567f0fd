#!/usr/bin/env bash
# scripts/fuzz.sh — build kinfer's libFuzzer targets with clang (-DKINFER_FUZZ=ON,
# ASan+UBSan, in build-fuzz/) and run each one, or the ones named, for a few
# seconds over its committed seed corpus. This is `make fuzz`. Not part of
# `make test`: ctest already replays every seed corpus in the normal builds.
#
#   scripts/fuzz.sh [-t SECONDS] [TARGET...]
#     TARGET      fuzz_<module>_<what>, e.g. fuzz_codec_request; default: every
#                 tests/fuzz/fuzz_*.c (fuzz_replay.c is the ctest driver, not a target)
#     -t SECONDS  run time per target (default $FUZZ_SECONDS or 60)
#   Env: FUZZ_BUILD (build dir, default build-fuzz), JOBS (build parallelism, 2),
#        FUZZ_MAX_LEN (libFuzzer -max_len, default 4096), CC (default clang)
#
# Inputs libFuzzer finds go to fuzz-out/<target>/corpus/ (git-ignored; the
# committed seeds are only read). A crash, leak or sanitizer report leaves
# fuzz-out/<target>/crash-* (or leak-*, timeout-*) and fails the run: fix it,
# then copy the file into tests/fuzz/corpus/<target>/ so ctest replays it.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
seconds=${FUZZ_SECONDS:-60}
build=${FUZZ_BUILD:-build-fuzz}
jobs=${JOBS:-2}
max_len=${FUZZ_MAX_LEN:-4096}
cc=${CC:-clang}

die() {
    echo "fuzz: ERROR: $*" >&2
    exit 2
}

while getopts "t:h" opt; do
    case $opt in
    t) seconds=$OPTARG ;;
    h)
        sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *) die "usage: scripts/fuzz.sh [-t SECONDS] [TARGET...]" ;;
    esac
done
shift $((OPTIND - 1))
[[ $seconds =~ ^[1-9][0-9]*$ ]] || die "-t wants a whole number of seconds > 0, got '$seconds'"
command -v "$cc" >/dev/null || die "$cc not found (scripts/setup.sh installs clang and libclang-rt-14-dev)"

all=()
for src in tests/fuzz/fuzz_*.c; do
    name=$(basename "$src" .c)
    [ "$name" = fuzz_replay ] || all+=("$name")
done
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
for t in "${targets[@]}"; do
    [ -f "tests/fuzz/$t.c" ] || die "no fuzz target '$t' (have: ${all[*]})"
    [ -n "$(ls -A "tests/fuzz/corpus/$t" 2>/dev/null)" ] || die "$t: empty or missing seed corpus tests/fuzz/corpus/$t/"
done

# CUDA and benches are off: the fuzz targets run on the CPU, and nvcc would
# not take clang's fuzzer flags.
echo "fuzz: building ${targets[*]} in $build/ ($cc, KINFER_FUZZ=ON)"
cmake -S . -B "$build" -DCMAKE_C_COMPILER="$cc" -DKINFER_FUZZ=ON -DKINFER_CUDA=OFF \
    -DKINFER_BENCH=OFF >/dev/null
cmake --build "$build" -j"$jobs" --target "${targets[@]}"

failed=()
for t in "${targets[@]}"; do
    out=fuzz-out/$t
    mkdir -p "$out/corpus"
    echo
    echo "==== fuzz: $t for ${seconds}s (new inputs: $out/corpus/) ===="
    # First corpus dir is written, the seed dir only read. A crash exits
    # non-zero and leaves its input under -artifact_prefix.
    if "$build/tests/fuzz/$t" -max_total_time="$seconds" -max_len="$max_len" -timeout=10 \
        -print_final_stats=1 -artifact_prefix="$out/" "$out/corpus" "tests/fuzz/corpus/$t"; then
        echo "fuzz: $t ok"
    else
        echo "fuzz: $t FAILED: see $out/ for the crashing input" >&2
        failed+=("$t")
    fi
done

echo
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz: ${#targets[@]} target(s) ran ${seconds}s each with no finding"
