#!/usr/bin/env bash
# tests/gpu/simulate.sh — dry run of tests/gpu/run.sh on the dev machine (no
# GPU), as close to the lent GPU machine as this one gets: in a private mount
# namespace the Debian headers, libraries, .pc files and pkg-config that
# .gpu-deps/ replaces are hidden (bind-mounted over with /dev/null or an
# empty folder), and a fake nvidia-smi reports an sm_90 GPU. What it proves:
# the engine-only CUDA build configures, compiles and links from .gpu-deps
# alone and the script's plumbing works. What it cannot: the CUDA tests see
# no device, so run.sh must report them as FAILED (skipped on a "GPU"
# machine) and exit 1; compute-sanitizer is absent here. Needs root
# (unshare -m). Usage: tests/gpu/simulate.sh   (after tests/gpu/prepare.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -f .gpu-deps/include/cblas.h ] || tests/gpu/prepare.sh
fake=$(mktemp -d)
trap 'rm -rf "$fake"' EXIT
cat >"$fake/nvidia-smi" <<'EOF'
#!/bin/sh
echo "Simulated GPU (tests/gpu/simulate.sh), 580.00, 9.0, 81559 MiB"
EOF
chmod +x "$fake/nvidia-smi"
multiarch=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
export SIM_LIBDIR=/usr/lib/$multiarch SIM_MULTIARCH=$multiarch SIM_FAKE=$fake
export OUT=${OUT:-/tmp/kinfer-gpu-out-sim}
export KINFER_GPU_BUILD=${KINFER_GPU_BUILD:-build-gpu-sim}
# The toolkit: whatever scripts/setup-cuda.sh recorded.
export KINFER_CUDA_ROOT=${KINFER_CUDA_ROOT:-$(scripts/setup-cuda.sh --root)}
exec unshare -m --propagation private bash -c '
set -e
empty=$(mktemp -d)
hide() { for f in "$@"; do
    [ -e "$f" ] || continue
    if [ -d "$f" ]; then mount --bind "$empty" "$f"; else mount --bind /dev/null "$f"; fi
done; }
hide /usr/include/jansson.h /usr/include/jansson_config.h /usr/include/cmocka.h \
     /usr/include/utf8proc.h /usr/include/$SIM_MULTIARCH/openblas-pthread \
     $SIM_LIBDIR/openblas-pthread $SIM_LIBDIR/libopenblas* $SIM_LIBDIR/libjansson.so* \
     $SIM_LIBDIR/libcmocka.so* $SIM_LIBDIR/libutf8proc.so* \
     $SIM_LIBDIR/pkgconfig/jansson.pc $SIM_LIBDIR/pkgconfig/libutf8proc.pc \
     $SIM_LIBDIR/pkgconfig/cmocka.pc /usr/bin/pkg-config /usr/bin/pkgconf \
     /usr/bin/$SIM_MULTIARCH-pkg-config
echo "simulate: Debian copies hidden; system pkg-config $(pkg-config --version >/dev/null 2>&1 && echo works || echo hidden)"
PATH="$SIM_FAKE:$PATH" bash tests/gpu/run.sh
'
