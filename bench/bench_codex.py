#!/usr/bin/python3
"""appd vs `codex app-server daemon`, side by side, same codex binary (stdlib only).

One run, alternating A/B over N rounds (default 15, at least 10):

  A = appd, codex profile: APPD_HOME=$tmp/a with settings.json {"profile":"codex"}
      and packages/current -> releases/0.169.0-x86_64-linux/bin/codex (symlink to
      the npm binary); CODEX_HOME=$tmp/ac in the environment of `appd start`.
  B = the reference, `codex app-server daemon` of the same binary:
      CODEX_HOME=$tmp/r with the managed install the daemon itself creates
      (packages/app-server-daemon/releases/<ver>-<target>/bin/codex,
      current -> releases/<ver>-<target>, auto-update-version, selection-history),
      the binary hard-linked (same inode, nothing copied; a symlink when the link
      cannot be made: then the daemon does not start its updater).
  D = the app-server alone: `codex app-server --listen unix://$tmp/d/s.sock`,
      spawned directly, timed until the socket accepts and until it answers
      `initialize` (the floor for any manager's start-to-ready).

Each round: D, then one full cycle per stack (start, VERSION_RUNS x version,
restart, stop) in alternating order (A,B / B,A). Then both stacks run side by
side for IDLE seconds and everything resident in each CODEX_HOME / APPD_HOME
marked process tree besides the app-server is summed (VmRSS).

Conditions, the same for all three: every CODEX_HOME holds a config.toml with
`[analytics] enabled = false`; the whole run is in a fresh network namespace
(no network at all: the reference's updater and the app-server's background
fetches fail at once), under a child subreaper that reaps orphans at once (this
VM's pid 1 reaps orphaned zombies only every ~2 s). The run also times the
reference's `stop` as shipped (no config.toml: the daemon launches the server
with --analytics-default-enabled) for a few rounds.

Prints a markdown section on stdout; progress on stderr. Env: APPD,
CODEX_BIN (else tests/fetch-codex.sh), BENCH_CODEX_ROUNDS, BENCH_CODEX_VERSION_RUNS,
BENCH_IDLE_SECONDS, BENCH_CODEX_SHIPPED_ROUNDS, BENCH_CODEX_ALLOW_NETWORK=1
(run even when no network namespace can be made).
"""

import ctypes
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import BenchError, cpu_model, loadavg, pct
from benchlib import log as _log


def log(msg):
    _log(msg, "bench-codex")


# the same WebSocket + initialize client the integration tests use
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
from codex_probe import ProbeError, probe  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
APPD = os.path.abspath(os.environ.get("APPD", os.path.join(ROOT, "build", "appd")))

ROUNDS = max(10, int(os.environ.get("BENCH_CODEX_ROUNDS", "15")))
VERSION_RUNS = max(1, int(os.environ.get("BENCH_CODEX_VERSION_RUNS", "5")))
IDLE_SECONDS = float(os.environ.get("BENCH_IDLE_SECONDS", "2"))
SHIPPED_ROUNDS = max(0, int(os.environ.get("BENCH_CODEX_SHIPPED_ROUNDS", "2")))
SETTLE = 0.4          # s idle after start/restart before the next command
CMD_TIMEOUT = 60      # s per command
READY_TIMEOUT = 30    # s for the directly spawned app-server

APPD_RELEASE = "0.169.0-x86_64-linux"
REF_RELEASE = "0.169.0-x86_64-unknown-linux-musl"
CONFIG_TOML = "[analytics]\nenabled = false\n"
RC_ENV = "CODEX_INTERNAL_APP_SERVER_REMOTE_CONTROL_DISABLED"

HEADING = "appd vs codex app-server daemon (codex 0.169.0)"


# ------------------------------------------------------------------ outer: isolation

CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000
PR_SET_CHILD_SUBREAPER = 36


def find_codex():
    c = os.environ.get("CODEX_BIN")
    if c:
        return os.path.realpath(c) if os.access(c, os.X_OK) else None
    try:
        cp = subprocess.run(["bash", os.path.join(ROOT, "tests", "fetch-codex.sh")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600)
    except (OSError, subprocess.SubprocessError) as e:
        log("fetch-codex.sh: %s" % e)
        return None
    if cp.returncode != 0:
        log("fetch-codex.sh exit %d: %s" % (cp.returncode, cp.stderr.decode(errors="replace").strip()))
        return None
    path = cp.stdout.decode().strip().splitlines()[-1] if cp.stdout.strip() else ""
    return path if path and os.access(path, os.X_OK) else None


def isolate_network():
    """Move this process into a new network namespace; describe how, or None."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) == 0:
        return "new network namespace (unshare CLONE_NEWNET; no interface up)"
    uid, gid = os.getuid(), os.getgid()
    if libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0:
        try:
            with open("/proc/self/setgroups", "w") as f:
                f.write("deny")
            with open("/proc/self/uid_map", "w") as f:
                f.write("%d %d 1" % (uid, uid))
            with open("/proc/self/gid_map", "w") as f:
                f.write("%d %d 1" % (gid, gid))
        except OSError as e:
            log("user namespace maps: %s" % e)
        return "new user + network namespace (no interface up)"
    return None


def outer():
    if not os.access(APPD, os.X_OK):
        log("missing %s (run: make)" % APPD)
        return 1
    codex = find_codex()          # may need the npm registry: before isolation
    if not codex:
        sys.stdout.write("## %s\n\nSkipped: the codex 0.169.0 binary is not available "
                         "(`bash tests/fetch-codex.sh` failed; see stderr).\n" % HEADING)
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    reaper = libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    iso = isolate_network()
    if not iso:
        log("cannot create a network namespace")
    env = dict(os.environ, BENCH_CODEX_INNER="1", BENCH_CODEX_BIN=codex,
               BENCH_CODEX_NETNS=iso or "", BENCH_CODEX_REAPER="1" if reaper else "")
    sys.stdout.flush()
    child = os.fork()
    if child == 0:
        try:
            os.execve(sys.executable, [sys.executable, os.path.abspath(__file__)], env)
        finally:
            os._exit(127)

    def forward(signum, _frame):
        try:
            os.kill(child, signum)
        except OSError:
            pass
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, forward)
    rc = 1
    while True:           # a tiny init: reap every orphan the moment it exits
        try:
            pid, st = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        if pid == child:
            rc = os.waitstatus_to_exitcode(st)
            break
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                break
        except ChildProcessError:
            break
    return rc if rc >= 0 else 128 - rc

# ------------------------------------------------------------------ helpers

def med(v):
    return statistics.median(v) if v else float("nan")


def timed_run(argv, env):
    t0 = time.perf_counter()
    cp = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        stdin=subprocess.DEVNULL, timeout=CMD_TIMEOUT)
    return (time.perf_counter() - t0) * 1000.0, cp


def parse_json(cp, what):
    try:
        return json.loads(cp.stdout.decode().strip().splitlines()[-1])
    except (ValueError, UnicodeDecodeError, IndexError):
        raise BenchError("%s: exit %d, no JSON on stdout: %r; stderr: %s"
                         % (what, cp.returncode, cp.stdout[:300],
                            cp.stderr.decode(errors="replace")[-800:]))


def proc_state(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return rest[0], int(rest[1])
    except (OSError, IndexError, ValueError):
        return None, None


def alive(pid):
    st, _ = proc_state(pid)
    return st is not None and st != "Z"


def wait_gone(pid, timeout):
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return " ".join(a.decode(errors="replace") for a in f.read().split(b"\0") if a)
    except OSError:
        return "?"


def marked(marker):
    """Live processes whose environment holds the exact entry `marker` (bytes)."""
    out = []
    me = os.getpid()
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == me:
            continue
        pid = int(d)
        try:
            with open("/proc/%d/environ" % pid, "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if marker in env and alive(pid):
            out.append(pid)
    return sorted(out)


def descendants(root, pids):
    """root and its descendants among pids (by ppid)."""
    parent = {p: proc_state(p)[1] for p in pids}
    keep = {root}
    changed = True
    while changed:
        changed = False
        for p, pp in parent.items():
            if p not in keep and pp in keep:
                keep.add(p)
                changed = True
    return keep


def mem(pid):
    """VmRSS / RssAnon / RssFile (bytes) and Pss (bytes) of one process."""
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                    out[k] = int(v.split()[0]) * 1024
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    out["Pss"] = int(line.split()[1]) * 1024
    except OSError:
        pass
    return out


def fmt_ms(v):
    return "%.1f ms" % v if v == v else "—"


def fmt_kib(b):
    if b >= 10 * 1024 * 1024:
        return "%.1f MiB" % (b / 1048576.0)
    return "%.0f KiB" % (b / 1024.0)


def ratio(a, b):
    return "%.3f×" % (a / b) if b else "—"


def verdict(ok):
    return "PASS" if ok else "**MISS**"


# ------------------------------------------------------------------ the stacks

def write(path, text):
    with open(path, "w") as f:
        f.write(text)


class Stack:
    """The four timed commands; subclasses give cmd(sub, wanted statuses)."""

    def start(self):
        return self.cmd("start", ("started",))

    def version(self):
        return self.cmd("version", ("running",))

    def restart(self):
        return self.cmd("restart", ("restarted",))

    def stop(self):
        return self.cmd("stop", ("stopped",))


class Appd(Stack):
    name = "appd"

    def __init__(self, base, codex):
        self.home = os.path.join(base, "a")
        self.chome = os.path.join(base, "ac")
        rel = os.path.join(self.home, "packages", "releases", APPD_RELEASE, "bin")
        os.makedirs(rel)
        os.chmod(self.home, 0o700)
        os.symlink(codex, os.path.join(rel, "codex"))
        os.symlink("releases/" + APPD_RELEASE, os.path.join(self.home, "packages", "current"))
        write(os.path.join(self.home, "settings.json"), '{"profile":"codex"}\n')
        os.makedirs(self.chome)
        write(os.path.join(self.chome, "config.toml"), CONFIG_TOML)
        self.env = dict(os.environ, APPD_HOME=self.home, CODEX_HOME=self.chome)
        self.marker = ("APPD_HOME=" + self.home).encode()
        self.server = None
        self.sup = None

    def cmd(self, sub, want):
        ms, cp = timed_run([APPD, sub], self.env)
        obj = parse_json(cp, "appd " + sub)
        if cp.returncode != 0 or obj.get("status") not in want:
            raise BenchError("appd %s: exit %d %s" % (sub, cp.returncode, cp.stdout.decode()[:400]))
        if isinstance(obj.get("pid"), int):
            self.server = obj["pid"]
        if isinstance(obj.get("supervisorPid"), int):
            self.sup = obj["supervisorPid"]
        return ms, obj, cp

    def stop_quietly(self):
        try:
            subprocess.run([APPD, "stop", "--grace", "5"], env=self.env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=CMD_TIMEOUT)
        except (OSError, subprocess.SubprocessError) as e:
            log("cleanup: appd stop: %s" % e)


class Ref(Stack):
    name = "codex app-server daemon"

    def __init__(self, base, codex, sub="r", config=True, hardlink=True):
        self.codex = codex
        self.chome = os.path.join(base, sub)
        root = os.path.join(self.chome, "packages", "app-server-daemon")
        rel = os.path.join(root, "releases", REF_RELEASE)
        os.makedirs(os.path.join(rel, "bin"))
        binpath = os.path.join(rel, "bin", "codex")
        self.layout = "symlink"
        if hardlink:
            try:
                os.link(codex, binpath)
                self.layout = "hardlink"
            except OSError as e:
                log("hard link of the codex binary failed (%s): using a symlink" % e)
        if self.layout == "symlink":
            os.symlink(codex, binpath)
        os.symlink("bin/codex", os.path.join(rel, "codex"))
        pkg = os.path.join(os.path.dirname(os.path.dirname(codex)), "codex-package.json")
        if os.path.isfile(pkg):
            shutil.copyfile(pkg, os.path.join(rel, "codex-package.json"))
        cur = os.path.join(root, "current")
        os.symlink("releases/" + REF_RELEASE, cur)
        # what the daemon's own install writes: the latest-channel release name
        # and the selection record (release, then dev/inode/mtime of `current`)
        write(os.path.join(root, "auto-update-version"), REF_RELEASE)
        st = os.lstat(cur)
        write(os.path.join(root, "selection-history"), "%s\n\n%d %d %d.%09d\n" % (
            REF_RELEASE, st.st_dev, st.st_ino, st.st_mtime_ns // 10**9, st.st_mtime_ns % 10**9))
        if config:
            write(os.path.join(self.chome, "config.toml"), CONFIG_TOML)
        self.env = dict(os.environ, CODEX_HOME=self.chome)
        self.marker = ("CODEX_HOME=" + self.chome).encode()
        self.server = None
        self.installed_msgs = 0

    def cmd(self, sub, want):
        ms, cp = timed_run([self.codex, "app-server", "daemon", sub], self.env)
        obj = parse_json(cp, "codex app-server daemon " + sub)
        if cp.returncode != 0 or obj.get("status") not in want:
            raise BenchError("codex app-server daemon %s: exit %d %s %s" % (
                sub, cp.returncode, cp.stdout.decode()[:400], cp.stderr.decode(errors="replace")[-800:]))
        if b"Installing daemon" in cp.stderr:
            self.installed_msgs += 1
        if isinstance(obj.get("pid"), int):
            self.server = obj["pid"]
        return ms, obj, cp

    def stop_quietly(self):
        try:
            subprocess.run([self.codex, "app-server", "daemon", "stop"], env=self.env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=CMD_TIMEOUT)
        except (OSError, subprocess.SubprocessError) as e:
            log("cleanup: codex app-server daemon stop: %s" % e)


class Direct:
    """The app-server alone, spawned by this script."""

    def __init__(self, base, codex):
        self.codex = codex
        self.chome = os.path.join(base, "d")
        os.makedirs(self.chome)
        write(os.path.join(self.chome, "config.toml"), CONFIG_TOML)
        self.sock = os.path.join(self.chome, "s.sock")
        self.env = dict(os.environ, CODEX_HOME=self.chome)
        self.env[RC_ENV] = "1"          # what appd and the daemon set (remote control off)
        self.marker = ("CODEX_HOME=" + self.chome).encode()
        self.proc = None

    def once(self):
        """(ms to accept, ms to initialize answered, ms SIGTERM -> exit, exit status)."""
        try:
            os.unlink(self.sock)
        except FileNotFoundError:
            pass
        err = open(os.path.join(self.chome, "stderr.log"), "ab")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen([self.codex, "app-server", "--listen", "unix://" + self.sock],
                                     env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        err.close()
        deadline = time.monotonic() + READY_TIMEOUT
        t_acc = t_init = None
        while t_init is None:
            if self.proc.poll() is not None:
                raise BenchError("direct app-server exited before ready: %s" % self.proc.returncode)
            if time.monotonic() > deadline:
                raise BenchError("direct app-server not ready after %d s" % READY_TIMEOUT)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(self.sock)
            except (FileNotFoundError, ConnectionRefusedError):
                s.close()
                time.sleep(0.0005)
                continue
            if t_acc is None:
                t_acc = time.perf_counter()
            s.close()
            try:
                probe(self.sock, timeout=5)
                t_init = time.perf_counter()
            except (ProbeError, OSError):
                time.sleep(0.0005)
        time.sleep(SETTLE)
        ts = time.perf_counter()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        te = time.perf_counter()
        self.proc = None
        return (t_acc - t0) * 1e3, (t_init - t0) * 1e3, (te - ts) * 1e3, rc


# ------------------------------------------------------------------ the run

class Bench:
    def __init__(self, codex):
        self.codex = codex
        self.base = tempfile.mkdtemp(prefix="cxb.", dir="/tmp")   # short: sun_path
        self.appd = Appd(self.base, codex)
        self.ref = Ref(self.base, codex)
        self.direct = Direct(self.base, codex)
        self.extra_refs = []
        self.s = {k: {"appd": [], "ref": []} for k in ("start", "version", "restart", "stop")}
        self.d = {"accept": [], "init": [], "term": [], "cliver": []}
        self.cold = {}
        self.notes = []
        self.rss = {}
        self.leftover_after_stop = {}
        self.load_before = loadavg()
        self.daemon_dir = "/tmp/codex-daemon-%d" % os.getuid()
        self.daemon_dir_before = self._daemon_dir_list()

    def _daemon_dir_list(self):
        try:
            return set(os.listdir(self.daemon_dir))
        except OSError:
            return set()

    def cycle(self, st, record=True, settle=SETTLE):
        k = "appd" if st is self.appd else "ref"
        ms, _, _ = st.start()
        if record:
            self.s["start"][k].append(ms)
        time.sleep(settle)
        for _ in range(VERSION_RUNS):
            ms, _, _ = st.version()
            if record:
                self.s["version"][k].append(ms)
        ms, _, _ = st.restart()
        if record:
            self.s["restart"][k].append(ms)
        time.sleep(settle)
        srv = st.server
        ms, _, _ = st.stop()
        if record:
            self.s["stop"][k].append(ms)
        if srv and not wait_gone(srv, 5):
            raise BenchError("%s: app-server %d still alive 5 s after stop" % (st.name, srv))
        return ms

    def warmup(self):
        log("cold runs (fresh CODEX_HOMEs)")
        a, i, t, rc = self.direct.once()
        self.cold["direct"] = i
        ms, _, _ = self.appd.start()
        self.cold["appd"] = ms
        time.sleep(SETTLE)
        self.appd.stop()
        ms, _, cp = self.ref.start()
        self.cold["ref"] = ms
        time.sleep(SETTLE)
        self.ref.stop()
        # one uncounted full cycle each
        self.cycle(self.appd, record=False)
        self.cycle(self.ref, record=False)

    def rounds(self):
        for i in range(ROUNDS):
            a, ini, term, rc = self.direct.once()
            self.d["accept"].append(a)
            self.d["init"].append(ini)
            self.d["term"].append(term)
            for _ in range(2):
                ms, cp = timed_run([self.codex, "--version"], self.direct.env)
                self.d["cliver"].append(ms)
            order = (self.appd, self.ref) if i % 2 == 0 else (self.ref, self.appd)
            for st in order:
                self.cycle(st)
            log("round %d/%d: direct init %.0f ms; appd start %.0f stop %.0f; ref start %.0f stop %.0f"
                % (i + 1, ROUNDS, ini, self.s["start"]["appd"][-1], self.s["stop"]["appd"][-1],
                   self.s["start"]["ref"][-1], self.s["stop"]["ref"][-1]))

    def resident(self, st, server):
        pids = marked(st.marker)
        srv = descendants(server, pids) if server else set()
        others = [p for p in pids if p not in srv]
        total = {"VmRSS": 0, "RssAnon": 0, "RssFile": 0, "Pss": 0}
        desc = []
        for p in others:
            m = mem(p)
            for k in total:
                total[k] += m.get(k, 0)
            desc.append("pid %d `%s` VmRSS %s (anon %s, file %s, Pss %s)" % (
                p, cmdline(p)[-90:], fmt_kib(m.get("VmRSS", 0)), fmt_kib(m.get("RssAnon", 0)),
                fmt_kib(m.get("RssFile", 0)), fmt_kib(m.get("Pss", 0))))
        srvmem = mem(server) if server else {}
        return total, desc, srvmem, pids

    def idle_rss(self):
        log("idle RSS: both stacks running, %.1f s idle" % IDLE_SECONDS)
        self.appd.start()
        self.ref.start()
        time.sleep(IDLE_SECONDS)
        for k, st in (("appd", self.appd), ("ref", self.ref)):
            self.rss[k] = self.resident(st, st.server)
        if self.appd.sup not in self.rss["appd"][3]:
            self.notes.append("the supervisor pid %s was not found by its APPD_HOME marker"
                              % self.appd.sup)
        self.appd.stop()
        self.ref.stop()
        time.sleep(0.3)
        for k, st in (("appd", self.appd), ("ref", self.ref)):
            self.leftover_after_stop[k] = [(p, cmdline(p)) for p in marked(st.marker)]

    def shipped(self):
        """The reference as shipped: no config.toml (analytics on via the daemon's flag)."""
        if SHIPPED_ROUNDS == 0:
            return
        r2 = Ref(self.base, self.codex, sub="r2", config=False)
        self.extra_refs.append(r2)
        log("reference as shipped (analytics on), %d stop(s)" % SHIPPED_ROUNDS)
        self.shipped_stop = []
        for _ in range(SHIPPED_ROUNDS):
            r2.start()
            time.sleep(SETTLE)
            ms, _, _ = r2.stop()
            self.shipped_stop.append(ms)

    def symlink_layout(self):
        """The reference with the release binary as a symlink: is an updater started?"""
        r3 = Ref(self.base, self.codex, sub="r3", hardlink=False)
        self.extra_refs.append(r3)
        r3.start()
        time.sleep(1.0)
        total, desc, _, _ = self.resident(r3, r3.server)
        self.symlink_res = (total["VmRSS"], desc)
        r3.stop()

    # -------------------------------------------------------------- cleanup
    def cleanup(self):
        if self.direct.proc is not None and self.direct.proc.poll() is None:
            self.direct.proc.kill()
            self.direct.proc.wait()
        self.appd.stop_quietly()
        for r in [self.ref] + self.extra_refs:
            r.stop_quietly()
        markers = [self.appd.marker, ("CODEX_HOME=" + self.appd.chome).encode(),
                   self.direct.marker] + [r.marker for r in [self.ref] + self.extra_refs]
        killed = []
        for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
            left = sorted({p for m in markers for p in marked(m)})
            for p in left:
                killed.append((p, cmdline(p), sig))
                try:
                    os.kill(p, sig)
                except OSError:
                    pass
            for p in left:
                wait_gone(p, wait)
        self.killed = [(p, c) for p, c, s in killed if s == signal.SIGTERM]
        # sockets the daemon created under /tmp/codex-daemon-<uid>, linked from our homes
        removed = 0
        for r in [self.ref] + self.extra_refs:
            sd = os.path.join(r.chome, "app-server-daemon")
            try:
                names = os.listdir(sd)
            except OSError:
                continue
            for n in names:
                p = os.path.join(sd, n)
                if os.path.islink(p):
                    t = os.readlink(p)
                    if t.startswith(self.daemon_dir + "/"):
                        for x in (t, t + ".lock"):
                            try:
                                os.unlink(x)
                                removed += 1
                            except OSError:
                                pass
        self.daemon_dir_removed = removed
        self.daemon_dir_new = sorted(self._daemon_dir_list() - self.daemon_dir_before)
        self.final = sorted({p for m in markers for p in marked(m)})
        self.final_ps = self._ps_check()
        shutil.rmtree(self.base, ignore_errors=True)

    def _ps_check(self):
        try:
            out = subprocess.run(["ps", "-eo", "pid,args"], stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, timeout=10).stdout.decode()
        except (OSError, subprocess.SubprocessError):
            return None
        return [l.strip() for l in out.splitlines() if self.base in l]

    # -------------------------------------------------------------- report
    def report(self, error=None):
        w = sys.stdout.write
        s, d = self.s, self.d
        w("## %s\n\n" % HEADING)
        w("Reproduce: `make && make fixtures && make bench` (`bench/run.sh` runs "
          "`bench/bench_codex.py` after the lifecycle bench; `/usr/bin/python3 bench/bench_codex.py` "
          "alone).\n\n")
        model = cpu_model()
        w("- codex: `%s` (`codex --version`: %s), %d bytes; the same file is the reference's CLI, "
          "daemon, updater and app-server and appd's managed binary.\n"
          % (self.codex, getattr(self, "codex_version", "?"), os.path.getsize(self.codex)))
        w("- appd: `%s`, %d bytes.\n" % (APPD, os.path.getsize(APPD)))
        w("- machine: nproc=%s, `%s %s`, CPU `%s`; load average before / after: %s / %s.\n"
          % (os.cpu_count(), platform.system(), platform.release(), model, self.load_before, loadavg()))
        w("- isolation: %s; orphan reaping: %s.\n" % (
            os.environ.get("BENCH_CODEX_NETNS") or "**none** (BENCH_CODEX_ALLOW_NETWORK=1)",
            "this script is the child subreaper (reaps at once)" if os.environ.get("BENCH_CODEX_REAPER")
            else "pid 1"))
        w("- method: %d rounds; each round spawns the app-server directly once, then runs one full "
          "cycle per stack (start, %d × version, restart, stop; %.1f s idle after start and restart) "
          "in alternating order (A,B then B,A); one cold and one full warm-up cycle per stack "
          "before, not counted. Wall time = `time.perf_counter()` around `subprocess.run` "
          "(stdout+stderr captured). Every CODEX_HOME has `config.toml` = `[analytics] enabled = "
          "false` (see below). Ratio = appd / reference.\n"
          % (ROUNDS, VERSION_RUNS, SETTLE))
        w("- reference layout: `$CODEX_HOME/packages/app-server-daemon/releases/%s/bin/codex` "
          "(%s to the npm binary), `current -> releases/%s`, `auto-update-version`, "
          "`selection-history`, `codex-package.json`; appd: `$APPD_HOME/packages/releases/%s/bin/codex` "
          "(symlink), `current -> releases/%s`, `settings.json` = `{\"profile\":\"codex\"}`.\n\n"
          % (REF_RELEASE, self.ref.layout, REF_RELEASE, APPD_RELEASE, APPD_RELEASE))

        rows = []
        di = med(d["init"])
        if s["start"]["appd"] and s["start"]["ref"] and d["init"]:
            a, r = med(s["start"]["appd"]), med(s["start"]["ref"])
            rows.append(("`start` to ready, wall time (n=%d)" % ROUNDS, fmt_ms(a), fmt_ms(r),
                         ratio(a, r), "≤ own readiness + 5 ms = %s" % fmt_ms(di + 5),
                         verdict(a - di <= 5)))
            rows.append(("`start` minus the app-server's own readiness (medians)",
                         fmt_ms(a - di), fmt_ms(r - di), ratio(a - di, r - di), "≤ 5 ms (appd)",
                         verdict(a - di <= 5)))
            rows.append(("app-server's own readiness, spawned directly: socket accepts",
                         fmt_ms(med(d["accept"])), "(same)", "—", "context", "info"))
            rows.append(("app-server's own readiness, spawned directly: `initialize` answered",
                         fmt_ms(di), "(same)", "—", "context", "info"))
        for key, label, target in (("version", "`version`", 0.5), ("restart", "`restart`", None),
                                   ("stop", "`stop`", 0.5)):
            if s[key]["appd"] and s[key]["ref"]:
                a, r = med(s[key]["appd"]), med(s[key]["ref"])
                n = len(s[key]["appd"])
                rows.append(("%s wall time (n=%d)" % (label, n), fmt_ms(a), fmt_ms(r), ratio(a, r),
                             "≤ 0.5× reference" if target else "—",
                             verdict(a <= target * r) if target else "info"))
        if d["term"]:
            rows.append(("app-server's own exit on SIGTERM, spawned directly",
                         fmt_ms(med(d["term"])), "(same)", "—", "context", "info"))
        if d["cliver"]:
            rows.append(("`codex --version` (run by appd for `managedVersion`, and by the daemon), "
                         "context", fmt_ms(med(d["cliver"])), "(same)", "—", "context", "info"))
        if self.rss:
            a, r = self.rss["appd"][0]["VmRSS"], self.rss["ref"][0]["VmRSS"]
            rows.append(("idle resident overhead besides the app-server (VmRSS, %g s idle)"
                         % IDLE_SECONDS, fmt_kib(a), fmt_kib(r), ratio(a, r) if r else "—",
                         "≤ 1% of reference", verdict(a <= 0.01 * r) if r else "n/a (reference: 0)"))
            a2, r2 = self.rss["appd"][0]["Pss"], self.rss["ref"][0]["Pss"]
            rows.append(("same, Pss (shared pages split)", fmt_kib(a2), fmt_kib(r2),
                         ratio(a2, r2) if r2 else "—", "—", "info"))
            sa, sr = self.rss["appd"][2].get("VmRSS", 0), self.rss["ref"][2].get("VmRSS", 0)
            rows.append(("the app-server itself (VmRSS), context", fmt_kib(sa), fmt_kib(sr),
                         "—", "—", "info"))
        sa, sr = os.path.getsize(APPD), os.path.getsize(self.codex)
        rows.append(("binary size", "%s (%d B)" % (fmt_kib(sa), sa), "%.1f MiB (%d B)" % (sr / 1048576.0, sr),
                     "%.5f×" % (sa / sr), "—", "info"))
        if self.cold:
            rows.append(("`start` in a fresh CODEX_HOME (cold, n=1; direct: %s)"
                         % fmt_ms(self.cold.get("direct", float("nan"))),
                         fmt_ms(self.cold.get("appd", float("nan"))),
                         fmt_ms(self.cold.get("ref", float("nan"))), "—", "—", "info"))
        if getattr(self, "shipped_stop", None):
            rows.append(("reference `stop` as shipped: analytics on, no network (n=%d)"
                         % len(self.shipped_stop), "—", fmt_ms(med(self.shipped_stop)), "—", "—",
                         "info"))
        w("| metric | appd median | reference median | ratio | target | verdict |\n")
        w("|---|---|---|---|---|---|\n")
        for r in rows:
            w("| " + " | ".join(r) + " |\n")
        w("\n")

        def spread(v):
            return "median %s, p90 %s, min %s, max %s" % (fmt_ms(med(v)), fmt_ms(pct(v, 90)),
                                                          fmt_ms(min(v)), fmt_ms(max(v))) if v else "—"
        w("Spread (all samples):\n\n")
        for key in ("start", "version", "restart", "stop"):
            for k, lab in (("appd", "appd"), ("ref", "reference")):
                w("- %s %s: %s\n" % (lab, key, spread(s[key][k])))
        w("- direct: accepts %s; initialize %s; SIGTERM→exit %s\n"
          % (spread(d["accept"]), spread(d["init"]), spread(d["term"])))
        w("- `codex --version`: %s\n\n" % spread(d["cliver"]))

        w("Resident processes (found by the home marker in /proc/PID/environ):\n\n")
        if self.rss:
            w("- appd (`%s`): %s\n" % (self.appd.marker.decode(),
                                       "; ".join(self.rss["appd"][1]) or "nothing besides the app-server"))
            w("- reference (`%s`): %s\n" % (self.ref.marker.decode(),
                                            "; ".join(self.rss["ref"][1]) or "nothing besides the app-server"))
            for k, lab in (("appd", "appd"), ("ref", "reference")):
                left = self.leftover_after_stop.get(k)
                w("- still resident after %s `stop`: %s\n" % (
                    lab, "; ".join("pid %d `%s`" % (p, c[-80:]) for p, c in left) if left else "nothing"))
        if getattr(self, "symlink_res", None) is not None:
            v, desc = self.symlink_res
            w("- reference with the release binary as a *symlink* (CODEX_HOME/r3): %s (%s)\n"
              % (fmt_kib(v), "; ".join(desc) if desc else "no updater is started: the canonical "
                 "binary path lies outside `releases/<ver>-<target>`, so the daemon does not treat "
                 "it as a stable standalone release"))
        if self.ref.installed_msgs:
            w("- the reference printed `Installing daemon from CLI …` %d time(s)\n" % self.ref.installed_msgs)
        for n in self.notes:
            w("- %s\n" % n)
        w("\nCleanup: both stacks' `stop`, then SIGTERM/SIGKILL to whatever was left in the "
          "marked trees: %s; `/tmp/codex-daemon-%d/` entries removed: %d; new entries left there: %s; "
          "marked processes at the end: %s; `ps` lines naming the bench dir: %s.\n"
          % ("; ".join("pid %d `%s`" % (p, c[-70:]) for p, c in getattr(self, "killed", [])) or "nothing",
             os.getuid(), getattr(self, "daemon_dir_removed", 0),
             ", ".join(getattr(self, "daemon_dir_new", [])) or "none",
             ", ".join(map(str, getattr(self, "final", []))) or "none",
             "; ".join(self.final_ps) if getattr(self, "final_ps", None) else
             ("none" if getattr(self, "final_ps", None) == [] else "?")))
        if error:
            w("\n**Benchmark aborted:** %s\n" % error)
        sys.stdout.flush()


def inner():
    codex = os.environ["BENCH_CODEX_BIN"]
    if not os.environ.get("BENCH_CODEX_NETNS") and os.environ.get("BENCH_CODEX_ALLOW_NETWORK") != "1":
        sys.stdout.write(
            "## %s\n\nSkipped: no network namespace could be created (needs root or unprivileged "
            "user namespaces), and the reference must not touch the network (its updater fetches "
            "install.sh, the app-server phones home). Set BENCH_CODEX_ALLOW_NETWORK=1 to run "
            "anyway.\n" % HEADING)
        return 0

    def on_term(signum, _frame):
        raise SystemExit(128 + signum)
    for sg in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sg, on_term)

    b = Bench(codex)
    try:
        b.codex_version = subprocess.run([codex, "--version"], stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL, timeout=30).stdout.decode().strip()
    except (OSError, subprocess.SubprocessError):
        b.codex_version = "?"
    error = None
    try:
        b.warmup()
        b.rounds()
        b.idle_rss()
        b.shipped()
        b.symlink_layout()
    except (BenchError, OSError, subprocess.SubprocessError, KeyError, ValueError) as e:
        error = "%s: %s" % (type(e).__name__, e)
        log("error: " + error)
    finally:
        b.cleanup()
    b.report(error)
    return 1 if error else 0


if __name__ == "__main__":
    sys.exit(inner() if os.environ.get("BENCH_CODEX_INNER") == "1" else outer())
