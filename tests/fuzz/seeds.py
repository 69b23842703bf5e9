#!/usr/bin/env python3
"""seeds.py -- write the seed corpora under tests/fuzz/corpus/ (run from
anywhere; overwrites the files it names, leaves others alone).  The
seeds are small valid and nearly valid inputs of each format, so the
fuzzers start from the shapes appd really reads; what the fuzzers find
stays in build/fuzz/corpus/.  Regression inputs for fixed crashes are
added to the corpus by hand, named crash-<what>."""
import json
import os
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))


def w(d, name, data):
    if isinstance(data, str):
        data = data.encode()
    os.makedirs(os.path.join(HERE, 'corpus', d), exist_ok=True)
    with open(os.path.join(HERE, 'corpus', d, name), 'wb') as f:
        f.write(data)


def frame(op, payload, fin=True, mask=None):
    """One WebSocket frame (RFC 6455 5.2), unmasked unless `mask`."""
    b0 = (0x80 if fin else 0) | op
    n = len(payload)
    m = 0x80 if mask else 0
    if n < 126:
        h = bytes([b0, m | n])
    elif n < 65536:
        h = bytes([b0, m | 126]) + n.to_bytes(2, 'big')
    else:
        h = bytes([b0, m | 127]) + n.to_bytes(8, 'big')
    if mask:
        h += mask
        payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
    return h + payload


BOOT = 'b2b36320-2b11-4cef-a5c8-8629d53b1d16'
PID = {"pid": 26232, "bootId": BOOT, "startTicks": 1675350, "pgid": 26232,
       "exe": "/work/main/build/fixtures/testserver"}
STATUS = {"serverId": "26231-1675350", "supervisorPid": 26231,
          "supervisorStartTicks": 1675350, "bootId": BOOT,
          "startedAt": "2026-12-01T13:21:37.892Z",
          "lastSeenAt": "2026-12-01T13:21:37.893Z", "state": "running",
          "serverPid": 26232, "serverPgid": 26232, "ready": True,
          "readyAt": "2026-12-01T13:21:37.893Z", "incarnation": 1,
          "restarts": 0, "nextRestartAt": None, "backoffMs": 0,
          "readiness": "connect", "socketPath": "/tmp/h/run/app-server.sock",
          "message": "ready"}


def js(o):
    return json.dumps(o, separators=(',', ':')).encode()


# json: byte 0 picks the loader (0 reader, 1 pidfile, 2 status, 3 settings)
w('json', 'object', b'\x00{"a":[1,2.5e3,-0,true,false,null,'
  b'{"b":"\\u00e9\\ud83d\\ude00\\n"}],"c":{}}')
w('json', 'dupkey', b'\x00{"a":1,"b":{"a":2,"a":3}}')
w('json', 'pidfile', b'\x01' + js(PID))
w('json', 'status', b'\x02' + js(STATUS))
w('json', 'settings-generic', b'\x03' + js({
    "server": {"command": ["/bin/ts", "--listen", "{socket}"],
               "readiness": "connect", "restart": "always",
               "readyTimeoutSeconds": 30, "shutdownGraceSeconds": 5,
               "logMaxBytes": 1048576, "socketActivation": True,
               "remoteControlArgs": ["--remote-control"],
               "remoteControlDisabledEnv": ["X=1"]},
    "remoteControlEnabled": False}))
w('json', 'settings-probes', b'\x03' + js({
    "server": {"command": ["/bin/ts"], "readiness": "http+unix://{socket}/ready",
               "watchdogSeconds": 5,
               "liveness": {"probe": "tcp://127.0.0.1:8080", "intervalSeconds": 10,
                            "timeoutSeconds": 5, "failureThreshold": 3}}}))
w('json', 'status-health', b'\x02' + js(dict(STATUS, health={
    "lastProbeAt": "2026-12-01T13:21:38.000Z", "lastResult": "failed",
    "lastFailure": "HTTP 503", "consecutiveFailures": 2, "restarts": 1},
    spawnFailures=1, spawnError="x", stateWriteError="y", machineId="m", hostname="h")))
w('json', 'settings-codex', b'\x03' + js({
    "profile": "codex",
    "updater": {"autoUpdateEnabled": True,
                "manifestUrl": "https://example.com/m.json",
                "publicKeys": ["04" + "ab" * 64], "caFile": None,
                "intervalMinutes": 60, "name": "codex",
                "target": "x86_64-linux"}}))

# http: byte 0 = piece size (low 4 bits + 1), 0x10 all at once, 0x20 no body
w('http', 'length', b'\x10HTTP/1.1 200 OK\r\nContent-Length: 5\r\n'
  b'ETag: "x"\r\n\r\nhello')
w('http', 'chunked', b'\x03HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n'
  b'\r\n5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\n')
w('http', 'other-coding', b'\x10HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, '
  b'chunked\r\n\r\n0\r\n\r\n')
w('http', 'redirect', b'\x10HTTP/1.1 302 Found\r\nLocation: ../c/d?x#f\r\n'
  b'Content-Length: 0\r\n\r\n')
w('http', 'retry', b'\x01HTTP/1.1 503 Busy\r\n'
  b'Retry-After: Wed, 21 Oct 2026 07:28:00 GMT\r\n'
  b'Connection: keep-alive, close\r\n\r\nbody until close')
w('http', 'interim', b'\x10HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content'
  b'\r\nRetry-After: 120\r\n\r\n')
w('http', 'head', b'\x30HTTP/1.0 200 OK\r\nContent-Length: 99\r\n \tfolded'
  b'\r\n\r\n')
w('http', 'conflict', b'\x10HTTP/1.1 200 OK\r\nContent-Length: 5\r\n'
  b'Content-Length: 6\r\n\r\nhello!')

# url: URL "\n--\n" Location
w('url', 'plain', 'https://Example.COM:8443/a/b/c?x=1#frag\n--\n../d?y')
w('url', 'v6', 'https://[2001:db8::1]/p\n--\n//other.example/q')
w('url', 'abs', 'https://h.example\n--\nhttps://x.example:1/#a')
w('url', 'query', 'https://h.example/dir/file?q\n--\n?r=2')
w('url', 'insecure', 'https://h.example/\n--\nhttp://evil.example/')
w('url', 'onlysplit', 'https://a-b_c.example:65535?x')

# wsprobe: the server's bytes; {ACCEPT} becomes the right accept value
UA = js({"id": 1, "result": {"userAgent":
                             "codex_app_server/0.169.0 (Linux; x86_64)"}})
HS = (b'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n'
      b'Connection: Upgrade\r\nSec-WebSocket-Accept: {ACCEPT}\r\n\r\n')
w('wsprobe', 'ok', HS + frame(1, UA))
w('wsprobe', 'notify-ping-frag', HS + frame(1, b'{"method":"x"}') +
  frame(9, b'hi') + frame(2, b'\x00\x01') + frame(1, UA[:10], False) +
  frame(0, UA[10:]))
w('wsprobe', 'close', HS + frame(8, b'\x03\xe8bye'))
w('wsprobe', 'long', HS + frame(1, b'{"id":2,"pad":"' + b'x' * 300 + b'"}') +
  frame(1, UA))
w('wsprobe', 'masked', HS + frame(1, UA, mask=b'abcd'))
w('wsprobe', 'bad-accept', HS.replace(b'{ACCEPT}',
                                      b'AAAAAAAAAAAAAAAAAAAAAAAAAAA='))
w('wsprobe', '404', b'HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n')

# trust: PEM bundles made with the openssl CLI (RSA and EC), one broken
def self_signed(kind):
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        k = os.path.join(d, 'k.pem')
        c = os.path.join(d, 'c.pem')
        if kind == 'rsa':
            subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048',
                            '-nodes', '-keyout', k, '-out', c, '-days', '3650',
                            '-subj', '/CN=fuzz rsa'], check=True,
                           capture_output=True)
        else:
            subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec',
                            '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
                            '-keyout', k, '-out', c, '-days', '3650',
                            '-subj', '/CN=fuzz ec'], check=True,
                           capture_output=True)
        return open(c, 'rb').read()


if not os.path.exists(os.path.join(HERE, 'corpus', 'trust', 'rsa-ec')):
    rsa, ec = self_signed('rsa'), self_signed('ec')
    w('trust', 'rsa-ec', b'# bundle\n' + rsa + b'\n' + ec)
    w('trust', 'ec', ec)
    w('trust', 'truncated', rsa[:len(rsa) // 2])
    w('trust', 'not-cert', b'-----BEGIN PRIVATE KEY-----\nAAAA\n'
      b'-----END PRIVATE KEY-----\n' + ec)

# manifest: manifest "\n--\n" .sig text; no .sig: the harness signs it
M = {"schema": 1, "name": "app-server", "version": "1.4.2", "serial": 42,
     "expires": "2026-12-31T00:00:00Z", "rolloutPercent": 100,
     "artifacts": {"x86_64-linux": {
         "url": "https://example.com/a.tar.gz",
         "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
         "size": 4},
         "appd-x86_64-linux": {
         "url": "https://example.com/appd",
         "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
         "size": 4}}}
w('manifest', 'signed', js(M))
w('manifest', 'prerelease', js(dict(M, version="1.5.0-rc.1+build.7",
                                    rolloutPercent=5)))
w('manifest', 'old', js(dict(M, version="1.4.1", serial=40)))
w('manifest', 'bad-sig', js(M) + b'\n--\n3045022100' + b'ab' * 32 +
  b'0220' + b'cd' * 32 + b'\n')
w('manifest', 'not-hex', js(M) + b'\n--\nxyz\n')
