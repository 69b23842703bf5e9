#!/bin/sh
# fetch-debsrc.sh -- obtain a pinned upstream tarball from Debian's source
# package, verify it, and unpack it into an ignored cache. No third-party
# source is committed.
#
#   third_party/fetch-debsrc.sh NAME [DEST]
#
# NAME is one of the pins below (bearssl, musl). DEST defaults to
# <repo>/.cache/NAME. On success DEST/src holds the pristine upstream tree and
# the script prints its path. Re-running is a no-op once DEST/src is unpacked
# and verified.
#
# The source package is retrieved with apt's own machinery (`apt-get source
# --download-only`) through a temporary sources list derived from the system's
# configured Debian `deb` sources rewritten to `deb-src`. Nothing under /etc or
# /var/lib/apt is modified: the lists, the caches and the sources all live in
# a temporary directory that is removed on exit.
set -eu

# ---- pins: source package, Debian version, orig tarball, its SHA-256, and a
# file whose presence proves the layout -----------------------------------------
case "${1:-}" in
bearssl)
    PKG=bearssl
    VERSION=0.6+dfsg.1-3
    ORIG=bearssl_0.6+dfsg.1.orig.tar.xz
    ORIG_SHA256=102a625bd8f6155260867a50c508df8d8c3f796985dd744df1a68e5cd1a79004
    PROOF=inc/bearssl.h ;;
musl)
    PKG=musl
    VERSION=1.2.3-1
    ORIG=musl_1.2.3.orig.tar.gz
    ORIG_SHA256=7d5b0b6062521e4627e099e4c9dc8248d32a30285e959b7eecaa780cf8cfd4a4
    PROOF=include/stdio.h ;;
*)
    echo "usage: fetch-debsrc.sh bearssl|musl [DEST]" >&2; exit 2 ;;
esac
shift

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
dest=${1:-$repo/.cache/$PKG}
stamp=$dest/src/.appd-verified

die() { printf 'fetch-debsrc: error: %s\n' "$*" >&2; exit 1; }
log() { printf 'fetch-debsrc: %s\n' "$*" >&2; }

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# ---- fast path: already unpacked and verified -------------------------------
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$ORIG_SHA256" ] &&
   [ -f "$dest/src/$PROOF" ]; then
    printf '%s\n' "$dest/src"
    exit 0
fi

for tool in apt-get sha256sum tar xz; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found (run 'make deps')"
done

mkdir -p "$dest/dl"
dest=$(cd "$dest" && pwd)
dl=$dest/dl

# ---- download (skipped if a verified tarball is already cached) -------------
if [ -f "$dl/$ORIG" ] && [ "$(sha256_of "$dl/$ORIG")" = "$ORIG_SHA256" ]; then
    log "using cached $dl/$ORIG"
else
    rm -f "$dl/$ORIG"
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/fetch-debsrc.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    trap 'exit 130' INT TERM HUP
    # apt downloads as the unprivileged _apt user; let it traverse $tmp.
    chmod 0755 "$tmp"
    mkdir -p "$tmp/parts" "$tmp/lists/partial" "$tmp/cache/archives/partial" \
             "$tmp/out"

    # Derive deb-src entries from every configured deb source.
    # deb822 *.sources: rewrite the Types field to deb-src.
    # one-line *.list / sources.list: turn 'deb ' lines into 'deb-src ' lines.
    n=0
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        n=$((n + 1))
        awk '
            /^[Tt]ypes:/ {
                if ($0 ~ /(^|[ \t:])deb([ \t]|$)/ || $0 ~ /deb-src/) { print "Types: deb-src"; next }
            }
            { print }
        ' "$f" >"$tmp/parts/$n-$(basename "$f")"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        n=$((n + 1))
        sed -n 's/^[[:space:]]*deb\([[:space:]]\)/deb-src\1/p' "$f" \
            >"$tmp/parts/$n-$(basename "$f")"
    done
    grep -q -s -E '^(Types: deb-src|deb-src[[:space:]])' "$tmp"/parts/* ||
        die "no Debian 'deb' sources found in /etc/apt/sources.list{,.d/}"

    # Everything apt touches points into $tmp. pkgcache/srcpkgcache are
    # disabled so the system's binary caches are neither read nor rewritten.
    set -- \
        -o Dir::Etc::SourceList=/dev/null \
        -o Dir::Etc::SourceParts="$tmp/parts" \
        -o Dir::State::Lists="$tmp/lists" \
        -o Dir::Cache="$tmp/cache" \
        -o Dir::Cache::pkgcache= \
        -o Dir::Cache::srcpkgcache= \
        -o APT::Get::List-Cleanup=false \
        -o Acquire::Retries=3

    log "apt-get update (temporary deb-src lists in $tmp)"
    apt-get -q "$@" update >&2 || die "apt-get update of the temporary deb-src lists failed"

    chown _apt "$tmp/out" 2>/dev/null || true
    log "apt-get source --download-only $PKG=$VERSION"
    if ! (cd "$tmp/out" && apt-get -q -y "$@" source --download-only "$PKG=$VERSION" >&2); then
        avail=$(apt-cache "$@" showsrc "$PKG" 2>/dev/null | sed -n 's/^Version: //p' | tr '\n' ' ')
        die "source package $PKG=$VERSION is not available from the configured suites (available: ${avail:-none})"
    fi
    [ -f "$tmp/out/$ORIG" ] || die "apt-get source did not produce $ORIG"
    got=$(sha256_of "$tmp/out/$ORIG")
    if [ "$got" != "$ORIG_SHA256" ]; then
        die "SHA-256 MISMATCH for $ORIG
    expected $ORIG_SHA256
    got      $got"
    fi
    # Keep the .dsc and the Debian packaging tarball alongside, for reference.
    for f in "$tmp"/out/*; do
        cp "$f" "$dl/$(basename "$f").part" && mv "$dl/$(basename "$f").part" "$dl/$(basename "$f")"
    done
fi

# ---- verify again and unpack --------------------------------------------------
got=$(sha256_of "$dl/$ORIG")
[ "$got" = "$ORIG_SHA256" ] || die "SHA-256 MISMATCH for $dl/$ORIG (got $got)"

rm -rf "$dest/src" "$dest/src.tmp"
mkdir -p "$dest/src.tmp"
tar -xf "$dl/$ORIG" -C "$dest/src.tmp" --strip-components=1 --no-same-owner
[ -f "$dest/src.tmp/$PROOF" ] || die "unexpected tarball layout (no $PROOF)"
printf '%s\n' "$ORIG_SHA256" >"$dest/src.tmp/.appd-verified"
mv "$dest/src.tmp" "$dest/src"
log "unpacked $PKG $VERSION into $dest/src"
printf '%s\n' "$dest/src"
