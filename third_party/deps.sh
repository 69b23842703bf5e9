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
PKGS="musl-tools libjsmn-dev libcmocka-dev python3-pytest socat openssl
xz-utils gcc libc6-dev make apt ca-certificates strace procps s6 runit"

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

missing=
for p in $PKGS; do
    installed "$p" || missing="$missing $p"
done
# The integration tests install a package from the npm registry.
if ! command -v npm >/dev/null 2>&1; then
    missing="$missing npm"
fi

if [ -z "$missing" ]; then
    [ -n "${DEPS_QUIET:-}" ] || echo "deps: all present"
    exit 0
fi

echo "deps: missing:$missing"
export DEBIAN_FRONTEND=noninteractive
run $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
# shellcheck disable=SC2086
run $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    --no-install-recommends $missing
echo "deps: done"
