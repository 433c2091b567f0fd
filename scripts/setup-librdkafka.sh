#!/usr/bin/env bash
# scripts/setup-librdkafka.sh — build a current librdkafka from Debian's own
# source package (sid) into ~/.cache/kinfer/librdkafka-<version>, beside the
# system one (Debian 12's 2.0.2), which it never touches. scripts/setup.sh runs
# it; scripts/test.sh builds kinfer against the result (-DKINFER_RDKAFKA=DIR).
# Idempotent: a finished install is reused and nothing is fetched.
#
#   scripts/setup-librdkafka.sh            fetch, verify, build, install (once)
#   scripts/setup-librdkafka.sh --prefix   print the install dir only
#   KINFER_RDKAFKA_JOBS                    make -j (default 2)
#
# Trust chain, without touching the machine's apt sources: sid's InRelease is
# checked with gpgv against debian-archive-keyring; Sources.xz against the
# SHA256 in the verified InRelease; each source file (.dsc, orig tarball,
# debian tarball) against the Checksums-Sha256 of librdkafka's stanza in that
# Sources file; dpkg-source then checks the tarballs against the .dsc again.
set -euo pipefail

# --- the pin (the one place that names the version) ----------------------------
# 2.14.2-1 was Debian sid's librdkafka when this was written. What it brings
# over Debian 12's 2.0.2, from the upstream CHANGELOG.md in that source:
#  - the KIP-848 consumer group protocol: early access in 2.4.0, preview in
#    2.10.0, "production-ready" (GA) since 2.12.0 — opt-in with
#    group.protocol=consumer, the default stays classic;
#  - SASL/SCRAM against Kafka 4.x brokers: before 2.6.1 librdkafka appended
#    the client nonce twice (#4895); Kafka 3.8.1-3.9 tolerates it, 4.x rejects
#    the login as "invalid credentials" (seen here with kcat on 2.0.2);
#  - the close-time and timer fixes since 2.0.2 (see docs/RELIABILITY.md for
#    the close hang kinfer works around on 2.0.2).
# sid moves on: when it no longer carries this version, this script says so
# and the pin is bumped here (a built install stays usable from the cache).
version=2.14.2
debian_revision=1

mirror=http://deb.debian.org/debian
suite=sid
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
jobs=${KINFER_RDKAFKA_JOBS:-2}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/kinfer
prefix=$cache/librdkafka-$version
srcdir=$cache/src/librdkafka_$version-$debian_revision

say() { echo "librdkafka: $*"; }
die() {
    echo "setup-librdkafka.sh: $*" >&2
    exit 1
}
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1fs", b-a}'; }

case "${1:-}" in
--prefix)
    echo "$prefix"
    exit 0
    ;;
'') ;;
*)
    echo "usage: scripts/setup-librdkafka.sh [--prefix]" >&2
    exit 2
    ;;
esac

installed() {
    [ -f "$prefix/.complete" ] && [ -f "$prefix/lib/pkgconfig/rdkafka.pc" ]
}
if installed; then
    say "$version cached in $prefix"
    exit 0
fi

for tool in curl gpgv xz dpkg-source sha256sum make cc pkg-config; do
    command -v "$tool" >/dev/null || die "$tool not found: run scripts/setup.sh"
done
[ -f "$keyring" ] || die "$keyring missing: apt-get install debian-archive-keyring"

mkdir -p "$cache/src"
# One build at a time (two checkouts may set up at once).
exec 8>"$cache/.librdkafka-$version.lock"
flock -w 1800 8 || die "timed out waiting for another librdkafka build"
if installed; then
    say "$version cached in $prefix"
    exit 0
fi

work=$(mktemp -d "$cache/.librdkafka-XXXXXX")
trap 'rm -rf "$work"' EXIT

get() { # get URL FILE
    curl -sSf --retry 3 --connect-timeout 20 -o "$2" "$1" || die "download failed: $1"
}

# check_sha256 FILE SHA256 SIZE
check_sha256() {
    local got size
    size=$(stat -c %s "$1")
    [ "$size" = "$3" ] || die "$(basename "$1"): $size bytes, the signed index says $3"
    got=$(sha256sum "$1" | cut -d' ' -f1)
    [ "$got" = "$2" ] || die "$(basename "$1"): sha256 $got, the signed index says $2"
}

# --- fetch and verify the source package (once; kept in the cache) ---------------
fetch_source() {
    local t line sha size name stanza dir files=0
    t=$(date +%s.%N)
    get "$mirror/dists/$suite/InRelease" "$work/InRelease"
    # --output: from here on only the text the signature covers is read.
    gpgv --keyring "$keyring" --output "$work/Release" "$work/InRelease" >"$work/gpgv.log" 2>&1 || {
        cat "$work/gpgv.log" >&2
        die "the signature of $suite's InRelease does not verify against $keyring"
    }
    line=$(awk '/^SHA256:/{s=1; next} /^[^ ]/{s=0} s && $3 == "main/source/Sources.xz" {print $1, $2}' "$work/Release")
    [ -n "$line" ] || die "no SHA256 for main/source/Sources.xz in $suite's InRelease"
    read -r sha size <<<"$line"
    get "$mirror/dists/$suite/main/source/Sources.xz" "$work/Sources.xz"
    check_sha256 "$work/Sources.xz" "$sha" "$size"
    xz -dc "$work/Sources.xz" >"$work/Sources" || die "Sources.xz does not decompress"
    stanza=$(awk '/^Package: librdkafka$/{p=1} p && /^$/{exit} p' "$work/Sources")
    [ -n "$stanza" ] || die "no librdkafka in $suite's Sources"
    line=$(sed -n 's/^Version: //p' <<<"$stanza")
    [ "$line" = "$version-$debian_revision" ] ||
        die "Debian $suite now has librdkafka $line, not the pinned $version-$debian_revision: update the pin at the top of $0"
    dir=$(sed -n 's/^Directory: //p' <<<"$stanza")
    [ -n "$dir" ] || die "no Directory in librdkafka's stanza"
    mkdir -p "$work/src"
    while read -r sha size name; do
        case "$name" in */* | '' | .*) die "odd file name '$name' in librdkafka's stanza" ;; esac
        get "$mirror/$dir/$name" "$work/src/$name"
        check_sha256 "$work/src/$name" "$sha" "$size"
        files=$((files + 1))
    done < <(awk '/^Checksums-Sha256:/{s=1; next} /^[^ ]/{s=0} s {print $1, $2, $3}' <<<"$stanza")
    [ "$files" -ge 2 ] && [ -f "$work/src/librdkafka_$version-$debian_revision.dsc" ] ||
        die "librdkafka's stanza lists no .dsc for $version-$debian_revision"
    rm -rf "$srcdir"
    mv "$work/src" "$srcdir"
    touch "$srcdir/.verified"
    say "source package $version-$debian_revision fetched and verified ($files files, $(since "$t"))"
}

if [ -f "$srcdir/.verified" ]; then
    say "source package $version-$debian_revision cached in $srcdir"
else
    fetch_source
fi

# --- unpack, configure, build, install ---------------------------------------------
t=$(date +%s.%N)
# dpkg-source checks the tarballs against the .dsc and applies debian/patches
# (quilt series). It cannot check the .dsc's own signature without
# debian-keyring; the sha256 from the signed Sources stanza stands for it.
dpkg-source -x "$srcdir/librdkafka_$version-$debian_revision.dsc" "$work/tree" >"$work/unpack.log" 2>&1 || {
    cat "$work/unpack.log" >&2
    die "dpkg-source -x failed"
}
cd "$work/tree"
# Debian's last patch moves the OpenTelemetry sources to the paths its
# debian/rules regenerates them into with nanopb from the opentelemetry-proto
# package, which Debian 12 lacks. We keep upstream's pregenerated files, so
# that one patch is undone (the other two only add --enable-*-ext options).
otel=debian/patches/Use-nanopb-generated-header-paths-for-opentelemetry.patch
if [ -f "$otel" ]; then
    patch -R -p1 -s <"$otel" || die "could not undo $otel"
fi

# ssl (and with it SASL SCRAM/PLAIN, built in), Cyrus SASL (GSSAPI), zstd,
# lz4, zlib are required: configure fails instead of quietly leaving one out.
# Built-in cJSON and nanopb (Debian 12's are older than Debian's build
# uses); no libcurl (OAUTHBEARER OIDC only).
if ! ./configure --prefix="$prefix" --enable-ssl --enable-gssapi --enable-zstd --enable-lz4-ext \
    --enable-zlib --disable-curl --disable-cjson-ext --disable-nanopb-ext --enable-c11threads \
    >"$work/configure.log" 2>&1; then
    tail -n 40 "$work/configure.log" >&2
    die "configure failed (missing -dev packages? scripts/setup.sh installs them)"
fi
say "configured ($(since "$t"))"
t=$(date +%s.%N)
# Only the C library: kinfer needs neither the C++ wrapper nor the examples.
if ! make -C src -j"$jobs" >"$work/build.log" 2>&1; then
    tail -n 40 "$work/build.log" >&2
    die "build failed"
fi
build_s=$(since "$t")
rm -rf "$prefix"
make -C src install >"$work/install.log" 2>&1 || {
    tail -n 20 "$work/install.log" >&2
    die "install into $prefix failed"
}
got=$(PKG_CONFIG_PATH=$prefix/lib/pkgconfig pkg-config --modversion rdkafka)
[ "$got" = "$version" ] || die "installed rdkafka.pc says $got, not $version"
# The features this build must have, as the library itself reports them.
if command -v kcat >/dev/null; then
    features=$(LD_LIBRARY_PATH=$prefix/lib kcat -X dump 2>/dev/null | sed -n 's/^builtin.features = //p')
    for f in ssl sasl_scram sasl_gssapi zstd lz4 gzip; do
        case ",$features," in *",$f,"*) ;; *) die "built librdkafka lacks '$f' (builtin.features: $features)" ;; esac
    done
fi
touch "$prefix/.complete"
say "$version built with make -j$jobs in $build_s, installed in $prefix"
