"""SockSink: golden bytes against chrony's struct sock_sample, and a real socket."""

from __future__ import annotations

import ctypes
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from chronystructs import chrony_sock_sample

from dcf77shm.errors import BadInput
from dcf77shm.model import Leap, Sample
from dcf77shm.sinks.sock import SOCK_MAGIC, SockSink, pack_sample

NS = 1_000_000_000


C = {32: chrony_sock_sample(ctypes.c_int32), 64: chrony_sock_sample(ctypes.c_int64)}


@pytest.mark.parametrize("bits", [32, 64])
def test_golden_bytes(bits: int) -> None:
    c = C[bits]
    assert ctypes.sizeof(c) == {32: 32, 64: 40}[bits]
    receive_ns = 1_700_000_000 * NS + 975_123_456
    clock_ns = 1_700_000_001 * NS
    data = pack_sample(receive_ns, clock_ns, int(Leap.DELETE), bits)
    # offset = true - system at tv; tv holds whole microseconds
    expected = c(
        tv=(1_700_000_000, 975_123), offset=0.024877, pulse=0, leap=2, _pad=0, magic=SOCK_MAGIC
    )
    assert data == bytes(expected)
    got = c.from_buffer_copy(data)
    assert got.magic == 0x534F434B and got.pulse == 0


def test_offset_keeps_the_nanoseconds_lost_in_the_timeval() -> None:
    got = C[64].from_buffer_copy(pack_sample(1_000_000_999, 2 * NS, 0, 64))
    assert (got.tv.tv_sec, got.tv.tv_usec) == (1, 0)
    assert got.offset == pytest.approx(1.0, abs=1e-12)
    got = C[64].from_buffer_copy(pack_sample(5 * NS + 123_456_789, 5 * NS, 0, 64))
    assert got.tv.tv_usec == 123_456
    assert got.offset == pytest.approx(-0.123456, abs=1e-12)


@pytest.fixture
def path(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "chrony.dcf.sock"


def test_sends_to_chronyds_socket_and_survives_its_restart(path: Path) -> None:
    sink = SockSink.from_spec(str(path), {})
    sink.open()  # no socket yet: chronyd not started; not an error
    s = Sample(1_700_000_000 * NS + 975_000_000, 1_700_000_001 * NS)
    sink.publish(s)  # ENOENT: dropped
    assert (sink.sent, sink.dropped) == (0, 1)
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(str(path))  # "chronyd" starts
    sink.publish(s)
    got = C[64].from_buffer_copy(rx.recv(100))
    assert got.tv.tv_sec == 1_700_000_000 and got.offset == pytest.approx(0.025)
    rx.close()  # "chronyd" stops, leaving the file behind: ECONNREFUSED
    sink.publish(s)
    assert (sink.sent, sink.dropped) == (1, 2)
    path.unlink()
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(str(path))  # and restarts
    sink.publish(s)
    assert len(rx.recv(100)) == 40
    assert sink.sent == 2
    rx.close()
    sink.close()
    sink.close()


def test_bad_paths(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="absolute"):
        SockSink.from_spec("chrony.sock", {})
    with pytest.raises(BadInput, match="longer"):
        SockSink.from_spec("/" + "x" * 200, {})
    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(Exception, match="not a socket"):
        SockSink.from_spec(str(f), {}).open()


def test_a_burst_waits_for_the_reader_and_a_stuck_reader_costs_a_drop(path: Path) -> None:
    import threading

    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(str(path))
    sink = SockSink(str(path))
    sink.open()
    base = 1_700_000_000 * NS
    # Nobody reads: the queue (10 datagrams by default) fills, then each send
    # gives up after SEND_TIMEOUT_S and the sample is dropped.
    for i in range(12):
        sink.publish(Sample(base + i * NS, base + i * NS + 25_000_000))
    assert sink.dropped >= 1 and sink.sent + sink.dropped == 12
    got = []
    rx.settimeout(0.5)

    def drain() -> None:
        while True:
            try:
                got.append(rx.recv(100))
            except TimeoutError:
                return

    t = threading.Thread(target=drain)
    t.start()
    sent_before = sink.sent
    for i in range(12, 112):  # a burst, as when a decoder locks
        sink.publish(Sample(base + i * NS, base + i * NS + 25_000_000))
    t.join()
    assert sink.sent - sent_before == 100  # none lost while chronyd reads
    assert len(got) == sink.sent
    rx.close()
    sink.close()
