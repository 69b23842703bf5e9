"""`appd bootstrap` and `appd update` (DESIGN.md "Updater"), black-box,
against signed releases served over HTTPS by tests/fixtures/release_server.py
(one instance per certificate) with certificates from tests/unit/certs.sh.

The published app-server is a per-version wrapper script that execs the
fixture server with APPD_TEST_RELEASE=<version> in its environment, so a
running server tells which release it came from (the `argv` query on its
socket, or /proc/PID/environ).
"""
import hashlib
import http.client
import os
import re
import signal
import ssl
import stat
import threading
import socket
import time

import pytest

from conftest import marked_pids, pid_alive, proc_image, wait_until
from releases import (OTHER_TARGET, PAST, TARGET, Publisher, ReleaseServer,
                      appd_variant, files_under, is_executable_file, make_certs,
                      never_ready_script, parse_iso, proc_cmdline, proc_environ,
                      readlink, release_dir, server_info, server_script,
                      sha256_file)

SERVER_SETTINGS = {
    "command": ["{current}/bin/app-server", "--listen", "{socket}"],
    "readiness": "connect",
    "readyTimeoutSeconds": 3,
}
FAULT_POINTS = ["after-download", "after-verify", "during-commit", "during-switch"]
RUN_TIMEOUT = 15        # seconds for one appd command (fail, don't hang)
VERSION_DIR = re.compile(r"\d+(\.\d+)*-" + re.escape(TARGET))


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("certs"))


class Rig:
    """One test's world: a home with server settings, a web root served by
    release servers (started on demand, one per certificate kind) and a
    publisher."""

    def __init__(self, home, certs, tmp):
        self.home = home
        self.certs = certs
        self.tmp = str(tmp)
        self.webroot = os.path.join(self.tmp, "web")
        os.makedirs(self.webroot)
        self.servers = {}
        # only --ca-file (or nothing) decides what is trusted
        for k in ("SSL_CERT_FILE", "SSL_CERT_DIR"):
            home.env.pop(k, None)
        self.srv = self.server("good")
        self.pub = Publisher(os.path.join(self.tmp, "pub"), self.webroot)
        self.settings = {"server": dict(SERVER_SETTINGS)}
        home.write_settings(self.settings)

    def server(self, kind):
        if kind not in self.servers:
            cert, key = self.certs.pair(kind)
            self.servers[kind] = ReleaseServer(self.webroot, cert, key,
                                               os.path.join(self.tmp, kind + ".log"))
        return self.servers[kind]

    def manifest_url(self, prefix="", kind="good"):
        return self.server(kind).url(prefix + "manifest.json")

    def write_settings(self, obj):
        self.settings = obj
        self.home.write_settings(obj)

    def bootstrap(self, *extra, url=None, keys=None, ca=True, fetch_timeout=8,
                  env=None, timeout=RUN_TIMEOUT):
        args = ["bootstrap", *extra, "--manifest-url", url or self.manifest_url()]
        for k in keys or [self.pub.public_key]:
            args += ["--public-key", k]
        if ca:
            args += ["--ca-file", self.certs.ca]
        if fetch_timeout is not None:
            args += ["--fetch-timeout", str(fetch_timeout)]
        return self.home.run(*args, env=env, timeout=timeout)

    def update(self, *extra, fetch_timeout=8, env=None, timeout=RUN_TIMEOUT):
        args = ["update", *extra, "--timeout", "20"]
        if fetch_timeout is not None:
            args += ["--fetch-timeout", str(fetch_timeout)]
        return self.home.run(*args, env=env, timeout=timeout)

    def status(self):
        r = self.home.run("status")
        assert r.rc == 0, r
        return r.json

    def bootstrapped(self, version="1.0.0", serial=5, *extra):
        """Publish `version` and bootstrap it; the Release and the output."""
        rel = self.pub.publish(version, serial, self.srv)
        r = self.bootstrap(*extra)
        assert r.rc == 0, r
        assert r.json["status"] == "bootstrapped", r
        return rel, r.json

    # -- probes ------------------------------------------------------------------
    def current(self):
        return readlink(self.home.file("packages/current"))

    def previous(self):
        return readlink(self.home.file("packages/previous"))

    def releases(self):
        d = self.home.file("packages/releases")
        return sorted(os.listdir(d)) if os.path.isdir(d) else []

    def supervisor_pid(self):
        try:
            return self.home.read_json("state/supervisor.pid")["pid"]
        except (OSError, ValueError, KeyError):
            return None

    def running_release(self):
        """APPD_TEST_RELEASE of the server answering on the socket."""
        info = server_info(self.home.socket)
        return info and info["env"].get("APPD_TEST_RELEASE")

    def close(self):
        for s in self.servers.values():
            s.stop()


@pytest.fixture
def rig(home, certs, tmp_path):
    r = Rig(home, certs, tmp_path)
    yield r
    r.close()


# -- shared assertions ---------------------------------------------------------------

def assert_rejected(r, reason):
    assert r.rc == 7, r
    assert r.nlines == 1, r
    j = r.json
    assert j["status"] == "error", r
    assert j["error"] == "rejected", r
    assert j["reason"] == reason, r
    assert isinstance(j["message"], str) and j["message"], r
    assert j["message"] in r.stderr, r


def assert_nothing_installed(rig, settings_before):
    h = rig.home
    assert not os.path.lexists(h.file("packages/current"))
    assert not os.path.lexists(h.file("packages/previous"))
    assert rig.releases() == []
    if os.path.isdir(h.file("packages/releases")):
        assert files_under(h.file("packages/releases")) == []
    assert h.read("settings.json") == settings_before
    sup = rig.supervisor_pid()
    assert sup is None or not pid_alive(sup)
    assert wait_until(lambda: marked_pids(h.path) == [], timeout=2), \
        [proc_cmdline(p) for p in marked_pids(h.path)]


def assert_release_installed(rig, rel):
    """releases/<v>-<target>/bin/app-server is the published file, 0755."""
    path = rig.home.file("packages/%s/bin/app-server" % release_dir(rel.version))
    st = os.lstat(path)
    assert stat.S_ISREG(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o755
    assert sha256_file(path) == rel.sha256


def assert_untouched_after_rejection(rig, r, reason, srv_pid, sup_pid, t0):
    assert_rejected(r, reason)
    assert rig.current() == release_dir("1.0.0")
    assert rig.previous() is None
    assert rig.releases() == [os.path.basename(release_dir("1.0.0"))]
    assert files_under(rig.home.file("packages/releases")) == ["1.0.0-%s/bin/app-server" % TARGET]
    assert pid_alive(srv_pid)
    assert rig.supervisor_pid() == sup_pid and pid_alive(sup_pid)
    st = rig.status()
    assert st["status"] == "running" and st["pid"] == srv_pid
    assert st["installedVersion"] == "1.0.0"
    assert st["lastResult"] == "rejected"
    assert st["lastReason"] == reason
    assert t0 - 1 <= parse_iso(st["lastCheckAt"]) <= time.time() + 1
    assert rig.running_release() == "1.0.0"


def no_temp_entries(rig):
    return not [n for n in rig.releases() if n.startswith(".")]


def releases_are_complete(rig):
    """Every entry of packages/releases is a finished release (no temp
    file or half-made directory), and current names one of them.  Leftovers
    of a killed install may be pruned just after the update's reply: up to
    2 s are allowed for that."""
    assert wait_until(lambda: no_temp_entries(rig), timeout=2), rig.releases()
    for n in rig.releases():
        assert VERSION_DIR.fullmatch(n), rig.releases()
        assert is_executable_file(rig.home.file("packages/releases/%s/bin/app-server" % n)), n
    assert rig.current() is not None
    assert os.path.basename(rig.current()) in rig.releases()


# -- the fixture itself ----------------------------------------------------------------

def test_release_server_fixture(rig):
    """ETag/304, the fault modes and the log, with Python's TLS client (so a
    broken fixture shows up as such and not as an appd failure)."""
    rel = rig.pub.publish("1.0.0", 1, rig.srv)
    ctx = ssl.create_default_context(cafile=rig.certs.ca)

    def get(path, headers=None, srv=rig.srv, read=True):
        c = http.client.HTTPSConnection("localhost", srv.port, context=ctx, timeout=5)
        c.request("GET", "/" + path, headers=headers or {})
        resp = c.getresponse()
        body = None
        if read:
            try:
                body = resp.read()
            except http.client.IncompleteRead as e:
                body = e.partial
        c.close()
        return resp, body

    resp, body = get("manifest.json")
    assert resp.status == 200 and body == rel.manifest
    assert resp.getheader("Connection") == "close"
    etag = resp.getheader("ETag")
    assert re.fullmatch(r'"[0-9a-f]{32}"', etag)
    resp, body = get("manifest.json", {"If-None-Match": etag})
    assert resp.status == 304 and body == b""
    resp, body = get("manifest.json", {"If-None-Match": '"nope"'})
    assert resp.status == 200

    data = open(rel.files[TARGET], "rb").read()
    resp, body = get("extra/" + rel.webfile)
    assert int(resp.getheader("Content-Length")) == len(data) + 4096
    assert body[:len(data)] == data and len(body) == len(data) + 4096
    resp, body = get("truncate/" + rel.webfile)
    assert int(resp.getheader("Content-Length")) == len(data)
    assert body == data[:len(data) // 2]
    resp, body = get("http/" + rel.webfile)
    assert resp.status == 302
    assert resp.getheader("Location") == "http://localhost:%d/%s" % (rig.srv.port, rel.webfile)
    resp, body = get("nothing-here")
    assert resp.status == 404

    c = http.client.HTTPSConnection("localhost", rig.srv.port, context=ctx, timeout=0.5)
    c.request("GET", "/stall/" + rel.webfile)
    resp = c.getresponse()
    assert resp.status == 200 and int(resp.getheader("Content-Length")) == len(data)
    assert rig.srv.wait_for("stall", "stall/" + rel.webfile, timeout=2)
    with pytest.raises(OSError):
        resp.read()             # times out: no body comes
    resp.close()
    c.close()
    assert rig.srv.wait_for("response", "stall/" + rel.webfile, timeout=2)["bytes"] == 0

    log = rig.srv.responses()
    assert [(l["path"], l["status"], l["bytes"]) for l in log] == [
        ("/manifest.json", 200, len(rel.manifest)),
        ("/manifest.json", 304, 0),
        ("/manifest.json", 200, len(rel.manifest)),
        ("/extra/" + rel.webfile, 200, len(data) + 4096),
        ("/truncate/" + rel.webfile, 200, len(data) // 2),
        ("/http/" + rel.webfile, 302, 5),
        ("/nothing-here", 404, 9),
        ("/stall/" + rel.webfile, 200, 0),
    ]
    assert log[1]["inm"] == etag

    # the other certificates: Python's client refuses each, the server logs it
    for kind, needle in [("self", "self.signed"), ("other", "match"),
                         ("expired", "expired")]:
        with pytest.raises(ssl.SSLCertVerificationError) as ei:
            get("manifest.json", srv=rig.server(kind))
        assert re.search(needle, str(ei.value)), (kind, ei.value)
        assert rig.server(kind).wait_for("handshakeFailed", timeout=2)
        assert rig.server(kind).log("request") == []


# -- bootstrap -------------------------------------------------------------------------

def test_bootstrap_installs_starts_and_saves_settings(rig):
    h = rig.home
    rig.write_settings({"server": dict(SERVER_SETTINGS), "custom": {"kept": [1, 2]}})
    rel = rig.pub.publish("1.0.0", 5, rig.srv)
    t0 = time.time()
    r = rig.bootstrap()
    t1 = time.time()
    assert r.rc == 0, r
    assert r.nlines == 1, r
    j = r.json
    expected = {
        "status": "bootstrapped", "backend": "pid", "autoUpdateEnabled": True,
        "remoteControlEnabled": False,
        "managedPath": h.file("packages/current/bin/app-server"),
        "managedVersion": "1.0.0", "installedVersion": "1.0.0",
        "socketPath": h.socket, "appServerVersion": "1.0.0",
    }
    assert {k: j.get(k) for k in expected} == expected, j
    assert isinstance(j["cliVersion"], str) and j["cliVersion"]
    pid = j["pid"]
    assert pid_alive(pid)

    # installed: the release directory and a relative current symlink
    assert rig.current() == release_dir("1.0.0")
    assert os.path.realpath(h.file("packages/current")) == \
        os.path.realpath(h.file("packages/" + release_dir("1.0.0")))
    assert_release_installed(rig, rel)
    assert rig.releases() == ["1.0.0-" + TARGET]
    assert rig.previous() is None

    # that release is what runs, and it answers on the socket
    info = server_info(h.socket)
    assert info and info["pid"] == pid
    assert info["env"]["APPD_TEST_RELEASE"] == "1.0.0"
    assert info["argv"][1:] == ["--listen", h.socket]
    assert proc_environ(pid).get("APPD_TEST_RELEASE") == "1.0.0"
    sup = rig.supervisor_pid()
    assert sup and pid_alive(sup)

    # settings: updater members added, everything else kept
    s = h.read_json("settings.json")
    assert s["server"] == SERVER_SETTINGS
    assert s["custom"] == {"kept": [1, 2]}
    u = s["updater"]
    assert u["autoUpdateEnabled"] is True
    assert u["manifestUrl"] == rig.manifest_url()
    assert u["publicKeys"] == [rig.pub.public_key]
    assert u["caFile"] == rig.certs.ca
    assert s.get("remoteControlEnabled", False) is False

    # one manifest, one signature, one artifact download
    assert rig.srv.count("manifest.json") == 1
    assert rig.srv.count("manifest.json.sig") == 1
    assert rig.srv.count(rel.webfile) == 1

    # status: the updater's fields; the first check is 1-5 min away
    st = rig.status()
    assert st["status"] == "running" and st["pid"] == pid
    assert st["autoUpdateEnabled"] is True
    assert st["installedVersion"] == "1.0.0"
    assert st.get("rejectedVersions", []) == []
    nxt = parse_iso(st["nextCheckAt"])
    assert t0 + 60 - 1 <= nxt <= t1 + 300 + 1, (t0, nxt, t1)


def test_bootstrap_rerun_is_safe_and_downloads_nothing(rig):
    rel, first = rig.bootstrapped()
    sup = rig.supervisor_pid()
    r = rig.bootstrap()
    assert r.rc == 0, r
    assert r.nlines == 1
    assert r.json == first
    assert pid_alive(first["pid"])
    assert rig.supervisor_pid() == sup
    assert rig.srv.count(rel.webfile) == 1          # no new artifact download
    for resp in rig.srv.responses("manifest.json")[1:]:
        assert resp["status"] in (200, 304), resp
    assert rig.current() == release_dir("1.0.0")
    assert rig.releases() == ["1.0.0-" + TARGET]


def test_bootstrap_replace_unmanaged_stops_it_then_bootstraps(rig):
    """A server appd does not manage on the socket: bootstrap is refused
    naming it (exit 5, nothing installed); with --replace-unmanaged it is
    stopped first (same user, TERM) and the release installed and started
    in the same call."""
    import subprocess
    from conftest import TESTSERVER
    h = rig.home
    os.makedirs(h.file("run"), mode=0o700, exist_ok=True)
    p = subprocess.Popen([TESTSERVER, "--listen", h.socket],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: os.path.exists(h.socket))
        rel = rig.pub.publish("1.0.0", 5, rig.srv)
        r = rig.bootstrap()
        assert r.rc == 5 and r.json["error"] == "unmanagedServer", r
        assert r.json["unmanaged"]["pid"] == p.pid, r
        assert not os.path.exists(h.file("packages/current"))
        r = rig.bootstrap("--replace-unmanaged")
        assert r.rc == 0 and r.json["status"] == "bootstrapped", r
        assert r.json["replacedUnmanaged"]["pid"] == p.pid, r
        assert p.wait(timeout=10) == 0
        assert pid_alive(r.json["pid"])
        assert rig.running_release() == rel.version
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_bootstrap_with_remote_control(rig):
    srv = dict(SERVER_SETTINGS, remoteControlArgs=["--print-env", "APPD_TEST_RC"])
    rig.write_settings({"server": srv})
    rig.pub.publish("1.0.0", 5, rig.srv)
    r = rig.bootstrap("--remote-control")
    assert r.rc == 0, r
    assert r.json["status"] == "bootstrapped"
    assert r.json["remoteControlEnabled"] is True
    s = rig.home.read_json("settings.json")
    assert s["remoteControlEnabled"] is True
    assert s["server"] == srv
    info = server_info(rig.home.socket)
    assert info["pid"] == r.json["pid"]
    assert info["argv"][-2:] == ["--print-env", "APPD_TEST_RC"]


def test_bootstrap_accepts_either_of_two_keys(rig):
    _, other = rig.pub.other_key()
    rig.pub.publish("1.0.0", 5, rig.srv)
    r = rig.bootstrap(keys=[other, rig.pub.public_key])
    assert r.rc == 0, r
    assert r.json["status"] == "bootstrapped"
    assert rig.home.read_json("settings.json")["updater"]["publicKeys"] == \
        [other, rig.pub.public_key]


# Each case publishes 1.0.0 (serial 5) so that bootstrap must refuse it and
# returns bootstrap() keyword arguments plus what to check afterwards.

def b_tampered(rig):
    rig.pub.publish("1.0.0", 5, rig.srv)
    rig.pub.flip_manifest_byte()
    return {}


def b_other_key(rig):
    rig.pub.publish("1.0.0", 5, rig.srv, key=rig.pub.other_key()[0])
    return {}


def b_expired(rig):
    rig.pub.publish("1.0.0", 5, rig.srv)
    rig.pub.resign(lambda m: m.update(expires=PAST))
    return {}


def b_name(rig):
    rig.pub.publish("1.0.0", 5, rig.srv, name="other-server")
    return {}


def b_no_artifact(rig):
    rig.pub.publish("1.0.0", 5, rig.srv, target=OTHER_TARGET)
    return {}


def b_sha256(rig):
    rig.pub.serve_other_bytes(rig.pub.publish("1.0.0", 5, rig.srv))
    return {}


def b_prefix(prefix, **kw):
    def setup(rig):
        rel = rig.pub.publish("1.0.0", 5, rig.srv, prefix=prefix)
        return dict(kw, _watch=(rig.srv, prefix + rel.webfile))
    return setup


def b_manifest_prefix(prefix, **kw):
    def setup(rig):
        rig.pub.publish("1.0.0", 5, rig.srv)
        return dict(kw, url=rig.manifest_url(prefix),
                    _watch=(rig.srv, prefix + "manifest.json"))
    return setup


def b_cert(kind, where, **kw):
    def setup(rig):
        bad = rig.server(kind)
        if where == "manifest":
            rig.pub.publish("1.0.0", 5, rig.srv)
            return dict(kw, url=rig.manifest_url(kind=kind), _tls=bad)
        rig.pub.publish("1.0.0", 5, rig.srv, artifact_server=bad)
        return dict(kw, _tls=bad)
    return setup


BOOTSTRAP_REJECTIONS = [
    ("badSignature", "tampered", b_tampered),
    ("badSignature", "unknownKey", b_other_key),
    ("expired", "expired", b_expired),
    ("name", "name", b_name),
    ("noArtifact", "noArtifact", b_no_artifact),
    ("sha256", "sha256", b_sha256),
    ("size", "extra", b_prefix("extra/")),
    ("truncated", "truncate", b_prefix("truncate/")),
    ("timeout", "stallArtifact", b_prefix("stall/", fetch_timeout=1)),
    ("timeout", "stallManifest", b_manifest_prefix("stall/", fetch_timeout=1)),
    ("insecureRedirect", "artifact", b_prefix("http/")),
    ("insecureRedirect", "manifest", b_manifest_prefix("http/")),
    ("certificateName", "manifest", b_cert("other", "manifest")),
    ("certificateName", "artifact", b_cert("other", "artifact")),
    ("untrustedCertificate", "manifest", b_cert("self", "manifest")),
    ("untrustedCertificate", "artifact", b_cert("self", "artifact")),
    ("untrustedCertificate", "noCaFile", b_cert("good", "manifest", ca=False)),
    ("expiredCertificate", "manifest", b_cert("expired", "manifest")),
    ("expiredCertificate", "artifact", b_cert("expired", "artifact")),
]


@pytest.mark.parametrize("reason,setup", [(r, s) for r, _, s in BOOTSTRAP_REJECTIONS],
                         ids=["%s-%s" % (r, how) for r, how, _ in BOOTSTRAP_REJECTIONS])
def test_bootstrap_rejected_installs_nothing(rig, reason, setup):
    kw = setup(rig)
    watch = kw.pop("_watch", None)
    tls = kw.pop("_tls", None)
    before = rig.home.read("settings.json")
    t0 = time.monotonic()
    r = rig.bootstrap(**kw)
    took = time.monotonic() - t0
    assert_rejected(r, reason)
    assert_nothing_installed(rig, before)
    if reason == "timeout":
        assert 0.9 <= took < 6, took
        # appd gave up on the stalled connection (closed it)
        assert rig.srv.wait_for("response", watch[1], timeout=3), rig.srv.log()
    if reason == "insecureRedirect":
        assert rig.srv.count(watch[1]) == 1
    if tls is not None:
        # refused during the handshake: not one request reached that server
        assert tls.log("request") == [], tls.log()


# -- update ------------------------------------------------------------------------------

def test_update_installs_new_release_and_restarts_server(rig):
    h = rig.home
    rel1, b = rig.bootstrapped()
    old_pid, sup = b["pid"], rig.supervisor_pid()
    rel2 = rig.pub.publish("2.0.0", 6, rig.srv)
    t0 = time.time()
    r = rig.update()
    assert r.rc == 0, r
    assert r.nlines == 1, r
    j = r.json
    expected = {"status": "updated", "installedVersion": "2.0.0",
                "previousVersion": "1.0.0"}
    assert {k: j.get(k) for k in expected} == expected, j
    new_pid = j["pid"]
    assert new_pid != old_pid
    assert pid_alive(new_pid)
    assert wait_until(lambda: not pid_alive(old_pid), timeout=3)

    assert rig.current() == release_dir("2.0.0")
    assert rig.previous() == release_dir("1.0.0")
    assert_release_installed(rig, rel2)
    assert_release_installed(rig, rel1)
    assert proc_environ(new_pid).get("APPD_TEST_RELEASE") == "2.0.0"
    assert wait_until(lambda: rig.running_release() == "2.0.0", timeout=3)
    assert server_info(h.socket)["pid"] == new_pid

    assert rig.supervisor_pid() == sup and pid_alive(sup)
    st = rig.status()
    assert st["status"] == "running" and st["pid"] == new_pid
    assert st["installedVersion"] == "2.0.0"
    assert st["lastResult"] == "updated"
    assert t0 - 1 <= parse_iso(st["lastCheckAt"]) <= time.time() + 1
    assert rig.srv.count(rel2.webfile) == 1
    assert not [n for n in rig.releases() if n.startswith(".")]


def test_bootstrap_rerun_installs_a_newer_release_through_the_supervisor(rig):
    # the rerun holds daemon.lock while the supervisor installs: the
    # supervisor must not report "busy" to the command that holds it
    rel1, b = rig.bootstrapped()
    sup = rig.supervisor_pid()
    rig.pub.publish("2.0.0", 6, rig.srv)
    r = rig.bootstrap()
    assert r.rc == 0, r
    assert r.json["status"] == "bootstrapped", r
    assert r.json["installedVersion"] == "2.0.0", r
    assert r.json["managedVersion"] == "2.0.0", r
    assert r.json["pid"] != b["pid"]
    assert rig.supervisor_pid() == sup
    assert rig.current() == release_dir("2.0.0")
    assert rig.previous() == release_dir("1.0.0")
    assert proc_environ(r.json["pid"]).get("APPD_TEST_RELEASE") == "2.0.0"


def test_update_with_socket_activation_refuses_no_connection(rig):
    rig.write_settings({"server": dict(SERVER_SETTINGS, socketActivation=True,
                                       command=["{current}/bin/app-server",
                                                "--socket-activation"])})
    rel1, b = rig.bootstrapped()
    rig.pub.publish("2.0.0", 6, rig.srv)
    sock = rig.home.socket
    stop = threading.Event()
    counts = {"ok": 0, "refused": 0}

    def hammer():
        while not stop.is_set():
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.settimeout(5)
            try:
                c.connect(sock)
                counts["ok"] += 1
            except OSError:
                counts["refused"] += 1
            finally:
                c.close()
            time.sleep(0.002)

    t = threading.Thread(target=hammer, daemon=True)
    t.start()
    try:
        time.sleep(0.1)
        r = rig.update()
        time.sleep(0.1)
    finally:
        stop.set()
        t.join(10)
    assert r.rc == 0, r
    assert r.json["status"] == "updated", r
    assert counts["ok"] > 20, counts
    assert counts["refused"] == 0, counts


def test_update_with_nothing_new_is_noUpdate_then_a_304(rig):
    rel, b = rig.bootstrapped()
    pid = b["pid"]
    r = rig.update()
    assert r.rc == 0, r
    assert r.json["status"] == "noUpdate", r
    assert r.json["installedVersion"] == "1.0.0"
    # the updater now holds the manifest's ETag: an idle re-check is a 304
    n = len(rig.srv.responses("manifest.json"))
    r = rig.update()
    assert r.rc == 0, r
    assert r.json["status"] == "noUpdate", r
    again = rig.srv.responses("manifest.json")[n:]
    assert len(again) == 1, again
    assert again[0]["status"] == 304 and again[0]["bytes"] == 0, again
    assert again[0]["inm"]
    c = rig.update("--check")
    assert c.rc == 0, c
    assert c.json["status"] == "noUpdate", c
    assert rig.srv.count(rel.webfile) == 1          # never downloaded again
    st = rig.status()
    assert st["pid"] == pid
    assert st["lastResult"] == "noUpdate"
    assert abs(parse_iso(st["lastCheckAt"]) - time.time()) < 5
    assert rig.current() == release_dir("1.0.0")
    assert rig.previous() is None


def test_update_check_reports_and_changes_nothing(rig):
    _, b = rig.bootstrapped()
    pid = b["pid"]
    rel2 = rig.pub.publish("2.0.0", 6, rig.srv)
    r = rig.update("--check")
    assert r.rc == 0, r
    assert r.nlines == 1
    expected = {"status": "updateAvailable", "availableVersion": "2.0.0",
                "installedVersion": "1.0.0"}
    assert {k: r.json.get(k) for k in expected} == expected, r
    assert rig.current() == release_dir("1.0.0")
    assert rig.previous() is None
    assert rig.releases() == ["1.0.0-" + TARGET]
    assert rig.srv.count(rel2.webfile) == 0
    st = rig.status()
    assert st["pid"] == pid and st["installedVersion"] == "1.0.0"
    assert st["lastResult"] == "updateAvailable"
    # the check did not use up the manifest: the update still installs it
    r = rig.update()
    assert r.rc == 0, r
    assert r.json["status"] == "updated", r
    assert r.json["installedVersion"] == "2.0.0"
    assert rig.current() == release_dir("2.0.0")


# Each case publishes something the running 1.0.0 (serial 5) must refuse;
# returns (update() keyword arguments, stalled path or None).

def u_publish(version="2.0.0", serial=6, **kw):
    def setup(rig):
        rig.pub.publish(version, serial, rig.srv, **kw)
        return {}, None
    return setup


def u_tampered(rig):
    rig.pub.publish("2.0.0", 6, rig.srv)
    rig.pub.flip_manifest_byte()
    return {}, None


def u_other_key(rig):
    rig.pub.publish("2.0.0", 6, rig.srv, key=rig.pub.other_key()[0])
    return {}, None


def u_expired(rig):
    rig.pub.publish("2.0.0", 6, rig.srv)
    rig.pub.resign(lambda m: m.update(expires=PAST))
    return {}, None


def u_sha256(rig):
    rig.pub.serve_other_bytes(rig.pub.publish("2.0.0", 6, rig.srv))
    return {}, None


def u_stall(rig):
    rel = rig.pub.publish("2.0.0", 6, rig.srv, prefix="stall/")
    return {"fetch_timeout": 1}, "stall/" + rel.webfile


def u_cert(kind):
    def setup(rig):
        rig.pub.publish("2.0.0", 6, rig.srv, artifact_server=rig.server(kind))
        return {}, None
    return setup


UPDATE_REJECTIONS = [
    ("serialReplay", "lowerSerial", u_publish("2.0.0", 4)),
    ("olderVersion", "olderVersion", u_publish("0.9.0", 6)),
    ("badSignature", "tampered", u_tampered),
    ("badSignature", "unknownKey", u_other_key),
    ("expired", "expired", u_expired),
    ("name", "name", u_publish(name="other-server")),
    ("noArtifact", "noArtifact", u_publish(target=OTHER_TARGET)),
    ("sha256", "sha256", u_sha256),
    ("size", "extra", u_publish(prefix="extra/")),
    ("truncated", "truncate", u_publish(prefix="truncate/")),
    ("timeout", "stall", u_stall),
    ("insecureRedirect", "http", u_publish(prefix="http/")),
    ("certificateName", "artifact", u_cert("other")),
    ("untrustedCertificate", "artifact", u_cert("self")),
    ("expiredCertificate", "artifact", u_cert("expired")),
]


@pytest.mark.parametrize("reason,setup", [(r, s) for r, _, s in UPDATE_REJECTIONS],
                         ids=["%s-%s" % (r, how) for r, how, _ in UPDATE_REJECTIONS])
def test_update_rejected_keeps_running_release(rig, reason, setup):
    _, b = rig.bootstrapped()
    srv_pid, sup_pid = b["pid"], rig.supervisor_pid()
    kw, stalled = setup(rig)
    t0 = time.time()
    r = rig.update(**kw)
    took = time.time() - t0
    assert_untouched_after_rejection(rig, r, reason, srv_pid, sup_pid, t0)
    if stalled:
        assert 0.9 <= took < 6, took
        assert rig.srv.wait_for("response", stalled, timeout=3), rig.srv.log()


def test_update_to_never_ready_release_rolls_back_and_is_not_retried(rig):
    h = rig.home
    _, b = rig.bootstrapped()
    rel3 = rig.pub.publish("3.0.0", 6, rig.srv, data=never_ready_script("3.0.0"))
    t0 = time.monotonic()
    r = rig.update()
    took = time.monotonic() - t0
    assert_rejected(r, "notReady")
    assert 2.5 <= took < 9.5, took             # readyTimeoutSeconds is 3
    assert rig.current() == release_dir("1.0.0")
    # when the command returns, the previous good release runs again and
    # answers (not: the rejected server is still being given up on)
    st = rig.status()
    assert st["status"] == "running" and st["ready"] is True, st
    assert pid_alive(st["pid"])
    assert proc_environ(st["pid"]).get("APPD_TEST_RELEASE") == "1.0.0"
    assert rig.running_release() == "1.0.0"
    assert st["installedVersion"] == "1.0.0"
    assert st["rejectedVersions"] == ["3.0.0"]
    assert st["lastResult"] == "rejected" and st["lastReason"] == "notReady"
    # the never-ready server is gone
    assert wait_until(lambda: not [p for p in marked_pids(h.path)
                                   if proc_environ(p).get("APPD_TEST_RELEASE") == "3.0.0"],
                      timeout=3)
    # never retried: the same manifest is noUpdate, nothing downloaded again
    r = rig.update()
    assert r.rc == 0, r
    assert r.json["status"] == "noUpdate", r
    assert r.json["installedVersion"] == "1.0.0"
    assert rig.srv.count(rel3.webfile) == 1
    assert rig.current() == release_dir("1.0.0")
    assert rig.status()["rejectedVersions"] == ["3.0.0"]


def test_update_without_supervisor_installs_but_starts_nothing(rig):
    h = rig.home
    rig.bootstrapped()
    s = h.run("stop")
    assert s.rc == 0 and s.json["status"] == "stopped", s
    rig.pub.publish("2.0.0", 6, rig.srv)
    c = rig.update("--check")
    assert c.rc == 0, c
    assert c.json["status"] == "updateAvailable" and c.json["availableVersion"] == "2.0.0", c
    assert rig.current() == release_dir("1.0.0")
    r = rig.update()
    assert r.rc == 0, r
    assert r.json["status"] == "updated", r
    assert r.json["installedVersion"] == "2.0.0"
    assert r.json["previousVersion"] == "1.0.0"
    assert rig.current() == release_dir("2.0.0")
    assert rig.previous() == release_dir("1.0.0")
    # nothing was started
    assert wait_until(lambda: marked_pids(h.path) == [], timeout=2)
    assert rig.status()["status"] == "stopped"
    st = h.run("start")
    assert st.rc == 0, st
    assert st.json["status"] == "started"
    assert rig.running_release() == "2.0.0"


def test_sigusr1_makes_the_supervisor_check_now(rig):
    _, b = rig.bootstrapped()
    sup = rig.supervisor_pid()
    rel2 = rig.pub.publish("2.0.0", 6, rig.srv)
    os.kill(sup, signal.SIGUSR1)
    assert wait_until(lambda: rig.current() == release_dir("2.0.0") and
                      rig.running_release() == "2.0.0", timeout=8), rig.srv.log()
    st = rig.status()
    assert st["pid"] != b["pid"]
    assert st["installedVersion"] == "2.0.0"
    assert st["lastResult"] == "updated"
    assert rig.supervisor_pid() == sup and pid_alive(sup)
    assert rig.srv.count(rel2.webfile) == 1


def test_self_update_reexecs_supervisor_in_place(rig):
    h = rig.home
    rel1, b = rig.bootstrapped()
    srv_pid, sup = b["pid"], rig.supervisor_pid()
    exe_before = proc_image(sup)
    new_appd = appd_variant("s6")
    rig.pub.publish("1.0.0", 6, rig.srv, fname=rel1.webfile, appd_data=new_appd)
    r = rig.update()
    assert r.rc == 0, r
    assert r.json["status"] != "error", r
    want = re.compile(re.escape(h.file("packages/appd/appd-")) + r"[0-9a-f]{16}")

    def exe():
        try:
            return proc_image(sup)
        except OSError:
            return ""
    assert wait_until(lambda: want.fullmatch(exe()), timeout=5), (exe_before, exe(), r.json)
    with open(proc_image(sup), "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == hashlib.sha256(new_appd).hexdigest()
    assert os.stat(exe()).st_mode & 0o111
    # same processes: the supervisor kept its pid, the server was not restarted
    assert rig.supervisor_pid() == sup and pid_alive(sup)
    assert pid_alive(srv_pid)
    assert server_info(h.socket)["pid"] == srv_pid
    assert rig.current() == release_dir("1.0.0")
    st = rig.status()
    assert st["status"] == "running" and st["pid"] == srv_pid
    assert st["supervisor"]["pid"] == sup
    assert st["installedVersion"] == "1.0.0"
    s = h.run("stop")
    assert s.rc == 0, s
    assert s.json["status"] == "stopped"
    assert wait_until(lambda: not pid_alive(sup) and not pid_alive(srv_pid), timeout=3)


def test_self_update_in_a_mixed_fleet_takes_this_binarys_own_target(rig):
    """One manifest for a fleet of mixed architectures: the supervisor takes
    appd-<its compile-time target> and leaves the other target's appd (here
    a program that does not run as appd) and app-server build alone."""
    h = rig.home
    other = "aarch64-linux" if TARGET != "aarch64-linux" else "x86_64-linux"
    rel1, b = rig.bootstrapped()
    srv_pid, sup = b["pid"], rig.supervisor_pid()
    mine = appd_variant("mixed")
    rig.pub.publish("1.0.0", 6, rig.srv, fname=rel1.webfile, appd_data=mine,
                    extra={"appd-" + other: b"#!/bin/sh\necho wrong target\nexit 1\n",
                           other: b"#!/bin/sh\nexit 1\n"})
    r = rig.update()
    assert r.rc == 0 and r.json["status"] != "error", r
    want = re.compile(re.escape(h.file("packages/appd/appd-")) + r"[0-9a-f]{16}")
    assert wait_until(lambda: want.fullmatch(proc_image(sup) if pid_alive(sup) else ""),
                      timeout=10), open(h.file("state/supervisor.log")).read()
    with open(proc_image(sup), "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == hashlib.sha256(mine).hexdigest()
    st = rig.status()
    assert st["target"] == TARGET
    assert st["pid"] == srv_pid and st["installedVersion"] == "1.0.0"
    assert "does not run as appd" not in open(h.file("state/supervisor.log")).read()


def test_self_update_to_an_appd_that_does_not_run_keeps_the_supervisor(rig):
    h = rig.home
    rel1, b = rig.bootstrapped()
    srv_pid, sup = b["pid"], rig.supervisor_pid()
    exe_before = proc_image(sup)
    broken = b"#!/bin/sh\necho not appd\nexit 1\n"
    rig.pub.publish("1.0.0", 6, rig.srv, fname=rel1.webfile, appd_data=broken)
    r = rig.update()
    assert r.rc == 0, r
    log = h.file("state/supervisor.log")
    assert wait_until(lambda: "does not run as appd" in open(log).read(), timeout=5)
    assert proc_image(sup) == exe_before
    assert rig.supervisor_pid() == sup and pid_alive(sup) and pid_alive(srv_pid)
    # still fully working: a check is answered, and stop stops
    r = rig.update()
    assert r.rc == 0 and r.json["status"] == "noUpdate", r
    s = h.run("stop")
    assert s.rc == 0 and s.json["status"] == "stopped", s


def test_release_outside_the_rollout_is_not_installed(rig):
    rel1, b = rig.bootstrapped()
    rig.pub.publish("2.0.0", 6, rig.srv)
    rig.pub.resign(lambda m: m.update(rolloutPercent=0))     # the kill switch
    r = rig.update()
    assert r.rc == 7, r
    assert r.json["reason"] == "notInRollout", r
    assert rig.current() == release_dir("1.0.0")
    assert rig.releases() == ["1.0.0-" + TARGET]
    assert server_info(rig.home.socket)["pid"] == b["pid"]


def test_schedule_interval_backoff_and_retry_after(rig):
    def set_updater(**kw):
        s = rig.home.read_json("settings.json")
        s["updater"].update(kw)
        rig.home.write_settings(s)

    def next_check_in():
        st = rig.status()
        return parse_iso(st["nextCheckAt"]) - time.time(), st

    rig.write_settings({"server": SERVER_SETTINGS, "updater": {"intervalMinutes": 10}})
    rig.bootstrapped()
    # a good check: the interval plus up to 20 %
    r = rig.update()
    assert r.rc == 0 and r.json["status"] == "noUpdate", r
    d, st = next_check_in()
    assert 600 - 5 <= d <= 720 + 1, st
    # a failed check (404): exponential backoff from 1 min, full jitter, at least 15 s
    set_updater(manifestUrl=rig.manifest_url().replace("manifest.json", "missing.json"))
    r = rig.update()
    assert r.rc == 7 and r.json["reason"] == "status", r
    d, st = next_check_in()
    assert 15 - 5 <= d <= 60 + 1, st
    assert st["lastResult"] == "rejected" and st["lastReason"] == "status", st
    # Retry-After (7200 s on a 503) pushes the next check past it
    set_updater(manifestUrl=rig.manifest_url(prefix="busy/"))
    r = rig.update()
    assert r.rc == 7 and r.json["reason"] == "status", r
    assert "Retry-After" in r.json["message"], r
    d, st = next_check_in()
    assert 7200 - 5 <= d <= 7200 + 1, st


def test_stop_during_stalled_download_is_prompt(rig):
    h = rig.home
    _, b = rig.bootstrapped()
    srv_pid, sup = b["pid"], rig.supervisor_pid()
    rel2 = rig.pub.publish("2.0.0", 6, rig.srv, prefix="stall/")
    upd = h.popen("update", "--timeout", "60", "--fetch-timeout", "60")
    try:
        assert rig.srv.wait_for("stall", "stall/" + rel2.webfile, timeout=8), rig.srv.log()
        t0 = time.monotonic()
        s = h.run("stop", timeout=10)
        took = time.monotonic() - t0
        assert s.rc == 0, s
        assert s.json["status"] == "stopped", s
        assert took < 5, took
        assert not pid_alive(srv_pid) and not pid_alive(sup)
        # the waiting `update` ends too, without claiming success
        out, _ = upd.communicate(timeout=5)
        assert '"updated"' not in out, out
    finally:
        if upd.poll() is None:
            upd.kill()
            upd.communicate()
    assert rig.srv.wait_for("response", "stall/" + rel2.webfile, timeout=3)
    assert wait_until(lambda: marked_pids(h.path) == [], timeout=2), \
        [proc_cmdline(p) for p in marked_pids(h.path)]
    assert rig.current() == release_dir("1.0.0")
    assert rig.releases() == ["1.0.0-" + TARGET]


def test_sigterm_during_a_fast_download_is_prompt(rig):
    # a sender that never runs dry must not keep the loop from a signal
    h = rig.home
    _, b = rig.bootstrapped()
    srv_pid, sup = b["pid"], rig.supervisor_pid()
    big = server_script("2.0.0") + b"#" * (96 << 20)
    rel2 = rig.pub.publish("2.0.0", 6, rig.srv, data=big)
    upd = h.popen("update", "--timeout", "60", "--fetch-timeout", "60")
    try:
        assert rig.srv.wait_for("request", rel2.webfile, timeout=8), rig.srv.log()
        time.sleep(0.3)
        t0 = time.monotonic()
        os.kill(sup, signal.SIGTERM)
        assert wait_until(lambda: not pid_alive(sup), timeout=10)
        took = time.monotonic() - t0
        assert took < 2, took
        assert not pid_alive(srv_pid)
        upd.communicate(timeout=5)
    finally:
        if upd.poll() is None:
            upd.kill()
            upd.communicate()
    # the transfer was cut short, not finished
    resp = [r for r in rig.srv.responses(rel2.webfile)]
    assert not resp or resp[-1]["bytes"] < len(big), resp
    assert rig.current() == release_dir("1.0.0")
    assert rig.releases() == ["1.0.0-" + TARGET]


@pytest.mark.parametrize("point", FAULT_POINTS)
def test_crash_while_installing_leaves_a_complete_release(rig, point):
    h = rig.home
    rel1, _ = rig.bootstrapped()
    s = h.run("stop")
    assert s.rc == 0 and s.json["status"] == "stopped", s
    rel2 = rig.pub.publish("2.0.0", 6, rig.srv)
    r = rig.update(env={"APPD_TEST_FAULT": point})
    assert r.rc == -signal.SIGKILL, r
    cur = rig.current()
    assert cur in (release_dir("1.0.0"), release_dir("2.0.0")), cur
    if point in ("after-download", "after-verify"):
        assert cur == release_dir("1.0.0")
    binary = h.file("packages/current/bin/app-server")
    assert is_executable_file(binary)
    assert sha256_file(binary) in (rel1.sha256, rel2.sha256)
    version = cur.split("/")[1].rsplit("-" + TARGET, 1)[0]
    st = h.run("start")
    assert st.rc == 0, st
    assert st.json["status"] == "started"
    assert rig.running_release() == version
    # a later update completes and leaves no temp file behind
    rig.pub.publish("2.0.1", 7, rig.srv)
    u = rig.update()
    assert u.rc == 0, u
    assert u.json["status"] == "updated" and u.json["installedVersion"] == "2.0.1", u
    assert rig.current() == release_dir("2.0.1")
    assert rig.running_release() == "2.0.1"
    releases_are_complete(rig)


def test_crash_while_pruning_leaves_only_complete_releases(rig):
    """A release is pruned by renaming it aside first: killed half-way,
    no entry of packages/releases is a half-removed release, and the next
    update removes what was left aside."""
    h = rig.home
    rig.bootstrapped()
    assert h.run("stop").rc == 0
    for version, serial in (("2.0.0", 6), ("3.0.0", 7)):
        rig.pub.publish(version, serial, rig.srv)
        r = rig.update(env={"APPD_TEST_FAULT": "during-prune"} if version == "3.0.0" else None)
    # the 3.0.0 update switched, then died pruning 1.0.0
    assert r.rc == -signal.SIGKILL, r
    assert rig.current() == release_dir("3.0.0")
    names = rig.releases()
    assert [n for n in names if n.startswith(".rm-")], names
    assert sorted(n for n in names if not n.startswith(".")) == \
        ["2.0.0-" + TARGET, "3.0.0-" + TARGET], names
    for n in names:
        if not n.startswith("."):
            assert is_executable_file(h.file("packages/releases/%s/bin/app-server" % n)), n
    rig.pub.publish("4.0.0", 8, rig.srv)
    u = rig.update()
    assert u.rc == 0 and u.json["status"] == "updated", u
    releases_are_complete(rig)


@pytest.mark.parametrize("kind", ["device", "fifo"])
def test_a_ca_file_that_never_ends_or_blocks_is_refused_at_once(rig, kind, tmp_path):
    """--ca-file /dev/zero used to spin past 40 s and a FIFO to block the
    open forever: only a regular file is a CA bundle."""
    path = "/dev/zero" if kind == "device" else str(tmp_path / "ca.fifo")
    if kind == "fifo":
        os.mkfifo(path, 0o600)
    t0 = time.monotonic()
    r = rig.bootstrap(ca=False, *("--ca-file", path), fetch_timeout=3, timeout=30)
    assert time.monotonic() - t0 < 10, r
    assert r.rc != 0 and r.json["status"] == "error", r
    assert path in r.json["message"] and "regular file" in r.json["message"], r
    assert marked_pids(rig.home.path) == []


def test_a_fifo_as_updater_ca_file_does_not_stall_the_supervisor(rig, tmp_path):
    """updater.caFile becomes a FIFO under a running supervisor: the check
    it makes on SIGUSR1 fails at once, and the supervisor still restarts a
    killed server and stops within the grace period."""
    h = rig.home
    rig.bootstrapped()
    sup = rig.supervisor_pid()
    fifo = str(tmp_path / "ca.fifo")
    os.mkfifo(fifo, 0o600)
    st = h.read_json("settings.json")
    st["updater"]["caFile"] = fifo
    h.write_settings(st)
    os.kill(sup, signal.SIGHUP)          # re-read settings (restarts the server)
    assert wait_until(lambda: rig.status()["status"] == "running", timeout=20)
    os.kill(sup, signal.SIGUSR1)
    log = h.file("state/supervisor.log")
    assert wait_until(lambda: "regular file" in open(log).read(), timeout=10), open(log).read()
    pid = rig.status()["pid"]
    os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: rig.status().get("pid") not in (None, pid) and
                      rig.status()["status"] == "running", timeout=20), rig.status()
    t0 = time.monotonic()
    s = h.run("stop", "--grace", "1")
    assert s.rc == 0 and s.json["status"] == "stopped", s
    assert time.monotonic() - t0 < 5, s


def test_supervisor_killed_during_stalled_download(rig):
    h = rig.home
    rel1, b = rig.bootstrapped()
    sup = rig.supervisor_pid()
    rel2 = rig.pub.publish("2.0.0", 6, rig.srv, prefix="stall/")
    os.kill(sup, signal.SIGUSR1)
    assert rig.srv.wait_for("stall", "stall/" + rel2.webfile, timeout=8), rig.srv.log()
    os.kill(sup, signal.SIGKILL)
    assert wait_until(lambda: not pid_alive(sup), timeout=3)
    assert rig.current() == release_dir("1.0.0")
    assert sha256_file(h.file("packages/current/bin/app-server")) == rel1.sha256
    st = h.run("start")
    assert st.rc == 0, st
    assert st.json["status"] == "started"
    assert rig.running_release() == "1.0.0"
    # the next successful update cleans up after the killed download
    rig.pub.publish("2.0.0", 7, rig.srv)
    u = rig.update()
    assert u.rc == 0, u
    assert u.json["status"] == "updated" and u.json["installedVersion"] == "2.0.0", u
    assert rig.running_release() == "2.0.0"
    assert wait_until(lambda: not [n for n in rig.releases() if n.startswith(".dl-")],
                      timeout=2), rig.releases()
    releases_are_complete(rig)
