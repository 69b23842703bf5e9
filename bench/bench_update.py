#!/usr/bin/python3
"""Updater benchmark of build/appd (stdlib only; ~1 minute).

Everything runs on loopback against tests/fixtures/release_server.py (HTTPS,
certificates from tests/unit/certs.sh, releases signed with `appd release
sign`), with the real static binary, in a fresh APPD_HOME under /tmp:

  1. idle update check (nothing new: the server answers 304 to If-None-Match)
     - wall time of `appd update` (a) with the supervisor running (the check is
       delegated to it: state/update-request.json + SIGUSR1, the CLI waits for
       packages/updater.json) and (b) with no supervisor (the CLI checks
       itself); interleaved, round by round, with a full check (the manifest
       was re-signed with a higher serial, same version: 200 manifest + 200
       signature, result noUpdate) and with Python's own TLS client doing the
       same requests in-process (the floor set by the server and TLS);
     - bytes on the wire of one check in each direction: the manifest URL is
       pointed at a TCP-counting relay (this script, 127.0.0.1, host name
       `localhost` so the certificate still matches) that also splits the
       stream into TLS records and counts handshakes (ClientHello);
       requests, statuses and body bytes come from the server's log.
  2. supervisor peak RSS (VmHWM) idle, after idle checks, and after each of
     3 updates that download and install a 20 MiB release (a wrapper script
     that execs build/fixtures/testserver, padded with random bytes after
     `exec`; the manifest through the relay, the artifact straight from the
     server); wall time of those updates, their phases (supervisor.log and
     the server's log), the download throughput and the supervisor's CPU
     time; then one more such update whose artifact server only offers
     ECDHE-ECDSA-CHACHA20-POLY1305 (the server otherwise picks
     AES-256-GCM, which appd runs in portable constant-time code).
  3. size of build/appd.

Writes a markdown report on stdout; progress and errors go to stderr.
Env: APPD, APPD_FIXTURES (set by `make bench`), BENCH_UPDATE_RUNS (timed
rounds, default 25, min 20), BENCH_UPDATE_MIB (artifact size, default 20),
BENCH_UPDATE_BIG (large updates, default 3).
"""

import hashlib
import http.client
import json
import os
import platform
import re
import selectors
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from benchlib import BenchError, cpu_model, log, loadavg, pct, proc_status

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APPD = os.path.abspath(os.environ.get("APPD", os.path.join(ROOT, "build", "appd")))
FIXTURES = os.path.abspath(os.environ.get("APPD_FIXTURES", os.path.join(ROOT, "build", "fixtures")))
TESTSERVER = os.path.join(FIXTURES, "testserver")
CERTS_SH = os.path.join(ROOT, "tests", "unit", "certs.sh")
RELEASE_SERVER = os.path.join(ROOT, "tests", "fixtures", "release_server.py")

RUNS = max(20, int(os.environ.get("BENCH_UPDATE_RUNS", "25")))
BIG_MIB = max(1, int(os.environ.get("BENCH_UPDATE_MIB", "20")))
BIG_RUNS = max(1, int(os.environ.get("BENCH_UPDATE_BIG", "3")))
WARMUP = 3
WIRE_RUNS = 3           # checks counted through the relay, per mode and kind
CMD_TIMEOUT = 60        # seconds, per appd invocation
FETCH_TIMEOUT = "8"     # --fetch-timeout of every `appd update`

TARGET = platform.machine() + "-linux"
FUTURE = "2099-12-31T00:00:00Z"

# targets
SIZE_TARGET = 300 * 1000        # bytes ("≤ 300 KB")

SUITES = {0xC02F: "ECDHE_RSA_WITH_AES_128_GCM_SHA256",
          0xC030: "ECDHE_RSA_WITH_AES_256_GCM_SHA384",
          0xCCA8: "ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
          0xC02B: "ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
          0xC02C: "ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
          0xCCA9: "ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
          0xC023: "ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
          0xC024: "ECDHE_ECDSA_WITH_AES_256_CBC_SHA384"}
TLS_TYPES = {20: "change_cipher_spec", 21: "alert", 22: "handshake", 23: "application_data"}
HS_TYPES = {1: "ClientHello", 2: "ServerHello", 4: "NewSessionTicket", 11: "Certificate",
            12: "ServerKeyExchange", 13: "CertificateRequest", 14: "ServerHelloDone",
            15: "CertificateVerify", 16: "ClientKeyExchange", 20: "Finished"}


# ---------------------------------------------------------------- helpers

def start_ticks(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def cpu_ms(pid):
    """utime + stime of pid (ms)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000.0 / os.sysconf("SC_CLK_TCK")


def iso_ms(s):
    """'2026-11-21T03:14:03.494Z' -> unix seconds."""
    import datetime
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return False


def kib(b):
    return "%d KiB" % round(b / 1024.0)


def fmt_ms(v):
    return "%.1f ms" % v


def verdict(ok):
    return "PASS" if ok else "**MISS**"


# ---------------------------------------------------------------- the relay

class TlsStream:
    """Splits one direction of a TLS connection into records: counts records
    and bytes per content type and names the plaintext handshake messages
    (those before this direction's ChangeCipherSpec)."""

    def __init__(self):
        self.buf = b""
        self.bytes = 0
        self.types = {}         # content type name -> [records, bytes incl. 5-byte header]
        self.hs = []            # plaintext handshake message names, in order
        self.times = []         # (record or handshake message name, arrival time)
        self.suite = None       # cipher suite chosen in a ServerHello
        self.offered = []       # cipher suites a ClientHello offers, in its order
        self.encrypted = False

    def feed(self, data, t):
        self.bytes += len(data)
        self.buf += data
        while len(self.buf) >= 5:
            ctype, n = self.buf[0], int.from_bytes(self.buf[3:5], "big")
            if len(self.buf) < 5 + n:
                break
            body, self.buf = self.buf[5:5 + n], self.buf[5 + n:]
            name = TLS_TYPES.get(ctype, "type%d" % ctype)
            cnt = self.types.setdefault(name, [0, 0])
            cnt[0] += 1
            cnt[1] += 5 + n
            if ctype == 20:
                self.encrypted = True
                self.times.append((name, t))
            elif ctype == 22:
                if self.encrypted:
                    self.hs.append("Finished(encrypted)")
                    self.times.append(("Finished(encrypted)", t))
                else:
                    i = 0
                    while i + 4 <= len(body):
                        self.hs.append(HS_TYPES.get(body[i], "hs%d" % body[i]))
                        self.times.append((self.hs[-1], t))
                        if body[i] == 1 and i + 4 + 35 <= len(body):     # ClientHello
                            j = i + 4 + 34
                            j += 1 + body[j]                            # session id
                            k = int.from_bytes(body[j:j + 2], "big")
                            self.offered = [int.from_bytes(body[x:x + 2], "big")
                                            for x in range(j + 2, j + 2 + k, 2)]
                        if body[i] == 2 and i + 4 + 35 <= len(body):     # ServerHello
                            j = i + 4 + 34
                            j += 1 + body[j]                            # session id
                            self.suite = int.from_bytes(body[j:j + 2], "big")
                        i += 4 + int.from_bytes(body[i + 1:i + 4], "big")
            else:
                self.times.append((name, t))

    def at(self, name):
        """Arrival time of the first record or message called name."""
        for n, t in self.times:
            if n == name:
                return t
        return None


class Relay:
    """127.0.0.1:<port> -> 127.0.0.1:<upstream>, one thread, counting every
    connection's payload bytes per direction (TCP payload: IP/TCP headers
    are not counted)."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.lsock.setblocking(False)
        self.port = self.lsock.getsockname()[1]
        self.conns = []         # dicts, in accept order
        self.lock = threading.Lock()
        self.stopping = False
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.lsock, selectors.EVENT_READ, None)
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self.stopping:
            for key, _ in self.sel.select(timeout=0.1):
                if key.data is None:
                    self._accept()
                else:
                    self._pump(*key.data)

    def _accept(self):
        try:
            c, _ = self.lsock.accept()
        except OSError:
            return
        u = socket.create_connection(("127.0.0.1", self.upstream))
        for s in (c, u):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        rec = {"t_open": time.time(), "t_close": None, "up": TlsStream(),
               "down": TlsStream(), "eof": set(), "socks": (c, u)}
        with self.lock:
            self.conns.append(rec)
        self.sel.register(c, selectors.EVENT_READ, (rec, "up", c, u))
        self.sel.register(u, selectors.EVENT_READ, (rec, "down", u, c))

    def _pump(self, rec, direction, src, dst):
        try:
            data = src.recv(262144)
        except OSError:
            data = b""
        if data:
            rec[direction].feed(data, time.monotonic())
            try:
                dst.sendall(data)
            except OSError:
                pass
            return
        self.sel.unregister(src)
        rec["eof"].add(direction)
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        if len(rec["eof"]) == 2:
            for s in rec["socks"]:
                s.close()
            rec["t_close"] = time.time()

    def count(self):
        with self.lock:
            return len(self.conns)

    def since(self, n, timeout=2.0):
        """The connections accepted after the first n, once all are closed."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                new = self.conns[n:]
            if all(c["t_close"] for c in new) or time.monotonic() > deadline:
                return new
            time.sleep(0.005)

    def stop(self):
        self.stopping = True
        self.thread.join(2)
        self.lsock.close()


# ---------------------------------------------------------------- the server

class ReleaseServer:
    """tests/fixtures/release_server.py as is; with `ciphers`, the same
    script run with its TLS 1.2 cipher list restricted to that OpenSSL
    cipher string (set_ciphers after load_cert_chain)."""

    def __init__(self, root, cert, key, logpath, ciphers=None):
        self.logpath = logpath
        args = ["--cert", cert, "--key", key, "--root", root, "--log", logpath]
        if ciphers:
            code = ("import ssl, sys\n"
                    "sys.path.insert(0, %r)\n"
                    "import release_server\n"
                    "load = ssl.SSLContext.load_cert_chain\n"
                    "def load_and_restrict(self, *a, **k):\n"
                    "    load(self, *a, **k)\n"
                    "    self.set_ciphers(%r)\n"
                    "ssl.SSLContext.load_cert_chain = load_and_restrict\n"
                    "sys.argv[0] = %r\n"
                    "release_server.tls_http.main(lambda addr, ctx, logf, a: "
                    "release_server.Server(addr, ctx, a.root, logf), extra_args=('--root',))\n"
                    % (os.path.dirname(RELEASE_SERVER), ciphers, RELEASE_SERVER))
            argv = ["/usr/bin/python3", "-c", code] + args
        else:
            argv = ["/usr/bin/python3", RELEASE_SERVER] + args
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     stdin=subprocess.DEVNULL)
        line = self.proc.stdout.readline()
        m = re.match(rb"PORT (\d+)\n", line)
        if not m:
            self.stop()
            raise BenchError("release_server did not start: %r" % line)
        self.port = int(m.group(1))

    def url(self, path):
        return "https://localhost:%d/%s" % (self.port, path)

    def log(self):
        try:
            with open(self.logpath) as f:
                return [json.loads(l) for l in f if l.strip()]
        except FileNotFoundError:
            return []

    def responses(self, start):
        """(number of log lines, responses among lines[start:])."""
        lines = self.log()
        return len(lines), [l for l in lines[start:] if l["event"] == "response"]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()


# ---------------------------------------------------------------- the run

class Bench:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="aub.", dir="/tmp")   # short: sun_path
        os.chmod(self.dir, 0o700)
        self.home = os.path.join(self.dir, "h")
        self.web = os.path.join(self.dir, "web")
        self.certs = os.path.join(self.dir, "certs")
        for d in (self.web, self.certs):
            os.makedirs(d)
        self.env = dict(os.environ, APPD_HOME=self.home)
        for k in ("SSL_CERT_FILE", "SSL_CERT_DIR"):     # only --ca-file is trusted
            self.env.pop(k, None)
        # one copy of the binary for the whole run (the tree is shared: a
        # rebuild of build/appd mid-run must not change what is measured)
        self.bin = os.path.join(self.dir, "appd")
        shutil.copy2(APPD, self.bin)
        self.bin_size = os.path.getsize(self.bin)
        with open(self.bin, "rb") as f:
            self.bin_sha = hashlib.sha256(f.read()).hexdigest()
        self.bin_mtime = time.strftime("%Y-%m-%d %H:%M:%S UTC",
                                       time.gmtime(os.path.getmtime(APPD)))
        self.srv = None
        self.cc = None
        self.relay = None
        self.serial = 0
        self.load_before = loadavg()
        self.rows = []          # (metric, value, target, verdict, how)
        self.timing = {}        # mode -> series -> samples
        self.wire = {}          # (mode, kind) -> list of per-check records
        self.mem = []           # (moment, status dict)
        self.big = []           # per large update: dict
        self.notes = []

    # -- plumbing ------------------------------------------------------------
    def appd(self, *args, env=None):
        t0 = time.perf_counter()
        cp = subprocess.run([self.bin] + list(args), env=env or self.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            timeout=CMD_TIMEOUT)
        ms = (time.perf_counter() - t0) * 1000.0
        lines = [l for l in cp.stdout.decode(errors="replace").splitlines() if l.strip()]
        try:
            obj = json.loads(lines[-1]) if lines else None
        except ValueError:
            obj = None
        return ms, cp, obj

    def must(self, what, cp, obj, statuses):
        if cp.returncode != 0 or not obj or obj.get("status") not in statuses:
            raise BenchError("%s: exit %d, stdout %r, stderr %r"
                             % (what, cp.returncode, cp.stdout[-400:], cp.stderr[-400:]))

    def update(self, want="noUpdate"):
        ms, cp, obj = self.appd("update", "--fetch-timeout", FETCH_TIMEOUT)
        self.must("appd update", cp, obj, (want,))
        return ms

    def settings(self, edit=None):
        path = os.path.join(self.home, "settings.json")
        with open(path) as f:
            s = json.load(f)
        if edit:
            edit(s)
            with open(path + ".tmp", "w") as f:
                json.dump(s, f)
            os.rename(path + ".tmp", path)
        return s

    def supervisor_pid(self):
        try:
            with open(os.path.join(self.home, "state", "supervisor.pid")) as f:
                pid = json.load(f)["pid"]
            return pid if alive(pid) else None
        except (OSError, ValueError, KeyError):
            return None

    def updater_state(self):
        with open(os.path.join(self.home, "packages", "updater.json")) as f:
            return json.load(f)

    def sign(self, version, fname, srv=None):
        """`appd release sign` (serial + 1), the artifact served by srv
        (default: the main server); its wall time in ms."""
        self.serial += 1
        local = os.path.join(self.web, fname)
        url = (srv or self.srv).url(fname)
        ms, cp, obj = self.appd("release", "sign", "--key", self.key, "--version", version,
                                "--serial", str(self.serial), "--expires", FUTURE,
                                "--artifact", "%s=%s@%s" % (TARGET, url, local),
                                "--out", self.web)
        self.must("appd release sign", cp, obj, ("signed",))
        return ms

    def publish(self, version, pad=0, srv=None):
        fname = "app-server-%s" % version
        data = ("#!/bin/sh\nexport APPD_TEST_RELEASE=%s\nexec %s \"$@\"\n# version %s; "
                "padding (random bytes, never read by sh) follows\n"
                % (version, TESTSERVER, version)).encode()
        if pad:
            data += os.urandom(pad - len(data))
        with open(os.path.join(self.web, fname), "wb") as f:
            f.write(data)
        os.chmod(os.path.join(self.web, fname), 0o755)
        self.sign_ms = self.sign(version, fname, srv)
        return fname, len(data)

    # -- setup ----------------------------------------------------------------
    def setup(self):
        log("certificates (tests/unit/certs.sh), signing key, release server")
        subprocess.run(["sh", CERTS_SH, self.certs], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=120)
        self.ca = os.path.join(self.certs, "ca.pem")
        self.key = os.path.join(self.dir, "release.key")
        _, cp, obj = self.appd("release", "keygen", "--out", self.key)
        self.must("appd release keygen", cp, obj, ("created",))
        self.pubkey = obj["publicKey"]
        self.srv = ReleaseServer(self.web, os.path.join(self.certs, "localhost.pem"),
                                 os.path.join(self.certs, "localhost.key"),
                                 os.path.join(self.dir, "server.log"))
        self.relay = Relay(self.srv.port)
        self.pyctx = ssl.create_default_context(cafile=self.ca)
        os.makedirs(self.home, mode=0o700)
        with open(os.path.join(self.home, "settings.json"), "w") as f:
            json.dump({"server": {"command": ["{current}/bin/app-server", "--listen", "{socket}"],
                                  "readiness": "connect", "readyTimeoutSeconds": 10}}, f)
        self.small_fname, self.small_size = self.publish("1.0.0")
        log("bootstrap 1.0.0 (manifest straight from the server, port %d)" % self.srv.port)
        self.direct_url = self.srv.url("manifest.json")
        self.relay_url = "https://localhost:%d/manifest.json" % self.relay.port
        ms, cp, obj = self.appd("bootstrap", "--manifest-url", self.direct_url,
                                "--public-key", self.pubkey, "--ca-file", self.ca,
                                "--fetch-timeout", FETCH_TIMEOUT)
        self.must("appd bootstrap", cp, obj, ("bootstrapped",))
        self.bootstrap_ms = ms

    # -- 1: idle check timing ---------------------------------------------------
    def py_get(self, path, etag=None, srv=None):
        """One GET over a fresh TLS connection with Python's client."""
        c = http.client.HTTPSConnection("localhost", (srv or self.srv).port,
                                        context=self.pyctx, timeout=10)
        c.request("GET", "/" + path, headers={"If-None-Match": etag} if etag else {})
        r = c.getresponse()
        body = r.read()
        c.close()
        return r.status, body, r.getheader("ETag")

    def timed_py(self, fn):
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1000.0

    def measure_timing(self, mode, rounds):
        """`rounds` rounds of: re-sign (serial+1) -> `appd update` (200
        manifest + 200 sig, noUpdate); `appd update` (304); Python 304;
        Python 200+200."""
        log("timing, %s: %d rounds (+%d warm-up)" % (mode, rounds, WARMUP))
        full, idle, py304, py200 = [], [], [], []
        for i in range(WARMUP + rounds):
            self.sign("1.0.0", self.small_fname)
            n0, _ = self.srv.responses(0)
            a = self.update()
            n1, r200 = self.srv.responses(n0)
            b = self.update()
            _, r304 = self.srv.responses(n1)
            if [x["status"] for x in r200] != [200, 200] or [x["status"] for x in r304] != [304]:
                raise BenchError("%s round %d: unexpected responses %r / %r"
                                 % (mode, i, [(x["path"], x["status"]) for x in r200],
                                    [(x["path"], x["status"]) for x in r304]))
            etag = self.updater_state().get("etag")
            c = self.timed_py(lambda: self._py304(etag))
            d = self.timed_py(self._py200)
            if i >= WARMUP:
                full.append(a)
                idle.append(b)
                py304.append(c)
                py200.append(d)
        t = self.timing.setdefault(mode, {"idle": [], "full": [], "py304": [], "py200": []})
        for k, v in (("idle", idle), ("full", full), ("py304", py304), ("py200", py200)):
            t[k].extend(v)

    def _py304(self, etag):
        st, body, _ = self.py_get("manifest.json", etag)
        if st != 304 or body:
            raise BenchError("python client: %d (%d bytes) for a conditional GET" % (st, len(body)))

    def _py200(self):
        for p in ("manifest.json", "manifest.json.sig"):
            st, body, _ = self.py_get(p)
            if st != 200 or not body:
                raise BenchError("python client: %d for %s" % (st, p))

    # -- 1: bytes on the wire -----------------------------------------------------
    def measure_wire(self, mode):
        log("bytes on the wire through the relay, %s" % mode)
        for i in range(WIRE_RUNS):
            for kind in ("full", "idle"):
                if kind == "full":
                    self.sign("1.0.0", self.small_fname)
                c0 = self.relay.count()
                n0, _ = self.srv.responses(0)
                self.update()
                conns = self.relay.since(c0)
                _, resp = self.srv.responses(n0)
                self.wire.setdefault((mode, kind), []).append({"conns": conns, "resp": resp})

    # -- 2: large update ------------------------------------------------------------
    def measure_big(self, sup):
        """BIG_RUNS updates with the artifact on the main server (it picks
        the TLS suite), then one from a server that only offers
        ECDHE-ECDSA-CHACHA20-POLY1305 (the suite appd lists first)."""
        size = BIG_MIB * 1024 * 1024
        self.cc = ReleaseServer(self.web, os.path.join(self.certs, "localhost.pem"),
                                os.path.join(self.certs, "localhost.key"),
                                os.path.join(self.dir, "chacha.log"),
                                ciphers="ECDHE-ECDSA-CHACHA20-POLY1305")
        plan = [(self.srv, "server's choice")] * BIG_RUNS + [(self.cc, "ChaCha20 only")]
        for k, (asrv, suite) in enumerate(plan):
            version = "%d.0.0" % (k + 2)
            fname, n = self.publish(version, pad=size, srv=asrv)
            log("update to %s (%d bytes, artifact server: %s)" % (version, n, suite))
            before = proc_status(sup)
            peak = {"VmRSS": 0}
            stop = threading.Event()

            def poll():
                while not stop.is_set():
                    try:
                        s = proc_status(sup)
                    except OSError:
                        return
                    if s["VmRSS"] > peak["VmRSS"]:
                        peak.update(s)
                    stop.wait(0.002)
            th = threading.Thread(target=poll, daemon=True)
            n0, _ = asrv.responses(0)
            cpu0 = cpu_ms(sup)
            th.start()
            t_start = time.time()
            ms = self.update(want="updated")
            t_end = time.time()
            stop.set()
            th.join()
            cpu = cpu_ms(sup) - cpu0
            after = proc_status(sup)
            _, resp = asrv.responses(n0)
            art = [r for r in resp if r["path"] == "/" + fname]
            if len(art) != 1 or art[0]["status"] != 200 or art[0]["bytes"] != n:
                raise BenchError("update %s: artifact responses %r" % (version, art))
            lines = asrv.log()
            req = [l for l in lines if l["event"] == "request" and l["path"] == "/" + fname]
            dl_s = art[0]["t"] - req[-1]["t"]
            # phases from the supervisor's log (ms resolution) and the server's log
            marks = {}
            with open(os.path.join(self.home, "state", "supervisor.log")) as f:
                for line in f:
                    ts, _, msg = line.rstrip("\n").partition(" ")
                    for key, needle in (("signal", "SIGUSR1: update check"),
                                        ("switch", "switched"), ("ready", "is ready"),
                                        ("done", "update check: updated")):
                        if needle in msg:
                            marks[key] = iso_ms(ts)
            phases = None
            if all(k in marks for k in ("signal", "switch", "ready", "done")) and \
                    t_start - 1 <= marks["signal"] <= marks["done"] <= t_end + 1:
                phases = [("CLI start -> SIGUSR1 handled", marks["signal"] - t_start),
                          ("manifest + signature fetch and the artifact connection's "
                           "handshake (-> artifact request read)",
                           req[-1]["t"] - marks["signal"]),
                          ("artifact download (server: request -> last byte)", dl_s),
                          ("last byte -> `current` switched (rest of receive, SHA-256 "
                           "check, fsync, rename)", marks["switch"] - art[0]["t"]),
                          ("switch -> new server ready (stop old, start new)",
                           marks["ready"] - marks["switch"]),
                          ("ready -> verdict saved", marks["done"] - marks["ready"]),
                          ("verdict -> CLI exits", t_end - marks["done"])]
            # floor: the same artifact with Python's TLS client, in-process
            t0 = time.perf_counter()
            st, body, _ = self.py_get(fname, srv=asrv)
            py_s = time.perf_counter() - t0
            if st != 200 or len(body) != n:
                raise BenchError("python client: %d, %d bytes for %s" % (st, len(body), fname))
            self.big.append({"version": version, "bytes": n, "ms": ms, "dl_s": dl_s,
                             "before": before, "after": after, "polled_peak": peak["VmRSS"],
                             "cpu_ms": cpu, "phases": phases, "py_s": py_s,
                             "sign_ms": self.sign_ms, "suite": suite})
            self.mem.append(("after the update to %s (%d MiB, %s)" % (version, BIG_MIB, suite),
                             after))

    # -- the sequence ---------------------------------------------------------------
    def run(self):
        self.setup()
        sup = self.supervisor_pid()
        if not sup:
            raise BenchError("no supervisor after bootstrap")
        # 1: manifest URL straight to the server; blocks A B A B: (a) with the
        # supervisor running (after bootstrap, then after `appd start`), (b)
        # without (after `appd stop`)
        for blk, rounds in enumerate((RUNS - RUNS // 2, RUNS // 2)):
            if blk:
                _, cp, obj = self.appd("start")
                self.must("appd start", cp, obj, ("started",))
            self.measure_timing("supervisor", rounds)
            self.must("appd stop", *self.appd("stop")[1:], ("stopped",))
            self.measure_timing("no supervisor", rounds)
        # bytes on the wire: manifest URL through the relay
        self.settings(lambda s: s["updater"].__setitem__("manifestUrl", self.relay_url))
        self.measure_wire("no supervisor")
        _, cp, obj = self.appd("start")
        self.must("appd start", cp, obj, ("started",))
        sup = obj.get("supervisorPid") or self.supervisor_pid()
        self.sup_ident = (sup, start_ticks(sup), os.stat("/proc/%d/exe" % sup).st_ino)
        time.sleep(1.0)
        self.mem.append(("idle, 1 s after `appd start` (no check yet)", proc_status(sup)))
        self.measure_wire("supervisor")
        self.mem.append(("after %d idle + %d full checks" % (WIRE_RUNS, WIRE_RUNS), proc_status(sup)))
        # 2: large updates, same supervisor
        self.measure_big(sup)
        ident = (sup, start_ticks(sup), os.stat("/proc/%d/exe" % sup).st_ino)
        if ident != self.sup_ident:
            raise BenchError("the supervisor changed during the run (%r -> %r): VmHWM "
                             "would not be a peak over the run" % (self.sup_ident, ident))
        self.notes.append("supervisor pid %d kept its start time and executable through "
                          "every update (no re-exec), so VmHWM covers the whole run." % sup)

    def cleanup(self):
        try:
            subprocess.run([self.bin, "stop"], env=self.env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=CMD_TIMEOUT)
        except (OSError, subprocess.SubprocessError) as e:
            log("cleanup: appd stop failed: %s" % e)
        # last resort: processes whose environment names this run's home
        marker = ("APPD_HOME=" + self.home).encode()
        for d in os.listdir("/proc"):
            if not d.isdigit() or int(d) == os.getpid():
                continue
            try:
                with open("/proc/%s/environ" % d, "rb") as f:
                    mine = marker in f.read().split(b"\0")
            except OSError:
                continue
            if mine and alive(int(d)):
                log("cleanup: killing leftover pid %s" % d)
                try:
                    os.kill(int(d), signal.SIGKILL)
                except OSError:
                    pass
        if self.relay:
            self.relay.stop()
        for srv in (self.srv, self.cc):
            if srv:
                srv.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- report ----------------------------------------------------------------------
    def wire_summary(self, recs):
        """Per check: connections, handshakes, bytes up/down, requests."""
        out = []
        for r in recs:
            conns = r["conns"]
            out.append({
                "conns": len(conns),
                "hello": sum(c["up"].hs.count("ClientHello") for c in conns),
                "up": sum(c["up"].bytes for c in conns),
                "down": sum(c["down"].bytes for c in conns),
                "resp": [(x["path"], x["status"], x["bytes"]) for x in r["resp"]],
                "c": conns,
                # client's second flight: ClientKeyExchange -> its Finished
                "gap": [(c["up"].at("Finished(encrypted)") - c["up"].at("ClientKeyExchange")) * 1000
                        for c in conns if c["up"].at("Finished(encrypted)")
                        and c["up"].at("ClientKeyExchange")],
                "open": [(c["t_close"] - c["t_open"]) * 1000 for c in conns if c["t_close"]],
                "suite": [c["down"].suite for c in conns],
            })
        return out

    def report(self, error=None):
        w = sys.stdout.write
        size = self.bin_size
        w("## appd updater benchmark\n\n")
        w("Reproduce: `make && make fixtures && make bench` (`bench/run.sh` runs "
          "`bench/bench_update.py`; alone: `/usr/bin/python3 bench/bench_update.py`; "
          "`BENCH_UPDATE=0` skips it).\n\n")
        w("- binary: `%s` (%d bytes, SHA-256 %s…, mtime %s), copied once into the run's temp "
          "dir and run from there, so a rebuild during the run changes nothing\n"
          % (APPD, size, self.bin_sha[:16], self.bin_mtime))
        w("- machine: nproc=%s, kernel `%s %s`, CPU `%s`, python %s\n"
          % (os.cpu_count(), platform.system(), platform.release(), cpu_model(),
             platform.python_version()))
        w("- load average (1/5/15 min) before / after: %s / %s\n" % (self.load_before, loadavg()))
        w("- server: `tests/fixtures/release_server.py` (Python `http.server` + `ssl`, "
          "one request per connection, `Connection: close`) on 127.0.0.1 with the EC P-256 "
          "`localhost` certificate of `tests/unit/certs.sh`; settings `--ca-file` = its test "
          "CA; manifests signed with `appd release sign`; URLs use host `localhost`.\n")
        w("- method: wall time = `time.perf_counter()` around `subprocess.run` of `appd update "
          "--fetch-timeout %s` (stdout+stderr captured); %d rounds per mode, in blocks "
          "that alternate supervisor / none / supervisor / none, %d warm-up rounds "
          "discarded at the start of each block; "
          "each round: re-sign the manifest (same version 1.0.0, serial + 1) -> `appd update` "
          "(full check: 200 manifest + 200 signature, result `noUpdate`), then `appd update` "
          "again (idle check: If-None-Match -> 304, `noUpdate`), then the same two checks "
          "by Python's `http.client` in this process (fresh TLS connection per request). "
          "Every response is checked in the server's log.\n\n" % (FETCH_TIMEOUT, RUNS, WARMUP))
        if error:
            w("**Benchmark aborted:** %s\n\n" % error)

        rows = []
        # size
        rows.append(("binary size (`build/appd`, static, stripped)",
                     "%.1f KiB (%d B)" % (size / 1024.0, size), "≤ 300 KB (300 000 B)",
                     verdict(size <= SIZE_TARGET), "`stat -c %s build/appd`"))
        # idle checks
        tim = self.timing
        for mode in ("supervisor", "no supervisor"):
            if mode not in tim:
                continue
            t = tim[mode]
            how = ("delegated: update-request.json + SIGUSR1, CLI waits on packages/updater.json"
                   if mode == "supervisor" else "the CLI checks itself (under daemon.lock)")
            rows.append(("idle check (304), %s: `appd update` wall time (n=%d)" % (mode, len(t["idle"])),
                         "%s (p90 %s)" % (fmt_ms(statistics.median(t["idle"])),
                                          fmt_ms(pct(t["idle"], 90))), "—", "info", how))
            rows.append(("full check (200 manifest + 200 sig), %s (n=%d)" % (mode, len(t["full"])),
                         "%s (p90 %s)" % (fmt_ms(statistics.median(t["full"])),
                                          fmt_ms(pct(t["full"], 90))), "—", "info", "same rounds"))
            rows.append(("idle / full, %s (ratio of medians)" % mode,
                         "%.2f×" % (statistics.median(t["idle"]) / statistics.median(t["full"])),
                         "—", "info", ""))
        if tim:
            allpy = [x for t in tim.values() for x in t["py304"]]
            allpy2 = [x for t in tim.values() for x in t["py200"]]
            rows.append(("floor: Python `http.client` 304, in-process (n=%d)" % len(allpy),
                         fmt_ms(statistics.median(allpy)), "—", "info",
                         "one TLS connection, If-None-Match"))
            rows.append(("floor: Python `http.client` manifest + sig, in-process (n=%d)"
                         % len(allpy2), fmt_ms(statistics.median(allpy2)), "—", "info",
                         "two TLS connections"))
        # wire
        for mode in ("supervisor", "no supervisor"):
            idle = self.wire_summary(self.wire.get((mode, "idle"), []))
            full = self.wire_summary(self.wire.get((mode, "full"), []))
            if not idle:
                continue
            ok = all(x["conns"] == 1 and x["hello"] == 1 and
                     x["resp"] == [("/manifest.json", 304, 0)] for x in idle)
            rows.append(("idle check, %s: TLS handshakes / requests (n=%d checks)"
                         % (mode, len(idle)),
                         "; ".join(sorted(set("%d conn, %d ClientHello, %s" % (
                             x["conns"], x["hello"],
                             ", ".join("%s %d (%d B body)" % r for r in x["resp"]))
                             for x in idle))),
                         "1 handshake + one 304", verdict(ok),
                         "relay + server log"))
            gaps = [g for x in idle + full for g in x["gap"]]
            opens = [o for x in idle for o in x["open"]]
            suites = sorted(set(SUITES.get(u, "0x%04X" % u) if u is not None else "?"
                                for x in idle for u in x["suite"]))
            rows.append(("idle check, %s: TCP connection open -> closed, at the relay"
                         % mode, fmt_ms(statistics.median(opens)), "—", "info",
                         "TLS 1.2, %s, full handshake (no resumption)" % ", ".join(suites)))
            rows.append(("%s: client's 2nd flight, ClientKeyExchange -> Finished arrival "
                         "(n=%d connections)" % (mode, len(gaps)),
                         "median %s, max %s" % (fmt_ms(statistics.median(gaps)), fmt_ms(max(gaps))),
                         "—", "info", "3 records in 3 writes; ~40 ms here means Nagle "
                         "waits for the delayed ACK (TCP_NODELAY missing)"))
            rows.append(("idle check, %s: bytes on the wire up / down" % mode,
                         "%s / %s B" % ("/".join(sorted(set(str(x["up"]) for x in idle))),
                                        "/".join(sorted(set(str(x["down"]) for x in idle)))),
                         "—", "info", "TCP payload counted by the relay"))
            if full:
                rows.append(("full check, %s: connections; bytes up / down" % mode,
                             "%s conn; %s / %s B" % (
                                 "/".join(sorted(set(str(x["conns"]) for x in full))),
                                 "/".join(sorted(set(str(x["up"]) for x in full))),
                                 "/".join(sorted(set(str(x["down"]) for x in full)))),
                             "—", "info", "; ".join(sorted(set(
                                 ", ".join("%s %d (%d B body)" % r for r in x["resp"])
                                 for x in full)))))
        # memory
        for moment, s in self.mem:
            rows.append(("supervisor VmHWM, %s" % moment, kib(s["VmHWM"]), "—", "info",
                         "VmRSS %s (anon %s, file %s)" % (kib(s["VmRSS"]), kib(s["RssAnon"]),
                                                         kib(s["RssFile"]))))
        if self.big:
            seen = sorted(set(SUITES.get(u, "0x%04X" % u) for recs in self.wire.values()
                              for x in self.wire_summary(recs) for u in x["suite"]
                              if u is not None))
            names = {"server's choice": "%s (the server's choice, as seen by the relay)"
                     % (" / ".join(seen) or "?"),
                     "ChaCha20 only": "ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 (server "
                     "restricted to it; appd's first choice)"}
            n = self.big[0]["bytes"]
            for suite in ("server's choice", "ChaCha20 only"):
                g = [b for b in self.big if b["suite"] == suite]
                if not g:
                    continue
                ms = statistics.median(b["ms"] for b in g)
                dl = statistics.median(b["dl_s"] for b in g)
                cpu = statistics.median(b["cpu_ms"] for b in g)
                py = statistics.median(b["py_s"] for b in g)
                rows.append(("**%d MiB update**, TLS suite %s: `appd update` wall time (n=%d)"
                             % (BIG_MIB, names[suite], len(g)),
                             "%s (%.0f MB/s overall)" % (fmt_ms(ms), n / (ms / 1000.0) / 1e6),
                             "—", "info", "manifest, sig, download, SHA-256, fsync, switch, "
                             "restart, readiness"))
                rows.append(("  download (server log: request read -> last byte written)",
                             "%.0f ms, %.0f MB/s" % (dl * 1000, n / dl / 1e6), "—", "info",
                             "MB = 10^6 B"))
                rows.append(("  supervisor CPU time (utime + stime) for the whole update",
                             "%.0f ms (%.0f MB per CPU second)" % (cpu, n / (cpu / 1000.0) / 1e6),
                             "—", "info", "`/proc/$pid/stat` before and after"))
                rows.append(("  floor: the same artifact fetched by Python `http.client`",
                             "%.0f ms, %.0f MB/s" % (py * 1000, n / py / 1e6), "—", "info",
                             "same server, in-process, OpenSSL"))
            sg = [b["sign_ms"] for b in self.big]
            rows.append(("context: `appd release sign` of a %d MiB artifact (read + "
                         "SHA-256 + ECDSA sign, one process)" % BIG_MIB,
                         "%.0f ms" % statistics.median(sg), "—", "info",
                         "bounds the SHA-256 share of the update's CPU time"))

        w("| metric | value | target | verdict | how |\n|---|---|---|---|---|\n")
        for r in rows:
            w("| " + " | ".join(r) + " |\n")
        w("\n")

        # details
        for (mode, kind), recs in sorted(self.wire.items()):
            s = self.wire_summary(recs)
            if not s:
                continue
            c = s[-1]["c"]
            w("- wire detail, %s, %s check (the last of %d): " % (mode, kind, len(s)))
            parts = []
            for i, conn in enumerate(c):
                up, down = conn["up"], conn["down"]
                parts.append("connection %d: up %d B [%s; %s], down %d B [%s; %s]" % (
                    i + 1, up.bytes,
                    ", ".join("%s %d×%d B" % (k, v[0], v[1]) for k, v in up.types.items()),
                    " ".join(up.hs),
                    down.bytes,
                    ", ".join("%s %d×%d B" % (k, v[0], v[1]) for k, v in down.types.items()),
                    " ".join(down.hs)))
            w("; ".join(parts) + ".\n")
        for b in self.big:
            w("- update to %s (%s): %d B artifact, `appd update` %.0f ms, download %.0f ms "
              "(%.0f MB/s), supervisor CPU %.0f ms; VmHWM %s -> %s; VmRSS polled every 2 ms "
              "during it: max %s.%s\n"
              % (b["version"], b["suite"], b["bytes"], b["ms"], b["dl_s"] * 1000,
                 b["bytes"] / b["dl_s"] / 1e6, b["cpu_ms"], kib(b["before"]["VmHWM"]),
                 kib(b["after"]["VmHWM"]), kib(b["polled_peak"]),
                 (" Phases (supervisor.log, ms resolution; server log): " + "; ".join(
                     "%s %.0f ms" % (k, max(0.0, v) * 1000) for k, v in b["phases"]) + ".")
                 if b["phases"] else ""))
        for mode, t in self.timing.items():
            for k, name in (("idle", "idle"), ("full", "full")):
                v = t[k]
                w("- spread, %s, %s: median %.1f ms, p90 %.1f ms, min %.1f ms, max %.1f ms\n"
                  % (mode, name, statistics.median(v), pct(v, 90), min(v), max(v)))
        offered = [c["up"].offered for recs in self.wire.values() for r in recs
                   for c in r["conns"] if c["up"].offered]
        if offered:
            w("- appd's ClientHello offers, in order: %s; the server (Python/OpenSSL, server "
              "preference) picks %s.\n" % (
                  ", ".join(SUITES.get(u, "0x%04X" % u) for u in offered[0]),
                  " / ".join(sorted(set(SUITES.get(c["down"].suite, "?")
                                        for recs in self.wire.values() for r in recs
                                        for c in r["conns"])))))
        for mode in ("supervisor", "no supervisor"):
            idle = self.wire_summary(self.wire.get((mode, "idle"), []))
            full = self.wire_summary(self.wire.get((mode, "full"), []))
            gaps = [g for x in idle + full for g in x["gap"]]
            if mode in self.timing and gaps:
                t = self.timing[mode]
                g = statistics.median(gaps)
                w("- %s: the ClientKeyExchange -> Finished stall is %.0f ms of the idle "
                  "check's %.0f ms (one connection) and about %.0f ms of the full check's "
                  "%.0f ms (two); without it: ~%.0f ms and ~%.0f ms (estimate: median minus "
                  "median stall per connection).\n"
                  % (mode, g, statistics.median(t["idle"]), 2 * g, statistics.median(t["full"]),
                     statistics.median(t["idle"]) - g, statistics.median(t["full"]) - 2 * g))
        w("- the kernel's RSS counters are approximate (per-CPU batches), so VmHWM / VmRSS "
          "readings can differ by a few pages (±8 KiB) between reads.\n")
        if hasattr(self, "bootstrap_ms"):
            w("- `appd bootstrap` of the 1.0.0 release (%d B), once: %.0f ms.\n"
              % (self.small_size, self.bootstrap_ms))
        for n in self.notes:
            w("- %s\n" % n)
        sys.stdout.flush()


def main():
    for f in (APPD, TESTSERVER):
        if not os.access(f, os.X_OK):
            log("missing %s (run: make && make fixtures)" % f)
            return 1
    if not shutil.which("openssl"):
        log("missing the openssl CLI (tests/unit/certs.sh makes the test certificates with it)")
        return 1

    def on_term(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)

    b = Bench()
    error = None
    t0 = time.monotonic()
    try:
        b.run()
    except (BenchError, OSError, subprocess.SubprocessError, KeyError, ValueError) as e:
        error = "%s: %s" % (type(e).__name__, e)
        log("error: " + error)
    finally:
        b.cleanup()
    log("done in %.0f s" % (time.monotonic() - t0))
    b.report(error)
    return 1 if error else 0


if __name__ == "__main__":
    sys.exit(main())
