#!/usr/bin/python3
"""Proxy benchmark: `appd proxy` vs `socat STDIO UNIX-CONNECT:<sock>` vs
`codex app-server proxy --sock <sock>` (stdlib only).

All three relay between pipes on their stdin/stdout and the same echo
server on a Unix socket (bench/proxy_load.c `serve`: a forked blocking echo
per connection, 256 KiB buffer).  The load generator is the same C program
(`pump`, `rtt`), so Python is never in the data path.  Measured in one run:

  1. throughput: BYTES (default 1 GiB) written into the proxy's stdin while
     the echo comes back on its stdout, full duplex; MB/s = BYTES / time
     from the first write to EOF (10^6 bytes per MB); median of RUNS (>= 3)
  2. latency: 10 000 round trips of 64 bytes (write, read the echo back);
     the median RTT of each run, median over RUNS runs (+ p99)
  3. the proxy's peak RSS: VmHWM from /proc/PID/status, polled every 5 ms
     while it runs; the maximum over every run
  plus the same pump/rtt straight to the socket (no proxy), to show that the
  server and the load generator are not the bottleneck.

Writes a markdown report on stdout; progress goes to stderr.
Env: APPD (build/appd), BENCH_PROXY_BYTES, BENCH_PROXY_RUNS, BENCH_PROXY_RTTS,
CODEX (a codex binary; default: `bash tests/fetch-codex.sh`).
Reproduce: `make bench` (or `make && /usr/bin/python3 bench/bench_proxy.py`).
"""

import os

from benchlib import BenchError, cpu_model, log, loadavg
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APPD = os.path.abspath(os.environ.get("APPD", os.path.join(ROOT, "build", "appd")))
LOAD_SRC = os.path.join(ROOT, "bench", "proxy_load.c")
LOAD = os.path.join(ROOT, "build", "bench", "proxy_load")

BYTES = int(os.environ.get("BENCH_PROXY_BYTES", str(1 << 30)))
RUNS = max(3, int(os.environ.get("BENCH_PROXY_RUNS", "3")))
RTTS = int(os.environ.get("BENCH_PROXY_RTTS", "10000"))
RTT_SIZE = 64
RUN_TIMEOUT = 600  # seconds per run

RSS_TARGET_KIB = 200  # "RSS <= 200 KB" (KiB here)


def build_load():
    if os.path.exists(LOAD) and os.path.getmtime(LOAD) >= os.path.getmtime(LOAD_SRC):
        return
    os.makedirs(os.path.dirname(LOAD), exist_ok=True)
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise BenchError("no C compiler to build bench/proxy_load.c")
    subprocess.run([cc, "-std=c11", "-D_GNU_SOURCE", "-O2", "-Wall", "-Wextra", "-Werror",
                    "-o", LOAD, LOAD_SRC], check=True)


def find_codex():
    c = os.environ.get("CODEX")
    if c:
        return c
    try:
        cp = subprocess.run(["bash", os.path.join(ROOT, "tests", "fetch-codex.sh")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        log("codex: %s" % e)
        return None
    if cp.returncode != 0:
        log("codex: fetch-codex.sh exit %d: %s" % (cp.returncode, cp.stderr.strip()[-300:]))
        return None
    return cp.stdout.strip().splitlines()[-1]


def status_kib(pid, keys=("VmHWM", "RssAnon", "RssFile")):
    """Fields of /proc/PID/status in KiB, or None when it is gone."""
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k = line.split(":", 1)[0]
                if k in keys:
                    out[k] = int(line.split()[1])
    except (OSError, ValueError):
        return None
    return out if len(out) == len(keys) else None


class Poller(threading.Thread):
    """Max VmHWM (and RssAnon / RssFile) of `pid` while it lives, polled
    every 5 ms."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = {"VmHWM": 0, "RssAnon": 0, "RssFile": 0}
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            v = status_kib(self.pid)
            if v is None:
                return
            for k in self.peak:
                self.peak[k] = max(self.peak[k], v[k])
            self.stop.wait(0.005)


def parse_result(err, what):
    for line in reversed(err.splitlines()):
        if line.startswith("result "):
            return [float(x) for x in line.split()[1:]]
    raise BenchError("%s: no result from the load generator: %r" % (what, err[-500:]))


def run_through(proxy, load_args):
    """Run the load generator against `proxy` (argv, env) over two pipes.
    Returns (result numbers, {VmHWM, RssAnon, RssFile} peaks in KiB)."""
    argv, env = proxy
    r_in, w_in = os.pipe()      # load -> proxy stdin
    r_out, w_out = os.pipe()    # proxy stdout -> load
    errf = tempfile.TemporaryFile()
    try:
        p = subprocess.Popen(argv, stdin=r_in, stdout=w_out, stderr=errf, env=env)
        poll = Poller(p.pid)
        poll.start()
        lg = subprocess.Popen([LOAD] + load_args, stdin=r_out, stdout=w_in,
                              stderr=subprocess.PIPE, text=True)
    finally:
        for fd in (r_in, w_in, r_out, w_out):
            os.close(fd)
    try:
        _, lerr = lg.communicate(timeout=RUN_TIMEOUT)
        rc = p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        lg.kill()
        p.kill()
        raise BenchError("%s: timed out" % argv[0])
    poll.stop.set()
    poll.join()
    errf.seek(0)
    perr = errf.read().decode(errors="replace")
    if lg.returncode != 0:
        raise BenchError("%s: load generator exit %d: %s / proxy: %s"
                         % (argv[0], lg.returncode, lerr[-300:], perr[-300:]))
    if rc != 0:
        raise BenchError("%s: proxy exit %d: %s" % (argv[0], rc, perr[-300:]))
    return parse_result(lerr, argv[0]), poll.peak


def run_direct(sock, load_args):
    cp = subprocess.run([LOAD] + load_args + ["--connect", sock], stdout=subprocess.DEVNULL,
                        stderr=subprocess.PIPE, text=True, timeout=RUN_TIMEOUT)
    if cp.returncode != 0:
        raise BenchError("direct: exit %d: %s" % (cp.returncode, cp.stderr[-300:]))
    return parse_result(cp.stderr, "direct")


def fmt_ratio(a, b):
    if not a or not b:
        return "—"
    return "%.2f×" % (a / b)


def machine():
    cpu = cpu_model()
    return "nproc=%d, kernel `%s %s`, CPU `%s`, python %s" % (
        os.cpu_count() or 0, platform.system(), platform.release(), cpu,
        platform.python_version())


def main():
    for f in (APPD,):
        if not os.access(f, os.X_OK):
            raise BenchError("missing %s (run: make)" % f)
    build_load()
    tmp = tempfile.mkdtemp(prefix="appd-bp-", dir="/tmp")
    os.chmod(tmp, 0o700)
    home = os.path.join(tmp, "h")
    os.makedirs(os.path.join(home, "run"), mode=0o700)
    os.chmod(home, 0o700)
    sock = os.path.join(home, "run", "app-server.sock")
    load_before = loadavg()
    srv = subprocess.Popen([LOAD, "serve", sock], stdout=subprocess.PIPE, text=True)
    try:
        if srv.stdout.readline().strip() != "ready":
            raise BenchError("echo server did not start")
        proxies = []
        env = dict(os.environ, APPD_HOME=home)
        proxies.append(("appd proxy", ([APPD, "proxy"], env), "`appd proxy`"))
        socat = shutil.which("socat")
        if socat:
            proxies.append(("socat", ([socat, "STDIO", "UNIX-CONNECT:" + sock], dict(os.environ)),
                            "`socat STDIO UNIX-CONNECT:$sock`"))
        else:
            log("socat not found: column skipped")
        codex = find_codex()
        codex_ver = ""
        if codex:
            ch = os.path.join(ROOT, "build", "bench", "codex-home")
            os.makedirs(ch, exist_ok=True)
            cenv = dict(os.environ, CODEX_HOME=ch)
            try:
                codex_ver = subprocess.run([codex, "--version"], capture_output=True, text=True,
                                           timeout=30).stdout.strip()
            except (OSError, subprocess.TimeoutExpired):
                pass
            proxies.append(("codex proxy", ([codex, "app-server", "proxy", "--sock", sock], cenv),
                            "`codex app-server proxy --sock $sock`"))
        names = [p[0] for p in proxies]
        tput = {n: [] for n in names}
        rtt = {n: [] for n in names}
        rtt99 = {n: [] for n in names}
        rss = {n: 0 for n in names}
        anon = {n: 0 for n in names}
        filek = {n: 0 for n in names}
        direct_t, direct_r = [], []

        for i in range(RUNS):
            log("run %d/%d: direct" % (i + 1, RUNS))
            sec, got = run_direct(sock, ["pump", str(BYTES)])
            direct_t.append(BYTES / sec / 1e6)
            direct_r.append(run_direct(sock, ["rtt", str(RTTS), str(RTT_SIZE)])[0])
            for name, proxy, _ in proxies:
                log("run %d/%d: %s" % (i + 1, RUNS, name))
                (sec, got), peak = run_through(proxy, ["pump", str(BYTES)])
                if int(got) != BYTES:
                    raise BenchError("%s: %d of %d bytes came back" % (name, got, BYTES))
                tput[name].append(BYTES / sec / 1e6)
                peaks = [peak]
                (med, p90, p99), peak = run_through(proxy, ["rtt", str(RTTS), str(RTT_SIZE)])
                rtt[name].append(med)
                rtt99[name].append(p99)
                peaks.append(peak)
                for pk in peaks:
                    rss[name] = max(rss[name], pk["VmHWM"])
                    anon[name] = max(anon[name], pk["RssAnon"])
                    filek[name] = max(filek[name], pk["RssFile"])
    finally:
        srv.terminate()
        srv.wait()
        shutil.rmtree(tmp, ignore_errors=True)

    med = statistics.median
    a = "appd proxy"
    out = []
    out.append("## appd proxy benchmark\n")
    out.append("Reproduce: `make && make bench` (runs `bench/bench_proxy.py`; alone: "
               "`make && /usr/bin/python3 bench/bench_proxy.py`).\n")
    out.append("- machine: %s" % machine())
    out.append("- load average (1/5/15 min) before / after: %s / %s" % (load_before, loadavg()))
    out.append("- binary: `%s` (%d bytes)%s" % (APPD, os.path.getsize(APPD),
               ("; codex: `%s`" % codex_ver) if codex_ver else ""))
    out.append("- server: `bench/proxy_load.c serve` (forked blocking echo per connection, "
               "256 KiB buffer) on a Unix socket; load: `proxy_load pump|rtt` over two pipes "
               "to the proxy's stdin/stdout")
    out.append("- throughput: %d bytes (%.0f MiB) written while the echo is read back (full "
               "duplex), first write to EOF, MB = 10^6 B, median of %d runs; latency: %d "
               "round trips of %d bytes, median of %d per-run medians; peak RSS: VmHWM polled "
               "every 5 ms, max over all runs\n"
               % (BYTES, BYTES / 1048576, RUNS, RTTS, RTT_SIZE, RUNS))
    hdr = "| metric | " + " | ".join(names) + " | " + \
        " | ".join("appd / %s" % n for n in names[1:]) + " | target | verdict |"
    out.append(hdr)
    out.append("|" + "---|" * (hdr.count("|") - 1))

    def row(metric, vals, fmt, ratios, target, verdict):
        cells = [fmt % vals[n] if vals[n] is not None else "—" for n in names]
        return "| %s | %s | %s | %s | %s |" % (metric, " | ".join(cells), " | ".join(ratios),
                                               target, verdict)

    tp = {n: med(tput[n]) for n in names}
    rt = {n: med(rtt[n]) for n in names}
    r99 = {n: med(rtt99[n]) for n in names}
    socat_n = "socat" if "socat" in names else None

    def verdict(ok):
        return "PASS" if ok else "**MISS**"

    out.append(row("throughput, MB/s (median)", tp, "%.0f",
                   [fmt_ratio(tp[a], tp[n]) for n in names[1:]],
                   "≥ socat", verdict(socat_n is None or tp[a] >= tp[socat_n])))
    out.append(row("64 B round trip, µs (median)", rt, "%.1f",
                   [fmt_ratio(rt[a], rt[n]) for n in names[1:]],
                   "≤ socat", verdict(socat_n is None or rt[a] <= rt[socat_n])))
    out.append(row("64 B round trip, µs (p99, median of runs)", r99, "%.1f",
                   [fmt_ratio(r99[a], r99[n]) for n in names[1:]], "—", "info"))
    out.append(row("peak RSS (VmHWM), KiB", rss, "%d",
                   [fmt_ratio(rss[a], rss[n]) for n in names[1:]],
                   "≤ %d KiB" % RSS_TARGET_KIB, verdict(rss[a] <= RSS_TARGET_KIB)))
    out.append(row("  of which private (RssAnon, max), KiB", anon, "%d",
                   [fmt_ratio(anon[a], anon[n]) for n in names[1:]], "—", "info"))
    out.append(row("  of which file-backed (RssFile, max: the executable, shared), KiB", filek,
                   "%d", [fmt_ratio(filek[a], filek[n]) for n in names[1:]], "—", "info"))
    out.append("")
    out.append("Every run (throughput MB/s; RTT median µs):\n")
    for n in names:
        out.append("- %s: %s; %s" % (n, ", ".join("%.0f" % x for x in tput[n]),
                                      ", ".join("%.1f" % x for x in rtt[n])))
    out.append("- no proxy (load generator straight on the socket): %s; %s — the ceiling of "
               "server + load generator, %.1f× appd's throughput"
               % (", ".join("%.0f" % x for x in direct_t), ", ".join("%.1f" % x for x in direct_r),
                  med(direct_t) / tp[a]))
    out.append("")
    out.append("Commands: " + "; ".join(p[2] for p in proxies) + ".")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        log("FAILED: %s" % e)
        sys.exit(1)
