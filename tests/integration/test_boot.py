"""enable-boot / disable-boot: the systemd user unit (checked with
systemd-analyze verify from Debian's systemd; no user manager runs in these
VMs, so it is written with --dry-run and never enabled here), the @reboot
crontab line with Debian's cron (crontab -l / crontab FILE, the cron daemon
itself is not needed), and a simulated boot that runs exactly what the
@reboot line runs."""
import os
import shutil
import signal
import subprocess

import pytest

from conftest import APPD, TESTSERVER, marked_pids, wait_until


@pytest.fixture
def crontab():
    """The user's crontab, saved and put back afterwards."""
    if shutil.which("crontab") is None:
        pytest.skip("crontab is not installed (make deps installs cron)")
    old = subprocess.run(["crontab", "-l"], capture_output=True, text=True)
    yield
    if old.returncode == 0:
        subprocess.run(["crontab", "-"], input=old.stdout, text=True, check=True)
    else:
        subprocess.run(["crontab", "-r"], capture_output=True)


def crontab_lines():
    r = subprocess.run(["crontab", "-l"], capture_output=True, text=True)
    return r.stdout.splitlines() if r.returncode == 0 else []


def test_systemd_unit_passes_systemd_analyze_verify(home, tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (make deps installs systemd)")
    r = home.run("enable-boot", "--mechanism", "systemd", "--dry-run")
    assert r.rc == 0 and r.json["mechanism"] == "systemd" and r.json["dryRun"], r
    unit = tmp_path / (r.json["unit"] + ".service")
    unit.write_text(r.json["unitText"])
    text = r.json["unitText"]
    assert "Type=notify" in text and '"APPD_HOME=%s"' % home.path in text
    assert 'ExecStart="%s" run' % os.path.realpath(APPD) in text
    v = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert v.returncode == 0 and v.stderr.strip() == "" and v.stdout.strip() == "", v
    # nothing was written by the dry run
    assert not os.path.exists(r.json["path"])
    # the linger state is reported, never assumed
    assert isinstance(r.json["linger"], bool)
    if not r.json["linger"]:
        assert any("loginctl enable-linger" in w for w in r.json["warnings"]), r


def test_systemd_without_a_user_manager_writes_nothing(home, tmp_path):
    env = {"XDG_RUNTIME_DIR": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    r = home.run("enable-boot", "--mechanism", "systemd", env=env)
    assert r.rc != 0 and "no systemd user manager" in r.json["message"], r
    assert not os.path.exists(tmp_path / "cfg")


def test_crontab_round_trip_is_idempotent_and_keeps_other_lines(home, crontab):
    subprocess.run(["crontab", "-"], input="# mine\n0 3 * * * /bin/true\n", text=True,
                   check=True)
    r = home.run("enable-boot", "--mechanism", "cron")
    assert r.rc == 0 and r.json["mechanism"] == "cron" and r.json["changed"] is True, r
    line = r.json["crontabLine"]
    assert line.startswith("@reboot ") and home.path in line
    assert crontab_lines() == ["# mine", "0 3 * * * /bin/true", line]
    r2 = home.run("enable-boot", "--mechanism", "cron")
    assert r2.rc == 0 and r2.json["changed"] is False, r2
    assert crontab_lines().count(line) == 1
    d = home.run("disable-boot", "--mechanism", "cron")
    assert d.rc == 0 and d.json["changed"] is True, d
    assert crontab_lines() == ["# mine", "0 3 * * * /bin/true"]
    d2 = home.run("disable-boot", "--mechanism", "cron")
    assert d2.rc == 0 and d2.json["changed"] is False, d2


def test_a_simulated_boot_brings_the_server_back(home, crontab):
    """Start, enable-boot, then "reboot": everything of this home SIGKILLed
    (as a power cut leaves it: stale records, a stale socket), then exactly
    what the @reboot line runs, through sh as cron runs it: the server is
    back and ready."""
    r = home.start_server("--listen", "{socket}")
    assert r.rc == 0, r
    e = home.run("enable-boot", "--mechanism", "cron")
    assert e.rc == 0, e
    for pid in marked_pids(home.path):
        os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: marked_pids(home.path) == [], 10)
    assert home.run("status").json["status"] != "running"
    cmd = e.json["crontabLine"][len("@reboot "):]
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"),
           "APPD_TEST_MARK": home.path}        # what cron gives a job, and our mark
    subprocess.run(["/bin/sh", "-c", cmd], env=env, timeout=60, check=True)
    st = home.run("status").json
    assert st["status"] == "running" and st["ready"] is True, st
    assert st["pid"] != r.json["pid"]


def test_kill_user_processes_is_reported(home):
    """logind's KillUserProcesses=yes (here in a logind.conf.d drop-in,
    root only) is reported with a warning; without it, it is not."""
    if os.getuid() != 0:
        pytest.skip("writing a logind.conf.d drop-in needs root")
    r0 = home.run("enable-boot", "--mechanism", "systemd", "--dry-run")
    base = r0.json["killUserProcesses"]
    d = "/etc/systemd/logind.conf.d"
    made = not os.path.isdir(d)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "zz-appd-test.conf")
    try:
        with open(path, "w") as f:
            f.write("[Login]\nKillUserProcesses=yes\n")
        r = home.run("enable-boot", "--mechanism", "systemd", "--dry-run")
        assert r.json["killUserProcesses"] is True, r
        assert any("KillUserProcesses=yes" in w for w in r.json["warnings"]), r
    finally:
        os.unlink(path)
        if made:
            os.rmdir(d)
    # and back to what the host's own configuration says
    assert home.run("enable-boot", "--mechanism", "systemd",
                    "--dry-run").json["killUserProcesses"] is base
