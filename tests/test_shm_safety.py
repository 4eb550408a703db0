"""W5 (issue 9): a segment another local user made is never used.

An unprivileged user who creates the NTP segment first (first boot, after an
``ipcrm``, between a purge and a reinstall) - mode 0666, or owned by them - can
write any time into it, and chronyd serves it.  Every test creates the hostile
segment from a child process running as ``nobody``."""

from __future__ import annotations

import contextlib
import os
import pwd
from collections.abc import Iterator

import pytest
import sysv_ipc

from dcf77shm.errors import RuntimeFailure
from dcf77shm.model import Sample
from dcf77shm.sinks.shm import ShmSink, key_for, segment_info
from dcf77shm.sinks.shmtools import adopt, status_lines

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as two users")
NS = 1_000_000_000


@pytest.fixture
def unit() -> Iterator[int]:
    u = 30000 + os.getpid() % 9000
    yield u
    with contextlib.suppress(sysv_ipc.ExistentialError):
        sysv_ipc.SharedMemory(key_for(u)).remove()


def _as_nobody_create(unit: int, mode: int) -> None:
    """A hostile local user creates the segment (in a child that drops to nobody)."""
    nobody = pwd.getpwnam("nobody")
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            sysv_ipc.SharedMemory(key_for(unit), sysv_ipc.IPC_CREX, mode=mode, size=96)
            os._exit(0)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.mark.parametrize("mode", [0o666, 0o600, 0o644])
def test_run_refuses_a_segment_another_user_made(unit: int, mode: int) -> None:
    _as_nobody_create(unit, mode)
    info = segment_info(key_for(unit))
    assert info is not None and info.uid == pwd.getpwnam("nobody").pw_uid
    with pytest.raises(RuntimeFailure, match="refusing an unsafe segment") as e:
        ShmSink(unit).open()
    assert "ipcrm -M" in str(e.value)  # the fix is named
    # ... and shm status says so.
    assert any("UNSAFE" in line for line in status_lines(unit))


def test_run_refuses_a_root_segment_others_may_write(unit: int) -> None:
    sysv_ipc.SharedMemory(key_for(unit), sysv_ipc.IPC_CREX, mode=0o666, size=96)
    with pytest.raises(RuntimeFailure, match="writable by group/others"):
        ShmSink(unit).open()


def test_adopt_removes_a_foreign_segment_nothing_is_attached_to(unit: int) -> None:
    _as_nobody_create(unit, 0o666)
    line = adopt(f"shm:{unit}", "root")
    assert "removed a segment another user made" in line
    assert segment_info(key_for(unit)) is None
    sink = ShmSink(unit)  # now the service creates its own, safe one
    sink.open()
    info = segment_info(key_for(unit))
    assert info is not None and info.mode == 0o600 and info.unsafe([]) is None
    sink.close()


def test_adopt_refuses_a_foreign_segment_chronyd_is_attached_to(unit: int) -> None:
    _as_nobody_create(unit, 0o666)
    chronyd = sysv_ipc.SharedMemory(key_for(unit))  # stands for chronyd's attachment
    try:
        with pytest.raises(RuntimeFailure, match="another user made"):
            adopt(f"shm:{unit}", "root")
        assert segment_info(key_for(unit)) is not None  # left alone: chronyd reads it
    finally:
        chronyd.detach()


def test_adopt_makes_a_root_segment_0600_and_the_users(unit: int) -> None:
    sysv_ipc.SharedMemory(key_for(unit), sysv_ipc.IPC_CREX, mode=0o666, size=96)
    line = adopt(f"shm:{unit}", "nobody")
    assert "mode 0666 -> 0600" in line and "-> nobody" in line
    info = segment_info(key_for(unit))
    assert info is not None and info.mode == 0o600
    assert info.uid == pwd.getpwnam("nobody").pw_uid and info.cuid == 0
    assert adopt(f"shm:{unit}", "nobody").endswith("already nobody's, mode 0600")


def test_the_sink_follows_a_segment_replaced_under_it(unit: int) -> None:
    # ipcrm and a chronyd restart: chronyd reads a new segment at the key.
    sink = ShmSink(unit)
    sink.open()
    sink.publish(Sample(1_700_000_000 * NS + 5, 1_700_000_001 * NS))
    old = segment_info(key_for(unit))
    sysv_ipc.SharedMemory(key_for(unit)).remove()
    new = sysv_ipc.SharedMemory(key_for(unit), sysv_ipc.IPC_CREX, mode=0o600, size=96)
    new.write(bytes(96))
    for k in range(2, 12):  # the sink looks again every ten samples
        sink.publish(Sample((1_700_000_000 + k) * NS + 5, (1_700_000_001 + k) * NS))
    info = segment_info(key_for(unit))
    assert old is not None and info is not None and info.shmid != old.shmid
    assert new.read(96) != bytes(96)  # the new segment got the samples
    sink.close()
    new.detach()
