#!/usr/bin/env bash
# scripts/setup-cuda.sh — make nvcc + cudart + cuBLAS available for the CUDA
# backend build (cmake/KinferCuda.cmake), GPU or not. Uses an existing
# toolkit when there is one (KINFER_CUDA_ROOT, nvcc on PATH, /usr/local/cuda);
# otherwise installs NVIDIA's CUDA 13.0 wheels from PyPI into a cached prefix
# and repairs their layout so nvcc and CMake's FindCUDAToolkit accept it.
# Does not install a driver: linking needs none, running kernels needs a GPU.
#
# Usage: scripts/setup-cuda.sh           install/verify, print the root
#        scripts/setup-cuda.sh --root    print the recorded root only (no install)
# Env:   KINFER_CUDA_ROOT  use this toolkit (must hold bin/nvcc)
#        KINFER_CUDA_FORCE_WHEELS=1  ignore system toolkits, use the wheels
#        XDG_CACHE_HOME    cache base (default ~/.cache)
# Writes: ${XDG_CACHE_HOME:-~/.cache}/kinfer/cuda-root  (one line: the root),
#         read by cmake/KinferCuda.cmake when CUDAToolkit_ROOT is not given.
# Idempotent: a second run finds the stamp and takes a second or two.
set -euo pipefail

CUDA_SERIES=13.0
# Pinned spec: 13.0 matches the R580 driver of the lent GPU machines (a newer
# runtime than the driver fails with cudaErrorInsufficientDriver).
WHEEL_SPEC="cuda-toolkit[nvcc,cudart,cublas,cccl]==${CUDA_SERIES}.*"

cache_base=${XDG_CACHE_HOME:-$HOME/.cache}/kinfer
root_file=$cache_base/cuda-root
prefix=$cache_base/cuda-$CUDA_SERIES

say() { printf 'setup-cuda: %s\n' "$*"; }
die() {
    printf 'setup-cuda: ERROR: %s\n' "$*" >&2
    exit 1
}

if [ "${1:-}" = "--root" ]; then
    [ -s "$root_file" ] || die "no toolkit recorded in $root_file; run scripts/setup-cuda.sh"
    cat "$root_file"
    exit 0
fi

# A toolkit is usable when nvcc runs and cudart + cuBLAS headers and
# unversioned libraries are where FindCUDAToolkit looks.
toolkit_ok() {
    local r=$1
    [ -x "$r/bin/nvcc" ] || return 1
    "$r/bin/nvcc" --version >/dev/null 2>&1 || return 1
    [ -f "$r/include/cuda_runtime.h" ] || [ -f "$r/targets/x86_64-linux/include/cuda_runtime.h" ] ||
        return 1
    [ -f "$r/include/cublas_v2.h" ] || [ -f "$r/targets/x86_64-linux/include/cublas_v2.h" ] ||
        return 1
    return 0
}

record_root() {
    mkdir -p "$cache_base"
    printf '%s\n' "$1" >"$root_file.tmp.$$"
    mv -f "$root_file.tmp.$$" "$root_file"
    say "toolkit root: $1 ($("$1/bin/nvcc" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'))"
    say "recorded in $root_file"
}

# --- 1. an existing toolkit --------------------------------------------------
if [ "${KINFER_CUDA_FORCE_WHEELS:-0}" != 1 ]; then
    candidates=()
    [ -n "${KINFER_CUDA_ROOT:-}" ] && candidates+=("$KINFER_CUDA_ROOT")
    if nvcc_path=$(command -v nvcc 2>/dev/null); then
        candidates+=("$(dirname "$(dirname "$(readlink -f "$nvcc_path")")")")
    fi
    candidates+=(/usr/local/cuda)
    for r in "${candidates[@]}"; do
        if toolkit_ok "$r"; then
            record_root "$r"
            exit 0
        fi
    done
    [ -n "${KINFER_CUDA_ROOT:-}" ] && die "KINFER_CUDA_ROOT=$KINFER_CUDA_ROOT holds no usable toolkit (bin/nvcc, cuda_runtime.h, cublas_v2.h)"
fi

# --- 2. the cached wheel prefix ----------------------------------------------
root=$prefix/pkgs/nvidia/cu13
stamp=$prefix/.complete
mkdir -p "$cache_base"

# Repairs the wheel layout; safe to run again on a repaired tree.
fix_tree() {
    local r=$1 lib
    # nvcc.profile links from lib$(_TARGET_SIZE_) = lib64.
    [ -e "$r/lib64" ] || ln -s lib "$r/lib64"
    # FindCUDAToolkit and -lcudart/-lcublas want unversioned names; the
    # wheels ship only the SONAMEs (libcudart.so.13 ...).
    for lib in cudart cublas cublasLt nvrtc; do
        local so
        so=$(cd "$r/lib" && ls "lib$lib.so."* 2>/dev/null | grep -E "^lib$lib\.so\.[0-9]+$" | head -1 || true)
        [ -n "$so" ] && [ ! -e "$r/lib/lib$lib.so" ] && ln -s "$so" "$r/lib/lib$lib.so"
    done
    # cublas_v2.h -> cuda_fp16.h -> <cuda/...>, <nv/target>: nvcc adds
    # include/cccl itself (nvcc.profile), a host C/C++ compiler does not.
    # Link the cccl trees into include/ so one -I serves both.
    local d
    for d in cuda cub thrust; do
        [ -e "$r/include/cccl/$d" ] && [ ! -e "$r/include/$d" ] && ln -s "cccl/$d" "$r/include/$d"
    done
    # libcuda is the driver: never in the wheels, never needed to link
    # (cudart loads it at run time), so nothing to do for it. include/nv
    # already ships in the runtime wheel (same files as cccl/nv).
    return 0
}

exec 9>"$cache_base/cuda-install.lock"
flock 9 # two builds setting up at once wait for each other

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$WHEEL_SPEC" ] && toolkit_ok "$root"; then
    fix_tree "$root"
    record_root "$root"
    exit 0
fi

python=${PYTHON:-python3}
"$python" -m pip --version >/dev/null 2>&1 || die "no pip for $python; cannot install the CUDA wheels (install a CUDA toolkit or python3-pip)"

say "installing $WHEEL_SPEC into $prefix (about 620 MB download, 1.1 GB on disk)"
tmp=$prefix.tmp.$$
rm -rf "$tmp"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
t0=$(date +%s)
PIP_ROOT_USER_ACTION=ignore "$python" -m pip install --quiet --no-cache-dir --disable-pip-version-check \
    --no-warn-script-location --target "$tmp/pkgs" "$WHEEL_SPEC" ||
    die "pip install $WHEEL_SPEC failed"
t1=$(date +%s)
[ -x "$tmp/pkgs/nvidia/cu13/bin/nvcc" ] || die "wheels installed but nvidia/cu13/bin/nvcc is missing (layout changed?)"
fix_tree "$tmp/pkgs/nvidia/cu13"
rm -rf "$prefix"
mv "$tmp" "$prefix"
trap - EXIT
fix_tree "$root" # links are relative, so this only checks after the move
toolkit_ok "$root" || die "toolkit in $root does not work after install (nvcc --version failed?)"
printf '%s' "$WHEEL_SPEC" >"$stamp"
say "installed in $((t1 - t0)) s; prefix size $(du -sh "$prefix" | cut -f1)"
record_root "$root"
