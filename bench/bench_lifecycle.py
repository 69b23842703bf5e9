#!/usr/bin/python3
"""Lifecycle benchmark of build/appd (stdlib only).

Measures, in one run on this machine:
  1. size of build/appd (+ `file` summary)
  2. idle RSS (VmRSS, VmHWM) of the supervisor after ~2 s idle (+ server RSS)
  3. wall time of `appd status` while a server runs (+ spawn baselines)
  4. wall time of `appd stop` (server exits on TERM) and `appd start` to ready
     over N start/stop cycles

Writes a markdown report on stdout; progress and errors go to stderr.
Env: APPD, APPD_FIXTURES (set by `make bench`), BENCH_STATUS_RUNS,
BENCH_CYCLES, BENCH_IDLE_SECONDS.
"""

import json
import os

from benchlib import BenchError, cpu_model, log, loadavg, pct, proc_status
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APPD = os.path.abspath(os.environ.get("APPD", os.path.join(ROOT, "build", "appd")))
FIXTURES = os.path.abspath(os.environ.get("APPD_FIXTURES", os.path.join(ROOT, "build", "fixtures")))
TESTSERVER = os.path.join(FIXTURES, "testserver")

STATUS_RUNS = max(200, int(os.environ.get("BENCH_STATUS_RUNS", "300")))
CYCLES = max(30, int(os.environ.get("BENCH_CYCLES", "40")))
IDLE_SECONDS = float(os.environ.get("BENCH_IDLE_SECONDS", "2"))
WARMUP = 10
CMD_TIMEOUT = 60  # seconds, per appd invocation

# targets
SIZE_TARGET = 250 * 1000      # bytes: "<= 250 KB stripped" (the state-machine issue)
RSS_TARGET = 200 * 1024       # bytes: VmRSS (issue 2)
ANON_TARGET = 48 * 1024       # bytes: RssAnon idle, updater on (the state-machine issue)
STATUS_TARGET = 2.0           # ms, median
STOP_TARGET = 10.0            # ms, median


# ---------------------------------------------------------------- helpers

def timed_run(argv, env=None):
    """Wall time (ms) of one subprocess.run with stdout captured."""
    t0 = time.perf_counter()
    cp = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                        timeout=CMD_TIMEOUT)
    t1 = time.perf_counter()
    return (t1 - t0) * 1000.0, cp


def parse_json(cp, what):
    try:
        return json.loads(cp.stdout.decode())
    except (ValueError, UnicodeDecodeError):
        raise BenchError("%s: exit %d, not JSON on stdout: %r"
                         % (what, cp.returncode, cp.stdout[:300]))


def rss_breakdown(pid):
    """Resident KiB per kind of mapping, from /proc/PID/smaps."""
    parts = {"stack": 0, "anon (bss/heap)": 0, "binary (file-backed)": 0, "other": 0}
    cur = None
    try:
        with open("/proc/%d/smaps" % pid) as f:
            for line in f:
                fields = line.split()
                if "-" in fields[0] and not fields[0].endswith(":"):
                    name = fields[5] if len(fields) > 5 else ""
                    if name == "[stack]":
                        cur = "stack"
                    elif name == "":
                        cur = "anon (bss/heap)"
                    elif name.startswith("/"):
                        cur = "binary (file-backed)"
                    else:
                        cur = "other"
                elif fields[0] == "Rss:" and cur:
                    parts[cur] += int(fields[1])
    except OSError as e:
        return "unavailable (%s)" % e
    return ", ".join("%s %d KiB" % (k, v) for k, v in parts.items())


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        return False


def fmt_ms(v):
    return "%.2f ms" % v


def fmt_kb(v):
    return "%.1f KiB (%d B)" % (v / 1024.0, v)


def verdict(ok):
    return "PASS" if ok else "**MISS**"


def machine_info():
    model = cpu_model()
    return {
        "nproc": str(os.cpu_count() or "?"),
        "kernel": "%s %s %s" % (platform.system(), platform.release(), platform.machine()),
        "cpu": model,
        "python": platform.python_version(),
    }


# ---------------------------------------------------------------- the run

class Bench:
    def __init__(self):
        self.home = tempfile.mkdtemp(prefix="apb.", dir="/tmp")  # short: sun_path
        self.env = dict(os.environ, APPD_HOME=self.home)
        self.known_pids = set()   # every supervisor/server pid seen, for cleanup
        self.rows = []            # (metric, median, p90, target, verdict, command)
        self.notes = []
        self.scratch = tempfile.mkdtemp(prefix="apbx.", dir="/tmp")
        self.load_before = loadavg()

    def appd(self, *args):
        return timed_run([APPD] + list(args), env=self.env)

    def start(self):
        ms, cp = self.appd("start", "--", TESTSERVER, "--listen", "{socket}")
        obj = parse_json(cp, "appd start")
        if cp.returncode != 0 or obj.get("status") not in ("started", "alreadyRunning"):
            raise BenchError("appd start failed: exit %d %s" % (cp.returncode, cp.stdout.decode()[:500]))
        for k in ("supervisorPid", "pid"):
            if isinstance(obj.get(k), int):
                self.known_pids.add(obj[k])
        return ms, obj

    def stop(self):
        ms, cp = self.appd("stop")
        obj = parse_json(cp, "appd stop")
        if cp.returncode != 0 or obj.get("status") not in ("stopped", "notRunning"):
            raise BenchError("appd stop failed: exit %d %s" % (cp.returncode, cp.stdout.decode()[:500]))
        return ms, obj

    # 1 ------------------------------------------------------------------
    def measure_size(self):
        size = os.path.getsize(APPD)
        try:
            desc = subprocess.run(["file", "-b", APPD], stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, timeout=10).stdout.decode().strip()
        except (OSError, subprocess.SubprocessError):
            desc = "(file(1) not available)"
        static = "statically linked" in desc or "static-pie linked" in desc
        stripped = ", stripped" in desc and "not stripped" not in desc
        self.file_desc = desc
        self.rows.append(("binary size (`build/appd`)", fmt_kb(size), "—", "≤ 250 KB",
                          verdict(size <= SIZE_TARGET), "`stat -c %s build/appd`"))
        self.rows.append(("static, stripped (`file`)",
                          "static=%s stripped=%s" % ("yes" if static else "no",
                                                      "yes" if stripped else "no"),
                          "—", "static + stripped", verdict(static and stripped),
                          "`file build/appd`"))

    # 2 ------------------------------------------------------------------
    def measure_idle_rss(self):
        _, obj = self.start()
        sup, srv = obj.get("supervisorPid"), obj.get("pid")
        if not isinstance(sup, int):
            raise BenchError("start JSON has no supervisorPid: %r" % obj)
        log("idle %.1f s (supervisor %d, server %s)" % (IDLE_SECONDS, sup, srv))
        time.sleep(IDLE_SECONDS)
        s = proc_status(sup)
        self.rows.append(("supervisor idle VmRSS", fmt_kb(s["VmRSS"]), "—", "≤ 200 KiB",
                          verdict(s["VmRSS"] <= RSS_TARGET),
                          "`grep VmRSS /proc/$supervisorPid/status` after %g s idle" % IDLE_SECONDS))
        self.rows.append(("supervisor VmHWM (peak RSS)", fmt_kb(s["VmHWM"]), "—", "≤ 200 KiB",
                          verdict(s["VmHWM"] <= RSS_TARGET),
                          "`grep VmHWM /proc/$supervisorPid/status`"))
        self.rows.append(("supervisor idle RssAnon", fmt_kb(s["RssAnon"]), "—", "≤ 48 KiB",
                          verdict(s["RssAnon"] <= ANON_TARGET),
                          "`grep RssAnon /proc/$supervisorPid/status`"))
        self.notes.append("supervisor RSS breakdown (smaps): %s." % rss_breakdown(sup))
        if isinstance(srv, int) and alive(srv):
            t = proc_status(srv)
            self.rows.append(("server (testserver) VmRSS, context", fmt_kb(t["VmRSS"]), "—",
                              "—", "info", "`grep VmRSS /proc/$pid/status`"))
        return obj

    # 3 ------------------------------------------------------------------
    def measure_status(self):
        # one sanity check that the server is up and ready
        _, cp = self.appd("status")
        st = parse_json(cp, "appd status")
        if st.get("status") != "running" or not st.get("ready"):
            raise BenchError("server not running/ready before status series: %r" % st)

        # appd status and the spawn baselines run interleaved (round robin), so
        # load from other processes on the machine hits all series alike
        series = [("appd", [APPD, "status"])]
        static_true = self._static_true()
        if static_true:
            series.append(("static", [static_true]))
        series.append(("bintrue", ["/bin/true"]))
        res = {k: [] for k, _ in series}
        log("status x%d, interleaved with %d baseline(s)" % (STATUS_RUNS, len(series) - 1))
        for i in range(WARMUP + STATUS_RUNS):
            for k, argv in series:
                ms, cp = timed_run(argv, env=self.env)
                if k == "appd" and cp.returncode != 0:
                    raise BenchError("appd status exit %d: %r" % (cp.returncode, cp.stdout[:300]))
                if i >= WARMUP:
                    res[k].append(ms)

        a = res["appd"]
        med, p90 = statistics.median(a), pct(a, 90)
        self.rows.append(("`appd status` wall time (n=%d)" % STATUS_RUNS, fmt_ms(med), fmt_ms(p90),
                          "≤ 2 ms median", verdict(med <= STATUS_TARGET),
                          "`APPD_HOME=$tmp appd status` (server running)"))
        names = {"static": "static no-op (musl `int main(){return 0;}`)",
                 "bintrue": "`/bin/true` (dynamic, glibc)"}
        for k, _ in series[1:]:
            b = res[k]
            self.rows.append(("baseline: %s (n=%d)" % (names[k], STATUS_RUNS),
                              fmt_ms(statistics.median(b)), fmt_ms(pct(b, 90)), "—", "info",
                              "same harness, interleaved"))
        k0 = series[1][0]
        self.notes.append("`appd status` minus the %s baseline (harness + fork/exec cost), "
                          "median of paired differences: %.2f ms."
                          % (names[k0], statistics.median(x - y for x, y in zip(a, res[k0]))))

    def _static_true(self):
        cc = shutil.which("musl-gcc")
        if not cc:
            return None
        src = os.path.join(self.scratch, "true.c")
        exe = os.path.join(self.scratch, "static-true")
        with open(src, "w") as f:
            f.write("int main(void){return 0;}\n")
        cp = subprocess.run([cc, "-Os", "-static", "-s", "-o", exe, src],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return exe if cp.returncode == 0 and os.access(exe, os.X_OK) else None

    # 4 ------------------------------------------------------------------
    def measure_cycles(self):
        # the server from step 2/3 is still running: its stop is cycle 0 (not counted)
        self.stop()
        starts, stops = [], []
        log("start/stop x%d" % CYCLES)
        for i in range(CYCLES):
            sms, obj = self.start()
            if obj.get("status") != "started":
                raise BenchError("cycle %d: start returned %r" % (i, obj.get("status")))
            srv, sup = obj.get("pid"), obj.get("supervisorPid")
            tms, sobj = self.stop()
            if sobj.get("status") != "stopped":
                raise BenchError("cycle %d: stop returned %r" % (i, sobj.get("status")))
            for p in (srv, sup):
                if isinstance(p, int) and alive(p):
                    # stop returned but the process is still there: a bug worth reporting
                    deadline = time.monotonic() + 2
                    while alive(p) and time.monotonic() < deadline:
                        time.sleep(0.01)
                    if alive(p):
                        raise BenchError("cycle %d: pid %d alive after stop" % (i, p))
                    self.notes.append("cycle %d: pid %d was still alive when stop returned" % (i, p))
            starts.append(sms)
            stops.append(tms)
        med, p90 = statistics.median(stops), pct(stops, 90)
        self.rows.append(("`appd stop` wall time, server exits on TERM (n=%d)" % CYCLES,
                          fmt_ms(med), fmt_ms(p90), "≤ 10 ms median", verdict(med <= STOP_TARGET),
                          "`APPD_HOME=$tmp appd stop`"))
        self.rows.append(("`appd start` to ready, same cycles (n=%d)" % CYCLES,
                          fmt_ms(statistics.median(starts)), fmt_ms(pct(starts, 90)), "—", "info",
                          "`APPD_HOME=$tmp appd start -- $APPD_FIXTURES/testserver --listen {socket}`"))

    # cleanup --------------------------------------------------------------
    def cleanup(self):
        try:
            subprocess.run([APPD, "stop"], env=self.env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=CMD_TIMEOUT)
        except (OSError, subprocess.SubprocessError) as e:
            log("cleanup: appd stop failed: %s" % e)
        # last resort: only pids this run was told about, and only if still ours
        for p in sorted(self.known_pids):
            if alive(p):
                try:
                    with open("/proc/%d/environ" % p, "rb") as f:
                        mine = ("APPD_HOME=" + self.home).encode() in f.read().split(b"\0")
                except OSError:
                    mine = False
                if mine:
                    log("cleanup: killing leftover pid %d" % p)
                    try:
                        os.kill(p, signal.SIGKILL)
                    except OSError:
                        pass
        shutil.rmtree(self.home, ignore_errors=True)
        shutil.rmtree(self.scratch, ignore_errors=True)

    # report ------------------------------------------------------------------
    def report(self, error=None):
        m = machine_info()
        w = sys.stdout.write
        w("## appd lifecycle benchmark\n\n")
        w("Reproduce: `make && make fixtures && make bench` (runs `bench/run.sh`).\n\n")
        w("- binary: `%s`\n" % APPD)
        w("- `file`: %s\n" % getattr(self, "file_desc", "?"))
        w("- machine: nproc=%s, kernel `%s`, CPU `%s`, python %s\n"
          % (m["nproc"], m["kernel"], m["cpu"], m["python"]))
        w("- load average (1/5/15 min) before / after the run: %s / %s (other work on the "
          "machine inflates the timings)\n" % (self.load_before, loadavg()))
        w("- method: wall time = `time.perf_counter()` around `subprocess.run` with stdout "
          "captured (stderr to /dev/null), %d warm-up runs discarded; p90 = nearest rank; fresh `APPD_HOME` under "
          "/tmp; server = `testserver --listen {socket}`.\n\n" % WARMUP)
        w("| metric | median | p90 | target | verdict | command |\n")
        w("|---|---|---|---|---|---|\n")
        for r in self.rows:
            w("| " + " | ".join(r) + " |\n")
        w("\n")
        for n in self.notes:
            w("- %s\n" % n)
        if error:
            w("\n**Benchmark aborted:** %s\n" % error)
        w("\n## Reference comparison\n\n")
        w("Not in this script: the side by side with the Codex `app-server daemon` "
          "(start, version, restart, stop, idle memory, on the real codex from npm) is "
          "bench/bench_codex.py, section \"appd vs codex app-server daemon\".\n")
        sys.stdout.flush()


def main():
    if not os.access(APPD, os.X_OK) or not os.access(TESTSERVER, os.X_OK):
        log("missing %s or %s (run: make && make fixtures)" % (APPD, TESTSERVER))
        return 1

    def on_term(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)

    b = Bench()
    error = None
    try:
        b.measure_size()
        b.measure_idle_rss()
        b.measure_status()
        b.measure_cycles()
    except (BenchError, OSError, subprocess.SubprocessError, KeyError) as e:
        error = "%s: %s" % (type(e).__name__, e)
        log("error: " + error)
    finally:
        b.cleanup()
    b.report(error)
    return 1 if error else 0


if __name__ == "__main__":
    sys.exit(main())
