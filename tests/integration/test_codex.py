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
