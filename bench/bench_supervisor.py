#!/usr/bin/env python3
"""bench_supervisor.py -- appd's supervisor side by side with s6-supervise
(and runsv for memory), same server (tests/fixtures/testserver):

  1. crash -> a new server accepting: SIGKILL the server (it has run longer
     than the 1 s start-to-start interval), then connect in a tight loop
     until the new incarnation accepts;
  2. start -> ready: `appd start` (connect readiness, and notify) against
     `s6-svc -wU -u` with s6's notification-fd;
  3. an idle supervisor: system calls over BENCH_IDLE_S seconds under
     `strace -f`, with the updater on (its schedule is one timer);
  4. memory of the idle supervisor: VmRSS, RssAnon, RssFile, Pss; and of
     appd's alone, idle, after an update check, with codex-initialize
     readiness and as `appd run` (BENCH_MEM_RUNS runs each, default 5).

Prints a markdown report on stdout (progress on stderr).  A benchmark, not
a test: it asserts nothing.  Stdlib only; needs s6 and runit (make deps)
and strace.

    APPD=build/appd APPD_FIXTURES=build/fixtures python3 bench/bench_supervisor.py
Knobs: BENCH_CRASHES (15), BENCH_STARTS (30), BENCH_IDLE_S (60).
"""
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import BenchError, cpu_model, loadavg, log  # noqa: E402

APPD = os.path.abspath(os.environ.get("APPD", "build/appd"))
FIX = os.path.abspath(os.environ.get("APPD_FIXTURES", "build/fixtures"))
TS = os.path.join(FIX, "testserver")
CRASHES = int(os.environ.get("BENCH_CRASHES", "15"))
STARTS = int(os.environ.get("BENCH_STARTS", "30"))
IDLE_S = int(os.environ.get("BENCH_IDLE_S", "60"))


def connects(path):
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def wait_accepting(path, not_pid_file=None, timeout=10.0):
    """Seconds until a connect to `path` succeeds (tight loop)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if connects(path):
            return time.perf_counter() - t0
    raise BenchError("nothing accepted on %s within %.0f s" % (path, timeout))


def mem(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "RssAnon", "RssFile"):
                out[k] = int(v.split()[0])
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            if line.startswith("Pss:"):
                out["Pss"] = int(line.split()[1])
    return out


class Appd:
    def __init__(self, root, notify=False):
        os.makedirs(root, mode=0o700, exist_ok=True)
        self.home = os.path.join(root, "appd")
        self.env = dict(os.environ, APPD_HOME=self.home)
        self.sock = os.path.join(self.home, "run/app-server.sock")
        self.notify = notify

    def run(self, *args):
        p = subprocess.run([APPD] + list(args), env=self.env, capture_output=True, text=True,
                           timeout=60)
        if p.returncode != 0:
            raise BenchError("appd %s: %s" % (" ".join(args), p.stdout + p.stderr))
        return json.loads(p.stdout.splitlines()[-1])

    def start(self):
        args = ["start", "--", TS, "--listen", "{socket}"]
        if self.notify:
            args += ["--notify-fd-only"]
        return self.run(*args)

    def settings(self, obj):
        os.makedirs(self.home, mode=0o700, exist_ok=True)
        with open(os.path.join(self.home, "settings.json"), "w") as f:
            json.dump(obj, f)

    def server_pid(self):
        return self.run("status")["pid"]

    def sup_pid(self):
        return self.run("status")["supervisor"]["pid"]

    def stop(self):
        subprocess.run([APPD, "stop"], env=self.env, capture_output=True, timeout=60)


class S6:
    def __init__(self, root, notify=False):
        os.makedirs(root, mode=0o700, exist_ok=True)
        self.dir = os.path.join(root, "s6svc")
        self.sock = os.path.join(root, "s6.sock")
        os.makedirs(self.dir, exist_ok=True)
        extra = ""
        if notify:
            with open(os.path.join(self.dir, "notification-fd"), "w") as f:
                f.write("3\n")
            extra = " --notify-fd-only"
        with open(os.path.join(self.dir, "run"), "w") as f:
            f.write("#!/bin/sh\nrm -f %s\nAPPD_NOTIFY_FD=3 exec %s --listen %s%s 2>/dev/null\n"
                    % (self.sock, TS, self.sock, extra))
        os.chmod(os.path.join(self.dir, "run"), 0o755)
        # start down: s6-supervise starts the service only when told
        open(os.path.join(self.dir, "down"), "w").close()
        self.sup = subprocess.Popen(["s6-supervise", self.dir], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
        deadline = time.time() + 5
        while not os.path.exists(os.path.join(self.dir, "supervise/control")):
            if time.time() > deadline:
                raise BenchError("s6-supervise did not come up")
            time.sleep(0.01)

    def svc(self, *args):
        subprocess.run(["s6-svc"] + list(args) + [self.dir], check=True, timeout=30)

    def server_pid(self):
        out = subprocess.run(["s6-svstat", "-p", self.dir], capture_output=True, text=True,
                             check=True).stdout.strip()
        return int(out)

    def close(self):
        try:
            self.svc("-wD", "-d")
        except Exception:
            pass
        self.sup.send_signal(signal.SIGTERM)
        try:
            self.sup.wait(10)
        except subprocess.TimeoutExpired:
            self.sup.kill()


def crash_to_accept(kind, root):
    """Seconds from SIGKILL of a server that has run longer than the 1 s
    start-to-start interval to a new server accepting, each sample from a
    fresh start (a crash loop backs off by design: not measured here)."""
    times = []
    if kind == "appd":
        a = Appd(root)
        try:
            for _ in range(CRASHES):
                a.start()
                time.sleep(1.2)
                os.kill(a.server_pid(), signal.SIGKILL)
                t0 = time.perf_counter()
                while connects(a.sock):      # until the old one is gone
                    pass
                times.append(time.perf_counter() - t0 + wait_accepting(a.sock))
                a.stop()
        finally:
            a.stop()
    else:
        s = S6(root)
        try:
            for _ in range(CRASHES):
                s.svc("-u")
                wait_accepting(s.sock)
                time.sleep(1.2)
                os.kill(s.server_pid(), signal.SIGKILL)
                t0 = time.perf_counter()
                while connects(s.sock):
                    pass
                times.append(time.perf_counter() - t0 + wait_accepting(s.sock))
                s.svc("-wD", "-d")
        finally:
            s.close()
    return times


def start_to_ready(kind, root, notify):
    times = []
    if kind == "appd":
        a = Appd(root, notify)
        a.settings({"server": {"readiness": "notify" if notify else "connect"}})
        for _ in range(STARTS):
            t0 = time.perf_counter()
            a.start()
            times.append(time.perf_counter() - t0)
            a.stop()
    else:
        s = S6(root, notify=True)
        try:
            for _ in range(STARTS):
                t0 = time.perf_counter()
                s.svc("-wU", "-u")
                times.append(time.perf_counter() - t0)
                s.svc("-wD", "-d")
        finally:
            s.close()
    return times


def idle_syscalls(root):
    a = Appd(root)
    a.settings({"updater": {"autoUpdateEnabled": True, "manifestUrl": "https://127.0.0.1:1/m.json",
                            "publicKeys": ["04" + "11" * 64]}})
    a.start()
    try:
        time.sleep(1)
        sup = a.sup_pid()
        st = a.run("status")
        trace = os.path.join(root, "idle.strace")
        p = subprocess.Popen(["strace", "-f", "-qq", "-o", trace, "-p", str(sup)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        st_file = os.path.join(a.home, "state/status.json")
        before = os.stat(st_file).st_mtime_ns
        time.sleep(IDLE_S)
        p.send_signal(signal.SIGINT)
        p.wait(10)
        lines = [l for l in open(trace).read().splitlines() if l.strip()]
        m = mem(sup)
        return {"calls": len(lines), "first": lines[:3], "writes": int(os.stat(st_file).st_mtime_ns != before),
                "mem": m, "nextCheckAt": st.get("nextCheckAt")}
    finally:
        a.stop()


WS = os.path.join(FIX, "wsserver")
MEM_RUNS = int(os.environ.get("BENCH_MEM_RUNS", "5"))


def variant_mem(root, kind, check):
    """Idle memory of one supervisor: `start` (testserver, connect
    readiness), `codex` (the WebSocket fixture behind codex-initialize
    readiness) or `run` (`appd run` in the foreground), updater on; with
    `check`, after one update check delegated to it (`appd update
    --check`, what the schedule does every intervalMinutes)."""
    a = Appd(root)
    cfg = {"updater": {"autoUpdateEnabled": True, "manifestUrl": "https://127.0.0.1:1/m.json",
                       "publicKeys": ["04" + "11" * 64]}}
    if kind == "codex":
        cfg["server"] = {"command": [WS, "--listen", "{socket}"], "readiness": "codex-initialize"}
    a.settings(cfg)
    fg = None
    if kind == "run":
        fg = subprocess.Popen([APPD, "run", "--", TS, "--listen", "{socket}"], env=a.env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_accepting(a.sock)
    elif kind == "codex":
        a.run("start")
    else:
        a.start()
    try:
        time.sleep(1)
        sup = a.sup_pid()
        if check:
            os.makedirs(os.path.join(a.home, "packages"), mode=0o700, exist_ok=True)
            subprocess.run([APPD, "update", "--check"], env=a.env, capture_output=True,
                           timeout=120)
        time.sleep(1)
        return mem(sup)
    finally:
        a.stop()
        if fg is not None:
            fg.wait(10)


def variants(root):
    """[(label, [mem, ...])] over MEM_RUNS runs of each variant."""
    out = []
    for label, kind, check in (("appd start, idle", "start", False),
                               ("appd start, after an update check", "start", True),
                               ("appd start, codex-initialize readiness, after a check",
                                "codex", True),
                               ("appd run (foreground), after a check", "run", True)):
        out.append((label, [variant_mem(os.path.join(root, "%s%d%d" % (kind, check, i)),
                                        kind, check) for i in range(MEM_RUNS)]))
    return out


def ref_mem(root):
    """Idle memory of s6-supervise and runsv supervising the same server."""
    out = {}
    os.makedirs(root, mode=0o700, exist_ok=True)
    s = S6(root)
    try:
        s.svc("-u")
        wait_accepting(s.sock)
        time.sleep(1)
        out["s6-supervise"] = mem(s.sup.pid)
    finally:
        s.close()
    rdir = os.path.join(root, "runsvc")
    os.makedirs(rdir, exist_ok=True)
    sock = os.path.join(root, "runit.sock")
    with open(os.path.join(rdir, "run"), "w") as f:
        f.write("#!/bin/sh\nrm -f %s\nexec %s --listen %s 2>/dev/null\n" % (sock, TS, sock))
    os.chmod(os.path.join(rdir, "run"), 0o755)
    rs = subprocess.Popen(["runsv", rdir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_accepting(sock)
        time.sleep(1)
        out["runsv"] = mem(rs.pid)
    finally:
        subprocess.run(["sv", "exit", rdir], capture_output=True, timeout=20)
        try:
            rs.wait(10)
        except subprocess.TimeoutExpired:
            rs.kill()
    return out


def ms(v):
    return "%.2f ms" % (v * 1000)


def main():
    for tool in ("s6-supervise", "runsv", "strace"):
        if shutil.which(tool) is None:
            print("## Supervisor benchmark\n\nSkipped: %s is not installed (make deps)." % tool)
            return 0
    root = tempfile.mkdtemp(prefix="appd-bsup-", dir="/tmp")
    os.chmod(root, 0o700)
    rows = []
    try:
        log("crash -> accepting (%d each)" % CRASHES, "bench_supervisor")
        ca = crash_to_accept("appd", os.path.join(root, "c1"))
        cs = crash_to_accept("s6", os.path.join(root, "c2"))
        log("start -> ready (%d each)" % STARTS, "bench_supervisor")
        sa = start_to_ready("appd", os.path.join(root, "s1"), False)
        sn = start_to_ready("appd", os.path.join(root, "s2"), True)
        ss = start_to_ready("s6", os.path.join(root, "s3"), True)
        log("idle for %d s under strace" % IDLE_S, "bench_supervisor")
        idle = idle_syscalls(os.path.join(root, "i1"))
        ref = ref_mem(os.path.join(root, "m1"))
        log("memory, %d runs of each variant" % MEM_RUNS, "bench_supervisor")
        var = variants(os.path.join(root, "v"))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    med = statistics.median
    print("## Supervisor: appd next to s6-supervise\n")
    print("Reproduce: `make && make fixtures && make deps && python3 bench/bench_supervisor.py`"
          " (APPD, APPD_FIXTURES set as by `make bench`).  Date: %s.  Machine: nproc=%d, `%s`,"
          " load %s.\n" % (time.strftime("%Y-%m-%d"), os.cpu_count(), cpu_model(), loadavg()))
    print("| metric | appd median | s6 median | ratio | n |")
    print("|---|---|---|---|---|")
    print("| crash (SIGKILL after > 1 s) -> new server accepting | %s | %s | %.2f | %d |"
          % (ms(med(ca)), ms(med(cs)), med(ca) / med(cs), len(ca)))
    print("| start -> ready, `connect` readiness vs `s6-svc -wU -u` | %s | %s | %.2f | %d |"
          % (ms(med(sa)), ms(med(ss)), med(sa) / med(ss), len(sa)))
    print("| start -> ready, `notify` readiness vs `s6-svc -wU -u` | %s | %s | %.2f | %d |"
          % (ms(med(sn)), ms(med(ss)), med(sn) / med(ss), len(sn)))
    print()
    print("Idle supervisor, updater on (next check %s), %d s under `strace -f`: **%d line(s)**"
          " (%s; one epoll wait is the call it slept in when strace attached: no wakeup),"
          " status.json rewritten: %s.\n" % (idle["nextCheckAt"], IDLE_S, idle["calls"],
                                                   "; ".join(idle["first"]) or "none",
                                                   "yes" if idle["writes"] else "no"))
    print("| idle supervisor | VmRSS | RssAnon | RssFile | Pss |")
    print("|---|---|---|---|---|")
    for name, m in [("appd", idle["mem"])] + sorted(ref.items()):
        print("| %s | %d KiB | %d KiB | %d KiB | %d KiB |" % (name, m["VmRSS"], m["RssAnon"],
                                                         m["RssFile"], m["Pss"]))
    print("\nappd's supervisor in each case, %d runs each (lowest-highest; one page either"
          " way is where ASLR puts the top of the stack; `bench/pages.py` maps every"
          " resident page to its symbols):\n" % MEM_RUNS)
    print("| appd supervisor | VmRSS | RssAnon | RssFile | Pss |")
    print("|---|---|---|---|---|")
    for label, ms_ in var:
        cells = []
        for k in ("VmRSS", "RssAnon", "RssFile", "Pss"):
            lo, hi = min(m[k] for m in ms_), max(m[k] for m in ms_)
            cells.append("%d KiB" % lo if lo == hi else "%d-%d KiB" % (lo, hi))
        print("| %s | %s |" % (label, " | ".join(cells)))
    print("\nappd binary: %d bytes (`stat -c %%s %s`)." % (os.stat(APPD).st_size, APPD))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        log("FAILED: %s" % e, "bench_supervisor")
        sys.exit(1)
