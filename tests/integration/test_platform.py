"""What depends on the target and the host: the compile-time target the
binary reports, and stopping without a child subreaper (qemu-user, old
kernels, some sandboxes, macOS), forced here with APPD_NO_SUBREAPER=1."""
import os
import subprocess
import time

import pytest

from conftest import APPD, EMULATED, TARGET, marked_pids, pid_alive, wait_until

NO_SUBREAPER = {"APPD_NO_SUBREAPER": "1"}


def test_the_target_is_the_compile_time_one(home):
    p = subprocess.run([APPD, "--version"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0
    words = p.stdout.split()
    assert words[0] == "appd" and words[2] == TARGET, p.stdout
    st = home.run("status").json
    assert st["target"] == TARGET


def test_a_subreaper_is_reported_where_the_host_gives_one(home):
    r = home.start_server("--listen", "{socket}")
    assert r.rc == 0, r
    st = home.run("status").json
    # qemu-user 7.2 refuses PR_SET_CHILD_SUBREAPER: there the real
    # no-subreaper path is what runs
    assert st["supervisor"]["subreaper"] is (not EMULATED), st
    assert any("subreaper" in w for w in st.get("warnings", [])) is EMULATED, st


def test_without_a_subreaper_status_and_stop_say_escapees_cannot_be_tracked(home):
    r = home.start_server("--listen", "{socket}", env=NO_SUBREAPER)
    assert r.rc == 0, r
    st = home.run("status").json
    assert st["supervisor"]["subreaper"] is False
    assert any("double-forks" in w for w in st["warnings"]), st
    log = home.read("state/supervisor.log")
    assert "no child subreaper" in log
    s = home.run("stop", "--grace", "1")
    assert s.rc == 0 and s.json["status"] == "stopped", s
    assert any("double-forks" in w for w in s.json["warnings"]), s
    assert marked_pids(home.path) == []


@pytest.mark.parametrize("flag", ["--fork-grandchild", "--escape-grandchild"])
def test_without_a_subreaper_stop_still_kills_the_descendants(home, flag, tmp_path):
    """The grandchild ignores SIGTERM and (with --escape-grandchild) leaves
    the server's process group; the server exits at the TERM, so the
    grandchild is re-parented to init. The tree walk at the TERM found it;
    the KILL after the grace period reaches it by identity."""
    gp = str(tmp_path / "gc.pid")
    r = home.start_server("--listen", "{socket}", flag, "--grandchild-pidfile", gp,
                          env=NO_SUBREAPER)
    assert r.rc == 0, r
    assert wait_until(lambda: os.path.exists(gp) and os.path.getsize(gp) > 0)
    gc = int(open(gp).read())
    assert pid_alive(gc)
    t0 = time.monotonic()
    s = home.run("stop", "--grace", "1", timeout=30)
    assert s.rc == 0 and s.json["status"] == "stopped", s
    assert time.monotonic() - t0 < 20      # bounded: grace + the KILL's wait
    assert not pid_alive(gc)
    assert marked_pids(home.path) == []
    log = home.read("state/supervisor.log")
    assert "descendant pid %d found by the tree walk" % gc in log, log


def test_without_a_subreaper_a_killed_supervisors_tree_is_stopped(home, tmp_path):
    """The supervisor is SIGKILLed: `stop` finds the orphaned server by its
    record and its grandchild by the tree walk, and stops both."""
    gp = str(tmp_path / "gc.pid")
    r = home.start_server("--listen", "{socket}", "--escape-grandchild",
                          "--grandchild-pidfile", gp, env=NO_SUBREAPER)
    assert r.rc == 0, r
    assert wait_until(lambda: os.path.exists(gp) and os.path.getsize(gp) > 0)
    gc, srv, sup = int(open(gp).read()), r.json["pid"], r.json["supervisorPid"]
    os.kill(sup, 9)
    assert wait_until(lambda: not pid_alive(sup))
    s = home.run("stop", "--grace", "1", timeout=30)
    assert s.rc == 0 and s.json["status"] == "stopped", s
    assert not pid_alive(srv) and not pid_alive(gc)
    assert marked_pids(home.path) == []
