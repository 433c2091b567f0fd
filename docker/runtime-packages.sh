#!/usr/bin/env bash
# docker/runtime-packages.sh BINARY — print the Debian/Ubuntu packages that own
# the shared libraries BINARY loads, one per line, for the runtime image to
# install (so the list never drifts from what the build really linked).
# CUDA libraries are left out: the nvidia/cuda runtime base image has them.
# Not a general dependency solver: it trusts ldd and dpkg on the build host.
set -euo pipefail
bin=${1:?usage: runtime-packages.sh BINARY}
[ -x "$bin" ] || { echo "runtime-packages: $bin is not an executable" >&2; exit 1; }

out=$(ldd "$bin") || { echo "runtime-packages: ldd $bin failed" >&2; exit 1; }
if grep -q 'not found' <<<"$out"; then
    echo "runtime-packages: unresolved libraries:" >&2
    grep 'not found' <<<"$out" >&2
    exit 1
fi
pkgs=()
while read -r lib path; do
    case "$lib" in
    libcuda.so* | libcudart.so* | libcublas*.so* | libnv*.so* | libcufft* | libcurand* | libcusparse*) continue ;;
    esac
    real=$(readlink -f "$path")
    # dpkg records a library under whichever of /lib and /usr/lib its package
    # shipped it in (merged /usr makes both paths real); try both spellings.
    owner=""
    for p in "$path" "$real" "${real#/usr}" "/usr${real}"; do
        owner=$(dpkg -S "$p" 2>/dev/null | head -n1 | cut -d: -f1) && [ -n "$owner" ] && break
    done
    if [ -z "$owner" ]; then
        echo "runtime-packages: no package owns $path ($real) for $lib" >&2
        exit 1
    fi
    pkgs+=("$owner")
done < <(awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' <<<"$out")
printf '%s\n' "${pkgs[@]}" | sort -u
