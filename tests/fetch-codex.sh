#!/usr/bin/env bash
# Install the real Codex app-server (@openai/codex, pinned) from the npm
# registry into a cache outside the repository, and print on stdout the
# absolute path of the native x86_64 musl `codex` binary it ships (not the
# node wrapper).
#
#   tests/fetch-codex.sh            # prints e.g. /root/.cache/appd-tests/codex-0.169.0/.../codex
#   CODEX_VERSION=... APPD_TEST_CACHE=/some/dir tests/fetch-codex.sh
#
# Idempotent: when the binary is already in the cache, nothing is fetched.
# Exit status: 0 ok, 1 the registry could not be reached / install failed,
# 2 installed but no native binary found, 3 missing tool (npm).
set -euo pipefail

CODEX_VERSION="${CODEX_VERSION:-0.169.0}"
CACHE_ROOT="${APPD_TEST_CACHE:-${HOME:-/tmp}/.cache/appd-tests}"
DEST="${CODEX_DEST:-$CACHE_ROOT/codex-$CODEX_VERSION}"

die() { local rc=$1; shift; printf 'fetch-codex: %s\n' "$*" >&2; exit "$rc"; }

case "$(uname -m)" in
    x86_64|amd64) TRIPLE=x86_64-unknown-linux-musl ;;
    aarch64|arm64) TRIPLE=aarch64-unknown-linux-musl ;;
    *) die 2 "unsupported architecture $(uname -m)" ;;
esac

# Print the native binary inside DEST, if any. The package ships platform
# binaries either inside @openai/codex/vendor/<triple>/codex/codex or in an
# optional-dependency package (@openai/codex-linux-x64, ...) with the same
# vendor/<triple>/ layout; search both, prefer the exact triple.
find_binary() {
    local nm="$DEST/node_modules" c
    [ -d "$nm" ] || return 1
    while IFS= read -r c; do
        if [ -f "$c" ] && [ -x "$c" ] && is_elf "$c"; then
            printf '%s\n' "$c"
            return 0
        fi
    done < <(find "$nm" -path "*/vendor/$TRIPLE/*" -type f -name codex 2>/dev/null | sort)
    return 1
}

is_elf() {
    local magic
    magic=$(head -c 4 "$1" 2>/dev/null | od -An -c | tr -d ' ')
    [ "$magic" = '177ELF' ]
}

if bin=$(find_binary); then
    printf '%s\n' "$(cd "$(dirname "$bin")" && pwd -P)/$(basename "$bin")"
    exit 0
fi

command -v npm >/dev/null 2>&1 || die 3 "npm not found (install nodejs/npm)"

mkdir -p "$DEST" || die 1 "cannot create $DEST"
log="$DEST/npm-install.log"
# A lone package.json keeps npm from walking up into some parent project.
[ -f "$DEST/package.json" ] || printf '{"name":"appd-test-codex","private":true}\n' >"$DEST/package.json"

if ! npm install --prefix "$DEST" --no-audit --no-fund \
        "@openai/codex@$CODEX_VERSION" >"$log" 2>&1; then
    reg=$(npm config get registry 2>/dev/null || echo '?')
    if grep -Eqi 'ENOTFOUND|ECONNREFUSED|ETIMEDOUT|EAI_AGAIN|ECONNRESET|network|fetch failed' "$log"; then
        die 1 "cannot reach the npm registry ($reg) to install @openai/codex@$CODEX_VERSION; see $log"
    fi
    die 1 "npm install of @openai/codex@$CODEX_VERSION failed (registry $reg); see $log"
fi

bin=$(find_binary) || die 2 "installed @openai/codex@$CODEX_VERSION into $DEST but found no native $TRIPLE codex binary"
printf '%s\n' "$(cd "$(dirname "$bin")" && pwd -P)/$(basename "$bin")"
