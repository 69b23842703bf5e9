"""A home shared between hosts (NFS and the like), here with two fake
hosts: each a mount + PID + UTS namespace (unshare(1)) with its own boot
id and machine id bind-mounted over /proc/sys/kernel/random/boot_id and
/etc/machine-id and its own host name, both using one home directory.
Needs root (namespaces, mounts); skipped otherwise."""
import json
import os
import signal
import subprocess
import threading
import uuid

import pytest

from conftest import APPD, TESTSERVER, skip_if_emulated, wait_until

# PID 1 of a fake host: reaps what is reparented to it, prints "ready"
REAPER = r"""
import os, signal
def reap(*a):
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
signal.signal(signal.SIGCHLD, reap)
print("ready", flush=True)
while True:
    signal.pause()
"""


class FakeHost:
    def __init__(self, name, tmp):
        d = tmp / name
        d.mkdir()
        self.name = name
        self.boot_id = str(uuid.uuid4())
        self.machine_id = uuid.uuid4().hex
        (d / "boot_id").write_text(self.boot_id + "\n")
        (d / "machine-id").write_text(self.machine_id + "\n")
        script = ("mount --bind %s/boot_id /proc/sys/kernel/random/boot_id && "
                  "mount --bind %s/machine-id /etc/machine-id && hostname %s && "
                  "exec /usr/bin/python3 -c '%s'") % (d, d, name, REAPER.replace("'", "\""))
        self.p = subprocess.Popen(["unshare", "--mount", "--pid", "--uts", "--fork",
                                   "--mount-proc", "--propagation", "private",
                                   "sh", "-c", script],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.p.stdout.readline().strip()
        if line != "ready":
            err = self.p.stderr.read()
            self.p.kill()
            pytest.skip("cannot make a fake host with unshare: %s" % err.strip())
        kids = open("/proc/%d/task/%d/children" % (self.p.pid, self.p.pid)).read().split()
        self.init = int(kids[0])          # PID 1 inside, seen from here

    def run(self, home, *args, timeout=60):
        p = subprocess.run(["nsenter", "-t", str(self.init), "-m", "-p", "-u", "--",
                            APPD] + list(args), env=home.env, capture_output=True,
                           text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        lines = p.stdout.strip().splitlines()
        assert len(lines) == 1, (args, p.stdout, p.stderr)
        return p.returncode, json.loads(lines[0])

    def close(self):
        try:
            os.kill(self.init, signal.SIGKILL)   # the namespace goes with it
        except OSError:
            pass
        self.p.wait(timeout=10)


@pytest.fixture
def hosts(home, tmp_path):
    if os.getuid() != 0:
        pytest.skip("fake hosts need root (namespaces and bind mounts)")
    skip_if_emulated("namespaces and nsenter around a foreign binary add nothing here")
    home.write_settings({"server": {"command": [TESTSERVER, "--listen", "{socket}"]}})
    a, b = FakeHost("hostA", tmp_path), FakeHost("hostB", tmp_path)
    yield a, b
    for h in (a, b):
        try:
            h.run(home, "stop", "--grace", "1", timeout=30)
        except Exception:
            pass
        h.close()


def other(status, host):
    return [o for o in status.get("otherHosts", []) if o["machineId"] == host.machine_id]


def test_two_hosts_sharing_a_home_each_manage_only_their_own(home, hosts):
    """Each host starts its own server in its own part of the home; status
    on one reports the other from the shared files; stopping on one, and
    a burst of concurrent commands on both, leave the other untouched."""
    a, b = hosts
    rc, ra = a.run(home, "start", "--timeout", "10")
    assert rc == 0 and ra["status"] == "started", ra
    rc, rb = b.run(home, "start", "--timeout", "10")
    assert rc == 0 and rb["status"] == "started", rb
    # the first host owns state/ and run/; the other has its own
    assert home.read_json("host.json")["machineId"] == a.machine_id
    assert ra["socketPath"] == home.file("run/app-server.sock")
    assert rb["socketPath"] == home.file("hosts/%s/run/app-server.sock" % b.machine_id)
    assert home.read_json("state/supervisor.pid")["machineId"] == a.machine_id
    assert home.read_json("hosts/%s/state/supervisor.pid" % b.machine_id)["machineId"] \
        == b.machine_id

    rc, sb = b.run(home, "status")
    assert sb["status"] == "running" and sb["host"]["machineId"] == b.machine_id, sb
    assert sb["host"]["ownsHome"] is False
    [oa] = other(sb, a)
    assert oa["hostname"] == "hostA" and oa["state"] == "running", sb
    assert any("running on host hostA" in w for w in sb["warnings"]), sb
    rc, sa = a.run(home, "status")
    assert sa["status"] == "running" and other(sa, b)[0]["state"] == "running", sa
    b_sup, b_srv = sb["supervisor"]["pid"], sb["pid"]

    rc, st = a.run(home, "stop", "--grace", "2")
    assert rc == 0 and st["status"] == "stopped", st
    rc, sb2 = b.run(home, "status")
    assert sb2["status"] == "running" and sb2["ready"] is True, sb2
    assert (sb2["supervisor"]["pid"], sb2["pid"]) == (b_sup, b_srv)
    assert other(sb2, a)[0]["state"] == "stopped", sb2

    # concurrent commands on both hosts: each answers with one JSON object
    # (FakeHost.run checks), and B's server is never touched by A's
    results = []

    def burst(host, cmds):
        for c in cmds:
            results.append((host.name, c, host.run(home, *c, timeout=60)))

    ta = threading.Thread(target=burst, args=(a, [["start", "--timeout", "10"], ["status"],
                                                  ["restart", "--timeout", "10"], ["status"],
                                                  ["stop", "--grace", "1"], ["start",
                                                  "--timeout", "10"]]))
    tb = threading.Thread(target=burst, args=(b, [["status"]] * 6 + [["start"]] * 2))
    ta.start(), tb.start()
    ta.join(120), tb.join(120)
    assert len(results) == 14, results
    for name, c, (rc, j) in results:
        assert rc == 0 and j["status"] != "error", (name, c, j)
    rc, sb3 = b.run(home, "status")
    assert (sb3["supervisor"]["pid"], sb3["pid"]) == (b_sup, b_srv), sb3
    rc, sa3 = a.run(home, "status")
    assert sa3["status"] == "running", sa3


def test_a_record_of_another_machine_is_never_judged_stale(home, hosts):
    """host.json removed while host A runs (or a home from before it
    existed): host B finds A's records in state/. Its boot id differs, so
    they used to look stale and could be deleted; now B reports them as
    another machine's and leaves them alone, and a `start` on B names A
    the owner again and runs B's server in B's own part of the home."""
    a, b = hosts
    rc, ra = a.run(home, "start", "--timeout", "10")
    assert rc == 0, ra
    os.unlink(home.file("host.json"))
    before = {f: home.read("state/" + f) for f in ("supervisor.pid", "app-server.pid",
                                                   "status.json")}
    rc, sb = b.run(home, "status")
    assert sb["status"] == "otherHost" and sb["otherMachineId"] == a.machine_id, sb
    rc, rb = b.run(home, "start", "--timeout", "10")
    assert rc == 0 and rb["status"] == "started", rb
    assert home.read_json("host.json")["machineId"] == a.machine_id
    assert rb["socketPath"] == home.file("hosts/%s/run/app-server.sock" % b.machine_id)
    for f, text in before.items():
        assert home.read("state/" + f) == text, f
    rc, sa = a.run(home, "status")
    assert sa["status"] == "running" and sa["pid"] == ra["pid"], sa
