"""Faults of the field-hardening issue, each reproduced black-box through
the binary: what a hostile or unlucky home does must give a clear error,
never a hang."""
import json
import os
import subprocess
import time

import pytest

from conftest import APPD, TESTSERVER, marked_pids, skip_if_emulated, wait_until

STATE_FILES = ["state/status.json", "state/supervisor.pid", "state/app-server.pid",
               "settings.json"]


def make_home_dirs(home):
    os.makedirs(os.path.join(home.path, "state"), exist_ok=True)
    os.chmod(home.path, 0o700)
    os.chmod(os.path.join(home.path, "state"), 0o700)


@pytest.mark.parametrize("rel", STATE_FILES)
@pytest.mark.parametrize("cmd", [["status"], ["stop"], ["start", "--timeout", "5"]])
def test_a_fifo_at_a_state_file_never_hangs_a_command(home, rel, cmd):
    """A FIFO where a state file belongs: every command answers at once
    (it used to block in open(2) forever), with one JSON object; an error
    names the file, and the FIFO is left as it is."""
    make_home_dirs(home)
    if rel != "settings.json":
        home.write_settings({"server": {"command": [TESTSERVER, "--listen", "{socket}"]}})
    path = os.path.join(home.path, rel)
    if os.path.exists(path):
        os.unlink(path)
    os.mkfifo(path, 0o600)
    t0 = time.monotonic()
    r = home.run(*cmd, timeout=30)
    assert time.monotonic() - t0 < 20, r
    assert r.json is not None, r
    if r.json["status"] == "error":
        # refused, naming the file, which is left as it is
        assert rel in r.json["message"] and "not a regular file" in r.json["message"], r
        assert os.path.exists(path) and not os.path.isfile(path)
    elif rel == "settings.json":
        assert any("not a regular file" in w for w in r.json.get("warnings", [])), r
    home.run("stop", "--grace", "1", timeout=30)


def test_a_directory_at_a_pidfile_is_named(home):
    make_home_dirs(home)
    os.mkdir(os.path.join(home.path, "state/supervisor.pid"))
    r = home.run("status")
    assert r.json["status"] == "error", r
    assert "state/supervisor.pid is not a regular file" in r.json["message"], r


def test_inherited_fds_above_1024_reach_neither_supervisor_nor_server(home):
    """An fd above 1024 inherited by `start` (a shell's `exec 1500>&1`)
    reached the supervisor and the server, and when it was the caller's
    output pipe the caller waited for an EOF that never came (609 s)."""
    import resource
    home.write_settings({"server": {"command": [TESTSERVER, "--listen", "{socket}"]}})
    rd, wr = os.pipe()
    high = 1500

    def child():
        resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
        os.dup2(wr, high)        # inheritable, like the shell's exec 1500>&1

    p = subprocess.Popen([APPD, "start"], env=home.env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                         preexec_fn=child, close_fds=False)
    os.close(wr)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0, (out, err)
    import json
    j = json.loads(out.decode().strip().splitlines()[-1])
    for pid in (j["supervisorPid"], j["pid"]):
        assert not os.path.exists("/proc/%d/fd/%d" % (pid, high)), pid
    # nobody holds the pipe's write end any more: its reader sees EOF now
    os.set_blocking(rd, False)
    try:
        assert os.read(rd, 1) == b""
    finally:
        os.close(rd)


@pytest.mark.parametrize("redir", ["<&-", ">&-"])
def test_a_closed_standard_fd_is_not_taken_by_a_socket(home, redir):
    """`appd proxy <&-` used to fail with "relay: bad arguments": the
    socket had landed on fd 0. Closed standard fds are /dev/null now."""
    if redir == "<&-":
        # binfmt_misc (flag O) hands the emulator the program's file as
        # the lowest free fd: with stdin closed, that is fd 0
        skip_if_emulated("qemu-user gets the program file as fd 0 when stdin is closed")
    r = home.start_server("--listen", "{socket}")
    assert r.rc == 0, r
    p = subprocess.run(["sh", "-c", '"$0" proxy ' + redir, APPD], env=home.env,
                       capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p
    assert b"bad arguments" not in p.stderr, p
    if redir == "<&-":
        assert p.stdout == b"", p       # stdin was /dev/null: nothing to echo


def test_settings_with_a_duplicate_key_are_refused_naming_it(home):
    """{"readiness": "none", "readiness": "connect"}: this parser took the
    first, Python and most tools the last. Now it is refused."""
    os.makedirs(home.path, exist_ok=True)
    os.chmod(home.path, 0o700)
    with open(os.path.join(home.path, "settings.json"), "w") as f:
        f.write('{"server":{"command":["%s","--listen","{socket}"],'
                '"readiness":"none","readiness":"connect"}}' % TESTSERVER)
    r = home.run("start", "--timeout", "5")
    assert r.rc != 0 and r.json["error"] == "invalidSettings", r
    assert '"readiness"' in r.json["message"] and "twice" in r.json["message"], r
    assert marked_pids(home.path) == []


@pytest.mark.parametrize("stdin_kind", ["pipe", "file"])
def test_the_proxy_delivers_what_the_server_sent_before_it_closed(home, tmp_path, stdin_kind):
    """The server sends 1 MB and closes without reading; the client keeps
    writing. All 1,000,000 bytes reach stdout (it used to drop up to 15 %),
    then the proxy exits 1 with the reason."""
    import socket
    import threading
    os.makedirs(os.path.join(home.path, "run"), exist_ok=True)
    os.chmod(home.path, 0o700)
    os.chmod(os.path.join(home.path, "run"), 0o700)
    path = os.path.join(home.path, "run", "app-server.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    payload = bytes(range(256)) * (1_000_000 // 256) + b"x" * (1_000_000 % 256)

    def serve():
        c, _ = srv.accept()
        c.sendall(payload)
        c.close()
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    big = tmp_path / "in.bin"
    big.write_bytes(b"\0" * (50 << 20))
    try:
        if stdin_kind == "file":
            with open(big, "rb") as f:
                p = subprocess.run([APPD, "proxy"], env=home.env, stdin=f,
                                   capture_output=True, timeout=60)
        else:
            feeder = subprocess.Popen(["cat", str(big)], stdout=subprocess.PIPE)
            p = subprocess.run([APPD, "proxy"], env=home.env, stdin=feeder.stdout,
                               capture_output=True, timeout=60)
            feeder.stdout.close()
            feeder.kill()
            feeder.wait()
    finally:
        t.join(10)
        srv.close()
    assert len(p.stdout) == len(payload) and p.stdout == payload, (len(p.stdout), p.stderr)
    assert p.returncode == 1, p.stderr


def run_raw(args, env):
    p = subprocess.run([APPD.encode()] + args, env=env, capture_output=True, timeout=30,
                       stdin=subprocess.DEVNULL)
    return p, json.loads(p.stdout.decode("utf-8").strip().splitlines()[-1])


def test_output_is_valid_utf8_json_whatever_the_bytes(home):
    """Raw 0xff in a command, an argument or APPD_HOME used to land in the
    JSON output (json.loads failed) and in settings.json. Output is valid
    UTF-8 with U+FFFD; a command that cannot be stored is refused."""
    env = {k.encode(): v.encode() for k, v in home.env.items()}
    bad_cmd = b"/tmp/d\xff\x01/ts"
    p, j = run_raw([b"start", b"--", bad_cmd, b"--listen", b"{socket}"], env)
    assert p.returncode == 2 and j["error"] == "usage", j
    assert "UTF-8" in j["message"]
    settings = os.path.join(home.path, "settings.json")
    assert not os.path.exists(settings) or b"\xff" not in open(settings, "rb").read()
    p, j = run_raw([b"fr\xffob"], env)
    assert j["error"] == "usage" and "fr\ufffdob" in j["message"], j
    env2 = dict(env)
    env2[b"APPD_HOME"] = home.path.encode() + b"-\xff"
    p, j = run_raw([b"status"], env2)
    assert j["home"] == home.path + "-\ufffd", j


@pytest.mark.parametrize("host_json", [True, False])
def test_stop_works_on_a_read_only_home(home, host_json):
    """The home remounted read-only under a running server: `stop` failed
    opening daemon.lock read-write and left the server running. Now the
    tree is stopped, with a warning that nothing could be recorded. Also
    for a home from before host.json existed, whose owner host cannot be
    written down there."""
    r = home.start_server("--listen", "{socket}")
    assert r.rc == 0, r
    srv, sup = r.json["pid"], r.json["supervisorPid"]
    if not host_json:
        os.unlink(home.file("host.json"))
    m = subprocess.run(["mount", "--bind", home.path, home.path], capture_output=True)
    if m.returncode != 0:
        pytest.skip("a read-only bind mount needs root: %s" % m.stderr.decode().strip())
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", home.path], check=True)
        s = home.run("stop", "--grace", "2", timeout=30)
        assert s.rc == 0 and s.json["status"] == "stopped", s
        assert any("read-only" in w for w in s.json["warnings"]), s
        assert not os.path.exists("/proc/%d" % srv) or open("/proc/%d/stat" % srv).read().split()[2] == "Z"
        assert marked_pids(home.path) == []
        st = home.run("status")
        assert st.json["status"] == "stopped", st
    finally:
        subprocess.run(["umount", home.path])


def test_an_in_place_restart_onto_a_server_that_exits_fails_at_once(home):
    """restart onto a command that exits at once used to wait the whole
    timeout (18 s, notReady) and leave the supervisor crash-looping. Now it
    fails as start does: exitedBeforeReady, the exit code and the log tail,
    and nothing left running."""
    r = home.start_server("--listen", "{socket}")
    assert r.rc == 0, r
    home.write_settings({"server": {"command": [TESTSERVER, "--exit-immediately", "3"]}})
    t0 = time.monotonic()
    s = home.run("restart", "--timeout", "20", timeout=60)
    assert time.monotonic() - t0 < 10, s
    assert s.rc == 6 and s.json["error"] == "exitedBeforeReady", s
    assert s.json["exitCode"] == 3 and "exiting 3" in s.json["logTail"], s
    assert marked_pids(home.path) == []
    assert home.run("status").json["status"] == "stopped"


def test_a_directory_at_status_json_does_not_confuse_status(home):
    """A directory where status.json belongs: the live supervisor answers
    from memory (it used to say starting forever)."""
    r = home.start_server("--listen", "{socket}")
    assert r.rc == 0, r
    assert home.run("stop").rc == 0
    path = os.path.join(home.path, "state/status.json")
    os.unlink(path)
    os.mkdir(path)
    r = home.start_server("--listen", "{socket}")
    assert r.rc == 0, r
    st = home.run("status").json
    assert st["status"] == "running" and st["pid"] == r.json["pid"], st


@pytest.mark.parametrize("kind", ["symlink", "directory", "fifo", "fd-limit"])
def test_a_supervisor_that_cannot_start_says_why_at_once(home, kind, tmp_path):
    """A symlink, directory or FIFO at supervisor.log, or too few fds: start
    said "supervisor exited (status 127) ... see supervisor.log" with no log
    and no cause (the FIFO took 48 s against --timeout 3)."""
    import resource
    make_home_dirs(home)
    log = os.path.join(home.path, "state/supervisor.log")
    if kind == "symlink":
        os.symlink(str(tmp_path / "elsewhere"), log)
    elif kind == "directory":
        os.mkdir(log)
    elif kind == "fifo":
        os.mkfifo(log, 0o600)

    def few_fds():
        if kind == "fd-limit":
            resource.setrlimit(resource.RLIMIT_NOFILE, (8, 8))
    t0 = time.monotonic()
    p = subprocess.run([APPD, "start", "--timeout", "3", "--", TESTSERVER, "--listen",
                        "{socket}"], env=home.env, capture_output=True, text=True,
                       timeout=60, preexec_fn=few_fds, stdin=subprocess.DEVNULL)
    assert time.monotonic() - t0 < 10, p
    j = json.loads(p.stdout.strip().splitlines()[-1])
    assert p.returncode != 0 and j["status"] == "error", p
    assert "cannot start the supervisor" in j["message"], j
    assert "supervisor.log" in j["message"] and "status 127" not in j["message"], j
    assert marked_pids(home.path) == []


def test_a_supervisor_killed_while_start_waits_leaves_nothing_running(home):
    """SIGKILL of the supervisor while `start` waits for readiness used to
    leave the server orphaned and running (exit 1, "status 137"). The
    waiting start now kills the orphaned tree by identity first."""
    make_home_dirs(home)
    p = subprocess.Popen([APPD, "start", "--timeout", "20", "--", TESTSERVER, "--listen",
                          "{socket}", "--ready-delay", "3000"], env=home.env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         stdin=subprocess.DEVNULL)
    srv_pidfile = os.path.join(home.path, "state/app-server.pid")
    sup_pidfile = os.path.join(home.path, "state/supervisor.pid")

    def recorded(path):
        try:
            return json.load(open(path))["pid"]
        except (OSError, ValueError, KeyError):
            return None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (recorded(srv_pidfile) and recorded(sup_pidfile)):
        time.sleep(0.02)
    srv, sup = recorded(srv_pidfile), recorded(sup_pidfile)
    assert srv and sup, (srv, sup)
    os.kill(sup, 9)
    out, err = p.communicate(timeout=60)
    assert p.returncode != 0, (out, err)
    j = json.loads(out.strip().splitlines()[-1])
    assert j["status"] == "error", j
    assert not os.path.exists("/proc/%d" % srv) or \
        open("/proc/%d/stat" % srv).read().rsplit(")", 1)[1].split()[0] == "Z", srv
    assert marked_pids(home.path) == []


def test_a_removed_control_socket_is_noticed_and_the_server_restarted(home):
    """Removing run/app-server.sock (a tmp cleaner) left status saying
    running/ready while nothing could connect. The supervisor notices
    (socketMissing while it lasts) and restarts the server, which binds
    again."""
    import socket as so
    r = home.start_server("--listen", "{socket}")
    assert r.rc == 0, r
    old = r.json["pid"]
    os.unlink(home.socket)

    def rebound():
        st = home.run("status").json
        if st.get("pid") in (None, old) or not st.get("ready"):
            return False
        c = so.socket(so.AF_UNIX, so.SOCK_STREAM)
        try:
            c.connect(home.socket)
            return True
        except OSError:
            return False
        finally:
            c.close()
    assert wait_until(rebound, timeout=10), home.read("state/supervisor.log")
    st = home.run("status").json
    assert "socketMissing" not in st, st
    assert "control socket" in home.read("state/supervisor.log")


@pytest.fixture
def small_fs_home(request, tmp_path):
    """A home on its own small file system (root only): "full" is a
    256 KiB tmpfs, "immutable" an 8 MiB ext4 image on a loop device
    (tmpfs has no immutable flag)."""
    from conftest import Home
    kind = request.param
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if kind == "full":
        m = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs",
                            str(mnt)], capture_output=True)
    else:
        img = tmp_path / "fs.img"
        subprocess.run(["truncate", "-s", "8M", str(img)], check=True)
        subprocess.run(["mkfs.ext4", "-q", "-F", str(img)], check=True, capture_output=True)
        m = subprocess.run(["mount", "-o", "loop", str(img), str(mnt)], capture_output=True)
    if m.returncode != 0:
        pytest.skip("mounting a small file system needs root: %s" % m.stderr.decode().strip())
    os.chmod(mnt, 0o700)
    h = Home(str(mnt / "h"))

    def break_writes():
        if kind == "full":
            # fill it: every later write of a state file fails with ENOSPC
            subprocess.run(["dd", "if=/dev/zero", "of=%s" % (mnt / "fill"), "bs=4k"],
                           capture_output=True)
        else:
            subprocess.run(["chattr", "+i", h.file("state")], check=True)

    def repair():
        if kind == "full":
            os.unlink(mnt / "fill")
        else:
            subprocess.run(["chattr", "-i", h.file("state")], check=True)

    h.break_writes, h.repair = break_writes, repair
    yield h
    try:
        if kind != "full":
            subprocess.run(["chattr", "-i", h.file("state")], capture_output=True)
        h.run("stop", "--grace", "2", timeout=30)
    finally:
        for pid in marked_pids(h.path):
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        subprocess.run(["umount", "-l", str(mnt)])


@pytest.mark.parametrize("small_fs_home", ["full"], indirect=True)
def test_restart_when_no_state_file_can_be_written_reports_what_runs(small_fs_home):
    """`restart` on a full disk reported notReady (exit 6) after its whole
    timeout while a new, ready server ran, and `status` then showed the
    old, dead pid. The waiting CLI now learns of readiness from the
    supervisor's memory (the control socket's watch): it reports the
    server that runs, says the state files are behind and why, and
    `status` does too; `stop` still stops everything."""
    home = small_fs_home
    r = home.start_server("--listen", "{socket}")
    assert r.rc == 0, r
    old = r.json["pid"]
    home.break_writes()
    t0 = time.monotonic()
    s = home.run("restart", "--timeout", "10", timeout=60)
    assert time.monotonic() - t0 < 8, s
    assert s.rc == 0 and s.json["status"] == "restarted", s
    new = s.json["pid"]
    assert new != old and os.path.exists("/proc/%d" % new), s
    assert any("cannot write its state files" in w for w in s.json["warnings"]), s
    st = home.run("status")
    assert st.json["status"] == "running" and st.json["pid"] == new, st
    assert st.json["ready"] is True, st
    assert st.json["stateFiles"]["behind"] is True, st
    assert "status.json" in st.json["stateFiles"]["error"], st
    # the file itself is behind: it still names the old server
    assert home.read_json("state/status.json")["serverPid"] == old
    # once writes work again, the next change writes the truth
    home.repair()
    s2 = home.run("restart", "--timeout", "10", timeout=60)
    assert s2.rc == 0 and "warnings" not in s2.json, s2
    assert home.read_json("state/status.json")["serverPid"] == s2.json["pid"]
    home.break_writes()
    sp = home.run("stop", "--grace", "2", timeout=30)
    assert sp.rc == 0 and sp.json["status"] == "stopped", sp
    assert marked_pids(home.path) == []


@pytest.mark.parametrize("small_fs_home", ["immutable"], indirect=True)
def test_restart_that_cannot_record_the_new_server_fails_at_once(small_fs_home):
    """With state/ immutable (chattr +i) the new server's pidfile cannot be
    written, so the supervisor cannot start it: `restart` waited its whole
    timeout (notReady, exit 6) and left the supervisor retrying. Now it
    fails at once with spawnFailed naming the file, and nothing is left
    running; status and stop agree."""
    home = small_fs_home
    r = home.start_server("--listen", "{socket}")
    assert r.rc == 0, r
    home.break_writes()
    t0 = time.monotonic()
    s = home.run("restart", "--timeout", "10", timeout=60)
    assert time.monotonic() - t0 < 8, s
    assert s.rc != 0 and s.json["error"] == "spawnFailed", s
    assert "app-server.pid" in s.json["message"], s
    assert "nothing is left running" in s.json["message"], s
    assert marked_pids(home.path) == []
    assert home.run("status").json["status"] == "stopped"
    sp = home.run("stop", "--grace", "2", timeout=30)
    assert sp.rc == 0 and sp.json["status"] == "notRunning", sp
    assert any("cannot be written" in w for w in sp.json["warnings"]), sp


# -- unmanaged servers: identified, and stopped on request ----------------------------

def start_unmanaged_testserver(home, *args):
    os.makedirs(home.file("run"), mode=0o700, exist_ok=True)
    os.chmod(home.path, 0o700)
    p = subprocess.Popen([TESTSERVER, "--listen", home.socket] + list(args),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait_until(lambda: os.path.exists(home.socket))
    return p


def iso_ms(s):
    import datetime
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def test_an_unmanaged_server_is_identified(home):
    """A server on our socket that appd does not manage was refused with
    nothing the user could act on. Now `start` (alreadyRunning) and the
    refusals name it: pid, uid, executable and start time, read from the
    kernel (SO_PEERCRED on the probe connection), and say what to do."""
    home.write_settings({"server": {"command": [TESTSERVER, "--listen", "{socket}"]}})
    t0 = time.time()
    p = start_unmanaged_testserver(home)
    try:
        r = home.run("start", "--timeout", "5")
        assert r.rc == 0 and r.json["status"] == "alreadyRunning", r
        u = r.json["unmanaged"]
        assert u["pid"] == p.pid and u["uid"] == os.getuid(), r
        assert u["exe"] == os.path.realpath(TESTSERVER), r
        assert abs(iso_ms(u["startedAt"]) - t0) < 60, r
        for cmd in (["stop"], ["restart"]):
            x = home.run(*cmd)
            assert x.rc == 5 and x.json["error"] == "unmanagedServer", x
            assert x.json["unmanaged"] == u, x
            assert "appd stop --unmanaged" in x.json["message"], x
        assert p.poll() is None            # refused, never touched
    finally:
        p.kill()
        p.wait()


@pytest.mark.parametrize("stubborn", [False, True])
def test_stop_unmanaged_stops_it_and_start_proceeds(home, stubborn):
    """`stop --unmanaged` stops that process (TERM, then KILL after the
    grace period for one that ignores TERM), after which `start` runs the
    managed server on the socket."""
    home.write_settings({"server": {"command": [TESTSERVER, "--listen", "{socket}"]}})
    p = start_unmanaged_testserver(home, *(["--ignore-term"] if stubborn else []))
    try:
        s = home.run("stop", "--unmanaged", "--grace", "1", timeout=30)
        assert s.rc == 0 and s.json["status"] == "stopped", s
        assert s.json["unmanaged"]["pid"] == p.pid, s
        assert s.json["killed"] is stubborn, s
        assert p.wait(timeout=10) == (-9 if stubborn else 0)
        r = home.run("start", "--timeout", "10")
        assert r.rc == 0 and r.json["status"] == "started", r
        assert "unmanaged" not in r.json
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_stop_unmanaged_leaves_another_users_server_alone(home):
    """A listener of another uid (bound as nobody, its socket moved into
    run/ by root) is reported with its uid and never signalled."""
    if os.getuid() != 0:
        pytest.skip("needs root to run a listener as another user")
    import tempfile
    d = tempfile.mkdtemp(prefix="appd-other-", dir="/tmp")   # pytest's tmp is 0700
    os.chmod(d, 0o777)
    path = os.path.join(d, "s.sock")
    code = ("import socket,sys,time\n"
            "s=socket.socket(socket.AF_UNIX)\ns.bind(sys.argv[1])\ns.listen(8)\n"
            "print('up',flush=True)\n"
            "while True:\n  c,_=s.accept()\n  c.close()\n")

    def drop():
        os.setgid(65534)
        os.setuid(65534)

    p = subprocess.Popen(["/usr/bin/python3", "-c", code, path], preexec_fn=drop,
                         stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "up"
        os.makedirs(home.file("run"), mode=0o700, exist_ok=True)
        os.chmod(home.path, 0o700)
        os.rename(path, home.socket)
        s = home.run("stop", "--unmanaged", "--grace", "1", timeout=30)
        assert s.rc == 5 and s.json["error"] == "unmanagedServer", s
        assert s.json["unmanaged"]["pid"] == p.pid, s
        assert s.json["unmanaged"]["uid"] == 65534, s
        assert "not as this user" in s.json["message"], s
        assert p.poll() is None
    finally:
        p.kill()
        p.wait()
        import shutil
        shutil.rmtree(d, ignore_errors=True)

