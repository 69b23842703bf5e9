"""`appd proxy [--start]`: the stdio <-> control socket relay, black-box.

The testserver fixture echoes a connection whose first line is not a
command (tests/fixtures/README.md), so every payload starts with
b"echo\\n".  Pipes on the proxy's stdio exercise its splice(2) mode, a
socketpair or regular files its buffer mode; both run here.
"""
import fcntl
import hashlib
import json
import os
import signal
import socket
import subprocess
import threading
import time

import pytest

import codex_probe
from conftest import APPD, FIXTURES, TESTSERVER, skip_if_emulated

WSSERVER = os.path.join(FIXTURES, "wsserver")
ASAN = os.sep + "asan" + os.sep in APPD
HEAD = b"echo\n"


def proxy(home, *args, **kw):
    kw.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen([APPD, "proxy"] + list(args), env=home.env, **kw)


def run_proxy(home, *args, data=b"", timeout=60):
    return subprocess.run([APPD, "proxy"] + list(args), env=home.env, input=data,
                          capture_output=True, timeout=timeout)


def start_echo(home):
    r = home.start_server("--listen", "{socket}")
    assert r.rc == 0, r
    return r.json["pid"]


def status_field(pid, name):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    return None


class Stdio:
    """The proxy's stdin/stdout as two pipes or one socketpair, seen from
    the test: write(), close_write(), read()."""

    def __init__(self, kind):
        self.kind = kind
        if kind == "pipe":
            self.in_r, self.in_w = os.pipe()
            self.out_r, self.out_w = os.pipe()
            self.child_in, self.child_out = self.in_r, self.out_w
        else:
            self.sock, self.peer = socket.socketpair()
            self.child_in = self.child_out = self.peer.fileno()

    def spawn(self, home, *args):
        p = proxy(home, *args, stdin=self.child_in, stdout=self.child_out)
        if self.kind == "pipe":
            os.close(self.in_r)
            os.close(self.out_w)
        return p

    def write(self, data):
        if self.kind == "pipe":
            view = memoryview(data)
            while view:
                view = view[os.write(self.in_w, view[:1 << 20]):]
        else:
            self.sock.sendall(data)

    def close_write(self):
        if self.kind == "pipe":
            os.close(self.in_w)
        else:
            self.sock.shutdown(socket.SHUT_WR)

    def read(self, n=65536):
        if self.kind == "pipe":
            return os.read(self.out_r, n)
        return self.sock.recv(n)

    def close(self):
        if self.kind == "pipe":
            for fd in (self.in_w, self.out_r):
                try:
                    os.close(fd)
                except OSError:
                    pass
        else:
            self.sock.close()
            self.peer.close()


def writer_thread(io, data, state, repeat=1):
    """Write `data` (`repeat` times) then close; counts in state["written"],
    an OSError (the proxy went away) in state["error"]."""
    def run():
        try:
            for _ in range(repeat):
                view = memoryview(data)
                while view:
                    chunk = view[:1 << 16]
                    io.write(chunk)
                    state["written"] += len(chunk)
                    view = view[len(chunk):]
            io.close_write()
        except OSError as e:
            state["error"] = e
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


# ---------------------------------------------------------------- relaying

def test_echo(home):
    start_echo(home)
    r = run_proxy(home, data=b"hello\nworld\n")
    assert (r.returncode, r.stdout, r.stderr) == (0, b"hello\nworld\n", b""), r


def test_server_closes_first(home):
    """`version` is answered and the server closes: EOF reaches stdout."""
    start_echo(home)
    r = run_proxy(home, data=b"version\n")
    assert r.returncode == 0, r
    assert r.stdout.startswith(b"testserver "), r


@pytest.mark.parametrize("kind", ["pipe", "socketpair"])
def test_large_transfer(home, kind):
    start_echo(home)
    data = HEAD + os.urandom(50 << 20)
    io = Stdio(kind)
    try:
        p = io.spawn(home)
        state = {"written": 0, "error": None}
        w = writer_thread(io, data, state)
        h, n = hashlib.sha256(), 0
        while True:
            chunk = io.read(1 << 20)
            if not chunk:
                break
            h.update(chunk)
            n += len(chunk)
        w.join(60)
        assert p.wait(60) == 0, p.stderr.read()
        assert state["error"] is None
        assert n == len(data)
        assert h.hexdigest() == hashlib.sha256(data).hexdigest()
        assert p.stderr.read() == b""
    finally:
        io.close()


@pytest.mark.parametrize("kind", ["pipe", "socketpair"])
def test_backpressure_bounded_memory(home, kind):
    """A slow stdout reader: the writer stalls when the reader does, and the
    proxy's peak RSS stays bounded while 100 MB flow."""
    start_echo(home)
    block = HEAD + b"\xa5" * ((1 << 20) - len(HEAD))
    total = 100 * len(block)
    io = Stdio(kind)
    try:
        p = io.spawn(home)
        state = {"written": 0, "error": None}
        w = writer_thread(io, block, state, repeat=100)
        got = 0
        hwm_early = None
        stalled = False
        while True:
            chunk = io.read(1 << 16)
            if not chunk:
                break
            got += len(chunk)
            if hwm_early is None and got >= 8 << 20:
                hwm_early = status_field(p.pid, "VmHWM")
            if not stalled and got >= 30 << 20:
                # stop reading: everything in between fills up and the
                # writer must block
                time.sleep(0.5)
                a = state["written"]
                time.sleep(0.5)
                assert state["written"] == a, "writer not held back"
                assert a - got < 4 << 20, (a, got)
                stalled = True
            time.sleep(0.0002)
            if got >= total - (1 << 20) and "hwm_late" not in state:
                state["hwm_late"] = status_field(p.pid, "VmHWM")
        w.join(60)
        assert p.wait(60) == 0, p.stderr.read()
        assert got == total and stalled
        late = state["hwm_late"]
        assert late is not None and hwm_early is not None
        # the back-pressure held above; only the memory figure is left
        skip_if_emulated("VmHWM counts the emulator and its translated code")
        if ASAN:
            assert late - hwm_early < 1024, (hwm_early, late)
        else:
            assert late < 1024, "VmHWM %d KiB" % late
    finally:
        io.close()


def test_half_close(home):
    """stdin EOF first: the echo of everything still arrives, exit 0."""
    start_echo(home)
    data = HEAD + os.urandom(100 << 10)
    io = Stdio("pipe")
    try:
        p = io.spawn(home)
        io.write(data)
        io.close_write()
        time.sleep(0.3)             # the half-close is done before we read
        out = b""
        while True:
            chunk = io.read()
            if not chunk:
                break
            out += chunk
        assert p.wait(30) == 0, p.stderr.read()
        assert out == data
    finally:
        io.close()


def test_files_and_devnull(home, tmp_path):
    """Regular files and /dev/null are always ready (not pollable)."""
    start_echo(home)
    src, dst = tmp_path / "in", tmp_path / "out"
    data = HEAD + os.urandom(3 << 20)
    src.write_bytes(data)
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        p = subprocess.run([APPD, "proxy"], env=home.env, stdin=fi, stdout=fo,
                           stderr=subprocess.PIPE, timeout=60)
    assert p.returncode == 0, p.stderr
    assert dst.read_bytes() == data
    r = subprocess.run([APPD, "proxy"], env=home.env, stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=30)
    assert (r.returncode, r.stdout) == (0, b""), r


def test_tty(home):
    """A terminal on stdin/stdout: watched, its flags never touched; ^D is
    the EOF that half-closes."""
    import pty
    import termios
    start_echo(home)
    master, slave = pty.openpty()
    try:
        attr = termios.tcgetattr(slave)
        attr[1] &= ~termios.OPOST                      # no \n -> \r\n
        attr[3] &= ~(termios.ECHO | termios.ECHOCTL)   # canonical, no echo
        termios.tcsetattr(slave, termios.TCSANOW, attr)
        flags = fcntl.fcntl(slave, fcntl.F_GETFL)
        p = proxy(home, stdin=slave, stdout=slave)
        os.write(master, b"echo\nhello\n")
        out = b""
        deadline = time.monotonic() + 10
        while out != b"echo\nhello\n" and time.monotonic() < deadline:
            out += os.read(master, 100)
        assert out == b"echo\nhello\n"
        assert fcntl.fcntl(slave, fcntl.F_GETFL) == flags
        os.write(master, b"\x04")                      # ^D: EOF on stdin
        assert p.wait(30) == 0, p.stderr.read()
        assert fcntl.fcntl(slave, fcntl.F_GETFL) == flags
    finally:
        os.close(master)
        os.close(slave)


def test_server_reset(home):
    pid = start_echo(home)
    io = Stdio("pipe")
    try:
        p = io.spawn(home)
        state = {"written": 0, "error": None}
        writer_thread(io, HEAD + b"x" * (1 << 20), state, repeat=1024)
        got = 0
        killed = False
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            chunk = io.read(1 << 16)
            if not chunk:
                break
            got += len(chunk)
            if not killed and got >= 4 << 20:
                os.kill(pid, signal.SIGKILL)
                killed = True
        assert killed
        rc = p.wait(30)
        err = p.stderr.read().decode()
        assert rc == 1, (rc, err)
        assert err.startswith("appd: failed to"), err
    finally:
        io.close()


def test_sigpipe_when_stdout_closed_early(home):
    start_echo(home)
    r, w = os.pipe()
    os.close(r)                     # nobody will ever read the proxy's stdout
    try:
        p = proxy(home, stdin=subprocess.PIPE, stdout=w)
    finally:
        os.close(w)
    _, err = p.communicate(HEAD + b"x" * (1 << 20), timeout=30)
    assert p.returncode == 1, (p.returncode, err)       # not -SIGPIPE
    assert b"Broken pipe" in err, err


@pytest.mark.parametrize("kind", ["pipe", "socketpair"])
def test_reader_goes_away_mid_stream(home, kind):
    start_echo(home)
    io = Stdio(kind)
    try:
        p = io.spawn(home)
        state = {"written": 0, "error": None}
        writer_thread(io, HEAD + b"y" * (1 << 20), state, repeat=200)
        got = 0
        while got < 2 << 20:
            got += len(io.read(1 << 16))
        if kind == "pipe":
            os.close(io.out_r)
            io.out_r = -1
        else:
            # On AF_UNIX a shutdown(SHUT_RD) alone wakes nobody: the proxy
            # learns of it only from a write, and close() is deferred
            # while the writer thread sits in send().  If the proxy's
            # buffers filled first (the echo server blocked on us), that
            # is a deadlock of this test, not of the proxy.  SHUT_RDWR is
            # the client going away: it wakes the proxy and the writer.
            io.sock.shutdown(socket.SHUT_RDWR)
            io.sock.close()
        rc = p.wait(30)
        assert rc == 1, (rc, p.stderr.read())
    finally:
        io.close()


def test_stdio_flags_restored_and_signals(home):
    """O_NONBLOCK set on a socket stdin/stdout is put back, at the end and
    when a signal ends the proxy (which then dies of it)."""
    start_echo(home)
    for sig in (None, signal.SIGTERM, signal.SIGHUP):
        io = Stdio("socketpair")
        try:
            assert os.get_blocking(io.peer.fileno())
            p = io.spawn(home)
            io.write(HEAD)
            assert io.read() == HEAD
            if sig is None:
                io.close_write()
                assert io.read() == b""
                assert p.wait(30) == 0
            else:
                p.send_signal(sig)
                assert p.wait(30) == -sig
            assert os.get_blocking(io.peer.fileno()), sig
        finally:
            io.close()


# ---------------------------------------------------------------- failures before relaying

def one_json_line(r):
    lines = r.stdout.decode().splitlines()
    assert len(lines) == 1, r
    return json.loads(lines[0])


def test_nothing_listening(home):
    r = run_proxy(home, data=b"hello\n")
    assert r.returncode == 4, r
    j = one_json_line(r)
    assert j["status"] == "error" and j["error"] == "notRunning", j
    assert j["socketPath"] == home.socket
    assert b"failed to connect" in r.stderr
    # a stale socket inode nobody listens on: connection refused
    os.makedirs(home.file("run"), mode=0o700)
    os.chmod(home.path, 0o700)
    s = socket.socket(socket.AF_UNIX)
    s.bind(home.socket)
    s.close()
    r = run_proxy(home, data=b"hello\n")
    assert r.returncode == 4 and one_json_line(r)["error"] == "notRunning", r


def test_unsafe_home(home):
    os.makedirs(home.path, mode=0o700)
    os.chmod(home.path, 0o777)
    r = run_proxy(home)
    assert r.returncode == 1, r
    assert one_json_line(r)["error"] == "unsafeHome"


def test_usage(home):
    r = run_proxy(home, "--bogus")
    assert r.returncode == 2 and one_json_line(r)["error"] == "usage", r


def test_start_flag(home):
    home.write_settings({"server": {"command": [TESTSERVER, "--listen", "{socket}"]}})
    assert home.run("status").json["status"] == "stopped"
    r = run_proxy(home, "--start", data=b"hello\n")
    assert (r.returncode, r.stdout) == (0, b"hello\n"), r     # no start JSON
    st = home.run("status").json
    assert st["status"] == "running", st
    # already running: relayed at once, nothing restarted
    r = run_proxy(home, "--start", data=b"again\n")
    assert (r.returncode, r.stdout) == (0, b"again\n"), r
    assert home.run("status").json["pid"] == st["pid"]


def test_start_flag_failure_is_json(home):
    home.write_settings({"server": {"command": [TESTSERVER, "--exit-immediately", "3"]}})
    r = run_proxy(home, "--start", data=b"hello\n")
    assert r.returncode == 6, r
    j = one_json_line(r)
    assert j["error"] == "exitedBeforeReady", j
    assert j["managedPath"] == TESTSERVER


# ---------------------------------------------------------------- Codex protocol

def test_codex_websocket_through_proxy(home):
    """A client speaking the Codex WebSocket + JSON-RPC protocol over the
    proxy's stdio (codex_probe's code on a socketpair) gets the initialize
    reply from the wsserver fixture."""
    home.write_settings({"server": {"command": [WSSERVER, "--listen", "{socket}",
                                                "--version-string", "7.7.7"],
                                    "readiness": "codex-initialize"}})
    r = home.run("start")
    assert r.rc == 0, r
    io = Stdio("socketpair")
    try:
        p = io.spawn(home)
        conn = codex_probe._Conn(io.sock, time.monotonic() + 10)
        codex_probe.handshake(conn)
        req = {"id": 1, "method": "initialize",
               "params": {"clientInfo": {"name": "t", "title": "t", "version": "1"}}}
        conn.send(codex_probe._frame(0x1, json.dumps(req, separators=(",", ":")).encode()))
        msg = json.loads(codex_probe._read_message(conn))
        assert msg["id"] == 1, msg
        assert msg["result"]["userAgent"].split("/", 1)[1].startswith("7.7.7"), msg
        conn.send(codex_probe._frame(0x8, b"\x03\xe8"))
        io.close_write()
        assert p.wait(30) == 0, p.stderr.read()
    finally:
        io.close()
