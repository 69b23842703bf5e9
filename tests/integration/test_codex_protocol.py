"""codex-initialize readiness, `version`, unmanaged servers and remote
control, through the static binary, with the WebSocket fixture server
(tests/fixtures/wsserver.c) for every error path."""
import os
import socket
import subprocess
import time

import pytest

from conftest import FIXTURES, TESTSERVER, marked_pids, pid_alive, wait_until

WSSERVER = os.path.join(FIXTURES, "wsserver")


def ws_settings(home, *args, **server):
    cfg = {"server": {"command": [WSSERVER, "--listen", "{socket}"] + list(args),
                      "readiness": "codex-initialize"}}
    cfg["server"].update(server)
    home.write_settings(cfg)


def environ(pid):
    with open("/proc/%d/environ" % pid, "rb") as f:
        return [e.decode() for e in f.read().split(b"\0") if e]


def cmdline(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        return [a.decode() for a in f.read().split(b"\0") if a]


@pytest.mark.parametrize("args", [[], ["--split-bytes"], ["--notifications", "3"],
                                  ["--ping-first"], ["--fragment"], ["--ready-delay", "300"]])
def test_codex_initialize_readiness(home, args):
    ws_settings(home, "--version-string", "9.8.7", *args)
    r = home.run("start")
    assert r.rc == 0, r
    assert r.json["status"] == "started"
    assert r.json["appServerVersion"] == "9.8.7"
    v = home.run("version")
    assert v.rc == 0, v
    assert v.json == {**v.json, "status": "running", "backend": "pid", "appServerVersion": "9.8.7"}
    s = home.run("status")
    assert s.json["readiness"] == "codex-initialize" and s.json["ready"] is True


@pytest.mark.parametrize("args,needle", [
    (["--never-answer"], "timed out waiting for initialize response"),
    (["--bad-user-agent"], "user-agent omitted version separator"),
    (["--empty-version"], "user-agent omitted version"),
    (["--close-first"], "closed the control socket"),
    (["--bad-accept"], "failed to upgrade"),
    (["--no-upgrade"], "failed to upgrade"),
    (["--oversized"], "protocol error"),
])
def test_codex_initialize_failures_are_not_ready(home, args, needle):
    ws_settings(home, *args, readyTimeoutSeconds=3)
    t0 = time.monotonic()
    r = home.run("start")
    assert r.rc == 6, r
    assert r.json["error"] == "notReady"
    assert needle in r.json["message"], r.json["message"]
    assert r.json["managedPath"] == WSSERVER
    assert r.json["socketPath"] == home.socket
    assert "logTail" in r.json
    assert time.monotonic() - t0 < 15
    assert marked_pids(home.path) == []


def test_version_when_nothing_runs(home):
    r = home.run("version")
    assert r.rc == 4 and r.json["error"] == "notRunning", r


def start_unmanaged(home, *args):
    os.makedirs(home.file("run"), mode=0o700, exist_ok=True)
    os.chmod(home.path, 0o700)
    p = subprocess.Popen([WSSERVER, "--listen", home.socket, "--version-string", "4.5.6"] + list(args),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait_until(lambda: os.path.exists(home.socket))
    return p


def test_unmanaged_server_is_reported_and_refused(home):
    home.write_settings({"server": {"readiness": "codex-initialize"}})
    p = start_unmanaged(home)
    try:
        r = home.run("start")
        assert r.rc == 0, r
        assert r.json["status"] == "alreadyRunning"
        assert "backend" not in r.json and "pid" not in r.json
        assert r.json["unmanaged"]["pid"] == p.pid, r
        assert r.json["appServerVersion"] == "4.5.6"
        v = home.run("version")
        assert v.rc == 0 and "backend" not in v.json and v.json["appServerVersion"] == "4.5.6", v
        # the P-256 base point: a valid key; refused before any fetch
        key = ("04" "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296"
               "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5")
        for cmd in (["stop"], ["restart"], ["enable-remote-control"], ["disable-remote-control"],
                    ["bootstrap", "--manifest-url", "https://localhost:9/manifest.json",
                     "--public-key", key]):
            x = home.run(*cmd)
            assert x.rc == 5, (cmd, x)
            assert x.json["error"] == "unmanagedServer"
            assert x.json["message"].startswith(
                "app server is running but is not managed by appd: pid %d" % p.pid), x
            assert x.json["unmanaged"]["pid"] == p.pid, x
        assert p.poll() is None            # never touched
        assert not os.path.exists(home.file("packages/current"))
    finally:
        p.terminate()
        p.wait()


def test_remote_control_generic_profile(home):
    home.write_settings({"keepMe": {"x": 1}, "server": {
        "command": [TESTSERVER, "--listen", "{socket}"],
        "remoteControlArgs": ["--print-env", "RC_MARK"],
        "remoteControlDisabledEnv": {"RC_MARK": "off"}}})
    r = home.run("start")
    assert r.rc == 0, r
    pid = r.json["pid"]
    assert "RC_MARK=off" in environ(pid)
    assert "--print-env" not in cmdline(pid)

    e = home.run("enable-remote-control")
    assert e.rc == 0, e
    assert e.json["status"] == "enabled" and e.json["backend"] == "pid"
    assert e.json["remoteControlEnabled"] is True
    new = home.run("status").json["pid"]
    assert new != pid and not pid_alive(pid)
    assert cmdline(new)[-2:] == ["--print-env", "RC_MARK"]
    assert "RC_MARK=off" not in environ(new)
    assert home.read_json("settings.json")["keepMe"] == {"x": 1}
    assert home.read_json("settings.json")["remoteControlEnabled"] is True

    again = home.run("enable-remote-control")
    assert again.rc == 0 and again.json["status"] == "alreadyEnabled", again
    assert home.run("status").json["pid"] == new        # not restarted

    d = home.run("disable-remote-control")
    assert d.rc == 0 and d.json["status"] == "disabled", d
    last = home.run("status").json["pid"]
    assert last != new and "RC_MARK=off" in environ(last)
    assert home.run("disable-remote-control").json["status"] == "alreadyDisabled"

    home.run("stop")
    # not running: the flag is persisted for the next start, no backend
    n = home.run("enable-remote-control")
    assert n.rc == 0 and n.json["status"] == "enabled" and "backend" not in n.json, n
    r = home.run("start")
    assert cmdline(r.json["pid"])[-2:] == ["--print-env", "RC_MARK"]


def test_codex_profile_preflight_fails_before_anything_changes(home):
    home.write_settings({"profile": "codex"})
    r = home.run("start")
    assert r.rc == 1, r
    assert r.json["error"] == "spawnFailed"
    assert "managed standalone Codex install not found at " + home.file("packages/current/bin/codex") in r.json["message"]
    assert not os.path.exists(home.file("state/supervisor.pid"))
    assert home.read_json("settings.json") == {"profile": "codex"}


def test_stale_links_and_sockets_at_the_path(home):
    """What a killed codex leaves behind is cleared; what is not ours is not."""
    os.makedirs(home.file("run"), mode=0o700)
    os.chmod(home.path, 0o700)
    # a dangling link (codex's socket dir was cleaned)
    os.symlink("/nonexistent/codex-daemon/abc", home.socket)
    r = home.start_server("--listen", "{socket}")
    assert r.rc == 0, r
    home.run("stop")
    # a stale socket inode nobody accepts on
    s = socket.socket(socket.AF_UNIX)
    s.bind(home.socket)
    s.close()
    r = home.start_server("--listen", "{socket}")
    assert r.rc == 0, r
    home.run("stop")
    # a link to a regular file is not ours to delete
    target = home.file("precious.txt")
    with open(target, "w") as f:
        f.write("keep")
    os.symlink(target, home.socket)
    r = home.start_server("--listen", "{socket}")
    assert r.rc == 5 and r.json["error"] == "socketInUse", r
    assert os.path.islink(home.socket) and open(target).read() == "keep"


def test_concurrent_settings_changes_are_never_lost(home):
    """Read-modify-write under the lifecycle lock: a command change and
    remote-control flips racing each other all land."""
    import concurrent.futures as cf
    home.write_settings({"keep": [1, 2, 3], "server": {"readiness": "none",
                         "remoteControlArgs": ["--print-env", "RC"]}})
    jobs = [("start", "--", TESTSERVER, "--ready-delay", "1")] + \
           [("enable-remote-control",), ("disable-remote-control",)] * 4 + \
           [("enable-remote-control",)]
    # start first so every flip restarts a running server
    assert home.run(*jobs[0]).rc == 0
    with cf.ThreadPoolExecutor(4) as ex:
        results = list(ex.map(lambda a: home.run(*a, timeout=120), jobs[1:]))
    for r in results:
        assert r.rc == 0, r
    cfg = home.read_json("settings.json")
    assert cfg["keep"] == [1, 2, 3]
    assert cfg["server"]["command"][0] == TESTSERVER
    assert cfg["server"]["readiness"] == "none"
    assert cfg["remoteControlEnabled"] in (True, False)
    # the last writer's view and the file agree
    assert home.run("enable-remote-control").json["status"] in ("enabled", "alreadyEnabled")
    assert home.read_json("settings.json")["remoteControlEnabled"] is True
