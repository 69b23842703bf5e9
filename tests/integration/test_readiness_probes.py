"""Readiness beyond the control socket: tcp://, http://, http+unix:// and
exec: probes, in settings and as `start --ready SPEC`. A start returns only
once the probe passes; one that never passes fails with the last failure
in the message."""
import http.client
import os
import socket
import sys

import pytest

from conftest import TESTSERVER

HEALTH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "fixtures", "http_health.py")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def get(port, path="/"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", path)
    return c.getresponse().status


def test_tcp_readiness_waits_for_the_listener(home):
    port = free_port()
    r = home.run("start", "--ready", "tcp://127.0.0.1:%d" % port, "--timeout", "10", "--",
                 sys.executable, HEALTH, "--tcp", str(port), "--listen-after", "700")
    assert r.rc == 0 and r.json["status"] == "started", r
    socket.create_connection(("127.0.0.1", port), timeout=2).close()   # listening now
    assert home.read_json("settings.json")["server"]["readiness"] == "tcp://127.0.0.1:%d" % port
    st = home.run("status").json
    assert st["status"] == "running" and st["ready"] is True and st["readiness"] == "probe", st
    assert st["readinessProbe"] == "tcp://127.0.0.1:%d" % port, st


def test_http_readiness_waits_for_a_2xx(home):
    port = free_port()
    r = home.run("start", "--ready", "http://localhost:%d/healthz" % port, "--timeout", "10",
                 "--", sys.executable, HEALTH, "--tcp", str(port), "--fail-first", "3")
    assert r.rc == 0, r
    # three 503s were seen by the probe before it was ready; now it is 200
    assert get(port, "/healthz") == 200


def test_http_readiness_that_never_passes_says_why(home):
    port = free_port()
    r = home.run("start", "--ready", "http://127.0.0.1:%d/" % port, "--timeout", "2",
                 "--", sys.executable, HEALTH, "--tcp", str(port), "--status", "503")
    assert r.rc == 6 and r.json["error"] == "notReady", r
    assert "HTTP 503" in r.json["message"], r
    assert home.run("status").json["status"] == "stopped"


def test_http_over_the_unix_socket(home):
    home.write_settings({"server": {
        "command": [sys.executable, HEALTH, "--unix", "{socket}"],
        "readiness": "http+unix://{socket}/ready"}})
    r = home.run("start", "--timeout", "10")
    assert r.rc == 0, r
    s = socket.socket(socket.AF_UNIX)
    s.connect(home.socket)
    s.sendall(b"GET /x HTTP/1.0\r\n\r\n")
    assert s.recv(100).startswith(b"HTTP/1.0 200")


def test_exec_readiness(home):
    r = home.run("start", "--ready", "exec:/usr/bin/test -S {socket}", "--timeout", "10",
                 "--", TESTSERVER, "--listen", "{socket}")
    assert r.rc == 0, r
    again = home.run("restart")
    assert again.rc == 0, again
    home.run("stop")
    f = home.run("start", "--ready", "exec:/bin/false", "--timeout", "2")
    assert f.rc == 6 and "exit status 1" in f.json["message"], f


@pytest.mark.parametrize("spec,why", [
    ("tcp://example.com:80", "not an IP address"),
    ("tcp://127.0.0.1:0", "bad probe port"),
    ("http+unix://relative.sock/x", "absolute socket path"),
    ("exec:relative/prog", "absolute program path"),
    ("bogus", "--ready must be"),
])
def test_bad_probe_specs_are_refused(home, spec, why):
    r = home.run("start", "--ready", spec, "--", TESTSERVER, "--listen", "{socket}")
    assert r.rc == 2 and why in r.json["message"], r
    assert not os.path.exists(home.file("settings.json"))      # nothing changed
