"""Control socket ownership: serialized startup of raw supervisors, socket
activation across restarts and its path repair, and the heartbeat
ownership rules of the Heddle control-plane lifecycle (fixed: a heartbeat
never steals a newer live record back)."""
import json
import os
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import APPD, TESTSERVER, marked_pids, pid_alive, read_cmdline, wait_until


def proc_start_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        return int(f.read().rsplit(")", 1)[1].split()[19])


def cmdlines(home):
    out = []
    for p in marked_pids(home.path):
        try:
            out.append((p, read_cmdline(p)))
        except OSError:
            pass
    return out


def test_concurrent_raw_supervise_launches_make_one(home):
    home.write_settings({"server": {"command": [TESTSERVER, "--listen", "{socket}"]}})
    procs = [subprocess.Popen([APPD, "supervise"], env=home.env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
             for _ in range(8)]
    assert wait_until(lambda: sum(p.poll() is not None for p in procs) == 7, timeout=20)
    running = [p for p in procs if p.poll() is None]
    assert len(running) == 1
    for p in procs:
        if p is running[0]:
            continue
        out, err = p.communicate()
        assert p.returncode != 0
        j = json.loads(out.strip().splitlines()[-1]) if out.strip() else None
        msg = (j or {}).get("message", "") + err
        assert "already running" in msg or "in use" in msg or "timed out" in msg, (out, err)
    assert wait_until(lambda: home.run("status").json["status"] == "running")
    cl = cmdlines(home)
    assert len([c for p, c in cl if c[1:2] == [b"supervise"]]) == 1
    assert len([c for p, c in cl if c[0] == TESTSERVER.encode()]) == 1
    for f in ("state/supervisor.pid", "state/app-server.pid", "state/status.json"):
        json.loads(home.read(f))          # none torn or corrupted
    assert home.read_json("state/supervisor.pid")["pid"] == running[0].pid
    s = home.run("stop")
    assert s.rc == 0 and s.json["status"] == "stopped", s
    running[0].wait(timeout=10)


def hammer(path, stop, counts):
    """Connect + ping in a tight loop; count what fails."""
    while not stop.is_set():
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(5)
        try:
            s.connect(path)
        except OSError:
            counts["refused"] += 1
            s.close()
            time.sleep(0.001)
            continue
        try:
            s.sendall(b"ping\n")
            if not s.recv(16).startswith(b"pong"):
                counts["failed"] += 1
            else:
                counts["ok"] += 1
        except OSError:
            counts["failed"] += 1
        finally:
            s.close()


def restarts_under_load(home, activation, n=20):
    home.write_settings({"server": {
        "command": [TESTSERVER] + (["--socket-activation"] if activation else ["--listen", "{socket}"]),
        "socketActivation": activation}})
    r = home.run("start")
    assert r.rc == 0, r
    counts = {"ok": 0, "refused": 0, "failed": 0}
    stop = threading.Event()
    t = threading.Thread(target=hammer, args=(home.socket, stop, counts))
    t.start()
    def ident():
        st = os.stat(home.socket)
        return (st.st_ino, st.st_ctime_ns)     # inode numbers are reused
    inodes = [ident()]
    try:
        for _ in range(n):
            rr = home.run("restart")
            assert rr.rc == 0, rr
            inodes.append(ident())
    finally:
        stop.set()
        t.join()
    counts["inodes"] = len(set(inodes))
    return counts, r.json["pid"]


def test_socket_activation_keeps_every_connection_across_restarts(home, record_property):
    counts, first = restarts_under_load(home, True)
    record_property("with_activation", counts)
    print("socket activation, 20 restarts:", counts)
    assert counts["ok"] > 0
    assert counts["refused"] == 0 and counts["failed"] == 0, counts
    assert counts["inodes"] == 1, counts        # one listener, held throughout
    assert not pid_alive(first)
    assert home.run("status").json["socketActivation"]["repairs"] == 0
    assert home.run("stop").rc == 0
    assert not os.path.exists(home.socket)
    assert not os.path.exists(home.file("state/listener.sock"))


def test_restarts_without_activation_are_counted(home, record_property):
    counts, _ = restarts_under_load(home, False)
    record_property("without_activation", counts)
    print("no socket activation, 20 restarts:", counts)
    assert counts["ok"] > 0
    # every incarnation binds the path itself: 21 sockets, so a client can
    # meet the gap between two of them (the refusals counted above)
    assert counts["inodes"] == 21, counts


def test_socket_path_is_repaired_from_the_held_listener(home):
    home.write_settings({"server": {"command": [TESTSERVER, "--socket-activation"],
                                    "socketActivation": True}})
    r = home.run("start")
    assert r.rc == 0, r
    ino = os.stat(home.socket).st_ino
    os.unlink(home.socket)                      # a tmp cleaner
    assert wait_until(lambda: os.path.exists(home.socket), timeout=15)
    assert os.stat(home.socket).st_ino == ino
    s = socket.socket(socket.AF_UNIX)
    s.connect(home.socket)
    s.sendall(b"ping\n")
    assert s.recv(16).startswith(b"pong")
    s.close()
    st = home.run("status").json
    assert st["socketActivation"]["repairs"] == 1 and "lastRepairAt" in st["socketActivation"]


def foreign_record(home):
    """A status record of a newer live supervisor (a live process that
    is not ours, with its real identity)."""
    other = subprocess.Popen(["sleep", "120"])
    boot = open("/proc/sys/kernel/random/boot_id").read().strip()
    ticks = proc_start_ticks(other.pid)
    rec = home.read_json("state/status.json")
    rec.update({"serverId": "%d-%d" % (other.pid, ticks), "supervisorPid": other.pid,
                "supervisorStartTicks": ticks, "bootId": boot})
    tmp = home.file("state/status.json.test")
    with open(tmp, "w") as f:
        json.dump(rec, f)
    os.rename(tmp, home.file("state/status.json"))
    return other, rec["serverId"]


def test_does_not_clear_a_newer_live_server_record_when_an_older_lifecycle_shuts_down(home):
    r = home.start_server("--listen", "{socket}")
    assert r.rc == 0, r
    other, sid = foreign_record(home)
    try:
        s = home.run("stop")
        assert s.rc == 0, s
        assert home.read_json("state/status.json")["serverId"] == sid
    finally:
        other.kill()
        other.wait()


def test_an_older_supervisor_stops_refreshing_once_a_newer_one_owns_the_record(home):
    r = home.start_server("--listen", "{socket}")
    sup, pid = r.json["supervisorPid"], r.json["pid"]
    other, sid = foreign_record(home)
    try:
        before = home.read("state/status.json")
        os.kill(sup, signal.SIGHUP)                 # a restart: state changes
        assert wait_until(lambda: not pid_alive(pid), timeout=10)
        time.sleep(0.5)
        assert home.read("state/status.json") == before
        assert "no longer writing" in home.read("state/supervisor.log")
    finally:
        other.kill()
        other.wait()


def test_prints_the_live_server_address_and_returns_successfully_when_a_daemon_already_exists(home):
    r = home.start_server("--listen", "{socket}")
    assert r.rc == 0
    again = home.run("start")
    assert again.rc == 0
    assert again.json["status"] == "alreadyRunning"
    assert again.json["socketPath"] == home.socket
    assert len([c for p, c in cmdlines(home) if c[0] == TESTSERVER.encode()]) == 1


def test_marks_the_live_server_stale_when_last_seen_at_is_too_old(home):
    r = home.start_server("--listen", "{socket}")
    sup = r.json["supervisorPid"]
    os.kill(sup, signal.SIGSTOP)
    try:
        rec = home.read_json("state/status.json")
        rec["lastSeenAt"] = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - 60))
        with open(home.file("state/status.json.t"), "w") as f:
            json.dump(rec, f)
        os.rename(home.file("state/status.json.t"), home.file("state/status.json"))
        s = home.run("status").json
        assert s["status"] == "stale"
        assert s["supervisor"]["fresh"] is False
        # stop escalates (CONT, TERM) and succeeds within grace + 10 s
        t0 = time.monotonic()
        st = home.run("stop", "--grace", "2")
        assert st.rc == 0 and st.json["status"] == "stopped", st
        assert time.monotonic() - t0 < 12
        assert not pid_alive(sup) and marked_pids(home.path) == []
    finally:
        try:
            os.kill(sup, signal.SIGCONT)
        except OSError:
            pass


def test_marks_the_live_server_stale_when_the_recorded_pid_is_gone(home):
    r = home.start_server("--listen", "{socket}")
    os.kill(r.json["supervisorPid"], signal.SIGKILL)
    assert wait_until(lambda: not pid_alive(r.json["supervisorPid"]))
    s = home.run("status").json
    assert s["status"] == "orphaned"             # not running: no live supervisor
    assert "fresh" not in s["supervisor"]
    assert s["ready"] is False
