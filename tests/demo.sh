#!/usr/bin/env bash
# make demo: the whole story on loopback, printing every command and the JSON
# object appd prints, and failing (non-zero exit, "# demo FAILED: ...") as
# soon as a step does not do what it says:
#
#   publisher  appd release keygen; a test CA + localhost certificate
#              (tests/unit/certs.sh); tests/fixtures/release_server.py
#              serving a web root over HTTPS on 127.0.0.1; v1.0.0 signed
#              into it with appd release sign
#   host       appd bootstrap (fresh APPD_HOME, --ca-file) -> status ->
#              publish v2.0.0 -> appd update -> status -> appd proxy (one
#              request through the control socket) -> appd stop -> status
#
# The app-server published is the real Codex app-server (@openai/codex
# 0.169.0, the 294 MB native binary tests/fetch-codex.sh caches outside the
# repository) with settings {"profile":"codex"}: manifest --name codex,
# readiness codex-initialize, and `appd proxy` carries a real WebSocket
# upgrade + JSON-RPC `initialize` (a stdin/stdout client driven like an SSH
# session would drive it; appd relays raw bytes).  v2.0.0 is the same binary
# with a few bytes appended (another SHA-256; an ELF with trailing bytes still
# runs: `codex --version` is checked before publishing).  Chosen because it
# is fast enough: measured on a 2-core x86_64 box (other jobs running), over
# loopback TLS with the 294 MB artifact, bootstrap 10-14 s and update
# 11-14 s (both CPU-bound in appd: TLS + SHA-256), `release sign` ~2.5 s per
# release; the whole `make demo` 33-40 s over 3 runs (codex already cached;
# the first run also installs it from npm).  Only when the npm registry
# cannot be reached (or with APPD_DEMO_SERVER=testserver) does it publish
# the fixture server instead (build/fixtures/testserver behind a per-version
# wrapper script, as tests/integration/releases.py does; ~4 s) and say so;
# its proxy request is `argv`, whose answer names the release that runs.
#
# appd is copied into the temp dir first (as a client copies it to a host):
# a rebuild of build/appd while the demo runs cannot pull the binary from
# under the supervisor it execs.  Everything started here (release server,
# supervisor + server) is stopped on exit and the temp dir removed.
# Tools: bash, python3, openssl (certs.sh), coreutils.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
APPD_BUILT=${APPD:-$repo/build/appd}
FIXTURES=${APPD_FIXTURES:-$repo/build/fixtures}

t_start=${EPOCHREALTIME/./}
work=$(mktemp -d /tmp/appd-demo.XXXXXX) || { echo "# demo FAILED: mktemp" >&2; exit 1; }
srv_pid=
home_made=
cleanup() {
    local rc=$?
    # the release server first: an update download still running in the
    # supervisor then fails at once instead of delaying the stop
    if [ -n "$srv_pid" ]; then
        kill "$srv_pid" 2>/dev/null
        wait "$srv_pid" 2>/dev/null
    fi
    if [ -n "$home_made" ]; then
        "$APPD" stop --grace 5 >/dev/null 2>&1
    fi
    rm -rf "$work"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

fail() {
    echo
    echo "# demo FAILED: $*"
    exit 1
}
note() { echo; echo "# $*"; }
ms_since() { echo $(( (${EPOCHREALTIME/./} - $1) / 1000 )); }
secs() { printf '%d.%d s' $(($1 / 1000)) $(($1 % 1000 / 100)); }

APPD=$work/bin/appd
mkdir -p "$work/bin" "$work/certs" "$work/web" "$work/pub"
cp "$APPD_BUILT" "$APPD" || fail "cannot copy $APPD_BUILT"
export APPD_HOME=$work/home
export CODEX_HOME=$work/codex-home
mkdir -p "$CODEX_HOME"
# only --ca-file decides what bootstrap trusts
unset SSL_CERT_FILE SSL_CERT_DIR

out=$work/out.json
# step ARGS...: print "$ appd ARGS", run it, print its stdout (kept in $out),
# its exit status and how long it took.  Returns appd's exit status.
step() {
    echo
    echo "\$ appd $*"
    local t0=${EPOCHREALTIME/./} rc
    "$APPD" "$@" >"$out"
    rc=$?
    cat "$out"
    echo "(exit $rc, $(secs "$(ms_since "$t0")"))"
    return $rc
}
# expect WHAT PYTHON-EXPR: the expression about j (the JSON object appd
# printed last) must be true, else the demo fails saying WHAT.
expect() {
    python3 - "$out" "$2" <<'EOF' || fail "$1"
import json, sys
with open(sys.argv[1]) as f:
    lines = [l for l in f.read().splitlines() if l.strip()]
try:
    j = json.loads(lines[-1])
except (IndexError, ValueError):
    sys.exit("not one JSON object: %r" % lines)
try:
    ok = eval("(" + sys.argv[2] + ")", {"j": j})
except Exception as e:
    sys.exit("%s: %s" % (type(e).__name__, e))
sys.exit(0 if ok else 1)
EOF
}
# alive PID: the process exists and is not a zombie (an exited supervisor
# waits as a zombie until init, its parent after it detached, reaps it)
alive() {
    local st
    st=$(sed -n 's/^[0-9]* (.*) \([A-Za-z]\) .*/\1/p' "/proc/$1/stat" 2>/dev/null)
    [ -n "$st" ] && [ "$st" != Z ]
}
field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$out" "$1"; }

target=$(uname -m)-linux
expires=2099-12-31T00:00:00Z

# -- which app-server ----------------------------------------------------------
use_codex=0
fetch_rc=0
if [ "${APPD_DEMO_SERVER:-codex}" != testserver ]; then
    codex=$(bash "$here/fetch-codex.sh") && use_codex=1 || fetch_rc=$?
fi
if [ $use_codex = 1 ]; then
    note "publishing the real Codex app-server: $codex ($(stat -c %s "$codex") bytes)"
    name=codex
    bin=codex
    cp "$codex" "$work/pub/codex-1.0.0" && cp "$codex" "$work/pub/codex-2.0.0" &&
        printf '\n# appd demo release 2.0.0\n' >>"$work/pub/codex-2.0.0" ||
        fail "cannot copy $codex"
    v2ver=$("$work/pub/codex-2.0.0" --version 2>"$work/codex-version.err") ||
        fail "codex with appended bytes does not run: $(cat "$work/codex-version.err")"
    codex_ver=${v2ver##* }
    echo "# v2.0.0 = the same binary + $(( $(stat -c %s "$work/pub/codex-2.0.0") - $(stat -c %s "$codex") )) bytes; it still runs: $v2ver"
    settings='{"profile":"codex"}'
else
    if [ "${APPD_DEMO_SERVER:-codex}" = testserver ]; then
        note "APPD_DEMO_SERVER=testserver: publishing the fixture server"
    else
        note "tests/fetch-codex.sh failed (exit $fetch_rc, see above: 1 = npm registry unreachable): publishing the fixture server instead of Codex"
    fi
    [ -x "$FIXTURES/testserver" ] || fail "no $FIXTURES/testserver (make fixtures)"
    name=app-server
    bin=app-server
    for v in 1.0.0 2.0.0; do
        printf '#!/bin/sh\nexport APPD_TEST_RELEASE=%s\nexec %s "$@"\n# version %s\n' \
            "$v" "$FIXTURES/testserver" "$v" >"$work/pub/$name-$v"
        chmod 755 "$work/pub/$name-$v"
    done
    settings='{"server":{"command":["{current}/bin/app-server","--listen","{socket}"],"readiness":"connect"}}'
fi
mkdir -m 700 "$APPD_HOME" && home_made=1 &&
    printf '%s\n' "$settings" >"$APPD_HOME/settings.json" || fail "cannot make $APPD_HOME"
echo "# APPD_HOME=$APPD_HOME (fresh), settings.json: $settings"

# -- publisher: key, certificates, release server -------------------------------------
note "publisher: a signing key"
step release keygen --out "$work/pub/release.key" || fail "release keygen"
expect "keygen did not print status created and a public key" \
    'j["status"] == "created" and len(j["publicKey"]) == 130'
pubkey=$(field publicKey)

note "publisher: a test CA and a localhost certificate (openssl)"
echo "\$ sh tests/unit/certs.sh $work/certs"
sh "$repo/tests/unit/certs.sh" "$work/certs" || fail "tests/unit/certs.sh"
ls "$work/certs"/ca.pem "$work/certs"/localhost.pem "$work/certs"/localhost.key || fail "certs.sh made no localhost certificate"

note "publisher: the HTTPS release server on 127.0.0.1 (web root $work/web)"
echo "\$ python3 tests/fixtures/release_server.py --cert localhost.pem --key localhost.key --root $work/web &"
python3 "$repo/tests/fixtures/release_server.py" --cert "$work/certs/localhost.pem" \
    --key "$work/certs/localhost.key" --root "$work/web" --log "$work/release_server.log" \
    >"$work/release_server.out" 2>"$work/release_server.err" </dev/null &
srv_pid=$!
port=
for _ in $(seq 150); do
    port=$(sed -n 's/^PORT \([0-9][0-9]*\)$/\1/p' "$work/release_server.out")
    [ -n "$port" ] && break
    kill -0 "$srv_pid" 2>/dev/null || break
    sleep 0.1
done
[ -n "$port" ] || fail "release_server.py did not start: $(cat "$work/release_server.err")"
echo "PORT $port"
base=https://localhost:$port

# publish VERSION SERIAL: copy the artifact into the web root and sign it.
publish() {
    local v=$1 serial=$2 f=$name-$1
    cp "$work/pub/$f" "$work/web/$f" || fail "cannot copy $f into the web root"
    step release sign --key "$work/pub/release.key" --name "$name" --version "$v" \
        --serial "$serial" --expires "$expires" \
        --artifact "$target=$base/$f@$work/pub/$f" --out "$work/web" ||
        fail "release sign $v"
    expect "release sign $v did not sign $v for $target" \
        "j['status'] == 'signed' and j['version'] == '$v' and j['artifacts'] == ['$target']"
    echo "\$ cat $work/web/manifest.json"
    cat "$work/web/manifest.json"
    echo
}

note "publisher: release 1.0.0 for $target"
publish 1.0.0 1

# -- host: bootstrap ----------------------------------------------------------
note "host: bootstrap from the signed manifest (downloads, verifies, installs, starts)"
step bootstrap --manifest-url "$base/manifest.json" --public-key "$pubkey" \
    --ca-file "$work/certs/ca.pem" --fetch-timeout 60 || fail "bootstrap"
expect "bootstrap did not report bootstrapped 1.0.0 with a running server" \
    'j["status"] == "bootstrapped" and j["installedVersion"] == "1.0.0" and j["pid"] > 0
     and j["autoUpdateEnabled"] is True'
if [ $use_codex = 1 ]; then
    expect "bootstrap did not report the Codex app-server's version" \
        "j['appServerVersion'] == '$codex_ver' and j['managedVersion'] == '$codex_ver'"
fi
pid1=$(field pid)

step status || fail "status after bootstrap"
expect "status after bootstrap: not running 1.0.0 ready with pid $pid1" \
    "j['status'] == 'running' and j['ready'] is True and j['pid'] == $pid1
     and j['installedVersion'] == '1.0.0' and j['autoUpdateEnabled'] is True
     and j['supervisor']['fresh'] is True and 'lastResult' in j and 'nextCheckAt' in j"

# -- publish 2.0.0, update ------------------------------------------------------
note "publisher: release 2.0.0"
publish 2.0.0 2

note "host: update now (instead of waiting for the scheduled check)"
step update --fetch-timeout 60 || fail "update"
expect "update did not report updated 1.0.0 -> 2.0.0" \
    "j['status'] == 'updated' and j['installedVersion'] == '2.0.0'
     and j['previousVersion'] == '1.0.0' and j['pid'] != $pid1"
pid2=$(field pid)

step status || fail "status after update"
expect "status after update: not running 2.0.0 (pid $pid2, lastResult updated)" \
    "j['status'] == 'running' and j['ready'] is True and j['pid'] == $pid2
     and j['installedVersion'] == '2.0.0' and j['lastResult'] == 'updated'
     and j['server']['incarnation'] == 2"
sup=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["supervisor"]["pid"])' "$out")
exe=$(readlink "/proc/$pid2/exe")
echo "# server pid $pid2 runs $exe"
case $exe in
    */packages/releases/2.0.0-$target/bin/$bin) ;;
    *) [ $use_codex = 0 ] || fail "the server does not run the 2.0.0 release: $exe" ;;
esac
alive "$pid1" && fail "the 1.0.0 server (pid $pid1) still runs"

# -- proxy -----------------------------------------------------------------------------
if [ $use_codex = 1 ]; then
    note "host: appd proxy, driven like an SSH session: WebSocket upgrade + JSON-RPC initialize on stdin"
    echo "\$ appd proxy"
    python3 - "$APPD" "$repo/tests/integration" "$out" <<'EOF' || fail "appd proxy: no initialize reply"
# Speak to `appd proxy` over its stdin/stdout with the WebSocket client of
# tests/integration/codex_probe.py; print the upgrade's status line and the
# JSON-RPC reply (also into argv[3]); close the WebSocket, then stdin; exit
# with proxy's status.
import json, os, select, socket, struct, subprocess, sys, time
sys.path.insert(0, sys.argv[2])
import codex_probe as cp

p = subprocess.Popen([sys.argv[1], "proxy"], stdin=subprocess.PIPE,
                     stdout=subprocess.PIPE, bufsize=0)

class Pipes:
    timeout = None
    def settimeout(self, t): self.timeout = t
    def sendall(self, b): p.stdin.write(b)
    def recv(self, n):
        if not select.select([p.stdout], [], [], self.timeout)[0]:
            raise socket.timeout()
        return os.read(p.stdout.fileno(), n)

conn = cp._Conn(Pipes(), time.monotonic() + 20)
try:
    status, _ = cp.handshake(conn)
    print("<- " + status, flush=True)
    req = {"id": 1, "method": "initialize", "params": {"clientInfo": cp.DEFAULT_CLIENT_INFO}}
    raw = json.dumps(req, separators=(",", ":"))
    print("-> " + raw, flush=True)
    conn.send(cp._frame(0x1, raw.encode()))
    while True:
        msg = json.loads(cp._read_message(conn))
        if msg.get("id") == 1:
            break
    print("<- " + json.dumps(msg, separators=(",", ":")), flush=True)
    conn.send(cp._frame(0x8, struct.pack("!H", 1000)))
    print("-> WebSocket close (1000)", flush=True)
    try:
        while True:     # until the server's close frame (or EOF)
            print("<- " + cp._read_message(conn).decode(errors="replace"), flush=True)
    except cp.ProbeError as e:
        print("<- " + str(e), flush=True)
finally:
    p.stdin.close()
    try:
        rc = p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        sys.exit("appd proxy did not exit 10 s after its stdin closed")
with open(sys.argv[3], "w") as f:
    f.write(json.dumps(msg) + "\n")
sys.exit(rc if "result" in msg else 1)
EOF
    rc=$?
    echo "(exit $rc)"
    expect "the initialize reply carries no Codex userAgent" \
        "'/$codex_ver ' in j['result']['userAgent']"
else
    note "host: appd proxy, one request of the fixture server's protocol: argv"
    echo "\$ printf 'argv\\n' | appd proxy"
    printf 'argv\n' | "$APPD" proxy >"$out"
    rc=$?
    # the answer carries the server's whole environment: show the part that
    # tells the release (and nothing of the caller's environment)
    python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(json.dumps({"argv": j["argv"], "pid": j["pid"], "env": {"APPD_TEST_RELEASE": j["env"].get("APPD_TEST_RELEASE")}, "...": "(env trimmed)"}))' "$out" 2>/dev/null || cat "$out"
    echo "(exit $rc)"
    [ $rc = 0 ] || fail "appd proxy exited $rc"
    expect "the server answering through the proxy is not release 2.0.0 (pid $pid2)" \
        "j['env']['APPD_TEST_RELEASE'] == '2.0.0' and j['pid'] == $pid2"
fi

# -- stop ------------------------------------------------------------------------------
note "host: stop"
step stop || fail "stop"
expect "stop did not report stopped" 'j["status"] == "stopped"'
for p in "$pid2" "$sup"; do
    alive "$p" && fail "pid $p still runs after stop"
done
step status || fail "status after stop"
expect "status after stop is not stopped" 'j["status"] == "stopped"'

echo
echo "# demo finished: every step did what it says ($(secs "$(ms_since "$t_start")"))"
