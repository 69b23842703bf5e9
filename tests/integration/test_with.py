"""`appd with`: the one-shot CI harness. A temporary home, the server
started and waited for, CHECK run, the server tree always stopped, CHECK's
exit status kept, one JSON summary on stdout and the server log on stderr
when something failed."""
import json
import os
import signal
import subprocess

from conftest import APPD, TESTSERVER, marked_pids, wait_until

SRV = ["--", TESTSERVER, "--listen", "{socket}"]


def run_with(home, *args, env=None, timeout=60):
    e = dict(home.env)
    e.pop("APPD_HOME", None)
    if env:
        e.update(env)
    p = subprocess.run([APPD, "with"] + list(args), env=e, capture_output=True, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    lines = p.stdout.strip().splitlines()
    assert len(lines) == 1, p
    return p, json.loads(lines[0])


def test_a_passing_check(home):
    p, j = run_with(home, *SRV, "--", "/bin/sh", "-c",
                    'test -S "$APPD_SOCKET" && echo "home $APPD_HOME"')
    assert p.returncode == 0 and j["status"] == "passed" and j["exitCode"] == 0, p
    assert j["check"]["exitCode"] == 0 and j["serverRestarts"] == 0, j
    assert "home " + j["home"] in p.stderr      # CHECK's stdout goes to stderr
    assert not os.path.exists(j["home"]) and j["homeKept"] is False
    assert marked_pids(home.path) == []


def test_a_failing_check_keeps_its_status_and_shows_the_log(home):
    p, j = run_with(home, "--keep", *SRV, "--", "/bin/sh", "-c", "exit 3",
                    env={"GITHUB_ACTIONS": "true"})
    assert p.returncode == 3 and j["status"] == "failed", p
    assert "::group::appd: server log" in p.stderr and "testserver ready" in p.stderr, p
    assert os.path.isdir(j["home"]) and j["homeKept"] is True
    assert marked_pids(home.path) == []
    subprocess.run(["rm", "-rf", j["home"]])


def test_a_server_that_crashes_during_the_check_fails_the_run(home):
    srv = ["--", TESTSERVER, "--listen", "{socket}", "--crash-after", "300"]
    chk = ["--", "/bin/sh", "-c", "sleep 2"]
    p, j = run_with(home, *srv, *chk)
    assert p.returncode == 8 and j["status"] == "failed" and j["serverRestarts"] >= 1, p
    p2, j2 = run_with(home, "--allow-restarts", *srv, *chk)
    assert p2.returncode == 0 and j2["status"] == "passed", p2
    assert marked_pids(home.path) == []


def test_a_server_that_never_becomes_ready(home):
    p, j = run_with(home, "--timeout", "5", "--", TESTSERVER, "--exit-immediately", "4",
                    "--", "/bin/true")
    assert p.returncode != 0 and j["status"] == "error", p
    assert j["error"] == "exitedBeforeReady", j
    assert "exiting 4" in p.stderr, p
    assert marked_pids(home.path) == []


def test_check_timeout(home):
    p, j = run_with(home, "--check-timeout", "1", *SRV, "--", "/bin/sleep", "30")
    assert p.returncode == 124 and j["check"]["timedOut"] is True, p
    assert marked_pids(home.path) == []


def test_sigterm_to_the_harness_mid_check(home):
    """SIGTERM to `appd with` while CHECK runs: CHECK is ended, the server
    stopped, nothing is left running, exit 143 (128 + SIGTERM)."""
    e = dict(home.env)
    e.pop("APPD_HOME", None)
    marker = home.path + ".check"
    p = subprocess.Popen([APPD, "with", *SRV, "--", "/bin/sh", "-c",
                          "touch %s; exec sleep 60" % marker], env=e,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: os.path.exists(marker), 20)
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=30)
        assert p.returncode == 143, (out, err)
        j = json.loads(out.strip().splitlines()[-1])
        assert j["harnessSignal"] == signal.SIGTERM, j
        assert marked_pids(home.path) == []
    finally:
        if p.poll() is None:
            p.kill()
        if os.path.exists(marker):
            os.unlink(marker)


def test_two_servers_in_one_job_each_with_its_own_home(home, tmp_path):
    """Nested harnesses, one --home each: the inner CHECK sees both servers."""
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    inner = [APPD, "with", "--home", b, *SRV, "--", "/bin/sh", "-c",
             'test -S "%s/run/app-server.sock" && test -S "$APPD_SOCKET" && '
             'test "$APPD_HOME" = "%s"' % (a, b)]
    p, j = run_with(home, "--home", a, *SRV, "--", *inner)
    assert p.returncode == 0 and j["status"] == "passed", p
    assert os.path.isdir(a) and os.path.isdir(b) and j["homeKept"] is True
    assert marked_pids(home.path) == []


def test_a_home_that_cannot_be_used_is_an_error(home, tmp_path):
    """--home longer than a home may be: one JSON error naming it, nothing
    started (it used to crash on the cleanup of a home never resolved)."""
    p, j = run_with(home, "--home", "/" + "x" * 600, *SRV, "--", "/bin/true")
    assert p.returncode == 1 and j["status"] == "error" and j["error"] == "io", p
    assert "APPD_HOME" in j["message"], j
    assert marked_pids(home.path) == []


def test_a_check_that_cannot_be_run_is_named_and_the_server_stopped(home):
    p, j = run_with(home, *SRV, "--", "/nonexistent/check", "arg")
    assert p.returncode != 0 and j["status"] == "error" and j["error"] == "spawnFailed", p
    assert "/nonexistent/check" in j["message"], j
    assert marked_pids(home.path) == []


def test_the_callers_open_fds_do_not_reach_the_check(home):
    """An fd the job left open (here 1500, inheritable) reaches neither the
    server nor CHECK, which only get stdin, stdout on stderr and stderr."""
    r, w = os.pipe()
    os.dup2(w, 1500)
    os.close(w)
    try:
        e = dict(home.env)
        e.pop("APPD_HOME", None)
        p = subprocess.run([APPD, "with", *SRV, "--", "/bin/sh", "-c",
                            "test ! -e /proc/self/fd/1500"], env=e, capture_output=True,
                           text=True, timeout=60, stdin=subprocess.DEVNULL, pass_fds=(1500,))
        j = json.loads(p.stdout.strip().splitlines()[-1])
        assert p.returncode == 0 and j["status"] == "passed", p
    finally:
        os.close(1500)
        os.close(r)
    assert marked_pids(home.path) == []
