"""Two writers (issue 10): a second ``run`` on the same unit or socket refuses to
start and names the first one's PID; a name squatted by a user who cannot write
the output does not stop the service."""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sysv_ipc
from clirun import run_cli

from dcf77shm.errors import RuntimeFailure
from dcf77shm.sinks.shm import key_for
from dcf77shm.sinks.writerlock import claim, lock_name


@pytest.fixture
def unit() -> Iterator[int]:
    u = 40000 + os.getpid() % 9000
    yield u
    with contextlib.suppress(sysv_ipc.ExistentialError):
        sysv_ipc.SharedMemory(key_for(u)).remove()


def _held(name: str) -> bool:
    """Whether the abstract name is bound, from the kernel's own table."""
    lines = Path("/proc/net/unix").read_text().splitlines()[1:]
    return any(line.endswith(" @" + name) for line in lines)


def test_the_same_output_has_the_same_name_and_others_differ(tmp_path: Path) -> None:
    assert lock_name("shm:77") == lock_name("shm:0077")
    assert lock_name("shm:77") != lock_name("shm:78")
    (tmp_path / "d").mkdir()
    a = f"sock:{tmp_path}/d/../dcf.sock"
    assert lock_name(a) == lock_name(f"sock:{tmp_path}/dcf.sock")
    long = "sock:/" + "x" * 200 + "/dcf.sock"
    assert len(lock_name(long).encode()) <= 100
    assert lock_name(long) != lock_name("sock:/" + "y" * 200 + "/dcf.sock")


def test_a_second_claim_is_refused_with_the_pid_until_the_first_is_released(unit: int) -> None:
    first = claim(f"shm:{unit}")
    assert first is not None and _held(lock_name(f"shm:{unit}"))
    with pytest.raises(RuntimeFailure, match=f"PID {os.getpid()}"):
        claim(f"shm:{unit}")
    other = claim(f"shm:{unit + 1}")  # another unit is free
    assert other is not None
    other.close()
    first.close()
    again = claim(f"shm:{unit}")
    assert again is not None
    again.close()


def test_a_second_run_exits_1_naming_the_first(unit: int) -> None:
    first = subprocess.Popen(
        [sys.executable, "-m", "dcf77shm", "run", "--source", "sim", "--output", f"shm:{unit}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not _held(lock_name(f"shm:{unit}")):
            assert first.poll() is None, first.stderr.read() if first.stderr else ""
            assert time.monotonic() < deadline, "the first run never claimed its output"
            time.sleep(0.1)
        second = run_cli("run", "--source", "sim", "--output", f"shm:{unit:05d}")
        assert second.returncode == 1, second.stderr
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in second.stderr
        assert f"PID {first.pid}" in lines[0] and "two writers" in lines[0]
        assert first.poll() is None  # the first goes on
    finally:
        first.terminate()
        first.wait(timeout=30)
    assert not _held(lock_name(f"shm:{unit}"))  # gone with the process


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_a_name_squatted_by_an_untrusted_user_does_not_stop_the_writer(
    unit: int, caplog: pytest.LogCaptureFixture
) -> None:
    nobody = pwd.getpwnam("nobody")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child: a hostile user takes the name
        try:
            os.close(r)
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind(b"\0" + lock_name(f"shm:{unit}").encode())
            s.listen(1)
            os.write(w, b"x")
            time.sleep(30)
        except BaseException as e:
            os.write(w, repr(e).encode())
        finally:
            os._exit(0)
    os.close(w)
    try:
        got_ready = os.read(r, 200)
        assert got_ready == b"x", got_ready
        with caplog.at_level(logging.WARNING):
            got = claim(f"shm:{unit}")
        assert got is None
        assert any("held by nobody" in m and str(pid) in m for m in caplog.messages)
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(r)
