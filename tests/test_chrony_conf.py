"""Every file in chrony/ is loaded by the real chronyd, so a typo can never
kill a user's chronyd."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import sysv_ipc

from dcf77shm.chronyd import CHRONY_DIR, PrivateChronyd, find_chronyd
from dcf77shm.sinks.shm import key_for

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
    text = text.replace("/run/chrony/", f"{tmp}/run/")
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
        shutil.copy(CHRONY_DIR / "dcf77shm.keys.example", tmp_path / "keys")
    unit = 20000 + os.getpid() % 9000
    extra = _rewrite(path.read_text(), tmp_path, unit).splitlines()
    c = PrivateChronyd(tmp_path, extra)
    try:
        c.start()
        time.sleep(1.5)
        assert c.proc is not None and c.proc.poll() is None, c.last_log_line()
        log = c.log_path.read_text()
        assert "Fatal" not in log and "Could not" not in log, log
        for row in c.sources():
            assert row.name == "DCF"
    finally:
        assert c.stop() == 0
        with contextlib.suppress(sysv_ipc.ExistentialError):
            sysv_ipc.SharedMemory(key_for(unit)).remove()
