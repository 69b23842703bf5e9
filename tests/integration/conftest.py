"""Shared fixtures for the black-box tests of build/appd.

Every test gets its own APPD_HOME in a short temp dir (Unix socket paths
must fit sun_path) and tears down whatever it started: `appd stop`, then
a sweep that SIGKILLs any process still carrying the test's home marker
in its environment.
"""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

APPD = os.environ.get("APPD", os.path.abspath("build/appd"))
FIXTURES = os.environ.get("APPD_FIXTURES", os.path.abspath("build/fixtures"))
TESTSERVER = os.path.join(FIXTURES, "testserver")

# The target of the binary under test (make integration-target sets it);
# by default this host's. The fixtures and the test driver stay native.
_HOST_ARCH = {"amd64": "x86_64", "arm64": "aarch64"}.get(os.uname().machine,
                                                         os.uname().machine)
HOST_TARGET = _HOST_ARCH + "-linux"
TARGET = os.environ.get("APPD_TARGET") or HOST_TARGET
# Under qemu-user (binfmt_misc) appd's /proc/PID/exe is the emulator, its
# cmdline starts with the emulator and the file, its memory figures include
# the emulator's, the emulator's own threads make system calls, and qemu
# 7.2 refuses PR_SET_CHILD_SUBREAPER. i386 runs natively on x86_64.
EMULATED = TARGET not in (HOST_TARGET, "i386-linux" if HOST_TARGET == "x86_64-linux" else "")


def skip_if_emulated(reason):
    """Skip a test whose subject qemu-user makes meaningless; the reason
    is printed with pytest -rs."""
    if EMULATED:
        pytest.skip("%s under qemu-user: %s" % (TARGET, reason))


def read_cmdline(pid):
    """argv of `pid` as bytes, without the qemu-user binfmt_misc prefix
    (with the P flag the kernel passes the interpreter and the file's path
    before the original argv)."""
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        args = f.read().split(b"\0")
    if EMULATED and args and (b"qemu" in args[0] and
                              (args[0].endswith(b"-binfmt-P") or args[0].endswith(b"-static"))):
        args = args[2:]
    return args


def proc_image(pid):
    """The program file `pid` runs: /proc/PID/exe natively; under qemu-user
    the file binfmt_misc handed the emulator (the second cmdline word)."""
    if EMULATED:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            args = f.read().split(b"\0")
        if len(args) > 1 and b"qemu" in args[0]:
            return args[1].decode()
    return os.readlink("/proc/%d/exe" % pid)


class Result:
    def __init__(self, proc):
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        lines = [l for l in proc.stdout.splitlines() if l.strip()]
        self.json = None
        if lines:
            try:
                self.json = json.loads(lines[-1])
            except ValueError:
                self.json = None
        self.nlines = len(lines)

    def __repr__(self):
        return "rc=%r stdout=%r stderr=%r" % (self.rc, self.stdout, self.stderr)


class Home:
    def __init__(self, path):
        self.path = path
        self.env = dict(os.environ)
        self.env["APPD_HOME"] = path
        self.env["APPD_TEST_MARK"] = path

    def run(self, *args, timeout=60, env=None):
        e = dict(self.env)
        if env:
            e.update(env)
        p = subprocess.run([APPD] + list(args), env=e, capture_output=True,
                           text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        return Result(p)

    def popen(self, *args, env=None):
        e = dict(self.env)
        if env:
            e.update(env)
        return subprocess.Popen([APPD] + list(args), env=e, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True,
                                stdin=subprocess.DEVNULL)

    def file(self, rel):
        return os.path.join(self.path, rel)

    def read(self, rel):
        with open(self.file(rel)) as f:
            return f.read()

    def read_json(self, rel):
        return json.loads(self.read(rel))

    @property
    def socket(self):
        return self.file("run/app-server.sock")

    def start_server(self, *server_args, timeout=None, env=None):
        args = ["start"]
        if timeout is not None:
            args += ["--timeout", str(timeout)]
        args += ["--", TESTSERVER] + list(server_args)
        return self.run(*args, env=env)

    def write_settings(self, obj):
        os.makedirs(self.path, mode=0o700, exist_ok=True)
        with open(self.file("settings.json"), "w") as f:
            json.dump(obj, f)


def marked_pids(mark):
    """Live (non-zombie) processes whose environment carries `mark`."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/environ" % d, "rb") as f:
                env = f.read()
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
        except OSError:
            continue
        state = stat.rsplit(")", 1)[1].split()[0]
        if state in ("Z", "X"):
            continue
        if ("APPD_TEST_MARK=%s" % mark).encode() + b"\0" in env:
            out.append(int(d))
    return out


def pid_alive(pid):
    """True when pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def wait_until(pred, timeout=10.0, interval=0.02):
    # a bound, not a measurement: under emulation everything is slower
    deadline = time.monotonic() + timeout * (3 if EMULATED else 1)
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return pred()


@pytest.fixture
def home():
    d = tempfile.mkdtemp(prefix="appd-", dir="/tmp")
    os.chmod(d, 0o700)
    h = Home(os.path.join(d, "h"))
    yield h
    try:
        h.run("stop", "--grace", "2", timeout=30)
    except Exception:
        pass
    for pid in marked_pids(h.path):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    shutil.rmtree(d, ignore_errors=True)
