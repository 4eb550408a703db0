"""Golden bytes for both ``struct shmTime`` layouts.

The expected image is built independently, with ctypes, from the struct as
chrony 4.3's refclock_shm.c declares it (field by field, C alignment rules),
with ``time_t`` as a 32-bit and as a 64-bit integer.
"""

from __future__ import annotations

import ctypes

import pytest
from hypothesis import given
from hypothesis import strategies as hs

from dcf77shm.sinks import shmstruct as st

NS = 1_000_000_000


def chrony_shm_time(time_t: type[ctypes._SimpleCData[int]]) -> type[ctypes.Structure]:
    class ShmTime(ctypes.Structure):
        _fields_ = [
            ("mode", ctypes.c_int),
            ("count", ctypes.c_int),
            ("clockTimeStampSec", time_t),
            ("clockTimeStampUSec", ctypes.c_int),
            ("receiveTimeStampSec", time_t),
            ("receiveTimeStampUSec", ctypes.c_int),
            ("leap", ctypes.c_int),
            ("precision", ctypes.c_int),
            ("nsamples", ctypes.c_int),
            ("valid", ctypes.c_int),
            ("clockTimeStampNSec", ctypes.c_int),
            ("receiveTimeStampNSec", ctypes.c_int),
            ("dummy", ctypes.c_int * 8),
        ]

    return ShmTime


C_LAYOUTS = {
    st.Layout.TIME32: chrony_shm_time(ctypes.c_int32),
    st.Layout.TIME64: chrony_shm_time(ctypes.c_int64),
}


@pytest.mark.parametrize("layout", list(st.Layout))
def test_sizes_and_offsets_match_the_c_struct(layout: st.Layout) -> None:
    c = C_LAYOUTS[layout]
    assert ctypes.sizeof(c) == layout.value == layout.fmt.size
    assert c.count.offset == st.COUNT_OFFSET
    assert c.valid.offset == st.valid_offset(layout)


@pytest.mark.parametrize("layout", list(st.Layout))
def test_golden_bytes(layout: st.Layout) -> None:
    receive_ns = 1_700_000_000 * NS + 974_912_345
    clock_ns = 1_700_000_001 * NS
    t = st.fields_for(receive_ns, clock_ns, leap=1, precision=-10)
    t = st.ShmTime(**{**_asdict(t), "count": 7, "valid": 1})
    expected = C_LAYOUTS[layout](
        mode=1,
        count=7,
        clockTimeStampSec=1_700_000_001,
        clockTimeStampUSec=0,
        receiveTimeStampSec=1_700_000_000,
        receiveTimeStampUSec=974_912,
        leap=1,
        precision=-10,
        nsamples=0,
        valid=1,
        clockTimeStampNSec=0,
        receiveTimeStampNSec=974_912_345,
    )
    assert st.pack(t, layout) == bytes(expected)
    assert st.unpack(bytes(expected), layout) == t


def _asdict(t: st.ShmTime) -> dict[str, int]:
    return {f: getattr(t, f) for f in st.ShmTime.__slots__}


def test_32_bit_layout_refuses_2038() -> None:
    t = st.fields_for(2**31 * NS, 2**31 * NS, 0, -10)
    with pytest.raises(ValueError, match="2038"):
        st.pack(t, st.Layout.TIME32)
    assert len(st.pack(t, st.Layout.TIME64)) == 96


@given(
    receive_ns=hs.integers(0, 2**31 * NS - 1),
    clock_s=hs.integers(0, 2**31 - 1),
    leap=hs.sampled_from([0, 1, 2]),
)
def test_round_trip_keeps_nanoseconds(receive_ns: int, clock_s: int, leap: int) -> None:
    for layout in st.Layout:
        t = st.unpack(st.pack(st.fields_for(receive_ns, clock_s * NS, leap, -10), layout), layout)
        assert (t.receive_ns, t.clock_ns, t.leap, t.mode) == (receive_ns, clock_s * NS, leap, 1)
        # chrony falls back to microseconds unless USec == NSec // 1000
        assert t.receive_usec == t.receive_nsec // 1000


def test_from_size() -> None:
    assert st.Layout.from_size(80) is st.Layout.TIME32
    assert st.Layout.from_size(96) is st.Layout.TIME64
    assert st.Layout.from_size(88) is None
    assert st.int32(2**31 - 1 + 1) == -(2**31)
