"""Shared helpers for the updater's integration tests: test certificates,
the HTTPS release server (tests/fixtures/release_server.py), a publisher
that signs manifests with `appd release sign`, and small probes of an
installed home (symlinks, the release a server runs)."""
import datetime
import hashlib
import json
import os
import platform
import re
import selectors
import shutil
import socket
import stat
import subprocess
import sys
import time

from conftest import APPD, TESTSERVER

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CERTS_SH = os.path.join(REPO, "tests", "unit", "certs.sh")
RELEASE_SERVER = os.path.join(REPO, "tests", "fixtures", "release_server.py")

TARGET = os.environ.get("APPD_TARGET") or (
    {"amd64": "x86_64", "arm64": "aarch64"}.get(platform.machine(), platform.machine()) + "-linux")
APPD_TARGET = "appd-" + TARGET
# a valid target that is never this host's
OTHER_TARGET = "sparc64-linux" if TARGET != "sparc64-linux" else "riscv64-linux"
FUTURE = "2099-12-31T00:00:00Z"
PAST = "2020-01-01T00:00:00Z"

# server certificate kinds: (certificate, key) file names made by certs.sh
CERT_KINDS = {
    "good": ("localhost.pem", "localhost.key"),
    "expired": ("expired.pem", "localhost.key"),
    "other": ("other.pem", "localhost.key"),       # DNS:other.example
    "self": ("self.pem", "self.key"),              # self-signed, untrusted
}


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def parse_iso(s):
    """ISO-8601 UTC time ("2026-01-02T03:04:05Z", fractions allowed) ->
    unix seconds."""
    assert isinstance(s, str) and re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]00:00)", s), s
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


# -- certificates ------------------------------------------------------------

class Certs:
    def __init__(self, d):
        self.dir = str(d)
        self.ca = os.path.join(self.dir, "ca.pem")

    def pair(self, kind):
        c, k = CERT_KINDS[kind]
        return os.path.join(self.dir, c), os.path.join(self.dir, k)


def make_certs(d):
    """Run tests/unit/certs.sh into directory d (once per session)."""
    os.makedirs(str(d), exist_ok=True)
    subprocess.run(["sh", CERTS_SH, str(d)], check=True, capture_output=True,
                   timeout=60)
    return Certs(d)


# -- the release server ------------------------------------------------------

class ReleaseServer:
    """One tests/fixtures/release_server.py process (one certificate)."""

    def __init__(self, root, cert, key, log):
        self.root = root
        self.logpath = log
        self.proc = subprocess.Popen(
            [sys.executable, RELEASE_SERVER, "--cert", cert, "--key", key,
             "--root", root, "--log", log],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        line = b""
        deadline = time.monotonic() + 15
        while not line.endswith(b"\n") and time.monotonic() < deadline:
            if sel.select(timeout=0.2):
                c = self.proc.stdout.read1(64)
                if not c:
                    break
                line += c
        sel.close()
        m = re.match(rb"PORT (\d+)\n", line)
        if not m:
            self.stop()
            raise RuntimeError("release_server did not start: %r %r"
                               % (line, self.proc.stderr.read()))
        self.port = int(m.group(1))

    def url(self, path):
        return "https://localhost:%d/%s" % (self.port, path.lstrip("/"))

    def log(self, event=None):
        try:
            with open(self.logpath) as f:
                lines = [json.loads(l) for l in f if l.strip()]
        except FileNotFoundError:
            return []
        return [l for l in lines if event is None or l["event"] == event]

    def responses(self, path=None):
        """Completed responses, optionally only those for `path`."""
        return [l for l in self.log("response")
                if path is None or l["path"] == "/" + path.lstrip("/")]

    def count(self, path, event="request"):
        return len([l for l in self.log(event) if l.get("path") == "/" + path.lstrip("/")])

    def body_bytes(self, path):
        return sum(l["bytes"] for l in self.responses(path))

    def wait_for(self, event, path=None, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            for l in self.log(event):
                if path is None or l.get("path") == "/" + path.lstrip("/"):
                    return l
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.02)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr):
            f.close()


# -- the publisher -----------------------------------------------------------

def server_script(version, testserver=TESTSERVER):
    """A per-version app-server: a wrapper that execs the fixture server.
    APPD_TEST_RELEASE tells a running server's release (the `argv` query on
    its socket returns the environment)."""
    return ("#!/bin/sh\nexport APPD_TEST_RELEASE=%s\nexec %s \"$@\"\n# version %s\n"
            % (version, testserver, version)).encode()


def never_ready_script(version):
    return ("#!/bin/sh\nexport APPD_TEST_RELEASE=%s\nexec sleep 600\n# version %s\n"
            % (version, version)).encode()


def run_appd(*args, timeout=30):
    p = subprocess.run([APPD] + list(args), capture_output=True, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    lines = [l for l in p.stdout.splitlines() if l.strip()]
    j = json.loads(lines[-1]) if lines else None
    return p, j


def keygen(path):
    p, j = run_appd("release", "keygen", "--out", str(path))
    assert p.returncode == 0 and j["status"] == "created", (p.stdout, p.stderr)
    return j["publicKey"]


class Release:
    """What one publish() produced."""

    def __init__(self, version, serial, files, urls, manifest, sig):
        self.version = version
        self.serial = serial
        self.files = files          # artifact name -> local file signed
        self.urls = urls            # artifact name -> URL in the manifest
        self.manifest = manifest    # bytes of manifest.json as served
        self.sig = sig

    @property
    def sha256(self):
        """SHA-256 of the app-server artifact as signed."""
        return sha256_file(self.files[TARGET])

    @property
    def webfile(self):
        """Path of the app-server artifact in the web root (URL's last part)."""
        return self.urls[TARGET].rsplit("/", 1)[1]


class Publisher:
    """Owns a signing key, a web root and a work dir; publishes releases
    into the web root with `appd release sign` (manifest.json +
    manifest.json.sig) and tampers with them on request."""

    def __init__(self, workdir, webroot):
        self.work = str(workdir)
        self.webroot = str(webroot)
        os.makedirs(self.work, exist_ok=True)
        os.makedirs(self.webroot, exist_ok=True)
        self.key = os.path.join(self.work, "release.key")
        self.public_key = keygen(self.key)
        self._other = None
        self.releases = []

    @property
    def manifest_path(self):
        return os.path.join(self.webroot, "manifest.json")

    @property
    def sig_path(self):
        return os.path.join(self.webroot, "manifest.json.sig")

    def other_key(self):
        """(path, public key) of a second key, made once."""
        if self._other is None:
            path = os.path.join(self.work, "other.key")
            self._other = (path, keygen(path))
        return self._other

    def add_file(self, fname, data, mode=0o755):
        """Write data to the work dir and the web root; the local path."""
        local = os.path.join(self.work, fname)
        with open(local, "wb") as f:
            f.write(data)
        os.chmod(local, mode)
        shutil.copyfile(local, os.path.join(self.webroot, fname))
        return local

    def publish(self, version, serial, server, *, prefix="", data=None, fname=None,
                target=TARGET, name=None, expires=FUTURE, key=None,
                appd_data=None, appd_prefix="", artifact_server=None, extra=None):
        """Publish app-server `version` (a wrapper script unless `data`),
        URL https://localhost:<port>/<prefix><fname> on `artifact_server`
        (default: `server`), as artifact `target`; with `appd_data`, also
        an appd-<target> artifact; `extra` maps more artifact names to their
        bytes (other targets' builds).  Signs with `key` (default: ours)."""
        art_srv = artifact_server or server
        fname = fname or "app-server-%s-s%d" % (version, serial)
        files, urls, args = {}, {}, []
        local = self.add_file(fname, data if data is not None else server_script(version))
        files[target] = local
        urls[target] = art_srv.url(prefix + fname)
        if appd_data is not None:
            afname = "appd-s%d" % serial
            files[APPD_TARGET] = self.add_file(afname, appd_data)
            urls[APPD_TARGET] = art_srv.url(appd_prefix + afname)
        for n, blob in (extra or {}).items():
            files[n] = self.add_file("%s-s%d" % (n, serial), blob)
            urls[n] = art_srv.url(prefix + "%s-s%d" % (n, serial))
        for n in files:
            args += ["--artifact", "%s=%s@%s" % (n, urls[n], files[n])]
        if name is not None:
            args += ["--name", name]
        p, j = run_appd("release", "sign", "--key", key or self.key,
                        "--version", version, "--serial", str(serial),
                        "--expires", expires, *args, "--out", self.webroot)
        assert p.returncode == 0 and j["status"] == "signed", (p.stdout, p.stderr)
        rel = Release(version, serial, files, urls, self._read(self.manifest_path),
                      self._read(self.sig_path))
        self.releases.append(rel)
        return rel

    @staticmethod
    def _read(path):
        with open(path, "rb") as f:
            return f.read()

    # -- tampering ------------------------------------------------------------
    def flip_manifest_byte(self):
        """Change one byte of the signed manifest (the signature stays):
        the last digit of the version, so it is still valid JSON."""
        raw = self._read(self.manifest_path)
        m = re.search(rb'"version":"[^"]*?(\d)"', raw)
        i = m.end(1) - 1
        flipped = b"%d" % ((int(raw[i:i + 1]) + 1) % 10)
        with open(self.manifest_path, "wb") as f:
            f.write(raw[:i] + flipped + raw[i + 1:])

    def resign(self, edit):
        """Rewrite manifest.json through edit(dict) and sign the new bytes
        with our key by the openssl CLI (for what `release sign` refuses,
        e.g. an expiry in the past)."""
        m = json.loads(self._read(self.manifest_path))
        edit(m)
        raw = json.dumps(m, separators=(",", ":")).encode()
        with open(self.key) as f:
            scalar = bytes.fromhex(f.read().strip())
        # RFC 5915 ECPrivateKey { version 1, privateKey, [0] prime256v1 }
        der = (bytes.fromhex("30310201010420") + scalar +
               bytes.fromhex("a00a06082a8648ce3d030107"))
        keyder = os.path.join(self.work, "key.der")
        with open(keyder, "wb") as f:
            f.write(der)
        os.chmod(keyder, 0o600)
        mpath = os.path.join(self.work, "resigned.json")
        with open(mpath, "wb") as f:
            f.write(raw)
        p = subprocess.run(["openssl", "dgst", "-sha256", "-sign", keyder, "-keyform",
                            "DER", mpath], capture_output=True, timeout=30)
        assert p.returncode == 0, p.stderr
        with open(self.manifest_path, "wb") as f:
            f.write(raw)
        with open(self.sig_path, "w") as f:
            f.write(p.stdout.hex() + "\n")
        return raw

    def serve_other_bytes(self, rel):
        """Replace the served app-server artifact by different bytes of the
        same size (the signed hash no longer matches)."""
        path = os.path.join(self.webroot, rel.webfile)
        data = bytearray(self._read(path))
        data[-2] = ord("X") if data[-2] != ord("X") else ord("Y")
        with open(path, "wb") as f:
            f.write(bytes(data))


def appd_variant(tag):
    """The appd under test with bytes appended: another SHA-256, still runs."""
    with open(APPD, "rb") as f:
        return f.read() + b"\n# appd self-update test %s\n" % tag.encode()


# -- probes of a home ------------------------------------------------------

def readlink(path):
    try:
        return os.readlink(path)
    except OSError:
        return None


def release_dir(version):
    return "releases/%s-%s" % (version, TARGET)


def server_info(sock_path, timeout=5.0):
    """The fixture server's `argv` answer (argv, env, pid, ...), or None
    when nothing answers on sock_path."""
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(sock_path)
        s.sendall(b"argv\n")
        buf = b""
        while True:
            c = s.recv(65536)
            if not c:
                break
            buf += c
        s.close()
        return json.loads(buf)
    except (OSError, ValueError):
        return None


def proc_cmdline(pid):
    from conftest import read_cmdline
    try:
        return [a.decode(errors="replace") for a in read_cmdline(pid) if a]
    except OSError:
        return []


def proc_environ(pid):
    try:
        with open("/proc/%d/environ" % pid, "rb") as f:
            items = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return {}
    return dict(i.split("=", 1) for i in items if "=" in i)


def files_under(top):
    """Every non-directory entry under top (relative paths), sorted."""
    out = []
    for dirpath, dirnames, filenames in os.walk(top):
        for n in filenames + [d for d in dirnames
                              if os.path.islink(os.path.join(dirpath, d))]:
            out.append(os.path.relpath(os.path.join(dirpath, n), top))
    return sorted(out)


def is_executable_file(path):
    try:
        st = os.stat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and bool(st.st_mode & 0o111)
