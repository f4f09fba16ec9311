#!/usr/bin/env bash
# Build the agent image from target/release/skewscope with buildah:
#   scripts/deploy/build-image.sh [TAG] [-- extra `buildah` global flags]
# Stages rootfs/ (the binary, the libraries `ldd` lists, the CA bundle) in a temporary
# context and builds scripts/deploy/Containerfile there. BUILDAH_FLAGS (e.g.
# "--storage-driver vfs --root DIR --runroot DIR") go before `build`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
tag="${1:-localhost/skewscope:$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/Cargo.toml" | head -1)}"
bin="${SKEWSCOPE_BIN:-$repo/target/release/skewscope}"
[ -x "$bin" ] || { echo "build-image: $bin missing: cargo build --release -p skewscope" >&2; exit 1; }

ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/rootfs/usr/bin" "$ctx/rootfs/etc/ssl/certs"
# Debug info off (a quarter of the size); the symbol table stays for backtraces.
objcopy --strip-debug "$bin" "$ctx/rootfs/usr/bin/skewscope"
# Every library with a path in ldd's output ("name => /path (addr)" or "/path (addr)"),
# at that same path, the link resolved (the loader is /lib64/ld-linux-x86-64.so.2 by
# name in the binary's PT_INTERP).
ldd "$bin" | awk '/=> \// { print $3 } /^[ \t]*\// { print $1 }' | while read -r lib; do
    mkdir -p "$ctx/rootfs$(dirname "$lib")"
    cp -L "$lib" "$ctx/rootfs$lib"
done
ca=/etc/ssl/certs/ca-certificates.crt
[ -f "$ca" ] || { echo "build-image: $ca missing (Debian package ca-certificates)" >&2; exit 1; }
cp -L "$ca" "$ctx/rootfs$ca"
cp "$here/Containerfile" "$ctx/Containerfile"
# shellcheck disable=SC2086 # BUILDAH_FLAGS is a list of flags.
buildah ${BUILDAH_FLAGS:-} build --quiet -f "$ctx/Containerfile" -t "$tag" "$ctx"
echo "$tag"
