"""Faults of the field-hardening issue, each reproduced black-box through
the binary: what a hostile or unlucky home does must give a clear error,
never a hang."""
import os
import subprocess
import time

import pytest

from conftest import APPD, TESTSERVER, marked_pids

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
