"""ShmSink against real System V segments (units far from gpsd's 0-7 and ours)."""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
from collections.abc import Iterator

import pytest
import sysv_ipc

from dcf77shm.errors import BadInput, RuntimeFailure
from dcf77shm.model import Leap, Sample
from dcf77shm.sinks import shmstruct as st
from dcf77shm.sinks.shm import ShmSink, key_for, segment_info

NS = 1_000_000_000
S1 = Sample(1_700_000_000 * NS + 975_123_456, 1_700_000_001 * NS, Leap.INSERT)
S2 = Sample(1_700_000_001 * NS + 975_000_001, 1_700_000_002 * NS, Leap.NONE)


@pytest.fixture
def unit() -> Iterator[int]:
    u = 40000 + os.getpid() % 20000
    yield u
    with contextlib.suppress(sysv_ipc.ExistentialError):
        sysv_ipc.SharedMemory(key_for(u)).remove()


def read(unit: int) -> tuple[sysv_ipc.SharedMemory, st.ShmTime]:
    mem = sysv_ipc.SharedMemory(key_for(unit))
    layout = st.Layout.from_size(mem.size)
    assert layout is not None
    return mem, st.unpack(mem.read(layout.value), layout)


def test_creates_0600_segment_with_platform_layout_and_writes_gpsd_style(unit: int) -> None:
    sink = ShmSink(unit)
    sink.open()
    mem, t = read(unit)
    assert mem.size == st.platform_layout().value
    assert mem.mode & 0o777 == 0o600
    assert t == st.ShmTime()  # zeroed, valid=0, until the first sample
    sink.publish(S1)
    _, t = read(unit)
    assert (t.mode, t.count, t.valid, t.leap, t.precision) == (1, 2, 1, 1, -10)
    assert (t.receive_ns, t.clock_ns) == (S1.receive_ns, S1.clock_ns)
    assert t.receive_usec == 975_123 and t.receive_nsec == 975_123_456
    sink.publish(S2)
    _, t = read(unit)
    assert (t.count, t.leap, t.receive_ns) == (4, 0, S2.receive_ns)
    sink.close()
    sink.close()
    assert segment_info(key_for(unit)) is not None  # never removed


def test_attaches_to_existing_32_bit_segment(unit: int) -> None:
    sysv_ipc.SharedMemory(key_for(unit), sysv_ipc.IPC_CREX, mode=0o600, size=80).write(bytes(80))
    sink = ShmSink(unit)
    sink.open()
    assert sink.layout is st.Layout.TIME32
    sink.publish(S1)
    mem, t = read(unit)
    assert mem.size == 80
    assert (t.receive_ns, t.clock_ns, t.valid, t.count) == (S1.receive_ns, S1.clock_ns, 1, 2)
    sink.close()


def test_refuses_a_segment_of_another_size(unit: int) -> None:
    sysv_ipc.SharedMemory(key_for(unit), sysv_ipc.IPC_CREX, mode=0o640, size=88)
    with pytest.raises(RuntimeFailure) as e:
        ShmSink(unit).open()
    msg = str(e.value)
    assert "\n" not in msg
    for part in ("88 bytes", "mode 0640", "owner", f"ipcrm -M {key_for(unit):#x}"):
        assert part in msg


def test_second_writer_is_reported_once(unit: int, caplog: pytest.LogCaptureFixture) -> None:
    a, b = ShmSink(unit), ShmSink(unit)
    a.open()
    b.open()
    with caplog.at_level(logging.WARNING, "dcf77shm.shm"):
        a.publish(S1)
        b.publish(S1)
        a.publish(S2)
        b.publish(S2)
        a.publish(Sample(S2.receive_ns + NS, S2.clock_ns + NS))
    assert a.foreign_writes == 2 and b.foreign_writes == 2
    warnings = [r for r in caplog.records if "another program" in r.getMessage()]
    assert len(warnings) == 2  # one per sink
    a.close()
    b.close()


def test_chrony_clearing_valid_is_not_a_second_writer(unit: int) -> None:
    sink = ShmSink(unit)
    sink.open()
    sink.publish(S1)
    mem, _t = read(unit)
    mem.write(bytes(4), st.valid_offset(sink.layout or st.Layout.TIME64))  # chrony read it
    sink.publish(S2)
    assert sink.foreign_writes == 0
    sink.close()


@pytest.mark.parametrize("arg", ["x", "65536", "-1", "²", "٣", "７７", " 77", "1" * 5000])
def test_bad_unit(arg: str) -> None:
    with pytest.raises(BadInput, match="0-65535"):
        ShmSink.from_spec(arg, {})


def test_no_unit_is_implied() -> None:
    # shm: once meant the live unit 77: a slip sent test samples to chrony.
    with pytest.raises(BadInput, match="needs a unit"):
        ShmSink.from_spec("", {})
    assert ShmSink.from_spec("77", {}).unit == 77
    assert ShmSink.from_spec("0", {}).unit == 0


@pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root to create a segment another user cannot use"
)
def test_no_permission_names_owner_mode_and_fix(unit: int) -> None:
    size = st.platform_layout().value
    sysv_ipc.SharedMemory(key_for(unit), sysv_ipc.IPC_CREX, mode=0o600, size=size)
    # A forked child that gave up root: the real kernel permission check.
    rd, wr = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.setgid(pwd.getpwnam("nobody").pw_gid)
            os.setuid(pwd.getpwnam("nobody").pw_uid)
            ShmSink(unit).open()
            msg = "opened"
        except RuntimeFailure as e:
            msg = str(e)
        except BaseException as e:
            msg = repr(e)
        os.write(wr, msg.encode())
        os._exit(0)
    os.close(wr)
    with os.fdopen(rd) as f:
        line = f.read()
    os.waitpid(pid, 0)
    assert "permission denied" in line and "\n" not in line, line
    assert "owner root, mode 0600" in line and f"{size} bytes" in line
    assert "run dcf77shm as root" in line
