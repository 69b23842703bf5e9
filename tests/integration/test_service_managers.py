"""`appd run`: the supervisor in the foreground of a service manager, told
apart only by how it reports readiness. The managers are the real ones from
Debian (s6-svscan/s6-supervise, runsv/sv); systemd cannot run as PID 1 in
these VMs, so its notification protocol is checked by playing the manager
(binding NOTIFY_SOCKET); PID 1 of a container is an unshare(1) PID
namespace."""
import json
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

from conftest import APPD, TESTSERVER, marked_pids, pid_alive, wait_until

SERVER = [TESTSERVER, "--listen", "{socket}"]


def status(home):
    return home.run("status").json


def running_ready(home):
    s = status(home)
    return s["status"] == "running" and s["ready"]


def test_systemd_notify_protocol(home, tmp_path):
    """As a Type=notify service: READY=1 once the server is ready (after
    nothing but STATUS= lines), WATCHDOG=1 pings when WATCHDOG_USEC is
    set, STOPPING=1 when it stops; `appd stop` makes it exit 0; the server never sees the
    manager's NOTIFY_SOCKET."""
    path = str(tmp_path / "notify.sock")
    mgr = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    mgr.bind(path)
    mgr.settimeout(15)
    env = dict(home.env, NOTIFY_SOCKET=path, WATCHDOG_USEC="400000")
    p = subprocess.Popen([APPD, "run", "--", TESTSERVER, "--listen", "{socket}",
                          "--print-env", "NOTIFY_SOCKET"], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        msgs = []
        while not any("READY=1" in m for m in msgs):
            msgs.append(mgr.recv(4096).decode())
        ready = msgs[-1].split("\n")
        assert all(m.startswith("STATUS=") for m in msgs[:-1]), msgs
        assert ready[0] == "READY=1" and "MAINPID=%d" % p.pid in ready, msgs
        # ready means ready: the server answers already
        assert running_ready(home)
        # the manager asked for a watchdog: pings every half WATCHDOG_USEC
        pings = [mgr.recv(4096).decode() for _ in range(2)]
        assert pings == ["WATCHDOG=1", "WATCHDOG=1"], pings
        assert "NOTIFY_SOCKET is unset" in home.read("state/app-server.log")
        r = home.run("stop")
        assert r.rc == 0 and r.json["status"] == "stopped", r
        tail = []
        while not any(m == "STOPPING=1" for m in tail):
            tail.append(mgr.recv(4096).decode())
        assert p.wait(timeout=15) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_exit_status_when_the_restart_policy_ends_supervision(home):
    """With restart "never", `appd run` exits as its server did, so a
    manager's Restart=on-failure sees the failure."""
    home.write_settings({"server": {"restart": "never"}})
    p = subprocess.run([APPD, "run", "--", TESTSERVER, "--listen", "{socket}",
                        "--crash-after", "300", "--exit-code", "3"], env=home.env,
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 3, p
    assert status(home)["status"] == "stopped"


def test_run_refuses_a_second_supervisor(home):
    r = home.start_server("--listen", "{socket}")
    assert r.rc == 0, r
    p = subprocess.run([APPD, "run"], env=home.env, capture_output=True, text=True,
                       timeout=30)
    assert p.returncode != 0, p
    j = json.loads(p.stdout.strip().splitlines()[-1])
    assert j["status"] == "error", j
    assert status(home)["supervisor"]["pid"] == r.json["supervisorPid"]


def service_dir(tmp, name, home, run_args, notification_fd=None):
    d = tmp / name
    d.mkdir()
    (d / "run").write_text("#!/bin/sh\nexec 2>>%s/run.log\nexec env APPD_HOME=%s "
                           "APPD_TEST_MARK=%s %s run %s\n"
                           % (tmp, home.path, home.path, APPD, " ".join(run_args)))
    os.chmod(d / "run", 0o755)
    if notification_fd is not None:
        (d / "notification-fd").write_text("%d\n" % notification_fd)
    (d / "down").write_text("")
    return d


def test_s6_supervise_waits_for_readiness_and_stops_the_tree(home, tmp_path):
    """s6-svscan runs `appd run --notification-fd 3`: `s6-svc -wU -u`
    returns once the server is ready, `s6-svc -wD -d` stops the whole
    tree."""
    if shutil.which("s6-svscan") is None:
        pytest.skip("s6 is not installed (make deps installs it)")
    home.write_settings({"server": {"command": SERVER, "readiness": "connect"}})
    scan = tmp_path / "scan"
    scan.mkdir()
    svc = service_dir(scan, "appd", home, ["--notification-fd", "3"], notification_fd=3)
    scanner = subprocess.Popen(["s6-svscan", str(scan)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: os.path.exists(svc / "supervise" / "control"), 10)
        u = subprocess.run(["s6-svc", "-wU", "-T", "20000", "-u", str(svc)],
                           capture_output=True, text=True, timeout=40)
        assert u.returncode == 0, u
        assert running_ready(home), status(home)   # -wU returned at readiness
        srv = status(home)["pid"]
        st = subprocess.run(["s6-svstat", str(svc)], capture_output=True, text=True)
        assert "ready" in st.stdout, st.stdout
        d = subprocess.run(["s6-svc", "-wD", "-T", "20000", "-d", str(svc)],
                           capture_output=True, text=True, timeout=40)
        assert d.returncode == 0, d
        assert not pid_alive(srv)
        assert status(home)["status"] == "stopped"
    finally:
        subprocess.run(["s6-svc", "-dx", str(svc)], capture_output=True)
        scanner.terminate()
        scanner.wait(timeout=10)


def test_runit_runsv_up_and_down(home, tmp_path):
    """runsv runs `appd run` (runit has no readiness protocol): `sv up`
    brings the server up, `sv down` stops the tree and appd run exits 0."""
    if shutil.which("runsv") is None:
        pytest.skip("runit is not installed (make deps installs it)")
    home.write_settings({"server": {"command": SERVER}})
    svc = service_dir(tmp_path, "appd", home, [])
    rs = subprocess.Popen(["runsv", str(svc)], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: os.path.exists(svc / "supervise" / "ok"), 10)
        assert subprocess.run(["sv", "-w", "20", "up", str(svc)], capture_output=True,
                              timeout=40).returncode == 0
        assert wait_until(lambda: running_ready(home), 20), status(home)
        srv = status(home)["pid"]
        d = subprocess.run(["sv", "-w", "20", "down", str(svc)], capture_output=True,
                           text=True, timeout=40)
        assert d.returncode == 0, d
        assert wait_until(lambda: not pid_alive(srv), 10)
        assert status(home)["status"] == "stopped"
        assert "want down" not in subprocess.run(["sv", "status", str(svc)],
                                                 capture_output=True, text=True).stdout
    finally:
        subprocess.run(["sv", "exit", str(svc)], capture_output=True)
        rs.wait(timeout=10)


def ns_init(unshare_pid):
    path = "/proc/%d/task/%d/children" % (unshare_pid, unshare_pid)
    kids = open(path).read().split() if os.path.exists(path) else []
    return int(kids[0]) if kids else None


@pytest.fixture
def need_root():
    if os.getuid() != 0:
        pytest.skip("a PID namespace needs root")


def test_pid1_of_a_container_reaps_forwards_and_exits_as_the_server(home, need_root):
    """`unshare --pid --fork --mount-proc appd run -- server`: appd is PID 1.
    Orphans the server leaves are reaped (no zombie stays), SIGTERM to PID 1
    stops the tree and it exits 0; with restart "never" a server that exits
    3 makes PID 1 exit 3."""
    home.write_settings({"server": {"command": SERVER, "shutdownGraceSeconds": 2}})
    gc = home.file("gc.pid")
    os.makedirs(home.path, exist_ok=True)
    p = subprocess.Popen(["unshare", "--pid", "--fork", "--mount-proc", APPD, "run", "--",
                          TESTSERVER, "--listen", "{socket}", "--fork-grandchild",
                          "--grandchild-pidfile", gc], env=home.env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: ns_init(p.pid) is not None, 10)
        init = ns_init(p.pid)

        def inside_status():
            # pids in the records are the namespace's: ask from inside it
            r = subprocess.run(["nsenter", "-t", str(init), "-m", "-p", "--", APPD, "status"],
                               env=home.env, capture_output=True, text=True, timeout=30)
            return json.loads(r.stdout)

        assert wait_until(lambda: inside_status()["status"] == "running" and
                          inside_status()["ready"], 20), inside_status()
        assert inside_status()["supervisor"]["pid"] == 1
        # the server's child, killed: it must not stay a zombie
        assert wait_until(lambda: os.path.exists(gc) and open(gc).read().strip(), 10)
        k = subprocess.run(["nsenter", "-t", str(init), "-m", "-p", "--", "kill", "-9",
                            open(gc).read().split()[0]], capture_output=True, text=True)
        assert k.returncode == 0, k
        ns = os.readlink("/proc/%d/ns/pid" % init)

        def zombies():
            out = []
            for d in os.listdir("/proc"):
                try:
                    if d.isdigit() and os.readlink("/proc/%s/ns/pid" % d) == ns and \
                            open("/proc/%s/stat" % d).read().rsplit(")", 1)[1].split()[0] == "Z":
                        out.append(int(d))
                except OSError:
                    pass
            return out

        assert wait_until(lambda: zombies() == [], 10), zombies()
        os.kill(init, signal.SIGTERM)
        assert p.wait(timeout=30) == 0, p.stderr.read()
        assert marked_pids(home.path) == []
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    home.write_settings({"server": {"command": SERVER, "restart": "never"}})
    q = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", APPD, "run", "--",
                        TESTSERVER, "--listen", "{socket}", "--crash-after", "300",
                        "--exit-code", "3"], env=home.env, capture_output=True, text=True,
                       timeout=30)
    assert q.returncode == 3, q
