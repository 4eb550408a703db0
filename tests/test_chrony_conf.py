"""Every file in chrony/ is loaded by the real chronyd, so a typo can never
kill a user's chronyd."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import socket
import ssl
import struct
import subprocess
import time
from pathlib import Path

import pytest
import sysv_ipc
from clirun import wait_until

from dcf77shm.sinks.shm import key_for
from dcf77shm.testing.chronyd import CHRONY_DIR, PrivateChronyd, find_chronyd

CHRONYD = find_chronyd()
pytestmark = [
    pytest.mark.chrony,
    pytest.mark.skipif(CHRONYD is None, reason="chronyd not installed (make chrony)"),
]
FILES = sorted(p for p in CHRONY_DIR.iterdir() if ".conf" in p.name)


def test_the_drop_ins_exist() -> None:
    names = {p.name for p in FILES}
    assert {"dcf77shm.conf", "dcf77shm-sock.conf", "dcf77shm-serve.conf.example"} <= names


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_chronyd_parses(path: Path) -> None:
    r = subprocess.run([str(CHRONYD), "-p", "-f", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    directives = [
        ln.split()[0]
        for ln in path.read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    assert directives and all(d in r.stdout for d in directives)


def _rewrite(text: str, tmp: Path, unit: int) -> str:
    """Point the file's paths into tmp and its SHM unit at a test unit."""
    text = re.sub(r"refclock SHM \d+", f"refclock SHM {unit}", text)
    for run_dir in ("/run/chrony/", "/run/dcf77shm-sock/"):
        text = text.replace(run_dir, f"{tmp}/run/")
    for name in ("server.key", "server.crt"):
        text = text.replace(f"/etc/chrony/nts/{name}", str(tmp / name))
    text = text.replace("/etc/chrony/chrony.keys", str(tmp / "keys"))
    return text.replace("ntsdumpdir /var/lib/chrony", f"ntsdumpdir {tmp}")


@pytest.mark.skipif(os.geteuid() != 0, reason="the private chronyd runs as root")
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_chronyd_starts_with_it(path: Path, tmp_path: Path) -> None:
    if "serve" in path.name:
        if shutil.which("openssl") is None:
            pytest.skip("openssl needed for a test certificate")
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=localhost",
                "-keyout",
                str(tmp_path / "server.key"),
                "-out",
                str(tmp_path / "server.crt"),
            ],
            check=True,
            capture_output=True,
        )
        # The example holds no key (test below): make one as it says.
        key = subprocess.run(
            ["chronyc", "keygen", "10", "SHA256", "256"], capture_output=True, text=True, check=True
        ).stdout
        (tmp_path / "keys").write_text(key)
    unit = 20000 + os.getpid() % 9000
    extra = [
        ln
        for ln in _rewrite(path.read_text(), tmp_path, unit).splitlines()
        # No network here: the example's NTS upstreams stay out of this test
        # (tests/test_falseticker.py runs the cross-check with local servers).
        if not ln.startswith("server ")
    ]
    nts_port = _free_tcp_port()
    if "serve" in path.name:
        extra.append(f"ntsport {nts_port}")
    c = PrivateChronyd(tmp_path, extra)
    try:
        c.start()  # returns once chronyc gets answers
        # The serving example has only NTS servers (left out above), the others
        # the DCF refclock: ready when the sources list shows what is expected.
        want = set() if "serve" in path.name else {"DCF"}
        wait_until(lambda: {r.name for r in c.sources()} == want, f"chronyd lists {want}", 30)
        assert c.proc is not None and c.proc.poll() is None, c.last_log_line()
        log = c.log_path.read_text()
        assert "Fatal" not in log and "Could not" not in log, log
        if "serve" in path.name:
            _check_symmetric_key(c.ntp_port, tmp_path / "keys")
            _check_nts_ke(nts_port, tmp_path / "server.crt")
    finally:
        assert c.stop() == 0
        with contextlib.suppress(sysv_ipc.ExistentialError):
            sysv_ipc.SharedMemory(key_for(unit)).remove()


def _free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_no_real_key_is_shipped() -> None:
    """A secret in the repository would be known to everyone who copies it."""
    for p in CHRONY_DIR.iterdir():
        for line in p.read_text().splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                assert not re.match(r"\s*\d+\s+\w+\s+(HEX:|ASCII:)?\S{8,}", line), (p, line)


def _check_symmetric_key(port: int, keys: Path) -> None:
    """An NTP request MACed with the key (chrony: SHA256 truncated to 20 bytes in
    NTPv4) gets an answer MACed with it; a wrong key gets none."""
    secret = keys.read_text().split("HEX:")[1].split()[0]
    key = bytes.fromhex(secret)
    pkt = bytearray(48)
    pkt[0] = 0x23  # LI 0, version 4, mode 3 (client)
    pkt[40:48] = struct.pack(">II", int(time.time()) + 2_208_988_800, 4711)
    for k, answered in ((key, True), (b"not the key", False)):
        mac = struct.pack(">I", 10) + hashlib.sha256(k + bytes(pkt)).digest()[:20]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(1.5)
            s.sendto(bytes(pkt) + mac, ("127.0.0.1", port))
            try:
                r = s.recv(200)
            except TimeoutError:
                assert not answered, "no answer to a request MACed with the example key"
                continue
        assert answered, "answered a request with a bad MAC"
        assert r[48:52] == struct.pack(">I", 10)
        assert r[52:] == hashlib.sha256(key + r[:48]).digest()[:20]


def _check_nts_ke(port: int, cert: Path) -> None:
    """NTS-KE (TLS, ALPN ntske/1) presents the configured certificate."""
    ctx = ssl.create_default_context(cafile=str(cert))
    ctx.set_alpn_protocols(["ntske/1"])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=3) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        assert tls.selected_alpn_protocol() == "ntske/1"
