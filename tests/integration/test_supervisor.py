"""The supervisor's own behaviour, black-box: the restart policy (the
minimum interval is between two starts), liveness asked on the private
control socket instead of a heartbeat file, an idle supervisor that makes
no system call, and its name in ps."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

from conftest import APPD, EMULATED, pid_alive, proc_image, wait_until, TESTSERVER


def sup_log(home):
    return home.read("state/supervisor.log")


def ask(path, request=b'{"request":"status"}\n', timeout=3):
    """One request on the control socket; the answer (b"" when closed
    without one)."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    try:
        s.connect(path)
        s.sendall(request)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk
    finally:
        s.close()


def test_a_crash_after_the_minimum_interval_restarts_at_once(home):
    r = home.start_server("--listen", "{socket}")
    assert r.rc == 0, r
    pid = r.json["pid"]
    # the server has been up longer than the 1 s start-to-start interval
    time.sleep(1.2)
    os.kill(pid, signal.SIGKILL)

    def back():
        j = home.run("status").json
        return j["status"] == "running" and j.get("pid") not in (None, pid)
    assert wait_until(back, timeout=10)
    log = sup_log(home)
    after = log[log.index("was killed by signal 9"):]
    assert "restarting now" in after
    assert "restarting in" not in after
    j = home.run("status").json
    assert j["server"]["restarts"] == 1 and j["server"]["incarnation"] == 2
    assert "nextRestartAt" not in j["server"] or j["server"]["nextRestartAt"] is None


def test_a_crash_loop_backs_off_doubling_the_interval(home):
    # ready at once, then dies 200 ms after every start
    r = home.start_server("--listen", "{socket}", "--crash-after", "200")
    assert r.rc == 0, r
    pat = re.compile(r"restarting in \d+ ms \(minimum interval between starts (\d+) ms\)")
    assert wait_until(lambda: len(pat.findall(sup_log(home))) >= 3, timeout=20)
    intervals = [int(x) for x in pat.findall(sup_log(home))[:3]]
    assert intervals == [1000, 2000, 4000], intervals
    # between crashes, status shows the pending restart and the interval
    def in_backoff():
        j = home.run("status").json
        return j["server"]["state"] == "backoff" and j["server"].get("nextRestartAt")
    assert wait_until(in_backoff, timeout=15)
    assert home.run("status").json["server"]["backoffMs"] >= 4000


def test_status_is_answered_live_on_the_control_socket(home):
    r = home.start_server("--listen", "{socket}")
    assert r.rc == 0, r
    ctl = home.file("run/supervisor.sock")
    st = os.lstat(ctl)
    assert (st.st_mode & 0o777) == 0o600
    live = json.loads(ask(ctl))
    assert live["supervisorPid"] == r.json["supervisorPid"]
    assert live["state"] == "running" and live["serverPid"] == r.json["pid"]
    # an unknown request, or garbage, is closed without an answer
    assert ask(ctl, b'{"request":"reboot"}\n') == b""
    assert ask(ctl, b"status\n") == b""
    s = home.run("status").json
    assert s["supervisor"]["fresh"] is True and s["status"] == "running"


def test_a_stopped_supervisor_is_stale_at_once_and_stop_still_works(home):
    r = home.start_server("--listen", "{socket}")
    assert r.rc == 0, r
    sup = r.json["supervisorPid"]
    os.kill(sup, signal.SIGSTOP)
    try:
        # no file was touched: the supervisor simply does not answer
        s = home.run("status", timeout=10).json
        assert s["status"] == "stale"
        assert s["supervisor"]["fresh"] is False
        st = home.run("stop", "--grace", "2", timeout=30)
        assert st.rc == 0 and st.json["status"] == "stopped", st
        assert not pid_alive(sup) and not pid_alive(r.json["pid"])
    finally:
        try:
            os.kill(sup, signal.SIGCONT)
        except OSError:
            pass


def test_the_control_socket_answers_only_its_own_user(home):
    r = home.start_server("--listen", "{socket}")
    assert r.rc == 0, r
    if os.geteuid() != 0:
        pytest.skip("needs root to connect as another uid")
    ctl = home.file("run/supervisor.sock")
    # let another user reach the socket, as a careless chmod would
    parent = os.path.dirname(home.path)
    os.chmod(parent, 0o711)
    os.chmod(home.path, 0o711)
    os.chmod(home.file("run"), 0o711)
    os.chmod(ctl, 0o666)
    code = ("import socket,sys\n"
            "s=socket.socket(socket.AF_UNIX); s.settimeout(3); s.connect(sys.argv[1])\n"
            "try:\n"
            "    s.sendall(b'{\"request\":\"status\"}\\n'); d=s.recv(65536)\n"
            "except (ConnectionResetError, BrokenPipeError):\n"
            "    d=b''\n"
            "print(len(d))\n")
    p = subprocess.run(["/usr/bin/python3", "-c", code, ctl], capture_output=True, text=True,
                       timeout=20, preexec_fn=lambda: (os.setgid(65534), os.setuid(65534)))
    assert p.returncode == 0, p
    assert p.stdout.strip() == "0"          # connected, closed unanswered
    os.chmod(ctl, 0o600)
    os.chmod(home.file("run"), 0o700)
    os.chmod(home.path, 0o700)
    os.chmod(parent, 0o700)
    assert json.loads(ask(ctl))["state"] == "running"


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed")
def test_an_idle_supervisor_makes_no_system_call_and_status_writes_nothing(home):
    r = home.start_server("--listen", "{socket}")
    assert r.rc == 0, r
    sup = r.json["supervisorPid"]
    # the server's own start-up output has been logged: from now on
    # nothing happens
    assert wait_until(lambda: "testserver ready" in home.read("state/app-server.log"))
    time.sleep(0.2)
    trace = home.file("strace.out")
    before = os.stat(home.file("state/status.json"))
    # under qemu-user the emulator's own threads (RCU) make calls of their
    # own: trace only the thread that runs the supervisor
    follow = [] if EMULATED else ["-f"]
    t = subprocess.Popen(["strace", *follow, "-qq", "-o", trace, "-p", str(sup)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(3)
        idle = open(trace).read()
        for _ in range(3):
            assert home.run("status").json["supervisor"]["fresh"] is True
    finally:
        t.send_signal(signal.SIGINT)
        t.wait(timeout=10)
    calls = [l for l in idle.splitlines() if l.strip()]
    # at most the epoll wait it was sleeping in when strace attached
    assert all("epoll" in l for l in calls), calls
    assert len(calls) <= 1, calls
    # answering status is reads and sends; no file is opened or renamed
    full = open(trace).read()
    assert "accept" in full
    assert "rename" not in full and "openat" not in full, full
    after = os.stat(home.file("state/status.json"))
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_the_supervisor_is_named_appd(home):
    r = home.start_server("--listen", "{socket}")
    assert r.rc == 0, r
    sup = r.json["supervisorPid"]
    with open("/proc/%d/comm" % sup) as f:
        assert f.read().strip() == "appd"
    assert os.path.realpath(proc_image(sup)) == os.path.realpath(APPD)
    p = subprocess.run(["pgrep", "-x", "appd"], capture_output=True, text=True)
    assert str(sup) in p.stdout.split()


def test_start_replaces_a_supervisor_that_does_not_answer(home):
    r = home.start_server("--listen", "{socket}")
    assert r.rc == 0, r
    sup, srv = r.json["supervisorPid"], r.json["pid"]
    os.kill(sup, signal.SIGSTOP)
    try:
        s = home.run("start", timeout=60)
        assert s.rc == 0 and s.json["status"] == "started", s
        assert any("did not answer" in w for w in s.json.get("warnings", [])), s
        assert s.json["supervisorPid"] != sup and s.json["pid"] != srv
        assert not pid_alive(sup) and not pid_alive(srv)
        assert home.run("status").json["supervisor"]["fresh"] is True
    finally:
        try:
            os.kill(sup, signal.SIGCONT)
        except OSError:
            pass


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed")
def test_with_a_liveness_probe_the_only_wakeups_are_the_probes(home):
    """A `connect` liveness probe every second: the supervisor's system
    calls are the probe's (a socket, a connect, a close) and its wait; a
    steady "ok" writes no file."""
    home.write_settings({"server": {"command": [TESTSERVER, "--listen", "{socket}"],
                                    "liveness": {"probe": "connect", "intervalSeconds": 1}}})
    r = home.run("start")
    assert r.rc == 0, r
    sup = r.json["supervisorPid"]
    assert wait_until(lambda: home.run("status").json["health"]["lastResult"] == "ok", 10)
    trace = home.file("strace.out")
    follow = [] if EMULATED else ["-f"]
    t = subprocess.Popen(["strace", *follow, "-qq", "-o", trace, "-p", str(sup)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(3.5)         # three probe periods (a bound, not a measurement)
    finally:
        t.send_signal(signal.SIGINT)
        t.wait(timeout=10)
    calls = [l.split("(")[0].split()[-1] for l in open(trace).read().splitlines()
             if "(" in l]
    names = set(calls)
    assert names <= {"epoll_wait", "epoll_pwait", "socket", "connect", "close",
                     "clock_gettime", "read", "fcntl"}, calls
    assert calls.count("connect") >= 2, calls
