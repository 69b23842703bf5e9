"""start / stop / restart / status through the static binary, with the
C fixture server (tests/fixtures/testserver.c)."""
import json
import os
import signal
import stat
import subprocess
import time
import concurrent.futures as cf

import pytest

from conftest import APPD, TESTSERVER, marked_pids, pid_alive, read_cmdline, wait_until

COMMON = {"status", "socketPath", "cliVersion"}


def proc_start_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        return int(f.read().rsplit(")", 1)[1].split()[19])


def test_status_on_fresh_home_is_stopped(home):
    r = home.run("status")
    assert r.rc == 0, r
    assert r.nlines == 1
    assert r.json["status"] == "stopped"
    assert r.json["ready"] is False
    assert COMMON <= set(r.json)
    assert "backend" not in r.json
    # status never creates the home
    assert not os.path.exists(home.path)


def test_start_status_stop_fields_and_codes(home):
    r = home.start_server("--listen", "{socket}")
    assert r.rc == 0, r
    assert r.nlines == 1
    j = r.json
    assert j["status"] == "started"
    assert j["backend"] == "pid"
    assert j["managedPath"] == TESTSERVER
    assert j["managedVersion"] is None
    assert j["socketPath"] == home.socket
    assert j["cliVersion"]
    pid = j["pid"]
    assert pid_alive(pid)
    # the server runs in its own process group
    assert os.getpgid(pid) == pid
    # ready means the socket accepts
    assert stat.S_ISSOCK(os.lstat(home.socket).st_mode)

    s = home.run("status")
    assert s.rc == 0, s
    assert s.json["status"] == "running"
    assert s.json["pid"] == pid
    assert s.json["ready"] is True
    assert s.json["supervisor"]["fresh"] is True
    assert s.json["server"]["incarnation"] == 1

    again = home.run("start")
    assert again.rc == 0, again
    assert again.json["status"] == "alreadyRunning"
    assert "pid" not in again.json

    v = home.run("version")
    assert v.rc == 0, v
    assert v.json["status"] == "running" and v.json["backend"] == "pid"

    rec = home.read_json("state/app-server.pid")
    assert rec["pid"] == pid and rec["startTicks"] == proc_start_ticks(pid)
    sup = home.read_json("state/supervisor.pid")
    assert pid_alive(sup["pid"])

    st = home.run("stop")
    assert st.rc == 0, st
    assert st.json["status"] == "stopped" and st.json["backend"] == "pid"
    assert not pid_alive(pid)
    assert not pid_alive(sup["pid"])
    assert not os.path.exists(home.file("state/app-server.pid"))
    assert not os.path.exists(home.file("state/supervisor.pid"))
    assert not os.path.exists(home.socket)
    assert marked_pids(home.path) == []

    nr = home.run("stop")
    assert nr.rc == 0 and nr.json["status"] == "notRunning"
    assert "backend" not in nr.json
    ver = home.run("version")
    assert ver.rc == 4 and ver.json["error"] == "notRunning"
    assert ver.json["status"] == "error"
    s = home.run("status")
    assert s.json["status"] == "stopped"
    assert s.json["server"]["lastExit"]["code"] == 0


def test_home_is_private(home):
    home.start_server("--listen", "{socket}")
    for d in ("", "state", "run"):
        m = os.stat(home.file(d)).st_mode & 0o777
        assert m == 0o700, (d, oct(m))
    for f in ("settings.json", "state/app-server.pid", "state/status.json"):
        assert os.stat(home.file(f)).st_mode & 0o077 == 0, f


@pytest.mark.parametrize("args,needle", [
    ([], "no command"),
    (["frobnicate"], "unknown command"),
    (["start", "--timeout"], "--timeout"),
    (["start", "--timeout", "abc"], "--timeout"),
    (["stop", "--grace", "-1"], "--grace"),
    (["start", "--"], "no command after"),
    (["status", "extra"], "no arguments"),
])
def test_usage_errors(home, args, needle):
    r = home.run(*args)
    assert r.rc == 2, r
    assert r.json["status"] == "error" and r.json["error"] == "usage"
    assert needle in r.json["message"]
    assert needle in r.stderr


def test_missing_binary_fails_before_anything_changes(home):
    r = home.run("start", "--", "/nonexistent/server", "--x")
    assert r.rc == 1, r
    assert r.json["error"] == "spawnFailed"
    assert "/nonexistent/server" in r.json["message"]
    assert not os.path.exists(home.file("state/supervisor.pid"))


def test_sixteen_concurrent_starts_make_one_server(home):
    # record the command first so every concurrent start is identical
    home.write_settings({"server": {"command": [TESTSERVER, "--listen", "{socket}",
                                                "--ready-delay", "200"]}})
    with cf.ThreadPoolExecutor(16) as ex:
        results = list(ex.map(lambda _: home.run("start", timeout=120), range(16)))
    for r in results:
        assert r.rc == 0, r
        assert r.json["status"] in ("started", "alreadyRunning"), r
    assert sum(r.json["status"] == "started" for r in results) == 1
    procs = marked_pids(home.path)
    cmds = []
    for p in procs:
        cmds.append(read_cmdline(p))
    sups = [c for c in cmds if c[1:2] == [b"supervise"]]
    servers = [c for c in cmds if c[0] == TESTSERVER.encode()]
    assert len(sups) == 1, cmds
    assert len(servers) == 1, cmds


def test_crashed_server_is_restarted_with_backoff(home):
    r = home.start_server("--listen", "{socket}")
    assert r.rc == 0, r
    pid = r.json["pid"]
    os.kill(pid, signal.SIGKILL)
    # status shows the crash and the pending restart
    assert wait_until(lambda: home.run("status").json["server"].get("lastExit", {}).get("signal") == 9)
    s = home.run("status").json
    assert s["server"]["restarts"] in (0, 1)
    def restarted():
        j = home.run("status").json
        return j["status"] == "running" and j.get("pid") not in (None, pid)
    assert wait_until(restarted, timeout=10)
    j = home.run("status").json
    assert j["server"]["restarts"] == 1
    assert j["server"]["incarnation"] == 2
    assert not pid_alive(pid)
    # second crash: the backoff doubles (1 s, then 2 s)
    pid2 = j["pid"]
    os.kill(pid2, signal.SIGKILL)
    assert wait_until(lambda: home.run("status").json["server"].get("backoffMs") == 2000, timeout=5)


def test_killed_supervisor_orphan_is_replaced_by_identity(home):
    r = home.start_server("--listen", "{socket}")
    assert r.rc == 0, r
    srv = r.json["pid"]
    sup = r.json["supervisorPid"]
    os.kill(sup, signal.SIGKILL)
    assert wait_until(lambda: not pid_alive(sup))
    assert pid_alive(srv)
    s = home.run("status")
    assert s.json["status"] == "orphaned"
    r2 = home.run("start")
    assert r2.rc == 0, r2
    assert r2.json["status"] == "started"
    assert r2.json["pid"] != srv
    assert not pid_alive(srv)
    servers = [p for p in marked_pids(home.path)
               if read_cmdline(p)[0] == TESTSERVER.encode()]
    assert servers == [r2.json["pid"]]


def test_server_ignoring_term_is_killed_after_grace(home):
    r = home.start_server("--listen", "{socket}", "--ignore-term")
    assert r.rc == 0, r
    pid = r.json["pid"]
    t0 = time.monotonic()
    s = home.run("stop", "--grace", "1")
    took = time.monotonic() - t0
    assert s.rc == 0, s
    assert s.json["status"] == "stopped"
    assert not pid_alive(pid)
    assert took >= 1.0          # it did wait the grace period first
    st = home.run("status").json
    assert st["server"]["lastExit"]["signal"] == 9


@pytest.mark.parametrize("flag", ["--fork-grandchild", "--escape-grandchild"])
def test_grandchild_ignoring_term_is_gone_after_stop(home, flag, tmp_path):
    gp = str(tmp_path / "gc.pid")
    r = home.start_server("--listen", "{socket}", flag, "--grandchild-pidfile", gp)
    assert r.rc == 0, r
    assert wait_until(lambda: os.path.exists(gp))
    gc = int(open(gp).read())
    assert pid_alive(gc)
    s = home.run("stop", "--grace", "1")
    assert s.rc == 0, s
    assert not pid_alive(gc)
    assert marked_pids(home.path) == []


def test_exit_before_ready_fails_at_once_with_status_and_log(home):
    t0 = time.monotonic()
    r = home.start_server("--exit-immediately", "3", timeout=30)
    took = time.monotonic() - t0
    assert r.rc == 6, r
    assert r.json["error"] == "exitedBeforeReady"
    assert r.json["exitCode"] == 3
    assert "exiting 3" in r.json["logTail"]
    assert took < 10            # did not wait out the 30 s timeout
    assert marked_pids(home.path) == []
    assert home.run("status").json["status"] == "stopped"


def test_not_ready_within_timeout_leaves_nothing(home):
    r = home.start_server("--listen", "{socket}", "--ready-delay", "60000", timeout=1)
    assert r.rc == 6, r
    assert r.json["error"] == "notReady"
    assert "testserver started" in r.json["logTail"]
    assert marked_pids(home.path) == []


@pytest.mark.parametrize("channel", ["fd", "socket"])
def test_notify_readiness(home, channel):
    home.write_settings({"server": {"readiness": "notify"}})
    env = {}
    args = ["--listen", "{socket}", "--notify", "--ready-delay", "300"]
    if channel == "socket":
        args.append("--notify-socket-only")
    r = home.start_server(*args)
    assert r.rc == 0, r
    s = home.run("status").json
    assert s["readiness"] == "notify" and s["ready"] is True


def test_notify_readiness_never_sent_times_out(home):
    home.write_settings({"server": {"readiness": "notify"}})
    r = home.start_server("--listen", "{socket}", timeout=1)
    assert r.rc == 6 and r.json["error"] == "notReady", r


def test_readiness_none(home):
    home.write_settings({"server": {"readiness": "none"}})
    r = home.start_server("--ready-delay", "60000")
    assert r.rc == 0, r
    assert home.run("status").json["ready"] is True


def test_restart_gives_a_new_ready_server(home):
    r = home.start_server("--listen", "{socket}")
    pid = r.json["pid"]
    sup = r.json["supervisorPid"]
    rr = home.run("restart")
    assert rr.rc == 0, rr
    assert rr.json["status"] == "restarted"
    assert rr.json["pid"] != pid
    assert rr.json["supervisorPid"] == sup        # in place, via SIGHUP
    assert not pid_alive(pid) and pid_alive(rr.json["pid"])
    s = home.run("status").json
    assert s["status"] == "running" and s["pid"] == rr.json["pid"]
    # restart with nothing running starts it
    home.run("stop")
    rr2 = home.run("restart")
    assert rr2.rc == 0 and rr2.json["status"] == "restarted", rr2


def test_garbage_settings_is_a_clear_error_and_left_alone(home):
    os.makedirs(home.path, mode=0o700)
    garbage = "{not json"
    with open(home.file("settings.json"), "w") as f:
        f.write(garbage)
    r = home.run("start", "--", TESTSERVER)
    # start -- CMD rewrites the command: garbage must not be overwritten
    assert r.rc == 1, r
    assert r.json["error"] == "invalidSettings"
    assert home.file("settings.json") in r.json["message"]
    assert home.read("settings.json") == garbage
    r = home.run("start")
    assert r.rc == 1 and r.json["error"] == "invalidSettings"
    assert home.read("settings.json") == garbage
    # stop still works and says why
    s = home.run("stop")
    assert s.rc == 0 and s.json["status"] == "notRunning", s
    assert "warnings" in s.json and "settings" in s.json["warnings"][0]


def test_wrong_type_in_settings_names_the_member(home):
    home.write_settings({"server": {"readyTimeoutSeconds": "ten"}})
    r = home.run("start", "--", TESTSERVER)
    assert r.rc == 1 and "readyTimeoutSeconds" in r.json["message"], r


def test_garbage_pidfile_is_a_clear_error_and_left_alone(home):
    os.makedirs(home.file("state"), mode=0o700)
    os.chmod(home.path, 0o700)
    with open(home.file("state/supervisor.pid"), "w") as f:
        f.write("garbage{")
    r = home.run("start", "--", TESTSERVER, "--listen", "{socket}")
    assert r.rc == 1, r
    assert r.json["error"] == "invalidPidfile"
    assert home.file("state/supervisor.pid") in r.json["message"]
    assert home.read("state/supervisor.pid") == "garbage{"
    st = home.run("status")
    assert st.rc == 1 and st.json["error"] == "invalidPidfile"


def test_record_of_live_process_with_other_start_time_is_stale(home):
    victim = subprocess.Popen(["sleep", "60"])
    try:
        os.makedirs(home.file("state"), mode=0o700)
        os.chmod(home.path, 0o700)
        boot = open("/proc/sys/kernel/random/boot_id").read().strip()
        rec = {"pid": victim.pid, "bootId": boot,
               "startTicks": proc_start_ticks(victim.pid) + 1, "pgid": victim.pid, "exe": "x"}
        for name in ("supervisor.pid", "app-server.pid"):
            with open(home.file("state/" + name), "w") as f:
                json.dump(rec, f)
        assert home.run("status").json["status"] == "stopped"
        s = home.run("stop", "--grace", "0")
        assert s.rc == 0 and s.json["status"] == "notRunning", s
        assert victim.poll() is None          # never signalled
        assert not os.path.exists(home.file("state/supervisor.pid"))
        r = home.start_server("--listen", "{socket}")
        assert r.rc == 0, r
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()


def test_unsafe_home_is_refused(home):
    os.makedirs(home.path, mode=0o700)
    os.chmod(home.path, 0o777)
    r = home.run("start", "--", TESTSERVER)
    assert r.rc == 1 and r.json["error"] == "unsafeHome", r
    assert home.path in r.json["message"]
    assert os.stat(home.path).st_mode & 0o777 == 0o777     # never chmodded
    s = home.run("status")
    assert s.rc == 1 and s.json["error"] == "unsafeHome"


def test_lock_timeout_names_the_holder(home):
    import fcntl
    os.makedirs(home.file("state"), mode=0o700)
    os.chmod(home.path, 0o700)
    fd = os.open(home.file("state/daemon.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, b"4242 bootstrap 1790000000000\n")
    try:
        t0 = time.monotonic()
        r = home.run("start", "--lock-timeout", "1", "--", TESTSERVER)
        assert time.monotonic() - t0 < 5
        assert r.rc == 3, r
        assert r.json["error"] == "busy"
        assert r.json["holderPid"] == 4242
        assert r.json["holderCommand"] == "bootstrap"
        assert "4242" in r.json["message"] and "bootstrap" in r.json["message"]
        # status and version take no lock
        assert home.run("status").rc == 0
    finally:
        os.close(fd)
    r = home.start_server("--listen", "{socket}")
    assert r.rc == 0, r


def test_server_output_is_captured_and_capped(home):
    home.write_settings({"server": {"logMaxBytes": 65536}})
    r = home.start_server("--listen", "{socket}", "--log-spam", "200000",
                          "--print-env", "APPD_HOME")
    assert r.rc == 0, r
    assert wait_until(lambda: os.path.exists(home.file("state/app-server.log.1")))
    def sizes():
        return os.path.getsize(home.file("state/app-server.log"))
    assert wait_until(lambda: "testserver" in home.read("state/app-server.log") or
                      "testserver" in home.read("state/app-server.log.1"))
    assert sizes() <= 65536
    assert os.path.getsize(home.file("state/app-server.log.1")) <= 65536
    logs = home.run("logs", "--lines", "5")
    assert logs.rc == 0 and 0 < len(logs.stdout.splitlines()) <= 5


def test_socket_path_too_long_is_refused(tmp_path):
    from conftest import Home
    longdir = "/tmp/" + "d" * 100
    h = Home(longdir)
    r = h.run("start", "--", TESTSERVER)
    try:
        assert r.rc != 0
        assert r.json["status"] == "error"
        assert "longer than" in r.json["message"]
        assert not os.path.exists(longdir)      # nothing was created
    finally:
        h.run("stop")
        import shutil
        shutil.rmtree(longdir, ignore_errors=True)


def test_lifecycle_without_pidfd(home, tmp_path):
    """Kernels without pidfd: child exits come from SIGCHLD + waitpid, and
    non-child exits from the bounded re-check (APPD_REACTOR_NO_PIDFD=1
    forces that path)."""
    env = {"APPD_REACTOR_NO_PIDFD": "1"}
    gp = str(tmp_path / "gc.pid")
    r = home.run("start", "--", TESTSERVER, "--listen", "{socket}", "--fork-grandchild",
                 "--grandchild-pidfile", gp, env=env)
    assert r.rc == 0, r
    pid = r.json["pid"]
    os.kill(pid, signal.SIGKILL)
    def restarted():
        j = home.run("status", env=env).json
        return j["status"] == "running" and j.get("pid") not in (None, pid)
    assert wait_until(restarted, timeout=10)
    s = home.run("stop", "--grace", "1", env=env)
    assert s.rc == 0 and s.json["status"] == "stopped", s
    assert marked_pids(home.path) == []
