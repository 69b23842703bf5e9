"""appd managing the real Codex app-server (@openai/codex 0.169.0 from the
npm registry, installed by tests/fetch-codex.sh into a cache outside the
repository): start -> status -> version -> restart -> stop."""
import os
import subprocess
import time

import pytest

from conftest import marked_pids, pid_alive, wait_until
from codex_probe import probe

HERE = os.path.dirname(os.path.abspath(__file__))
FETCH = os.path.join(HERE, "..", "fetch-codex.sh")


@pytest.fixture(scope="module")
def codex_bin():
    p = subprocess.run(["bash", FETCH], capture_output=True, text=True, timeout=900)
    if p.returncode == 1 and "cannot reach" in p.stderr:
        pytest.skip("npm registry unreachable: " + p.stderr.strip())
    assert p.returncode == 0, p.stderr
    path = p.stdout.strip().splitlines()[-1]
    assert os.access(path, os.X_OK)
    return path


def codex_pids(home):
    out = []
    for p in marked_pids(home.path):
        try:
            exe = os.readlink("/proc/%d/exe" % p)
        except OSError:
            continue
        if os.path.basename(exe) == "codex":
            out.append(p)
    return out


def test_codex_start_status_restart_stop(home, codex_bin, tmp_path):
    chome = tmp_path / "codex-home"
    chome.mkdir()
    env = {"CODEX_HOME": str(chome)}
    r = home.run("start", "--timeout", "60", "--", codex_bin, "app-server",
                 "--listen", "unix://{socket}", env=env)
    assert r.rc == 0, r
    assert r.json["status"] == "started" and r.json["backend"] == "pid"
    pid = r.json["pid"]
    assert pid_alive(pid)
    assert os.readlink("/proc/%d/exe" % pid).endswith("codex")
    # connect readiness means the control socket really answers: a full
    # WebSocket + initialize round trip through the path appd reported
    res = probe(r.json["socketPath"], timeout=5.0)
    assert "/0.169.0" in res["userAgent"]

    s = home.run("status")
    assert s.rc == 0 and s.json["status"] == "running" and s.json["pid"] == pid, s
    v = home.run("version")
    assert v.rc == 0 and v.json["status"] == "running" and v.json["backend"] == "pid", v

    rr = home.run("restart", "--timeout", "60")
    assert rr.rc == 0, rr
    assert rr.json["status"] == "restarted"
    new = rr.json["pid"]
    assert new != pid and pid_alive(new) and not pid_alive(pid)
    assert "/0.169.0" in probe(rr.json["socketPath"], timeout=5.0)["userAgent"]

    st = home.run("stop")
    assert st.rc == 0 and st.json["status"] == "stopped", st
    assert wait_until(lambda: codex_pids(home) == [], timeout=5)
    assert marked_pids(home.path) == []
    assert not os.path.lexists(home.socket)


def install_managed(home, codex_bin):
    """The managed-install layout: packages/releases/<v>-<target>/bin/codex
    and packages/current -> that release (what bootstrap will create)."""
    rel = home.file("packages/releases/0.169.0-x86_64-linux/bin")
    os.makedirs(rel)
    os.chmod(home.path, 0o700)
    os.symlink(codex_bin, os.path.join(rel, "codex"))
    os.symlink("releases/0.169.0-x86_64-linux", home.file("packages/current"))


def environ(pid):
    with open("/proc/%d/environ" % pid, "rb") as f:
        return f.read().split(b"\0")


def cmdline(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        return [a.decode() for a in f.read().split(b"\0") if a]


MARKER = b"CODEX_INTERNAL_APP_SERVER_REMOTE_CONTROL_DISABLED=1"


def test_codex_profile_lifecycle_and_remote_control(home, codex_bin, tmp_path):
    chome = tmp_path / "codex-home"
    chome.mkdir()
    env = {"CODEX_HOME": str(chome)}
    install_managed(home, codex_bin)
    home.write_settings({"profile": "codex", "server": {"readyTimeoutSeconds": 60}})

    r = home.run("start", env=env)
    assert r.rc == 0, r
    j = r.json
    assert j["status"] == "started" and j["backend"] == "pid"
    assert j["appServerVersion"] == "0.169.0"
    assert j["managedVersion"] == "0.169.0"
    assert j["managedPath"] == home.file("packages/current/bin/codex")
    pid = j["pid"]
    assert cmdline(pid)[1:] == ["app-server", "--listen", "unix://" + home.socket]
    assert MARKER in environ(pid)

    v = home.run("version")
    assert v.rc == 0 and v.json["appServerVersion"] == "0.169.0" and v.json["backend"] == "pid", v

    e = home.run("enable-remote-control", env=env)
    assert e.rc == 0, e
    assert e.json["status"] == "enabled" and e.json["appServerVersion"] == "0.169.0"
    rc_pid = home.run("status").json["pid"]
    assert rc_pid != pid and not pid_alive(pid)
    assert cmdline(rc_pid)[-1] == "--remote-control"
    assert MARKER not in environ(rc_pid)
    assert "/0.169.0" in probe(home.socket, timeout=5.0)["userAgent"]

    d = home.run("disable-remote-control", env=env)
    assert d.rc == 0 and d.json["status"] == "disabled", d
    off_pid = home.run("status").json["pid"]
    assert off_pid != rc_pid and "--remote-control" not in cmdline(off_pid)
    assert MARKER in environ(off_pid)

    rr = home.run("restart", env=env)
    assert rr.rc == 0 and rr.json["status"] == "restarted", rr
    assert rr.json["appServerVersion"] == "0.169.0"

    st = home.run("stop")
    assert st.rc == 0 and st.json["status"] == "stopped", st
    assert st.json["managedVersion"] == "0.169.0"
    assert wait_until(lambda: codex_pids(home) == [], timeout=5)
    assert not os.path.lexists(home.socket)
    assert sorted(os.listdir(home.file("run"))) == ["startup.lock"]
    assert not os.path.exists(home.file("state/app-server.pid"))
    assert not os.path.exists(home.file("state/supervisor.pid"))
