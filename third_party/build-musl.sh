#!/bin/sh
# build-musl.sh -- build a static musl libc and its gcc wrapper for a Linux
# target Debian has no musl-dev package for (riscv64, big-endian mips).
#
#   third_party/build-musl.sh TARGET GNU_PREFIX DEST
#
# TARGET is appd's target name (riscv64-linux), GNU_PREFIX the Debian GNU
# cross compiler's prefix (riscv64-linux-gnu-, from gcc-riscv64-linux-gnu,
# installed by `make deps`). The source is Debian's musl 1.2.3 source package,
# fetched and checked by fetch-debsrc.sh; nothing is committed. On success
# DEST/bin/musl-gcc drives the cross compiler against DEST/include and
# DEST/lib, the same way Debian's aarch64-linux-musl-gcc does. About 30 s.
set -eu

[ $# -eq 3 ] || { echo "usage: build-musl.sh TARGET GNU_PREFIX DEST" >&2; exit 2; }
target=$1 prefix=$2 dest=$3
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)

die() { printf 'build-musl: error: %s\n' "$*" >&2; exit 1; }
command -v "${prefix}gcc" >/dev/null 2>&1 ||
    die "${prefix}gcc not found (run 'make deps')"

src=$(sh "$here/fetch-debsrc.sh" musl "$repo/.cache/musl")
work=$(mktemp -d "${TMPDIR:-/tmp}/build-musl.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'rm -rf "$work" "$dest"; exit 130' INT TERM HUP
cp -R "$src/." "$work/"
rm -rf "$dest"
echo "build-musl: musl 1.2.3 for $target with ${prefix}gcc into $dest" >&2
(
    cd "$work"
    ./configure --target="${prefix%-}" CROSS_COMPILE="$prefix" \
        --prefix="$dest" --disable-shared --enable-wrapper=gcc >/dev/null
    make -j"$(nproc 2>/dev/null || echo 2)" >/dev/null
    make install >/dev/null
) || { rm -rf "$dest"; die "musl build for $target failed"; }
[ -x "$dest/bin/musl-gcc" ] || { rm -rf "$dest"; die "no musl-gcc wrapper was installed"; }
echo "build-musl: done: $dest/bin/musl-gcc" >&2
