#!/usr/bin/python3
"""Where the idle supervisor's private memory is, page by page.

Starts a supervisor the way bench_supervisor.py's idle run does (updater
on, testserver), waits, then reads /proc/PID/maps and /proc/PID/pagemap and
prints every resident page of the writable mappings (data, bss, heap,
stack) with the symbols of the unstripped link (build/<t>/appd.debug, the
same layout as build/appd) that overlap it.  RssAnon in /proc/PID/status is
the count of these pages (times 4 KiB) plus the kernel's own bookkeeping.

    make build/x86_64-linux/appd.debug fixtures
    /usr/bin/python3 bench/pages.py [seconds-idle] [--after-check] [--codex] [--run]

With --after-check, one update check runs through the supervisor first
(the updater's schedule does the same every intervalMinutes).  With
--codex the server is the WebSocket fixture (tests/fixtures/wsserver.c)
behind `codex-initialize` readiness, the real Codex app-server's setting.
With --run the supervisor is `appd run` in the foreground (a service
manager's child) instead of the one `appd start` launches.

Needs root (pagemap hides frame numbers, not presence, from others; the
present bit is all this reads).  Not a test: a measuring aid for issue 9.
"""
import bisect
import os
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_supervisor import APPD, FIX, TS, Appd, mem  # noqa: E402

WS = os.path.join(FIX, "wsserver")
DEBUG = os.path.abspath(os.environ.get("APPD_DEBUG", "build/x86_64-linux/appd.debug"))
PAGE = os.sysconf("SC_PAGE_SIZE")


def symbols(path):
    """[(start, size, name)] of data and bss objects, sorted by address."""
    out = subprocess.run(["nm", "-S", "--defined-only", path], capture_output=True,
                         text=True, check=True).stdout
    syms = []
    for line in out.splitlines():
        f = line.split()
        if len(f) != 4 or f[2] not in "bBdDrR":
            continue
        syms.append((int(f[0], 16), int(f[1], 16), f[3]))
    syms.sort()
    return syms


KPF_ZERO_PAGE = 24


def zero_page(pfn):
    """The shared zero page: mapped by a read of a never-written page, not
    counted in RssAnon (/proc/kpageflags, kernel's pagemap.rst)."""
    try:
        with open("/proc/kpageflags", "rb") as f:
            f.seek(pfn * 8)
            (flags,) = struct.unpack("<Q", f.read(8))
        return bool(flags & (1 << KPF_ZERO_PAGE))
    except OSError:
        return False


def resident(pid, lo, hi):
    """Page addresses in [lo, hi) that hold a private page of their own
    (present, and not the zero page)."""
    pages = []
    with open("/proc/%d/pagemap" % pid, "rb") as f:
        f.seek((lo // PAGE) * 8)
        data = f.read(((hi - lo) // PAGE) * 8)
    for i in range(len(data) // 8):
        (v,) = struct.unpack_from("<Q", data, i * 8)
        if v & (1 << 63) and not zero_page(v & ((1 << 55) - 1)):
            pages.append(lo + i * PAGE)
    return pages


def report(pid, syms):
    starts = [s[0] for s in syms]
    total = 0
    with open("/proc/%d/maps" % pid) as f:
        maps = f.read().splitlines()
    for m in maps:
        f = m.split()
        lo, hi = (int(x, 16) for x in f[0].split("-"))
        perms = f[1]
        name = f[5] if len(f) > 5 else "[anon]"
        if "w" not in perms:
            continue
        pages = resident(pid, lo, hi)
        total += len(pages)
        print("%s %s %-10s %d of %d pages resident" % (f[0], perms, name, len(pages),
                                                       (hi - lo) // PAGE))
        if name == "[stack]":
            print("   pages below the top: %s" % " ".join(str((hi - p) // PAGE) for p in pages))
            continue
        if name in ("[vvar]", "[vdso]"):
            continue
        for p in pages:
            i = max(bisect.bisect_right(starts, p) - 1, 0)
            names = []
            while i < len(syms) and syms[i][0] < p + PAGE:
                a, sz, n = syms[i]
                if a + max(sz, 1) > p:
                    names.append("%s(%d)" % (n, sz))
                i += 1
            print("   %x  %s" % (p, " ".join(names[:12]) + (" ..." if len(names) > 12 else "")))
    print("resident writable pages: %d (%d KiB)" % (total, total * PAGE // 1024))


def check(a):
    """One update check through the supervisor (`appd update --check`,
    delegated to it): what an hourly check leaves resident."""
    os.makedirs(os.path.join(a.home, "packages"), mode=0o700, exist_ok=True)
    p = subprocess.run([APPD, "update", "--check"], env=a.env, capture_output=True,
                       text=True, timeout=120)
    print("update --check: %s" % (p.stdout.strip().splitlines() or [""])[-1][:200])


def main():
    args = [x for x in sys.argv[1:] if not x.startswith("--")]
    after_check = "--after-check" in sys.argv
    codex = "--codex" in sys.argv
    run = "--run" in sys.argv
    idle = float(args[0]) if args else 2.0
    syms = symbols(DEBUG)
    with tempfile.TemporaryDirectory() as root:
        a = Appd(root)
        cfg = {"updater": {"autoUpdateEnabled": True,
                           "manifestUrl": "https://127.0.0.1:1/m.json",
                           "publicKeys": ["04" + "11" * 64]}}
        if codex:
            cfg["server"] = {"command": [WS, "--listen", "{socket}"],
                             "readiness": "codex-initialize"}
        a.settings(cfg)
        fg = None
        if run:
            cmd = [] if codex else ["--", TS, "--listen", "{socket}"]
            fg = subprocess.Popen([APPD, "run"] + cmd, env=a.env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        elif codex:
            a.run("start")
        else:
            a.start()
        try:
            time.sleep(idle)
            pid = a.sup_pid()
            if after_check:
                print("status before the check: %s" % mem(pid))
                check(a)
                time.sleep(idle)
            time.sleep(0.5)
            report(pid, syms)
            print("status: %s" % mem(pid))
        finally:
            a.stop()
            if fg is not None:
                fg.wait(10)


if __name__ == "__main__":
    main()
