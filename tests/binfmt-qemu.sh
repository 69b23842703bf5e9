#!/bin/sh
# binfmt-qemu.sh -- let this Linux host execute TARGET's static binaries.
#
#   tests/binfmt-qemu.sh TARGET
#
# Native targets (the host's own, i386 on x86_64) need nothing. Others run
# under qemu-user-static (installed by `make deps`) through binfmt_misc, so
# that appd can re-execute itself: mount binfmt_misc if needed and register
# Debian's /usr/lib/binfmt.d/qemu-<arch>.conf entry. Needs root; registering
# is idempotent and not persistent across reboots.
set -eu
[ $# -eq 1 ] || { echo "usage: binfmt-qemu.sh TARGET" >&2; exit 2; }
case "$1" in
x86_64-linux|i386-linux) exit 0 ;;
aarch64-linux) q=aarch64 ;;
armv7-linux) q=arm ;;
riscv64-linux) q=riscv64 ;;
mipsel-linux) q=mipsel ;;
mips64el-linux) q=mips64el ;;
mips-linux) q=mips ;;
*) echo "binfmt-qemu: unknown target $1" >&2; exit 2 ;;
esac
if [ "$(uname -m)" != x86_64 ]; then
    echo "binfmt-qemu: the host is $(uname -m), not x86_64; qemu set-up skipped" >&2
    exit 0
fi
bm=/proc/sys/fs/binfmt_misc
conf=/usr/lib/binfmt.d/qemu-$q.conf
[ -f "$conf" ] || { echo "binfmt-qemu: $conf missing (run 'make deps')" >&2; exit 1; }
if [ ! -e "$bm/register" ]; then
    mount -t binfmt_misc binfmt_misc "$bm" ||
        { echo "binfmt-qemu: cannot mount binfmt_misc (not root?)" >&2; exit 1; }
fi
if [ ! -e "$bm/qemu-$q" ]; then
    grep -v '^#' "$conf" | grep . > "$bm/register" ||
        { echo "binfmt-qemu: registering $conf failed" >&2; exit 1; }
fi
grep -q '^enabled' "$bm/qemu-$q" ||
    { echo "binfmt-qemu: qemu-$q is registered but disabled" >&2; exit 1; }
