#!/usr/bin/env bash
# make demo: the main job on real input.  appd manages the real Codex
# app-server (@openai/codex 0.169.0 from the npm registry, cached outside
# the repository): start -> status -> version -> restart -> stop, printing
# each JSON object appd prints.  Falls back to the fixture server, and says
# so, only when the registry cannot be reached.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
APPD=${APPD:-$here/../build/appd}
FIXTURES=${APPD_FIXTURES:-$here/../build/fixtures}

work=$(mktemp -d /tmp/appd-demo.XXXXXX)
export APPD_HOME=$work/home
export CODEX_HOME=$work/codex-home
mkdir -p "$CODEX_HOME"
cleanup() { "$APPD" stop >/dev/null 2>&1; rm -rf "$work"; }
trap cleanup EXIT

if codex=$(bash "$here/fetch-codex.sh"); then
    echo "# managing the real Codex app-server: $codex"
    server=("$codex" app-server --listen 'unix://{socket}')
else
    echo "# the npm registry cannot be reached: using the fixture server instead"
    server=("$FIXTURES/testserver" --listen '{socket}')
fi

step() {
    echo
    echo "\$ appd $*"
    "$APPD" "$@"
    local rc=$?
    echo "(exit $rc)"
    return $rc
}

step status &&
step start --timeout 60 -- "${server[@]}" &&
step status &&
step version &&
step restart --timeout 60 &&
step status &&
step stop &&
step status
rc=$?
echo
if [ $rc -eq 0 ]; then echo "# demo finished: every step succeeded"; else echo "# demo FAILED (exit $rc)"; fi
exit $rc
