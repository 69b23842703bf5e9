"""`appd release keygen` / `appd release sign`, black-box, with the
signature checked independently by the openssl CLI (interoperability:
BearSSL signs, OpenSSL verifies)."""
import base64
import hashlib
import json
import os
import shutil
import stat
import subprocess

import pytest

# SubjectPublicKeyInfo prefix for an uncompressed P-256 point (RFC 5480):
# SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING { 04||X||Y } }
SPKI_P256 = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200")

FUTURE = "2099-12-31T00:00:00Z"

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None,
                                   reason="openssl CLI not installed")


def pem(label, der):
    body = base64.encodebytes(der).decode()
    return "-----BEGIN %s-----\n%s-----END %s-----\n" % (label, body, label)


def pubkey_pem(hexkey, path):
    with open(path, "w") as f:
        f.write(pem("PUBLIC KEY", SPKI_P256 + bytes.fromhex(hexkey)))
    return path


def openssl(*args, **kw):
    return subprocess.run(["openssl"] + list(args), capture_output=True, **kw)


@pytest.fixture
def work(tmp_path):
    (tmp_path / "server.tar.gz").write_bytes(os.urandom(70000))
    (tmp_path / "appd.bin").write_bytes(b"\x7fELF" + b"x" * 1000)
    return tmp_path


def keygen(home, path):
    r = home.run("release", "keygen", "--out", str(path))
    assert r.rc == 0, r
    assert r.nlines == 1
    assert r.json["status"] == "created"
    return r


def sign(home, work, key, *extra, serial="42", version="1.4.2"):
    return home.run("release", "sign", "--key", str(key), "--version", version,
                    "--serial", serial, "--expires", FUTURE,
                    "--artifact", "x86_64-linux=https://dl.example.com/srv-1.4.2.tar.gz@"
                    + str(work / "server.tar.gz"),
                    "--artifact", "appd-x86_64-linux=https://dl.example.com/appd@"
                    + str(work / "appd.bin"),
                    "--out", str(work / "out"), *extra)


def test_keygen_writes_private_key_0600_and_prints_public_key(home, work):
    key = work / "release.key"
    r = keygen(home, key)
    assert r.json["keyPath"] == str(key)
    pub = r.json["publicKey"]
    assert len(pub) == 130 and pub.startswith("04")
    int(pub, 16)
    st = os.stat(key)
    assert stat.S_IMODE(st.st_mode) == 0o600
    text = key.read_text()
    assert len(text) == 65 and text.endswith("\n")
    int(text, 16)
    # never over an existing key
    r2 = home.run("release", "keygen", "--out", str(key))
    assert r2.rc == 1, r2
    assert r2.json["status"] == "error"
    assert key.read_text() == text
    # two keys differ
    assert keygen(home, work / "other.key").json["publicKey"] != pub


@needs_openssl
def test_keygen_private_key_matches_public_key_in_openssl(home, work):
    key = work / "release.key"
    pub = keygen(home, key).json["publicKey"]
    scalar = bytes.fromhex(key.read_text().strip())
    # RFC 5915 ECPrivateKey { version 1, privateKey, [0] prime256v1 }
    der = (bytes.fromhex("30310201010420") + scalar +
           bytes.fromhex("a00a06082a8648ce3d030107"))
    priv = work / "priv.pem"
    priv.write_text(pem("EC PRIVATE KEY", der))
    r = openssl("ec", "-in", str(priv), "-pubout", "-outform", "DER")
    assert r.returncode == 0, r.stderr
    assert r.stdout[-65:].hex() == pub


@needs_openssl
def test_sign_writes_manifest_that_openssl_verifies(home, work):
    key = work / "release.key"
    pub = keygen(home, key).json["publicKey"]
    r = sign(home, work, key, "--rollout", "25")
    assert r.rc == 0, r
    assert r.nlines == 1
    j = r.json
    out = work / "out"
    assert j["status"] == "signed"
    assert j["manifest"] == str(out / "manifest.json")
    assert j["signature"] == str(out / "manifest.json.sig")
    assert j["version"] == "1.4.2" and j["serial"] == 42
    assert j["publicKey"] == pub
    assert j["artifacts"] == ["appd-x86_64-linux", "x86_64-linux"]

    raw = (out / "manifest.json").read_bytes()
    m = json.loads(raw)
    # compact, fixed member order
    assert list(m) == ["schema", "name", "version", "serial", "expires",
                       "rolloutPercent", "artifacts"]
    assert raw == json.dumps(m, separators=(",", ":")).encode()
    assert m["schema"] == 1 and m["name"] == "app-server"
    assert m["expires"] == FUTURE and m["rolloutPercent"] == 25
    srv = (work / "server.tar.gz").read_bytes()
    a = m["artifacts"]["x86_64-linux"]
    assert a == {"url": "https://dl.example.com/srv-1.4.2.tar.gz",
                 "sha256": hashlib.sha256(srv).hexdigest(), "size": len(srv)}
    assert m["artifacts"]["appd-x86_64-linux"]["size"] == 1004

    sigtext = (out / "manifest.json.sig").read_text()
    assert sigtext.endswith("\n")
    sig = work / "sig.der"
    sig.write_bytes(bytes.fromhex(sigtext.strip()))
    pem_path = pubkey_pem(pub, work / "pub.pem")
    v = openssl("dgst", "-sha256", "-verify", str(pem_path), "-signature", str(sig),
                str(out / "manifest.json"))
    assert v.returncode == 0, v.stderr
    assert b"Verified OK" in v.stdout

    # one changed byte fails
    bad = work / "tampered.json"
    bad.write_bytes(raw.replace(b"1.4.2", b"1.4.3", 1))
    v = openssl("dgst", "-sha256", "-verify", str(pem_path), "-signature", str(sig),
                str(bad))
    assert v.returncode != 0
    # another key fails
    other = keygen(home, work / "other.key").json["publicKey"]
    v = openssl("dgst", "-sha256", "-verify", str(pubkey_pem(other, work / "o.pem")),
                "-signature", str(sig), str(out / "manifest.json"))
    assert v.returncode != 0


def test_sign_replaces_manifest_with_new_serial(home, work):
    key = work / "release.key"
    keygen(home, key)
    assert sign(home, work, key, serial="1").rc == 0
    first = (work / "out" / "manifest.json").read_bytes()
    r = sign(home, work, key, serial="2", version="1.5.0")
    assert r.rc == 0, r
    m = json.loads((work / "out" / "manifest.json").read_bytes())
    assert m["serial"] == 2 and m["version"] == "1.5.0"
    assert (work / "out" / "manifest.json").read_bytes() != first
    # no temp files left behind
    assert sorted(os.listdir(work / "out")) == ["manifest.json", "manifest.json.sig"]


@pytest.mark.parametrize("args,needle", [
    ([], "needs"),
    (["--serial", "0"], "--serial"),
    (["--serial", "x"], "--serial"),
    (["--version", "latest"], "--version"),
    (["--expires", "2001-01-01T00:00:00Z"], "in the past"),
    (["--expires", "tomorrow"], "--expires"),
    (["--rollout", "101"], "--rollout"),
    (["--artifact", "x86_64-linux=http://insecure/a@FILE"], "https"),
    (["--artifact", "X86=https://a/b@FILE"], "name"),
    (["--artifact", "x86_64-linux=https://a/b"], "NAME=URL@FILE"),
    (["--artifact", "x86_64-linux=https://a/b@FILE",
      "--artifact", "x86_64-linux=https://a/c@FILE"], "twice"),
    (["--bogus"], "unknown argument"),
])
def test_sign_usage_errors_exit_2(home, work, args, needle):
    key = work / "release.key"
    keygen(home, key)
    f = str(work / "server.tar.gz")
    base = {"--key": str(key), "--version": "1.4.2", "--serial": "3",
            "--expires": FUTURE, "--out": str(work / "out")}
    argv = []
    if args:
        for k, v in base.items():
            if k not in args:
                argv += [k, v]
        if "--artifact" not in args:
            argv += ["--artifact", "x86_64-linux=https://a/b@" + f]
    argv += [a.replace("FILE", f) for a in args]
    r = home.run("release", "sign", *argv)
    assert r.rc == 2, r
    assert r.nlines == 1
    assert r.json["status"] == "error" and r.json["error"] == "usage"
    assert needle in r.json["message"], r.json["message"]
    assert not (work / "out").exists()


def test_sign_with_bad_key_or_missing_file_exits_1(home, work):
    bad = work / "bad.key"
    bad.write_text("not a key\n")
    r = sign(home, work, bad)
    assert r.rc == 1, r
    assert r.json["status"] == "error"
    assert r.json["path"] == str(bad)
    key = work / "release.key"
    keygen(home, key)
    r = home.run("release", "sign", "--key", str(key), "--version", "1.4.2",
                 "--serial", "3", "--expires", FUTURE, "--artifact",
                 "x86_64-linux=https://a/b@" + str(work / "missing"),
                 "--out", str(work / "out"))
    assert r.rc == 1, r
    assert r.json["error"] == "io"
    assert not (work / "out").exists()


def test_release_without_subcommand_is_usage(home):
    r = home.run("release")
    assert r.rc == 2, r
    assert r.json["error"] == "usage"
    r = home.run("release", "keygen")
    assert r.rc == 2, r
