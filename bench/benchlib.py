"""Helpers shared by the bench scripts (stdlib only)."""
import sys


class BenchError(Exception):
    """A bench step failed; the script reports it and exits non-zero."""


def log(msg, prefix="bench"):
    print("%s: %s" % (prefix, msg), file=sys.stderr, flush=True)


def cpu_model():
    """The CPU's model name from /proc/cpuinfo, or "?"."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def loadavg():
    """The 1/5/15-minute load averages as text, or "?"."""
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def pct(values, p):
    """Nearest-rank percentile (p in 0..100); NaN for no values."""
    s = sorted(values)
    if not s:
        return float("nan")
    k = max(0, min(len(s) - 1, int(-(-p * len(s) // 100)) - 1))
    return s[k]


def proc_status(pid):
    """VmRSS / VmHWM / RssAnon / RssFile (bytes) from /proc/PID/status."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[key] = int(rest.split()[0]) * 1024
    return out
