"""The NTP shared-memory segment (``struct shmTime``), both ``time_t`` layouts.

chrony's refclock_shm.c (and ntpd's, and gpsd's ntpshm) share one C struct::

    int mode; volatile int count;
    time_t clockTimeStampSec;   int clockTimeStampUSec;
    time_t receiveTimeStampSec; int receiveTimeStampUSec;
    int leap; int precision; int nsamples; volatile int valid;
    int clockTimeStampNSec; int receiveTimeStampNSec; int dummy[8];

Its size depends on the C compiler's ``time_t``: 80 bytes with a 32-bit
``time_t`` (Raspberry Pi OS bookworm armhf), 96 with a 64-bit one (arm64,
x86-64, armhf from Debian trixie on: there ``time_t`` is 8-byte aligned, so
4 bytes of padding follow ``clockTimeStampUSec`` and end the struct).  A
segment's size therefore tells which layout the chronyd that created it was
built with.

Pure: no I/O.  Native byte order, because the segment is shared with a
process on the same machine.
"""

from __future__ import annotations

import ctypes
import enum
import struct
from dataclasses import dataclass

from dcf77shm.model import NS_PER_S

SHM_KEY_BASE = 0x4E545030  # "NTP0": chrony and ntpd add the unit number


class Layout(enum.Enum):
    """``struct shmTime`` for a 32- or 64-bit ``time_t``; the value is its size."""

    TIME32 = 80
    TIME64 = 96

    @property
    def time_bits(self) -> int:
        return 32 if self is Layout.TIME32 else 64

    @property
    def fmt(self) -> struct.Struct:
        return _FORMATS[self]

    @classmethod
    def from_size(cls, size: int) -> Layout | None:
        for lay in cls:
            if lay.value == size:
                return lay
        return None


# '=' is native order without implicit alignment: the padding is spelled out,
# so the offsets are visible.  64-bit: 4 bytes before receiveTimeStampSec
# (8-byte alignment) and 4 at the end (sizeof rounds up to a multiple of 8).
_FORMATS = {
    # mode count | clockSec USec | receiveSec USec | leap precision nsamples valid |
    # clockNSec receiveNSec | dummy[8]
    Layout.TIME32: struct.Struct("=2i" + "2i" + "2i" + "4i" + "2i" + "8i"),
    Layout.TIME64: struct.Struct("=2i" + "qi4x" + "qi" + "4i" + "2i" + "8i" + "4x"),
}
# Offsets of the fields the writer touches one by one (write order matters).
COUNT_OFFSET = 4


def valid_offset(layout: Layout) -> int:
    return 36 if layout is Layout.TIME32 else 48


def platform_layout() -> Layout:
    """The layout this machine's C compiler (and so its chronyd) uses.

    ``ctypes.c_time_t`` exists from Python 3.12 on; before that, a 64-bit
    pointer implies a 64-bit ``time_t``.  A 32-bit userland built with 64-bit
    ``time_t`` (Debian trixie armhf) is only recognised through c_time_t; on
    such a system an existing segment's size decides anyway.
    """
    c_time_t = getattr(ctypes, "c_time_t", None)
    size = ctypes.sizeof(c_time_t) if c_time_t is not None else ctypes.sizeof(ctypes.c_void_p)
    return Layout.TIME64 if size >= 8 else Layout.TIME32


MODE_COUNT = 1  # mode 1: the reader compares count before and after its copy


@dataclass(frozen=True, slots=True)
class ShmTime:
    """The fields of ``struct shmTime`` (dummy[] left out: always zero)."""

    mode: int = 0
    count: int = 0
    clock_sec: int = 0
    clock_usec: int = 0
    receive_sec: int = 0
    receive_usec: int = 0
    leap: int = 0
    precision: int = 0
    nsamples: int = 0
    valid: int = 0
    clock_nsec: int = 0
    receive_nsec: int = 0

    @property
    def clock_ns(self) -> int:
        return self.clock_sec * NS_PER_S + self._frac(self.clock_nsec, self.clock_usec)

    @property
    def receive_ns(self) -> int:
        return self.receive_sec * NS_PER_S + self._frac(self.receive_nsec, self.receive_usec)

    def _frac(self, nsec: int, usec: int) -> int:
        # chrony's rule: trust NSec only when both NSec/1000 match USec (an
        # old writer leaves NSec zero or stale).
        if self.clock_nsec // 1000 == self.clock_usec and (
            self.receive_nsec // 1000 == self.receive_usec
        ):
            return nsec
        return usec * 1000


def fields_for(receive_ns: int, clock_ns: int, leap: int, precision: int) -> ShmTime:
    """The timestamp fields for one sample (count/valid/mode are the writer's)."""
    cs, cns = divmod(clock_ns, NS_PER_S)
    rs, rns = divmod(receive_ns, NS_PER_S)
    return ShmTime(
        mode=MODE_COUNT,
        clock_sec=cs,
        clock_usec=cns // 1000,  # USec = NSec // 1000, or chrony ignores NSec
        receive_sec=rs,
        receive_usec=rns // 1000,
        leap=leap,
        precision=precision,
        clock_nsec=cns,
        receive_nsec=rns,
    )


def pack(t: ShmTime, layout: Layout) -> bytes:
    """The whole segment image; raises ValueError if a time does not fit ``time_t``."""
    if layout is Layout.TIME32:
        for sec in (t.clock_sec, t.receive_sec):
            if not -(2**31) <= sec < 2**31:
                raise ValueError(f"second {sec} does not fit a 32-bit time_t (year 2038)")
    return layout.fmt.pack(
        t.mode,
        t.count,
        t.clock_sec,
        t.clock_usec,
        t.receive_sec,
        t.receive_usec,
        t.leap,
        t.precision,
        t.nsamples,
        t.valid,
        t.clock_nsec,
        t.receive_nsec,
        *([0] * 8),
    )


def unpack(data: bytes, layout: Layout) -> ShmTime:
    return ShmTime(*layout.fmt.unpack(data[: layout.value])[:12])


def int32(v: int) -> int:
    """Wrap to a C ``int`` (count wraps around in a long-running writer)."""
    return (v + 2**31) % 2**32 - 2**31
