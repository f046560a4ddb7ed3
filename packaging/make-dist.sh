#!/bin/sh
# Build the release tarballs from already-built binaries (called by `make dist`):
#   packaging/make-dist.sh TRIPLE...
# For each target triple: dist/cloudeye-agent-VERSION-ARCH.tar.gz holding the binary from
# target/TRIPLE/release/cloudeye-agent, config.example.json, the packaging files and
# README.md; then dist/SHA256SUMS. TARGET_DIR and DIST_DIR override the two directories.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET_DIR=${TARGET_DIR:-$ROOT/target}
DIST_DIR=${DIST_DIR:-$ROOT/dist}
NAME=cloudeye-agent

[ $# -gt 0 ] || { echo "usage: make-dist.sh TRIPLE..." >&2; exit 2; }

version=$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' "$ROOT/Cargo.toml" | head -n 1)
[ -n "$version" ] || { echo "make-dist.sh: no version in Cargo.toml" >&2; exit 1; }
# Reproducible archives: file times from the last commit (or SOURCE_DATE_EPOCH).
epoch=${SOURCE_DATE_EPOCH:-$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || echo 0)}

mkdir -p "$DIST_DIR"
tarballs=""
for triple in "$@"; do
    arch=${triple%%-*}
    bin="$TARGET_DIR/$triple/release/$NAME"
    [ -f "$bin" ] || { echo "make-dist.sh: $bin is missing; run make build first" >&2; exit 1; }
    base="$NAME-$version-$arch"
    stage="$DIST_DIR/.stage/$base"
    rm -rf "$stage"
    mkdir -p "$stage/init.d" "$stage/openrc" "$stage/cron.d" "$stage/logrotate"
    cp "$bin" "$stage/$NAME"
    chmod 0755 "$stage/$NAME"
    cp "$ROOT/README.md" "$stage/README.md"
    cd "$ROOT/packaging"
    cp config.example.json cloudeye-agent.service busybox-inittab.txt "$stage/"
    cp install.sh "$stage/install.sh"
    cp init.d/$NAME "$stage/init.d/$NAME"
    cp openrc/$NAME "$stage/openrc/$NAME"
    cp cron.d/$NAME "$stage/cron.d/$NAME"
    cp logrotate/$NAME "$stage/logrotate/$NAME"
    chmod 0755 "$stage/install.sh" "$stage/init.d/$NAME" "$stage/openrc/$NAME"
    cd "$DIST_DIR/.stage"
    tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" \
        -cf - "$base" | gzip -9n >"$DIST_DIR/$base.tar.gz"
    rm -rf "$stage"
    tarballs="$tarballs $base.tar.gz"
    echo "make-dist.sh: $DIST_DIR/$base.tar.gz"
done
rmdir "$DIST_DIR/.stage" 2>/dev/null || true

cd "$DIST_DIR"
# shellcheck disable=SC2086 # the names have no spaces: they are built above
sha256sum $tarballs >SHA256SUMS
echo "make-dist.sh: $DIST_DIR/SHA256SUMS"
