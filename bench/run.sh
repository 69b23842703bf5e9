#!/usr/bin/env bash
# bench/run.sh -- lifecycle benchmark of build/appd (size, idle RSS, status and
# stop latency), then appd vs `codex app-server daemon` side by side on the real
# codex 0.169.0 (bench/bench_codex.py), then the proxy (bench/bench_proxy.py), then the
# updater (bench/bench_update.py). Prints a markdown report on stdout;
# progress goes to stderr.
#
#   make bench                       # the normal entry point (sets APPD, APPD_FIXTURES)
#   APPD=/abs/build/appd APPD_FIXTURES=/abs/build/fixtures bench/run.sh
#
# Then each target's binary size from dist/ (bench/bench_size.py; `make bench`
# runs `make dist` first).
# Then appd's supervisor next to s6-supervise and runsv (bench/bench_supervisor.py:
# crash -> accepting, start -> ready, idle system calls, memory; BENCH_SUPERVISOR=0
# skips it).
# Knobs (env): BENCH_STATUS_RUNS (default 300), BENCH_CYCLES (default 40),
#              BENCH_IDLE_SECONDS (default 2); BENCH_CODEX=0 skips the codex
#              side-by-side (its own knobs: see bench/bench_codex.py);
#              BENCH_PROXY=0 skips the proxy bench (bench/bench_proxy.py: 1 GiB
#              through appd proxy vs socat vs codex app-server proxy);
#              BENCH_UPDATE=0 skips the updater bench (bench/bench_update.py:
#              idle/full update checks against a local HTTPS release server,
#              bytes on the wire, supervisor VmHWM over a 20 MiB update; its
#              own knobs BENCH_UPDATE_RUNS, BENCH_UPDATE_MIB, BENCH_UPDATE_BIG).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"

: "${APPD:=$root/build/appd}"
: "${APPD_FIXTURES:=$root/build/fixtures}"
export APPD APPD_FIXTURES

for f in "$APPD" "$APPD_FIXTURES/testserver"; do
    if [ ! -x "$f" ]; then
        echo "bench: missing $f (run: make && make fixtures)" >&2
        exit 1
    fi
done

# /usr/bin/python3 on purpose (stdlib only; a pyenv python3 may come first on PATH).
rc=0
/usr/bin/python3 "$here/bench_lifecycle.py" || rc=$?
if [ -d "$root/dist" ]; then
    echo
    /usr/bin/python3 "$here/bench_size.py" "$root/dist" || rc=$?
fi
if [ "${BENCH_SUPERVISOR:-1}" != 0 ]; then
    echo
    /usr/bin/python3 "$here/bench_supervisor.py" || rc=$?
fi
if [ "${BENCH_CODEX:-1}" != 0 ]; then
    echo
    /usr/bin/python3 "$here/bench_codex.py" || rc=$?
fi
if [ "${BENCH_PROXY:-1}" != 0 ]; then
    echo
    /usr/bin/python3 "$here/bench_proxy.py" || rc=$?
fi
if [ "${BENCH_UPDATE:-1}" != 0 ]; then
    echo
    /usr/bin/python3 "$here/bench_update.py" || rc=$?
fi
exit "$rc"
