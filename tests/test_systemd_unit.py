"""The shipped systemd unit and sysusers file, and `shm adopt` (its ExecStartPre)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sysv_ipc

from dcf77shm.cli.config import DEFAULT_CONFIG
from dcf77shm.service.state import DEFAULT_STATE_FILE
from dcf77shm.service.status import DEFAULT_STATUS_FILE
from dcf77shm.sinks.shm import key_for, segment_info

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "dcf77shm.service"


def directives(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


def test_unit_never_destroys_or_hides_the_segment() -> None:
    d = directives(UNIT.read_text())
    # Each of these would leave chronyd attached to a dead segment.
    for forbidden in ("RemoveIPC", "PrivateIPC", "DynamicUser"):
        assert forbidden not in d
    assert d["Type"] == ["notify"] and d["NotifyAccess"] == ["main"]
    assert "chrony.service" in d["Before"][0].split()
    assert d["User"] == ["_dcf77"] and d["CapabilityBoundingSet"] == [""]
    assert d["RestartPreventExitStatus"] == ["2"]  # BadInput: a bad config is not retried
    # The service reads the documented config file and writes the status file
    # that `dcf77shm status` reads by default.
    (start,) = d["ExecStart"]
    assert f"--config {DEFAULT_CONFIG}" in start and f"--status-file {DEFAULT_STATUS_FILE}" in start
    assert d["RuntimeDirectory"] == [DEFAULT_STATUS_FILE.parent.name]
    # The held count survives a restart in the same boot: a state file in a
    # directory only the service may write.
    assert f"--state-file {DEFAULT_STATE_FILE}" in start
    assert d["StateDirectory"] == [DEFAULT_STATE_FILE.parent.name]
    assert d["StateDirectoryMode"] == ["0700"]
    sysusers = (ROOT / "systemd" / "dcf77shm.sysusers").read_text()
    assert any(line.split()[:2] == ["u", "_dcf77"] for line in sysusers.splitlines())


def test_systemd_analyze_verify_is_clean(tmp_path: Path) -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze not installed (Debian package systemd)")
    # verify checks that ExecStart's program exists: point it at this checkout's.
    exe = Path(sys.executable).with_name("dcf77shm")
    unit = tmp_path / "dcf77shm.service"
    unit.write_text(UNIT.read_text().replace("/usr/bin/dcf77shm", str(exe)))
    r = subprocess.run(
        [tool, "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "notice"},
    )
    if "Failed to initialize manager" in r.stderr or "Failed to setup" in r.stderr:
        pytest.skip(f"systemd-analyze cannot run here: {r.stderr.strip()}")
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="changes a segment's owner: root")


@needs_root
def test_adopt_gives_chronyds_segment_to_the_service_user(tmp_path: Path) -> None:
    unit = 40000 + os.getpid() % 20000
    conf = tmp_path / "c.toml"
    conf.write_text(f'output = "shm:{unit}"\n')

    def adopt() -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "dcf77shm", "shm", "adopt", "--config", str(conf)]
        return subprocess.run([*cmd, "--user", "nobody"], capture_output=True, text=True)

    r = adopt()
    assert r.returncode == 0 and "no segment yet" in r.stdout
    # As chronyd creates it: root, 0600.
    mem = sysv_ipc.SharedMemory(key_for(unit), sysv_ipc.IPC_CREX, mode=0o600, size=96)
    try:
        r = adopt()
        assert r.returncode == 0 and "owner uid 0 -> nobody" in r.stdout, r.stderr
        info = segment_info(key_for(unit))
        assert info is not None and info.uid == 65534 and info.mode == 0o600
        assert info.nattch == 1  # our attachment (standing in for chronyd's) survived
        assert "already nobody's, mode 0600" in adopt().stdout
    finally:
        mem.detach()
        mem.remove()
    r = subprocess.run(
        [sys.executable, "-m", "dcf77shm", "shm", "adopt", "--config", str(conf), "--user", "nx_"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "no user 'nx_'" in r.stderr
    conf.write_text('output = "sock:/run/dcf77shm-sock/dcf77.sock"\n')
    assert "nothing to do" in adopt().stdout


def test_adopt_leaves_a_bad_config_to_run(tmp_path: Path) -> None:
    # In ExecStartPre= a failure would restart the unit every 5 s
    # (RestartPreventExitStatus=2 covers the main process only): `run` reports
    # the config, once, and exits 2.
    conf = tmp_path / "bad.toml"
    conf.write_text('output = "shm:77"\npolarity = "sideways"\n')
    cmd = [sys.executable, "-m", "dcf77shm", "shm", "adopt", "--config", str(conf)]
    r = subprocess.run([*cmd, "--user", "nobody"], capture_output=True, text=True)
    assert r.returncode == 0 and "nothing adopted" in r.stdout and not r.stderr, r
    run = subprocess.run(
        [sys.executable, "-m", "dcf77shm", "run", "--config", str(conf)],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2 and "sideways" in run.stderr
