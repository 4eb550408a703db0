"""chrony's own structs, written out from its sources for golden-byte checks (shared by tests)."""

from __future__ import annotations

import ctypes


def chrony_sock_sample(time_t: type[ctypes._SimpleCData[int]]) -> type[ctypes.Structure]:
    """refclock_sock.c: struct timeval tv; double offset; int pulse, leap, _pad, magic."""

    class Timeval(ctypes.Structure):
        _fields_ = [("tv_sec", time_t), ("tv_usec", time_t)]

    class SockSample(ctypes.Structure):
        _fields_ = [
            ("tv", Timeval),
            ("offset", ctypes.c_double),
            ("pulse", ctypes.c_int),
            ("leap", ctypes.c_int),
            ("_pad", ctypes.c_int),
            ("magic", ctypes.c_int),
        ]

    return SockSample
