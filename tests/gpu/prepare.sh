#!/usr/bin/env bash
# tests/gpu/prepare.sh — run HERE (the Debian dev machine), before a GPU run:
# copies the engine-only build's third-party headers, shared libraries,
# pkg-config files and a pkg-config binary into .gpu-deps/ (git-ignored),
# because the GPU machine has nvcc, CMake and Python but no Debian packages.
# tests/gpu/run.sh points CMake and the loader at it. Not a package manager:
# it copies what `dpkg -L` says these packages installed, nothing else.
#
# Carried: OpenBLAS (+ libgfortran, libquadmath), jansson, cmocka, utf8proc,
# pkgconf. About 41 MB (OpenBLAS is 36 MB); the device tool carries 64 MiB.
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
copy_lib "$libdir/openblas-pthread/libopenblas.so.0" libopenblas.so
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

# The lent machine keeps nothing; this folder goes along via `carry`.
grep -qx '/.gpu-deps/' .gitignore 2>/dev/null || grep -qx '/.gpu-deps/' .git/info/exclude 2>/dev/null ||
    echo '/.gpu-deps/' >>.git/info/exclude

printf 'prepare: %s ready (%s): ' "$deps" "$(du -sh "$deps" | cut -f1)"
ls "$deps/lib" | tr '\n' ' '
echo
