#!/usr/bin/env python3
"""Probe a Codex app-server over its Unix control socket (stdlib only).

Does what appd's `codex-initialize` readiness does: a WebSocket upgrade
(`GET / HTTP/1.1`) over the Unix socket, then one masked text frame carrying
the JSON-RPC `initialize` request, and reads frames until the reply with the
same id arrives.

    from codex_probe import probe
    result = probe("/path/to/app-server.sock")   # -> {"userAgent": "...", ...}

    python3 tests/integration/codex_probe.py SOCK [--timeout S] [--raw]

As a script it prints the `result` object as JSON on stdout (with --raw: the
whole reply message) and exits 0; on failure it prints the error on stderr
and exits 1.
"""

import base64
import hashlib
import json
import os
import socket
import struct
import sys
import time

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

DEFAULT_CLIENT_INFO = {"name": "appd", "title": "appd", "version": "0.1.0"}


class ProbeError(Exception):
    """The server did not answer `initialize` as expected."""


class _Conn:
    def __init__(self, sock, deadline):
        self.sock = sock
        self.deadline = deadline
        self.buf = b""

    def _remaining(self):
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise ProbeError("timed out")
        return left

    def _fill(self):
        self.sock.settimeout(self._remaining())
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise ProbeError("timed out") from None
        if not chunk:
            raise ProbeError("connection closed by server")
        self.buf += chunk

    def read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_until(self, sep, limit=65536):
        while sep not in self.buf:
            if len(self.buf) > limit:
                raise ProbeError("HTTP response header too long")
            self._fill()
        i = self.buf.index(sep) + len(sep)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def send(self, data):
        self.sock.settimeout(self._remaining())
        self.sock.sendall(data)


def _frame(opcode, payload):
    """A final, masked client frame."""
    head = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + body


def _read_frame(conn):
    """Return (fin, opcode, payload) of the next server frame."""
    b0, b1 = conn.read_exact(2)
    fin, opcode = bool(b0 & 0x80), b0 & 0x0F
    n = b1 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", conn.read_exact(2))
    elif n == 127:
        (n,) = struct.unpack("!Q", conn.read_exact(8))
    mask = conn.read_exact(4) if b1 & 0x80 else None
    payload = conn.read_exact(n)
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return fin, opcode, payload


def _read_message(conn):
    """Next complete text/binary message; answers pings on the way."""
    parts = []
    while True:
        fin, opcode, payload = _read_frame(conn)
        if opcode == 0x8:
            code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
            raise ProbeError("server closed the WebSocket (code %s, %r)"
                             % (code, payload[2:].decode("utf-8", "replace")))
        if opcode == 0x9:
            conn.send(_frame(0xA, payload))
            continue
        if opcode == 0xA:
            continue
        parts.append(payload)
        if fin:
            return b"".join(parts)


def handshake(conn, host="localhost", path="/"):
    key = base64.b64encode(os.urandom(16)).decode()
    req = ("GET %s HTTP/1.1\r\n"
           "Host: %s\r\n"
           "Upgrade: websocket\r\n"
           "Connection: Upgrade\r\n"
           "Sec-WebSocket-Key: %s\r\n"
           "Sec-WebSocket-Version: 13\r\n"
           "\r\n") % (path, host, key)
    conn.send(req.encode())
    head = conn.read_until(b"\r\n\r\n").decode("latin-1")
    lines = head.split("\r\n")
    status = lines[0]
    parts = status.split(" ", 2)
    if len(parts) < 2 or parts[1] != "101":
        raise ProbeError("WebSocket upgrade refused: %r" % status)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    want = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
    if headers.get("sec-websocket-accept") != want:
        raise ProbeError("bad Sec-WebSocket-Accept: %r" % headers.get("sec-websocket-accept"))
    return status, headers


def probe_message(sock_path, timeout=2.0, client_info=None, request_id=1):
    """Return the whole JSON-RPC reply message to `initialize`."""
    deadline = time.monotonic() + timeout
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        try:
            s.connect(sock_path)
        except OSError as e:
            raise ProbeError("connect %s: %s" % (sock_path, e.strerror or e)) from None
        conn = _Conn(s, deadline)
        handshake(conn)
        req = {"id": request_id, "method": "initialize",
               "params": {"clientInfo": client_info or DEFAULT_CLIENT_INFO}}
        conn.send(_frame(0x1, json.dumps(req, separators=(",", ":")).encode()))
        while True:
            raw = _read_message(conn)
            try:
                msg = json.loads(raw)
            except ValueError:
                raise ProbeError("non-JSON message: %r" % raw[:200]) from None
            if isinstance(msg, dict) and msg.get("id") == request_id:
                if "error" in msg:
                    raise ProbeError("initialize error: %s" % json.dumps(msg["error"]))
                return msg
            # a notification or another id: skip it
    finally:
        try:
            s.close()
        except OSError:
            pass


def probe(sock_path, timeout=2.0, client_info=None):
    """Return the `result` object of the server's reply to `initialize`."""
    msg = probe_message(sock_path, timeout=timeout, client_info=client_info)
    result = msg.get("result")
    if not isinstance(result, dict):
        raise ProbeError("initialize reply has no result object: %r" % msg)
    return result


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("sock")
    ap.add_argument("--timeout", type=float, default=2.0)
    ap.add_argument("--raw", action="store_true", help="print the whole reply message")
    a = ap.parse_args(argv)
    try:
        out = (probe_message(a.sock, a.timeout) if a.raw else probe(a.sock, a.timeout))
    except (ProbeError, OSError) as e:
        print("codex_probe: %s" % e, file=sys.stderr)
        return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
