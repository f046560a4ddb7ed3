#!/bin/sh
# Install what the static musl builds and the aarch64 tests need on a Debian/Ubuntu host.
# Safe to re-run: it only installs what is missing. No Docker involved.
set -eu

TARGETS="x86_64-unknown-linux-musl aarch64-unknown-linux-musl"
# musl-tools: x86_64-linux-musl-gcc for ring's C code on x86_64.
# gcc-aarch64-linux-gnu + libc6-dev-arm64-cross: C cross compiler and headers for ring on aarch64.
# qemu-user-static: runs the aarch64 test binaries on an x86_64 host.
# python3-venv: the signer differential test builds a venv with the official Huawei SDK.
# shellcheck: lints the init scripts under packaging/.
PACKAGES="musl-tools gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static python3-venv shellcheck file"

missing=""
for pkg in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $pkg"
    fi
done

if [ -n "$missing" ]; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    echo "cross/setup.sh: installing$missing"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
fi

installed_targets=$(rustup target list --installed)
for t in $TARGETS; do
    if ! printf '%s\n' "$installed_targets" | grep -qx "$t"; then
        echo "cross/setup.sh: adding rustup target $t"
        rustup target add "$t"
    fi
done
