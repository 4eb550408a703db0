"""The packaged service's permission model, with the real chronyd: a segment
created by an unprivileged writer (mode 0600, as dcf77shm creates it under
User=_dcf77) is read by chronyd, which attaches while it is still root and
then drops to _chrony (as Debian's chrony.service does)."""

from __future__ import annotations

import contextlib
import os
import pwd
import subprocess
import time
from pathlib import Path

import pytest
import sysv_ipc

from dcf77shm.model import NS_PER_S, Sample
from dcf77shm.sinks.shm import ShmSink, key_for, segment_info
from dcf77shm.testing.chronyd import find_chronyd


def _user(name: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


pytestmark = [
    pytest.mark.chrony,
    pytest.mark.skipif(find_chronyd() is None, reason="chronyd not installed (make chrony)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="switches users: root"),
    pytest.mark.skipif(_user("_chrony") is None, reason="no _chrony user (Debian's chrony)"),
]


def _feed_as(user: pwd.struct_passwd, unit: int) -> int:
    """A child that becomes ``user`` and writes one sample a second, 1 ms late."""
    pid = os.fork()
    if pid:
        return pid
    try:
        os.setgroups([])
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)
        sink = ShmSink(unit)
        sink.open()
        while True:
            now = time.time_ns()
            t = (now // NS_PER_S + 1) * NS_PER_S
            time.sleep((t + 50_000_000 - now) / NS_PER_S)
            sink.publish(Sample(t + 1_000_000, t))
    finally:
        os._exit(0)


def test_chronyd_as_chrony_reads_a_0600_segment_of_another_user(tmp_path: Path) -> None:
    chrony, nobody = _user("_chrony"), _user("nobody")
    assert chrony is not None and nobody is not None
    unit = 46000 + os.getpid() % 9000
    os.chown(tmp_path, chrony.pw_uid, chrony.pw_gid)  # chronyd writes its drift file here
    conf = tmp_path / "chronyd.conf"
    conf.write_text(
        f"pidfile {tmp_path}/chronyd.pid\ndriftfile {tmp_path}/chronyd.drift\n"
        "cmdport 0\nport 0\n"
        f"refclock SHM {unit} refid DCF dpoll -1 poll 2 filter 4 delay 0.02\n"
    )
    feeder = _feed_as(nobody, unit)
    log = tmp_path / "chronyd.log"
    chronyd = None
    try:
        deadline = time.monotonic() + 10
        while segment_info(key_for(unit)) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        info = segment_info(key_for(unit))
        assert info is not None and info.uid == nobody.pw_uid and info.mode == 0o600
        with log.open("wb") as out:
            chronyd = subprocess.Popen(
                [find_chronyd() or "", "-d", "-x", "-u", "_chrony", "-f", str(conf)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while "Selected source DCF" not in log.read_text() and time.monotonic() < deadline:
            assert chronyd.poll() is None, log.read_text()
            time.sleep(1)
        assert "Selected source DCF" in log.read_text(), log.read_text()
        status = Path(f"/proc/{chronyd.pid}/status").read_text()
        uids = next(ln for ln in status.splitlines() if ln.startswith("Uid:")).split()[1:]
        assert set(uids) == {str(chrony.pw_uid)}  # it did drop root, and still reads the samples
        info = segment_info(key_for(unit))
        assert info is not None and info.nattch == 2
    finally:
        if chronyd is not None:
            chronyd.terminate()
            chronyd.wait(10)
        os.kill(feeder, 15)
        os.waitpid(feeder, 0)
        with contextlib.suppress(sysv_ipc.ExistentialError):
            sysv_ipc.SharedMemory(key_for(unit)).remove()
