"""Liveness: a periodic probe while the server runs; failureThreshold
consecutive failures take the server down through the normal restart path.
A hung server (SIGSTOPped: its socket still accepts connections, but it
answers nothing) is restarted."""
import os
import signal
import time
import sys

from conftest import wait_until

HEALTH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "fixtures", "http_health.py")


def settings(probe="http+unix://{socket}/healthz"):
    return {"server": {
        "command": [sys.executable, HEALTH, "--unix", "{socket}"],
        "readiness": "http+unix://{socket}/ready",
        "shutdownGraceSeconds": 1,
        "liveness": {"probe": probe, "intervalSeconds": 1, "timeoutSeconds": 1,
                     "failureThreshold": 2}}}


def test_a_hung_server_is_restarted(home):
    home.write_settings(settings())
    r = home.run("start", "--timeout", "10")
    assert r.rc == 0, r
    pid = r.json["pid"]
    assert wait_until(lambda: home.run("status").json.get("health", {}).get("lastResult")
                      == "ok", 10), home.run("status").json
    os.kill(pid, signal.SIGSTOP)
    try:
        def restarted():
            s = home.run("status").json
            return s["status"] == "running" and s.get("pid") not in (None, pid) and s["ready"]
        assert wait_until(restarted, 30), home.run("status").json
    finally:
        try:
            os.kill(pid, signal.SIGCONT)
        except OSError:
            pass
    s = home.run("status").json
    assert s["health"]["restarts"] == 1, s
    assert s["server"]["restarts"] >= 1, s
    assert not os.path.exists("/proc/%d" % pid) or \
        open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()[0] == "Z"
    log = home.read("state/supervisor.log")
    assert "liveness probe failed (2 of 2)" in log, log


def test_health_is_reported_and_a_healthy_server_is_left_alone(home):
    home.write_settings(settings("connect"))
    r = home.run("start", "--timeout", "10")
    assert r.rc == 0, r
    assert wait_until(lambda: home.run("status").json["health"]["lastResult"] == "ok", 10)
    seen = set()

    def probed_again():
        seen.add(home.run("status").json["health"]["lastProbeAt"])
        return len(seen) >= 3
    # a steady "ok" is not written to status.json, but the live answer has it
    assert wait_until(probed_again, 15), seen
    s = home.run("status").json
    assert s["pid"] == r.json["pid"] and s["health"]["consecutiveFailures"] == 0, s
    assert s["health"]["restarts"] == 0


def test_bad_liveness_settings_are_refused(home):
    home.write_settings({"server": {"liveness": {"probe": "ftp://x"}}})
    r = home.run("start")
    assert r.rc != 0 and "liveness" in r.json["message"], r


WD = os.path.join(os.path.dirname(HEALTH), "wd_server.py")


def test_a_server_whose_watchdog_pings_stop_is_restarted(home):
    """server.watchdogSeconds: the server gets NOTIFY_SOCKET, WATCHDOG_USEC
    and WATCHDOG_PID (its own pid) and must send WATCHDOG=1; when the
    pings stop while it keeps running, it is restarted."""
    home.write_settings({"server": {"command": [sys.executable, WD, "{socket}"],
                                    "watchdogSeconds": 1, "shutdownGraceSeconds": 1}})
    r = home.run("start", "--timeout", "10")
    assert r.rc == 0, r
    pid = r.json["pid"]
    assert wait_until(lambda: "watchdog usec=1000000 pid=%d mine=%d" % (pid, pid)
                      in home.read("state/app-server.log"), 10), home.read("state/app-server.log")
    # while it pings it is left alone: let two watchdog deadlines pass
    time.sleep(2.5)
    assert home.run("status").json["pid"] == pid
    os.kill(pid, signal.SIGUSR1)

    def restarted():
        s = home.run("status").json
        return s["status"] == "running" and s.get("pid") not in (None, pid)
    assert wait_until(restarted, 20), home.run("status").json
    s = home.run("status").json
    assert s["health"]["restarts"] == 1, s
    assert "no WATCHDOG=1" in home.read("state/supervisor.log")
